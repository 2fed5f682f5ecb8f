//! Ctrl-C and SIGTERM during a run. The first signal stops the load: what
//! is in flight is abandoned (counted as cancelled), read-backs end, and the
//! run returns everything measured. A second signal forces the end at once,
//! but still hands what was measured to the caller's last-words callback
//! (the CLI writes the bundle there and exits 3).
//!
//! surge installs its SIGINT handler before goose does, so goose's own (which
//! exits 1 on a second Ctrl-C, writing nothing) never takes over.
//!
//! Signals go to the newest registrant: a run while it lasts, and between
//! the runs of a longer job (a calibration's staircase) the job itself, so a
//! signal in a gap stops the job instead of being lost or ending it unwritten.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// What a forced end does with the run's measurements-so-far.
pub type LastWords = Box<dyn FnOnce() + Send>;

/// The signals of one run.
pub struct Interrupts {
    count: AtomicU32,
    reason: Mutex<Option<String>>,
    stop: CancellationToken,
    last_words: Mutex<Option<LastWords>>,
}

/// Who signals go to: the newest (last) registrant.
static CURRENT: Mutex<Vec<Arc<Interrupts>>> = Mutex::new(Vec::new());

/// Held while a bundle is written. A signal that ends the process takes it
/// first, so no bundle is ever cut off half-written; a forced end holds it
/// through `exit`, so no other write starts after it.
static WRITING: Mutex<()> = Mutex::new(());

/// Waits until no bundle is being written, and keeps others from starting
/// while the guard lives.
pub fn writing() -> std::sync::MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends the process once no bundle is being written.
fn exit_after_writes(code: i32) -> ! {
    let _no_write_in_progress = writing();
    std::process::exit(code)
}
static INSTALLED: OnceLock<()> = OnceLock::new();

impl Interrupts {
    /// Signals for a run that `stop` stops; the process's SIGINT handler is
    /// installed on first use and sends to the newest run.
    pub fn register(stop: CancellationToken) -> Arc<Self> {
        INSTALLED.get_or_init(|| {
            if let Err(e) = ctrlc::set_handler(|| deliver("interrupted by SIGINT (Ctrl-C)")) {
                tracing::warn!("cannot catch Ctrl-C: {e}");
            }
        });
        let me = Arc::new(Interrupts {
            count: AtomicU32::new(0),
            reason: Mutex::new(None),
            stop,
            last_words: Mutex::new(None),
        });
        CURRENT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&me));
        me
    }

    /// What to do on a second signal, before the process ends.
    pub fn on_force(&self, last_words: LastWords) {
        *self.last_words.lock().unwrap_or_else(|p| p.into_inner()) = Some(last_words);
    }

    /// Why the run was interrupted, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A signal arrived.
    pub fn signal(&self, why: &str) {
        match self.count.fetch_add(1, Ordering::SeqCst) {
            0 => {
                self.reason
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| why.to_owned());
                eprintln!("surge: {why}: stopping; what was measured is kept (again to force the end at once)");
                self.stop.cancel();
                goose::trigger_killswitch(why);
            }
            _ => {
                eprintln!("surge: {why} again: ending now, writing what was measured");
                let last = self
                    .last_words
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                match last {
                    Some(last) => last(),
                    None => exit_after_writes(3),
                }
            }
        }
    }

    /// The run is over: signals no longer go to it (but to whoever
    /// registered before it and is still registered).
    pub fn unregister(self: &Arc<Self>) {
        CURRENT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| !Arc::ptr_eq(c, self));
    }

    /// Whether a signal arrived.
    pub fn signalled(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }
}

fn deliver(why: &str) {
    let current = CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last()
        .cloned();
    match current {
        Some(run) => run.signal(why),
        // No run (it is over, its bundle maybe being written): Ctrl-C ends
        // the process as it would without surge's handler, once the bundle is whole.
        None => exit_after_writes(130),
    }
}

