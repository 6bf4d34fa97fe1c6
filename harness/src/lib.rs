//! The test bed of pi-ring: rings of real `pi-ring-node` processes on
//! loopback (or in network namespaces), for the integration tests and the
//! benchmark. Not part of the product: the `pi-ring` library ships the node,
//! the monitor and the verifier; this crate only drives them from outside.
//!
//! - [`NodeProcess`]: a node process, killed when dropped (even when a test
//!   fails), whose log is shown if the test panics.
//! - [`Observer`]: listens to a ring's monitoring port like a monitor and
//!   checks every expansion tail it hears against pi.
//! - [`Ports`] and [`fresh_host`]: free ports and loopback addresses, so
//!   tests running at once (in one checkout or two) never collide.
//! - [`netns`]: a LAN of network namespaces (needs root), for the fault
//!   tests and the LAN benchmark.
//! - [`browser`]: headless Chromium through WebDriver, for the monitor
//!   page's tests and benchmark; [`Killed`] for helper processes.
//! - [`engines`]: pi engines to measure beside the one that ships.

pub mod browser;
pub mod engines;
pub mod netns;

pub use browser::http;

use pi_ring::actors::udp::MAX_DATAGRAM;
use pi_ring::pi::fraction_digits;
use pi_ring::protocol::{Body, RawMessage, StateName};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// SHA-256 (hex) of `3,` and the first 1,000,000 fractional digits of pi.
pub const MILLION_DIGITS_SHA256: &str = "b0822ac09ecef486feb524a9db819c2563094098a6e981d4267d40d9ba23361e";

/// `3,` and the first million digits of pi: the wire form every expansion
/// is a prefix of. Computed once by the engine and checked against the
/// SHA-256 checkpoint, so no reference file is needed.
pub fn reference_wire() -> &'static str {
    static PI: OnceLock<String> = OnceLock::new();
    PI.get_or_init(|| {
        let wire = format!("3,{}", fraction_digits(1_000_000));
        let hash: String = Sha256::digest(wire.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash, MILLION_DIGITS_SHA256, "the engine's million digits do not match the checkpoint");
        wire
    })
}

/// A loopback address of its own for each node a test starts:
/// `127.A.B.C` with `A.B` drawn from the process id and `C` counting, so
/// two test processes (two checkouts testing at once) use different ones.
pub fn fresh_host() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let a = 100 + (pid % 150) as u8;
    let b = 1 + ((pid / 150 + n / 240) % 250) as u8;
    Ipv4Addr::new(127, a, b, 10 + (n % 240) as u8)
}

/// Ports of one test's ring.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
    pub monitor: u16,
}

impl Ports {
    /// Three consecutive ports from `base` (benchmarks, namespaces).
    pub fn new(base: u16) -> Self {
        Ports { udp: base, tcp: base + 1, monitor: base + 2 }
    }

    /// Three consecutive ports (UDP ring, TCP, UDP monitoring) that no
    /// other process uses now: a ring of its own that no other test (or
    /// checkout) hears. They come from 20,000-32,767, below Linux's
    /// ephemeral range, so no socket that binds port 0 (any process's
    /// connection or sender) can take one between this check and the ring's
    /// start; each call in a process gets another block, and processes
    /// start at different places (from their process id).
    pub fn free() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        const FIRST: u32 = 20_000;
        const BLOCKS: u32 = (32_767 - FIRST) / 3;
        let start = std::process::id().wrapping_mul(7919) % BLOCKS;
        for _ in 0..BLOCKS {
            let block = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BLOCKS;
            let base = (FIRST + block * 3) as u16;
            let udp = |port| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).is_ok();
            let tcp = |host: [u8; 4]| std::net::TcpListener::bind(SocketAddrV4::new(host.into(), base + 1)).is_ok();
            let hosts = [[0, 0, 0, 0], [127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]];
            if udp(base) && udp(base + 2) && hosts.into_iter().all(tcp) {
                return Ports::new(base);
            }
        }
        panic!("no free block of three ports in 20000-32767");
    }
}

