//! `bench-gossip-sim`: the figures issue 4 asks for, from the deterministic
//! simulation (`gossip::sim`) with the production LAN and WAN presets, printed
//! as a Markdown table next to what HashiCorp memberlist and its Lifeguard
//! extension publish. Every row is simulated time, so the numbers do not
//! depend on the machine; only the wall time does.
//!
//! Flags: `--seed N` (default 1), `--members N` for detection and false
//! positives (default 100), `--large N` for the second convergence row
//! (default 500), `--fp-minutes N` simulated minutes per loss level (default
//! 2; false positives are scaled to an hour), `--kills N` detection runs
//! (seeds `seed..seed+N`) whose per-member times are pooled (default 3),
//! `--quick` (50 members, 1 minute, 200 large, 1 kill; for smoke runs), `--suspect-ms N` (override both
//! presets' `suspect_to_down_ms`, to see what a longer suspicion buys),
//! `--foca-as-is` (without production's filter of `TurnUndead` after a
//! refuted suspicion, see `gossip::sim::SimSettings::drop_refuted_turn_undead`),
//! `--no-relay` (without production's relay of suspicions and verdicts, see
//! `gossip::sim::SimSettings::relay`), and, to try other LAN timings,
//! `--probe-ms N`, `--probe-rtt-ms N`, `--resend-ms N` (LAN preset only).
//! With `BENCH_DEBUG` set in the environment it also prints each kill's
//! first, median and last detection time on stderr.

use std::{process::ExitCode, thread};

use tokio::time::Instant;

use gossip::sim::{self, SimError, SimSettings};

/// Loss levels of the false-positive rows, in percent.
const LOSS_PERCENTS: [u32; 4] = [0, 5, 10, 20];
/// Longest a detection may take before the row says "not detected", in
/// simulated ms past the kill.
const DETECTION_LIMIT_MS: u64 = 120_000;

