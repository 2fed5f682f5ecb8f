//! HDR histograms in the bundle: one file per (stage, request, replica) and
//! kind (latency, service), in the HdrHistogram V2 deflate format, base64 on
//! one line, as other HdrHistogram tools read them. Values are microseconds.

use super::{CellHistograms, RunResults};
use anyhow::Context;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::path::Path;

fn encode(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot encode histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Where the time-until-visible histogram of uploads goes in a bundle.
pub const VISIBLE_HDR: &str = "hdr/attachments-visible.hdr";

/// Writes every cell's histograms (and the time-until-visible one) into `dir`.
pub fn write_all(
    dir: &Path,
    results: &RunResults,
    histograms: &[CellHistograms],
    visible: Option<&Histogram<u64>>,
) -> anyhow::Result<()> {
    if let Some(h) = visible {
        std::fs::write(dir.join(VISIBLE_HDR), encode(h)? + "\n")
            .with_context(|| format!("cannot write {VISIBLE_HDR}"))?;
    }
    for (cell, h) in results.cells.iter().zip(histograms) {
        for (file, hist) in [
            (&cell.latency_hdr, &h.latency),
            (&cell.service_hdr, &h.service),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, encode(hist)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// Reads one histogram file of a bundle.
pub fn read_histogram(path: &Path) -> anyhow::Result<Histogram<u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .with_context(|| format!("{} is not base64", path.display()))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{} is not an HDR V2 histogram: {e:?}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_exactly() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [1, 250, 1_000, 87_000, 12_000_000] {
            h.record(v).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hdr");
        std::fs::write(&path, encode(&h).unwrap()).unwrap();
        let back = read_histogram(&path).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(back.max(), h.max());
    }
}
