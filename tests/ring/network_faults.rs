//! Real `pi-ring-node` processes on a real (virtual) LAN of 5 hosts built
//! from network namespaces (see `netns/`), with faults injected from
//! outside: SIGKILL of the holder, partitions that heal, UDP packet loss
//! (nftables), and a restart of every node at once with `--data-dir`. An
//! observer on the LAN checks every expansion it hears against pi and
//! measures recoveries.
//!
//! Needs root: ignored otherwise (`sudo cargo test -- --ignored` runs them;
//! CI does). The default runs are
//! short; `PI_RING_CHAOS=1` (or `scripts/chaos.sh`) runs the long ones:
//! 20 kills, repeated partitions, longer loss.

use crate::common::{reference_wire, NodeProcess, Observer, Ports};
use crate::netns::{Lan, BROADCAST};
use pi_ring::protocol::StateName;
use pi_ring_harness::{Seen, FAST_TIMING};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PORTS: Ports = Ports { udp: 23912, tcp: 8239, monitor: 23937 };
/// Holdings of 100 ms, so a holder can be killed while it holds the token.
const HOLD: &[&str] = &["--hold-ms", "100"];
const BOUND: Duration = Duration::from_millis(600);

fn chaos() -> bool {
    std::env::var_os("PI_RING_CHAOS").is_some()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Ring {
    nodes: Vec<NodeProcess>,
    observer: Observer,
    lan: Lan,
    data: Option<PathBuf>,
}

impl Ring {
    fn start(tag: &str, with_data: bool) -> Ring {
        Ring::start_with(tag, with_data, HOLD, |_| {})
    }

    /// A ring whose nodes hold the token `hold` (`--hold-ms N`), on a LAN
    /// that `prepare` sets up before the nodes start.
    fn start_with(tag: &str, with_data: bool, hold: &[&str], prepare: impl FnOnce(&Lan)) -> Ring {
        let lan = Lan::new(tag, 5);
        prepare(&lan);
        let observer = Observer::start_in(PORTS, Some(&lan.observer_ns));
        let data = with_data.then(|| {
            let dir = std::env::temp_dir().join(format!("pi-ring-data-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        });
        let nodes = lan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let id = format!("node{}", i + 1);
                let mut args: Vec<String> = FAST_TIMING.iter().chain(hold).map(|s| s.to_string()).collect();
                if let Some(dir) = &data {
                    args.extend(["--data-dir".to_string(), dir.join(&id).display().to_string()]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                NodeProcess::start_in(Some(&h.ns), &binary(), &id, h.ip, BROADCAST, PORTS, &args)
            })
            .collect();
        let ring = Ring { nodes, observer, lan, data };
        let formed = ring.observer.wait_for(Instant::now() - ms(100), Duration::from_secs(15), |s| s.progress >= 202);
        assert!(formed.is_some(), "the ring did not form and reach 200 digits within 15 s");
        ring
    }

    fn index(&self, id: &str) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// The longest expansion heard so far.
    fn max_progress(&self) -> u64 {
        self.observer.seen().iter().map(|s| s.progress).max().unwrap_or(0)
    }

    /// Wait until `id` takes the token again (after `since`).
    fn held_again(&self, id: &str, since: Instant, within: Duration) -> Option<Seen> {
        self.observer.wait_for(since, within, |s| s.node == id && s.new == StateName::Owner)
    }

    /// Since `since`: the longest time between two holders taking the
    /// token (how long one holder kept it, hand-off attempts included), and
    /// how many tokens were generated.
    fn holdings_since(&self, since: Instant) -> (Duration, usize) {
        let entries: Vec<Seen> =
            self.observer.seen().into_iter().filter(|s| s.at >= since && s.new == StateName::Owner).collect();
        let longest = entries.windows(2).map(|w| w[1].at - w[0].at).max().unwrap_or(Duration::ZERO);
        let longest = longest.max(entries.last().map_or(Duration::ZERO, |s| s.at.elapsed()));
        let generated = entries.iter().filter(|s| s.old == StateName::Generating).count();
        (longest, generated)
    }

    fn check_digits(&self) {
        let wrong = self.observer.wrong();
        assert!(wrong.is_empty(), "expansions that are not pi: {wrong:?}");
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.nodes.clear();
        if let Some(dir) = &self.data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn binary() -> PathBuf {
    crate::common::node_binary()
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn killing_the_holder_repeatedly_loses_no_digits() {
    crate::netns::require_root();
    let kills = if chaos() { 20 } else { 3 };
    let mut ring = Ring::start("k", true);
    let (mut recoveries, mut lost, mut missed) = (Vec::new(), 0u64, 0);
    let mut since = Instant::now();
    for _ in 0..kills {
        let entry = ring
            .observer
            .wait_for(since, Duration::from_secs(10), |s| s.new == StateName::Owner)
            .expect("no holder within 10 s");
        let victim = ring.index(&entry.node);
        let survivors_had =
            ring.observer.seen().iter().filter(|s| s.node != entry.node).map(|s| s.progress).max().unwrap_or(0);
        ring.nodes[victim].kill();
        let killed = Instant::now();
        let regenerated = ring.observer.wait_for(killed, Duration::from_secs(3), |s| {
            s.node != entry.node && s.old == StateName::Generating && s.new == StateName::Owner
        });
        match regenerated {
            Some(r) => {
                recoveries.push((r.at - killed).as_secs_f64());
                lost += survivors_had.saturating_sub(r.progress);
            }
            None => missed += 1, // it had passed the token on before dying
        }
        ring.nodes[victim].restart();
        let back = ring.held_again(&entry.node, Instant::now(), Duration::from_secs(10));
        assert!(back.is_some(), "{} did not hold the token again within 10 s of its restart", entry.node);
        since = Instant::now();
    }
    ring.check_digits();
    let (median, max) = median_max(recoveries.clone());
    eprintln!(
        "FIGURES kills={kills} recoveries={} missed_holder={missed} recovery_median_s={median:.3} recovery_max_s={max:.3} digits_lost={lost}",
        recoveries.len()
    );
    assert_eq!(lost, 0, "digits lost over {kills} kills");
    assert!(!recoveries.is_empty(), "no kill hit a holder");
    assert!(max <= (BOUND + ms(700)).as_secs_f64(), "a recovery took {max:.3} s (bound {BOUND:?} + 0.7 s slack)");
}

/// Partition, wait, heal; returns (time to one token, time until every node
/// held the token again), both from the heal.
fn partition_and_heal(ring: &Ring, side: &[bool], hold_for: Duration) -> (f64, f64) {
    ring.lan.partition(side);
    std::thread::sleep(hold_for);
    ring.lan.heal();
    let healed = Instant::now();
    // Every node back in the rotation.
    let mut back = 0.0f64;
    for node in &ring.nodes {
        let s = ring.held_again(&node.id, healed, Duration::from_secs(10));
        let s = s.unwrap_or_else(|| panic!("{} not back in the rotation 10 s after the heal", node.id));
        back = back.max((s.at - healed).as_secs_f64());
    }
    // One token: after the last OWNER entry carrying another token than
    // the final one, only the final token is seen.
    std::thread::sleep(Duration::from_secs(2));
    let entries: Vec<Seen> =
        ring.observer.seen().into_iter().filter(|s| s.at >= healed && s.new == StateName::Owner).collect();
    let last = entries.last().and_then(|s| s.token.clone()).expect("holders after the heal");
    let one = entries
        .iter()
        .filter(|s| s.token.as_ref() != Some(&last))
        .map(|s| (s.at - healed).as_secs_f64())
        .fold(0.0, f64::max);
    (one, back)
}

#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn partitions_heal_into_one_ring_with_every_node() {
    crate::netns::require_root();
    // Its bound is 1 s. CI measured 2.1 s twice after a split 2|3: the LAN
    // heals a bridge port at a time, and a member whose link came back
    // after both sides' news had gone out stayed behind its backed-off
    // lost marks (PROTOCOL section 10, "Lost marks back off": background
    // PINGs since; the simulation's staggered-heal test reproduces it).
    // One flood at a time all the same: the floods of `strangers.rs` load
    // the same two cores.
    let _turn = crate::common::one_flood_at_a_time();
    let rounds = if chaos() { 5 } else { 1 };
    // Long enough for the lost marks of the other side to back off past
    // the split (0.2 + 0.4 + ... + 3.2 s of `waiter` doublings).
    let split = Duration::from_secs(if chaos() { 10 } else { 6 });
    let ring = Ring::start("p", false);
    let mut figures = Vec::new();
    for _ in 0..rounds {
        // Isolate the holder.
        let holder =
            ring.observer.wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner).unwrap();
        let side: Vec<bool> = ring.nodes.iter().map(|n| n.id != holder.node).collect();
        let before = ring.max_progress();
        let (one, back) = partition_and_heal(&ring, &side, split);
        figures.push(("isolate holder", one, back));
        assert!(ring.max_progress() >= before);
        // Split 2 | 3.
        let (one, back) = partition_and_heal(&ring, &[true, true, false, false, false], split);
        figures.push(("split 2|3", one, back));
    }
    ring.check_digits();
    // After everything, the token carries the longest expansion ever heard.
    let settle = Instant::now();
    let longest = ring.max_progress();
    let caught_up =
        ring.observer.wait_for(settle, Duration::from_secs(5), |s| s.new == StateName::Owner && s.progress >= longest);
    assert!(caught_up.is_some(), "digits lost: no holder reached the longest expansion heard ({longest})");
    for (what, one, back) in &figures {
        eprintln!("FIGURES partition={what:?} one_token_after_heal_s={one:.3} all_back_after_heal_s={back:.3}");
    }
    for (what, one, back) in &figures {
        assert!(*one <= 3.0, "{what}: two tokens for {one:.3} s after the heal");
        // Two heartbeats for the tokens to meet, then about a round of 5
        // holdings of 100 ms (PROTOCOL section 10, "Back from a partition").
        assert!(*back <= 1.0, "{what}: a node held the token again only {back:.3} s after the heal (bound 1 s)");
    }
}

#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn udp_loss_causes_no_digit_loss() {
    crate::netns::require_root();
    let nft = std::process::Command::new("nft").arg("--version").output();
    assert!(nft.is_ok(), "nft (nftables) is missing: install it (.ci/run does)");
    let period = if chaos() { Duration::from_secs(30) } else { Duration::from_secs(5) };
    let ring = Ring::start("l", false);
    for percent in [5, 20] {
        let start = Instant::now();
        let before = ring.max_progress();
        ring.lan.udp_loss(PORTS.udp, percent);
        std::thread::sleep(period);
        ring.lan.udp_loss(PORTS.udp, 0);
        let regenerations = ring
            .observer
            .seen()
            .iter()
            .filter(|s| s.at >= start && s.old == StateName::Generating && s.new == StateName::Owner)
            .count();
        let grown = ring.max_progress() - before;
        eprintln!(
            "FIGURES loss_percent={percent} seconds={} spurious_regenerations={regenerations} digits_grown={grown}",
            period.as_secs()
        );
        assert!(grown > 0, "no progress under {percent}% loss");
    }
    let longest = ring.max_progress();
    let caught_up = ring
        .observer
        .wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner && s.progress >= longest);
    assert!(caught_up.is_some(), "digits lost under loss: no holder reached {longest}");
    ring.check_digits();
}

#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn restarting_every_node_at_once_resumes_from_the_saved_expansions() {
    crate::netns::require_root();
    let mut ring = Ring::start("r", true);
    std::thread::sleep(Duration::from_secs(1));
    for node in ring.nodes.iter_mut() {
        node.kill();
    }
    let dir = ring.data.clone().unwrap();
    let saved: Vec<usize> = ring
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(&n.id).join("expansion.txt")).map(|t| t.len()).unwrap_or(0))
        .collect();
    let longest = *saved.iter().max().unwrap();
    assert!(longest > 200, "nothing was saved: {saved:?}");
    for (node, len) in ring.nodes.iter().zip(&saved) {
        let text = std::fs::read_to_string(dir.join(&node.id).join("expansion.txt")).unwrap();
        assert!(reference_wire().starts_with(&text), "{}'s saved expansion ({len} chars) is not pi", node.id);
    }
    let restarted = Instant::now();
    for node in ring.nodes.iter_mut() {
        node.restart();
    }
    let first = ring
        .observer
        .wait_for(restarted, Duration::from_secs(10), |s| s.new == StateName::Owner)
        .expect("no token within 10 s of restarting every node");
    eprintln!(
        "FIGURES restart_all saved_longest={longest} first_token_progress={} first_token_after_s={:.3}",
        first.progress,
        (first.at - restarted).as_secs_f64()
    );
    assert!(first.progress as usize >= longest, "resumed from {} < {longest} saved", first.progress);
    let grown = ring.observer.wait_for(first.at, Duration::from_secs(5), |s| s.progress as usize >= longest + 100);
    assert!(grown.is_some(), "the ring did not go on after the restart");
    ring.check_digits();
}

/// Two adjacent members powered off (every packet dropped, no reset): the
/// survivors keep passing the token and growing the expansion; after the
/// round that discovers them no holder keeps the token longer than the
/// recovery bound, and nobody regenerates it. Powered on, they rejoin.
#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn powered_off_members_do_not_freeze_the_ring() {
    crate::netns::require_root();
    let period = if chaos() { Duration::from_secs(30) } else { Duration::from_secs(8) };
    let ring = Ring::start("o", false);
    // Two members that do not hold the token now, next to each other.
    let holder = ring.observer.wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner).unwrap();
    let h = ring.index(&holder.node);
    let off = [(h + 1) % 5, (h + 2) % 5];
    for i in off {
        ring.lan.power_off(i);
    }
    // The first round discovers them.
    std::thread::sleep(Duration::from_secs(2));
    let measured = Instant::now();
    let before = ring.max_progress();
    std::thread::sleep(period);
    let (longest, generated) = ring.holdings_since(measured);
    let grown = ring.max_progress() - before;
    eprintln!(
        "FIGURES powered_off=2 seconds={} digits_grown={grown} longest_holding_s={:.3} regenerations={generated}",
        period.as_secs(),
        longest.as_secs_f64()
    );
    assert_eq!(generated, 0, "the survivors regenerated the token");
    assert!(longest <= BOUND, "a holder kept the token {longest:?}, over the recovery bound {BOUND:?}");
    assert!(grown as f64 >= 100.0 * period.as_secs_f64(), "the survivors grew only {grown} characters");
    let on = Instant::now();
    for i in off {
        ring.lan.power_on(i);
    }
    for i in off {
        let id = &ring.nodes[i].id;
        assert!(ring.held_again(id, on, Duration::from_secs(10)).is_some(), "{id} did not rejoin after power-on");
    }
    ring.check_digits();
}

