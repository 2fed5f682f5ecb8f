//! The session-continuity verdict as `summary.json` keeps it: sessions
//! accepted, switches between replicas, and every drop.

use serde::{Deserialize, Serialize};

/// One dropped session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropEvent {
    /// Seconds since the start of the run.
    pub at_s: f64,
    /// Virtual user.
    pub user: u64,
    /// Request that found its session gone.
    pub request: String,
    /// Replica that served this session before the drop.
    pub before: String,
    /// Replica that answered as unauthenticated.
    pub after: String,
    /// Status of that answer.
    pub status: u16,
    /// Whether a chaos event was in progress at the time.
    #[serde(default)]
    pub during_chaos: bool,
}

/// Drops between one pair of replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Replica before.
    pub before: String,
    /// Replica after.
    pub after: String,
    /// Drops.
    pub drops: u64,
}

/// Drops in one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropSecond {
    /// Seconds since the start.
    pub second: u64,
    /// Drops in it.
    pub drops: u64,
}

/// The session-continuity verdict of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionVerdict {
    /// Sessions the cluster accepted (first logins and re-logins).
    pub sessions: u64,
    /// Of which re-logins after a drop.
    pub relogins: u64,
    /// Requests of an accepted session answered by another replica than the one before.
    pub switches: u64,
    /// Drops.
    pub drops: u64,
    /// Drops per session accepted (0..).
    pub drop_rate: f64,
    /// Drops per 1,000 sessions.
    pub drops_per_1000_sessions: f64,
    /// Drops while a chaos event was in progress.
    pub drops_during_chaos: u64,
    /// Drops by (replica before, replica after).
    pub transitions: Vec<Transition>,
    /// Drops per second.
    pub timeline: Vec<DropSecond>,
    /// The drops themselves (the first [`MAX_EVENTS`]; the counts above are complete).
    pub events: Vec<DropEvent>,
}

/// How many drop events a verdict lists one by one.
pub const MAX_EVENTS: usize = 1000;
