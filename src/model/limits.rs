//! Limits: `-1` unlimited, `0` disabled, `N` a cap; and the per-account limit set.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{clip, ModelError};

/// One NATS limit: `-1` means unlimited, `0` means disabled (nothing allowed), `N > 0` is a cap.
///
/// Values below `-1` are refused, so a `Limit` always has one of these three meanings. New records
/// default to [`Limit::UNLIMITED`], never to `0`: a zero limit makes an account or user unusable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Limit(i64);

impl Limit {
    /// No limit (`-1`).
    pub const UNLIMITED: Limit = Limit(-1);
    /// Nothing allowed (`0`).
    pub const DISABLED: Limit = Limit(0);

    /// Parses `-1`, `0`, a positive number, or the words `unlimited` / `disabled` (what
    /// [`Display`](fmt::Display) prints), so a printed limit parses back to itself.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text.trim() {
            "unlimited" => Ok(Limit::UNLIMITED),
            "disabled" => Ok(Limit::DISABLED),
            other => {
                let n: i64 = other.parse().map_err(|_| ModelError::LimitNotANumber(clip(text)))?;
                Limit::try_from(n)
            }
        }
    }

    /// The raw value as NATS claims carry it.
    pub fn get(self) -> i64 {
        self.0
    }

    /// True for `0`.
    pub fn is_disabled(self) -> bool {
        self.0 == 0
    }

    /// Whether `count` items stay within this limit (`count <= N`; always for unlimited).
    pub fn allows(self, count: u64) -> bool {
        match self.0 {
            -1 => true,
            n => u64::try_from(n).is_ok_and(|cap| count <= cap),
        }
    }
}

impl Default for Limit {
    /// Unlimited: the safe default for new records (a zero default disables the account).
    fn default() -> Self {
        Limit::UNLIMITED
    }
}

impl TryFrom<i64> for Limit {
    type Error = ModelError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if value < -1 {
            return Err(ModelError::LimitBelowMinusOne(value));
        }
        Ok(Limit(value))
    }
}

impl From<Limit> for i64 {
    fn from(limit: Limit) -> i64 {
        limit.0
    }
}

impl FromStr for Limit {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Limit::parse(s)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            -1 => f.write_str("unlimited"),
            0 => f.write_str("disabled"),
            n => write!(f, "{n}"),
        }
    }
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Limit({self})")
    }
}

/// The limits an account JWT carries. Account JWTs always carry them explicitly, because an
/// account JWT without limits lets nobody connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Client connections in the account.
    pub max_connections: Limit,
    /// Subscriptions in the account.
    pub max_subscriptions: Limit,
    /// Bytes in flight for the account.
    pub max_data: Limit,
    /// Largest message payload in bytes.
    pub max_payload: Limit,
    /// Leaf node connections.
    pub max_leafnodes: Limit,
    /// Imports the account may declare.
    pub max_imports: Limit,
    /// Exports the account may declare.
    pub max_exports: Limit,
    /// JetStream file storage in bytes; `0` (the default) leaves JetStream off.
    pub js_disk: Limit,
    /// JetStream memory storage in bytes; `0` (the default) leaves JetStream off.
    pub js_memory: Limit,
    /// JetStream streams (only matters when disk or memory storage is enabled).
    pub js_streams: Limit,
    /// JetStream consumers (only matters when disk or memory storage is enabled).
    pub js_consumers: Limit,
}

impl AccountLimits {
    /// Whether JetStream is enabled, i.e. disk or memory storage is not disabled.
    pub fn jetstream_enabled(&self) -> bool {
        !self.js_disk.is_disabled() || !self.js_memory.is_disabled()
    }
}

impl Default for AccountLimits {
    /// Everything unlimited, except JetStream storage, which is off unless asked for.
    fn default() -> Self {
        AccountLimits {
            max_connections: Limit::UNLIMITED,
            max_subscriptions: Limit::UNLIMITED,
            max_data: Limit::UNLIMITED,
            max_payload: Limit::UNLIMITED,
            max_leafnodes: Limit::UNLIMITED,
            max_imports: Limit::UNLIMITED,
            max_exports: Limit::UNLIMITED,
            js_disk: Limit::DISABLED,
            js_memory: Limit::DISABLED,
            js_streams: Limit::UNLIMITED,
            js_consumers: Limit::UNLIMITED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_minus_one_zero_and_caps() {
        assert_eq!(Limit::parse("-1").unwrap(), Limit::UNLIMITED);
        assert_eq!(Limit::parse("0").unwrap(), Limit::DISABLED);
        assert_eq!(Limit::parse("1024").unwrap().get(), 1024);
        assert_eq!(Limit::parse("unlimited").unwrap(), Limit::UNLIMITED);
        assert_eq!(Limit::parse("disabled").unwrap(), Limit::DISABLED);
    }

    #[test]
    fn below_minus_one_is_rejected() {
        assert_eq!(Limit::parse("-2"), Err(ModelError::LimitBelowMinusOne(-2)));
        assert_eq!(Limit::try_from(-2), Err(ModelError::LimitBelowMinusOne(-2)));
        assert!(matches!(Limit::parse("many"), Err(ModelError::LimitNotANumber(_))));
        assert!(serde_json::from_str::<Limit>("-5").is_err());
    }

    #[test]
    fn display_round_trips() {
        for limit in [Limit::UNLIMITED, Limit::DISABLED, Limit::try_from(7).unwrap()] {
            assert_eq!(Limit::parse(&limit.to_string()).unwrap(), limit);
        }
        assert_eq!(Limit::UNLIMITED.to_string(), "unlimited");
        assert_eq!(Limit::DISABLED.to_string(), "disabled");
        assert_eq!(Limit::try_from(42).unwrap().to_string(), "42");
    }

    #[test]
    fn serde_is_a_plain_number() {
        let json = serde_json::to_string(&Limit::UNLIMITED).unwrap();
        assert_eq!(json, "-1");
        assert_eq!(serde_json::from_str::<Limit>("12").unwrap().get(), 12);
    }

    #[test]
    fn allows_respects_meaning() {
        assert!(Limit::UNLIMITED.allows(u64::MAX));
        assert!(!Limit::DISABLED.allows(1));
        assert!(Limit::DISABLED.allows(0));
        let three = Limit::try_from(3).unwrap();
        assert!(three.allows(3));
        assert!(!three.allows(4));
    }

    #[test]
    fn defaults_are_unlimited_and_jetstream_off() {
        assert_eq!(Limit::default(), Limit::UNLIMITED);
        let d = AccountLimits::default();
        for l in [
            d.max_connections,
            d.max_subscriptions,
            d.max_data,
            d.max_payload,
            d.max_leafnodes,
            d.max_imports,
            d.max_exports,
            d.js_streams,
            d.js_consumers,
        ] {
            assert_eq!(l, Limit::UNLIMITED);
        }
        assert_eq!(d.js_disk, Limit::DISABLED);
        assert_eq!(d.js_memory, Limit::DISABLED);
        assert!(!d.jetstream_enabled());
    }
}
