//! The ledger's data types (accounts, transfers, balance limits, audit)
//! and the checks every write goes through ([`Limits`]). Of its siblings
//! it imports only `error`, so `store` and `group` can use it without an
//! import circle through `ledger/mod.rs`.

use serde::{Deserialize, Serialize};

use super::error::LedgerError;
use crate::config::ControlPlaneConfig;

/// Page size of a list that names no `limit`, clamped to the configured max.
pub const PAGE_SIZE_DEFAULT: u32 = 100;

/// Longest currency code: ISO 4217 codes have 3 letters, internal units
/// (course credits, seats) get a little more room.
pub const CURRENCY_BYTES_MAX: usize = 16;

/// Which side of an account may not outgrow the other, TigerBeetle style:
/// a credit-normal account (what we owe a tenant) may not have more debits
/// than credits, a debit-normal one (cash we hold) the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BalanceLimit {
    /// Any balance, negative included (a funding source, revenue).
    #[default]
    None,
    /// Pending plus posted debits may not exceed posted credits: the
    /// account's credit balance never goes negative.
    DebitsMustNotExceedCredits,
    /// Pending plus posted credits may not exceed posted debits.
    CreditsMustNotExceedDebits,
}

impl BalanceLimit {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
            Self::CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, LedgerError> {
        [
            Self::None,
            Self::DebitsMustNotExceedCredits,
            Self::CreditsMustNotExceedDebits,
        ]
        .into_iter()
        .find(|limit| limit.as_str() == text)
        .ok_or_else(|| LedgerError::Corrupt(format!("balance limit {text:?}")))
    }
}

/// An account as stored, with its running totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// Server-chosen id.
    pub id: String,
    /// Client-chosen code, unique within the tenant (`tenant:credits`).
    pub code: String,
    /// Currency of every amount on the account.
    pub currency: String,
    /// Which side may not outgrow the other.
    pub balance_limit: BalanceLimit,
    /// Debits reserved by open pending transfers.
    pub debits_pending: i64,
    /// Debits of posted transfers.
    pub debits_posted: i64,
    /// Credits reserved by open pending transfers.
    pub credits_pending: i64,
    /// Credits of posted transfers.
    pub credits_posted: i64,
    /// Free-form JSON the client attached.
    pub metadata: serde_json::Value,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Body of an account creation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Unique within the tenant; same character set as transfer ids.
    pub code: String,
    /// 1 to 16 of A-Z, 0-9 and `_` (`EUR`, `CREDITS`).
    pub currency: String,
    /// Defaults to [`BalanceLimit::None`].
    #[serde(default)]
    pub balance_limit: BalanceLimit,
    /// Free-form JSON, at most `ledger_metadata_bytes_max` serialised.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// What a journal row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Moves the amount at once.
    Posted,
    /// Reserves the amount until posted, voided or expired.
    Pending,
    /// Posts (part of) a pending transfer.
    PostPending,
    /// Releases a pending transfer.
    VoidPending,
    /// Releases a pending transfer whose timeout passed.
    ExpirePending,
}

impl TransferKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Pending => "pending",
            Self::PostPending => "post_pending",
            Self::VoidPending => "void_pending",
            Self::ExpirePending => "expire_pending",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, LedgerError> {
        [
            Self::Posted,
            Self::Pending,
            Self::PostPending,
            Self::VoidPending,
            Self::ExpirePending,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
        .ok_or_else(|| LedgerError::Corrupt(format!("transfer kind {text:?}")))
    }
}

/// A journal row as stored; never changes once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transfer {
    /// Client-chosen id, the idempotency key.
    pub id: String,
    /// What the row does.
    pub kind: TransferKind,
    /// Account whose debits grow.
    pub debit_account_id: String,
    /// Account whose credits grow.
    pub credit_account_id: String,
    /// Minor units, always positive.
    pub amount: i64,
    /// Currency of both accounts.
    pub currency: String,
    /// The pending transfer a post, void or expiry closes.
    pub pending_id: Option<String>,
    /// Timeout a pending transfer was created with.
    pub timeout_ms: Option<i64>,
    /// When a pending transfer expires, unix milliseconds.
    pub expires_at: Option<i64>,
    /// Free-form JSON the client attached.
    pub metadata: serde_json::Value,
    /// Unix milliseconds, from the clock passed in.
    pub created_at: i64,
}

