//! One test per rule of PROTOCOL section 7 (and the parts of sections 2
//! and 6 the state machine applies), on the pure protocol core.

use pi_ring::pi::{Expansion, PiDigits};
use pi_ring::protocol::machine::{Config, Envelope, Input, Machine, Output, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Body, Message, Nodes, StateName, Token};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

const ME: &str = "n5";
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

/// A machine plus what it last asked for.
struct Node {
    machine: Machine,
    out: Vec<Output>,
    timers: Vec<TimerId>,
}

impl Node {
    fn with(timing: Timing, max_len: usize) -> Self {
        let machine = Machine::new(Config { id: ME.into(), timing, max_len });
        Node { machine, out: Vec::new(), timers: Vec::new() }
    }

    /// A started node: in LOOSER.
    fn looser() -> Self {
        let mut n = Node::with(timing(), 1_000_000);
        n.input(Input::Start);
        n
    }

    /// A node in WAITER (heard TOKEN_IS_HERE while searching).
    fn waiter() -> Self {
        let mut n = Node::looser();
        n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
        assert_eq!(n.state(), StateName::Waiter);
        n
    }

    /// A node in GENERATING (nobody answered).
    fn generating() -> Self {
        let mut n = Node::looser();
        n.fire(TimerKind::LooserAnswer);
        assert_eq!(n.state(), StateName::Generating);
        n
    }

    /// A node in OWNER that received the token with an expansion of `len`.
    fn owner_with(len: usize) -> Self {
        let mut n = Node::waiter();
        n.receive("n1", take_token(Token::new(len, "n1", 1), len));
        assert_eq!(n.state(), StateName::Owner);
        n
    }

    fn input(&mut self, input: Input) {
        self.out = self.machine.handle(input);
        for o in &self.out {
            if let Output::SetTimer { timer, .. } = o {
                self.timers.retain(|t| t.kind != timer.kind);
                self.timers.push(*timer);
            }
        }
    }

    fn receive(&mut self, author: &str, body: Body) {
        let message = Message::new(author, body);
        self.input(Input::Received(Envelope { message, from: PEER }));
    }

    /// Fire the most recently armed timer of `kind`.
    fn fire(&mut self, kind: TimerKind) {
        let timer = *self.timers.iter().find(|t| t.kind == kind).unwrap_or_else(|| panic!("no {kind:?} timer armed"));
        self.input(Input::Timer(timer));
    }

    fn state(&self) -> StateName {
        self.machine.state()
    }

    fn broadcasts(&self) -> Vec<&Body> {
        self.out.iter().filter_map(|o| if let Output::Broadcast(m) = o { Some(&m.body) } else { None }).collect()
    }

    fn sends(&self) -> Vec<(Ipv4Addr, &Body)> {
        self.out
            .iter()
            .filter_map(|o| if let Output::Send { to, message } = o { Some((*to, &message.body)) } else { None })
            .collect()
    }

    fn armed(&self) -> Vec<(TimerKind, Duration)> {
        self.out
            .iter()
            .filter_map(|o| if let Output::SetTimer { timer, after } = o { Some((timer.kind, *after)) } else { None })
            .collect()
    }

    fn compute(&self) -> Option<(u64, usize)> {
        self.out.iter().find_map(|o| if let Output::Compute { epoch, len } = o { Some((*epoch, *len)) } else { None })
    }

    fn pass(&self) -> Option<(u64, Token, Expansion)> {
        self.out.iter().find_map(|o| {
            if let Output::PassToken { epoch, token, data } = o {
                Some((*epoch, token.clone(), data.clone()))
            } else {
                None
            }
        })
    }

    /// Complete the pending computation.
    fn finish_compute(&mut self) {
        let (epoch, len) = self.compute().expect("a computation was started");
        self.input(Input::Computed { epoch, expansion: expansion(len) });
    }
}

fn take_token(token: Token, len: usize) -> Body {
    let nodes: Nodes = [("n1".to_string(), "127.0.0.9".to_string())].into_iter().collect();
    Body::TakeToken { token, nodes, data: expansion(len) }
}

fn is_token_is_here(body: &Body) -> bool {
    matches!(body, Body::TokenIsHere { .. })
}

// ----- start-up ------------------------------------------------------------

