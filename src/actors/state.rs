//! The state machine actor: feeds inputs to the pure protocol
//! [`Machine`] and carries out its outputs with the peer actors.
//!
//! It holds no protocol rules of its own. Timers are `run_later`s whose
//! firings the machine checks against the armed [`TimerId`]; digit
//! computation runs on a blocking thread unless the cache already has the
//! digits; a hand-off asks the registry for the next node and tries the
//! following ones when a node cannot be reached (PROTOCOL section 7, OWNER).

use super::messages::{Broadcast, Deliver, GetMembers, NextHop, Port, SendTo};
use super::persist::Persister;
use crate::pi::{Expansion, PiDigits};
use crate::protocol::machine::{Input, Machine, Output, TimerKind};
use crate::protocol::{Body, Message, MyState, NodeId, StateName, Token};
use actix::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The actors the state machine talks to. Tests substitute recorders.
#[derive(Clone)]
pub struct Peers {
    pub udp: Recipient<Broadcast>,
    pub tcp: Recipient<SendTo>,
    pub next_hop: Recipient<NextHop>,
    pub members: Recipient<GetMembers>,
}

/// A snapshot of the node for tests, summaries and the binary.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub state: StateName,
    pub token: Token,
    pub expansion: Expansion,
    /// Times this node has held the token.
    pub holdings: u64,
}

#[derive(Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// An input for the machine, queued through the mailbox.
#[derive(Message)]
#[rtype(result = "()")]
struct Feed(Input);

pub struct StateMachine {
    machine: Machine,
    peers: Peers,
    pi: Arc<PiDigits>,
    host: Ipv4Addr,
    timers: HashMap<TimerKind, SpawnHandle>,
    holdings: u64,
    summary_every: Option<Duration>,
    last_summary: (tokio::time::Instant, u64, usize),
    persister: Option<Persister>,
}

impl StateMachine {
    pub fn new(
        machine: Machine,
        peers: Peers,
        pi: Arc<PiDigits>,
        host: Ipv4Addr,
        summary_every: Option<Duration>,
    ) -> Self {
        let progress = machine.expansion().len();
        StateMachine {
            machine,
            peers,
            pi,
            host,
            timers: HashMap::new(),
            holdings: 0,
            summary_every,
            last_summary: (tokio::time::Instant::now(), 0, progress),
            persister: None,
        }
    }