/// A running node process, killed when dropped (even if the test fails).
pub struct NodeProcess {
    pub id: String,
    binary: PathBuf,
    /// Run inside this network namespace (`ip netns exec`).
    netns: Option<String>,
    pub host: Ipv4Addr,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl NodeProcess {
    /// Start `binary` (a `pi-ring-node`) as node `id` on `host`.
    pub fn start(binary: &std::path::Path, id: &str, host: Ipv4Addr, ports: Ports, extra: &[&str]) -> Self {
        Self::start_in(None, binary, id, host, Ipv4Addr::new(127, 255, 255, 255), ports, extra)
    }

    /// Start a node in network namespace `netns` (if any), broadcasting to
    /// `broadcast`.
    pub fn start_in(
        netns: Option<&str>,
        binary: &std::path::Path,
        id: &str,
        host: Ipv4Addr,
        broadcast: Ipv4Addr,
        ports: Ports,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<String> = vec![
            "--id".into(),
            id.into(),
            "--bind".into(),
            host.to_string(),
            "--broadcast".into(),
            broadcast.to_string(),
            "--udp-port".into(),
            ports.udp.to_string(),
            "--tcp-port".into(),
            ports.tcp.to_string(),
            "--monitor-port".into(),
            ports.monitor.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let place = netns.unwrap_or("host");
        let log =
            std::env::temp_dir().join(format!("pi-ring-test-{place}-{}-{id}-{}.log", ports.udp, std::process::id()));
        let netns = netns.map(str::to_owned);
        let mut node = NodeProcess { id: id.into(), binary: binary.to_owned(), netns, host, child: None, args, log };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let log = std::fs::File::options().create(true).append(true).open(&self.log).expect("log file");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pi-ring-node");
        self.child = Some(child);
    }

    /// SIGKILL: no goodbye, like a crash or a power cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL without waiting for the exit (see [`kill_all`]).
    pub fn send_kill(&self) {
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// SIGTERM, a planned stop; waits (at most `within`) for the exit.
    /// Returns whether the process exited by itself.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Lines the node has logged so far.
    pub fn log_tail_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map(|t| t.lines().count()).unwrap_or(0)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Kill many nodes at once: SIGKILL to all, then wait for each. A killed
/// process exits only when every one of its threads has run, and its
/// idle-priority thread computing digits ahead runs only on a core nothing
/// else wants; killed one at a time while the others keep the machine busy,
/// a ring of hundreds takes minutes to stop.
pub fn kill_all(nodes: Vec<NodeProcess>) {
    for node in &nodes {
        node.send_kill();
    }
    drop(nodes);
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("--- last log lines of {} ({}):\n{}", self.id, self.log.display(), self.log_tail());
        }
    }
}

/// One MY_STATE as overheard.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub node: String,
    pub old: StateName,
    pub new: StateName,
    pub progress: u64,
    pub tail: String,
    /// The token's author and revision, if the node said.
    pub token: Option<(String, u64)>,
    /// The token's hand-offs since it was generated, if the node said.
    pub hops: Option<u64>,
    /// The node's holdings since it started, if it said.
    pub holdings: Option<u64>,
    /// Who handed it the token (entering OWNER), whom it handed the token
    /// to (leaving OWNER), if it said.
    pub handed_by: Option<String>,
    pub handed_to: Option<String>,
}

/// Listens to a ring's monitoring port and checks every expansion tail it
/// hears against the reference digits.
pub struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
    wrong: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// A blocking UDP socket sharing `port` with the ring's nodes (100 ms
/// read timeout).
pub fn udp_listener(port: u16) -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    // A fast ring sends thousands of MY_STATE a second: buffer bursts.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket.bind(&addr.into()).unwrap_or_else(|e| panic!("cannot listen on UDP {addr}: {e}"));
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    socket.into()
}

