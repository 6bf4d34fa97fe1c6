//! Watching a ring from outside: what a monitor knows ([`view`]), what its
//! space-time view draws ([`trace`]), recordings of what it heard
//! ([`record`]) and their replay ([`replay`]), and the web page and JSON
//! API that show it all ([`web`]).

pub mod record;
pub mod replay;
pub mod trace;
pub mod view;
pub mod web;

pub use view::{ComputingView, Incident, IncidentKind, NodeView, RingView};
