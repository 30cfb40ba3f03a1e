//! Production files from `pbn nats-conf` (TLS with a CA made here, monitoring, one file per
//! server of a cluster with real routes), run by nats-server exactly as written (the harness
//! passes no ports), with `pbn serve` as the real binary; and `pbn nats-conf --server` fetching
//! the same data from the service that holds the store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{Client, ConnectError, ConnectOptions};
use futures::StreamExt;

use super::{assert_config_valid, read, Deployment, WAIT};
use crate::support::pbn::{Pbn, PbnChild};
use crate::support::{free_port, wait_until, wait_until_async, Cluster, Deadline, NatsServer};

/// How long `pbn serve` may take to connect and subscribe the callout (a login that has no
/// callout yet waits out the auth timeout before it fails).
const SERVE_WAIT: Duration = Duration::from_secs(40);
const PASSWORD: &str = "correct horse battery staple";

/// A CA and a server certificate for `localhost` and 127.0.0.1, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "pbn test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signed ca");
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let issuer = Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        let pki =
            Pki { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("key.pem") };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write ca");
        std::fs::write(&pki.cert, cert.pem()).expect("write cert");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }
}

/// Account `app`, role `all` and user `alice` with [`PASSWORD`].
fn app_with_password_user(d: &Deployment) {
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "all"]);
    let add = ["user", "add", "alice", "--account", "app", "--role", "all", "--password-stdin"];
    Pbn::new(["admin", "--store"]).args([&d.store]).args(add).stdin(PASSWORD).run().success();
}

/// `pbn nats-conf --store S --out DIR ARGS...`; returns the file, checked by `nats-server -t`.
#[track_caller]
fn nats_conf(d: &Deployment, out: &Path, args: &[&str]) -> PathBuf {
    let cmd = Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]).args([out]);
    cmd.args(args.iter().copied()).run().success();
    let file = out.join("nats.conf");
    assert_config_valid(&file);
    file
}

/// Starts a server on a rendered file as written.
async fn start_as_written(file: &Path, port: u16, http: u16) -> NatsServer {
    let builder = NatsServer::builder(&read(file)).port(port).http_port(http);
    builder.config_ports().start().await
}

/// `pbn serve --store S --server URL` as a child process, with `env` set.
fn spawn_serve(d: &Deployment, url: &str, env: &[(&str, &Path)]) -> PbnChild {
    let mut cmd = Pbn::new(["serve", "--store"]).args([&d.store]).args(["--server", url]);
    cmd = cmd.env("PBN_LOG", "info");
    for (k, v) in env {
        cmd = cmd.env(*k, *v);
    }
    cmd.spawn_logged(&d.dir().join("serve.log"))
}

/// A user/password login at `url`, trusting `ca` (and requiring TLS) when given.
async fn login(url: &str, ca: Option<&Path>) -> Result<Client, ConnectError> {
    let mut opts = ConnectOptions::with_user_and_password("alice".into(), PASSWORD.into())
        .connection_timeout(Duration::from_secs(8));
    if let Some(ca) = ca {
        opts = opts.add_root_certificates(ca.to_path_buf()).require_tls(true);
    }
    opts.connect(url).await
}

/// Waits until `serve` has subscribed the callout (its log says so).
async fn wait_serving(serve: &PbnChild) {
    wait_until(SERVE_WAIT, "pbn serve to subscribe the callout", || {
        serve.log().contains("callout subscribed")
    })
    .await;
}

/// A publish/subscribe round trip on `client` within `timeout`.
async fn round_trip(client: &Client, timeout: Duration) -> bool {
    let exchange = async {
        let mut sub = client.subscribe("greet.alice").await.ok()?;
        client.publish("greet.alice", "hi".into()).await.ok()?;
        sub.next().await
    };
    let got = tokio::time::timeout(timeout, exchange).await.ok().flatten();
    got.is_some_and(|msg| msg.payload.as_ref() == b"hi")
}

/// Logs in through the callout and does a round trip; retried with a fresh connection until
/// the deadline, since the callout subscription reaches every server of a cluster only after
/// its interest has propagated over the routes.
async fn login_and_round_trip(url: &str, ca: Option<&Path>) {
    let deadline = Deadline::after(SERVE_WAIT, format!("a callout login and round trip at {url}"));
    loop {
        if let Ok(client) = login(url, ca).await {
            if round_trip(&client, Duration::from_secs(2)).await {
                return;
            }
        }
        deadline.tick().await;
    }
}

