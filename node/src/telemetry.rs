//! Logging: `tracing` to stderr, readable by default and one JSON object per
//! line with `--log-format json`. Every HTTP request runs in a span that
//! carries its request id, so all lines of one request can be found together.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber; call once, before anything logs.
pub fn init(config: &Config) {
    // The filter was validated with the config, so this only falls back on a
    // bug, and then to a sane level rather than to silence.
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    let result = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("lyceum: logging was already set up: {err}");
    }
}
