//! The registry actor: the node's published view of the ring's membership.
//!
//! The registry itself (PROTOCOL sections 1 and 6) lives in the pure
//! protocol [`Node`](crate::protocol::Node), which decides everything about
//! it; this actor receives each change the node reports, logs the ring's
//! members when they change, and answers "who is in the ring" for
//! summaries without disturbing the state machine. Lost marks are as of the
//! last change reported (an expired mark shows until the next one).

use super::messages::{GetMembers, Members};
use crate::protocol::registry::Member;
use actix::prelude::*;

/// Membership changes name every member up to this ring size (the node's
/// periodic summary gives the count).
const LIST_MEMBERS_UP_TO: usize = 16;

#[derive(Default)]
pub struct RegistryActor {
    members: Vec<Member>,
}

impl RegistryActor {
    pub fn new() -> Self {
        RegistryActor::default()
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
}

impl Handler<Members> for RegistryActor {
    type Result = ();

    fn handle(&mut self, Members(members): Members, _ctx: &mut Context<Self>) {
        if !members.iter().map(|m| &m.id).eq(self.members.iter().map(|m| &m.id)) {
            let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
            // A big ring's start-up would log the whole list at every join.
            if ids.len() <= LIST_MEMBERS_UP_TO {
                log::info!("ring members ({}): {}", ids.len(), ids.join(" "));
            } else {
                log::debug!("ring members ({}): {}", ids.len(), ids.join(" "));
            }
        }
        let lost: Vec<&str> = members.iter().filter(|m| m.lost).map(|m| m.id.as_str()).collect();
        let lost_before: Vec<&str> = self.members.iter().filter(|m| m.lost).map(|m| m.id.as_str()).collect();
        if lost != lost_before && !lost.is_empty() {
            log::info!("unreachable for now: {}", lost.join(" "));
        }
        self.members = members;
    }
}

impl Handler<GetMembers> for RegistryActor {
    type Result = Vec<Member>;

    fn handle(&mut self, _msg: GetMembers, _ctx: &mut Context<Self>) -> Vec<Member> {
        self.members.clone()
    }
}
