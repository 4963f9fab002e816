//! The edge's outboxes: what it promised to tell the control plane
//! (submission reports, attendance reports) waits in a durable [`Queue`]
//! until the control plane has taken it, and one publisher per queue hands
//! it over. An item leaves its queue only once the control plane has
//! recorded it (now or before: every route is idempotent by the item's
//! key), so a lost answer means a retry: at-least-once delivery,
//! exactly-once recording. An item refused for good becomes a dead letter;
//! anything else (network, 401, 5xx) is retried with a doubling pause up
//! to `edge.outbox_retry_max_ms`.
//!
//! A [`Transport`] says how items travel: submission reports go in batches
//! to `POST /api/v1/submissions/batch` ([`submissions`]), attendance
//! reports one at a time to `POST /api/v1/live/attendance`
//! ([`attendance`]). A whole batch the control plane will not read is sent
//! again one item at a time, so one bad item costs itself and never blocks
//! the rest; a batch too large is halved.
//!
//! Each publisher keeps its queue's readiness check (`outbox` for
//! submissions, `outbox_attendance`): red while the queue is full, or while
//! a refused item cannot become a dead letter because the dead letters are
//! full.

pub mod attendance;
pub mod queue;
pub mod submissions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use queue::{DeadLetter, Queue, QueueError, QueueLimits, Queued};

use crate::readiness::Readiness;
use crate::shutdown::Shutdown;

/// First pause after a failed attempt.
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The control plane's verdict on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded now or before: it leaves the queue.
    Recorded,
    /// Refused for good, with the reason: a dead letter.
    Refused(String),
}

/// What one request came to.
#[derive(Debug)]
pub enum Attempt {
    /// A verdict for each item sent, in order.
    Verdicts(Vec<Verdict>),
    /// The batch was too large for the control plane: send fewer.
    TooLarge,
    /// The control plane would not read the batch as a whole: send the
    /// items one at a time.
    Unreadable,
    /// Nothing was decided; try again after a pause.
    Retry(String),
}

/// How a queue's items reach the control plane.
pub trait Transport<T>: Send + Sync + 'static {
    /// Sends several items in one request (or just one, for a route
    /// without batches).
    fn send(&self, items: &[&T]) -> impl Future<Output = Attempt> + Send;
    /// Sends one item alone; answers verdicts or a retry, never
    /// [`Attempt::TooLarge`] or [`Attempt::Unreadable`].
    fn send_one(&self, item: &T) -> impl Future<Output = Attempt> + Send;
}

/// A publisher's settings.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The readiness check it keeps.
    pub readiness_check: &'static str,
    /// The setting that bounds the queue, named when it is full.
    pub limit_setting: &'static str,
    /// Whether it may send at all (a service key is configured).
    pub enabled: bool,
    /// Most items in one request.
    pub batch_max: usize,
    /// Longest pause between retries (`edge.outbox_retry_max_ms`).
    pub retry_max: Duration,
}

/// The metrics of every outbox on a node, labelled by queue.
#[derive(Clone)]
pub struct OutboxMetrics {
    pending: IntGaugeVec,
    capacity: IntGaugeVec,
    dead_letters: IntGaugeVec,
    published: IntCounterVec,
    dead: IntCounterVec,
    failures: IntCounterVec,
    batches: IntCounterVec,
}

impl OutboxMetrics {
    /// Registers the metrics once per node.
    ///
    /// # Errors
    /// When a metric cannot be registered (a name registered twice).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["queue"]);
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["queue"]);
        let metrics = Self {
            pending: gauge(
                "edge_outbox_pending_reports",
                "Reports waiting for the control plane, by queue",
            )?,
            capacity: gauge(
                "edge_outbox_capacity_reports",
                "Reports a queue may hold before its producers are refused",
            )?,
            dead_letters: gauge(
                "edge_outbox_dead_letters_reports",
                "Reports the control plane refused for good, kept for an operator",
            )?,
            published: counter(
                "edge_outbox_published_total",
                "Reports the control plane recorded",
            )?,
            dead: counter(
                "edge_outbox_dead_lettered_total",
                "Reports the control plane refused for good",
            )?,
            failures: counter(
                "edge_outbox_failures_total",
                "Failed attempts to hand reports to the control plane (retried)",
            )?,
            batches: counter(
                "edge_outbox_batches_total",
                "Requests carrying reports to the control plane",
            )?,
        };
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.capacity.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.published.clone()))?;
        registry.register(Box::new(metrics.dead.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.batches.clone()))?;
        Ok(metrics)
    }
}

