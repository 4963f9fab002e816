//! The OpenAPI 3.1 document of the control plane's HTTP API, served at
//! `GET /api/v1/openapi.json` (no token). The schemas come from the code:
//! every request and answer type derives `utoipa::ToSchema` next to its
//! serde derive, so a renamed or added field shows up here by itself. The
//! operations are one table, [`operations`], kept next to the router: the
//! test suite checks it against the routes the router really serves (both
//! ways), so the document cannot silently drift from the API.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ComponentsBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder,
};
use utoipa::ToSchema;

use super::content::Prerequisites;
use super::extract::ErrorBody;
use super::identity::{
    NewOrganisation, PasswordChange, RefreshRequest, RotatedKey, SignInRequest, SignUpRequest,
};
use super::ledger::{BatchAnswer, BatchRequest};
use crate::billing::subscriptions::{NewSubscription, PaymentMethod};
use crate::billing::{Invoice, Plan, Subscription};
use crate::catalogue::{CatalogueSettings, CatalogueSettingsUpdate};
use crate::content::courses::{Course, Module, NewCourse, NewModule};
use crate::content::paths::{FrontierUnit, NewPrerequisite, NewResult, Prerequisite, UnitResult};
use crate::content::units::{DraftUpdate, NewUnit, Published, Unit, UnitSummary};
use crate::identity::{Member, TenantSummary};
use crate::learning::enrollments::{Cohort, Enrollment, NewCohort, NewEnrollment};
use crate::learning::live::{
    AttendanceRecorded, AttendanceReport, ClassAttendance, Ticket, TicketRequest,
};
use crate::learning::progress::{AttemptResult, CourseProgress, LessonReport, UnitProgress};
use crate::learning::quiz::QuizAnswers;
use crate::ledger::{Account, Audit, NewAccount, NewTransfer, Resolve, Transfer};
use crate::sessions::TokenPair;
use crate::submissions::{BatchResults, Submission, SubmissionBatch, SubmissionReport};
use crate::timetables::forecast::{Forecast, PoolPlan};
use crate::timetables::model::{ImportReport, Occurrences, Timetable};
use crate::tokens::Jwks;

/// Path of the document itself.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (sign-in, the key set, this document).
    Public,
    /// A bearer access token; any role unless the handler says otherwise.
    Token,
    /// A bearer access token of one of a few roles (403 for the others).
    TokenWithRole,
    /// The edge service key as a bearer token.
    ServiceKey,
    /// The edge service key, or an operator's access token.
    ServiceKeyOrToken,
    /// A `Stripe-Signature` header over the raw body.
    StripeSignature,
}

/// How a query parameter is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryType {
    Text,
    Flag,
    Count,
    Sequence,
}

/// A query parameter: name, type, description.
type QueryParam = (&'static str, QueryType, &'static str);

const LIMIT: QueryParam = (
    "limit",
    QueryType::Count,
    "items per page, 1 to the list's page_size_max setting; default 100",
);
const AFTER: QueryParam = (
    "after",
    QueryType::Text,
    "cursor: the next_after of the previous page (the last id seen)",
);
const PAGE: &[QueryParam] = &[LIMIT, AFTER];

/// The query of a timetable import.
const IMPORT: &[QueryParam] = &[
    (
        "dry_run",
        QueryType::Flag,
        "true: write nothing, answer what would be imported (problems listed, 200)",
    ),
    (
        "partial",
        QueryType::Flag,
        "true: import the valid events of a file with problems; the answer lists the problems",
    ),
    (
        "name",
        QueryType::Text,
        "the timetable's name; default the calendar's X-WR-CALNAME, else \"timetable\"",
    ),
];

/// The window of a timetable's occurrences.
const WINDOW: &[QueryParam] = &[
    (
        "from",
        QueryType::Text,
        "RFC 3339 start of the window (occurrences starting at or after it); default now",
    ),
    (
        "to",
        QueryType::Text,
        "RFC 3339 end of the window (exclusive); default a week after from",
    ),
];

