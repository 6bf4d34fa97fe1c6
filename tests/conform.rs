//! `pi-ring-node` keeps the protocol: every case of `pi-ring-conform`,
//! the optional ones and pi-ring's own additions included, passes against
//! it, spawned by the tool as its README shows. A test binary of its own,
//! so that no other test's nodes share the two cores while the cases time
//! the node.

use pi_ring_conform::lab::Ports;
use pi_ring_conform::report::{case_lines, Outcome};
use pi_ring_conform::subject::{Running, Spawned, Timing};
use pi_ring_conform::{run, select, Plan};
use pi_ring_harness::{fresh_host, NodeProcess};
use std::sync::{Mutex, MutexGuard};

/// The cases time the node: one run at a time on the two cores.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `--spawn` template for `pi-ring-node`, every placeholder passed on.
fn node_template() -> String {
    format!(
        "{} --id {{id}} --bind {{host}} --broadcast {{broadcast}} --udp-port {{udp}} --tcp-port {{tcp}} \
         --monitor-port {{monitor}} --heartbeat-ms {{heartbeat_ms}} --waiter-ms {{waiter_ms}} \
         --looser-ask-ms {{looser_ask_ms}} --looser-answer-ms {{looser_answer_ms}} --generating-ms {{generating_ms}}",
        env!("CARGO_BIN_EXE_pi-ring-node")
    )
}

#[test]
fn pi_ring_node_passes_every_conformance_case() {
    let _turn = one_at_a_time();
    let template = node_template();
    let plan = Plan { timing: Timing::quick(), ..Plan::default() };
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conform");
    let cases = select(&[], true).expect("every case");
    let report = run(&mut Spawned::new(&template, logs), &cases, &plan, |result| print!("{}", case_lines(result)));
    println!("{}", report.last_line());
    assert_eq!(report.failed_ids(), Vec::<&str>::new(), "\n{}", report.text());
    assert_eq!((report.passed(), report.skipped()), (cases.len(), 0));
}

/// `--target`: a node already running (here alone, so it holds a token and
/// heart-beats) is tested by the cases that need no cold start; the others
/// are skipped, each saying why.
#[test]
fn a_running_node_is_tested_by_the_cases_that_need_no_cold_start() {
    let _turn = one_at_a_time();
    let ports = Ports::free().expect("free ports");
    let host = fresh_host();
    let t = Timing::quick();
    let flags = [
        ("--heartbeat-ms", t.heartbeat),
        ("--waiter-ms", t.waiter),
        ("--looser-ask-ms", t.looser_ask),
        ("--looser-answer-ms", t.looser_answer),
        ("--generating-ms", t.generating),
    ];
    let flags: Vec<String> = flags.iter().flat_map(|(f, d)| [f.to_string(), d.as_millis().to_string()]).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let harness_ports = pi_ring_harness::Ports { udp: ports.udp, tcp: ports.tcp, monitor: ports.monitor };
    let _node = NodeProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_pi-ring-node")),
        "running",
        host,
        harness_ports,
        &flags,
    );
    let plan = Plan { timing: t, target: Some((host, ports)), ..Plan::default() };
    let cases = select(&[], true).expect("every case");
    let report = run(&mut Running { host }, &cases, &plan, |result| print!("{}", case_lines(result)));
    println!("{}", report.last_line());
    assert_eq!(report.failed_ids(), Vec::<&str>::new(), "\n{}", report.text());
    let ran: Vec<&str> = report.results.iter().filter(|r| r.outcome == Outcome::Passed).map(|r| r.case.id).collect();
    assert_eq!(ran, ["5.2", "5.3", "6.1"]);
    assert_eq!(report.skipped(), cases.len() - ran.len());
}

/// `--netns`: in a network namespace of the tool's own, a node told to
/// broadcast to 255.255.255.255 is heard by the peers and hears theirs,
/// and nothing it sends can leave (the namespace has no other interface).
/// It must not run on the host's own network, where a broadcast to
/// 255.255.255.255 may leave by a real interface.
#[test]
#[ignore = "needs root: creates a network namespace (sudo cargo test -- --ignored); CI runs it"]
fn in_a_namespace_of_its_own_a_node_that_broadcasts_to_255_255_255_255_keeps_the_rules() {
    pi_ring_harness::netns::require_root();
    let _turn = one_at_a_time();
    // The namespace is this thread's and its children's: the other tests
    // of this binary stay on the host's network.
    let report = std::thread::spawn(|| {
        pi_ring_conform::netns::enter_private_network().expect("a private network namespace");
        let links = std::process::Command::new("ip").args(["-o", "link"]).output().expect("ip -o link");
        let links = String::from_utf8_lossy(&links.stdout).into_owned();
        assert_eq!(links.lines().count(), 1, "only the loopback: {links}");
        assert!(links.contains(": lo:"), "{links}");
        let plan = Plan { timing: Timing::quick(), broadcast: std::net::Ipv4Addr::BROADCAST, target: None };
        let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conform-netns");
        let names: Vec<String> = ["3.1", "5.1", "6.1", "7.1", "7.10", "7.11", "8.1"].map(String::from).into();
        let cases = select(&names, true).expect("known cases");
        run(&mut Spawned::new(&node_template(), logs), &cases, &plan, |result| print!("{}", case_lines(result)))
    })
    .join()
    .expect("the run in the namespace");
    println!("{}", report.last_line());
    assert_eq!(report.failed_ids(), Vec::<&str>::new(), "\n{}", report.text());
    assert_eq!(report.passed(), 7);
}
