-- The ledger: double-entry and append-only. Accounts carry their balances
-- (the four running totals TigerBeetle keeps), transfers are the journal:
-- immutable rows, each moving `amount` minor units from one account's debits
-- to another's credits, keyed by a client-chosen id (the idempotency key).
-- Balances are a cache of the journal: replaying it gives the same numbers,
-- and the suite checks that they do.
CREATE TABLE ledger_accounts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code             TEXT NOT NULL,
    currency         TEXT NOT NULL,
    balance_limit    TEXT NOT NULL CHECK (balance_limit IN
                         ('none', 'debits_must_not_exceed_credits', 'credits_must_not_exceed_debits')),
    debits_pending   BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted    BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending  BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted   BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    metadata         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, code),
    -- The last line of defence: the code checks these before it writes.
    CHECK (balance_limit <> 'debits_must_not_exceed_credits'
           OR debits_pending + debits_posted <= credits_posted),
    CHECK (balance_limit <> 'credits_must_not_exceed_debits'
           OR credits_pending + credits_posted <= debits_posted)
);

CREATE INDEX ledger_accounts_tenant ON ledger_accounts (tenant_id, id);

-- kind: 'posted' and 'pending' move money between the named accounts;
-- 'post_pending', 'void_pending' and 'expire_pending' close the pending
-- transfer `pending_id` (at most one each, by the unique constraint), with
-- the same accounts and currency. For a post, `amount` is what was posted
-- (at most the pending amount); for a void or expiry, the amount released.
CREATE TABLE ledger_transfers (
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN
                           ('posted', 'pending', 'post_pending', 'void_pending', 'expire_pending')),
    debit_account_id   TEXT NOT NULL REFERENCES ledger_accounts(id),
    credit_account_id  TEXT NOT NULL REFERENCES ledger_accounts(id),
    amount             BIGINT NOT NULL CHECK (amount > 0),
    currency           TEXT NOT NULL,
    pending_id         TEXT,
    timeout_ms         BIGINT,
    expires_at         BIGINT,
    metadata           TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, pending_id),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('posted', 'pending')) = (pending_id IS NULL))
);

-- Open holds: one row per pending transfer not yet posted, voided or
-- expired. Deleting the row is how exactly one closer wins; the expiry
-- sweep reads the index instead of scanning the journal.
CREATE TABLE ledger_pending (
    tenant_id    TEXT NOT NULL,
    transfer_id  TEXT NOT NULL,
    expires_at   BIGINT,
    PRIMARY KEY (tenant_id, transfer_id),
    FOREIGN KEY (tenant_id, transfer_id) REFERENCES ledger_transfers (tenant_id, id)
);

CREATE INDEX ledger_pending_expiry ON ledger_pending (expires_at);

-- Append-only, enforced by the database too.
CREATE FUNCTION ledger_transfers_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_transfers_no_change BEFORE UPDATE OR DELETE ON ledger_transfers
FOR EACH ROW EXECUTE FUNCTION ledger_transfers_append_only();
