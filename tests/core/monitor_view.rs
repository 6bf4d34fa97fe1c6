//! The monitor's state-keeping, without sockets: MY_STATE and heartbeats
//! in, holder, progress, silence and the incident timeline out.

use pi_ring::monitor::{IncidentKind, RingView};
use pi_ring::protocol::{Body, Message, MyState, StateName, Token};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;

const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn state(view: &mut RingView, at: Instant, id: &str, old: StateName, new: StateName, progress: u64, token: Token) {
    let body = Body::MyState(Box::new(MyState {
        old_state: old.as_wire().into(),
        new_state: new.as_wire().into(),
        progress: Some(progress),
        token: Some(token),
        digits_tail: Some(format!("tail{progress}")),
        ..Default::default()
    }));
    view.apply(&Message::new(id, body), HOST, at);
}

fn heartbeat(view: &mut RingView, at: Instant, id: &str, token: Token) {
    view.apply(&Message::new(id, Body::TokenIsHere { token }), HOST, at);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

use StateName::{Generating as G, Looser as L, Owner as O, Waiter as W};

/// Three nodes a, b, c started and a generated the first token at t0.
fn ring_with_token(t0: Instant) -> RingView {
    let mut v = RingView::new();
    for id in ["a", "b", "c"] {
        state(&mut v, t0, id, StateName::None, L, 0, Token::new(0, id, 0));
    }
    state(&mut v, t0, "b", L, W, 0, Token::new(0, "b", 0));
    state(&mut v, t0, "c", L, W, 0, Token::new(0, "c", 0));
    state(&mut v, t0, "a", L, G, 0, Token::new(0, "a", 1));
    state(&mut v, t0, "a", G, O, 0, Token::new(0, "a", 1));
    v
}

fn kinds(v: &RingView) -> Vec<&'static str> {
    v.incidents()
        .iter()
        .map(|i| match i.kind {
            IncidentKind::FirstToken { .. } => "first",
            IncidentKind::TokenLost { .. } => "lost",
            IncidentKind::DuplicateTokens { .. } => "duplicate",
            IncidentKind::NodeJoined { .. } => "joined",
            IncidentKind::NodeSilent { .. } => "silent",
            IncidentKind::NodeBack { .. } => "back",
            IncidentKind::NodeRestarted { .. } => "restarted",
            IncidentKind::BackInRotation { .. } => "in rotation",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn state_changes_give_holder_progress_and_passes() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    assert_eq!(kinds(&v), vec!["joined", "joined", "joined", "first"]);
    state(&mut v, t0 + ms(10), "a", O, W, 22, Token::new(22, "a", 1));
    state(&mut v, t0 + ms(10), "b", W, O, 22, Token::new(22, "a", 1));
    assert_eq!(v.holder_at(t0 + ms(10)), Some("b"));
    assert_eq!(v.passes, 2);
    assert_eq!(v.max_progress, 22);
    assert_eq!(v.latest_digits, "tail22");
    assert_eq!(v.nodes()["b"].holdings, 1);
    assert_eq!(v.passes_per_second(t0 + ms(500), Duration::from_secs(1)), 2.0);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_alone_show_the_holder_and_progress() {
    // A node that sends only the reference implementation's bare MY_STATE.
    let t0 = Instant::now();
    let mut v = RingView::new();
    heartbeat(&mut v, t0, "ref", Token::new(142, "ref", 3));
    assert_eq!(v.holder_at(t0), Some("ref"));
    assert_eq!(v.max_progress, 142);
    assert_eq!(v.nodes()["ref"].state, O);
}

#[tokio::test(start_paused = true)]
async fn a_lost_token_is_timed_from_the_last_sign_of_the_holder_to_regeneration() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    state(&mut v, t0 + ms(100), "a", O, W, 22, Token::new(22, "a", 1));
    state(&mut v, t0 + ms(100), "b", W, O, 22, Token::new(22, "a", 1));
    heartbeat(&mut v, t0 + ms(600), "b", Token::new(42, "a", 1));
    // b dies after that heartbeat. c and a notice 2 s later ...
    state(&mut v, t0 + ms(2600), "c", W, L, 22, Token::new(22, "a", 1));
    state(&mut v, t0 + ms(2600), "a", W, L, 22, Token::new(22, "a", 1));
    let open = v.incidents().last().unwrap().clone();
    assert!(matches!(open.kind, IncidentKind::TokenLost { regenerated_by: None, .. }));
    assert_eq!(open.ended, None);
    assert_eq!(v.holder_at(t0 + ms(2600)), Some("b"), "b let nobody know");
    // ... and c regenerates the token at 6.6 s.
    state(&mut v, t0 + ms(4600), "c", L, G, 22, Token::new(22, "c", 1));
    state(&mut v, t0 + ms(6600), "c", G, O, 22, Token::new(22, "c", 1));
    let done = v.incidents().last().unwrap();
    assert_eq!(done.duration(t0 + ms(9999)), ms(6000), "from b's last heartbeat to the new token");
    match &done.kind {
        IncidentKind::TokenLost { detected_by, last_holder, regenerated_by, found, progress } => {
            assert_eq!(detected_by.as_deref(), Some("c"));
            assert_eq!(last_holder.as_deref(), Some("b"));
            assert_eq!(regenerated_by.as_deref(), Some("c"));
            assert!(!found);
            assert_eq!(*progress, Some(22));
        }
        other => panic!("{other:?}"),
    }
    assert!(done.describe(t0).contains("6.00 s without a holder"), "{}", done.describe(t0));
    assert_eq!(v.holder_at(t0 + ms(6600)), Some("c"));
    assert_eq!(kinds(&v).iter().filter(|k| **k == "lost").count(), 1, "one incident for both noticing nodes");
}

#[tokio::test(start_paused = true)]
async fn a_token_missed_then_heard_again_is_a_false_alarm() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    state(&mut v, t0 + ms(2000), "b", W, L, 0, Token::new(0, "a", 1));
    heartbeat(&mut v, t0 + ms(2300), "a", Token::new(0, "a", 1));
    state(&mut v, t0 + ms(2300), "b", L, W, 0, Token::new(0, "a", 1));
    match &v.incidents().last().unwrap().kind {
        IncidentKind::TokenLost { found, regenerated_by, .. } => {
            assert!(*found);
            assert!(regenerated_by.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_tokens_are_reported_with_how_they_resolved() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    // A partition healed: c generated its own token meanwhile.
    heartbeat(&mut v, t0 + ms(100), "a", Token::new(200, "a", 1));
    state(&mut v, t0 + ms(200), "c", G, O, 120, Token::new(120, "c", 1));
    let dup = v.incidents().last().unwrap().clone();
    assert!(matches!(dup.kind, IncidentKind::DuplicateTokens { survivor: None, .. }), "{dup:?}");
    // c hears a's better token and yields 150 ms later.
    state(&mut v, t0 + ms(350), "c", O, W, 120, Token::new(120, "c", 1));
    let resolved = v.incidents().last().unwrap();
    match &resolved.kind {
        IncidentKind::DuplicateTokens { holders, survivor } => {
            assert_eq!(holders.len(), 2);
            assert_eq!(survivor.as_deref(), Some("a"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(resolved.duration(t0 + ms(9999)), ms(150));
}

#[tokio::test(start_paused = true)]
async fn a_normal_hand_off_is_not_a_duplicate() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    // b's entry is heard before a's exit: same token, so no incident.
    state(&mut v, t0 + ms(1), "b", W, O, 22, Token::new(22, "a", 1));
    state(&mut v, t0 + ms(1), "a", O, W, 22, Token::new(22, "a", 1));
    assert!(!kinds(&v).contains(&"duplicate"));
}

#[tokio::test(start_paused = true)]
async fn silent_nodes_are_marked_and_welcomed_back() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    // The token goes round every 300 ms between a and b; c stopped.
    let mut t = t0;
    for i in 0..40u64 {
        t = t0 + ms(100 * (i + 1));
        let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        state(&mut v, t, from, O, W, 22 + 20 * i, Token::new(22 + 20 * i as usize, "a", 1));
        state(&mut v, t, to, W, O, 22 + 20 * i, Token::new(22 + 20 * i as usize, "a", 1));
        v.tick(t);
    }
    assert!(v.nodes()["c"].silent, "c not heard for 4 s while the token goes round every 0.3 s");
    assert!(!v.nodes()["a"].silent && !v.nodes()["b"].silent);
    assert_eq!(kinds(&v).iter().filter(|k| **k == "silent").count(), 1);
    state(&mut v, t + ms(10), "c", StateName::None, L, 0, Token::new(0, "c", 0));
    assert!(!v.nodes()["c"].silent);
    assert_eq!(kinds(&v).last(), Some(&"back"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_ring_does_not_make_waiters_silent() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    // One pass every 2 s among three nodes: a node waits 4 s between turns.
    let ids = ["a", "b", "c"];
    for i in 0..10u64 {
        let t = t0 + ms(2000 * (i + 1));
        let (from, to) = (ids[(i % 3) as usize], ids[((i + 1) % 3) as usize]);
        state(&mut v, t, from, O, W, 22, Token::new(22, "a", 1));
        state(&mut v, t, to, W, O, 22, Token::new(22, "a", 1));
        v.tick(t + ms(1900));
    }
    assert!(!kinds(&v).contains(&"silent"), "{:?}", kinds(&v));
}

/// A holder's paced report (section 10): its token, the token's hand-offs
/// and its own holdings.
fn paced(v: &mut RingView, at: Instant, id: &str, change: (StateName, StateName), token: Token, counts: (u64, u64)) {
    let ((old, new), (hops, holdings)) = (change, counts);
    let body = Body::MyState(Box::new(MyState {
        old_state: old.as_wire().into(),
        new_state: new.as_wire().into(),
        progress: Some(token.progress),
        token: Some(token),
        hops: Some(hops),
        holdings: Some(holdings),
        ..Default::default()
    }));
    v.apply(&Message::new(id, body), HOST, at);
}

#[tokio::test(start_paused = true)]
async fn a_sampled_report_shows_one_holder_and_counts_passes_from_hops() {
    // A fast ring: a took the token (hop 0), then only c's entry 100 ms
    // later is reported, 40 hand-offs on. a never said it passed.
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    paced(&mut v, t0 + ms(1), "a", (O, O), Token::new(0, "a", 1), (0, 1));
    let passes_before = v.passes;
    paced(&mut v, t0 + ms(100), "c", (W, O), Token::new(802, "a", 1), (40, 13));
    let holders: Vec<&str> = v.nodes().iter().filter(|(_, n)| n.state == O).map(|(id, _)| id.as_str()).collect();
    assert_eq!(holders, vec!["c"], "a passed the same token on");
    assert_eq!(v.holder_at(t0 + ms(100)), Some("c"));
    assert_eq!(v.nodes()["c"].holdings, 13, "the node's own count");
    assert_eq!(v.passes - passes_before, 40);
    paced(&mut v, t0 + ms(200), "b", (W, O), Token::new(1602, "a", 1), (80, 27));
    assert_eq!(v.passes - passes_before, 80);
    let rate = v.passes_per_second(t0 + ms(1000), Duration::from_secs(1));
    assert!((rate - 80.0).abs() <= 2.0, "about 80 passes in the last second, not 2 reports: {rate}");
}

#[tokio::test(start_paused = true)]
async fn a_holder_of_another_token_stays_a_holder() {
    // Two different tokens are two holders: the view must keep showing both.
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    paced(&mut v, t0 + ms(100), "c", (L, O), Token::new(0, "c", 1), (0, 1));
    let holders = v.nodes().values().filter(|n| n.state == O).count();
    assert_eq!(holders, 2);
}

#[tokio::test(start_paused = true)]
async fn the_named_holder_is_always_drawn_as_holding() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    // a reports it yielded (not a routine pass): nobody is named holder
    // while the view shows nobody in OWNER.
    state(&mut v, t0 + ms(10), "a", O, W, 22, Token::new(22, "a", 1));
    let holder = v.holder_at(t0 + ms(10)).map(str::to_owned);
    if let Some(h) = holder {
        assert_eq!(v.nodes()[&h].state, O, "named {h} but drew it {:?}", v.nodes()[&h].state);
    }
}

#[tokio::test(start_paused = true)]
async fn the_timeline_stays_bounded() {
    let t0 = Instant::now();
    let mut v = RingView::new();
    for i in 0..3 * pi_ring::monitor::view::MAX_INCIDENTS {
        heartbeat(&mut v, t0 + ms(i as u64), &format!("n{i}"), Token::new(22, "n0", 1));
    }
    assert!(v.incidents().len() <= pi_ring::monitor::view::MAX_INCIDENTS, "{}", v.incidents().len());
    assert!(matches!(&v.incidents().last().unwrap().kind, IncidentKind::NodeJoined { node } if node == "n2999"));
    // Readers that follow the timeline by number (the monitor's printer)
    // find every incident the timeline keeps, the last one included.
    let last = v.incidents_dropped() + v.incidents().len() as u64 - 1;
    assert_eq!(last, 3 * pi_ring::monitor::view::MAX_INCIDENTS as u64 - 1);
    assert_eq!(v.incident_number(last), v.incidents().last());
    assert_eq!(v.incident_number(v.incidents_dropped() - 1), None);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_made_up_ids_keeps_the_node_map_bounded_and_the_ring_in_it() {
    use pi_ring::monitor::view::MAX_NODES_SHOWN;
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    for i in 0..20_000u64 {
        let at = t0 + ms(1 + i / 100);
        v.apply(&Message::new(&format!("sybil-{i:05}"), Body::Ping), HOST, at);
        if i % 1_000 == 0 {
            // The ring keeps talking meanwhile.
            for id in ["a", "b", "c"] {
                heartbeat(&mut v, at, id, Token::new(0, "a", 1));
            }
        }
    }
    assert!(v.nodes().len() <= MAX_NODES_SHOWN, "{} nodes", v.nodes().len());
    for id in ["a", "b", "c"] {
        assert!(v.nodes().contains_key(id), "{id} was evicted");
    }
}

/// MY_STATE of a node that says when it started (`started_ms`) and how
/// often it held the token in this life.
fn life_report(view: &mut RingView, at: Instant, id: &str, change: (StateName, StateName), life: (u64, u64, u64)) {
    let (started_ms, timestamp_ms, holdings) = life;
    let body = Body::MyState(Box::new(MyState {
        old_state: change.0.as_wire().into(),
        new_state: change.1.as_wire().into(),
        progress: Some(100),
        token: Some(Token::new(100, "a", 1)),
        timestamp_ms: Some(timestamp_ms),
        holdings: Some(holdings),
        started_ms: Some(started_ms),
        ..Default::default()
    }));
    view.apply(&Message::new(id, body), HOST, at);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_starts_a_new_life_and_its_holdings_go_on_across_lives() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    let first_life = 1_000_000;
    life_report(&mut v, t0 + ms(100), "b", (W, O), (first_life, first_life + 5_000, 7));
    life_report(&mut v, t0 + ms(150), "b", (O, W), (first_life, first_life + 5_050, 7));
    assert_eq!(v.nodes()["b"].holdings, 7);
    assert_eq!(v.nodes()["b"].restarts, 0);
    // Killed (it goes silent), restarted 10 s later: it counts from 0 again.
    for c in ["a", "c"] {
        heartbeat(&mut v, t0 + ms(8_000), c, Token::new(100, "a", 1));
    }
    v.tick(t0 + ms(9_000));
    assert_eq!(kinds(&v).last(), Some(&"silent"));
    let second_life = first_life + 20_000;
    life_report(&mut v, t0 + ms(10_000), "b", (StateName::None, L), (second_life, second_life + 40, 0));
    assert_eq!(kinds(&v)[kinds(&v).len() - 2..], ["back", "restarted"]);
    assert_eq!(v.nodes()["b"].restarts, 1);
    assert_eq!(v.nodes()["b"].restarted_at, Some(t0 + ms(10_000)));
    assert_eq!(v.nodes()["b"].holdings, 7, "the first life's holdings stay counted");
    assert_eq!(v.nodes()["b"].first_holding_after, None);
    // A late report of the first life changes nothing.
    life_report(&mut v, t0 + ms(10_001), "b", (O, W), (first_life, first_life + 5_060, 8));
    assert_eq!((v.nodes()["b"].restarts, v.nodes()["b"].holdings), (1, 7));
    // Its first holding in the new life: timed by its own clock, from its
    // start to the state change, like its log line.
    life_report(&mut v, t0 + ms(10_400), "b", (L, W), (second_life, second_life + 300, 0));
    life_report(&mut v, t0 + ms(10_460), "b", (W, O), (second_life, second_life + 360, 1));
    assert_eq!(v.nodes()["b"].holdings, 8);
    assert_eq!(v.nodes()["b"].first_holding_after, Some(ms(360)));
    let back = v.incidents().iter().rev().find_map(|i| match &i.kind {
        IncidentKind::BackInRotation { node, after } => Some((node.clone(), *after)),
        _ => None,
    });
    assert_eq!(back, Some(("b".to_owned(), ms(360))));
    assert!(v.incidents().iter().any(|i| matches!(&i.kind, IncidentKind::NodeRestarted { node } if node == "b")));
    life_report(&mut v, t0 + ms(12_000), "b", (O, W), (second_life, second_life + 2_000, 5));
    assert_eq!(v.nodes()["b"].holdings, 12);
}

#[tokio::test(start_paused = true)]
async fn a_holdings_count_that_goes_back_is_a_restart_for_nodes_that_do_not_say_when_they_started() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    let counted = |v: &mut RingView, at: Instant, change: (StateName, StateName), holdings: u64| {
        let body = Body::MyState(Box::new(MyState {
            old_state: change.0.as_wire().into(),
            new_state: change.1.as_wire().into(),
            holdings: Some(holdings),
            ..Default::default()
        }));
        v.apply(&Message::new("c", body), HOST, at);
    };
    counted(&mut v, t0 + ms(100), (W, O), 4);
    counted(&mut v, t0 + ms(5_000), (StateName::None, L), 0);
    assert_eq!((v.nodes()["c"].restarts, v.nodes()["c"].holdings), (1, 4));
    counted(&mut v, t0 + ms(5_700), (W, O), 1);
    assert_eq!(v.nodes()["c"].holdings, 5);
    // Timed by the monitor's clock, from when it saw the new life.
    assert_eq!(v.nodes()["c"].first_holding_after, Some(ms(700)));
}

/// A node that computes digits says so in MY_STATE (PROTOCOL section 10):
/// the view shows it until a report without it, and the terminal line
/// says what the ring may be waiting for.
#[tokio::test(start_paused = true)]
async fn a_node_that_computes_digits_is_shown_computing_until_it_says_it_is_done() {
    let t0 = Instant::now();
    let mut v = ring_with_token(t0);
    let computing = |done: u8, urgent: bool| {
        Body::MyState(Box::new(MyState {
            old_state: O.as_wire().into(),
            new_state: O.as_wire().into(),
            progress: Some(1_000_002),
            token: Some(Token::new(1_000_002, "a", 1)),
            computing_to: Some(10_240_000),
            computing_done: Some(done),
            computing_urgent: Some(urgent),
            ..Default::default()
        }))
    };
    v.apply(&Message::new("a", computing(40, true)), HOST, t0 + ms(100));
    let shown = v.nodes()["a"].computing.expect("computing");
    assert_eq!((shown.to_digits, shown.done, shown.urgent), (10_240_000, 40, true));
    let line = v.summary_line(t0 + ms(100));
    assert!(line.ends_with("a: computing digits to 10.2M: 40 %"), "{line}");
    // A stranger's percentage beyond 100 is cut to 100.
    v.apply(&Message::new("a", computing(250, true)), HOST, t0 + ms(150));
    assert_eq!(v.nodes()["a"].computing.map(|c| c.done), Some(100));
    // Any report without it: done.
    state(&mut v, t0 + ms(200), "a", O, W, 1_000_022, Token::new(1_000_022, "a", 1));
    assert_eq!(v.nodes()["a"].computing, None);
    assert!(!v.summary_line(t0 + ms(200)).contains("computing"));
}
