//! The reference cluster's shared database, reduced to what scaling runs
//! into: a limit on connections from all replicas together. Replicas are
//! separate processes, so the limit is a set of slot files under one folder,
//! each held with an exclusive file lock while a connection is open.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The database's connection slots, as this replica sees them.
pub struct Database {
    slots: Vec<File>,
    // A file lock is per open file: two tasks of this process must not both
    // "take" the slot this process already holds.
    taken_here: Mutex<Vec<bool>>,
}

/// An open connection; closed when dropped.
pub struct Connection<'a> {
    db: &'a Database,
    slot: usize,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        let _ = self.db.slots[self.slot].unlock();
        self.db.taken_here.lock().unwrap()[self.slot] = false;
    }
}

impl Database {
    /// Opens (creating) `limit` slots in `dir`.
    pub fn open(dir: &Path, limit: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let slots = (0..limit.max(1))
            .map(|i| {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("slot-{i}.lock")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Database {
            taken_here: Mutex::new(vec![false; slots.len()]),
            slots,
        })
    }

    fn try_connect(&self) -> Option<Connection<'_>> {
        let mut taken = self.taken_here.lock().unwrap();
        for (i, file) in self.slots.iter().enumerate() {
            if !taken[i] && file.try_lock().is_ok() {
                taken[i] = true;
                return Some(Connection { db: self, slot: i });
            }
        }
        None
    }

    /// A connection, waiting up to `timeout` for a free slot.
    pub async fn connect(&self, timeout: Duration) -> Option<Connection<'_>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.try_connect() {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_openers_share_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let a = Database::open(dir.path(), 2).unwrap();
        let b = Database::open(dir.path(), 2).unwrap();
        let one = a.connect(Duration::from_millis(10)).await.unwrap();
        let two = b.connect(Duration::from_millis(10)).await.unwrap();
        assert!(
            a.connect(Duration::from_millis(20)).await.is_none(),
            "both slots are taken"
        );
        assert!(a.try_connect().is_none() && b.try_connect().is_none());
        drop(one);
        assert!(b.connect(Duration::from_millis(10)).await.is_some());
        drop(two);
    }
}
