//! The registry actor: applies PROTOCOL section 6 to every inbound message
//! and answers "who is next" for hand-offs.

use super::messages::{Deliver, GetMembers, Hop, Inbound, NextHop, SendTo, Via};
use crate::protocol::machine::Envelope;
use crate::protocol::registry::{Member, Registry};
use crate::protocol::{Body, Message};
use crate::warn_limit::WarnLimiter;
use crate::warn_limited;
use actix::prelude::*;
use tokio::time::Instant;

pub struct RegistryActor {
    registry: Registry,
    warnings: WarnLimiter,
    /// The state machine, which acts on messages after section 6.
    state: Recipient<Deliver>,
    /// For the PING that answers a newcomer.
    tcp: Recipient<SendTo>,
}

impl RegistryActor {
    pub fn new(registry: Registry, state: Recipient<Deliver>, tcp: Recipient<SendTo>) -> Self {
        RegistryActor { registry, state, tcp, warnings: WarnLimiter::new(5) }
    }

    fn log_members(&self) {
        let members: Vec<String> = self.registry.members(Instant::now()).into_iter().map(|m| m.id).collect();
        log::info!("ring members ({}): {}", members.len(), members.join(" "));
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
}

impl Handler<Inbound> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _ctx: &mut Context<Self>) {
        let Inbound { message, from, via } = msg;
        let reception = self.registry.receive(&message, from, via == Via::Udp);
        if let Some(known) = reception.impostor {
            warn_limited!(
                self.warnings,
                "dropped a {} message from {from} claiming to be {}, which is at {known}",
                message.body.kind(),
                message.author
            );
            return;
        }
        if !reception.deliver {
            return;
        }
        if reception.newcomer {
            log::info!("{} joined at {from} (heard by {via:?})", message.author);
        }
        if reception.ping_back {
            let ping = Message::new(self.registry.own_id(), Body::Ping);
            self.tcp.do_send(SendTo { to: from, message: ping });
        }
        for (id, host) in &reception.rejected {
            log::warn!(
                "ignoring node {id:?} at {host:?} in the table from {}: not a valid id and IPv4 address",
                message.author
            );
        }
        if reception.newcomer || reception.learnt > 0 {
            self.log_members();
        }
        // Step 5: the state acts.
        self.state.do_send(Deliver(Envelope { message, from }));
    }
}

impl Handler<NextHop> for RegistryActor {
    type Result = Option<Hop>;

    fn handle(&mut self, msg: NextHop, _ctx: &mut Context<Self>) -> Option<Hop> {
        let now = Instant::now();
        if let Some(failed) = msg.failed {
            log::warn!("could not reach {failed}; marking it lost for now");
            self.registry.mark_lost(&failed, now);
        }
        let (id, host) = self.registry.next(now)?;
        Some(Hop { id, host, nodes: self.registry.nodes() })
    }
}

impl Handler<GetMembers> for RegistryActor {
    type Result = Vec<Member>;

    fn handle(&mut self, _msg: GetMembers, _ctx: &mut Context<Self>) -> Vec<Member> {
        self.registry.members(Instant::now())
    }
}
