-- Timetables (issue 20): imported iCalendar or CSV files, their events
-- (keyed by tenant and UID, so a re-import finds them) and the events'
-- occurrences expanded from the import's now to the horizon. Every row
-- carries its tenant id and every query filters on it. Times are unix
-- milliseconds.
CREATE TABLE timetables (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    format       TEXT NOT NULL CHECK (format IN ('icalendar', 'csv')),
    imported_by  TEXT NOT NULL,
    events       BIGINT NOT NULL DEFAULT 0 CHECK (events >= 0),
    occurrences  BIGINT NOT NULL DEFAULT 0 CHECK (occurrences >= 0),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX timetables_tenant ON timetables (tenant_id, id);

-- `series` is the event's recurrence as RFC 5545 text and `fingerprint` a
-- digest of everything it resolved to: a re-import with the same one is
-- unchanged. `place` is where it was in the file (line or component).
CREATE TABLE timetable_events (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    uid           TEXT NOT NULL,
    timetable_id  TEXT NOT NULL REFERENCES timetables(id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    time_zone     TEXT NOT NULL,
    region        TEXT NOT NULL,
    languages     TEXT NOT NULL,
    learners      BIGINT NOT NULL CHECK (learners >= 0),
    course_id     TEXT,
    cohort_id     TEXT,
    duration_ms   BIGINT NOT NULL CHECK (duration_ms > 0),
    series        TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    place         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, uid)
);

CREATE INDEX timetable_events_timetable ON timetable_events (tenant_id, timetable_id);

CREATE TABLE timetable_occurrences (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    timetable_id  TEXT NOT NULL REFERENCES timetables(id) ON DELETE CASCADE,
    uid           TEXT NOT NULL,
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL CHECK (ends_at > starts_at),
    PRIMARY KEY (tenant_id, uid, starts_at)
);

CREATE INDEX timetable_occurrences_window ON timetable_occurrences (tenant_id, timetable_id, starts_at);
