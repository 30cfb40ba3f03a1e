//! The HTTP monitoring endpoint of a nats-server on loopback: one GET parsed as JSON
//! ([`monitor`]), and the questions the harness asks it (identity, routes, JetStream).

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{NatsdError, IO_TIMEOUT, POLL};

/// GETs `path` from the monitoring endpoint on loopback port `http` and parses the JSON body.
pub async fn monitor(http: u16, path: &str) -> Result<serde_json::Value, NatsdError> {
    let url = format!("http://127.0.0.1:{http}{path}");
    let fail = |reason: String| NatsdError::Monitor { url: url.clone(), reason };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, http)).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, io::Error>(raw)
    };
    let raw = tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|_| fail(format!("no response within {IO_TIMEOUT:?}")))?
        .map_err(|err| fail(err.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| fail("response has no header end".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("status {status:?}, body {body:?}")));
    }
    serde_json::from_str(body).map_err(|err| fail(format!("body is not json: {err}")))
}

/// Who a running server is, from its `/varz`: the id that `$SYS.REQ.SERVER.<id>.*` requests and
/// connect events name, and its configured `server_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The server's public key (`server_id`).
    pub id: String,
    /// Its `server_name` (the id when the config names none).
    pub name: String,
}

/// The identity of the server whose monitoring port is `http`.
pub async fn identity(http: u16) -> Result<ServerIdentity, NatsdError> {
    let varz = monitor(http, "/varz").await?;
    let field = |key: &str| varz[key].as_str().map(str::to_owned);
    match (field("server_id"), field("server_name")) {
        (Some(id), Some(name)) => Ok(ServerIdentity { id, name }),
        _ => Err(NatsdError::Monitor {
            url: format!("http://127.0.0.1:{http}/varz"),
            reason: "no server_id or server_name".into(),
        }),
    }
}

/// How many distinct peers the server whose monitoring port is `http` has routes to, from its
/// `/routez` (servers, not connections: nats-server pools several connections per peer).
pub async fn route_peers(http: u16) -> Result<usize, NatsdError> {
    let routez = monitor(http, "/routez").await?;
    let peers: std::collections::BTreeSet<&str> = routez["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|route| route["remote_id"].as_str())
        .collect();
    Ok(peers.len())
}

/// Whether JetStream on the server whose monitoring port is `http` is up and, in a cluster,
/// knows its meta leader (`/healthz?js-enabled-only=true` answers 200, and `/jsz` names a
/// leader when clustered): before that, stream and KV requests fail with "no responders" or
/// "insufficient resources".
pub async fn jetstream_ready(http: u16) -> Result<bool, NatsdError> {
    if monitor(http, "/healthz?js-enabled-only=true").await.is_err() {
        return Ok(false);
    }
    let jsz = monitor(http, "/jsz").await?;
    let clustered = jsz["meta_cluster"].is_object();
    let leader = jsz["meta_cluster"]["leader"].as_str().is_some_and(|l| !l.is_empty());
    Ok(!jsz["disabled"].as_bool().unwrap_or(false) && (!clustered || leader))
}

/// Polls `check` on the server whose monitoring port is `http` until it holds, at most
/// `timeout`; monitoring errors count as "not yet" (a restarting server does not answer).
pub async fn wait_for<F, Fut>(
    http: u16,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), NatsdError>
where
    F: FnMut(u16) -> Fut,
    Fut: std::future::Future<Output = Result<bool, NatsdError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check(http).await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NatsdError::Monitor {
                url: format!("http://127.0.0.1:{http}"),
                reason: format!("{what} not reached within {timeout:?}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
