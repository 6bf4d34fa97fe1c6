//! pi-ring: digits of pi computed on a fault-tolerant token ring.

pub mod actors;
pub mod auth;
pub mod error;
pub mod monitor;
pub mod pi;
pub mod protocol;
pub mod testbed;
pub mod warn_limit;
