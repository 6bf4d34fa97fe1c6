//! Rings without broadcast, on loopback: every node is started with
//! `--no-broadcast`, one seed peer and a monitor to report to. The ring
//! forms from unicast alone, passes correct digits, recovers from a killed
//! holder, follows a node that restarts at a new address, and sends not
//! one broadcast datagram.

use crate::common::{fresh_host, start_node, Observer, Ports};
use pi_ring::protocol::StateName;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[test]
fn a_ring_without_broadcast_forms_from_one_seed_and_recovers() {
    let ports = Ports::free();
    let observer = Observer::start(ports);
    // Broadcasts reach a socket on 0.0.0.0; unicast goes to each node's own.
    let (broadcasts, stop_counting) = pi_ring_harness::count_datagrams(ports.udp, None);
    let hosts: Vec<_> = (0..4).map(|_| fresh_host()).collect();
    let seed = hosts[0].to_string();
    let mut args = vec!["--no-broadcast", "--peer", &seed, "--monitor-peer", "127.0.0.1", "--hold-ms", "100"];
    args.extend_from_slice(pi_ring_harness::QUICK_TIMING);
    let t0 = Instant::now();
    let mut nodes: Vec<_> =
        hosts.iter().enumerate().map(|(i, host)| start_node(&format!("u{i}"), *host, ports, &args)).collect();

    // Every node holds the token: the ring formed from the seed alone.
    let formed = observer.wait_until_all_held(nodes.len(), t0, Duration::from_secs(20));
    eprintln!("all {} nodes held the token {:.2} s after start", nodes.len(), formed.as_secs_f64());

    // Kill the holder: a survivor makes a new token within the bound.
    let holder = observer.steady_holder(8, Duration::from_secs(5)).expect("one token passed 8 times in a row");
    let victim = nodes.iter().position(|n| n.id == holder.node).unwrap();
    nodes[victim].kill();
    let killed = Instant::now();
    let regenerated = observer.wait_for(killed, Duration::from_secs(10), |s| {
        s.old == StateName::Generating && s.new == StateName::Owner && s.node != holder.node
    });
    let recovery = regenerated.expect("no new token within 10 s of killing the holder").at - killed;
    eprintln!("recovered {:.2} s after the kill (bound 1.2 s)", recovery.as_secs_f64());
    assert!(recovery <= Duration::from_millis(1500), "recovery took {recovery:?}");

    // A node (not the seed) restarts at a new address: its id is stable,
    // and the ring follows it there.
    let mover = (1..nodes.len()).find(|&i| i != victim).unwrap();
    let id = nodes[mover].id.clone();
    nodes[mover].kill();
    let new_host = fresh_host();
    let moved = Instant::now();
    // Seeds that live: every other original address (the first seed may
    // be the holder killed above).
    let others: Vec<String> = (0..hosts.len()).filter(|&i| i != mover).map(|i| hosts[i].to_string()).collect();
    let mut mover_args = args.clone();
    for host in &others {
        mover_args.extend(["--peer", host.as_str()]);
    }
    nodes.push(start_node(&id, new_host, ports, &mover_args));
    let back = observer.wait_for(moved, Duration::from_secs(15), |s| s.node == id && s.new == StateName::Owner);
    let back = back.unwrap_or_else(|| panic!("{id} did not hold the token within 15 s of restarting at {new_host}"));
    eprintln!("{id} held the token {:.2} s after restarting at a new address", (back.at - moved).as_secs_f64());

    assert!(observer.wrong().is_empty(), "expansions that are not pi: {:?}", observer.wrong());
    stop_counting.store(true, Ordering::Relaxed);
    let sent = broadcasts.load(Ordering::Relaxed);
    assert_eq!(sent, 0, "{sent} broadcast datagrams on the ring port with --no-broadcast");
}
