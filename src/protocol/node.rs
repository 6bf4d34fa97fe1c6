//! One pi-ring node as a pure, sans-IO value: the registry (PROTOCOL
//! sections 1 and 6), the state machine (section 7), the progress of a
//! hand-off (which node to try after a failure), timers, persistence
//! decisions and the planned stop.
//!
//! [`Node::handle`] takes the time and one [`Input`] and returns the
//! [`Action`]s to carry out. It reads no clock and touches no socket: the
//! actors (`crate::actors`) carry its actions out on a real network, and the
//! simulation (`tests/sim`) delivers the very same actions through a faulty
//! virtual one. Nothing protocol-related is decided outside it.
//!
//! The hand-off: the machine asks to pass the token; the node sends
//! TAKE_TOKEN to the next member in ring order and waits for
//! [`Input::TokenSent`]. On failure it marks that member lost (section 1)
//! and tries the following one. Each member is tried at most once per
//! hand-off, and at most one *suspect* (a member that failed before and was
//! not heard from since), so members that are down for good cost a round at
//! most one failed attempt. When nobody can be reached the holder keeps the
//! token and computes again, so the expansion keeps growing.

use super::budget::{Budget, Rates};
use super::machine::{Config, Envelope, Machine, Output, TimerId, TimerKind};
use super::message::{Body, Message, RawMessage, StateName};
use super::registry::{Member, Registry};
use super::report::{Decision, Report, Reporter};
use super::token::{NodeId, Token};
use super::Time;
use crate::error::SendError;
use crate::pi::{check_handed, Computing, Expansion, Unchecked};
use crate::warn_limit::WarnLimiter;
use crate::warn_limited;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Refusals in a row after which a member is named as refusing the token.
const REFUSALS_TO_SAY: u32 = 3;

/// After a hand-off to a member that never passed the token (its port
/// answered a PING, which a stranger's can too) failed, a node tries no
/// other such member for this many `waiter`s; established members are
/// tried freely.
const NEW_MEMBER_EVERY_WAITERS: u32 = 4;

/// Membership changes are reported at most this often: a flood of new ids
/// must not copy a list of a thousand members per datagram.
const MEMBERS_EVERY: Duration = Duration::from_millis(100);

/// Members marked lost are PINGed in the background once per `waiter`
/// each ([`Node::recheck_lost`]), in sweeps this many times a `waiter`, each
/// PINGing at most [`RECHECKS_PER_SWEEP`] of them: at most 16 PINGs a
/// `waiter` in all, however many members are down.
const RECHECK_SWEEPS_PER_WAITER: u32 = 4;
const RECHECKS_PER_SWEEP: usize = 4;

/// How often the registry forgets stale members and proves new ones.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// The most characters a node computes to fill in what it lacks in front
/// of a delta hand-off (PROTOCOL section 10, "Delta hand-offs"): a sender
/// that thought it had more (a restart whose PING was lost) costs a bounded
/// computation, and so does one that lies.
pub const MAX_GAP_FILLED: usize = 100_000;

/// How often a warning about the registry being full, or a budget biting,
/// is repeated while it goes on.
const SAY_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// How a message reached the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A UDP broadcast (a datagram not addressed to this node alone).
    Udp,
    /// A UDP datagram addressed to this node's own address: a broadcast
    /// that reached us by unicast, from a member beyond our broadcast
    /// domain or a node started with seed peers.
    Unicast,
    /// A TCP connection.
    Tcp,
}

/// Everything that can happen to a node.
#[derive(Clone, Debug)]
pub enum Input {
    /// The node starts: announce itself and look for the token.
    Start,
    /// A decoded message from the network (authenticated, with a secret);
    /// a TAKE_TOKEN's data as it came, which the node checks (section 4).
    Received { message: RawMessage, from: Ipv4Addr, via: Via },
    /// A timer armed by [`Action::SetTimer`] fired.
    Timer(TimerId),
    /// The computation asked by [`Action::Compute`] finished (`None`: it
    /// failed), with the correct prefix of the digits it was asked to
    /// check.
    Computed { epoch: u64, expansion: Option<Expansion>, checked: Option<Expansion> },
    /// The TAKE_TOKEN of [`Action::SendToken`] was written out (`Ok`) or
    /// could not be (`Err`).
    TokenSent { attempt: u64, result: Result<(), SendError> },
    /// The PING of [`Action::Probe`] was delivered to `id` at `host` (its
    /// TCP port accepted it) or not; `asked` is the probe's, echoed.
    Probed { id: NodeId, host: Ipv4Addr, asked: Time, result: Result<(), SendError> },
    /// A planned stop (SIGTERM, Ctrl-C): a holder hands the token on first.
    Stop,
    /// What the node's digit cache computes now changed (`None`: nothing):
    /// monitors are told (a ring that waits for pi says why).
    Computing(Option<Computing>),
}