/// The forecast's region and window.
const FORECAST: &[QueryParam] = &[
    (
        "region",
        QueryType::Text,
        "one region id (of timetable_regions); default every region with sessions or runs",
    ),
    (
        "from",
        QueryType::Text,
        "RFC 3339 start of the window, rounded down to the minute; default now",
    ),
    (
        "to",
        QueryType::Text,
        "RFC 3339 end of the window (exclusive); default six hours after from; at most forecast_window_minutes_max",
    ),
];

/// The region of a pool plan.
const PLAN: &[QueryParam] = &[(
    "region",
    QueryType::Text,
    "the edge's region id (of timetable_regions); required",
)];

/// A JSON body: its schema name and how to register it with its nested
/// schemas.
#[derive(Clone, Copy)]
pub struct Body {
    name: fn() -> std::borrow::Cow<'static, str>,
    register: fn(&mut Vec<(String, RefOr<Schema>)>),
}

fn register<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn body<T: ToSchema>() -> Body {
    Body {
        name: T::name,
        register: register::<T>,
    }
}

/// What a success answers with.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// No body (204).
    Empty,
    /// One JSON object.
    Json(Body),
    /// `{"items": [...], "next_after": "..." | null}`.
    Page(Body),
    /// A server-rendered HTML page (the public catalogue).
    Html,
}

/// One operation of the API: the table row [`document`] turns into an
/// OpenAPI operation.
pub struct Operation {
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// Path as the router spells it, `{name}` for parameters.
    pub path: &'static str,
    /// Unique, stable operation id.
    pub id: &'static str,
    /// Groups operations in viewers.
    tag: &'static str,
    /// One line.
    summary: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// Query parameters.
    query: &'static [QueryParam],
    /// JSON request body, if any; `optional` for post and void.
    request: Option<(Body, Required)>,
    /// Success statuses and bodies.
    ok: Vec<(u16, Answer)>,
    /// Error statuses beyond the ones derived from the shape (400 for a
    /// body or query, 401 and 403 from `auth`, 404 for path parameters,
    /// 413 and 415 for a body).
    errors: &'static [u16],
}

#[allow(clippy::too_many_arguments)]
fn op(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
    query: &'static [QueryParam],
    request: Option<Body>,
    ok: Vec<(u16, Answer)>,
    errors: &'static [u16],
) -> Operation {
    Operation {
        method,
        path,
        id,
        tag,
        summary,
        auth,
        query,
        request: request.map(|b| (b, Required::True)),
        ok,
        errors,
    }
}

