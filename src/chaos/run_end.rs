//! The run's end as chaos sees it: an API call still in flight when the
//! load stops (a kill, a watch, a count) gets a few seconds, then it is
//! abandoned, so a hung API server cannot hold the run's end for the
//! client's read timeout.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an API call in flight when the run ends may still take. A
/// server that hangs (or a network that drops packets) would otherwise
/// hold the run's end for the client's read timeout, minutes.
pub(super) const LET_FINISH: Duration = Duration::from_secs(5);

/// The run's end as chaos sees it: once `stop` comes, whatever chaos
/// still waits on has `LET_FINISH` in all, then it is abandoned.
pub(super) struct RunEnd {
    stop: CancellationToken,
    /// When chaos first saw the stop.
    seen: std::sync::OnceLock<tokio::time::Instant>,
}

impl RunEnd {
    pub(super) fn new(stop: CancellationToken) -> RunEnd {
        RunEnd {
            stop,
            seen: std::sync::OnceLock::new(),
        }
    }

    /// `work`'s result, or `None` when the run ended and `LET_FINISH`
    /// passed since (abandoned).
    pub(super) async fn finish<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => Some(done),
            _ = self.stop.cancelled() => {
                let seen = *self.seen.get_or_init(tokio::time::Instant::now);
                tokio::time::timeout_at(seen + LET_FINISH, work).await.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_in_flight_when_the_run_ends_is_abandoned_soon_after() {
        let stop = CancellationToken::new();
        stop.cancel();
        let end = RunEnd::new(stop);
        // A call to a server that never answers: abandoned LET_FINISH later.
        let began = tokio::time::Instant::now();
        assert_eq!(end.finish(std::future::pending::<()>()).await, None);
        assert_eq!(began.elapsed(), LET_FINISH);
        // The grace is one for the whole end, not one per call.
        assert_eq!(end.finish(std::future::pending::<()>()).await, None);
        assert_eq!(began.elapsed(), LET_FINISH);
        // A call that answers at once is still kept.
        assert_eq!(end.finish(async { 7 }).await, Some(7));
        // While the run goes on, work takes as long as it needs.
        let running = RunEnd::new(CancellationToken::new());
        let long = async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            1
        };
        assert_eq!(running.finish(long).await, Some(1));
    }
}