#[test]
fn start_up_broadcasts_ping_three_times_and_enters_looser() {
    let mut n = Node::with(timing(), 1000);
    n.input(Input::Start);
    let pings = n.broadcasts().iter().filter(|b| matches!(b, Body::Ping)).count();
    assert_eq!(pings, 3);
    assert_eq!(n.state(), StateName::Looser);
}

// ----- OWNER ---------------------------------------------------------------

#[test]
fn owner_on_entry_broadcasts_token_is_here_starts_computation_and_heartbeat() {
    let n = Node::owner_with(42);
    assert!(n.broadcasts().iter().any(|b| matches!(b, Body::TokenIsHere { token } if token.progress == 42)));
    assert_eq!(n.compute().map(|c| c.1), Some(62), "20 more digits");
    assert!(n.armed().contains(&(TimerKind::Heartbeat, Duration::from_millis(500))));
}

#[test]
fn owner_heartbeat_fires_broadcasts_token_is_here_and_restarts_the_timer() {
    let mut n = Node::owner_with(42);
    n.fire(TimerKind::Heartbeat);
    assert_eq!(n.broadcasts().len(), 1);
    assert!(is_token_is_here(n.broadcasts()[0]));
    assert_eq!(n.armed(), vec![(TimerKind::Heartbeat, Duration::from_millis(500))]);
}

#[test]
fn owner_computation_done_sends_take_token_with_current_token_and_data() {
    let mut n = Node::owner_with(42);
    n.finish_compute();
    let (_, token, data) = n.pass().expect("TAKE_TOKEN is sent");
    assert_eq!(data.len(), 62);
    assert_eq!(token, Token::new(62, "n1", 1), "progress is the data's length; author and revision are kept");
}

#[test]
fn owner_hand_off_success_enters_waiter() {
    let mut n = Node::owner_with(42);
    n.finish_compute();
    let (epoch, ..) = n.pass().unwrap();
    n.input(Input::Passed { epoch, to: Some("n1".into()) });
    assert_eq!(n.state(), StateName::Waiter);
    assert_eq!(n.machine.expansion().len(), 62);
}

#[test]
fn owner_hand_off_failure_with_nobody_reachable_keeps_the_token_and_computes_again() {
    let mut n = Node::owner_with(42);
    n.finish_compute();
    let (epoch, ..) = n.pass().unwrap();
    n.input(Input::Passed { epoch, to: None });
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.compute().map(|c| c.1), Some(82));
    n.finish_compute();
    assert_eq!(n.pass().unwrap().2.len(), 82);
}

#[test]
fn owner_token_is_here_with_better_token_replies_ping_and_enters_waiter() {
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(100, "n9", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::Ping)]);
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn owner_token_is_here_with_worse_token_replies_and_broadcasts_token_is_here() {
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(22, "n9", 1) });
    let sends = n.sends();
    assert_eq!(sends.len(), 1);
    assert!(sends[0].0 == PEER && is_token_is_here(sends[0].1));
    assert!(n.broadcasts().iter().any(|b| is_token_is_here(b)));
    assert_eq!(n.state(), StateName::Owner);
}

#[test]
fn owner_token_is_here_with_an_equal_token_is_decided_by_holder_id() {
    // The same token at two holders: the higher holder id keeps it.
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter, "n9 > n5 keeps it");
    let mut n = Node::owner_with(42);
    n.receive("n0", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(n.state(), StateName::Owner, "n0 < n5 yields");
}

#[test]
fn owner_where_is_token_replies_token_is_here() {
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::WhereIsToken);
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenIsHere { token: Token::new(42, "n1", 1) })]);
    assert!(n.broadcasts().is_empty());
}

#[test]
fn owner_generating_token_replies_and_broadcasts_token_is_here() {
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::GeneratingToken { token: Token::new(500, "n9", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenIsHere { token: Token::new(42, "n1", 1) })]);
    assert_eq!(n.broadcasts().len(), 1);
    assert_eq!(n.state(), StateName::Owner);
}

