//! The protocol state machine of PROTOCOL section 7, without IO or clocks.
//!
//! [`Machine::handle`] takes the time and one [`Input`] (a message that
//! passed section 6, a timer, the end of a digit computation or of a
//! hand-off, a planned stop) and returns the [`Output`]s the node must carry
//! out (broadcasts, replies, the hand-off, timers to arm and cancel,
//! computations to start). The [`Node`](super::node::Node) wraps it with the
//! registry and the hand-off's progress; nothing else drives it.
//!
//! The behaviour is one of [`Behaviour`]'s variants and is swapped on every
//! transition; each state's rules are in its own `*_on_message` /
//! `*_on_timer` functions, so "what does WAITER do on TAKE_TOKEN" is
//! answered by [`Machine::waiter_on_message`].
//!
//! Timers belong to states: entering a state disarms every timer (and says
//! so with [`Output::CancelTimer`]), and a firing whose [`TimerId`] is not
//! the one currently armed is ignored, so a late or cancelled timer of a
//! state that was left never acts.

use super::message::{Body, Message, Pacing, StateName};
use super::token::{NodeId, Token};
use super::Time;
use crate::pi::{extended_len, Expansion, Unchecked};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The protocol's timeouts plus this implementation's pacing options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub waiter: Duration,
    pub looser_ask: Duration,
    pub looser_answer: Duration,
    pub generating: Duration,
    /// Minimum time a holder keeps the token before passing it on.
    pub hold: Duration,
    /// Routine hand-offs are reported to monitors (MY_STATE) at most this
    /// often across the ring, whatever the pass rate; zero reports every
    /// change. Other changes are always reported.
    pub report: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(500),
            waiter: Duration::from_millis(2000),
            looser_ask: Duration::from_millis(500),
            looser_answer: Duration::from_millis(2000),
            generating: Duration::from_millis(2000),
            hold: Duration::ZERO,
            report: Duration::from_millis(100),
        }
    }
}

/// Why a set of timeouts cannot work: each names the timeouts involved,
/// with their values in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("the heartbeat must be at least 1 ms")]
    ZeroHeartbeat,
    #[error(
        "the waiter timeout ({waiter} ms) must be at least twice the heartbeat ({heartbeat} ms), \
         or waiters declare a live token lost between two heartbeats"
    )]
    WaiterTooShort { waiter: u128, heartbeat: u128 },
    #[error(
        "the looser answer time ({looser_answer} ms) must be at least twice the heartbeat ({heartbeat} ms), \
         or a searching node claims the token before it hears the holder"
    )]
    LooserAnswerTooShort { looser_answer: u128, heartbeat: u128 },
    #[error("the looser ask period ({looser_ask} ms) must be at least 1 ms and at most the looser answer time ({looser_answer} ms)")]
    LooserAsk { looser_ask: u128, looser_answer: u128 },
    #[error("the generating time must be at least 1 ms")]
    ZeroGenerating,
}

impl Timing {
    /// Whether these timeouts can work together (PROTOCOL section 7): a
    /// node refuses to start with timeouts that would lose live tokens.
    pub fn check(&self) -> Result<(), TimingError> {
        let ms = |d: Duration| d.as_millis();
        let (heartbeat, waiter, looser_answer) = (ms(self.heartbeat), ms(self.waiter), ms(self.looser_answer));
        if heartbeat == 0 {
            return Err(TimingError::ZeroHeartbeat);
        }
        if waiter < 2 * heartbeat {
            return Err(TimingError::WaiterTooShort { waiter, heartbeat });
        }
        if looser_answer < 2 * heartbeat {
            return Err(TimingError::LooserAnswerTooShort { looser_answer, heartbeat });
        }
        let looser_ask = ms(self.looser_ask);
        if looser_ask == 0 || looser_ask > looser_answer {
            return Err(TimingError::LooserAsk { looser_ask, looser_answer });
        }
        if self.generating.is_zero() {
            return Err(TimingError::ZeroGenerating);
        }
        Ok(())
    }
}

/// Everything the machine needs to know about its node.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub timing: Timing,
    /// Stop extending at this expansion length (characters, `3,` included).
    pub max_len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    Heartbeat,
    Hold,
    Waiter,
    LooserAsk,
    LooserAnswer,
    Generating,
    /// The node's coalesced MY_STATE ([`super::report`]), not the state
    /// machine's: it is not in [`TimerKind::ALL`].
    Report,
}

const TIMER_KINDS: usize = 6;

