//! Claims to records: claim paths, the ordered mapping rules and the NATS user name.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::OidcError;
use crate::model::{IdentityProvider, MappingTarget, Name, NAME_MAX_LEN};

/// The claim at dotted `path` (`realm_access.roles`): each segment names a member of an
/// object. A claim whose own name holds a dot is found too when it sits at the top level.
pub fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

/// Whether `claim` is `value` or an array holding it (strings compare exactly; numbers and
/// booleans by their JSON text).
pub fn claim_matches(claim: &Value, value: &str) -> bool {
    match claim {
        Value::String(s) => s == value,
        Value::Number(_) | Value::Bool(_) => {
            serde_json::from_str::<Value>(value).is_ok_and(|v| v == *claim)
        }
        Value::Array(items) => items.iter().any(|i| !i.is_array() && claim_matches(i, value)),
        _ => false,
    }
}

/// Where `claims` land under `idp`: the first rule that matches, else the default.
pub fn target<'a>(idp: &'a IdentityProvider, claims: &Value) -> Option<&'a MappingTarget> {
    idp.mappings
        .iter()
        .find(|m| claim_at(claims, &m.claim).is_some_and(|c| claim_matches(c, &m.value)))
        .map(|m| &m.target)
        .or(idp.default.as_ref())
}

/// The NATS user name of `claims`: the claim `claim` as it is when it is a valid pbn name;
/// otherwise its characters outside `[A-Za-z0-9_-]` become `_` and a short hash of the whole
/// value is appended, so distinct values (`a.b@x`, `a_b@x`) never share a name.
pub fn user_name(claims: &Value, claim: &str) -> Result<Name, OidcError> {
    let missing = || OidcError::NoUserName { claim: claim.to_string() };
    let text = match claim_at(claims, claim).ok_or_else(missing)? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(missing()),
    };
    if let Ok(name) = Name::parse(&text) {
        return Ok(name);
    }
    let digest = Sha256::digest(text.as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = NAME_MAX_LEN - suffix.len() - 1;
    let mut base: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(keep)
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base.insert(0, 'u');
        base.truncate(keep);
    }
    Name::parse(&format!("{base}-{suffix}")).map_err(|_| missing())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClaimMapping, KeySource};
    use serde_json::json;

    fn target_of(account: &str, role: &str) -> MappingTarget {
        MappingTarget { account: Name::parse(account).unwrap(), role: Name::parse(role).unwrap() }
    }

    fn idp(rules: &[(&str, &str, &str)], default: Option<MappingTarget>) -> IdentityProvider {
        IdentityProvider {
            name: Name::parse("kc").unwrap(),
            issuer: "https://kc".into(),
            audience: "nats".into(),
            keys: KeySource::Discovery,
            username_claim: "sub".into(),
            leeway_secs: 30,
            provision: false,
            mappings: rules
                .iter()
                .map(|(claim, value, account)| ClaimMapping {
                    claim: claim.to_string(),
                    value: value.to_string(),
                    target: target_of(account, "r"),
                })
                .collect(),
            default,
            created: 0,
            updated: 0,
        }
    }

    #[test]
    fn the_first_matching_rule_wins_over_strings_arrays_and_nested_paths() {
        let p = idp(
            &[
                ("realm_access.roles", "ops", "OPS"),
                ("groups", "dev", "DEV"),
                ("email_verified", "true", "VERIFIED"),
                ("tier", "3", "T3"),
            ],
            None,
        );
        let kc = json!({"realm_access": {"roles": ["offline_access", "ops"]}, "groups": ["dev"]});
        assert_eq!(target(&p, &kc).unwrap().account.as_str(), "OPS", "first rule first");
        let dev = json!({"groups": ["staff", "dev"]});
        assert_eq!(target(&p, &dev).unwrap().account.as_str(), "DEV");
        let plain = json!({"groups": "dev"});
        assert_eq!(target(&p, &plain).unwrap().account.as_str(), "DEV", "a plain string");
        assert_eq!(
            target(&p, &json!({"email_verified": true})).unwrap().account.as_str(),
            "VERIFIED"
        );
        assert_eq!(target(&p, &json!({"tier": 3})).unwrap().account.as_str(), "T3");
        assert!(target(&p, &json!({"groups": ["devs"], "realm_access": {"roles": "x"}})).is_none());
        assert!(target(&p, &json!({"groups": [["dev"]]})).is_none(), "no nested arrays");
        assert!(target(&p, &json!({"realm_access": ["ops"]})).is_none(), "path must be an object");
        let with_default = idp(&[("groups", "dev", "DEV")], Some(target_of("GUEST", "r")));
        assert_eq!(target(&with_default, &json!({})).unwrap().account.as_str(), "GUEST");
    }

    #[test]
    fn user_names_come_from_the_claim_and_stay_distinct() {
        let c = json!({"sub": "4b7c-99", "email": "alice.b@example.com", "alt": "alice_b@example.com",
                       "num": 42, "empty": "", "obj": {"x": 1}, "deep": {"name": "dora"}});
        assert_eq!(user_name(&c, "sub").unwrap().as_str(), "4b7c-99");
        assert_eq!(user_name(&c, "num").unwrap().as_str(), "42");
        assert_eq!(user_name(&c, "deep.name").unwrap().as_str(), "dora");
        let a = user_name(&c, "email").unwrap();
        let b = user_name(&c, "alt").unwrap();
        assert!(a.as_str().starts_with("alice_b_example_com-"), "{a:?}");
        assert_ne!(a, b, "sanitized values keep distinct names");
        let long = json!({"sub": format!("_{}", "x".repeat(200))});
        assert!(user_name(&long, "sub").unwrap().as_str().len() <= NAME_MAX_LEN);
        for missing in ["nope", "empty", "obj"] {
            assert!(
                matches!(user_name(&c, missing), Err(OidcError::NoUserName { .. })),
                "{missing}"
            );
        }
    }
}
