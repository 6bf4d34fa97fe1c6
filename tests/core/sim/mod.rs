//! A deterministic simulation of a pi-ring: N shipping protocol
//! [`Node`]s (and optionally models of the older implementation, see
//! `legacy.rs`) on a simulated network driven by a seeded random schedule,
//! in virtual time that jumps to the next event.
//!
//! The simulation only delivers: every rule, section 6 and the hand-off's
//! retries included, is the node's own code. The network delays every
//! message by a random amount, UDP and TCP separately, so they reorder with
//! each other (a heartbeat may arrive after the TAKE_TOKEN that followed
//! it); it loses and duplicates datagrams, partitions the nodes and heals;
//! nodes crash and restart with the expansion they persisted or with
//! nothing, or are powered off (connects to them time out rather than being
//! refused). A hand-off can be delivered although its sender sees it fail
//! (a *ghost failure*), which makes equal duplicate tokens. Strangers on
//! the LAN ([`Hostile`]) forge members' ids, make up ids by the hundred,
//! hand over tables of hosts that never speak and flood valid searches and
//! claims; the simulation records as a violation any datagram or
//! connection of a pi-ring node toward a host that never spoke. Everything
//! is a function of the seed, so a failing seed replays exactly.

#![allow(dead_code)]

pub mod legacy;

use legacy::{Legacy, LegacyAction};
use pi_ring::error::SendError;
use pi_ring::pi::{Expansion, PiDigits, Unchecked};
use pi_ring::protocol::machine::{Config, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Action, Body, Input, Message, Node, NodeId, Report, StateName, Time, Token, Via};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Duration;

pub fn pi() -> &'static PiDigits {
    static PI: OnceLock<PiDigits> = OnceLock::new();
    PI.get_or_init(|| {
        let pi = PiDigits::new(1_000_000);
        pi.expansion(200_000);
        pi
    })
}

/// xorshift64*: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + Duration::from_micros(self.below((hi - lo).as_micros() as u64 + 1))
    }
}

#[derive(Clone, Debug)]
pub enum Fault {
    Crash(usize),
    Restart {
        node: usize,
        keep_data: bool,
    },
    /// The host goes down without a reset: connects to it time out.
    PowerOff(usize),
    /// Nodes with `true` on one side, the others on the other.
    Partition(Vec<bool>),
    Heal,
    Loss(f64),
    Duplication(f64),
    /// Chance that a delivered TAKE_TOKEN is reported failed to its sender.
    GhostFailures(f64),
    /// A stranger on the LAN acts (from addresses that run no node).
    Stranger(Hostile),
}

/// What a stranger on the LAN does: a buggy peer or an attacker
/// (PROTOCOL section 10, SECURITY.md). Its addresses run no node: it never
/// accepts a connection.
#[derive(Clone, Debug)]
pub enum Hostile {
    /// Every kind of message with each member's id, from a stranger's
    /// address, by broadcast and by TCP.
    ForgedIds,
    /// `count` PINGs with ids never heard before, from `sources` addresses.
    ManyIds { count: u32, sources: u32 },
    /// A TAKE_TOKEN from a new id with the longest correct expansion and a
    /// table of `hosts` hosts that never speak.
    StrangeTable { hosts: u32 },
    /// `count` valid WHERE_IS_TOKEN and worse GENERATING_TOKEN from
    /// `sources` ids and addresses, within 200 ms.
    Flood { count: u32, sources: u32 },
}

/// What kind of node runs at a place of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PiRing,
    Legacy,
}

#[derive(Clone, Debug)]
enum Event {
    /// `raw`: an older node's TAKE_TOKEN data as it sent it (with its
    /// characters that are not pi), for an older receiver.
    Deliver {
        to: usize,
        incarnation: u64,
        message: Message,
        from: usize,
        via: Via,
        raw: Option<String>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timer: TimerId,
    },
    Computed {
        node: usize,
        incarnation: u64,
        epoch: u64,
        len: usize,
        check: Option<Unchecked>,
    },
    TokenSent {
        node: usize,
        incarnation: u64,
        attempt: u64,
        delivered: bool,
        timed_out: bool,
    },
    Probed {
        node: usize,
        incarnation: u64,
        id: NodeId,
        host: Ipv4Addr,
        asked: Time,
        delivered: bool,
        timed_out: bool,
    },
    /// A stranger's message (from an address that runs no node).
    Inject {
        to: usize,
        message: Message,
        from: Ipv4Addr,
        via: Via,
    },
    LegacyTimer {
        node: usize,
        incarnation: u64,
        timer: TimerKind,
        seq: u64,
    },
    LegacySent {
        node: usize,
        incarnation: u64,
        delivered: bool,
    },
    Fault(Fault),
}

