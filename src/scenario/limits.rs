//! The ranges every number in a scenario and on the command line must fall
//! in, checked by `surge check` and before a run, so no value can overflow a
//! time sum or make surge allocate in proportion to a number nobody checked.
//! One surge process is not meant to go past these; a larger test is split
//! over shards.

use std::time::Duration;

/// Longest duration anywhere (a stage, a think time, a whole run): 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Highest open-model arrival rate, per second.
pub const MAX_RATE: f64 = 50_000.0;
/// Most virtual users (closed-model users, open-model `max_users`).
pub const MAX_USERS: usize = 50_000;
/// Largest generated upload: each is built in memory, once per request.
pub const MAX_GENERATED_BYTES: u64 = 256 * 1024 * 1024;
/// Generated uploads that may be in memory at once (users × the largest).
pub const MAX_GENERATED_IN_FLIGHT: u64 = 4 * 1024 * 1024 * 1024;
/// Longest request timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest persona weight.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Most requests one `for_each`/`while` step may send.
pub const MAX_REPEAT: usize = 10_000;
/// Longest scenario name (it names the bundle folder).
pub const MAX_NAME: usize = 100;

/// `Err` says the allowed range when `value` is outside `lo..=hi`.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(format!(
            "{what} {value} is out of range: expected {lo} to {hi}"
        ))
    }
}

/// A duration within [`MAX_DURATION`].
pub fn check_duration(what: &str, d: Duration) -> Result<Duration, String> {
    if d <= MAX_DURATION {
        Ok(d)
    } else {
        Err(format!(
            "{what} {} is too long: at most 30 days (720h)",
            humantime::format_duration(d)
        ))
    }
}

/// A request timeout: more than zero (a zero timeout would fail every
/// request before it is sent), at most [`MAX_TIMEOUT`].
pub fn check_timeout(what: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!(
            "{what} must be more than zero: expected e.g. \"10s\" (at most 1h)"
        ))
    } else if d > MAX_TIMEOUT {
        Err(format!(
            "{what} {} is too long: at most 1h",
            humantime::format_duration(d)
        ))
    } else {
        Ok(d)
    }
}

/// An open-model rate: positive, finite, at most [`MAX_RATE`].
pub fn check_rate(what: &str, rate: f64) -> Result<f64, String> {
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!("{what} {rate} is out of range: expected more than 0 and at most {MAX_RATE} arrivals per second (split a larger test over shards)"))
    }
}

/// A stage's arrival rate: 0 (a quiet spell, as a replayed log has) to
/// [`MAX_RATE`]; the plan as a whole must send something (the caller
/// checks that one stage is above 0).
pub fn check_stage_rate(what: &str, rate: f64) -> Result<f64, String> {
    if (0.0..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{what} {rate} is out of range: expected 0 (a quiet spell) up to at most {MAX_RATE} arrivals per second (split a larger test over shards)"))
    }
}

/// A number of virtual users: 1 to [`MAX_USERS`].
pub fn check_users(what: &str, users: usize) -> Result<usize, String> {
    check_range(what, users, 1, MAX_USERS)
        .map_err(|e| format!("{e} (split a larger test over shards)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_say_what_was_expected() {
        assert_eq!(check_rate("rate", 10.0), Ok(10.0));
        assert!(check_rate("rate", 0.0).unwrap_err().contains("more than 0"));
        assert!(check_rate("rate", f64::NAN).is_err());
        assert!(check_rate("rate", f64::INFINITY).is_err());
        assert_eq!(check_stage_rate("rate", 0.0), Ok(0.0));
        assert!(check_stage_rate("rate", -1.0).is_err());
        assert!(check_stage_rate("rate", f64::NAN).is_err());
        assert!(check_rate("rate", 1e12)
            .unwrap_err()
            .contains("at most 50000"));
        assert!(check_users("--users", usize::MAX)
            .unwrap_err()
            .contains("expected 1 to 50000"));
        assert!(check_timeout("timeout", Duration::ZERO)
            .unwrap_err()
            .contains("more than zero"));
        assert!(check_duration("hold", Duration::from_secs(u64::MAX))
            .unwrap_err()
            .contains("at most 30 days"));
        assert_eq!(check_duration("hold", MAX_DURATION), Ok(MAX_DURATION));
    }
}
