//! Prometheus metrics of one process. Each process owns a registry (no
//! globals, so tests can run several servers in one binary). The `route`
//! label is the matched route template (or `unmatched`), so label values
//! stay a bounded set.
//!
//! Every name follows one scheme, `lyceum_<area>_<name>_<unit>`, checked
//! over every process's `/metrics` by [`naming_violations`] in the dev
//! cluster test: the area is one of [`AREAS`]; a counter ends in `_total`;
//! a histogram in `_seconds`, `_bytes` or `_ratio` (a fraction); a gauge in one of
//! [`GAUGE_UNITS`] (a measure, or the things it counts, which may be the
//! whole name after the area: `lyceum_live_sessions`).

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
};

/// Why metrics could not be registered or rendered.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The registry and the HTTP metrics every process has.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// For components that name their metrics in full (`lyceum_gossip_*`).
    components: Registry,
    /// Requests answered, by route, method and status code.
    pub http_requests: IntCounterVec,
    /// Time to answer, by route and method.
    pub http_request_duration: HistogramVec,
    /// Requests being handled right now.
    pub http_requests_in_flight: IntGauge,
    /// Requests refused because too many were in flight.
    pub http_requests_shed: IntCounterVec,
    /// 1 when `/readyz` would answer 200.
    pub ready: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The areas a metric name may start with, after `lyceum_`.
pub const AREAS: &[&str] = &[
    "process",
    "http",
    "edge",
    "sandbox",
    "live",
    "media",
    "gossip",
    "actors",
    "control_plane",
];

/// How a gauge's name may end: a measure, a 0/1 state, or the things it
/// counts.
pub const GAUGE_UNITS: &[&str] = &[
    "seconds",
    "bytes",
    "ratio",
    "info",
    "ready",
    "requests",
    "sessions",
    "members",
    "containers",
    "classes",
    "reports",
    // Live audio: peer connections, audio tracks, publishers, relay requests.
    "peers",
    "tracks",
    "publishers",
    "subscriptions",
    // A rate: `_runs_per_minute`.
    "minute",
];

/// Every metric family in a Prometheus text exposition whose name breaks
/// the naming scheme (see the module docs), each with the reason.
pub fn naming_violations(exposition: &str) -> Vec<String> {
    let mut violations = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            violations.push(format!("unreadable TYPE line {line:?}"));
            continue;
        };
        let Some(after) = name.strip_prefix("lyceum_") else {
            violations.push(format!("{name}: does not start with lyceum_"));
            continue;
        };
        if after.starts_with("lyceum_") {
            violations.push(format!("{name}: the lyceum_ prefix is doubled"));
            continue;
        }
        let Some(area) = AREAS.iter().find(|area| {
            after
                .strip_prefix(**area)
                .is_some_and(|r| r.starts_with('_'))
        }) else {
            violations.push(format!("{name}: the area is none of {AREAS:?}"));
            continue;
        };
        let rest = &after[area.len() + 1..];
        let unit = rest.rsplit('_').next().unwrap_or_default();
        let (ok, wanted): (bool, &[&str]) = match kind {
            "counter" => (unit == "total", &["total"]),
            "histogram" | "summary" => (
                matches!(unit, "seconds" | "bytes" | "ratio"),
                &["seconds", "bytes", "ratio"],
            ),
            "gauge" => (GAUGE_UNITS.contains(&unit), GAUGE_UNITS),
            _ => (false, &[]),
        };
        // A gauge may be named by what it counts alone (`lyceum_live_sessions`);
        // a counter or histogram needs a name before its unit.
        if !ok || (rest == unit && kind != "gauge") {
            violations.push(format!(
                "{name}: a {kind} is lyceum_<area>_<name>_<unit> with the unit one of {wanted:?}"
            ));
        }
    }
    violations
}

/// Histogram buckets for request latency, in seconds: fine-grained below
/// 100 ms, where our budgets are.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

impl Metrics {
    /// Creates the registry with `role` (and `region` for edges) as constant
    /// labels on every series.
    ///
    /// # Errors
    /// Only on a bad metric definition, which is a bug.
    pub fn new(role: &str, region: Option<&str>) -> Result<Self, MetricsError> {
        let mut labels = std::collections::HashMap::new();
        labels.insert("role".to_owned(), role.to_owned());
        if let Some(region) = region {
            labels.insert("region".to_owned(), region.to_owned());
        }
        let registry = Registry::new_custom(Some("lyceum".to_owned()), Some(labels.clone()))?;
        let components = Registry::new_custom(None, Some(labels))?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["route", "method"],
        )?;
        let http_requests_in_flight =
            IntGauge::new("http_in_flight_requests", "HTTP requests being handled")?;
        let http_requests_shed = IntCounterVec::new(
            Opts::new(
                "http_requests_shed_total",
                "HTTP requests refused with 503 because too many were in flight",
            ),
            &["route"],
        )?;
        let ready = IntGauge::new(
            "process_ready",
            "1 when the process is ready to take traffic",
        )?;
        let build_info = IntGauge::with_opts(
            Opts::new("process_build_info", "Build of this process; always 1")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build_info.set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_request_duration.clone()))?;
        registry.register(Box::new(http_requests_in_flight.clone()))?;
        registry.register(Box::new(http_requests_shed.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Self {
            registry,
            components,
            http_requests,
            http_request_duration,
            http_requests_in_flight,
            http_requests_shed,
            ready,
        })
    }

    /// The registry, for other components to add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry for components whose metric names carry their own
    /// `lyceum_` prefix.
    pub fn component_registry(&self) -> &Registry {
        &self.components
    }

    /// Renders every metric in the Prometheus text format.
    ///
    /// # Errors
    /// Only if encoding fails, which is a bug.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.components.gather());
        prometheus::TextEncoder::new().encode(&families, &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_naming_scheme_is_checked_per_family() {
        let exposition = "\
# TYPE lyceum_http_requests_total counter
# TYPE lyceum_lyceum_live_sessions gauge
# TYPE lyceum_live_sessions gauge
# TYPE lyceum_sandbox_run_seconds histogram
# TYPE lyceum_sandbox_runs counter
# TYPE lyceum_weather_rain_total counter
# TYPE up gauge
# TYPE lyceum_live_total counter
# TYPE lyceum_sandbox_pool_size gauge
";
        let found = naming_violations(exposition);
        let names: Vec<&str> = found
            .iter()
            .map(|v| v.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "lyceum_lyceum_live_sessions",
                "lyceum_sandbox_runs",
                "lyceum_weather_rain_total",
                "up",
                "lyceum_live_total",
                "lyceum_sandbox_pool_size",
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn this_processs_own_metrics_follow_the_scheme() {
        let metrics = Metrics::new("edge", Some("eu-west")).expect("metrics");
        let text = metrics.render().expect("render");
        assert_eq!(naming_violations(&text), Vec::<String>::new(), "{text}");
    }
}
