//! Entry point of `lyceum`: parse flags, load configuration, start logging and
//! hand over to the chosen command. Exit codes: 0 success, 1 runtime failure,
//! 2 bad command line or configuration.

use std::process::ExitCode;

use clap::Parser as _;
use node::cli::{Cli, Command};
use node::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Inside a sandbox container: no config, no logging, just the job.
    if let Command::SandboxAgent = cli.command {
        return ExitCode::from(u8::try_from(sandbox::agent::main()).unwrap_or(1));
    }
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("lyceum: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config = cli.command {
        match config.to_toml() {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(err) => {
                eprintln!("lyceum: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    node::telemetry::init(&config);
    raise_open_files_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("lyceum: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<u8> = runtime.block_on(async {
        match &cli.command {
            Command::Dev(args) => node::dev::run(&cli, args, &config).await.map(|()| 0),
            Command::ControlPlane(args) => {
                node::control_plane::run(args, &config).await.map(|()| 0)
            }
            Command::Edge(args) => node::edge::run(args, &config).await.map(|()| 0),
            Command::Run(args) => node::run_cmd::run(args, &config).await,
            Command::Route(args) => node::route::run(args, &config).await,
            Command::Load(args) => node::load::run(args, &config).await,
            Command::LoadWorker => node::load::worker().await,
            Command::Chaos(command) => node::chaos::run(command, &config).await,
            Command::Config | Command::SandboxAgent => Ok(0),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "lyceum stopped with an error");
            eprintln!("lyceum: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Live sessions, load workers and the dev cluster hold many sockets: lift
/// the soft limit on open files to the hard one (20,000 on these machines),
/// which no process may pass. Failing to is logged, not fatal.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %err, "cannot raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read the open-files limit"),
    }
}
