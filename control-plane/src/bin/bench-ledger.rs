//! `bench-ledger`: ledger transfers per second on PostgreSQL at 1, 8 and 64
//! concurrent clients, single and batched, over 1,000 accounts and over 10
//! hot accounts (single transfers one per transaction, single transfers
//! through the group commit the HTTP route uses, batches in their own
//! transaction, and batches through the group commit the batch route
//! uses), side by side in the same run with naive transfers (two
//! `UPDATE ... SET balance` statements and an insert per transaction, in
//! whatever order the transfer names the accounts). It creates a scratch
//! database on the server, prints a Markdown table and drops the database.
//!
//! ```text
//! bench-ledger [--seconds 2] [--batch 100] [--clients 1,8,64] [--writers 1] [--group-transfers 2000] [--database-url postgres://...]
//! ```
//! The URL defaults to `LYCEUM_TEST_DATABASE_URL`; each cell runs for
//! `--seconds` (keep it short by default; raise it for steadier figures);
//! `--writers` sets `ledger_group_commit_writers` and `--group-transfers`
//! `ledger_group_commit_transfers_max`.

use std::str::FromStr as _;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{bail, Context as _};
use control_plane::ledger::{self, Account, BalanceLimit, Limits, NewAccount, NewTransfer};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use rand::{Rng as _, SeedableRng as _};
use sqlx::ConnectOptions as _;

/// Balance each account starts with, far above what a run moves.
const FUNDING: i64 = 1_000_000_000_000;

