//! The Stripe adapter. It never calls out: it builds the HTTP request a
//! payment would send (`POST /v1/payment_intents`, form-encoded, with an
//! `Idempotency-Key` header so a retried attempt is one payment at Stripe
//! too) and verifies the signatures of the webhooks Stripe sends back.
//!
//! Stripe signs a webhook with `Stripe-Signature: t=<unix seconds>,v1=<hex>`
//! where `v1` is HMAC-SHA256 over `"<t>.<raw body>"` keyed with the
//! endpoint's secret. A signature is accepted when any `v1` matches
//! (compared in constant time by `ring`) and `t` is within the tolerance of
//! our clock, which stops an old delivery from being replayed.

use ring::hmac;
use serde::Deserialize;

use super::error::BillingError;
use super::provider::{Charge, ChargeOutcome, PaymentProvider};

/// Where PaymentIntents are created.
pub const PAYMENT_INTENTS_URL: &str = "https://api.stripe.com/v1/payment_intents";

/// Longest `Stripe-Signature` header we parse.
const SIGNATURE_HEADER_BYTES_MAX: usize = 4_096;

/// A request ready to send; the adapter never sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRequest {
    /// Always `POST`.
    pub method: &'static str,
    /// Full URL.
    pub url: &'static str,
    /// Headers in order (authorization, idempotency key, content type).
    pub headers: Vec<(&'static str, String)>,
    /// `application/x-www-form-urlencoded` body.
    pub body: String,
}

/// The Stripe adapter: request building and webhook verification.
#[derive(Clone)]
pub struct StripeProvider {
    secret_key: String,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider").finish_non_exhaustive()
    }
}

impl StripeProvider {
    /// An adapter that would authenticate with `secret_key` (`sk_...`).
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
        }
    }

    /// The PaymentIntents request for one attempt: confirmed at once with
    /// the subscription's payment method, our ids in `metadata` so the
    /// webhook can find the invoice again.
    pub fn build_payment_intent(&self, charge: &Charge) -> BuiltRequest {
        let fields = [
            ("amount", charge.amount.to_string()),
            ("currency", charge.currency.to_ascii_lowercase()),
            ("payment_method", charge.payment_token.clone()),
            ("confirm", "true".to_owned()),
            ("off_session", "true".to_owned()),
            ("metadata[invoice_id]", charge.invoice_id.clone()),
            ("metadata[tenant_id]", charge.tenant_id.clone()),
        ];
        BuiltRequest {
            method: "POST",
            url: PAYMENT_INTENTS_URL,
            headers: vec![
                ("Authorization", format!("Bearer {}", self.secret_key)),
                ("Idempotency-Key", charge.idempotency_key.clone()),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
            ],
            body: form_encode(&fields),
        }
    }
}

impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    /// Builds the request and reports the payment as pending: the
    /// `payment_intent.succeeded` or `.payment_failed` webhook settles it.
    fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, BillingError> {
        let request = self.build_payment_intent(charge);
        tracing::debug!(
            url = request.url,
            invoice = charge.invoice_id,
            "stripe: payment intent built"
        );
        Ok(ChargeOutcome::Pending {
            reference: charge.idempotency_key.clone(),
        })
    }
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are,
/// everything else percent-encoded (brackets included, as Stripe accepts).
pub fn form_encode(fields: &[(&str, String)]) -> String {
    fn encode(text: &str, out: &mut String) {
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    let mut out = String::new();
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode(key, &mut out);
        out.push('=');
        encode(value, &mut out);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// The `Stripe-Signature` header Stripe would send for `payload` at
/// `timestamp` (unix seconds); used to make signed fixture events.
pub fn sign_webhook(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    format!(
        "t={timestamp},v1={}",
        hex(hmac::sign(&key, &signed).as_ref())
    )
}

/// A verified webhook event, reduced to what billing acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Stripe's event id (`evt_...`), the key of redelivery checks.
    pub id: String,
    /// Event type (`payment_intent.succeeded`, ...).
    pub kind: String,
    /// The PaymentIntent's id.
    pub object_id: String,
    /// Our invoice id from the object's metadata, when it carries one.
    pub invoice_id: Option<String>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: RawObject,
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(default)]
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, serde_json::Value>,
}

/// Checks `header` against `payload` and parses the event.
///
/// # Errors
/// [`BillingError::BadSignature`] when no secret is configured, the header
/// is missing or malformed, no `v1` signature matches, or the timestamp is
/// more than `tolerance_secs` away from `now_secs`;
/// [`BillingError::Invalid`] when a correctly signed body is not an event.
pub fn verify_webhook(
    payload: &[u8],
    header: Option<&str>,
    secret: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<WebhookEvent, BillingError> {
    let bad = |why: &str| BillingError::BadSignature(why.to_owned());
    if secret.is_empty() {
        return Err(bad(
            "no webhook secret is configured (control_plane.billing_stripe_webhook_secret)",
        ));
    }
    let header = header.ok_or_else(|| bad("missing Stripe-Signature header"))?;
    if header.len() > SIGNATURE_HEADER_BYTES_MAX {
        return Err(bad("Stripe-Signature header too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| bad("no valid t= in Stripe-Signature"))?;
    if signatures.is_empty() {
        return Err(bad("no v1= signature in Stripe-Signature"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    let matches = signatures
        .iter()
        .filter_map(|sig| unhex(sig))
        .any(|sig| hmac::verify(&key, &signed, &sig).is_ok());
    if !matches {
        return Err(bad("no signature matches"));
    }
    if now_secs.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(bad("timestamp outside the tolerance window"));
    }
    let raw: RawEvent = serde_json::from_slice(payload)
        .map_err(|err| BillingError::Invalid(format!("webhook event: {err}")))?;
    let invoice_id = raw
        .data
        .object
        .metadata
        .get("invoice_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(WebhookEvent {
        id: raw.id,
        kind: raw.kind,
        object_id: raw.data.object.id,
        invoice_id,
    })
}
