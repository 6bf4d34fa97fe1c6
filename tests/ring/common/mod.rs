//! Helpers for tests that run real node processes (see `pi_ring_harness`).

#![allow(dead_code)]

#[allow(unused_imports)] // not every test uses every helper
pub use pi_ring_harness::{fresh_host, reference_wire, NodeProcess, Observer, Ports};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

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

/// Kills a helper process when the test ends, even on failure.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on loopback; the response body, or None if the
/// server is not up.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    // Read the head, then exactly Content-Length bytes (chromedriver keeps
    // the connection open), or to the end without one.
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while data.len() < head_end + len {
                let n = s.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut data).ok()?;
        }
    }
    Some(String::from_utf8_lossy(&data[head_end..]).into_owned())
}
