//! Publishing the edge's outbox: submission reports go to the control
//! plane's `POST /api/v1/submissions/batch`, oldest first, up to
//! `edge.outbox_batch_max` at a time, so a backlog left by an outage drains
//! in a few round trips even to a distant control plane. A report leaves
//! the outbox only once the control plane has answered `created` or
//! `existing` for it, so a lost answer means a retry, which the control
//! plane recognises by the report's id: at-least-once delivery,
//! exactly-once recording. A report refused for good (`refused` in a
//! batch, 400 or 409 alone) becomes a dead letter; anything else (network,
//! 401, 5xx) is retried with a doubling pause up to
//! `edge.outbox_retry_max_ms`.
//!
//! A whole batch the control plane will not read (400 other than
//! `batch_size`, e.g. one report it cannot parse; or 404 from a control
//! plane older than the batch route) is sent again one report at a time
//! through `POST /api/v1/submissions`, so one bad report costs itself and
//! never blocks the rest. A batch too large for the control
//! plane (400 `batch_size`, 413) is halved.
//!
//! The publisher keeps the `outbox` readiness check: red while the outbox
//! is full (new runs are refused) or a refused report cannot become a
//! dead letter because the dead letters are full.

use std::sync::Arc;
use std::time::Duration;

use control_plane::submissions::SubmissionReport;
use prometheus::{IntCounter, IntGauge, Registry};
use serde::Deserialize;

use crate::readiness::Readiness;
use crate::run_store::{OutboxError, Queued, RunStore};
use crate::shutdown::Shutdown;

/// First pause after a failed report.
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The readiness check the publisher keeps.
pub const READINESS_CHECK: &str = "outbox";

/// The publisher's settings.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The control plane's base URL.
    pub control_plane_url: String,
    /// Its `edge_service_key`; empty keeps reports queued.
    pub service_key: String,
    /// Most reports in one batch (`edge.outbox_batch_max`).
    pub batch_max: usize,
    /// Longest pause between retries (`edge.outbox_retry_max_ms`).
    pub retry_max: Duration,
}

/// The publisher's metrics.
#[derive(Clone)]
struct OutboxMetrics {
    pending: IntGauge,
    pending_max: IntGauge,
    dead_letters: IntGauge,
    published: IntCounter,
    dead: IntCounter,
    failures: IntCounter,
    batches: IntCounter,
}

impl OutboxMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            pending: IntGauge::new(
                "edge_outbox_pending_reports",
                "Submission reports waiting for the control plane",
            )?,
            pending_max: IntGauge::new(
                "edge_outbox_capacity_reports",
                "Reports the outbox may hold before new runs are refused (edge.outbox_events_max)",
            )?,
            dead_letters: IntGauge::new(
                "edge_outbox_dead_letters_reports",
                "Reports the control plane refused for good, kept for an operator",
            )?,
            published: IntCounter::new(
                "edge_outbox_published_total",
                "Submission reports the control plane recorded",
            )?,
            dead: IntCounter::new(
                "edge_outbox_dead_lettered_total",
                "Submission reports the control plane refused for good",
            )?,
            failures: IntCounter::new(
                "edge_outbox_failures_total",
                "Failed attempts to hand reports to the control plane (retried)",
            )?,
            batches: IntCounter::new(
                "edge_outbox_batches_total",
                "Batches of reports sent to the control plane",
            )?,
        };
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.pending_max.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.published.clone()))?;
        registry.register(Box::new(metrics.dead.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.batches.clone()))?;
        Ok(metrics)
    }
}

/// The control plane's verdict on one report.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Recorded now or before: it leaves the outbox.
    Recorded,
    /// Refused for good, with the reason: a dead letter.
    Refused(String),
}

/// What one request came to.
#[derive(Debug)]
enum Attempt {
    /// A verdict for each report sent, in order.
    Verdicts(Vec<Verdict>),
    /// The batch was too large for the control plane: send fewer.
    TooLarge,
    /// The control plane would not read the batch as a whole: send the
    /// reports one at a time.
    Unreadable,
    /// Nothing was decided; try again after a pause.
    Retry(String),
}

