-- Enrollments, cohorts and live-class attendance (issue 5; the live
-- classroom of issue 6). Every row carries its tenant id and every query
-- filters on it. Times are unix milliseconds, except the RFC 3339 texts
-- edges report (kept as sent, next to their parsed milliseconds).

-- A named group of learners within one course (a term, a class).
CREATE TABLE cohorts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    course_id   TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, course_id, name)
);

CREATE INDEX cohorts_course ON cohorts (tenant_id, course_id, id);

-- One row per learner and course: enrolling again finds it (idempotent),
-- dropping keeps it with status 'dropped' (re-enrolling makes it active).
CREATE TABLE enrollments (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    course_id     TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    cohort_id     TEXT REFERENCES cohorts(id) ON DELETE SET NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'completed', 'dropped')),
    enrolled_at   BIGINT NOT NULL,
    completed_at  BIGINT,
    dropped_at    BIGINT,
    PRIMARY KEY (tenant_id, course_id, user_id)
);

CREATE INDEX enrollments_user ON enrollments (tenant_id, user_id, course_id);

-- One report per live class (the class id is its live_classroom unit's
-- id), sent by the edge that homed it; `body` is the report as first
-- received, in canonical form, so a resend is told apart from a different
-- report under the same class.
CREATE TABLE live_reports (
    class_id       TEXT PRIMARY KEY REFERENCES units(id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    course_id      TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    epoch          BIGINT NOT NULL CHECK (epoch >= 0),
    started_at     TEXT NOT NULL,
    ended_at       TEXT NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    ended_at_ms    BIGINT NOT NULL,
    attendees      BIGINT NOT NULL CHECK (attendees >= 0),
    body           TEXT NOT NULL,
    recorded_at    BIGINT NOT NULL
);

CREATE TABLE live_attendance (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    class_id         TEXT NOT NULL REFERENCES live_reports(class_id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    class_role       TEXT NOT NULL CHECK (class_role IN ('learner', 'instructor')),
    joined_at        TEXT NOT NULL,
    left_at          TEXT NOT NULL,
    seconds_present  BIGINT NOT NULL CHECK (seconds_present >= 0),
    submissions      BIGINT NOT NULL CHECK (submissions >= 0),
    accepted         BIGINT NOT NULL CHECK (accepted >= 0 AND accepted <= submissions),
    PRIMARY KEY (class_id, user_id)
);

-- The unit (and its version) a submission was made against, and how many
-- of its tests passed; NULL for runs outside a unit and for reports from
-- edges that do not send them.
ALTER TABLE submissions ADD COLUMN unit_id TEXT;
ALTER TABLE submissions ADD COLUMN unit_version BIGINT;
ALTER TABLE submissions ADD COLUMN tests_passed BIGINT;
ALTER TABLE submissions ADD COLUMN tests_total BIGINT;

CREATE INDEX submissions_unit ON submissions (tenant_id, unit_id, user_id);
