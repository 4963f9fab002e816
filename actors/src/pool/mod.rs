//! Sandbox-pool actors: one per language on every edge, in the process
//! group `pool:<region>:<language>`, owning what that language's warm pool
//! warms to. Each tick an actor takes the timetable's plan for this minute
//! (sent ahead by the control plane and kept by the edge), the run rate it
//! observes itself and any operator override, decides the target
//! ([`policy`]), asks the node's capacity budget for it ([`budget`]) and
//! sets the pool. The pool itself (containers, the engine) is the
//! `sandbox` crate's; this crate only sees it through [`WarmPool`].
//!
//! Modules: [`plan`] (the plan an edge keeps, read by minute), [`policy`]
//! (the decision, pure), [`budget`] (the node's warm containers and their
//! memory, shared across languages), [`actor`] (the ractor actor, its
//! messages and its status).

pub mod actor;
pub mod budget;
pub mod plan;
pub mod policy;

pub use actor::{
    start_pool_actor, PoolActor, PoolArgs, PoolHandle, PoolMessage, PoolMetrics, PoolStatus,
    WarmPool,
};
pub use budget::Budget;
pub use plan::{LanguagePlan, PoolPlan};
pub use policy::{Policy, PoolSettings, Source};