/// Every operation the router serves under `/api/v1` and `/.well-known`.
/// Add a row here with every new route: the `openapi` test fails until the
/// two agree.
pub fn operations() -> Vec<Operation> {
    use Answer::{Empty, Html, Json, Page};
    use Auth::{Public, ServiceKey, ServiceKeyOrToken, StripeSignature, Token, TokenWithRole};
    const NONE: &[QueryParam] = &[];
    let mut ops = vec![
        op(
            "GET",
            "/.well-known/jwks.json",
            "get_jwks",
            "auth",
            "the public keys that verify access tokens",
            Public,
            NONE,
            None,
            vec![(200, Json(body::<Jwks>()))],
            &[],
        ),
        op(
            "GET",
            OPENAPI_PATH,
            "get_openapi",
            "meta",
            "this document",
            Public,
            NONE,
            None,
            vec![(200, Empty)],
            &[],
        ),
        op(
            "POST",
            "/api/v1/auth/sign-up",
            "sign_up",
            "auth",
            "create an account: join a tenant or found an organisation",
            Public,
            NONE,
            Some(body::<SignUpRequest>()),
            vec![(201, Json(body::<TokenPair>()))],
            &[404, 409],
        ),
        op(
            "POST",
            "/api/v1/auth/sign-in",
            "sign_in",
            "auth",
            "exchange email and password for tokens",
            Public,
            NONE,
            Some(body::<SignInRequest>()),
            vec![(200, Json(body::<TokenPair>()))],
            &[401],
        ),
        op(
            "POST",
            "/api/v1/auth/refresh",
            "refresh",
            "auth",
            "exchange a refresh token for a new pair",
            Public,
            NONE,
            Some(body::<RefreshRequest>()),
            vec![(200, Json(body::<TokenPair>()))],
            &[401],
        ),
        op(
            "POST",
            "/api/v1/auth/sign-out",
            "sign_out",
            "auth",
            "end the session of a refresh token",
            Public,
            NONE,
            Some(body::<RefreshRequest>()),
            vec![(204, Empty)],
            &[401],
        ),
        op(
            "POST",
            "/api/v1/auth/password",
            "change_password",
            "auth",
            "change the caller's password and end their other sessions",
            Token,
            NONE,
            Some(body::<PasswordChange>()),
            vec![(204, Empty)],
            &[],
        ),
        op(
            "POST",
            "/api/v1/auth/keys/rotate",
            "rotate_key",
            "auth",
            "start signing with a new key (operators)",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<RotatedKey>()))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/auth/keys/{kid}",
            "retire_key",
            "auth",
            "stop accepting tokens of a key (operators)",
            TokenWithRole,
            NONE,
            None,
            vec![(204, Empty)],
            &[409],
        ),
        op(
            "GET",
            "/api/v1/me",
            "get_me",
            "auth",
            "the caller's membership",
            Token,
            NONE,
            None,
            vec![(200, Json(body::<Member>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/tenants",
            "list_tenants",
            "auth",
            "every tenant with its member count and live subscription (operators)",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Page(body::<TenantSummary>()))],
            &[],
        ),
        // Ledger.
        op(
            "POST",
            "/api/v1/ledger/accounts",
            "create_account",
            "ledger",
            "open a ledger account",
            TokenWithRole,
            NONE,
            Some(body::<NewAccount>()),
            vec![(201, Json(body::<Account>()))],
            &[409, 422],
        ),
        op(
            "GET",
            "/api/v1/ledger/accounts",
            "list_accounts",
            "ledger",
            "the tenant's accounts",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Page(body::<Account>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/ledger/accounts/{id}",
            "get_account",
            "ledger",
            "one account with its balances",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Account>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/ledger/transfers",
            "create_transfer",
            "ledger",
            "record a transfer, idempotent by its id",
            TokenWithRole,
            NONE,
            Some(body::<NewTransfer>()),
            vec![
                (201, Json(body::<Transfer>())),
                (200, Json(body::<Transfer>())),
            ],
            &[409, 422],
        ),
        op(
            "GET",
            "/api/v1/ledger/transfers",
            "list_transfers",
            "ledger",
            "the tenant's transfers",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Page(body::<Transfer>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/ledger/transfers/batch",
            "create_transfers",
            "ledger",
            "record transfers all or nothing",
            TokenWithRole,
            NONE,
            Some(body::<BatchRequest>()),
            vec![
                (201, Json(body::<BatchAnswer>())),
                (200, Json(body::<BatchAnswer>())),
            ],
            &[409, 422],
        ),
        op(
            "GET",
            "/api/v1/ledger/transfers/{id}",
            "get_transfer",
            "ledger",
            "one transfer",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Transfer>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/ledger/audit",
            "audit_ledger",
            "ledger",
            "replay the journal and compare it with the stored balances",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Audit>()))],
            &[],
        ),
        // Content and paths.
        op(
            "POST",
            "/api/v1/courses",
            "create_course",
            "content",
            "create a course (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewCourse>()),
            vec![(201, Json(body::<Course>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/courses",
            "list_courses",
            "content",
            "the tenant's courses",
            Token,
            PAGE,
            None,
            vec![(200, Page(body::<Course>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}",
            "get_course",
            "content",
            "one course",
            Token,
            NONE,
            None,
            vec![(200, Json(body::<Course>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/courses/{id}/modules",
            "create_module",
            "content",
            "add a module to a course (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewModule>()),
            vec![(201, Json(body::<Module>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}/modules",
            "list_modules",
            "content",
            "a course's modules",
            Token,
            PAGE,
            None,
            vec![(200, Page(body::<Module>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/modules/{id}/units",
            "create_unit",
            "content",
            "add a unit of one of the four kinds (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewUnit>()),
            vec![(201, Json(body::<Unit>()))],
            &[422],
        ),
        op(
            "GET",
            "/api/v1/modules/{id}/units",
            "list_units",
            "content",
            "a module's units",
            Token,
            PAGE,
            None,
            vec![(200, Page(body::<UnitSummary>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/units/{id}",
            "get_unit",
            "content",
            "a unit as one of its views",
            Token,
            &[(
                "view",
                QueryType::Text,
                "learner (default), published or draft; the last two need an author",
            )],
            None,
            vec![(200, Json(body::<Unit>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/grading/units/{id}",
            "get_grading_unit",
            "content",
            "the latest published version with hidden tests, for the edge that grades",
            ServiceKey,
            &[(
                "tenant_id",
                QueryType::Text,
                "the tenant of the learner being graded",
            )],
            None,
            vec![(200, Json(body::<Unit>()))],
            &[],
        ),
        op(
            "PUT",
            "/api/v1/units/{id}",
            "update_draft",
            "content",
            "replace a unit's draft (authors)",
            TokenWithRole,
            NONE,
            Some(body::<DraftUpdate>()),
            vec![(200, Json(body::<Unit>()))],
            &[422],
        ),
        op(
            "POST",
            "/api/v1/units/{id}/publish",
            "publish_unit",
            "content",
            "publish the draft as a new version (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![
                (201, Json(body::<Published>())),
                (200, Json(body::<Published>())),
            ],
            &[],
        ),
        op(
            "POST",
            "/api/v1/units/{id}/prerequisites",
            "add_prerequisite",
            "paths",
            "add a prerequisite edge; cycles are refused (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewPrerequisite>()),
            vec![(201, Json(body::<Prerequisite>()))],
            &[409],
        ),
        op(
            "GET",
            "/api/v1/units/{id}/prerequisites",
            "list_prerequisites",
            "paths",
            "a unit's prerequisites",
            Token,
            NONE,
            None,
            vec![(200, Json(body::<Prerequisites>()))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/units/{id}/prerequisites/{prerequisite_id}",
            "remove_prerequisite",
            "paths",
            "remove a prerequisite edge (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "PUT",
            "/api/v1/units/{id}/results/{user_id}",
            "record_result",
            "paths",
            "record a learner's score on a unit (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewResult>()),
            vec![(200, Json(body::<UnitResult>()))],
            &[],
        ),
        op(
            "GET",
            "/catalogue/{slug}",
            "public_catalogue",
            "content",
            "a public tenant's courses as an HTML page, for anyone and for search engines",
            Public,
            &[(
                "after",
                QueryType::Text,
                "courses whose id sorts after this one",
            )],
            None,
            vec![(200, Html)],
            &[404],
        ),
        op(
            "GET",
            "/catalogue/{slug}/courses/{id}",
            "public_course",
            "content",
            "a public course's published units as an HTML page",
            Public,
            NONE,
            None,
            vec![(200, Html)],
            &[404],
        ),
        op(
            "GET",
            "/api/v1/catalogue/settings",
            "get_catalogue_settings",
            "content",
            "whether the tenant's catalogue is public at /catalogue/{slug} (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<CatalogueSettings>()))],
            &[],
        ),
        op(
            "PUT",
            "/api/v1/catalogue/settings",
            "put_catalogue_settings",
            "content",
            "make the tenant's catalogue public or private (authors)",
            TokenWithRole,
            NONE,
            Some(body::<CatalogueSettingsUpdate>()),
            vec![(200, Json(body::<CatalogueSettings>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/paths/frontier",
            "get_frontier",
            "paths",
            "the units a learner may take next",
            Token,
            &[
                (
                    "user_id",
                    QueryType::Text,
                    "whose frontier: learners only their own, authors must name one",
                ),
                LIMIT,
                AFTER,
            ],
            None,
            vec![(200, Page(body::<FrontierUnit>()))],
            &[],
        ),
        // Submissions, events, analytics.
        op(
            "POST",
            "/api/v1/submissions",
            "report_submission",
            "submissions",
            "an edge reports a run, idempotent by its id (400 unknown_member for a user \
             outside the tenant)",
            ServiceKey,
            NONE,
            Some(body::<SubmissionReport>()),
            vec![
                (201, Json(body::<Submission>())),
                (200, Json(body::<Submission>())),
            ],
            &[409],
        ),
        op(
            "POST",
            "/api/v1/submissions/batch",
            "report_submissions_batch",
            "submissions",
            "an edge reports 1 to submissions_batch_max runs at once (400 batch_size \
             otherwise); each result is created, existing or refused with the code the \
             single route would answer",
            ServiceKey,
            NONE,
            Some(body::<SubmissionBatch>()),
            vec![(200, Json(body::<BatchResults>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/submissions",
            "list_submissions",
            "submissions",
            "submissions: a learner's own, or the tenant's for authors",
            Token,
            &[
                LIMIT,
                AFTER,
                ("user_id", QueryType::Text, "only this member's"),
            ],
            None,
            vec![(200, Page(body::<Submission>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/events",
            "list_events",
            "events",
            "the outbox's domain events in order (edges and operators)",
            ServiceKeyOrToken,
            &[
                (
                    "after",
                    QueryType::Sequence,
                    "the last event id handled; 0 (default) reads from the start",
                ),
                LIMIT,
            ],
            None,
            vec![(200, Json(body::<super::events::EventPage>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}/stats",
            "get_course_stats",
            "analytics",
            "a course's analytics projection (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<crate::analytics::CourseStats>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}/unit-stats",
            "get_course_unit_stats",
            "analytics",
            "per-unit figures of a course for the class dashboard (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<crate::analytics::CourseUnitStats>()))],
            &[],
        ),
        // Billing.
        op(
            "GET",
            "/api/v1/billing/plans",
            "list_plans",
            "billing",
            "the plans on offer",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Page(body::<Plan>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/billing/subscriptions",
            "subscribe",
            "billing",
            "subscribe the tenant to a plan; needs an Idempotency-Key header",
            TokenWithRole,
            NONE,
            Some(body::<NewSubscription>()),
            vec![(201, Json(body::<Subscription>()))],
            &[404, 409, 422],
        ),
        op(
            "GET",
            "/api/v1/billing/subscriptions/{id}",
            "get_subscription",
            "billing",
            "one subscription",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Subscription>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/billing/subscriptions/{id}/cancel",
            "cancel_subscription",
            "billing",
            "cancel a subscription",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Subscription>()))],
            &[409],
        ),
        op(
            "PUT",
            "/api/v1/billing/subscriptions/{id}/payment-method",
            "set_payment_method",
            "billing",
            "set the payment method charged",
            TokenWithRole,
            NONE,
            Some(body::<PaymentMethod>()),
            vec![(200, Json(body::<Subscription>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/billing/invoices",
            "list_invoices",
            "billing",
            "the tenant's invoices",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Page(body::<Invoice>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/billing/invoices/{id}",
            "get_invoice",
            "billing",
            "one invoice with its lines",
            TokenWithRole,
            NONE,
            None,
            vec![(200, Json(body::<Invoice>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/billing/webhooks/stripe",
            "stripe_webhook",
            "billing",
            "Stripe's events, authenticated by their signature",
            StripeSignature,
            NONE,
            None,
            vec![(200, Json(body::<super::billing::WebhookAnswer>()))],
            &[],
        ),
        // Learning.
        op(
            "POST",
            "/api/v1/courses/{id}/enrollments",
            "enroll",
            "learning",
            "enroll the caller, or a learner (authors)",
            Token,
            NONE,
            Some(body::<NewEnrollment>()),
            vec![
                (201, Json(body::<Enrollment>())),
                (200, Json(body::<Enrollment>())),
            ],
            &[409],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}/enrollments",
            "list_enrollments",
            "learning",
            "a course's enrollments (authors)",
            TokenWithRole,
            &[
                LIMIT,
                AFTER,
                ("cohort_id", QueryType::Text, "only this cohort's"),
            ],
            None,
            vec![(200, Page(body::<Enrollment>()))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/courses/{id}/enrollments/{user_id}",
            "drop_enrollment",
            "learning",
            "drop an enrollment: one's own, or any (authors)",
            Token,
            NONE,
            None,
            vec![(204, Empty)],
            &[403],
        ),
        op(
            "GET",
            "/api/v1/me/enrollments",
            "list_my_enrollments",
            "learning",
            "the caller's enrollments",
            Token,
            PAGE,
            None,
            vec![(200, Page(body::<Enrollment>()))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/courses/{id}/cohorts",
            "create_cohort",
            "learning",
            "create a cohort (authors)",
            TokenWithRole,
            NONE,
            Some(body::<NewCohort>()),
            vec![(201, Json(body::<Cohort>()))],
            &[409],
        ),
        op(
            "GET",
            "/api/v1/courses/{id}/cohorts",
            "list_cohorts",
            "learning",
            "a course's cohorts",
            Token,
            PAGE,
            None,
            vec![(200, Page(body::<Cohort>()))],
            &[],
        ),
        op(
            "PUT",
            "/api/v1/units/{id}/progress",
            "report_lesson_progress",
            "learning",
            "report time on page and scroll depth of a lesson",
            Token,
            NONE,
            Some(body::<LessonReport>()),
            vec![(200, Json(body::<UnitProgress>()))],
            &[403, 422],
        ),
        op(
            "POST",
            "/api/v1/units/{id}/attempts",
            "attempt_quiz",
            "learning",
            "submit a quiz attempt, graded here",
            Token,
            NONE,
            Some(body::<QuizAnswers>()),
            vec![(201, Json(body::<AttemptResult>()))],
            &[403, 409, 422],
        ),
        op(
            "GET",
            "/api/v1/me/progress",
            "get_my_progress",
            "learning",
            "the caller's progress in a course",
            Token,
            &[("course_id", QueryType::Text, "the course"), LIMIT, AFTER],
            None,
            vec![(200, Json(body::<CourseProgress>()))],
            &[403],
        ),
        op(
            "POST",
            "/api/v1/live/tickets",
            "live_ticket",
            "learning",
            "a signed ticket to join a live class on an edge",
            Token,
            NONE,
            Some(body::<TicketRequest>()),
            vec![(200, Json(body::<Ticket>()))],
            &[403],
        ),
        op(
            "POST",
            "/api/v1/live/attendance",
            "report_attendance",
            "learning",
            "an edge reports attendance, idempotent by its id",
            ServiceKey,
            NONE,
            Some(body::<AttendanceReport>()),
            vec![
                (201, Json(body::<AttendanceRecorded>())),
                (200, Json(body::<AttendanceRecorded>())),
            ],
            &[409],
        ),
        op(
            "GET",
            "/api/v1/live/{class_id}/attendance",
            "get_class_attendance",
            "learning",
            "who attended a live class (authors)",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Json(body::<ClassAttendance>()))],
            &[],
        ),
        // Timetables.
        op(
            "POST",
            "/api/v1/timetables",
            "import_timetable",
            "timetables",
            "import a timetable (text/calendar or text/csv; authors)",
            TokenWithRole,
            IMPORT,
            None,
            vec![
                (201, Json(body::<ImportReport>())),
                (200, Json(body::<ImportReport>())),
            ],
            &[409, 413, 415, 422],
        ),
        op(
            "GET",
            "/api/v1/timetables",
            "list_timetables",
            "timetables",
            "the tenant's timetables (authors)",
            TokenWithRole,
            PAGE,
            None,
            vec![(200, Page(body::<Timetable>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/forecast",
            "get_forecast",
            "timetables",
            "expected runs per minute and warm-pool targets per region and language, from the timetables and the recent runs (operators: the fleet; instructors: their tenant)",
            TokenWithRole,
            FORECAST,
            None,
            vec![(200, Json(body::<Forecast>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/sandbox/plan",
            "get_pool_plan",
            "timetables",
            "an edge fetches its region's planned warm targets per language and minute for \
             the next forecast_plan_minutes (the fleet's timetables), and keeps them",
            ServiceKey,
            PLAN,
            None,
            vec![(200, Json(body::<PoolPlan>()))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/timetables/{id}/occurrences",
            "list_timetable_occurrences",
            "timetables",
            "a timetable's occurrences in a window, in UTC with their time zone (authors)",
            TokenWithRole,
            WINDOW,
            None,
            vec![(200, Json(body::<Occurrences>()))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/timetables/{id}",
            "delete_timetable",
            "timetables",
            "delete a timetable with its events and occurrences (authors)",
            TokenWithRole,
            NONE,
            None,
            vec![(204, Empty)],
            &[],
        ),
    ];
    // Post and void take an optional body: empty means all defaults.
    for (path, id, summary) in [
        (
            "/api/v1/ledger/transfers/{id}/post",
            "post_pending",
            "post a pending transfer",
        ),
        (
            "/api/v1/ledger/transfers/{id}/void",
            "void_pending",
            "void a pending transfer",
        ),
    ] {
        ops.push(Operation {
            method: "POST",
            path,
            id,
            tag: "ledger",
            summary,
            auth: Auth::TokenWithRole,
            query: NONE,
            request: Some((body::<Resolve>(), Required::False)),
            ok: vec![
                (201, Json(body::<Transfer>())),
                (200, Json(body::<Transfer>())),
            ],
            errors: &[409],
        });
    }
    ops
}

fn method(name: &str) -> HttpMethod {
    match name {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        other => unreachable!("no route uses {other}"),
    }
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn schema_ref(body: Body) -> Ref {
    Ref::from_schema_name((body.name)())
}

fn page_schema(item: Body) -> Schema {
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(schema_ref(item)))
        .required("items")
        .property(
            "next_after",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("the `after` of the next page; null on the last")),
        )
        .into()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "done",
        201 => "created",
        204 => "done, no body",
        400 => {
            "malformed body, query or field (bad_request; unknown_member, batch_size \
                where the operation says)"
        }
        401 => "missing, expired or wrongly signed credentials (unauthenticated)",
        403 => "the role or enrollment does not allow this",
        404 => "no such id in the caller's tenant",
        409 => "clashes with the current state or an earlier request",
        413 => "body larger than the limit (payload_too_large)",
        415 => "body is not JSON (unsupported_media_type)",
        422 => "well-formed but breaks a rule (validation_failed, currency_mismatch)",
        _ => "error",
    }
}

fn security(auth: Auth) -> Vec<SecurityRequirement> {
    let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    match auth {
        Auth::Public => Vec::new(),
        Auth::Token | Auth::TokenWithRole => vec![scheme("bearer")],
        Auth::ServiceKey => vec![scheme("service_key")],
        Auth::ServiceKeyOrToken => vec![scheme("service_key"), scheme("bearer")],
        Auth::StripeSignature => vec![scheme("stripe_signature")],
    }
}

fn build() -> OpenApi {
    let mut schemas = Vec::new();
    register::<ErrorBody>(&mut schemas);
    // Nested request types no operation names directly.
    register::<NewOrganisation>(&mut schemas);
    let error_ref = Ref::from_schema_name(ErrorBody::name());
    let mut paths = PathsBuilder::new();
    for row in operations() {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(row.id))
            .summary(Some(row.summary))
            .tag(row.tag)
            .securities(Some(security(row.auth)));
        let path_params: Vec<&str> = row
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for name in &path_params {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        for (name, kind, description) in row.query {
            let schema = match kind {
                QueryType::Text => ObjectBuilder::new().schema_type(Type::String),
                QueryType::Flag => ObjectBuilder::new().schema_type(Type::Boolean),
                QueryType::Count => ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int32,
                    )))
                    .minimum(Some(1)),
                QueryType::Sequence => ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0)),
            };
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(schema)),
            );
        }
        if row.id == "subscribe" {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some(
                        "a retry with the same key and body replays the first answer",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Some((request, required)) = &row.request {
            (request.register)(&mut schemas);
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(required.clone()))
                    .content("application/json", json_content(schema_ref(*request)))
                    .build(),
            ));
        }
        if row.id == "stripe_webhook" {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .description(Some("a Stripe event, verified against Stripe-Signature"))
                    .content(
                        "application/json",
                        json_content(ObjectBuilder::new().schema_type(Type::Object)),
                    )
                    .build(),
            ));
        }
        if row.id == "import_timetable" {
            let text = || json_content(ObjectBuilder::new().schema_type(Type::String));
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .description(Some(
                        "an RFC 5545 calendar (VEVENTs, with X-LYCEUM-REGION, \
                         X-LYCEUM-LANGUAGES, X-LYCEUM-LEARNERS) or a CSV file with the columns \
                         of docs/design/timetables.md; at most timetable_body_bytes_max bytes",
                    ))
                    .content("text/calendar", text())
                    .content("text/csv", text())
                    .build(),
            ));
        }
        let mut ok: BTreeMap<u16, Vec<Answer>> = BTreeMap::new();
        for (status, answer) in row.ok {
            ok.entry(status).or_default().push(answer);
        }
        for (status, answers) in ok {
            let mut response = ResponseBuilder::new().description(reason(status));
            if let Some(answer) = answers.first() {
                match *answer {
                    Answer::Empty if row.path == OPENAPI_PATH => {
                        response = response.content(
                            "application/json",
                            json_content(ObjectBuilder::new().schema_type(Type::Object)),
                        );
                    }
                    Answer::Empty => {}
                    Answer::Html => {
                        response = response.content(
                            "text/html",
                            json_content(ObjectBuilder::new().schema_type(Type::String)),
                        );
                    }
                    Answer::Json(body) => {
                        (body.register)(&mut schemas);
                        response =
                            response.content("application/json", json_content(schema_ref(body)));
                    }
                    Answer::Page(item) => {
                        (item.register)(&mut schemas);
                        response =
                            response.content("application/json", json_content(page_schema(item)));
                    }
                }
            }
            operation = operation.response(status.to_string(), response.build());
        }
        let mut errors: Vec<u16> = row.errors.to_vec();
        if row.request.is_some() || !row.query.is_empty() || row.id == "stripe_webhook" {
            errors.push(400);
        }
        if row.request.is_some() {
            errors.extend([413, 415]);
        }
        if row.auth != Auth::Public {
            errors.push(401);
        }
        if matches!(row.auth, Auth::TokenWithRole | Auth::ServiceKeyOrToken) {
            errors.push(403);
        }
        if !path_params.is_empty() {
            errors.push(404);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            operation = operation.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(reason(status))
                    .content("application/json", json_content(error_ref.clone()))
                    .build(),
            );
        }
        operation = operation.response(
            "default",
            ResponseBuilder::new()
                .description("server failure (internal, unavailable): retry later")
                .content("application/json", json_content(error_ref.clone()))
                .build(),
        );
        paths = paths.path(
            row.path,
            PathItem::new(method(row.method), operation.build()),
        );
    }
    // Two types of one name would silently overwrite each other's schema.
    let mut named: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for (name, schema) in schemas {
        if let Some(earlier) = named.insert(name.clone(), schema.clone()) {
            assert!(
                earlier == schema,
                "two types share the schema name {name}: give one #[schema(as = ..)]"
            );
        }
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(named)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "an Ed25519-signed access token from sign-in or refresh; \
                         verify it with /.well-known/jwks.json",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "service_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "the edge service key (control_plane.edge_service_key): edges only",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "stripe_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's HMAC signature of the raw body",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Lyceum control plane")
                .version("1")
                .description(Some(
                    "The system of record's JSON API. Every error answers \
                     {\"error\": {\"code\", \"message\"}} with a stable code; every list \
                     pages with ?limit=&after= and answers next_after.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let text = JSON.get_or_init(|| {
        // Serialising plain data structures cannot fail.
        serde_json::to_string(document()).unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], text.as_str())
}
