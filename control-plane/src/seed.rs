//! Dev accounts: one per role in a `dev` tenant, so that a newcomer running
//! `lyceum dev` (and any script) can call the APIs at once, and the demo
//! course in that tenant (see [`crate::demo`]), in which the dev learner
//! is enrolled. Only seeded when asked
//! (`lyceum control-plane --seed-dev`), never by default.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ControlPlaneError;
use crate::identity;
use crate::service::ControlPlane;
use crate::tokens::{self, Role};

/// Slug of the tenant the dev accounts live in.
pub const DEV_TENANT_SLUG: &str = "dev";

/// Email of the dev account for `role`.
pub fn dev_email(role: Role) -> String {
    format!("{}@dev.lyceum.test", role.as_str())
}

/// Password of the dev account for `role`; documented in the README, which
/// is why these accounts only exist when seeding is asked for.
pub fn dev_password(role: Role) -> String {
    format!("lyceum-dev-{}", role.as_str())
}

/// Long-lived tokens for the dev accounts, keyed by role name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevTokens {
    /// Token of the learner account.
    pub learner: String,
    /// Token of the instructor account.
    pub instructor: String,
    /// Token of the operator account.
    pub operator: String,
}

/// Creates the dev tenant and accounts if missing and signs a token for each.
/// Safe to run on every start.
///
/// # Errors
/// Fails on database or signing errors.
pub async fn seed_dev(cp: &ControlPlane) -> Result<DevTokens, ControlPlaneError> {
    let db = cp.db();
    let tenant = identity::ensure_tenant(db, DEV_TENANT_SLUG, "Lyceum dev").await?;
    let mut tokens = HashMap::new();
    let mut instructor = None;
    let mut learner = None;
    for role in Role::ALL {
        let name = format!("Dev {}", role.as_str());
        let member = identity::ensure_member(
            db,
            &tenant,
            &dev_email(role),
            &name,
            &dev_password(role),
            role,
        )
        .await?;
        let token = tokens::issue(
            cp.keys(),
            &member.user_id,
            &member.tenant_id,
            member.role,
            &member.email,
            cp.config().dev_token_ttl_seconds,
        )?;
        match role {
            Role::Instructor => instructor = Some(member.user_id.clone()),
            Role::Learner => learner = Some(member.user_id.clone()),
            Role::Operator => {}
        }
        tokens.insert(role, token);
    }
    if let Some(author) = instructor {
        let demo = crate::demo::seed_demo(cp, &tenant, &author).await?;
        if demo.created {
            tracing::info!(course_id = demo.course_id, "demo course seeded");
        }
        // The dev learner takes the demo course (enrolling again is a no-op),
        // so live-class tickets and progress work for it at once.
        if let Some(learner) = &learner {
            crate::learning::enrollments::enroll(
                db,
                &tenant,
                &demo.course_id,
                learner,
                None,
                cp.clock().now_ms(),
            )
            .await?;
        }
    }
    let mut take = |role| {
        tokens
            .remove(&role)
            .ok_or_else(|| ControlPlaneError::Crypto(format!("no token for {role:?}")))
    };
    Ok(DevTokens {
        learner: take(Role::Learner)?,
        instructor: take(Role::Instructor)?,
        operator: take(Role::Operator)?,
    })
}
