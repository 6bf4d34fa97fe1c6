//! Watching a ring from outside: what a monitor knows ([`view`]) and the
//! web page and JSON API that show it ([`web`]).

pub mod view;
pub mod web;

pub use view::{Incident, IncidentKind, NodeView, RingView};
