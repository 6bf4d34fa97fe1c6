//! One test per rule of PROTOCOL section 7 (and the parts of sections 2
//! and 6 the state machine applies), on the pure protocol core.

use pi_ring::error::SendError;
use pi_ring::pi::{Expansion, PiDigits, Unchecked};
use pi_ring::protocol::machine::{Config, TimerId, TimerKind, Timing};
use pi_ring::protocol::message::Pacing;
use pi_ring::protocol::{Action, Body, Input, Message, Node, Nodes, StateName, Time, Token, Via};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

const ME: &str = "n5";
const ME_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

fn pi() -> &'static PiDigits {
    static PI: OnceLock<PiDigits> = OnceLock::new();
    PI.get_or_init(|| PiDigits::new(100_000))
}

fn expansion(len: usize) -> Expansion {
    pi().expansion(len)
}

/// The protocol's default timeouts (PROTOCOL section 7), no holding time.
fn timing() -> Timing {
    Timing::default()
}

/// A node plus what it last asked for, on a clock the test moves.
struct Probe {
    node: Node,
    now: Time,
    out: Vec<Action>,
    timers: Vec<TimerId>,
    /// The last computation asked for, whatever came since.
    computing: Option<(u64, usize, Option<Unchecked>)>,
}

impl Probe {
    /// A node whose pi cache has computed ahead, as a running node's has:
    /// it knows the digits handed to it without computing (section 4).
    fn with(timing: Timing, max_len: usize) -> Self {
        Probe::starting_from(timing, max_len, expansion(10_000).prefix(0))
    }

    fn starting_from(timing: Timing, max_len: usize, start: Expansion) -> Self {
        let node = Node::new(Config { id: ME.into(), timing, max_len }, ME_HOST, start, 0);
        Probe { node, now: Time::from_secs(1000), out: Vec::new(), timers: Vec::new(), computing: None }
    }

    /// A node in WAITER that has computed no digits at all: what it is
    /// handed, it must check.
    fn cold_waiter() -> Self {
        let mut n = Probe::starting_from(timing(), 1_000_000, Expansion::empty());
        n.input(Input::Start);
        n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
        n
    }

    /// A started node: in LOOSER.
    fn looser() -> Self {
        let mut n = Probe::with(timing(), 1_000_000);
        n.input(Input::Start);
        n
    }

    /// A node in WAITER (heard TOKEN_IS_HERE while searching).
    fn waiter() -> Self {
        let mut n = Probe::looser();
        n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
        assert_eq!(n.state(), StateName::Waiter);
        n
    }

    /// A node in GENERATING (nobody answered).
    fn generating() -> Self {
        let mut n = Probe::looser();
        n.fire(TimerKind::LooserAnswer);
        assert_eq!(n.state(), StateName::Generating);
        n
    }

    /// A node in OWNER that received the token with an expansion of `len`
    /// (a heartbeat period after the token was last announced).
    fn owner_with(len: usize) -> Self {
        let mut n = Probe::waiter();
        n.advance(Duration::from_millis(500));
        n.receive("n1", take_token(Token::new(len, "n1", 1), len));
        assert_eq!(n.state(), StateName::Owner);
        n
    }

    fn input(&mut self, input: Input) {
        self.out = self.node.handle(self.now, input);
        let started = self.out.iter().find_map(|o| match o {
            Action::Compute { epoch, len, check } => Some((*epoch, *len, check.clone())),
            _ => None,
        });
        if let Some(compute) = started {
            self.computing = Some(compute);
        }
        for o in &self.out {
            match o {
                Action::SetTimer { timer, .. } => {
                    self.timers.retain(|t| t.kind != timer.kind);
                    self.timers.push(*timer);
                }
                Action::CancelTimer(kind) => self.timers.retain(|t| t.kind != *kind),
                _ => {}
            }
        }
    }

    /// Move the clock.
    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Receive a message from `author`, who is already a known member (so
    /// the output is the state's answer alone, without section 6's PING to
    /// newcomers; see `section_6_*` for that).
    fn receive(&mut self, author: &str, body: Body) {
        if author != ME && !self.node.members(self.now).iter().any(|m| m.id == author) {
            let hello = Message::new(author, Body::Ping);
            self.input(Input::Received { message: hello.into_raw(), from: PEER, via: Via::Tcp });
            self.prove_probed();
            self.input(Input::Probed { id: author.into(), host: PEER, asked: self.now, result: Ok(()) });
        }
        self.receive_new(author, body);
        self.prove_probed();
    }

    /// The PINGs the node sent to prove members' ports: report them all
    /// delivered (the output stays that of the last input before).
    fn prove_probed(&mut self) {
        let out = self.out.clone();
        for action in &out {
            if let Action::Probe { id, to, asked, .. } = action {
                let probed = Input::Probed { id: id.clone(), host: *to, asked: *asked, result: Ok(()) };
                let actions = self.node.handle(self.now, probed);
                assert!(actions.iter().all(|a| matches!(a, Action::Members(_) | Action::Probe { .. })), "{actions:?}");
            }
        }
        self.out = out;
    }

    /// The PINGs sent to prove members' TCP ports.
    fn probes(&self) -> Vec<(Ipv4Addr, &str)> {
        self.out
            .iter()
            .filter_map(|o| if let Action::Probe { to, id, .. } = o { Some((*to, id.as_str())) } else { None })
            .collect()
    }

    /// Receive a message from `author` at its own `host`; a newcomer is
    /// PINGed back and its PING goes through.
    fn receive_at(&mut self, author: &str, host: Ipv4Addr, body: Body) {
        let via = if matches!(body, Body::TakeToken { .. }) { Via::Tcp } else { Via::Udp };
        self.input(Input::Received { message: Message::new(author, body).into_raw(), from: host, via });
        self.prove_probed();
    }

    /// Receive a message by its natural path, without introducing `author`.
    fn receive_new(&mut self, author: &str, body: Body) {
        let via = if matches!(body, Body::TakeToken { .. }) { Via::Tcp } else { Via::Udp };
        self.input(Input::Received { message: Message::new(author, body).into_raw(), from: PEER, via });
    }

    /// Fire the most recently armed timer of `kind`.
    fn fire(&mut self, kind: TimerKind) {
        let timer = *self.timers.iter().find(|t| t.kind == kind).unwrap_or_else(|| panic!("no {kind:?} timer armed"));
        self.input(Input::Timer(timer));
    }

    fn state(&self) -> StateName {
        self.node.state()
    }

    fn broadcasts(&self) -> Vec<&Body> {
        self.out.iter().filter_map(|o| if let Action::Broadcast(m) = o { Some(&m.body) } else { None }).collect()
    }

    fn sends(&self) -> Vec<(Ipv4Addr, &Body)> {
        self.out
            .iter()
            .filter_map(|o| if let Action::Send { to, message } = o { Some((*to, &message.body)) } else { None })
            .collect()
    }

    fn armed(&self) -> Vec<(TimerKind, Duration)> {
        self.out
            .iter()
            .filter_map(|o| if let Action::SetTimer { timer, after } = o { Some((timer.kind, *after)) } else { None })
            .collect()
    }

    fn compute(&self) -> Option<(u64, usize)> {
        self.out
            .iter()
            .find_map(|o| if let Action::Compute { epoch, len, .. } = o { Some((*epoch, *len)) } else { None })
    }

    /// The TAKE_TOKEN the node sends: (attempt, to, token, data).
    fn pass(&self) -> Option<(u64, String, Token, Expansion)> {
        self.out.iter().find_map(|o| match o {
            Action::SendToken {
                attempt,
                to,
                message: Message { body: Body::TakeToken { token, data, .. }, .. },
                ..
            } => Some((*attempt, to.clone(), token.clone(), data.clone())),
            _ => None,
        })
    }

    /// Report the pending TAKE_TOKEN as delivered.
    fn pass_delivered(&mut self) {
        let (attempt, ..) = self.pass().expect("a TAKE_TOKEN is being sent");
        self.input(Input::TokenSent { attempt, result: Ok(()) });
    }

    /// Report the pending TAKE_TOKEN as failed (connect timed out).
    fn pass_failed(&mut self) {
        let (attempt, ..) = self.pass().expect("a TAKE_TOKEN is being sent");
        let addr = std::net::SocketAddrV4::new(PEER, 8239);
        self.input(Input::TokenSent { attempt, result: Err(SendError::ConnectTimeout { addr }) });
    }

    /// Complete the pending computation.
    fn finish_compute(&mut self) {
        let (epoch, len, check) = self.computing.take().expect("a computation was started");
        let checked = check.map(|digits| pi().verify_unchecked(&digits).expansion);
        self.input(Input::Computed { epoch, expansion: Some(expansion(len)), checked });
    }
}

/// TAKE_TOKEN as the older implementation sends it: no pacing.
fn take_token(token: Token, len: usize) -> Body {
    take_token_paced(token, len, Pacing::default())
}

fn take_token_paced(token: Token, len: usize, pacing: Pacing) -> Body {
    let nodes: Nodes = [("n1".to_string(), "127.0.0.9".to_string())].into_iter().collect();
    Body::TakeToken { token, nodes, data: expansion(len), pacing, data_from: None }
}

/// Pacing that tells of an announcement at `progress`, `ms_ago`.
fn announced(ms_ago: u64, progress: u64) -> Pacing {
    Pacing { announced_us_ago: Some(ms_ago * 1000), announced_progress: Some(progress), ..Pacing::default() }
}

fn is_token_is_here(body: &Body) -> bool {
    matches!(body, Body::TokenIsHere { .. })
}

// ----- start-up ------------------------------------------------------------

#[test]
fn start_up_broadcasts_ping_three_times_and_enters_looser() {
    let mut n = Probe::with(timing(), 1000);
    n.input(Input::Start);
    let pings = n.broadcasts().iter().filter(|b| matches!(b, Body::Ping)).count();
    assert_eq!(pings, 3);
    assert_eq!(n.state(), StateName::Looser);
}

// ----- OWNER ---------------------------------------------------------------

#[test]
fn owner_on_entry_broadcasts_token_is_here_starts_computation_and_heartbeat() {
    let n = Probe::owner_with(42);
    assert!(n.broadcasts().iter().any(|b| matches!(b, Body::TokenIsHere { token } if token.progress == 42)));
    assert_eq!(n.compute().map(|c| c.1), Some(62), "20 more digits");
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(500))));
}

