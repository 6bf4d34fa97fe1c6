//! Recordings of a live fault story and their replays: a real ring and
//! `pi-ring-monitor --record` on loopback, then `pi-ring-monitor --replay`
//! of the file.

use crate::common::{fresh_host, http, start_node, Killed, NodeProcess, Ports};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A recorded fault story: three nodes, the holder killed, the recovery,
/// the killed node restarted and back in the rotation.
pub struct Story {
    pub file: PathBuf,
    pub ids: Vec<String>,
    pub killed: String,
    /// `/api/incidents` of the live monitor at `live_now_ms`.
    pub live_incidents: Value,
    pub live_now_ms: u64,
    /// The recording's lines, parsed.
    pub lines: Vec<Value>,
    pub started_unix_ms: u64,
}

impl Story {
    /// The Unix time (ms) of a recording line.
    pub fn unix_ms(&self, line: &Value) -> f64 {
        self.started_unix_ms as f64 + line["t_ns"].as_f64().unwrap_or(0.0) / 1e6
    }

    /// The token-lost incident of the story (the live monitor's).
    pub fn loss(&self) -> Value {
        let incidents = self.live_incidents.as_array().unwrap();
        incidents.iter().find(|i| i["detail"]["kind"] == "token_lost").cloned().expect("a token_lost incident")
    }

    /// When node `id` reported entering `state` (wire name), by the
    /// recording, from `from` to `to` (Unix ms).
    pub fn entered(&self, id: &str, state: &str, from: f64, to: f64) -> Vec<f64> {
        self.lines
            .iter()
            .filter(|l| l["msg"]["type"] == "my state" && l["msg"]["author_node_id"] == id)
            .filter(|l| l["msg"]["new_state"] == state)
            .map(|l| self.unix_ms(l))
            .filter(|t| *t >= from && *t <= to)
            .collect()
    }
}

fn get(addr: &str, path: &str) -> Option<Value> {
    serde_json::from_str(&http(addr, "GET", path, None)?).ok()
}

fn wait(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_http() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string()
}

fn incident_of(addr: &str, kind: &str, ok: impl Fn(&Value) -> bool) -> bool {
    get(addr, "/api/incidents")
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|all| all.iter().any(|i| i["detail"]["kind"] == kind && ok(i)))
}

/// Three nodes started with `args` (and the quick timeouts), and a monitor
/// recording them to `file`, once it has seen all three and `digits`
/// digits; the nodes, the monitor and its HTTP address.
fn start_recorded_ring(file: &std::path::Path, args: &[&str], digits: u64) -> (Vec<NodeProcess>, Killed, String) {
    let ports = Ports::free();
    let http_addr = free_http();
    let mut args = args.to_vec();
    args.extend_from_slice(pi_ring_harness::QUICK_TIMING);
    let nodes: Vec<NodeProcess> =
        (1..=3).map(|i| start_node(&format!("node{i}"), fresh_host(), ports, &args)).collect();
    let monitor = Command::new(env!("CARGO_BIN_EXE_pi-ring-monitor"))
        .args(["--http", &http_addr, "--udp-port", &ports.udp.to_string()])
        .args(["--monitor-port", &ports.monitor.to_string(), "--every", "0", "--record"])
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("start pi-ring-monitor");
    let monitor = Killed(monitor);
    wait(&format!("the monitor saw 3 nodes and {digits} digits"), Duration::from_secs(15), || {
        get(&http_addr, "/api/ring").is_some_and(|r| {
            r["nodes"].as_array().map_or(0, Vec::len) == 3 && r["digits"].as_u64().unwrap_or(0) >= digits
        })
    });
    (nodes, monitor, http_addr)
}

/// Stop a recording monitor once its last tick flushed; the recording's
/// lines and its start (Unix ms).
fn stop_recording(mut monitor: Killed, file: &std::path::Path) -> (Vec<Value>, u64) {
    // The monitor flushes its recording every tick (4 a second).
    std::thread::sleep(Duration::from_millis(600));
    monitor.0.kill().unwrap();
    monitor.0.wait().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let started_unix_ms = lines[0]["started_unix_ms"].as_u64().expect("a header first");
    (lines, started_unix_ms)
}

