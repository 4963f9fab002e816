//! The ledger's SQL. Every write is one database transaction that:
//!
//! 1. locks the rows of every account it touches, **in one statement,
//!    ordered by account id** (`SELECT ... ORDER BY id FOR NO KEY UPDATE` on
//!    PostgreSQL; on SQLite the transaction starts with `BEGIN IMMEDIATE`,
//!    which takes the database's single write lock up front, so writers run
//!    one at a time and a read-then-write can never be overtaken);
//! 2. reads, under those locks, whether the transfer ids exist already (the
//!    idempotency check: same body answers the stored row, another body is
//!    a conflict);
//! 3. applies the transfers in order in memory, checking currency, balance
//!    limits and overflow against the locked totals;
//! 4. writes the new totals and appends the journal rows (sorted by id),
//!    then commits.
//!
//! Why this is correct on PostgreSQL at `READ COMMITTED`: two writers that
//! share an account serialise on its row lock, and the second re-reads the
//! totals the first committed (a locking read sees the latest version), so no
//! update is lost and no limit check runs on stale numbers (no overdraft).
//! Why it cannot deadlock: a transaction takes all its account locks at once,
//! in the same global order as everyone else, before it holds any other
//! lock; the only later waits are on unique-index entries of new transfer
//! ids, which are inserted in sorted order too, so no cycle can form. A
//! writer that still loses a race on a new id (two requests with the same
//! id and disjoint accounts) hits the primary key, rolls back, and retries
//! once; the retry finds the stored row. The table constraints (amount > 0,
//! limits as `CHECK`s, one closer per pending transfer, no update or delete
//! of a transfer) are the last line of defence behind the checks here.
//!
//! Cancel safety: every function runs inside one transaction that rolls back
//! when dropped, so cancelling a call (a client going away) writes nothing,
//! or everything if the commit already went through.
//!
//! Every write that posts money (a posted transfer, a pending one posted)
//! also appends its `transfer_posted` events ([`crate::events`]) in the
//! same transaction: one multi-row insert after the journal rows, with
//! nothing to lock, so the hot path pays one statement.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::error::LedgerError;
use super::model::Account;
use super::model::Audit;
use super::model::BalanceLimit;
use super::model::Limits;
use super::model::NewAccount;
use super::model::NewTransfer;
use super::model::Recorded;
use super::model::Resolve;
use super::model::Transfer;
use super::model::TransferKind;
use crate::db::{Db, DbKind};
use crate::events::{self, EventKind, NewEvent};

/// Rows per multi-row `INSERT`/`UPDATE` statement: 12 parameters each stays
/// far below SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 200;

/// How often a write retries after losing a race on a new transfer id.
const RETRIES_AFTER_ID_RACE: u32 = 1;

const ACCOUNT_COLUMNS: &str = "id, code, currency, balance_limit, debits_pending, debits_posted, \
     credits_pending, credits_posted, metadata, created_at";

const TRANSFER_COLUMNS: &str = "id, kind, debit_account_id, credit_account_id, amount, currency, \
     pending_id, timeout_ms, expires_at, metadata, created_at";

/// Starts a write transaction that holds the right locks for this engine.
async fn begin(db: &Db) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match db.kind() {
        DbKind::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await,
        DbKind::Postgres => db.pool().begin().await,
    }
}

fn lock_clause(db: &Db) -> &'static str {
    match db.kind() {
        DbKind::Sqlite => "",
        DbKind::Postgres => " FOR NO KEY UPDATE",
    }
}

/// `$first, $first+1, ...` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_unique_violation(err: &LedgerError) -> bool {
    matches!(err, LedgerError::Database(db) if db
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation()))
}

fn parse_metadata(text: &str) -> Result<serde_json::Value, LedgerError> {
    serde_json::from_str(text).map_err(|err| LedgerError::Corrupt(format!("metadata: {err}")))
}

fn account_from_row(row: &AnyRow) -> Result<Account, LedgerError> {
    let limit: String = row.try_get(3)?;
    let metadata: String = row.try_get(8)?;
    Ok(Account {
        id: row.try_get(0)?,
        code: row.try_get(1)?,
        currency: row.try_get(2)?,
        balance_limit: BalanceLimit::parse(&limit)?,
        debits_pending: row.try_get(4)?,
        debits_posted: row.try_get(5)?,
        credits_pending: row.try_get(6)?,
        credits_posted: row.try_get(7)?,
        metadata: parse_metadata(&metadata)?,
        created_at: row.try_get(9)?,
    })
}

fn transfer_from_row(row: &AnyRow) -> Result<Transfer, LedgerError> {
    let kind: String = row.try_get(1)?;
    let metadata: String = row.try_get(9)?;
    Ok(Transfer {
        id: row.try_get(0)?,
        kind: TransferKind::parse(&kind)?,
        debit_account_id: row.try_get(2)?,
        credit_account_id: row.try_get(3)?,
        amount: row.try_get(4)?,
        currency: row.try_get(5)?,
        pending_id: row.try_get(6)?,
        timeout_ms: row.try_get(7)?,
        expires_at: row.try_get(8)?,
        metadata: parse_metadata(&metadata)?,
        created_at: row.try_get(10)?,
    })
}

/// Creates an account with zero balances.
///
/// # Errors
/// [`LedgerError::Invalid`] for a bad code, currency or metadata;
/// [`LedgerError::AccountCodeTaken`] when the tenant has that code.
pub async fn create_account(
    db: &Db,
    tenant_id: &str,
    account: &NewAccount,
    limits: &Limits,
    now_ms: i64,
) -> Result<Account, LedgerError> {
    let metadata = limits.check_new_account(account)?;
    let id = uuid::Uuid::new_v4().to_string();
    let inserted = sqlx::query(
        "INSERT INTO ledger_accounts (id, tenant_id, code, currency, balance_limit, metadata, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&account.code)
    .bind(&account.currency)
    .bind(account.balance_limit.as_str())
    .bind(&metadata)
    .bind(now_ms)
    .execute(db.pool())
    .await
    .map_err(LedgerError::from);
    match inserted {
        Ok(_) => Ok(Account {
            id,
            code: account.code.clone(),
            currency: account.currency.clone(),
            balance_limit: account.balance_limit,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            metadata: parse_metadata(&metadata)?,
            created_at: now_ms,
        }),
        Err(err) if is_unique_violation(&err) => {
            Err(LedgerError::AccountCodeTaken(account.code.clone()))
        }
        Err(err) => Err(err),
    }
}

/// One account of the tenant.
///
/// # Errors
/// [`LedgerError::AccountNotFound`] when the tenant has no such account.
pub async fn get_account(db: &Db, tenant_id: &str, id: &str) -> Result<Account, LedgerError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| LedgerError::AccountNotFound(id.to_owned()))?;
    account_from_row(&row)
}