enum Running {
    Down,
    PiRing(Box<Node>),
    Legacy(Box<Legacy>),
}

pub struct SimNode {
    pub id: NodeId,
    pub host: Ipv4Addr,
    pub kind: Kind,
    running: Running,
    /// Powered off: down, and connects to it time out.
    powered_off: bool,
    incarnation: u64,
    /// What `--data-dir` would hold: the last state the node asked to persist.
    saved: (Expansion, u64),
}

impl SimNode {
    pub fn node(&self) -> Option<&Node> {
        match &self.running {
            Running::PiRing(n) => Some(n),
            _ => None,
        }
    }

    pub fn alive(&self) -> bool {
        !matches!(self.running, Running::Down)
    }

    pub fn holds_token(&self) -> bool {
        match &self.running {
            Running::Down => false,
            Running::PiRing(n) => n.holds_token(),
            Running::Legacy(l) => l.holds_token(),
        }
    }

    pub fn state(&self) -> Option<StateName> {
        match &self.running {
            Running::Down => None,
            Running::PiRing(n) => Some(n.state()),
            Running::Legacy(l) => Some(l.state),
        }
    }

    /// The length of the expansion (for a legacy node, of its data). A
    /// pi-ring holder counts the digits it was handed and still checks.
    pub fn progress(&self) -> usize {
        match &self.running {
            Running::Down => 0,
            Running::PiRing(n) if n.state() == StateName::Owner => n.token().progress as usize,
            Running::PiRing(n) => n.expansion().len(),
            Running::Legacy(l) => l.data.len(),
        }
    }
}

/// Churn counters: what a healthy ring never does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Churn {
    /// Tokens generated (GENERATING -> OWNER on the timer).
    pub generated: u64,
    /// WAITER -> LOOSER: a node declared the token lost.
    pub lost: u64,
}

pub struct Sim {
    pub now: Duration,
    events: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    pub nodes: Vec<SimNode>,
    rng: Rng,
    loss: f64,
    duplication: f64,
    ghost_failures: f64,
    side: Option<Vec<bool>>,
    pub timing: Timing,
    pub max_len: usize,
    /// Datagram delays.
    pub udp_delay: (Duration, Duration),
    /// TCP delivery delays.
    pub tcp_delay: (Duration, Duration),
    pub connect_timeout: Duration,
    /// When set, checking the characters handed beyond a receiver's own
    /// expansion (while it holds the token) takes this long, as when
    /// its pi cache has not computed them yet; else 50 us.
    pub cold_checks: Option<Duration>,
    /// Broadcast domains: a broadcast reaches only the nodes of the
    /// sender's subnet (`None`: one flat network). Unicast reaches all.
    pub subnets: Option<Vec<u8>>,
    /// Seed peers every pi-ring node is started with (`--peer`), and
    /// whether they broadcast at all (`--no-broadcast`).
    pub seeds: Vec<Ipv4Addr>,
    pub no_broadcast: bool,
    /// Datagrams sent by unicast (copies of broadcasts).
    pub unicasts: u64,
    /// Characters of TAKE_TOKEN data delivered to pi-ring nodes (what the
    /// wire carries: deltas between pi-ring nodes).
    pub take_token_bytes: u64,
    /// TAKE_TOKENs delivered to pi-ring nodes.
    pub take_tokens: u64,
    /// Hosts that ever sent anything: the nodes' and the strangers'. A
    /// pi-ring node sending to any other host is a violation.
    spoke: std::collections::BTreeSet<Ipv4Addr>,
    /// Strangers' messages delivered.
    pub injected: u64,
    pub trace: Vec<String>,
    /// Safety violations seen at any time (faults or not).
    pub violations: Vec<String>,
    pub churn: Churn,
    /// When pi-ring nodes broadcast TOKEN_IS_HERE (the ring port's steady
    /// load).
    pub announcements: Vec<Duration>,
    /// When each node last became OWNER (while it is), and the longest
    /// holding (OWNER entry to leaving, or to now) seen since `measure_from`.
    owner_since: Vec<Option<Duration>>,
    /// Times each node took the token (entered OWNER).
    pub holdings: Vec<u64>,
    /// Each entry into OWNER: (when, node, its holdings count then).
    pub owner_entries: Vec<(Duration, usize, u64)>,
    /// What a monitor hears: every MY_STATE the nodes send, when.
    pub reports: Vec<(Duration, usize, Report)>,
    /// Broadcast datagrams sent (one per broadcast, whatever it reaches).
    pub broadcasts: u64,
    pub measure_from: Duration,
    pub longest_holding: (Duration, String),
    /// The longest expansion any live pi-ring node holds, after the last event.
    longest: usize,
    steps: u64,
}

