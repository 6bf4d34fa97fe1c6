//! What a monitor knows about a ring, built from what it overhears: MY_STATE
//! broadcasts on the monitoring port and TOKEN_IS_HERE heartbeats on the
//! ring's port (PROTOCOL sections 3 and 5). Pure state-keeping with the
//! clock passed in; sockets and HTTP live in the binary and [`super::web`].
//!
//! Besides each node's state it keeps a timeline of incidents: the token
//! lost and regenerated (with how long the ring had no holder), duplicate
//! tokens and how they resolved, nodes that went silent or came back.
//!
//! A fast ring reports its hand-offs sampled (PROTOCOL section 10): the
//! holder at most every 100 ms, each node coalesced once a second, with the
//! token's hand-off count (`hops`) and the node's `holdings`. So a report
//! that node B holds a token also says that whoever held that same token
//! before has passed it on: the view shows one holder per token, and counts
//! passes from `hops`.

use crate::protocol::{Body, Message, MyState, NodeId, StateName, Token};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;

/// The timeline keeps at most this many incidents (the oldest go first),
/// so a monitor left running for weeks stays small.
pub const MAX_INCIDENTS: usize = 1000;

/// The most nodes a monitor follows: a flood of made-up ids evicts the node
/// heard from the longest ago (a real ring of this size fits).
pub const MAX_NODES_SHOWN: usize = 1024;

/// A node is never called silent before this much silence.
const MIN_SILENCE: Duration = Duration::from_secs(3);
/// An OWNER not heard for this long is not counted as a current holder
/// when looking for duplicate tokens (a live holder sends heartbeats).
const HOLDER_FRESH: Duration = Duration::from_millis(1500);

/// One node as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub host: Ipv4Addr,
    pub state: StateName,
    pub progress: u64,
    pub token: Option<Token>,
    pub last_heard: Instant,
    pub silent: bool,
    /// Times this node was seen taking the token, over all its lives.
    pub holdings: u64,
    /// Restarts seen: a new start time in MY_STATE (`started_ms`), or, from
    /// nodes that do not say when they started, a holdings count that went
    /// back.
    pub restarts: u32,
    /// When the monitor saw the latest restart.
    pub restarted_at: Option<Instant>,
    /// When this life started, as the node says (Unix ms).
    pub started_ms: Option<u64>,
    /// From this life's start to its first holding: by the node's clock
    /// (`timestamp_ms - started_ms`, the event its log times), else by the
    /// monitor's from when it saw the life begin. `None` until it held.
    pub first_holding_after: Option<Duration>,
    /// Holdings of earlier lives, and of this one.
    earlier_holdings: u64,
    life_holdings: u64,
    /// When the monitor saw this life begin (its start-up report, or a
    /// restart), for nodes that do not say when they started.
    life_seen_at: Option<Instant>,
    /// The digits the node computes now, as its last report said.
    pub computing: Option<ComputingView>,
}

/// A computation of digits a node reports (MY_STATE's `computing_*`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ComputingView {
    /// Digits after the point it computes pi to.
    pub to_digits: u64,
    /// Percent done (estimated).
    pub done: u8,
    /// At full priority: the ring would otherwise wait (or waits).
    pub urgent: bool,
}

impl ComputingView {
    /// "computing digits to 10.0M: 40 %".
    pub fn describe(&self) -> String {
        format!("computing digits to {}: {} %", short_count(self.to_digits), self.done)
    }
}

/// 10000000 as "10.0M", 20000 as "20k".
fn short_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{}k", n / 1_000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

impl NodeView {
    fn new(host: Ipv4Addr, now: Instant) -> Self {
        NodeView {
            host,
            state: StateName::None,
            progress: 0,
            token: None,
            last_heard: now,
            silent: false,
            holdings: 0,
            restarts: 0,
            restarted_at: None,
            started_ms: None,
            first_holding_after: None,
            earlier_holdings: 0,
            life_holdings: 0,
            life_seen_at: None,
            computing: None,
        }
    }

    /// A new life begins: its holdings count from 0.
    fn restart(&mut self, started_ms: Option<u64>, now: Instant) {
        self.earlier_holdings += self.life_holdings;
        self.life_holdings = 0;
        self.restarts += 1;
        self.restarted_at = Some(now);
        self.started_ms = started_ms;
        self.first_holding_after = None;
        self.life_seen_at = Some(now);
    }

