//! An edge's link to the control plane as fault injection sees it: one
//! switch that every call from the edge to the control plane checks first
//! (key fetches, grading lookups, both outbox publishers), so a chaos drill
//! can cut an edge off from the control plane as a network partition would
//! (every call fails as unreachable, and is retried like one) without
//! touching the network. Only the fault API (`edge.fault_injection`, a rule
//! whose peer is `control-plane`) ever closes it. A leaf.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The peer name fault rules use for the control plane.
pub const CONTROL_PLANE_PEER: &str = "control-plane";

/// Whether calls to the control plane may go out; cheap to clone, shared.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneLink(Arc<AtomicBool>);

impl ControlPlaneLink {
    /// Cuts the link (`true`) or makes it whole again.
    pub fn set_cut(&self, cut: bool) {
        self.0.store(cut, Ordering::Relaxed);
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err` with the words every caller reports when the link is cut.
    ///
    /// # Errors
    /// When fault injection cut the link.
    pub fn check(&self) -> Result<(), String> {
        if self.is_cut() {
            Err("the control plane is unreachable: the link is cut by fault injection (edge.fault_injection)".to_owned())
        } else {
            Ok(())
        }
    }
}
