//! Config parsing and checking.

use super::*;

#[test]
fn defaults_are_valid() {
    let s = Settings::resolve(None, RawConfig::default(), RawConfig::default()).unwrap();
    assert_eq!(s.servers, vec!["nats://127.0.0.1:4222".to_string()]);
    assert_eq!(s.callout.queue_group, "pbn");
    assert!(s.publisher.backoff_base <= s.publisher.backoff_max);
}

#[test]
fn audit_retention_defaults_to_90_days_and_is_set_by_the_file() {
    let defaults = Settings::resolve(None, RawConfig::default(), RawConfig::default()).unwrap();
    assert_eq!(defaults.audit_retention, crate::admin::audit::DEFAULT_RETENTION);
    let raw: RawConfig = toml::from_str("audit_retention = \"30d\"\n").unwrap();
    let s = Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default()).unwrap();
    assert_eq!(s.audit_retention, Duration::from_secs(30 * 24 * 3600));
}

#[test]
fn the_connection_section_sets_the_failback_timers() {
    let defaults = Settings::resolve(None, RawConfig::default(), RawConfig::default()).unwrap();
    assert_eq!(defaults.connection.failback_check_interval, Duration::from_secs(5));
    assert_eq!(defaults.connection.failback_healthy_checks, 3);
    let text = "[connection]\nfailback_check_interval = \"200ms\"\nfailback_healthy_checks = 2\n";
    let raw: RawConfig = toml::from_str(text).unwrap();
    let s = Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default()).unwrap();
    assert_eq!(s.connection.failback_check_interval, Duration::from_millis(200));
    assert_eq!(s.connection.failback_healthy_checks, 2);
    let raw: RawConfig = toml::from_str("[connection]\nfailback_healthy_checks = 0\n").unwrap();
    let err = Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default());
    let name = "connection.failback_healthy_checks";
    assert!(matches!(err, Err(ConfigError::Invalid { name: n, .. }) if n == name));
}

#[test]
fn flags_beat_env_beat_file() {
    let file: RawConfig = toml::from_str(
        "store = \"file.redb\"\nservers = [\"nats://a:1\"]\n[callout]\nmax_concurrent = 3\n",
    )
    .unwrap();
    let env = RawConfig::from_env([("PBN_STORE".to_string(), "env.redb".to_string())]).unwrap();
    let flags = RawConfig { servers: Some(vec!["nats://b:2".into()]), ..Default::default() };
    let s = Settings::resolve(Some(file), env, flags).unwrap();
    assert_eq!(s.store, PathBuf::from("env.redb"));
    assert_eq!(s.servers, vec!["nats://b:2".to_string()]);
    assert_eq!(s.callout.max_concurrent, 3);
}

#[test]
fn bad_values_are_rejected() {
    let raw: RawConfig = toml::from_str("[callout]\nmax_concurrent = 0\n").unwrap();
    let err = Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default());
    assert!(matches!(err, Err(ConfigError::Invalid { name: "callout.max_concurrent", .. })));
    let flags = RawConfig { servers: Some(vec!["http://x".into()]), ..Default::default() };
    let err = Settings::resolve(None, RawConfig::default(), flags);
    assert!(matches!(err, Err(ConfigError::Invalid { name: "servers", .. })));
    assert!(toml::from_str::<RawConfig>("bogus = 1").is_err());
    let raw: RawConfig = toml::from_str("[callout]\nthrottle_max_failures = 500\n").unwrap();
    let err = Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default());
    assert!(matches!(err, Err(ConfigError::Invalid { name: "callout.throttle_max_failures", .. })));
    let env = RawConfig::from_env([("PBN_DEFAULT_JWT_TTL".into(), "soon".into())]);
    assert!(matches!(env, Err(ConfigError::Env { .. })));
}

#[test]
fn tls_ca_must_be_a_readable_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let env = |v: &Path| RawConfig::from_env([("PBN_TLS_CA".into(), v.display().to_string())]);
    let err = Settings::resolve(None, env(&ca).unwrap(), RawConfig::default());
    assert!(matches!(err, Err(ConfigError::Read { .. })), "{err:?}");
    std::fs::write(&ca, "junk").unwrap();
    let err = Settings::resolve(None, env(&ca).unwrap(), RawConfig::default());
    assert!(matches!(err, Err(ConfigError::Invalid { name: "tls_ca", .. })), "{err:?}");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nx\n").unwrap();
    let s = Settings::resolve(None, env(&ca).unwrap(), RawConfig::default()).unwrap();
    assert_eq!(s.tls_ca, Some(ca));
    let shared: RawConfig = toml::from_str("[nats_conf]\nlisten = \"0.0.0.0:4222\"\n").unwrap();
    assert!(Settings::resolve(Some(shared), RawConfig::default(), RawConfig::default()).is_ok());
}

#[test]
fn replicated_mode_is_off_unless_asked_and_its_copies_are_checked() {
    let none = RawConfig::default;
    let s = Settings::resolve(None, none(), none()).unwrap();
    assert_eq!(s.replica, None, "the embedded store alone by default");
    let file: RawConfig = toml::from_str("replicated = true\nlog_replicas = 3\n").unwrap();
    let s = Settings::resolve(Some(file), none(), none()).unwrap();
    assert_eq!(s.replica, Some(ReplicaSettings { log_replicas: 3, ..ReplicaSettings::default() }));
    let env = RawConfig::from_env([("PBN_REPLICATED".to_string(), "1".to_string())]).unwrap();
    let s = Settings::resolve(None, env, none()).unwrap();
    assert_eq!(s.replica, Some(ReplicaSettings::default()));
    let off = RawConfig::from_env([("PBN_REPLICATED".to_string(), "0".to_string())]).unwrap();
    let flag = RawConfig { replicated: Some(true), ..RawConfig::default() };
    assert!(Settings::resolve(None, off, flag).unwrap().replica.is_some(), "the flag wins");
    let bad = RawConfig::from_env([("PBN_REPLICATED".to_string(), "maybe".to_string())]);
    assert!(matches!(bad, Err(ConfigError::Env { .. })));
    let zero: RawConfig = toml::from_str("replicated = true\nlog_replicas = 0\n").unwrap();
    let err = Settings::resolve(Some(zero), none(), none());
    assert!(matches!(err, Err(ConfigError::Invalid { name: "log_replicas", .. })), "{err:?}");
}
