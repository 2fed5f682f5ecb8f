//! Replica identity: the one name a replica has in every count, whatever
//! named it — a response header (`X-Served-By`, nginx's `$upstream_addr`),
//! a sticky cookie's value, a URL listed for direct read-back, or a pod's
//! name and address from Kubernetes.
//!
//! A replica listed for direct read-back is one replica: its URL, its
//! address in `host:port` form (`http://127.0.0.1:61011` and a header's
//! `127.0.0.1:61011` are the same), the name it was stated to answer with
//! (`answers_as`, a pod's name), and the value its own answers give when
//! read directly all name it. When replicas are listed, a value that names
//! none of them is *unmapped* — counted apart by value, never a new
//! replica. With no list (and nothing discovered yet) the values a balancer
//! gives are the replicas' names, as they come.
//!
//! A header naming several upstreams (nginx after a retry: `a:1, b:2`, or
//! `a:1 : b:2` across upstream groups) is the last one's answer, counted as
//! a retry.

use crate::bundle::{Attribution, ReplicaAliases, UNMAPPED_REPLICA};
use crate::scenario::url_without_userinfo;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// A replica known by its URL: listed by the user or discovered (a pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedReplica {
    /// Base URL to read it directly.
    pub url: String,
    /// The name its answers give, when stated (`answers_as`) or known (a
    /// pod's name from the API).
    pub name: Option<String>,
    /// Other values that mean it (a pod's IP).
    pub also: Vec<String>,
}

impl ListedReplica {
    /// A pod found through the API (or a local replica process): named by
    /// its name, read at `url` (its `address`, `http://IP:PORT`, and the
    /// target's path prefix), and also meant by its bare IP.
    pub fn pod(name: &str, address: &str, url: String) -> Self {
        let ip = reqwest::Url::parse(address)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        ListedReplica {
            url,
            name: Some(name.to_owned()),
            also: ip.into_iter().collect(),
        }
    }

    /// A replica known only by its URL.
    pub fn at(url: &str) -> Self {
        ListedReplica {
            url: url.to_owned(),
            name: None,
            also: Vec::new(),
        }
    }
}

impl From<&crate::scenario::DirectReplica> for ListedReplica {
    fn from(r: &crate::scenario::DirectReplica) -> Self {
        ListedReplica {
            url: r.url.clone(),
            name: r.answers_as.clone(),
            also: Vec::new(),
        }
    }
}

/// Distinct unmapped values kept; more are counted under one.
const MAX_UNMAPPED_VALUES: usize = 16;

