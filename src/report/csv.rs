//! CSV files: `timeline.csv` (one row a second) and `requests.csv` (one row
//! per request name).

use super::Export;
use crate::bundle::{ErrorClass, RunResults};

pub(super) struct Timeline;

impl Export for Timeline {
    fn file_name(&self) -> &'static str {
        "timeline.csv"
    }

    fn serialize(&self, results: &RunResults) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in &results.timeline {
            w.serialize(row)?;
        }
        Ok(w.into_inner()?)
    }
}

pub(super) struct Requests;

impl Export for Requests {
    fn file_name(&self) -> &'static str {
        "requests.csv"
    }

    fn serialize(&self, results: &RunResults) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = [
            "request",
            "count",
            "ok",
            "failed",
            "error_rate",
            "throughput_per_s",
            "p50_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "service_p50_ms",
            "service_p99_ms",
            "issued",
            "not_sent",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(
            ErrorClass::ALL
                .iter()
                .map(|c| format!("errors_{}", c.as_str())),
        );
        header.push("statuses".into());
        w.write_record(&header)?;
        for s in results
            .requests
            .iter()
            .chain(std::iter::once(&results.overall))
        {
            let mut row = vec![
                s.name.clone(),
                s.count.to_string(),
                s.ok.to_string(),
                s.failed.to_string(),
                format!("{:.6}", s.error_rate),
                format!("{:.3}", s.throughput),
            ];
            for v in [
                s.latency.p50,
                s.latency.p90,
                s.latency.p95,
                s.latency.p99,
                s.latency.max,
                s.service.p50,
                s.service.p99,
            ] {
                row.push(format!("{v:.3}"));
            }
            row.push(s.issued.to_string());
            row.push(s.not_sent.to_string());
            row.extend(
                ErrorClass::ALL
                    .iter()
                    .map(|c| s.errors.get(c).copied().unwrap_or(0).to_string()),
            );
            row.push(s.statuses_text());
            w.write_record(&row)?;
        }
        Ok(w.into_inner()?)
    }
}
