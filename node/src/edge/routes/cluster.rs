//! Routes that describe the cluster and this node: `/api/v1/node`,
//! `/api/v1/whoami`, `/api/v1/languages`, `/api/v1/regions` and
//! `/api/v1/cluster/{members,actors}`. Read-only views of gossip, the actor
//! system and the sandbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_plane::ErrorCode;
use serde_json::json;

use crate::edge::extract::Caller;
use crate::edge::http::sandbox_starting;
use crate::edge::state::EdgeState;
use crate::server::error_response;

/// `GET /api/v1/node`: who this node is and where the control plane is.
pub(crate) async fn node_info(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    let mut info = json!({
        "node_id": state.identity.node_id,
        "region": state.identity.region,
        "generation": state.identity.generation,
        "url": state.url,
        "join": state.join,
        "control_plane_url": state.control_plane_url,
    });
    if let Some(url) = &state.drills_url {
        info["drills_url"] = json!(url);
    }
    Json(info)
}

/// `GET /api/v1/whoami`: the caller's verified claims, and which node
/// verified them.
pub(crate) async fn whoami(
    State(state): State<EdgeState>,
    Caller(claims): Caller,
) -> Json<serde_json::Value> {
    Json(json!({
        "user_id": claims.sub,
        "tenant_id": claims.tid,
        "role": claims.role,
        "email": claims.email,
        "expires_at": claims.exp,
        "verified_by": state.identity.node_id,
    }))
}

/// `GET /api/v1/languages`: the sandbox's languages, once it has started.
pub(crate) async fn languages(State(state): State<EdgeState>) -> Response {
    match state.sandbox.get() {
        Some(sandbox) => Json(json!({"languages": sandbox.languages()})).into_response(),
        None => sandbox_starting(),
    }
}

/// The actor-cluster view of this node: one entry per gossip member with
/// whether an authenticated ractor_cluster session to it is open, and how many
/// echo actors group `nodes` holds (this node's own included).
pub(crate) async fn cluster_actors(State(state): State<EdgeState>) -> Response {
    let sessions = match state.actors.sessions().await {
        Ok(sessions) => sessions,
        Err(err) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                &err.to_string(),
            )
        }
    };
    let members: Vec<_> = state
        .gossip
        .members()
        .into_iter()
        .map(|m| {
            let connected = sessions.iter().any(|s| s.node_id == m.node_id);
            json!({"node_id": m.node_id, "region": m.region, "connected": connected})
        })
        .collect();
    Json(json!({
        "sessions": members,
        "groups": {"nodes": actors::members_of(actors::NODES_GROUP).len()},
    }))
    .into_response()
}

fn state_name(state: gossip::MemberState) -> &'static str {
    match state {
        gossip::MemberState::Alive => "alive",
        gossip::MemberState::Suspect => "suspect",
        gossip::MemberState::Down => "down",
    }
}

/// This node's view of the cluster, itself included.
pub(crate) async fn cluster_members(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    let mut members = vec![json!({
        "node_id": state.identity.node_id,
        "region": state.identity.region,
        "state": "alive",
        "http_url": state.url,
        "generation": state.identity.generation,
        "rtt_ms": 0.0,
    })];
    members.extend(state.gossip.members().into_iter().map(|m| {
        json!({
            "node_id": m.node_id,
            "region": m.region,
            "state": state_name(m.state),
            "http_url": m.http_url,
            "generation": m.generation,
            "rtt_ms": m.rtt_ms,
        })
    }));
    Json(serde_json::Value::Array(members))
}

/// Every region this node knows, with its health and edge URLs; a region is
/// healthy while at least one of its edges is alive.
pub(crate) async fn regions(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    let mut by_region: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        std::collections::BTreeMap::new();
    by_region
        .entry(state.identity.region.to_string())
        .or_default()
        .push(json!({"node_id": state.identity.node_id, "url": state.url, "state": "alive"}));
    for m in state.gossip.members() {
        by_region
            .entry(m.region.to_string())
            .or_default()
            .push(json!({"node_id": m.node_id, "url": m.http_url, "state": state_name(m.state)}));
    }
    let regions: Vec<_> = by_region
        .into_iter()
        .map(|(region, edges)| {
            let healthy = edges.iter().any(|e| e["state"] == "alive");
            json!({"region": region, "healthy": healthy, "edges": edges})
        })
        .collect();
    Json(json!({"regions": regions}))
}
