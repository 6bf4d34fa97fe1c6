//! Real `pi-ring-node` processes on 127.0.0.x: a 3-node ring passes the
//! token with correct digits, survives garbage from the network, and
//! recovers when the holder is killed with SIGKILL.
//!
//! Short timeouts keep this test to a few seconds; every wait is bounded.

use crate::common::{fresh_host, start_node, NodeProcess, Observer, Ports};
use pi_ring::protocol::StateName;
use pi_ring_harness::QUICK_TIMING;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// The timeouts of `QUICK_TIMING`.
const HEARTBEAT_MS: u64 = 100;
const WAITER_MS: u64 = 400;
const LOOSER_ANSWER_MS: u64 = 400;
const GENERATING_MS: u64 = 400;

/// Three nodes with the quick profile (whose timeouts are the constants
/// above) and holdings of `hold_ms`, on free ports and fresh addresses.
fn start_ring(hold_ms: u64) -> (Ports, Observer, Vec<NodeProcess>, Instant) {
    let ports = Ports::free();
    let observer = Observer::start(ports);
    let hold = hold_ms.to_string();
    let mut args = vec!["--hold-ms", hold.as_str()];
    args.extend_from_slice(QUICK_TIMING);
    let nodes = (1..=3).map(|i| start_node(&format!("n{i}"), fresh_host(), ports, &args)).collect();
    (ports, observer, nodes, Instant::now())
}

#[test]
fn three_node_ring_passes_correct_digits_and_recovers_from_a_killed_holder() {
    let (ports, observer, mut nodes, t0) = start_ring(100);

    // The ring forms and the token travels: every node holds it.
    let first = observer.wait_for(t0, Duration::from_secs(10), |s| s.new == StateName::Owner);
    let first = first.expect("no node became OWNER within 10 s");
    eprintln!("first token after {:.2} s at {}", (first.at - t0).as_secs_f64(), first.node);
    for node in &nodes {
        let held = observer.wait_for(t0, Duration::from_secs(10), |s| s.node == node.id && s.new == StateName::Owner);
        assert!(held.is_some(), "{} never held the token", node.id);
    }

    let grown = observer.wait_for(t0, Duration::from_secs(10), |s| s.progress >= 202);
    assert!(grown.is_some(), "the ring did not reach 200 digits within 10 s");

    // Garbage from the network is dropped; the ring goes on.
    let garbage = UdpSocket::bind("127.0.0.1:0").unwrap();
    garbage.set_broadcast(true).unwrap();
    for bytes in [&b"hello"[..], b"{\"type\": \"take token\"", b"[1,2,3]", &[0xff; 3000]] {
        garbage.send_to(bytes, ("127.255.255.255", ports.udp)).unwrap();
    }
    for node in &nodes {
        use std::io::Write;
        let mut s = TcpStream::connect((node.host, ports.tcp)).unwrap();
        s.write_all(b"{\"serial_code\": 137344, \"type\": \"take token\", \"author_node_id\": \"x\"}").unwrap();
    }
    let after_garbage = Instant::now();
    for node in &nodes {
        let held = observer
            .wait_for(after_garbage, Duration::from_secs(5), |s| s.node == node.id && s.new == StateName::Owner);
        assert!(held.is_some(), "{} stopped taking part after garbage input", node.id);
    }

    // Kill the holder right after it takes the token.
    let entry = observer
        .wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner && s.old == StateName::Waiter)
        .expect("the token stopped moving");
    let victim = nodes.iter().position(|n| n.id == entry.node).unwrap();
    nodes[victim].kill();
    let killed_at = Instant::now();
    let victim_id = nodes[victim].id.clone();
    // What the survivors had: the longest expansion any of them announced.
    let survivors_had = observer.seen().iter().filter(|s| s.node != victim_id).map(|s| s.progress).max().unwrap_or(0);
    eprintln!("killed holder {victim_id} at progress {} (survivors had {survivors_had})", entry.progress);

    let bound = Duration::from_millis(WAITER_MS + LOOSER_ANSWER_MS + GENERATING_MS);
    let recovered = observer
        .wait_for(killed_at, bound * 4, |s| {
            s.node != victim_id && s.old == StateName::Generating && s.new == StateName::Owner
        })
        .expect("no survivor regenerated the token");
    let recovery = recovered.at - killed_at;
    eprintln!(
        "recovered by {} after {:.3} s (bound {:.1} s)",
        recovered.node,
        recovery.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(
        recovery <= bound + Duration::from_millis(600),
        "recovery took {recovery:?}, more than waiter + looser_answer + generating = {bound:?} plus 0.6 s slack"
    );
    assert!(recovered.progress >= survivors_had, "digits lost: new token at {} < {survivors_had}", recovered.progress);

    // The expansion continues from there, passing between the survivors.
    let grown = observer.wait_for(recovered.at, Duration::from_secs(5), |s| s.progress >= recovered.progress + 60);
    assert!(grown.is_some(), "the expansion stopped growing after recovery");

    // Every expansion overheard, from start to end, was pi.
    let wrong = observer.wrong();
    assert!(wrong.is_empty(), "wrong digits seen: {wrong:?}");
    let seen = observer.seen();
    assert!(seen.len() > 20, "only {} state changes observed", seen.len());
}

