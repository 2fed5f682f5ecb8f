//! The reference cluster's database failing over: the test double of a
//! primary that dies and a standby promoted in its place (Patroni's
//! failover), for surge's acknowledged-writes audit.
//!
//! A file named `failover` in the shared folder is the primary's death; its
//! mtime is the moment. Replicas are separate processes, so the first to
//! see the file applies the failover for all: the FHIR resources committed
//! within `loses` before that moment are deleted (an asynchronous standby
//! never received them) and their `Type/id`s written to `failover.lost`,
//! the double's own truth for a test to hold surge's count against. Every
//! database request fails until the failover is applied and `down` has
//! passed since the death (the promotion), as a real client's would.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// What a replica knows of the database's failover.
pub struct Failover {
    /// `failover` (the death), `failover.applying`, `failover.lost`.
    marker: PathBuf,
    resources: PathBuf,
    loses: Duration,
    down: Duration,
    /// The lost list exists (no more file checks for it).
    applied: AtomicBool,
}

/// Why a database request failed.
pub const FAILING_OVER: &str =
    "FATAL: the database system is not accepting connections (the primary failed; a standby is being promoted)";

impl Failover {
    /// The failover of the database whose shared folder is `shared` and
    /// whose FHIR resources are in `resources`.
    pub fn new(shared: &Path, resources: &Path, loses: Duration, down: Duration) -> Self {
        Failover {
            marker: shared.join("failover"),
            resources: resources.to_path_buf(),
            loses,
            down,
            applied: AtomicBool::new(false),
        }
    }

    fn with(&self, suffix: &str) -> PathBuf {
        let mut name = self.marker.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// `Err` while the database is failing over: from its primary's death
    /// until the failover is applied and `down` has passed.
    pub fn check(&self) -> Result<(), &'static str> {
        let Ok(died) = std::fs::metadata(&self.marker).and_then(|m| m.modified()) else {
            return Ok(());
        };
        if !self.applied.load(Ordering::Relaxed) {
            if !self.with(".lost").exists() {
                self.apply(died);
            }
            if !self.with(".lost").exists() {
                // Another replica is applying it.
                return Err(FAILING_OVER);
            }
            self.applied.store(true, Ordering::Relaxed);
        }
        if SystemTime::now() < died + self.down {
            return Err(FAILING_OVER);
        }
        Ok(())
    }

    /// Deletes what the standby never received, once for all replicas (the
    /// one that creates `failover.applying` does it).
    fn apply(&self, died: SystemTime) {
        if OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.with(".applying"))
            .is_err()
        {
            return;
        }
        let since = died.checked_sub(self.loses).unwrap_or(died);
        let mut lost = Vec::new();
        for entry in std::fs::read_dir(&self.resources)
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(committed) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            // Committed in (died - loses, died]: acknowledged, never replicated.
            if !self.loses.is_zero() && committed > since && committed <= died {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some((kind, id)) = name.trim_end_matches(".json").split_once('-') {
                    if std::fs::remove_file(entry.path()).is_ok() {
                        lost.push(format!("{kind}/{id}"));
                    }
                }
            }
        }
        lost.sort();
        let temporary = self.with(".lost.tmp");
        let written = std::fs::File::create(&temporary)
            .and_then(|mut f| {
                f.write_all(
                    lost.iter()
                        .map(|l| format!("{l}\n"))
                        .collect::<String>()
                        .as_bytes(),
                )
            })
            .and_then(|()| std::fs::rename(&temporary, self.with(".lost")));
        if let Err(e) = written {
            tracing::error!(
                "failover: cannot write {}: {e}",
                self.with(".lost").display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failover_loses_the_commits_within_its_window_and_refuses_until_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let resources = dir.path().join("fhir");
        std::fs::create_dir_all(&resources).unwrap();
        std::fs::write(resources.join("Patient-old.json"), "{}").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(resources.join("Patient-late.json"), "{}").unwrap();
        let f = Failover::new(
            dir.path(),
            &resources,
            Duration::from_millis(200),
            Duration::from_millis(300),
        );
        assert_eq!(f.check(), Ok(()), "no failover yet");
        std::fs::write(dir.path().join("failover"), "").unwrap();
        assert_eq!(f.check(), Err(FAILING_OVER), "promoting");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("failover.lost")).unwrap(),
            "Patient/late\n"
        );
        assert!(resources.join("Patient-old.json").exists());
        assert!(!resources.join("Patient-late.json").exists());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(f.check(), Ok(()), "promoted");
        // A second replica sees it applied and loses nothing more.
        let other = Failover::new(
            dir.path(),
            &resources,
            Duration::from_secs(60),
            Duration::ZERO,
        );
        assert_eq!(other.check(), Ok(()));
        assert!(resources.join("Patient-old.json").exists());
    }

    #[test]
    fn a_synchronous_failover_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let resources = dir.path().join("fhir");
        std::fs::create_dir_all(&resources).unwrap();
        std::fs::write(resources.join("Patient-late.json"), "{}").unwrap();
        std::fs::write(dir.path().join("failover"), "").unwrap();
        let f = Failover::new(dir.path(), &resources, Duration::ZERO, Duration::ZERO);
        assert_eq!(f.check(), Ok(()));
        assert!(resources.join("Patient-late.json").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("failover.lost")).unwrap(),
            ""
        );
    }
}
