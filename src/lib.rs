//! pi-ring: digits of pi computed on a fault-tolerant token ring.
//!
//! Nodes on one network find each other by UDP broadcast and pass a token
//! around a virtual ring over TCP; the holder appends the next 20 digits of
//! pi and hands the token, with the whole expansion, to the next node. The
//! protocol is `docs/PROTOCOL.md`; code and tests cite it as "PROTOCOL
//! section N".
//!
//! # Layout
//!
//! - [`protocol`]: the protocol without IO or clocks. [`protocol::Node`] is
//!   one node as a sans-IO value (time and input in, actions out); it joins
//!   the wire messages ([`protocol::message`]), tokens ([`protocol::token`]),
//!   the registry of sections 1 and 6 ([`protocol::registry`]), the state
//!   machine of section 7 ([`protocol::machine`]), what and when it reports
//!   to monitors ([`protocol::report`]) and the budgets for work that input
//!   triggers ([`protocol::budget`]).
//! - [`actors`]: the node as four Actix actors that carry the `Node`'s
//!   actions out: the UDP endpoint, the TCP endpoint, the registry and the
//!   state machine, wired together by [`actors::start_node`].
//! - [`pi`]: the digits: a Chudnovsky engine on GMP, the growing cache
//!   every expansion is a prefix of, when it grows ahead of the ring
//!   ([`pi::ahead`]), and the digits the nodes of one host share
//!   ([`pi::store`]).
//! - [`monitor`]: what a monitor learns by listening to a ring, the
//!   space-time view's events, recordings and replays, and its web page.
//! - [`auth`]: optional authentication of every message with a ring secret.
//! - [`error`]: the library's typed errors.
//! - [`logging`]: the binaries' log formats (text, JSON) and version.
//! - [`warn_limit`]: rate-limited warnings for floods of bad input.
//!
//! The binaries in `src/bin/`: `pi-ring-node` (one node), `pi-ring-monitor`
//! (the live page, recordings and replays) and `pi-ring-verify` (checks saved expansions). The
//! conformance test of any implementation of the protocol,
//! `pi-ring-conform`, is the `conform/` workspace member; the test bed and
//! the benchmark live beside the library in the `harness/` workspace
//! member, not in its API.

pub mod actors;
pub mod auth;
pub mod error;
pub mod logging;
pub mod monitor;
pub mod pi;
pub mod protocol;
pub mod warn_limit;
