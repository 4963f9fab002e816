//! The echo actor: the smallest actor that must be reachable from other
//! nodes. Every edge runs one, in groups `node:<node_id>` and `nodes`, so any
//! node can check that it reaches any other through a group (the operator
//! view and the tests use it); it answers a ping with its node id.
//!
//! Its message is the only remotely sendable one so far; ractor_cluster only
//! advertises actors whose messages can be serialised, so keeping the other
//! actors' messages local keeps them off the wire. Arguments are `String`s,
//! whose decoder refuses bad UTF-8 (a panic that the derived code catches
//! and turns into a refused message).

use std::time::Duration;

use gossip::NodeId;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::groups::{join_group, node_group, NODES_GROUP};
use crate::system::ActorsError;

/// Longest text a ping may carry, in bytes; longer ones are answered with an
/// empty id, so a caller cannot make a node echo large payloads.
pub const PING_TEXT_BYTES_MAX: usize = 256;

/// What the echo actor understands.
#[derive(RactorClusterMessage)]
pub enum EchoMessage {
    /// Answers with the node id of the actor's node.
    #[rpc]
    Ping(String, RpcReplyPort<String>),
    /// Answers how many pings this actor has answered (its observable state).
    #[rpc]
    Answered(RpcReplyPort<u64>),
}

/// Answers pings with its node id.
#[derive(Debug)]
pub struct EchoActor;

/// The echo actor's state.
#[derive(Debug)]
pub struct EchoState {
    node_id: NodeId,
    answered: u64,
}

impl Actor for EchoActor {
    type Msg = EchoMessage;
    type State = EchoState;
    type Arguments = NodeId;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        node_id: NodeId,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(EchoState {
            node_id,
            answered: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            EchoMessage::Ping(text, reply) => {
                state.answered += 1;
                let answer = if text.len() > PING_TEXT_BYTES_MAX {
                    String::new()
                } else {
                    state.node_id.to_string()
                };
                // The caller may have timed out; nothing to do then.
                let _gone = reply.send(answer);
            }
            EchoMessage::Answered(reply) => {
                let _gone = reply.send(state.answered);
            }
        }
        Ok(())
    }
}

impl EchoActor {
    /// Starts this node's echo actor and joins it to `node:<node_id>` and
    /// `nodes`. It lives until stopped (or the process ends).
    ///
    /// # Errors
    /// [`ActorsError::Spawn`] when ractor cannot start it.
    pub async fn start(node_id: NodeId) -> Result<ActorRef<EchoMessage>, ActorsError> {
        let group = node_group(&node_id);
        let (actor, _handle) = Actor::spawn(None, EchoActor, node_id)
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        join_group(&group, actor.get_cell());
        join_group(NODES_GROUP, actor.get_cell());
        Ok(actor)
    }
}

/// Pings an echo actor (local or remote, e.g. from [`crate::members_of`])
/// and returns the node id it answers with.
///
/// # Errors
/// [`ActorsError::Call`] when the actor is gone, its session dropped or it
/// did not answer within `timeout`.
///
/// Cancel safety: cancelling only abandons the answer.
pub async fn ping(actor: &ActorCell, text: &str, timeout: Duration) -> Result<String, ActorsError> {
    let actor: ActorRef<EchoMessage> = actor.clone().into();
    let outcome = actor
        .call(
            |reply| EchoMessage::Ping(text.to_owned(), reply),
            Some(timeout),
        )
        .await
        .map_err(|err| ActorsError::Call(err.to_string()))?;
    match outcome {
        ractor::rpc::CallResult::Success(answer) => Ok(answer),
        ractor::rpc::CallResult::Timeout => Err(ActorsError::Call("timed out".to_owned())),
        ractor::rpc::CallResult::SenderError => {
            Err(ActorsError::Call("the actor dropped the call".to_owned()))
        }
    }
}
