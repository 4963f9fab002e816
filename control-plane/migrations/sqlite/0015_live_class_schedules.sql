-- Live classes with a schedule count as timetable sessions without an
-- import (issue 20): each published live-class unit keeps its latest
-- schedule here (times in unix milliseconds), written when it is
-- published, so the forecast reads a window by index instead of parsing
-- every unit's body.
CREATE TABLE live_class_schedules (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    unit_id     TEXT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    course_id   TEXT NOT NULL,
    cohort      TEXT NOT NULL,
    region      TEXT NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL CHECK (ends_at > starts_at),
    PRIMARY KEY (tenant_id, unit_id)
);

CREATE INDEX live_class_schedules_window ON live_class_schedules (starts_at);

-- The live classes published before this migration, from their latest
-- version.
INSERT INTO live_class_schedules (tenant_id, unit_id, course_id, cohort, region, starts_at, ends_at)
SELECT u.tenant_id, u.id, u.course_id,
       json_extract(v.body, '$.cohort'),
       json_extract(v.body, '$.region'),
       CAST(ROUND((julianday(json_extract(v.body, '$.schedule.starts_at')) - 2440587.5) * 86400000) AS INTEGER),
       CAST(ROUND((julianday(json_extract(v.body, '$.schedule.starts_at')) - 2440587.5) * 86400000) AS INTEGER)
           + json_extract(v.body, '$.schedule.duration_minutes') * 60000
FROM units u JOIN unit_versions v ON v.unit_id = u.id AND v.version = u.published_version
WHERE u.kind = 'live_classroom' AND u.published_version > 0
  AND julianday(json_extract(v.body, '$.schedule.starts_at')) IS NOT NULL
  AND json_extract(v.body, '$.schedule.duration_minutes') > 0;
