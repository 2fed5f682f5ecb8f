//! `summary.json`: the whole [`RunResults`], versioned by `schema_version`.

use super::Export;
use crate::bundle::RunResults;

pub(super) struct Summary;

impl Export for Summary {
    fn file_name(&self) -> &'static str {
        "summary.json"
    }

    fn serialize(&self, results: &RunResults) -> anyhow::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(results)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