/// Run the story with a recording monitor; `tag` names the file.
pub fn record_fault_story(tag: &str) -> Story {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("story-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("story.jsonl");
    // Holdings of 200 ms and every change reported (`--report-ms 0`): each
    // pass is in the recording, at a pace people can follow.
    let (mut nodes, monitor, http_addr) = start_recorded_ring(&file, &["--hold-ms", "200", "--report-ms", "0"], 60);
    let holder = loop {
        if let Some(h) = get(&http_addr, "/api/ring").and_then(|r| r["holder"].as_str().map(str::to_owned)) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = nodes.iter_mut().find(|n| n.id == holder).expect("the holder is ours");
    killed.kill();
    wait("the token was regenerated", Duration::from_secs(10), || {
        incident_of(&http_addr, "token_lost", |i| !i["detail"]["regenerated_by"].is_null())
    });
    std::thread::sleep(Duration::from_millis(500));
    killed.restart();
    wait("the killed node was back in the rotation", Duration::from_secs(15), || {
        incident_of(&http_addr, "back_in_rotation", |i| i["detail"]["node"] == holder.as_str())
    });
    std::thread::sleep(Duration::from_millis(500));
    let live_now_ms = get(&http_addr, "/api/ring").unwrap()["now_ms"].as_u64().unwrap();
    let live_incidents = get(&http_addr, "/api/incidents").unwrap();
    let (lines, started_unix_ms) = stop_recording(monitor, &file);
    Story {
        file,
        ids: nodes.iter().map(|n| n.id.clone()).collect(),
        killed: holder,
        live_incidents,
        live_now_ms,
        lines,
        started_unix_ms,
    }
}

/// A recording of three nodes passing the token about a thousand times a
/// second (`--hold-ms 1`), reporting with `--report-ms report_ms`.
pub struct FastRing {
    pub file: PathBuf,
    pub ids: Vec<String>,
    pub lines: Vec<Value>,
    pub started_unix_ms: u64,
}

impl FastRing {
    /// The Unix time (ms) of a recording line.
    pub fn unix_ms(&self, line: &Value) -> f64 {
        self.started_unix_ms as f64 + line["t_ns"].as_f64().unwrap_or(0.0) / 1e6
    }

    /// When each node reported taking the token, by the recording (Unix ms).
    pub fn holdings(&self, id: &str) -> Vec<f64> {
        self.lines
            .iter()
            .filter(|l| l["msg"]["type"] == "my state" && l["msg"]["author_node_id"] == id)
            .filter(|l| l["msg"]["new_state"] == "OwnerState")
            .map(|l| self.unix_ms(l))
            .collect()
    }
}

/// Record a fast ring for `secs` once it has formed.
pub fn record_fast_ring(tag: &str, report_ms: u64, secs: u64) -> FastRing {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fast-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fast.jsonl");
    let report = report_ms.to_string();
    let (nodes, monitor, _) = start_recorded_ring(&file, &["--hold-ms", "1", "--report-ms", &report], 200);
    std::thread::sleep(Duration::from_secs(secs));
    let (lines, started_unix_ms) = stop_recording(monitor, &file);
    FastRing { file, ids: nodes.iter().map(|n| n.id.clone()).collect(), lines, started_unix_ms }
}

/// A replay monitor of `file`, paused at its start; its HTTP address.
pub fn start_replay(file: &std::path::Path) -> (Killed, String) {
    let http_addr = free_http();
    let replay = Command::new(env!("CARGO_BIN_EXE_pi-ring-monitor"))
        .args(["--http", &http_addr, "--every", "0", "--paused", "--replay"])
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("start pi-ring-monitor --replay");
    let replay = Killed(replay);
    wait("the replay serves /healthz", Duration::from_secs(15), || http(&http_addr, "GET", "/healthz", None).is_some());
    (replay, http_addr)
}

/// The replay of a recording made during a live run reproduces the live
/// run's incidents exactly: same moments, same durations, same words.
#[test]
fn a_replay_of_a_live_recording_reproduces_its_incidents_exactly() {
    let story = record_fault_story("incidents");
    let kinds: Vec<&str> =
        story.live_incidents.as_array().unwrap().iter().filter_map(|i| i["detail"]["kind"].as_str()).collect();
    for kind in ["first_token", "token_lost", "node_restarted", "back_in_rotation"] {
        assert!(kinds.contains(&kind), "the live story has no {kind}: {kinds:?}");
    }
    // The live monitor's conclusions are in the file too.
    let recorded: Vec<&str> = story.lines.iter().filter_map(|l| l["incident"]["text"].as_str()).collect();
    let lost = story.loss();
    assert!(recorded.contains(&lost["text"].as_str().unwrap()), "{recorded:?}");

    let (_replay, addr) = start_replay(&story.file);
    let control = json!({ "seek_ms": story.live_now_ms as f64 });
    let state: Value = serde_json::from_str(&http(&addr, "POST", "/api/replay", Some(&control)).unwrap()).unwrap();
    assert_eq!(state["playing"], false);
    let replayed = get(&addr, "/api/incidents").unwrap();
    // The live page was read at some microsecond of that millisecond: an
    // incident that has no end (a node joined) counts its age to then.
    let comparable = |incidents: &Value| -> Vec<Value> {
        let mut list = incidents.as_array().unwrap().clone();
        for i in &mut list {
            if i["ended_ms"].is_null() {
                i.as_object_mut().unwrap().remove("duration_s");
            }
        }
        list
    };
    assert_eq!(
        comparable(&replayed),
        comparable(&story.live_incidents),
        "the replay's incidents differ from the live run's"
    );
    let lost =
        |incidents: &Value| incidents.as_array().unwrap().iter().find(|i| i["detail"]["kind"] == "token_lost").cloned();
    assert_eq!(lost(&replayed), lost(&story.live_incidents), "the gap, to the nanosecond of its duration");
    let ring = get(&addr, "/api/ring").unwrap();
    assert_eq!(ring["mode"], "replay");
    assert_eq!(ring["now_ms"].as_u64(), Some(story.live_now_ms));
    std::fs::remove_dir_all(story.file.parent().unwrap()).unwrap();
}