/// What the node asks its carrier to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// UDP broadcast on the ring port.
    Broadcast(Message),
    /// The same message by UDP unicast to the ring port of each host: the
    /// members a broadcast does not reach, and seed peers not known yet.
    Unicast { to: Vec<Ipv4Addr>, message: Message },
    /// TCP unicast to one host; the result does not matter (replies).
    Send { to: Ipv4Addr, message: Message },
    /// TCP PING to member `id` at `to`, to learn whether its TCP port
    /// answers (a newcomer, or a member known only from a table); report
    /// the result with [`Input::Probed`], echoing `asked` (when the node
    /// asked for it: a failure says nothing of what was heard since).
    Probe { id: NodeId, to: Ipv4Addr, message: Message, asked: Time },
    /// TCP unicast of TAKE_TOKEN; report the result with
    /// [`Input::TokenSent`] and this `attempt`. Give up on the member after
    /// `patience` without progress (connecting, or writing): the holder
    /// heart-beats meanwhile, so a member that is off or stopped must not
    /// hold the token for long.
    /// The whole hand-off, whatever its size, finishes or fails within
    /// `deadline` (the recovery bound): a member that reads slowly cannot
    /// hold the token for longer than losing it would cost.
    SendToken { attempt: u64, to: NodeId, host: Ipv4Addr, message: Message, patience: Duration, deadline: Duration },
    /// Compute the expansion of length `len` off the event loop, after
    /// verifying `check` (digits handed with the token) if given; report
    /// both with [`Input::Computed`].
    Compute { epoch: u64, len: usize, check: Option<Unchecked> },
    /// Arm a timer; it replaces the armed one of the same kind.
    SetTimer { timer: TimerId, after: Duration },
    /// Disarm the timer of this kind.
    CancelTimer(TimerKind),
    /// The behaviour changed (for the log; monitors hear of it by
    /// [`Action::Report`], at once or coalesced).
    StateChanged { old: StateName, new: StateName, token: Token, progress: usize },
    /// Send MY_STATE to monitors (PROTOCOL section 10: every change at
    /// once, routine hand-offs coalesced once a second).
    Report(Box<Report>),
    /// Save this state (`--data-dir`): the expansion or the revision changed.
    Persist { expansion: Expansion, own_revision: u64 },
    /// The membership changed (a node joined, was learnt, marked lost or
    /// heard from again): every member in ring order.
    Members(Vec<Member>),
    /// The planned stop is complete: the process may exit.
    Exit,
}

/// A hand-off in progress.
#[derive(Debug)]
struct HandOff {
    /// The machine's epoch when it asked to pass; a result in another
    /// epoch is not the machine's business any more.
    epoch: u64,
    token: Token,
    data: Expansion,
    /// The attempt in flight and the member it goes to.
    attempt: u64,
    to: NodeId,
    host: Ipv4Addr,
    tried: BTreeSet<NodeId>,
    suspect_tried: bool,
    new_tried: bool,
    /// The attempt in flight goes to a new member.
    to_new: bool,
    /// When the attempt in flight started.
    started: Time,
}

impl HandOff {
    /// A hand-off that has tried nobody yet.
    fn new(epoch: u64, token: Token, data: Expansion) -> Self {
        HandOff {
            epoch,
            token,
            data,
            attempt: 0,
            to: NodeId::new(),
            host: Ipv4Addr::UNSPECIFIED,
            tried: BTreeSet::new(),
            suspect_tried: false,
            new_tried: false,
            to_new: false,
            started: Time::ZERO,
        }
    }
}

/// The protocol core of one node.
pub struct Node {
    machine: Machine,
    registry: Registry,
    hand_off: Option<HandOff>,
    attempts: u64,
    stopping: bool,
    exited: bool,
    /// The last (length, revision) asked to be persisted.
    persisted: (usize, u64),
    /// How long a hand-off waits for one member without progress: half
    /// the `waiter` timeout, so a round past a member that is off costs far
    /// less than a recovery.
    patience: Duration,
    /// How long a whole hand-off may take: the recovery bound (`waiter +
    /// looser_answer + generating`).
    hand_off_deadline: Duration,
    /// When a hand-off to a member that never passed the token last failed,
    /// and how long no other such is tried after that
    /// ([`NEW_MEMBER_EVERY_WAITERS`] `waiter`s).
    new_member_failed: Option<Time>,
    new_member_every: Duration,
    /// How long the last delivered TAKE_TOKEN took to send: the estimate of
    /// the next one's time in transit, which the pacing it carries adds
    /// (the receiver cannot measure it).
    transit: Duration,
    warnings: WarnLimiter,
    /// Seed peers (`--peer`): hosts that hear our broadcasts by unicast
    /// until a member is known at them.
    seeds: Vec<Ipv4Addr>,
    /// Whether to broadcast at all (`--no-broadcast`: unicast only).
    broadcast: bool,
    /// Addresses of other nodes that used our id, already reported.
    twins: BTreeSet<Ipv4Addr>,
    /// TCP answers (replies to searches and claims) and PINGs, per source
    /// address and in total: a flood of valid datagrams costs a bounded
    /// number of connections.
    replies: Budget,
    pings: Budget,
    /// "Joined the ring" lines, rate-limited like warnings.
    joins: WarnLimiter,
    /// The membership changed since it was last reported ([`Action::Members`],
    /// at most every [`MEMBERS_EVERY`]), and when that was.
    members_changed: bool,
    members_reported: Option<Time>,
    /// When the registry was last tidied; when "registry full" and "budget
    /// bites" were last said, and how much since.
    upkept: Option<Time>,
    said_full: Option<Time>,
    evicted_unsaid: u64,
    said_budget: Option<Time>,
    /// Addresses of other nodes found sending from our own address, already
    /// reported.
    sharing_our_address: BTreeSet<NodeId>,
    /// Times this node took the token since it started.
    holdings: u64,
    /// Delta hand-offs on ([`Self::with_deltas`]).
    deltas: bool,
    /// When members marked lost were last PINGed because one of them was
    /// heard again ([`Self::recheck_failing`]), and how often at most.
    rechecked: Option<Time>,
    recheck_every: Duration,
    /// When members marked lost were last swept for a background PING
    /// ([`Self::recheck_lost`]).
    swept: Option<Time>,
    /// When this node last broadcast a PING on meeting a better token
    /// ([`Self::announce_after_merge`]).
    announced: Option<Time>,
    /// The live token this node knows of while it waits or holds: the one
    /// it holds or last held, or last heard announced. Meeting another one
    /// means that two tokens live, usually two sides of a healed partition.
    known_token: Option<Token>,
    /// Members a hand-off failed to, heard from since: alive.
    heard_after_failure: BTreeSet<NodeId>,
    /// Members reported as refusing the token, already reported; and
    /// refusals in a row per member.
    refusing: BTreeSet<NodeId>,
    refusals: std::collections::BTreeMap<NodeId, u32>,
    /// The pacing of MY_STATE, and the hand-off of the latest change.
    reporter: Reporter,
    last_change: (Option<NodeId>, Option<NodeId>),
    /// What the digit cache computes now, as last told.
    computing: Option<Computing>,
    actions: Vec<Action>,
}

