//! The ledger part of a drill's workload: transfers between the drill's own
//! accounts at the drill's rate, and what the ledger holds afterwards. The
//! workload makes fresh accounts (so balances before are known and nothing
//! else moves them), sends each transfer with its own id (the ledger is
//! idempotent by id), and sorts the answers for the checker: accepted (201,
//! or 200 for an id already recorded), unanswered (no answer, or a 5xx:
//! either outcome is allowed, and the journal says which), or refused (a
//! 4xx: counted as failed; should the journal hold it anyway, the checker
//! reports `transfer_unexpected`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use chaos::checker::{Balance, Ledger, Transfer};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::record::{open_loop, Observed, REQUEST_TIMEOUT};

/// Where the ledger workload sends, and as whom.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) http: reqwest::Client,
    pub(super) cp: String,
    pub(super) operator: String,
}

/// Accounts the workload moves money between.
pub(super) const ACCOUNTS: usize = 4;

/// The currency of the drill's accounts.
const CURRENCY: &str = "CREDITS";

/// Journal rows asked for per page when reading it back.
const PAGE: u32 = 100;

/// The drill's accounts, by id.
pub(super) struct Accounts {
    ids: Vec<String>,
    tag: String,
}

/// Makes the drill's accounts, as the operator.
pub(super) async fn prepare(
    http: &reqwest::Client,
    cp: &str,
    operator: &str,
) -> anyhow::Result<Accounts> {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let tag = tag[tag.len() - 8..].to_owned();
    let mut ids = Vec::with_capacity(ACCOUNTS);
    for i in 0..ACCOUNTS {
        let response = http
            .post(format!("{cp}/api/v1/ledger/accounts"))
            .bearer_auth(operator)
            .json(&json!({"code": format!("drill-{tag}-{i}"), "currency": CURRENCY}))
            .send()
            .await
            .context("create a ledger account")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("create a ledger account: {status} {body}");
        }
        ids.push(
            body["id"]
                .as_str()
                .context("a ledger account without an id")?
                .to_owned(),
        );
    }
    Ok(Accounts { ids, tag })
}

/// Sends transfers at `rate` a second until told to stop.
pub(super) async fn generate(
    target: Target,
    accounts: Arc<Accounts>,
    rate: f64,
    observed: Arc<Observed>,
    stopped: watch::Receiver<bool>,
) {
    open_loop(rate, observed.clone(), stopped, |n| {
        let ids = &accounts.ids;
        let transfer = Transfer {
            id: format!("drill-{}-t{n}", accounts.tag),
            debit: ids[n % ids.len()].clone(),
            credit: ids[(n + 1) % ids.len()].clone(),
            amount: 1 + i64::try_from(n % 7).unwrap_or(0),
        };
        let (target, observed) = (target.clone(), observed.clone());
        async move { send(&target, transfer, &observed).await }
    })
    .await;
}

async fn send(target: &Target, transfer: Transfer, observed: &Observed) {
    let sent = &observed.transfers;
    let answer = target
        .http
        .post(format!("{}/api/v1/ledger/transfers", target.cp))
        .bearer_auth(&target.operator)
        .timeout(REQUEST_TIMEOUT)
        .json(&json!({
            "id": transfer.id,
            "debit_account_id": transfer.debit,
            "credit_account_id": transfer.credit,
            "amount": transfer.amount,
            "currency": CURRENCY,
        }))
        .send()
        .await;
    let (list, failure) = match answer {
        Ok(response) if response.status().is_success() => (&sent.accepted, None),
        Ok(response) if response.status().is_server_error() => (
            &sent.unanswered,
            Some(format!("ledger transfer: {}", response.status())),
        ),
        Ok(response) => {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or("no code")
                .to_owned();
            observed.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = observed.last_failure.lock() {
                *last = Some(format!("ledger transfer: {status} {code}"));
            }
            return;
        }
        Err(err) => (&sent.unanswered, Some(format!("ledger transfer: {err}"))),
    };
    match failure {
        None => observed.ok.fetch_add(1, Ordering::Relaxed),
        Some(why) => {
            if let Ok(mut last) = observed.last_failure.lock() {
                *last = Some(why);
            }
            observed.failed.fetch_add(1, Ordering::Relaxed)
        }
    };
    if let Ok(mut list) = list.lock() {
        list.push(transfer);
    }
}

/// The balances of the drill's accounts now.
pub(super) async fn balances(
    http: &reqwest::Client,
    cp: &str,
    operator: &str,
    accounts: &Accounts,
) -> anyhow::Result<BTreeMap<String, Balance>> {
    let mut out = BTreeMap::new();
    for id in &accounts.ids {
        let account =
            super::platform::read(http, &format!("{cp}/api/v1/ledger/accounts/{id}"), operator)
                .await?;
        let side = |key: &str| i128::from(account[key].as_i64().unwrap_or(0));
        out.insert(
            id.clone(),
            Balance {
                debits_posted: side("debits_posted"),
                credits_posted: side("credits_posted"),
            },
        );
    }
    Ok(out)
}

/// The ledger as the checker needs it: balances, the journal's transfers on
/// the drill's accounts, and the audit.
pub(super) async fn read_back(
    http: &reqwest::Client,
    cp: &str,
    operator: &str,
    accounts: &Accounts,
    before: BTreeMap<String, Balance>,
) -> anyhow::Result<Ledger> {
    let after = balances(http, cp, operator, accounts).await?;
    let ours: BTreeSet<&str> = accounts.ids.iter().map(String::as_str).collect();
    let mut recorded = BTreeSet::new();
    let mut after_id: Option<String> = None;
    loop {
        let mut url = format!("{cp}/api/v1/ledger/transfers?limit={PAGE}");
        if let Some(after_id) = &after_id {
            url.push_str(&format!("&after={after_id}"));
        }
        let page = super::platform::read(http, &url, operator).await?;
        let items = page["items"]
            .as_array()
            .with_context(|| format!("GET {url}: no items"))?;
        for item in items {
            let on_ours = ["debit_account_id", "credit_account_id"]
                .iter()
                .any(|k| item[*k].as_str().is_some_and(|a| ours.contains(a)));
            if on_ours {
                if let Some(id) = item["id"].as_str() {
                    recorded.insert(id.to_owned());
                }
            }
        }
        match page["next_after"].as_str() {
            Some(next) if !items.is_empty() => after_id = Some(next.to_owned()),
            _ => break,
        }
    }
    let audit = super::platform::read(http, &format!("{cp}/api/v1/ledger/audit"), operator).await?;
    // Mismatches and accounts over their limit are problems as listed; a
    // currency's imbalance row is one only when a sum is not zero.
    let mut audit_problems = Vec::new();
    for key in ["mismatches", "over_limit"] {
        if let Some(list) = audit[key].as_array() {
            audit_problems.extend(list.iter().map(|p| format!("{key}: {p}")));
        }
    }
    if let Some(rows) = audit["imbalances"].as_array() {
        let nonzero = |v: &Value| v.as_i64() != Some(0) && v.as_f64() != Some(0.0);
        audit_problems.extend(
            rows.iter()
                .filter(|row| nonzero(&row[1]) || nonzero(&row[2]))
                .map(|row| format!("imbalances: {row}")),
        );
    }
    Ok(Ledger {
        before,
        after,
        recorded,
        audit_problems,
    })
}
