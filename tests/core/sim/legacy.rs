//! A model of the older (reference) implementation, as PROTOCOL section 9
//! describes it, to run in the simulation beside pi-ring nodes:
//!
//! - it holds the token 2 s and appends one character that is not pi; its
//!   `progress` counts those characters, so it runs past the real digits;
//! - it never answers a worse GENERATING_TOKEN, and in LOOSER it claims
//!   against any worse claim (it has no memory of better ones);
//! - its claim carries the last token's author and revision, not its own;
//! - it does not merge tokens that meet by TAKE_TOKEN (it takes the one it
//!   received), and never broadcasts PING at start-up;
//! - it waits 2 s for a connect, and accepts one connection at a time.
//!
//! It is a test double, deliberately small: the same section 6 (via the
//! shipping `Registry`) and the section 7 rules of the original diagram.

use pi_ring::protocol::machine::TimerKind;
use pi_ring::protocol::registry::{Reception, Registry};
use pi_ring::protocol::{Body, Message, NodeId, StateName, Token};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

pub const HOLD: Duration = Duration::from_secs(2);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the legacy node asks the simulated network to do.
#[derive(Debug)]
pub enum LegacyAction {
    Broadcast(Body),
    Send(Ipv4Addr, Body),
    /// TAKE_TOKEN with this (non-pi) data; the result comes back through
    /// [`Legacy::sent`].
    SendToken {
        to: NodeId,
        host: Ipv4Addr,
        token: Token,
        data: String,
        nodes: pi_ring::protocol::Nodes,
    },
    /// (Re)arm a timer; `seq` tells stale firings apart.
    Timer {
        timer: TimerKind,
        after: Duration,
        seq: u64,
    },
    StateChanged(StateName, StateName),
}

pub struct Legacy {
    pub id: NodeId,
    pub registry: Registry,
    pub state: StateName,
    pub data: String,
    author: NodeId,
    revision: u64,
    own_revision: u64,
    seq: u64,
    armed: HashMap<TimerKind, u64>,
    passing: Option<(NodeId, BTreeSet<NodeId>)>,
    /// The raw data of the TAKE_TOKEN being handled, if an older node sent it.
    raw: Option<String>,
    timing: pi_ring::protocol::machine::Timing,
    out: Vec<LegacyAction>,
}

impl Legacy {
    pub fn new(id: &str, host: Ipv4Addr, timing: pi_ring::protocol::machine::Timing) -> Self {
        Legacy {
            id: id.to_owned(),
            registry: Registry::new(id, host, timing.waiter).permissive(),
            state: StateName::None,
            data: String::new(),
            author: id.to_owned(),
            revision: 0,
            own_revision: 0,
            seq: 0,
            armed: HashMap::new(),
            passing: None,
            raw: None,
            timing,
            out: Vec::new(),
        }
    }

    pub fn token(&self) -> Token {
        Token::new(self.data.len(), &self.author, self.revision)
    }

    /// Its GENERATING candidate comes from the last token's author and
    /// revision (section 9), so its claim can look better than the token it
    /// then generates (its own id, its own next revision).
    fn candidate(&self) -> Token {
        Token::new(self.data.len(), &self.author, self.revision)
    }

    /// Holding the token and not handing it on.
    pub fn holds_token(&self) -> bool {
        self.state == StateName::Owner && self.passing.is_none()
    }

    pub fn start(&mut self) -> Vec<LegacyAction> {
        self.enter(StateName::Looser);
        std::mem::take(&mut self.out)
    }

    /// A message; `raw` is the data of an older sender's TAKE_TOKEN as sent.
    pub fn receive(
        &mut self,
        message: Message,
        raw: Option<String>,
        from: Ipv4Addr,
        broadcast: bool,
        now: Duration,
    ) -> Vec<LegacyAction> {
        let reception = self.registry.receive(&message, from, now);
        let reception = Reception { ping_back: reception.ping_back && broadcast, ..reception };
        if reception.ping_back {
            self.out.push(LegacyAction::Send(from, Body::Ping));
        }
        if reception.deliver {
            self.raw = raw;
            self.on_message(message, from);
        }
        std::mem::take(&mut self.out)
    }

    pub fn timer(&mut self, timer: TimerKind, seq: u64, now: Duration) -> Vec<LegacyAction> {
        if self.armed.get(&timer) == Some(&seq) {
            self.armed.remove(&timer);
            self.on_timer(timer, now);
        }
        std::mem::take(&mut self.out)
    }

    /// The result of a TAKE_TOKEN attempt.
    pub fn sent(&mut self, delivered: bool, now: Duration) -> Vec<LegacyAction> {
        if let Some((to, tried)) = self.passing.take() {
            if delivered {
                self.enter(StateName::Waiter);
            } else {
                self.registry.mark_lost(&to, now);
                self.pass(now, tried);
            }
        }
        std::mem::take(&mut self.out)
    }

