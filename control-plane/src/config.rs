//! Settings of the control plane, handed in already parsed by the binary.
//! Each limit carries its unit in its name and has a named default so that
//! the configuration reference and the code cannot drift apart.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ControlPlaneError;

/// Default cap on pooled database connections.
pub const DB_CONNECTIONS_MAX_DEFAULT: u32 = 10;
/// Default time to wait for a pooled connection before failing a request.
pub const DB_ACQUIRE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default lifetime of an access token: short, because edges cannot revoke.
pub const ACCESS_TOKEN_TTL_SECONDS_DEFAULT: u64 = 900;
/// Default lifetime of the tokens `lyceum dev` hands out for its dev accounts.
pub const DEV_TOKEN_TTL_SECONDS_DEFAULT: u64 = 7 * 24 * 3600;
/// Default lifetime of a refresh token.
pub const REFRESH_TOKEN_TTL_SECONDS_DEFAULT: u64 = 30 * 24 * 3600;
/// Default shortest password accepted at sign-up and password change.
pub const PASSWORD_BYTES_MIN_DEFAULT: u32 = 10;
/// Default cap on the length of an email or password accepted at sign-in.
pub const CREDENTIAL_BYTES_MAX_DEFAULT: u32 = 1_024;

/// Default cap on transfers in one ledger batch (one database transaction).
pub const LEDGER_BATCH_TRANSFERS_MAX_DEFAULT: u32 = 1_000;
/// Largest `ledger_batch_transfers_max` accepted: a batch binds two account
/// ids per transfer in one statement, and SQLite allows 32,766 parameters.
pub const LEDGER_BATCH_TRANSFERS_MAX_LIMIT: u32 = 8_000;
/// Default cap on single transfers waiting for the ledger's group commit.
pub const LEDGER_GROUP_COMMIT_QUEUE_MAX_DEFAULT: u32 = 10_000;
/// Default cap on transfers one group commit writes in one transaction:
/// 2,000 (twenty batches of 100) doubled batched throughput over 500 in
/// `bench-ledger` at 64 clients, the commit's flush being paid once for
/// more rows (README, "Ledger and catalogue throughput").
pub const LEDGER_GROUP_COMMIT_TRANSFERS_MAX_DEFAULT: u32 = 2_000;
/// Default number of group-commit writers (transactions in flight).
pub const LEDGER_GROUP_COMMIT_WRITERS_DEFAULT: u32 = 1;
/// Default cap on the items of one page of a ledger list.
pub const LEDGER_PAGE_SIZE_MAX_DEFAULT: u32 = 1_000;
/// Default cap on the serialised JSON metadata of an account or transfer.
pub const LEDGER_METADATA_BYTES_MAX_DEFAULT: u32 = 4_096;
/// Default cap on a ledger id (transfer id, account code) in bytes.
pub const LEDGER_ID_BYTES_MAX_DEFAULT: u32 = 128;
/// Default longest timeout a pending transfer may ask for: 30 days.
pub const LEDGER_PENDING_TIMEOUT_MS_MAX_DEFAULT: u64 = 30 * 24 * 3600 * 1000;
/// Default pause between sweeps that expire timed-out pending transfers.
pub const LEDGER_EXPIRY_SWEEP_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default cap on pending transfers expired by one sweep.
pub const LEDGER_EXPIRY_SWEEP_BATCH_MAX_DEFAULT: u32 = 1_000;

/// Default cap on the reports of one `POST /api/v1/submissions/batch`:
/// an edge's backlog drains 500 at a time, in one transaction each.
pub const SUBMISSIONS_BATCH_MAX_DEFAULT: u32 = 500;
/// Largest `submissions_batch_max` accepted: a batch is one write
/// transaction (on SQLite it holds the database's one write lock), and its
/// body limit grows with it (8 KiB a report: 16 MiB at this limit).
pub const SUBMISSIONS_BATCH_MAX_LIMIT: u32 = 2_000;