#[test]
fn owner_take_token_keeps_the_better_token_and_the_longer_expansion() {
    // Received is better (longer): adopt its author, revision and data.
    let mut n = Node::owner_with(42);
    n.receive("n7", take_token(Token::new(102, "n7", 4), 102));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(102, "n7", 4));
    // Received is worse: keep ours entirely.
    let mut n = Node::owner_with(142);
    n.receive("n7", take_token(Token::new(102, "n9", 4), 102));
    assert_eq!(n.machine.token(), Token::new(142, "n1", 1));
    // Progress is recomputed from the data, not trusted.
    let mut n = Node::owner_with(42);
    n.receive("n7", take_token(Token::new(9_999, "n7", 4), 22));
    assert_eq!(n.machine.token(), Token::new(42, "n1", 1));
}

#[test]
fn ping_and_token_was_here_recently_need_no_action_in_any_state() {
    for mut n in [Node::owner_with(42), Node::waiter(), Node::looser(), Node::generating()] {
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
    let mut n = Node::with(Timing { hold: Duration::from_millis(300), ..timing() }, 1_000_000);
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
    let mut n = Node::with(timing(), 42);
    n.input(Input::Start);
    n.receive("n1", take_token(Token::new(42, "n1", 1), 42));
    assert!(n.compute().is_none(), "target reached: nothing to compute");
    assert!(n.pass().is_none(), "not faster than the heartbeat");
    n.fire(TimerKind::Hold);
    assert_eq!(n.pass().unwrap().2.len(), 42);
}

// ----- WAITER --------------------------------------------------------------

#[test]
fn waiter_on_entry_starts_the_waiter_timer() {
    let mut n = Node::looser();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(n.armed(), vec![(TimerKind::Waiter, Duration::from_millis(2000))]);
}

#[test]
fn waiter_token_is_here_restarts_the_waiter_timer() {
    let mut n = Node::waiter();
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
    let mut n = Node::owner_with(142);
    n.finish_compute();
    let (epoch, ..) = n.pass().unwrap();
    n.input(Input::Passed { epoch, to: Some("n1".into()) });
    assert_eq!(n.state(), StateName::Waiter);
    // A stale peer hands us a shorter expansion: keep our longer one.
    n.receive("n1", take_token(Token::new(62, "n3", 2), 62));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(162, "n3", 2));
}

#[test]
fn waiter_where_is_token_replies_token_was_here_recently() {
    let mut n = Node::waiter();
    n.receive("n9", Body::WhereIsToken);
    assert_eq!(n.sends(), vec![(PEER, &Body::TokenWasHereRecently)]);
}

#[test]
fn waiter_timeout_enters_looser() {
    let mut n = Node::waiter();
    n.fire(TimerKind::Waiter);
    assert_eq!(n.state(), StateName::Looser);
}

// ----- LOOSER --------------------------------------------------------------

#[test]
fn looser_on_entry_broadcasts_where_is_token_and_starts_both_timers() {
    let mut n = Node::waiter();
    n.fire(TimerKind::Waiter);
    assert_eq!(n.broadcasts(), vec![&Body::WhereIsToken]);
    let armed = n.armed();
    assert!(armed.contains(&(TimerKind::LooserAsk, Duration::from_millis(500))));
    assert!(armed.contains(&(TimerKind::LooserAnswer, Duration::from_millis(2000))));
}