/// Keeps a queue's gauges and readiness check in step with it.
fn observe<T: Serialize + DeserializeOwned>(
    queue: &Queue<T>,
    metrics: &OutboxMetrics,
    readiness: &Readiness,
    publisher: &Publisher,
    stuck: Option<&str>,
) {
    let name = queue.name();
    let pending = queue.len();
    metrics
        .pending
        .with_label_values(&[name])
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
    metrics
        .dead_letters
        .with_label_values(&[name])
        .set(i64::try_from(queue.dead_letters_len()).unwrap_or(i64::MAX));
    let outcome = if let Some(stuck) = stuck {
        Err(stuck.to_owned())
    } else if queue.full() {
        Err(format!(
            "{pending} {name} reports wait for the control plane, the most {} ({}) allows; \
             new work that would add one is refused",
            publisher.limit_setting,
            queue.limits().items_max
        ))
    } else {
        Ok(())
    };
    readiness.set(publisher.readiness_check, outcome);
}

/// Starts the publisher of `queue` as a supervised task (named after its
/// readiness check); it runs until `shutdown`. When not enabled it only
/// keeps the gauges and readiness (items stay queued).
pub fn start<T, P>(
    queue: Arc<Queue<T>>,
    transport: P,
    publisher: Publisher,
    metrics: OutboxMetrics,
    readiness: Readiness,
    tasks: &crate::tasks::Tasks,
    shutdown: Shutdown,
) where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Transport<T>,
{
    assert!(
        publisher.batch_max > 0,
        "validated: a batch holds at least 1"
    );
    let name = queue.name();
    metrics
        .capacity
        .with_label_values(&[name])
        .set(i64::try_from(queue.limits().items_max).unwrap_or(i64::MAX));
    readiness.register(publisher.readiness_check);
    if !publisher.enabled {
        tracing::warn!(
            queue = name,
            "edge.control_plane_service_key is empty: reports stay in the outbox"
        );
    }
    tasks.spawn(publisher.readiness_check, async move {
        let mut pause = RETRY_MIN;
        let mut batch_max = publisher.batch_max;
        // Set while a refused item cannot become a dead letter.
        let mut stuck: Option<String> = None;
        loop {
            observe(&queue, &metrics, &readiness, &publisher, stuck.as_deref());
            let queued = if publisher.enabled {
                queue.oldest(batch_max).unwrap_or_else(|err| {
                    tracing::error!(queue = name, error = %err, "cannot read an outbox");
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            if queued.is_empty() {
                tokio::select! {
                    () = queue.added() => continue,
                    () = tokio::time::sleep(publisher.retry_max), if stuck.is_some() => continue,
                    () = shutdown.clone().wait() => return,
                }
            }
            // The items before the first undecodable one, or that one alone.
            let mut keys = Vec::with_capacity(queued.len());
            let mut items = Vec::with_capacity(queued.len());
            let mut corrupt = None;
            for entry in &queued {
                match entry {
                    Queued::Item(key, item) => {
                        keys.push(key.clone());
                        items.push(item.as_ref());
                    }
                    Queued::Corrupt(key, why) => {
                        if keys.is_empty() {
                            corrupt = Some((key.clone(), why.clone()));
                        }
                        break;
                    }
                }
            }
            let (attempt, keys) = if let Some((key, why)) = corrupt {
                (Attempt::Verdicts(vec![Verdict::Refused(why)]), vec![key])
            } else {
                metrics.batches.with_label_values(&[name]).inc();
                let attempt = tokio::select! {
                    attempt = transport.send(&items) => attempt,
                    () = shutdown.clone().wait() => return,
                };
                match attempt {
                    Attempt::TooLarge if batch_max > 1 => {
                        batch_max = (batch_max / 2).max(1);
                        tracing::warn!(
                            queue = name,
                            batch_max,
                            "the control plane wants smaller batches"
                        );
                        continue;
                    }
                    Attempt::Unreadable | Attempt::TooLarge => {
                        metrics.batches.with_label_values(&[name]).inc();
                        let attempt = tokio::select! {
                            attempt = transport.send_one(items[0]) => attempt,
                            () = shutdown.clone().wait() => return,
                        };
                        (attempt, vec![keys[0].clone()])
                    }
                    other => (other, keys),
                }
            };
            match attempt {
                Attempt::Verdicts(verdicts) => {
                    debug_assert_eq!(verdicts.len(), keys.len(), "one verdict per item");
                    pause = RETRY_MIN;
                    stuck = None;
                    let now = crate::store::now_rfc3339();
                    for (verdict, key) in verdicts.into_iter().zip(keys) {
                        let done = match verdict {
                            Verdict::Recorded => {
                                metrics.published.with_label_values(&[name]).inc();
                                queue.remove(&key).map_err(QueueError::from)
                            }
                            Verdict::Refused(why) => {
                                queue.dead_letter(&key, &why, &now).map(|()| {
                                    metrics.dead.with_label_values(&[name]).inc();
                                    tracing::error!(
                                        queue = name,
                                        id = %String::from_utf8_lossy(&key),
                                        reason = why,
                                        "the control plane refused a report; kept as a dead letter"
                                    );
                                })
                            }
                        };
                        if let Err(err) = done {
                            tracing::error!(queue = name, error = %err, "cannot update an outbox");
                            stuck = Some(err.to_string());
                            break;
                        }
                    }
                    if stuck.is_some() {
                        observe(&queue, &metrics, &readiness, &publisher, stuck.as_deref());
                        tokio::select! {
                            () = tokio::time::sleep(publisher.retry_max) => {}
                            () = shutdown.clone().wait() => return,
                        }
                    }
                }
                Attempt::Retry(why) => {
                    metrics.failures.with_label_values(&[name]).inc();
                    tracing::warn!(
                        queue = name,
                        reports = keys.len(),
                        reason = why,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "handing reports to the control plane failed; will retry"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.clone().wait() => return,
                    }
                    pause = (pause * 2).min(publisher.retry_max);
                }
                Attempt::TooLarge | Attempt::Unreadable => {
                    metrics.failures.with_label_values(&[name]).inc();
                    tracing::error!(
                        queue = name,
                        "a one-item attempt must answer verdicts or a retry"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(publisher.retry_max) => {}
                        () = shutdown.clone().wait() => return,
                    }
                }
            }
        }
    });
}

/// The `error.code` of a JSON error body, if it has one.
pub(crate) fn error_code(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}

/// What a single-item answer means: recorded on success; refused for good
/// on a 4xx that retrying cannot change (not 401, 403, 408 or 429, which a
/// fixed key, a restarted control plane or time can); else a retry.
pub(crate) async fn single_verdict(response: Result<reqwest::Response, reqwest::Error>) -> Attempt {
    use reqwest::StatusCode;
    let answer = match response {
        Ok(answer) => answer,
        Err(err) => return Attempt::Retry(err.to_string()),
    };
    let status = answer.status();
    if status.is_success() {
        return Attempt::Verdicts(vec![Verdict::Recorded]);
    }
    let body = answer.text().await.unwrap_or_default();
    let transient = [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::REQUEST_TIMEOUT,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    if status.is_client_error() && !transient.contains(&status) {
        Attempt::Verdicts(vec![Verdict::Refused(format!("HTTP {status}: {body}"))])
    } else {
        Attempt::Retry(format!("HTTP {status}: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_json_error_bodies_only() {
        assert_eq!(
            error_code(r#"{"error":{"code":"batch_size","message":"x"}}"#).as_deref(),
            Some("batch_size")
        );
        assert_eq!(error_code("Bad Request"), None);
        assert_eq!(error_code(r#"{"error":"x"}"#), None);
    }
}
