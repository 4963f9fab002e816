//! `lyceum run FILE`: one program through the same sandbox an edge uses
//! (image, lock-down, agent, verdicts), on the local Docker engine, with no
//! cluster. The container is cold-started: there is no pool to warm.

use std::path::Path;

use anyhow::{bail, Context as _};
use sandbox::run::{SourceFile, TestCase};
use sandbox::{RunRequest, Sandbox, Verdict};

use crate::cli::RunArgs;
use crate::config::Config;

/// Exit code for a verdict other than `accepted`.
pub const EXIT_NOT_ACCEPTED: u8 = 3;

fn language_for(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?;
    sandbox::LANGUAGES
        .iter()
        .find(|lang| lang.file_name.rsplit('.').next() == Some(extension))
        .map(|lang| lang.id)
}

/// The verdict as the API spells it (`wrong_answer`).
fn verdict_name(verdict: Verdict) -> String {
    serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{verdict:?}"))
}

/// Runs the file and prints the result; returns the process exit code.
///
/// # Errors
/// Fails when a file cannot be read, the language is unknown, or the
/// engine is unreachable.
pub async fn run(args: &RunArgs, config: &Config) -> anyhow::Result<u8> {
    let language = match &args.language {
        Some(language) => language.clone(),
        None => language_for(&args.file)
            .with_context(|| {
                format!(
                    "cannot tell the language of {} from its extension; pass --lang",
                    args.file.display()
                )
            })?
            .to_owned(),
    };
    let content = std::fs::read_to_string(&args.file)
        .with_context(|| format!("read {}", args.file.display()))?;
    let stdin = match &args.stdin {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => String::new(),
    };
    let tests: Vec<TestCase> = match &args.tests {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a list of test cases", path.display()))?
        }
        None => Vec::new(),
    };
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let request = RunRequest {
        language: language.clone(),
        files: vec![SourceFile { name, content }],
        stdin,
        tests,
        limits: sandbox::run::RequestLimits {
            wall_ms: args.wall_ms,
            memory_mb: None,
        },
    };
    let mut sandbox_config = config.sandbox.clone();
    sandbox_config.languages = vec![language.clone()];
    sandbox_config.pool_target = 0;
    if sandbox::languages::find(&language).is_none() {
        bail!("unknown language {language:?}");
    }
    let engine = sandbox::DockerEngine::connect(&config.edge.docker_host)?;
    let owner = format!("run-{}", std::process::id());
    let agent = sandbox::run::lyceum_agent(&owner).context("find the lyceum binary")?;
    let registry = prometheus::Registry::new();
    let sandbox = Sandbox::start(engine, sandbox_config, agent, &registry)
        .await
        .context("start the sandbox (is the Docker engine running? scripts/services.sh docker)")?;
    let outcome = sandbox.run(&request).await;
    sandbox.shutdown().await;
    let result = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        let limit = result
            .limit
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "{}{limit}: {}, {:.1} ms wall, {:.1} ms cpu",
            verdict_name(result.status),
            how_it_ended(result.exit_code, result.signal),
            result.time_ms,
            result.cpu_ms
        );
        if !result.compile_output.is_empty() {
            println!("--- compile output\n{}", result.compile_output.trim_end());
        }
        if !result.stdout.is_empty() {
            println!("--- stdout\n{}", result.stdout.trim_end());
        }
        if !result.stderr.is_empty() {
            println!("--- stderr\n{}", result.stderr.trim_end());
        }
        for test in &result.tests {
            println!(
                "test {}: {} ({:.1} ms)",
                test.name,
                verdict_name(test.status),
                test.time_ms
            );
        }
    }
    Ok(if result.status == Verdict::Accepted {
        0
    } else {
        EXIT_NOT_ACCEPTED
    })
}

/// How the program ended, in words: its exit code, the signal that ended
/// it, or that it never ran (a compile error, or the sandbox's own stop).
fn how_it_ended(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (_, Some(signal)) => match signal_name(signal) {
            Some(name) => format!("ended by signal {signal} ({name})"),
            None => format!("ended by signal {signal}"),
        },
        (Some(code), None) => format!("exited with code {code}"),
        (None, None) => "did not run to an exit".to_owned(),
    }
}

/// The usual name of the signals a sandboxed program meets.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::how_it_ended;

    #[test]
    fn endings_read_as_plain_words() {
        let check = |code, signal, expected: &str| assert_eq!(how_it_ended(code, signal), expected);
        check(Some(0), None, "exited with code 0");
        check(Some(3), None, "exited with code 3");
        check(None, Some(9), "ended by signal 9 (SIGKILL)");
        check(None, Some(64), "ended by signal 64");
        check(None, None, "did not run to an exit");
    }
}
