//! Learning: who takes which course ([`enrollments`], with cohorts), how
//! far each learner got in each unit ([`progress`]: time and scroll depth
//! on lessons, quiz attempts graded here ([`quiz`]), tests passed on
//! assignments, attendance and submissions in live classes), and the live
//! classroom's two contracts with edge nodes ([`live`]): the ticket a
//! member presents to join a class, and the attendance report an edge
//! sends when the class ends.
//!
//! Completion is one thing everywhere: a unit is complete for a learner
//! when it has a row in `unit_results`, which is what the learning-path
//! frontier already reads ([`crate::content::paths`]). Progress writes that
//! row the first time a unit's rule is met, in the same transaction as the
//! progress itself and its `unit_completed` event ([`crate::events`]), and
//! an enrollment is completed when every published unit of its course is.
//!
//! Tenant-scoped like content: every store function takes the tenant id
//! and every query filters on it, so another tenant's ids are unknown.

pub mod enrollments;
pub mod error;
pub mod live;
pub mod model;
pub mod progress;
pub mod quiz;

pub use error::{LearningError, ID_BYTES_MAX};
pub use model::*;
