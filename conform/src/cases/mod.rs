//! The test cases, numbered after the PROTOCOL.md section whose rule each
//! checks, and what they share: [`Ctx`], one case's node, peers and clock.
//!
//! A case drives the node under test from outside and returns `Ok` or a
//! [`Failure`] that names the rule, what it expected and what it observed.
//! Every case can fail: `conform/tests/mutants.rs` runs them against nodes
//! that each break one rule.

mod s10_extensions;
mod s3_messages;
mod s4_expansion;
mod s5_transport;
mod s6_membership;
mod s7_states;
mod s8_recovery;

use crate::lab::{Beating, Channel, Heard, Lab, Peer};
use crate::subject::{Instance, Slot, Subject, Timing};
use crate::wire::{self, Kind, Token};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How binding a case's rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A rule of sections 3 to 8 that every implementation keeps.
    Required,
    /// A rule of sections 3 to 8 that section 9 says the older
    /// implementation does not keep (`--strict` runs it).
    Optional,
    /// One of pi-ring's own additions, section 10 (`--strict` runs it).
    Extension,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Required => "required",
            Level::Optional => "optional",
            Level::Extension => "extension",
        }
    }
}

/// One test case.
pub struct Case {
    /// `SECTION.N`, e.g. `7.3`.
    pub id: &'static str,
    /// A short name, e.g. `owner-answers-claim`.
    pub slug: &'static str,
    /// The rule it checks, in the protocol's words.
    pub rule: &'static str,
    pub level: Level,
    /// Needs a node of its own (a cold start); skipped with `--target`.
    pub fresh: bool,
    pub run: fn(&mut Ctx) -> Checked,
}

impl Case {
    /// The section number (`7` for `7.3`).
    pub fn section(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// Every case, in order.
pub fn all() -> Vec<&'static Case> {
    let mut cases = Vec::new();
    for section in [
        s3_messages::CASES,
        s4_expansion::CASES,
        s5_transport::CASES,
        s6_membership::CASES,
        s7_states::CASES,
        s8_recovery::CASES,
        s10_extensions::CASES,
    ] {
        cases.extend(section.iter());
    }
    cases
}

/// Section titles, for reports.
pub fn section_title(section: &str) -> &'static str {
    match section {
        "3" => "Messages",
        "4" => "The expansion",
        "5" => "Transport",
        "6" => "Any message, before the state acts",
        "7" => "States",
        "8" => "What must hold",
        "10" => "What pi-ring adds (extensions)",
        _ => "",
    }
}

/// What a case found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub expected: String,
    pub observed: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}; observed {}", self.expected, self.observed)
    }
}

/// A case's result.
pub type Checked = Result<(), Failure>;

/// A failure: `expected`, `observed`.
pub fn fail(expected: impl Into<String>, observed: impl Into<String>) -> Failure {
    Failure { expected: expected.into(), observed: observed.into() }
}

/// The id the tool gives a node it spawns; peers are named around it.
pub const SUBJECT_ID: &str = "node-m";

/// One case's world: the node under test, its peers, its timeouts.
pub struct Ctx<'a> {
    pub slot: Slot,
    pub lab: Lab,
    pub t: Timing,
    subject: &'a mut dyn Subject,
    node: Option<Box<dyn Instance>>,
}

impl<'a> Ctx<'a> {
    pub fn new(slot: Slot, lab: Lab, subject: &'a mut dyn Subject) -> Self {
        Ctx { t: slot.timing, slot, lab, subject, node: None }
    }

    /// Whether this case's node is its own (`--spawn`), not one already
    /// running (`--target`).
    pub fn fresh(&self) -> bool {
        self.subject.fresh()
    }

    /// Let `d` pass: the scenario itself needs time to go by (clients that
    /// stay connected, a ring that runs), not a stand-in for an event.
    pub fn let_time_pass(&self, d: Duration) {
        std::thread::sleep(d);
    }

    /// The node's own output, when it has one (for a failure report).
    pub fn node_log(&self) -> Option<std::path::PathBuf> {
        self.node.as_ref().and_then(|n| n.log())
    }

    /// The last lines of the node's output, if it has any, for a report.
    fn output_tail(&self) -> String {
        let Some(text) = self.node_log().and_then(|log| std::fs::read_to_string(log).ok()) else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        match lines.is_empty() {
            true => String::new(),
            false => format!("; its output ends: {}", lines.into_iter().rev().collect::<Vec<_>>().join(" | ")),
        }
    }

    /// `Err` when the node under test is gone.
    pub fn alive(&mut self) -> Checked {
        match &mut self.node {
            Some(node) => node.alive().map_err(|how| fail("the node to keep running", how)),
            None => Ok(()),
        }
    }

