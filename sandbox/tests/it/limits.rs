//! Limits and isolation, each with its exact verdict, and a clean next run.

use sandbox::{RunResult, Verdict};

use crate::support::{machine_shared, request, sandbox};

async fn python(
    sb: &sandbox::Sandbox,
    code: &str,
    wall_ms: u64,
    memory_mb: Option<u32>,
) -> RunResult {
    let mut req = request("python", code);
    req.limits.wall_ms = Some(wall_ms);
    req.limits.memory_mb = memory_mb;
    sb.run(&req).await.expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_give_exact_verdicts_and_the_box_stays_shut() {
    let _machine = machine_shared().await;
    let sb = sandbox(&["python"], |c| c.pool_target = 2).await;

    let slept = python(&sb, "import time\ntime.sleep(100)", 500, None).await;
    assert_eq!(
        (slept.status, slept.limit.as_deref()),
        (Verdict::TimeLimitExceeded, Some("wall")),
        "{slept:?}"
    );

    let spun = python(&sb, "while True:\n    pass", 800, None).await;
    assert_eq!(spun.status, Verdict::TimeLimitExceeded, "{spun:?}");
    assert!(spun.limit.is_some());

    let hog = python(
        &sb,
        "a = bytearray(512 * 1024 * 1024)\nprint(len(a))",
        5_000,
        Some(64),
    )
    .await;
    assert_eq!(hog.status, Verdict::MemoryLimitExceeded, "{hog:?}");

    let flood = python(&sb, "while True:\n    print('x' * 1000)", 5_000, None).await;
    assert_eq!(flood.status, Verdict::OutputLimitExceeded, "{flood:?}");
    assert!(flood.stdout.len() <= 64 * 1024);

    let who = python(
        &sb,
        "import os\nprint(os.getuid(), os.getgid())",
        5_000,
        None,
    )
    .await;
    assert_eq!(
        (who.status, who.stdout.trim()),
        (Verdict::Accepted, "65534 65534"),
        "{who:?}"
    );

    // Network, raw sockets, writing outside /work, fork bombs and daemons
    // are in the adversarial suite.
    let after = python(&sb, "print('fine')", 5_000, None).await;
    assert_eq!(
        (after.status, after.stdout.trim()),
        (Verdict::Accepted, "fine"),
        "{after:?}"
    );

    // A fresh container each time: nothing a run wrote is seen by the next.
    let first = python(
        &sb,
        "open('/work/left-behind', 'w').write('x')\nprint('ok')",
        5_000,
        None,
    )
    .await;
    assert_eq!(first.status, Verdict::Accepted, "{first:?}");
    let second = python(
        &sb,
        "import os\nprint(os.path.exists('/work/left-behind'))",
        5_000,
        None,
    )
    .await;
    assert_eq!(second.stdout.trim(), "False", "{second:?}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pool_serves_hot_and_an_empty_pool_serves_cold() {
    let _machine = machine_shared().await;
    let sb = sandbox(&["python"], |c| c.pool_target = 1).await;
    // Wait for the pool to fill (harness bound, not a speed check).
    for _ in 0..300 {
        if sb
            .pools()
            .sizes()
            .iter()
            .any(|(id, size, _)| *id == "python" && *size >= 1)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hot = python(&sb, "print(1)", 5_000, None).await;
    assert!(hot.hot, "{hot:?}");
    assert_eq!(sb.pools().set_target("python", 0).await.expect("target"), 0);
    let cold = python(&sb, "print(1)", 5_000, None).await;
    assert!(!cold.hot, "{cold:?}");
    assert_eq!(cold.status, Verdict::Accepted);
    assert_eq!(
        sb.pools()
            .set_target("python", 1_000)
            .await
            .expect("target"),
        sandbox::pool::POOL_TARGET_MAX
    );
    sb.pools().set_target("python", 0).await.expect("target");
    let before = sb.pools().stats("python").expect("stats");
    assert_eq!(
        (before.hot, before.cold, before.target),
        (1, 1, 0),
        "{before:?}"
    );
    sb.shutdown().await;
    // Every container warmed was used or destroyed unused, and counted.
    let after = sb.pools().stats("python").expect("stats");
    assert_eq!(after.warm, 0, "{after:?}");
    assert!(after.warmed >= 1, "{after:?}");
    assert_eq!(after.warmed, after.hot + after.wasted, "{after:?}");
    assert!(sb.pools().stats("cobol").is_err());
    assert_eq!(
        sb.pools().container_memory_mb("python").expect("memory"),
        256 + sandbox::LANGUAGES
            .iter()
            .find(|l| l.id == "python")
            .expect("python")
            .memory_headroom_mb
    );
}
