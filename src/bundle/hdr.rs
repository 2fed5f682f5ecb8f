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

/// A histogram in the V2 deflate format, in memory (a timeline second kept
/// small until the bundle is written).
pub fn compress(h: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // WHY expect: serializing into a Vec cannot fail for want of space, and
    // an auto-resizing histogram of counts always encodes.
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("a histogram encodes into memory");
    bytes
}

/// A histogram from [`compress`]'s bytes.
pub fn decompress(bytes: &[u8]) -> anyhow::Result<Histogram<u64>> {
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("not an HDR V2 histogram: {e:?}"))
}

/// Where every second's latency histogram goes in a bundle: one line per
/// series (`all`, or a request name) and second, `SECOND BASE64 SERIES`.
pub const TIMELINE_HDR: &str = "hdr/timeline.hdrs";

/// Per-second histograms of a run: (series, second, compressed histogram).
pub type TimelineHistograms = Vec<(String, u64, Vec<u8>)>;

/// Writes the per-second histograms.
pub fn write_timeline(dir: &Path, timeline: &TimelineHistograms) -> anyhow::Result<()> {
    if timeline.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (series, second, bytes) in timeline {
        // The series last: a request name may hold spaces (never a line break).
        text.push_str(&format!(
            "{second} {} {}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes),
            series.replace(['\n', '\r'], " ")
        ));
    }
    std::fs::write(dir.join(TIMELINE_HDR), text)
        .with_context(|| format!("cannot write {TIMELINE_HDR}"))
}

/// Reads a bundle's per-second histograms (none when the bundle has none:
/// an older bundle).
pub fn read_timeline(dir: &Path) -> anyhow::Result<TimelineHistograms> {
    let path = dir.join(TIMELINE_HDR);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let bad = || {
                anyhow::anyhow!(
                    "{}:{}: expected SECOND BASE64 SERIES",
                    path.display(),
                    n + 1
                )
            };
            let mut parts = line.splitn(3, ' ');
            let (Some(second), Some(data), Some(series)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let second: u64 = second.parse().map_err(|_| bad())?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| bad())?;
            Ok((series.to_owned(), second, bytes))
        })
        .collect()
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
