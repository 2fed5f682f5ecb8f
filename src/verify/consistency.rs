//! Write-then-read consistency: is a document uploaded through one replica
//! byte-identical from every replica, and how long until it is?
//!
//! Every upload is ledgered (id, sha256, size, uploading replica, time). Its
//! read-backs are [`Observation`]s, per replica, in the order they were made;
//! [`judge`] turns one replica's observations into a [`Verdict`], and
//! [`summarise`] all uploads into a [`ConsistencyVerdict`]. Pure: the reading
//! itself is `engine::readback`.

use crate::bundle::{
    ConsistencyVerdict, Percentiles, Problem, ReplicaCounts, Verdict, MAX_PROBLEMS,
};
use crate::scenario::{Compare, ReadRule};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What one read-back saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The same bytes.
    Same,
    /// Bytes, but not the ones uploaded.
    Different,
    /// 404 or 410.
    Missing,
    /// Anything else (another status, no answer).
    Error(String),
}

/// One read-back of one upload from one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Milliseconds after the upload completed.
    pub after_ms: u64,
    /// What it saw.
    pub seen: Seen,
}

/// Compares a read-back with the upload.
pub fn compare(status: u16, body: &[u8], upload: &Upload, rule: &ReadRule) -> Seen {
    match (status, rule.compare) {
        (200..=299, Compare::Status) => Seen::Same,
        (200..=299, Compare::Search) => found(body),
        (200..=299, Compare::Bytes)
            if body.len() as u64 == upload.size && sha256_hex(body) == upload.sha256 =>
        {
            Seen::Same
        }
        (200..=299, Compare::Bytes) => Seen::Different,
        (s, _) if rule.absent.contains(&s) => Seen::Missing,
        (other, _) => Seen::Error(format!("status {other}")),
    }
}

/// A search's answer: found when its Bundle holds an entry, not (yet) when
/// it holds none; anything else is no search result.
fn found(body: &[u8]) -> Seen {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Seen::Error("not a search result (not JSON)".into());
    };
    if json["resourceType"] != "Bundle" {
        return Seen::Error("not a search result (no Bundle)".into());
    }
    let entries = json["entry"].as_array().map_or(0, Vec::len);
    let total = json["total"].as_u64().unwrap_or(0);
    if entries > 0 || total > 0 {
        Seen::Same
    } else {
        Seen::Missing
    }
}

/// Hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Judges one replica's observations of one upload: the verdict, and when the
/// right bytes were first seen.
pub fn judge(observations: &[Observation]) -> (Verdict, Option<u64>) {
    if observations.iter().any(|o| o.seen == Seen::Different) {
        return (Verdict::Corrupted, None);
    }
    match observations.iter().position(|o| o.seen == Seen::Same) {
        Some(0) => (Verdict::Ok, Some(observations[0].after_ms)),
        Some(i) => (Verdict::Stale, Some(observations[i].after_ms)),
        None if observations.iter().any(|o| o.seen == Seen::Missing) => (Verdict::Missing, None),
        None if observations.is_empty() => (Verdict::Unverified, None),
        None => (Verdict::Error, None),
    }
}

/// An upload as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// The id the server returned.
    pub id: String,
    /// Request that uploaded it.
    pub request: String,
    /// Hex sha256 of the bytes sent.
    pub sha256: String,
    /// Bytes sent.
    pub size: u64,
    /// Replica that took the upload.
    pub replica: String,
    /// Seconds since the start of the run.
    pub at_s: f64,
}

/// One upload's read-backs, per replica.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The upload.
    pub upload: Upload,
    /// Replica → observations in order.
    pub seen: BTreeMap<String, Vec<Observation>>,
}

