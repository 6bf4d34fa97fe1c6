//! `pi-ring-node`: one node of a pi-ring. See `--help` and README.md.

use clap::Parser;
use pi_ring::actors::{persist, start_node, NodeConfig, Stop};
use pi_ring::error::StartError;
use pi_ring::logging::{LogFormat, VERSION};
use pi_ring::pi::store::Store;
use pi_ring::pi::PiDigits;
use pi_ring::protocol::machine::Timing;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// One node of a pi-ring: finds its peers by UDP broadcast, passes a token
/// around the ring by TCP, and appends 20 digits of pi whenever it holds it.
///
/// On one machine, give every node its own loopback address:
///   pi-ring-node --bind 127.0.0.2    (and 127.0.0.3, 127.0.0.4 ... in other terminals)
/// On a LAN, name the interface:
///   pi-ring-node --interface eth0
///
/// Every node of a ring uses the same --udp-port, --tcp-port and
/// --monitor-port, and its own address and --id.
///
/// Logs go to stderr; RUST_LOG=debug shows every pass.
/// Ctrl-C or SIGTERM stops the node; if it holds the token, it first hands
/// the token and the expansion to the next node. A second signal stops it
/// at once.
///
/// Exit status: 0 after a stop by signal, 2 for a command line that cannot
/// work (bad flags or timeouts), 1 when this machine prevents it (address,
/// ports, data directory, secret file) or the node had to stop (another
/// node uses its --id).
#[derive(Parser, Debug)]
#[command(name = "pi-ring-node", version = VERSION, verbatim_doc_comment, allow_negative_numbers = true)]
#[command(group(clap::ArgGroup::new("address").required(true).args(["bind", "interface"])))]
struct Args {
    /// This node's id, unique in the ring and stable across restarts
    /// [default: the bound address]
    #[arg(long)]
    id: Option<String>,

    /// IPv4 address to listen on (TCP) and send broadcasts from
    #[arg(long, value_name = "IPV4")]
    bind: Option<Ipv4Addr>,

    /// Broadcast address of the ring's network [default: 127.255.255.255 for
    /// a loopback --bind, else the broadcast address of the interface that
    /// holds the --bind address]
    #[arg(long, value_name = "IPV4")]
    broadcast: Option<Ipv4Addr>,

    /// Take the address and broadcast address from this network interface
    /// (for a real LAN), e.g. eth0
    #[arg(long, value_name = "NAME", conflicts_with = "bind")]
    interface: Option<String>,

    /// UDP port of the ring's broadcasts
    #[arg(long, default_value_t = 23912)]
    udp_port: u16,

    /// TCP port every node listens on
    #[arg(long, default_value_t = 8239)]
    tcp_port: u16,

    /// UDP port MY_STATE monitoring broadcasts go to
    #[arg(long, default_value_t = 23937)]
    monitor_port: u16,