    /// Save the expansion (and revision) whenever they change.
    pub fn with_persister(mut self, persister: Persister) -> Self {
        self.persister = Some(persister);
        self
    }

    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        for output in self.machine.handle(input) {
            self.carry_out(output, ctx);
        }
        if let Some(persister) = &mut self.persister {
            persister.save(self.machine.expansion(), self.machine.own_revision());
        }
    }

    fn carry_out(&mut self, output: Output, ctx: &mut Context<Self>) {
        match output {
            Output::Broadcast(message) => self.peers.udp.do_send(Broadcast { message, port: Port::Ring }),
            Output::Send { to, message } => {
                let tcp = self.peers.tcp.clone();
                ctx.spawn(
                    async move {
                        let kind = message.body.kind();
                        match tcp.send(SendTo { to, message }).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => log::debug!("reply {kind:?} to {to} not delivered: {e}"),
                            Err(e) => log::debug!("reply {kind:?} to {to} not delivered: {e}"),
                        }
                    }
                    .into_actor(self),
                );
            }
            Output::SetTimer { timer, after } => {
                let handle = ctx.run_later(after, move |act, ctx| act.feed(Input::Timer(timer), ctx));
                if let Some(old) = self.timers.insert(timer.kind, handle) {
                    ctx.cancel_future(old);
                }
            }
            Output::Compute { epoch, len } => match self.pi.cached_expansion(len) {
                Some(expansion) => ctx.notify(Feed(Input::Computed { epoch, expansion })),
                None => {
                    let pi = Arc::clone(&self.pi);
                    ctx.spawn(
                        async move { tokio::task::spawn_blocking(move || pi.expansion(len)).await }
                            .into_actor(self)
                            .map(move |result, act, ctx| match result {
                                Ok(expansion) => act.feed(Input::Computed { epoch, expansion }, ctx),
                                Err(e) => log::error!("digit computation failed: {e}"),
                            }),
                    );
                }
            },
            Output::PassToken { epoch, token, data } => {
                let hand_off = hand_off(self.peers.clone(), self.machine.id().to_owned(), token, data);
                ctx.spawn(
                    hand_off.into_actor(self).map(move |to, act, ctx| act.feed(Input::Passed { epoch, to }, ctx)),
                );
            }
            Output::StateChanged { old, new, token, progress } => {
                for (_, handle) in self.timers.drain() {
                    ctx.cancel_future(handle);
                }
                if new == StateName::Owner {
                    self.holdings += 1;
                }
                // Routine hand-offs are per-pass detail; other changes matter.
                let routine =
                    matches!((old, new), (StateName::Waiter, StateName::Owner) | (StateName::Owner, StateName::Waiter));
                let level = if routine { log::Level::Debug } else { log::Level::Info };
                log::log!(
                    level,
                    "{}: {old} -> {new}, token {token}, {} digits",
                    self.machine.id(),
                    progress.saturating_sub(2)
                );
                self.announce(old, new, token, progress);
            }
        }
    }

    /// MY_STATE on the monitoring port.
    fn announce(&self, old: StateName, new: StateName, token: Token, progress: usize) {
        let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let state = MyState {
            old_state: old.as_wire().to_owned(),
            new_state: new.as_wire().to_owned(),
            progress: Some(progress as u64),
            token: Some(token),
            timestamp_ms: Some(timestamp_ms),
            host: Some(self.host.to_string()),
            digits_tail: Some(self.machine.expansion().tail(20).to_owned()),
        };
        let message = Message::new(self.machine.id(), Body::MyState(Box::new(state)));
        self.peers.udp.do_send(Broadcast { message, port: Port::Monitor });
    }

    fn summarise(&mut self, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        let (since, holdings_then, progress_then) = self.last_summary;
        let secs = now.duration_since(since).as_secs_f64().max(1e-9);
        let progress = self.machine.expansion().len();
        let line = format!(
            "{}: {} | {} digits (+{:.0}/s) | held {:.1}/s",
            self.machine.id(),
            self.machine.state(),
            progress.saturating_sub(2),
            (progress.saturating_sub(progress_then)) as f64 / secs,
            (self.holdings - holdings_then) as f64 / secs,
        );
        self.last_summary = (now, self.holdings, progress);
        ctx.spawn(self.peers.members.send(GetMembers).into_actor(self).map(move |members, _, _| {
            let members = members.map(|m| m.iter().filter(|m| !m.lost).count()).unwrap_or(0);
            log::info!("{line} | {members} nodes in the ring");
        }));
    }
}

/// TAKE_TOKEN to the next reachable node: on failure the registry marks
/// that node lost and names the following one. Returns who got the token,
/// or `None` when nobody else is reachable.
async fn hand_off(peers: Peers, own_id: NodeId, token: Token, data: Expansion) -> Option<NodeId> {
    let mut failed = None;
    loop {
        let hop = peers.next_hop.send(NextHop { failed: failed.take() }).await.ok()??;
        let body = Body::TakeToken { token: token.clone(), nodes: hop.nodes, data: data.clone() };
        let message = Message::new(&own_id, body);
        match peers.tcp.send(SendTo { to: hop.host, message }).await {
            Ok(Ok(())) => return Some(hop.id),
            Ok(Err(e)) => log::warn!("hand-off to {} failed: {e}", hop.id),
            Err(e) => log::warn!("hand-off to {} failed: {e}", hop.id),
        }
        failed = Some(hop.id);
    }
}

impl Actor for StateMachine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.summary_every {
            ctx.run_interval(every, |act, ctx| act.summarise(ctx));
        }
        self.feed(Input::Start, ctx);
    }
}

impl Handler<Deliver> for StateMachine {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.feed(Input::Received(msg.0), ctx);
    }
}

impl Handler<Feed> for StateMachine {
    type Result = ();

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) {
        self.feed(msg.0, ctx);
    }
}

impl Handler<GetStatus> for StateMachine {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Status {
            state: self.machine.state(),
            token: self.machine.token(),
            expansion: self.machine.expansion().clone(),
            holdings: self.holdings,
        })
    }
}
