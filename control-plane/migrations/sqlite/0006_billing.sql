-- Billing: plans, subscriptions per tenant, invoices with line items, the
-- idempotency keys of retried requests and the webhook events seen. Money
-- itself moves through the ledger (a paid invoice is a ledger transfer whose
-- id is the invoice's id); these tables only say what was billed and why.
-- Times are unix milliseconds from the control plane's clock.
CREATE TABLE billing_plans (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('free', 'per_learner', 'per_seat')),
    name         TEXT NOT NULL,
    unit_price   BIGINT NOT NULL CHECK (unit_price >= 0),
    currency     TEXT NOT NULL,
    period_days  BIGINT NOT NULL CHECK (period_days > 0),
    trial_days   BIGINT NOT NULL CHECK (trial_days >= 0)
);

INSERT INTO billing_plans (id, kind, name, unit_price, currency, period_days, trial_days) VALUES
    ('free', 'free', 'Free', 0, 'EUR', 30, 0),
    ('per_learner', 'per_learner', 'Per learner', 400, 'EUR', 30, 14),
    ('per_seat', 'per_seat', 'Per seat (organisations)', 1200, 'EUR', 30, 14);

-- cancel_at_period_end is 0 or 1. At most one subscription per tenant is
-- not canceled (the partial unique index), so two racing subscribes with
-- different idempotency keys cannot both win.
CREATE TABLE billing_subscriptions (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plan_id               TEXT NOT NULL REFERENCES billing_plans(id),
    quantity              BIGINT NOT NULL CHECK (quantity >= 1),
    status                TEXT NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    payment_token         TEXT NOT NULL,
    trial_end             BIGINT,
    period_start          BIGINT NOT NULL,
    period_end            BIGINT NOT NULL,
    cancel_at_period_end  BIGINT NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    canceled_at           BIGINT,
    created_at            BIGINT NOT NULL
);

CREATE UNIQUE INDEX billing_subscriptions_live ON billing_subscriptions (tenant_id)
    WHERE status <> 'canceled';
CREATE INDEX billing_subscriptions_tenant ON billing_subscriptions (tenant_id, id);

-- One invoice per subscription period: the unique key makes the billing
-- clock idempotent (advancing twice over the same instant bills once).
CREATE TABLE billing_invoices (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    subscription_id  TEXT NOT NULL REFERENCES billing_subscriptions(id),
    status           TEXT NOT NULL CHECK (status IN ('open', 'paid', 'uncollectible')),
    currency         TEXT NOT NULL,
    total            BIGINT NOT NULL CHECK (total >= 0),
    period_start     BIGINT NOT NULL,
    period_end       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    provider_ref     TEXT,
    created_at       BIGINT NOT NULL,
    paid_at          BIGINT,
    UNIQUE (subscription_id, period_start)
);

CREATE INDEX billing_invoices_tenant ON billing_invoices (tenant_id, id);

CREATE TABLE billing_invoice_lines (
    invoice_id   TEXT NOT NULL REFERENCES billing_invoices(id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    description  TEXT NOT NULL,
    quantity     BIGINT NOT NULL CHECK (quantity >= 1),
    unit_amount  BIGINT NOT NULL CHECK (unit_amount >= 0),
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (invoice_id, position)
);

-- Idempotency keys of retried requests, per tenant. request_hash is the
-- SHA-256 of the route and the canonical body; status 0 means the first
-- request is still running.
CREATE TABLE billing_idempotency_keys (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Provider webhook events already applied, so a redelivery is a no-op.
CREATE TABLE billing_webhook_events (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
