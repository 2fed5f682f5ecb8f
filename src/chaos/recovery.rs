//! What "recovered" means after each chaos action, the watch until it is
//! (the recovery time recorded on the event), and the monitor that keeps the
//! replica counts and the pods' addresses current all run long.

use super::runner::{LoadView, Log, POLL};
use super::{Backend, Pod};
use crate::bundle::ReplicaCount;
use crate::scenario::chaos::Action;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What "recovered" means for one action, from the pods just before it:
/// for a kill, the victim replaced and as many pods ready as before; for a
/// restart, every old pod replaced; for a scale, the new count ready; for a
/// command, any pod replaced (or the ready count dipped) and the count back.
pub(super) struct Recovery {
    action: Action,
    /// Uids of the pods ready before.
    old: BTreeSet<String>,
    /// Uids of the pods the action aimed at.
    victims: BTreeSet<String>,
    limit: Duration,
}

impl Recovery {
    pub(super) fn new(action: Action, before: &[Pod], targets: &[String], limit: Duration) -> Self {
        let uids = |keep: &dyn Fn(&Pod) -> bool| {
            before
                .iter()
                .filter(|p| keep(p))
                .map(|p| p.uid.clone())
                .collect()
        };
        Recovery {
            old: uids(&|p| p.ready),
            victims: uids(&|p| targets.contains(&p.name)),
            action,
            limit,
        }
    }

    /// Whether `pods` show the effect over; `dipped` remembers, across
    /// calls, whether the ready set ever changed.
    pub(super) fn back(&self, pods: &[Pod], dipped: &mut bool) -> bool {
        let ready: BTreeSet<String> = pods
            .iter()
            .filter(|p| p.ready)
            .map(|p| p.uid.clone())
            .collect();
        let enough = ready.len() >= self.old.len();
        *dipped |= !enough || ready != self.old;
        match &self.action {
            Action::KillPod(_) | Action::Evict(_) => self.victims.is_disjoint(&ready) && enough,
            Action::RolloutRestart => self.old.is_disjoint(&ready) && enough,
            Action::Scale(n) => ready.len() == *n as usize && pods.len() == *n as usize,
            Action::Exec(_) => *dipped && enough,
        }
    }
}

/// Looks at the pods at each change (or poll) until the action's effect is
/// over (see [`Recovery`]), the limit passes or the run stops; records the
/// time on event `index`.
pub(super) async fn watch_recovery(
    backend: Arc<Backend>,
    log: Arc<Log>,
    index: usize,
    recovery: Recovery,
    stop: CancellationToken,
) {
    let t0 = Instant::now();
    let mut dipped = false;
    let mut changes = backend.changes();
    while t0.elapsed() < recovery.limit && !stop.is_cancelled() {
        changes.look();
        if let Ok(pods) = backend.pods().await {
            if recovery.back(&pods, &mut dipped) {
                let secs = t0.elapsed().as_secs_f64();
                log.events.lock().unwrap()[index].ready_after_s = Some(secs);
                if matches!(recovery.action, Action::KillPod(_) | Action::Evict(_)) {
                    log.startups.lock().unwrap().push(secs);
                }
                return;
            }
        }
        tokio::select! {
            _ = changes.wait(POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Records replica counts as they change (a watch on the workload when there
/// is one, else the pods as the pod watch or a poll sees them), reads the
/// HPA, and keeps the direct read-back list on the pods' current addresses.
pub(super) async fn monitor(
    backend: Arc<Backend>,
    log: Arc<Log>,
    shared: Arc<dyn LoadView>,
    discover: Option<String>,
    stop: CancellationToken,
) {
    let mut last_full = Instant::now() - Duration::from_secs(60);
    let mut watch = None;
    let mut failures = 0;
    let mut changes = backend.changes();
    loop {
        changes.look();
        if let Backend::Kube(k) = backend.as_ref() {
            if watch.is_none() {
                watch = k.watch_workload().await.ok();
            }
        }
        // One pod list a round serves both discovery and, when there is no
        // workload watch, the ready count.
        let pods = if discover.is_some() || watch.is_none() {
            backend.pods().await.ok()
        } else {
            None
        };
        let full = last_full.elapsed() >= Duration::from_secs(5);
        if full || watch.is_none() {
            // The HPA in full every few seconds; between, its last view stands
            // (and a workload watch fills in the ready changes).
            match backend.counts(pods.as_deref(), full).await {
                Ok(mut c) => {
                    failures = 0;
                    if !full {
                        (c.hpa_current, c.hpa_desired) = log.last_hpa();
                    }
                    log.count(c);
                }
                Err(e) => {
                    failures += 1;
                    if failures == 3 {
                        tracing::warn!("replica counts unavailable: {e}");
                    }
                }
            }
            if full {
                last_full = Instant::now();
            }
        }
        if let (Some(prefix), Some(pods)) = (&discover, &pods) {
            shared.read_back_from(
                pods.iter()
                    .filter(|p| p.ready)
                    .filter_map(|p| {
                        let u = p.url.as_ref()?;
                        Some(crate::measure::replicas::ListedReplica::pod(
                            &p.name,
                            u,
                            format!("{u}{prefix}"),
                        ))
                    })
                    .collect(),
            );
        }
        let wait = changes.wait(if watch.is_some() {
            Duration::from_secs(1)
        } else {
            POLL
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wait => {}
            item = async { watch.as_mut().expect("guarded").next().await }, if watch.is_some() => {
                match item {
                    Some((desired, ready)) => {
                        let (hpa_current, hpa_desired) = log.last_hpa();
                        log.count(ReplicaCount { at_s: 0.0, desired, ready, hpa_current, hpa_desired });
                    }
                    None => watch = None,
                }
            }
        }
    }
}
