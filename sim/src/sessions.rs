//! Where a replica keeps login sessions: in its own memory (OpenMRS's
//! default, and the multi-replica bug), in a folder all replicas share, or in
//! Redis (a real shared store, as a Tomcat/Spring session manager would use).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The kinds of session store, as `surge sim up --sessions` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionStoreKind {
    /// Each replica knows only the sessions it created.
    PerReplica,
    /// One folder of session files for all replicas.
    Shared,
    /// A Redis server (`--redis-url`).
    Redis,
}

/// A session store. Values are the session's login location ("" for none).
pub enum SessionStore {
    /// This process's memory.
    Local(Mutex<HashMap<String, String>>),
    /// Files in a shared folder.
    Dir(PathBuf),
    /// Redis.
    Redis(redis::aio::ConnectionManager),
}

/// Redis keys expire like an idle OpenMRS session (30 minutes).
const TTL_SECONDS: u64 = 30 * 60;

fn key(id: &str) -> String {
    format!("surge:session:{id}")
}

impl SessionStore {
    /// Opens the store of `kind`.
    pub async fn open(
        kind: SessionStoreKind,
        dir: Option<PathBuf>,
        redis_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        Ok(match kind {
            SessionStoreKind::PerReplica => SessionStore::Local(Mutex::default()),
            SessionStoreKind::Shared => {
                let dir = dir.ok_or_else(|| {
                    anyhow::anyhow!("a shared session store needs --sessions-dir")
                })?;
                std::fs::create_dir_all(&dir)?;
                SessionStore::Dir(dir)
            }
            SessionStoreKind::Redis => {
                let url = redis_url
                    .ok_or_else(|| anyhow::anyhow!("a Redis session store needs --redis-url"))?;
                let client = redis::Client::open(url)?;
                SessionStore::Redis(redis::aio::ConnectionManager::new(client).await?)
            }
        })
    }

    /// The session's location, or `None` if this store does not know the session.
    pub async fn get(&self, id: &str) -> Option<String> {
        match self {
            SessionStore::Local(map) => map.lock().unwrap().get(id).cloned(),
            SessionStore::Dir(dir) => tokio::fs::read_to_string(dir.join(id)).await.ok(),
            SessionStore::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(key(id))
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .ok()
                    .flatten()
            }
        }
    }

    /// Creates or updates a session.
    pub async fn put(&self, id: &str, location: &str) {
        match self {
            SessionStore::Local(map) => {
                map.lock()
                    .unwrap()
                    .insert(id.to_owned(), location.to_owned());
            }
            SessionStore::Dir(dir) => {
                if let Err(e) = tokio::fs::write(dir.join(id), location).await {
                    tracing::error!("cannot write session file: {e}");
                }
            }
            SessionStore::Redis(conn) => {
                let mut conn = conn.clone();
                let set: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(key(id))
                    .arg(location)
                    .arg("EX")
                    .arg(TTL_SECONDS)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = set {
                    tracing::error!("cannot store session in Redis: {e}");
                }
            }
        }
    }

    /// Ends a session.
    pub async fn remove(&self, id: &str) {
        match self {
            SessionStore::Local(map) => {
                map.lock().unwrap().remove(id);
            }
            SessionStore::Dir(dir) => {
                let _ = tokio::fs::remove_file(dir.join(id)).await;
            }
            SessionStore::Redis(conn) => {
                let mut conn = conn.clone();
                let _: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(key(id)).query_async(&mut conn).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_and_folder_stores_keep_sessions() {
        let dir = tempfile::tempdir().unwrap();
        for store in [
            SessionStore::open(SessionStoreKind::PerReplica, None, None)
                .await
                .unwrap(),
            SessionStore::open(SessionStoreKind::Shared, Some(dir.path().join("s")), None)
                .await
                .unwrap(),
        ] {
            assert_eq!(store.get("A1").await, None);
            store.put("A1", "").await;
            assert_eq!(store.get("A1").await.as_deref(), Some(""));
            store.put("A1", "loc").await;
            assert_eq!(store.get("A1").await.as_deref(), Some("loc"));
            store.remove("A1").await;
            assert_eq!(store.get("A1").await, None);
        }
    }

    #[tokio::test]
    async fn two_replicas_share_a_folder_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = SessionStore::open(
            SessionStoreKind::Shared,
            Some(dir.path().to_path_buf()),
            None,
        )
        .await
        .unwrap();
        let b = SessionStore::open(
            SessionStoreKind::Shared,
            Some(dir.path().to_path_buf()),
            None,
        )
        .await
        .unwrap();
        a.put("S", "").await;
        assert!(b.get("S").await.is_some());
    }
}