struct Options {
    seed: u64,
    members: usize,
    large: usize,
    fp_minutes: u64,
    kills: u64,
    suspect_ms: Option<u64>,
    foca_as_is: bool,
    no_relay: bool,
    probe_ms: Option<u64>,
    probe_rtt_ms: Option<u64>,
    resend_ms: Option<u64>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        seed: 1,
        members: 100,
        large: 500,
        fp_minutes: 2,
        kills: 3,
        suspect_ms: None,
        foca_as_is: false,
        no_relay: false,
        probe_ms: None,
        probe_rtt_ms: None,
        resend_ms: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            options.members = 50;
            options.large = 200;
            options.fp_minutes = 1;
            options.kills = 1;
            continue;
        }
        if flag == "--foca-as-is" {
            options.foca_as_is = true;
            continue;
        }
        if flag == "--no-relay" {
            options.no_relay = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        let size = usize::try_from(number).map_err(|_| format!("{flag}: too large"))?;
        match flag.as_str() {
            "--seed" => options.seed = number,
            "--members" => options.members = size,
            "--large" => options.large = size,
            "--fp-minutes" => options.fp_minutes = number.max(1),
            "--kills" => options.kills = number.max(1),
            "--suspect-ms" => options.suspect_ms = Some(number),
            "--probe-ms" => options.probe_ms = Some(number),
            "--probe-rtt-ms" => options.probe_rtt_ms = Some(number),
            "--resend-ms" => options.resend_ms = Some(number),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(options)
}

/// One preset's column of the table.
struct Column {
    detection: String,
    false_positives: Vec<String>,
    bytes: String,
    convergence: String,
    convergence_large: String,
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(
        || "never".to_owned(),
        |ms| format!("{:.1} s", ms as f64 / 1_000.0),
    )
}

fn column(
    base: fn(usize, u64) -> SimSettings,
    lan: bool,
    options: &Options,
) -> Result<Column, SimError> {
    let with_options = |members: usize, seed: u64| {
        let mut settings = base(members, seed);
        if let Some(ms) = options.suspect_ms {
            settings.swim.suspect_to_down_ms = ms;
        }
        if lan {
            if let Some(ms) = options.probe_ms {
                settings.swim.probe_period_ms = ms;
            }
            if let Some(ms) = options.probe_rtt_ms {
                settings.swim.probe_rtt_ms = ms;
            }
            if let Some(ms) = options.resend_ms {
                settings.swim.suspicion_resend_ms = ms;
            }
        }
        settings.drop_refuted_turn_undead = !options.foca_as_is;
        settings.relay = !options.no_relay;
        settings
    };
    let settings = with_options(options.members, options.seed);
    let (mut times, mut detected, mut observers) = (Vec::new(), 0, 0);
    for kill in 0..options.kills {
        let settings = with_options(options.members, options.seed.wrapping_add(kill));
        let report = sim::detection(&settings, DETECTION_LIMIT_MS)?;
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!(
                "kill {kill}: min {:?} p50 {:?} max {:?}",
                report.times_ms.first(),
                report.p50_ms,
                report.max_ms
            );
        }
        times.extend(report.times_ms);
        detected += report.detected;
        observers += report.observers;
    }
    times.sort_unstable();
    let detection = format!(
        "{} / {} ({detected}/{observers} saw it)",
        ms(sim::quantile(&times, 0.50)),
        ms(sim::quantile(&times, 0.99)),
    );
    let window_ms = options.fp_minutes * 60_000;
    let mut false_positives = Vec::new();
    let mut bytes = String::new();
    for percent in LOSS_PERCENTS {
        let report = sim::stability(&settings.clone().with_loss_percent(percent), window_ms)?;
        let renewals_per_hour =
            report.counters.rejoins as f64 * 3_600_000.0 / report.window_ms as f64;
        false_positives.push(format!(
            "{:.0} ({:.0} renewals)",
            report.false_positives_per_hour(),
            renewals_per_hour
        ));
        if percent == 0 {
            bytes = format!(
                "{:.0} B ({:.1} packets)",
                report.bytes_per_node_per_second(),
                report.packets_per_node_per_second()
            );
        }
    }
    let convergence = sim::convergence(&settings, sim::CONVERGE_LIMIT_MS)?;
    let large = sim::convergence(
        &with_options(options.large, options.seed),
        sim::CONVERGE_LIMIT_MS,
    )?;
    let converge = |report: &sim::ConvergenceReport| {
        format!(
            "{} (median member {})",
            ms(report.converged_ms),
            ms(report.member_p50_ms)
        )
    };
    Ok(Column {
        detection,
        false_positives,
        bytes,
        convergence: converge(&convergence),
        convergence_large: converge(&large),
    })
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("bench-gossip-sim: {err}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let (lan, wan) = thread::scope(|scope| {
        let lan = scope.spawn(|| column(SimSettings::lan, true, &options));
        let wan = scope.spawn(|| column(SimSettings::wan, false, &options));
        (lan.join(), wan.join())
    });
    let (lan, wan) = match (lan, wan) {
        (Ok(Ok(lan)), Ok(Ok(wan))) => (lan, wan),
        (Ok(Err(err)), _) | (_, Ok(Err(err))) => {
            eprintln!("bench-gossip-sim: {err} (seed {})", options.seed);
            return ExitCode::FAILURE;
        }
        _ => {
            eprintln!(
                "bench-gossip-sim: a simulation panicked (seed {})",
                options.seed
            );
            return ExitCode::FAILURE;
        }
    };
    let m = options.members;
    println!(
        "seed {}, {} members, {} kills, {} simulated minutes per loss level, suspicion {}, turn-undead filter {}, relay {}, wall {:.0} s\n",
        options.seed,
        m,
        options.kills,
        options.fp_minutes,
        options
            .suspect_ms
            .map_or_else(|| "as preset".to_owned(), |ms| format!("{ms} ms")),
        if options.foca_as_is { "off" } else { "on" },
        if options.no_relay { "off" } else { "on" },
        started.elapsed().as_secs_f64()
    );
    println!("| figure | lyceum lan | lyceum wan | memberlist / Lifeguard, published (approx.) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| detect a dead node, p50 / p99 ({m} members) | {} | {} | LAN defaults: suspicion 4 x log10(n) x 1 s probe = 8 s at 100 nodes, Lifeguard starts it at 6x (48 s) and shrinks it with independent confirmations |",
        lan.detection, wan.detection
    );
    for (i, percent) in LOSS_PERCENTS.iter().enumerate() {
        println!(
            "| false positives per hour at {percent} % loss ({m} members) | {} | {} | {} |",
            lan.false_positives[i],
            wan.false_positives[i],
            if i == 0 {
                "no per-loss figure published; Lifeguard paper: about 50x fewer false positives than plain SWIM with CPU-starved members"
            } else {
                "not published"
            }
        );
    }
    println!(
        "| gossip bytes per node per second, 0 % loss ({m} members) | {} | {} | not published as one figure; Serf's convergence simulator estimates a few kbit/s per node at defaults (unsure) |",
        lan.bytes, wan.bytes
    );
    println!(
        "| convergence, {m} members join one seed | {} | {} | epidemic spread of one update at 200 ms, fan-out 3: about 1 to 2 s for 100 nodes (Serf simulator); full state by 30 s push-pull |",
        lan.convergence, wan.convergence
    );
    println!(
        "| convergence, {} members join one seed | {} | {} | about 2 to 3 s for one update at 500 nodes (same simulator, unsure) |",
        options.large, lan.convergence_large, wan.convergence_large
    );
    ExitCode::SUCCESS
}
