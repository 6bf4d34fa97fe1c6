//! Recording and replay: a monitor that replays what a live monitor
//! recorded shows, at every moment the live one ticked, the same figures and
//! the same incidents (`pi-ring-monitor --record`, `--replay`).

use pi_ring::monitor::record::{Heard, Recording};
use pi_ring::monitor::web::{RecordTo, Shared};
use pi_ring::protocol::{Body, Message, MyState, StateName, Token};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use StateName::{Generating as G, Looser as L, Owner as O, Waiter as W};

fn host(id: &str) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (id.as_bytes()[0] - b'a'))
}

fn my_state(id: &str, old: StateName, new: StateName, token: Token, holdings: u64, started_ms: u64) -> Message {
    Message::new(
        id,
        Body::MyState(Box::new(MyState {
            old_state: old.as_wire().into(),
            new_state: new.as_wire().into(),
            progress: Some(token.progress),
            token: Some(token),
            holdings: Some(holdings),
            started_ms: Some(started_ms),
            ..Default::default()
        })),
    )
}

/// A fault story in 10 ms steps: three nodes, a token going round, its
/// holder c killed at 3 s, a and b searching, b claiming and regenerating,
/// c restarted at 6 s. What each step says, by step.
fn story(step: u64) -> Vec<(Heard, Message)> {
    let t = step * 10;
    let token = |p: u64, author: &str, revision: u64| Token::new(p as usize, author, revision);
    let mut out = Vec::new();
    let mut state = |id: &str, old, new, tok: Token, h, started| {
        out.push((Heard::Monitor, my_state(id, old, new, tok, h, started)));
    };
    match t {
        0 => {
            for id in ["a", "b", "c"] {
                state(id, StateName::None, L, token(0, id, 0), 0, 1);
            }
        }
        400 => state("a", L, G, token(0, "a", 1), 0, 1),
        600 => {
            state("a", G, O, token(0, "a", 1), 1, 1);
            state("b", L, W, token(0, "a", 1), 0, 1);
            state("c", L, W, token(0, "a", 1), 0, 1);
        }
        // The token goes round every 100 ms until c, holding it, dies.
        700..=2900 if t.is_multiple_of(100) => {
            let holder = ["a", "b", "c"][((t - 600) / 100 % 3) as usize];
            let hops = (t - 600) / 100;
            state(holder, W, O, token(2 + 20 * hops, "a", 1), hops / 3 + 1, 1);
        }
        3400 => {
            state("a", W, L, token(440, "a", 1), 8, 1);
            state("b", W, L, token(440, "a", 1), 8, 1);
        }
        3500 | 3600 => out.push((Heard::Ring, Message::new("a", Body::WhereIsToken))),
        3900 => {
            state("b", L, G, token(440, "b", 1), 8, 1);
            out.push((Heard::Ring, Message::new("b", Body::GeneratingToken { token: token(440, "b", 1) })));
        }
        4100 => {
            state("b", G, O, token(440, "b", 1), 9, 1);
            state("a", L, W, token(440, "b", 1), 8, 1);
        }
        6000 => state("c", StateName::None, L, token(0, "c", 0), 0, 6000),
        _ => {}
    }
    // The holder heart-beats on the ring port.
    if t % 100 == 50 && (700..3000).contains(&t) {
        let holder = ["a", "b", "c"][((t - 650) / 100 % 3) as usize];
        out.push((Heard::Ring, Message::new(holder, Body::TokenIsHere { token: token(0, "a", 1) })));
    }
    if t % 100 == 50 && t >= 4100 {
        out.push((Heard::Ring, Message::new("b", Body::TokenIsHere { token: token(440, "b", 1) })));
    }
    out
}

fn without_mode(mut ring: Value) -> Value {
    ring.as_object_mut().unwrap().remove("mode");
    ring
}

