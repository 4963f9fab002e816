-- Per-learner progress on each unit, by kind: lessons (time on page,
-- deepest scroll in thousandths), quizzes (attempts, best score),
-- assignments (tests passed of total, submissions), live classrooms
-- (seconds present, submissions in class). `completed_at` is set once, in
-- the same transaction that writes the unit's row in unit_results (what
-- the learning-path frontier reads), so the two always agree.
CREATE TABLE unit_progress (
    tenant_id              TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id                TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    unit_id                TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    course_id              TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    kind                   TEXT NOT NULL CHECK (kind IN ('lesson', 'quiz', 'assignment', 'live_classroom')),
    seconds_on_page        BIGINT NOT NULL DEFAULT 0 CHECK (seconds_on_page >= 0),
    scroll_depth_permille  BIGINT NOT NULL DEFAULT 0 CHECK (scroll_depth_permille BETWEEN 0 AND 1000),
    attempts               BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    best_score             BIGINT CHECK (best_score BETWEEN 0 AND 100),
    tests_passed           BIGINT CHECK (tests_passed >= 0),
    tests_total            BIGINT CHECK (tests_total >= 0),
    submissions            BIGINT NOT NULL DEFAULT 0 CHECK (submissions >= 0),
    accepted               BIGINT NOT NULL DEFAULT 0 CHECK (accepted >= 0),
    seconds_present        BIGINT NOT NULL DEFAULT 0 CHECK (seconds_present >= 0),
    completed_at           BIGINT,
    updated_at             BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, unit_id)
);

CREATE INDEX unit_progress_course ON unit_progress (tenant_id, user_id, course_id, unit_id);
CREATE INDEX units_course ON units (tenant_id, course_id, id);