struct Options {
    seconds: f64,
    batch: usize,
    clients: Vec<usize>,
    writers: u32,
    group_transfers: u32,
    database_url: String,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 2.0,
        batch: 100,
        clients: vec![1, 8, 64],
        writers: control_plane::config::LEDGER_GROUP_COMMIT_WRITERS_DEFAULT,
        group_transfers: control_plane::config::LEDGER_GROUP_COMMIT_TRANSFERS_MAX_DEFAULT,
        database_url: std::env::var("LYCEUM_TEST_DATABASE_URL").unwrap_or_default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "--batch" => options.batch = value()?.parse().context("--batch")?,
            "--clients" => {
                options.clients = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--clients")?;
            }
            "--writers" => options.writers = value()?.parse().context("--writers")?,
            "--group-transfers" => {
                options.group_transfers = value()?.parse().context("--group-transfers")?;
            }
            "--database-url" => options.database_url = value()?,
            "--help" | "-h" => {
                println!(
                    "bench-ledger [--seconds 2] [--batch 100] [--clients 1,8,64] [--writers 1] [--group-transfers 2000] [--database-url postgres://...]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !options.database_url.starts_with("postgres") {
        bail!("give a PostgreSQL server with --database-url or LYCEUM_TEST_DATABASE_URL");
    }
    if options.batch == 0 || options.clients.contains(&0) || options.seconds <= 0.0 {
        bail!("--batch, --clients and --seconds must be positive");
    }
    Ok(options)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    Group,
    Batched,
    GroupBatched,
    Naive,
}

struct Cell {
    per_second: f64,
    errors: u64,
}

struct Set {
    name: &'static str,
    ledger: Vec<Account>,
    naive: Vec<i64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let admin_url = options.database_url.clone();
    let name = format!("lyceum_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)?
        .connect()
        .await
        .context("connect to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .context("url with a database name")?;
    let result = run(&options, &format!("{base}/{name}")).await;
    drop_scratch(&mut admin, &name).await?;
    result
}

/// Drops the scratch database. `WITH (FORCE)` ends our own leftover
/// connections but may not end an autovacuum worker (the server's, not
/// ours) that is still busy with the tables the run filled, so a refused
/// drop is retried for a while before giving up with the database named.
async fn drop_scratch(admin: &mut sqlx::PgConnection, name: &str) -> anyhow::Result<()> {
    /// Tries, one second apart.
    const DROP_TRIES: u32 = 30;
    let mut last = None;
    for _ in 0..DROP_TRIES {
        match sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(anyhow::anyhow!(
        "could not drop the scratch database {name} (drop it by hand): {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

async fn run(options: &Options, url: &str) -> anyhow::Result<()> {
    let clients_max = options.clients.iter().copied().max().unwrap_or(1);
    let dir = std::env::temp_dir();
    let config = ControlPlaneConfig {
        database_url: url.to_owned(),
        db_connections_max: u32::try_from(clients_max + 2)?,
        db_acquire_timeout_ms: 60_000,
        ledger_expiry_sweep_interval_ms: 0,
        ledger_group_commit_writers: options.writers,
        ledger_group_commit_transfers_max: options.group_transfers,
        ledger_batch_transfers_max: u32::try_from(options.batch.max(1))?.min(8_000),
        data_dir: dir,
        ..ControlPlaneConfig::default()
    };
    let cp = ControlPlane::open(config).await?;
    let tenant = identity::ensure_tenant(cp.db(), "bench", "Bench").await?;
    let limits = Limits::from_config(cp.config());
    sqlx::query("CREATE TABLE naive_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
        .execute(cp.db().pool())
        .await?;
    sqlx::query(
        "CREATE TABLE naive_transfers (id BIGSERIAL PRIMARY KEY, debit BIGINT NOT NULL, \
         credit BIGINT NOT NULL, amount BIGINT NOT NULL, created_at BIGINT NOT NULL)",
    )
    .execute(cp.db().pool())
    .await?;

    let world = ledger::create_account(
        cp.db(),
        &tenant,
        &NewAccount {
            code: "world".into(),
            currency: "EUR".into(),
            balance_limit: BalanceLimit::None,
            metadata: None,
        },
        &limits,
        0,
    )
    .await?;
    let mut sets = Vec::new();
    let mut naive_id = 0_i64;
    for (name, count) in [("1,000 accounts", 1_000), ("10 hot accounts", 10)] {
        let mut accounts = Vec::new();
        let mut naive = Vec::new();
        for i in 0..count {
            let account = ledger::create_account(
                cp.db(),
                &tenant,
                &NewAccount {
                    code: format!("{}-{i}", count),
                    currency: "EUR".into(),
                    balance_limit: BalanceLimit::DebitsMustNotExceedCredits,
                    metadata: None,
                },
                &limits,
                0,
            )
            .await?;
            accounts.push(account);
            naive_id += 1;
            sqlx::query("INSERT INTO naive_accounts (id, balance) VALUES ($1, $2)")
                .bind(naive_id)
                .bind(FUNDING)
                .execute(cp.db().pool())
                .await?;
            naive.push(naive_id);
        }
        for (i, chunk) in accounts.chunks(500).enumerate() {
            let funding: Vec<_> = chunk
                .iter()
                .map(|a| NewTransfer {
                    id: format!("fund-{}", a.code),
                    debit_account_id: world.id.clone(),
                    credit_account_id: a.id.clone(),
                    amount: FUNDING,
                    currency: "EUR".into(),
                    pending: false,
                    timeout_ms: None,
                    metadata: None,
                })
                .collect();
            let big = Limits {
                batch_transfers_max: 500,
                ..limits
            };
            ledger::create_transfers(cp.db(), &tenant, &funding, &big, 0)
                .await
                .with_context(|| format!("funding chunk {i}"))?;
        }
        sets.push(Set {
            name,
            ledger: accounts,
            naive,
        });
    }

    println!(
        "ledger transfers per second on PostgreSQL, {} s per cell, batches of {}",
        options.seconds, options.batch
    );
    println!();
    println!("| accounts | clients | ledger, one per transaction | ledger, single via group commit | ledger, batched | ledger, batched via group commit | naive (2 UPDATEs + INSERT) | naive errors (deadlocks) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let seq = Arc::new(AtomicU64::new(0));
    for set in &sets {
        for &clients in &options.clients {
            let mut cells = Vec::new();
            for mode in [
                Mode::Single,
                Mode::Group,
                Mode::Batched,
                Mode::GroupBatched,
                Mode::Naive,
            ] {
                settle(&cp).await?;
                cells.push(cell(&cp, &tenant, set, mode, clients, options, &seq).await?);
            }
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                set.name,
                clients,
                cells[0].per_second,
                cells[1].per_second,
                cells[2].per_second,
                cells[3].per_second,
                cells[4].per_second,
                cells[4].errors
            );
            let failed: u64 = cells[..4].iter().map(|c| c.errors).sum();
            if failed > 0 {
                bail!("the ledger failed {failed} transfers");
            }
        }
    }
    let audit = ledger::audit(cp.db(), &tenant).await?;
    println!();
    println!(
        "ledger audit after the run: {} journal rows, replay equals stored balances and every currency sums to zero: {}",
        audit.transfers,
        audit.is_sound()
    );
    if !audit.is_sound() {
        bail!("audit failed: {audit:?}");
    }
    cp.db().close().await;
    Ok(())
}

async fn cell(
    cp: &ControlPlane,
    tenant: &str,
    set: &Set,
    mode: Mode,
    clients: usize,
    options: &Options,
    seq: &Arc<AtomicU64>,
) -> anyhow::Result<Cell> {
    let deadline = Instant::now() + Duration::from_secs_f64(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let cp = cp.clone();
        let tenant = tenant.to_owned();
        let ledger_ids: Vec<String> = set.ledger.iter().map(|a| a.id.clone()).collect();
        let naive = set.naive.clone();
        let seq = seq.clone();
        let batch = options.batch;
        tasks.push(tokio::spawn(async move {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(client as u64 ^ seq.load(Ordering::Relaxed));
            let limits = Limits::from_config(cp.config());
            let (mut done, mut errors) = (0_u64, 0_u64);
            let n = ledger_ids.len();
            while Instant::now() < deadline {
                let mut pick = || {
                    let from = rng.gen_range(0..n);
                    let to = (from + rng.gen_range(1..n)) % n;
                    (from, to, rng.gen_range(1..100_i64))
                };
                let new = |from: usize, to: usize, amount: i64| NewTransfer {
                    id: format!("b{}", seq.fetch_add(1, Ordering::Relaxed)),
                    debit_account_id: ledger_ids[from].clone(),
                    credit_account_id: ledger_ids[to].clone(),
                    amount,
                    currency: "EUR".into(),
                    pending: false,
                    timeout_ms: None,
                    metadata: None,
                };
                match mode {
                    Mode::Single => {
                        let (from, to, amount) = pick();
                        match ledger::create_transfer(
                            cp.db(),
                            &tenant,
                            &new(from, to, amount),
                            &limits,
                            0,
                        )
                        .await
                        {
                            Ok(_) => done += 1,
                            Err(err) => {
                                eprintln!("ledger error: {err}");
                                errors += 1;
                            }
                        }
                    }
                    Mode::Group => {
                        let (from, to, amount) = pick();
                        match cp
                            .ledger_writer()
                            .create_transfer(&tenant, new(from, to, amount), 0)
                            .await
                        {
                            Ok(_) => done += 1,
                            Err(err) => {
                                eprintln!("ledger error: {err}");
                                errors += 1;
                            }
                        }
                    }
                    Mode::Batched | Mode::GroupBatched => {
                        let transfers: Vec<_> = (0..batch)
                            .map(|_| {
                                let (from, to, amount) = pick();
                                new(from, to, amount)
                            })
                            .collect();
                        let written = if mode == Mode::Batched {
                            ledger::create_transfers(cp.db(), &tenant, &transfers, &limits, 0).await
                        } else {
                            cp.ledger_writer()
                                .create_transfers(&tenant, transfers, 0)
                                .await
                        };
                        match written {
                            Ok(r) => done += r.len() as u64,
                            Err(err) => {
                                eprintln!("ledger error: {err}");
                                errors += 1;
                            }
                        }
                    }
                    Mode::Naive => {
                        let (from, to, amount) = pick();
                        match naive_transfer(&cp, naive[from], naive[to], amount).await {
                            Ok(()) => done += 1,
                            Err(_) => errors += 1,
                        }
                    }
                }
            }
            (done, errors)
        }));
    }
    let (mut done, mut errors) = (0, 0);
    for task in tasks {
        let (d, e) = task.await?;
        done += d;
        errors += e;
    }
    Ok(Cell {
        per_second: done as f64 / started.elapsed().as_secs_f64(),
        errors,
    })
}

/// Lets the server catch up before the next cell, as pgbench vacuums
/// before each run, so that no cell pays for the one before it: waits
/// (at most [`SETTLE_WAIT_MAX`]) until the outbox has published and the
/// analytics projection has read every event the last cell appended, then
/// vacuums and analyses the tables the cells write.
async fn settle(cp: &ControlPlane) -> anyhow::Result<()> {
    /// How long the outbox may take to catch up before the run goes on
    /// anyway.
    const SETTLE_WAIT_MAX: Duration = Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM domain_events WHERE id IS NULL) \
             + (SELECT coalesce(max(id), 0) FROM domain_events) \
             - (SELECT coalesce(max(position), 0) FROM event_consumers)",
        )
        .fetch_one(cp.db().pool())
        .await?;
        if behind <= 0 {
            break;
        }
        if started.elapsed() > SETTLE_WAIT_MAX {
            eprintln!("bench-ledger: the outbox is still {behind} events behind; going on");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sqlx::query(
        "VACUUM (ANALYZE) ledger_accounts, ledger_transfers, ledger_pending, domain_events, \
         naive_accounts, naive_transfers",
    )
    .execute(cp.db().pool())
    .await?;
    Ok(())
}

/// The textbook way: debit, credit, journal, in the order the transfer
/// names the accounts, at `READ COMMITTED`.
async fn naive_transfer(
    cp: &ControlPlane,
    from: i64,
    to: i64,
    amount: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = cp.db().pool().begin().await?;
    sqlx::query("UPDATE naive_accounts SET balance = balance - $1 WHERE id = $2")
        .bind(amount)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE naive_accounts SET balance = balance + $1 WHERE id = $2")
        .bind(amount)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO naive_transfers (debit, credit, amount, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(from)
    .bind(to)
    .bind(amount)
    .bind(control_plane::db::now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