    /// Heartbeat period of the token holder (ms)
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = millis)]
    heartbeat_ms: u64,

    /// Silence after which a waiter declares the token lost (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = millis)]
    waiter_ms: u64,

    /// Period of WHERE_IS_TOKEN while searching (ms)
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = millis)]
    looser_ask_ms: u64,

    /// Search time without an answer before claiming the token (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = millis)]
    looser_answer_ms: u64,

    /// Time a claim must stand unchallenged before the token is generated (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = millis)]
    generating_ms: u64,

    /// Minimum time a holder keeps the token before passing it on (ms);
    /// 0 passes as soon as its 20 digits are computed
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = millis)]
    hold_ms: u64,

    /// Monitors hear of routine hand-offs at most this often across the
    /// ring (ms): the holder at that moment reports, and every node sends a
    /// coalesced report at most once a second. 0 reports every change
    /// (two datagrams per pass on the monitoring port)
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = millis)]
    report_ms: u64,

    /// Stop extending the expansion at this many digits after the point
    /// (the ring stays alive and keeps passing the token)
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    target_digits: usize,

    /// Largest TCP message accepted (MiB); limits the expansion's length
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    max_message_mib: usize,

    /// Keep the expansion in this directory: saved atomically whenever it
    /// grows, loaded and verified at start (the ring then resumes from it)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// Authenticate the ring with the secret in this file: every message is
    /// tagged (HMAC-SHA256 with a timestamp); untagged, forged, stale and
    /// replayed messages are dropped. Every node of the ring needs the same
    /// secret. The secret itself may instead be given in PI_RING_SECRET.
    #[arg(long, value_name = "PATH", env = "PI_RING_SECRET_FILE")]
    secret_file: Option<std::path::PathBuf>,

    /// Seconds between one-line summaries in the log (0: none)
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    summary_secs: u64,

    /// A seed peer: a host (name or IPv4 address) running a node of the
    /// ring, for rings beyond one broadcast domain. Repeat it for several.
    /// The node sends what it broadcasts to seeds by unicast until it knows
    /// a member there, and learns the ring from their answers. Also from
    /// PI_RING_PEERS (comma- or space-separated)
    #[arg(long = "peer", value_name = "HOST")]
    peers: Vec<String>,

    /// Read seed peers from this file: one host per line, # for comments
    #[arg(long, value_name = "PATH")]
    peers_file: Option<std::path::PathBuf>,

    /// Broadcast nothing (networks without broadcast, e.g. clouds): every
    /// message the protocol broadcasts goes by unicast to each known member
    /// and seed instead. Needs --peer
    #[arg(long)]
    no_broadcast: bool,

    /// Also send MY_STATE (what monitors show) by unicast to a monitor on
    /// this host (name or IPv4 address); repeat it for several. With
    /// --no-broadcast, the only way a monitor hears the ring
    #[arg(long = "monitor-peer", value_name = "HOST")]
    monitor_peers: Vec<String>,

    /// Hand over and take only whole expansions, as the older
    /// implementation does: this node never says `have`, so nobody sends it
    /// deltas, and it sends none (PROTOCOL section 10, "Delta hand-offs").
    /// For comparisons and interoperability tests
    #[arg(long)]
    whole_hand_offs: bool,

    /// Share computed digits with the other nodes of this user on this
    /// machine through this directory (it must be this user's alone, mode
    /// 0700): each doubling of the digit cache is then computed once per
    /// machine, not once per node. See SECURITY.md for the trust it implies
    /// [default: $XDG_RUNTIME_DIR/pi-ring-digits, else
    /// /dev/shm/pi-ring-digits-UID]
    #[arg(long, value_name = "DIR")]
    shared_digits: Option<std::path::PathBuf>,

    /// Compute every digit in this node, sharing nothing with other nodes
    #[arg(long, conflicts_with = "shared_digits")]
    no_shared_digits: bool,

    /// Log lines for people (text) or one JSON object per line (json)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A duration in milliseconds: a whole number, 0 or more.
fn millis(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| {
        if text.trim_start().starts_with('-') {
            "a duration cannot be negative: give milliseconds, 0 or more".to_owned()
        } else {
            "expected a whole number of milliseconds, e.g. 500".to_owned()
        }
    })
}

