//! The payment provider interface and the built-in development provider.
//! A provider is asked to charge an invoice once per attempt, under an
//! idempotency key (`<invoice id>:<attempt>`) that a real provider uses to
//! answer a retried request with its first result. Charging is synchronous
//! and local here: the development provider decides at once, the Stripe
//! adapter (`StripeProvider`) builds the request and leaves the
//! answer to its webhook.

use super::error::BillingError;

/// One attempt to collect an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The invoice collected.
    pub invoice_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Amount in minor units, positive.
    pub amount: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// The card token or payment method the subscription holds.
    pub payment_token: String,
    /// Unique per attempt; the same for a retry of the same attempt.
    pub idempotency_key: String,
}

/// What the provider said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money is collected.
    Succeeded {
        /// The provider's reference for the payment.
        reference: String,
    },
    /// The payment was declined.
    Failed {
        /// Why, in the provider's words.
        reason: String,
    },
    /// The request is on its way; a webhook will say how it ended.
    Pending {
        /// The provider's reference (our idempotency key until it answers).
        reference: String,
    },
}

/// Collects money for invoices.
pub trait PaymentProvider: Send + Sync {
    /// Short name for logs (`dev`, `stripe`).
    fn name(&self) -> &'static str;

    /// Makes one payment attempt.
    ///
    /// # Errors
    /// [`BillingError::Provider`] when the provider cannot be asked at all;
    /// a declined payment is [`ChargeOutcome::Failed`], not an error.
    fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, BillingError>;
}

/// The built-in provider for development and tests: deterministic, it
/// declines exactly the configured token
/// (`control_plane.billing_dev_decline_token`) and accepts every other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevProvider {
    decline_token: String,
}

impl DevProvider {
    /// A provider that declines `decline_token`.
    pub fn new(decline_token: impl Into<String>) -> Self {
        Self {
            decline_token: decline_token.into(),
        }
    }
}

impl PaymentProvider for DevProvider {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, BillingError> {
        if charge.amount <= 0 {
            return Err(BillingError::Provider(format!(
                "amount {} must be positive",
                charge.amount
            )));
        }
        if charge.payment_token == self.decline_token {
            Ok(ChargeOutcome::Failed {
                reason: "card_declined".into(),
            })
        } else {
            Ok(ChargeOutcome::Succeeded {
                reference: format!("dev_{}", charge.idempotency_key),
            })
        }
    }
}
