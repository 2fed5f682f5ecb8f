//! Does the cluster behave as one system? Ledgers the engine fills while the
//! load runs, and the verdicts computed from them (pure).
//!
//! - [`session`]: session continuity — drops, re-logins, replica switches.

pub mod session;
