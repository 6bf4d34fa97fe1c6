//! Helpers for tests that run real node processes (see `pi_ring_harness`).

#![allow(dead_code)]

#[allow(unused_imports)] // not every test uses every helper
pub use pi_ring_harness::{fresh_host, http, reference_wire, Killed, NodeProcess, Observer, Ports};
use std::net::Ipv4Addr;
use std::path::Path;

/// The `pi-ring-node` under test: this build's, or the one named by
/// `PI_RING_NODE_BIN` (to show that a test fails on another build, such as
/// an older commit's).
pub fn node_binary() -> std::path::PathBuf {
    std::env::var_os("PI_RING_NODE_BIN")
        .map_or_else(|| Path::new(env!("CARGO_BIN_EXE_pi-ring-node")).to_owned(), Into::into)
}

/// Start the `pi-ring-node` under test.
pub fn start_node(id: &str, host: Ipv4Addr, ports: Ports, extra: &[&str]) -> NodeProcess {
    NodeProcess::start(&node_binary(), id, host, ports, extra)
}

/// Tests that flood a ring and measure its pace take turns: two at once on
/// two cores would measure each other. So do tests that hold a ring to a
/// bound of a fraction of a second: a flood beside them takes their cores.
pub fn one_flood_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
