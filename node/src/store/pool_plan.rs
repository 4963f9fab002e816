//! The pool plan this edge last fetched from the control plane, kept in
//! sled (one value in the `pool_plan` tree), so a restarted edge follows
//! the timetable while the control plane is away.

use actors::pool::PoolPlan;

use super::StoreError;

const TREE: &str = "pool_plan";
const KEY: &str = "plan";

/// The kept plan, if any.
///
/// # Errors
/// [`StoreError`] when sled fails or the value is not a plan.
pub fn load(db: &sled::Db) -> Result<Option<PoolPlan>, StoreError> {
    let tree = db.open_tree(TREE)?;
    let Some(bytes) = tree.get(KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| StoreError::Corrupt {
            key: "pool_plan/plan",
            reason: err.to_string(),
        })
}

/// Keeps `plan` in place of the last one, flushed before it returns.
///
/// # Errors
/// [`StoreError`] when sled fails.
pub async fn save(db: &sled::Db, plan: &PoolPlan) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(plan).map_err(|err| StoreError::Corrupt {
        key: "pool_plan/plan",
        reason: err.to_string(),
    })?;
    db.open_tree(TREE)?.insert(KEY, bytes)?;
    db.flush_async().await?;
    Ok(())
}