    /// This life's holdings count is at least `count`.
    fn held(&mut self, count: u64) {
        self.life_holdings = self.life_holdings.max(count);
        self.holdings = self.earlier_holdings + self.life_holdings;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IncidentKind {
    /// The ring's first token.
    FirstToken {
        by: NodeId,
        /// From the creator's start, by its own clock (when it says when it
        /// started).
        #[serde(serialize_with = "opt_seconds")]
        after_start: Option<Duration>,
    },
    /// A node stopped hearing the holder. Closed when a token is
    /// regenerated (`regenerated_by`) or found again (`found`).
    TokenLost {
        detected_by: Option<NodeId>,
        last_holder: Option<NodeId>,
        regenerated_by: Option<NodeId>,
        found: bool,
        /// Expansion length the ring continued from.
        progress: Option<u64>,
    },
    /// Two holders with different tokens at once.
    DuplicateTokens {
        holders: Vec<(NodeId, Token)>,
        survivor: Option<NodeId>,
    },
    NodeJoined {
        node: NodeId,
    },
    NodeSilent {
        node: NodeId,
    },
    NodeBack {
        node: NodeId,
    },
    /// A node started again (a new life).
    NodeRestarted {
        node: NodeId,
    },
    /// A restarted node took the token for the first time, `after` its
    /// start.
    BackInRotation {
        node: NodeId,
        #[serde(serialize_with = "seconds")]
        after: Duration,
    },
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl IncidentKind {
    /// The kind's name, as in the JSON (`"kind"`) and the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            IncidentKind::FirstToken { .. } => "first_token",
            IncidentKind::TokenLost { .. } => "token_lost",
            IncidentKind::DuplicateTokens { .. } => "duplicate_tokens",
            IncidentKind::NodeJoined { .. } => "node_joined",
            IncidentKind::NodeSilent { .. } => "node_silent",
            IncidentKind::NodeBack { .. } => "node_back",
            IncidentKind::NodeRestarted { .. } => "node_restarted",
            IncidentKind::BackInRotation { .. } => "back_in_rotation",
        }
    }
}

/// An entry of the timeline. `ended` is set when a lasting incident (a
/// lost or duplicated token) is over.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub at: Instant,
    pub ended: Option<Instant>,
    pub kind: IncidentKind,
}

impl Incident {
    /// How long the incident lasted (or has lasted so far).
    pub fn duration(&self, now: Instant) -> Duration {
        self.ended.unwrap_or(now) - self.at
    }

    /// The incident in plain words.
    pub fn describe(&self, now: Instant) -> String {
        let secs = self.duration(now).as_secs_f64();
        match &self.kind {
            IncidentKind::FirstToken { by, after_start } => match after_start {
                Some(after) => {
                    format!("{by} created the ring's first token {:.2} s after its start", after.as_secs_f64())
                }
                None => format!("{by} created the ring's first token"),
            },
            IncidentKind::TokenLost { detected_by, last_holder, regenerated_by, found, progress } => {
                let who = last_holder.as_deref().map(|h| format!(" (last seen at {h})")).unwrap_or_default();
                let noticed = detected_by.as_deref().map(|d| format!("; {d} noticed")).unwrap_or_default();
                match (regenerated_by, found) {
                    (Some(by), _) => format!(
                        "token lost{who}{noticed}; {by} regenerated it after {secs:.2} s without a holder, continuing from {} digits",
                        progress.unwrap_or(0).saturating_sub(2)
                    ),
                    (None, true) => format!("token missed{who}{noticed}, then found again after {secs:.2} s"),
                    (None, false) => format!("token lost{who}{noticed}; no holder for {secs:.2} s so far"),
                }
            }
            IncidentKind::DuplicateTokens { holders, survivor } => {
                let list: Vec<String> = holders.iter().map(|(n, t)| format!("{n} {t}")).collect();
                match survivor {
                    Some(s) => format!(
                        "two tokens at once ({}); resolved after {secs:.2} s, {s} kept its token",
                        list.join(" and ")
                    ),
                    None => format!("two tokens at once ({}) for {secs:.2} s so far", list.join(" and ")),
                }
            }
            IncidentKind::NodeJoined { node } => format!("{node} joined the ring"),
            IncidentKind::NodeSilent { node } => format!("{node} went silent"),
            IncidentKind::NodeBack { node } => format!("{node} is back"),
            IncidentKind::NodeRestarted { node } => format!("{node} restarted"),
            IncidentKind::BackInRotation { node, after } => {
                format!(
                    "{node} is back in the rotation: it held the token {:.2} s after its restart",
                    after.as_secs_f64()
                )
            }
        }
    }
}

