-- The outbox of domain events, its consumers' cursors, and the analytics
-- projection one of them keeps.
--
-- A writer appends its event in the same transaction as the change, with
-- `seq` from a sequence and `id` NULL: one insert, no shared row to lock,
-- so writers never wait on each other here. `id` is the published position
-- readers page by; the sequencer (control_plane::events::publish) gives
-- ids to committed, unpublished events in `seq` order, holding the single
-- row of domain_event_sequencer, so ids are dense, increase with every
-- publish, and one publish commits them all at once. A reader therefore
-- never sees id n + 1 before id n, whatever order writers committed in
-- (a `seq` drawn early may commit late: it is simply published later).
CREATE TABLE domain_events (
    seq           BIGSERIAL PRIMARY KEY,
    id            BIGINT UNIQUE,
    kind          TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    aggregate_id  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE INDEX domain_events_unpublished ON domain_events (seq) WHERE id IS NULL;

CREATE TABLE domain_event_sequencer (
    singleton  BIGINT PRIMARY KEY CHECK (singleton = 1),
    last_id    BIGINT NOT NULL CHECK (last_id >= 0)
);

INSERT INTO domain_event_sequencer (singleton, last_id) VALUES (1, 0);

-- Where each in-process consumer has read up to; moved in the same
-- transaction as what the consumer did with the events.
CREATE TABLE event_consumers (
    name        TEXT PRIMARY KEY,
    position    BIGINT NOT NULL CHECK (position >= 0),
    updated_at  BIGINT NOT NULL
);

-- The analytics projection: counts per course, kept from the events.
CREATE TABLE course_stats (
    course_id        TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    enrollments      BIGINT NOT NULL DEFAULT 0,
    completions      BIGINT NOT NULL DEFAULT 0,
    drops            BIGINT NOT NULL DEFAULT 0,
    units_completed  BIGINT NOT NULL DEFAULT 0,
    submissions      BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL
);
