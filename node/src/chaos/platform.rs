//! What the platform holds, read for the probes during the drill and for the
//! checker after it: each process's `/readyz`, and the submission records
//! at the control plane of the workload's learners.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chaos::checker::ProcessReady;
use serde_json::Value;

use super::record::Learner;

/// Submissions asked for per page (the control plane's default page
/// maximum is larger; a page this size keeps each answer small).
const SUBMISSIONS_PAGE: u32 = 100;

/// Times the checker asks the control plane again when a read fails (it
/// may still be starting after a fault), a second apart.
const READ_ATTEMPTS: u32 = 30;

/// A process whose readiness is probed.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// `control-plane` or `edge-<region>`.
    pub(super) name: String,
    /// Its base URL.
    pub(super) url: String,
}

/// One readiness probe of every process: which answered 200 in time.
pub(super) async fn readiness(
    http: &reqwest::Client,
    targets: &[Target],
    timeout: Duration,
) -> Vec<bool> {
    let probes = targets.iter().map(|target| {
        let request = http
            .get(format!("{}/readyz", target.url.trim_end_matches('/')))
            .timeout(timeout)
            .send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    });
    futures_util::future::join_all(probes).await
}

/// Every readiness sample of every process, to find when each was ready
/// again after the last heal.
#[derive(Debug, Default)]
pub(super) struct ReadinessLog {
    /// Per process, (at_ms, ready) in time order.
    samples: BTreeMap<String, Vec<(u64, bool)>>,
}

impl ReadinessLog {
    pub(super) fn record(&mut self, targets: &[Target], at_ms: u64, ready: &[bool]) {
        for (target, ready) in targets.iter().zip(ready) {
            self.samples
                .entry(target.name.clone())
                .or_default()
                .push((at_ms, *ready));
        }
    }

    /// For each process, the first sample at or after `healed_at_ms` from
    /// which it answered ready in every later sample.
    pub(super) fn ready_again(&self, targets: &[Target], healed_at_ms: u64) -> Vec<ProcessReady> {
        targets
            .iter()
            .map(|target| {
                let samples = self
                    .samples
                    .get(&target.name)
                    .map_or(&[][..], Vec::as_slice);
                let mut ready_at = None;
                for (at, ready) in samples.iter().filter(|(at, _)| *at >= healed_at_ms) {
                    match (ready, ready_at) {
                        (true, None) => ready_at = Some(*at),
                        (false, _) => ready_at = None,
                        (true, Some(_)) => {}
                    }
                }
                ProcessReady {
                    process: target.name.clone(),
                    ready_at_ms: ready_at,
                }
            })
            .collect()
    }
}

/// How many submission records the control plane holds per run id, over
/// the workload's learners.
pub(super) async fn submissions(
    http: &reqwest::Client,
    cp: &str,
    operator: &str,
    learners: &[Learner],
) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut recorded = BTreeMap::new();
    for learner in learners {
        let mut after: Option<String> = None;
        loop {
            let mut url = format!(
                "{cp}/api/v1/submissions?limit={SUBMISSIONS_PAGE}&user_id={}",
                learner.user_id
            );
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let page = read(http, &url, operator).await?;
            let items = page["items"]
                .as_array()
                .with_context(|| format!("GET {url}: no items in {page}"))?;
            for item in items {
                let id = item["id"]
                    .as_str()
                    .with_context(|| format!("GET {url}: a submission without an id"))?;
                *recorded.entry(id.to_owned()).or_insert(0) += 1;
            }
            match page["next_after"].as_str() {
                Some(next) if !items.is_empty() => after = Some(next.to_owned()),
                _ => break,
            }
        }
    }
    Ok(recorded)
}

/// A GET that tries again for a while: the control plane may have been
/// the fault.
pub(super) async fn read(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let mut last = String::new();
    for attempt in 0..READ_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match http.get(url).bearer_auth(token).send().await {
            Ok(response) if response.status().is_success() => {
                return response
                    .json()
                    .await
                    .with_context(|| format!("GET {url}: not JSON"));
            }
            Ok(response) => {
                let status = response.status();
                last = format!("{status} {}", response.text().await.unwrap_or_default());
                if status.is_client_error() {
                    break;
                }
            }
            Err(err) => last = err.to_string(),
        }
    }
    bail!("GET {url}: {last}")
}
