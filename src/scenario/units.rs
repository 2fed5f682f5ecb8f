//! The units a scenario file writes its numbers in: durations (`"500ms"`,
//! capped at 30 days), durations with a range of their own, think times
//! (`"2s"` or `"1s..3s"`) and byte sizes (`"16KiB"`), each read with its
//! range checked and a message that says what was expected.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::time::Duration;

/// A byte size written as `"16KiB"`, `"1MiB"`, `"500B"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(n) if n <= super::limits::MAX_GENERATED_BYTES => return Ok(Size(n)),
            Raw::Number(n) => {
                return Err(D::Error::custom(format!(
                    "size {n} is too large: at most 268435456 bytes (256MiB; each upload is built in memory)"
                )))
            }
            Raw::Text(t) => t,
        };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: u64 = number.parse().map_err(|_| {
            D::Error::custom(format!(
                "bad size {text:?}: expected e.g. \"16KiB\", \"1MiB\" or \"500B\""
            ))
        })?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            "KB" | "kB" => 1000,
            "MB" => 1_000_000,
            other => {
                return Err(D::Error::custom(format!(
                    "bad size unit {other:?} in {text:?}: expected B, KiB, MiB, KB or MB"
                )))
            }
        };
        let bytes = n
            .checked_mul(factor)
            .filter(|b| *b <= super::limits::MAX_GENERATED_BYTES);
        bytes.map(Size).ok_or_else(|| {
            D::Error::custom(format!(
                "size {text:?} is too large: at most 256MiB (each upload is built in memory)"
            ))
        })
    }
}

/// A think time, fixed or uniformly random in a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Think {
    /// Shortest.
    pub min: Duration,
    /// Longest.
    pub max: Duration,
}

/// A duration written as `"500ms"`, `"30s"`, `"2m"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Dur).map_err(D::Error::custom)
    }
}

/// A duration that must lie from `LO_MS` to `HI_MS` milliseconds; a value
/// outside is a scenario error at its own line and column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounded<const LO_MS: u64, const HI_MS: u64>(pub Duration);

impl<'de, const LO_MS: u64, const HI_MS: u64> Deserialize<'de> for Bounded<LO_MS, HI_MS> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let d = parse_duration(&text).map_err(D::Error::custom)?;
        let (lo, hi) = (Duration::from_millis(LO_MS), Duration::from_millis(HI_MS));
        if d < lo || d > hi {
            return Err(D::Error::custom(format!(
                "duration {text:?} is out of range: expected {} to {}",
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            )));
        }
        Ok(Bounded(d))
    }
}

/// Parses `"500ms"`, `"30s"`, `"1m30s"`.
/// Anything over 30 days is refused (see [`super::limits`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("bad duration {text:?} ({e}): expected e.g. \"500ms\", \"30s\" or \"2m\"")
    })?;
    super::limits::check_duration("duration", d)
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse_duration(a), parse_duration(b)),
            None => (parse_duration(&text), parse_duration(&text)),
        };
        let (min, max) = (
            min.map_err(D::Error::custom)?,
            max.map_err(D::Error::custom)?,
        );
        if min > max {
            return Err(D::Error::custom(format!(
                "think time {text:?}: the range runs backwards"
            )));
        }
        Ok(Think { min, max })
    }
}