#[test]
fn owner_heartbeat_fires_broadcasts_token_is_here_and_restarts_the_timer() {
    let mut n = Probe::owner_with(42);
    n.fire(TimerKind::Heartbeat);
    assert_eq!(n.broadcasts().len(), 1);
    assert!(is_token_is_here(n.broadcasts()[0]));
    assert_eq!(n.armed(), vec![(TimerKind::Heartbeat, Duration::from_millis(500))]);
}

#[test]
fn owner_computation_done_sends_take_token_with_current_token_and_data() {
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    let (_, to, token, data) = n.pass().expect("TAKE_TOKEN is sent");
    assert_eq!(to, "n1", "the only other member");
    assert_eq!(data.len(), 62);
    assert_eq!(token, Token::new(62, "n1", 1), "progress is the data's length; author and revision are kept");
}

/// TAKE_TOKEN as a node that has computed none of its digits gets it: the
/// checked part (just `3,`) and the rest to check.
/// TAKE_TOKEN with `len` characters of pi, whole.
fn handed(len: usize) -> Body {
    let nodes: Nodes = [("n1".to_string(), "127.0.0.9".to_string())].into_iter().collect();
    Body::TakeToken {
        token: Token::new(len, "n1", 1),
        nodes,
        data: expansion(len),
        pacing: Pacing::default(),
        data_from: None,
    }
}

#[test]
fn digits_handed_beyond_what_the_node_computed_are_checked_while_it_holds_the_token() {
    let mut n = Probe::cold_waiter();
    n.advance(Duration::from_millis(500));
    n.input(Input::Received { message: Message::new("n1", handed(442)).into_raw(), from: PEER, via: Via::Tcp });
    // The token is taken at once, and announced with the digits handed.
    assert_eq!(n.state(), StateName::Owner);
    assert!(n.broadcasts().iter().any(|b| matches!(b, Body::TokenIsHere { token } if token.progress == 442)));
    // The check and the extension are one computation, while holding.
    let check = n.out.iter().find_map(|o| match o {
        Action::Compute { len, check: Some(check), .. } => Some((*len, check.clone())),
        _ => None,
    });
    let (len, unchecked) = check.expect("a computation that checks");
    assert_eq!((len, unchecked.offset(), unchecked.len()), (462, 0, 442));
    assert_eq!(unchecked.as_str(), expansion(442).as_str(), "what is checked is what was handed");
    let (epoch, len) = n.compute().expect("computes");
    // Heartbeats go on while it computes.
    n.advance(Duration::from_millis(500));
    n.fire(TimerKind::Heartbeat);
    assert!(n.broadcasts().iter().any(|b| matches!(b, Body::TokenIsHere { token } if token.progress == 442)));
    let checked = Some(pi().verify_unchecked(&unchecked).expansion);
    n.input(Input::Computed { epoch, expansion: Some(expansion(len)), checked });
    let (_, _, token, data) = n.pass().expect("TAKE_TOKEN is sent");
    assert_eq!((token.progress, data.len()), (462, 462));
}

#[test]
fn digits_handed_that_are_not_all_pi_are_dropped_after_the_check_and_the_ring_goes_on_from_the_correct_ones() {
    let mut n = Probe::cold_waiter();
    n.input(Input::Received { message: Message::new("n1", handed(442)).into_raw(), from: PEER, via: Via::Tcp });
    let (epoch, len) = n.compute().expect("checks and computes");
    assert_eq!(len, 462);
    // The check found only the first 300 characters to be pi.
    n.input(Input::Computed { epoch, expansion: Some(expansion(len)), checked: Some(expansion(300)) });
    let (_, _, token, data) = n.pass().expect("TAKE_TOKEN is sent");
    assert_eq!((token.progress, data.len()), (320, 320), "20 digits after the correct ones");
}

#[test]
fn owner_hand_off_success_enters_waiter() {
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    n.pass_delivered();
    assert_eq!(n.state(), StateName::Waiter);
    assert_eq!(n.node.expansion().len(), 62);
}

#[test]
fn owner_hand_off_failure_with_nobody_reachable_keeps_the_token_and_computes_again() {
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    n.pass_failed();
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.compute().map(|c| c.1), Some(82));
    // n1 stays marked lost for `waiter`: the node goes on alone...
    n.finish_compute();
    assert!(n.pass().is_none());
    assert_eq!(n.compute().map(|c| c.1), Some(102));
    // ...and tries n1 again once the mark has expired.
    n.advance(Duration::from_millis(2000));
    n.finish_compute();
    assert_eq!(n.pass().map(|p| (p.1, p.3.len())), Some(("n1".to_string(), 102)));
}

#[test]
fn owner_token_is_here_with_better_token_replies_ping_and_enters_waiter() {
    let mut n = Probe::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(100, "n9", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::Ping)]);
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn owner_token_is_here_with_worse_token_replies_and_broadcasts_token_is_here() {
    let mut n = Probe::owner_with(42);
    n.advance(Duration::from_millis(125)); // a quarter heartbeat after it announced
    n.receive("n9", Body::TokenIsHere { token: Token::new(22, "n9", 1) });
    let sends = n.sends();
    assert_eq!(sends.len(), 1);
    assert!(sends[0].0 == PEER && is_token_is_here(sends[0].1));
    assert!(n.broadcasts().iter().any(|b| is_token_is_here(b)));
    assert_eq!(n.state(), StateName::Owner);
}

// ----- OWNER: one heartbeat per period for the whole ring (section 10) ----

