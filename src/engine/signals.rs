//! Ctrl-C and SIGTERM during a run. The first signal stops the load: what
//! is in flight is abandoned (counted as cancelled), read-backs end, and the
//! run returns everything measured. A second signal forces the end at once,
//! but still hands what was measured to the caller's last-words callback
//! (the CLI writes the bundle there and exits 3).
//!
//! surge installs its SIGINT handler before goose does, so goose's own (which
//! exits 1 on a second Ctrl-C, writing nothing) never takes over.

use std::sync::atomic::{AtomicU32, Ordering};
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

/// The run signals go to (one at a time in a process).
static CURRENT: Mutex<Option<Arc<Interrupts>>> = Mutex::new(None);

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
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&me));
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

    /// The run is over: signals no longer go to it.
    pub fn unregister(self: &Arc<Self>) {
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, self)) {
            *current = None;
        }
    }
}

fn deliver(why: &str) {
    let current = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone();
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

/// Sends every SIGTERM to `run` until the task is dropped.
pub async fn watch_sigterm(run: Arc<Interrupts>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    while term.recv().await.is_some() {
        run.signal("interrupted by SIGTERM");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn the_first_signal_stops_and_the_second_forces_with_last_words() {
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
}