/// A member stopped with SIGSTOP while the expansion is far larger than the
/// socket buffers (4 KiB here, standing in for a 1,000,000-digit expansion
/// with default buffers): its predecessor's hand-off (a delta, which its
/// kernel takes whole, or a whole expansion, which stalls) is not closed by
/// the member, so it gives up after `waiter / 2` and passes the token on;
/// the ring never stalls for longer than the recovery bound and nobody
/// regenerates the token.
#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn a_stopped_member_costs_less_than_a_recovery_even_with_a_large_expansion() {
    crate::netns::require_root();
    let period = if chaos() { Duration::from_secs(60) } else { Duration::from_secs(8) };
    // Every state change reported at once (`--report-ms 0`), so that the
    // observer knows whether the member held the token when it stopped:
    // with deltas the token moves thousands of times a second, and reports
    // of routine hand-offs otherwise come once a second.
    let flags = ["--hold-ms", "0", "--report-ms", "0"];
    let ring = Ring::start_with("s", false, &flags, |lan| lan.small_tcp_buffers(4096));
    let large = 60_000;
    let grown = ring.observer.wait_for(Instant::now(), Duration::from_secs(60), |s| s.progress >= large);
    assert!(grown.is_some(), "the ring did not reach {large} characters within 60 s");
    let holder = ring.observer.wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner).unwrap();
    let victim = (ring.index(&holder.node) + 2) % 5;
    let pid = ring.nodes[victim].pid().expect("running") as libc::pid_t;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = Instant::now();
    let id = ring.nodes[victim].id.clone();
    let before = ring.max_progress();
    std::thread::sleep(period);
    let (longest, generated) = ring.holdings_since(stopped);
    let grown = ring.max_progress() - before;
    let continued = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // With holdings of 0 ms the token moves a thousand times a second: the
    // member may have been stopped while it held the token, which is a
    // holder's failure and costs one recovery. Its own report of taking
    // the token may never have left (stopped just after the hand-off), but
    // its predecessor's says whom it handed the token to.
    let seen = ring.observer.seen();
    let heard = seen.iter().filter(|s| if s.node == id { s.at <= stopped } else { s.at <= continued });
    let held = held_when_stopped(heard, &id);
    let allowed = usize::from(held);
    eprintln!(
        "FIGURES sigstop expansion_chars={before} seconds={} digits_grown={grown} longest_holding_s={:.3} regenerations={generated} stopped_while_holding={held}",
        period.as_secs(),
        longest.as_secs_f64(),
    );
    assert!(generated <= allowed, "the stopped member cost {generated} recoveries (it held the token: {held})");
    if allowed == 0 {
        assert!(longest <= BOUND, "a holder kept the token {longest:?}, over the recovery bound {BOUND:?}");
    }
    assert!(grown > 0, "the ring stalled while a member was stopped");
    let id = &id;
    let resumed = Instant::now();
    assert!(ring.held_again(id, resumed, Duration::from_secs(10)).is_some(), "{id} did not rejoin after SIGCONT");
    ring.check_digits();
}

