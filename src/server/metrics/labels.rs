//! Bounded label values: the account label of the per-account session gauge.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value every account past the cap is counted under.
pub const OTHER: &str = "other";

/// Hands out at most `cap` distinct label values; every further value maps to [`OTHER`].
///
/// Each distinct label value is one time series in every Prometheus that scrapes pbn, kept for
/// its retention: a deployment with thousands of tenant accounts would otherwise make the
/// session gauge alone thousands of series. The values admitted first keep their own series for
/// the life of the process (a series never flips between its own label and `other`), so the cap
/// is on memory and cardinality, not on which accounts are named.
#[derive(Debug)]
pub struct LabelCap {
    cap: usize,
    named: Mutex<HashSet<String>>,
}

impl LabelCap {
    /// At most `cap` distinct values besides [`OTHER`].
    pub fn new(cap: usize) -> Self {
        LabelCap { cap, named: Mutex::new(HashSet::new()) }
    }

    /// The label for `value`: itself while it is (or may become) one of the first `cap`
    /// values seen, else [`OTHER`]. A value equal to `OTHER` is kept apart from the bucket by
    /// mapping it to `other_`.
    pub fn label(&self, value: &str) -> String {
        let value = if value == OTHER { "other_" } else { value };
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if named.contains(value) {
            return value.to_string();
        }
        if named.len() < self.cap {
            named.insert(value.to_string());
            return value.to_string();
        }
        OTHER.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_cap_share_the_other_label_and_early_ones_keep_theirs() {
        let cap = LabelCap::new(2);
        assert_eq!(cap.label("APP"), "APP");
        assert_eq!(cap.label("OTHER-TEAM"), "OTHER-TEAM");
        assert_eq!(cap.label("THIRD"), OTHER);
        assert_eq!(cap.label("FOURTH"), OTHER);
        assert_eq!(cap.label("APP"), "APP", "a value admitted first keeps its own label");
        assert_eq!(cap.label("OTHER-TEAM"), "OTHER-TEAM");
    }

    #[test]
    fn a_value_named_other_is_not_merged_into_the_bucket() {
        let cap = LabelCap::new(1);
        assert_eq!(cap.label(OTHER), "other_");
        assert_eq!(cap.label("X"), OTHER);
    }

    #[test]
    fn a_cap_of_zero_puts_everything_under_other() {
        let cap = LabelCap::new(0);
        assert_eq!(cap.label("APP"), OTHER);
    }
}
