//! `--netns`: a network of the tool's own, for implementations whose
//! broadcasts would leave the host.
//!
//! On the host, the tool's peers live on loopback addresses and hear
//! broadcasts to `127.255.255.255`. An implementation that broadcasts to
//! `255.255.255.255` (Python's `'<broadcast>'`, for one) from a socket it
//! did not bind to the address it was given sends on the interface of the
//! host's default route, onto a real LAN: the peers never hear it, and
//! strangers do. In a network namespace of its own, whose only interface
//! is the loopback, up and made the default route, such a broadcast
//! reaches every peer (and the cases report where it came from), and
//! nothing the node sends can leave: there is no other interface.
//!
//! The namespace belongs to the calling thread and to the threads and
//! processes it starts afterwards (peers, the spawned nodes); it has no
//! name and goes away with them.

use std::fmt;
use std::io;
use std::process::Command;

/// Why the namespace could not be made.
#[derive(Debug)]
pub enum NetnsError {
    /// `unshare(CLONE_NEWNET)` failed: usually not root.
    Unshare(io::Error),
    /// An `ip` command failed or could not run.
    Ip { command: String, why: String },
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::Unshare(e) if e.raw_os_error() == Some(libc::EPERM) => write!(
                f,
                "cannot create a network namespace ({e}): --netns needs root (CAP_SYS_ADMIN); run the tool with sudo"
            ),
            NetnsError::Unshare(e) => write!(f, "cannot create a network namespace: {e}"),
            NetnsError::Ip { command, why } => {
                write!(f, "`{command}` failed in the new network namespace: {why} (is iproute2 installed?)")
            }
        }
    }
}

impl std::error::Error for NetnsError {}

/// Move the calling thread, and what it starts from now on, into a new
/// network namespace with only a loopback interface, up, and a default
/// route through it: broadcasts to `255.255.255.255` and to
/// `127.255.255.255` reach every socket of the namespace, and nothing
/// leaves it.
pub fn enter_private_network() -> Result<(), NetnsError> {
    // SAFETY: unshare takes a flag word and touches no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Unshare(io::Error::last_os_error()));
    }
    // Children of this thread start in the new namespace.
    ip(&["link", "set", "lo", "up"])?;
    ip(&["route", "add", "default", "dev", "lo"])
}

fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Ip { command: command.clone(), why: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Ip { command, why: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}
