//! The pi-ring protocol without IO: wire messages, tokens, and the state
//! machine of PROTOCOL section 7.

pub mod machine;
pub mod message;
pub mod registry;
pub mod token;

pub use message::{Body, DecodeError, Message, MyState, Nodes, RawMessage, StateName};
pub use token::{NodeId, Token};