/// Body of a transfer creation (alone or in a batch).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// Client-chosen idempotency key: 1 to `ledger_id_bytes_max` bytes of
    /// A-Z, a-z, 0-9 and `._:-` (no `/`: ids appear in URL paths).
    pub id: String,
    /// Account whose debits grow.
    pub debit_account_id: String,
    /// Account whose credits grow.
    pub credit_account_id: String,
    /// Minor units, positive.
    pub amount: i64,
    /// Must be the currency of both accounts.
    pub currency: String,
    /// Reserve now, post or void later.
    #[serde(default)]
    pub pending: bool,
    /// Only with `pending`: expire after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Free-form JSON, at most `ledger_metadata_bytes_max` serialised.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// Body of a post or void of a pending transfer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// Id of the closing transfer; defaults to `<pending id>.post` or
    /// `<pending id>.void`, so a retried post is idempotent without one.
    #[serde(default)]
    pub id: Option<String>,
    /// Post only: amount to post, at most the pending amount (the rest is
    /// released); defaults to all of it.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Free-form JSON.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// A transfer and whether this call wrote it (false: an earlier call with
/// the same id and body did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recorded {
    /// The stored transfer.
    pub transfer: Transfer,
    /// True when this call created it.
    pub created: bool,
}

/// The ledger's limits, taken from the control plane's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `control_plane.ledger_batch_transfers_max`.
    pub batch_transfers_max: u32,
    /// `control_plane.ledger_page_size_max`.
    pub page_size_max: u32,
    /// `control_plane.ledger_metadata_bytes_max`.
    pub metadata_bytes_max: u32,
    /// `control_plane.ledger_id_bytes_max`.
    pub id_bytes_max: u32,
    /// `control_plane.ledger_pending_timeout_ms_max`.
    pub pending_timeout_ms_max: u64,
}

impl Limits {
    /// The limits a validated configuration sets.
    pub fn from_config(config: &ControlPlaneConfig) -> Self {
        Self {
            batch_transfers_max: config.ledger_batch_transfers_max,
            page_size_max: config.ledger_page_size_max,
            metadata_bytes_max: config.ledger_metadata_bytes_max,
            id_bytes_max: config.ledger_id_bytes_max,
            pending_timeout_ms_max: config.ledger_pending_timeout_ms_max,
        }
    }

    /// The page size to use for a requested `limit`.
    ///
    /// # Errors
    /// [`LedgerError::Invalid`] for 0 or more than `page_size_max`.
    pub fn page_size(&self, requested: Option<u32>) -> Result<u32, LedgerError> {
        match requested {
            None => Ok(PAGE_SIZE_DEFAULT.min(self.page_size_max)),
            Some(n) if n >= 1 && n <= self.page_size_max => Ok(n),
            Some(n) => Err(LedgerError::Invalid(format!(
                "limit {n} must be 1 to {} (control_plane.ledger_page_size_max)",
                self.page_size_max
            ))),
        }
    }