/// A healthy ring never loses its token, even when holdings last longer
/// than the heartbeat (a holder's last heartbeat then often arrives after
/// its hand-off); and SIGTERM of the holder costs one hand-off, not a
/// recovery: the next holder takes the token from it, nobody regenerates.
#[test]
fn a_healthy_ring_keeps_its_token_and_a_stopped_holder_hands_it_on() {
    let (_, observer, mut nodes, t0) = start_ring(3 * HEARTBEAT_MS);
    let first = observer.wait_for(t0, Duration::from_secs(10), |s| s.new == StateName::Owner);
    let first = first.expect("no node became OWNER within 10 s");
    // Six seconds of holdings of 300 ms with 100 ms heartbeats: some 20
    // hand-offs, each followed by a late heartbeat at the next holder.
    std::thread::sleep(Duration::from_secs(6));
    let regenerated = |since: Instant| {
        observer
            .seen()
            .iter()
            .filter(|s| {
                s.at > since
                    && (s.new == StateName::Generating || (s.old == StateName::Waiter && s.new == StateName::Looser))
            })
            .count()
    };
    let healthy_since = first.at + Duration::from_millis(10);
    let passes = observer.seen().iter().filter(|s| s.at > healthy_since && s.new == StateName::Owner).count();
    assert!(passes >= 10, "only {passes} holdings in 6 s");
    assert_eq!(regenerated(healthy_since), 0, "a healthy ring regenerated or searched its token");

    for round in 0..3 {
        let entry = observer
            .wait_for(Instant::now(), Duration::from_secs(5), |s| {
                s.new == StateName::Owner && s.old == StateName::Waiter
            })
            .expect("the token stopped moving");
        let victim = nodes.iter().position(|n| n.id == entry.node).unwrap();
        let stopped_at = Instant::now();
        assert!(nodes[victim].terminate(Duration::from_secs(5)), "{} did not exit on SIGTERM", entry.node);
        let next = observer
            .wait_for(stopped_at, Duration::from_secs(5), |s| s.node != entry.node && s.new == StateName::Owner)
            .expect("nobody took the token");
        eprintln!(
            "round {round}: SIGTERM of {} -> {} held the token {:.1} ms later (from {})",
            entry.node,
            next.node,
            (next.at - stopped_at).as_secs_f64() * 1000.0,
            next.old
        );
        assert_eq!(next.old, StateName::Waiter, "the token was regenerated, not handed on");
        assert!(next.progress >= entry.progress, "digits lost in the hand-off");
        let log = nodes[victim].log_text();
        assert!(log.contains("handing the token on"), "the stopped node did not say so:\n{log}");
        nodes[victim].restart();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(regenerated(healthy_since), 0, "a planned stop cost a recovery");
    let wrong = observer.wrong();
    assert!(wrong.is_empty(), "wrong digits seen: {wrong:?}");
}
