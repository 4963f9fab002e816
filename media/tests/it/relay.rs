//! Audio between two edges' SFUs in one process: the first SFU's relay
//! hands every forwarded packet of its publisher to a bridge (one copy,
//! whatever the number of listeners on the other edge), the bridge gives it
//! to the second SFU's `relayed`, and both of that edge's listeners hear it
//! on a slot of their room. A publisher that stops (here: mutes itself, so
//! its edge stops relaying) leaves its slot on the other edge after
//! `relay_idle_ms`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use media::sfu::{RelayOut, RelayedPacket};
use media::signal::ClientSignal;
use media::{MediaRole, Sfu, SfuConfig};
use tokio::sync::mpsc;

use crate::client::{test_config, Client, WAIT};

/// One relayed packet, owned: room, publisher, role, level, RTP.
type Copy = (String, String, MediaRole, Option<u8>, Vec<u8>);

/// One edge-to-edge link: what the first SFU publishes, in order, to the
/// second SFU; counts the copies.
struct Bridge {
    tx: mpsc::UnboundedSender<Copy>,
    copies: AtomicU64,
}

impl RelayOut for Bridge {
    fn publish(&self, packet: RelayedPacket<'_>) {
        self.copies.fetch_add(1, Ordering::Relaxed);
        let _gone = self.tx.send((
            packet.room.to_owned(),
            packet.publisher.to_owned(),
            packet.role,
            packet.level,
            packet.rtp.to_vec(),
        ));
    }
}

fn bridge(to: Sfu) -> Arc<Bridge> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Copy>();
    tokio::spawn(async move {
        while let Some((room, publisher, role, level, rtp)) = rx.recv().await {
            to.relayed(&room, &publisher, role, level, &rtp).await;
        }
    });
    Arc::new(Bridge {
        tx,
        copies: AtomicU64::new(0),
    })
}

async fn eventually(what: &str, check: impl Fn() -> bool) -> Result<()> {
    tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| anyhow!("{what} did not happen within {WAIT:?}"))
}

/// Two edges' SFUs, the first relaying to the second (a relayed
/// publisher leaves its slot after 300 ms of silence).
fn two_edges() -> Result<(Sfu, Sfu, Arc<Bridge>)> {
    let config = SfuConfig {
        relay_idle_ms: 300,
        ..test_config()
    };
    let home = Sfu::new(config.clone()).map_err(|e| anyhow!("{e}"))?;
    let away = Sfu::new(config).map_err(|e| anyhow!("{e}"))?;
    let link = bridge(away.clone());
    home.set_relay(link.clone());
    Ok((home, away, link))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_copy_per_edge_is_heard_by_every_listener_there() -> Result<()> {
    let (home, away, link) = two_edges()?;

    let mut teacher = Client::join(&home, "teacher", "class", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    teacher.negotiate(&home).await??;
    let mut ada = Client::join(&away, "ada", "class", MediaRole::Learner).await?;
    ada.add_transceivers(false, 2).await?;
    ada.negotiate(&away).await??;
    let bob = Client::join(&away, "bob", "class", MediaRole::Learner).await?;
    bob.add_transceivers(false, 2).await?;
    bob.negotiate(&away).await??;
    assert_eq!(away.listening_rooms(), ["class"]);

    teacher.start_talking();
    ada.wait_heard(25).await?;
    bob.wait_heard(25).await?;
    // The away edge shows the teacher on a slot, relayed.
    let state = ada
        .wait_state(|s| {
            s.peers
                .iter()
                .any(|p| p.peer == "teacher" && p.relayed && p.slot == Some(0))
        })
        .await?;
    assert_eq!(state.room, "class");
    assert_eq!(away.metrics().relayed_publishers.get(), 1);

    // One copy per packet crossed, serving both listeners: every copy
    // arrived, and each was written to both (checked once quiet).
    teacher.pc.close().await?;
    let copies = || link.copies.load(Ordering::Relaxed);
    let settled = copies();
    tokio::time::sleep(Duration::from_millis(200)).await;
    eventually("the relayed copies all forwarded", || {
        away.metrics().relayed_in_packets.get() == copies()
            && away.metrics().forwarded_packets.get() == 2 * copies()
    })
    .await?;
    assert!(copies() >= settled && copies() >= 25);

    // Its packets stopped: after relay_idle_ms the slot is free again.
    ada.wait_state(|s| s.peers.iter().all(|p| p.peer != "teacher"))
        .await?;
    assert_eq!(away.metrics().relayed_publishers.get(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_muted_at_its_edge_sends_nothing_across() -> Result<()> {
    let (home, away, link) = two_edges()?;
    let mut teacher = Client::join(&home, "teacher", "class", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    teacher.negotiate(&home).await??;
    let mut ada = Client::join(&away, "ada", "class", MediaRole::Learner).await?;
    ada.add_transceivers(false, 1).await?;
    ada.negotiate(&away).await??;
    teacher.start_talking();
    ada.wait_heard(10).await?;

    home.handle("teacher", ClientSignal::SetMuted { muted: true })
        .await?;
    let at_mute = link.copies.load(Ordering::Relaxed);
    ada.wait_state(|s| s.peers.iter().all(|p| p.peer != "teacher"))
        .await?;
    // At most what was in flight when the mute landed crossed after it.
    assert!(
        link.copies.load(Ordering::Relaxed) <= at_mute + 5,
        "{} copies after the mute at {at_mute}",
        link.copies.load(Ordering::Relaxed)
    );
    // Unmuted, she is heard across again, on a slot.
    home.handle("teacher", ClientSignal::SetMuted { muted: false })
        .await?;
    let heard = ada.heard_now();
    ada.wait_heard(heard + 10).await?;
    Ok(())
}
