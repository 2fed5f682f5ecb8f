//! The pods behind the selector as one watch keeps them (kube-rs's watcher
//! and reflector), for the length of a chaos run.
//!
//! Recovery checks and replica discovery read this instead of listing the
//! pods every 200 ms: one long-lived watch is what a busy production API
//! server expects from a client, and a change is seen when the server sends
//! it rather than at the next poll. While the watch is not in step (before
//! its first list, after an error such as a Role without `watch` on pods)
//! [`PodWatch::pods`] answers `None` and the caller lists the pods itself.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running pod watch; the watch ends when this is dropped.
pub struct PodWatch {
    store: Store<KubePod>,
    /// Whether the store holds a complete, current list.
    in_step: Arc<AtomicBool>,
    /// Bumped on every event the watch receives.
    changes: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Starts watching the pods `api` lists under `selector`.
    pub fn start(api: Api<KubePod>, selector: &str) -> PodWatch {
        let (store, writer) = reflector::store();
        let in_step = Arc::new(AtomicBool::new(false));
        let (bump, changes) = tokio::sync::watch::channel(0u64);
        let events = watcher(api, watcher::Config::default().labels(selector))
            .default_backoff()
            .reflect(writer);
        let flag = Arc::clone(&in_step);
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            let mut warned = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => flag.store(true, Ordering::SeqCst),
                    Ok(_) => {}
                    Err(e) => {
                        // Until the watcher lists again, the store may miss
                        // changes: callers list for themselves meanwhile.
                        flag.store(false, Ordering::SeqCst);
                        if !warned {
                            tracing::warn!("pod watch failed ({e}); listing the pods instead");
                            warned = true;
                        }
                    }
                }
                bump.send_modify(|n| *n += 1);
            }
        });
        PodWatch {
            store,
            in_step,
            changes,
            task,
        }
    }

    /// The pods, if the watch is in step.
    pub fn pods(&self) -> Option<Vec<Arc<KubePod>>> {
        self.in_step
            .load(Ordering::SeqCst)
            .then(|| self.store.state())
    }

    /// A waiter for this watch's changes.
    pub fn changes(&self) -> Changes {
        Changes {
            watch: Some((self.changes.clone(), Arc::clone(&self.in_step))),
        }
    }
}

/// How a loop that looks at the pods waits between looks: for the next
/// change its pod watch receives while the watch is in step, else a poll
/// interval.
pub struct Changes {
    watch: Option<(tokio::sync::watch::Receiver<u64>, Arc<AtomicBool>)>,
}

impl Changes {
    /// Waits a poll interval between looks (no watch).
    pub fn polling() -> Changes {
        Changes { watch: None }
    }

    /// Call before looking at the pods: a change from here on ends the
    /// next [`Changes::wait`] at once.
    pub fn look(&mut self) {
        if let Some((changes, _)) = &mut self.watch {
            changes.borrow_and_update();
        }
    }

    /// Waits until it is worth looking at the pods again: the next change
    /// (at most a second) while the watch is in step, else `poll`.
    pub async fn wait(&mut self, poll: Duration) {
        if let Some((changes, in_step)) = &mut self.watch {
            if in_step.load(Ordering::SeqCst) {
                match tokio::time::timeout(Duration::from_secs(1), changes.changed()).await {
                    Ok(Err(_closed)) => {}
                    _ => return,
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
}
