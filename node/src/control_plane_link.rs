//! An edge's link to the control plane as fault injection sees it: one
//! switch that every call from the edge to the control plane passes first
//! (key fetches, grading lookups, both outbox publishers), so a chaos drill
//! can cut an edge off from the control plane as a network partition would
//! (every call fails as unreachable, and is retried like one), or make the
//! link slow and lossy, without touching the network. Only the fault API
//! (`edge.fault_injection`, a rule whose peer is `control-plane`) ever
//! changes it. A leaf.
//!
//! A degraded link makes each call wait before it goes out: one draw of the
//! degrade for the request (a rule covering `outbound`) and one for the
//! answer (`inbound`). A lost packet is sent again after one extra
//! `delay_ms` and drawn again, at most [`gossip::fault::FAULT_RESENDS_MAX`]
//! times ([`Degrade::reliable_wait`]); a packet still lost then fails the
//! call as a cut does, so 100 % loss is a cut that takes a while to notice.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gossip::{Degrade, FaultRng};

/// The peer name fault rules use for the control plane.
pub const CONTROL_PLANE_PEER: &str = "control-plane";

/// What fault injection does to the link now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFault {
    /// Every call fails as unreachable.
    pub cut: bool,
    /// Requests to the control plane are degraded.
    pub outbound: Option<Degrade>,
    /// Its answers are degraded.
    pub inbound: Option<Degrade>,
}

#[derive(Debug)]
struct Inner {
    fault: LinkFault,
    rng: FaultRng,
}

/// Whether and how calls to the control plane may go out; cheap to clone,
/// shared.
#[derive(Debug, Clone)]
pub struct ControlPlaneLink(Arc<Mutex<Inner>>);

impl Default for ControlPlaneLink {
    /// A whole link whose degrades draw from an entropy seed.
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self::seeded(seed)
    }
}

impl ControlPlaneLink {
    /// A whole link whose degrades draw from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            fault: LinkFault::default(),
            rng: FaultRng::seeded(seed),
        })))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets what fault injection does to the link (the default: nothing).
    pub fn set(&self, fault: LinkFault) {
        self.inner().fault = fault;
    }

    /// Cuts the link (`true`) or makes it whole again, degrades included.
    pub fn set_cut(&self, cut: bool) {
        self.set(LinkFault {
            cut,
            ..LinkFault::default()
        });
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.inner().fault.cut
    }

    /// How long the next call waits on a degraded link, or `None` when it
    /// fails as unreachable (cut, or a packet lost more than
    /// [`gossip::fault::FAULT_RESENDS_MAX`] times).
    pub fn wait(&self) -> Option<Duration> {
        let inner = &mut *self.inner();
        if inner.fault.cut {
            return None;
        }
        let mut total = Duration::ZERO;
        for degrade in [inner.fault.outbound, inner.fault.inbound]
            .into_iter()
            .flatten()
        {
            total += degrade.reliable_wait(&mut inner.rng)?;
        }
        Some(total)
    }

    /// Waits as the link says, then `Ok`; `Err` with the words every caller
    /// reports when the call cannot reach the control plane.
    ///
    /// # Errors
    /// When fault injection cut the link, or lost a packet too often.
    ///
    /// Cancel safety: cancelling only cuts the wait short.
    pub async fn check(&self) -> Result<(), String> {
        match self.wait() {
            None if self.is_cut() => Err("the control plane is unreachable: the link is cut by fault injection (edge.fault_injection)".to_owned()),
            None => Err(format!("the control plane is unreachable: a packet was lost more than {} times on the link degraded by fault injection (edge.fault_injection)", gossip::fault::FAULT_RESENDS_MAX)),
            Some(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degrade(delay_ms: u64, jitter_ms: u64, loss_percent: f64) -> Option<Degrade> {
        Some(Degrade::new(delay_ms, jitter_ms, loss_percent).expect("valid"))
    }

    #[test]
    fn a_whole_link_does_not_wait() {
        let link = ControlPlaneLink::seeded(1);
        assert_eq!(link.wait(), Some(Duration::ZERO));
        link.set_cut(true);
        assert_eq!(link.wait(), None);
        link.set_cut(false);
        assert_eq!(link.wait(), Some(Duration::ZERO));
    }

    #[test]
    fn each_direction_adds_its_delay() {
        let link = ControlPlaneLink::seeded(1);
        link.set(LinkFault {
            outbound: degrade(100, 0, 0.0),
            ..LinkFault::default()
        });
        assert_eq!(link.wait(), Some(Duration::from_millis(100)));
        link.set(LinkFault {
            outbound: degrade(100, 0, 0.0),
            inbound: degrade(30, 0, 0.0),
            ..LinkFault::default()
        });
        assert_eq!(link.wait(), Some(Duration::from_millis(130)));
        link.set(LinkFault {
            outbound: degrade(200, 50, 0.0),
            ..LinkFault::default()
        });
        for _ in 0..1_000 {
            let wait = link.wait().expect("not cut");
            assert!((150..=250).contains(&wait.as_millis()), "{wait:?}");
        }
    }

    #[test]
    fn a_lost_packet_costs_one_extra_delay_and_total_loss_is_a_cut() {
        let seed = 42;
        let link = ControlPlaneLink::seeded(seed);
        link.set(LinkFault {
            outbound: degrade(100, 0, 50.0),
            ..LinkFault::default()
        });
        let waits: Vec<_> = (0..2_000).map(|_| link.wait()).collect();
        // Every wait is a whole number of delays: one, plus one per loss.
        for wait in waits.iter().flatten() {
            assert_eq!(wait.as_millis() % 100, 0, "{wait:?} (seed {seed})");
        }
        let longer = waits
            .iter()
            .flatten()
            .filter(|w| w.as_millis() > 100)
            .count();
        assert!((800..=1_200).contains(&longer), "{longer} (seed {seed})");
        link.set(LinkFault {
            inbound: degrade(10, 0, 100.0),
            ..LinkFault::default()
        });
        assert_eq!(link.wait(), None);
    }

    #[tokio::test]
    async fn check_passes_a_whole_link_and_refuses_a_cut_one() {
        // The wait itself is `wait()` above; this is the words around it.
        let link = ControlPlaneLink::seeded(1);
        link.set(LinkFault {
            outbound: degrade(0, 0, 0.0),
            ..LinkFault::default()
        });
        link.check().await.expect("whole");
        link.set_cut(true);
        let cut = link.check().await.expect_err("cut");
        assert!(cut.contains("the link is cut"), "{cut}");
        link.set(LinkFault {
            outbound: degrade(10, 0, 100.0),
            ..LinkFault::default()
        });
        let lost = link.check().await.expect_err("always lost");
        assert!(lost.contains("lost more than 8 times"), "{lost}");
    }
}
