//! Course content and learning paths: course → modules → units, where a unit
//! is a lesson, a quiz, an assignment or a live classroom with a typed JSON
//! body that is validated on every write ([`body`]).
//!
//! Instructors edit a *draft*; publishing freezes it as an immutable,
//! numbered *version* ([`units`]). Learners only ever read the latest
//! published version, stripped of what must not reach a browser (hidden
//! tests, answer keys), and every learner read names the version, so that a
//! later submission can record the version it was made against.
//!
//! Learning paths ([`paths`]) are prerequisite edges between units of one
//! tenant (across its courses), optionally with a score condition. Edges
//! that would close a cycle are refused, and a learner's frontier (what is
//! unlocked and not done yet) is one recursive SQL query.
//!
//! Everything is tenant-scoped: every store function takes the tenant id
//! and every query filters on it, so another tenant's ids are simply unknown.

pub mod body;
pub mod courses;
pub mod error;
pub mod model;
pub mod paths;
pub mod units;

pub use body::{UnitBody, UnitKind};
pub use error::ContentError;
pub use model::*;