#[derive(Debug)]
pub struct RingView {
    nodes: BTreeMap<NodeId, NodeView>,
    holder: Option<NodeId>,
    /// The holder announced it left OWNER and nobody entered since.
    holder_left: bool,
    /// Last time any holder showed itself (entered OWNER or sent a heartbeat).
    last_holder_sign: Option<Instant>,
    /// (time, `passes` then) at each reported entry into OWNER, for passes
    /// per second.
    entries: VecDeque<(Instant, u64)>,
    /// Token passes seen (counted from `hops` where nodes report it).
    pub passes: u64,
    /// Times the monitor saw the token at another node than before.
    pub holder_changes: u64,
    /// Incidents recorded since the start, by kind (the timeline itself
    /// keeps only the latest).
    pub incident_totals: BTreeMap<&'static str, u64>,
    /// The token and hand-off count of the last holder report.
    last_hops: Option<(NodeId, u64, u64)>,
    pub max_progress: u64,
    /// The ring's target (`--target-digits`), as its nodes report it.
    pub target_digits: Option<u64>,
    /// The last digits of the longest expansion seen.
    pub latest_digits: String,
    incidents: Vec<Incident>,
    /// Incidents dropped from the front of the timeline so far: the
    /// timeline's first entry is incident number `dropped` of all recorded.
    dropped: u64,
    open_loss: Option<usize>,
    open_duplicate: Option<usize>,
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
            holder_changes: 0,
            incident_totals: BTreeMap::new(),
            last_hops: None,
            max_progress: 0,
            target_digits: None,
            latest_digits: String::new(),
            incidents: Vec::new(),
            dropped: 0,
            open_loss: None,
            open_duplicate: None,
        }
    }

    /// Apply one overheard message. Any message shows its sender alive;
    /// MY_STATE and TOKEN_IS_HERE also tell what it is doing.
    pub fn apply(&mut self, message: &Message, from: Ipv4Addr, now: Instant) {
        match &message.body {
            Body::MyState(state) => self.apply_state(&message.author, from, state, now),
            Body::TokenIsHere { token } => self.apply_heartbeat(&message.author, from, token, now),
            _ => {
                self.hear(&message.author, from, now);
            }
        }
    }

    /// Note that `id` was heard; returns its view.
    fn hear(&mut self, id: &str, host: Ipv4Addr, now: Instant) -> &mut NodeView {
        if !self.nodes.contains_key(id) {
            if self.nodes.len() >= MAX_NODES_SHOWN {
                let oldest = self.nodes.iter().min_by_key(|(_, v)| v.last_heard).map(|(id, _)| id.clone());
                if let Some(oldest) = oldest {
                    self.nodes.remove(&oldest);
                    if self.holder.as_deref() == Some(oldest.as_str()) {
                        self.holder = None;
                    }
                }
            }
            self.record(now, IncidentKind::NodeJoined { node: id.to_owned() });
        }
        let view = self.nodes.entry(id.to_owned()).or_insert_with(|| NodeView::new(host, now));
        view.last_heard = now;
        view.host = host;
        if view.silent {
            view.silent = false;
            self.record(now, IncidentKind::NodeBack { node: id.to_owned() });
        }
        self.nodes.get_mut(id).expect("inserted above")
    }

    fn record(&mut self, at: Instant, kind: IncidentKind) -> usize {
        if self.incidents.len() >= MAX_INCIDENTS {
            // Drop the oldest tenth; open incidents move with their index.
            let drop = MAX_INCIDENTS / 10;
            self.incidents.drain(..drop);
            self.dropped += drop as u64;
            self.open_loss = self.open_loss.and_then(|i| i.checked_sub(drop));
            self.open_duplicate = self.open_duplicate.and_then(|i| i.checked_sub(drop));
        }
        *self.incident_totals.entry(kind.name()).or_default() += 1;
        self.incidents.push(Incident { at, ended: None, kind });
        self.incidents.len() - 1
    }

    fn note_progress(&mut self, progress: u64, tail: Option<&str>) {
        if progress >= self.max_progress {
            self.max_progress = progress;
            if let Some(t) = tail {
                self.latest_digits = t.to_owned();
            }
        }
    }

    fn apply_state(&mut self, id: &str, from: Ipv4Addr, state: &MyState, now: Instant) {
        let new = StateName::from_wire(&state.new_state).unwrap_or(StateName::None);
        let old = StateName::from_wire(&state.old_state).unwrap_or(StateName::None);
        let host = state.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(from);
        let view = self.hear(id, host, now);
        let (restarted, stale) = life_of(view, old, state);
        if stale {
            return; // a late report of an earlier life
        }
        if restarted {
            view.restart(state.started_ms, now);
        } else if view.started_ms.is_none() {
            view.started_ms = state.started_ms;
        }
        if old == StateName::None && view.life_seen_at.is_none() {
            view.life_seen_at = Some(now);
        }
        view.state = new;
        // Every report tells what the node computes; none is no computation.
        view.computing = state.computing_to.map(|to_digits| ComputingView {
            to_digits,
            done: state.computing_done.unwrap_or(0).min(100),
            urgent: state.computing_urgent.unwrap_or(false),
        });
        if let Some(p) = state.progress {
            view.progress = p;
        }
        if state.token.is_some() {
            view.token = state.token.clone();
        }
        let progress = view.progress;
        self.note_progress(progress, state.digits_tail.as_deref());
        if state.target_digits.is_some() {
            self.target_digits = state.target_digits;
        }
        if restarted {
            self.record(now, IncidentKind::NodeRestarted { node: id.to_owned() });
        }
        if let (Some(holdings), Some(view)) = (state.holdings, self.nodes.get_mut(id)) {
            view.held(holdings);
        }
        let entered_owner = new == StateName::Owner;
        if entered_owner {
            let since_start = self.nodes.get(id).and_then(|v| v.started_ms).zip(state.timestamp_ms);
            let since_start = since_start.map(|(started, at)| Duration::from_millis(at.saturating_sub(started)));
            self.owner_entered(id, old, progress, (state.hops, state.holdings.is_some(), since_start), now);
        }
        self.note_first_holding(id, state, now);
        match (old, new) {
            (_, StateName::Owner) => {}
            (StateName::Waiter, StateName::Looser) => self.loss_noticed(id, now),
            (StateName::Looser, StateName::Waiter) => self.token_found(now),
            (StateName::Owner, _) => {
                if self.holder.as_deref() == Some(id) {
                    // Usually the next holder's entry follows at once;
                    // until then this node was the last to hold it.
                    self.last_holder_sign = Some(now);
                    self.holder_left = true;
                }
                self.duplicate_resolved(id, now);
            }
            _ => {}
        }
    }

    fn owner_entered(
        &mut self,
        id: &str,
        old: StateName,
        progress: u64,
        (hops, counts_holdings, since_start): (Option<u64>, bool, Option<Duration>),
        now: Instant,
    ) {
        if old == StateName::Generating {
            if self.passes == 0 && self.open_loss.is_none() {
                self.record(now, IncidentKind::FirstToken { by: id.to_owned(), after_start: since_start });
            } else if self.open_loss.is_some() || self.fresh_holder_other_than(id, now).is_none() {
                self.regenerated(id, progress, now);
            }
            // Otherwise another holder is alive: a second token, which
            // `detect_duplicate` reports.
        }
        self.detect_duplicate(id, now);
        if let Some(view) = self.nodes.get_mut(id).filter(|_| !counts_holdings) {
            let count = view.life_holdings + 1;
            view.held(count);
        }
        self.passes += self.passes_since_last_report(id, hops);
        self.take_holder(id, now);
        self.entries.push_back((now, self.passes));
        while self.entries.len() > 200 {
            self.entries.pop_front();
        }
    }

    /// The first holding of a node's life: when it happened, from the
    /// node's own clock where it says when it started; a restarted node is
    /// then back in the rotation.
    fn note_first_holding(&mut self, id: &str, state: &MyState, now: Instant) {
        let Some(view) = self.nodes.get_mut(id) else { return };
        if view.first_holding_after.is_some() || view.life_holdings == 0 {
            return;
        }
        let after = match (view.started_ms, state.timestamp_ms) {
            (Some(started), Some(at)) => Some(Duration::from_millis(at.saturating_sub(started))),
            _ => view.life_seen_at.map(|seen| now.saturating_duration_since(seen)),
        };
        let Some(after) = after else { return };
        view.first_holding_after = Some(after);
        if view.restarts > 0 {
            self.record(now, IncidentKind::BackInRotation { node: id.to_owned(), after });
        }
    }

    /// Passes since the last holder report: the difference of the token's
    /// hand-off counts, or one when the sender does not count them.
    fn passes_since_last_report(&mut self, id: &str, hops: Option<u64>) -> u64 {
        let token = self.nodes.get(id).and_then(|v| v.token.clone());
        let (Some(hops), Some(token)) = (hops, token) else { return 1 };
        let last = match &self.last_hops {
            Some((author, revision, last))
                if *author == token.author_node_id && *revision == token.author_token_revision =>
            {
                Some(*last)
            }
            _ => None,
        };
        // A late report of the same token (fewer hops) counts nothing.
        if last.is_none_or(|last| hops > last) {
            self.last_hops = Some((token.author_node_id, token.author_token_revision, hops));
        }
        last.map_or(1, |last| hops.saturating_sub(last))
    }

    /// `id` holds its token now: whoever showed this same token before has
    /// passed it on (reports of routine hand-offs are sampled, so the
    /// earlier holder may not have said so).
    fn take_holder(&mut self, id: &str, now: Instant) {
        if let Some(ours) = self.nodes.get(id).and_then(|v| v.token.clone()) {
            for (other, view) in self.nodes.iter_mut() {
                let same_token = view.token.as_ref().is_some_and(|t| {
                    t.author_node_id == ours.author_node_id
                        && t.author_token_revision == ours.author_token_revision
                        && t.progress <= ours.progress
                });
                if other != id && view.state == StateName::Owner && same_token {
                    view.state = StateName::Waiter;
                }
            }
        }
        if self.holder.as_deref() != Some(id) {
            self.holder_changes += 1;
        }
        self.holder = Some(id.to_owned());
        self.holder_left = false;
        self.last_holder_sign = Some(now);
    }

    /// A waiter timed out: the token may be lost. The incident starts at
    /// the holder's last sign of life.
    fn loss_noticed(&mut self, id: &str, now: Instant) {
        if self.open_loss.is_some() {
            return;
        }
        let at = self.last_holder_sign.unwrap_or(now);
        let kind = IncidentKind::TokenLost {
            detected_by: Some(id.to_owned()),
            last_holder: self.holder.clone(),
            regenerated_by: None,
            found: false,
            progress: None,
        };
        self.open_loss = Some(self.record(at, kind));
    }

    fn regenerated(&mut self, by: &str, progress: u64, now: Instant) {
        let index = match self.open_loss.take() {
            Some(i) => i,
            // The monitor missed the loss being noticed: start it at the
            // holder's last sign of life.
            None => {
                let kind = IncidentKind::TokenLost {
                    detected_by: None,
                    last_holder: self.holder.clone(),
                    regenerated_by: None,
                    found: false,
                    progress: None,
                };
                self.record(self.last_holder_sign.unwrap_or(now), kind)
            }
        };
        let incident = &mut self.incidents[index];
        incident.ended = Some(now);
        if let IncidentKind::TokenLost { regenerated_by, progress: p, .. } = &mut incident.kind {
            *regenerated_by = Some(by.to_owned());
            *p = Some(progress);
        }
        // Holders from before the loss that have not been heard since are
        // presumably gone.
        let since = incident.at;
        for (id, view) in self.nodes.iter_mut() {
            if id != by && view.state == StateName::Owner && view.last_heard <= since {
                view.state = StateName::None;
            }
        }
    }

    fn token_found(&mut self, now: Instant) {
        if let Some(i) = self.open_loss {
            // Only if nobody is still searching.
            if self.nodes.values().any(|v| matches!(v.state, StateName::Looser | StateName::Generating)) {
                return;
            }
            self.open_loss = None;
            let incident = &mut self.incidents[i];
            incident.ended = Some(now);
            if let IncidentKind::TokenLost { found, .. } = &mut incident.kind {
                *found = true;
            }
        }
    }

    /// Another node in OWNER, heard recently (a live holder sends heartbeats).
    fn fresh_holder_other_than(&self, id: &str, now: Instant) -> Option<(&NodeId, &NodeView)> {
        self.nodes
            .iter()
            .find(|(other, v)| other.as_str() != id && v.state == StateName::Owner && now - v.last_heard < HOLDER_FRESH)
    }

    /// Another live holder with a different token (author and revision)
    /// means two tokens.
    fn detect_duplicate(&mut self, id: &str, now: Instant) {
        if self.open_duplicate.is_some() {
            return;
        }
        let Some(ours) = self.nodes.get(id).and_then(|v| v.token.clone()) else { return };
        let Some((other, view)) = self.fresh_holder_other_than(id, now) else { return };
        let Some(theirs) = view.token.clone() else { return };
        if (&theirs.author_node_id, theirs.author_token_revision) == (&ours.author_node_id, ours.author_token_revision)
        {
            return; // one token seen at two nodes during a hand-off
        }
        let holders = vec![(other.clone(), theirs), (id.to_owned(), ours)];
        let kind = IncidentKind::DuplicateTokens { holders, survivor: None };
        self.open_duplicate = Some(self.record(now, kind));
    }

    /// One of two holders let go: the other one's token survived.
    fn duplicate_resolved(&mut self, left: &str, now: Instant) {
        let Some(i) = self.open_duplicate else { return };
        let incident = &mut self.incidents[i];
        if let IncidentKind::DuplicateTokens { holders, survivor } = &mut incident.kind {
            if let Some(other) =
                holders.iter().find(|(h, _)| h != left).filter(|_| holders.iter().any(|(h, _)| h == left))
            {
                *survivor = Some(other.0.clone());
                incident.ended = Some(now);
                self.open_duplicate = None;
            }
        }
    }

    fn apply_heartbeat(&mut self, id: &str, from: Ipv4Addr, token: &Token, now: Instant) {
        let view = self.hear(id, from, now);
        let entered = view.state != StateName::Owner;
        view.state = StateName::Owner;
        view.progress = token.progress;
        view.token = Some(token.clone());
        self.note_progress(token.progress, None);
        if entered {
            // A node that sends only bare MY_STATE (or whose MY_STATE was
            // lost) shows itself holder by its heartbeat.
            self.detect_duplicate(id, now);
        }
        if self.open_loss.is_some() && self.holder.as_deref() == Some(id) {
            self.token_found(now);
        }
        self.take_holder(id, now);
    }

    /// Mark nodes silent that have not been heard for much longer than a
    /// round of the token takes. Call periodically.
    pub fn tick(&mut self, now: Instant) {
        let threshold = self.silence_threshold();
        let mut newly_silent = Vec::new();
        for (id, view) in self.nodes.iter_mut() {
            if !view.silent && now - view.last_heard > threshold {
                view.silent = true;
                newly_silent.push(id.clone());
            }
        }
        for node in newly_silent {
            self.record(now, IncidentKind::NodeSilent { node });
        }
    }

    /// Three times the time the token takes to go round (estimated from the
    /// recent passes), and at least [`MIN_SILENCE`].
    fn silence_threshold(&self) -> Duration {
        let recent: Vec<&(Instant, u64)> = self.entries.iter().rev().take(50).collect();
        let round = match (recent.first(), recent.last()) {
            (Some((newest, p1)), Some((oldest, p0))) if p1 > p0 => {
                let per_pass = (*newest - *oldest) / (p1 - p0).min(u64::from(u32::MAX)) as u32;
                per_pass * self.nodes.len().max(1) as u32
            }
            _ => Duration::ZERO,
        };
        (round * 3).max(MIN_SILENCE)
    }

    /// The node holding the token: the last one to take it, unless it has
    /// let go and nobody took the token for a second. It is always a node
    /// the view shows in OWNER.
    pub fn holder_at(&self, now: Instant) -> Option<&str> {
        let stale = self.holder_left && self.last_holder_sign.is_some_and(|t| now - t > Duration::from_secs(1));
        let not_owner = self
            .holder
            .as_ref()
            .and_then(|h| self.nodes.get(h))
            .is_none_or(|v| v.silent || v.state != StateName::Owner);
        if stale || not_owner {
            None
        } else {
            self.holder.as_deref()
        }
    }

    pub fn nodes(&self) -> &BTreeMap<NodeId, NodeView> {
        &self.nodes
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The incident numbered `n` among all ever recorded (from 0), if the
    /// timeline still keeps it: for readers that follow the timeline as it
    /// grows and loses its oldest entries.
    pub fn incident_number(&self, n: u64) -> Option<&Incident> {
        let index = n.checked_sub(self.dropped)?;
        self.incidents.get(usize::try_from(index).ok()?)
    }

    /// Incidents dropped from the front of the timeline so far.
    pub fn incidents_dropped(&self) -> u64 {
        self.dropped
    }

    /// Token passes per second over the last `window`: the passes counted
    /// since the last report before the window began.
    pub fn passes_per_second(&self, now: Instant, window: Duration) -> f64 {
        // The last report before the window began, else the oldest kept.
        // Reading changes nothing: a replay, which serves the page at other
        // moments than the live monitor did, reaches the same conclusions.
        let within = |t: &Instant| now.saturating_duration_since(*t) <= window;
        let first_within = self.entries.iter().position(|(t, _)| within(t)).unwrap_or(self.entries.len());
        let before = match (first_within.checked_sub(1).and_then(|i| self.entries.get(i)), self.entries.front()) {
            (Some((_, passes)), _) => *passes,
            (None, Some((_, passes))) => passes.saturating_sub(1),
            (None, None) => self.passes,
        };
        (self.passes - before) as f64 / window.as_secs_f64()
    }

    /// Whether the longest expansion seen has reached the ring's target:
    /// the digits stop growing on purpose.
    pub fn target_reached(&self) -> bool {
        self.target_digits.is_some_and(|target| self.max_progress.saturating_sub(2) >= target)
    }

    /// One line for a terminal: holder, digits, passes/s, members.
    pub fn summary_line(&self, now: Instant) -> String {
        let rate = self.passes_per_second(now, Duration::from_secs(1));
        let members: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, v)| format!("{id}:{}", if v.silent { "silent" } else { short(v.state) }))
            .collect();
        let reached = if self.target_reached() { " (target reached)" } else { "" };
        // The largest computation under way, if any: what the ring may be
        // waiting for.
        let computing = self
            .nodes
            .iter()
            .filter(|(_, v)| !v.silent)
            .filter_map(|(id, v)| v.computing.map(|c| (c, id)))
            .max_by_key(|(c, _)| (c.urgent, c.to_digits));
        let computing = computing.map_or_else(String::new, |(c, id)| format!("  {id}: {}", c.describe()));
        format!(
            "holder {:<12} digits {:>9}{reached}  passes/s {:>7.0}  nodes {} [{}]{computing}",
            self.holder_at(now).unwrap_or("-"),
            self.max_progress.saturating_sub(2),
            rate,
            self.nodes.len(),
            members.join(" ")
        )
    }
}

fn short(state: StateName) -> &'static str {
    state.for_people()
}

/// Whether a MY_STATE begins a new life of the node it comes from
/// (restarted), or is a late report of an earlier life (stale): by the
/// start time it says, else by its holdings count going back, or a
/// start-up report of a node that had held the token.
fn life_of(view: &NodeView, old: StateName, state: &MyState) -> (bool, bool) {
    match (state.started_ms, view.started_ms) {
        (Some(new), Some(known)) => (new > known, new < known),
        _ => {
            let went_back = state.holdings.is_some_and(|h| h < view.life_holdings);
            let started_again = old == StateName::None && view.life_holdings > 0;
            (went_back || started_again, false)
        }
    }
}