/// Events one run may take; a normal 16 s run takes about 100,000.
const MAX_EVENTS: u64 = 3_000_000;

impl Sim {
    /// `kinds[i]` runs at place `i`, with id `n{i+1}` (ring order for up
    /// to 9 nodes). Nodes start within the first 100 ms.
    pub fn new(seed: u64, kinds: &[Kind], timing: Timing) -> Sim {
        let nodes = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| SimNode {
                id: format!("n{}", i + 1),
                host: Ipv4Addr::new(10, 0, 0, 1 + i as u8),
                kind: *kind,
                running: Running::Down,
                powered_off: false,
                incarnation: 0,
                saved: (Expansion::empty(), 0),
            })
            .collect();
        let mut sim = Sim {
            now: Duration::ZERO,
            events: BTreeMap::new(),
            seq: 0,
            nodes,
            rng: Rng::new(seed),
            loss: 0.0,
            duplication: 0.0,
            ghost_failures: 0.0,
            side: None,
            timing,
            max_len: 1_000_002,
            udp_delay: (Duration::from_micros(100), Duration::from_millis(5)),
            tcp_delay: (Duration::from_micros(100), Duration::from_millis(5)),
            connect_timeout: Duration::from_millis(300),
            cold_checks: None,
            subnets: None,
            seeds: Vec::new(),
            no_broadcast: false,
            unicasts: 0,
            take_token_bytes: 0,
            take_tokens: 0,
            spoke: (0..kinds.len()).map(|i| Ipv4Addr::new(10, 0, 0, 1 + i as u8)).collect(),
            injected: 0,
            trace: Vec::new(),
            violations: Vec::new(),
            churn: Churn::default(),
            announcements: Vec::new(),
            owner_since: vec![None; kinds.len()],
            holdings: vec![0; kinds.len()],
            owner_entries: Vec::new(),
            reports: Vec::new(),
            broadcasts: 0,
            measure_from: Duration::MAX,
            longest_holding: (Duration::ZERO, String::new()),
            longest: 0,
            steps: 0,
        };
        for i in 0..kinds.len() {
            let at = sim.rng.between(Duration::ZERO, Duration::from_millis(100));
            sim.at(at, Event::Fault(Fault::Restart { node: i, keep_data: true }));
        }
        sim
    }

    pub fn schedule_fault(&mut self, at: Duration, fault: Fault) {
        self.at(at, Event::Fault(fault));
    }

    fn at(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.events.insert((at.max(self.now), self.seq), event);
    }

    fn log(&mut self, node: Option<usize>, what: String) {
        let who = node.map(|i| self.nodes[i].id.as_str()).unwrap_or("--");
        self.trace.push(format!("{:>9.4} {who:>3}: {what}", self.now.as_secs_f64()));
    }

    pub fn alive(&self, i: usize) -> bool {
        self.nodes[i].alive()
    }

    /// Both up and on the same side of any partition.
    fn connected(&self, a: usize, b: usize) -> bool {
        self.alive(a) && self.alive(b) && self.same_side(a, b)
    }

    fn same_side(&self, a: usize, b: usize) -> bool {
        self.side.as_ref().is_none_or(|s| s[a] == s[b])
    }

    fn delay(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        self.rng.between(lo, hi)
    }

    /// Run every event up to `until` (at most `MAX_EVENTS` in a run: a
    /// message storm is a failure, not a hang).
    pub fn run_until(&mut self, until: Duration) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until {
                break;
            }
            self.steps += 1;
            if self.steps > MAX_EVENTS {
                let v = format!("message storm: over {MAX_EVENTS} events by {:.4} s", self.now.as_secs_f64());
                self.violations.push(v);
                self.events.clear();
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now = at;
            let crash = matches!(event, Event::Fault(Fault::Crash(_) | Fault::PowerOff(_)));
            self.step(event);
            // No digits lost: the longest expansion among live nodes only
            // shrinks when its holder crashes.
            let longest = self.longest_live();
            if longest < self.longest && !crash {
                let v = format!(
                    "at {:.4} s the longest live expansion shrank from {} to {longest}",
                    at.as_secs_f64(),
                    self.longest
                );
                self.log(None, format!("VIOLATION {v}"));
                self.violations.push(v);
            }
            self.longest = longest;
        }
        self.now = self.now.max(until);
    }

    fn current(&self, node: usize, incarnation: u64) -> bool {
        self.nodes[node].incarnation == incarnation && self.alive(node)
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Fault(fault) => self.fault(fault),
            Event::Deliver { to, incarnation, message, from, via, raw } => {
                // What was sent arrives even if the sender died since, but
                // not at a restarted receiver, nor a datagram across a
                // partition. A TCP message was connected before the cut and
                // its sender is told it was delivered (the delay stands for
                // the transfer): a partition that falls within it does not
                // undo it, or the token would vanish with nobody at fault.
                if !self.current(to, incarnation) || (via != Via::Tcp && !self.same_side(from, to)) {
                    return;
                }
                let from_host = self.nodes[from].host;
                self.log(Some(to), format!("<- {} {}", message.author, describe(&message)));
                match self.nodes[to].kind {
                    Kind::PiRing => {
                        let message = message.into_raw();
                        if let Body::TakeToken { data, .. } = &message.body {
                            self.take_token_bytes += data.len() as u64;
                            self.take_tokens += 1;
                        }
                        self.input(to, Input::Received { message, from: from_host, via })
                    }
                    Kind::Legacy => {
                        if let Body::TakeToken { data_from: Some(from), .. } = &message.body {
                            let v = format!(
                                "at {:.4} s {} sent {} (an older node, which never said `have`) a delta from {from}",
                                self.now.as_secs_f64(),
                                message.author,
                                self.nodes[to].id
                            );
                            self.violations.push(v);
                        }
                        let Running::Legacy(l) = &mut self.nodes[to].running else { return };
                        let actions = l.receive(message, raw, from_host, via == Via::Udp, self.now);
                        self.legacy_actions(to, actions);
                    }
                }
            }
            Event::Timer { node, incarnation, timer } => {
                if self.current(node, incarnation) {
                    self.input(node, Input::Timer(timer));
                }
            }
            Event::Computed { node, incarnation, epoch, len, check } => {
                if self.current(node, incarnation) {
                    // A cold cache knows nothing beyond what was asked.
                    let cold = |e: pi_ring::pi::Expansion| if self.cold_checks.is_some() { e.alone() } else { e };
                    let checked = check.map(|digits| cold(pi().verify_unchecked(&digits).expansion));
                    let expansion = Some(cold(pi().expansion(len)));
                    self.input(node, Input::Computed { epoch, expansion, checked });
                }
            }
            Event::TokenSent { node, incarnation, attempt, delivered, timed_out } => {
                if self.current(node, incarnation) {
                    let addr = SocketAddrV4::new(self.nodes[node].host, 8239);
                    let result = match (delivered, timed_out) {
                        (true, _) => Ok(()),
                        (false, true) => Err(SendError::ConnectTimeout { addr }),
                        (false, false) => Err(SendError::Connect { addr, reason: "refused".into() }),
                    };
                    self.input(node, Input::TokenSent { attempt, result });
                }
            }
            Event::Probed { node, incarnation, id, host, asked, delivered, timed_out } => {
                if self.current(node, incarnation) {
                    let addr = SocketAddrV4::new(host, 8239);
                    let result = match (delivered, timed_out) {
                        (true, _) => Ok(()),
                        (false, true) => Err(SendError::ConnectTimeout { addr }),
                        (false, false) => Err(SendError::Refused { addr }),
                    };
                    self.input(node, Input::Probed { id, host, asked, result });
                }
            }
            Event::Inject { to, message, from, via } => {
                if !self.alive(to) {
                    return;
                }
                self.injected += 1;
                match self.nodes[to].kind {
                    Kind::PiRing => self.input(to, Input::Received { message: message.into_raw(), from, via }),
                    Kind::Legacy => {
                        let now = self.now;
                        let Running::Legacy(l) = &mut self.nodes[to].running else { return };
                        let actions = l.receive(message, None, from, via == Via::Udp, now);
                        self.legacy_actions(to, actions);
                    }
                }
            }
            Event::LegacyTimer { node, incarnation, timer, seq } => {
                if self.current(node, incarnation) {
                    let now = self.now;
                    let Running::Legacy(l) = &mut self.nodes[node].running else { return };
                    let actions = l.timer(timer, seq, now);
                    self.legacy_actions(node, actions);
                }
            }
            Event::LegacySent { node, incarnation, delivered } => {
                if self.current(node, incarnation) {
                    let now = self.now;
                    let Running::Legacy(l) = &mut self.nodes[node].running else { return };
                    let actions = l.sent(delivered, now);
                    self.legacy_actions(node, actions);
                }
            }
        }
    }

    fn fault(&mut self, fault: Fault) {
        self.log(None, format!("FAULT {fault:?}"));
        match fault {
            Fault::Crash(i) | Fault::PowerOff(i) => {
                self.owner_since[i] = None;
                self.nodes[i].running = Running::Down;
                self.nodes[i].incarnation += 1;
                self.nodes[i].powered_off = matches!(fault, Fault::PowerOff(_));
            }
            Fault::Restart { node, keep_data } => {
                if self.alive(node) {
                    return;
                }
                let (expansion, revision) =
                    if keep_data { self.nodes[node].saved.clone() } else { (Expansion::empty(), 0) };
                let timing = self.timing.clone();
                let config = Config { id: self.nodes[node].id.clone(), timing: timing.clone(), max_len: self.max_len };
                let n = &mut self.nodes[node];
                n.incarnation += 1;
                n.powered_off = false;
                match n.kind {
                    Kind::PiRing => {
                        let pi_ring = Node::new(config, n.host, expansion, revision)
                            .with_discovery(self.seeds.clone(), !self.no_broadcast);
                        n.running = Running::PiRing(Box::new(pi_ring));
                        self.input(node, Input::Start);
                    }
                    Kind::Legacy => {
                        let mut legacy = Box::new(Legacy::new(&n.id, n.host, timing));
                        let actions = legacy.start();
                        n.running = Running::Legacy(legacy);
                        self.legacy_actions(node, actions);
                    }
                }
            }
            Fault::Partition(side) => self.side = Some(side),
            Fault::Heal => self.side = None,
            Fault::Loss(p) => self.loss = p,
            Fault::Duplication(p) => self.duplication = p,
            Fault::GhostFailures(p) => self.ghost_failures = p,
            Fault::Stranger(hostile) => self.stranger(hostile),
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now;
        let Running::PiRing(node) = &mut self.nodes[i].running else { return };
        let before = node.expansion().len();
        let revision_before = node.own_revision();
        let actions = node.handle(now, input);
        let after = node.expansion().len();
        if node.own_revision() > revision_before {
            self.churn.generated += 1;
        }
        if after < before {
            let v = format!(
                "at {:.4} s {}'s expansion shrank from {before} to {after}",
                now.as_secs_f64(),
                self.nodes[i].id
            );
            self.violations.push(v);
        }
        for action in actions {
            self.carry_out(i, action);
        }
    }

    fn carry_out(&mut self, i: usize, action: Action) {
        let incarnation = self.nodes[i].incarnation;
        match action {
            Action::Broadcast(message) => {
                if let Body::TokenIsHere { token } = &message.body {
                    self.announcements.push(self.now);
                    self.log(Some(i), format!("broadcasts TOKEN_IS_HERE {token}"));
                }
                self.broadcast(i, message)
            }
            Action::Unicast { to, message } => {
                if let Body::TokenIsHere { token } = &message.body {
                    if self.no_broadcast {
                        self.announcements.push(self.now);
                    }
                    self.log(Some(i), format!("unicasts TOKEN_IS_HERE {token} to {} hosts", to.len()));
                }
                for host in to {
                    self.unicasts += 1;
                    self.check_spoke(i, host, "a datagram");
                    if let Some(j) = self.nodes.iter().position(|n| n.host == host) {
                        self.datagram(i, j, message.clone(), Via::Unicast);
                    }
                }
            }
            Action::Send { to, message } => {
                self.check_spoke(i, to, "a TCP answer");
                if let Some(j) = self.nodes.iter().position(|n| n.host == to) {
                    self.send(i, j, message);
                }
            }
            Action::Probe { id, to, message, asked } => {
                self.check_spoke(i, to, "a TCP PING");
                // A stranger's address: nothing answers there.
                let (delivered, timed_out, wait) = match self.nodes.iter().position(|n| n.host == to) {
                    Some(j) => self.hand_over(i, j, message, None),
                    None => (false, true, self.connect_timeout),
                };
                self.log(Some(i), format!("-> {id} PING probe: delivered {delivered}"));
                let event = Event::Probed { node: i, incarnation, id, host: to, asked, delivered, timed_out };
                self.at(self.now + wait, event);
            }
            Action::SendToken { attempt, to, host, message, patience, .. } => {
                self.check_spoke(i, host, "a hand-off");
                let (delivered, timed_out, wait) = match self.nodes.iter().position(|n| n.host == host) {
                    Some(j) => self.hand_over(i, j, message, None),
                    None => (false, true, self.connect_timeout),
                };
                let wait = if timed_out { wait.min(patience) } else { wait };
                self.log(Some(i), format!("-> {to} TAKE_TOKEN attempt {attempt}: delivered {delivered}"));
                let ghost = delivered && self.rng.chance(self.ghost_failures);
                let (reported, timed_out, wait) = if ghost {
                    (false, true, self.connect_timeout.min(patience))
                } else {
                    (delivered, timed_out, wait)
                };
                let event = Event::TokenSent { node: i, incarnation, attempt, delivered: reported, timed_out };
                self.at(self.now + wait, event);
            }
            Action::Compute { epoch, len, check } => {
                let took = match (&check, self.cold_checks) {
                    (Some(_), Some(took)) => took,
                    _ => Duration::from_micros(50),
                };
                let at = self.now + took;
                self.at(at, Event::Computed { node: i, incarnation, epoch, len, check });
            }
            Action::SetTimer { timer, after } => {
                self.at(self.now + after, Event::Timer { node: i, incarnation, timer });
            }
            // Timers are matched against the armed one by the node itself;
            // a cancelled firing is ignored there.
            Action::CancelTimer(_) => {}
            Action::StateChanged { old, new, token, progress, .. } => {
                if (old, new) == (StateName::Waiter, StateName::Looser) {
                    self.churn.lost += 1;
                }
                self.holding_changed(i, new == StateName::Owner);
                self.log(Some(i), format!("{old} -> {new} token {token} len {progress}"));
            }
            Action::Report(report) => self.reports.push((self.now, i, *report)),
            Action::Persist { expansion, own_revision } => self.nodes[i].saved = (expansion, own_revision),
            Action::Members(_) => {}
            Action::Exit => {
                self.log(Some(i), "exits".into());
                self.nodes[i].running = Running::Down;
                self.nodes[i].incarnation += 1;
            }
        }
    }

    /// Track how long node `i` stays OWNER.
    fn holding_changed(&mut self, i: usize, owner: bool) {
        if let Some(since) = self.owner_since[i].take() {
            self.note_holding(i, since);
        }
        if owner {
            self.owner_since[i] = Some(self.now);
            self.holdings[i] += 1;
            let count = self.nodes[i].node().map_or(0, |n| n.holdings());
            self.owner_entries.push((self.now, i, count));
        }
    }

    fn note_holding(&mut self, i: usize, since: Duration) {
        if since >= self.measure_from && self.now - since > self.longest_holding.0 {
            self.longest_holding =
                (self.now - since, format!("{} from {:.3} s", self.nodes[i].id, since.as_secs_f64()));
        }
    }

    /// The longest holding since `measure_from`, counting holdings still going on.
    pub fn longest_holding_now(&mut self) -> (Duration, String) {
        for i in 0..self.nodes.len() {
            if let (Some(since), true) = (self.owner_since[i], self.nodes[i].node().is_some()) {
                self.note_holding(i, since);
            }
        }
        self.longest_holding.clone()
    }

    /// Try to hand `message` from `i` to `j` over TCP: (delivered, timed
    /// out, time until the sender knows).
    /// Traffic of pi-ring node `i` toward `host` must go to a host that spoke.
    fn check_spoke(&mut self, i: usize, host: Ipv4Addr, what: &str) {
        if !self.spoke.contains(&host) {
            let v = format!(
                "at {:.4} s {} sent {what} to {host}, which never spoke",
                self.now.as_secs_f64(),
                self.nodes[i].id
            );
            self.log(Some(i), format!("VIOLATION {v}"));
            self.violations.push(v);
        }
    }

    /// The `k`-th address of the strangers' (no node runs there).
    fn stranger_host(k: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 1 + (k / 62_500) as u8, ((k / 250) % 250) as u8, 1 + (k % 250) as u8)
    }

    /// A stranger's message from `from` reaches node `to` (by `via`) soon.
    fn inject(&mut self, to: usize, message: Message, from: Ipv4Addr, via: Via, within: Duration) {
        self.spoke.insert(from);
        let at = self.now + self.rng.between(Duration::ZERO, within);
        let delay = self.delay(if via == Via::Tcp { self.tcp_delay } else { self.udp_delay });
        self.at(at + delay, Event::Inject { to, message, from, via });
    }

    /// A broadcast of a stranger's: every node hears it.
    fn inject_broadcast(&mut self, message: Message, from: Ipv4Addr, within: Duration) {
        for to in 0..self.nodes.len() {
            self.inject(to, message.clone(), from, Via::Udp, within);
        }
    }

    fn stranger(&mut self, hostile: Hostile) {
        let spread = Duration::from_millis(200);
        match hostile {
            Hostile::ForgedIds => {
                let from = Self::stranger_host(0);
                let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id.clone()).collect();
                for id in ids {
                    for body in [
                        Body::Ping,
                        Body::WhereIsToken,
                        Body::TokenIsHere { token: Token::new(0, &id, 1) },
                        Body::GeneratingToken { token: Token::new(0, &id, 1) },
                    ] {
                        let message = Message::new(&id, body);
                        self.inject_broadcast(message.clone(), from, spread);
                        let to = self.rng.below(self.nodes.len() as u64) as usize;
                        self.inject(to, message, from, Via::Tcp, spread);
                    }
                }
            }
            Hostile::ManyIds { count, sources } => {
                for k in 0..count {
                    let message = Message::new(&format!("sybil-{k:05}"), Body::Ping);
                    self.inject_broadcast(message, Self::stranger_host(100 + k % sources), spread);
                }
            }
            Hostile::StrangeTable { hosts } => {
                let len = self.longest_live().max(2);
                let from = Self::stranger_host(1);
                let mut nodes: pi_ring::protocol::Nodes = (0..hosts)
                    .map(|k| (format!("silent-{k:04}"), Self::stranger_host(50_000 + k).to_string()))
                    .collect();
                nodes.insert("stranger".into(), from.to_string());
                let token = Token::new(len, "stranger", 1);
                let body = Body::TakeToken {
                    token,
                    nodes,
                    data: pi().expansion(len),
                    pacing: Default::default(),
                    data_from: None,
                };
                let to = self.rng.below(self.nodes.len() as u64) as usize;
                self.inject(to, Message::new("stranger", body), from, Via::Tcp, spread);
            }
            Hostile::Flood { count, sources } => {
                for k in 0..count {
                    let id = format!("claimer-{:03}", k % sources);
                    let body = if k % 2 == 0 {
                        Body::WhereIsToken
                    } else {
                        Body::GeneratingToken { token: Token::new(0, &id, 1) }
                    };
                    self.inject_broadcast(Message::new(&id, body), Self::stranger_host(2_000 + k % sources), spread);
                }
            }
        }
    }

    fn hand_over(&mut self, i: usize, j: usize, message: Message, raw: Option<String>) -> (bool, bool, Duration) {
        if self.connected(i, j) {
            let d = self.delay(self.tcp_delay);
            let to_incarnation = self.nodes[j].incarnation;
            let event = Event::Deliver { to: j, incarnation: to_incarnation, message, from: i, via: Via::Tcp, raw };
            self.at(self.now + d, event);
            (true, false, d)
        } else if self.alive(j) || self.nodes[j].powered_off {
            // Across a partition, or to a host that is off: no answer.
            (false, true, self.connect_timeout)
        } else {
            // A crashed process on a live host: refused at once.
            (false, false, Duration::from_micros(200))
        }
    }

    fn broadcast(&mut self, i: usize, message: Message) {
        self.broadcasts += 1;
        for j in 0..self.nodes.len() {
            let same_subnet = self.subnets.as_ref().is_none_or(|s| s[i] == s[j]);
            if j != i && same_subnet {
                self.datagram(i, j, message.clone(), Via::Udp);
            }
        }
    }

    /// A datagram from `i` to `j`: lost, duplicated and delayed as the
    /// network says.
    fn datagram(&mut self, i: usize, j: usize, message: Message, via: Via) {
        if !self.connected(i, j) || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.duplication) { 2 } else { 1 };
        for _ in 0..copies {
            let d = self.delay(self.udp_delay);
            let incarnation = self.nodes[j].incarnation;
            let event = Event::Deliver { to: j, incarnation, message: message.clone(), from: i, via, raw: None };
            self.at(self.now + d, event);
        }
    }

    /// A TCP message: delivered unless the receiver is down or cut off.
    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.connected(from, to) {
            let d = self.delay(self.tcp_delay);
            let incarnation = self.nodes[to].incarnation;
            self.at(self.now + d, Event::Deliver { to, incarnation, message, from, via: Via::Tcp, raw: None });
        }
    }

    fn legacy_actions(&mut self, i: usize, actions: Vec<LegacyAction>) {
        let incarnation = self.nodes[i].incarnation;
        let id = self.nodes[i].id.clone();
        for action in actions {
            match action {
                LegacyAction::Broadcast(body) => self.broadcast(i, Message::new(&id, body)),
                LegacyAction::Send(to, body) => {
                    if let Some(j) = self.nodes.iter().position(|n| n.host == to) {
                        self.send(i, j, Message::new(&id, body));
                    }
                }
                LegacyAction::SendToken { to, host, token, data, nodes } => {
                    // The older implementation learns any table: a
                    // stranger's hosts answer nothing.
                    let Some(j) = self.nodes.iter().position(|n| n.host == host) else {
                        let event = Event::LegacySent { node: i, incarnation, delivered: false };
                        self.at(self.now + legacy::CONNECT_TIMEOUT, event);
                        continue;
                    };
                    // A pi-ring receiver verifies the data and keeps the
                    // correct prefix (its TCP endpoint does, before the node).
                    let verified = pi().verify(&data).expansion;
                    let message = Message::new(
                        &id,
                        Body::TakeToken { token, nodes, data: verified, pacing: Default::default(), data_from: None },
                    );
                    let (delivered, timed_out, wait) = self.hand_over(i, j, message, Some(data));
                    let wait = if timed_out { legacy::CONNECT_TIMEOUT } else { wait };
                    self.log(Some(i), format!("-> {to} TAKE_TOKEN (legacy): delivered {delivered}"));
                    self.at(self.now + wait, Event::LegacySent { node: i, incarnation, delivered });
                }
                LegacyAction::Timer { timer, after, seq } => {
                    self.at(self.now + after, Event::LegacyTimer { node: i, incarnation, timer, seq });
                }
                LegacyAction::StateChanged(old, new) => {
                    if (old, new) == (StateName::Generating, StateName::Owner) {
                        self.churn.generated += 1;
                    }
                    if (old, new) == (StateName::Waiter, StateName::Looser) {
                        self.churn.lost += 1;
                    }
                    self.log(Some(i), format!("(legacy) {old} -> {new}"));
                }
            }
        }
    }

    /// Tokens in existence: OWNERs (also while a hand-off attempt is
    /// pending, unless their TAKE_TOKEN is already on its way) plus
    /// TAKE_TOKENs on their way to a live node.
    pub fn tokens(&self) -> Vec<(String, usize)> {
        let mut in_flight = Vec::new();
        for event in self.events.values() {
            if let Event::Deliver {
                to,
                incarnation,
                message: Message { body: Body::TakeToken { data, .. }, .. },
                from,
                ..
            } = event
            {
                if self.current(*to, *incarnation) && self.same_side(*from, *to) {
                    in_flight.push((*from, format!("in flight to {}", self.nodes[*to].id), data.len()));
                }
            }
        }
        let mut tokens: Vec<(String, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                n.holds_token()
                    || (n.state() == Some(StateName::Owner) && !in_flight.iter().any(|(from, ..)| from == i))
            })
            .map(|(_, n)| (n.id.clone(), n.progress()))
            .collect();
        tokens.extend(in_flight.into_iter().map(|(_, what, len)| (what, len)));
        tokens
    }

    /// The longest expansion any live pi-ring node holds.
    pub fn longest_live(&self) -> usize {
        self.nodes.iter().filter_map(|n| n.node()).map(|m| m.expansion().len()).max().unwrap_or(0)
    }

    pub fn states(&self) -> Vec<(String, Option<StateName>, usize)> {
        self.nodes.iter().map(|n| (n.id.clone(), n.state(), n.progress())).collect()
    }

    /// The last `n` trace lines.
    pub fn trace_tail(&self, n: usize) -> String {
        let start = self.trace.len().saturating_sub(n);
        self.trace[start..].join("\n")
    }
}

fn describe(message: &Message) -> String {
    match &message.body {
        Body::TakeToken { token, data, .. } => format!("TAKE_TOKEN {token} data {}", data.len()),
        Body::TokenIsHere { token } => format!("TOKEN_IS_HERE {token}"),
        Body::GeneratingToken { token } => format!("GENERATING_TOKEN {token}"),
        other => other.kind().to_uppercase(),
    }
}

/// A token as the simulation reports it (for messages).
pub fn token_of(message: &Message) -> Option<&Token> {
    match &message.body {
        Body::TakeToken { token, .. } | Body::TokenIsHere { token } | Body::GeneratingToken { token } => Some(token),
        _ => None,
    }
}
