-- One record per run that counts, reported by the edge node that ran it.
-- The id is the run's own (a UUIDv7 chosen by the edge), so a report that
-- is retried after a lost answer lands on the same row: recording is
-- idempotent, and `body` (the report as first received, canonical JSON)
-- lets a retry with different contents be told apart and refused.
CREATE TABLE submissions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    language     TEXT NOT NULL,
    status       TEXT NOT NULL,
    region       TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    body         TEXT NOT NULL
);

CREATE INDEX submissions_tenant_user ON submissions (tenant_id, user_id, id);
