//! The one retry backoff of pbn: exponential from a base, capped. Exponential, so a server that
//! is down for a while costs few attempts; capped, so a repaired one is used again soon.

use std::time::Duration;

/// The delay before retry number `retry` (1 = after the first failure): `base` doubled per
/// further failure, at most `max`. Retry 0 counts as 1.
pub fn exponential(base: Duration, max: Duration, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_and_stops_at_the_cap() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let ms = |n| exponential(base, max, n).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)], [100, 100, 200, 400, 800, 1000]);
        assert_eq!(ms(u32::MAX), 1000, "no overflow");
        assert_eq!(exponential(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }
}
