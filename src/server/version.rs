//! The nats-server versions pbn works with.
//!
//! pbn's server configs use `default_sentinel` (the JWT a callout-only login presents), which
//! nats-server understands from 2.11.0 on; older servers refuse the config, and a server run with
//! another config cannot route logins through pbn as pbn expects. So both `pbn serve` (from the
//! version in the server's INFO) and `pbn up` (from `nats-server --version`) refuse them.

use std::fmt;
use std::str::FromStr;

/// The oldest nats-server pbn supports.
pub const MINIMUM: ServerVersion = ServerVersion { major: 2, minor: 11, patch: 0 };

/// A nats-server version, `major.minor.patch` (pre-release suffixes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// Errors about a server's version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a version.
    #[error("cannot read a nats-server version from {0:?}")]
    Unreadable(String),
    /// The server is older than [`MINIMUM`].
    #[error("nats-server {found} is too old: pbn needs nats-server {MINIMUM} or newer")]
    TooOld {
        /// The version the server reported.
        found: ServerVersion,
    },
}

impl ServerVersion {
    /// Reads the version out of `nats-server --version` output (`nats-server: v2.15.1`).
    pub fn from_version_output(output: &str) -> Result<ServerVersion, VersionError> {
        let line = output.lines().next().unwrap_or_default().trim();
        let text = line.strip_prefix("nats-server:").unwrap_or(line).trim();
        text.parse()
    }

    /// `Ok` when this version is at least [`MINIMUM`].
    pub fn check_supported(self) -> Result<(), VersionError> {
        if self < MINIMUM {
            return Err(VersionError::TooOld { found: self });
        }
        Ok(())
    }
}

/// Checks a version string as found in a server's INFO (`2.15.1`, `2.12.0-RC.1`).
pub fn check(version: &str) -> Result<ServerVersion, VersionError> {
    let found: ServerVersion = version.parse()?;
    found.check_supported()?;
    Ok(found)
}

impl FromStr for ServerVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::Unreadable(s.to_owned());
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+', ' ']).next().unwrap_or_default();
        let mut parts = core.split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().unwrap_or(Ok(0))?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(ServerVersion { major, minor, patch })
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions() {
        let v = |major, minor, patch| ServerVersion { major, minor, patch };
        assert_eq!("2.15.1".parse(), Ok(v(2, 15, 1)));
        assert_eq!("v2.12.0-RC.1".parse(), Ok(v(2, 12, 0)));
        assert_eq!(ServerVersion::from_version_output("nats-server: v2.10.26\n"), Ok(v(2, 10, 26)));
        assert!(matches!("2".parse::<ServerVersion>(), Err(VersionError::Unreadable(_))));
        assert!(matches!("x.y.z".parse::<ServerVersion>(), Err(VersionError::Unreadable(_))));
    }

    #[test]
    fn refuses_servers_before_2_11() {
        assert_eq!(
            check("2.10.26"),
            Err(VersionError::TooOld { found: "2.10.26".parse().unwrap() })
        );
        assert!(matches!(check("2.9.10"), Err(VersionError::TooOld { .. })));
        assert!(check("2.11.0").is_ok());
        assert!(check("2.15.1").is_ok());
        assert!(check("3.0.0").is_ok());
    }
}
