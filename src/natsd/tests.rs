use std::path::Path;
use std::time::Duration;

use super::*;

/// The binary the integration tests use; these tests need a real server.
fn binary() -> PathBuf {
    find_binary(None, Path::new(env!("CARGO_MANIFEST_DIR"))).expect("nats-server is installed")
}

/// Options for a server in `dir` whose config is `config`, with picked ports.
fn options(dir: &Path, config: &str) -> Options {
    let conf = dir.join("nats.conf");
    fs::write(&conf, config).expect("write config");
    let mut opts = Options::new(&binary(), &conf, &dir.join("nats.log"));
    opts.client = Port::Pick;
    opts.http = Port::Pick;
    opts
}

#[test]
fn ports_file_json_is_parsed() {
    let json = r#"{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222/"],
                   "cluster":["nats://127.0.0.1:6222"]}"#;
    let ports = Ports::parse(json).expect("parses");
    assert_eq!(ports, Ports { client: 4222, http: Some(8222), cluster: Some(6222) });
    let bare = Ports::parse(r#"{"nats":["nats://127.0.0.1:1"]}"#).expect("parses");
    assert_eq!(bare, Ports { client: 1, http: None, cluster: None });
    assert_eq!(Ports::parse(r#"{"nats":["#), None);
    assert_eq!(Ports::parse(r#"{"monitoring":["http://127.0.0.1:8222"]}"#), None);
}

#[test]
fn a_flag_wins_over_every_other_place() {
    let flag = Path::new("/nowhere/nats-server");
    assert_eq!(find_binary(Some(flag), Path::new("/")).expect("flag"), flag);
}

#[tokio::test]
async fn the_server_picks_its_ports_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut natsd = Natsd::start(options(dir.path(), "")).await.expect("starts");
    let ports = natsd.ports().expect("ready has ports");
    assert_ne!(ports.client, 0);
    assert!(ports.http.is_some(), "monitoring was asked for");
    let varz = natsd.monitor("/varz").await.expect("varz answers on the picked port");
    assert_eq!(varz["port"].as_u64(), Some(u64::from(ports.client)));
    let first = natsd.pid();
    assert_eq!(natsd.restart().await.expect("restarts"), ports);
    assert_ne!(natsd.pid(), first);
    let status = natsd.stop().await.expect("was running");
    assert!(status.success() || status.code().is_none(), "{status}");
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, ports.client)).is_err());
    assert!(natsd.stop().await.is_none(), "a stopped server stops once");
    let left: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ports"))
        .collect();
    assert!(left.is_empty(), "ports files are removed: {left:?}");
}

#[tokio::test]
async fn a_bad_config_is_an_exit_during_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = Natsd::start(options(dir.path(), "this is { not a config")).await.unwrap_err();
    assert!(matches!(err, NatsdError::Exited { .. }), "{err}");
}

#[tokio::test]
async fn a_taken_fixed_port_is_port_in_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let mut opts = options(dir.path(), "");
    opts.client = Port::Fixed(taken.local_addr().expect("addr").port());
    let err = Natsd::start(opts).await.unwrap_err();
    assert!(matches!(err, NatsdError::PortInUse { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_never_gets_ready_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path(), "");
    // `sh -c 'sleep 30' ...` never prints the ready line.
    opts.binary = PathBuf::from("/bin/sh");
    opts.config = PathBuf::from("sleep 30");
    opts.client = Port::Config;
    opts.http = Port::Config;
    opts.startup_timeout = Duration::from_millis(200);
    let mut natsd = Natsd::spawn(opts).expect("spawns");
    let err = natsd.wait_ready().await.unwrap_err();
    assert!(matches!(err, NatsdError::NotReady { .. }), "{err}");
    assert_eq!(natsd.pid(), None, "killed");
}
