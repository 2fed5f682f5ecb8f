//! A log's sessions: the requests that carried one session cookie (or came
//! from one client, when asked), in order, until it went quiet for
//! [`IDLE_GAP_MS`]. Each session is kept only as its path through the
//! routes and its pauses; sessions that took the same path add up into one
//! persona, weighted by how many took it. The cookie or address that told
//! them apart is hashed in memory and never kept. A request of no session
//! is a session of its own, so a log without cookies imports request by
//! request, as before.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A session that sent nothing for this long has ended (the servlet
/// containers' default session timeout).
pub const IDLE_GAP_MS: i64 = 30 * 60 * 1000;

/// Most requests one session is followed for; a longer one goes on as a
/// new session.
pub const MOST_STEPS: usize = 100;

/// Most distinct paths of two requests or more through the routes.
pub const MOST_PATHS: usize = 500;

/// What tells a log's sessions apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsBy {
    /// The session cookie, where the log keeps one.
    Cookie,
    /// The client address (behind a NAT or a balancer, many users share one).
    Client,
    /// Nothing: every request a session of its own.
    None,
}

/// The path a session took: route ids, in order.
pub type SessionPath = Vec<u32>;

/// How many sessions took a path, and their pauses after each step summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathStats {
    /// Sessions.
    pub count: u64,
    /// For each step but the last, the pauses after it summed, in ms.
    pub pause_sums_ms: Vec<i64>,
}

#[derive(Debug)]
struct Open {
    last_ms: i64,
    steps: Vec<(u32, i64)>,
}

/// The sessions read so far.
#[derive(Debug, Default)]
pub struct SessionBook {
    open: HashMap<u64, Open>,
    paths: HashMap<SessionPath, PathStats>,
    swept_at: i64,
    /// Distinct paths of two requests or more.
    long_paths: usize,
    /// Sessions of one request, by route.
    singles: Vec<u64>,
}

impl SessionBook {
    /// Takes a request of `route` at `start_ms`, of the session `key` (a
    /// cookie or an address) or of none; whether it began a session (an
    /// arrival of the scenario). An error when the sessions take more than
    /// [`MOST_PATHS`] paths.
    pub fn add(&mut self, key: Option<&str>, route: u32, start_ms: i64) -> Result<bool, String> {
        self.sweep(start_ms)?;
        let Some(key) = key else {
            self.close(&[(route, start_ms)])?;
            return Ok(true);
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let key = hasher.finish();
        if let Some(open) = self.open.get_mut(&key) {
            if start_ms.saturating_sub(open.last_ms) <= IDLE_GAP_MS && open.steps.len() < MOST_STEPS
            {
                open.steps.push((route, start_ms));
                open.last_ms = open.last_ms.max(start_ms);
                return Ok(false);
            }
            let ended = self.open.remove(&key).expect("just found");
            self.close(&ended.steps)?;
        }
        self.open.insert(
            key,
            Open {
                last_ms: start_ms,
                steps: vec![(route, start_ms)],
            },
        );
        Ok(true)
    }

    /// Ends the sessions quiet for [`IDLE_GAP_MS`] before `now_ms`, once
    /// per gap of the log's time, so memory holds only the sessions alive.
    fn sweep(&mut self, now_ms: i64) -> Result<(), String> {
        if now_ms.saturating_sub(self.swept_at) < IDLE_GAP_MS {
            return Ok(());
        }
        self.swept_at = now_ms;
        let quiet: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| now_ms.saturating_sub(o.last_ms) > IDLE_GAP_MS)
            .map(|(k, _)| *k)
            .collect();
        for key in quiet {
            let ended = self.open.remove(&key).expect("listed");
            self.close(&ended.steps)?;
        }
        Ok(())
    }

    fn close(&mut self, steps: &[(u32, i64)]) -> Result<(), String> {
        // A session of one request (every request of a log without
        // cookies): counted by its route, with nothing to allocate.
        if let [(route, _)] = steps {
            let route = *route as usize;
            if self.singles.len() <= route {
                self.singles.resize(route + 1, 0);
            }
            self.singles[route] += 1;
            return Ok(());
        }
        let path: SessionPath = steps.iter().map(|(r, _)| *r).collect();
        if !self.paths.contains_key(&path) {
            if self.long_paths >= MOST_PATHS {
                return Err(format!(
                    "the log's sessions take more than {MOST_PATHS} distinct paths through its routes: import with --sessions none for a request-by-request replay"
                ));
            }
            self.long_paths += 1;
        }
        let stats = self.paths.entry(path).or_default();
        stats.count += 1;
        if stats.pause_sums_ms.is_empty() {
            stats.pause_sums_ms = vec![0; steps.len().saturating_sub(1)];
        }
        // A log may list a request before one that began earlier (nginx
        // logs at the end): such a pause counts as none.
        for (i, pair) in steps.windows(2).enumerate() {
            stats.pause_sums_ms[i] =
                stats.pause_sums_ms[i].saturating_add(pair[1].1.saturating_sub(pair[0].1).max(0));
        }
        Ok(())
    }

    /// Every session ended; the paths, most taken first.
    pub fn finish(mut self) -> Result<Vec<(SessionPath, PathStats)>, String> {
        let open: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        for o in open {
            self.close(&o.steps)?;
        }
        let mut paths: Vec<(SessionPath, PathStats)> = self.paths.into_iter().collect();
        for (route, &count) in self.singles.iter().enumerate() {
            if count > 0 {
                let stats = PathStats {
                    count,
                    pause_sums_ms: Vec::new(),
                };
                paths.push((vec![route as u32], stats));
            }
        }
        paths.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_add_up_by_path_and_end_when_quiet() {
        let mut book = SessionBook::default();
        // Two clinicians take the same path (search, chart), one only
        // searches; a request with no cookie is a session of its own.
        assert!(book.add(Some("A"), 0, 1_000).unwrap());
        assert!(book.add(Some("B"), 0, 1_100).unwrap());
        assert!(!book.add(Some("A"), 1, 3_000).unwrap());
        assert!(!book.add(Some("B"), 1, 5_100).unwrap());
        assert!(book.add(Some("C"), 0, 6_000).unwrap());
        assert!(book.add(None, 2, 6_500).unwrap());
        // A later return of A after a quiet half hour is a new session.
        assert!(book.add(Some("A"), 0, 3_000 + IDLE_GAP_MS + 1).unwrap());
        let paths = book.finish().unwrap();
        assert_eq!(
            paths[0],
            (
                vec![0],
                PathStats {
                    count: 2,
                    pause_sums_ms: vec![]
                }
            )
        );
        assert_eq!(
            paths[1],
            (
                vec![0, 1],
                PathStats {
                    count: 2,
                    pause_sums_ms: vec![6_000]
                }
            )
        );
        assert_eq!(
            paths[2],
            (
                vec![2],
                PathStats {
                    count: 1,
                    pause_sums_ms: vec![]
                }
            )
        );
    }

    #[test]
    fn too_many_paths_are_refused_with_the_way_out() {
        let mut book = SessionBook::default();
        let mut said = None;
        for i in 0..=MOST_PATHS as u32 {
            let key = format!("s{i}");
            book.add(Some(&key), 0, 0).unwrap();
            book.add(Some(&key), i + 1, 1).unwrap();
        }
        if let Err(e) = book.finish() {
            said = Some(e);
        }
        assert!(said.unwrap().contains("--sessions none"));
    }
}