/// Uploads folded into the verdict as their read-backs end, in fixed
/// memory however long the run: counts per replica and verdict, the time
/// until visible everywhere of uploads grouped by which replicas were read
/// for them, and the first [`MAX_PROBLEMS`] problems. (A soak that kept
/// every upload's observations grew ~40 KB/s.)
#[derive(Default)]
pub struct Tally {
    uploads: u64,
    /// Replica names; a replica's index is its bit in a group's mask.
    names: Vec<String>,
    /// Per replica index: verdict counts.
    counts: Vec<BTreeMap<Verdict, u64>>,
    /// Uploads by the replicas read for them (a bit per replica index).
    groups: BTreeMap<u64, Group>,
    problems: Vec<Problem>,
    /// `replica: what the last read met` of pairs judged `error`.
    errors: BTreeMap<String, u64>,
}

/// Uploads read on the same replicas.
struct Group {
    uploads: u64,
    /// Time until visible on every replica read (µs), of those that were.
    visible: Histogram<u64>,
}

/// Replicas a group's mask can name; any further ones are counted but a
/// replica met late is not marked unverified on them.
const MASK_BITS: usize = 64;

impl Tally {
    fn index(&mut self, replica: &str) -> usize {
        match self.names.iter().position(|n| n == replica) {
            Some(i) => i,
            None => {
                self.names.push(replica.to_owned());
                self.counts.push(BTreeMap::new());
                self.names.len() - 1
            }
        }
    }

    /// The verdicts so far, by (replica read, verdict).
    pub fn by_replica(&self) -> BTreeMap<(String, &'static str), u64> {
        let mut out = BTreeMap::new();
        for (name, counts) in self.names.iter().zip(&self.counts) {
            for (verdict, n) in counts {
                out.insert((name.clone(), verdict.as_str()), *n);
            }
        }
        out
    }

    /// Folds one upload's read-backs in.
    pub fn add(&mut self, checked: &Checked) {
        self.uploads += 1;
        let mut everywhere: Option<u64> = Some(0);
        let mut mask = 0u64;
        for (replica, observations) in &checked.seen {
            let (verdict, at) = judge(observations);
            let i = self.index(replica);
            if i < MASK_BITS {
                mask |= 1 << i;
            }
            *self.counts[i].entry(verdict).or_default() += 1;
            if verdict == Verdict::Error {
                let met = observations.iter().rev().find_map(|o| match &o.seen {
                    Seen::Error(why) => Some(why.as_str()),
                    _ => None,
                });
                let key = format!("{replica}: {}", met.unwrap_or("no answer"));
                crate::measure::count_reason(&mut self.errors, &key);
            }
            everywhere = match (everywhere, at) {
                (Some(e), Some(a)) => Some(e.max(a)),
                _ => None,
            };
            if verdict != Verdict::Ok && self.problems.len() < MAX_PROBLEMS {
                self.problems.push(Problem {
                    id: checked.upload.id.clone(),
                    request: checked.upload.request.clone(),
                    uploaded_on: checked.upload.replica.clone(),
                    replica: replica.clone(),
                    verdict,
                    visible_after_ms: at.filter(|_| verdict == Verdict::Stale),
                });
            }
        }
        let group = self.groups.entry(mask).or_insert_with(|| Group {
            uploads: 0,
            visible: Histogram::new(3).expect("3 significant digits is valid"),
        });
        group.uploads += 1;
        if let (Some(ms), false) = (everywhere, checked.seen.is_empty()) {
            let _ = group.visible.record((ms * 1000).max(1));
        }
    }

