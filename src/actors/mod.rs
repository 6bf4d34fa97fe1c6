//! The node as four actors around the pure protocol: the UDP endpoint, the
//! TCP endpoint, the registry and the state machine (see `messages` for the
//! messages between them). [`start_node`] wires them together.

pub mod messages;
pub mod persist;
pub mod registry;
mod sockets;
pub mod state;
pub mod tcp;
pub mod udp;

use crate::auth::Authenticator;
use crate::error::StartError;
use crate::pi::Expansion;
use crate::pi::PiDigits;
use crate::protocol::machine::{Config, Timing};
use crate::protocol::{Node, NodeId};
use actix::prelude::*;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

pub use registry::RegistryActor;
pub use state::{GetStatus, Peers, StateMachine, Status, Stop};
pub use tcp::{TcpConfig, TcpEndpoint};
pub use udp::{UdpConfig, UdpEndpoint};

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub bind: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub monitor_port: u16,
    pub timing: Timing,
    /// Stop extending the expansion at this many fractional digits.
    pub target_digits: usize,
    pub max_message_bytes: usize,
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_connections: usize,
    /// How often to log a one-line summary (`None`: never).
    pub summary_every: Option<Duration>,
    /// Where to keep the expansion across restarts (`None`: nowhere).
    pub data_dir: Option<std::path::PathBuf>,
    /// The ring's shared secret: authenticate every message (`None`: open ring).
    pub secret: Option<Vec<u8>>,
    /// Seed peers: hosts that get our broadcasts by unicast until a member
    /// is known there (rings beyond one broadcast domain).
    pub peers: Vec<Ipv4Addr>,
    /// Send nothing by broadcast: every broadcast goes by unicast to each
    /// known member and seed instead.
    pub no_broadcast: bool,
    /// Hosts of monitors that get MY_STATE by unicast.
    pub monitors: Vec<Ipv4Addr>,
    /// Delta hand-offs (PROTOCOL section 10): say `have`, send deltas to
    /// nodes that say it. Off: whole expansions only, as the older
    /// implementation.
    pub deltas: bool,
    /// When this node started (its process): MY_STATE says it, so monitors
    /// tell a restart, and the log times the first holding from it.
    pub started: std::time::SystemTime,
}

impl NodeConfig {
    /// A node with the protocol's default ports and timeouts.
    pub fn new(id: &str, bind: Ipv4Addr, broadcast: Ipv4Addr) -> Self {
        NodeConfig {
            id: id.to_owned(),
            bind,
            broadcast,
            udp_port: 23912,
            tcp_port: 8239,
            monitor_port: 23937,
            timing: Timing::default(),
            target_digits: 10_000_000,
            max_message_bytes: 32 * 1024 * 1024,
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_millis(1000),
            max_connections: 256,
            summary_every: Some(Duration::from_secs(5)),
            data_dir: None,
            secret: None,
            peers: Vec::new(),
            no_broadcast: false,
            monitors: Vec::new(),
            deltas: true,
            started: std::time::SystemTime::now(),
        }
    }
}

/// The running node's actors.
pub struct RunningNode {
    pub state: Addr<StateMachine>,
    pub registry: Addr<RegistryActor>,
    pub udp: Addr<UdpEndpoint>,
    pub tcp: Addr<TcpEndpoint>,
    pub pi: Arc<PiDigits>,
}

/// Open the sockets and start the four actors. Must be called inside a
/// running actix system.
pub fn start_node(config: NodeConfig, pi: Arc<PiDigits>) -> Result<RunningNode, StartError> {
    // The saved expansion is loaded and checked before any socket opens:
    // a node that answers the ring is ready to take the token.
    let machine_config = Config {
        id: config.id.clone(),
        timing: config.timing.clone(),
        max_len: config.target_digits.saturating_add(2),
    };
    let (node, persister) = match &config.data_dir {
        None => (Node::new(machine_config, config.bind, Expansion::empty(), 0), None),
        Some(dir) => {
            let (saved, wrong_from) = persist::load(dir, &pi)?;
            if let Some(correct) = wrong_from {
                log::warn!("{}: the saved expansion is wrong after {correct} characters; keeping those", dir.display());
            }
            log::info!(
                "resuming from {} saved digits (verified) and revision {} in {}",
                saved.expansion.fraction_digits(),
                saved.own_revision,
                dir.display()
            );
            let persister = persist::Persister::start(dir.clone(), &saved);
            (Node::new(machine_config, config.bind, saved.expansion, saved.own_revision), Some(persister))
        }
    };
    // The endpoints deliver to the state machine, which in turn needs the
    // endpoints: create its context first to break the cycle.
    let state_ctx = Context::<StateMachine>::new();
    let state_addr = state_ctx.address();

    // Messages within 10 s of our clock are accepted; replays within it are
    // remembered and refused.
    let auth = config.secret.as_deref().map(|s| Arc::new(Authenticator::new(s, config.bind, Duration::from_secs(10))));
    let udp = UdpEndpoint::bind(
        &UdpConfig {
            bind: config.bind,
            broadcast: config.broadcast,
            ring_port: config.udp_port,
            monitor_port: config.monitor_port,
            auth: auth.clone(),
        },
        state_addr.clone().recipient(),
    )?;
    let tcp = TcpEndpoint::bind(
        TcpConfig {
            bind: config.bind,
            port: config.tcp_port,
            max_message_bytes: config.max_message_bytes,
            read_timeout: config.read_timeout,
            connect_timeout: config.connect_timeout,
            max_connections: config.max_connections,
            pace: tcp::Pace::default(),
            backlog: 1024,
            auth,
        },
        state_addr.clone().recipient(),
    )?;
    let udp = udp.start();
    let tcp = tcp.start();

    let node = node.with_discovery(config.peers.clone(), !config.no_broadcast).with_deltas(config.deltas);
    let registry = RegistryActor::new().start();
    let peers = Peers {
        udp: udp.clone().recipient(),
        tcp: tcp.clone().recipient(),
        members: registry.clone().recipient(),
        get_members: registry.clone().recipient(),
    };
    let mut state = StateMachine::new(node, peers, Arc::clone(&pi), config.bind, config.summary_every);
    state = state.with_monitors(config.monitors.clone(), !config.no_broadcast).with_start(config.started);
    if let Some(persister) = persister {
        state = state.with_persister(persister);
    }
    let state = state_ctx.run(state);
    Ok(RunningNode { state, registry, udp, tcp, pi })
}