/// Whether the stopped member `id` held the token: the last hand-off
/// reported that concerns it gave it the token (its own entry into OWNER,
/// or a predecessor's "handed to"), rather than took it away (leaving OWNER,
/// or a successor's "handed by"). A stopped member cannot take a hand-off
/// (it never closes the connection), so reports heard after the stop only
/// tell what happened before it.
fn held_when_stopped<'a>(seen: impl Iterator<Item = &'a pi_ring_harness::Seen>, id: &str) -> bool {
    let mut held = false;
    for s in seen {
        if (s.node == id && s.new == StateName::Owner) || s.handed_to.as_deref() == Some(id) {
            held = true;
        } else if (s.node == id && s.old == StateName::Owner && s.new != StateName::Owner)
            || (s.handed_by.as_deref() == Some(id) && s.node != id)
        {
            held = false;
        }
    }
    held
}

/// 50 nodes on one bridge with the default timeouts: the ring forms, every
/// node holds the token, nothing churns, no honest connection is closed as
/// too slow, and a killed holder is replaced within the bound. Holdings
/// last 200 ms so that each holder is reported and can be killed.
#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn fifty_nodes_on_a_bridge_form_one_ring_without_churn() {
    crate::netns::require_root();
    let count: usize = std::env::var("PI_RING_NETNS_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let lan = Lan::new("ff", count);
    let observer = Observer::start_in(PORTS, Some(&lan.observer_ns));
    let mut nodes: Vec<NodeProcess> = lan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let id = format!("n{:02}", i + 1);
            let args = ["--hold-ms", "200", "--summary-secs", "0"];
            NodeProcess::start_in(Some(&h.ns), &binary(), &id, h.ip, BROADCAST, PORTS, &args)
        })
        .collect();
    let all_started = Instant::now();
    let first = observer.wait_for(all_started - ms(5000), Duration::from_secs(15), |s| s.new == StateName::Owner);
    let Some(first) = first else {
        let seen = observer.seen();
        panic!("no token within 15 s of the last start; {} MY_STATE heard, last {:?}", seen.len(), seen.last());
    };
    let first_token = first.at.saturating_duration_since(all_started);

    // A round is 50 holdings of 200 ms: every node holds within two.
    let holders = || -> (std::collections::BTreeSet<String>, Option<Instant>) {
        let seen: Vec<Seen> = observer.seen().into_iter().filter(|s| s.new == StateName::Owner).collect();
        (seen.iter().map(|s| s.node.clone()).collect(), seen.last().map(|s| s.at))
    };
    let deadline = first.at + Duration::from_secs(30);
    let coverage = loop {
        let (held, last) = holders();
        if held.len() >= nodes.len() {
            break last.map(|t| t - first.at).unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "{} of 50 nodes held the token within two rounds (30 s)", held.len());
        std::thread::sleep(ms(100));
    };

    let regenerated = |since: Instant| {
        observer
            .seen()
            .iter()
            .filter(|s| s.at > since && s.old == StateName::Generating && s.new == StateName::Owner)
            .count()
    };
    let churned = regenerated(first.at);

    // Kill a fresh holder halfway through its holding.
    let entry = observer.wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner).unwrap();
    std::thread::sleep(ms(100));
    let victim = nodes.iter().position(|n| n.id == entry.node).unwrap();
    nodes[victim].kill();
    let killed = Instant::now();
    let id = entry.node.clone();
    let back = observer.wait_for(killed, Duration::from_secs(15), |s| {
        s.node != id && s.old == StateName::Generating && s.new == StateName::Owner
    });
    let recovery = back.map(|s| s.at - killed);
    let too_slow: usize = nodes.iter().map(|n| n.log_text().matches("too slow").count()).sum();
    // The defences against strangers never bite on an honest ring.
    let bitten = pi_ring_harness::defences_bitten(&nodes);
    eprintln!(
        "FIGURES nodes={count} first_token_s={:.2} all_held_after_s={:.2} regenerations_before_kill={churned} recovery_s={:?} too_slow={too_slow} defences_bitten={bitten}",
        first_token.as_secs_f64(),
        coverage.as_secs_f64(),
        recovery.map(|r| r.as_secs_f64())
    );
    assert_eq!(churned, 0, "a healthy ring of 50 regenerated its token");
    assert_eq!(too_slow, 0, "honest connections were closed as too slow");
    assert_eq!(bitten, 0, "a budget or bound meant for strangers bit an honest ring");
    let recovery = recovery.expect("no new token within 15 s of killing the holder");
    assert!(recovery <= Duration::from_millis(7000), "recovery took {recovery:?} (bound 6 s)");
    let wrong = observer.wrong();
    assert!(wrong.is_empty(), "expansions that are not pi: {wrong:?}");
    pi_ring_harness::kill_all(nodes);
    drop(lan);
}

