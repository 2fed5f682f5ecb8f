//! The audit after the run (`[verify] audit = true`): every write the run
//! saw acknowledged, read once more through the balancer, as a clinician
//! would look for it after the failover. A write found is present; one
//! answered as absent (404, 410, an empty search) until the audit's window
//! closes is lost — acknowledged, then gone; one with other bytes changed;
//! one never answered unanswered. Absent is not final at once: a lagging
//! read replica may still replay it, so it is read again, with backoff,
//! until the window closes.

use super::{read, Reader};
use crate::bundle::{LostWrite, WriteAudit, MAX_LOST_LISTED};
use crate::scenario::ReadRule;
use crate::verify::consistency::{Seen, Upload};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Audits at once, at most.
const CONCURRENT: usize = 32;
/// The longest pause between two reads of one write.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Acknowledged writes kept for the audit, at most (each a few hundred
/// bytes); the rest are counted as not audited.
pub(super) const CAP: usize = 200_000;

/// One acknowledged write, as the audit reads it.
#[derive(Debug, Clone)]
pub(super) struct Acknowledged {
    pub upload: Upload,
    pub read: String,
    pub rule: ReadRule,
}

/// What the audit found of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Present,
    Lost,
    Changed,
    Unanswered,
    /// The run was stopped before an answer.
    NotAudited,
}

/// Reads every write in `writes` through the balancer until each is found
/// or `window` (from now) closes; `over_cap` more were acknowledged and not
/// kept. A signal (`stop`) ends it: what was not settled is not audited.
pub(super) async fn audit(
    reader: &Reader<'_>,
    writes: Vec<Acknowledged>,
    over_cap: u64,
    window: Duration,
    stop: &CancellationToken,
) -> WriteAudit {
    let deadline = Instant::now() + window;
    let poll = reader.scenario.verify.poll;
    let mut out = WriteAudit {
        acknowledged: writes.len() as u64 + over_cap,
        not_audited: over_cap,
        ..Default::default()
    };
    let mut found = futures::stream::iter(writes.into_iter().map(|write| async move {
        let found = audit_one(reader, &write, deadline, poll, stop).await;
        (write, found)
    }))
    .buffer_unordered(CONCURRENT);
    let mut lost = Vec::new();
    while let Some((write, what)) = found.next().await {
        match what {
            Found::Present => out.present += 1,
            Found::Changed => out.changed += 1,
            Found::Unanswered => out.unanswered += 1,
            Found::NotAudited => out.not_audited += 1,
            Found::Lost => {
                out.lost += 1;
                lost.push(LostWrite {
                    request: write.upload.request,
                    id: write.upload.id,
                    replica: write.upload.replica,
                    acknowledged_at_s: write.upload.at_s,
                });
            }
        }
    }
    // In the order they were acknowledged, whatever order the reads ended in.
    lost.sort_by(|a, b| a.acknowledged_at_s.total_cmp(&b.acknowledged_at_s));
    lost.truncate(MAX_LOST_LISTED);
    out.lost_writes = lost;
    out
}

/// Reads one write until it is found, or `deadline`.
async fn audit_one(
    reader: &Reader<'_>,
    write: &Acknowledged,
    deadline: Instant,
    poll: Duration,
    stop: &CancellationToken,
) -> Found {
    let scenario = reader.scenario;
    let url = crate::scenario::join_url(&scenario.target.base_url, &write.read);
    let mut absent = false;
    let mut pause = poll;
    loop {
        let (value, seen) = tokio::select! {
            r = read(scenario, reader.tokens, reader.client, &url, &write.upload, &write.rule) => r,
            _ = stop.cancelled() => break,
        };
        let name = value
            .map(|v| reader.book.attribute(&v))
            .unwrap_or_else(|| crate::measure::UNKNOWN_REPLICA.to_owned());
        reader.traffic.count(
            &name,
            false,
            matches!(seen, Seen::Error(_)),
            reader.started.elapsed().as_secs(),
        );
        match seen {
            Seen::Same => return Found::Present,
            Seen::Different => return Found::Changed,
            Seen::Missing => absent = true,
            Seen::Error(_) => {}
        }
        // The last read is at the deadline itself.
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero())
        else {
            return if absent {
                Found::Lost
            } else {
                Found::Unanswered
            };
        };
        tokio::select! {
            _ = tokio::time::sleep(pause.min(left)) => {}
            _ = stop.cancelled() => break,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
    // Stopped: a write not yet settled is not judged.
    Found::NotAudited
}
