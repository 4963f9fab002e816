-- Cheaper journal appends and balance updates on the hot path, with the
-- same guarantees.
--
-- 1. The journal's references (its tenant, its two accounts) are kept by
--    the ledger's write path, not by per-row foreign-key triggers: every
--    write locks both accounts of every row it appends, in the caller's
--    tenant, in the same transaction (control_plane::ledger::store), and
--    accounts can no longer be deleted (the trigger below; nothing deleted
--    them before either), so neither can a tenant with accounts. The
--    triggers only repeated those lookups: three index probes and row locks
--    per journal row, about a third of a batch's insert. `ledger::audit`
--    reports a journal row that names an account the tenant does not have.
--    SQLite keeps its checks: there they cost little and nothing is hot.
-- 2. One closer per pending transfer stays unique, in a partial index: the
--    rows that close nothing (nearly all) no longer add a NULL entry each.
-- 3. Accounts leave half of each page free, so that rewriting a balance is
--    a heap-only (HOT) update in the same page instead of a new entry in
--    each of the table's three indexes. New pages only; an existing table
--    gets there as it is rewritten.
ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_tenant_id_fkey,
    DROP CONSTRAINT ledger_transfers_debit_account_id_fkey,
    DROP CONSTRAINT ledger_transfers_credit_account_id_fkey;

CREATE FUNCTION ledger_accounts_never_deleted() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger accounts are never deleted';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
FOR EACH ROW EXECUTE FUNCTION ledger_accounts_never_deleted();

CREATE UNIQUE INDEX ledger_transfers_one_closer ON ledger_transfers (tenant_id, pending_id)
    WHERE pending_id IS NOT NULL;
ALTER TABLE ledger_transfers DROP CONSTRAINT ledger_transfers_tenant_id_pending_id_key;

ALTER TABLE ledger_accounts SET (fillfactor = 50);