/// Two subnets joined by a router that forwards no broadcast, 3 nodes in
/// each, every node given one seed (the first node of the first subnet)
/// and the observer as its monitor. One ring forms; a killed holder in
/// either subnet is replaced within the bound from the longest expansion;
/// with the router cut for 10 s each side keeps or makes its own token,
/// and after the heal exactly one token survives with the longest
/// expansion. (Without `--peer` the two subnets form two rings.)
#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn two_subnets_joined_by_a_router_form_one_ring_from_seeds() {
    crate::netns::require_root();
    let lan = Lan::routed("sn", 3);
    let observer = Observer::start_in(PORTS, Some(&lan.observer_ns));
    let seed = lan.hosts[0].ip.to_string();
    let started = Instant::now();
    let start = |i: usize| {
        let h = &lan.hosts[i];
        let mut args: Vec<&str> = FAST_TIMING.iter().chain(HOLD).copied().collect();
        args.extend(["--peer", &seed, "--monitor-peer", "10.77.1.200"]);
        NodeProcess::start_in(Some(&h.ns), &binary(), &format!("s{}", i + 1), h.ip, h.broadcast, PORTS, &args)
    };
    let mut nodes: Vec<NodeProcess> = (0..lan.hosts.len()).map(start).collect();

    // One ring: all 6 hold the token.
    let formed = observer.wait_until_all_held(nodes.len(), started, Duration::from_secs(20));

    // Kill the holder, in whichever subnet it is, twice.
    let mut recoveries = Vec::new();
    for _ in 0..2 {
        let holder = observer.wait_for(Instant::now(), Duration::from_secs(5), |s| s.new == StateName::Owner).unwrap();
        let before = observer.seen().iter().filter(|s| s.node != holder.node).map(|s| s.progress).max().unwrap_or(0);
        let victim = nodes.iter().position(|n| n.id == holder.node).unwrap();
        nodes[victim].kill();
        let killed = Instant::now();
        let new = observer.wait_for(killed, Duration::from_secs(10), |s| {
            s.old == StateName::Generating && s.new == StateName::Owner && s.node != holder.node
        });
        let new = new.unwrap_or_else(|| panic!("no new token within 10 s of killing {}", holder.node));
        assert!(new.progress >= before, "digits lost: new token at {} < {before}", new.progress);
        recoveries.push((new.at - killed).as_secs_f64());
        nodes[victim].restart();
        let back = observer
            .wait_for(Instant::now(), Duration::from_secs(10), |s| s.node == holder.node && s.new == StateName::Owner);
        assert!(back.is_some(), "{} did not rejoin after its restart", holder.node);
    }

    // Cut the router for 10 s, then heal it.
    lan.set_router(false);
    std::thread::sleep(Duration::from_secs(10));
    lan.set_router(true);
    let healed = Instant::now();
    let longest = observer.seen().iter().map(|s| s.progress).max().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(4));
    let entries: Vec<Seen> =
        observer.seen().into_iter().filter(|s| s.at >= healed && s.new == StateName::Owner).collect();
    let last = entries.last().and_then(|s| s.token.clone()).expect("holders after the heal");
    let one = entries.iter().filter(|s| s.token.as_ref() != Some(&last)).map(|s| (s.at - healed).as_secs_f64());
    let one = one.fold(0.0, f64::max);
    let survivor = entries.last().unwrap();
    eprintln!(
        "FIGURES subnets formed_s={:.2} recovery_s={recoveries:?} one_token_after_heal_s={one:.2}",
        formed.as_secs_f64()
    );
    assert!(one <= 3.0, "two tokens for {one:.2} s after the heal");
    assert!(survivor.progress >= longest, "the surviving token has {} < {longest} characters", survivor.progress);
    for r in &recoveries {
        assert!(*r <= 1.0, "recovery took {r:.2} s (bound 0.6 s)");
    }
    let wrong = observer.wrong();
    assert!(wrong.is_empty(), "expansions that are not pi: {wrong:?}");
    drop(nodes);
    drop(lan);
}

