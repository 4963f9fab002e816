//! Billing: plans, subscriptions per tenant moved through their periods by
//! a billing clock, invoices with line items, and payments through a
//! [`PaymentProvider`]. Billing owns *what* was billed and why; every unit
//! of money it collects moves through the [`crate::ledger`]: a paid invoice
//! is one ledger transfer from the tenant's `billing:customer:<CUR>` account
//! to its `billing:revenue:<CUR>` account, whose id is the invoice's id, so
//! settling an invoice twice (a retry, a redelivered webhook) never moves
//! money twice.
//!
//! Time is passed in: [`advance`] takes `now_ms` (the control plane's
//! [`crate::clock::Clock`], which tests move forward), so a whole year of
//! renewals runs in a test without sleeping.
//!
//! Retried requests are safe through idempotency keys that also compare the
//! request body ([`idempotency`]); webhooks from Stripe are accepted only
//! with a valid signature ([`stripe`]). Nothing here calls out to the
//! network: the Stripe adapter builds requests and verifies signatures.

pub mod cycle;
pub mod error;
pub mod idempotency;
pub mod invoices;
pub mod model;
pub mod plans;
pub mod provider;
pub mod stripe;
pub mod subscription_rows;
pub mod subscriptions;
pub mod webhooks;

pub use cycle::{advance, Advanced};
pub use error::BillingError;
pub use model::*;
pub use provider::{Charge, ChargeOutcome, DevProvider, PaymentProvider};
pub use stripe::StripeProvider;
