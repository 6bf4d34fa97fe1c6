//! A deterministic simulation of a pi-ring: N protocol cores (the same
//! `Machine` and `Registry` the node runs) on a simulated network driven by
//! a seeded random schedule, in virtual time that jumps to the next event.
//!
//! The network delays every message by a random amount (so messages are
//! reordered), loses and duplicates datagrams, partitions the nodes in two
//! and heals; nodes crash and restart with the expansion they persisted or
//! with nothing. TCP messages are not lost or duplicated, but a connection
//! to a crashed node is refused at once and one across a partition times
//! out. Everything is a function of the seed, so a failing seed replays
//! exactly.

#![allow(dead_code)]

use pi_ring::pi::{Expansion, PiDigits};
use pi_ring::protocol::machine::{Config, Envelope, Input, Machine, Output, TimerId, Timing};
use pi_ring::protocol::registry::Registry;
use pi_ring::protocol::{Body, Message, NodeId, StateName, Token};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
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
    /// Nodes with `true` on one side, the others on the other.
    Partition(Vec<bool>),
    Heal,
    Loss(f64),
    Duplication(f64),
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        to: usize,
        incarnation: u64,
        message: Message,
        from: usize,
        broadcast: bool,
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
    },
    /// One attempt of a hand-off: ask the registry for the next node.
    PassStep {
        node: usize,
        incarnation: u64,
        epoch: u64,
        token: Token,
        data: Expansion,
        failed: Option<NodeId>,
    },
    Passed {
        node: usize,
        incarnation: u64,
        epoch: u64,
        to: Option<NodeId>,
    },
    Fault(Fault),
}

pub struct SimNode {
    pub id: NodeId,
    pub host: Ipv4Addr,
    pub machine: Option<Machine>,
    registry: Registry,
    incarnation: u64,
    /// What `--data-dir` would hold: the state after every change.
    saved: (Expansion, u64),
}

pub struct Sim {
    pub now: Duration,
    events: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    pub nodes: Vec<SimNode>,
    rng: Rng,
    loss: f64,
    duplication: f64,
    side: Option<Vec<bool>>,
    pub timing: Timing,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub connect_timeout: Duration,
    base: tokio::time::Instant,
    pub trace: Vec<String>,
    /// Safety violations seen at any time (faults or not).
    pub violations: Vec<String>,
    /// The longest expansion any live node holds, after the last event.
    longest: usize,
    steps: u64,
}

/// Events one run may take; a normal 16 s run takes about 100,000.
const MAX_EVENTS: u64 = 2_000_000;