/// Default cap on the items of one page of a content list (courses,
/// modules, units, a learner's frontier).
pub const CONTENT_PAGE_SIZE_MAX_DEFAULT: u32 = 1_000;
/// Default cap on answers the catalogue and course-page cache holds.
pub const CONTENT_CACHE_ENTRIES_MAX_DEFAULT: u32 = 10_000;
/// Largest `content_cache_entries_max` accepted.
pub const CONTENT_CACHE_ENTRIES_MAX_LIMIT: u32 = 1_000_000;
/// Default time a cached catalogue or course answer is served as fresh.
pub const CONTENT_CACHE_FRESH_MS_DEFAULT: u64 = 1_000;
/// Default time after that it is still served while one refresh runs.
pub const CONTENT_CACHE_STALE_MS_DEFAULT: u64 = 10_000;
/// Default cap on a unit's serialised JSON body: room for a long lesson.
pub const CONTENT_UNIT_BODY_BYTES_MAX_DEFAULT: u32 = 256 * 1024;
/// Largest `content_unit_body_bytes_max` accepted: below the HTTP library's default
/// 2 MiB body limit, so our own check (with its clear code) is what fires.
pub const CONTENT_UNIT_BODY_BYTES_MAX_LIMIT: u32 = 1024 * 1024;
/// Default cap on the questions of one quiz.
pub const CONTENT_QUIZ_QUESTIONS_MAX_DEFAULT: u32 = 200;
/// Default cap on the tests of one assignment or code question.
pub const CONTENT_ASSIGNMENT_TESTS_MAX_DEFAULT: u32 = 32;
/// Default time a billing webhook's signature stays acceptable (Stripe's
/// own default tolerance).
pub const BILLING_WEBHOOK_TOLERANCE_SECONDS_DEFAULT: u64 = 300;
/// Default time a retried billing request waits for the first request
/// with the same idempotency key to finish.
pub const BILLING_IDEMPOTENCY_WAIT_MS_DEFAULT: u64 = 5_000;
/// Default pause between runs of the billing clock.
pub const BILLING_CLOCK_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default cap on the items of one page of a billing list.
pub const BILLING_PAGE_SIZE_MAX_DEFAULT: u32 = 1_000;
/// Default payment token the built-in development provider declines.
pub const BILLING_DEV_DECLINE_TOKEN_DEFAULT: &str = "tok_decline";
/// Default cap on the prerequisites of one unit.
pub const PATH_EDGES_PER_UNIT_MAX_DEFAULT: u32 = 32;
/// Default lifetime of a live-class ticket: two hours, a long class. The
/// edge checks it when a client joins, not for the rest of the session.
pub const LIVE_TICKET_TTL_SECONDS_DEFAULT: u64 = 7_200;
/// Default cap on the events of one page of `GET /api/v1/events`.
pub const EVENTS_PAGE_SIZE_MAX_DEFAULT: u32 = 1_000;
/// Default cap on the tenants of one page of `GET /api/v1/tenants`.
pub const TENANTS_PAGE_SIZE_MAX_DEFAULT: u32 = 1_000;
/// Default cap on the events one run of the sequencer publishes.
pub const EVENTS_PUBLISH_BATCH_MAX_DEFAULT: u32 = 10_000;
/// Default pause between catch-up rounds of the analytics projection.
pub const ANALYTICS_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default cap on the events the analytics projection applies in one
/// transaction.
pub const ANALYTICS_BATCH_MAX_DEFAULT: u32 = 1_000;
/// Default cap on the body of one `POST /api/v1/timetables`: a school
/// year's iCalendar export of a few hundred events is well under 1 MiB.
pub const TIMETABLE_BODY_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// Largest `timetable_body_bytes_max` accepted: a file is parsed in memory
/// as one piece.
pub const TIMETABLE_BODY_BYTES_MAX_LIMIT: u32 = 16 * 1024 * 1024;
/// Default cap on the events (`VEVENT`s, CSV rows) of one timetable file.
pub const TIMETABLE_EVENTS_PER_FILE_MAX_DEFAULT: u32 = 2_000;
/// Default cap on the occurrences one timetable file expands to: forty
/// weekly classes over a year are 2,080; the rest of a file past the cap is
/// not expanded, and the answer says so.
pub const TIMETABLE_OCCURRENCES_PER_FILE_MAX_DEFAULT: u32 = 20_000;
/// Largest `timetable_occurrences_per_file_max` accepted: every occurrence
/// is a stored row and the import is one transaction.
pub const TIMETABLE_OCCURRENCES_PER_FILE_MAX_LIMIT: u32 = 200_000;
/// Default cap on the expected learners of one event: a large lecture or
/// an exam of a whole school, not a billion.
pub const TIMETABLE_LEARNERS_PER_EVENT_MAX_DEFAULT: u32 = 100_000;
/// Default span, from now, over which recurrences are expanded: a term
/// and a bit. A rule without an end stops here.
pub const TIMETABLE_HORIZON_DAYS_DEFAULT: u32 = 120;
/// Largest `timetable_horizon_days` accepted (about ten years).
pub const TIMETABLE_HORIZON_DAYS_LIMIT: u32 = 3_660;
/// Default regions a timetable event may name: the dev cluster's. The
/// control plane has no registry of regions, so deployments list theirs.
pub const TIMETABLE_REGIONS_DEFAULT: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// The forecast's settings, each `(key, default, min, max)`: integers, so
/// the configuration stays exact (rates per hour, not fractions per minute).
pub const FORECAST_LIMITS: [(&str, u32, u32, u32); 12] = [
    ("forecast_burst_minutes", 3, 0, 60),
    ("forecast_burst_runs_per_learner_hour", 60, 0, 3_600),
    ("forecast_default_runs_per_learner_hour", 12, 0, 3_600),
    ("forecast_observed_half_life_minutes", 5, 1, 1_440),
    ("forecast_learning_days", 14, 0, 365),
    ("forecast_learning_sessions_max", 500, 1, 100_000),
    ("forecast_container_creations_per_minute", 360, 1, 100_000),
    ("forecast_container_start_ms", 1_200, 0, 600_000),
    ("forecast_warm_target_max", 200, 1, 10_000),
    ("forecast_window_minutes_max", 10_080, 1, 44_640),
    ("forecast_sessions_max", 10_000, 1, 1_000_000),
    ("forecast_plan_minutes", 360, 1, 10_080),
];

