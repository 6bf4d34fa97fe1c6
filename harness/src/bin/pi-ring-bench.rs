//! `pi-ring-bench`: measure a ring of real `pi-ring-node` processes on
//! loopback the way a user would judge it. See `--help` and scripts/bench.sh.

use clap::Parser;
use pi_ring::actors::udp::MAX_DATAGRAM;
use pi_ring::pi::{fraction_digits, PiDigits};
use pi_ring::protocol::{Body, Message, RawMessage, StateName, Token};
use pi_ring_harness::{kill_all, rss_mib, send_from, udp_listener, NodeProcess, Observer, Ports};
use serde::Serialize;
use sha2::Digest;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Benchmarks of pi-ring: start-up, hand-off latency, passes per second,
/// growth to 100,000 (and 1,000,000) digits, recovery after SIGKILL of the
/// holder, the pi engine alone, and an idle node's CPU and memory.
/// Prints a table and writes JSON. All traffic stays on 127.0.0.0/8.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Repetitions of each ring measurement (the table shows the median)
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// Kills per recovery measurement
    #[arg(long, default_value_t = 10)]
    kills: usize,

    /// Only these scenarios (comma-separated): first-token, handoff, passes,
    /// lengths, lengths-whole, lan (needs root), growth, growth-1m,
    /// recovery, recovery-fast, engine, idle, stop, scale, soak; by name
    /// only: pi (the engines side by side, 1M to 10M digits), growth-10m
    /// (0 to 10,000,000 digits: time to target, longest time without
    /// growth), page
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Skip the slow scenarios (growth to 1,000,000 digits, the soak)
    #[arg(long)]
    quick: bool,

    /// Length of the soak of rings with default timeouts (s); the rings
    /// with the fast profile run half as long
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,

    /// Where to write the JSON results
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,

    /// The pi-ring-node binary [default: next to this program]
    #[arg(long)]
    node: Option<PathBuf>,

    /// Ring sizes of the scale scenario (comma-separated)
    #[arg(long, value_delimiter = ',', default_values_t = [5, 50, 250])]
    scale_nodes: Vec<usize>,

    /// Steady-state window of the scale scenario (s)
    #[arg(long, default_value_t = 20)]
    scale_secs: u64,

    /// Ring size of the page scenario (the monitor page in headless
    /// Chromium; run it by name: --only page)
    #[arg(long, default_value_t = 250)]
    page_nodes: usize,

    /// How long the page scenario watches the page (s)
    #[arg(long, default_value_t = 600)]
    page_secs: u64,

    /// First UDP port to use; each ring takes the next free block of 3
    /// (below Linux's ephemeral range, 32768-60999: a ring's listening
    /// port must not be a source port of an earlier ring's connections)
    #[arg(long, default_value_t = 21000)]
    base_port: u16,
}

#[derive(Serialize, Clone, Debug)]
struct Figure {
    name: String,
    unit: String,
    median: f64,
    min: f64,
    max: f64,
    p99: Option<f64>,
    samples: usize,
    note: String,
}

fn stats(name: &str, unit: &str, mut samples: Vec<f64>, note: &str) -> Figure {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    let at = |q: f64| if n == 0 { f64::NAN } else { samples[((n - 1) as f64 * q).round() as usize] };
    Figure {
        name: name.into(),
        unit: unit.into(),
        median: at(0.5),
        min: at(0.0),
        max: at(1.0),
        p99: (n >= 50).then(|| at(0.99)),
        samples: n,
        note: note.into(),
    }
}

struct Bench {
    args: Args,
    node: PathBuf,
    next_port: u16,
    next_host: u8,
    figures: Vec<Figure>,
}

const DEFAULTS: &[&str] = &[];
const FAST: &[&str] = pi_ring_harness::FAST_TIMING;

