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

#[test]
fn pi_ring_node_passes_every_conformance_case() {
    let template = format!(
        "{} --id {{id}} --bind {{host}} --broadcast {{broadcast}} --udp-port {{udp}} --tcp-port {{tcp}} \
         --monitor-port {{monitor}} --heartbeat-ms {{heartbeat_ms}} --waiter-ms {{waiter_ms}} \
         --looser-ask-ms {{looser_ask_ms}} --looser-answer-ms {{looser_answer_ms}} --generating-ms {{generating_ms}}",
        env!("CARGO_BIN_EXE_pi-ring-node")
    );
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