#[test]
fn owner_entry_waits_when_the_token_was_announced_less_than_a_heartbeat_ago() {
    let mut n = Probe::waiter(); // heard (0, n1, r1) announced just now
    n.advance(Duration::from_millis(100));
    n.receive("n1", take_token(Token::new(22, "n1", 1), 22));
    assert_eq!(n.state(), StateName::Owner);
    assert!(!n.broadcasts().iter().any(|b| is_token_is_here(b)), "announced 100 ms ago: not yet");
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(400))), "the rest of the period");
    n.fire(TimerKind::Heartbeat);
    assert!(n.broadcasts().iter().any(|b| is_token_is_here(b)));
}

#[test]
fn take_token_tells_of_an_announcement_whose_datagram_has_not_arrived() {
    let mut n = Probe::waiter(); // heard progress 0 long ago
    n.advance(Duration::from_secs(1));
    let pacing = announced(100, 22);
    n.receive("n1", take_token_paced(Token::new(42, "n1", 1), 42, pacing));
    assert!(!n.broadcasts().iter().any(|b| is_token_is_here(b)));
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(400))));
}

#[test]
fn a_heard_announcement_outweighs_take_tokens_age_which_misses_the_transit_time() {
    // We heard the token announced at progress 22, 450 ms ago; TAKE_TOKEN
    // claims 100 ms for that same announcement (hand-offs spend time in
    // transit that no node can count). The heard time is the truth: 50 ms
    // are left. (Taking the later time made a 50-node ring announce once
    // every 4 s instead of every 0.5 s.)
    let mut n = Probe::looser();
    n.receive("n1", Body::TokenIsHere { token: Token::new(22, "n1", 1) });
    n.advance(Duration::from_millis(450));
    let pacing = announced(100, 22);
    n.receive("n1", take_token_paced(Token::new(62, "n1", 1), 62, pacing));
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(50))));
}

#[test]
fn an_announcement_heard_after_the_one_take_token_knows_of_counts() {
    // TAKE_TOKEN knows of the announcement at progress 22, 450 ms ago; we
    // heard a later one (progress 42) 100 ms ago: 400 ms are left.
    let mut n = Probe::looser();
    n.advance(Duration::from_millis(350));
    n.receive("n1", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    n.advance(Duration::from_millis(100));
    let pacing = announced(450, 22);
    n.receive("n1", take_token_paced(Token::new(62, "n1", 1), 62, pacing));
    assert!(!n.broadcasts().iter().any(|b| is_token_is_here(b)));
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(400))));
}

#[test]
fn a_token_without_pacing_is_announced_at_once() {
    // The older implementation's TAKE_TOKEN says nothing; nothing heard.
    let mut n = Probe::looser();
    n.receive("n1", take_token(Token::new(22, "n1", 1), 22));
    assert!(n.broadcasts().iter().any(|b| is_token_is_here(b)));
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(500))));
}

#[test]
fn a_heartbeat_due_during_the_hand_off_goes_out_before_it_and_take_token_says_so() {
    let mut n = Probe::waiter();
    n.advance(Duration::from_millis(100));
    let pacing = Pacing { hops: Some(7), ..Pacing::default() };
    n.receive("n1", take_token_paced(Token::new(22, "n1", 1), 22, pacing));
    assert!(!n.broadcasts().iter().any(|b| is_token_is_here(b)));
    // 350 ms later, the period ends within a quarter of a heartbeat.
    n.advance(Duration::from_millis(350));
    n.finish_compute();
    assert!(n.broadcasts().iter().any(|b| matches!(b, Body::TokenIsHere { token } if token.progress == 42)));
    let pacing = n.out.iter().find_map(|o| match o {
        Action::SendToken { message: Message { body: Body::TakeToken { pacing, .. }, .. }, .. } => Some(*pacing),
        _ => None,
    });
    let pacing = pacing.expect("TAKE_TOKEN sent");
    assert_eq!(pacing.announced_us_ago, Some(0));
    assert_eq!(pacing.announced_progress, Some(42));
    assert_eq!(pacing.hops, Some(8), "one more hand-off than we were told");
}

/// MY_STATE as the node decides it: (old, new, holdings, handed by,
/// handed to).
type Told = (StateName, StateName, u64, Option<String>, Option<String>);