    fn on_message(&mut self, message: Message, from: Ipv4Addr) {
        let body = message.body;
        match (self.state, body) {
            (StateName::Owner, Body::TokenIsHere { token }) => {
                if token > self.token() {
                    self.out.push(LegacyAction::Send(from, Body::Ping));
                    self.enter(StateName::Waiter);
                } else if token < self.token() {
                    self.out.push(LegacyAction::Send(from, Body::TokenIsHere { token: self.token() }));
                    self.out.push(LegacyAction::Broadcast(Body::TokenIsHere { token: self.token() }));
                }
            }
            (StateName::Owner, Body::WhereIsToken) => {
                self.out.push(LegacyAction::Send(from, Body::TokenIsHere { token: self.token() }))
            }
            (StateName::Owner, Body::GeneratingToken { .. }) => {
                self.out.push(LegacyAction::Send(from, Body::TokenIsHere { token: self.token() }));
                self.out.push(LegacyAction::Broadcast(Body::TokenIsHere { token: self.token() }));
            }
            (StateName::Owner, Body::TakeToken { token, data, .. }) => {
                // No merge: it simply takes what it received.
                self.take(token, data.as_str());
            }
            (StateName::Waiter, Body::TokenIsHere { .. }) => self.arm(TimerKind::Waiter, self.timing.waiter),
            (StateName::Waiter, Body::WhereIsToken) => {
                self.out.push(LegacyAction::Send(from, Body::TokenWasHereRecently))
            }
            (StateName::Looser, Body::TokenWasHereRecently) => {
                self.arm(TimerKind::LooserAsk, self.timing.looser_ask);
                self.arm(TimerKind::LooserAnswer, self.timing.looser_answer);
            }
            (StateName::Looser, Body::TokenIsHere { .. }) => self.enter(StateName::Waiter),
            (StateName::Looser, Body::GeneratingToken { token }) if self.candidate() > token => {
                self.enter(StateName::Generating)
            }
            (StateName::Generating, Body::TokenIsHere { token }) if token > self.candidate() => {
                self.enter(StateName::Waiter)
            }
            // Silent on worse claims.
            (StateName::Generating, Body::GeneratingToken { token }) if token > self.candidate() => {
                self.enter(StateName::Looser)
            }
            (StateName::Waiter | StateName::Looser | StateName::Generating, Body::TakeToken { token, data, .. }) => {
                self.take(token, data.as_str());
                self.enter(StateName::Owner);
            }
            _ => {}
        }
    }

    fn take(&mut self, token: Token, data: &str) {
        self.author = token.author_node_id;
        self.revision = token.author_token_revision;
        self.data = self.raw.take().unwrap_or_else(|| data.to_owned());
    }

    fn on_timer(&mut self, timer: TimerKind, now: Duration) {
        match (self.state, timer) {
            (StateName::Owner, TimerKind::Heartbeat) => {
                self.out.push(LegacyAction::Broadcast(Body::TokenIsHere { token: self.token() }));
                self.arm(TimerKind::Heartbeat, self.timing.heartbeat);
            }
            (StateName::Owner, TimerKind::Hold) => {
                self.data.push('x');
                self.pass(now, BTreeSet::new());
            }
            (StateName::Waiter, TimerKind::Waiter) => self.enter(StateName::Looser),
            (StateName::Looser, TimerKind::LooserAsk) => {
                self.out.push(LegacyAction::Broadcast(Body::WhereIsToken));
                self.arm(TimerKind::LooserAsk, self.timing.looser_ask);
            }
            (StateName::Looser, TimerKind::LooserAnswer) => self.enter(StateName::Generating),
            (StateName::Generating, TimerKind::Generating) => {
                self.own_revision += 1;
                self.author = self.id.clone();
                self.revision = self.own_revision;
                self.enter(StateName::Owner);
            }
            _ => {}
        }
    }

    fn pass(&mut self, now: Duration, mut tried: BTreeSet<NodeId>) {
        match self.registry.next_candidate(now, &tried, true, true) {
            Some(next) => {
                tried.insert(next.id.clone());
                self.out.push(LegacyAction::SendToken {
                    to: next.id.clone(),
                    host: next.host,
                    token: self.token(),
                    data: self.data.clone(),
                    nodes: self.registry.nodes(),
                });
                self.passing = Some((next.id, tried));
            }
            None => self.arm(TimerKind::Hold, HOLD), // alone: hold again
        }
    }

    fn enter(&mut self, next: StateName) {
        let old = self.state;
        self.state = next;
        self.armed.clear();
        self.passing = None;
        self.out.push(LegacyAction::StateChanged(old, next));
        match next {
            StateName::Owner => {
                self.out.push(LegacyAction::Broadcast(Body::TokenIsHere { token: self.token() }));
                self.arm(TimerKind::Heartbeat, self.timing.heartbeat);
                self.arm(TimerKind::Hold, HOLD);
            }
            StateName::Waiter => self.arm(TimerKind::Waiter, self.timing.waiter),
            StateName::Looser => {
                self.out.push(LegacyAction::Broadcast(Body::WhereIsToken));
                self.arm(TimerKind::LooserAsk, self.timing.looser_ask);
                self.arm(TimerKind::LooserAnswer, self.timing.looser_answer);
            }
            StateName::Generating => {
                self.out.push(LegacyAction::Broadcast(Body::GeneratingToken { token: self.candidate() }));
                self.arm(TimerKind::Generating, self.timing.generating);
            }
            StateName::None => {}
        }
    }

    fn arm(&mut self, timer: TimerKind, after: Duration) {
        self.seq += 1;
        self.armed.insert(timer, self.seq);
        self.out.push(LegacyAction::Timer { timer, after, seq: self.seq });
    }
}