#[tokio::test]
async fn a_tls_deployment_verifies_the_server_and_logs_in_through_the_callout() {
    let d = Deployment::init();
    app_with_password_user(&d);
    let pki = Pki::make(d.dir());
    let (port, http) = (free_port(), free_port());
    let (listen, http_addr) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{http}"));
    let file = nats_conf(
        &d,
        &d.dir().join("conf"),
        &["--listen", &listen, "--http", &http_addr, "--tls-timeout", "1s"]
            .into_iter()
            .chain(["--tls-cert", pki.cert.to_str().unwrap(), "--tls-key"])
            .chain([pki.key.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let text = read(&file);
    assert!(text.contains(&format!("http: \"{http_addr}\"")), "{text}");
    let server = start_as_written(&file, port, http).await;
    let varz = server.monitor("/varz").await;
    assert_eq!(varz["tls_required"], true, "{varz}");
    assert_eq!(varz["tls_timeout"], 1.0, "{varz}");

    let url = format!("tls://127.0.0.1:{port}");
    let serve = spawn_serve(&d, &url, &[("PBN_TLS_CA", &pki.ca)]);
    wait_serving(&serve).await;
    login_and_round_trip(&url, Some(&pki.ca)).await;
    // A client that does not trust the CA cannot even start the handshake's login.
    let err = login(&url, None).await.expect_err("an unknown CA is refused");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn three_servers_with_real_routes_form_a_cluster_and_admit_callout_logins() {
    let d = Deployment::init();
    app_with_password_user(&d);
    let ports: Vec<[u16; 3]> = (0..3).map(|_| [free_port(), free_port(), free_port()]).collect();
    let routes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{}", p[1])).collect();
    let routes = routes.join(",");
    let mut nodes = Vec::new();
    for (i, [client, route, http]) in ports.iter().copied().enumerate() {
        let name = format!("pbn-{}", i + 1);
        let out = d.dir().join(&name);
        let (listen, cl, mon) = (
            format!("127.0.0.1:{client}"),
            format!("127.0.0.1:{route}"),
            format!("127.0.0.1:{http}"),
        );
        let file = nats_conf(
            &d,
            &out,
            &["--server-name", &name, "--listen", &listen, "--http", &mon]
                .into_iter()
                .chain(["--cluster-name", "prod", "--cluster-listen", &cl, "--routes", &routes])
                .collect::<Vec<_>>(),
        );
        nodes.push(start_as_written(&file, client, http).await);
    }
    for node in &nodes {
        wait_until_async(WAIT * 3, "2 route peers on every node", || async {
            Cluster::try_route_peers(node).await.is_ok_and(|peers| peers == 2)
        })
        .await;
        assert_eq!(node.monitor("/varz").await["cluster"]["name"], "prod");
    }
    let serve = spawn_serve(&d, &nodes[0].client_url(), &[]);
    wait_serving(&serve).await;
    login_and_round_trip(&nodes[2].client_url(), None).await;
}

/// `text` with every JWT replaced by its claims less `iat` and `jti` (which change each time a
/// JWT is issued) and the sentinel's random key, so two renderings of one store compare equal.
fn without_issue_times(text: &str) -> String {
    text.split('"')
        .map(|part| {
            let pieces: Vec<&str> = part.split('.').collect();
            if !(part.starts_with("eyJ") && pieces.len() == 3) {
                return part.to_string();
            }
            let raw = data_encoding::BASE64URL_NOPAD.decode(pieces[1].as_bytes()).expect("b64");
            let mut claims: serde_json::Value = serde_json::from_slice(&raw).expect("claims");
            let obj = claims.as_object_mut().expect("claims object");
            obj.remove("iat");
            obj.remove("jti");
            // The sentinel is a bearer user with a fresh key at every rendering.
            if obj["nats"]["type"] == "user" {
                obj.remove("sub");
            }
            claims.to_string()
        })
        .collect::<Vec<_>>()
        .join("\"")
}

#[tokio::test]
async fn remote_nats_conf_renders_what_local_rendered_while_the_store_is_locked() {
    let d = Deployment::init();
    app_with_password_user(&d);
    let (port, http) = (free_port(), free_port());
    let resolver = d.dir().join("resolver");
    let flags = [
        "--listen".to_string(),
        format!("127.0.0.1:{port}"),
        "--http".into(),
        format!("127.0.0.1:{http}"),
        "--resolver-dir".into(),
        resolver.display().to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let local = nats_conf(&d, &d.dir().join("local"), &flags);
    let server = start_as_written(&local, port, http).await;
    let serve = spawn_serve(&d, &server.client_url(), &[]);
    wait_serving(&serve).await;
    login_and_round_trip(&server.client_url(), None).await;

    let locked = Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]);
    let out = locked.args([d.dir().join("x")]).args(flags.iter().copied()).run();
    out.code(5);
    assert!(out.stderr.contains("pbn nats-conf --server"), "{}", out.streams());

    let creds = d.dir().join("admin.creds");
    let remote_dir = d.dir().join("remote");
    let cmd = Pbn::new(["nats-conf", "--server", &server.client_url(), "--creds"]).args([&creds]);
    cmd.args(["--out"]).args([&remote_dir]).args(flags.iter().copied()).run().success();
    let remote = remote_dir.join("nats.conf");
    assert_config_valid(&remote);
    let (local, remote) = (read(&local), read(&remote));
    assert_ne!(local, remote, "fresh JWTs carry new issue times");
    let (local, remote) = (without_issue_times(&local), without_issue_times(&remote));
    for (l, r) in local.lines().zip(remote.lines()) {
        assert_eq!(l, r, "the remote rendering differs");
    }
    assert_eq!(local.lines().count(), remote.lines().count());
    drop(serve);
}

#[test]
fn every_bad_production_value_is_refused_with_exit_2_naming_it() {
    let d = Deployment::init();
    let dir = d.dir().display().to_string();
    let missing = format!("{dir}/missing.pem");
    let junk = d.dir().join("junk.pem");
    std::fs::write(&junk, "not pem").expect("write junk");
    let junk = junk.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--listen", "::1:4222"], "listen"),
        (vec!["--listen", "host:0"], "listen"),
        (vec!["--http", "127.0.0.1:70000"], "http"),
        (vec!["--http", "127.0.0.1:4222"], "http"),
        (vec!["--server-name", "two words"], "server_name"),
        (vec!["--cluster-listen", "0.0.0.0:6222"], "server_name"),
        (vec!["--server-name", "a", "--routes", "b:6222"], "cluster.listen"),
        (vec!["--server-name", "a", "--cluster-listen", "h:1", "--routes", "b"], "cluster.routes"),
        (vec!["--jetstream-max-mem", "1G"], "jetstream.store_dir"),
        (vec!["--jetstream-dir", "/js", "--jetstream-max-file", "lots"], "jetstream.max_file"),
        (vec!["--leafnodes-listen", "[zz]:7422"], "leafnodes.listen"),
        (vec!["--tls-key", &junk], "tls.cert_file"),
        (vec!["--tls-cert", &missing, "--tls-key", &junk], "tls.cert_file"),
        (vec!["--tls-cert", &junk, "--tls-key", &junk], "tls.cert_file"),
        (vec!["--tls-timeout", "0s"], "tls.cert_file"),
    ];
    for (args, name) in cases {
        let out = Pbn::new(["nats-conf", "--store"])
            .args([&d.store])
            .args(["--out", &dir])
            .args(args.iter().copied())
            .run();
        out.code(2);
        assert!(out.stderr.contains(name), "{args:?} must name {name}:\n{}", out.streams());
    }
    // TLS files are checked for what they hold; the timeouts against each other.
    let pki = Pki::make(d.dir());
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    for (extra, name) in [
        (vec!["--tls-timeout", "5s"], "auth_timeout"),
        (vec!["--tls-timeout", "10ms"], "tls.timeout"),
        (vec!["--tls-verify"], "tls.ca_file"),
        (vec!["--tls-ca", key], "tls.ca_file"),
    ] {
        let out = Pbn::new(["nats-conf", "--store"])
            .args([&d.store])
            .args(["--out", &dir, "--tls-cert", cert, "--tls-key", key])
            .args(extra.iter().copied())
            .run();
        out.code(2);
        assert!(out.stderr.contains(name), "{extra:?} must name {name}:\n{}", out.streams());
    }
    assert!(!d.dir().join("nats.conf").exists(), "nothing is written for a bad value");
}

#[test]
fn the_nats_conf_section_of_a_shared_config_file_sets_what_the_flags_set() {
    let d = Deployment::init();
    let file = d.dir().join("pbn.toml");
    let text = format!(
        "store = \"{}\"\nservers = [\"nats://127.0.0.1:4222\"]\n[callout]\nmax_concurrent = 8\n\
         [nats_conf]\nserver_name = \"n1\"\nlisten = \"[::]:4333\"\nhttp = \"127.0.0.1:8333\"\n\
         auth_timeout = \"7s\"\n[nats_conf.cluster]\nlisten = \"0.0.0.0:6333\"\n\
         routes = [\"nats-2.example.com:6333\"]\n[nats_conf.jetstream]\nstore_dir = \"/var/js\"\n\
         max_mem = \"1G\"\n[nats_conf.leafnodes]\nlisten = \"0.0.0.0:7333\"\n",
        d.store.display()
    );
    std::fs::write(&file, text).expect("write config");
    let out = d.dir().join("conf");
    let cmd = Pbn::new(["nats-conf", "--config"]).args([&file]).args(["--out"]).args([&out]);
    cmd.args(["--server-name", "n9"]).run().success();
    let conf = out.join("nats.conf");
    assert_config_valid(&conf);
    let text = read(&conf);
    for needle in [
        "server_name: \"n9\"",
        "listen: \"[::]:4333\"",
        "http: \"127.0.0.1:8333\"",
        "authorization { timeout: 7 }",
        "\"nats-route://nats-2.example.com:6333\"",
        "max_mem: 1073741824",
        "leafnodes {\n  listen: \"0.0.0.0:7333\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // A bad value in the file is refused like the same flag (`config::tests` checks that
    // `pbn serve` reads a file with this section).
    let bad = d.dir().join("bad.toml");
    std::fs::write(&bad, "[nats_conf]\nlisten = \"nowhere\"\n").expect("write");
    let out = Pbn::new(["nats-conf", "--config"]).args([&bad]).args(["--out"]).args([&out]).run();
    out.code(2);
    assert!(out.stderr.contains("listen"), "{}", out.streams());
}