    /// Start the node and wait for its first datagram; returns when that
    /// came. (A node already running: now.)
    pub fn start(&mut self) -> Result<Instant, Failure> {
        let mark = self.lab.log.mark();
        let node = self.subject.start(&self.slot).map_err(|e| fail("a node to test", e.to_string()))?;
        self.node = Some(node);
        if !self.subject.fresh() {
            return Ok(Instant::now());
        }
        // From its address, or (for 5.1 to say what is wrong) in its name.
        let id = self.slot.id.clone();
        let host = self.slot.host;
        let started =
            |h: &Heard| h.channel == Channel::Broadcast && (h.from == host || h.wire().is_some_and(|w| w.author == id));
        // Looking now and then whether it is still running: a command that
        // fails fails the case at once.
        let end = Instant::now() + self.t.start;
        let mut first = None;
        while first.is_none() && Instant::now() < end && self.alive().is_ok() {
            first = self.lab.log.wait_for(mark, end.min(Instant::now() + Duration::from_millis(50)), started);
        }
        let first = first.ok_or_else(|| {
            fail(
                format!("a first broadcast after the start (section 7), within {}", ms(self.t.start)),
                self.summary(mark),
            )
        });
        first.map(|h| h.at).map_err(|e| match self.alive() {
            Err(dead) => fail("the node to start and keep running", format!("{}{}", dead.observed, self.output_tail())),
            Ok(()) => e,
        })
    }

    /// Start the node alone and wait until it holds a token it generated.
    pub fn owner_alone(&mut self) -> Result<Token, Failure> {
        let mark = self.lab.log.mark();
        self.start()?;
        let within = self.t.looser_answer + self.t.generating + self.t.looser_ask + 2 * self.t.slack;
        let heard = self.expect(mark, within, "TOKEN_IS_HERE once alone, after claiming (section 7)", |h| {
            h.channel == Channel::Broadcast && h.kind() == Some(Kind::TokenIsHere)
        })?;
        Ok(token_of(&heard))
    }

    /// A scripted peer.
    pub fn peer(&mut self, id: &str) -> Peer {
        self.lab.peer(id).expect("a loopback peer (is the address or port taken?)")
    }

    /// An id before the node's in ring order (`k` orders them).
    pub fn before(&self, k: u32) -> String {
        if self.slot.id == SUBJECT_ID {
            format!("node-a{k}")
        } else {
            format!("!conform-{}-{k}", self.case_tag())
        }
    }

    /// An id after the node's in ring order (`k` orders them).
    pub fn after(&self, k: u32) -> String {
        if self.slot.id == SUBJECT_ID {
            format!("node-x{k}")
        } else {
            format!("{}~conform-{}-{k}", self.slot.id, self.case_tag())
        }
    }

    /// A node that runs on through the cases (`--target`) remembers every
    /// id at its address: each case's peers get ids of their own.
    fn case_tag(&self) -> String {
        let [_, a, b, _] = self.lab.host(0).octets();
        format!("{a}.{b}")
    }

    /// Whether `h` came from the node under test.
    pub fn from_node(&self, h: &Heard) -> bool {
        h.from == self.slot.host && h.channel != Channel::Monitor
            || h.channel == Channel::Monitor && h.wire().is_some_and(|w| w.author == self.slot.id)
    }

    /// The first message from the node after `mark` that matches, within
    /// `within` from now.
    pub fn expect(
        &self,
        mark: usize,
        within: Duration,
        expected: &str,
        matches: impl Fn(&Heard) -> bool,
    ) -> Result<Heard, Failure> {
        self.lab
            .log
            .wait_for(mark, Instant::now() + within, |h| self.from_node(h) && matches(h))
            .ok_or_else(|| fail(format!("{expected}, within {}", ms(within)), self.summary(mark)))
    }

    /// No message from the node after `mark` matches, for `during` from now.
    pub fn quiet(&self, mark: usize, during: Duration, expected: &str, matches: impl Fn(&Heard) -> bool) -> Checked {
        let began = Instant::now();
        match self.lab.log.wait_for(mark, began + during, |h| self.from_node(h) && matches(h)) {
            None => Ok(()),
            Some(h) => Err(fail(
                format!("{expected} for {}", ms(during)),
                format!("{} at {} into that time", h.describe(), signed_ms(h.at, began)),
            )),
        }
    }

