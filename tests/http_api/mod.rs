//! The HTTP API (`/api/v1`) of the real service (`pbn::run_with_store` in this process, with
//! `--http`) on a real nats-server: every call made over a TCP socket as a client would, with
//! bearer tokens of named admins.

mod api;
mod auth;
mod every_route;
mod me;

use std::path::PathBuf;
use std::time::Duration;

use pbn::{AdminAdd, AdminTokenAdd, Context, ListPatch, RawConfig, Request, Response, RolePatch};
use pbn::{OperatorShow, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::deploy::{DeployOptions, Deployment, USER_INFO_SUBJECT};
use crate::support::{free_port, Deadline};

/// Password of every test user.
pub(crate) const PW: &str = "correct-horse-battery-staple";
/// How long one HTTP call may take (a change waits for its push).
const CALL: Duration = Duration::from_secs(20);

/// A role publishing and subscribing on `prefix.>`, plus what a request/reply needs.
fn role_on(prefix: &str) -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec![format!("{prefix}.>"), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec![format!("{prefix}.>"), "_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// The service with its HTTP listener, accounts APP and OTHER, role `app`, user `alice`
/// (APP), and admins `ops` (operator), `tenant` (account:APP) and `reader` (read-only).
pub(crate) struct Api {
    pub(crate) d: Deployment,
    pub(crate) addr: String,
    shutdown: watch::Sender<bool>,
    service: Option<JoinHandle<Result<(), pbn::ServerError>>>,
    creds: PathBuf,
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The status line and headers, lower-cased.
    pub(crate) headers: String,
    /// The same, as sent.
    pub(crate) head: String,
    pub(crate) body: Value,
}

impl Api {
    pub(crate) async fn start() -> Api {
        Api::start_with(RawConfig::default(), true).await
    }

    /// [`Api::start`] with `config` (the address is set); `wait` for the plain-HTTP API.
    pub(crate) async fn start_with(config: RawConfig, wait: bool) -> Api {
        let mut d = Deployment::new(DeployOptions { runners: 0, ..DeployOptions::default() });
        d.add_account("APP");
        d.add_account("OTHER");
        d.add_role("app", role_on("app"));
        d.add_user("alice", "APP", "app", PW);
        d.add_user("olga", "OTHER", "app", PW);
        for (name, scope, read_only) in [
            ("ops", "operator", false),
            ("tenant", "account:APP", false),
            ("reader", "operator", true),
        ] {
            let add = AdminAdd {
                name: name.into(),
                scope: Some(scope.into()),
                read_only,
                expires_secs: None,
            };
            d.admin(Request::AdminAdd(add));
        }
        d.start().await;
        let dir = d.store().path().parent().expect("a temp dir").to_path_buf();
        let creds = dir.join("admin.creds");
        let text = pbn::admin_creds(d.store(), &Context::now()).expect("admin creds");
        std::fs::write(&creds, text).expect("write the creds");
        let addr = format!("127.0.0.1:{}", free_port());
        let settings = Settings::resolve(
            None,
            RawConfig { http: Some(addr.clone()), ..config },
            RawConfig {
                store: Some(d.store().path().to_path_buf()),
                servers: Some(vec![d.url(0)]),
                ..RawConfig::default()
            },
        )
        .expect("service settings");
        let (shutdown, rx) = watch::channel(false);
        let service = tokio::spawn(pbn::run_with_store(settings, d.store().clone(), rx));
        let api = Api { d, addr, shutdown, service: Some(service), creds };
        api.d.wait_callout_ready().await;
        if wait {
            api.wait_ready().await;
        }
        api
    }

    /// Waits until the API answers a read (the HTTP listener is up).
    async fn wait_ready(&self) {
        let token = self.token("ops");
        let deadline = Deadline::after(Duration::from_secs(30), "the HTTP API to answer");
        loop {
            if let Ok(a) = self.try_call("GET", "/api/v1/operator", Some(&token), None).await {
                if a.status == 200 {
                    return;
                }
            }
            deadline.tick().await;
        }
    }

    /// A fresh API token of admin `name`, made on the store.
    fn token(&self, name: &str) -> String {
        self.token_and_id(name).0
    }

    /// A fresh API token of admin `name` and its id.
    fn token_and_id(&self, name: &str) -> (String, String) {
        let add = AdminTokenAdd { name: name.into(), label: None, expires_secs: None };
        match self.d.admin(Request::AdminTokenAdd(add)) {
            Response::Token { token, id, .. } => (token, id),
            other => panic!("expected a token, got {other:?}"),
        }
    }

    /// `method path` with `token` and a JSON `body`; panics when no answer comes.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.try_call(method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        raw(&self.addr, request.as_bytes()).await
    }

    /// Runs `pbn admin --server URL --creds FILE ARGS…` (off the runtime: it blocks).
    pub(crate) async fn admin_cli(&self, args: &[&str]) -> crate::support::pbn::PbnOutput {
        self.admin_cli_env(args, &[]).await
    }

    /// [`Api::admin_cli`] with environment variables.
    pub(crate) async fn admin_cli_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> crate::support::pbn::PbnOutput {
        let mut pbn =
            crate::support::pbn::Pbn::new(["admin", "--server", &self.d.url(0), "--creds"])
                .args([&self.creds])
                .args(args);
        for (k, v) in env {
            pbn = pbn.env(*k, *v);
        }
        tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran")
    }

    /// Waits until the NATS admin API answers (for the CLI).
    pub(crate) async fn wait_admin_ready(&self) {
        let deadline = Deadline::after(Duration::from_secs(30), "the admin API to answer");
        loop {
            let client = pbn::AdminClient::connect(&self.d.url(0), &self.creds, CALL).await;
            if let Ok(c) = client {
                if c.call(&Request::OperatorShow(OperatorShow {})).await.is_ok() {
                    return;
                }
            }
            deadline.tick().await;
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(service) = self.service.take() {
            service.abort();
        }
    }
}

/// Sends `request` on a new connection and reads the whole answer (HTTP/1.0: the server
/// closes the connection after it).
pub(crate) async fn raw(addr: &str, request: &[u8]) -> Result<Answer, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        parse(&raw)
    };
    tokio::time::timeout(CALL, exchange).await.map_err(|_| format!("no answer within {CALL:?}"))?
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP answer")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let text = &raw[split + 4..];
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_slice(text)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(text).to_string())),
    };
    Ok(Answer { status, headers: head.to_lowercase(), head, body })
}
