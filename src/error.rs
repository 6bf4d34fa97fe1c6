//! Typed errors of the library; the binaries turn them into messages.

use std::net::SocketAddrV4;

/// Failure to deliver one TCP message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("connecting to {addr} timed out")]
    ConnectTimeout { addr: SocketAddrV4 },
    #[error("connecting to {addr} failed: {reason}")]
    Connect { addr: SocketAddrV4, reason: String },
    #[error("{addr} refused the connection (nothing listens there)")]
    Refused { addr: SocketAddrV4 },
    #[error("writing to {addr} failed: {reason}")]
    Write { addr: SocketAddrV4, reason: String },
    #[error("{addr} stopped reading ({written} of {total} bytes written)")]
    WriteStalled { addr: SocketAddrV4, written: usize, total: usize },
    #[error("the TCP endpoint is not running")]
    EndpointGone,
    #[error("not sent to {addr}: too many connections of this node are open already")]
    Busy { addr: SocketAddrV4 },
}

/// Failure to start a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot {what} {protocol} {addr}: {source}")]
    Socket {
        what: &'static str,
        /// "TCP" or "UDP".
        protocol: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the interface list: {0}")]
    Interfaces(std::io::Error),
    #[error("no network interface named {0:?} with an IPv4 address (see `ip -4 addr`)")]
    NoSuchInterface(String),
    #[error("interface {0:?} has no IPv4 broadcast address; pass --broadcast")]
    NoBroadcast(String),
    #[error(
        "{0} is not an address of this machine; pass one of this machine's IPv4 addresses to --bind (see `ip -4 addr`)"
    )]
    NotLocal(std::net::Ipv4Addr),
    #[error(transparent)]
    Load(#[from] crate::actors::persist::LoadError),
    #[error("cannot use the secret file {0}: {1}")]
    Secret(String, String),
    #[error(transparent)]
    Timing(#[from] crate::protocol::machine::TimingError),
    #[error("{0}")]
    Peers(String),
    #[error("--no-broadcast needs seed peers: without broadcasts a node finds the ring only through --peer HOST (or --peers-file, PI_RING_PEERS)")]
    NoSeeds,
}

impl StartError {
    /// The exit code a binary returns for this error: 2 for a usage error
    /// (the command line cannot work anywhere), 1 for the environment
    /// (this machine, its addresses, ports, files).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Timing(_) | StartError::NoSeeds => 2,
            _ => 1,
        }
    }
}
