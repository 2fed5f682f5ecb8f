//! The audit after the run (`[verify] audit = true`): every write the run
//! saw acknowledged, read once more through the balancer, as a clinician
//! would look for it after the failover. A write found is present; one
//! answered as absent (404, 410, an empty search) until the audit's window
//! closes is lost — acknowledged, then gone; one with other bytes changed;
//! one never answered unanswered. Absent is not final at once: a lagging
//! read replica may still replay it, so it is read again, with backoff,
//! until the window closes. Every write gets its first read however many
//! there are, but the audit as a whole ends at a time limit (the window and
//! as long again, at least a minute): a target that hangs cannot hold the
//! run's end, and what was not read by then is not audited.
//!
//! Its reads are counted apart from the run's read-backs: they are load
//! after the run, not load the run's latency was measured under.

use super::{read, Reader};
use crate::bundle::{LostWrite, WriteAudit, MAX_LOST_LISTED};
use crate::engine::writes::Acknowledged;
use crate::verify::consistency::Seen;
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Audits at once, at most.
const CONCURRENT: usize = 32;
/// The longest pause between two reads of one write.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// The shortest time the audit is given past its window.
const MIN_GRACE: Duration = Duration::from_secs(60);

/// What the audit found of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Present,
    Lost,
    Changed,
    Unanswered,
    /// Stopped (a signal, the time limit) before an answer settled it.
    NotAudited,
}

/// Reads every write in `writes` through the balancer until each is found
/// or `window` (from now) closes; `dropped` more were acknowledged and not
/// kept. A signal (`stop`) or the time limit ends it.
pub(super) async fn audit(
    reader: &Reader<'_>,
    writes: Vec<Acknowledged>,
    dropped: u64,
    window: Duration,
    stop: &CancellationToken,
) -> WriteAudit {
    let deadline = Instant::now() + window;
    let limit = deadline + window.max(MIN_GRACE);
    let poll = reader.scenario.verify.poll;
    let mut out = WriteAudit {
        acknowledged: writes.len() as u64 + dropped,
        not_audited: dropped,
        ..Default::default()
    };
    let mut found = futures::stream::iter(writes.into_iter().map(|write| async move {
        let settled =
            tokio::time::timeout_at(limit, audit_one(reader, &write, deadline, poll, stop));
        let (found, reads) = settled.await.unwrap_or((Found::NotAudited, 0));
        (write, found, reads)
    }))
    .buffer_unordered(CONCURRENT);
    let mut lost = Vec::new();
    while let Some((write, what, reads)) = found.next().await {
        out.reads += reads;
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

/// Reads one write until it is found, or `deadline`; with the reads sent.
async fn audit_one(
    reader: &Reader<'_>,
    write: &Acknowledged,
    deadline: Instant,
    poll: Duration,
    stop: &CancellationToken,
) -> (Found, u64) {
    let scenario = reader.scenario;
    let url = crate::scenario::join_url(&scenario.target.base_url, &write.read);
    let (mut absent, mut reads) = (false, 0);
    let mut pause = poll;
    loop {
        let (_, seen) = tokio::select! {
            r = read(scenario, reader.tokens, reader.client, &url, &write.upload, &write.rule) => r,
            _ = stop.cancelled() => break,
        };
        reads += 1;
        match seen {
            Seen::Same => return (Found::Present, reads),
            Seen::Different => return (Found::Changed, reads),
            Seen::Missing => absent = true,
            Seen::Error(_) => {}
        }
        // The last read is at the deadline itself.
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero())
        else {
            let found = if absent {
                Found::Lost
            } else {
                Found::Unanswered
            };
            return (found, reads);
        };
        tokio::select! {
            _ = tokio::time::sleep(pause.min(left)) => {}
            _ = stop.cancelled() => break,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
    // Stopped: a write not yet settled is not judged.
    (Found::NotAudited, reads)
}
