//! How attendance reports travel: one at a time to the control plane's
//! `POST /api/v1/live/attendance` (idempotent by class), as the control
//! plane's own `AttendanceReport`. Also turns the classroom's report
//! (Unix milliseconds) into that wire type, and moves reports an older
//! version queued in its own format into the shared queue.

use actors::live::hub::AttendanceReport as ClassReport;
use control_plane::learning::live::{AttendanceReport, Attendee};
use control_plane::tokens::ClassRole;

use super::{single_verdict, Attempt, Queue, Transport};
use crate::store::StoreError;

/// The trees of the attendance queue.
pub const TREES: (&str, &str) = ("attendance_outbox", "attendance_dead_letters");

/// The trees an older version kept attendance reports in (its own format).
const OLD_TREES: (&str, &str) = ("live_attendance_outbox", "live_attendance_dead");

/// The attendance route of one control plane.
#[derive(Debug, Clone)]
pub struct Attendance {
    /// HTTP client with the control plane timeout.
    pub client: reqwest::Client,
    /// The control plane's base URL.
    pub control_plane_url: String,
    /// Its `edge_service_key`.
    pub service_key: String,
    /// The link as fault injection sees it.
    pub link: crate::control_plane_link::ControlPlaneLink,
}

impl Transport<AttendanceReport> for Attendance {
    async fn send(&self, items: &[&AttendanceReport]) -> Attempt {
        match items {
            [one] => self.send_one(one).await,
            _ => Attempt::Unreadable,
        }
    }

    async fn send_one(&self, item: &AttendanceReport) -> Attempt {
        if let Err(cut) = self.link.check().await {
            return Attempt::Retry(cut);
        }
        let url = format!(
            "{}/api/v1/live/attendance",
            self.control_plane_url.trim_end_matches('/')
        );
        let answer = self
            .client
            .post(url)
            .bearer_auth(&self.service_key)
            .json(item)
            .send()
            .await;
        single_verdict(answer).await
    }
}

fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The control plane's report of a class that ended here.
pub fn wire(report: &ClassReport) -> AttendanceReport {
    AttendanceReport {
        class_id: report.class_id.clone(),
        tenant_id: report.tenant_id.clone(),
        epoch: report.epoch,
        started_at: rfc3339(report.started_at_ms),
        ended_at: rfc3339(report.ended_at_ms),
        attendees: report
            .attendees
            .iter()
            .map(|a| Attendee {
                user_id: a.user_id.clone(),
                class_role: match a.class_role {
                    actors::live::protocol::ClassRole::Instructor => ClassRole::Instructor,
                    actors::live::protocol::ClassRole::Learner => ClassRole::Learner,
                },
                joined_at: rfc3339(a.joined_at_ms),
                left_at: rfc3339(a.left_at_ms),
                seconds_present: a.seconds_present,
                submissions: a.submissions,
                accepted: a.accepted,
            })
            .collect(),
    }
}

/// Moves what an older version left in its own trees into `queue`: queued
/// reports stay queued, refused ones stay refused. Each is removed from the
/// old tree only once it is in the new one, so a crash halfway loses none.
///
/// # Errors
/// [`StoreError`] when sled fails.
pub async fn migrate(db: &sled::Db, queue: &Queue<AttendanceReport>) -> Result<usize, StoreError> {
    let mut moved = 0;
    for (tree, refused) in [(OLD_TREES.0, false), (OLD_TREES.1, true)] {
        let old = db.open_tree(tree)?;
        for entry in &old {
            let (key, bytes) = entry?;
            match serde_json::from_slice::<ClassReport>(&bytes) {
                Ok(report) => {
                    queue.push(&key, &wire(&report)).await?;
                    if refused {
                        let why = "refused before this version (no reason kept)";
                        if let Err(err) = queue.dead_letter(&key, why, "") {
                            tracing::warn!(error = %err, "an old refused attendance report stays queued");
                        }
                    }
                }
                Err(err) => {
                    tracing::error!(tree, error = %err, "undecodable old attendance report left in place");
                    continue;
                }
            }
            old.remove(&key)?;
            moved += 1;
        }
    }
    if moved > 0 {
        db.flush_async().await?;
        tracing::info!(moved, "attendance reports moved to the shared outbox");
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{QueueLimits, Queued};

    fn class_report(class_id: &str) -> ClassReport {
        ClassReport {
            class_id: class_id.into(),
            tenant_id: "t".into(),
            epoch: 2,
            started_at_ms: 1_765_000_000_000,
            ended_at_ms: 1_765_000_060_000,
            attendees: vec![actors::live::class::Attendee {
                user_id: "u".into(),
                class_role: actors::live::protocol::ClassRole::Learner,
                joined_at_ms: 1_765_000_000_000,
                left_at_ms: 1_765_000_060_000,
                seconds_present: 60,
                submissions: 2,
                accepted: 1,
            }],
        }
    }

    #[tokio::test]
    async fn reports_an_older_version_queued_move_over_with_nothing_lost() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let old = db.open_tree(OLD_TREES.0).expect("old");
        let old_dead = db.open_tree(OLD_TREES.1).expect("old dead");
        let bytes = |id| serde_json::to_vec(&class_report(id)).expect("json");
        old.insert("c1", bytes("c1")).expect("insert");
        old_dead.insert("c2", bytes("c2")).expect("insert");
        old.insert("junk", b"not json".as_slice()).expect("insert");
        let limits = QueueLimits {
            items_max: 10,
            dead_letters_max: 10,
        };
        let queue = Queue::open(&db, "attendance", TREES, limits).expect("queue");
        assert_eq!(migrate(&db, &queue).await.expect("migrate"), 2);
        let queued = queue.oldest(10).expect("oldest");
        let [Queued::Item(key, report)] = &queued[..] else {
            panic!("{queued:?}");
        };
        assert_eq!(key.as_ref(), b"c1");
        assert_eq!(
            (
                report.started_at.as_str(),
                report.attendees[0].seconds_present
            ),
            ("2025-12-06T05:46:40Z", 60)
        );
        let dead = queue.dead_letters(None, 10).expect("dead");
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].item.as_ref().map(|r| r.class_id.as_str()),
            Some("c2")
        );
        assert!(
            old.contains_key("junk").expect("read"),
            "left for a person to see"
        );
        assert!(!old.contains_key("c1").expect("read"));
        assert_eq!(migrate(&db, &queue).await.expect("again"), 0, "idempotent");
    }
}