/// One item of the batch route's answer.
#[derive(Debug, Deserialize)]
struct BatchResult {
    submission_id: String,
    outcome: String,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The batch route's answer.
#[derive(Debug, Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// The `error.code` of a JSON error body, if it has one.
fn error_code(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}

async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    reports: &[&SubmissionReport],
) -> Attempt {
    let answer = match client
        .post(url)
        .bearer_auth(key)
        .json(&serde_json::json!({ "submissions": reports }))
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(err) => return Attempt::Retry(err.to_string()),
    };
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        return Attempt::TooLarge;
    }
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
    {
        // A control plane from before the batch route (a rolling upgrade).
        return Attempt::Unreadable;
    }
    if status == reqwest::StatusCode::BAD_REQUEST {
        return if error_code(&body).as_deref() == Some("batch_size") {
            Attempt::TooLarge
        } else {
            Attempt::Unreadable
        };
    }
    if !status.is_success() {
        return Attempt::Retry(format!("HTTP {status}: {body}"));
    }
    let parsed: BatchAnswer = match serde_json::from_str(&body) {
        Ok(parsed) => parsed,
        Err(err) => return Attempt::Retry(format!("unreadable batch answer: {err}")),
    };
    if parsed.results.len() != reports.len()
        || parsed
            .results
            .iter()
            .zip(reports)
            .any(|(result, report)| result.submission_id != report.submission_id)
    {
        return Attempt::Retry(format!(
            "the batch answer does not match the {} reports sent",
            reports.len()
        ));
    }
    let verdicts = parsed
        .results
        .into_iter()
        .map(|result| match result.outcome.as_str() {
            "created" | "existing" => Ok(Verdict::Recorded),
            "refused" => Ok(Verdict::Refused(
                result.error.map(|e| e.to_string()).unwrap_or_default(),
            )),
            other => Err(format!("unknown batch outcome {other:?}")),
        })
        .collect::<Result<Vec<_>, _>>();
    match verdicts {
        Ok(verdicts) => Attempt::Verdicts(verdicts),
        Err(why) => Attempt::Retry(why),
    }
}

async fn send_one(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    report: &SubmissionReport,
) -> Attempt {
    match client.post(url).bearer_auth(key).json(report).send().await {
        Ok(answer) => {
            let status = answer.status();
            if status.is_success() {
                Attempt::Verdicts(vec![Verdict::Recorded])
            } else if status == reqwest::StatusCode::BAD_REQUEST
                || status == reqwest::StatusCode::CONFLICT
            {
                let body = answer.text().await.unwrap_or_default();
                Attempt::Verdicts(vec![Verdict::Refused(format!("HTTP {status}: {body}"))])
            } else {
                Attempt::Retry(format!("HTTP {status}"))
            }
        }
        Err(err) => Attempt::Retry(err.to_string()),
    }
}

/// Keeps the pending gauges and the readiness check in step with the store.
fn observe(store: &RunStore, metrics: &OutboxMetrics, readiness: &Readiness, stuck: Option<&str>) {
    let pending = store.outbox_len();
    let limits = store.limits();
    metrics
        .pending
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
    metrics
        .dead_letters
        .set(i64::try_from(store.dead_letters_len()).unwrap_or(i64::MAX));
    let outcome = if let Some(stuck) = stuck {
        Err(stuck.to_owned())
    } else if store.outbox_full() {
        Err(format!(
            "{pending} submission reports wait for the control plane, the most \
             edge.outbox_events_max ({}) allows; new runs are refused",
            limits.outbox_max
        ))
    } else {
        Ok(())
    };
    readiness.set(READINESS_CHECK, outcome);
}