/// Waits for Ctrl-C or SIGTERM (for a process that is not a run, such as
/// `surge sim up`, and ends on either).
pub async fn ctrl_c_or_sigterm() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// The signals of a job made of several runs (a calibration's staircase):
/// registered for the job's whole length, under its runs, with SIGTERM
/// watched, so a signal between two runs stops the job.
pub struct JobSignals {
    interrupts: Arc<Interrupts>,
    stop: CancellationToken,
    _sigterm: SigtermWatch,
}

impl JobSignals {
    /// Registers the job (inside a tokio runtime).
    pub fn register() -> JobSignals {
        let stop = CancellationToken::new();
        JobSignals {
            interrupts: Interrupts::register(stop.clone()),
            stop,
            _sigterm: SigtermWatch::start(),
        }
    }

    /// Why the job was interrupted between its runs, if it was.
    pub fn reason(&self) -> Option<String> {
        self.interrupts.reason()
    }

    /// Resolves when a signal arrives between the runs.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }
}

impl Drop for JobSignals {
    fn drop(&mut self) {
        self.interrupts.unregister();
        // A signal between runs set goose's process-wide stop switch.
        goose::reset_killswitch();
    }
}

/// Whether a SIGTERM watch is running.
static WATCHING_SIGTERM: AtomicBool = AtomicBool::new(false);

/// Delivers every SIGTERM to the newest registrant while it lives. One at a
/// time: a run inside a job that already watches gets an inert one, so each
/// SIGTERM is delivered once.
pub struct SigtermWatch(Option<tokio::task::JoinHandle<()>>);

impl SigtermWatch {
    /// Starts watching, unless a watch already runs (inside a tokio runtime).
    pub fn start() -> SigtermWatch {
        if WATCHING_SIGTERM.swap(true, Ordering::SeqCst) {
            return SigtermWatch(None);
        }
        SigtermWatch(Some(tokio::spawn(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return std::future::pending().await;
            };
            while term.recv().await.is_some() {
                deliver("interrupted by SIGTERM");
            }
        })))
    }
}

impl Drop for SigtermWatch {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            WATCHING_SIGTERM.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// The registrants are process-wide: these tests take turns.
    static TURN: Mutex<()> = Mutex::new(());

    #[test]
    fn the_first_signal_stops_and_the_second_forces_with_last_words() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let stop = CancellationToken::new();
        let run = Interrupts::register(stop.clone());
        let said = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&said);
        run.on_force(Box::new(move || flag.store(true, Ordering::SeqCst)));
        run.signal("interrupted by SIGTERM");
        assert!(stop.is_cancelled());
        assert_eq!(run.reason().as_deref(), Some("interrupted by SIGTERM"));
        assert!(!said.load(Ordering::SeqCst));
        run.signal("interrupted by SIGINT (Ctrl-C)");
        assert!(
            said.load(Ordering::SeqCst),
            "the second signal forces the end"
        );
        assert_eq!(
            run.reason().as_deref(),
            Some("interrupted by SIGTERM"),
            "the first reason stays"
        );
        run.unregister();
        goose::reset_killswitch();
    }

    /// A job registered around its runs gets the signals that come between
    /// them; a run registered inside it gets those that come during it.
    #[test]
    fn signals_go_to_the_newest_registrant_and_back_to_the_job_after_a_run() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let job_stop = CancellationToken::new();
        let job = Interrupts::register(job_stop.clone());
        let run_stop = CancellationToken::new();
        let run = Interrupts::register(run_stop.clone());
        deliver("interrupted by SIGTERM");
        assert!(run.signalled() && run_stop.is_cancelled());
        assert!(!job.signalled() && !job_stop.is_cancelled());
        run.unregister();
        deliver("interrupted by SIGINT (Ctrl-C)");
        assert!(job.signalled() && job_stop.is_cancelled());
        job.unregister();
        assert!(!CURRENT.lock().unwrap().iter().any(|c| Arc::ptr_eq(c, &job)));
        goose::reset_killswitch();
    }
}
