//! The typed messages the node's actors exchange.
//!
//! ```text
//! UdpEndpoint --Inbound--> RegistryActor --Deliver--> StateMachine
//! TcpEndpoint --Inbound--/      ^                        |
//!      ^                        +------- NextHop --------+
//!      +------------ SendTo ----------------------------+ (and Broadcast to UdpEndpoint)
//! ```

use crate::protocol::machine::Envelope;
use crate::protocol::{Message, NodeId, Nodes};
use actix::prelude::*;
use std::net::Ipv4Addr;

/// How a message reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A UDP datagram (normally a broadcast).
    Udp,
    /// A TCP connection.
    Tcp,
}

/// A decoded, verified message from the network, before section 6.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    pub message: Message,
    pub from: Ipv4Addr,
    pub via: Via,
}

/// A message that passed section 6, for the state machine.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Deliver(pub Envelope);

/// Which UDP port a broadcast goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The ring's port: the protocol's broadcasts.
    Ring,
    /// The monitoring port: MY_STATE only.
    Monitor,
}

/// Broadcast a message by UDP.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Broadcast {
    pub message: Message,
    pub port: Port,
}

/// Send one message by TCP (connect, write, close).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<(), crate::error::SendError>")]
pub struct SendTo {
    pub to: Ipv4Addr,
    pub message: Message,
}

/// Ask the registry for the next reachable node, first marking `failed`
/// lost when the previous attempt to reach it failed.
#[derive(Message, Clone, Debug)]
#[rtype(result = "Option<Hop>")]
pub struct NextHop {
    pub failed: Option<NodeId>,
}

/// Where to pass the token, and the node table to send with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    pub id: NodeId,
    pub host: Ipv4Addr,
    pub nodes: Nodes,
}

/// Ask the registry for the ring's members (for summaries).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Vec<crate::protocol::registry::Member>")]
pub struct GetMembers;