    /// What the node sent since `mark`, counted by kind and channel.
    pub fn summary(&self, mark: usize) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for h in self.lab.log.since(mark).iter().filter(|h| self.from_node(h)) {
            let what = match (&h.message, &h.channel) {
                (Err(e), _) => format!("invalid message ({e})"),
                (Ok(w), Channel::Broadcast) => format!("{} broadcast", w.kind),
                (Ok(w), Channel::Unicast { to }) => format!("{} datagram to {to}", w.kind),
                (Ok(w), Channel::Tcp { to }) => format!("{} by TCP to {to}", w.kind),
                (Ok(w), Channel::Monitor) => format!("{} on the monitoring port", w.kind),
            };
            *counts.entry(what).or_default() += 1;
        }
        if counts.is_empty() {
            return "nothing from the node".into();
        }
        let list: Vec<String> = counts.into_iter().map(|(what, n)| format!("{n} × {what}")).collect();
        format!("the node sent {}", list.join(", "))
    }

    /// The longest time between `began`, the node's TOKEN_IS_HERE
    /// broadcasts since `mark`, and now.
    pub fn longest_silence(&self, mark: usize, began: Instant) -> Duration {
        let beats: Vec<Instant> = std::iter::once(began)
            .chain(
                self.lab
                    .log
                    .since(mark)
                    .iter()
                    .filter(|h| {
                        self.from_node(h) && h.channel == Channel::Broadcast && h.kind() == Some(Kind::TokenIsHere)
                    })
                    .map(|h| h.at),
            )
            .chain(std::iter::once(Instant::now()))
            .collect();
        beats.windows(2).map(|w| w[1].saturating_duration_since(w[0])).max().unwrap_or_default()
    }

    /// `peer` broadcasts PING and waits for the node's TCP PING back
    /// (section 6, step 2): it is then a member the node has reached.
    pub fn join(&self, peer: &Peer) -> Checked {
        let mark = self.lab.log.mark();
        peer.say(Kind::Ping, None);
        let within = 2 * self.t.slack;
        self.expect(mark, within, &format!("a TCP PING to newcomer {} (section 6, step 2)", peer.id), |h| {
            h.is_tcp_to(&peer.id) && h.kind() == Some(Kind::Ping)
        })
        .map(drop)
    }

    /// Start the node, make `holder` and `others` members, and let `holder`
    /// heart-beat `token`: the node waits (WAITER).
    pub fn ring(&mut self, holder: &Peer, others: &[&Peer], token: &Token) -> Result<Beating, Failure> {
        self.start()?;
        let beating = holder.heartbeat(token, self.t.heartbeat);
        self.join(holder)?;
        for peer in others {
            self.join(peer)?;
        }
        Ok(beating)
    }

    /// The table a peer hands on: the node and `peers`.
    pub fn table(&self, peers: &[&Peer]) -> BTreeMap<String, String> {
        let mut nodes: BTreeMap<String, String> = peers.iter().map(|p| (p.id.clone(), p.host.to_string())).collect();
        nodes.insert(self.slot.id.clone(), self.slot.host.to_string());
        nodes
    }

    /// `from` hands the node the token with `data` (a whole expansion).
    pub fn hand(&self, from: &Peer, token: &Token, data: &str, table: &BTreeMap<String, String>) -> Checked {
        from.send_tcp(self.slot.host, &wire::take_token(&from.id, token, table, data))
            .map_err(|e| fail("the node to take a TAKE_TOKEN by TCP (section 5)", format!("the send failed: {e}")))
    }

    /// The next TAKE_TOKEN the node sends after `mark`, to anyone.
    pub fn next_hand_off(&self, mark: usize, within: Duration) -> Result<Heard, Failure> {
        self.expect(mark, within, "a TAKE_TOKEN by TCP", |h| {
            matches!(h.channel, Channel::Tcp { .. }) && h.kind() == Some(Kind::TakeToken)
        })
    }

    /// The node's next TAKE_TOKEN after `mark` that carries more than
    /// `beyond` characters: the token handed to it, handed on (not one it
    /// made meanwhile).
    pub fn handed_on(&self, mark: usize, within: Duration, beyond: usize) -> Result<Heard, Failure> {
        let expected = format!("the token handed on by TCP with more than {beyond} characters");
        self.expect(mark, within, &expected, |h| {
            matches!(h.channel, Channel::Tcp { .. })
                && h.wire().is_some_and(|w| {
                    w.kind == Kind::TakeToken && w.token.as_ref().is_some_and(|t| t.progress > beyond as u64)
                })
        })
    }

    /// How long a hand-off may take: computing 20 digits and connecting.
    pub fn hand_off_bound(&self) -> Duration {
        self.t.heartbeat + 3 * self.t.slack
    }
}

/// The token of a message known to carry one.
pub fn token_of(h: &Heard) -> Token {
    h.wire().and_then(|w| w.token.clone()).expect("a message with a token")
}

/// Whom a TCP message went to.
pub fn recipient(h: &Heard) -> &str {
    match &h.channel {
        Channel::Tcp { to } | Channel::Unicast { to } => to,
        _ => "everyone",
    }
}

/// `1.234 s` or `250 ms`.
pub fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `at - since`, which may be negative, in milliseconds.
pub fn signed_ms(at: Instant, since: Instant) -> String {
    if at >= since {
        ms(at - since)
    } else {
        format!("-{}", ms(since - at))
    }
}
