//! `lyceum control-plane`: opens the database (SQLite in the data dir, or
//! PostgreSQL), applies migrations, optionally seeds the dev accounts, and
//! serves the control-plane API with the shared HTTP scaffolding.

use std::time::Duration;

use anyhow::Context as _;
use control_plane::ControlPlane;
use serde_json::json;

use crate::cli::ControlPlaneArgs;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::ready_file::{self, ReadyInfo};
use crate::server::{self, Basics};
use crate::shutdown::Shutdown;

/// How often the database is pinged (one small write) for `/readyz`.
const DB_PING_INTERVAL_MS: u64 = 2_000;

/// Longest the readiness write may take before the database counts as not
/// ready: shorter than the interval, so probes never pile up.
const DB_PING_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Runs the control plane until SIGINT/SIGTERM (or stdin EOF when supervised).
///
/// # Errors
/// Fails when the database cannot be opened or the address cannot be bound.
pub async fn run(args: &ControlPlaneArgs, config: &Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen(args.child.supervised).context("install signal handlers")?;
    let cp_config = config.control_plane.clone();
    let cp = ControlPlane::open(cp_config.clone())
        .await
        .context("open the control-plane database")?;
    tracing::info!(database = ?cp.db().kind(), "control-plane database ready");
    let dev_tokens = if args.seed_dev {
        let tokens = control_plane::seed::seed_dev(&cp)
            .await
            .context("seed the dev accounts")?;
        tracing::info!("dev accounts seeded");
        Some(tokens)
    } else {
        None
    };

    let metrics = Metrics::new("control-plane", None)?;
    let readiness = Readiness::default();
    readiness.register("database");
    readiness.register("shutdown");
    readiness.set("shutdown", Ok(()));
    let tasks = crate::tasks::Tasks::new(metrics.registry(), readiness.clone(), shutdown.clone())
        .context("task metrics")?;
    metrics
        .registry()
        .register(Box::new(RoundPanics::new()?))
        .context("round panic metric")?;
    let basics = Basics {
        metrics,
        readiness: readiness.clone(),
        identity: json!({"role": "control-plane"}),
    };
    let app = server::app(
        control_plane::http::router(cp.clone()),
        &basics,
        &config.http,
    );

    let listener = tokio::net::TcpListener::bind(&cp_config.listen)
        .await
        .with_context(|| format!("listen on {} (control_plane.listen)", cp_config.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    tracing::info!(%url, "control plane serving");

    tasks.spawn(
        "watch_database",
        watch_database(cp.clone(), readiness.clone(), shutdown.clone()),
    );
    if let Some(path) = &args.child.ready_file {
        let info = ReadyInfo {
            role: "control-plane".into(),
            url: url.clone(),
            pid: std::process::id(),
            region: None,
            node_id: None,
            gossip_addr: None,
            dev_tokens,
        };
        ready_file::write_json_atomic(path, &info)
            .with_context(|| format!("write ready file {}", path.display()))?;
    }
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    server::serve(listener, app, grace, shutdown).await?;
    cp.db().close().await;
    tracing::info!("control plane stopped");
    Ok(())
}

async fn watch_database(cp: ControlPlane, readiness: Readiness, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(DB_PING_INTERVAL_MS));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.clone().wait() => {
                readiness.set("shutdown", Err("shutting down".into()));
                return;
            }
        }
        let write = cp.db().ping_write(cp.clock().now_ms());
        let outcome = match tokio::time::timeout(DB_PING_TIMEOUT, write).await {
            Ok(result) => result.map_err(|err| format!("the database refuses a write: {err}")),
            Err(_) => Err(format!(
                "a write to the database took longer than {} ms",
                DB_PING_TIMEOUT.as_millis()
            )),
        };
        readiness.set("database", outcome);
    }
}

/// `lyceum_control_plane_round_panics_total`: background rounds (billing
/// clock, ledger expiry sweep, analytics) that panicked. The control plane
/// keeps running them; this is how an operator learns one keeps failing.
struct RoundPanics {
    desc: prometheus::core::Desc,
}

impl RoundPanics {
    fn new() -> anyhow::Result<Self> {
        let desc = prometheus::core::Desc::new(
            "control_plane_round_panics_total".into(),
            "Background rounds of the control plane that panicked (the next round runs as usual)."
                .into(),
            Vec::new(),
            std::collections::HashMap::new(),
        )?;
        Ok(Self { desc })
    }
}

impl prometheus::core::Collector for RoundPanics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let counter = prometheus::IntCounter::with_opts(prometheus::Opts::new(
            self.desc.fq_name.clone(),
            self.desc.help.clone(),
        ))
        .expect("a valid counter definition");
        counter.inc_by(control_plane::round_panics());
        counter.collect()
    }
}
