//! The edge's router: the one place that lists its routes and the handler
//! of each. The HTTP scaffolding every process shares (health, readiness,
//! metrics, limits) is added around it by `server::app`.

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::edge::live::session;
use crate::edge::routes::{cluster, grading, operator, runs};
use crate::edge::state::EdgeState;

/// Every route of an edge, with its state.
pub(crate) fn router(state: EdgeState) -> Router {
    Router::new()
        .route("/api/v1/node", get(cluster::node_info))
        .route("/api/v1/whoami", get(cluster::whoami))
        .route("/api/v1/languages", get(cluster::languages))
        .route("/api/v1/cluster/members", get(cluster::cluster_members))
        .route("/api/v1/cluster/actors", get(cluster::cluster_actors))
        .route("/api/v1/regions", get(cluster::regions))
        .route("/api/v1/live", get(session::upgrade))
        .route("/api/v1/runs", post(runs::run_code))
        .route("/api/v1/runs/{id}", get(runs::get_run))
        .route("/api/v1/units/{id}/submissions", post(grading::submit))
        .route("/api/v1/sandbox/abuse", get(operator::abuse_events))
        .route("/api/v1/operator/outbox", get(operator::outbox_status))
        .route(
            "/api/v1/operator/outbox/dead-letters",
            get(operator::outbox_dead_letters),
        )
        .route(
            "/api/v1/operator/outbox/dead-letters/{id}",
            delete(operator::discard_dead_letter),
        )
        .route(
            "/api/v1/operator/outbox/dead-letters/{id}/retry",
            post(operator::retry_dead_letter),
        )
        .route(
            "/api/v1/operator/faults",
            get(operator::get_faults)
                .put(operator::put_faults)
                .delete(operator::delete_faults),
        )
        .route("/api/v1/sandbox/pools", get(operator::pool_sizes))
        .route(
            "/api/v1/sandbox/pools/{language}",
            put(operator::set_pool_target).delete(operator::clear_pool_target),
        )
        .with_state(state)
}