impl Node {
    /// A node at `host` that starts with `expansion` (saved earlier, or
    /// empty) and `own_revision` tokens generated before.
    pub fn new(config: Config, host: Ipv4Addr, expansion: Expansion, own_revision: u64) -> Self {
        let registry = Registry::new(&config.id, host, config.timing.waiter);
        let persisted = (expansion.len(), own_revision);
        let patience = config.timing.waiter / 2;
        let period = config.timing.looser_ask.min(config.timing.heartbeat);
        let hand_off_deadline = config.timing.waiter + config.timing.looser_answer + config.timing.generating;
        let new_member_every = config.timing.waiter * NEW_MEMBER_EVERY_WAITERS;
        let recheck_every = config.timing.waiter;
        Node {
            machine: Machine::with_expansion(config, expansion, own_revision),
            registry,
            hand_off: None,
            attempts: 0,
            stopping: false,
            exited: false,
            persisted,
            patience,
            hand_off_deadline,
            new_member_failed: None,
            new_member_every,
            transit: Duration::ZERO,
            warnings: WarnLimiter::new(5),
            seeds: Vec::new(),
            broadcast: true,
            twins: BTreeSet::new(),
            // A searching node asks once per period and a claim is answered
            // once: 4 answers per period per source, for 256 such sources.
            replies: Budget::new(Rates::per_period(4.0, 1024.0, period)),
            // One PING per newcomer; a ring of MAX_NODES starting at once
            // is proven within seconds.
            pings: Budget::new(Rates { burst: 3.0, per_second: 1.0, total_burst: 512.0, total_per_second: 256.0 }),
            joins: WarnLimiter::new(5),
            members_changed: false,
            members_reported: None,
            upkept: None,
            said_full: None,
            evicted_unsaid: 0,
            said_budget: None,
            sharing_our_address: BTreeSet::new(),
            holdings: 0,
            deltas: true,
            rechecked: None,
            recheck_every,
            swept: None,
            announced: None,
            known_token: None,
            heard_after_failure: BTreeSet::new(),
            refusing: BTreeSet::new(),
            refusals: Default::default(),
            reporter: Reporter::default(),
            last_change: (None, None),
            computing: None,
            actions: Vec::new(),
        }
    }

    /// Reach the ring beyond the broadcast domain: `seeds` hear what we
    /// broadcast by unicast until a member is known at them, and without
    /// `broadcast` every message the protocol broadcasts goes by unicast
    /// to each known member instead.
    pub fn with_discovery(mut self, seeds: Vec<Ipv4Addr>, broadcast: bool) -> Self {
        self.registry.trust_hosts(seeds.iter().copied());
        self.seeds = seeds;
        self.broadcast = broadcast;
        self
    }

    /// Take part in delta hand-offs (the default): say `have` in every
    /// message, and hand members that say it only what they lack. Without,
    /// whole expansions only, as the older implementation.
    pub fn with_deltas(mut self, deltas: bool) -> Self {
        self.deltas = deltas;
        self
    }

    pub fn id(&self) -> &str {
        self.machine.id()
    }

    /// Where a broadcast also goes by unicast: members the broadcast does
    /// not reach (not heard by broadcast at their address; all of them
    /// without broadcast), and seeds with no known member.
    fn unicast_targets(&self) -> Vec<Ipv4Addr> {
        let mut to = self.registry.unicast_hosts(!self.broadcast);
        let own = self.registry.host_of(self.id());
        for seed in &self.seeds {
            if Some(*seed) != own && !self.registry.has_host(*seed) && !to.contains(seed) {
                to.push(*seed);
            }
        }
        to
    }

    pub fn state(&self) -> StateName {
        self.machine.state()
    }

    pub fn token(&self) -> Token {
        self.machine.token()
    }

    /// The candidate used while searching (section 2).
    pub fn candidate(&self) -> Token {
        self.machine.candidate()
    }

    pub fn expansion(&self) -> &Expansion {
        self.machine.expansion()
    }

    pub fn own_revision(&self) -> u64 {
        self.machine.own_revision()
    }

    /// Digits after the point at which the node stops extending.
    pub fn target_digits(&self) -> usize {
        self.machine.target_digits()
    }

    /// Hand-offs of the current token since it was generated.
    pub fn hops(&self) -> u64 {
        self.machine.hops()
    }

    /// Times this node took the token (entered OWNER) since it started.
    pub fn holdings(&self) -> u64 {
        self.holdings
    }

    /// Whether this node holds the token now (OWNER, not handing it on).
    pub fn holds_token(&self) -> bool {
        self.machine.holds_token()
    }

    /// Every member in ring order, lost marks as of `now`.
    pub fn members(&self, now: Time) -> Vec<Member> {
        self.registry.members(now)
    }

