//! The mistakes operators make, against the real binaries: each gets one
//! clear sentence and the documented exit code (2 for a command line that
//! cannot work, 1 for what this machine prevents), before anything that
//! reads like success. Also what operators look for first: `--version`
//! with the commit, JSON logs, a stop that says so.

use crate::common::{fresh_host, Ports};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_pi-ring-node");
const MONITOR: &str = env!("CARGO_BIN_EXE_pi-ring-monitor");

/// What a finished process said.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run to completion, killed after `within` (then `code` is `None`).
fn run(command: &mut Command, within: Duration) -> Ran {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let code = wait_for_exit(&mut child, within);
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Ran { code, stdout, stderr }
}

/// The exit code, or `None` (and the process killed) after `within`.
fn wait_for_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node with its own address and ports, and `extra` flags.
fn node(host: Ipv4Addr, ports: Ports, extra: &[&str]) -> Command {
    let mut command = Command::new(NODE);
    command.args(["--bind", &host.to_string(), "--summary-secs", "0"]);
    command.args(["--udp-port", &ports.udp.to_string(), "--tcp-port", &ports.tcp.to_string()]);
    command.args(["--monitor-port", &ports.monitor.to_string()]);
    command.args(extra);
    command
}

/// A refusal: the exit code, one sentence naming the problem, and no line
/// that reads like a started node.
fn assert_refused(ran: &Ran, code: i32, says: &[&str]) {
    assert_eq!(ran.code, Some(code), "exit code; stderr:\n{}", ran.stderr);
    for words in says {
        assert!(ran.stderr.contains(words), "{words:?} not in:\n{}", ran.stderr);
    }
    assert!(!ran.stderr.contains("listening on"), "reads like success:\n{}", ran.stderr);
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pi-ring-operator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SECS_10: Duration = Duration::from_secs(10);

#[test]
fn command_line_mistakes_are_refused_with_exit_code_2() {
    let ports = Ports::free();
    let host = fresh_host();
    let no_address = run(Command::new(NODE).arg("--summary-secs").arg("0"), SECS_10);
    assert_refused(&no_address, 2, &["--bind", "--interface"]);

    let negative = run(&mut node(host, ports, &["--hold-ms", "-5"]), SECS_10);
    assert_refused(&negative, 2, &["--hold-ms", "cannot be negative"]);

    let not_a_number = run(&mut node(host, ports, &["--waiter-ms", "soon"]), SECS_10);
    assert_refused(&not_a_number, 2, &["--waiter-ms", "whole number of milliseconds"]);

    let short_waiter = run(&mut node(host, ports, &["--waiter-ms", "100"]), SECS_10);
    assert_refused(&short_waiter, 2, &["waiter timeout (100 ms)", "twice the heartbeat (500 ms)", "--waiter-ms 1000"]);

    let short_answer = run(&mut node(host, ports, &["--heartbeat-ms", "800", "--looser-answer-ms", "1000"]), SECS_10);
    assert_refused(&short_answer, 2, &["looser answer time (1000 ms)", "--looser-answer-ms 1600"]);

    let monitor = run(Command::new(MONITOR).args(["--http", "nowhere"]), SECS_10);
    assert_eq!(monitor.code, Some(2), "{monitor:?}");

    let speed = run(Command::new(MONITOR).args(["--replay", "x.jsonl", "--speed", "0"]), SECS_10);
    assert_refused(&speed, 2, &["--speed", "not a speed from 0.01 to 1000"]);
    let both = run(Command::new(MONITOR).args(["--replay", "x.jsonl", "--record", "y.jsonl"]), SECS_10);
    assert_refused(&both, 2, &["--record", "cannot be used with"]);
}

/// A recording that cannot be read is refused with what is wrong with it.
#[test]
fn a_recording_that_cannot_be_replayed_is_refused_with_its_reason() {
    let dir = scratch_dir("replay");
    let missing = dir.join("missing.jsonl");
    let ran = run(Command::new(MONITOR).arg("--replay").arg(&missing).args(["--no-http"]), SECS_10);
    assert_refused(&ran, 1, &["missing.jsonl", "No such file"]);
    let other = dir.join("notes.txt");
    std::fs::write(&other, "shopping list\n").unwrap();
    let ran = run(Command::new(MONITOR).arg("--replay").arg(&other).args(["--no-http"]), SECS_10);
    assert_refused(&ran, 1, &["notes.txt", "not a pi-ring recording"]);
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "{\"pi_ring_recording\":1,\"started_unix_ms\":1}\n").unwrap();
    let ran = run(Command::new(MONITOR).arg("--replay").arg(&empty).args(["--no-http"]), SECS_10);
    assert_refused(&ran, 1, &["empty.jsonl", "holds nothing to replay"]);
    let ran = run(Command::new(MONITOR).arg("--record").arg(dir.join("no-dir/x.jsonl")).args(["--no-http"]), SECS_10);
    assert_refused(&ran, 1, &["cannot record", "no-dir/x.jsonl"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_this_machine_prevents_is_refused_with_exit_code_1() {
    let ports = Ports::free();
    let host = fresh_host();

    // A data directory that is a file.
    let file = scratch_dir("file").join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let ran = run(&mut node(host, ports, &["--data-dir", file.to_str().unwrap()]), SECS_10);
    assert_refused(&ran, 1, &["is a file", "give --data-dir a directory"]);

    // The node's TCP address and port are taken (another node, a second
    // demo): the sentence says what to do.
    let taken = TcpListener::bind(SocketAddrV4::new(host, ports.tcp)).unwrap();
    let ran = run(&mut node(host, ports, &[]), SECS_10);
    assert_refused(&ran, 1, &[&format!("TCP {host}:{}", ports.tcp), "give each node its own --bind address"]);
    drop(taken);

    // The ring's UDP port is held by a program that does not share it: a
    // --bind would not help, so the node does not say it would.
    let busy = Ports::free();
    let holder = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, busy.udp)).unwrap();
    let ran = run(&mut node(fresh_host(), busy, &[]), SECS_10);
    assert_refused(&ran, 1, &[&format!("UDP 0.0.0.0:{}", busy.udp), "without sharing it", "--udp-port"]);
    assert!(!ran.stderr.contains("--bind"), "{}", ran.stderr);
    drop(holder);

    // An address this machine does not have.
    let ran = run(&mut node(Ipv4Addr::new(192, 0, 2, 1), ports, &[]), SECS_10);
    assert_refused(&ran, 1, &["192.0.2.1"]);
}

/// Run `command` as the unprivileged user `nobody` when we are root (root
/// may write anywhere); as is otherwise. The binary is copied where
/// `nobody` may run it (a checkout can sit in a directory only root
/// enters).
fn unprivileged(command: Command) -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(command);
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|p| Path::new(p).exists())?;
    let shared = std::env::temp_dir().join(format!("pi-ring-operator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&shared).unwrap();
    set_mode(&shared, 0o755);
    let binary = shared.join("pi-ring-node");
    if !binary.exists() {
        std::fs::copy(command.get_program(), &binary).unwrap();
        set_mode(&binary, 0o755);
    }
    let mut wrapped = Command::new(setpriv);
    wrapped.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
    wrapped.arg(&binary).args(command.get_args());
    Some(wrapped)
}

fn chown_to_nobody(dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let ok = Command::new("chown").args(["-R", "nobody", dir.to_str().unwrap()]).status().unwrap().success();
        assert!(ok, "chown nobody {}", dir.display());
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_data_dir_the_node_cannot_write_is_refused_at_start_and_said_once_when_it_fails_later() {
    let Some(mut command) = unprivileged(node(fresh_host(), Ports::free(), &[])) else {
        panic!("as root this test needs setpriv (util-linux) to run the node as nobody; .ci/run installs it");
    };
    // At start: a directory of someone else's.
    let base = scratch_dir("unwritable");
    set_mode(&base, 0o755);
    // (Not root: our own directory without write permission will do.)
    let theirs = base.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    set_mode(&theirs, 0o555);
    let ran = run(command.args(["--data-dir", theirs.to_str().unwrap()]), SECS_10);
    assert_refused(&ran, 1, &["cannot write in the data directory", "Permission denied"]);

    // Later: the directory becomes unwritable while the node runs (a full
    // disk, changed permissions). One error and the node goes on.
    let ours = base.join("ours");
    std::fs::create_dir(&ours).unwrap();
    chown_to_nobody(&ours);
    let host = fresh_host();
    let ports = Ports::free();
    let mut command = unprivileged(node(host, ports, &["--data-dir", ours.to_str().unwrap()])).unwrap();
    let log = base.join("node.log");
    let mut child = command
        .args(pi_ring_harness::FAST_TIMING)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // It saves its first digits, then cannot any more.
    let saved = ours.join("expansion.txt");
    let deadline = Instant::now() + SECS_10;
    while !saved.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saved.exists(), "never saved: {}", std::fs::read_to_string(&log).unwrap());
    set_mode(&ours, 0o555);
    std::thread::sleep(Duration::from_secs(3));
    let alive = child.try_wait().unwrap().is_none();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let code = wait_for_exit(&mut child, SECS_10);
    let text = std::fs::read_to_string(&log).unwrap();
    set_mode(&ours, 0o755);
    assert!(alive, "the node stopped when saving failed:\n{text}");
    let errors = text.lines().filter(|l| l.contains("cannot save the expansion")).count();
    assert_eq!(errors, 1, "saving failures must be said once (then once a minute):\n{text}");
    assert!(text.contains("carrying on without saving"), "{text}");
    assert_eq!(code, Some(0), "{text}");
    let _ = std::fs::remove_dir_all(&base);
}

/// Two nodes started with one id are named on both sides, and both keep
/// running: a message from the network never stops a node (anyone could
/// send one with any id), only its operator does.
#[test]
fn two_nodes_with_one_id_are_named_on_both_sides_and_keep_running() {
    let ports = Ports::free();
    let (low, high) = (fresh_host(), fresh_host());
    assert!(low < high);
    let dir = scratch_dir("twins");
    let start = |host: Ipv4Addr, name: &str| {
        let log = dir.join(name);
        let child = node(host, ports, &["--id", "twin"])
            .args(pi_ring_harness::FAST_TIMING)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        (child, log)
    };
    let (mut first, first_log) = start(low, "low.log");
    std::thread::sleep(Duration::from_millis(300));
    let (mut second, second_log) = start(high, "high.log");
    let named = |log: &std::path::Path, other: Ipv4Addr| {
        std::fs::read_to_string(log).unwrap().contains(&format!("another node at {other} uses this node's id \"twin\""))
    };
    let deadline = Instant::now() + SECS_10;
    while Instant::now() < deadline && !(named(&first_log, high) && named(&second_log, low)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = [first.try_wait().unwrap().is_none(), second.try_wait().unwrap().is_none()];
    for child in [&mut first, &mut second] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (low_text, high_text) =
        (std::fs::read_to_string(first_log).unwrap(), std::fs::read_to_string(second_log).unwrap());
    assert!(high_text.contains(&format!("another node at {low} uses this node's id \"twin\"")), "{high_text}");
    assert!(high_text.contains("another --id"), "{high_text}");
    assert!(low_text.contains(&format!("another node at {high} uses this node's id \"twin\"")), "{low_text}");
    assert_eq!(running, [true, true], "both twins keep running:\n--- low\n{low_text}\n--- high\n{high_text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_json_logs_and_a_stop_by_sigterm_say_what_they_are() {
    for binary in [NODE, MONITOR] {
        let ran = run(Command::new(binary).arg("--version"), SECS_10);
        assert_eq!(ran.code, Some(0));
        assert!(ran.stdout.contains("commit"), "{binary} --version: {}", ran.stdout);
    }
    let mut child = node(fresh_host(), Ports::free(), &["--log-format", "json"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let code = wait_for_exit(&mut child, SECS_10);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().all(|l| l["ts"].is_string() && l["level"].is_string() && l["msg"].is_string()));
    let said = |words: &str| lines.iter().any(|l| l["msg"].as_str().unwrap().contains(words));
    assert!(said("listening on"), "{stderr}");
    assert!(said("SIGTERM: stopping"), "{stderr}");
}

/// Three consecutive ports (UDP, TCP, UDP) that are free now, for the
/// demo's `-p` (the demo uses exactly `Ports::free`'s layout).
fn free_block() -> u16 {
    Ports::free().udp
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The demos use the fixed addresses 127.0.0.2 and up: one at a time in
/// this process (each on its own free ports), so two never pick the same.
static ONE_DEMO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn demo(tmp: &Path, args: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let mut command = Command::new("bash");
    command.arg(script).args(args);
    command.env("PI_RING_BIN_DIR", Path::new(NODE).parent().unwrap()).env("TMPDIR", tmp);
    command
}

#[test]
fn the_demo_checks_its_options_and_says_why_it_cannot_run() {
    let _one = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = scratch_dir("demo");
    let help = run(&mut demo(&tmp, &["--help"]), SECS_10);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("with no\nsetup") || help.stdout.contains("no setup"), "{}", help.stdout);
    assert!(help.stdout.contains("Exit status") && help.stdout.contains("--keep"), "{}", help.stdout);
    for (args, says) in [
        (&["-t"][..], "-t needs a value"),
        (&["-t", "abc"][..], "-t takes a whole number of seconds"),
        (&["-n", "0"][..], "-n must be a number from 1 to 250"),
        (&["-p", "80"][..], "-p takes a port from 1024"),
        (&["--http", "8080"][..], "--http takes ADDRESS:PORT"),
        (&["--bogus"][..], "unknown option --bogus"),
        (&["--record", "/nonexistent-dir/x.jsonl"][..], "cannot write the recording /nonexistent-dir/x.jsonl"),
    ] {
        let ran = run(&mut demo(&tmp, args), SECS_10);
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert!(ran.stderr.contains(says), "{args:?}: {}", ran.stderr);
    }

    // A port in use (another demo): refused before anything starts.
    let base = free_block();
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let p = base.to_string();
    let taken = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), base + 1)).unwrap();
    let ran = run(&mut demo(&tmp, &["--no-build", "-n", "2", "-p", &p, "--http", &http, "-t", "1"]), SECS_10);
    drop(taken);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains(&format!("already listens on 127.0.0.2:{}", base + 1)), "{}", ran.stderr);
    assert!(ran.stderr.contains("-p "), "says how to choose other ports: {}", ran.stderr);
    assert!(!ran.stdout.contains("Open http://"), "{}", ran.stdout);

    // Nodes that cannot start: the demo fails with the reason from the log.
    let args = ["--no-build", "-n", "2", "-p", &p, "--http", &http, "-t", "1", "--", "--waiter-ms", "100"];
    let ran = run(&mut demo(&tmp, &args), Duration::from_secs(20));
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("node1 exited at start"), "{}", ran.stderr);
    assert!(ran.stderr.contains("waiter timeout (100 ms)"), "{}", ran.stderr);
    assert!(!ran.stdout.contains("Open http://"), "{}", ran.stdout);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_demo_that_ran_leaves_nothing_behind() {
    let _one = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = scratch_dir("demo-ok");
    let base = free_block().to_string();
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let kept = scratch_dir("demo-recording");
    let record = kept.join("run.jsonl");
    let record_arg = record.to_str().unwrap();
    let args = ["--no-build", "-n", "2", "-p", &base, "--http", &http, "-t", "3", "--record", record_arg];
    let ran = run(&mut demo(&tmp, &args), SECS_10 * 3);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains(&format!("Open http://{http}/")), "{}", ran.stdout);
    assert!(ran.stdout.contains("Stopped 3 processes"), "{}", ran.stdout);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "the demo left {left:?} in its temporary directory");
    // The recording stays, and the demo says how to replay it.
    let replay = format!("pi-ring-monitor --replay {record_arg} --http {http}");
    assert!(ran.stdout.contains(&replay), "no {replay:?} in:\n{}", ran.stdout);
    let recorded = std::fs::read_to_string(&record).unwrap();
    let header: serde_json::Value = serde_json::from_str(recorded.lines().next().unwrap()).unwrap();
    assert_eq!(header["pi_ring_recording"], 1, "{header}");
    assert!(recorded.contains("\"type\":\"my state\""), "no MY_STATE recorded");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&kept);
}

