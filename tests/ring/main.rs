//! Real `pi-ring-node` processes: rings on loopback addresses and ports of
//! their own (never fixed ones, so tests and checkouts running at once do
//! not collide), and rings on a LAN of network namespaces.
//!
//! - `ring_processes`: a 3-node ring passes correct digits, drops garbage,
//!   recovers from SIGKILL of the holder, never regenerates when healthy,
//!   and hands the token on when the holder gets SIGTERM;
//! - `unicast`: a ring with `--no-broadcast` and one seed peer;
//! - `auth_ring`: a ring with a secret ignores forged and replayed messages;
//! - `flood`: a ring keeps its pace under garbage, idle and slow clients;
//! - `strangers`: forged member ids, 20,000 made-up ids, a table of silent
//!   hosts, floods of valid searches and a slow-reading member cost the
//!   ring no node, bounded memory and descriptors, no traffic to
//!   strangers, and at most a recovery bound;
//! - `hand_off`: the TCP endpoint hands TAKE_TOKEN on without computing;
//! - `operator`: every operator mistake gets its sentence and exit code
//!   (node, monitor and `scripts/demo.sh`);
//! - `network_faults` (needs root; ignored otherwise, CI runs it): kills,
//!   partitions, packet loss, powered-off and stopped members, restarts;
//! - `monitor_api`: a restarted node's lives, as the monitor's API and
//!   the node's log tell them;
//! - `monitor_replay`: a live fault story recorded, and its replay's
//!   incidents the live monitor's;
//! - `monitor_browser` (needs Chromium; ignored otherwise, CI runs it): the
//!   monitor's page in a real browser, live and replaying a recording.

mod auth_ring;
mod common;
mod flood;
mod hand_off;
mod monitor_api;
mod monitor_browser;
mod monitor_replay;
mod network_faults;
mod operator;
mod ring_processes;
mod strangers;
mod unicast;

/// The LAN of network namespaces lives with the harness (the benchmark uses
/// it too).
use pi_ring_harness::netns;
