//! Client source addresses: parsing `client_info.host` and checking it against allowed CIDRs.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::AuthError;

/// Longest host text echoed in an [`AuthError::InvalidHost`], so garbage cannot flood a log line.
const MAX_ECHO: usize = 64;

/// Parses the callout's `client_info.host` into an address.
///
/// nats-server sends the bare remote IP (`1.2.3.4`, `::1`); this also takes `ip:port`,
/// `[v6]:port`, `[v6]` and a v6 zone suffix (`fe80::1%eth0`, zone dropped), so a change in the
/// server's formatting does not lock users out. IPv4-mapped IPv6 addresses come back as IPv4, so
/// they match IPv4 CIDRs and throttle keys.
pub fn parse_client_host(host: &str) -> Result<IpAddr, AuthError> {
    let host = host.trim();
    let ip = host
        .parse::<IpAddr>()
        .ok()
        .or_else(|| host.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| strip_brackets_and_zone(host).parse::<IpAddr>().ok());
    match ip {
        Some(ip) => Ok(ip.to_canonical()),
        None => Err(AuthError::InvalidHost(host.chars().take(MAX_ECHO).collect())),
    }
}

/// `[fe80::1%eth0]` → `fe80::1`; text without brackets or zone is returned unchanged.
fn strip_brackets_and_zone(host: &str) -> &str {
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match inner.split_once('%') {
        Some((addr, _zone)) if addr.contains(':') => addr,
        _ => inner,
    }
}

/// Whether `ip` may connect given the allowed source networks; an empty list allows any source.
///
/// IPv4-mapped IPv6 addresses are also matched as their IPv4 form, so `::ffff:10.0.0.1` is inside
/// `10.0.0.0/8`.
pub fn source_allowed(ip: IpAddr, cidrs: &[IpNet]) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let canonical = ip.to_canonical();
    cidrs.iter().any(|net| net.contains(&ip) || net.contains(&canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_list_allows_any_source() {
        assert!(source_allowed(ip("203.0.113.7"), &[]));
        assert!(source_allowed(ip("2001:db8::1"), &[]));
    }

    #[test]
    fn ipv4_cidrs() {
        let allowed = nets(&["10.0.0.0/8", "192.168.1.10/32"]);
        assert!(source_allowed(ip("10.200.3.4"), &allowed));
        assert!(source_allowed(ip("192.168.1.10"), &allowed));
        assert!(!source_allowed(ip("192.168.1.11"), &allowed));
        assert!(!source_allowed(ip("11.0.0.1"), &allowed));
        assert!(!source_allowed(ip("::1"), &allowed));
    }

    #[test]
    fn ipv6_cidrs() {
        let allowed = nets(&["2001:db8:1::/48"]);
        assert!(source_allowed(ip("2001:db8:1:ffff::1"), &allowed));
        assert!(!source_allowed(ip("2001:db8:2::1"), &allowed));
        assert!(!source_allowed(ip("10.0.0.1"), &allowed));
    }

    #[test]
    fn mapped_ipv4_matches_ipv4_cidrs() {
        assert!(source_allowed(ip("::ffff:10.1.2.3"), &nets(&["10.0.0.0/8"])));
        assert!(!source_allowed(ip("::ffff:11.1.2.3"), &nets(&["10.0.0.0/8"])));
    }

    #[test]
    fn host_strings_parse() {
        assert_eq!(parse_client_host("127.0.0.1"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_client_host("::1"), Ok(ip("::1")));
        assert_eq!(parse_client_host(" 10.0.0.1:4222 "), Ok(ip("10.0.0.1")));
        assert_eq!(parse_client_host("[2001:db8::1]:4222"), Ok(ip("2001:db8::1")));
        assert_eq!(parse_client_host("[2001:db8::1]"), Ok(ip("2001:db8::1")));
        assert_eq!(parse_client_host("fe80::1%eth0"), Ok(ip("fe80::1")));
        assert_eq!(parse_client_host("::ffff:192.0.2.1"), Ok(ip("192.0.2.1")));
    }

    #[test]
    fn garbage_host_is_an_error() {
        for bad in ["", "localhost", "1.2.3", "300.1.1.1", "[::1", "1.2.3.4%eth0", "::1]:80"] {
            assert!(matches!(parse_client_host(bad), Err(AuthError::InvalidHost(_))), "{bad:?}");
        }
        let long = "x".repeat(1000);
        assert_eq!(parse_client_host(&long), Err(AuthError::InvalidHost("x".repeat(MAX_ECHO))));
    }
}