impl Bench {
    fn wants(&self, name: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| o == name)
    }

    fn ports(&mut self) -> Ports {
        let p = Ports::new(self.next_port);
        self.next_port += 3;
        p
    }

    /// The ports the next [`Self::ring`] will use.
    fn ports_peek(&self) -> Ports {
        Ports::new(self.next_port)
    }

    /// `n` nodes on fresh addresses and ports.
    fn ring(&mut self, n: usize, flags: &[&str]) -> (Vec<NodeProcess>, Observer, Ports, Instant) {
        let ports = self.ports();
        let observer = Observer::start(ports);
        let t0 = Instant::now();
        let nodes = if n <= 200 {
            (0..n)
                .map(|i| {
                    let host = self.host();
                    NodeProcess::start(&self.node, &format!("node{}", i + 1), host, ports, flags)
                })
                .collect()
        } else {
            // Big rings get a block of addresses of their own.
            (0..n)
                .map(|i| {
                    let host = Ipv4Addr::new(127, 5, (i / 250) as u8, (i % 250 + 1) as u8);
                    NodeProcess::start(&self.node, &format!("n{:03}", i + 1), host, ports, flags)
                })
                .collect()
        };
        (nodes, observer, ports, t0)
    }

    fn host(&mut self) -> Ipv4Addr {
        self.next_host = if self.next_host >= 250 { 10 } else { self.next_host + 1 };
        Ipv4Addr::new(127, 0, 1, self.next_host)
    }

    fn push(&mut self, f: Figure) {
        eprintln!(
            "  {:<46} median {:>10.3} {:<6} (min {:.3}, max {:.3}{}, n={})",
            f.name,
            f.median,
            f.unit,
            f.min,
            f.max,
            f.p99.map(|p| format!(", p99 {p:.3}")).unwrap_or_default(),
            f.samples
        );
        self.figures.push(f);
    }

    fn first_token(&mut self) {
        eprintln!("first token after a cold start of 5 nodes, default timeouts ...");
        let mut samples = Vec::new();
        for _ in 0..self.args.runs {
            let (_nodes, observer, _, t0) = self.ring(5, DEFAULTS);
            let first = observer.wait_for(t0, Duration::from_secs(30), |s| s.new == StateName::Owner);
            samples.push(first.map(|s| (s.at - t0).as_secs_f64()).unwrap_or(f64::NAN));
        }
        self.push(stats(
            "first token, 5 nodes, defaults",
            "s",
            samples,
            "from starting the processes to the first OWNER",
        ));
    }

    /// Passes per second with hold 0, from the expansion's growth (20 digits
    /// per pass) over the first 1,000 passes after the first token.
    fn passes(&mut self, n: usize) {
        eprintln!("passes per second, {n} nodes, --hold-ms 0 ...");
        let mut samples = Vec::new();
        for _ in 0..self.args.runs {
            let (_nodes, observer, _, t0) = self.ring(n, &["--hold-ms", "0"]);
            let Some(first) = observer.wait_for(t0, Duration::from_secs(30), |s| s.new == StateName::Owner) else {
                samples.push(f64::NAN);
                continue;
            };
            let target = first.progress + 20 * 1000;
            let done = observer.wait_for(first.at, Duration::from_secs(60), |s| s.progress >= target);
            samples.push(
                done.map(|d| (d.progress - first.progress) as f64 / 20.0 / (d.at - first.at).as_secs_f64())
                    .unwrap_or(0.0),
            );
        }
        self.push(stats(
            &format!("passes/s, {n} nodes, hold 0, first 1000 passes"),
            "1/s",
            samples,
            "20 digits per pass",
        ));
    }

    fn growth(&mut self, digits: usize, runs: usize) {
        eprintln!("5 nodes from nothing to {digits} digits, --hold-ms 0 ...");
        let mut samples = Vec::new();
        let target = digits.to_string();
        for _ in 0..runs {
            let (_nodes, observer, _, t0) = self.ring(5, &["--hold-ms", "0", "--target-digits", &target]);
            let Some(first) = observer.wait_for(t0, Duration::from_secs(30), |s| s.new == StateName::Owner) else {
                samples.push(f64::NAN);
                continue;
            };
            let limit = Duration::from_secs(600);
            let done = observer.wait_for(first.at, limit, |s| s.progress as usize >= digits + 2);
            samples.push(done.map(|d| (d.at - first.at).as_secs_f64()).unwrap_or(f64::NAN));
            if !observer.wrong().is_empty() {
                eprintln!("  WRONG DIGITS: {:?}", &observer.wrong()[..1]);
            }
        }
        self.push(stats(&format!("0 -> {digits} digits, 5 nodes"), "s", samples, "from the first token"));
    }

    /// 5 nodes at hold 0 from nothing to `digits`: the time to the target
    /// and the longest stretch without growth (read from MY_STATE, which
    /// a holder sends at least every `--report-ms`, 100 ms), beside the
    /// protocol's recovery bound. `runs` rings one after the other.
    fn growth_to(&mut self, digits: usize, runs: usize, shared: bool) {
        let how = if shared { "digits shared on the host [default]" } else { "each node computes alone" };
        eprintln!("5 nodes from nothing to {digits} digits, --hold-ms 0, {how} ...");
        let target = digits.to_string();
        let (mut to_target, mut longest) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // A directory of its own for each ring, so that no run starts
            // with digits an earlier one computed.
            let dir = std::env::temp_dir().join(format!("pi-ring-bench-digits-{}-{run}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let dir_text = dir.display().to_string();
            let mut flags = vec!["--hold-ms", "0", "--target-digits", &target];
            if shared {
                flags.extend(["--shared-digits", dir_text.as_str()]);
            } else {
                flags.push("--no-shared-digits");
            }
            let (nodes, observer, _, t0) = self.ring(5, &flags);
            let Some(first) = observer.wait_for(t0, Duration::from_secs(30), |s| s.new == StateName::Owner) else {
                eprintln!("  run {run}: no token within 30 s");
                continue;
            };
            let done = observer.wait_for(first.at, Duration::from_secs(600), |s| s.progress as usize >= digits + 2);
            let end = done.as_ref().map_or_else(Instant::now, |d| d.at);
            // The longest stretch in which no report told of a longer
            // expansion than any before it, up to the last report short of
            // the target (the report that the target is reached may wait
            // for a coalesced report, up to a second: once there, holdings
            // last a heartbeat and are routine).
            let (mut best, mut since, mut gap, mut gap_at) = (0u64, first.at, Duration::ZERO, 0u64);
            let short = |s: &&pi_ring_harness::Seen| (s.progress as usize) < digits + 2;
            for s in observer.seen().iter().filter(|s| s.at >= first.at && s.at <= end).filter(short) {
                if s.progress > best {
                    if s.at - since > gap {
                        (gap, gap_at) = (s.at - since, best);
                    }
                    (best, since) = (s.progress, s.at);
                }
            }
            // The growth's pace over each tenth of the run: a pace that
            // falls as the expansion grows is work that grows with it.
            let seen = observer.seen();
            let span = (end - first.at) / 10;
            let best_at = |t: Instant| seen.iter().filter(|s| s.at <= t).map(|s| s.progress).max().unwrap_or(0);
            let paces: Vec<String> = (0..10u32)
                .map(|i| {
                    let (a, b) = (first.at + span * i, first.at + span * (i + 1));
                    format!(
                        "{:.0}k",
                        (best_at(b).saturating_sub(best_at(a))) as f64 / span.as_secs_f64().max(1e-9) / 1e3
                    )
                })
                .collect();
            eprintln!("  run {run}: digits per second by tenth of the run: {}", paces.join(" "));
            let cpu: f64 = nodes.iter().filter_map(|n| n.pid()).map(|p| cpu_ticks(p) as f64 / 100.0).sum();
            eprintln!(
                "  run {run}: target {} after {:.1} s; longest without growth {:.2} s (at {} digits); nodes' CPU {cpu:.0} s",
                if done.is_some() { "reached" } else { "NOT reached" },
                (end - first.at).as_secs_f64(),
                gap.as_secs_f64(),
                gap_at.saturating_sub(2)
            );
            if !observer.wrong().is_empty() {
                eprintln!("  WRONG DIGITS: {:?}", &observer.wrong()[..1]);
            }
            to_target.push(done.map_or(f64::NAN, |d| (d.at - first.at).as_secs_f64()));
            longest.push(gap.as_secs_f64());
            kill_all(nodes);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let name = format!("0 -> {digits} digits, 5 nodes, hold 0, {how}");
        self.push(stats(&format!("{name}: to the target"), "s", to_target, "from the first token"));
        self.push(stats(
            &format!("{name}: longest time without growth"),
            "s",
            longest,
            "recovery bound 6 s; goal at most 0.5 s",
        ));
    }

    /// Kill the holder `kills` times (restarting it in between) and time
    /// until a survivor regenerates the token.
    ///
    /// Each holder keeps the token `hold_ms` (at least a heartbeat period,
    /// as the reference implementation's 2 s holding) and is killed at a
    /// uniformly random moment of it, so the time since its last heartbeat
    /// is as random as in real failures.
    fn recovery(&mut self, name: &str, flags: &[&str], bound: f64, hold_ms: u32) {
        let kills = self.args.kills;
        self.recovery_of(5, kills, name, flags, bound, hold_ms);
    }

    /// Kill the holder of an `n`-node ring `kills` times; see [`Self::recovery`].
    fn recovery_of(&mut self, n: usize, kills: usize, name: &str, flags: &[&str], bound: f64, hold_ms: u32) {
        eprintln!("recovery after SIGKILL of the holder ({name}) ...");
        let mut all: Vec<&str> = flags.to_vec();
        let hold = hold_ms.to_string();
        all.extend(["--hold-ms", &hold]);
        let (mut nodes, observer, _, t0) = self.ring(n, &all);
        let mut samples = Vec::new();
        let mut since = t0;
        let mut rng = 0x9e37_79b9_u32;
        for _ in 0..kills {
            // A fresh holder, then kill it at a random moment of its holding.
            let Some(entry) = observer.wait_for(since, Duration::from_secs(30), |s| s.new == StateName::Owner) else {
                eprintln!("  no holder appeared; stopping");
                break;
            };
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            std::thread::sleep(Duration::from_millis(u64::from(rng % hold_ms)));
            let victim = nodes.iter().position(|n| n.id == entry.node).unwrap();
            nodes[victim].kill();
            let killed = Instant::now();
            let id = nodes[victim].id.clone();
            let back = observer.wait_for(killed, Duration::from_secs(30), |s| {
                s.node != id && s.old == StateName::Generating && s.new == StateName::Owner
            });
            match back {
                Some(s) => samples.push((s.at - killed).as_secs_f64()),
                None => {
                    eprintln!("  no recovery within 30 s");
                    samples.push(f64::NAN);
                }
            }
            nodes[victim].restart();
            // Let the restarted node rejoin before the next kill.
            let rejoined = observer
                .wait_for(Instant::now(), Duration::from_secs(30), |s| s.node == id && s.new == StateName::Waiter);
            since = rejoined.map(|s| s.at).unwrap_or_else(Instant::now);
        }
        kill_all(nodes);
        let wrong = observer.wrong();
        let note = format!("bound waiter+looser_answer+generating = {bound} s; wrong digits seen: {}", wrong.len());
        let f = stats(&format!("recovery after SIGKILL, {name}"), "s", samples, &note);
        let ratio = Figure { name: format!("recovery / bound, {name}"), unit: "x".into(), ..scale(&f, 1.0 / bound) };
        self.push(f);
        self.push(ratio);
    }

    /// Rings where nothing fails, watched from outside for a long time:
    /// after the first token nobody may generate another or declare it
    /// lost. All four rings run at once.
    fn soak(&mut self) {
        let long = Duration::from_secs(self.args.soak_secs);
        let rings: [(&str, usize, &[&str], &str, Duration); 4] = [
            ("3 nodes, defaults, hold 1 s", 3, DEFAULTS, "1000", long),
            ("5 nodes, defaults, hold 1 s", 5, DEFAULTS, "1000", long),
            ("3 nodes, fast, hold 200 ms", 3, pi_ring_harness::QUICK_TIMING, "200", long / 2),
            ("5 nodes, fast, hold 200 ms", 5, pi_ring_harness::QUICK_TIMING, "200", long / 2),
        ];
        eprintln!(
            "healthy-ring soak: {} s with default timeouts, {} s fast, 4 rings at once ...",
            long.as_secs(),
            long.as_secs() / 2
        );
        let mut running = Vec::new();
        for (name, n, flags, hold, length) in rings {
            let mut all = flags.to_vec();
            all.extend(["--hold-ms", hold]);
            let (nodes, observer, _, t0) = self.ring(n, &all);
            running.push((name, nodes, observer, t0, length));
        }
        let started = Instant::now();
        running.sort_by_key(|r| r.4); // the shorter soaks end first
        for (name, nodes, observer, t0, length) in running {
            std::thread::sleep(length.saturating_sub(started.elapsed()));
            let seen = observer.seen();
            let Some(first) = seen.iter().find(|s| s.new == StateName::Owner) else {
                eprintln!("  {name}: no token at all");
                continue;
            };
            let after: Vec<_> = seen.iter().filter(|s| s.at > first.at).collect();
            let generated =
                after.iter().filter(|s| s.old == StateName::Generating && s.new == StateName::Owner).count();
            let lost = after.iter().filter(|s| s.old == StateName::Waiter && s.new == StateName::Looser).count();
            let entries: Vec<Instant> = after.iter().filter(|s| s.new == StateName::Owner).map(|s| s.at).collect();
            let longest = entries.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).fold(0.0, f64::max);
            let digits = seen.iter().map(|s| s.progress).max().unwrap_or(0).saturating_sub(2);
            let note = format!(
                "{:.0} s after the first token ({:.1} s after start): {} holdings, {digits} digits, token declared lost {lost} times, longest holding {longest:.2} s, wrong digits {}",
                (Instant::now() - first.at).as_secs_f64(),
                (first.at - t0).as_secs_f64(),
                entries.len(),
                observer.wrong().len()
            );
            self.push(stats(&format!("tokens generated after the first, {name}"), "", vec![generated as f64], &note));
            kill_all(nodes);
        }
    }

    /// SIGTERM of the holder: the next holder should take the token from
    /// it (one hand-off), not regenerate it.
    fn stop(&mut self) {
        eprintln!("SIGTERM of the holder, 3 nodes, default timeouts, hold 1 s ...");
        let (mut nodes, observer, _, t0) = self.ring(3, &["--hold-ms", "1000"]);
        let mut since = t0;
        let (mut samples, mut handed, mut tries) = (Vec::new(), 0, 0);
        for _ in 0..5 {
            let Some(entry) = observer
                .wait_for(since, Duration::from_secs(30), |s| s.new == StateName::Owner && s.old == StateName::Waiter)
            else {
                eprintln!("  the token stopped moving");
                break;
            };
            std::thread::sleep(Duration::from_millis(300));
            let victim = nodes.iter().position(|n| n.id == entry.node).unwrap();
            let stopped = Instant::now();
            let exited = nodes[victim].terminate(Duration::from_secs(10));
            tries += 1;
            let id = nodes[victim].id.clone();
            if let Some(s) =
                observer.wait_for(stopped, Duration::from_secs(30), |s| s.node != id && s.new == StateName::Owner)
            {
                samples.push((s.at - stopped).as_secs_f64() * 1000.0);
                handed += usize::from(s.old == StateName::Waiter && exited);
            }
            nodes[victim].restart();
            let rejoined = observer
                .wait_for(Instant::now(), Duration::from_secs(30), |s| s.node == id && s.new == StateName::Waiter);
            since = rejoined.map(|s| s.at).unwrap_or_else(Instant::now);
        }
        let note =
            format!("{handed} of {tries} handed on (next holder from WAITER, the stopped node exited by itself)");
        self.push(stats("next holder after SIGTERM of the holder", "ms", samples, &note));
    }

    /// One real node and this program as its only peer: send TAKE_TOKEN,
    /// time until the node announces itself holder (its TOKEN_IS_HERE),
    /// receive the token back, repeat.
    fn handoff(&mut self, digits: usize, rounds: usize) {
        eprintln!("hand-off latency with a {digits}-digit expansion ...");
        let ports = self.ports();
        let node_host = self.host();
        let me = self.host();
        let listener = TcpListener::bind((me, ports.tcp)).expect("bench TCP listener");
        let heartbeats = udp_listener(ports.udp);
        let _node =
            NodeProcess::start(&self.node, "node", node_host, ports, &["--hold-ms", "0", "--waiter-ms", "60000"]);
        let pi = PiDigits::new(digits + 1000);
        let mut data = pi.expansion(digits + 2);
        let nodes: pi_ring::protocol::Nodes =
            [("bench".to_string(), me.to_string()), ("node".to_string(), node_host.to_string())].into_iter().collect();
        let mut samples = Vec::new();
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        // The node is up once it announces itself (PING at start-up).
        let up = Instant::now();
        loop {
            assert!(up.elapsed() < Duration::from_secs(10), "the node did not start: {}", _node.log_tail());
            let Ok((n, _)) = heartbeats.recv_from(&mut buf) else { continue };
            if RawMessage::decode(&buf[..n], MAX_DATAGRAM).is_ok_and(|m| m.author == "node") {
                break;
            }
        }
        for round in 0..rounds + 3 {
            // A new revision each round: the node announces a token it has
            // not announced within the heartbeat at once (PROTOCOL section
            // 10), and that announcement is what this round times.
            let token = Token::new(data.len(), "bench", round as u64 + 1);
            let message = Message::new(
                "bench",
                Body::TakeToken {
                    token,
                    nodes: nodes.clone(),
                    data: data.clone(),
                    pacing: Default::default(),
                    data_from: None,
                },
            );
            let bytes = message.encode();
            let started = Instant::now();
            let to = SocketAddrV4::new(node_host, ports.tcp);
            if let Err(e) = send_from(me, to, &bytes, Duration::from_secs(1)) {
                eprintln!("  send failed: {e}; the node's log ends with:\n{}", _node.log_tail());
                if round > 5 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            // The new holder's TOKEN_IS_HERE.
            let mut announced = None;
            while started.elapsed() < Duration::from_secs(10) {
                let Ok((n, _)) = heartbeats.recv_from(&mut buf) else { continue };
                if let Ok(m) = RawMessage::decode(&buf[..n], MAX_DATAGRAM) {
                    if m.author == "node" && matches!(m.body, Body::TokenIsHere { .. }) {
                        announced = Some(started.elapsed());
                        break;
                    }
                }
            }
            // The token comes back to us (after the PING that proves our
            // TCP port to a node that first hears of us).
            loop {
                let (mut stream, _) = listener.accept().expect("the node passes the token back");
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).unwrap();
                let back = RawMessage::decode(&reply, 64 << 20).expect("a valid message");
                if let Body::TakeToken { data: d, .. } = &back.body {
                    data = pi.verify(d).expansion;
                    break;
                }
            }
            // The node's hand-off is done once our kernel acknowledged it
            // (and the node may take a moment to see that): a token sent
            // back before then would be held by the node, not announced.
            std::thread::sleep(Duration::from_millis(20));
            if round >= 3 {
                // The first rounds warm the node's pi cache.
                if let Some(a) = announced {
                    samples.push(a.as_secs_f64() * 1000.0);
                }
            }
        }
        self.push(stats(
            &format!("hand-off latency, {digits} digits"),
            "ms",
            samples,
            "TAKE_TOKEN connect -> TOKEN_IS_HERE heard",
        ));
    }

    fn engine(&mut self) {
        eprintln!("pi engine alone ...");
        for digits in [10_000, 100_000, 1_000_000] {
            let runs = if digits >= 1_000_000 { 3 } else { 5 };
            let samples = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let d = fraction_digits(digits);
                    assert_eq!(d.len(), digits);
                    t.elapsed().as_secs_f64()
                })
                .collect();
            self.push(stats(&format!("pi engine, {digits} digits"), "s", samples, "Chudnovsky, binary splitting"));
        }
    }

    /// The pi engines side by side, 1M to 10M digits: the one that ships
    /// (GMP) on one thread and on two, and the pure-Rust one it replaced
    /// (malachite). Every result is checked against the shipping engine's
    /// two-thread result (and the first million against its SHA-256).
    fn pi_engines(&mut self) {
        use pi_ring::pi::fraction_digits_on;
        use pi_ring_harness::engines::malachite;
        let sizes: &[usize] =
            if self.args.quick { &[1_000_000, 2_500_000] } else { &[1_000_000, 2_500_000, 5_000_000, 10_000_000] };
        type Engine = (&'static str, fn(usize) -> String);
        let engines: [Engine; 3] = [
            ("GMP (rug), 2 threads [ships]", |n| fraction_digits_on(n, 2)),
            ("GMP (rug), 1 thread", |n| fraction_digits_on(n, 1)),
            ("malachite, 1 thread [before]", malachite::fraction_digits),
        ];
        for &digits in sizes {
            let mut reference: Option<String> = None;
            for (name, engine) in engines {
                let runs = if digits >= 5_000_000 { 1 } else { 3 };
                eprintln!("pi engine {name}, {digits} digits x {runs} ...");
                let mut samples = Vec::new();
                for _ in 0..runs {
                    let t = Instant::now();
                    let d = engine(digits);
                    samples.push(t.elapsed().as_secs_f64());
                    assert_eq!(d.len(), digits);
                    match &reference {
                        Some(r) => assert!(r == &d, "{name} disagrees with the shipping engine at {digits} digits"),
                        None => reference = Some(d),
                    }
                }
                self.push(stats(&format!("pi {digits} digits: {name}"), "s", samples, "Chudnovsky, binary splitting"));
            }
            // GMP 6.3 from Python, if gmpy2 is installed: the pace the
            // engine is held to.
            let ours: String = sha2::Sha256::digest(reference.as_deref().unwrap_or_default())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let runs = if digits >= 5_000_000 { 1 } else { 3 };
            let mut samples = Vec::new();
            for _ in 0..runs {
                match gmpy2(digits) {
                    Ok((secs, sum)) => {
                        assert_eq!(sum, ours, "gmpy2 disagrees with the shipping engine at {digits} digits");
                        samples.push(secs);
                    }
                    Err(why) => {
                        eprintln!("pi engine GMP 6.3 via gmpy2: skipped ({why})");
                        break;
                    }
                }
            }
            if !samples.is_empty() {
                let name = format!("pi {digits} digits: GMP 6.3 via gmpy2 (Python), 1 thread [alternative]");
                self.push(stats(
                    &name,
                    "s",
                    samples,
                    "plain binary splitting, harness/src/engines/chudnovsky_gmpy2.py",
                ));
            }
            if digits >= 1_000_000 {
                let wire = format!("3,{}", &reference.as_deref().unwrap_or_default()[..1_000_000]);
                let sum: String = sha2::Sha256::digest(wire.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(sum, pi_ring_harness::MILLION_DIGITS_SHA256, "the first million digits are wrong");
            }
        }
    }

    /// CPU of a waiter in a ring that reached its target, and the resident
    /// memory of a node that holds 1,000,000 digits.
    /// Rings of `--scale-nodes` sizes with default timeouts and hold 0:
    /// start-up, coverage, steady load on both UDP ports, and churn.
    /// The monitor's page watching a ring of `--page-nodes` passing the
    /// token as fast as they can, in headless Chromium: frames drawn per
    /// second (the space-time view redraws every frame while it follows
    /// time), the page's JavaScript heap and the renderer's memory, the
    /// monitor's memory, every 10 s for `--page-secs`.
    fn page(&mut self) {
        use pi_ring_harness::browser::{browser_tools, Browser};
        let (n, secs) = (self.args.page_nodes, self.args.page_secs);
        eprintln!("the monitor page, {n} nodes, --hold-ms 0, default timeouts, watched for {secs} s ...");
        let ports = self.ports();
        let nodes: Vec<NodeProcess> = (0..n)
            .map(|i| {
                let host = Ipv4Addr::new(127, 7, (i / 250) as u8, (i % 250 + 1) as u8);
                NodeProcess::start(
                    &self.node,
                    &format!("n{:03}", i + 1),
                    host,
                    ports,
                    &["--summary-secs", "0", "--hold-ms", "0"],
                )
            })
            .collect();
        let http_addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string();
        let monitor = std::process::Command::new(self.node.with_file_name("pi-ring-monitor"))
            .args(["--http", &http_addr, "--udp-port", &ports.udp.to_string()])
            .args(["--monitor-port", &ports.monitor.to_string(), "--every", "0"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start pi-ring-monitor (next to pi-ring-node)");
        let monitor = pi_ring_harness::Killed(monitor);
        let ring = || -> Option<serde_json::Value> {
            serde_json::from_str(&pi_ring_harness::http(&http_addr, "GET", "/api/ring", None)?).ok()
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while ring().and_then(|r| r["nodes"].as_array().map(Vec::len)).unwrap_or(0) < n {
            if Instant::now() > deadline {
                eprintln!("  the monitor did not hear all {n} nodes within 180 s");
                kill_all(nodes);
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (chromium, chromedriver) = browser_tools();
        let browser = Browser::start(&chromedriver, &chromium);
        browser.open(&format!("http://{http_addr}/"));
        std::thread::sleep(Duration::from_secs(10));
        let sample = || {
            let v = browser.eval(
                "const s = window.spacetime; return [s.frames, performance.memory ? performance.memory.usedJSHeapSize : 0,                  s.events.length, s.nodes.length, s.drawn ? s.drawn.lanes.length : 0,                  s.drawn ? new Set(s.drawn.aggregated).size : 0]",
            );
            let f = |i: usize| v[i].as_f64().unwrap_or(0.0);
            (Instant::now(), f(0), f(1) / (1 << 20) as f64, f(2), f(3), f(4), f(5))
        };
        // The renderers' proportional set size (shared pages divided among
        // the processes that share them), so that Chromium's shared memory
        // is not counted once per process.
        let renderer_mib = || -> f64 {
            let mut total = 0.0;
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains("--type=renderer") {
                    let rollup = std::fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
                    let kb = rollup
                        .lines()
                        .find_map(|l| l.strip_prefix("Pss:"))
                        .map(|v| v.trim().trim_end_matches("kB").trim());
                    total += kb.and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0;
                }
            }
            total
        };
        let totals = || -> (f64, f64) {
            let passes = ring().and_then(|r| r["passes"].as_f64()).unwrap_or(0.0);
            let incidents = pi_ring_harness::http(&http_addr, "GET", "/api/incidents", None).unwrap_or_default();
            (passes, incidents.matches("\"kind\":\"token_lost\"").count() as f64)
        };
        let (passes_before, lost_before) = totals();
        let (mut fps, mut heap, mut renderer, mut monitor_rss, mut passes) = (vec![], vec![], vec![], vec![], vec![]);
        let mut last = sample();
        let mut last_passes = passes_before;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_secs(10));
            let now = sample();
            let rate = (now.1 - last.1) / now.0.duration_since(last.0).as_secs_f64();
            let rss = monitor.0.id();
            let (r, m) = (renderer_mib(), rss_mib(rss));
            let (total, _) = totals();
            let p = (total - last_passes) / now.0.duration_since(last.0).as_secs_f64();
            last_passes = total;
            eprintln!(
                "  {:>4.0} s: {rate:5.1} frames/s, JS heap {:6.1} MiB, renderer PSS {r:6.1} MiB, monitor RSS {m:5.1} MiB, {} events held, {} lanes drawn ({} aggregated), {p:.0} passes/s",
                started.elapsed().as_secs_f64(),
                now.2,
                now.3,
                now.5,
                now.6
            );
            fps.push(rate);
            heap.push(now.2);
            renderer.push(r);
            monitor_rss.push(m);
            passes.push(p);
            last = now;
        }
        let first_last =
            |v: &[f64]| format!("first {:.1}, last {:.1}", v.first().unwrap_or(&0.0), v.last().unwrap_or(&0.0));
        let note = format!("{n} nodes, {secs} s, 10 s intervals");
        self.push(stats("page: frames per second", "fps", fps, &note));
        let (h, r, m) = (first_last(&heap), first_last(&renderer), first_last(&monitor_rss));
        self.push(stats("page: JavaScript heap", "MiB", heap, &h));
        self.push(stats("page: renderer PSS", "MiB", renderer, &r));
        self.push(stats("page: monitor RSS", "MiB", monitor_rss, &m));
        self.push(stats("page: passes per second (10 s intervals)", "1/s", passes, &note));
        let (_, lost_after) = totals();
        self.push(stats("page: tokens lost while watched", "", vec![lost_after - lost_before], &note));
        drop(browser);
        kill_all(nodes);
    }

    fn scale_rings(&mut self) {
        for n in self.args.scale_nodes.clone() {
            self.scale_ring(n);
        }
    }

    fn scale_ring(&mut self, n: usize) {
        eprintln!("{n} nodes, default timeouts, --hold-ms 0 ...");
        let ports = self.ports();
        let observer = Observer::start(ports);
        let counter = RingPortCounter::start(ports.udp);
        let spawning = Instant::now();
        let nodes: Vec<NodeProcess> = (0..n)
            .map(|i| {
                let host = Ipv4Addr::new(127, 4, (i / 250) as u8, (i % 250 + 1) as u8);
                NodeProcess::start(&self.node, &format!("n{:03}", i + 1), host, ports, &["--summary-secs", "0"])
            })
            .collect();
        let all_started = Instant::now();
        let Some(first) = observer.wait_for(spawning, Duration::from_secs(60), |s| s.new == StateName::Owner) else {
            eprintln!("  no token within 60 s");
            return;
        };
        let first_token = first.at.saturating_duration_since(all_started).as_secs_f64();
        let failed: Vec<String> = nodes
            .iter()
            .filter_map(|p| {
                p.log_text().lines().find(|l| l.starts_with("pi-ring-node:")).map(|l| format!("{}: {l}", p.id))
            })
            .collect();
        if let Some(example) = failed.first() {
            eprintln!("  {} of {n} nodes did not start, e.g. {example}", failed.len());
        }
        // Coverage: when every node has said it held the token.
        let covered = {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let seen = observer.seen();
                // When each node first said it held the token.
                let mut held = std::collections::BTreeMap::new();
                for s in &seen {
                    if s.new == StateName::Owner || s.holdings.unwrap_or(0) > 0 {
                        held.entry(s.node.clone()).or_insert(s.at);
                    }
                }
                if held.len() >= n {
                    break held.values().max().copied();
                }
                if Instant::now() > deadline {
                    eprintln!("  only {} of {n} nodes held the token within 120 s", held.len());
                    break None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let window = Duration::from_secs(self.args.scale_secs);
        let from = Instant::now().max(first.at + Duration::from_secs(5));
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let pids: Vec<u32> = nodes.iter().filter_map(|p| p.pid()).collect();
        let ticks_before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        std::thread::sleep((from + window).saturating_duration_since(Instant::now()));
        let to = from + window;
        let cpu: Vec<f64> = pids
            .iter()
            .zip(ticks_before)
            .map(|(p, b)| cpu_ticks(*p).saturating_sub(b) as f64 / 100.0 / window.as_secs_f64() * 100.0)
            .collect();
        let rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
        let seen = observer.seen();
        let rate = passes_from_hops(&seen, from, to).unwrap_or(f64::NAN);
        let rounds = covered.map(|c| (c - first.at).as_secs_f64() * rate / n as f64);
        let (ring_dgrams, heartbeats) = counter.rates(from, to);
        let monitor = seen.iter().filter(|s| s.at >= from && s.at < to).count() as f64 / window.as_secs_f64();
        let after_first = |pred: &dyn Fn(&pi_ring_harness::Seen) -> bool| {
            seen.iter().filter(|s| s.at > first.at && pred(s)).count() as f64
        };
        let regenerations = after_first(&|s| s.old == StateName::Generating && s.new == StateName::Owner);
        let declared_lost = after_first(&|s| s.old == StateName::Waiter && s.new == StateName::Looser);
        let too_slow: usize = nodes.iter().map(|p| p.log_text().matches("too slow").count()).sum();
        let bad: usize = nodes.iter().map(|p| p.log_text().matches("dropped a bad message").count()).sum();
        // The defences against strangers must never bite on an honest ring.
        let bitten = pi_ring_harness::defences_bitten(&nodes);
        let digits = seen.iter().map(|s| s.progress).max().unwrap_or(0).saturating_sub(2);
        let name = |what: &str| format!("{n} nodes: {what}");
        let secs = window.as_secs();
        self.push(stats(&name("first token after the last start"), "s", vec![first_token], "defaults"));
        self.push(stats(
            &name("every node held the token after"),
            "rounds",
            vec![rounds.unwrap_or(f64::NAN)],
            "from the first token; round = n / passes per second",
        ));
        self.push(stats(&name("passes per second"), "1/s", vec![rate], &format!("{secs} s window, {digits} digits")));
        self.push(stats(&name("datagrams on the ring port"), "1/s", vec![ring_dgrams], "steady state"));
        self.push(stats(&name("TOKEN_IS_HERE on the ring port"), "1/s", vec![heartbeats], "heartbeat 0.5 s"));
        self.push(stats(&name("datagrams on the monitoring port"), "1/s", vec![monitor], "MY_STATE"));
        self.push(stats(
            &name("regenerations / tokens declared lost"),
            "count",
            vec![regenerations, declared_lost],
            "after the first token; min = regenerations, max = lost",
        ));
        self.push(stats(
            &name("connections closed as too slow / empty messages"),
            "count",
            vec![too_slow as f64, bad as f64],
            "whole run; min = too slow, max = empty",
        ));
        self.push(stats(
            &name("defences against strangers that bit"),
            "count",
            vec![bitten as f64],
            "whole run: budget, full-registry and flooded-queue warnings",
        ));
        self.push(stats(&name("CPU per node"), "%core", cpu, "steady window, hold 0: every node passes"));
        self.push(stats(&name("resident memory per node"), "MiB", rss, "VmRSS at the end of the window"));
        if !observer.wrong().is_empty() {
            eprintln!("  WRONG DIGITS: {:?}", &observer.wrong()[..1]);
        }
        kill_all(nodes);
        // Kills need a known holder: a second ring of the same size whose
        // holders keep the token 1 s (each entry is reported).
        if n > 5 {
            self.recovery_of(n, 5, &format!("{n} nodes, defaults"), DEFAULTS, 6.0, 1000);
        }
    }

    /// One ring of 5 nodes (hold 0) growing from nothing: passes per second
    /// as the expansion passes each length, bytes on the wire per hand-off
    /// there (an nftables counter on the ring's TCP port, when this runs as
    /// root with nft), the time from the first token to the longest
    /// length, the longest time without progress, and the hand-off time at
    /// the longest length against copying the data. `whole`: nodes that
    /// hand over whole expansions only (`--whole-hand-offs`), for
    /// comparison.
    fn lengths(&mut self, whole: bool) {
        let lengths: &[usize] =
            if self.args.quick { &[1_000, 10_000, 100_000] } else { &[1_000, 10_000, 100_000, 1_000_000] };
        let top = *lengths.last().unwrap();
        let window = |digits: usize| (digits + 2, digits + 2 + (digits / 10).max(20_000));
        let end = window(top).1;
        let kind = if whole { "whole expansions" } else { "deltas" };
        eprintln!("5 nodes growing to {} digits, --hold-ms 0, {kind} ...", end - 2);
        let target = (end - 2).to_string();
        let mut flags = vec!["--hold-ms", "0", "--target-digits", &target];
        if whole {
            flags.push("--whole-hand-offs");
        }
        let ports = self.ports_peek();
        let wire = WireCounter::new(ports.tcp);
        let (_nodes, observer, _, t0) = self.ring(5, &flags);
        // (when, longest expansion heard, bytes on the wire so far)
        let mut samples: Vec<(Instant, usize, u64)> = Vec::new();
        let deadline = t0 + Duration::from_secs(900);
        loop {
            let longest = observer.seen().iter().map(|s| s.progress as usize).max().unwrap_or(0);
            samples.push((Instant::now(), longest, wire.as_ref().map_or(0, WireCounter::bytes)));
            if longest >= end || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if samples.last().is_none_or(|s| s.1 < end) {
            eprintln!("  the ring did not reach {} digits in 900 s", end - 2);
            return;
        }
        let mut seen = observer.seen();
        seen.sort_by_key(|s| s.at);
        let when = |len: usize| seen.iter().find(|s| s.progress as usize >= len).map(|s| s.at);
        let wire_at = |len: usize| samples.iter().find(|s| s.1 >= len).map(|s| s.2);
        let mut per_pass_at_top = f64::NAN;
        let mut rates = Vec::new();
        for &digits in lengths {
            let (from, to) = window(digits);
            let (Some(t1), Some(t2)) = (when(from), when(to)) else { continue };
            let passes = (to - from) as f64 / 20.0;
            let rate = passes / (t2 - t1).as_secs_f64();
            rates.push(rate);
            per_pass_at_top = 1000.0 / rate;
            let note = format!("{} to {} digits, {kind}", from - 2, to - 2);
            self.push(stats(&format!("passes/s at {digits} digits, 5 nodes"), "1/s", vec![rate], &note));
            if let (Some(b1), Some(b2)) = (wire_at(from), wire_at(to)) {
                let per_hand_off = (b2 - b1) as f64 / passes;
                self.push(stats(
                    &format!("bytes on the wire per hand-off at {digits}"),
                    "B",
                    vec![per_hand_off],
                    &format!("nft counter on TCP port {}, headers included, {kind}", ports.tcp),
                ));
            }
        }
        if let (Some(first), Some(last)) = (when(22), when(top + 2)) {
            let secs = (last - first).as_secs_f64();
            self.push(stats(
                &format!("0 to {top} digits, 5 nodes"),
                "s",
                vec![secs],
                &format!("from the first holding, {kind}"),
            ));
        }
        if wire.is_none() {
            eprintln!("  (bytes on the wire need root and nft: not measured)");
        }
        // The longest time the ring's progress stood still after the start.
        let mut longest = (Duration::ZERO, 0);
        // From the first holding on (the cold start is a figure of its own).
        // Up to the target: there the ring slows to one pass per heartbeat.
        let grown: Vec<&pi_ring_harness::Seen> =
            seen.iter().skip_while(|s| s.progress < 22).take_while(|s| (s.progress as usize) < end).collect();
        let mut last = (grown.first().map(|s| s.at).unwrap_or(t0), 22u64);
        for s in grown {
            if s.progress > last.1 {
                if s.at - last.0 > longest.0 {
                    longest = (s.at - last.0, last.1.saturating_sub(2));
                }
                last = (s.at, s.progress);
            }
        }
        let note = format!("whole growth; the longest from {} digits, {kind}", longest.1);
        self.push(stats("longest time without progress, 5 nodes", "s", vec![longest.0.as_secs_f64()], &note));
        let copy = copy_ms(top + 2);
        self.push(stats(
            &format!("hand-off at {top} digits / 4 copies of the data"),
            "ratio",
            vec![per_pass_at_top / copy],
            &format!("{per_pass_at_top:.2} ms vs {copy:.3} ms, {kind}"),
        ));
        if let (Some(first), Some(&top_rate)) = (rates.first(), rates.last()) {
            self.push(stats(&format!("passes/s at {top} / at 1000 digits"), "ratio", vec![top_rate / first], kind));
        }
        if !observer.wrong().is_empty() {
            eprintln!("  WRONG DIGITS: {:?}", &observer.wrong()[..1]);
        }
    }

    /// Five hosts on a LAN of network namespaces whose links run at 100
    /// Mbit/s, growing from nothing to 200,000 digits with `--hold-ms 0`:
    /// pi-ring nodes handing over deltas, the same with whole expansions,
    /// and a mixed ring whose fifth node takes only whole expansions (as
    /// the older implementation). Passes per second along the way, bytes on
    /// the wire per hand-off, and every expansion heard checked against
    /// pi. Needs root.
    fn lan(&mut self) {
        use pi_ring_harness::netns::{Lan, BROADCAST};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("the lan scenario builds network namespaces: run it as root");
            return;
        }
        const TOP: usize = 200_000;
        for (tag, kind, whole_nodes) in [("bd", "deltas", 0), ("bw", "whole expansions", 5), ("bm", "mixed", 1)] {
            eprintln!("5 hosts on a 100 Mbit/s LAN growing to {TOP} digits, {kind} ...");
            let lan = Lan::new(tag, 5);
            lan.limit_rate(100);
            let ports = Ports { udp: 23912, tcp: 8239, monitor: 23937 };
            let observer = Observer::start_in(ports, Some(&lan.observer_ns));
            let counters: Vec<WireCounter> =
                lan.hosts.iter().filter_map(|h| WireCounter::new_in(ports.tcp, Some(&h.ns))).collect();
            let target = (TOP + 20_000).to_string();
            let t0 = Instant::now();
            let nodes: Vec<NodeProcess> = lan
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let mut flags = vec!["--hold-ms", "0", "--target-digits", &target];
                    if i >= 5 - whole_nodes {
                        flags.push("--whole-hand-offs");
                    }
                    let id = format!("node{}", i + 1);
                    NodeProcess::start_in(Some(&h.ns), &self.node, &id, h.ip, BROADCAST, ports, &flags)
                })
                .collect();
            let bytes = || counters.iter().map(WireCounter::bytes).sum::<u64>();
            let mut samples: Vec<(Instant, usize, u64)> = Vec::new();
            let deadline = t0 + Duration::from_secs(600);
            loop {
                let longest = observer.seen().iter().map(|s| s.progress as usize).max().unwrap_or(0);
                samples.push((Instant::now(), longest, bytes()));
                if longest >= TOP + 2 || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let at = |len: usize| samples.iter().find(|s| s.1 >= len).copied();
            let (Some(first), Some(last)) = (at(22), at(TOP + 2)) else {
                eprintln!("  the ring did not reach {TOP} digits in 600 s");
                kill_all(nodes);
                continue;
            };
            let secs = (last.0 - first.0).as_secs_f64();
            self.push(stats(&format!("LAN 100 Mbit/s: 0 to {TOP} digits"), "s", vec![secs], kind));
            for (from, to) in [(10_000, 20_000), (100_000, 110_000), (TOP - 10_000, TOP)] {
                let (Some(a), Some(b)) = (at(from + 2), at(to + 2)) else { continue };
                let passes = (to - from) as f64 / 20.0;
                let rate = passes / (b.0 - a.0).as_secs_f64().max(1e-3);
                let per_hand_off = (b.2 - a.2) as f64 / passes;
                let note = format!("{from} to {to} digits, {kind}");
                self.push(stats(&format!("LAN: passes/s at {from} digits"), "1/s", vec![rate], &note));
                self.push(stats(
                    &format!("LAN: bytes on the wire per hand-off at {from}"),
                    "B",
                    vec![per_hand_off],
                    &note,
                ));
            }
            let wrong = observer.wrong();
            let refused: usize = nodes.iter().map(|n| n.log_text().matches("are pi; keeping those").count()).sum();
            eprintln!("  expansions heard that are not pi: {}; hand-offs with wrong digits: {refused}", wrong.len());
            kill_all(nodes);
        }
    }

    fn idle(&mut self) {
        eprintln!("idle waiter CPU and RSS with 1,000,000 digits ...");
        let (nodes, observer, _, t0) = self.ring(3, &["--hold-ms", "0", "--target-digits", "1000000"]);
        let done = observer.wait_for(t0, Duration::from_secs(600), |s| s.progress >= 1_000_002);
        if done.is_none() {
            eprintln!("  the ring did not reach 1,000,000 digits");
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
        let pids: Vec<u32> = nodes.iter().filter_map(|n| n.pid()).collect();
        let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        let window = Duration::from_secs(5);
        std::thread::sleep(window);
        let tick = 100.0; // USER_HZ on Linux
        let cpu: Vec<f64> = pids
            .iter()
            .zip(before)
            .map(|(p, b)| (cpu_ticks(*p) - b) as f64 / tick / window.as_secs_f64() * 100.0)
            .collect();
        let rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
        self.push(stats(
            "CPU of a node, ring idle at target (1M digits)",
            "%core",
            cpu,
            "3 nodes, token passed every heartbeat",
        ));
        self.push(stats("resident memory, node holding 1M digits", "MiB", rss, "VmRSS"));
    }
}

/// Datagrams overheard on a ring's UDP port: (time, is TOKEN_IS_HERE).
struct RingPortCounter {
    seen: Arc<Mutex<Vec<(Instant, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl RingPortCounter {
    fn start(port: u16) -> Self {
        let seen: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let socket = udp_listener(port);
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            pi_ring_harness::raise_this_threads_priority();
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
                let heartbeat =
                    matches!(RawMessage::decode(&buf[..n], MAX_DATAGRAM).map(|m| m.body), Ok(Body::TokenIsHere { .. }));
                seen2.lock().unwrap().push((Instant::now(), heartbeat));
            }
        });
        RingPortCounter { seen, stop }
    }

    /// (datagrams, TOKEN_IS_HERE) per second within [from, to).
    fn rates(&self, from: Instant, to: Instant) -> (f64, f64) {
        let seen = self.seen.lock().unwrap();
        let window: Vec<&(Instant, bool)> = seen.iter().filter(|(t, _)| *t >= from && *t < to).collect();
        let secs = (to - from).as_secs_f64();
        (window.len() as f64 / secs, window.iter().filter(|(_, hb)| *hb).count() as f64 / secs)
    }
}

impl Drop for RingPortCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Passes per second from the token's hand-off counts in MY_STATE, between
/// the first report at or after `from` and the last before `to`.
fn passes_from_hops(seen: &[pi_ring_harness::Seen], from: Instant, to: Instant) -> Option<f64> {
    let with_hops: Vec<(Instant, u64)> =
        seen.iter().filter(|s| s.at >= from && s.at < to).filter_map(|s| Some((s.at, s.hops?))).collect();
    let (first, last) = (with_hops.first()?, with_hops.iter().max_by_key(|(_, h)| *h)?);
    (last.1 > first.1 && last.0 > first.0).then(|| (last.1 - first.1) as f64 / (last.0 - first.0).as_secs_f64())
}

fn scale(f: &Figure, k: f64) -> Figure {
    Figure {
        median: f.median * k,
        min: f.min * k,
        max: f.max * k,
        p99: f.p99.map(|p| p * k),
        note: String::new(),
        ..f.clone()
    }
}

/// Milliseconds to copy `len` bytes four times (the median of 20 tries).
fn copy_ms(len: usize) -> f64 {
    let source = vec![b'7'; len];
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..4 {
                let copy = source.clone();
                std::hint::black_box(&copy);
            }
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// An nftables counter of the bytes (headers included) sent to a TCP port
/// on this machine: what the wire carries. Needs root and `nft`; removed
/// when dropped.
struct WireCounter {
    table: String,
    netns: Option<String>,
}

/// `nft`, run inside `netns` if given.
fn nft_command(netns: Option<&str>) -> std::process::Command {
    match netns {
        Some(ns) => {
            let mut command = std::process::Command::new("ip");
            command.args(["netns", "exec", ns, "nft"]);
            command
        }
        None => std::process::Command::new("nft"),
    }
}

impl WireCounter {
    fn new(port: u16) -> Option<WireCounter> {
        WireCounter::new_in(port, None)
    }

    /// A counter in network namespace `netns` (its host's own traffic).
    fn new_in(port: u16, netns: Option<&str>) -> Option<WireCounter> {
        let table = format!("pi_ring_bench_{}_{port}", std::process::id());
        let nft = |args: &str| {
            let mut command = nft_command(netns);
            command.args(args.split(' ')).output().is_ok_and(|o| o.status.success())
        };
        let made = nft(&format!("add table inet {table}"))
            && nft(&format!("add chain inet {table} out {{ type filter hook output priority 0 ; }}"))
            && nft(&format!("add rule inet {table} out tcp dport {port} counter"));
        let counter = WireCounter { table, netns: netns.map(str::to_owned) };
        made.then_some(counter)
    }

    fn bytes(&self) -> u64 {
        let out = nft_command(self.netns.as_deref()).args(["list", "table", "inet", &self.table]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.split("bytes ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for WireCounter {
    fn drop(&mut self) {
        let _ = nft_command(self.netns.as_deref()).args(["delete", "table", "inet", &self.table]).output();
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; after the ")" they are 12 and 13.
    fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    let node = args.node.clone().unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("pi-ring-node"));
    if !node.exists() {
        eprintln!("pi-ring-bench: {} not found; build it with `cargo build --release` or pass --node", node.display());
        std::process::exit(2);
    }
    let started = Instant::now();
    let mut b = Bench { next_port: args.base_port, args, node, next_host: 10, figures: Vec::new() };
    if b.wants("engine") {
        b.engine();
    }
    // Minutes of CPU at 10M digits: only when named.
    if b.args.only.iter().any(|o| o == "pi") {
        b.pi_engines();
    }
    if b.wants("first-token") {
        b.first_token();
    }
    if b.wants("handoff") {
        b.handoff(20, 500);
        b.handoff(1_000_000, 30);
    }
    if b.wants("passes") {
        b.passes(3);
        b.passes(5);
    }
    if b.wants("lengths") {
        b.lengths(false);
    }
    if b.wants("lengths-whole") {
        b.lengths(true);
    }
    if b.wants("lan") {
        b.lan();
    }
    if b.wants("scale") {
        b.scale_rings();
    }
    if b.wants("growth") {
        let runs = b.args.runs;
        b.growth(100_000, runs);
    }
    if b.wants("growth-1m") && !b.args.quick {
        b.growth(1_000_000, 1);
    }
    // Minutes of CPU: only when named.
    if b.args.only.iter().any(|o| o == "growth-10m") {
        let runs = b.args.runs.min(3);
        b.growth_to(10_000_000, runs, true);
        b.growth_to(10_000_000, runs, false);
    }
    if b.wants("recovery") {
        b.recovery("defaults", DEFAULTS, 6.0, 2000);
    }
    if b.wants("recovery-fast") {
        b.recovery("fast profile", FAST, 0.6, 200);
    }
    if b.wants("idle") && !b.args.quick {
        b.idle();
    }
    if b.wants("stop") {
        b.stop();
    }
    // Needs Chromium and takes its time: only when named.
    if b.args.only.iter().any(|o| o == "page") {
        b.page();
    }
    if b.wants("soak") && !b.args.quick {
        b.soak();
    }
    println!();
    println!("| figure | median | min | max | p99 | n | note |");
    println!("|---|---|---|---|---|---|---|");
    for f in &b.figures {
        let p99 = f.p99.map(|p| format!("{p:.3}")).unwrap_or_else(|| "".into());
        println!(
            "| {} | {:.3} {} | {:.3} | {:.3} | {} | {} | {} |",
            f.name, f.median, f.unit, f.min, f.max, p99, f.samples, f.note
        );
    }
    if let Some(dir) = b.args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let json = serde_json::json!({
        "date": chrono_free_date(),
        "runs": b.args.runs,
        "figures": b.figures,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::write(&b.args.json, serde_json::to_vec_pretty(&json).unwrap()).expect("write JSON");
    eprintln!("\nwrote {} ({:.0} s)", b.args.json.display(), started.elapsed().as_secs_f64());
}

/// `digits` of pi by GMP 6.3 from Python (gmpy2): the seconds it took and
/// the SHA-256 of the fractional digits, or why it could not run.
fn gmpy2(digits: usize) -> Result<(f64, String), String> {
    const SCRIPT: &str = include_str!("../engines/chudnovsky_gmpy2.py");
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, &digits.to_string()])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("failed");
        return Err(if last.contains("gmpy2") { format!("{last}; pip install gmpy2") } else { last.to_owned() });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let secs = words.next().and_then(|w| w.parse().ok()).ok_or("no time printed")?;
    let sum = words.next().ok_or("no checksum printed")?.to_owned();
    Ok((secs, sum))
}

/// Seconds since the Unix epoch (the table's date comes from the script).
fn chrono_free_date() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
