//! Where a replica keeps the FHIR resources it creates (Patients,
//! DocumentReferences): files in the folder every replica shares, read
//! through a read replica that may replay them late; or a real MariaDB
//! Galera cluster, each replica through its own node, as OpenMRS replicas on
//! Galera are deployed (a JDBC URL naming the node nearest first).
//!
//! With Galera, what a read on one node finds of a write committed through
//! another is the database's own answer: with `wsrep_sync_wait = 0` a node
//! answers from what it has applied so far; with `1` it first applies every
//! write the cluster committed before the read. The double adds nothing.

use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::Duration;

/// The resource store of one replica.
pub enum Store {
    /// `Type-id.json` files in the shared folder; a read before `lag` has
    /// passed since the write (its file's mtime) finds nothing.
    Files { dir: PathBuf, lag: Duration },
    /// A Galera cluster: this replica's own node first, then the others.
    Galera(Vec<mysql_async::Pool>),
}

/// A database error, in the words a client sees.
pub type StoreError = String;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS resources (\
    type VARCHAR(64) NOT NULL, id VARCHAR(64) NOT NULL, body MEDIUMTEXT NOT NULL, \
    PRIMARY KEY (type, id)) ENGINE=InnoDB";

impl Store {
    /// A Galera store over the nodes at `urls` (mysql://user@host:port/db,
    /// this replica's own node first), its table made when missing.
    pub async fn galera(urls: &[String]) -> anyhow::Result<Store> {
        let pools = urls
            .iter()
            .map(|url| {
                let opts = mysql_async::Opts::from_url(url)
                    .map_err(|e| anyhow::anyhow!("--galera {}: {e}", without_userinfo(url)))?;
                let opts = mysql_async::OptsBuilder::from_opts(opts).pool_opts(
                    mysql_async::PoolOpts::default().with_constraints(
                        mysql_async::PoolConstraints::new(0, 32).expect("0 ≤ 32"),
                    ),
                );
                Ok(mysql_async::Pool::new(opts))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // A node that just joined may refuse DDL for a moment: a few tries.
        let mut last = String::new();
        for _ in 0..50 {
            match exec(&pools, SCHEMA, ()).await {
                Ok(()) => return Ok(Store::Galera(pools)),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("making the resources table on Galera failed: {last}")
    }

    /// Stores `body` as `kind`/`id`.
    pub async fn put(&self, kind: &str, id: &str, body: String) -> Result<(), StoreError> {
        match self {
            Store::Files { dir, .. } => {
                let path = dir.join(format!("{kind}-{id}.json"));
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(path, body))
                    .map_err(|e| e.to_string())
            }
            Store::Galera(pools) => {
                exec(
                    pools,
                    "INSERT INTO resources (type, id, body) VALUES (?, ?, ?)",
                    (kind, id, body),
                )
                .await
            }
        }
    }

    /// `kind`/`id` as this replica's database has it now: None when it has
    /// not got it (yet).
    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Files { dir, lag } => {
                match read_replayed(&dir.join(format!("{kind}-{id}.json")), *lag) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            }
            Store::Galera(pools) => {
                let query = "SELECT body FROM resources WHERE type = ? AND id = ?";
                let mut nodes = pools.as_slice();
                loop {
                    let (mut conn, after) = connect(nodes).await?;
                    match conn.exec_first::<String, _, _>(query, (kind, id)).await {
                        Ok(found) => return Ok(found.map(String::into_bytes)),
                        // A read may go to the next node when this one's
                        // connection broke: a read has no effect to repeat.
                        Err(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_))
                            if !after.is_empty() =>
                        {
                            nodes = after
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }
}

/// A connection from the first of `nodes` that gives one, and the nodes
/// after it.
async fn connect(
    nodes: &[mysql_async::Pool],
) -> Result<(mysql_async::Conn, &[mysql_async::Pool]), StoreError> {
    let mut last = String::from("no Galera node");
    for (i, pool) in nodes.iter().enumerate() {
        match pool.get_conn().await {
            Ok(conn) => return Ok((conn, &nodes[i + 1..])),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Runs a statement on the first node that takes a connection. A write
/// whose connection breaks is not sent again: whether it committed is
/// unknown, as it is to a real client.
async fn exec<P>(nodes: &[mysql_async::Pool], statement: &str, params: P) -> Result<(), StoreError>
where
    P: Into<mysql_async::Params> + Send,
{
    let (mut conn, _) = connect(nodes).await?;
    conn.exec_drop(statement, params)
        .await
        .map_err(|e| e.to_string())
}

/// A stored resource as the read replica has it: its bytes once the
/// replica has replayed its commit (`lag` after the file was written, the
/// commit's time), else not found — as a standby behind by `lag` answers.
fn read_replayed(path: &std::path::Path, lag: std::time::Duration) -> std::io::Result<Vec<u8>> {
    if !lag.is_zero() {
        let committed = std::fs::metadata(path)?.modified()?;
        if committed.elapsed().unwrap_or_default() < lag {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not replayed on the read replica yet",
            ));
        }
    }
    std::fs::read(path)
}

/// `url` with any user and password taken out, for messages.
fn without_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_in_a_message_keeps_no_credentials() {
        assert_eq!(
            without_userinfo("mysql://sim:secret@127.0.0.1:13306/clinic"),
            "mysql://127.0.0.1:13306/clinic"
        );
        assert_eq!(
            without_userinfo("mysql://127.0.0.1:13306/clinic"),
            "mysql://127.0.0.1:13306/clinic"
        );
    }

    #[tokio::test]
    async fn a_url_that_is_not_one_is_refused_without_its_password() {
        let Err(e) = Store::galera(&["mysql://sim:secret@[bad/clinic".to_owned()]).await else {
            panic!("accepted");
        };
        let message = e.to_string();
        assert!(message.starts_with("--galera "), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