    /// The verdict, given every replica the run met: a replica met only
    /// after an upload's check had ended was never read for it, so it is
    /// "unverified" there (counted; not listed among the problems) and the
    /// upload was not seen everywhere. Also returns the time-to-visible
    /// histogram (µs) for the bundle.
    pub fn finish(mut self, everyone: &[String]) -> (ConsistencyVerdict, Histogram<u64>) {
        for replica in everyone {
            self.index(replica);
        }
        let all: u64 = (0..self.names.len().min(MASK_BITS)).fold(0, |m, i| m | 1 << i);
        let mut visible = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut visible_everywhere = 0;
        for (mask, group) in &self.groups {
            let missing = all & !mask;
            if missing == 0 {
                visible_everywhere += group.visible.len();
                visible
                    .add(&group.visible)
                    .expect("auto-resizing histograms merge");
                continue;
            }
            for i in (0..MASK_BITS).filter(|i| missing & (1 << i) != 0) {
                *self.counts[i].entry(Verdict::Unverified).or_default() += group.uploads;
            }
        }
        let mut out = ConsistencyVerdict {
            uploads: self.uploads,
            visible_everywhere,
            problems: self.problems,
            errors: self.errors,
            ..Default::default()
        };
        let mut replicas: Vec<ReplicaCounts> = Vec::new();
        for (replica, verdicts) in self.names.into_iter().zip(self.counts) {
            if verdicts.is_empty() {
                continue;
            }
            for (v, n) in &verdicts {
                *out.verdicts.entry(*v).or_default() += n;
            }
            replicas.push(ReplicaCounts { replica, verdicts });
        }
        replicas.sort_by(|a, b| a.replica.cmp(&b.replica));
        out.replicas = replicas;
        out.visible = Percentiles::from_hist(&visible);
        (out, visible)
    }
}

