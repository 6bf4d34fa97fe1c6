//! What a monitor knows about a ring, built from what it overhears: MY_STATE
//! broadcasts on the monitoring port and TOKEN_IS_HERE heartbeats on the
//! ring's port (PROTOCOL sections 3 and 5). Pure state-keeping with the
//! clock passed in; the `pi-ring-monitor` binary feeds it from sockets.

use crate::protocol::{Body, Message, MyState, NodeId, StateName, Token};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;

/// One node as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub host: Ipv4Addr,
    pub state: StateName,
    pub progress: u64,
    pub token: Option<Token>,
    pub last_heard: Instant,
}

/// Something worth telling: the token was lost and regenerated.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    pub at: Instant,
    /// Who generated the new token.
    pub by: NodeId,
    /// How long the ring had no holder (`None` for the ring's first token).
    pub gap: Option<Duration>,
    /// Expansion length of the new token.
    pub progress: u64,
}

#[derive(Debug)]
pub struct RingView {
    nodes: BTreeMap<NodeId, NodeView>,
    holder: Option<NodeId>,
    /// The holder announced it left OWNER and nobody entered since.
    holder_left: bool,
    /// Last time any holder showed itself (entered OWNER or sent a heartbeat).
    last_holder_sign: Option<Instant>,
    /// Times at which some node entered OWNER, for passes per second.
    entries: VecDeque<Instant>,
    pub passes: u64,
    pub max_progress: u64,
    pub recoveries: Vec<Recovery>,
}

impl Default for RingView {
    fn default() -> Self {
        Self::new()
    }
}

impl RingView {
    pub fn new() -> Self {
        RingView {
            nodes: BTreeMap::new(),
            holder: None,
            holder_left: false,
            last_holder_sign: None,
            entries: VecDeque::new(),
            passes: 0,
            max_progress: 0,
            recoveries: Vec::new(),
        }
    }

    /// Apply one overheard message. Returns a recovery if this message
    /// completed one.
    pub fn apply(&mut self, message: &Message, from: Ipv4Addr, now: Instant) -> Option<Recovery> {
        match &message.body {
            Body::MyState(state) => self.apply_state(&message.author, from, state, now),
            Body::TokenIsHere { token } => {
                self.apply_heartbeat(&message.author, from, token, now);
                None
            }
            _ => None,
        }
    }

    fn node(&mut self, id: &str, host: Ipv4Addr, now: Instant) -> &mut NodeView {
        let view = self.nodes.entry(id.to_owned()).or_insert(NodeView {
            host,
            state: StateName::None,
            progress: 0,
            token: None,
            last_heard: now,
        });
        view.last_heard = now;
        view
    }

    fn apply_state(&mut self, id: &str, from: Ipv4Addr, state: &MyState, now: Instant) -> Option<Recovery> {
        let new = StateName::from_wire(&state.new_state).unwrap_or(StateName::None);
        let old = StateName::from_wire(&state.old_state).unwrap_or(StateName::None);
        let host = state.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(from);
        let view = self.node(id, host, now);
        view.state = new;
        if let Some(p) = state.progress {
            view.progress = p;
        }
        if state.token.is_some() {
            view.token = state.token.clone();
        }
        let progress = view.progress;
        self.max_progress = self.max_progress.max(progress);
        let mut recovery = None;
        match new {
            StateName::Owner => {
                if old == StateName::Generating {
                    // A regenerated token: the gap since any holder was seen.
                    let gap = self.last_holder_sign.map(|t| now - t);
                    let r = Recovery { at: now, by: id.to_owned(), gap, progress };
                    self.recoveries.push(r.clone());
                    recovery = Some(r);
                }
                self.holder = Some(id.to_owned());
                self.holder_left = false;
                self.last_holder_sign = Some(now);
                self.passes += 1;
                self.entries.push_back(now);
            }
            _ => {
                if self.holder.as_deref() == Some(id) {
                    // Usually the next holder's entry follows at once;
                    // until then this node was the last to hold it.
                    self.last_holder_sign = Some(now);
                    self.holder_left = true;
                }
            }
        }
        recovery
    }

