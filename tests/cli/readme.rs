//! The README's "A first deployment by hand", command for command, with the real binaries:
//! `pbn serve` as a child process, then `pbn check` and a request/reply answered by the `worker`
//! role (which needs `--allow-responses`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::{ConnectOptions, RequestErrorKind};
use futures::StreamExt;

use super::{Deployment, WAIT};
use crate::support::pbn::{binary, Pbn};
use crate::support::{free_port, Deadline};

const PW: &str = "correct-horse-battery-staple";

/// A `pbn serve` child, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_first_deployment_by_hand_answers_a_request_as_written() {
    let d = Deployment::init();
    d.ok(&["account", "add", "APP"]);
    let role = ["role", "add", "worker", "--pub", "orders.>", "--sub", "orders.>"];
    d.ok(&[&role[..], &["--sub", "_INBOX.>", "--allow-responses"]].concat());
    Pbn::new(["admin", "--store"])
        .args([d.store.as_os_str()])
        .args(["user", "add", "alice", "--account", "APP", "--role", "worker", "--password-stdin"])
        .stdin(format!("{PW}\n"))
        .run()
        .success();
    let port = free_port();
    let server = d.start_server(port).await;
    let url = server.client_url();
    let serve = Command::new(binary())
        .args(["serve", "--store"])
        .arg(&d.store)
        .args(["--server", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pbn serve starts");
    let _serve = Serve(serve);

    let opts = || ConnectOptions::with_user_and_password("alice".into(), PW.into());
    let deadline = Deadline::after(Duration::from_secs(30), "alice to log in through pbn serve");
    let service = loop {
        match opts().connect(&url).await {
            Ok(c) => break c,
            Err(_) => deadline.tick().await,
        }
    };
    let check = Pbn::new(["check", "--server", &url, "--user", "alice", "--subject"])
        .args(["orders.check", "--password-stdin"])
        .stdin(format!("{PW}\n"));
    tokio::task::spawn_blocking(move || check.run()).await.expect("pbn check ran").success();

    let mut requests = service.subscribe("orders.new").await.expect("subscribe");
    service.flush().await.expect("flush");
    let responder = tokio::spawn(async move {
        let req = requests.next().await.expect("a request");
        let reply = req.reply.expect("a reply subject");
        service.publish(reply, "accepted".into()).await.expect("respond");
        service.flush().await.expect("flush");
    });
    let client = opts().connect(&url).await.expect("alice logs in again");
    // The responder's subscription reaches the server asynchronously: until then the request
    // gets "no responders", which is retried; any other outcome ends the loop.
    let deadline = Deadline::after(WAIT, "the responder's subscription to take effect");
    let answer = loop {
        match tokio::time::timeout(WAIT, client.request("orders.new", "order 1".into())).await {
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => deadline.tick().await,
            Ok(answer) => break answer.expect("the request is answered"),
            Err(_) => panic!("no answer within {WAIT:?}"),
        }
    };
    assert_eq!(answer.payload.as_ref(), b"accepted");
    responder.await.expect("the responder finished");
}