/// Summarises every checked upload (read on the replicas each names); also
/// returns the time-to-visible histogram (µs) for the bundle.
pub fn summarise(checked: &[Checked]) -> (ConsistencyVerdict, Histogram<u64>) {
    let mut tally = Tally::default();
    for c in checked {
        tally.add(c);
    }
    tally.finish(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(after_ms: u64, seen: Seen) -> Observation {
        Observation { after_ms, seen }
    }

    fn upload(bytes: &[u8]) -> Upload {
        Upload {
            id: "a1".into(),
            request: "upload".into(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            replica: "r1".into(),
            at_s: 1.0,
        }
    }

    /// A replica met after an upload's check ended: unverified there, and
    /// the upload not visible everywhere; in fixed memory.
    #[test]
    fn a_replica_met_late_is_unverified_for_the_uploads_before_it() {
        let mut tally = Tally::default();
        let on = |replicas: &[&str]| Checked {
            upload: upload(b"x"),
            seen: replicas
                .iter()
                .map(|r| (r.to_string(), vec![obs(5, Seen::Same)]))
                .collect(),
        };
        for _ in 0..3 {
            tally.add(&on(&["r1", "r2"]));
        }
        tally.add(&on(&["r1", "r2", "r3"]));
        let (v, visible) = tally.finish(&["r1".into(), "r2".into(), "r3".into()]);
        assert_eq!(v.uploads, 4);
        assert_eq!(v.count(Verdict::Ok), 9);
        assert_eq!(v.count(Verdict::Unverified), 3);
        assert_eq!(v.visible_everywhere, 1);
        assert_eq!(visible.len(), 1);
        let r3 = v.replicas.iter().find(|r| r.replica == "r3").unwrap();
        assert_eq!(r3.verdicts[&Verdict::Unverified], 3);
    }

    #[test]
    fn visibility_is_never_a_percentile_of_nothing() {
        let none = ConsistencyVerdict {
            uploads: 4,
            ..Default::default()
        };
        assert_eq!(none.visible_text(), "no upload became visible everywhere");
        let (some, _) = summarise(&[Checked {
            upload: upload(b"x"),
            seen: [("r1".to_owned(), vec![obs(7, Seen::Same)])].into(),
        }]);
        assert!(
            some.visible_text()
                .starts_with("visible everywhere: 1 of 1 uploads (p50 7 ms"),
            "{}",
            some.visible_text()
        );
    }

    #[test]
    fn read_backs_compare_by_hash_and_size() {
        let u = upload(b"hello");
        assert_eq!(compare(200, b"hello", &u, &ReadRule::default()), Seen::Same);
        assert_eq!(
            compare(200, b"hellO", &u, &ReadRule::default()),
            Seen::Different
        );
        assert_eq!(
            compare(200, b"hello!", &u, &ReadRule::default()),
            Seen::Different
        );
        assert_eq!(compare(404, b"", &u, &ReadRule::default()), Seen::Missing);
        assert_eq!(compare(410, b"", &u, &ReadRule::default()), Seen::Missing);
        assert_eq!(
            compare(500, b"", &u, &ReadRule::default()),
            Seen::Error("status 500".into())
        );
        let probe = ReadRule {
            compare: Compare::Status,
            absent: vec![400, 404],
            ..ReadRule::default()
        };
        assert_eq!(
            compare(200, b"{}", &u, &probe),
            Seen::Same,
            "a cache probe judges by status"
        );
        assert_eq!(
            compare(400, b"template not found", &u, &probe),
            Seen::Missing
        );
        assert!(matches!(compare(500, b"", &u, &probe), Seen::Error(_)));
    }

    #[test]
    fn a_search_has_the_write_when_it_finds_it() {
        let u = upload(b"ignored: a record comes back with server fields");
        let search = ReadRule {
            compare: Compare::Search,
            ..ReadRule::default()
        };
        let hit = br#"{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"resource":{"resourceType":"Patient","id":"7"}}]}"#;
        let empty = br#"{"resourceType":"Bundle","type":"searchset","total":0}"#;
        assert_eq!(compare(200, hit, &u, &search), Seen::Same);
        assert_eq!(compare(200, empty, &u, &search), Seen::Missing);
        assert_eq!(compare(404, b"", &u, &search), Seen::Missing);
        assert!(matches!(
            compare(200, b"<html>", &u, &search),
            Seen::Error(_)
        ));
        assert!(matches!(
            compare(200, br#"{"resourceType":"OperationOutcome"}"#, &u, &search),
            Seen::Error(_)
        ));
        // Stale: nothing at first, then found.
        let seen = [
            Observation {
                after_ms: 10,
                seen: compare(200, empty, &u, &search),
            },
            Observation {
                after_ms: 620,
                seen: compare(200, hit, &u, &search),
            },
        ];
        assert_eq!(judge(&seen), (Verdict::Stale, Some(620)));
    }

    #[test]
    fn verdicts_from_observations() {
        assert_eq!(judge(&[obs(3, Seen::Same)]), (Verdict::Ok, Some(3)));
        assert_eq!(
            judge(&[obs(3, Seen::Missing), obs(250, Seen::Same)]),
            (Verdict::Stale, Some(250))
        );
        assert_eq!(
            judge(&[obs(3, Seen::Missing), obs(900, Seen::Missing)]),
            (Verdict::Missing, None)
        );
        assert_eq!(
            judge(&[obs(3, Seen::Same), obs(9, Seen::Different)]).0,
            Verdict::Corrupted
        );
        assert_eq!(
            judge(&[obs(3, Seen::Error("status 502".into()))]).0,
            Verdict::Error
        );
        assert_eq!(judge(&[]).0, Verdict::Unverified);
    }

    #[test]
    fn summary_counts_every_pair_and_times_visibility() {
        let checked = vec![
            Checked {
                upload: upload(b"x"),
                seen: BTreeMap::from([
                    ("r1".into(), vec![obs(2, Seen::Same)]),
                    (
                        "r2".into(),
                        vec![obs(2, Seen::Missing), obs(400, Seen::Same)],
                    ),
                ]),
            },
            Checked {
                upload: upload(b"y"),
                seen: BTreeMap::from([
                    ("r1".into(), vec![obs(2, Seen::Same)]),
                    (
                        "r2".into(),
                        vec![obs(2, Seen::Missing), obs(5000, Seen::Missing)],
                    ),
                ]),
            },
        ];
        let (v, hist) = summarise(&checked);
        assert_eq!(v.uploads, 2);
        assert_eq!(
            (
                v.count(Verdict::Ok),
                v.count(Verdict::Stale),
                v.count(Verdict::Missing)
            ),
            (2, 1, 1)
        );
        assert_eq!(v.visible_everywhere, 1);
        assert_eq!(hist.len(), 1);
        assert!((v.visible.p50 - 400.0).abs() < 1.0, "{}", v.visible.p50);
        assert_eq!(v.problems.len(), 2);
        let r2 = v.replicas.iter().find(|r| r.replica == "r2").unwrap();
        assert_eq!(r2.verdicts.get(&Verdict::Missing), Some(&1));
    }
}
