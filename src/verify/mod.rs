//! Does the cluster behave as one system? Ledgers the engine fills while the
//! load runs, and the verdicts computed from them (pure).
//!
//! - [`session`]: session continuity — drops, re-logins, replica switches;
//! - [`autoscaling`]: did enough pods come, in time, when the load rose;
//! - [`consistency`]: write-then-read — is an upload byte-identical from every
//!   replica, and how long until it is.

pub mod autoscaling;
pub mod consistency;
pub mod gate;
pub mod session;
