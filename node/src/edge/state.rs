//! What every edge handler shares: [`EdgeState`], built once by the wiring
//! and handed to the router. A leaf of the edge: it names the parts (keys,
//! run service, live gateway, outboxes) and imports none of the routes or
//! the wiring, so neither of them has to import the other.

use std::sync::Arc;
use std::time::Duration;

use control_plane::learning::live::AttendanceReport;

use crate::edge::faults::FaultRules;
use crate::edge::identity::NodeIdentity;
use crate::edge::keys::KeyCache;
use crate::edge::live::gateway::Gateway;
use crate::edge::pools::PoolControl;
use crate::edge::runs::RunService;
use crate::outbox::Queue;
use crate::store::runs::RunStore;

/// What every edge handler shares.
#[derive(Clone)]
pub(crate) struct EdgeState {
    /// Who this node is.
    pub(crate) identity: NodeIdentity,
    /// This edge's own HTTP URL.
    pub(crate) url: String,
    /// The seed peers it was started with (`edge.join`).
    pub(crate) join: Vec<String>,
    /// The control plane's base URL, named in `/api/v1/node` so that a
    /// browser app served by this edge knows where identity and content live.
    pub(crate) control_plane_url: String,
    /// `edge.drills_url`: the supervisor's drill API, when drills are on.
    pub(crate) drills_url: Option<String>,
    /// The control plane's public keys, to verify tokens and tickets.
    pub(crate) keys: Arc<KeyCache>,
    /// Set once the image is built and the pools are warming.
    pub(crate) sandbox: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    /// Cluster membership.
    pub(crate) gossip: Arc<gossip::GossipHandle>,
    /// Live classrooms: the WebSocket gateway and this node's hub.
    pub(crate) live: Arc<Gateway>,
    /// The actor system: ractor_cluster sessions to the other edges.
    pub(crate) actors: Arc<actors::ActorSystem>,
    /// Run budgets and the recording of finished runs.
    pub(crate) runs: RunService,
    /// Results, submission reports and abuse events, for reading back.
    pub(crate) run_store: Arc<RunStore>,
    /// Attendance reports waiting for the control plane.
    pub(crate) attendance: Arc<Queue<AttendanceReport>>,
    /// Reading units whole from the control plane, to grade submissions.
    pub(crate) grading: Grading,
    /// Cap on `?limit=` of list requests.
    pub(crate) list_page_max: u32,
    /// The sandbox-pool actors, the node's budget and the plan.
    pub(crate) pools: Arc<PoolControl>,
    /// Longest temporary pool target (`edge.pool_override_ms_max`).
    pub(crate) pool_override_ms_max: u64,
    /// Longest window of fault rules (`edge.fault_window_ms_max`).
    pub(crate) fault_window_ms_max: u64,
    /// The link to the control plane, which fault rules may cut.
    pub(crate) control_plane_link: crate::control_plane_link::ControlPlaneLink,
    /// The gossip fault rules in force, as last set; `None` when fault
    /// injection is off (`edge.fault_injection`).
    pub(crate) faults: Option<Arc<tokio::sync::Mutex<FaultRules>>>,
}

/// How this edge reaches the control plane to grade.
#[derive(Clone)]
pub(crate) struct Grading {
    /// Client with `edge.control_plane_timeout_ms`.
    pub(crate) client: reqwest::Client,
    /// The control plane's base URL, without a trailing slash.
    pub(crate) control_plane_url: String,
    /// `edge.control_plane_service_key`; empty means grading is unavailable.
    pub(crate) service_key: String,
    /// `edge.submission_confirm_wait_ms`.
    pub(crate) confirm_wait: Duration,
    /// The link as fault injection sees it.
    pub(crate) link: crate::control_plane_link::ControlPlaneLink,
}
