//! A live-class ticket, verified: who the client is in which class. The
//! ticket is signed by the control plane and checked against its published
//! keys, like an access token.

use actors::live::{class::Participant, protocol::ClassRole};

use crate::edge::keys::KeyCache;

/// Who a verified ticket says the client is.
pub(crate) struct Ticket {
    /// The class joined.
    pub(crate) class_id: String,
    /// The tenant the class belongs to.
    pub(crate) tenant_id: String,
    /// Who joins, with their role in the class.
    pub(crate) who: Participant,
    /// The class's region, when the ticket names one.
    pub(crate) region: Option<String>,
}

/// Checks a class ticket against the control plane's published keys.
pub(crate) async fn verify_ticket(keys: &KeyCache, text: &str) -> Result<Ticket, String> {
    let claims = keys.verify_ticket(text).await?;
    let role = match claims.crole {
        control_plane::tokens::ClassRole::Instructor => ClassRole::Instructor,
        control_plane::tokens::ClassRole::Learner => ClassRole::Learner,
    };
    Ok(Ticket {
        class_id: claims.cls,
        tenant_id: claims.tid,
        who: Participant {
            user_id: claims.sub,
            name: claims.name,
            role,
        },
        region: claims.reg,
    })
}