    /// Handle one input at time `now`; returns what to do.
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        let mut heard_live = None;
        match input {
            Input::Start => self.step_machine(now, super::machine::Input::Start),
            Input::Received { message, from, via } => heard_live = self.receive(now, message, from, via),
            Input::Timer(timer) if timer.kind == TimerKind::Report => self.report_coalesced(now, timer),
            Input::Timer(timer) => self.step_machine(now, super::machine::Input::Timer(timer)),
            Input::Computed { epoch, expansion, checked } => {
                self.step_machine(now, super::machine::Input::Computed { epoch, expansion, checked })
            }
            Input::TokenSent { attempt, result } => self.token_sent(now, attempt, result),
            Input::Probed { id, host, asked, result } => self.probed(now, &id, host, asked, result),
            Input::Computing(computing) => {
                let before = std::mem::replace(&mut self.computing, computing);
                if self.reporter.computing(now, before, computing) {
                    // The state as it is: no change, no hand-off.
                    let state = self.machine.state();
                    self.report_with(now, state, state, self.reported_token(state), (None, None));
                }
            }
            Input::Stop => {
                if !self.stopping {
                    self.stopping = true;
                    if self.machine.holds_token() {
                        log::info!("{}: stopping: handing the token on first", self.id());
                    }
                    self.step_machine(now, super::machine::Input::Stop);
                }
            }
        }
        self.track_known_token(heard_live);
        self.upkeep(now);
        self.recheck_lost(now);
        if self.members_changed && self.members_reported.is_none_or(|at| now.saturating_sub(at) >= MEMBERS_EVERY) {
            self.members_changed = false;
            self.members_reported = Some(now);
            self.actions.push(Action::Members(self.registry.members(now)));
        }
        if self.stopping && self.hand_off.is_none() && !self.exited {
            self.exited = true;
            self.actions.push(Action::Exit);
        }
        self.stamp_have();
        let persist = (self.expansion().len(), self.own_revision());
        if persist != self.persisted {
            self.persisted = persist;
            self.actions.push(Action::Persist { expansion: self.expansion().clone(), own_revision: persist.1 });
        }
        std::mem::take(&mut self.actions)
    }

    /// Every message this node sends says how much of the expansion it
    /// has (`have`): receivers then hand it only what it lacks.
    fn stamp_have(&mut self) {
        if !self.deltas {
            return;
        }
        let have = Some(self.expansion().len() as u64);
        for action in &mut self.actions {
            match action {
                Action::Broadcast(message)
                | Action::Unicast { message, .. }
                | Action::Send { message, .. }
                | Action::SendToken { message, .. }
                | Action::Probe { message, .. } => message.have = have,
                _ => {}
            }
        }
    }

    /// PROTOCOL section 6, then the state acts (step 5). Returns the live
    /// token the message told of (TOKEN_IS_HERE, TAKE_TOKEN), if delivered.
    fn receive(&mut self, now: Time, message: RawMessage, from: Ipv4Addr, via: Via) -> Option<Token> {
        let reception = self.registry.receive(&message, from, now);
        if via == Via::Udp && reception.deliver {
            self.registry.heard_by_broadcast(&message.author);
        }
        if let Some(known) = reception.impostor {
            if message.author == self.id() {
                self.twin(from, known);
                return None;
            }
            warn_limited!(
                at now,
                self.warnings,
                "{}: dropped a {} message from {from} claiming to be {}, which is at {known} \
                 (two nodes with one --id, or a forgery)",
                self.id(),
                message.body.kind(),
                message.author
            );
            return None;
        }
        if reception.shares_our_address {
            self.shares_our_address(&message.author, from);
            return None;
        }
        if let Some(old) = reception.moved_from {
            log::info!(
                "{}: node {} moved from {old} to {from} (it restarted at a new address)",
                self.id(),
                message.author
            );
        }
        if let Some(old) = &reception.replaced {
            warn_limited!(
                at now,
                self.warnings,
                "{}: node {} at {from} replaces {old}, which was at that address (one id per address: \
                 a restart under a new id, or two ids on one address)",
                self.id(),
                message.author
            );
        }
        self.evicted(now, reception.evicted.len());
        if reception.unmarked {
            self.heard_after_failure.insert(message.author.clone());
        }
        // Evidence that the network healed: a member a send had failed to
        // speaks again, or another token than ours is about (two sides of a
        // partition each made one).
        let live = match &message.body {
            Body::TokenIsHere { token } | Body::TakeToken { token, .. } if reception.deliver => Some(token.clone()),
            _ => None,
        };
        let met = live.as_ref().and_then(|t| self.meets_another_token(t));
        if reception.deliver && (reception.unmarked || met.is_some()) {
            self.recheck_failing(now);
        }
        if met == Some(true) {
            self.announce_after_merge(now);
        }
        if !reception.deliver {
            return None;
        }
        if let Some(have) = message.have {
            self.registry.note_have(&message.author, have, via == Via::Tcp);
        }
        if reception.newcomer {
            if let Some(suppressed) = self.joins.allow_at(now) {
                let how = match via {
                    Via::Udp => "broadcast",
                    Via::Unicast => "unicast UDP",
                    Via::Tcp => "TCP",
                };
                let at = if message.author == from.to_string() { String::new() } else { format!(" at {from}") };
                let more =
                    if suppressed > 0 { format!(" ({suppressed} more joined meanwhile)") } else { String::new() };
                log::info!("{}: node {}{at} joined the ring (first heard by {how}){more}", self.id(), message.author);
            }
        }
        if reception.ping_back {
            self.probe(now, message.author.clone(), from);
        }
        if matches!(message.body, Body::TakeToken { .. }) {
            self.registry.established(&message.author);
        }
        for (id, host) in &reception.rejected {
            warn_limited!(
                at now,
                self.warnings,
                "{}: ignoring node {id:?} at {host:?} in the table from {}: not a valid id and IPv4 address, \
                 or the registry is full",
                self.id(),
                message.author
            );
        }
        if reception.untrusted > 0 {
            // Usually a member's first hand-off that overtook our PING to
            // it: the next table is learnt. Else a stranger's.
            log::debug!(
                "{}: not learning {} new members from the table of {} at {from}: its TCP port has not \
                 answered ours yet",
                self.id(),
                reception.untrusted,
                message.author
            );
        }
        let changed = reception.newcomer
            || reception.learnt > 0
            || reception.unmarked
            || reception.moved_from.is_some()
            || reception.replaced.is_some()
            || !reception.evicted.is_empty();
        if reception.learnt > 0 {
            self.prove_table_members(now);
        }
        if changed {
            self.members_changed = true;
        }
        let (message, unchecked) = self.check_data(now, message, from);
        self.step_machine(now, super::machine::Input::Received(Envelope { message, from, unchecked }));
        live
    }

    /// PROTOCOL section 4 for a TAKE_TOKEN's data (whole, or from
    /// `data_from` on): what matches our expansion, and the characters
    /// beyond it, which the machine checks while it holds the token.
    /// Characters that are not pi are dropped with a warning; a delta that
    /// starts further than we can fill in ourselves brings nothing.
    fn check_data(&mut self, now: Time, message: RawMessage, from: Ipv4Addr) -> (Message, Option<Unchecked>) {
        let start = match &message.body {
            Body::TakeToken { data_from, .. } => data_from.map_or(0, |f| usize::try_from(f).unwrap_or(usize::MAX)),
            _ => 0,
        };
        let own = self.machine.expansion().clone();
        let max_len = self.machine.target_digits().saturating_add(2);
        let mut handed = None;
        let message = message.map_data(|data| {
            let checked = check_handed(&own, start, &data, max_len, MAX_GAP_FILLED);
            let expansion = checked.expansion.clone();
            handed = Some(checked);
            expansion
        });
        let Some(handed) = handed.filter(|_| matches!(message.body, Body::TakeToken { .. })) else {
            return (message, None);
        };
        if let Some((claimed, correct)) = handed.wrong {
            warn_limited!(
                at now,
                self.warnings,
                "{}: TAKE_TOKEN from {} ({from}) carried {claimed} characters of which only the first {correct} are pi; \
                 keeping those",
                self.id(),
                message.author
            );
        }
        if let Some(gap) = handed.gap_refused {
            warn_limited!(
                at now,
                self.warnings,
                "{}: TAKE_TOKEN from {} ({from}) carried digits from character {start} on, but this node has only {}: \
                 the {gap} in between are more than it computes for a hand-off ({MAX_GAP_FILLED}); going on from its own",
                self.id(),
                message.author,
                own.len()
            );
        }
        (message, handed.unchecked)
    }

    /// Members were evicted from a full registry: say so once a minute.
    fn evicted(&mut self, now: Time, count: usize) {
        if count == 0 {
            return;
        }
        self.evicted_unsaid += count as u64;
        if self.said_full.is_none_or(|at| now.saturating_sub(at) >= SAY_AGAIN_AFTER) {
            self.said_full = Some(now);
            let evicted = std::mem::take(&mut self.evicted_unsaid);
            log::warn!(
                "{}: the registry is full ({} members): evicted {evicted} member(s) never proven or unheard \
                 the longest (many new ids: a flood, or a very large LAN)",
                self.id(),
                self.registry.len(),
            );
        }
    }

    /// PING `id` at `to` by TCP, within the PING budget: its result says
    /// whether its TCP port answers.
    fn probe(&mut self, now: Time, id: NodeId, to: Ipv4Addr) {
        if self.pings.allow(to, now) {
            self.ping_by_tcp(now, id, to);
        } else {
            self.registry.probe_later(&id);
            self.budget_bites(now);
        }
    }

    /// A member that a send had failed to was heard again, or another token
    /// than ours: the network may have healed (a partition, a cut router),
    /// so PING every member marked lost now rather than when its mark,
    /// backed off during the split, expires; a PING that goes through puts
    /// it back in the rotation within a round (PROTOCOL section 10, "Back
    /// from a partition"). At most once a `waiter`, within the PING budget.
    fn recheck_failing(&mut self, now: Time) {
        if self.rechecked.is_some_and(|at| now.saturating_sub(at) < self.recheck_every) {
            return;
        }
        self.rechecked = Some(now);
        for (id, host) in self.registry.failing(128) {
            if self.pings.allow(host, now) {
                self.ping_by_tcp(now, id, host);
            }
        }
    }

    /// PING in the background, once per `waiter` each, the members a send
    /// failed to whose backed-off lost mark has time left. Hand-offs back
    /// off from a member that stays down, so that it costs the token
    /// little; these PINGs do not, and cost the token nothing (they are not
    /// on its way). A member that is back but silent, such as the last link
    /// of a partition to heal after the news of the two tokens went out, is
    /// thus back in the rotation within a `waiter` and a round; one that
    /// stays down is PINGed until it is forgotten (PROTOCOL section 10,
    /// "Lost marks back off"). Our own marks, not the network's input,
    /// decide whom: the PING budget for answers does not apply, the sweep's
    /// own bound does.
    fn recheck_lost(&mut self, now: Time) {
        let every = self.recheck_every;
        if self.swept.is_some_and(|at| now.saturating_sub(at) < every / RECHECK_SWEEPS_PER_WAITER) {
            return;
        }
        self.swept = Some(now);
        for (id, to) in self.registry.due_for_recheck(now, every, RECHECKS_PER_SWEEP) {
            self.ping_by_tcp(now, id, to);
        }
    }

    /// A TCP PING to `id` at `to`, its result reported by [`Input::Probed`]
    /// (whoever decided it and within whatever budget).
    fn ping_by_tcp(&mut self, now: Time, id: NodeId, to: Ipv4Addr) {
        let message = Message::new(self.id(), Body::Ping);
        self.actions.push(Action::Probe { id, to, message, asked: now });
    }

    /// PING members learnt from tables, as the PING budget allows (the rest
    /// are PINGed at the next upkeep).
    fn prove_table_members(&mut self, now: Time) {
        for (id, host) in self.registry.take_probes(now, 128) {
            self.probe(now, id, host);
        }
    }

    /// A budget refused work: say so once a minute, with how much.
    fn budget_bites(&mut self, now: Time) {
        if self.said_budget.is_none_or(|at| now.saturating_sub(at) >= SAY_AGAIN_AFTER) {
            self.said_budget = Some(now);
            let (replies, pings) = (self.replies.take_refused(), self.pings.take_refused());
            log::warn!(
                "{}: too many TCP answers or PINGs asked for: {replies} answers and {pings} PINGs not sent \
                 since this was last said (a flood of valid messages?); said again in a minute if it goes on",
                self.id(),
            );
        }
    }

    /// Once a second: forget members that failed and stayed silent, and
    /// PING members learnt from tables.
    fn upkeep(&mut self, now: Time) {
        if self.upkept.is_some_and(|at| now.saturating_sub(at) < UPKEEP_EVERY) {
            return;
        }
        self.upkept = Some(now);
        let forgotten = self.registry.forget_stale(now);
        if !forgotten.is_empty() {
            log::info!(
                "{}: forgot {} member(s) silent for {:?} since a send to them failed, or never reached: {}",
                self.id(),
                forgotten.len(),
                self.registry.forget_after(),
                forgotten.join(" ")
            );
            self.members_changed = true;
        }
        self.prove_table_members(now);
    }

    /// The result of a PING sent to prove a member's TCP port.
    fn probed(&mut self, now: Time, id: &str, host: Ipv4Addr, asked: Time, result: Result<(), SendError>) {
        match result {
            Ok(()) => self.registry.delivered(id, host, now),
            // Not tried: the node had too many connections open.
            Err(SendError::Busy { .. }) => self.registry.probe_later(id),
            Err(e) => {
                if self.registry.host_of(id) != Some(host) {
                    return;
                }
                log::debug!("{}: PING to {id} at {host} failed: {e}", self.id());
                if let SendError::Refused { addr } = &e {
                    // It just sent us a message, or a member vouched for it.
                    self.heard_after_failure.insert(id.to_owned());
                    self.refuses_while_alive(now, id, *addr);
                }
                // A member whose port we know that answered or spoke since
                // the PING was asked for is there: the failure is older
                // news (a partition that healed while the PING's connection
                // was timing out). A member not proven yet stays due for
                // its PING: the mark below sees to it.
                if self.registry.proven_alive_since(id, asked) {
                    return;
                }
                self.registry.mark_lost_after(id, asked, now);
                self.members_changed = true;
            }
        }
    }

    /// Another node at `from` uses our id (we are at `ours`). Ids must be
    /// unique: both nodes say so, once per address, and each refuses the
    /// other's messages; neither stops (a message from the network never
    /// stops a node: anyone could send one). Its operator restarts one of
    /// them with another id.
    fn twin(&mut self, from: Ipv4Addr, ours: Ipv4Addr) {
        // Said once per address, for a few addresses: forgeries from many
        // addresses must not grow the set or the log.
        if self.twins.len() >= 16 || !self.twins.insert(from) {
            return;
        }
        let id = self.id().to_owned();
        log::error!(
            "{id}: another node at {from} uses this node's id {id:?} (this one is at {ours}): ids must be \
             unique in a ring; ignoring its messages. Restart one of the two with another --id (or this is \
             a forgery)"
        );
    }

    /// A node with another id sends from our own address: on one host,
    /// two nodes must not share an address (hand-offs to it reach us).
    fn shares_our_address(&mut self, other: &str, host: Ipv4Addr) {
        if self.sharing_our_address.len() < 16 && self.sharing_our_address.insert(other.to_owned()) {
            log::error!(
                "{}: node {other:?} sends from this node's own address {host}: every node needs its own \
                 address (on one machine: --bind 127.0.0.2, 127.0.0.3, ...), and all nodes of a ring use \
                 the same ports",
                self.id()
            );
        }
    }

    /// A member refused the token: nothing listens on the ring's TCP port
    /// at its address. If it was heard from since it last failed, it is
    /// alive: usually another `--tcp-port`, or a firewall. After
    /// [`REFUSALS_TO_SAY`] in a row, it has stopped or listens elsewhere.
    fn refuses_while_alive(&mut self, now: Time, id: &str, addr: std::net::SocketAddrV4) {
        // Made-up ids by the thousand must not grow these sets for ever.
        for set_len in [self.refusals.len(), self.refusing.len(), self.heard_after_failure.len()] {
            if set_len >= super::registry::MAX_NODES {
                self.refusals.clear();
                self.refusing.clear();
                self.heard_after_failure.clear();
            }
        }
        let refusals = self.refusals.entry(id.to_owned()).or_default();
        *refusals += 1;
        let in_a_row = *refusals;
        let alive = self.heard_after_failure.remove(id);
        if !(alive || in_a_row == REFUSALS_TO_SAY) || !self.refusing.insert(id.to_owned()) {
            return;
        }
        if alive {
            warn_limited!(
                at now,
                self.warnings,
                "{}: node {id} is alive (it sends to the ring) but refuses the token on TCP {addr}: does it use \
                 another --tcp-port, or does a firewall block the port? All nodes of a ring use the same ports",
                self.id()
            );
        } else {
            warn_limited!(
                at now,
                self.warnings,
                "{}: node {id} refused the token on TCP {addr} {in_a_row} times in a row: it has stopped, or it \
                 listens on another --tcp-port (all nodes of a ring use the same ports)",
                self.id()
            );
        }
    }

    /// Feed the machine and carry its outputs into actions; a request to
    /// pass the token starts a hand-off.
    fn step_machine(&mut self, now: Time, input: super::machine::Input) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            // Who handed us the token, or whom we handed it to, if this
            // input changes the holder (for monitors' hand-off arrows).
            let hand = match &input {
                super::machine::Input::Received(Envelope { message, .. })
                    if matches!(message.body, Body::TakeToken { .. }) =>
                {
                    (Some(message.author.clone()), None)
                }
                super::machine::Input::Passed { to: Some(to), .. } => (None, Some(to.clone())),
                _ => (None, None),
            };
            for output in self.machine.handle(now, input) {
                let action = match output {
                    Output::Broadcast(m) => {
                        self.broadcast(m);
                        continue;
                    }
                    Output::Send { to, message } => {
                        if !self.replies.allow(to, now) {
                            self.budget_bites(now);
                            continue;
                        }
                        Action::Send { to, message }
                    }
                    Output::Compute { epoch, len, check } => Action::Compute { epoch, len, check },
                    Output::SetTimer { timer, after } => Action::SetTimer { timer, after },
                    Output::CancelTimer(kind) => Action::CancelTimer(kind),
                    Output::StateChanged { old, new, token, progress, mut routine } => {
                        if new == StateName::Owner {
                            self.holdings += 1;
                            // The first holding since the start is news for
                            // monitors (back in the rotation): said at once.
                            routine &= self.holdings > 1;
                        }
                        self.actions.push(Action::StateChanged { old, new, token: token.clone(), progress });
                        let (handed_by, handed_to) = match (old, new) {
                            (_, StateName::Owner) => (hand.0.clone(), None),
                            (StateName::Owner, _) => (None, hand.1.clone()),
                            _ => (None, None),
                        };
                        self.last_change = (handed_by, handed_to);
                        match self.reporter.changed(now, routine) {
                            Decision::Now => self.report(now, old, new, token),
                            Decision::Later(timer, after) => self.actions.push(Action::SetTimer { timer, after }),
                            Decision::Wait => {}
                        }
                        continue;
                    }
                    Output::PassToken { epoch, token, data } => {
                        if let Some(done) = self.try_next(now, HandOff::new(epoch, token, data)) {
                            pending.push(done);
                        }
                        continue;
                    }
                };
                self.actions.push(action);
            }
        }
    }

    /// The token a report in `state` tells: the candidate while generating.
    fn reported_token(&self, state: StateName) -> Token {
        if state == StateName::Generating {
            self.candidate()
        } else {
            self.token()
        }
    }

    /// MY_STATE for monitors: `old` to `new` with `token`, and the node's
    /// expansion, counts and last hand-off.
    fn report(&mut self, now: Time, old: StateName, new: StateName, token: Token) {
        let hand = self.last_change.clone();
        self.report_with(now, old, new, token, hand);
    }

    /// MY_STATE with the hand-off `(handed_by, handed_to)` it tells of.
    fn report_with(
        &mut self,
        now: Time,
        old: StateName,
        new: StateName,
        token: Token,
        (handed_by, handed_to): (Option<NodeId>, Option<NodeId>),
    ) {
        if self.reporter.sent(now, new, self.holdings) {
            self.actions.push(Action::CancelTimer(TimerKind::Report));
        }
        let expansion = self.machine.expansion();
        self.actions.push(Action::Report(Box::new(Report {
            old,
            new,
            token,
            progress: expansion.len(),
            digits_tail: expansion.tail(20).to_owned(),
            hops: self.machine.hops(),
            holdings: self.holdings,
            target_digits: self.machine.target_digits(),
            handed_by,
            handed_to,
            computing: self.computing,
        })));
    }

    /// The coalesced report is due: the state now, if anything changed
    /// since the last report.
    fn report_coalesced(&mut self, now: Time, timer: TimerId) {
        let state = self.machine.state();
        if self.reporter.fired(timer, state, self.holdings) {
            let old = self.reporter.last_state().unwrap_or(StateName::None);
            self.report(now, old, state, self.reported_token(state));
        }
    }

    /// Broadcast `message` (and send its unicast copies; by unicast alone
    /// with `--no-broadcast`).
    fn broadcast(&mut self, message: Message) {
        let to = self.unicast_targets();
        if !to.is_empty() {
            self.actions.push(Action::Unicast { to, message: message.clone() });
        }
        if self.broadcast {
            self.actions.push(Action::Broadcast(message));
        }
    }

    /// Whether `token` (announced or handed over) is another live token
    /// than the one this node knows of: `Some(better)`, or `None` for the
    /// same one (or when this node knows of none).
    fn meets_another_token(&self, token: &Token) -> Option<bool> {
        let known = self.known_token.as_ref()?;
        (!same_token(token, known)).then(|| token.is_better_than(known))
    }

    /// Keep [`Self::known_token`]: the token held, the one `heard` of while
    /// waiting (unless worse than the one known), none while searching.
    fn track_known_token(&mut self, heard: Option<Token>) {
        match self.machine.state() {
            StateName::Owner => self.known_token = Some(self.machine.token()),
            StateName::Waiter => {
                if let Some(heard) = heard.filter(|t| self.meets_another_token(t) != Some(false)) {
                    self.known_token = Some(heard);
                }
            }
            _ => self.known_token = None,
        }
    }

    /// A live token better than ours is about while this node waits or
    /// holds: two tokens met, usually because a partition healed, and this
    /// node's side gives way. Members on the other side marked it lost
    /// during the split, and a waiter says nothing that would clear the
    /// mark, so it broadcasts a PING (section 6, step 3 clears the mark of
    /// its author) at most once a `waiter` (PROTOCOL section 10, "Back from
    /// a partition").
    fn announce_after_merge(&mut self, now: Time) {
        if !matches!(self.machine.state(), StateName::Waiter | StateName::Owner) {
            return;
        }
        if self.announced.is_some_and(|at| now.saturating_sub(at) < self.recheck_every) {
            return;
        }
        self.announced = Some(now);
        self.broadcast(Message::new(self.id(), Body::Ping));
    }

    /// Send the token to the next candidate of `hand_off`; when there is
    /// none, the machine's input saying that nobody could be reached.
    fn try_next(&mut self, now: Time, mut hand_off: HandOff) -> Option<super::machine::Input> {
        // One member that never passed the token per hand-off, and none for
        // NEW_MEMBER_EVERY_WAITERS waiters after such a one failed: strangers
        // whose ports accept connections but never take the token cost
        // little, honest newcomers nothing.
        let new_allowed = !hand_off.suspect_tried
            && !hand_off.new_tried
            && self.new_member_failed.is_none_or(|at| now.saturating_sub(at) >= self.new_member_every);
        let suspect_allowed = !hand_off.suspect_tried && !hand_off.new_tried;
        let Some(next) = self.registry.next_candidate(now, &hand_off.tried, suspect_allowed, new_allowed) else {
            if !hand_off.tried.is_empty() {
                log::warn!(
                    "{}: no other member reachable ({} tried); keeping the token",
                    self.id(),
                    hand_off.tried.len()
                );
            }
            return Some(super::machine::Input::Passed { epoch: hand_off.epoch, to: None });
        };
        self.attempts += 1;
        hand_off.attempt = self.attempts;
        hand_off.suspect_tried |= next.suspect;
        hand_off.new_tried |= next.new;
        hand_off.to_new = next.new;
        hand_off.tried.insert(next.id.clone());
        hand_off.to = next.id.clone();
        hand_off.host = next.host;
        hand_off.started = now;
        let mut pacing = self.machine.pacing(now);
        let transit = self.transit.as_micros() as u64;
        pacing.announced_us_ago = pacing.announced_us_ago.map(|ago| ago.saturating_add(transit));
        pacing.reported_us_ago = pacing.reported_us_ago.map(|ago| ago.saturating_add(transit));
        // A pi-ring receiver gets only what it lacks (section 10, "Delta
        // hand-offs"); any other the whole expansion.
        let data_from =
            self.registry.delta_base(&next.id).filter(|_| self.deltas).map(|has| has.min(hand_off.data.len()) as u64);
        let body = Body::TakeToken {
            token: hand_off.token.clone(),
            nodes: self.registry.nodes(),
            data: hand_off.data.clone(),
            pacing,
            data_from,
        };
        let message = Message::new(self.id(), body);
        self.actions.push(Action::SendToken {
            attempt: hand_off.attempt,
            to: next.id,
            host: next.host,
            message,
            patience: self.patience,
            deadline: self.hand_off_deadline,
        });
        self.hand_off = Some(hand_off);
        None
    }

    /// The result of one TAKE_TOKEN attempt.
    fn token_sent(&mut self, now: Time, attempt: u64, result: Result<(), SendError>) {
        let Some(hand_off) = self.hand_off.take_if(|h| h.attempt == attempt) else {
            log::debug!("{}: result of an old hand-off attempt {attempt}: {result:?}", self.id());
            return;
        };
        let current = self.machine.epoch() == hand_off.epoch;
        match result {
            Ok(()) => {
                self.registry.delivered(&hand_off.to, hand_off.host, now);
                self.registry.established(&hand_off.to);
                self.registry.has_at_least(&hand_off.to, hand_off.data.len());
                self.heard_after_failure.remove(&hand_off.to);
                self.refusals.remove(&hand_off.to);
                self.transit = now.saturating_sub(hand_off.started);
                if current {
                    let to = hand_off.to.clone();
                    self.step_machine(now, super::machine::Input::Passed { epoch: hand_off.epoch, to: Some(to) });
                }
            }
            Err(e) => {
                log::warn!("{}: hand-off to {} failed: {e}; marking it lost for now", self.id(), hand_off.to);
                if hand_off.to_new {
                    self.new_member_failed = Some(now);
                }
                if let SendError::Refused { addr } = &e {
                    self.refuses_while_alive(now, &hand_off.to, *addr);
                }
                self.registry.mark_lost_after(&hand_off.to, hand_off.started, now);
                self.members_changed = true;
                if current {
                    if let Some(done) = self.try_next(now, hand_off) {
                        self.step_machine(now, done);
                    }
                }
            }
        }
    }
}

/// Whether two tokens are one: the same author and revision (the progress
/// grows as one token moves).
fn same_token(a: &Token, b: &Token) -> bool {
    a.author_token_revision == b.author_token_revision && a.author_node_id == b.author_node_id
}