/// Starts the publisher; it runs until `shutdown`. With no service key it
/// only keeps the gauges and readiness (reports stay in the outbox).
///
/// # Errors
/// When the metrics cannot be registered.
pub fn start(
    store: Arc<RunStore>,
    client: reqwest::Client,
    publisher: Publisher,
    registry: &Registry,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(), prometheus::Error> {
    assert!(
        publisher.batch_max > 0,
        "validated: edge.outbox_batch_max >= 1"
    );
    let metrics = OutboxMetrics::register(registry)?;
    metrics
        .pending_max
        .set(i64::try_from(store.limits().outbox_max).unwrap_or(i64::MAX));
    readiness.register(READINESS_CHECK);
    let base = publisher.control_plane_url.trim_end_matches('/').to_owned();
    let batch_url = format!("{base}/api/v1/submissions/batch");
    let one_url = format!("{base}/api/v1/submissions");
    let key = publisher.service_key.clone();
    if key.is_empty() {
        tracing::warn!(
            "edge.control_plane_service_key is empty: submission reports stay in the outbox"
        );
    }
    tokio::spawn(async move {
        let mut pause = RETRY_MIN;
        let mut batch_max = publisher.batch_max;
        // Set while a refused report cannot become a dead letter.
        let mut stuck: Option<String> = None;
        loop {
            observe(&store, &metrics, &readiness, stuck.as_deref());
            let queued = if key.is_empty() {
                Vec::new()
            } else {
                match store.oldest(batch_max) {
                    Ok(queued) => queued,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the outbox");
                        Vec::new()
                    }
                }
            };
            if queued.is_empty() {
                tokio::select! {
                    () = store.event_added() => continue,
                    () = tokio::time::sleep(publisher.retry_max), if stuck.is_some() => continue,
                    () = shutdown.clone().wait() => return,
                }
            }
            let now = crate::edge::now_rfc3339();
            let mut keys = Vec::with_capacity(queued.len());
            let mut reports = Vec::with_capacity(queued.len());
            let mut corrupt = None;
            for entry in &queued {
                match entry {
                    Queued::Report(key, report) => {
                        keys.push(key.clone());
                        reports.push(report.as_ref());
                    }
                    Queued::Corrupt(key, why) => {
                        // Send what comes before it; it is dealt with when
                        // it reaches the front.
                        if keys.is_empty() {
                            corrupt = Some((key.clone(), why.clone()));
                        }
                        break;
                    }
                }
            }
            let outcome = if let Some((key, why)) = corrupt {
                tracing::error!(
                    reason = why,
                    "undecodable outbox entry; kept as a dead letter"
                );
                (Attempt::Verdicts(vec![Verdict::Refused(why)]), vec![key])
            } else {
                metrics.batches.inc();
                let attempt = tokio::select! {
                    attempt = send_batch(&client, &batch_url, &key, &reports) => attempt,
                    () = shutdown.clone().wait() => return,
                };
                match attempt {
                    Attempt::TooLarge if batch_max > 1 => {
                        batch_max = (batch_max / 2).max(1);
                        tracing::warn!(batch_max, "the control plane wants smaller batches");
                        continue;
                    }
                    Attempt::Unreadable | Attempt::TooLarge => {
                        let report = reports[0];
                        let attempt = tokio::select! {
                            attempt = send_one(&client, &one_url, &key, report) => attempt,
                            () = shutdown.clone().wait() => return,
                        };
                        (attempt, vec![keys[0].clone()])
                    }
                    other => (other, keys),
                }
            };
            match outcome {
                (Attempt::Verdicts(verdicts), keys) => {
                    pause = RETRY_MIN;
                    stuck = None;
                    for (verdict, key) in verdicts.into_iter().zip(keys) {
                        let done = match verdict {
                            Verdict::Recorded => {
                                metrics.published.inc();
                                store.remove_event(&key).map_err(OutboxError::from)
                            }
                            Verdict::Refused(why) => {
                                let id = String::from_utf8_lossy(&key).into_owned();
                                match store.dead_letter(&key, &why, &now) {
                                    Ok(()) => {
                                        metrics.dead.inc();
                                        tracing::error!(
                                            submission_id = id,
                                            reason = why,
                                            "the control plane refused a submission report; kept as a dead letter"
                                        );
                                        Ok(())
                                    }
                                    Err(err) => Err(err),
                                }
                            }
                        };
                        if let Err(err) = done {
                            tracing::error!(error = %err, "cannot update the outbox");
                            stuck = Some(err.to_string());
                            break;
                        }
                    }
                    if stuck.is_some() {
                        observe(&store, &metrics, &readiness, stuck.as_deref());
                        tokio::select! {
                            () = tokio::time::sleep(publisher.retry_max) => {}
                            () = shutdown.clone().wait() => return,
                        }
                    }
                }
                (Attempt::Retry(why), _) => {
                    metrics.failures.inc();
                    tracing::warn!(
                        reports = reports.len(),
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
                (Attempt::TooLarge | Attempt::Unreadable, _) => {
                    unreachable!("a one-report attempt answers verdicts or a retry")
                }
            }
        }
    });
    Ok(())
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
