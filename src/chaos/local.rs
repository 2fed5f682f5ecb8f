//! The local backend: replica processes on this machine. A kill is `kill -9`
//! of the replica's process; its supervisor restarts it, as a ReplicaSet
//! would. Two supervisors list their replicas: the reference cluster's (in
//! `surge demo`), and any supervisor that keeps a replica folder
//! ([`ReplicaDir`]: `targets/hapi-fhir/cluster.sh` does, for real HAPI FHIR
//! JVMs), so chaos runs without a Kubernetes cluster.

use super::{ChaosError, Pod};
use crate::bundle::ReplicaCount;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One local replica process as its supervisor sees it.
#[derive(Debug, Clone)]
pub struct LocalReplica {
    /// Name.
    pub name: String,
    /// Base URL (`http://IP:PORT`) while it is up.
    pub url: Option<String>,
    /// Process id while it is up.
    pub pid: Option<u32>,
    /// When it started answering (while it is up).
    pub since: Option<SystemTime>,
}

/// Whoever supervises the local replica processes (the reference cluster)
/// lists them through this; the harness never imports the cluster itself.
pub trait LocalReplicas: Send + Sync + std::fmt::Debug {
    /// The replicas as they are now.
    fn list(&self) -> Vec<LocalReplica>;
}

/// The sim's replicas, as pods.
pub struct LocalBackend {
    backends: Arc<dyn LocalReplicas>,
}

impl LocalBackend {
    /// Over the supervisor's live replica list.
    pub fn new(backends: Arc<dyn LocalReplicas>) -> Self {
        LocalBackend { backends }
    }

    /// Every replica: ready while its process is up and listening.
    pub async fn pods(&self) -> Result<Vec<Pod>, ChaosError> {
        Ok(self
            .backends
            .list()
            .into_iter()
            .map(|b| Pod {
                uid: b.pid.map(|p| p.to_string()).unwrap_or_default(),
                ready: b.url.is_some() && b.pid.is_some(),
                url: b.url,
                started: b.since,
                name: b.name,
            })
            .collect())
    }

    /// `kill -9` of the replica's process.
    pub async fn kill(&self, name: &str) -> Result<String, ChaosError> {
        let pid = self
            .backends
            .list()
            .into_iter()
            .find(|b| b.name == name)
            .and_then(|b| b.pid)
            .ok_or_else(|| ChaosError::Gone(format!("replica {name} is not running")))?;
        let status = tokio::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .await
            .map_err(|e| ChaosError::Api(format!("cannot run kill: {e}")))?;
        if status.success() {
            Ok(format!("replica {name} (pid {pid}) killed with SIGKILL"))
        } else {
            Err(ChaosError::Gone(format!(
                "replica {name} (pid {pid}) was already gone"
            )))
        }
    }

    /// Every replica is desired; ready ones are up.
    pub async fn counts(&self) -> Result<ReplicaCount, ChaosError> {
        let list = self.backends.list();
        Ok(ReplicaCount {
            desired: Some(list.len() as u32),
            ready: list
                .iter()
                .filter(|b| b.url.is_some() && b.pid.is_some())
                .count() as u32,
            ..Default::default()
        })
    }
}

/// A folder a supervisor keeps, one file per replica process, named after
/// the replica and replaced whole (write, then rename) at each change:
///
/// ```text
/// pid=41237
/// url=http://127.0.0.1:18083
/// ready_at_ms=1764493200123
/// ```
///
/// `ready_at_ms` (milliseconds since the Unix epoch) is absent while the
/// process starts and set once it serves. A replica is up while its process
/// is alive and ready: a killed one is down at once, and back when its
/// supervisor has written the replacement's pid and readiness.
#[derive(Debug)]
pub struct ReplicaDir {
    dir: PathBuf,
}

impl ReplicaDir {
    /// Over `dir`, which must hold at least one well-formed replica file now
    /// (so a wrong path fails before the load starts).
    pub fn open(dir: &Path) -> Result<Self, String> {
        let files = replica_files(dir)?;
        if files.is_empty() {
            return Err(format!(
                "{}: no replica files (one file per replica: pid=, url=, ready_at_ms=)",
                dir.display()
            ));
        }
        for path in &files {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            parse_replica(&text).map_err(|e| format!("{}:{e}", path.display()))?;
        }
        Ok(ReplicaDir {
            dir: dir.to_path_buf(),
        })
    }
}

impl LocalReplicas for ReplicaDir {
    fn list(&self) -> Vec<LocalReplica> {
        // WHY skip what cannot be read now: the folder was checked when
        // opened, and a file is only ever replaced whole, so a failure here
        // is a replica going away, which is what the list should show.
        replica_files(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|path| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                let entry = parse_replica(&std::fs::read_to_string(&path).ok()?).ok()?;
                let alive = process_alive(entry.pid);
                Some(LocalReplica {
                    name,
                    pid: alive.then_some(entry.pid),
                    url: entry.ready_at.filter(|_| alive).map(|_| entry.url.clone()),
                    since: entry.ready_at,
                })
            })
            .collect()
    }
}

