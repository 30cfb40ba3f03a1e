//! The one wall clock of pbn. Pure layers never read it: callers pass `now` in, so tests can
//! set the time and a change is judged at one instant throughout.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    unix_now_ms() / 1000
}

/// The current time in unix milliseconds (0 if the clock is before 1970): outbox times.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (s, ms) = (unix_now(), unix_now_ms());
        assert!(s > 1_700_000_000, "after 2023");
        assert!((ms / 1000 - s).abs() <= 1);
    }
}