/// Send one message the way nodes do: connect from `from` (so the node
/// sees our address), write everything, close.
pub fn send_from(from: Ipv4Addr, to: SocketAddrV4, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    use std::io::Write;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddrV4::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    socket.set_write_timeout(Some(timeout))?;
    let mut stream: std::net::TcpStream = socket.into();
    stream.write_all(bytes)?;
    stream.shutdown(std::net::Shutdown::Write)
}

/// Let a watching thread run before the nodes it watches (niceness -10,
/// when allowed): among hundreds of busy node processes on two cores, an
/// observer of normal priority is starved and stamps datagrams in bursts.
/// Without the privilege it stays as it is.
pub fn raise_this_threads_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread
    // id only changes this thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10);
    }
}

/// Count the UDP datagrams that reach `port` on a socket bound to
/// `0.0.0.0` (broadcasts, and unicast to addresses no other socket holds),
/// from network namespace `netns` if given, until the returned flag is set.
pub fn count_datagrams(port: u16, netns: Option<&str>) -> (Arc<std::sync::atomic::AtomicU64>, Arc<AtomicBool>) {
    use std::sync::atomic::AtomicU64;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
    let netns = netns.map(|n| PathBuf::from("/var/run/netns").join(n));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(path) = netns {
            join_netns(&path);
        }
        let socket = udp_listener(port);
        let _ = ready_tx.send(());
        let mut buf = [0u8; 4097];
        while !s.load(Ordering::Relaxed) {
            if socket.recv_from(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    ready_rx.recv().expect("the counter started");
    (count, stop)
}

/// Move the calling thread into the network namespace at `path`.
fn join_netns(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: a valid namespace descriptor; affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {}: {}", path.display(), std::io::Error::last_os_error());
}

impl Observer {
    pub fn start(ports: Ports) -> Self {
        Self::start_in(ports, None)
    }

    /// An observer listening inside network namespace `netns` (its thread
    /// joins the namespace; the rest of the process stays where it is).
    pub fn start_in(ports: Ports, netns: Option<&str>) -> Self {
        let observer = Observer { seen: Arc::default(), wrong: Arc::default(), stop: Arc::default() };
        let (seen, wrong, stop) = (Arc::clone(&observer.seen), Arc::clone(&observer.wrong), Arc::clone(&observer.stop));
        let netns = netns.map(|n| PathBuf::from("/var/run/netns").join(n));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(path) = netns {
                join_netns(&path);
            }
            raise_this_threads_priority();
            let socket = udp_listener(ports.monitor);
            let _ = ready_tx.send(());
            let reference = reference_wire();
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
                let Ok(raw) = RawMessage::decode(&buf[..n], MAX_DATAGRAM) else { continue };
                let Body::MyState(state) = raw.body else { continue };
                let progress = state.progress.unwrap_or(0);
                let tail = state.digits_tail.clone().unwrap_or_default();
                let p = progress as usize;
                let expected = reference.get(p.saturating_sub(tail.len())..p).unwrap_or("<beyond reference>");
                // Beyond the reference (1,000,000 digits) nothing is checked.
                if p <= reference.len() && expected != tail {
                    wrong.lock().unwrap().push(format!("{} at {progress}: {tail:?}, pi has {expected:?}", raw.author));
                }
                seen.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    node: raw.author,
                    old: StateName::from_wire(&state.old_state).unwrap_or(StateName::None),
                    new: StateName::from_wire(&state.new_state).unwrap_or(StateName::None),
                    progress,
                    tail,
                    token: state.token.as_ref().map(|t| (t.author_node_id.clone(), t.author_token_revision)),
                    hops: state.hops,
                    holdings: state.holdings,
                    handed_by: state.handed_by.clone(),
                    handed_to: state.handed_to.clone(),
                });
            }
        });
        ready_rx.recv().expect("the observer thread started");
        observer
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Expansions heard that were not pi (must stay empty).
    pub fn wrong(&self) -> Vec<String> {
        self.wrong.lock().unwrap().clone()
    }

    /// Wait for the first MY_STATE after `since` that satisfies `pred`.
    pub fn wait_for(&self, since: Instant, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.seen.lock().unwrap().iter().find(|s| s.at >= since && pred(s)) {
                return Some(s.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The node that holds the ring's only token now: waits until `passes`
    /// hand-offs in a row carried one token (author and revision), so that
    /// no token of the ring's formation lives on, and returns the last
    /// holder's report, made as it took the token (with `--hold-ms`, it
    /// still holds it). A node that reported a holding a moment before it
    /// yielded to a better token is not taken for the holder.
    pub fn steady_holder(&self, passes: usize, within: Duration) -> Option<Seen> {
        let deadline = Instant::now() + within;
        let mut since = Instant::now();
        let mut run: Vec<Seen> = Vec::new();
        while run.len() < passes {
            let left = deadline.checked_duration_since(Instant::now())?;
            let next = self.wait_for(since, left, |s| s.new == StateName::Owner && s.token.is_some())?;
            since = next.at + Duration::from_nanos(1);
            if run.last().is_some_and(|last| last.token != next.token) {
                run.clear();
            }
            run.push(next);
        }
        run.pop()
    }

    /// Wait until `n` different nodes have said they held the token since
    /// `since`; how long that took. Fails after `within`, naming who held.
    pub fn wait_until_all_held(&self, n: usize, since: Instant, within: Duration) -> Duration {
        let deadline = since + within;
        loop {
            let held: std::collections::BTreeSet<String> = self
                .seen()
                .into_iter()
                .filter(|s| s.at >= since && s.new == StateName::Owner)
                .map(|s| s.node)
                .collect();
            if held.len() >= n {
                return since.elapsed();
            }
            assert!(Instant::now() < deadline, "within {within:?} only {held:?} held the token");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The latest state each node announced.
    pub fn latest(&self) -> std::collections::BTreeMap<String, Seen> {
        let mut latest = std::collections::BTreeMap::new();
        for s in self.seen.lock().unwrap().iter() {
            latest.insert(s.node.clone(), s.clone());
        }
        latest
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a node logs when a defence against strangers bites (a budget, the
/// full registry, the flooded queue): never on an honest ring.
pub const DEFENCES_BITING: [&str; 3] = ["too many TCP answers", "registry is full", "the node is flooded"];

/// How often the nodes' logs say a defence against strangers bit.
pub fn defences_bitten(nodes: &[NodeProcess]) -> usize {
    nodes
        .iter()
        .map(|n| {
            let log = n.log_text();
            DEFENCES_BITING.iter().map(|w| log.matches(w).count()).sum::<usize>()
        })
        .sum()
}

/// Resident memory of a process, in MiB (0 if unknown).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The fast timeout profile of the benchmarks and fault tests: heartbeat
/// 50 ms; waiter, looser-answer and generating 200 ms (recovery bound 0.6 s).
pub const FAST_TIMING: &[&str] = &[
    "--heartbeat-ms",
    "50",
    "--waiter-ms",
    "200",
    "--looser-ask-ms",
    "50",
    "--looser-answer-ms",
    "200",
    "--generating-ms",
    "200",
];

/// The quick profile of the process tests and the soak: heartbeat 100 ms;
/// waiter, looser-answer and generating 400 ms (recovery bound 1.2 s).
pub const QUICK_TIMING: &[&str] = &[
    "--heartbeat-ms",
    "100",
    "--waiter-ms",
    "400",
    "--looser-ask-ms",
    "100",
    "--looser-answer-ms",
    "400",
    "--generating-ms",
    "400",
];

/// Kills a helper process when the test ends, even on failure.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