/// The replica that finally answered, from a header value that may name
/// several, and whether it named several (a retry).
pub fn last_named(value: &str) -> Option<(&str, bool)> {
    let parts: Vec<&str> = value
        .split(',')
        .flat_map(|p| p.split(" : "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    Some((*parts.last()?, parts.len() > 1))
}

/// `host:port` of a URL or of an address value (`10.0.0.5:8080`,
/// `[::1]:80`); `None` for a bare name (`r1`, `hapi-0`), which is no address.
pub fn address_key(value: &str) -> Option<String> {
    let has_scheme = value.contains("://");
    let url = if has_scheme {
        reqwest::Url::parse(value).ok()?
    } else {
        reqwest::Url::parse(&format!("http://{value}")).ok()?
    };
    let explicit_port = value
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !has_scheme && !explicit_port {
        return None;
    }
    if !has_scheme && (url.path() != "/" || url.query().is_some()) {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    Some(format!("{host}:{}", url.port_or_known_default()?))
}

struct Entry {
    name: String,
    /// Base URL as given (read-backs are matched on it).
    url: Option<String>,
    address: Option<String>,
    /// Every other value that names it.
    also: BTreeSet<String>,
    /// Stated by the user or the API: never renamed by what answers say.
    stated: bool,
}

impl Entry {
    fn is_named(&self, value: &str) -> bool {
        self.name == value || self.also.contains(value)
    }
}

#[derive(Default)]
struct Book {
    entries: Vec<Entry>,
    /// Replicas were listed: a value naming none of them is unmapped.
    closed: bool,
    unmapped: BTreeMap<String, u64>,
    retries: BTreeMap<String, u64>,
}

impl Book {
    fn find(&self, value: &str) -> Option<usize> {
        if let Some(i) = self.entries.iter().position(|e| e.is_named(value)) {
            return Some(i);
        }
        let key = address_key(value)?;
        self.entries
            .iter()
            .position(|e| e.address.as_deref() == Some(key.as_str()))
    }

    /// The replica read directly at `url`: the same URL, or its address.
    fn find_url(&self, url: &str) -> Option<usize> {
        let address = address_key(url);
        self.entries.iter().position(|e| {
            e.url.as_deref() == Some(url) || (address.is_some() && e.address == address)
        })
    }

    fn add(&mut self, replica: &ListedReplica, stated_closed: bool) -> usize {
        let address = address_key(&replica.url);
        let by_url = self.find_url(&replica.url);
        let by_name = replica
            .name
            .as_deref()
            .and_then(|n| self.entries.iter().position(|e| e.is_named(n)));
        let i = match by_url.or(by_name) {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    name: replica
                        .name
                        .clone()
                        .or_else(|| address.clone())
                        .unwrap_or_else(|| url_without_userinfo(&replica.url)),
                    url: None,
                    address: None,
                    also: BTreeSet::new(),
                    stated: replica.name.is_some(),
                });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[i];
        if let Some(name) = &replica.name {
            if e.name != *name {
                // A pod's IP now names a new pod: the address is the new one's.
                let old = std::mem::replace(&mut e.name, name.clone());
                e.also.remove(name);
                if !e.stated {
                    e.also.insert(old);
                }
            }
            e.stated = true;
        }
        e.url = Some(replica.url.clone());
        e.address = address;
        e.also.extend(replica.also.iter().cloned());
        self.closed |= stated_closed;
        i
    }
}

/// Every name of every replica in one run, shared by the load, the
/// read-backs and chaos.
#[derive(Default)]
pub struct ReplicaBook {
    book: Mutex<Book>,
}

impl ReplicaBook {
    /// A book of the replicas listed up front: when there are any, answers
    /// naming none of them are unmapped.
    pub fn new(listed: &[ListedReplica]) -> Self {
        let mut book = Book::default();
        for r in listed {
            book.add(r, true);
        }
        ReplicaBook {
            book: Mutex::new(book),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replica an answer named (a replica header's or sticky cookie's
    /// value): its one name, or [`UNMAPPED_REPLICA`]. A value naming
    /// several upstreams counts a retry for the last.
    pub fn attribute(&self, value: &str) -> String {
        let Some((last, retried)) = last_named(value) else {
            return crate::measure::UNKNOWN_REPLICA.to_owned();
        };
        let mut book = self.lock();
        let name = match book.find(last) {
            Some(i) => book.entries[i].name.clone(),
            None if book.closed => {
                super::count_capped(
                    &mut book.unmapped,
                    last,
                    MAX_UNMAPPED_VALUES,
                    "other values",
                );
                return UNMAPPED_REPLICA.to_owned();
            }
            None => last.to_owned(),
        };
        if retried {
            *book.retries.entry(name.clone()).or_default() += 1;
        }
        name
    }

    /// The name of the replica read directly at `url` (listed or
    /// discovered; a URL never listed names itself by its address).
    pub fn name_of_url(&self, url: &str) -> String {
        let book = self.lock();
        match book.find_url(url) {
            Some(i) => book.entries[i].name.clone(),
            None => address_key(url).unwrap_or_else(|| url_without_userinfo(url)),
        }
    }

    /// A direct answer from `url` named its replica `value`: from now on
    /// that value means this replica too — unless it already names another.
    /// Before the load (`introduce`), a replica whose name nobody stated
    /// takes the value as its name, so reports use the names the balancer
    /// gives.
    pub fn learn(&self, url: &str, value: &str, introduce: bool) {
        let Some((last, _)) = last_named(value) else {
            return;
        };
        let mut book = self.lock();
        let Some(i) = book.find_url(url) else {
            return;
        };
        match book.find(last) {
            Some(j) if j != i => {
                tracing::warn!(
                    "{} answers as {last:?}, which already names {}: kept apart",
                    url_without_userinfo(url),
                    book.entries[j].name
                );
            }
            Some(_) => {}
            None => {
                let e = &mut book.entries[i];
                if introduce && !e.stated {
                    let old = std::mem::replace(&mut e.name, last.to_owned());
                    e.also.insert(old);
                } else {
                    e.also.insert(last.to_owned());
                }
            }
        }
    }

    /// Replicas found while the run goes (pods through Kubernetes, local
    /// processes): known from now on by their URL, name and other values.
    pub fn discovered(&self, replicas: &[ListedReplica]) {
        let mut book = self.lock();
        for r in replicas {
            book.add(r, false);
        }
    }

    /// What the run's attribution was, for the bundle.
    pub fn attribution(&self) -> Attribution {
        let book = self.lock();
        let mut replicas: Vec<ReplicaAliases> = book
            .entries
            .iter()
            .map(|e| {
                let mut also: Vec<String> = e
                    .also
                    .iter()
                    .chain(e.address.iter())
                    .filter(|a| **a != e.name)
                    .cloned()
                    .collect();
                also.sort();
                also.dedup();
                ReplicaAliases {
                    name: e.name.clone(),
                    url: e.url.as_deref().map(url_without_userinfo),
                    also,
                }
            })
            .collect();
        replicas.sort_by(|a, b| a.name.cmp(&b.name));
        Attribution {
            replicas,
            unmapped: book.unmapped.clone(),
            retries: book.retries.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_naming_several_upstreams_is_the_last_ones_answer() {
        assert_eq!(
            last_named("127.0.0.1:61011, 127.0.0.1:61010"),
            Some(("127.0.0.1:61010", true))
        );
        assert_eq!(
            last_named("10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80"),
            Some(("10.0.0.3:80", true))
        );
        assert_eq!(last_named("r1"), Some(("r1", false)));
        assert_eq!(last_named(" , "), None);
    }

    #[test]
    fn addresses_compare_in_one_form() {
        assert_eq!(
            address_key("http://127.0.0.1:61011").as_deref(),
            Some("127.0.0.1:61011")
        );
        assert_eq!(
            address_key("127.0.0.1:61011").as_deref(),
            Some("127.0.0.1:61011")
        );
        assert_eq!(
            address_key("http://localhost:8080/").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            address_key("https://hapi-0.hapi:443").as_deref(),
            Some("hapi-0.hapi:443")
        );
        assert_eq!(
            address_key("http://10.0.0.5").as_deref(),
            Some("10.0.0.5:80")
        );
        assert_eq!(address_key("[::1]:80").as_deref(), Some("[::1]:80"));
        assert_eq!(address_key("r1"), None, "a bare name is no address");
        assert_eq!(address_key("hapi-0"), None);
    }

    /// The report that found it: nginx's `$upstream_addr` through the
    /// balancer, the same replicas listed by URL for direct read-back.
    #[test]
    fn a_listed_replica_and_the_balancers_name_for_it_are_one_replica() {
        let book = ReplicaBook::new(&[
            ListedReplica::at("http://127.0.0.1:61010"),
            ListedReplica::at("http://127.0.0.1:61011"),
        ]);
        assert_eq!(book.attribute("127.0.0.1:61011"), "127.0.0.1:61011");
        assert_eq!(
            book.name_of_url("http://127.0.0.1:61011"),
            "127.0.0.1:61011"
        );
        assert_eq!(
            book.attribute("127.0.0.1:61011, 127.0.0.1:61010"),
            "127.0.0.1:61010",
            "a retry is the last upstream's answer, not a fifth replica"
        );
        assert_eq!(book.attribute("127.0.0.1:7777"), UNMAPPED_REPLICA);
        let a = book.attribution();
        assert_eq!(a.retries.get("127.0.0.1:61010"), Some(&1));
        assert_eq!(a.unmapped.get("127.0.0.1:7777"), Some(&1));
        assert_eq!(a.replicas.len(), 2);
    }

    #[test]
    fn a_stated_name_is_the_replicas_name_and_other_values_are_unmapped() {
        let book = ReplicaBook::new(&[ListedReplica {
            url: "http://10.0.0.11:8080".into(),
            name: Some("hapi-0".into()),
            also: vec![],
        }]);
        assert_eq!(book.attribute("hapi-0"), "hapi-0");
        assert_eq!(book.attribute("10.0.0.11:8080"), "hapi-0");
        assert_eq!(book.name_of_url("http://10.0.0.11:8080"), "hapi-0");
        assert_eq!(book.attribute("hapi-1"), UNMAPPED_REPLICA);
        // What it says of itself when read directly does not rename it.
        book.learn("http://10.0.0.11:8080", "srv-a", true);
        assert_eq!(book.name_of_url("http://10.0.0.11:8080"), "hapi-0");
        assert_eq!(book.attribute("srv-a"), "hapi-0");
    }

    #[test]
    fn a_replica_introduced_before_the_load_takes_the_name_it_answers_with() {
        let book = ReplicaBook::new(&[ListedReplica::at("http://127.0.0.1:9001")]);
        book.learn("http://127.0.0.1:9001", "r1", true);
        assert_eq!(book.name_of_url("http://127.0.0.1:9001"), "r1");
        assert_eq!(book.attribute("r1"), "r1");
        assert_eq!(book.attribute("127.0.0.1:9001"), "r1");
        // Learned during the run: an alias, never a rename.
        book.learn("http://127.0.0.1:9001", "r1-bis", false);
        assert_eq!(book.name_of_url("http://127.0.0.1:9001"), "r1");
        assert_eq!(book.attribute("r1-bis"), "r1");
        // A value that already names another replica is not taken over.
        let two = ReplicaBook::new(&[
            ListedReplica::at("http://127.0.0.1:9001"),
            ListedReplica::at("http://127.0.0.1:9002"),
        ]);
        two.learn("http://127.0.0.1:9001", "r1", true);
        two.learn("http://127.0.0.1:9002", "r1", true);
        assert_eq!(two.name_of_url("http://127.0.0.1:9002"), "127.0.0.1:9002");
    }

    /// A sticky cookie names replicas by a value of the balancer's (the
    /// reference cluster's `openmrs_session=r2`), not by address: stated
    /// with `answers_as`, it maps to the listed replica; a value stated for
    /// none is unmapped, never a replica of its own.
    #[test]
    fn a_sticky_cookies_value_maps_to_the_replica_stated_for_it() {
        let listed = |port: u16, name: &str| ListedReplica {
            url: format!("http://127.0.0.1:{port}"),
            name: Some(name.into()),
            also: vec![],
        };
        let book = ReplicaBook::new(&[listed(9001, "r1"), listed(9002, "r2")]);
        assert_eq!(book.attribute("r2"), "r2");
        assert_eq!(book.name_of_url("http://127.0.0.1:9002"), "r2");
        assert_eq!(book.attribute("r3"), UNMAPPED_REPLICA);
        let a = book.attribution();
        assert_eq!(a.unmapped.get("r3"), Some(&1));
        assert_eq!(
            a.replicas
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["r1", "r2"],
            "no replica r3"
        );
        assert!(a.retries.is_empty());
    }

    #[test]
    fn with_nothing_listed_the_balancers_values_are_the_names() {
        let book = ReplicaBook::new(&[]);
        assert_eq!(book.attribute("r2"), "r2");
        assert_eq!(book.attribute("r1, r2"), "r2");
        assert!(book.attribution().unmapped.is_empty());
        assert_eq!(book.attribution().retries.get("r2"), Some(&1));
    }

    #[test]
    fn a_pod_is_one_replica_by_its_name_its_ip_and_its_url() {
        let book = ReplicaBook::new(&[]);
        let pod = |name: &str| {
            let address = "http://10.244.0.7:8080";
            ListedReplica::pod(name, address, address.to_owned())
        };
        book.discovered(&[pod("hapi-7c9d-abcde")]);
        assert_eq!(book.attribute("hapi-7c9d-abcde"), "hapi-7c9d-abcde");
        assert_eq!(book.attribute("10.244.0.7:8080"), "hapi-7c9d-abcde");
        assert_eq!(book.attribute("10.244.0.7"), "hapi-7c9d-abcde");
        assert_eq!(
            book.name_of_url("http://10.244.0.7:8080"),
            "hapi-7c9d-abcde"
        );
        // The IP handed to a replacement pod names the new pod.
        book.discovered(&[pod("hapi-7c9d-fghij")]);
        assert_eq!(book.attribute("10.244.0.7:8080"), "hapi-7c9d-fghij");
        // Nothing was listed up front: a pod not discovered yet names itself.
        assert_eq!(book.attribute("hapi-7c9d-new"), "hapi-7c9d-new");
    }

    #[test]
    fn unmapped_values_are_kept_in_fixed_memory() {
        let book = ReplicaBook::new(&[ListedReplica::at("http://127.0.0.1:1")]);
        for i in 0..100 {
            assert_eq!(book.attribute(&format!("x{i}")), UNMAPPED_REPLICA);
        }
        let a = book.attribution();
        assert_eq!(a.unmapped.len(), MAX_UNMAPPED_VALUES + 1);
        assert_eq!(a.unmapped_total(), 100);
    }

    #[test]
    fn urls_are_shown_without_userinfo() {
        let book = ReplicaBook::new(&[ListedReplica::at("http://u:secret@127.0.0.1:9")]);
        let a = book.attribution();
        assert_eq!(a.replicas[0].url.as_deref(), Some("http://127.0.0.1:9"));
        assert!(!format!("{a:?}").contains("secret"));
    }
}
