//! `pi-ring-monitor`'s API against what the nodes themselves log: a real
//! ring and monitor on loopback addresses and ports of their own.

use crate::common::{fresh_host, http, start_node, Killed, Ports};
use pi_ring_harness::FAST_TIMING;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `/api/ring`'s entry for `id`, if the monitor answers and knows it.
fn node_in_api(http_addr: &str, id: &str) -> Option<Value> {
    let ring: Value = serde_json::from_str(&http(http_addr, "GET", "/api/ring", None)?).ok()?;
    ring["nodes"].as_array()?.iter().find(|n| n["id"] == id).cloned()
}

/// Poll the API (bounded) until `id`'s entry satisfies `ok`.
fn wait_for_node(http_addr: &str, id: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(node) = node_in_api(http_addr, id).filter(|n| ok(n)) {
            return Some(node);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The seconds of the node's "took the token for the first time since its
/// start, X s after it" lines.
fn first_holdings_logged(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split("for the first time since its start, ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

/// A node killed and restarted is a new life for the monitor: its
/// holdings go on from where they were (not from 0, nor standing still
/// until the new count passes the old one), and the time from its start to
/// its first holding is the one its own log gives.
#[test]
fn a_restarted_node_is_back_in_the_rotation_as_its_log_says_and_its_holdings_go_on() {
    let ports = Ports::free();
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string();
    let args: Vec<&str> = FAST_TIMING.iter().copied().chain(["--hold-ms", "50"]).collect();
    let mut nodes: Vec<_> = (1..=3).map(|i| start_node(&format!("node{i}"), fresh_host(), ports, &args)).collect();
    let monitor = Command::new(env!("CARGO_BIN_EXE_pi-ring-monitor"))
        .args([
            "--http",
            &http_addr,
            "--udp-port",
            &ports.udp.to_string(),
            "--monitor-port",
            &ports.monitor.to_string(),
        ])
        .args(["--every", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pi-ring-monitor");
    let _monitor = Killed(monitor);

    let held = |n: &Value| n["holdings"].as_u64().unwrap_or(0);
    let before = wait_for_node(&http_addr, "node2", Duration::from_secs(15), |n| held(n) >= 5)
        .expect("the monitor did not see node2 hold the token 5 times within 15 s");
    assert_eq!(before["restarts"], 0);
    nodes[1].kill();
    // Its last report before the kill is what the monitor has of its first
    // life (reports of routine hand-offs come once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let first_life = node_in_api(&http_addr, "node2").map(|n| held(&n)).expect("node2 in the API");
    nodes[1].restart();

    let back = wait_for_node(&http_addr, "node2", Duration::from_secs(10), |n| {
        n["restarts"] == 1 && n["first_holding_after_start_s"].is_f64()
    })
    .unwrap_or_else(|| {
        panic!("the monitor did not see node2 restart and hold the token within 10 s; log:\n{}", nodes[1].log_tail())
    });
    let api = back["first_holding_after_start_s"].as_f64().unwrap();
    let logged = first_holdings_logged(&nodes[1].log_text());
    assert_eq!(logged.len(), 2, "one first holding logged per life: {logged:?}");
    let log = logged[1];
    eprintln!("FIGURES restart first_holding_after_start_s api={api:.3} log={log:.3}");
    assert!((api - log).abs() <= 0.2, "the API says {api:.3} s, the node's log {log:.3} s");
    assert!(held(&back) > first_life, "holdings {} after the restart, {first_life} before it", held(&back));
    // And they keep counting: this life's count, on top of the first's.
    let later = wait_for_node(&http_addr, "node2", Duration::from_secs(10), |n| held(n) >= first_life + 5);
    assert!(later.is_some(), "node2's holdings did not go on past {first_life} + 5 within 10 s");
}