impl Sim {
    pub fn new(seed: u64, n: usize, timing: Timing) -> Sim {
        let base = tokio::time::Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let id = format!("n{}", i + 1);
                let host = Ipv4Addr::new(10, 0, 0, 1 + i as u8);
                SimNode {
                    registry: Registry::new(&id, host, timing.waiter),
                    id,
                    host,
                    machine: None,
                    incarnation: 0,
                    saved: (Expansion::empty(), 0),
                }
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
            side: None,
            timing,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(5),
            connect_timeout: Duration::from_millis(300),
            base,
            trace: Vec::new(),
            violations: Vec::new(),
            longest: 0,
            steps: 0,
        };
        for i in 0..n {
            // Nodes start within the first 100 ms.
            let at = sim.rng.between(Duration::ZERO, Duration::from_millis(100));
            sim.at(at, Event::Fault(Fault::Restart { node: i, keep_data: true }));
        }
        sim
    }

    fn config(&self, i: usize) -> Config {
        Config { id: self.nodes[i].id.clone(), timing: self.timing.clone(), max_len: 1_000_002 }
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
        self.nodes[i].machine.is_some()
    }

    /// Both up and on the same side of any partition.
    fn connected(&self, a: usize, b: usize) -> bool {
        self.alive(a) && self.alive(b) && self.same_side(a, b)
    }

    fn same_side(&self, a: usize, b: usize) -> bool {
        self.side.as_ref().is_none_or(|s| s[a] == s[b])
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = (self.min_delay, self.max_delay);
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
            let crash = matches!(event, Event::Fault(Fault::Crash(_)));
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
        self.now = until;
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Fault(fault) => self.fault(fault),
            Event::Deliver { to, incarnation, message, from, broadcast } => {
                // What was sent arrives even if the sender died since, but
                // not at a restarted receiver nor across a partition.
                if self.nodes[to].incarnation != incarnation || !self.alive(to) || !self.same_side(from, to) {
                    return;
                }
                let from_host = self.nodes[from].host;
                let reception = self.nodes[to].registry.receive(&message, from_host, broadcast);
                if reception.ping_back {
                    let ping = Message::new(&self.nodes[to].id, Body::Ping);
                    self.send(to, from, ping);
                }
                if reception.deliver {
                    let what = describe(&message);
                    self.log(Some(to), format!("<- {} {what}", message.author));
                    self.input(to, Input::Received(Envelope { message, from: from_host }));
                }
            }
            Event::Timer { node, incarnation, timer } => {
                if self.nodes[node].incarnation == incarnation {
                    self.input(node, Input::Timer(timer));
                }
            }
            Event::Computed { node, incarnation, epoch, len } => {
                if self.nodes[node].incarnation == incarnation {
                    self.input(node, Input::Computed { epoch, expansion: pi().expansion(len) });
                }
            }
            Event::PassStep { node, incarnation, epoch, token, data, failed } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                self.pass_step(node, incarnation, epoch, token, data, failed);
            }
            Event::Passed { node, incarnation, epoch, to } => {
                if self.nodes[node].incarnation == incarnation {
                    self.input(node, Input::Passed { epoch, to });
                }
            }
        }
    }

    fn fault(&mut self, fault: Fault) {
        self.log(None, format!("FAULT {fault:?}"));
        match fault {
            Fault::Crash(i) => {
                self.nodes[i].machine = None;
                self.nodes[i].incarnation += 1;
            }
            Fault::Restart { node, keep_data } => {
                if self.alive(node) {
                    return;
                }
                let (expansion, revision) =
                    if keep_data { self.nodes[node].saved.clone() } else { (Expansion::empty(), 0) };
                let config = self.config(node);
                let n = &mut self.nodes[node];
                n.incarnation += 1;
                n.registry = Registry::new(&n.id, n.host, self.timing.waiter);
                n.machine = Some(Machine::with_expansion(config, expansion, revision));
                self.input(node, Input::Start);
            }
            Fault::Partition(side) => self.side = Some(side),
            Fault::Heal => self.side = None,
            Fault::Loss(p) => self.loss = p,
            Fault::Duplication(p) => self.duplication = p,
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let Some(machine) = self.nodes[i].machine.as_mut() else { return };
        let before = machine.expansion().len();
        let outputs = machine.handle(input);
        let after = machine.expansion().len();
        let saved = (machine.expansion().clone(), machine.own_revision());
        self.nodes[i].saved = saved;
        if after < before {
            let v = format!(
                "at {:.4} s {}'s expansion shrank from {before} to {after}",
                self.now.as_secs_f64(),
                self.nodes[i].id
            );
            self.violations.push(v);
        }
        for output in outputs {
            self.carry_out(i, output);
        }
    }

    fn carry_out(&mut self, i: usize, output: Output) {
        let incarnation = self.nodes[i].incarnation;
        match output {
            Output::Broadcast(message) => {
                for j in 0..self.nodes.len() {
                    if j == i || !self.connected(i, j) || self.rng.chance(self.loss) {
                        continue;
                    }
                    let copies = if self.rng.chance(self.duplication) { 2 } else { 1 };
                    for _ in 0..copies {
                        let d = self.delay();
                        let to_incarnation = self.nodes[j].incarnation;
                        let event = Event::Deliver {
                            to: j,
                            incarnation: to_incarnation,
                            message: message.clone(),
                            from: i,
                            broadcast: true,
                        };
                        self.at(self.now + d, event);
                    }
                }
            }
            Output::Send { to, message } => {
                if let Some(j) = self.nodes.iter().position(|n| n.host == to) {
                    self.send(i, j, message);
                }
            }
            Output::PassToken { epoch, token, data } => {
                let event = Event::PassStep { node: i, incarnation, epoch, token, data, failed: None };
                self.at(self.now, event);
            }
            Output::Compute { epoch, len } => {
                let at = self.now + Duration::from_micros(50);
                self.at(at, Event::Computed { node: i, incarnation, epoch, len });
            }
            Output::SetTimer { timer, after } => {
                self.at(self.now + after, Event::Timer { node: i, incarnation, timer });
            }
            Output::StateChanged { old, new, token, progress } => {
                self.log(Some(i), format!("{old} -> {new} token {token} len {progress}"));
            }
        }
    }

    /// A TCP message: delivered unless the receiver is down or cut off.
    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.connected(from, to) {
            let d = self.delay();
            let incarnation = self.nodes[to].incarnation;
            self.at(self.now + d, Event::Deliver { to, incarnation, message, from, broadcast: false });
        }
    }

    /// The hand-off loop of the state machine actor: next node, and on
    /// failure mark it lost and try the following one.
    fn pass_step(
        &mut self,
        i: usize,
        incarnation: u64,
        epoch: u64,
        token: Token,
        data: Expansion,
        failed: Option<NodeId>,
    ) {
        let now = self.base + self.now;
        if let Some(failed) = &failed {
            self.nodes[i].registry.mark_lost(failed, now);
        }
        let Some((next, host)) = self.nodes[i].registry.next(now) else {
            self.at(self.now, Event::Passed { node: i, incarnation, epoch, to: None });
            return;
        };
        let j = self.nodes.iter().position(|n| n.host == host).expect("registry hosts are sim hosts");
        if self.connected(i, j) {
            let nodes = self.nodes[i].registry.nodes();
            let message = Message::new(&self.nodes[i].id, Body::TakeToken { token, nodes, data });
            self.log(Some(i), format!("-> {next} TAKE_TOKEN len {}", describe(&message)));
            let d = self.delay();
            let to_incarnation = self.nodes[j].incarnation;
            self.at(
                self.now + d,
                Event::Deliver { to: j, incarnation: to_incarnation, message, from: i, broadcast: false },
            );
            self.at(self.now + d, Event::Passed { node: i, incarnation, epoch, to: Some(next) });
        } else {
            // Refused at once by a crashed host; a timeout across a partition.
            let wait = if self.alive(j) { self.connect_timeout } else { Duration::from_micros(200) };
            self.log(Some(i), format!("-> {next} TAKE_TOKEN failed (after {wait:?})"));
            let event = Event::PassStep { node: i, incarnation, epoch, token, data, failed: Some(next) };
            self.at(self.now + wait, event);
        }
    }

    /// Tokens in existence: holders plus TAKE_TOKENs on their way to a live
    /// node.
    pub fn tokens(&self) -> Vec<(String, usize)> {
        let mut tokens: Vec<(String, usize)> = self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref().filter(|m| m.holds_token()).map(|m| (n.id.clone(), m.expansion().len())))
            .collect();
        for event in self.events.values() {
            if let Event::Deliver {
                to,
                incarnation,
                message: Message { body: Body::TakeToken { data, .. }, .. },
                from,
                ..
            } = event
            {
                if self.nodes[*to].incarnation == *incarnation && self.alive(*to) && self.same_side(*from, *to) {
                    tokens.push((format!("in flight to {}", self.nodes[*to].id), data.len()));
                }
            }
        }
        tokens
    }

    /// The longest expansion any live node holds.
    pub fn longest_live(&self) -> usize {
        self.nodes.iter().filter_map(|n| n.machine.as_ref()).map(|m| m.expansion().len()).max().unwrap_or(0)
    }

    pub fn states(&self) -> Vec<(String, Option<StateName>, usize)> {
        self.nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    n.machine.as_ref().map(|m| m.state()),
                    n.machine.as_ref().map_or(0, |m| m.expansion().len()),
                )
            })
            .collect()
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