fn reports(n: &Probe) -> Vec<Told> {
    n.out
        .iter()
        .filter_map(|o| match o {
            Action::Report(r) => Some((r.old, r.new, r.holdings, r.handed_by.clone(), r.handed_to.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn section_10_hand_offs_are_reported_coalesced_while_a_recent_report_stands() {
    use StateName::{Owner, Waiter};
    let by = |id: &str| Some(id.to_owned());
    let mut n = Probe::waiter();
    let recent = Pacing { reported_us_ago: Some(50_000), hops: Some(3), ..Pacing::default() };
    // The first holding since the start is news (back in the rotation),
    // with who handed the token.
    n.receive("n1", take_token_paced(Token::new(2, "n1", 1), 2, recent));
    assert_eq!(reports(&n), vec![(Waiter, Owner, 1, by("n1"), None)], "first holding");
    n.finish_compute();
    let (_, to, ..) = n.pass().expect("a hand-off");
    n.pass_delivered();
    // Handing on is routine: said later, coalesced, within a second.
    assert_eq!(reports(&n), vec![]);
    let due: Vec<Duration> = n.armed().into_iter().filter(|(k, _)| *k == TimerKind::Report).map(|(_, d)| d).collect();
    assert_eq!(due, vec![Duration::from_secs(1)], "one coalesced report, a second after the last");
    n.advance(Duration::from_millis(300));
    n.receive("n1", take_token_paced(Token::new(22, "n1", 1), 22, recent));
    assert_eq!(reports(&n), vec![], "a routine holding: the coalesced report is already due");
    n.finish_compute();
    n.pass_delivered();
    assert_eq!(reports(&n), vec![]);
    n.advance(Duration::from_millis(700));
    n.fire(TimerKind::Report);
    assert_eq!(reports(&n), vec![(Owner, Waiter, 2, None, Some(to.clone()))], "the state now, two holdings");
    // Nothing changed since: the next due report says nothing.
    n.receive("n1", take_token_paced(Token::new(42, "n1", 1), 42, recent));
    n.finish_compute();
    n.pass_delivered();
    n.advance(Duration::from_secs(1));
    n.fire(TimerKind::Report);
    assert_eq!(reports(&n), vec![(Waiter, Waiter, 3, None, Some(to))], "holdings changed, the state did not");
    let stale = Pacing { reported_us_ago: Some(150_000), hops: Some(3), ..Pacing::default() };
    n.receive("n1", take_token_paced(Token::new(82, "n1", 1), 82, stale));
    assert_eq!(reports(&n), vec![(Waiter, Owner, 4, by("n1"), None)], "report due");
    // Yielding to a better token is news, not routine.
    n.receive("n9", Body::TokenIsHere { token: Token::new(500, "n9", 1) });
    assert_eq!(reports(&n), vec![(Owner, Waiter, 4, None, None)]);
}

#[test]
fn a_report_at_once_replaces_the_coalesced_one_due() {
    let mut n = Probe::waiter();
    let recent = Pacing { reported_us_ago: Some(50_000), hops: Some(3), ..Pacing::default() };
    n.receive("n1", take_token_paced(Token::new(2, "n1", 1), 2, recent));
    n.finish_compute();
    n.pass_delivered();
    // A report at once (a better token while waiting is not news, but a
    // search is) overtakes the due one, which is cancelled.
    n.advance(Duration::from_millis(400));
    n.fire(TimerKind::Waiter);
    assert_eq!(reports(&n).len(), 1, "searching is said at once");
    assert!(n.out.contains(&Action::CancelTimer(TimerKind::Report)), "the coalesced report is cancelled");
}

#[test]
fn owner_answers_a_late_heartbeat_of_an_earlier_holder_of_its_token_without_broadcasting() {
    // (22, n1, r1) is our own token two hand-offs ago: its holder's
    // heartbeat was slower than the hand-offs since.
    let mut n = Probe::owner_with(62);
    n.receive("n7", Body::TokenIsHere { token: Token::new(22, "n1", 1) });
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.sends().len(), 1, "the sender hears our better token, in case it still holds");
    assert!(n.broadcasts().is_empty(), "everyone else has heard of our token already");
}

#[test]
fn owner_ignores_the_late_heartbeat_of_the_node_that_handed_it_the_token() {
    // n9 handed us (42, n3, r1) by TCP; its last heartbeat, broadcast
    // before the hand-off, arrives after it. It is not a second holder.
    let mut n = Probe::waiter();
    n.receive("n9", take_token(Token::new(42, "n3", 1), 42));
    assert_eq!(n.state(), StateName::Owner);
    n.receive("n9", Body::TokenIsHere { token: Token::new(42, "n3", 1) });
    assert_eq!(n.state(), StateName::Owner, "a stale heartbeat must not drop the only token");
    // The older implementation counts characters that are not pi, so its
    // late heartbeat can even claim more progress than we kept.
    n.receive("n9", Body::TokenIsHere { token: Token::new(43, "n3", 1) });
    assert_eq!(n.state(), StateName::Owner);
}

#[test]
fn owner_token_is_here_with_an_equal_token_from_another_holder_is_decided_by_holder_id() {
    // The same token at two live holders (a hand-off delivered although
    // its sender saw it fail): the higher holder id keeps it.
    let mut n = Probe::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter, "n9 > n5 keeps it");
    let mut n = Probe::owner_with(42);
    n.receive("n0", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(n.state(), StateName::Owner, "n0 < n5 yields");
}

#[test]
fn owner_where_is_token_replies_token_is_here() {
    let mut n = Probe::owner_with(42);
    n.receive("n9", Body::WhereIsToken);
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenIsHere { token: Token::new(42, "n1", 1) })]);
    assert!(n.broadcasts().is_empty());
}

#[test]
fn owner_generating_token_replies_and_broadcasts_token_is_here() {
    let mut n = Probe::owner_with(42);
    n.advance(Duration::from_millis(125)); // a quarter heartbeat after it announced
    n.receive("n9", Body::GeneratingToken { token: Token::new(500, "n9", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenIsHere { token: Token::new(42, "n1", 1) })]);
    assert_eq!(n.broadcasts().len(), 1);
    assert_eq!(n.state(), StateName::Owner);
}

#[test]
fn a_flood_of_claims_is_answered_within_the_budget_and_broadcast_about_once_a_quarter_heartbeat() {
    let mut n = Probe::owner_with(42);
    let (mut broadcasts, mut answers) = (0, 0);
    for _ in 0..100 {
        n.advance(Duration::from_millis(5));
        n.receive("n9", Body::GeneratingToken { token: Token::new(500, "n9", 1) });
        answers += n.sends().len();
        broadcasts += n.broadcasts().len();
    }
    // 500 ms of claims from one address: a burst of 16 answers, then 4 per
    // heartbeat period; announcements 125 ms apart at most.
    assert!((16..=24).contains(&answers), "{answers} answers to 100 claims");
    assert!((3..=5).contains(&broadcasts), "{broadcasts} broadcasts for 100 claims");
    // Another address is answered at once.
    n.input(Input::Received {
        message: Message::new("n8", Body::GeneratingToken { token: Token::new(500, "n8", 1) }).into_raw(),
        from: Ipv4Addr::new(127, 0, 0, 8),
        via: Via::Udp,
    });
    assert_eq!(n.sends().len(), 1);
}

#[test]
fn owner_take_token_keeps_the_better_token_and_the_longer_expansion() {
    // Received is better (longer): adopt its author, revision and data.
    let mut n = Probe::owner_with(42);
    n.receive("n7", take_token(Token::new(102, "n7", 4), 102));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(102, "n7", 4));
    // Received is worse: keep ours entirely.
    let mut n = Probe::owner_with(142);
    n.receive("n7", take_token(Token::new(102, "n9", 4), 102));
    assert_eq!(n.node.token(), Token::new(142, "n1", 1));
    // Progress is recomputed from the data, not trusted.
    let mut n = Probe::owner_with(42);
    n.receive("n7", take_token(Token::new(9_999, "n7", 4), 22));
    assert_eq!(n.node.token(), Token::new(42, "n1", 1));
}

#[test]
fn ping_and_token_was_here_recently_need_no_action_in_any_state() {
    for mut n in [Probe::owner_with(42), Probe::waiter(), Probe::looser(), Probe::generating()] {
        let before = n.state();
        n.receive("n9", Body::Ping);
        assert!(n.out.is_empty(), "{before}: PING");
        if before != StateName::Looser {
            n.receive("n9", Body::TokenWasHereRecently);
            assert!(n.out.is_empty(), "{before}: TOKEN_WAS_HERE_RECENTLY");
        }
        assert_eq!(n.state(), before);
    }
}

#[test]
fn owner_keeps_the_token_for_the_minimum_holding_time() {
    let mut n = Probe::with(Timing { hold: Duration::from_millis(300), ..timing() }, 1_000_000);
    n.input(Input::Start);
    n.receive("n1", take_token(Token::new(22, "n1", 1), 22));
    assert!(n.armed().contains(&(TimerKind::Hold, Duration::from_millis(300))));
    n.finish_compute();
    assert!(n.pass().is_none(), "computed, but the holding time is not over");
    n.fire(TimerKind::Hold);
    assert!(n.pass().is_some());
}

#[test]
fn owner_stops_extending_at_the_target_but_still_passes_the_token() {
    let mut n = Probe::with(timing(), 42);
    n.input(Input::Start);
    n.receive("n1", take_token(Token::new(42, "n1", 1), 42));
    assert!(n.compute().is_none(), "target reached: nothing to compute");
    assert!(n.pass().is_none(), "not faster than the heartbeat");
    n.fire(TimerKind::Hold);
    assert_eq!(n.pass().unwrap().3.len(), 42);
}

// ----- WAITER --------------------------------------------------------------

#[test]
fn waiter_on_entry_starts_the_waiter_timer() {
    let mut n = Probe::looser();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(n.armed(), vec![(TimerKind::Waiter, Duration::from_millis(2000))]);
}

#[test]
fn waiter_token_is_here_restarts_the_waiter_timer() {
    let mut n = Probe::waiter();
    let first = n.timers.clone();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(n.armed(), vec![(TimerKind::Waiter, Duration::from_millis(2000))]);
    // The earlier arming is now stale.
    let stale = first.into_iter().find(|t| t.kind == TimerKind::Waiter).unwrap();
    n.input(Input::Timer(stale));
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn waiter_take_token_takes_the_token_and_the_longer_expansion_and_enters_owner() {
    let mut n = Probe::owner_with(142);
    n.finish_compute();
    n.pass_delivered();
    assert_eq!(n.state(), StateName::Waiter);
    // A stale peer hands us a shorter expansion: keep our longer one.
    n.receive("n1", take_token(Token::new(62, "n3", 2), 62));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(162, "n3", 2));
}

#[test]
fn waiter_where_is_token_replies_token_was_here_recently() {
    let mut n = Probe::waiter();
    n.receive("n9", Body::WhereIsToken);
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenWasHereRecently)]);
}

#[test]
fn waiter_timeout_enters_looser() {
    let mut n = Probe::waiter();
    n.fire(TimerKind::Waiter);
    assert_eq!(n.state(), StateName::Looser);
}

// ----- LOOSER --------------------------------------------------------------

#[test]
fn looser_on_entry_broadcasts_where_is_token_and_starts_both_timers() {
    let mut n = Probe::waiter();
    n.fire(TimerKind::Waiter);
    assert_eq!(n.broadcasts(), vec![&Body::WhereIsToken]);
    let armed = n.armed();
    assert!(armed.contains(&(TimerKind::LooserAsk, Duration::from_millis(500))));
    assert!(armed.contains(&(TimerKind::LooserAnswer, Duration::from_millis(2000))));
}

