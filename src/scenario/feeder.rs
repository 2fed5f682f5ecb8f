//! CSV feeders: rows of test data (patients, locations) drawn by users.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::model::FeederOrder;

/// A loaded CSV feeder.
#[derive(Debug)]
pub struct Feeder {
    /// Name used in templates.
    pub name: String,
    /// Column names from the header row.
    pub columns: Vec<String>,
    rows: Vec<Arc<HashMap<String, String>>>,
    order: FeederOrder,
    cursor: AtomicUsize,
    /// Row `k` here is row `first + stride × k` of the file (a shard holds
    /// every `stride`-th row).
    first: usize,
    stride: usize,
    /// Rows in the file.
    file_rows: usize,
    /// Which rows were handed out: the ledger a sharded run reports, so
    /// shards can be shown never to share a row.
    used: Vec<AtomicBool>,
}

/// Largest feeder file: its rows are held in memory.
const MAX_FEEDER_BYTES: u64 = 512 * 1024 * 1024;

impl Feeder {
    /// Reads `path`: a header row, then at least one data row.
    pub fn load(name: &str, path: &Path, order: FeederOrder) -> Result<Feeder, String> {
        let shown = || super::resolved(path);
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read feeder file {}: {e}", shown()))?
            .len();
        if size > MAX_FEEDER_BYTES {
            return Err(format!(
                "feeder file {} is {size} bytes: at most {MAX_FEEDER_BYTES} (it is held in memory; split the rows over shards)",
                shown()
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read feeder file {}: {e}", shown()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(format!(
                "feeder file {} is empty: expected a header row and at least one data row",
                shown()
            ));
        }
        if let Some(at) = bytes.iter().position(|b| *b == 0) {
            return Err(format!(
                "feeder file {} holds binary data (a NUL byte at offset {at}): expected CSV text",
                shown()
            ));
        }
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{}: bad CSV header: {e}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
            let row = columns
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_owned))
                .collect::<HashMap<_, _>>();
            rows.push(Arc::new(row));
        }
        if rows.is_empty() {
            return Err(format!(
                "{}: feeder `{name}` has a header but no rows",
                path.display()
            ));
        }
        Ok(Feeder {
            name: name.to_owned(),
            columns,
            used: rows.iter().map(|_| AtomicBool::new(false)).collect(),
            file_rows: rows.len(),
            rows,
            order,
            cursor: AtomicUsize::new(0),
            first: 0,
            stride: 1,
        })
    }

    /// Shard `index` of `count`'s part: the file's rows `k` with
    /// `k ≡ index (mod count)`, so no two shards hand out the same row (two
    /// shards never log in or upload as the same user at once).
    pub fn partition(&self, index: usize, count: usize) -> Result<Feeder, String> {
        if self.rows.len() < count {
            return Err(format!(
                "feeder `{}` has {} rows: too few for {count} shards (each needs at least one row of its own)",
                self.name,
                self.rows.len()
            ));
        }
        let rows: Vec<_> = self
            .rows
            .iter()
            .skip(index)
            .step_by(count)
            .cloned()
            .collect();
        Ok(Feeder {
            name: self.name.clone(),
            columns: self.columns.clone(),
            used: rows.iter().map(|_| AtomicBool::new(false)).collect(),
            rows,
            order: self.order,
            cursor: AtomicUsize::new(0),
            first: self.first + index * self.stride,
            stride: self.stride * count,
            file_rows: self.file_rows,
        })
    }

    /// Rows in the feeder's file (all shards together).
    pub fn file_rows(&self) -> usize {
        self.file_rows
    }

    /// The file's row numbers (0-based, data rows) handed out so far.
    pub fn used_rows(&self) -> impl Iterator<Item = u64> + '_ {
        self.used
            .iter()
            .enumerate()
            .filter(|(_, u)| u.load(Ordering::Relaxed))
            .map(|(k, _)| (self.first + self.stride * k) as u64)
    }

    /// Feeds the rows, in order, to a fingerprint.
    pub fn hash_rows(&self, into: &mut impl FnMut(&[u8])) {
        into(self.name.as_bytes());
        for row in &self.rows {
            for column in &self.columns {
                into(b"\x1f");
                into(row.get(column).map_or(&b""[..], |v| v.as_bytes()));
            }
            into(b"\x1e");
        }
    }

    /// The next row, as the feeder's order says.
    pub fn next_row(&self) -> Arc<HashMap<String, String>> {
        let index = match self.order {
            FeederOrder::Sequential => {
                self.cursor.fetch_add(1, Ordering::Relaxed) % self.rows.len()
            }
            FeederOrder::Random => rand::random_range(0..self.rows.len()),
        };
        self.used[index].store(true, Ordering::Relaxed);
        Arc::clone(&self.rows[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_rows_wrap_around() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "uuid,name\na,Ayesha\nb,Karim\n").unwrap();
        let feeder = Feeder::load("patient", &path, FeederOrder::Sequential).unwrap();
        let names: Vec<String> = (0..3).map(|_| feeder.next_row()["name"].clone()).collect();
        assert_eq!(names, ["Ayesha", "Karim", "Ayesha"]);
    }

    /// Three shards hold disjoint rows that together are the file; each
    /// reports the file's row numbers it handed out.
    #[test]
    fn shards_partition_the_rows_and_report_the_file_rows_they_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        let body: String = (0..7).map(|i| format!("u{i}\n")).collect();
        std::fs::write(&path, format!("user\n{body}")).unwrap();
        let whole = Feeder::load("user", &path, FeederOrder::Sequential).unwrap();
        let mut seen = Vec::new();
        for index in 0..3 {
            let part = whole.partition(index, 3).unwrap();
            assert_eq!(part.file_rows(), 7);
            let n = part.rows.len();
            let names: Vec<String> = (0..n).map(|_| part.next_row()["user"].clone()).collect();
            let used: Vec<u64> = part.used_rows().collect();
            assert_eq!(
                names,
                used.iter().map(|k| format!("u{k}")).collect::<Vec<_>>(),
                "shard {index} reports the rows it handed out"
            );
            seen.extend(used);
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..7).collect::<Vec<u64>>(),
            "disjoint, and all of them"
        );
        let err = whole.partition(0, 8).unwrap_err();
        assert!(err.contains("has 7 rows: too few for 8 shards"), "{err}");
    }

    #[test]
    fn empty_and_ragged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("e.csv");
        std::fs::write(&empty, "uuid\n").unwrap();
        assert!(Feeder::load("e", &empty, FeederOrder::Random)
            .unwrap_err()
            .contains("no rows"));
        let ragged = dir.path().join("r.csv");
        std::fs::write(&ragged, "a,b\n1,2\n3\n").unwrap();
        assert!(Feeder::load("r", &ragged, FeederOrder::Random)
            .unwrap_err()
            .contains("row 3"));
    }
}