    pub(super) fn check_id(&self, what: &str, id: &str) -> Result<(), LedgerError> {
        let max = usize::try_from(self.id_bytes_max).unwrap_or(usize::MAX);
        let ok = !id.is_empty()
            && id.len() <= max
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(LedgerError::Invalid(format!(
                "{what} {id:?} must be 1 to {max} bytes of A-Z, a-z, 0-9 and ._:- \
                 (control_plane.ledger_id_bytes_max)"
            )))
        }
    }

    pub(super) fn metadata(
        &self,
        metadata: Option<&serde_json::Value>,
    ) -> Result<String, LedgerError> {
        let text = match metadata {
            None => "{}".to_owned(),
            Some(value) => serde_json::to_string(value)
                .map_err(|err| LedgerError::Invalid(format!("metadata: {err}")))?,
        };
        let max = usize::try_from(self.metadata_bytes_max).unwrap_or(usize::MAX);
        if text.len() > max {
            return Err(LedgerError::Invalid(format!(
                "metadata is {} bytes, more than {max} (control_plane.ledger_metadata_bytes_max)",
                text.len()
            )));
        }
        Ok(text)
    }

    pub(super) fn check_new_account(&self, account: &NewAccount) -> Result<String, LedgerError> {
        self.check_id("code", &account.code)?;
        check_currency(&account.currency)?;
        self.metadata(account.metadata.as_ref())
    }

    pub(super) fn check_new_transfer(&self, transfer: &NewTransfer) -> Result<String, LedgerError> {
        self.check_id("id", &transfer.id)?;
        if transfer.amount <= 0 {
            return Err(LedgerError::Invalid(format!(
                "amount {} must be a positive number of minor units",
                transfer.amount
            )));
        }
        check_currency(&transfer.currency)?;
        if transfer.debit_account_id == transfer.credit_account_id {
            return Err(LedgerError::Invalid(
                "debit_account_id and credit_account_id must differ".into(),
            ));
        }
        for account in [&transfer.debit_account_id, &transfer.credit_account_id] {
            if account.is_empty() || account.len() > 64 {
                return Err(LedgerError::AccountNotFound(
                    account.chars().take(64).collect(),
                ));
            }
        }
        match transfer.timeout_ms {
            None => {}
            Some(_) if !transfer.pending => {
                return Err(LedgerError::Invalid(
                    "timeout_ms is only for pending transfers".into(),
                ))
            }
            Some(ms)
                if ms < 1
                    || u64::try_from(ms).unwrap_or(u64::MAX) > self.pending_timeout_ms_max =>
            {
                return Err(LedgerError::Invalid(format!(
                    "timeout_ms {ms} must be 1 to {} (control_plane.ledger_pending_timeout_ms_max)",
                    self.pending_timeout_ms_max
                )))
            }
            Some(_) => {}
        }
        self.metadata(transfer.metadata.as_ref())
    }
}

pub(super) fn check_currency(currency: &str) -> Result<(), LedgerError> {
    let ok = !currency.is_empty()
        && currency.len() <= CURRENCY_BYTES_MAX
        && currency
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid(format!(
            "currency {currency:?} must be 1 to {CURRENCY_BYTES_MAX} of A-Z, 0-9 and _"
        )))
    }
}

/// What `audit` finds: stored balances against a replay of the journal,
/// and the per-currency sums that double entry keeps at zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Audit {
    /// Accounts of the tenant.
    pub accounts: usize,
    /// Journal rows of the tenant.
    pub transfers: usize,
    /// Accounts whose stored totals differ from the replay:
    /// `(id, stored, replayed)` as `[debits_pending, debits_posted,
    /// credits_pending, credits_posted]`; an account the journal names
    /// but the tenant does not have shows with stored totals of zero.
    pub mismatches: Vec<(String, [i64; 4], [i64; 4])>,
    /// Per currency, `(sum of debits - credits posted, same for pending)`;
    /// both are zero in a sound ledger.
    pub imbalances: Vec<(String, i128, i128)>,
    /// Accounts past their balance limit (by id).
    pub over_limit: Vec<String>,
}

impl Audit {
    /// True when stored balances equal the replay, every currency sums to
    /// zero and no account is past its limit.
    pub fn is_sound(&self) -> bool {
        self.mismatches.is_empty()
            && self.imbalances.iter().all(|(_, p, q)| *p == 0 && *q == 0)
            && self.over_limit.is_empty()
    }
}

/// True when `account`'s totals respect its limit.
pub fn within_limit(account: &Account) -> bool {
    match account.balance_limit {
        BalanceLimit::None => true,
        BalanceLimit::DebitsMustNotExceedCredits => {
            i128::from(account.debits_pending) + i128::from(account.debits_posted)
                <= i128::from(account.credits_posted)
        }
        BalanceLimit::CreditsMustNotExceedDebits => {
            i128::from(account.credits_pending) + i128::from(account.credits_posted)
                <= i128::from(account.debits_posted)
        }
    }
}