#[test]
fn looser_ask_fires_broadcasts_where_is_token_and_restarts() {
    let mut n = Probe::looser();
    n.fire(TimerKind::LooserAsk);
    assert_eq!(n.broadcasts(), vec![&Body::WhereIsToken]);
    assert_eq!(n.armed(), vec![(TimerKind::LooserAsk, Duration::from_millis(500))]);
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn looser_token_was_here_recently_restarts_both_timers() {
    let mut n = Probe::looser();
    let old_answer = *n.timers.iter().find(|t| t.kind == TimerKind::LooserAnswer).unwrap();
    n.receive("n9", Body::TokenWasHereRecently);
    assert_eq!(n.armed().len(), 2);
    n.input(Input::Timer(old_answer));
    assert_eq!(n.state(), StateName::Looser, "the old looser_answer no longer counts");
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn looser_token_is_here_enters_waiter() {
    let mut n = Probe::looser();
    n.receive("n9", Body::TokenIsHere { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn looser_take_token_enters_owner() {
    let mut n = Probe::looser();
    n.receive("n9", take_token(Token::new(22, "n9", 1), 22));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(22, "n9", 1));
}

#[test]
fn looser_generating_token_with_worse_candidate_enters_generating() {
    let mut n = Probe::looser();
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn looser_generating_token_with_better_candidate_stays_looser() {
    let mut n = Probe::looser();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Looser);
    assert!(n.out.is_empty());
}

#[test]
fn looser_remembers_a_better_claim_and_does_not_answer_a_worse_one_with_its_own() {
    // The older implementation never answers worse claims: re-entering
    // GENERATING while a better claimer generates makes a second token.
    let mut n = Probe::looser();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn generating_backs_off_for_a_better_claim_and_stays_off_for_a_worse_one_after_it() {
    let mut n = Probe::generating();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Looser);
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn looser_answer_fires_enters_generating() {
    let mut n = Probe::looser();
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Generating);
}

// ----- GENERATING ----------------------------------------------------------

#[test]
fn generating_on_entry_broadcasts_the_candidate_and_starts_the_timer() {
    let n = Probe::generating();
    // Candidate: (len(data), own id, own revision + 1).
    assert_eq!(n.broadcasts(), vec![&Body::GeneratingToken { token: Token::new(0, ME, 1) }]);
    assert_eq!(n.armed(), vec![(TimerKind::Generating, Duration::from_millis(2000))]);
}

#[test]
fn generating_token_is_here_with_better_token_enters_waiter() {
    let mut n = Probe::generating();
    n.receive("n1", Body::TokenIsHere { token: Token::new(22, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn generating_token_is_here_with_worse_token_keeps_generating() {
    let mut n = Probe::generating();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn generating_better_generating_token_enters_looser() {
    let mut n = Probe::generating();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn generating_worse_generating_token_replies_with_ours() {
    let mut n = Probe::generating();
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::GeneratingToken { token: Token::new(0, ME, 1) })]);
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn generating_take_token_takes_the_better_of_candidate_and_received() {
    // Received is better.
    let mut n = Probe::generating();
    n.receive("n1", take_token(Token::new(22, "n1", 3), 22));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(22, "n1", 3));
    // Our candidate is better (same progress, higher id): it becomes the
    // token, and the longer expansion is kept.
    let mut n = Probe::generating();
    n.receive("n1", take_token(Token::new(0, "n1", 3), 0));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(0, ME, 1));
}

#[test]
fn generating_timeout_increments_the_revision_and_enters_owner() {
    let mut n = Probe::generating();
    n.fire(TimerKind::Generating);
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token(), Token::new(0, ME, 1));
    assert_eq!(n.node.candidate(), Token::new(0, ME, 2));
}

// ----- timers, section 6 ----------------------------------------------------

#[test]
fn timers_of_a_left_state_never_fire() {
    let mut n = Probe::looser();
    let looser_timers = n.timers.clone();
    n.receive("n9", Body::TokenIsHere { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Waiter);
    for timer in looser_timers {
        n.input(Input::Timer(timer));
        assert!(n.out.is_empty(), "{timer:?} acted");
        assert_eq!(n.state(), StateName::Waiter);
    }
}

#[test]
fn results_of_work_from_a_left_state_are_ignored() {
    let mut n = Probe::owner_with(42);
    let (epoch, len) = n.compute().unwrap();
    n.receive("n9", Body::TokenIsHere { token: Token::new(1000, "n9", 1) });
    assert_eq!(n.state(), StateName::Waiter);
    n.input(Input::Computed { epoch, expansion: Some(expansion(len)), checked: None });
    assert!(n.pass().is_none(), "a computation of a left state does not pass the token");
    assert!(n.out.is_empty());
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn own_messages_are_ignored() {
    let mut n = Probe::looser();
    n.receive(ME, Body::TokenIsHere { token: Token::new(0, ME, 1) });
    assert_eq!(n.state(), StateName::Looser);
    assert!(n.out.is_empty());
}

#[test]
fn every_state_change_is_reported_for_the_monitor() {
    let mut n = Probe::with(timing(), 1000);
    n.input(Input::Start);
    let changes: Vec<(StateName, StateName)> = n
        .out
        .iter()
        .filter_map(|o| if let Action::StateChanged { old, new, .. } = o { Some((*old, *new)) } else { None })
        .collect();
    assert_eq!(changes, vec![(StateName::None, StateName::Looser)]);
}

#[test]
fn section_6_a_newcomer_heard_by_broadcast_gets_a_ping_and_joins_the_ring() {
    let mut n = Probe::looser();
    n.receive_new("n7", Body::WhereIsToken);
    assert_eq!(n.probes(), vec![(PEER, "n7")], "a PING back, whose result proves its TCP port");
    assert!(n.out.iter().any(|a| matches!(a, Action::Members(m) if m.iter().any(|m| m.id == "n7"))));
    n.receive_new("n7", Body::WhereIsToken);
    assert!(n.sends().is_empty() && n.probes().is_empty(), "only newcomers are answered");
}

#[test]
fn section_6_a_message_from_a_known_id_at_another_address_is_dropped() {
    let mut n = Probe::waiter(); // n1 is known at PEER
    let forged = Message::new(
        "n1",
        Body::TakeToken {
            token: Token::new(42, "n1", 1),
            nodes: Nodes::new(),
            data: expansion(42),
            pacing: Default::default(),
            data_from: None,
        },
    );
    n.input(Input::Received { message: forged.into_raw(), from: Ipv4Addr::new(127, 0, 0, 66), via: Via::Tcp });
    assert_eq!(n.state(), StateName::Waiter);
    assert!(n.out.is_empty());
}

// ----- claims beyond the target -------------------------------------------

#[test]
fn a_heartbeat_is_evidence_of_a_token_whatever_progress_it_claims() {
    // The older implementation's progress counts characters that are not
    // pi and runs past this ring's target (section 9): its heartbeats still
    // prove that a token lives.
    let mut n = Probe::with(timing(), 42);
    n.input(Input::Start);
    n.receive("n1", Body::TokenIsHere { token: Token::new(40, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter);
    n.receive("n1", Body::TokenIsHere { token: Token::new(50, "n1", 1) });
    assert_eq!(n.armed(), vec![(TimerKind::Waiter, Duration::from_millis(2000))]);
    let mut n = Probe::with(timing(), 42);
    n.input(Input::Start);
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Generating);
    n.receive("n1", Body::TokenIsHere { token: Token::new(50, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter);
}

// ----- the node: hand-off, stop, failures, timers, persistence --------------

/// An OWNER that knows `others` (learnt from the TAKE_TOKEN's table) and
/// has computed its digits, so it is handing the token on.
fn owner_passing(others: &[(&str, u8)]) -> Probe {
    let mut n = Probe::waiter();
    let mut nodes: Nodes = others.iter().map(|(id, last)| (id.to_string(), format!("127.0.0.{last}"))).collect();
    nodes.insert("n1".into(), PEER.to_string());
    let body = |nodes: Nodes| Body::TakeToken {
        token: Token::new(22, "n1", 1),
        nodes,
        data: expansion(22),
        pacing: Default::default(),
        data_from: None,
    };
    // Each of the others handed this node the token before: they are
    // established members at their own addresses (two tokens meeting merge).
    for (id, last) in others {
        n.receive_at(id, Ipv4Addr::new(127, 0, 0, *last), body(Nodes::new()));
    }
    n.receive("n1", body(nodes));
    n.finish_compute();
    n
}

#[test]
fn a_failed_hand_off_tries_the_next_member_in_ring_order() {
    let mut n = owner_passing(&[("n6", 6), ("n7", 7)]);
    assert_eq!(n.pass().unwrap().1, "n6");
    n.pass_failed();
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.pass().unwrap().1, "n7", "n6 is marked lost; the next one is tried");
    n.pass_delivered();
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn a_hand_off_tries_every_member_once_then_keeps_the_token_and_computes_again() {
    let mut n = owner_passing(&[("n6", 6), ("n7", 7)]);
    for expected in ["n6", "n7", "n1"] {
        assert_eq!(n.pass().unwrap().1, expected);
        n.pass_failed();
    }
    assert!(n.pass().is_none());
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.compute().map(|c| c.1), Some(62), "the expansion keeps growing");
}

#[test]
fn members_that_stay_down_cost_a_later_hand_off_at_most_one_attempt() {
    // Round 1 discovers that n6 and n7 are down.
    let mut n = owner_passing(&[("n6", 6), ("n7", 7)]);
    n.pass_failed();
    n.pass_failed();
    assert_eq!(n.pass().unwrap().1, "n1");
    n.pass_delivered();
    // Later, both lost marks have expired: one of them is tried again,
    // the other is skipped in this round.
    n.advance(Duration::from_secs(5));
    n.receive("n1", take_token(Token::new(62, "n1", 1), 62));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6");
    n.pass_failed();
    assert_eq!(n.pass().unwrap().1, "n1", "n7, also a suspect, is skipped this round");
}

#[test]
fn back_from_a_partition_members_marked_lost_are_pinged_when_another_token_is_heard_and_return_at_once() {
    let mut n = owner_passing(&[("n6", 6), ("n7", 7)]);
    assert_eq!(n.pass().unwrap().1, "n6");
    n.pass_failed();
    n.pass_delivered();
    // n6's mark has most of its `waiter` left: the next round skips it.
    n.advance(Duration::from_millis(100));
    n.receive("n1", take_token(Token::new(62, "n1", 1), 62));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n7");
    n.pass_delivered();
    // Another token is about: the other side of a healed partition. The
    // members marked lost are PINGed now (`receive` reports the PING
    // delivered), and n6 is back in the very next round.
    n.advance(Duration::from_millis(100));
    n.receive_at("n7", Ipv4Addr::new(127, 0, 0, 7), Body::TokenIsHere { token: Token::new(500, "n7", 4) });
    assert_eq!(n.probes(), vec![(Ipv4Addr::new(127, 0, 0, 6), "n6")]);
    n.advance(Duration::from_millis(100));
    n.receive("n1", take_token(Token::new(520, "n7", 4), 520));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6", "its PING went through: its mark is gone");
}

/// An owner whose hand-offs to n6 failed twice (its lost mark now lasts
/// two waiters) and that passed the token to n7 instead; returns the time
/// of the second failure.
fn n6_failed_twice() -> (Probe, Time) {
    let waiter = timing().waiter;
    let mut n = owner_passing(&[("n6", 6), ("n7", 7)]);
    assert_eq!(n.pass().unwrap().1, "n6");
    n.pass_failed();
    n.pass_delivered();
    n.advance(waiter);
    n.receive("n1", take_token(Token::new(62, "n1", 1), 62));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6", "its first mark has expired");
    n.pass_failed();
    let failed_at = n.now;
    assert_eq!(n.pass().unwrap().1, "n7");
    n.pass_delivered();
    (n, failed_at)
}

const N6: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// Any input: the background sweeps run after each.
fn tick(n: &mut Probe) {
    n.receive_new("n1", Body::TokenIsHere { token: Token::new(62, "n1", 1) });
}

#[test]
fn section_10_a_member_marked_lost_is_pinged_in_the_background_once_a_waiter_and_returns_when_it_answers() {
    let waiter = timing().waiter;
    let (mut n, failed_at) = n6_failed_twice();
    n.advance(waiter - Duration::from_millis(1));
    tick(&mut n);
    assert_eq!(n.probes(), vec![], "not within a waiter of the failure");
    n.advance(waiter / 4 + Duration::from_millis(1));
    tick(&mut n);
    assert_eq!(n.probes(), vec![(N6, "n6")], "a waiter after the failure, within a quarter of one");
    let asked = n.now;
    n.advance(waiter / 2);
    tick(&mut n);
    assert_eq!(n.probes(), vec![], "once a waiter");
    // It answers, with most of its two-waiter mark left: it is back in the
    // next round.
    assert!(n.now < failed_at + 2 * waiter);
    n.input(Input::Probed { id: "n6".into(), host: N6, asked, result: Ok(()) });
    n.receive("n1", take_token(Token::new(102, "n1", 1), 102));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6");
}

#[test]
fn section_10_a_ping_that_fails_after_the_member_spoke_does_not_mark_it_lost_again() {
    let waiter = timing().waiter;
    let failed = |n: &mut Probe, asked: Time| {
        let addr = std::net::SocketAddrV4::new(N6, 8239);
        n.input(Input::Probed { id: "n6".into(), host: N6, asked, result: Err(SendError::ConnectTimeout { addr }) });
    };
    let next_round = |n: &mut Probe, len: usize| {
        n.receive("n1", take_token(Token::new(len, "n1", 1), len));
        n.finish_compute();
        n.pass().unwrap().1
    };
    // A PING asked while n6 was away fails after n6 spoke: the failure is
    // older news than the message, and n6 stays in the rotation.
    let (mut n, _) = n6_failed_twice();
    n.advance(waiter + waiter / 4);
    tick(&mut n);
    assert_eq!(n.probes(), vec![(N6, "n6")]);
    let asked = n.now;
    n.advance(Duration::from_millis(10));
    n.receive_at("n6", N6, Body::Ping);
    n.advance(Duration::from_millis(10));
    failed(&mut n, asked);
    assert_eq!(next_round(&mut n, 102), "n6");
    // Without a sign of life since, the failure marks it lost again.
    let (mut n, _) = n6_failed_twice();
    n.advance(waiter + waiter / 4);
    tick(&mut n);
    let asked = n.now;
    n.advance(Duration::from_millis(20));
    failed(&mut n, asked);
    assert_eq!(next_round(&mut n, 102), "n7", "n6 is skipped");
}

#[test]
fn section_6_a_newcomer_whose_ping_back_failed_is_pinged_again_when_heard_from() {
    let mut n = Probe::waiter();
    let hello = |n: &mut Probe| {
        n.input(Input::Received { message: Message::new("n6", Body::Ping).into_raw(), from: N6, via: Via::Udp });
    };
    hello(&mut n);
    assert_eq!(n.probes(), vec![(N6, "n6")]);
    let asked = n.now;
    // The PING back times out (the newcomer's link went down meanwhile):
    // the message that prompted it is no sign of life after it.
    n.advance(Duration::from_millis(100));
    let addr = std::net::SocketAddrV4::new(N6, 8239);
    n.input(Input::Probed { id: "n6".into(), host: N6, asked, result: Err(SendError::ConnectTimeout { addr }) });
    assert!(!n.node.members(n.now).iter().any(|m| m.id == "n6" && !m.lost), "marked lost");
    // It speaks again: its port is PINGed again, at the next upkeep (once
    // a second).
    n.advance(Duration::from_millis(100));
    hello(&mut n);
    let mut probed = n.probes().contains(&(N6, "n6"));
    for _ in 0..11 {
        n.advance(Duration::from_millis(100));
        tick(&mut n);
        probed |= n.probes().contains(&(N6, "n6"));
    }
    assert!(probed, "n6 was not PINGed again");
}

#[test]
fn back_from_a_partition_a_node_that_meets_a_better_live_token_says_so_by_a_broadcast_ping_once_a_waiter() {
    let mut n = Probe::waiter();
    let pings = |n: &Probe| n.broadcasts().iter().filter(|b| matches!(b, Body::Ping)).count();
    // Our own token, or a worse one: nothing to say.
    n.receive("n1", Body::TokenIsHere { token: Token::new(40, "n1", 1) });
    n.receive("n3", Body::TokenIsHere { token: Token::new(0, "n0", 1) });
    assert_eq!(pings(&n), 0);
    // A better token of another author: this side gives way, and members
    // of the other side that marked this node lost hear it.
    n.receive("n3", Body::TokenIsHere { token: Token::new(500, "n3", 2) });
    assert_eq!(pings(&n), 1);
    n.advance(Duration::from_millis(500));
    n.receive("n3", Body::TokenIsHere { token: Token::new(520, "n3", 2) });
    assert_eq!(pings(&n), 0, "once a waiter at most");
    n.advance(Duration::from_millis(1600));
    n.receive("n4", Body::TokenIsHere { token: Token::new(800, "n4", 7) });
    assert_eq!(pings(&n), 1);
}

#[test]
fn a_member_that_never_passed_the_token_is_tried_once_per_hand_off_and_none_for_four_waiters_after_one_failed() {
    // n6 and n7 answered a PING (their ports accept connections) but never
    // took or handed over the token: a stranger's ports can do as much.
    let mut n = Probe::waiter();
    for (id, last) in [("n6", 6), ("n7", 7)] {
        n.receive_at(id, Ipv4Addr::new(127, 0, 0, last), Body::Ping);
    }
    n.receive("n1", take_token(Token::new(22, "n1", 1), 22));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6", "one new member per hand-off");
    n.pass_failed();
    assert_eq!(n.pass().unwrap().1, "n1", "n7, new too, waits");
    n.pass_delivered();
    // Within four waiters of that failure, no new member is tried; then
    // one is.
    n.advance(Duration::from_millis(7_000));
    n.receive("n1", take_token(Token::new(62, "n1", 1), 62));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n1", "n7 waits until four waiters have passed");
    n.pass_delivered();
    n.advance(Duration::from_millis(1_000));
    n.receive("n1", take_token(Token::new(102, "n1", 1), 102));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6", "its lost mark has expired: tried again, as the one new member");
    n.pass_delivered();
    // Once it took the token, it is tried like any member.
    n.receive("n1", take_token(Token::new(142, "n1", 1), 142));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6");
}

#[test]
fn a_token_that_comes_back_before_our_hand_off_is_acknowledged_is_held_not_dropped() {
    // A fast ring of two: n1 has our TAKE_TOKEN, holds it and hands it back
    // before our send was acknowledged (a hand-off is sent when the
    // receiver's kernel has every byte).
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    let (attempt, to, ..) = n.pass().expect("handing the token on");
    assert_eq!(to, "n1");
    n.receive("n1", take_token(Token::new(82, "n1", 1), 82));
    assert_eq!(n.state(), StateName::Owner);
    n.input(Input::TokenSent { attempt, result: Ok(()) });
    assert_eq!(n.state(), StateName::Owner, "the token came back: leaving for WAITER would lose it");
    assert_eq!(n.compute().map(|c| c.1), Some(102), "and it computes the next digits");
}

#[test]
fn a_failed_computation_passes_the_token_on_as_it_is() {
    let mut n = Probe::owner_with(42);
    let (epoch, _) = n.compute().unwrap();
    n.input(Input::Computed { epoch, expansion: None, checked: None });
    assert_eq!(n.pass().unwrap().3.len(), 42);
}

#[test]
fn a_planned_stop_hands_the_token_on_at_once_then_exits() {
    let mut n = Probe::with(Timing { hold: Duration::from_secs(10), ..timing() }, 1_000_000);
    n.input(Input::Start);
    n.receive("n1", take_token(Token::new(42, "n1", 1), 42));
    assert!(n.pass().is_none(), "computing and holding");
    n.input(Input::Stop);
    assert_eq!(n.pass().unwrap().3.len(), 42, "handed on with what it has");
    assert!(!n.out.contains(&Action::Exit), "not before the hand-off is done");
    n.pass_delivered();
    assert!(n.out.contains(&Action::Exit));
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn a_planned_stop_of_a_node_without_the_token_exits_at_once() {
    let mut n = Probe::waiter();
    n.input(Input::Stop);
    assert_eq!(n.out, vec![Action::Exit]);
}

#[test]
fn looser_answer_firing_while_a_better_claim_is_pending_does_not_claim() {
    // The better claimer (an older node) ignores worse claims: claiming now
    // would make a second token when it generates.
    let mut n = Probe::looser();
    n.advance(Duration::from_millis(1998));
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    n.advance(Duration::from_millis(2));
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Looser);
    assert!(n.armed().contains(&(TimerKind::LooserAnswer, Duration::from_millis(2000))), "it waits again");
    // If the claimer never makes its token, the next firing claims.
    n.advance(Duration::from_millis(2000));
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn looser_memory_of_a_better_claim_lasts_one_generating_period() {
    let mut n = Probe::looser();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    n.advance(Duration::from_millis(1999));
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Looser);
    n.advance(Duration::from_millis(1));
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Generating, "the better claimer had its chance");
}

#[test]
fn leaving_a_state_cancels_its_timers_explicitly() {
    let mut n = Probe::looser();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    let cancelled: Vec<&Action> = n.out.iter().filter(|a| matches!(a, Action::CancelTimer(_))).collect();
    assert_eq!(
        cancelled,
        vec![&Action::CancelTimer(TimerKind::LooserAsk), &Action::CancelTimer(TimerKind::LooserAnswer)]
    );
}

#[test]
fn the_node_asks_to_persist_whenever_the_expansion_or_revision_changes() {
    let mut n = Probe::owner_with(42);
    assert!(n.out.iter().any(|a| matches!(a, Action::Persist { expansion, .. } if expansion.len() == 42)));
    n.finish_compute();
    assert!(n.out.iter().any(|a| matches!(a, Action::Persist { expansion, .. } if expansion.len() == 62)));
    n.receive("n1", Body::Ping);
    assert!(!n.out.iter().any(|a| matches!(a, Action::Persist { .. })), "nothing changed");
}

// ----- mistakes of operators -----------------------------------------------

#[test]
fn a_node_hearing_its_own_id_from_another_address_names_it_and_keeps_running() {
    // Anyone can send a message with our id, from any address: it must
    // never stop the node, whether the address is lower or greater.
    for at in [Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 9)] {
        let mut n = Probe::owner_with(42);
        for body in [Body::Ping, Body::WhereIsToken, Body::TokenIsHere { token: Token::new(1_000_000, ME, 9) }] {
            let message = Message::new(ME, body);
            n.input(Input::Received { message: message.into_raw(), from: at, via: Via::Udp });
            assert!(!n.out.iter().any(|a| matches!(a, Action::Exit)), "{:?}", n.out);
            assert!(n.out.is_empty(), "a message with our id from {at} is dropped: {:?}", n.out);
        }
        assert_eq!(n.state(), StateName::Owner, "the holder keeps the token");
    }
}

#[test]
fn timeouts_that_would_lose_live_tokens_are_refused() {
    use pi_ring::protocol::machine::TimingError;
    assert_eq!(Timing::default().check(), Ok(()));
    let ms = Duration::from_millis;
    let waiter = Timing { waiter: ms(100), ..Timing::default() };
    assert_eq!(waiter.check(), Err(TimingError::WaiterTooShort { waiter: 100, heartbeat: 500 }));
    let answer = Timing { looser_answer: ms(900), ..Timing::default() };
    assert_eq!(answer.check(), Err(TimingError::LooserAnswerTooShort { looser_answer: 900, heartbeat: 500 }));
    let ask = Timing { looser_ask: Duration::ZERO, ..Timing::default() };
    assert!(matches!(ask.check(), Err(TimingError::LooserAsk { .. })));
    let heartbeat = Timing { heartbeat: Duration::ZERO, ..Timing::default() };
    assert_eq!(heartbeat.check(), Err(TimingError::ZeroHeartbeat));
    // The fast profiles of the tests and benchmarks are fine.
    let fast = Timing { heartbeat: ms(50), waiter: ms(200), looser_ask: ms(50), looser_answer: ms(200), ..timing() };
    assert_eq!(fast.check(), Ok(()));
}

// ----- delta hand-offs (PROTOCOL section 10) --------------------------------

/// `body` from `author` at `host`, saying `have` (a pi-ring node).
fn saying_have(author: &str, body: Body, have: u64) -> pi_ring::protocol::RawMessage {
    let mut message = Message::new(author, body);
    message.have = Some(have);
    message.into_raw()
}

/// The `data_from` and the data on the wire of the TAKE_TOKEN being sent.
fn sent_data(n: &Probe) -> (Option<u64>, usize) {
    n.out
        .iter()
        .find_map(|o| match o {
            Action::SendToken { message, .. } => match message.clone().into_raw().body {
                Body::TakeToken { data, data_from, .. } => Some((data_from, data.len())),
                _ => None,
            },
            _ => None,
        })
        .expect("a TAKE_TOKEN is being sent")
}

#[test]
fn a_member_that_said_have_is_handed_only_what_it_lacks_and_one_that_did_not_the_whole_expansion() {
    let n6 = Ipv4Addr::new(127, 0, 0, 6);
    let mut n = Probe::waiter();
    // n6, a pi-ring node, has 30 characters; n1 (PEER) never says `have`.
    n.input(Input::Received { message: saying_have("n6", Body::Ping, 30), from: n6, via: Via::Udp });
    n.prove_probed();
    let mut nodes: Nodes = [("n6".to_string(), n6.to_string())].into_iter().collect();
    nodes.insert("n1".into(), PEER.to_string());
    let take = |len: usize, nodes: &Nodes| Body::TakeToken {
        token: Token::new(len, "n1", 1),
        nodes: nodes.clone(),
        data: expansion(len),
        pacing: Pacing::default(),
        data_from: None,
    };
    n.receive("n1", take(42, &nodes));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6");
    assert_eq!(sent_data(&n), (Some(30), 32), "from what it has: 62 - 30 characters");
    n.pass_delivered();
    // A datagram saying more (anyone can send one from its address) does
    // not raise it: a delta from beyond what it has would cost it a gap.
    n.input(Input::Received { message: saying_have("n6", Body::WhereIsToken, 5_000), from: n6, via: Via::Udp });
    // It took 62: the next hand-off starts there.
    n.receive("n1", take(102, &nodes));
    n.finish_compute();
    assert_eq!(sent_data(&n), (Some(62), 60));
    // n6 refuses now: n1 gets the whole expansion.
    n.pass_failed();
    assert_eq!(n.pass().unwrap().1, "n1");
    assert_eq!(sent_data(&n), (None, 122));
    // A restarted n6 says less than before: that is what it has.
    n.pass_delivered();
    n.input(Input::Received { message: saying_have("n6", Body::Ping, 2), from: n6, via: Via::Udp });
    n.receive("n1", take(142, &nodes));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().1, "n6");
    assert_eq!(sent_data(&n), (Some(2), 160));
}

#[test]
fn a_delta_is_completed_from_what_the_node_knows_and_checked_beyond_it() {
    let mut n = Probe::waiter();
    let known = n.node.expansion().known().len();
    let len = known + 500;
    let whole = pi_ring::pi::PiDigits::new(200_000).expansion(len);
    // From 40 on: the node knows the first 40 (and far more).
    let body = Body::TakeToken {
        token: Token::new(len, "n1", 1),
        nodes: Nodes::new(),
        data: whole.clone(),
        pacing: Pacing::default(),
        data_from: Some(40),
    };
    n.receive("n1", body);
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.node.token().progress, len as u64, "the whole length, counting what is checked while holding");
    let check = n.computing.clone().and_then(|c| c.2).expect("the characters beyond what it knows, to check");
    assert_eq!((check.offset(), check.len()), (40, len));
    n.finish_compute();
    assert_eq!(n.node.expansion().len(), len + 20);
    assert_eq!(n.node.expansion().as_str(), pi_ring::pi::PiDigits::new(200_000).expansion(len + 20).as_str());
}

#[test]
fn a_delta_from_further_than_the_node_fills_in_costs_no_computation_and_the_ring_goes_on() {
    use pi_ring::protocol::node::MAX_GAP_FILLED;
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    n.pass_delivered();
    let known = n.node.expansion().known().len();
    // "Ten million digits, and here are the last 20": nothing to compute.
    let from = known + MAX_GAP_FILLED + 1;
    let body = Body::TakeToken {
        token: Token::new(from + 20, "n1", 1),
        nodes: Nodes::new(),
        data: expansion(20).alone(),
        pacing: Pacing::default(),
        data_from: None,
    };
    let mut message = Message::new("n1", body).into_raw();
    if let Body::TakeToken { data_from, data, .. } = &mut message.body {
        *data_from = Some(from as u64);
        *data = "12345678901234567890".into();
    }
    n.input(Input::Received { message, from: PEER, via: Via::Tcp });
    assert_eq!(n.state(), StateName::Owner, "it takes the token");
    let (_, len, check) = n.computing.clone().expect("computes its own 20 digits");
    assert_eq!((len, check.is_none()), (82, true), "from its own 62 characters, nothing to check");
    n.finish_compute();
    assert_eq!(n.pass().unwrap().2.progress, 82);
}

#[test]
fn a_delta_whose_characters_are_not_pi_keeps_the_correct_prefix() {
    let mut n = Probe::owner_with(42);
    n.finish_compute();
    n.pass_delivered();
    let mut message = Message::new("n1", take_token(Token::new(100, "n1", 2), 20)).into_raw();
    if let Body::TakeToken { data_from, data, .. } = &mut message.body {
        *data_from = Some(50);
        *data = format!("{}xxxxxxxxxxxxxxxxxxxx", &expansion(80).as_str()[50..]);
    }
    n.input(Input::Received { message, from: PEER, via: Via::Tcp });
    assert_eq!(n.state(), StateName::Owner);
    n.finish_compute();
    let (_, _, token, data) = n.pass().expect("passes on");
    assert_eq!((token.progress, data.len()), (100, 100), "the 80 correct characters, then its 20");
    assert_eq!(data.as_str(), expansion(100).as_str());
}

/// PROTOCOL section 10, "Computing shown": a node tells monitors when a
/// computation of digits starts (its state unchanged, no hand-off), its
/// progress at most once a second, and when it ends; every report carries
/// it meanwhile.
#[test]
fn section_10_a_computation_of_digits_is_reported_when_it_starts_and_ends_and_at_most_once_a_second() {
    use pi_ring::pi::Computing;
    let computing = |done: f64| Some(Computing { digits: 10_240_000, done, urgent: true });
    let told = |n: &Probe| {
        n.out
            .iter()
            .filter_map(|o| match o {
                Action::Report(r) => Some((r.old, r.new, r.handed_by.clone(), r.computing.map(|c| c.done))),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut n = Probe::waiter();
    n.advance(Duration::from_secs(2));
    n.input(Input::Computing(computing(0.0)));
    assert_eq!(told(&n), vec![(StateName::Waiter, StateName::Waiter, None, Some(0.0))], "starts");
    n.advance(Duration::from_millis(250));
    n.input(Input::Computing(computing(0.1)));
    assert_eq!(told(&n), vec![], "a quarter second later");
    n.advance(Duration::from_millis(750));
    n.input(Input::Computing(computing(0.4)));
    assert_eq!(told(&n), vec![(StateName::Waiter, StateName::Waiter, None, Some(0.4))], "a second after the last");
    n.advance(Duration::from_millis(250));
    n.input(Input::Computing(None));
    assert_eq!(told(&n), vec![(StateName::Waiter, StateName::Waiter, None, None)], "ends");
}
