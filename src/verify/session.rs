//! Session continuity: a ledger of every user session (when it was accepted,
//! through which replica, each replica switch) and every drop — a request
//! carrying a session the cluster had accepted, answered as unauthenticated.
//!
//! The engine writes events into a [`SessionLedger`] as they happen;
//! [`SessionLedger::verdict`] turns them into a [`SessionVerdict`] (pure).

use crate::bundle::{DropEvent, DropSecond, SessionVerdict, Transition, MAX_EVENTS};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    sessions: u64,
    relogins: u64,
    switches: u64,
    drops: Vec<DropEvent>,
    by_replica: BTreeMap<String, u64>,
}

/// Session events of a run, from every user.
#[derive(Default)]
pub struct SessionLedger {
    state: Mutex<State>,
}

impl SessionLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cluster accepted a session through `replica` (a re-login if it follows a drop).
    pub fn accepted(&self, relogin: bool, replica: &str) {
        let mut s = self.lock();
        s.sessions += 1;
        *s.by_replica.entry(replica.to_owned()).or_default() += 1;
        if relogin {
            s.relogins += 1;
        }
    }

    /// Sessions accepted so far, by the replica that accepted them.
    pub fn sessions_by_replica(&self) -> BTreeMap<String, u64> {
        self.lock().by_replica.clone()
    }

    /// A session's request was served by another replica than its previous one.
    pub fn switched(&self) {
        self.lock().switches += 1;
    }

    /// A session was dropped.
    pub fn dropped(&self, event: DropEvent) {
        self.lock().drops.push(event);
    }

    /// The counts so far, for metrics sent out while the run goes.
    pub fn counts(&self) -> crate::measure::live::SessionCounts {
        let s = self.lock();
        crate::measure::live::SessionCounts {
            accepted: s.sessions,
            switches: s.switches,
            dropped: s.drops.len() as u64,
        }
    }

    /// The verdict, given the chaos windows `(start_s, end_s)` of the run.
    pub fn verdict(&self, chaos: &[(f64, f64)]) -> SessionVerdict {
        let s = self.lock();
        verdict(s.sessions, s.relogins, s.switches, &s.drops, chaos)
    }
}

/// Pure: counts, rates, transitions and a timeline from the raw events.
pub fn verdict(
    sessions: u64,
    relogins: u64,
    switches: u64,
    drops: &[DropEvent],
    chaos: &[(f64, f64)],
) -> SessionVerdict {
    let mut transitions: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut timeline: BTreeMap<u64, u64> = BTreeMap::new();
    let mut events = Vec::new();
    let mut during_chaos = 0;
    for d in drops {
        let in_chaos = chaos.iter().any(|(a, b)| d.at_s >= *a && d.at_s <= *b);
        during_chaos += in_chaos as u64;
        *transitions
            .entry((d.before.clone(), d.after.clone()))
            .or_default() += 1;
        *timeline.entry(d.at_s.max(0.0) as u64).or_default() += 1;
        if events.len() < MAX_EVENTS {
            events.push(DropEvent {
                during_chaos: in_chaos,
                ..d.clone()
            });
        }
    }
    let n = drops.len() as u64;
    let rate = if sessions == 0 {
        0.0
    } else {
        n as f64 / sessions as f64
    };
    SessionVerdict {
        sessions,
        relogins,
        switches,
        drops: n,
        drop_rate: rate,
        drops_per_1000_sessions: rate * 1000.0,
        drops_during_chaos: during_chaos,
        transitions: transitions
            .into_iter()
            .map(|((before, after), drops)| Transition {
                before,
                after,
                drops,
            })
            .collect(),
        timeline: timeline
            .into_iter()
            .map(|(second, drops)| DropSecond { second, drops })
            .collect(),
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_at(at_s: f64, before: &str, after: &str) -> DropEvent {
        DropEvent {
            at_s,
            user: 1,
            request: "search".into(),
            before: before.into(),
            after: after.into(),
            status: 401,
            during_chaos: false,
        }
    }

    #[test]
    fn no_drops_is_a_clean_verdict() {
        let v = verdict(10, 0, 25, &[], &[]);
        assert_eq!((v.sessions, v.drops, v.drop_rate), (10, 0, 0.0));
        assert!(v.transitions.is_empty() && v.timeline.is_empty());
    }

    #[test]
    fn drops_are_counted_by_transition_second_and_chaos() {
        let drops = [
            drop_at(1.2, "r1", "r2"),
            drop_at(1.9, "r1", "r2"),
            drop_at(5.0, "r2", "r3"),
        ];
        let v = verdict(40, 3, 30, &drops, &[(4.5, 6.0)]);
        assert_eq!(v.drops, 3);
        assert!((v.drops_per_1000_sessions - 75.0).abs() < 1e-9);
        assert_eq!(
            v.transitions[0],
            Transition {
                before: "r1".into(),
                after: "r2".into(),
                drops: 2
            }
        );
        assert_eq!(
            v.timeline,
            [
                DropSecond {
                    second: 1,
                    drops: 2
                },
                DropSecond {
                    second: 5,
                    drops: 1
                }
            ]
        );
        assert_eq!(v.drops_during_chaos, 1);
        assert!(v.events[2].during_chaos && !v.events[0].during_chaos);
    }

    #[test]
    fn the_ledger_collects_from_many_users() {
        let ledger = SessionLedger::default();
        ledger.accepted(false, "r1");
        ledger.accepted(false, "r2");
        ledger.switched();
        ledger.dropped(drop_at(0.5, "r1", "r2"));
        ledger.accepted(true, "r2");
        let v = ledger.verdict(&[]);
        assert_eq!((v.sessions, v.relogins, v.switches, v.drops), (3, 1, 1, 1));
        assert_eq!(ledger.sessions_by_replica()["r2"], 2);
    }
}