/// `--no-broadcast` on a flat bridge: the same ring from one seed, and not
/// one broadcast datagram on the bridge (the observer's host, which runs
/// no node, hears everything broadcast on it).
#[test]
#[ignore = "needs root: builds network namespaces (sudo cargo test -- --ignored); CI runs it"]
fn a_ring_without_broadcast_on_a_bridge_sends_no_broadcast() {
    crate::netns::require_root();
    let lan = Lan::new("nb", 4);
    let observer = Observer::start_in(PORTS, Some(&lan.observer_ns));
    let (broadcasts, stop) = pi_ring_harness::count_datagrams(PORTS.udp, Some(&lan.observer_ns));
    let seed = lan.hosts[0].ip.to_string();
    let started = Instant::now();
    let nodes: Vec<NodeProcess> = lan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut args: Vec<&str> = FAST_TIMING.iter().chain(HOLD).copied().collect();
            args.extend(["--no-broadcast", "--peer", &seed, "--monitor-peer", "10.77.0.200"]);
            NodeProcess::start_in(Some(&h.ns), &binary(), &format!("nb{}", i + 1), h.ip, BROADCAST, PORTS, &args)
        })
        .collect();
    let all_held = observer.wait_until_all_held(nodes.len(), started, Duration::from_secs(20));
    eprintln!("FIGURES no_broadcast all_held_s={:.2}", all_held.as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = broadcasts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent, 0, "{sent} datagrams broadcast on the bridge with --no-broadcast");
    let wrong = observer.wrong();
    assert!(wrong.is_empty(), "expansions that are not pi: {wrong:?}");
}
