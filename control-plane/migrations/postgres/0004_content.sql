-- Content: courses, their modules and units, frozen unit versions, learning
-- paths (prerequisite edges between units) and the minimal per-learner unit
-- results the frontier reads until progress tracking (issue 5, item 4)
-- feeds them. Every row carries its tenant id and every query filters on
-- it. Ids are UUIDv7 text, so id order is creation order.
CREATE TABLE courses (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX courses_tenant ON courses (tenant_id, id);

CREATE TABLE course_modules (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    course_id   TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX course_modules_course ON course_modules (tenant_id, course_id, id);

-- The draft lives on the unit row; `published_version` is 0 until the first
-- publish, then the number of the latest row in unit_versions. The kind is
-- fixed at creation: a draft of another kind is a new unit.
CREATE TABLE units (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    course_id          TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    module_id          TEXT NOT NULL REFERENCES course_modules(id) ON DELETE CASCADE,
    kind               TEXT NOT NULL CHECK (kind IN ('lesson', 'quiz', 'assignment', 'live_classroom')),
    draft_title        TEXT NOT NULL,
    draft_body         TEXT NOT NULL,
    draft_updated_at   BIGINT NOT NULL,
    published_version  BIGINT NOT NULL DEFAULT 0 CHECK (published_version >= 0),
    created_at         BIGINT NOT NULL
);

CREATE INDEX units_module ON units (tenant_id, module_id, id);
CREATE INDEX units_tenant ON units (tenant_id, id);

-- Published versions are immutable: a submission records the version it
-- was made against, so that version must never change under it.
CREATE TABLE unit_versions (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    unit_id       TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    version       BIGINT NOT NULL CHECK (version >= 1),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (unit_id, version)
);

CREATE FUNCTION unit_versions_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'published unit versions are immutable';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER unit_versions_no_update BEFORE UPDATE ON unit_versions
FOR EACH ROW EXECUTE FUNCTION unit_versions_immutable();

-- `unit_id` requires `prerequisite_id`: the learner must have completed the
-- prerequisite (with at least `min_score`, when set) first.
CREATE TABLE unit_prerequisites (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    unit_id          TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    prerequisite_id  TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    min_score        BIGINT CHECK (min_score BETWEEN 0 AND 100),
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, unit_id, prerequisite_id),
    CHECK (unit_id <> prerequisite_id)
);

CREATE INDEX unit_prerequisites_prerequisite ON unit_prerequisites (tenant_id, prerequisite_id);

-- One row per learner and completed unit; `score` is 0 to 100, or NULL for
-- a unit that is not scored. Progress tracking (issue 5, item 4) will write
-- these; for now instructors (and tests) record them directly.
CREATE TABLE unit_results (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    unit_id       TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    score         BIGINT CHECK (score BETWEEN 0 AND 100),
    completed_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, unit_id)
);
