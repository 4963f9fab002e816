//! Limits and isolation, each with its exact verdict, and a clean next run.

use sandbox::{RunResult, Verdict};

use crate::support::{request, sandbox};

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
    let sb = sandbox(&["python", "bash"], |c| c.pool_target = 2).await;

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

    let net = python(
        &sb,
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
        5_000,
        None,
    )
    .await;
    assert_eq!(net.status, Verdict::RuntimeError, "{net:?}");
    assert!(
        net.stderr.contains("Network is unreachable") || net.stderr.contains("OSError"),
        "{net:?}"
    );

    let raw = python(
        &sb,
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW, 1)",
        5_000,
        None,
    )
    .await;
    assert_eq!(raw.status, Verdict::RuntimeError, "{raw:?}");
    assert!(raw.stderr.contains("Operation not permitted"), "{raw:?}");

    let root = python(&sb, "open('/etc/evil', 'w')", 5_000, None).await;
    assert_eq!(root.status, Verdict::RuntimeError, "{root:?}");
    assert!(root.stderr.contains("Read-only file system"), "{root:?}");

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

    // A fork bomb hits the pids limit and then the clock; the next run is
    // unaffected.
    let mut bomb = request("bash", "f() { f | f; }; f");
    bomb.limits.wall_ms = Some(1_000);
    let bombed = sb.run(&bomb).await.expect("run");
    assert_ne!(bombed.status, Verdict::Accepted, "{bombed:?}");
    // What a program leaves running in the background dies with its run.
    let mut daemon = request("bash", "setsid sleep 1000 &\necho started");
    daemon.limits.wall_ms = Some(1_000);
    let daemonized = sb.run(&daemon).await.expect("run");
    assert_eq!(
        (daemonized.status, daemonized.stdout.trim()),
        (Verdict::Accepted, "started")
    );
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
    let sb = sandbox(&["python"], |c| c.pool_target = 1).await;
    // Wait for the pool to fill (harness bound, not a speed check).
    for _ in 0..300 {
        if sb
            .pools()
            .sizes()
            .await
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
    sb.shutdown().await;
}
