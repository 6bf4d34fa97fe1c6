//! The typed messages the node's actors exchange.
//!
//! ```text
//! UdpEndpoint --Inbound--> StateMachine (owns the protocol Node) --Members--> RegistryActor
//! TcpEndpoint --Inbound--/      |                                                ^
//!      ^                        |                                     GetMembers (summaries)
//!      +------- SendTo ---------+------ Broadcast ------> UdpEndpoint
//! ```

use crate::protocol::registry::Member;
use crate::protocol::{Message, RawMessage};
use actix::prelude::*;
use std::net::Ipv4Addr;

pub use crate::protocol::Via;

/// A decoded message from the network (authenticated, with a secret),
/// before section 6; a TAKE_TOKEN's data as it came (the node checks it).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    pub message: RawMessage,
    pub from: Ipv4Addr,
    pub via: Via,
}

/// Which UDP port a broadcast goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The ring's port: the protocol's broadcasts.
    Ring,
    /// The monitoring port: MY_STATE only.
    Monitor,
}

/// Send a message by UDP to `port`: broadcast it, or, when `unicast`
/// names hosts, send it to each of them instead.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Broadcast {
    pub message: Message,
    pub port: Port,
    pub unicast: Vec<Ipv4Addr>,
}

/// Send one message by TCP (connect, write, close).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<(), crate::error::SendError>")]
pub struct SendTo {
    pub to: Ipv4Addr,
    pub message: Message,
    /// The longest wait without progress (connect, or a write), if shorter
    /// than the endpoint's connect timeout.
    pub patience: Option<std::time::Duration>,
    /// The longest the whole delivery may take, if shorter than its size
    /// at the minimum rate allows.
    pub deadline: Option<std::time::Duration>,
}

/// The ring's membership changed: every member in ring order.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Members(pub Vec<Member>);

/// Ask the registry for the ring's members (for summaries).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Vec<Member>")]
pub struct GetMembers;
