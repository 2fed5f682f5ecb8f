//! A user's work as both load models run it: not before the instant the
//! shards of one test agreed to begin, and guarded, so that a panic in an
//! iteration is a counted, reported event instead of a silently dead user.
//! The closed model (`closed_run`) and the open one (`open_run`) call these
//! alike; they live here, not in either model, so neither imports the other.

use super::user::Shared;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// Waits until `at` (if given and still ahead), or until `stop`.
pub(super) async fn wait_for_start(at: Option<SystemTime>, stop: &CancellationToken) {
    let Some(ahead) = at.and_then(|at| at.duration_since(SystemTime::now()).ok()) else {
        return;
    };
    tokio::select! {
        () = tokio::time::sleep(ahead) => {}
        () = stop.cancelled() => {}
    }
}

/// Runs an iteration (or a transaction), turning a panic into a counted,
/// reported event instead of a silently dead user (goose would exit 0
/// either way). `None` if it panicked; the caller then resets the user's
/// session.
pub(super) async fn guarded<T>(
    shared: &Shared,
    body: impl std::future::Future<Output = T>,
) -> Option<T> {
    let _busy = shared.recorder.busy_user();
    match AssertUnwindSafe(body).catch_unwind().await {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!("a virtual user panicked; its session is reset");
            shared.recorder.user_panicked();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Recorder, RunInfo};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_transaction_is_counted_and_the_run_goes_on() {
        use crate::scenario::sample::{scenario, LOOPBACK, ONE_USER};
        let scenario = Arc::new(scenario(LOOPBACK, ONE_USER));
        let recorder = Arc::new(Recorder::new(vec!["a".into()], scenario.load.stage_ends()));
        let shared = Shared::new(
            scenario,
            Arc::clone(&recorder),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let panicked: Option<()> =
            guarded(&shared, async { panic!("a bug in a transaction") }).await;
        assert!(panicked.is_none());
        assert_eq!(guarded(&shared, async { 7 }).await, Some(7));
        assert_eq!(recorder.finish(RunInfo::default()).results.user_panics, 1);
    }
}
