//! The run pipeline around the program: live output, the abuse monitor, the
//! memory figure and the stage metrics.

use sandbox::abuse::AbuseKind;
use sandbox::job::{StepKind, StreamKind};
use sandbox::Verdict;

use crate::support::{containers_of, machine_shared, machine_whole, request, sandbox_owned};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_while_the_program_runs_and_matches_the_result() {
    let _machine = machine_shared().await;
    let (sb, owner) = sandbox_owned(&["python"], |c| c.pool_target = 1).await;
    // Three pieces a little apart, one of them splitting a multi-byte
    // character across two writes, and something on stderr.
    let code = r#"
import sys, time
out = sys.stdout.buffer
out.write(b"first\n"); out.flush(); time.sleep(0.05)
snow = "\u2603".encode()
out.write(b"split " + snow[:1]); out.flush(); time.sleep(0.05)
out.write(snow[1:] + b" done\n"); out.flush()
sys.stderr.write("warned\n")
"#;
    let (sink, mut chunks) = sb.output_sink();
    let result = sb
        .run_streaming(&request("python", code), Some(&sink))
        .await
        .expect("run");
    assert_eq!(result.status, Verdict::Accepted, "{result:?}");
    assert_eq!(result.stdout, "first\nsplit \u{2603} done\n");
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut pieces = 0;
    while let Ok(chunk) = chunks.try_recv() {
        assert_eq!((chunk.step, chunk.case), (StepKind::Run, 0));
        assert!(
            !chunk.data.contains('\u{fffd}'),
            "split character: {chunk:?}"
        );
        match chunk.stream {
            StreamKind::Stdout => stdout.push_str(&chunk.data),
            StreamKind::Stderr => stderr.push_str(&chunk.data),
        }
        pieces += 1;
    }
    assert_eq!(stdout, result.stdout, "streamed stdout equals the result's");
    assert_eq!(stderr, result.stderr);
    assert!(
        pieces >= 3,
        "output came in pieces, not at the end: {pieces}"
    );
    assert_eq!(sink.dropped(), 0);
    assert!(
        result.memory_kb.is_some_and(|kb| kb > 1024),
        "the cgroup's peak memory is reported: {result:?}"
    );
    sb.shutdown().await;
    assert!(containers_of(&owner).is_empty(), "containers left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_drops_pieces_but_the_result_keeps_everything() {
    let _machine = machine_shared().await;
    let (sb, owner) = sandbox_owned(&["python"], |c| {
        c.pool_target = 1;
        c.stream_chunks_max = 1;
    })
    .await;
    let code =
        "import sys, time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.005)";
    let (sink, _chunks) = sb.output_sink();
    let result = sb
        .run_streaming(&request("python", code), Some(&sink))
        .await
        .expect("run");
    let expected: String = (0..20).map(|i| format!("{i}\n")).collect();
    assert_eq!(result.stdout, expected);
    assert!(sink.dropped() > 0, "nobody read: pieces were dropped");
    sb.shutdown().await;
    assert!(containers_of(&owner).is_empty(), "containers left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abuse_monitor_ends_sustained_cpu_and_fork_bombs_and_spares_honest_runs() {
    // The whole machine: the monitor judges CPU as a share of the
    // container's quota, and a spinner sharing two cores with the other
    // tests' compiles can read below the threshold for its whole run.
    let _machine = machine_whole().await;
    let (sb, owner) = sandbox_owned(&["python", "bash"], |c| {
        c.pool_target = 1;
        c.abuse_cpu_sustained_ms = 1_000;
        c.abuse_pids_sustained_ms = 300;
    })
    .await;

    let mut spin = request("python", "while True:\n    pass");
    spin.limits.wall_ms = Some(8_000);
    let spun = sb.run(&spin).await.expect("run");
    assert_eq!(
        (spun.status, spun.limit.as_deref(), spun.abuse),
        (
            Verdict::TimeLimitExceeded,
            Some("cpu"),
            Some(AbuseKind::CpuSaturation)
        ),
        "{spun:?}"
    );
    assert!(
        spun.time_ms < 8_000.0,
        "ended by the monitor, not the wall limit: {spun:?}"
    );
    // Read before the host's kill takes the cgroup away.
    assert!(
        spun.memory_kb.is_some_and(|kb| kb > 1024),
        "a run the monitor ends still reports its memory: {spun:?}"
    );
    // Its CPU comes from the host's counter: most of the time it ran.
    assert!(
        spun.cpu_ms > spun.time_ms * 0.3 && spun.cpu_ms <= spun.time_ms * 1.5,
        "a run the monitor ends reports its CPU: {spun:?}"
    );

    let mut bomb = request("bash", "bomb() { bomb | bomb & }; bomb; sleep 20");
    bomb.limits.wall_ms = Some(8_000);
    let bombed = sb.run(&bomb).await.expect("run");
    assert_eq!(bombed.abuse, Some(AbuseKind::ForkBomb), "{bombed:?}");
    assert_ne!(bombed.status, Verdict::Accepted);

    // Busy for less than the threshold, then done: honest.
    let mut honest = request(
        "python",
        "import time\nt = time.time()\nwhile time.time() - t < 0.5:\n    pass\nprint('ok')",
    );
    honest.limits.wall_ms = Some(8_000);
    let fine = sb.run(&honest).await.expect("run");
    assert_eq!(
        (fine.status, fine.abuse, fine.stdout.as_str()),
        (Verdict::Accepted, None, "ok\n"),
        "{fine:?}"
    );
    sb.shutdown().await;
    assert!(containers_of(&owner).is_empty(), "containers left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_are_not_watched_by_the_abuse_monitor() {
    let _machine = machine_shared().await;
    // A monitor so strict that any busy run step trips it, yet the compile
    // step (busy for far longer than 1 ms) goes through.
    let (sb, owner) = sandbox_owned(&["c"], |c| {
        c.pool_target = 1;
        c.abuse_cpu_sustained_ms = 1;
        c.abuse_sample_ms = 50;
    })
    .await;
    let ok = sb
        .run(&request(
            "c",
            "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}",
        ))
        .await
        .expect("run");
    assert_eq!((ok.status, ok.abuse), (Verdict::Accepted, None), "{ok:?}");
    sb.shutdown().await;
    assert!(containers_of(&owner).is_empty(), "containers left behind");
}
