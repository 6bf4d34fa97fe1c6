//! The state machine actor: feeds every input to the pure protocol
//! [`Node`] and carries out the [`Action`]s it returns with the peer actors.
//!
//! It holds no protocol rules of its own. Time is tokio's clock since the
//! actor started. Timers are `run_later`s, armed and cancelled as the node
//! says (a firing the node no longer expects is ignored by the node); digit
//! computation (and the check of digits handed with the token beyond the
//! cache) runs on a blocking thread unless the cache already has the
//! digits (a hit also lets the cache grow ahead of need); TCP sends run as
//! tasks whose results go back to the node.
//!
//! MY_STATE goes to monitors when the node says
//! ([`Action::Report`]: what and when is decided in
//! [`crate::protocol::report`]); the actor adds the time, its start and its
//! address, and sends it.

use super::messages::{Broadcast, GetMembers, Inbound, Members, Port, SendTo};
use super::persist::Persister;
use crate::pi::{extended_len, Computing, Expansion, PiDigits, Unchecked};
use crate::protocol::machine::TimerKind;
use crate::protocol::registry::Member;
use crate::protocol::{Action, Body, Input, Message, Node, Report, StateName, Time, Token};
use actix::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Inputs queued for the state machine before the UDP endpoint drops
/// datagrams (a flood).
const MAILBOX: usize = 256;

/// The actors the state machine talks to. Tests substitute recorders.
#[derive(Clone)]
pub struct Peers {
    pub udp: Recipient<Broadcast>,
    pub tcp: Recipient<SendTo>,
    /// The registry actor: membership changes, and the members for summaries.
    pub members: Recipient<Members>,
    pub get_members: Recipient<GetMembers>,
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

/// A planned stop: the node hands the token on if it holds it; the answer
/// comes when it is done and the process may exit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// An input for the node, queued through the mailbox.
#[derive(Message)]
#[rtype(result = "()")]
struct Feed(Input);

pub struct StateMachine {
    node: Node,
    peers: Peers,
    pi: Arc<PiDigits>,
    host: Ipv4Addr,
    origin: Instant,
    timers: HashMap<TimerKind, SpawnHandle>,
    /// When this node started (its process), for MY_STATE and the log.
    started: SystemTime,
    summary_every: Option<Duration>,
    last_summary: (Instant, u64, usize),
    persister: Option<Persister>,
    /// Who waits for the planned stop to complete.
    stopped: Vec<oneshot::Sender<()>>,
    exited: bool,
    /// Monitors that get MY_STATE by unicast (`--monitor-peer`), and
    /// whether it is broadcast too.
    monitors: Vec<Ipv4Addr>,
    broadcast_reports: bool,
    /// What the digit cache computed at the last look, as the node was told.
    computing: Option<Computing>,
}

/// How often the actor looks at what the digit cache computes (a
/// computation shorter than this may go unreported).
const COMPUTING_LOOK: Duration = Duration::from_millis(250);

impl StateMachine {
    pub fn new(node: Node, peers: Peers, pi: Arc<PiDigits>, host: Ipv4Addr, summary_every: Option<Duration>) -> Self {
        let progress = node.expansion().len();
        StateMachine {
            node,
            peers,
            pi,
            host,
            origin: Instant::now(),
            timers: HashMap::new(),
            started: SystemTime::now(),
            summary_every,
            last_summary: (Instant::now(), 0, progress),
            persister: None,
            stopped: Vec::new(),
            exited: false,
            monitors: Vec::new(),
            broadcast_reports: true,
            computing: None,
        }
    }

    /// This node started at `started` (default: when the actor was made).
    pub fn with_start(mut self, started: SystemTime) -> Self {
        self.started = started;
        self
    }

    /// Send MY_STATE by unicast to `monitors`, and broadcast it only if
    /// `broadcast`.
    pub fn with_monitors(mut self, monitors: Vec<Ipv4Addr>, broadcast: bool) -> Self {
        self.monitors = monitors;
        self.broadcast_reports = broadcast;
        self
    }

    /// Save the expansion (and revision) whenever the node says so.
    pub fn with_persister(mut self, persister: Persister) -> Self {
        self.persister = Some(persister);
        self
    }

    fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.origin)
    }

    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        for action in self.node.handle(self.now(), input) {
            self.carry_out(action, ctx);
        }
    }

    fn carry_out(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Broadcast(message) => {
                self.peers.udp.do_send(Broadcast { message, port: Port::Ring, unicast: Vec::new() })
            }
            Action::Unicast { to, message } => {
                self.peers.udp.do_send(Broadcast { message, port: Port::Ring, unicast: to })
            }
            Action::Send { to, message } => {
                let tcp = self.peers.tcp.clone();
                ctx.spawn(
                    async move {
                        let kind = message.body.kind();
                        match tcp.send(SendTo { to, message, patience: None, deadline: None }).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => log::debug!("reply {kind:?} to {to} not delivered: {e}"),
                            Err(e) => log::debug!("reply {kind:?} to {to} not delivered: {e}"),
                        }
                    }
                    .into_actor(self),
                );
            }
            Action::Probe { id, to, message, asked } => {
                let send = self.peers.tcp.send(SendTo { to, message, patience: None, deadline: None });
                ctx.spawn(send.into_actor(self).map(move |result, act, ctx| {
                    let result = result.unwrap_or(Err(crate::error::SendError::EndpointGone));
                    act.feed(Input::Probed { id, host: to, asked, result }, ctx);
                }));
            }
            Action::SendToken { attempt, to: _, host, message, patience, deadline } => {
                let send = self.peers.tcp.send(SendTo {
                    to: host,
                    message,
                    patience: Some(patience),
                    deadline: Some(deadline),
                });
                ctx.spawn(send.into_actor(self).map(move |result, act, ctx| {
                    let result = result.unwrap_or(Err(crate::error::SendError::EndpointGone));
                    act.feed(Input::TokenSent { attempt, result }, ctx);
                }));
            }
            Action::SetTimer { timer, after } => {
                let handle = ctx.run_later(after, move |act, ctx| act.feed(Input::Timer(timer), ctx));
                if let Some(old) = self.timers.insert(timer.kind, handle) {
                    ctx.cancel_future(old);
                }
            }
            Action::CancelTimer(kind) => {
                if let Some(handle) = self.timers.remove(&kind) {
                    ctx.cancel_future(handle);
                }
            }
            Action::Compute { epoch, len, check } => self.compute(epoch, len, check, ctx),
            Action::StateChanged { old, new, token, progress } => {
                if new == StateName::Owner && self.node.holdings() == 1 {
                    // Monitors time the same event from MY_STATE's
                    // `started_ms` and `timestamp_ms`.
                    let after = SystemTime::now().duration_since(self.started).unwrap_or_default();
                    log::info!(
                        "{}: took the token for the first time since its start, {:.2} s after it",
                        self.node.id(),
                        after.as_secs_f64()
                    );
                }
                // Hand-offs are per-pass detail; other changes matter.
                let hand_off =
                    matches!((old, new), (StateName::Waiter, StateName::Owner) | (StateName::Owner, StateName::Waiter));
                let level = if hand_off { log::Level::Debug } else { log::Level::Info };
                let what = match new {
                    StateName::Owner | StateName::Waiter => format!("{token}"),
                    _ => format!("{} digits", progress.saturating_sub(2)),
                };
                log::log!(level, "{}: {} -> {}, {what}", self.node.id(), old.for_people(), new.for_people());
            }
            Action::Report(report) => self.report(*report),
            Action::Persist { expansion, own_revision } => {
                if let Some(persister) = &mut self.persister {
                    persister.save(&expansion, own_revision);
                }
            }
            Action::Members(members) => self.peers.members.do_send(Members(members)),
            Action::Exit => {
                if let Some(persister) = &mut self.persister {
                    persister.flush();
                }
                let how = if self.node.holds_token() { "with the token (nobody else to take it) " } else { "" };
                log::info!("{}: stopped {how}after {} holdings", self.node.id(), self.node.holdings());
                self.exited = true;
                for waiter in self.stopped.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    /// The expansion of `len` (after checking `check`): from the cache at
    /// once when it has the digits and nothing is to check (letting it
    /// grow ahead), else on a blocking thread.
    fn compute(&mut self, epoch: u64, len: usize, check: Option<Unchecked>, ctx: &mut Context<Self>) {
        // The cache measures the ring's pace and grows ahead of it
        // (detached: it publishes the longer expansion). Digits handed in
        // but not checked yet are a claim, not the ring's pace.
        if check.is_none() {
            drop(self.pi.grow_ahead(len));
        }
        // Usually the cache has the digits (and those handed with the
        // token, to compare): no thread needed.
        let cached = self.pi.cached_expansion(len).and_then(|expansion| match &check {
            None => Some((expansion, None)),
            Some(digits) => self.pi.verify_unchecked_cached(digits).map(|v| (expansion, Some(v.expansion))),
        });
        if let Some((expansion, checked)) = cached {
            // Through the runtime, not straight back into this actor's
            // queue: a holder that nobody else can take the token from
            // holds again at once, and a chain of notifications would
            // starve its heartbeat timer.
            let computed = Input::Computed { epoch, expansion: Some(expansion), checked };
            ctx.spawn(tokio::task::yield_now().into_actor(self).map(move |(), act, ctx| act.feed(computed, ctx)));
            return;
        }
        let pi = Arc::clone(&self.pi);
        let work = move || {
            let checked = check.map(|digits| pi.verify_unchecked(&digits).expansion);
            // Only what the holding uses: 20 digits past the checked ones
            // (a claim cut short by its check needs no more).
            let len = checked.as_ref().map_or(len, |c| len.min(extended_len(c.len())));
            (pi.expansion(len), checked)
        };
        ctx.spawn(async move { tokio::task::spawn_blocking(work).await }.into_actor(self).map(
            move |result, act, ctx| {
                let (expansion, checked) = match result {
                    Ok((expansion, checked)) => (Some(expansion), checked),
                    Err(e) => {
                        log::error!("digit computation failed: {e}");
                        (None, None)
                    }
                };
                act.feed(Input::Computed { epoch, expansion, checked }, ctx)
            },
        ));
    }

    /// Tell the node what the digit cache computes, whenever that changed
    /// (the node decides what monitors hear of it, and when).
    fn look_at_computing(&mut self, ctx: &mut Context<Self>) {
        let now = self.pi.computing();
        if now != self.computing {
            self.computing = now;
            self.feed(Input::Computing(now), ctx);
        }
    }

    /// MY_STATE on the monitoring port, as the node decided it.
    fn report(&mut self, report: Report) {
        let state = report.into_my_state(unix_ms(SystemTime::now()), unix_ms(self.started), self.host.to_string());
        let message = Message::new(self.node.id(), Body::MyState(Box::new(state)));
        if !self.monitors.is_empty() {
            let unicast = self.monitors.clone();
            self.peers.udp.do_send(Broadcast { message: message.clone(), port: Port::Monitor, unicast });
        }
        if self.broadcast_reports {
            self.peers.udp.do_send(Broadcast { message, port: Port::Monitor, unicast: Vec::new() });
        }
    }

    fn summarise(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let (since, holdings_then, progress_then) = self.last_summary;
        let secs = now.duration_since(since).as_secs_f64().max(1e-9);
        let progress = self.node.expansion().len();
        let line = format!(
            "{}: {} | {} digits (+{:.0}/s) | held {:.1}/s",
            self.node.id(),
            self.node.state().for_people(),
            progress.saturating_sub(2),
            (progress.saturating_sub(progress_then)) as f64 / secs,
            (self.node.holdings() - holdings_then) as f64 / secs,
        );
        let line = match self.pi.computing() {
            Some(c) => format!("{line} | computing {} digits: {:.0} %", c.digits, c.done * 100.0),
            None => line,
        };
        self.last_summary = (now, self.node.holdings(), progress);
        ctx.spawn(self.peers.get_members.send(GetMembers).into_actor(self).map(move |members, _, _| {
            let members = members.map(|m: Vec<Member>| m.iter().filter(|m| !m.lost).count()).unwrap_or(0);
            log::info!("{line} | {members} nodes in the ring");
        }));
    }
}

impl Actor for StateMachine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Datagrams wait here at most this many deep (the UDP endpoint
        // drops the rest); TCP messages are bounded by connection slots.
        ctx.set_mailbox_capacity(MAILBOX);
        if let Some(every) = self.summary_every {
            ctx.run_interval(every, |act, ctx| act.summarise(ctx));
        }
        ctx.run_interval(COMPUTING_LOOK, |act, ctx| act.look_at_computing(ctx));
        self.feed(Input::Start, ctx);
    }
}

impl Handler<Inbound> for StateMachine {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let Inbound { message, from, via } = msg;
        self.feed(Input::Received { message, from, via }, ctx);
    }
}

impl Handler<Feed> for StateMachine {
    type Result = ();

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) {
        self.feed(msg.0, ctx);
    }
}

impl Handler<Stop> for StateMachine {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        if self.exited {
            let _ = done.send(());
        } else {
            self.stopped.push(done);
            self.feed(Input::Stop, ctx);
        }
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

impl Handler<GetStatus> for StateMachine {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Status {
            state: self.node.state(),
            token: self.node.token(),
            expansion: self.node.expansion().clone(),
            holdings: self.node.holdings(),
        })
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
