//! Publishing the edge's outbox: submission events go to the control
//! plane's `POST /api/v1/submissions`, oldest first, one at a time. An event
//! leaves the outbox only once the control plane has answered 201 (recorded)
//! or 200 (recorded before), so a lost answer means a retry, which the
//! control plane recognises by the event's id: at-least-once delivery,
//! exactly-once recording. A refusal for good (400, 409) moves the event to
//! the dead letters; anything else (network, 401, 5xx) is retried with a
//! doubling pause up to `edge.outbox_retry_max_ms`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};

use crate::run_store::RunStore;
use crate::shutdown::Shutdown;

/// First pause after a failed report.
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The publisher's counters.
#[derive(Clone)]
struct OutboxMetrics {
    pending: IntGauge,
    published: IntCounter,
    dead: IntCounter,
    failures: IntCounter,
}

impl OutboxMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            pending: IntGauge::new(
                "edge_outbox_pending",
                "Submission events waiting for the control plane",
            )?,
            published: IntCounter::new(
                "edge_outbox_published_total",
                "Submission events the control plane recorded",
            )?,
            dead: IntCounter::new(
                "edge_outbox_dead_letters_total",
                "Submission events the control plane refused for good",
            )?,
            failures: IntCounter::new(
                "edge_outbox_failures_total",
                "Failed attempts to report a submission event (retried)",
            )?,
        };
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.published.clone()))?;
        registry.register(Box::new(metrics.dead.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        Ok(metrics)
    }
}

/// What one attempt came to.
enum Attempt {
    Recorded,
    Refused(String),
    Retry(String),
}

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    event: &crate::run_store::SubmissionEvent,
) -> Attempt {
    match client.post(url).bearer_auth(key).json(event).send().await {
        Ok(answer) => {
            let status = answer.status();
            if status.is_success() {
                Attempt::Recorded
            } else if status == reqwest::StatusCode::BAD_REQUEST
                || status == reqwest::StatusCode::CONFLICT
            {
                let body = answer.text().await.unwrap_or_default();
                Attempt::Refused(format!("HTTP {status}: {body}"))
            } else {
                Attempt::Retry(format!("HTTP {status}"))
            }
        }
        Err(err) => Attempt::Retry(err.to_string()),
    }
}

/// Starts the publisher; it runs until `shutdown`. With no service key it
/// only keeps the pending gauge (events stay in the outbox).
///
/// # Errors
/// When the metrics cannot be registered.
pub fn start(
    store: Arc<RunStore>,
    client: reqwest::Client,
    control_plane_url: &str,
    key: String,
    retry_max: Duration,
    registry: &Registry,
    shutdown: Shutdown,
) -> Result<(), prometheus::Error> {
    let metrics = OutboxMetrics::register(registry)?;
    let url = format!(
        "{}/api/v1/submissions",
        control_plane_url.trim_end_matches('/')
    );
    if key.is_empty() {
        tracing::warn!(
            "edge.control_plane_service_key is empty: submission events stay in the outbox"
        );
    }
    tokio::spawn(async move {
        let mut pause = RETRY_MIN;
        loop {
            metrics
                .pending
                .set(i64::try_from(store.outbox_len()).unwrap_or(i64::MAX));
            let next = if key.is_empty() {
                None
            } else {
                match store.oldest_event() {
                    Ok(next) => next,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the outbox");
                        None
                    }
                }
            };
            let Some((id, event)) = next else {
                tokio::select! {
                    () = store.event_added() => continue,
                    () = shutdown.clone().wait() => return,
                }
            };
            let outcome = tokio::select! {
                outcome = attempt(&client, &url, &key, &event) => outcome,
                () = shutdown.clone().wait() => return,
            };
            let stored = match outcome {
                Attempt::Recorded => {
                    metrics.published.inc();
                    pause = RETRY_MIN;
                    store.remove_event(&id)
                }
                Attempt::Refused(why) => {
                    tracing::error!(
                        submission_id = event.submission_id,
                        reason = why,
                        "the control plane refused a submission report; kept as a dead letter"
                    );
                    metrics.dead.inc();
                    store.dead_letter(&id, &why)
                }
                Attempt::Retry(why) => {
                    metrics.failures.inc();
                    tracing::warn!(
                        submission_id = event.submission_id,
                        reason = why,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "submission report failed; will retry"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.clone().wait() => return,
                    }
                    pause = (pause * 2).min(retry_max);
                    Ok(())
                }
            };
            if let Err(err) = stored {
                tracing::error!(error = %err, "cannot update the outbox");
                tokio::select! {
                    () = tokio::time::sleep(retry_max) => {}
                    () = shutdown.clone().wait() => return,
                }
            }
        }
    });
    Ok(())
}