/// Start nodes (id, host, ports, extra flags) with fast timeouts, let them
/// run for `for_`, stop them with SIGTERM, and return their logs.
fn run_nodes(name: &str, nodes: &[(&str, Ipv4Addr, Ports, &[&str])], for_: Duration) -> Vec<String> {
    let dir = scratch_dir(name);
    let mut running: Vec<(Child, PathBuf)> = nodes
        .iter()
        .map(|(id, host, ports, extra)| {
            let log = dir.join(format!("{id}.log"));
            let child = node(*host, *ports, &["--id", id])
                .args(pi_ring_harness::FAST_TIMING)
                .args(*extra)
                .stderr(std::fs::File::create(&log).unwrap())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (child, log)
        })
        .collect();
    std::thread::sleep(for_);
    for (child, _) in &running {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let logs = running
        .iter_mut()
        .map(|(child, log)| {
            wait_for_exit(child, SECS_10);
            std::fs::read_to_string(log).unwrap()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    logs
}

#[test]
fn nodes_sharing_one_address_are_named_on_both_sides() {
    let host = fresh_host();
    let ports = Ports::free();
    let mut other = Ports::free();
    (other.udp, other.monitor) = (ports.udp, ports.monitor);
    let logs = run_nodes("shared", &[("a", host, ports, &[]), ("b", host, other, &[])], Duration::from_secs(2));
    for (log, other) in logs.iter().zip(["b", "a"]) {
        let says = format!("node \"{other}\" sends from this node's own address {host}");
        assert!(log.contains(&says), "{says:?} not in:\n{log}");
        assert_eq!(log.matches(&says).count(), 1, "said more than once:\n{log}");
    }
}

#[test]
fn a_member_that_is_alive_but_refuses_the_token_is_named_with_the_port() {
    let (first, second) = (fresh_host(), fresh_host());
    let ports = Ports::free();
    let mut other = Ports::free();
    (other.udp, other.monitor) = (ports.udp, ports.monitor);
    let logs = run_nodes("ports", &[("a", first, ports, &[]), ("b", second, other, &[])], Duration::from_secs(6));
    // A waiter sends nothing while it hears the holder, so the holder
    // names it after 3 refusals in a row (or at once, if it hears from it).
    let told = |log: &str, id: &str, host: Ipv4Addr, port: u16| {
        let alive = format!("node {id} is alive (it sends to the ring) but refuses the token on TCP {host}:{port}");
        let refused = format!("node {id} refused the token on TCP {host}:{port} 3 times in a row");
        (log.contains(&alive) || log.contains(&refused)) && log.contains("another --tcp-port")
    };
    // Whoever held the token tried the other, at its own port.
    assert!(
        told(&logs[0], "b", second, ports.tcp) || told(&logs[1], "a", first, other.tcp),
        "nobody named the member on another port:\n--- a\n{}\n--- b\n{}",
        logs[0],
        logs[1]
    );
}

#[test]
fn the_log_says_when_the_target_is_reached_in_the_words_of_the_page() {
    let logs =
        run_nodes("target", &[("t", fresh_host(), Ports::free(), &["--target-digits", "40"])], Duration::from_secs(3));
    let log = &logs[0];
    assert_eq!(log.matches("the target of 40 digits is reached").count(), 1, "{log}");
    // People's words, not the protocol's state names.
    assert!(log.contains("t: starting -> searching"), "{log}");
    assert!(log.contains("t: claiming -> holding, t's token #1 at 0 digits"), "{log}");
    for protocol_word in ["WAITER", "LOOSER", "GENERATING", "OWNER"] {
        assert!(!log.contains(protocol_word), "{protocol_word} in:\n{log}");
    }
}
