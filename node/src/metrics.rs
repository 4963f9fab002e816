//! Prometheus metrics of one process. Each process owns a registry (no
//! globals, so tests can run several servers in one binary). Names end in
//! `_total` or a unit; the `route` label is the matched route template (or
//! `unmatched`), so label values stay a bounded set.

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
            IntGauge::new("http_requests_in_flight", "HTTP requests being handled")?;
        let http_requests_shed = IntCounterVec::new(
            Opts::new(
                "http_requests_shed_total",
                "HTTP requests refused with 503 because too many were in flight",
            ),
            &["route"],
        )?;
        let ready = IntGauge::new("ready", "1 when the process is ready to take traffic")?;
        let build_info = IntGauge::with_opts(
            Opts::new("build_info", "Build of this process; always 1")
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