/// The default of a forecast setting.
const fn forecast_default(i: usize) -> u32 {
    FORECAST_LIMITS[i].1
}

/// Control-plane settings (the `[control_plane]` table of the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// `sqlite://...` or `postgres://...`; empty means SQLite in the data dir.
    pub database_url: String,
    /// Upper bound on pooled database connections.
    pub db_connections_max: u32,
    /// How long a request waits for a pooled connection.
    pub db_acquire_timeout_ms: u64,
    /// Lifetime of access tokens issued at sign-in.
    pub access_token_ttl_seconds: u64,
    /// Lifetime of the dev-account tokens written to `cluster.json`.
    pub dev_token_ttl_seconds: u64,
    /// Lifetime of refresh tokens (each refresh issues a new one).
    pub refresh_token_ttl_seconds: u64,
    /// Shortest password accepted when one is set.
    pub password_bytes_min: u32,
    /// Longest email or password accepted at sign-in.
    pub credential_bytes_max: u32,
    /// Most transfers in one ledger batch request (all or nothing).
    pub ledger_batch_transfers_max: u32,
    /// Most single transfers waiting for the group commit; more get 503.
    pub ledger_group_commit_queue_max: u32,
    /// Most transfers one group commit writes in one transaction.
    pub ledger_group_commit_transfers_max: u32,
    /// Group-commit writers, i.e. ledger transactions in flight at once.
    pub ledger_group_commit_writers: u32,
    /// Most items on one page of a ledger list.
    pub ledger_page_size_max: u32,
    /// Largest serialised metadata of a ledger account or transfer.
    pub ledger_metadata_bytes_max: u32,
    /// Longest transfer id or account code.
    pub ledger_id_bytes_max: u32,
    /// Longest timeout a pending transfer may ask for.
    pub ledger_pending_timeout_ms_max: u64,
    /// Pause between expiry sweeps of pending transfers; 0 turns the sweep
    /// off (tests that drive their own clock do).
    pub ledger_expiry_sweep_interval_ms: u64,
    /// Most pending transfers one sweep expires.
    pub ledger_expiry_sweep_batch_max: u32,
    /// The secret edge nodes present (as a bearer token) to report
    /// submissions; empty refuses every report. `lyceum dev` makes one up.
    pub edge_service_key: String,
    /// Most submissions on one page of `GET /api/v1/submissions`.
    pub submissions_page_size_max: u32,
    /// Most reports in one `POST /api/v1/submissions/batch`; the route's
    /// body limit follows from it
    /// (`submissions::batch_body_bytes_max`).
    pub submissions_batch_max: u32,
    /// Most items on one page of a content list or frontier.
    pub content_page_size_max: u32,
    /// Most answers the catalogue and course-page cache holds; 0 turns it
    /// off.
    pub content_cache_entries_max: u32,
    /// How long a cached catalogue or course answer is fresh.
    pub content_cache_fresh_ms: u64,
    /// How long after that a cached answer is still served (stale) while
    /// one background refresh runs.
    pub content_cache_stale_ms: u64,
    /// Largest serialised body of one unit.
    pub content_unit_body_bytes_max: u32,
    /// Most questions in one quiz.
    pub content_quiz_questions_max: u32,
    /// Most tests (visible and hidden) in one assignment or code question.
    pub content_assignment_tests_max: u32,
    /// Most prerequisites one unit may have.
    pub path_edges_per_unit_max: u32,
    /// Endpoint secret (`whsec_...`) that signs Stripe webhooks; empty
    /// refuses every webhook.
    pub billing_stripe_webhook_secret: String,
    /// How far a webhook's signed timestamp may be from our clock.
    pub billing_webhook_tolerance_seconds: u64,
    /// How long a retried billing request waits for the first one with
    /// the same idempotency key.
    pub billing_idempotency_wait_ms: u64,
    /// Most items on one page of a billing list.
    pub billing_page_size_max: u32,
    /// Pause between runs of the billing clock (trial ends, renewals,
    /// retries); 0 turns it off (tests that drive their own clock do).
    pub billing_clock_interval_ms: u64,
    /// The payment token the built-in development provider declines.
    pub billing_dev_decline_token: String,
    /// Lifetime of the live-class tickets of `POST /api/v1/live/tickets`.
    pub live_ticket_ttl_seconds: u64,
    /// Most events on one page of `GET /api/v1/events`.
    pub events_page_size_max: u32,
    /// Most tenants on one page of the operators' `GET /api/v1/tenants`.
    pub tenants_page_size_max: u32,
    /// Most events one run of the outbox sequencer publishes.
    pub events_publish_batch_max: u32,
    /// Pause between catch-up rounds of the analytics projection; 0 turns
    /// it off (tests that drive it themselves do).
    pub analytics_interval_ms: u64,
    /// Most events the analytics projection applies in one transaction.
    pub analytics_batch_max: u32,
    /// Largest body of one timetable import.
    pub timetable_body_bytes_max: u32,
    /// Most events (`VEVENT`s or CSV rows) in one timetable file.
    pub timetable_events_per_file_max: u32,
    /// Most occurrences one timetable file expands to; the rest is cut and
    /// the answer says so.
    pub timetable_occurrences_per_file_max: u32,
    /// Most expected learners of one timetable event.
    pub timetable_learners_per_event_max: u32,
    /// How far ahead of now recurrences are expanded, in days.
    pub timetable_horizon_days: u32,
    /// The regions a timetable event may name (region ids of the edges).
    pub timetable_regions: Vec<String>,
    /// Minutes at the start of a timetabled session in which every
    /// learner runs code (the burst).
    pub forecast_burst_minutes: u32,
    /// Runs per learner per hour during the burst.
    pub forecast_burst_runs_per_learner_hour: u32,
    /// Runs per learner per hour after the burst, for a course and
    /// language the platform has learned nothing about yet.
    pub forecast_default_runs_per_learner_hour: u32,
    /// Half-life of the observed run rate's weights, in minutes.
    pub forecast_observed_half_life_minutes: u32,
    /// How many days of past sessions teach the per-course run rate; 0
    /// never learns (the default rate always).
    pub forecast_learning_days: u32,
    /// Most past sessions read to learn the rates (the newest).
    pub forecast_learning_sessions_max: u32,
    /// Containers one edge's sandbox engine creates per minute (measured:
    /// about 6 a second on a 2-core machine), for the lead time.
    pub forecast_container_creations_per_minute: u32,
    /// How long one container takes to start, in milliseconds.
    pub forecast_container_start_ms: u32,
    /// Largest warm target the forecast asks of one language's pool.
    pub forecast_warm_target_max: u32,
    /// Longest window of `GET /api/v1/forecast`, in minutes.
    pub forecast_window_minutes_max: u32,
    /// Most sessions one forecast reads; past it the answer says `capped`.
    pub forecast_sessions_max: u32,
    /// Minutes of planned warm targets sent to edges
    /// (`GET /api/v1/sandbox/plan`): how long an edge can follow the
    /// timetable without the control plane.
    pub forecast_plan_minutes: u32,
    /// Directory for the embedded SQLite database; set by the binary from
    /// the global data dir, not by users.
    #[serde(skip)]
    pub data_dir: PathBuf,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7400".to_owned(),
            database_url: String::new(),
            db_connections_max: DB_CONNECTIONS_MAX_DEFAULT,
            db_acquire_timeout_ms: DB_ACQUIRE_TIMEOUT_MS_DEFAULT,
            access_token_ttl_seconds: ACCESS_TOKEN_TTL_SECONDS_DEFAULT,
            dev_token_ttl_seconds: DEV_TOKEN_TTL_SECONDS_DEFAULT,
            refresh_token_ttl_seconds: REFRESH_TOKEN_TTL_SECONDS_DEFAULT,
            password_bytes_min: PASSWORD_BYTES_MIN_DEFAULT,
            credential_bytes_max: CREDENTIAL_BYTES_MAX_DEFAULT,
            ledger_batch_transfers_max: LEDGER_BATCH_TRANSFERS_MAX_DEFAULT,
            ledger_group_commit_queue_max: LEDGER_GROUP_COMMIT_QUEUE_MAX_DEFAULT,
            ledger_group_commit_transfers_max: LEDGER_GROUP_COMMIT_TRANSFERS_MAX_DEFAULT,
            ledger_group_commit_writers: LEDGER_GROUP_COMMIT_WRITERS_DEFAULT,
            ledger_page_size_max: LEDGER_PAGE_SIZE_MAX_DEFAULT,
            ledger_metadata_bytes_max: LEDGER_METADATA_BYTES_MAX_DEFAULT,
            ledger_id_bytes_max: LEDGER_ID_BYTES_MAX_DEFAULT,
            ledger_pending_timeout_ms_max: LEDGER_PENDING_TIMEOUT_MS_MAX_DEFAULT,
            ledger_expiry_sweep_interval_ms: LEDGER_EXPIRY_SWEEP_INTERVAL_MS_DEFAULT,
            ledger_expiry_sweep_batch_max: LEDGER_EXPIRY_SWEEP_BATCH_MAX_DEFAULT,
            edge_service_key: String::new(),
            submissions_page_size_max: 1_000,
            submissions_batch_max: SUBMISSIONS_BATCH_MAX_DEFAULT,
            content_page_size_max: CONTENT_PAGE_SIZE_MAX_DEFAULT,
            content_cache_entries_max: CONTENT_CACHE_ENTRIES_MAX_DEFAULT,
            content_cache_fresh_ms: CONTENT_CACHE_FRESH_MS_DEFAULT,
            content_cache_stale_ms: CONTENT_CACHE_STALE_MS_DEFAULT,
            content_unit_body_bytes_max: CONTENT_UNIT_BODY_BYTES_MAX_DEFAULT,
            content_quiz_questions_max: CONTENT_QUIZ_QUESTIONS_MAX_DEFAULT,
            content_assignment_tests_max: CONTENT_ASSIGNMENT_TESTS_MAX_DEFAULT,
            path_edges_per_unit_max: PATH_EDGES_PER_UNIT_MAX_DEFAULT,
            billing_stripe_webhook_secret: String::new(),
            billing_webhook_tolerance_seconds: BILLING_WEBHOOK_TOLERANCE_SECONDS_DEFAULT,
            billing_idempotency_wait_ms: BILLING_IDEMPOTENCY_WAIT_MS_DEFAULT,
            billing_page_size_max: BILLING_PAGE_SIZE_MAX_DEFAULT,
            billing_clock_interval_ms: BILLING_CLOCK_INTERVAL_MS_DEFAULT,
            billing_dev_decline_token: BILLING_DEV_DECLINE_TOKEN_DEFAULT.to_owned(),
            live_ticket_ttl_seconds: LIVE_TICKET_TTL_SECONDS_DEFAULT,
            events_page_size_max: EVENTS_PAGE_SIZE_MAX_DEFAULT,
            tenants_page_size_max: TENANTS_PAGE_SIZE_MAX_DEFAULT,
            events_publish_batch_max: EVENTS_PUBLISH_BATCH_MAX_DEFAULT,
            analytics_interval_ms: ANALYTICS_INTERVAL_MS_DEFAULT,
            analytics_batch_max: ANALYTICS_BATCH_MAX_DEFAULT,
            timetable_body_bytes_max: TIMETABLE_BODY_BYTES_MAX_DEFAULT,
            timetable_events_per_file_max: TIMETABLE_EVENTS_PER_FILE_MAX_DEFAULT,
            timetable_occurrences_per_file_max: TIMETABLE_OCCURRENCES_PER_FILE_MAX_DEFAULT,
            timetable_learners_per_event_max: TIMETABLE_LEARNERS_PER_EVENT_MAX_DEFAULT,
            timetable_horizon_days: TIMETABLE_HORIZON_DAYS_DEFAULT,
            timetable_regions: TIMETABLE_REGIONS_DEFAULT.map(str::to_owned).to_vec(),
            forecast_burst_minutes: forecast_default(0),
            forecast_burst_runs_per_learner_hour: forecast_default(1),
            forecast_default_runs_per_learner_hour: forecast_default(2),
            forecast_observed_half_life_minutes: forecast_default(3),
            forecast_learning_days: forecast_default(4),
            forecast_learning_sessions_max: forecast_default(5),
            forecast_container_creations_per_minute: forecast_default(6),
            forecast_container_start_ms: forecast_default(7),
            forecast_warm_target_max: forecast_default(8),
            forecast_window_minutes_max: forecast_default(9),
            forecast_sessions_max: forecast_default(10),
            forecast_plan_minutes: forecast_default(11),
            data_dir: PathBuf::from(".lyceum/control-plane"),
        }
    }
}

