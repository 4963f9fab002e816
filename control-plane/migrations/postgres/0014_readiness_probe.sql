-- One row the control plane rewrites for its readiness check: a database
-- that answers reads but refuses writes (a full disk, a read-only file
-- system, a chaos drill's database-down) is not ready to record what the
-- edges report, and reads alone would not show it.
CREATE TABLE readiness_probe (
    id          INTEGER PRIMARY KEY,
    written_at  BIGINT NOT NULL
);

INSERT INTO readiness_probe (id, written_at) VALUES (1, 0);
