//! `pbn nats-conf --cluster 3` files run as a real cluster: routes form, users log in through
//! pbn on any server, and JetStream works (R3) in pbn's own account once its JWT grants
//! JetStream limits (`pbn admin account edit AUTH --js-disk …`).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use async_nats::Client;
use pbn::{AccountEdit, LimitPatch, ListPatch, Request, RolePatch, AUTH_ACCOUNT};
use serde_json::{json, Value};

use super::{copy_store, login_options, Replica, WAIT};
use crate::support::deploy::{service_options, ClientEvents, DeployOptions, Deployment};
use crate::support::pbn::Pbn;
use crate::support::{free_port, Deadline, NatsServer};

/// A client port `p` such that the route ports `pbn nats-conf` lays out (`p+2000+i`) are free.
fn base_port(n: u16) -> u16 {
    let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
    loop {
        let base = free_port();
        if base.checked_add(2000 + n).is_some() && (0..n).all(|i| free(base + 2000 + i)) {
            return base;
        }
    }
}

/// A JetStream API request as `client`; the JSON answer, or the error it names.
async fn js(client: &Client, subject: &str, body: Value) -> Result<Value, String> {
    let reply = client.request(subject.to_string(), body.to_string().into()).await;
    let msg = reply.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&msg.payload).map_err(|e| e.to_string())?;
    match v.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(v),
    }
}

/// Creates the KV bucket `name` with 3 replicas (its stream, as the KV clients lay it out),
/// retrying while the fresh cluster places its first stream.
async fn create_bucket(client: &Client, name: &str) -> Value {
    let config = json!({
        "name": format!("KV_{name}"), "subjects": [format!("$KV.{name}.>")],
        "max_msgs_per_subject": 1, "num_replicas": 3, "storage": "file", "retention": "limits",
        "discard": "new", "allow_direct": true, "allow_rollup_hdrs": true, "deny_delete": true,
    });
    let subject = format!("$JS.API.STREAM.CREATE.KV_{name}");
    let deadline = Deadline::after(WAIT, "the R3 bucket to be created");
    loop {
        match js(client, &subject, config.clone()).await {
            Ok(info) => return info,
            Err(e) if deadline.expired() => panic!("create KV_{name}: {e}"),
            Err(_) => deadline.tick().await,
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_files_run_a_jetstream_cluster_with_logins_and_r3_kv_in_pbns_account() {
    let d = Deployment::new(DeployOptions { runners: 0, ..DeployOptions::default() });
    d.add_account("APP");
    d.add_role(
        "app",
        RolePatch { pub_allow: ListPatch::Set(vec!["app.>".into()]), ..RolePatch::default() },
    );
    d.add_user("alice", "APP", "app", super::PW);
    let limits =
        LimitPatch { js_disk: Some(1 << 30), js_memory: Some(64 << 20), ..LimitPatch::default() };
    d.admin(Request::AccountEdit(AccountEdit {
        name: AUTH_ACCOUNT.into(),
        limits,
        ..AccountEdit::default()
    }));

    let dir = d.store().path().parent().expect("temp dir").to_path_buf();
    let conf_store = dir.join("conf.redb");
    copy_store(d.store().path(), &conf_store);
    let out = dir.join("conf");
    let base = base_port(3);
    let rendered =
        Pbn::new(["nats-conf", "--cluster", "3", "--port", &base.to_string(), "--store"])
            .args([&conf_store])
            .args([std::ffi::OsStr::new("--out"), out.as_os_str()])
            .run();
    rendered.success();
    assert!(rendered.stderr.contains("account edit AUTH --js-disk"), "{}", rendered.streams());
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let text = read(&out.join(format!("pbn-{i}.conf")));
        assert!(
            text.contains(&format!(
                "store_dir: \"{}\"",
                out.join(format!("pbn-{i}")).join("js").display()
            )),
            "{text}"
        );
        // Client and monitoring ports picked by the server; the rendered route ports stand.
        nodes.push(NatsServer::builder(&text).start().await);
    }
    for node in &nodes {
        let http = node.http_port();
        pbn::natsd::wait_for(http, "2 route peers", WAIT, |h| async move {
            Ok(pbn::natsd::route_peers(h).await? == 2)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        pbn::natsd::wait_for(http, "jetstream", WAIT, pbn::natsd::jetstream_ready)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let replica_store = dir.join("serve.redb");
    copy_store(d.store().path(), &replica_store);
    let replica = Replica::serve(replica_store, nodes[0].client_url(), dir.join("serve.log"));
    replica.wait_log("callout subscribed", 1).await;

    for (i, node) in nodes.iter().enumerate() {
        let deadline = Deadline::after(WAIT, format!("alice to log in on server {i}"));
        let events = ClientEvents::new();
        loop {
            match events.attach(login_options("alice")).connect(node.client_url()).await {
                Ok(client) => {
                    client.flush().await.expect("flush");
                    break;
                }
                // Callout interest crosses the routes asynchronously after the subscription.
                Err(e) if deadline.expired() => {
                    panic!("login on server {i}: {e}\n{}", replica.log())
                }
                Err(_) => deadline.tick().await,
            }
        }
    }

    let writer = service_options(d.store(), "pbn-js-writer")
        .connect(nodes[0].client_url())
        .await
        .expect("connect");
    let info = create_bucket(&writer, "pbn").await;
    assert_eq!(info["config"]["num_replicas"], 3, "{info}");
    let ack = writer.request("$KV.pbn.greeting", "hello".into()).await.expect("put");
    let ack: Value = serde_json::from_slice(&ack.payload).expect("a pub ack");
    assert_eq!(ack["stream"], "KV_pbn", "{ack}");
    let reader = service_options(d.store(), "pbn-js-reader")
        .connect(nodes[2].client_url())
        .await
        .expect("connect");
    let deadline = Deadline::after(WAIT, "the key to be readable on another server");
    loop {
        let got = reader.request("$JS.API.DIRECT.GET.KV_pbn.$KV.pbn.greeting", "".into()).await;
        if got.as_ref().is_ok_and(|m| m.payload.as_ref() == b"hello") {
            break;
        }
        deadline.tick().await;
    }
    let stream = js(&reader, "$JS.API.STREAM.INFO.KV_pbn", json!({})).await.expect("stream info");
    let replicas = stream["cluster"]["replicas"].as_array().map_or(0, Vec::len);
    assert_eq!(replicas, 2, "a leader and two replicas: {stream}");
}
