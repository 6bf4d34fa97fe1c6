//! The protocol core, the pi engine, the wire codec, the monitor's state
//! and the actors, without real sockets or processes: everything here runs
//! in memory, in virtual time where time matters.
//!
//! - `codec`: the wire codec against `wire-samples/` (PROTOCOL section 3);
//! - `pi_engine`: the digits against SHA-256 checkpoints and a spigot;
//! - `protocol_rules`: one test per rule of PROTOCOL sections 6 and 7, and
//!   the node's hand-off, stop, failures, timers and persistence;
//! - `core_fuzz`: the node fed random input sequences;
//! - `simulation`: PROTOCOL section 8, safety and liveness, by deterministic
//!   simulation of the shipping `Node` (`sim/`);
//! - `actors`: the state machine actor with recorder peers, paused time;
//! - `monitor_view`: what a monitor concludes from what it hears;
//! - `monitor_replay`: recordings, and replays that show what was live.

mod actors;
mod codec;
mod core_fuzz;
mod monitor_replay;
mod monitor_view;
mod pi_engine;
mod protocol_rules;
mod sim;
mod simulation;