/// A page of the tenant's accounts in id order, after the id `after`.
///
/// # Errors
/// Fails on database errors.
pub async fn list_accounts(
    db: &Db,
    tenant_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Account>, LedgerError> {
    let rows = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(account_from_row).collect()
}

/// One transfer of the tenant.
///
/// # Errors
/// [`LedgerError::TransferNotFound`] when the tenant has no such transfer.
pub async fn get_transfer(db: &Db, tenant_id: &str, id: &str) -> Result<Transfer, LedgerError> {
    find_transfer(db.pool(), tenant_id, id)
        .await?
        .ok_or_else(|| LedgerError::TransferNotFound(id.to_owned()))
}

async fn find_transfer<'e, E>(
    executor: E,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Transfer>, LedgerError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(transfer_from_row).transpose()
}

/// A page of the tenant's journal in id order, after the id `after`.
///
/// # Errors
/// Fails on database errors.
pub async fn list_transfers(
    db: &Db,
    tenant_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Transfer>, LedgerError> {
    let rows = sqlx::query(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE tenant_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(transfer_from_row).collect()
}

/// The totals of a locked account, as the write path needs them.
#[derive(Debug, Clone)]
struct Locked {
    currency: String,
    limit: BalanceLimit,
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
    dirty: bool,
}

/// Locks `ids` (deduplicated here) in id order and returns their totals;
/// accounts of other tenants are simply absent.
async fn lock_accounts(
    db: &Db,
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    ids: impl IntoIterator<Item = &str>,
) -> Result<HashMap<String, Locked>, LedgerError> {
    let ids: BTreeSet<&str> = ids.into_iter().collect();
    let rows = match db.kind() {
        DbKind::Postgres => {
            sqlx::query(LOCK_ACCOUNTS_POSTGRES)
                .bind(tenant_id)
                .bind(json_text(&ids)?)
                .fetch_all(&mut **tx)
                .await?
        }
        DbKind::Sqlite => {
            let sql = format!(
                "SELECT id, currency, balance_limit, debits_pending, debits_posted, \
                 credits_pending, credits_posted FROM ledger_accounts \
                 WHERE tenant_id = $1 AND id IN ({}) ORDER BY id{}",
                placeholders(2, ids.len()),
                lock_clause(db)
            );
            let mut query = sqlx::query(&sql).bind(tenant_id);
            for id in &ids {
                query = query.bind(*id);
            }
            query.fetch_all(&mut **tx).await?
        }
    };
    let mut locked = HashMap::with_capacity(rows.len());
    for row in rows {
        let limit: String = row.try_get(2)?;
        locked.insert(
            row.try_get(0)?,
            Locked {
                currency: row.try_get(1)?,
                limit: BalanceLimit::parse(&limit)?,
                debits_pending: row.try_get(3)?,
                debits_posted: row.try_get(4)?,
                credits_pending: row.try_get(5)?,
                credits_posted: row.try_get(6)?,
                dirty: false,
            },
        );
    }
    Ok(locked)
}

/// Writes back the totals of every account changed in memory.
async fn store_accounts(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    accounts: &HashMap<String, Locked>,
) -> Result<(), LedgerError> {
    let mut dirty: Vec<(&String, &Locked)> = accounts.iter().filter(|(_, a)| a.dirty).collect();
    dirty.sort_by(|a, b| a.0.cmp(b.0));
    for chunk in dirty.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(2 + i * 5, 5)))
            .collect();
        // VALUES columns are called column1..5 on both engines.
        let sql = format!(
            "UPDATE ledger_accounts SET debits_pending = v.column2, debits_posted = v.column3, \
             credits_pending = v.column4, credits_posted = v.column5 \
             FROM (VALUES {}) AS v WHERE ledger_accounts.tenant_id = $1 AND ledger_accounts.id = v.column1",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(tenant_id);
        for (id, account) in chunk {
            query = query
                .bind(id.as_str())
                .bind(account.debits_pending)
                .bind(account.debits_posted)
                .bind(account.credits_pending)
                .bind(account.credits_posted);
        }
        let done = query.execute(&mut **tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(LedgerError::Corrupt(format!(
                "updated {} of {} accounts",
                done.rows_affected(),
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// A journal row about to be appended, with its serialised metadata.
struct NewRow {
    transfer: Transfer,
    metadata: String,
}

/// Appends journal rows (sorted by id, see the module docs) and the open
/// holds of the pending ones.
async fn append(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    mut rows: Vec<&NewRow>,
) -> Result<(), LedgerError> {
    rows.sort_by(|a, b| a.transfer.id.cmp(&b.transfer.id));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(1 + i * 12, 12)))
            .collect();
        let sql = format!(
            "INSERT INTO ledger_transfers (tenant_id, {TRANSFER_COLUMNS}) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            let t = &row.transfer;
            query = query
                .bind(tenant_id)
                .bind(t.id.as_str())
                .bind(t.kind.as_str())
                .bind(t.debit_account_id.as_str())
                .bind(t.credit_account_id.as_str())
                .bind(t.amount)
                .bind(t.currency.as_str())
                .bind(t.pending_id.as_deref())
                .bind(t.timeout_ms)
                .bind(t.expires_at)
                .bind(row.metadata.as_str())
                .bind(t.created_at);
        }
        query.execute(&mut **tx).await?;
    }
    let holds: Vec<&Transfer> = rows
        .iter()
        .map(|row| &row.transfer)
        .filter(|t| t.kind == TransferKind::Pending)
        .collect();
    for chunk in holds.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(1 + i * 3, 3)))
            .collect();
        let sql = format!(
            "INSERT INTO ledger_pending (tenant_id, transfer_id, expires_at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for t in chunk {
            query = query.bind(tenant_id).bind(t.id.as_str()).bind(t.expires_at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes what one transaction changed: the totals of every account changed
/// in memory, the journal rows (in id order, see the module docs), the open
/// holds of pending ones and the `transfer_posted` events of posted ones
/// (in `rows`' order, which is the order they were applied in).
async fn write(
    db: &Db,
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    accounts: &HashMap<String, Locked>,
    rows: Vec<&NewRow>,
    now_ms: i64,
) -> Result<(), LedgerError> {
    let posted = posted_events(tenant_id, &rows);
    match db.kind() {
        DbKind::Postgres => write_postgres(tx, tenant_id, accounts, rows, &posted, now_ms).await,
        DbKind::Sqlite => {
            store_accounts(tx, tenant_id, accounts).await?;
            append(tx, tenant_id, rows).await?;
            events::append(tx, &posted, now_ms).await?;
            Ok(())
        }
    }
}

/// Locks the accounts named in `$2`, a JSON array of ids, in id order.
/// One statement whatever the number of accounts, so every batch reuses
/// one prepared statement (and, once PostgreSQL settles on it, one plan).
const LOCK_ACCOUNTS_POSTGRES: &str = "SELECT id, currency, balance_limit, debits_pending, \
     debits_posted, credits_pending, credits_posted FROM ledger_accounts \
     WHERE tenant_id = $1 AND id IN (SELECT json_array_elements_text($2::json)) \
     ORDER BY id FOR NO KEY UPDATE";

/// All the writes of one transaction in one statement of fixed shape: `$2`
/// the new totals, `$3` the journal rows, `$4` the events, each one JSON
/// array, `$5` the events' time. The sub-statements share one snapshot,
/// which is fine: they touch different tables, and the holds' foreign key
/// to the journal is checked at the end of the statement, when the journal
/// rows are in. Answers the number of accounts and journal rows written.
const WRITE_POSTGRES: &str = "WITH totals AS (\
       UPDATE ledger_accounts AS a SET debits_pending = v.debits_pending, \
       debits_posted = v.debits_posted, credits_pending = v.credits_pending, \
       credits_posted = v.credits_posted \
       FROM json_to_recordset($2::json) AS v(id TEXT, debits_pending BIGINT, \
         debits_posted BIGINT, credits_pending BIGINT, credits_posted BIGINT) \
       WHERE a.tenant_id = $1 AND a.id = v.id RETURNING 1), \
     journal AS (\
       INSERT INTO ledger_transfers (tenant_id, id, kind, debit_account_id, \
         credit_account_id, amount, currency, pending_id, timeout_ms, expires_at, metadata, \
         created_at) \
       SELECT $1, r.id, r.kind, r.debit_account_id, r.credit_account_id, r.amount, r.currency, \
         r.pending_id, r.timeout_ms, r.expires_at, r.metadata, r.created_at \
       FROM json_to_recordset($3::json) AS r(id TEXT, kind TEXT, debit_account_id TEXT, \
         credit_account_id TEXT, amount BIGINT, currency TEXT, pending_id TEXT, \
         timeout_ms BIGINT, expires_at BIGINT, metadata TEXT, created_at BIGINT) \
       ORDER BY r.id RETURNING id, kind, expires_at), \
     holds AS (\
       INSERT INTO ledger_pending (tenant_id, transfer_id, expires_at) \
       SELECT $1, j.id, j.expires_at FROM journal AS j WHERE j.kind = 'pending' \
       ORDER BY j.id RETURNING 1), \
     events AS (\
       INSERT INTO domain_events (kind, tenant_id, aggregate_id, payload, created_at) \
       SELECT e.kind, $1, e.aggregate_id, e.payload, $5 \
       FROM json_to_recordset($4::json) AS e(n BIGINT, kind TEXT, aggregate_id TEXT, \
         payload TEXT) \
       ORDER BY e.n RETURNING 1) \
     SELECT (SELECT count(*) FROM totals), (SELECT count(*) FROM journal)";

/// A value as JSON text, to bind as one parameter.
fn json_text(value: &impl serde::Serialize) -> Result<String, LedgerError> {
    serde_json::to_string(value).map_err(|err| LedgerError::Corrupt(format!("to JSON: {err}")))
}

/// [`write`] on PostgreSQL: one round trip, see [`WRITE_POSTGRES`].
async fn write_postgres(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    accounts: &HashMap<String, Locked>,
    rows: Vec<&NewRow>,
    posted: &[NewEvent],
    now_ms: i64,
) -> Result<(), LedgerError> {
    #[derive(serde::Serialize)]
    struct Totals<'a> {
        id: &'a str,
        debits_pending: i64,
        debits_posted: i64,
        credits_pending: i64,
        credits_posted: i64,
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        kind: &'static str,
        debit_account_id: &'a str,
        credit_account_id: &'a str,
        amount: i64,
        currency: &'a str,
        pending_id: Option<&'a str>,
        timeout_ms: Option<i64>,
        expires_at: Option<i64>,
        metadata: &'a str,
        created_at: i64,
    }
    #[derive(serde::Serialize)]
    struct Event<'a> {
        n: usize,
        kind: &'static str,
        aggregate_id: &'a str,
        payload: String,
    }
    let totals: Vec<Totals<'_>> = accounts
        .iter()
        .filter(|(_, a)| a.dirty)
        .map(|(id, a)| Totals {
            id,
            debits_pending: a.debits_pending,
            debits_posted: a.debits_posted,
            credits_pending: a.credits_pending,
            credits_posted: a.credits_posted,
        })
        .collect();
    let journal: Vec<Row<'_>> = rows
        .iter()
        .map(|row| {
            let t = &row.transfer;
            Row {
                id: &t.id,
                kind: t.kind.as_str(),
                debit_account_id: &t.debit_account_id,
                credit_account_id: &t.credit_account_id,
                amount: t.amount,
                currency: &t.currency,
                pending_id: t.pending_id.as_deref(),
                timeout_ms: t.timeout_ms,
                expires_at: t.expires_at,
                metadata: &row.metadata,
                created_at: t.created_at,
            }
        })
        .collect();
    let events: Vec<Event<'_>> = posted
        .iter()
        .enumerate()
        .map(|(n, event)| Event {
            n,
            kind: event.kind.as_str(),
            aggregate_id: &event.aggregate_id,
            payload: event.payload.to_string(),
        })
        .collect();
    let written = sqlx::query(WRITE_POSTGRES)
        .bind(tenant_id)
        .bind(json_text(&totals)?)
        .bind(json_text(&journal)?)
        .bind(json_text(&events)?)
        .bind(now_ms)
        .fetch_one(&mut **tx)
        .await?;
    let (accounts_written, rows_written): (i64, i64) = (written.try_get(0)?, written.try_get(1)?);
    if usize::try_from(accounts_written).ok() != Some(totals.len())
        || usize::try_from(rows_written).ok() != Some(journal.len())
    {
        return Err(LedgerError::Corrupt(format!(
            "wrote {accounts_written} of {} accounts and {rows_written} of {} journal rows",
            totals.len(),
            journal.len()
        )));
    }
    Ok(())
}

/// The `transfer_posted` events of new journal rows that moved money:
/// posted transfers and posted pending ones (holds, voids and expiries do
/// not post).
fn posted_events(tenant_id: &str, rows: &[&NewRow]) -> Vec<NewEvent> {
    rows.iter()
        .map(|row| &row.transfer)
        .filter(|t| matches!(t.kind, TransferKind::Posted | TransferKind::PostPending))
        .map(|t| NewEvent {
            kind: EventKind::TransferPosted,
            tenant_id: tenant_id.to_owned(),
            aggregate_id: t.id.clone(),
            payload: serde_json::json!({
                "transfer_id": t.id,
                "kind": t.kind.as_str(),
                "debit_account_id": t.debit_account_id,
                "credit_account_id": t.credit_account_id,
                "amount": t.amount,
                "currency": t.currency,
                "pending_id": t.pending_id,
            }),
        })
        .collect()
}

fn add(total: i64, amount: i64, account: &str) -> Result<i64, LedgerError> {
    total
        .checked_add(amount)
        .ok_or_else(|| LedgerError::Overflow(account.to_owned()))
}

/// Applies one new transfer to the locked totals, or says why it may not.
fn apply(
    accounts: &mut HashMap<String, Locked>,
    transfer: &NewTransfer,
) -> Result<(), LedgerError> {
    let (debit_id, credit_id) = (&transfer.debit_account_id, &transfer.credit_account_id);
    let mut debit = accounts
        .get(debit_id)
        .cloned()
        .ok_or_else(|| LedgerError::AccountNotFound(debit_id.clone()))?;
    let mut credit = accounts
        .get(credit_id)
        .cloned()
        .ok_or_else(|| LedgerError::AccountNotFound(credit_id.clone()))?;
    for (id, account) in [(debit_id, &debit), (credit_id, &credit)] {
        if account.currency != transfer.currency {
            return Err(LedgerError::CurrencyMismatch {
                transfer: transfer.currency.clone(),
                account: id.clone(),
                account_currency: account.currency.clone(),
            });
        }
    }
    let amount = transfer.amount;
    if debit.limit == BalanceLimit::DebitsMustNotExceedCredits {
        let available = i128::from(debit.credits_posted)
            - i128::from(debit.debits_posted)
            - i128::from(debit.debits_pending);
        if i128::from(amount) > available {
            return Err(insufficient(debit_id, debit.limit, amount, available));
        }
    }
    if credit.limit == BalanceLimit::CreditsMustNotExceedDebits {
        let available = i128::from(credit.debits_posted)
            - i128::from(credit.credits_posted)
            - i128::from(credit.credits_pending);
        if i128::from(amount) > available {
            return Err(insufficient(credit_id, credit.limit, amount, available));
        }
    }
    if transfer.pending {
        debit.debits_pending = add(debit.debits_pending, amount, debit_id)?;
        credit.credits_pending = add(credit.credits_pending, amount, credit_id)?;
    } else {
        debit.debits_posted = add(debit.debits_posted, amount, debit_id)?;
        credit.credits_posted = add(credit.credits_posted, amount, credit_id)?;
    }
    // The limit CHECKs add pending and posted: keep that sum in range too.
    add(debit.debits_pending, debit.debits_posted, debit_id)?;
    add(credit.credits_pending, credit.credits_posted, credit_id)?;
    debit.dirty = true;
    credit.dirty = true;
    accounts.insert(debit_id.clone(), debit);
    accounts.insert(credit_id.clone(), credit);
    Ok(())
}

fn insufficient(account: &str, limit: BalanceLimit, needed: i64, available: i128) -> LedgerError {
    LedgerError::InsufficientFunds {
        account: account.to_owned(),
        limit: limit.as_str(),
        needed,
        available: i64::try_from(available.max(0)).unwrap_or(i64::MAX),
    }
}

/// True when a stored transfer is what `request` would have created.
fn same_transfer(stored: &Transfer, request: &NewTransfer, metadata: &serde_json::Value) -> bool {
    let kind = if request.pending {
        TransferKind::Pending
    } else {
        TransferKind::Posted
    };
    stored.kind == kind
        && stored.debit_account_id == request.debit_account_id
        && stored.credit_account_id == request.credit_account_id
        && stored.amount == request.amount
        && stored.currency == request.currency
        && stored.timeout_ms == request.timeout_ms
        && &stored.metadata == metadata
}

/// Creates one transfer; see [`create_transfers`].
///
/// # Errors
/// As [`create_transfers`], without the batch position.
pub async fn create_transfer(
    db: &Db,
    tenant_id: &str,
    transfer: &NewTransfer,
    limits: &Limits,
    now_ms: i64,
) -> Result<Recorded, LedgerError> {
    let mut recorded = create_many(
        db,
        tenant_id,
        std::slice::from_ref(transfer),
        limits,
        now_ms,
    )
    .await
    .map_err(|(_, err)| err)?;
    recorded
        .pop()
        .ok_or_else(|| LedgerError::Corrupt("a one-transfer batch recorded nothing".into()))
}

/// Creates a batch of transfers in one database transaction, all or
/// nothing, applied in order (a later transfer may spend what an earlier
/// one brought in). Transfers whose id exists with the same body are
/// answered from the journal and not applied again.
///
/// # Errors
/// [`LedgerError::InBatch`] naming the first transfer that failed, around
/// [`LedgerError::Invalid`], [`LedgerError::AccountNotFound`],
/// [`LedgerError::CurrencyMismatch`], [`LedgerError::InsufficientFunds`],
/// [`LedgerError::Overflow`] or [`LedgerError::IdempotencyConflict`];
/// [`LedgerError::Invalid`] for an empty or oversized batch or an id given
/// twice; [`LedgerError::Database`] when the store fails (nothing written).
pub async fn create_transfers(
    db: &Db,
    tenant_id: &str,
    transfers: &[NewTransfer],
    limits: &Limits,
    now_ms: i64,
) -> Result<Vec<Recorded>, LedgerError> {
    create_many(db, tenant_id, transfers, limits, now_ms)
        .await
        .map_err(|(index, err)| match index {
            Some(index) => LedgerError::InBatch {
                index,
                id: transfers
                    .get(index)
                    .map(|t| t.id.clone())
                    .unwrap_or_default(),
                source: Box::new(err),
            },
            None => err,
        })
}

/// Checks one new transfer and builds its journal row at `now_ms`.
fn new_row(limits: &Limits, transfer: &NewTransfer, now_ms: i64) -> Result<NewRow, LedgerError> {
    let metadata = limits.check_new_transfer(transfer)?;
    let expires_at = match transfer.timeout_ms {
        Some(ms) => Some(
            now_ms
                .checked_add(ms)
                .ok_or_else(|| LedgerError::Invalid("timeout_ms is too large".into()))?,
        ),
        None => None,
    };
    let value = parse_metadata(&metadata)?;
    Ok(NewRow {
        transfer: Transfer {
            id: transfer.id.clone(),
            kind: if transfer.pending {
                TransferKind::Pending
            } else {
                TransferKind::Posted
            },
            debit_account_id: transfer.debit_account_id.clone(),
            credit_account_id: transfer.credit_account_id.clone(),
            amount: transfer.amount,
            currency: transfer.currency.clone(),
            pending_id: None,
            timeout_ms: transfer.timeout_ms,
            expires_at,
            metadata: value,
            created_at: now_ms,
        },
        metadata,
    })
}

/// One request of a group commit: a single transfer, or a batch that
/// stands or falls as a whole, with the time it was made at.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The transfers, in the order they apply.
    pub(crate) transfers: Vec<NewTransfer>,
    /// True for a batch: errors name the transfer at fault
    /// ([`LedgerError::InBatch`]) and the batch's bounds are checked.
    pub(crate) batch: bool,
    /// Unix milliseconds.
    pub(crate) now_ms: i64,
}

impl Unit {
    /// The error of the transfer at `index`, as the caller hears it.
    fn error(&self, index: Option<usize>, err: LedgerError) -> LedgerError {
        match index {
            Some(index) if self.batch => LedgerError::InBatch {
                index,
                id: self
                    .transfers
                    .get(index)
                    .map(|t| t.id.clone())
                    .unwrap_or_default(),
                source: Box::new(err),
            },
            _ => err,
        }
    }
}

/// Checks a batch (its bounds, every transfer, ids distinct) and builds its
/// journal rows at `now_ms`; errors carry the index of the transfer at
/// fault.
fn batch_rows(
    limits: &Limits,
    transfers: &[NewTransfer],
    now_ms: i64,
) -> Result<Vec<NewRow>, (Option<usize>, LedgerError)> {
    let max = usize::try_from(limits.batch_transfers_max).unwrap_or(usize::MAX);
    if transfers.is_empty() || transfers.len() > max {
        return Err((
            None,
            LedgerError::Invalid(format!(
                "a batch holds 1 to {max} transfers (control_plane.ledger_batch_transfers_max), not {}",
                transfers.len()
            )),
        ));
    }
    let mut rows = Vec::with_capacity(transfers.len());
    let mut seen = HashSet::with_capacity(transfers.len());
    for (index, transfer) in transfers.iter().enumerate() {
        let row = new_row(limits, transfer, now_ms).map_err(|err| (Some(index), err))?;
        if !seen.insert(transfer.id.as_str()) {
            return Err((
                Some(index),
                LedgerError::Invalid(format!("id {} appears twice in the batch", transfer.id)),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Writes independent requests of one tenant in one database transaction
/// (the group commit of [`super::group`]): unlike one batch, each request
/// (a transfer, or a batch all or nothing) succeeds or fails on its own.
/// All accounts are locked first in id order, every request is checked in
/// memory against the locked totals in the order given (a refused one
/// changes nothing), and only the good ones are written. The ids must be
/// distinct across requests (the caller defers repeats to a later group).
///
/// With `look_up_first` false the first attempt does not look the ids up
/// in the journal: a fresh id is the common case, and the journal's primary
/// key refuses a repeat anyway, so the lookup (one index probe per
/// transfer, as dear as the insert's own) is paid only when a repeat turns
/// up, by rolling the attempt back and trying again with it. A repeat the
/// key cannot see, one refused in memory (say, its account has since been
/// spent), is caught by looking up the refused requests' ids alone. The caller
/// passes true when repeats have been turning up ([`Group::repeats`]), so
/// a client that keeps retrying costs one attempt per group, not two.
///
/// Answers one result per request, in order; `Err` when the transaction
/// itself failed, and then nothing was written.
///
/// # Errors
/// [`LedgerError::Database`] when the store fails.
pub(crate) async fn create_group(
    db: &Db,
    tenant_id: &str,
    units: &[Unit],
    limits: &Limits,
    look_up_first: bool,
) -> Result<Group, LedgerError> {
    let mut results: Vec<Option<Result<Vec<Recorded>, LedgerError>>> =
        units.iter().map(|_| None).collect();
    let mut checked = Vec::with_capacity(units.len());
    for (index, unit) in units.iter().enumerate() {
        let rows = if unit.batch {
            batch_rows(limits, &unit.transfers, unit.now_ms)
        } else {
            unit.transfers
                .iter()
                .enumerate()
                .map(|(i, t)| new_row(limits, t, unit.now_ms).map_err(|err| (Some(i), err)))
                .collect()
        };
        match rows {
            Ok(rows) => checked.push((index, rows)),
            Err((at, err)) => results[index] = Some(Err(unit.error(at, err))),
        }
    }
    let mut look_up = look_up_first;
    let mut repeats = false;
    if !checked.is_empty() {
        let mut races = 0;
        let (outcomes, found) = loop {
            match try_create_group(db, tenant_id, units, &checked, look_up).await {
                Ok(Some(done)) => break done,
                // Only an attempt without the lookup answers `None`.
                Ok(None) => {
                    look_up = true;
                    repeats = true;
                }
                Err(err) if is_unique_violation(&err) && races < RETRIES_AFTER_ID_RACE => {
                    races += 1;
                }
                Err(err) => return Err(err),
            }
        };
        repeats |= found;
        for (index, outcome) in outcomes {
            results[index] = Some(outcome);
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(LedgerError::Corrupt("a group lost a result".into()))))
        .collect();
    Ok(Group { results, repeats })
}

/// What [`create_group`] answers.
pub(crate) struct Group {
    /// One result per request, in order.
    pub(crate) results: Vec<Result<Vec<Recorded>, LedgerError>>,
    /// True when some id was already in the journal (an idempotent
    /// repeat), whether the lookup found it or the optimistic attempt met
    /// it and was rolled back.
    pub(crate) repeats: bool,
}

type Outcomes = Vec<(usize, Result<Vec<Recorded>, LedgerError>)>;

/// One attempt at [`create_group`]: the outcomes and whether the lookup
/// found stored ids, or `None` (nothing written) when an attempt without
/// the lookup met a stored id and must be redone with it.
async fn try_create_group(
    db: &Db,
    tenant_id: &str,
    units: &[Unit],
    checked: &[(usize, Vec<NewRow>)],
    look_up: bool,
) -> Result<Option<(Outcomes, bool)>, LedgerError> {
    let mut tx = begin(db).await?;
    let all_rows = || checked.iter().flat_map(|(_, rows)| rows);
    let ids = all_rows().flat_map(|row| {
        [
            row.transfer.debit_account_id.as_str(),
            row.transfer.credit_account_id.as_str(),
        ]
    });
    let mut accounts = lock_accounts(db, &mut tx, tenant_id, ids).await?;
    let existing = if look_up {
        existing_transfers(db, &mut tx, tenant_id, all_rows()).await?
    } else {
        HashMap::new()
    };
    let mut outcomes = Vec::with_capacity(checked.len());
    let mut new_rows = Vec::with_capacity(all_rows().count());
    let mut refused_rows = Vec::new();
    for (index, rows) in checked {
        let unit = &units[*index];
        // What the request changes, to put back if it fails part way.
        let before: Vec<(&str, Option<Locked>)> = unit
            .transfers
            .iter()
            .flat_map(|t| [t.debit_account_id.as_str(), t.credit_account_id.as_str()])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| (id, accounts.get(id).cloned()))
            .collect();
        let mut recorded = Vec::with_capacity(rows.len());
        let mut written = Vec::with_capacity(rows.len());
        let mut failed = None;
        for (at, (transfer, row)) in unit.transfers.iter().zip(rows).enumerate() {
            if let Some(stored) = existing.get(&transfer.id) {
                if same_transfer(stored, transfer, &row.transfer.metadata) {
                    recorded.push(Recorded {
                        transfer: stored.clone(),
                        created: false,
                    });
                    continue;
                }
                failed = Some((at, LedgerError::IdempotencyConflict(transfer.id.clone())));
                break;
            }
            match apply(&mut accounts, transfer) {
                Ok(()) => {
                    written.push(row);
                    recorded.push(Recorded {
                        transfer: row.transfer.clone(),
                        created: true,
                    });
                }
                Err(err) => {
                    failed = Some((at, err));
                    break;
                }
            }
        }
        match failed {
            None => {
                new_rows.extend(written);
                outcomes.push((*index, Ok(recorded)));
            }
            Some((at, err)) => {
                for (id, account) in before {
                    if let Some(account) = account {
                        accounts.insert(id.to_owned(), account);
                    }
                }
                refused_rows.extend(rows);
                outcomes.push((*index, Err(unit.error(Some(at), err))));
            }
        }
    }
    // Without the lookup, a refused request may be a repeat (a stored
    // transfer whose accounts can no longer pay for it again answers the
    // stored row, not "insufficient funds"): look up the refused ones'
    // ids, few as a rule, and redo the group with the lookup if any is
    // stored. A refusal and a repeat both leave the totals as they were,
    // so the other requests' outcomes stand either way.
    if !look_up
        && !refused_rows.is_empty()
        && !existing_transfers(db, &mut tx, tenant_id, refused_rows.into_iter())
            .await?
            .is_empty()
    {
        return Ok(None);
    }
    if !new_rows.is_empty() {
        let now_ms = new_rows
            .iter()
            .map(|row| row.transfer.created_at)
            .max()
            .unwrap_or(0);
        match write(db, &mut tx, tenant_id, &accounts, new_rows, now_ms).await {
            // A repeat the primary key refused.
            Err(err) if !look_up && is_unique_violation(&err) => return Ok(None),
            other => other?,
        }
    }
    tx.commit().await?;
    let found = !existing.is_empty();
    Ok(Some((outcomes, found)))
}

/// The stored transfers among `rows`' ids, by id.
async fn existing_transfers<'r>(
    db: &Db,
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    rows: impl Iterator<Item = &'r NewRow>,
) -> Result<HashMap<String, Transfer>, LedgerError> {
    let ids: Vec<&str> = rows.map(|row| row.transfer.id.as_str()).collect();
    let mut existing = HashMap::new();
    let found = match db.kind() {
        DbKind::Postgres => {
            sqlx::query(&format!(
                "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE tenant_id = $1 \
                 AND id IN (SELECT json_array_elements_text($2::json))"
            ))
            .bind(tenant_id)
            .bind(json_text(&ids)?)
            .fetch_all(&mut **tx)
            .await?
        }
        DbKind::Sqlite => {
            let mut found = Vec::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT * 10) {
                let sql = format!(
                    "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE tenant_id = $1 AND id IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut query = sqlx::query(&sql).bind(tenant_id);
                for id in chunk {
                    query = query.bind(*id);
                }
                found.extend(query.fetch_all(&mut **tx).await?);
            }
            found
        }
    };
    for row in found {
        let transfer = transfer_from_row(&row)?;
        existing.insert(transfer.id.clone(), transfer);
    }
    Ok(existing)
}

/// The batch write; errors carry the index of the transfer at fault.
async fn create_many(
    db: &Db,
    tenant_id: &str,
    transfers: &[NewTransfer],
    limits: &Limits,
    now_ms: i64,
) -> Result<Vec<Recorded>, (Option<usize>, LedgerError)> {
    let rows = batch_rows(limits, transfers, now_ms)?;
    let mut attempt = 0;
    loop {
        match try_create_many(db, tenant_id, transfers, &rows).await {
            Err((_, err)) if is_unique_violation(&err) && attempt < RETRIES_AFTER_ID_RACE => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn try_create_many(
    db: &Db,
    tenant_id: &str,
    transfers: &[NewTransfer],
    rows: &[NewRow],
) -> Result<Vec<Recorded>, (Option<usize>, LedgerError)> {
    let whole = |err: sqlx::Error| (None, LedgerError::from(err));
    let mut tx = begin(db).await.map_err(whole)?;
    let ids = transfers
        .iter()
        .flat_map(|t| [t.debit_account_id.as_str(), t.credit_account_id.as_str()]);
    let mut accounts = lock_accounts(db, &mut tx, tenant_id, ids)
        .await
        .map_err(|err| (None, err))?;

    let mut existing = existing_transfers(db, &mut tx, tenant_id, rows.iter())
        .await
        .map_err(|err| (None, err))?;

    let mut recorded = Vec::with_capacity(transfers.len());
    let mut new_rows = Vec::with_capacity(transfers.len());
    for (index, (transfer, row)) in transfers.iter().zip(rows).enumerate() {
        if let Some(stored) = existing.remove(&transfer.id) {
            if !same_transfer(&stored, transfer, &row.transfer.metadata) {
                return Err((
                    Some(index),
                    LedgerError::IdempotencyConflict(transfer.id.clone()),
                ));
            }
            recorded.push(Recorded {
                transfer: stored,
                created: false,
            });
            continue;
        }
        apply(&mut accounts, transfer).map_err(|err| (Some(index), err))?;
        new_rows.push(row);
        recorded.push(Recorded {
            transfer: row.transfer.clone(),
            created: true,
        });
    }
    if !new_rows.is_empty() {
        let now_ms = new_rows.first().map_or(0, |row| row.transfer.created_at);
        write(db, &mut tx, tenant_id, &accounts, new_rows, now_ms)
            .await
            .map_err(|err| (None, err))?;
    }
    tx.commit().await.map_err(whole)?;
    Ok(recorded)
}

/// How a pending transfer is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Post,
    Void,
    Expire,
}

impl Close {
    fn kind(self) -> TransferKind {
        match self {
            Self::Post => TransferKind::PostPending,
            Self::Void => TransferKind::VoidPending,
            Self::Expire => TransferKind::ExpirePending,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Void => "void",
            Self::Expire => "expire",
        }
    }
}

/// Posts a pending transfer: its reservation becomes a posted transfer of
/// `resolve.amount` (default: all of it; the rest is released).
///
/// # Errors
/// [`LedgerError::TransferNotFound`], [`LedgerError::NotPending`],
/// [`LedgerError::PendingClosed`] when already posted or voided,
/// [`LedgerError::PendingExpired`] when its timeout passed before `now_ms`
/// (the hold is released then, and stays released),
/// [`LedgerError::IdempotencyConflict`] when the closing id is taken by
/// another body, [`LedgerError::Invalid`] for a bad amount or id.
pub async fn post_pending(
    db: &Db,
    tenant_id: &str,
    pending_id: &str,
    resolve: &Resolve,
    limits: &Limits,
    now_ms: i64,
) -> Result<Recorded, LedgerError> {
    close(
        db,
        tenant_id,
        pending_id,
        Close::Post,
        resolve,
        limits,
        now_ms,
    )
    .await
}

/// Voids a pending transfer: its reservation is released.
///
/// # Errors
/// As [`post_pending`]; an amount is refused.
pub async fn void_pending(
    db: &Db,
    tenant_id: &str,
    pending_id: &str,
    resolve: &Resolve,
    limits: &Limits,
    now_ms: i64,
) -> Result<Recorded, LedgerError> {
    if resolve.amount.is_some() {
        return Err(LedgerError::Invalid("a void takes no amount".into()));
    }
    close(
        db,
        tenant_id,
        pending_id,
        Close::Void,
        resolve,
        limits,
        now_ms,
    )
    .await
}

/// Expires up to `max` pending transfers (of every tenant) whose timeout is
/// at or before `now_ms`, oldest first, each in its own transaction; returns
/// how many it expired. Holds closed meanwhile by a post or void are skipped.
///
/// # Errors
/// Fails on the first database error; what expired before stays expired.
pub async fn expire_due(db: &Db, now_ms: i64, max: u32) -> Result<u32, LedgerError> {
    let due = sqlx::query(
        "SELECT tenant_id, transfer_id FROM ledger_pending \
         WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now_ms)
    .bind(i64::from(max))
    .fetch_all(db.pool())
    .await?;
    let limits = Limits {
        batch_transfers_max: 1,
        page_size_max: 1,
        metadata_bytes_max: 2,
        id_bytes_max: u32::MAX,
        pending_timeout_ms_max: 1,
    };
    let mut expired = 0;
    for row in due {
        let tenant: String = row.try_get(0)?;
        let pending: String = row.try_get(1)?;
        match close(
            db,
            &tenant,
            &pending,
            Close::Expire,
            &Resolve::default(),
            &limits,
            now_ms,
        )
        .await
        {
            Ok(recorded) if recorded.created => expired += 1,
            Ok(_) | Err(LedgerError::PendingClosed { .. } | LedgerError::PendingExpired(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(expired)
}

async fn close(
    db: &Db,
    tenant_id: &str,
    pending_id: &str,
    how: Close,
    resolve: &Resolve,
    limits: &Limits,
    now_ms: i64,
) -> Result<Recorded, LedgerError> {
    let id = match &resolve.id {
        Some(id) => {
            limits.check_id("id", id)?;
            id.clone()
        }
        None => format!("{pending_id}.{}", how.suffix()),
    };
    let metadata = limits.metadata(resolve.metadata.as_ref())?;
    if let Some(amount) = resolve.amount {
        if amount <= 0 {
            return Err(LedgerError::Invalid(format!(
                "amount {amount} must be a positive number of minor units"
            )));
        }
    }
    let mut attempt = 0;
    loop {
        match try_close(
            db, tenant_id, pending_id, how, &id, resolve, &metadata, now_ms,
        )
        .await
        {
            Err(err) if is_unique_violation(&err) && attempt < RETRIES_AFTER_ID_RACE => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[allow(clippy::too_many_arguments)] // one private step of `close`
async fn try_close(
    db: &Db,
    tenant_id: &str,
    pending_id: &str,
    how: Close,
    id: &str,
    resolve: &Resolve,
    metadata: &str,
    now_ms: i64,
) -> Result<Recorded, LedgerError> {
    let mut tx = begin(db).await?;
    let pending = find_transfer(&mut *tx, tenant_id, pending_id)
        .await?
        .ok_or_else(|| LedgerError::TransferNotFound(pending_id.to_owned()))?;
    if pending.kind != TransferKind::Pending {
        return Err(LedgerError::NotPending(pending_id.to_owned()));
    }
    let mut accounts = lock_accounts(
        db,
        &mut tx,
        tenant_id,
        [
            pending.debit_account_id.as_str(),
            pending.credit_account_id.as_str(),
        ],
    )
    .await?;
    let amount = resolve.amount.unwrap_or(pending.amount);
    let metadata_value = parse_metadata(metadata)?;
    // Under the account locks: a racing closer with the same id has
    // committed by now, and its row answers this call.
    if let Some(stored) = find_transfer(&mut *tx, tenant_id, id).await? {
        let same = stored.kind == how.kind()
            && stored.pending_id.as_deref() == Some(pending_id)
            && stored.amount == amount
            && stored.metadata == metadata_value;
        if !same {
            return Err(LedgerError::IdempotencyConflict(id.to_owned()));
        }
        return Ok(Recorded {
            transfer: stored,
            created: false,
        });
    }
    if amount > pending.amount {
        return Err(LedgerError::Invalid(format!(
            "amount {amount} is more than the pending amount {}",
            pending.amount
        )));
    }
    let due = pending.expires_at.is_some_and(|at| at <= now_ms);
    if how == Close::Expire && !due {
        return Err(LedgerError::Invalid(format!(
            "pending transfer {pending_id} is not due to expire"
        )));
    }
    // Claim the hold: of all closers, exactly one deletes the row.
    let claimed =
        sqlx::query("DELETE FROM ledger_pending WHERE tenant_id = $1 AND transfer_id = $2")
            .bind(tenant_id)
            .bind(pending_id)
            .execute(&mut *tx)
            .await?;
    if claimed.rows_affected() == 0 {
        let closed_by: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM ledger_transfers WHERE tenant_id = $1 AND pending_id = $2",
        )
        .bind(tenant_id)
        .bind(pending_id)
        .fetch_optional(&mut *tx)
        .await?;
        let how = match closed_by.as_deref() {
            Some("post_pending") => "posted",
            Some("void_pending") => "voided",
            Some("expire_pending") => return Err(LedgerError::PendingExpired(pending_id.into())),
            _ => return Err(LedgerError::Corrupt(format!("hold {pending_id} vanished"))),
        };
        return Err(LedgerError::PendingClosed {
            id: pending_id.to_owned(),
            how,
        });
    }
    // A post or void after the timeout expires the hold instead.
    let expired_instead = due && how != Close::Expire;
    let (how, id, amount) = if expired_instead {
        (
            Close::Expire,
            format!("{pending_id}.expire"),
            pending.amount,
        )
    } else {
        (how, id.to_owned(), amount)
    };
    let (debit_id, credit_id) = (&pending.debit_account_id, &pending.credit_account_id);
    for account_id in [debit_id, credit_id] {
        let account = accounts
            .get_mut(account_id)
            .ok_or_else(|| LedgerError::Corrupt(format!("account {account_id} vanished")))?;
        account.dirty = true;
        if account_id == debit_id {
            account.debits_pending -= pending.amount;
            if how == Close::Post {
                account.debits_posted = add(account.debits_posted, amount, account_id)?;
            }
        } else {
            account.credits_pending -= pending.amount;
            if how == Close::Post {
                account.credits_posted = add(account.credits_posted, amount, account_id)?;
            }
        }
    }
    let row = NewRow {
        transfer: Transfer {
            id,
            kind: how.kind(),
            debit_account_id: debit_id.clone(),
            credit_account_id: credit_id.clone(),
            amount,
            currency: pending.currency.clone(),
            pending_id: Some(pending_id.to_owned()),
            timeout_ms: None,
            expires_at: None,
            metadata: if how == Close::Expire {
                serde_json::json!({})
            } else {
                metadata_value
            },
            created_at: now_ms,
        },
        metadata: if how == Close::Expire {
            "{}".to_owned()
        } else {
            metadata.to_owned()
        },
    };
    write(db, &mut tx, tenant_id, &accounts, vec![&row], now_ms).await?;
    tx.commit().await?;
    if expired_instead {
        // Committed: the hold stays released, and the caller hears why.
        return Err(LedgerError::PendingExpired(pending_id.to_owned()));
    }
    Ok(Recorded {
        transfer: row.transfer,
        created: true,
    })
}

/// Replays the tenant's journal and compares it with the stored balances;
/// also sums every currency and checks every limit.
///
/// # Errors
/// Fails on database errors or unreadable rows.
pub async fn audit(db: &Db, tenant_id: &str) -> Result<Audit, LedgerError> {
    let accounts = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 ORDER BY id"
    ))
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(account_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let journal = sqlx::query(
        "SELECT id, kind, debit_account_id, credit_account_id, amount, pending_id \
         FROM ledger_transfers WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    struct Row {
        kind: TransferKind,
        debit: String,
        credit: String,
        amount: i64,
        pending_id: Option<String>,
    }
    let mut rows = Vec::with_capacity(journal.len());
    let mut pending_amounts = HashMap::new();
    for row in &journal {
        let id: String = row.try_get(0)?;
        let kind: String = row.try_get(1)?;
        let parsed = Row {
            kind: TransferKind::parse(&kind)?,
            debit: row.try_get(2)?,
            credit: row.try_get(3)?,
            amount: row.try_get(4)?,
            pending_id: row.try_get(5)?,
        };
        if parsed.kind == TransferKind::Pending {
            pending_amounts.insert(id, parsed.amount);
        }
        rows.push(parsed);
    }
    // [debits_pending, debits_posted, credits_pending, credits_posted]
    let mut replayed: HashMap<&str, [i128; 4]> = HashMap::new();
    for row in &rows {
        let (pending_delta, posted) = match row.kind {
            TransferKind::Posted => (0, row.amount),
            TransferKind::Pending => (row.amount, 0),
            TransferKind::PostPending | TransferKind::VoidPending | TransferKind::ExpirePending => {
                let held = row
                    .pending_id
                    .as_ref()
                    .and_then(|p| pending_amounts.get(p))
                    .copied()
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!(
                            "a closer of {:?} has no hold",
                            row.pending_id
                        ))
                    })?;
                let posted = if row.kind == TransferKind::PostPending {
                    row.amount
                } else {
                    0
                };
                (-held, posted)
            }
        };
        let debit = replayed.entry(row.debit.as_str()).or_default();
        debit[0] += i128::from(pending_delta);
        debit[1] += i128::from(posted);
        let credit = replayed.entry(row.credit.as_str()).or_default();
        credit[2] += i128::from(pending_delta);
        credit[3] += i128::from(posted);
    }
    let mut audit = Audit {
        accounts: accounts.len(),
        transfers: rows.len(),
        ..Audit::default()
    };
    let mut sums: std::collections::BTreeMap<&str, (i128, i128)> = Default::default();
    for account in &accounts {
        let stored = [
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        ];
        let replay = replayed
            .get(account.id.as_str())
            .copied()
            .unwrap_or_default();
        let replay_i64 = replay.map(|v| i64::try_from(v).unwrap_or(i64::MIN));
        if replay_i64 != stored {
            audit
                .mismatches
                .push((account.id.clone(), stored, replay_i64));
        }
        if !super::model::within_limit(account) {
            audit.over_limit.push(account.id.clone());
        }
        let sum = sums.entry(account.currency.as_str()).or_default();
        sum.0 += i128::from(account.debits_posted) - i128::from(account.credits_posted);
        sum.1 += i128::from(account.debits_pending) - i128::from(account.credits_pending);
    }
    // A journal row naming an account the tenant does not have (nothing
    // but the write path keeps that on PostgreSQL, see its migration 0010).
    let known: HashSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let mut orphans: Vec<(&str, [i128; 4])> = replayed
        .iter()
        .filter(|(id, _)| !known.contains(**id))
        .map(|(id, replay)| (*id, *replay))
        .collect();
    orphans.sort_unstable();
    for (id, replay) in orphans {
        audit.mismatches.push((
            id.to_owned(),
            [0; 4],
            replay.map(|v| i64::try_from(v).unwrap_or(i64::MIN)),
        ));
    }
    audit.imbalances = sums
        .into_iter()
        .map(|(currency, (posted, pending))| (currency.to_owned(), posted, pending))
        .collect();
    Ok(audit)
}
