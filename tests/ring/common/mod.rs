//! Helpers for tests that run real node processes (see `pi_ring_harness`).

#![allow(dead_code)]

#[allow(unused_imports)] // not every test uses every helper
pub use pi_ring_harness::{fresh_host, reference_wire, NodeProcess, Observer, Ports};
use std::net::Ipv4Addr;
use std::path::Path;

/// Start this build's `pi-ring-node`.
pub fn start_node(id: &str, host: Ipv4Addr, ports: Ports, extra: &[&str]) -> NodeProcess {
    NodeProcess::start(Path::new(env!("CARGO_BIN_EXE_pi-ring-node")), id, host, ports, extra)
}