#[tokio::test(start_paused = true)]
async fn a_replay_shows_at_every_tick_what_the_live_monitor_showed() {
    let dir = std::env::temp_dir().join(format!("pi-ring-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("story.jsonl");
    let live = Shared::recording(&RecordTo { path: path.clone(), max_bytes: 10_000_000, keep: 0 }).unwrap();
    let mut seen = Vec::new(); // (unix ms of the tick, ring, incidents)
    let mut printed = Vec::new();
    for step in 0..=900u64 {
        if step > 0 {
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        for (port, message) in story(step) {
            let from = host(&message.author);
            live.hear(port, &message, from);
        }
        if step % 25 == 0 {
            printed.extend(live.tick());
            let ring = live.ring_json();
            seen.push((ring["now_ms"].as_u64().unwrap(), without_mode(ring), live.incidents_json()));
        }
    }
    let incidents = live.incidents_json();
    let kinds: Vec<&str> =
        incidents.as_array().unwrap().iter().map(|i| i["detail"]["kind"].as_str().unwrap()).collect();
    for kind in ["first_token", "token_lost", "node_silent", "node_restarted"] {
        assert!(kinds.contains(&kind), "the story has no {kind}: {kinds:?}");
    }
    drop(live); // flushed at every tick

    let recording = Recording::load(std::slice::from_ref(&path)).unwrap();
    assert_eq!(recording.skipped, 0);
    let replay = Shared::replay(recording);
    let mut replayed = Vec::new();
    for (at_ms, ring, incidents) in &seen {
        replay.replay_control(Some(*at_ms as f64), None, None);
        assert_eq!(&without_mode(replay.ring_json()), ring, "the figures at {at_ms}");
        assert_eq!(&replay.incidents_json(), incidents, "the incidents at {at_ms}");
        replayed.push(at_ms);
    }
    assert_eq!(replay.ring_json()["mode"], "replay");
    // Back to the start and through again (a seek back starts afresh).
    let (at_ms, ring, _) = &seen[seen.len() / 2];
    replay.replay_control(Some(*at_ms as f64), None, None);
    assert_eq!(&without_mode(replay.ring_json()), ring, "after a seek back");
    // Played through, the replay prints what the live monitor printed.
    let again = Shared::replay(Recording::load(std::slice::from_ref(&path)).unwrap());
    again.replay_control(None, Some(true), Some(1000.0));
    let mut told = Vec::new();
    for _ in 0..100 {
        told.extend(again.replay_advance(Duration::from_millis(50)));
    }
    assert_eq!(told, printed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_space_time_trace_holds_what_the_view_draws() {
    let live = Shared::new(pi_ring::monitor::RingView::new());
    for step in 0..=420u64 {
        if step > 0 {
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        for (port, message) in story(step) {
            live.hear(port, &message, host(&message.author));
        }
    }
    let trace = live.trace_json(None, None);
    let events = trace["events"].as_array().unwrap();
    let has = |k: &str, n: &str| events.iter().any(|e| e["k"] == k && e["n"] == n);
    assert!(has("s", "b") && has("hb", "a") && has("w", "a") && has("g", "b"), "{trace}");
    let claim = events.iter().find(|e| e["k"] == "s" && e["s"] == "GENERATING" && e["n"] == "b").unwrap();
    assert_eq!(claim["o"], "LOOSER");
    // Numbered in order; "after" returns only the newer ones.
    let last = events.last().unwrap()["i"].as_u64().unwrap();
    assert_eq!(trace["next"].as_u64().unwrap(), last + 1);
    let newer = live.trace_json(Some(last - 2), None);
    assert_eq!(newer["events"].as_array().unwrap().len(), 2);
    // A window of time: the claim's moment alone.
    let t = claim["t"].as_f64().unwrap();
    let window = live.trace_json(None, Some((t, t)));
    assert!(window["events"].as_array().unwrap().iter().all(|e| e["t"].as_f64() == Some(t)), "{window}");
}
