//! The control plane's HTTP API. The binary wraps this router with the shared
//! layers (request ids, metrics, limits); this module only knows routes.
//! Errors leave as `{"error": {"code", "message"}}` with a stable code.
//!
//! This tree is the only place that knows HTTP: [`router`] is the one list
//! of routes, [`extract`] holds the extractors and the mapping from domain
//! errors to statuses and codes, and each area has one file of handlers
//! that parse the request, call the domain modules (rules and SQL, which
//! never import this tree) and shape the answer.

pub mod analytics;
pub mod billing;
pub mod cache;
pub mod catalogue;
pub mod content;
pub mod events;
pub mod extract;
pub mod identity;
pub mod learning;
pub mod ledger;
pub mod openapi;
pub mod submissions;
pub mod timetables;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::service::ControlPlane;

pub use extract::{ApiError, Caller, ErrorBody, ErrorDetail};

/// The routes of the control plane, ready to be nested under the shared
/// layers: every route the control plane serves, in one list, so that the
/// OpenAPI test and a reader find them in one place.
pub fn router(cp: ControlPlane) -> Router {
    let submissions_batch_body_max =
        crate::submissions::batch_body_bytes_max(cp.config().submissions_batch_max);
    let timetable_body_max =
        usize::try_from(cp.config().timetable_body_bytes_max).unwrap_or(usize::MAX);
    Router::new()
        // Identity, sessions and keys.
        .route("/.well-known/jwks.json", get(identity::jwks))
        .route("/api/v1/auth/sign-up", post(identity::sign_up))
        .route("/api/v1/auth/sign-in", post(identity::sign_in))
        .route("/api/v1/auth/refresh", post(identity::refresh))
        .route("/api/v1/auth/sign-out", post(identity::sign_out))
        .route("/api/v1/auth/password", post(identity::change_password))
        .route("/api/v1/auth/keys/rotate", post(identity::rotate_key))
        .route("/api/v1/auth/keys/{kid}", delete(identity::retire_key))
        .route("/api/v1/me", get(identity::me))
        .route("/api/v1/tenants", get(identity::list_tenants))
        // [`openapi::OPENAPI_PATH`], spelled out so that the OpenAPI test
        // reads every path from this list; it fails if the two differ.
        .route("/api/v1/openapi.json", get(openapi::serve))
        // The ledger.
        .route(
            "/api/v1/ledger/accounts",
            post(ledger::create_account).get(ledger::list_accounts),
        )
        .route("/api/v1/ledger/accounts/{id}", get(ledger::get_account))
        .route(
            "/api/v1/ledger/transfers",
            post(ledger::create_transfer).get(ledger::list_transfers),
        )
        .route("/api/v1/ledger/transfers/batch", post(ledger::create_batch))
        .route("/api/v1/ledger/transfers/{id}", get(ledger::get_transfer))
        .route(
            "/api/v1/ledger/transfers/{id}/post",
            post(ledger::post_pending),
        )
        .route(
            "/api/v1/ledger/transfers/{id}/void",
            post(ledger::void_pending),
        )
        .route("/api/v1/ledger/audit", get(ledger::audit))
        // Content and learning paths.
        .route(
            "/api/v1/courses",
            post(content::create_course).get(content::list_courses),
        )
        .route("/api/v1/courses/{id}", get(content::get_course))
        .route(
            "/api/v1/courses/{id}/modules",
            post(content::create_module).get(content::list_modules),
        )
        .route(
            "/api/v1/modules/{id}/units",
            post(content::create_unit).get(content::list_units),
        )
        .route(
            "/api/v1/units/{id}",
            get(content::get_unit).put(content::update_draft),
        )
        .route("/api/v1/units/{id}/publish", post(content::publish))
        .route(
            "/api/v1/units/{id}/prerequisites",
            post(content::add_prerequisite).get(content::list_prerequisites),
        )
        .route(
            "/api/v1/units/{id}/prerequisites/{prerequisite_id}",
            delete(content::remove_prerequisite),
        )
        .route(
            "/api/v1/units/{id}/results/{user_id}",
            put(content::record_result),
        )
        .route("/api/v1/paths/frontier", get(content::frontier))
        .route("/api/v1/grading/units/{id}", get(content::grading_unit))
        // The public catalogue.
        .route("/catalogue/{slug}", get(catalogue::catalogue_page))
        .route(
            "/catalogue/{slug}/courses/{id}",
            get(catalogue::course_page),
        )
        .route(
            "/api/v1/catalogue/settings",
            get(catalogue::get_settings).put(catalogue::put_settings),
        )
        // Submissions, from edges with the service key; the batch has its
        // own body limit (`submissions_batch_max` reports).
        .route(
            "/api/v1/submissions",
            post(submissions::report).get(submissions::list),
        )
        .route(
            "/api/v1/submissions/batch",
            post(submissions::report_batch)
                .layer(DefaultBodyLimit::max(submissions_batch_body_max)),
        )
        // Billing.
        .route("/api/v1/billing/plans", get(billing::list_plans))
        .route("/api/v1/billing/subscriptions", post(billing::subscribe))
        .route(
            "/api/v1/billing/subscriptions/{id}",
            get(billing::get_subscription),
        )
        .route(
            "/api/v1/billing/subscriptions/{id}/cancel",
            post(billing::cancel),
        )
        .route(
            "/api/v1/billing/subscriptions/{id}/payment-method",
            put(billing::set_payment_method),
        )
        .route("/api/v1/billing/invoices", get(billing::list_invoices))
        .route("/api/v1/billing/invoices/{id}", get(billing::get_invoice))
        .route(
            "/api/v1/billing/webhooks/stripe",
            post(billing::stripe_webhook),
        )
        // Enrollments, progress and live classes.
        .route(
            "/api/v1/courses/{id}/enrollments",
            post(learning::enroll).get(learning::list_enrollments),
        )
        .route(
            "/api/v1/courses/{id}/enrollments/{user_id}",
            delete(learning::drop_enrollment),
        )
        .route("/api/v1/me/enrollments", get(learning::my_enrollments))
        .route(
            "/api/v1/courses/{id}/cohorts",
            post(learning::create_cohort).get(learning::list_cohorts),
        )
        .route(
            "/api/v1/units/{id}/progress",
            put(learning::lesson_progress),
        )
        .route("/api/v1/units/{id}/attempts", post(learning::quiz_attempt))
        .route("/api/v1/me/progress", get(learning::my_progress))
        .route("/api/v1/live/tickets", post(learning::ticket))
        .route(
            "/api/v1/live/attendance",
            post(learning::report_attendance).layer(DefaultBodyLimit::max(
                crate::learning::live::ATTENDANCE_BODY_BYTES_MAX,
            )),
        )
        .route(
            "/api/v1/live/{class_id}/attendance",
            get(learning::class_attendance),
        )
        // The outbox, for operators and edges.
        .route("/api/v1/events", get(events::list))
        // Course figures.
        .route("/api/v1/courses/{id}/stats", get(analytics::stats))
        .route(
            "/api/v1/courses/{id}/unit-stats",
            get(analytics::unit_stats),
        )
        // Timetables; the import has its own body limit
        // (`timetable_body_bytes_max`).
        .route(
            "/api/v1/timetables",
            post(timetables::import)
                .layer(DefaultBodyLimit::max(timetable_body_max))
                .get(timetables::list),
        )
        .route("/api/v1/timetables/{id}", delete(timetables::delete))
        .route("/api/v1/forecast", get(timetables::forecast))
        .route("/api/v1/sandbox/plan", get(timetables::plan))
        .route(
            "/api/v1/timetables/{id}/occurrences",
            get(timetables::occurrences),
        )
        .with_state(cp)
}