#[test]
fn looser_ask_fires_broadcasts_where_is_token_and_restarts() {
    let mut n = Node::looser();
    n.fire(TimerKind::LooserAsk);
    assert_eq!(n.broadcasts(), vec![&Body::WhereIsToken]);
    assert_eq!(n.armed(), vec![(TimerKind::LooserAsk, Duration::from_millis(500))]);
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn looser_token_was_here_recently_restarts_both_timers() {
    let mut n = Node::looser();
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
    let mut n = Node::looser();
    n.receive("n9", Body::TokenIsHere { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn looser_take_token_enters_owner() {
    let mut n = Node::looser();
    n.receive("n9", take_token(Token::new(22, "n9", 1), 22));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(22, "n9", 1));
}

#[test]
fn looser_generating_token_with_worse_candidate_enters_generating() {
    let mut n = Node::looser();
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn looser_generating_token_with_better_candidate_stays_looser() {
    let mut n = Node::looser();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Looser);
    assert!(n.out.is_empty());
}

#[test]
fn looser_answer_fires_enters_generating() {
    let mut n = Node::looser();
    n.fire(TimerKind::LooserAnswer);
    assert_eq!(n.state(), StateName::Generating);
}

// ----- GENERATING ----------------------------------------------------------

#[test]
fn generating_on_entry_broadcasts_the_candidate_and_starts_the_timer() {
    let n = Node::generating();
    // Candidate: (len(data), own id, own revision + 1).
    assert_eq!(n.broadcasts(), vec![&Body::GeneratingToken { token: Token::new(0, ME, 1) }]);
    assert_eq!(n.armed(), vec![(TimerKind::Generating, Duration::from_millis(2000))]);
}

#[test]
fn generating_token_is_here_with_better_token_enters_waiter() {
    let mut n = Node::generating();
    n.receive("n1", Body::TokenIsHere { token: Token::new(22, "n1", 1) });
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn generating_token_is_here_with_worse_token_keeps_generating() {
    let mut n = Node::generating();
    n.receive("n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn generating_better_generating_token_enters_looser() {
    let mut n = Node::generating();
    n.receive("n9", Body::GeneratingToken { token: Token::new(0, "n9", 1) });
    assert_eq!(n.state(), StateName::Looser);
}

#[test]
fn generating_worse_generating_token_replies_with_ours() {
    let mut n = Node::generating();
    n.receive("n1", Body::GeneratingToken { token: Token::new(0, "n1", 1) });
    assert_eq!(n.sends(), vec![(PEER, &Body::GeneratingToken { token: Token::new(0, ME, 1) })]);
    assert_eq!(n.state(), StateName::Generating);
}

#[test]
fn generating_take_token_takes_the_better_of_candidate_and_received() {
    // Received is better.
    let mut n = Node::generating();
    n.receive("n1", take_token(Token::new(22, "n1", 3), 22));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(22, "n1", 3));
    // Our candidate is better (same progress, higher id): it becomes the
    // token, and the longer expansion is kept.
    let mut n = Node::generating();
    n.receive("n1", take_token(Token::new(0, "n1", 3), 0));
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(0, ME, 1));
}

#[test]
fn generating_timeout_increments_the_revision_and_enters_owner() {
    let mut n = Node::generating();
    n.fire(TimerKind::Generating);
    assert_eq!(n.state(), StateName::Owner);
    assert_eq!(n.machine.token(), Token::new(0, ME, 1));
    assert_eq!(n.machine.candidate(), Token::new(0, ME, 2));
}

// ----- timers, section 6 ----------------------------------------------------

#[test]
fn timers_of_a_left_state_never_fire() {
    let mut n = Node::looser();
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
    let mut n = Node::owner_with(42);
    let (epoch, len) = n.compute().unwrap();
    n.receive("n9", Body::TokenIsHere { token: Token::new(1000, "n9", 1) });
    assert_eq!(n.state(), StateName::Waiter);
    n.input(Input::Computed { epoch, expansion: expansion(len) });
    n.input(Input::Passed { epoch, to: Some("n9".into()) });
    assert!(n.out.is_empty());
    assert_eq!(n.state(), StateName::Waiter);
}

#[test]
fn own_messages_are_ignored() {
    let mut n = Node::looser();
    n.receive(ME, Body::TokenIsHere { token: Token::new(0, ME, 1) });
    assert_eq!(n.state(), StateName::Looser);
    assert!(n.out.is_empty());
}

#[test]
fn every_state_change_is_reported_for_the_monitor() {
    let mut n = Node::with(timing(), 1000);
    n.input(Input::Start);
    let changes: Vec<(StateName, StateName)> = n
        .out
        .iter()
        .filter_map(|o| if let Output::StateChanged { old, new, .. } = o { Some((*old, *new)) } else { None })
        .collect();
    assert_eq!(changes, vec![(StateName::None, StateName::Looser)]);
}

// ----- wrong content that parses -------------------------------------------

#[test]
fn a_token_claiming_more_than_the_rings_maximum_is_ignored() {
    let mut n = Node::owner_with(42);
    n.receive("n9", Body::TokenIsHere { token: Token::new(usize::MAX / 2, "n9", 1) });
    assert_eq!(n.state(), StateName::Owner, "a lie must not make the holder yield");
    assert!(n.out.is_empty());
    let mut n = Node::generating();
    n.receive("n9", Body::GeneratingToken { token: Token::new(usize::MAX / 2, "n9", 1) });
    assert_eq!(n.state(), StateName::Generating);
}
