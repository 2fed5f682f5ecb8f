//! A replica's database connection: taken from its pool (HikariCP's
//! bound and checkout timeout), from the shared database's connection
//! limit, held for the configured time and CPU, refused while the database
//! fails over, and counted in the pool's metrics.

use super::{text, Replica};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Replica {
    /// Runs `work` holding a database connection for the configured time.
    pub(super) async fn with_connection<T>(&self, work: impl FnOnce() -> T) -> Result<T, Response> {
        self.with_connection_async(|| std::future::ready(work()))
            .await
    }

    /// Runs `work`, a database call of its own, holding a connection of the
    /// pool for the configured time first.
    pub(super) async fn with_connection_async<T, F>(
        &self,
        work: impl FnOnce() -> F,
    ) -> Result<T, Response>
    where
        F: std::future::Future<Output = T>,
    {
        self.metrics.pending.fetch_add(1, Ordering::Relaxed);
        let acquired =
            tokio::time::timeout(self.options.service.checkout_timeout, self.pool.acquire()).await;
        self.metrics.pending.fetch_sub(1, Ordering::Relaxed);
        let permit = acquired
            .map_err(|_| {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Could not get JDBC Connection: An attempt by a client to checkout a Connection has timed out.",
                )
            })?
            .map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        // The pool's connection is held from here, including any wait for the
        // shared database to take it (as a real connection would be).
        let held_from = std::time::Instant::now();
        let slot = match &self.database {
            Some(db) => Some(
                db.connect(self.options.service.checkout_timeout)
                    .await
                    .ok_or_else(|| {
                        text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "FATAL: sorry, too many clients already",
                        )
                    })?,
            ),
            None => None,
        };
        tokio::time::sleep(self.options.service.hold).await;
        let cpu = self.options.service.cpu_per_request;
        if !cpu.is_zero() {
            // On a thread of its own, as an application server's request
            // thread computes: the async workers keep answering meanwhile.
            let _ = tokio::task::spawn_blocking(move || compute_for(cpu)).await;
        }
        drop(slot);
        // A commit reaching a dead primary fails, however long ago it began.
        if let Err(why) = self.failover.check() {
            return Err(text(StatusCode::SERVICE_UNAVAILABLE, why));
        }
        let out = work().await;
        drop(permit);
        self.metrics.usage_count.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .usage_micros
            .fetch_add(held_from.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

/// Keeps this thread computing until it has used `cpu` of CPU time (not
/// wall time: on a busy machine it takes longer, as real work does).
fn compute_for(cpu: Duration) {
    let used = || {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let until = used() + cpu;
    let mut x: u64 = 1;
    while used() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::tests::Cli;
    use clap::Parser;

    #[test]
    fn cpu_per_request_is_cpu_time_used_and_is_bounded() {
        let process_cpu = || {
            // SAFETY: getrusage writes only the struct it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
            let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
            t(u.ru_utime) + t(u.ru_stime)
        };
        let before = process_cpu();
        compute_for(Duration::from_millis(30));
        let used = process_cpu() - before;
        // rusage counts in ticks; the thread's own clock said 30 ms.
        assert!(used >= Duration::from_millis(20), "{used:?}");
        let refused = Cli::try_parse_from(["surge", "--cpu-per-request", "2s"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("--cpu-per-request (ms) 2000 is out of range"),
            "{refused}"
        );
    }
}