impl TimerKind {
    /// Every kind of the state machine, in index order.
    pub const ALL: [TimerKind; TIMER_KINDS] = [
        TimerKind::Heartbeat,
        TimerKind::Hold,
        TimerKind::Waiter,
        TimerKind::LooserAsk,
        TimerKind::LooserAnswer,
        TimerKind::Generating,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One arming of a timer. Only the most recent arming of a kind, made in
/// the current state, is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub kind: TimerKind,
    pub seq: u64,
}

/// A message handed to the machine, with where it came from.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub message: Message,
    /// The sender's host (the datagram's or connection's source address).
    pub from: Ipv4Addr,
    /// A TAKE_TOKEN's digits beyond what this node has computed.
    pub unchecked: Option<Unchecked>,
}

#[derive(Clone, Debug)]
pub enum Input {
    /// The node starts: announce ourselves and look for the token.
    Start,
    Received(Envelope),
    Timer(TimerId),
    /// The digit computation started by [`Output::Compute`] finished
    /// (`None`: it failed; the token goes on without this holding's digits),
    /// with the correct prefix of the digits it was asked to check.
    Computed {
        epoch: u64,
        expansion: Option<Expansion>,
        checked: Option<Expansion>,
    },
    /// The hand-off started by [`Output::PassToken`] finished: delivered to
    /// `to`, or `None` when no other node was reachable.
    Passed {
        epoch: u64,
        to: Option<NodeId>,
    },
    /// A planned stop: a holder hands the token on at once.
    Stop,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// UDP broadcast on the ring port.
    Broadcast(Message),
    /// TCP unicast to one host (replies).
    Send { to: Ipv4Addr, message: Message },
    /// TAKE_TOKEN to the next reachable node (the node adds the table,
    /// marks unreachable nodes lost and tries the following ones).
    PassToken { epoch: u64, token: Token, data: Expansion },
    /// Compute the expansion of length `len` (off the event loop), after
    /// verifying `check`, the digits handed with the token that this node
    /// had not computed yet.
    Compute { epoch: u64, len: usize, check: Option<Unchecked> },
    /// Arm a timer; it replaces the previous one of the same kind.
    SetTimer { timer: TimerId, after: Duration },
    /// Disarm the timer of this kind (its state was left).
    CancelTimer(TimerKind),
    /// The behaviour changed (for MY_STATE and logs). A `routine` change
    /// (a hand-off while another holder of this token reported less than
    /// `report` ago) need not reach monitors at once.
    StateChanged { old: StateName, new: StateName, token: Token, progress: usize, routine: bool },
}

/// The current behaviour of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Not started yet.
    Idle,
    Owner(Holding),
    Waiter,
    Looser,
    Generating,
}

/// What an OWNER is doing with its token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// The extension of this holding is computed.
    computed: bool,
    /// The minimum holding time is over.
    held: bool,
    /// A hand-off is in progress.
    passing: bool,
    /// A TAKE_TOKEN arrived during the hand-off (usually our token, back
    /// from a fast ring before our send was acknowledged): once the
    /// hand-off is done, we hold it.
    handed_back: bool,
}

impl Behaviour {
    pub fn name(&self) -> StateName {
        match self {
            Behaviour::Idle => StateName::None,
            Behaviour::Owner(_) => StateName::Owner,
            Behaviour::Waiter => StateName::Waiter,
            Behaviour::Looser => StateName::Looser,
            Behaviour::Generating => StateName::Generating,
        }
    }
}

/// A TOKEN_IS_HERE of the current token: the progress it told, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Announcement {
    progress: u64,
    at: Time,
}

/// The pure protocol core of one node.
pub struct Machine {
    config: Config,
    behaviour: Behaviour,
    /// Incremented on every state entry; results of work started in an
    /// earlier state are ignored.
    epoch: u64,
    expansion: Expansion,
    /// Digits handed with the token beyond what this node had computed:
    /// the token is taken at once and they are checked while it is held,
    /// so no heartbeat waits for a computation (PROTOCOL section 4). They
    /// count in the token's progress until the check says otherwise.
    claim: Option<Unchecked>,
    /// The unchecked digits of the message being handled.
    handed: Option<Unchecked>,
    /// Author and revision of the current token (section 2).
    token_author: NodeId,
    token_revision: u64,
    /// How many tokens this node has generated.
    own_revision: u64,
    timers: [Option<u64>; TIMER_KINDS],
    timer_seq: u64,
    /// Nodes that handed us the token we hold, in this holding: their
    /// heartbeats, sent before the hand-off, may arrive after it.
    handed_by: BTreeSet<NodeId>,
    /// When a candidate better than ours was last claimed (LOOSER's and
    /// GENERATING's memory of better claims).
    better_claim_at: Option<Time>,
    /// When a holder of the current token last broadcast TOKEN_IS_HERE and
    /// last reported to monitors (learnt from TAKE_TOKEN's pacing, on our
    /// clock), and the token's hand-offs: one heartbeat per period for the
    /// whole ring, however fast the token moves (PROTOCOL section 10).
    announced: Option<Announcement>,
    reported_at: Option<Time>,
    hops: u64,
    /// The last TOKEN_IS_HERE heard: the token's author and revision, and
    /// when. Broadcasts reach every node at about the same time, so this
    /// corrects TAKE_TOKEN's pacing, which cannot count the time the
    /// hand-offs spent in transit.
    heard_announcement: Option<(NodeId, u64, Announcement)>,
    /// The state is left because the token was handed on.
    passed_on: bool,
    /// "Target reached" was logged.
    said_target_reached: bool,
    /// The time of the input being handled.
    now: Time,
    out: Vec<Output>,
}

