//! The ledger: double-entry and append-only, the single truth of every
//! balance (tenant credits, learner purchases, instructor revenue share).
//!
//! Each transfer moves a positive integer amount of minor units from one
//! account's debits to another account's credits in one currency, so every
//! transfer is balanced by construction and the sum of all balances of a
//! currency is zero. Transfers are immutable (the database refuses updates
//! and deletes) and idempotent by their client-chosen id: the same id with
//! the same body answers the first result, with a different body
//! [`LedgerError::IdempotencyConflict`], and never makes a second transfer.
//!
//! Balances are stored per account (pending and posted debits and credits,
//! as TigerBeetle keeps them) so that limit checks are one row read, and are
//! also derivable from the journal: [`audit`] replays it and compares.
//!
//! Two-phase transfers reserve an amount first (`pending`) and then post,
//! void or expire it. Expiry is decided against a clock the caller passes
//! in (`now_ms`), so tests can move time; the control plane's sweep passes
//! the wall clock.
//!
//! Concurrency: see [`store`] for how writes stay correct under contention
//! on both engines, and [`group`] for the group commit that single
//! transfers over HTTP go through.

pub mod error;
pub mod group;
pub mod model;
pub mod store;

pub use error::LedgerError;
pub use model::*;
pub use store::{
    audit, create_account, create_transfer, create_transfers, expire_due, get_account,
    get_transfer, list_accounts, list_transfers, post_pending, void_pending,
};
