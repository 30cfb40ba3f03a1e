//! `http_trusted_proxies`: the reverse proxies whose `X-Forwarded-For` header is believed.

use super::ConfigError;

/// The networks of `raw` (CIDRs, or single addresses taken as /32 or /128).
pub(super) fn parse(raw: Option<Vec<String>>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    raw.unwrap_or_default()
        .iter()
        .map(|text| {
            let t = text.trim();
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    name: "http_trusted_proxies",
                    value: format!("{text:?}"),
                    message: "not a network (CIDR such as 10.0.0.0/8) or an IP address",
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_addresses_parse_and_garbage_is_refused() {
        let got = parse(Some(vec!["10.0.0.0/8".into(), "::1".into()])).unwrap();
        assert_eq!(got, ["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(parse(None).unwrap().is_empty());
        let bad = parse(Some(vec!["10.0.0.0/99".into()]));
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "http_trusted_proxies", .. })));
    }
}