fn main() -> ExitCode {
    let started = std::time::SystemTime::now();
    let args = Args::parse();
    pi_ring::logging::init(args.log_format, "info");
    let config = match node_config(&args) {
        Ok(config) => NodeConfig { started, ..config },
        Err(e) => return refuse(&e),
    };
    // Whatever can be checked before the sockets is checked first, so the
    // node refuses before printing anything that reads like success.
    if let Some(dir) = &config.data_dir {
        if let Err(e) = persist::check_dir(dir) {
            return refuse(&StartError::Load(e));
        }
    }
    let pi = digit_cache(&args, config.target_digits);
    let system = actix::System::new();
    let started = system.block_on(async move {
        // A planned stop hands the token on; give it a few connect
        // timeouts, and stop at once on a second signal.
        let grace = config.connect_timeout * 3 + Duration::from_secs(1);
        let summary = format!(
            "node {} ({VERSION}) listening on {}, TCP port {}; broadcasting to {} on UDP port {} (monitors: UDP port {})",
            config.id, config.bind, config.tcp_port, config.broadcast, config.udp_port, config.monitor_port
        );
        let node = start_node(config, pi)?;
        log::info!("{summary}");
        actix::spawn(async move {
            let Ok(mut signals) = StopSignals::new() else {
                log::error!("cannot listen for SIGINT/SIGTERM; stop the node with SIGKILL");
                return;
            };
            let name = signals.next().await;
            log::info!("{name}: stopping (a holder hands the token on first; signal again to stop at once)");
            tokio::select! {
                done = tokio::time::timeout(grace, node.state.send(Stop)) => {
                    if done.is_err() {
                        log::warn!("the token hand-off did not finish within {grace:?}; stopping anyway");
                    }
                }
                name = signals.next() => log::warn!("{name} again: stopping at once"),
            }
            log::info!("stopped");
            actix::System::current().stop();
        });
        Ok::<(), StartError>(())
    });
    if let Err(e) = started {
        return refuse(&e);
    }
    match system.run_with_code() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("pi-ring-node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The digit cache, shared with this machine's other nodes unless told
/// otherwise; a directory that cannot be shared is said, and the node
/// computes alone.
fn digit_cache(args: &Args, target_digits: usize) -> Arc<PiDigits> {
    let pi = PiDigits::new(target_digits);
    if args.no_shared_digits {
        return Arc::new(pi);
    }
    let dir = args.shared_digits.clone().unwrap_or_else(Store::default_dir);
    match Store::open(&dir) {
        Ok(store) => {
            log::debug!("sharing computed digits in {}", dir.display());
            Arc::new(pi.with_store(store))
        }
        Err(e) => {
            log::warn!("{e}; this node computes its digits alone (--no-shared-digits silences this)");
            Arc::new(pi)
        }
    }
}

/// Print why the node cannot start, with what to do, and the exit code.
fn refuse(e: &StartError) -> ExitCode {
    eprintln!("pi-ring-node: {e}");
    if let Some(hint) = hint(e) {
        eprintln!("  {hint}");
    }
    ExitCode::from(e.exit_code())
}

/// What to do about a start-up error, when the error itself does not say.
fn hint(e: &StartError) -> Option<String> {
    use pi_ring::protocol::machine::TimingError;
    use std::io::ErrorKind;
    Some(match e {
        StartError::Socket { protocol: "UDP", addr, source, .. } if source.kind() == ErrorKind::AddrInUse => format!(
            "another program holds UDP {addr} without sharing it (pi-ring nodes and monitors share their UDP ports); \
             stop it, or give every node and monitor of this ring other ports (--udp-port, --monitor-port)"
        ),
        StartError::Socket { addr, source, .. } if source.kind() == ErrorKind::AddrInUse => format!(
            "another node or program already listens on TCP {addr}: give each node its own --bind address \
             (on one machine: 127.0.0.2, 127.0.0.3, ...), or stop the other one"
        ),
        StartError::Socket { source, .. } if source.kind() == ErrorKind::AddrNotAvailable => {
            "this machine has no such address: see `ip -4 addr`".to_owned()
        }
        StartError::Socket { source, .. } if source.kind() == ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose ports of 1024 or more".to_owned()
        }
        StartError::Timing(TimingError::WaiterTooShort { heartbeat, .. }) => {
            format!("give --waiter-ms {} or more, or a shorter --heartbeat-ms", 2 * heartbeat)
        }
        StartError::Timing(TimingError::LooserAnswerTooShort { heartbeat, .. }) => {
            format!("give --looser-answer-ms {} or more, or a shorter --heartbeat-ms", 2 * heartbeat)
        }
        StartError::Timing(_) => "see --help for the timeouts and their defaults".to_owned(),
        _ => return None,
    })
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// Wait for the next one; its name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

fn node_config(args: &Args) -> Result<NodeConfig, StartError> {
    let (bind, broadcast) = addresses(args)?;
    let id = args.id.clone().unwrap_or_else(|| bind.to_string());
    let mut config = NodeConfig::new(&id, bind, broadcast);
    config.udp_port = args.udp_port;
    config.tcp_port = args.tcp_port;
    config.monitor_port = args.monitor_port;
    let timing = Timing {
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        waiter: Duration::from_millis(args.waiter_ms),
        looser_ask: Duration::from_millis(args.looser_ask_ms),
        looser_answer: Duration::from_millis(args.looser_answer_ms),
        generating: Duration::from_millis(args.generating_ms),
        hold: Duration::from_millis(args.hold_ms),
        report: Duration::from_millis(args.report_ms),
    };
    timing.check()?;
    config.timing = timing;
    config.target_digits = args.target_digits;
    config.max_message_bytes = args.max_message_mib.saturating_mul(1024 * 1024);
    config.summary_every = (args.summary_secs > 0).then(|| Duration::from_secs(args.summary_secs));
    config.data_dir = args.data_dir.clone();
    config.peers = seed_peers(args)?;
    if args.no_broadcast && config.peers.is_empty() {
        return Err(StartError::NoSeeds);
    }
    config.no_broadcast = args.no_broadcast;
    config.deltas = !args.whole_hand_offs;
    config.monitors = resolve_all(&args.monitor_peers)?;
    config.secret = match (&args.secret_file, std::env::var_os("PI_RING_SECRET")) {
        (Some(path), _) => {
            let secret =
                std::fs::read(path).map_err(|e| StartError::Secret(path.display().to_string(), e.to_string()))?;
            let secret = secret.trim_ascii().to_vec();
            if secret.is_empty() {
                return Err(StartError::Secret(path.display().to_string(), "the file is empty".into()));
            }
            Some(secret)
        }
        (None, Some(value)) if !value.is_empty() => Some(value.into_encoded_bytes()),
        _ => None,
    };
    Ok(config)
}

/// The seed peers of `--peer`, `--peers-file` and PI_RING_PEERS, resolved
/// to IPv4 addresses.
fn seed_peers(args: &Args) -> Result<Vec<Ipv4Addr>, StartError> {
    let mut names: Vec<String> = args.peers.clone();
    if let Some(path) = &args.peers_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Peers(format!("cannot read {}: {e}", path.display())))?;
        names.extend(
            text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(String::from),
        );
    }
    if let Ok(list) = std::env::var("PI_RING_PEERS") {
        names.extend(list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    }
    resolve_all(&names)
}

/// Host names or IPv4 addresses, resolved (each address once).
fn resolve_all(names: &[String]) -> Result<Vec<Ipv4Addr>, StartError> {
    let mut peers = Vec::new();
    for name in names {
        let address = match name.parse::<Ipv4Addr>() {
            Ok(address) => address,
            Err(_) => {
                use std::net::ToSocketAddrs;
                let resolved = (name.as_str(), 0)
                    .to_socket_addrs()
                    .map_err(|e| StartError::Peers(format!("cannot resolve the peer {name:?}: {e}")))?;
                resolved
                    .filter_map(|a| match a {
                        std::net::SocketAddr::V4(v4) => Some(*v4.ip()),
                        _ => None,
                    })
                    .next()
                    .ok_or_else(|| StartError::Peers(format!("the peer {name:?} has no IPv4 address")))?
            }
        };
        if !peers.contains(&address) {
            peers.push(address);
        }
    }
    Ok(peers)
}

/// The node's address and the ring's broadcast address.
fn addresses(args: &Args) -> Result<(Ipv4Addr, Ipv4Addr), StartError> {
    let interfaces = || if_addrs::get_if_addrs().map_err(StartError::Interfaces);
    let v4 = |iface: &if_addrs::Interface| match &iface.addr {
        if_addrs::IfAddr::V4(a) => Some(a.clone()),
        _ => None,
    };
    if let Some(name) = &args.interface {
        let found = interfaces()?.into_iter().filter(|i| &i.name == name).find_map(|i| v4(&i));
        let addr = found.ok_or_else(|| StartError::NoSuchInterface(name.clone()))?;
        let broadcast = args
            .broadcast
            .or(addr.broadcast)
            .or(addr.ip.is_loopback().then_some(Ipv4Addr::new(127, 255, 255, 255)))
            .ok_or_else(|| StartError::NoBroadcast(name.clone()))?;
        return Ok((addr.ip, broadcast));
    }
    let bind = args.bind.expect("clap requires --bind or --interface");
    if let Some(broadcast) = args.broadcast {
        return Ok((bind, broadcast));
    }
    if bind.is_loopback() {
        return Ok((bind, Ipv4Addr::new(127, 255, 255, 255)));
    }
    let owner = interfaces()?.into_iter().find_map(|i| v4(&i).filter(|a| a.ip == bind).map(|a| (i.name, a)));
    match owner {
        Some((_, addr)) if addr.broadcast.is_some() => Ok((bind, addr.broadcast.unwrap())),
        Some((name, _)) => Err(StartError::NoBroadcast(name)),
        None => Err(StartError::NotLocal(bind)),
    }
}