    fn apply_heartbeat(&mut self, id: &str, from: Ipv4Addr, token: &Token, now: Instant) {
        let view = self.node(id, from, now);
        view.state = StateName::Owner;
        view.progress = token.progress;
        view.token = Some(token.clone());
        self.max_progress = self.max_progress.max(token.progress);
        self.holder = Some(id.to_owned());
        self.holder_left = false;
        self.last_holder_sign = Some(now);
    }

    /// The node holding the token: the last one to take it, unless it has
    /// let go and nobody took the token for a second.
    pub fn holder_at(&self, now: Instant) -> Option<&str> {
        let stale = self.holder_left && self.last_holder_sign.is_some_and(|t| now - t > Duration::from_secs(1));
        if stale {
            None
        } else {
            self.holder.as_deref()
        }
    }

    pub fn nodes(&self) -> &BTreeMap<NodeId, NodeView> {
        &self.nodes
    }

    /// Token passes (entries into OWNER) per second over the last `window`.
    pub fn passes_per_second(&mut self, now: Instant, window: Duration) -> f64 {
        while self.entries.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.entries.pop_front();
        }
        self.entries.len() as f64 / window.as_secs_f64()
    }

    /// One line for a terminal: holder, digits, passes/s, members.
    pub fn summary_line(&mut self, now: Instant) -> String {
        let rate = self.passes_per_second(now, Duration::from_secs(1));
        let members: Vec<String> = self.nodes.iter().map(|(id, v)| format!("{id}:{}", short(v.state))).collect();
        format!(
            "holder {:<12} digits {:>9}  passes/s {:>7.0}  nodes {} [{}]",
            self.holder_at(now).unwrap_or("-"),
            self.max_progress.saturating_sub(2),
            rate,
            self.nodes.len(),
            members.join(" ")
        )
    }
}

fn short(state: StateName) -> &'static str {
    match state {
        StateName::None => "-",
        StateName::Owner => "OWNER",
        StateName::Waiter => "w",
        StateName::Looser => "LOOSER",
        StateName::Generating => "GEN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my_state(id: &str, old: StateName, new: StateName, progress: u64) -> Message {
        Message::new(
            id,
            Body::MyState(Box::new(MyState {
                old_state: old.as_wire().into(),
                new_state: new.as_wire().into(),
                progress: Some(progress),
                ..Default::default()
            })),
        )
    }

    const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

    #[tokio::test(start_paused = true)]
    async fn tracks_holder_passes_and_recoveries() {
        let t0 = Instant::now();
        let mut view = RingView::new();
        view.apply(&my_state("a", StateName::Waiter, StateName::Owner, 42), HOST, t0);
        view.apply(&my_state("a", StateName::Owner, StateName::Waiter, 62), HOST, t0);
        view.apply(&my_state("b", StateName::Waiter, StateName::Owner, 62), HOST, t0);
        assert_eq!(view.holder_at(t0), Some("b"));
        assert_eq!(view.passes, 2);
        assert_eq!(view.max_progress, 62);
        // b dies silently; its last heartbeat was at t0 + 1 s.
        let token = Token::new(62, "a", 1);
        view.apply(&Message::new("b", Body::TokenIsHere { token }), HOST, t0 + Duration::from_secs(1));
        let t1 = t0 + Duration::from_secs(7);
        view.apply(&my_state("a", StateName::Looser, StateName::Generating, 62), HOST, t1);
        let r = view.apply(&my_state("a", StateName::Generating, StateName::Owner, 62), HOST, t1);
        let r = r.expect("a recovery");
        assert_eq!(r.by, "a");
        assert_eq!(r.gap, Some(Duration::from_secs(6)));
        assert_eq!(view.holder_at(t1), Some("a"));
        view.apply(&my_state("a", StateName::Owner, StateName::Looser, 62), HOST, t1);
        assert_eq!(view.holder_at(t1), Some("a"));
        assert_eq!(view.holder_at(t1 + Duration::from_secs(2)), None, "nobody took it");
    }
}
