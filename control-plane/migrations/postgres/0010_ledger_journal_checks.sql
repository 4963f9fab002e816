-- The journal's account references are kept by the ledger's write path, not
-- by per-row foreign-key triggers: every write locks both accounts of every
-- row it appends, in the caller's tenant, in the same transaction
-- (control_plane::ledger::store), and accounts are never deleted, so the
-- triggers only repeated that lookup, two index probes and a row lock per
-- journal row, about a third of a batch's insert. `ledger::audit` reports a
-- journal row that names an account the tenant does not have. The tenant
-- reference stays (one probe per row, and the cascade on tenant deletion).
-- SQLite keeps its checks: there they cost little and nothing is hot.
ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_debit_account_id_fkey,
    DROP CONSTRAINT ledger_transfers_credit_account_id_fkey;
