-- Identity foundation: tenants, users, memberships and token signing keys.
-- Times are unix milliseconds (BIGINT) and ids are text UUIDs so that the same
-- queries run unchanged on SQLite and PostgreSQL through sqlx's Any driver.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('learner', 'instructor', 'operator')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
);

CREATE TABLE signing_keys (
    kid              TEXT PRIMARY KEY,
    algorithm        TEXT NOT NULL CHECK (algorithm = 'EdDSA'),
    private_pkcs8    BLOB NOT NULL,
    public_key       BLOB NOT NULL,
    created_at       BIGINT NOT NULL,
    retired_at       BIGINT
);
