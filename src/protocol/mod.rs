//! The pi-ring protocol without IO: wire messages, tokens, the registry of
//! sections 1 and 6 (bounded and earned against strangers), the state
//! machine of section 7, what the node reports to monitors, the budgets for work that input triggers, and the
//! [`Node`] that joins them into the one sans-IO core the actors and the
//! simulation drive.

pub mod budget;
pub mod machine;
pub mod message;
pub mod node;
pub mod registry;
pub mod report;
pub mod token;

pub use message::{Body, DecodeError, Message, MyState, Nodes, RawMessage, StateName};
pub use node::{Action, Input, Node, Via};
pub use report::Report;
pub use token::{NodeId, Token};

/// Time on a node's own clock: the time since an arbitrary origin (the
/// actors use the node's start, the simulation its virtual time). The
/// protocol core never reads a clock; every input comes with the time.
pub type Time = std::time::Duration;