/// One replica file, parsed.
#[derive(Debug, PartialEq)]
struct ReplicaEntry {
    pid: u32,
    url: String,
    ready_at: Option<SystemTime>,
}

fn replica_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("replica folder {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        // Dot files are a supervisor's files being written.
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `key=value` lines; the error names the line and what was expected.
fn parse_replica(text: &str) -> Result<ReplicaEntry, String> {
    let (mut pid, mut url, mut ready_at) = (None, None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = n + 1;
        let (key, value) = line.split_once('=').ok_or_else(|| {
            format!("{at}: expected key=value (pid, url, ready_at_ms), got `{line}`")
        })?;
        match key.trim() {
            "pid" => {
                pid = Some(
                    value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|p| *p > 1)
                        .ok_or_else(|| {
                            format!("{at}: pid must be a process id above 1, got `{value}`")
                        })?,
                )
            }
            "url" => {
                let u = value.trim();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!("{at}: url must be http:// or https://, got `{u}`"));
                }
                url = Some(u.trim_end_matches('/').to_owned());
            }
            "ready_at_ms" => {
                let ms = value.trim().parse::<u64>().map_err(|_| {
                    format!("{at}: ready_at_ms must be milliseconds since the Unix epoch, got `{value}`")
                })?;
                ready_at = Some(UNIX_EPOCH + Duration::from_millis(ms));
            }
            other => {
                return Err(format!(
                    "{at}: unknown key `{other}` (expected pid, url, ready_at_ms)"
                ))
            }
        }
    }
    Ok(ReplicaEntry {
        pid: pid.ok_or("1: no pid= line")?,
        url: url.ok_or("1: no url= line")?,
        ready_at,
    })
}

/// Whether `pid` is a live process (not a zombie waiting to be reaped).
// WHY /proc: a killed child stays in the process table until its supervisor
// reaps it, and `kill -0` would call it alive; Linux is where the local
// backend's replicas run.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and
        // may itself hold spaces or parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_file_parses_and_bad_lines_are_named() {
        let ok =
            parse_replica("pid=4242\nurl=http://127.0.0.1:18083/\nready_at_ms=1000\n").unwrap();
        assert_eq!(
            ok,
            ReplicaEntry {
                pid: 4242,
                url: "http://127.0.0.1:18083".into(),
                ready_at: Some(UNIX_EPOCH + Duration::from_secs(1)),
            }
        );
        let starting = parse_replica("# starting\npid=4242\nurl=http://h:1\n").unwrap();
        assert_eq!(starting.ready_at, None);
        for (text, expected) in [
            (
                "pid=x\nurl=http://h:1",
                "1: pid must be a process id above 1, got `x`",
            ),
            (
                "pid=9\nport=1",
                "2: unknown key `port` (expected pid, url, ready_at_ms)",
            ),
            (
                "pid=9\nurl=h:1",
                "2: url must be http:// or https://, got `h:1`",
            ),
            (
                "pid=9\nurl=http://h:1\nready_at_ms=-1",
                "3: ready_at_ms must be milliseconds since the Unix epoch, got `-1`",
            ),
            ("url=http://h:1", "1: no pid= line"),
            (
                "pid 9",
                "1: expected key=value (pid, url, ready_at_ms), got `pid 9`",
            ),
        ] {
            assert_eq!(parse_replica(text).unwrap_err(), expected, "{text}");
        }
    }

    /// A live process is up once ready; a dead one is down whatever its
    /// file says; a starting one is alive but not serving.
    #[test]
    fn a_replica_is_up_while_its_process_lives_and_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = child.id();
        std::fs::write(
            dir.path().join("r0"),
            format!("pid={me}\nurl=http://127.0.0.1:1\nready_at_ms=1000\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("r1"),
            format!("pid={me}\nurl=http://127.0.0.1:2\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join(".r2.tmp"), "half written").unwrap();
        let replicas = ReplicaDir::open(dir.path()).unwrap();
        let list = replicas.list();
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(list[0].pid, Some(me));
        assert_eq!((list[1].pid, list[1].url.as_deref()), (Some(me), None));

        child.kill().unwrap();
        child.wait().unwrap();
        let list = replicas.list();
        assert!(
            list.iter().all(|r| r.pid.is_none() && r.url.is_none()),
            "{list:?}"
        );
    }

    #[test]
    fn an_empty_or_broken_folder_is_refused_with_its_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = ReplicaDir::open(dir.path()).unwrap_err();
        assert!(
            err.ends_with("no replica files (one file per replica: pid=, url=, ready_at_ms=)"),
            "{err}"
        );
        std::fs::write(dir.path().join("r0"), "pid=12\nurl=ftp://x\n").unwrap();
        let err = ReplicaDir::open(dir.path()).unwrap_err();
        assert!(
            err.ends_with("r0:2: url must be http:// or https://, got `ftp://x`"),
            "{err}"
        );
        let err = ReplicaDir::open(&dir.path().join("nowhere")).unwrap_err();
        assert!(err.starts_with("replica folder "), "{err}");
    }
}