impl Machine {
    pub fn new(config: Config) -> Self {
        Machine::with_expansion(config, Expansion::empty(), 0)
    }

    /// A node that starts with an expansion it already had (persisted) and
    /// the number of tokens it generated before.
    pub fn with_expansion(config: Config, expansion: Expansion, own_revision: u64) -> Self {
        Machine {
            token_author: config.id.clone(),
            token_revision: own_revision,
            config,
            behaviour: Behaviour::Idle,
            epoch: 0,
            expansion,
            claim: None,
            handed: None,
            own_revision,
            timers: [None; TIMER_KINDS],
            timer_seq: 0,
            handed_by: BTreeSet::new(),
            better_claim_at: None,
            announced: None,
            reported_at: None,
            hops: 0,
            heard_announcement: None,
            passed_on: false,
            said_target_reached: false,
            now: Time::ZERO,
            out: Vec::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    pub fn state(&self) -> StateName {
        self.behaviour.name()
    }

    pub fn expansion(&self) -> &Expansion {
        &self.expansion
    }

    /// Whether this node holds the token now: OWNER and not in the middle
    /// of handing it on.
    pub fn holds_token(&self) -> bool {
        matches!(self.behaviour, Behaviour::Owner(Holding { passing: false, .. }))
    }

    /// How many tokens this node has generated.
    pub fn own_revision(&self) -> u64 {
        self.own_revision
    }

    /// Digits after the point at which this node stops extending.
    pub fn target_digits(&self) -> usize {
        self.config.max_len.saturating_sub(2)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current token: `(len(data), author, revision)`, counting digits
    /// handed with it that are still being checked.
    pub fn token(&self) -> Token {
        Token::new(self.progress(), &self.token_author, self.token_revision)
    }

    /// The token's progress: the expansion, or the digits handed with the
    /// token while they are checked.
    fn progress(&self) -> usize {
        self.claim.as_ref().map_or(0, Unchecked::len).max(self.expansion.len())
    }

    /// The candidate used while searching: `(len(data), own id, own revision + 1)`.
    pub fn candidate(&self) -> Token {
        Token::new(self.expansion.len(), &self.config.id, self.own_revision + 1)
    }

    /// Hand-offs of the current token since it was generated.
    pub fn hops(&self) -> u64 {
        self.hops
    }

    /// The pacing a TAKE_TOKEN sent at `now` carries to the next holder.
    pub fn pacing(&self, now: Time) -> Pacing {
        let ago = |at: Option<Time>| at.map(|at| now.saturating_sub(at).as_micros() as u64);
        Pacing {
            announced_us_ago: ago(self.announced.map(|a| a.at)),
            announced_progress: self.announced.map(|a| a.progress),
            reported_us_ago: ago(self.reported_at),
            hops: Some(self.hops),
        }
    }

    /// Handle one input at time `now`; returns what the node must do.
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Output> {
        self.now = now;
        match input {
            Input::Start => self.start(),
            Input::Received(envelope) => self.on_message(envelope),
            Input::Timer(timer) => {
                if self.timers[timer.kind.index()] == Some(timer.seq) {
                    self.timers[timer.kind.index()] = None;
                    self.on_timer(timer.kind);
                } else {
                    log::trace!("{}: ignoring stale timer {timer:?}", self.config.id);
                }
            }
            Input::Computed { epoch, expansion, checked } => {
                if epoch == self.epoch {
                    self.owner_on_computed(expansion, checked);
                }
            }
            Input::Passed { epoch, to } => {
                if epoch == self.epoch {
                    self.owner_on_passed(to);
                }
            }
            Input::Stop => self.owner_on_stop(),
        }
        std::mem::take(&mut self.out)
    }

    /// Start-up: broadcast PING three times and enter LOOSER.
    fn start(&mut self) {
        if self.behaviour != Behaviour::Idle {
            return;
        }
        for _ in 0..3 {
            self.broadcast(Body::Ping);
        }
        self.enter(Behaviour::Looser);
    }

    fn on_message(&mut self, envelope: Envelope) {
        let Envelope { message, from, unchecked } = envelope;
        if message.author == self.config.id {
            return; // section 6, step 1 (the registry filters these too)
        }
        self.handed = unchecked;
        // Claims are taken at face value, whatever their progress: a
        // heartbeat is evidence that a token lives even when it claims more
        // than this ring computes (the older implementation counts
        // characters that are not pi, PROTOCOL section 9).
        if let Body::TokenIsHere { token } = &message.body {
            let heard = Announcement { progress: token.progress, at: self.now };
            self.heard_announcement = Some((token.author_node_id.clone(), token.author_token_revision, heard));
        }
        match self.behaviour {
            Behaviour::Idle => {}
            Behaviour::Owner(_) => self.owner_on_message(message, from),
            Behaviour::Waiter => self.waiter_on_message(message, from),
            Behaviour::Looser => self.looser_on_message(message, from),
            Behaviour::Generating => self.generating_on_message(message, from),
        }
        self.handed = None;
    }

    fn on_timer(&mut self, kind: TimerKind) {
        match (&self.behaviour, kind) {
            (Behaviour::Owner(_), TimerKind::Heartbeat | TimerKind::Hold) => self.owner_on_timer(kind),
            (Behaviour::Waiter, TimerKind::Waiter) => self.waiter_on_timer(),
            (Behaviour::Looser, TimerKind::LooserAsk | TimerKind::LooserAnswer) => self.looser_on_timer(kind),
            (Behaviour::Generating, TimerKind::Generating) => self.generating_on_timer(),
            // Timers are disarmed on every transition, so another state's
            // timer cannot be live here.
            (behaviour, kind) => {
                log::warn!("{}: {kind:?} timer fired in {behaviour:?}", self.config.id)
            }
        }
    }

    // ----- OWNER -------------------------------------------------------

    /// On entry: broadcast TOKEN_IS_HERE, start the digit computation and
    /// the `heartbeat` timer (and the minimum holding time).
    ///
    /// pi-ring paces the heartbeat per token rather than per holding: when
    /// the previous holder announced this token less than a `heartbeat`
    /// ago (TAKE_TOKEN's pacing says when), the entry's broadcast waits
    /// for the rest of the period. A fast ring thus broadcasts one
    /// TOKEN_IS_HERE per period, not one per pass, and waiters still hear
    /// one every period.
    fn owner_on_entry(&mut self) {
        let heartbeat = self.config.timing.heartbeat;
        // The last announcement of this token: the one we heard, unless
        // TAKE_TOKEN tells of a later one (its datagram is still on the way).
        // TAKE_TOKEN's age misses the hand-offs' time in transit, so a
        // heard announcement is the better clock.
        // (Once the target is reached every announcement tells the same
        // progress, and the heard one may be older: then the entry announces
        // early, but holdings last a heartbeat there anyway.)
        if let Some((author, revision, heard)) = self.heard_announcement.clone() {
            if self.is_our_token(&author, revision) {
                self.announced = match self.announced {
                    Some(told) if told.progress > heard.progress => Some(told),
                    _ => Some(heard),
                };
            }
        }
        let due = self.announced.map_or(Duration::ZERO, |a| (a.at + heartbeat).saturating_sub(self.now));
        if due.is_zero() {
            self.broadcast_token_is_here();
            self.arm(TimerKind::Heartbeat, heartbeat);
        } else {
            self.arm(TimerKind::Heartbeat, due);
        }
        self.begin_holding();
    }

    fn begin_holding(&mut self) {
        let mut holding = Holding::default();
        let target = extended_len(self.progress()).min(self.config.max_len);
        if target > self.expansion.len() {
            self.out.push(Output::Compute { epoch: self.epoch, len: target, check: self.claim.clone() });
        } else {
            holding.computed = true; // target reached: nothing to extend
            if !self.said_target_reached {
                self.said_target_reached = true;
                log::info!(
                    "{}: the target of {} digits is reached; the token keeps going round (at most once per \
                     heartbeat) without new digits",
                    self.config.id,
                    self.target_digits()
                );
            }
        }
        // Once the target is reached the token still travels, but no faster
        // than the heartbeat, so an idle ring does not spin.
        let hold = if holding.computed {
            self.config.timing.hold.max(self.config.timing.heartbeat)
        } else {
            self.config.timing.hold
        };
        if hold.is_zero() {
            holding.held = true;
        } else {
            self.arm(TimerKind::Hold, hold);
        }
        self.behaviour = Behaviour::Owner(holding);
        self.pass_if_ready();
    }

    fn owner_on_message(&mut self, message: Message, from: Ipv4Addr) {
        let sender = message.author;
        match message.body {
            Body::TokenIsHere { token } => {
                if self.is_late_heartbeat_of_our_predecessor(&token, &sender) {
                    log::debug!("{}: late heartbeat {token} from {sender}, who handed us this token", self.config.id);
                } else if self.beats_ours(&token, &sender) {
                    // A better token exists: yield to it. Our own token
                    // further on is usually our hand-off, taken before we
                    // heard that it was (a fast ring): no news for the log.
                    if self.is_our_token(&token.author_node_id, token.author_token_revision) {
                        log::debug!("{}: our token went on: {token} held by {sender}", self.config.id);
                    } else {
                        log::info!("{}: yielding to better token {token} held by {sender}", self.config.id);
                    }
                    self.send(from, Body::Ping);
                    self.enter(Behaviour::Waiter);
                } else {
                    // Ours is better: tell the other holder, and everyone.
                    // A worse progress of our own token is usually the late
                    // heartbeat of an earlier holder (UDP is slower than the
                    // hand-offs since); if that holder still holds, the
                    // answer makes it yield, and everyone else has heard
                    // our token already.
                    let ours = Body::TokenIsHere { token: self.token() };
                    self.send(from, ours);
                    if !self.is_our_token(&token.author_node_id, token.author_token_revision) {
                        self.announce_in_answer();
                    }
                }
            }
            Body::WhereIsToken => {
                self.send(from, Body::TokenIsHere { token: self.token() });
            }
            Body::GeneratingToken { .. } => {
                self.send(from, Body::TokenIsHere { token: self.token() });
                self.announce_in_answer();
            }
            Body::TakeToken { token, data, .. } => {
                // Two tokens met: keep the better token and the longer
                // expansion; stay OWNER.
                let theirs = Token::new(self.handed_len(&data), &token.author_node_id, token.author_token_revision);
                log::info!("{}: token {theirs} from {sender} met ours {}; merging", self.config.id, self.token());
                if self.handed.is_some() {
                    // This holding's computation is under way: the digits
                    // we have not checked stay with the node that sent them.
                    log::info!(
                        "{}: keeping the {} checked characters of {sender}'s expansion",
                        self.config.id,
                        data.len()
                    );
                }
                self.handed_by.insert(sender);
                if let Behaviour::Owner(holding) = &mut self.behaviour {
                    holding.handed_back |= holding.passing;
                }
                if theirs.is_better_than(&self.token()) {
                    self.token_author = theirs.author_node_id;
                    self.token_revision = theirs.author_token_revision;
                }
                self.adopt_longer(data);
            }
            Body::Ping | Body::TokenWasHereRecently | Body::MyState(_) => {}
        }
    }

    fn owner_on_timer(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Heartbeat => {
                self.broadcast_token_is_here();
                self.arm(TimerKind::Heartbeat, self.config.timing.heartbeat);
            }
            TimerKind::Hold => {
                if let Behaviour::Owner(holding) = &mut self.behaviour {
                    holding.held = true;
                }
                self.pass_if_ready();
            }
            _ => {}
        }
    }

    /// The extension is computed: adopt it and pass the token when the
    /// minimum holding time is over. A failed computation passes the token
    /// on without new digits: the next holder computes them.
    fn owner_on_computed(&mut self, mut expansion: Option<Expansion>, checked: Option<Expansion>) {
        let Behaviour::Owner(holding) = &mut self.behaviour else {
            return;
        };
        if holding.computed {
            return;
        }
        holding.computed = true;
        if let Some(claim) = self.claim.take() {
            // The digits handed with the token are checked: keep the
            // correct ones, and extend from there (PROTOCOL section 4).
            let correct = checked.as_ref().map_or(0, Expansion::len);
            if correct < claim.len() {
                log::warn!(
                    "{}: the token's expansion was pi only for its first {correct} of {} characters; \
                     continuing from there",
                    self.config.id,
                    claim.len()
                );
            }
            if let Some(checked) = checked {
                self.adopt_longer(checked);
            }
            let next = extended_len(self.expansion.len()).min(self.config.max_len);
            expansion = expansion.map(|e| e.prefix(next));
        }
        match expansion {
            Some(expansion) => self.adopt_longer(expansion),
            None => log::error!("{}: the digit computation failed; passing the token on as it is", self.config.id),
        }
        self.pass_if_ready();
    }

    /// A planned stop: a holder passes the token now, with what it has,
    /// without waiting for its computation or its minimum holding time.
    fn owner_on_stop(&mut self) {
        if let Behaviour::Owner(holding) = &mut self.behaviour {
            holding.computed = true;
            holding.held = true;
            self.pass_if_ready();
        }
    }

    fn pass_if_ready(&mut self) {
        let Behaviour::Owner(holding) = &mut self.behaviour else {
            return;
        };
        if holding.computed && holding.held && !holding.passing {
            holding.passing = true;
            if self.claim.take().is_some() {
                // A planned stop before the check finished: hand on what
                // is checked; the sender still has the rest.
                log::info!("{}: handing the token on with the digits checked so far", self.config.id);
            }
            // A heartbeat due during the hand-off goes out now, so that
            // TAKE_TOKEN tells the next holder about it; otherwise both
            // would broadcast one.
            let heartbeat = self.config.timing.heartbeat;
            if self.announced.is_none_or(|a| self.now.saturating_sub(a.at) + heartbeat / 4 >= heartbeat) {
                self.broadcast_token_is_here();
                self.arm(TimerKind::Heartbeat, heartbeat);
            }
            self.out.push(Output::PassToken { epoch: self.epoch, token: self.token(), data: self.expansion.clone() });
        }
    }

    /// The hand-off finished: delivered means WAITER; nobody reachable
    /// means keep the token and compute again.
    fn owner_on_passed(&mut self, to: Option<NodeId>) {
        if !matches!(self.behaviour, Behaviour::Owner(Holding { passing: true, .. })) {
            return;
        }
        let handed_back = matches!(self.behaviour, Behaviour::Owner(Holding { handed_back: true, .. }));
        match to {
            Some(next) if handed_back => {
                // Our send was acknowledged after the token came back: it is
                // ours again (leaving for WAITER would lose it).
                log::debug!("{}: passed token to {next}, and it came back meanwhile; holding it", self.config.id);
                self.begin_holding();
            }
            Some(next) => {
                log::debug!("{}: passed token {} to {next}", self.config.id, self.token());
                self.passed_on = true;
                self.enter(Behaviour::Waiter);
            }
            None => {
                log::debug!("{}: no other node reachable; keeping the token", self.config.id);
                self.begin_holding();
            }
        }
    }

    // ----- WAITER ------------------------------------------------------

    fn waiter_on_entry(&mut self) {
        self.arm(TimerKind::Waiter, self.config.timing.waiter);
    }

    fn waiter_on_message(&mut self, message: Message, from: Ipv4Addr) {
        match message.body {
            Body::TokenIsHere { .. } => self.arm(TimerKind::Waiter, self.config.timing.waiter),
            Body::TakeToken { token, data, pacing, .. } => {
                self.take_token(&message.author, token, data, pacing);
                self.enter_owner();
            }
            Body::WhereIsToken => self.send(from, Body::TokenWasHereRecently),
            Body::Ping | Body::GeneratingToken { .. } | Body::TokenWasHereRecently | Body::MyState(_) => {}
        }
    }

    /// `waiter` fired: the token is lost.
    fn waiter_on_timer(&mut self) {
        log::info!("{}: no heartbeat for {:?}; the token is lost", self.config.id, self.config.timing.waiter);
        self.enter(Behaviour::Looser);
    }

    // ----- LOOSER ------------------------------------------------------

    fn looser_on_entry(&mut self) {
        self.broadcast(Body::WhereIsToken);
        self.arm(TimerKind::LooserAsk, self.config.timing.looser_ask);
        self.arm(TimerKind::LooserAnswer, self.config.timing.looser_answer);
    }

    fn looser_on_message(&mut self, message: Message, _from: Ipv4Addr) {
        let sender = message.author;
        match message.body {
            Body::TokenWasHereRecently => {
                self.arm(TimerKind::LooserAsk, self.config.timing.looser_ask);
                self.arm(TimerKind::LooserAnswer, self.config.timing.looser_answer);
            }
            Body::TokenIsHere { .. } => self.enter(Behaviour::Waiter),
            Body::TakeToken { token, data, pacing, .. } => {
                self.take_token(&sender, token, data, pacing);
                self.enter_owner();
            }
            Body::GeneratingToken { token } => {
                if token.is_better_than(&self.candidate()) {
                    // A better candidate is being generated elsewhere: stay,
                    // and remember it.
                    self.better_claim_at = Some(self.now);
                } else if self.better_claim_is_recent() {
                    // Someone better is generating; the older implementation
                    // does not answer worse claims, so claiming now would
                    // make a second token.
                    log::debug!("{}: not claiming against {token}: a better claim is pending", self.config.id);
                } else {
                    self.enter(Behaviour::Generating);
                }
            }
            Body::Ping | Body::WhereIsToken | Body::MyState(_) => {}
        }
    }

    fn looser_on_timer(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::LooserAsk => {
                self.broadcast(Body::WhereIsToken);
                self.arm(TimerKind::LooserAsk, self.config.timing.looser_ask);
            }
            TimerKind::LooserAnswer if self.better_claim_is_recent() => {
                // Someone better is generating (and the older implementation
                // would not answer our worse claim): wait for its token.
                log::debug!("{}: a better claim is pending; waiting for its token", self.config.id);
                self.arm(TimerKind::LooserAnswer, self.config.timing.looser_answer);
            }
            TimerKind::LooserAnswer => {
                log::info!("{}: nobody answered WHERE_IS_TOKEN; claiming the token", self.config.id);
                self.enter(Behaviour::Generating);
            }
            _ => {}
        }
    }

    // ----- GENERATING --------------------------------------------------

    fn generating_on_entry(&mut self) {
        self.broadcast(Body::GeneratingToken { token: self.candidate() });
        self.arm(TimerKind::Generating, self.config.timing.generating);
    }

    fn generating_on_message(&mut self, message: Message, from: Ipv4Addr) {
        match message.body {
            Body::TokenIsHere { token } => {
                if token.is_better_than(&self.candidate()) {
                    log::info!(
                        "{}: {} holds {token}, better than our claim; waiting for it",
                        self.config.id,
                        message.author
                    );
                    self.enter(Behaviour::Waiter);
                }
            }
            Body::GeneratingToken { token } => {
                if token.is_better_than(&self.candidate()) {
                    log::info!(
                        "{}: {} claims a better token ({} digits, then the greater id); searching again",
                        self.config.id,
                        message.author,
                        token.progress.saturating_sub(2)
                    );
                    self.better_claim_at = Some(self.now);
                    self.enter(Behaviour::Looser);
                } else {
                    self.send(from, Body::GeneratingToken { token: self.candidate() });
                }
            }
            Body::TakeToken { token, data, pacing, .. } => {
                // The better of our candidate and the received token, with
                // the longer expansion.
                let theirs = Token::new(self.handed_len(&data), &token.author_node_id, token.author_token_revision);
                if self.candidate().is_better_than(&theirs) {
                    self.generate_token();
                    self.adopt_handed(data);
                    self.handed_by.insert(message.author);
                } else {
                    self.take_token(&message.author, token, data, pacing);
                }
                self.enter_owner();
            }
            Body::Ping | Body::WhereIsToken | Body::TokenWasHereRecently | Body::MyState(_) => {}
        }
    }

    /// `generating` fired: nobody better claimed; our candidate becomes
    /// the token.
    fn generating_on_timer(&mut self) {
        self.generate_token();
        log::info!("{}: generated token {}", self.config.id, self.token());
        self.enter_owner();
    }

    // ----- shared helpers ----------------------------------------------

    /// Take a token `sender` handed us with TAKE_TOKEN, keeping the longer
    /// expansion.
    fn take_token(&mut self, sender: &str, token: Token, data: Expansion, pacing: Pacing) {
        self.token_author = token.author_node_id;
        self.token_revision = token.author_token_revision;
        self.handed_by = BTreeSet::from([sender.to_owned()]);
        self.adopt_handed(data);
        let at = |us: Option<u64>| us.and_then(|us| self.now.checked_sub(Duration::from_micros(us)));
        self.announced =
            at(pacing.announced_us_ago).map(|at| Announcement { progress: pacing.announced_progress.unwrap_or(0), at });
        self.reported_at = at(pacing.reported_us_ago);
        self.hops = pacing.hops.map_or(0, |h| h.saturating_add(1));
    }

    fn generate_token(&mut self) {
        self.own_revision += 1;
        self.token_author = self.config.id.clone();
        self.token_revision = self.own_revision;
        self.handed_by.clear();
        self.announced = None;
        self.reported_at = None;
        self.hops = 0;
    }

    /// Whether a candidate better than ours was claimed within the last
    /// `generating` period.
    fn better_claim_is_recent(&self) -> bool {
        self.better_claim_at.is_some_and(|at| self.now.saturating_sub(at) < self.config.timing.generating)
    }

    /// The progress of an expansion handed with TAKE_TOKEN: its checked
    /// part, or the digits still to check.
    fn handed_len(&self, data: &Expansion) -> usize {
        self.handed.as_ref().map_or(0, Unchecked::len).max(data.len())
    }

    /// Keep the longer of our expansion and one handed with TAKE_TOKEN,
    /// and the digits handed beyond it, to check while holding.
    fn adopt_handed(&mut self, data: Expansion) {
        self.adopt_longer(data);
        self.claim = self.handed.take().filter(|claim| claim.len() > self.expansion.len());
    }

    fn adopt_longer(&mut self, other: Expansion) {
        let ours = std::mem::replace(&mut self.expansion, Expansion::empty());
        self.expansion = ours.longer(other);
    }

    /// Whether a TOKEN_IS_HERE is the last heartbeat of a node that handed
    /// us this very token (same author and revision), sent before the
    /// hand-off and delivered after it: UDP and TCP are not ordered with
    /// each other. Its progress does not matter: ours may be the same (the
    /// target is reached, or the holding added nothing yet), or smaller
    /// (the older implementation counts characters that are not pi, and we
    /// kept only the correct prefix).
    fn is_late_heartbeat_of_our_predecessor(&self, token: &Token, holder: &str) -> bool {
        self.handed_by.contains(holder) && self.is_our_token(&token.author_node_id, token.author_token_revision)
    }

    /// Whether a token announced by `holder` beats ours. Equal tokens at
    /// two live holders (a hand-off that arrived although its sender saw it
    /// fail, then retried elsewhere) are broken by the holder's id, so
    /// exactly one of them keeps it.
    fn beats_ours(&self, token: &Token, holder: &str) -> bool {
        let ours = self.token();
        token.is_better_than(&ours) || (*token == ours && holder > self.config.id.as_str())
    }

    /// Whether a token of `author` and `revision` is our current token
    /// (whatever its progress).
    fn is_our_token(&self, author: &str, revision: u64) -> bool {
        author == self.token_author && revision == self.token_revision
    }

    fn enter_owner(&mut self) {
        self.enter(Behaviour::Owner(Holding::default()));
    }

    /// Leave the current state (disarming its timers) and enter `next`.
    fn enter(&mut self, next: Behaviour) {
        let old = self.behaviour.name();
        for kind in TimerKind::ALL {
            if self.timers[kind.index()].take().is_some() {
                self.out.push(Output::CancelTimer(kind));
            }
        }
        self.epoch += 1;
        let passed_on = std::mem::take(&mut self.passed_on);
        self.behaviour = next;
        let new = self.behaviour.name();
        let token = if new == StateName::Generating { self.candidate() } else { self.token() };
        let routine = self.is_routine(old, new, passed_on);
        if new == StateName::Owner && !routine {
            self.reported_at = Some(self.now);
        }
        if new != StateName::Owner {
            // Digits being checked belong to a holding; leaving it (for a
            // better token) leaves them.
            self.claim = None;
        }
        let progress = self.progress();
        self.out.push(Output::StateChanged { old, new, token, progress, routine });
        match new {
            StateName::Owner => self.owner_on_entry(),
            StateName::Waiter => self.waiter_on_entry(),
            StateName::Looser => self.looser_on_entry(),
            StateName::Generating => self.generating_on_entry(),
            StateName::None => {}
        }
    }

    /// Whether a change is a routine hand-off that monitors need not hear
    /// of at once: taking the token by TAKE_TOKEN while another holder of
    /// it reported less than `report` ago, or leaving OWNER once it is
    /// passed on (the next holder, or its report, tells).
    fn is_routine(&self, old: StateName, new: StateName, passed_on: bool) -> bool {
        let every = self.config.timing.report;
        if every.is_zero() {
            return false;
        }
        match (old, new) {
            (StateName::Waiter | StateName::Looser, StateName::Owner) => {
                self.hops > 0 && self.reported_at.is_some_and(|at| self.now.saturating_sub(at) < every)
            }
            (StateName::Owner, StateName::Waiter) => passed_on,
            _ => false,
        }
    }

    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.timer_seq += 1;
        self.timers[kind.index()] = Some(self.timer_seq);
        self.out.push(Output::SetTimer { timer: TimerId { kind, seq: self.timer_seq }, after });
    }

    fn broadcast_token_is_here(&mut self) {
        let announcement = Announcement { progress: self.progress() as u64, at: self.now };
        self.announced = Some(announcement);
        self.heard_announcement = Some((self.token_author.clone(), self.token_revision, announcement));
        self.broadcast(Body::TokenIsHere { token: self.token() });
    }

    /// Broadcast TOKEN_IS_HERE in answer to a claim or a worse token,
    /// unless one went out less than a quarter heartbeat ago: everyone heard
    /// that one, and a flood of claims must not become a flood of
    /// broadcasts (PROTOCOL section 10, "Budgets").
    fn announce_in_answer(&mut self) {
        let recent = self.config.timing.heartbeat / 4;
        if self.announced.is_none_or(|a| self.now.saturating_sub(a.at) >= recent) {
            self.broadcast_token_is_here();
        }
    }

    fn broadcast(&mut self, body: Body) {
        self.out.push(Output::Broadcast(Message::new(&self.config.id, body)));
    }

    fn send(&mut self, to: Ipv4Addr, body: Body) {
        self.out.push(Output::Send { to, message: Message::new(&self.config.id, body) });
    }
}