impl ControlPlaneConfig {
    /// The forecast's settings in the order of [`FORECAST_LIMITS`].
    pub fn forecast_values(&self) -> [u32; 12] {
        [
            self.forecast_burst_minutes,
            self.forecast_burst_runs_per_learner_hour,
            self.forecast_default_runs_per_learner_hour,
            self.forecast_observed_half_life_minutes,
            self.forecast_learning_days,
            self.forecast_learning_sessions_max,
            self.forecast_container_creations_per_minute,
            self.forecast_container_start_ms,
            self.forecast_warm_target_max,
            self.forecast_window_minutes_max,
            self.forecast_sessions_max,
            self.forecast_plan_minutes,
        ]
    }

    /// Checks relations that serde cannot express.
    ///
    /// # Errors
    /// Returns [`ControlPlaneError::Config`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ControlPlaneError> {
        let bad = |key: &str, reason: &str| {
            Err(ControlPlaneError::Config {
                key: format!("control_plane.{key}"),
                reason: reason.to_owned(),
            })
        };
        if self.db_connections_max == 0 {
            return bad("db_connections_max", "must be at least 1");
        }
        if self.db_acquire_timeout_ms == 0 {
            return bad("db_acquire_timeout_ms", "must be at least 1");
        }
        if self.access_token_ttl_seconds == 0 {
            return bad("access_token_ttl_seconds", "must be at least 1");
        }
        if self.dev_token_ttl_seconds == 0 {
            return bad("dev_token_ttl_seconds", "must be at least 1");
        }
        if self.refresh_token_ttl_seconds == 0 {
            return bad("refresh_token_ttl_seconds", "must be at least 1");
        }
        if self.password_bytes_min < 8 {
            return bad("password_bytes_min", "must be at least 8");
        }
        if self.credential_bytes_max < 64 {
            return bad("credential_bytes_max", "must be at least 64");
        }
        if self.password_bytes_min > self.credential_bytes_max {
            return bad(
                "password_bytes_min",
                "must not exceed control_plane.credential_bytes_max",
            );
        }
        if self.ledger_batch_transfers_max == 0 {
            return bad("ledger_batch_transfers_max", "must be at least 1");
        }
        if self.ledger_batch_transfers_max > LEDGER_BATCH_TRANSFERS_MAX_LIMIT {
            return bad(
                "ledger_batch_transfers_max",
                "must be at most 8000 (SQLite binds at most 32766 parameters)",
            );
        }
        if self.ledger_group_commit_queue_max == 0 {
            return bad("ledger_group_commit_queue_max", "must be at least 1");
        }
        if self.ledger_group_commit_transfers_max == 0
            || self.ledger_group_commit_transfers_max > LEDGER_BATCH_TRANSFERS_MAX_LIMIT
        {
            return bad(
                "ledger_group_commit_transfers_max",
                "must be 1 to 8000 (SQLite binds at most 32766 parameters)",
            );
        }
        if self.ledger_group_commit_writers == 0 || self.ledger_group_commit_writers > 64 {
            return bad("ledger_group_commit_writers", "must be 1 to 64");
        }
        if self.submissions_page_size_max == 0 {
            return bad("submissions_page_size_max", "must be at least 1");
        }
        if self.submissions_batch_max == 0
            || self.submissions_batch_max > SUBMISSIONS_BATCH_MAX_LIMIT
        {
            return bad("submissions_batch_max", "must be 1 to 2000");
        }
        if !self.edge_service_key.is_empty() && self.edge_service_key.len() < 16 {
            return bad(
                "edge_service_key",
                "must be empty (reports refused) or at least 16 bytes",
            );
        }
        if self.ledger_page_size_max == 0 {
            return bad("ledger_page_size_max", "must be at least 1");
        }
        if self.ledger_metadata_bytes_max < 2 {
            return bad("ledger_metadata_bytes_max", "must be at least 2");
        }
        if self.ledger_id_bytes_max == 0 || self.ledger_id_bytes_max > 1024 {
            return bad("ledger_id_bytes_max", "must be 1 to 1024");
        }
        if self.ledger_pending_timeout_ms_max == 0
            || i64::try_from(self.ledger_pending_timeout_ms_max).is_err()
        {
            return bad(
                "ledger_pending_timeout_ms_max",
                "must be at least 1 and fit in a signed 64-bit integer",
            );
        }
        if self.ledger_expiry_sweep_batch_max == 0 {
            return bad("ledger_expiry_sweep_batch_max", "must be at least 1");
        }
        if self.content_cache_entries_max > CONTENT_CACHE_ENTRIES_MAX_LIMIT {
            return bad("content_cache_entries_max", "must be at most 1000000");
        }
        if self.content_cache_fresh_ms > 86_400_000 {
            return bad("content_cache_fresh_ms", "must be at most 86400000 (a day)");
        }
        if self.content_cache_stale_ms > 86_400_000 {
            return bad("content_cache_stale_ms", "must be at most 86400000 (a day)");
        }
        for (key, value) in [
            ("content_page_size_max", self.content_page_size_max),
            (
                "content_quiz_questions_max",
                self.content_quiz_questions_max,
            ),
            (
                "content_assignment_tests_max",
                self.content_assignment_tests_max,
            ),
            ("path_edges_per_unit_max", self.path_edges_per_unit_max),
            ("events_page_size_max", self.events_page_size_max),
            ("tenants_page_size_max", self.tenants_page_size_max),
            ("events_publish_batch_max", self.events_publish_batch_max),
            ("analytics_batch_max", self.analytics_batch_max),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.live_ticket_ttl_seconds == 0 || self.live_ticket_ttl_seconds > 86_400 {
            return bad("live_ticket_ttl_seconds", "must be 1 to 86400");
        }
        if self.billing_webhook_tolerance_seconds == 0
            || self.billing_webhook_tolerance_seconds > 86_400
        {
            return bad("billing_webhook_tolerance_seconds", "must be 1 to 86400");
        }
        if self.billing_idempotency_wait_ms > 60_000 {
            return bad("billing_idempotency_wait_ms", "must be at most 60000");
        }
        if self.billing_page_size_max == 0 {
            return bad("billing_page_size_max", "must be at least 1");
        }
        if self.billing_dev_decline_token.is_empty() {
            return bad("billing_dev_decline_token", "must not be empty");
        }
        if self.content_unit_body_bytes_max < 2
            || self.content_unit_body_bytes_max > CONTENT_UNIT_BODY_BYTES_MAX_LIMIT
        {
            return bad("content_unit_body_bytes_max", "must be 2 to 1048576");
        }
        if self.timetable_body_bytes_max == 0
            || self.timetable_body_bytes_max > TIMETABLE_BODY_BYTES_MAX_LIMIT
        {
            return bad("timetable_body_bytes_max", "must be 1 to 16777216");
        }
        if self.timetable_events_per_file_max == 0 {
            return bad("timetable_events_per_file_max", "must be at least 1");
        }
        if self.timetable_occurrences_per_file_max == 0
            || self.timetable_occurrences_per_file_max > TIMETABLE_OCCURRENCES_PER_FILE_MAX_LIMIT
        {
            return bad("timetable_occurrences_per_file_max", "must be 1 to 200000");
        }
        if self.timetable_learners_per_event_max == 0 {
            return bad("timetable_learners_per_event_max", "must be at least 1");
        }
        if self.timetable_horizon_days == 0
            || self.timetable_horizon_days > TIMETABLE_HORIZON_DAYS_LIMIT
        {
            return bad("timetable_horizon_days", "must be 1 to 3660");
        }
        for (i, value) in self.forecast_values().into_iter().enumerate() {
            let (key, _, min, max) = FORECAST_LIMITS[i];
            if value < min || value > max {
                return bad(key, &format!("must be {min} to {max}"));
            }
        }
        if self.timetable_regions.is_empty() {
            return bad("timetable_regions", "must name at least one region");
        }
        if let Some(region) = self.timetable_regions.iter().find(|r| {
            r.is_empty()
                || r.len() > 64
                || !r
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }) {
            return bad(
                "timetable_regions",
                &format!("{region:?} must be 1 to 64 bytes of a-z, 0-9 and '-'"),
            );
        }
        if !self.database_url.is_empty()
            && !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return bad(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        Ok(())
    }
}
