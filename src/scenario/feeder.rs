//! CSV feeders: rows of test data (patients, locations) drawn by users.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
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
            rows,
            order,
            cursor: AtomicUsize::new(0),
        })
    }

    /// The next row, as the feeder's order says.
    pub fn next_row(&self) -> Arc<HashMap<String, String>> {
        let index = match self.order {
            FeederOrder::Sequential => {
                self.cursor.fetch_add(1, Ordering::Relaxed) % self.rows.len()
            }
            FeederOrder::Random => rand::random_range(0..self.rows.len()),
        };
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
