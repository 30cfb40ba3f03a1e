//! Under attack: a stranger guessing a user's password cannot lock that user out from another
//! host, the attacking host itself is refused with the reason in the advisory, and a minted JWT
//! too large for the server's max payload is answered with an error instead of a stalled login.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pbn::CalloutError;
use pbn::{ListPatch, RolePatch};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{password, setup, PW};
use crate::support::deploy::{callout_reason, ClientEvents, DeployOptions, Deployment, WAIT};

/// Logs in as `user` from the loopback address `from` (the client host nats-server reports
/// and the throttle counts) over a raw socket; `Ok` once a round trip shows the connection
/// works, else the `-ERR` line.
pub(super) async fn login_from(
    d: &Deployment,
    from: Ipv4Addr,
    user: &str,
    pass: &str,
) -> Result<(), String> {
    raw_login(d.server(0).port(), from, user, pass, WAIT).await
}

/// [`login_from`] against the server on loopback port `port`, waiting at most `wait` for each
/// line of the server's answer.
pub(crate) async fn raw_login(
    port: u16,
    from: Ipv4Addr,
    user: &str,
    pass: &str,
    wait: Duration,
) -> Result<(), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::from((from, 0))).map_err(|e| e.to_string())?;
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
    let mut conn = BufReader::new(stream);
    let connect = serde_json::json!({
        "verbose": false, "pedantic": false, "user": user, "pass": pass,
        "lang": "raw", "version": "0", "protocol": 1, "headers": true,
    });
    let script = format!("CONNECT {connect}\r\nPING\r\nSUB app.raw 1\r\nPUB app.raw 2\r\nhi\r\n");
    conn.get_mut().write_all(script.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(wait, conn.read_line(&mut line)).await;
        match read.map_err(|_| "no answer")?.map_err(|e| e.to_string())? {
            0 => return Err("connection closed".into()),
            _ if line.starts_with("-ERR") => return Err(line.trim().into()),
            _ if line.starts_with("MSG app.raw 1 2") => return Ok(()),
            _ => {} // INFO, PONG, PING
        }
    }
}

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const CAROL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[tokio::test(flavor = "multi_thread")]
async fn an_attack_from_one_host_does_not_lock_the_user_out_of_another() {
    let mut opts = DeployOptions::default();
    opts.pipeline.throttle_max_failures = 3;
    opts.pipeline.throttle_user_budget = 3;
    let mut d = setup(opts);
    d.add_user("carol", "APP", "app", PW);
    d.start().await;
    let mut errors = d.auth_errors(0).await;
    let bad = callout_reason(&CalloutError::BadPassword("carol".into()));
    // More guesses than both the per-(user, host) limit and the per-user budget.
    for i in 0..6 {
        let refused = login_from(&d, ATTACKER, "carol", &format!("guess{i}")).await;
        assert!(refused.is_err(), "a wrong password was admitted");
        let reason = errors.next_reason().await;
        if i < 3 {
            assert_eq!(reason, bad);
        } else {
            assert!(reason.starts_with(&callout_reason(&"login throttled")), "{reason}");
        }
    }
    // The attacking host is refused even with the right password, and the advisory says why.
    assert!(login_from(&d, ATTACKER, "carol", PW).await.is_err(), "the attacker's host got in");
    let reason = errors.next_reason().await;
    let throttled =
        format!("login throttled: too many failed logins for user \"carol\" from {ATTACKER}");
    assert!(reason.starts_with(&callout_reason(&throttled)), "{reason}");
    // Carol on her own host is admitted, again and again, while the attack goes on.
    for i in 0..3 {
        login_from(&d, CAROL, "carol", PW).await.expect("carol from a clean host is admitted");
        assert!(login_from(&d, ATTACKER, "carol", &format!("more{i}")).await.is_err());
        errors.next_reason().await;
    }
    // Other users behind the attacking host still get in (below the host limit).
    d.login("alice", PW, &ClientEvents::new()).await;
}

/// Roles whose minted JWT is larger than the server's max payload (set low here): the login is
/// refused at once with the size in the advisory, not left to hit the auth timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_max_payload_is_answered_with_an_error() {
    let opts =
        DeployOptions { extra_config: "max_payload: 16384\n".into(), ..DeployOptions::default() };
    let mut d = setup(opts);
    let subjects: Vec<String> =
        (0..300).map(|i| format!("big.{i:04}.{}", "s".repeat(60))).collect();
    let role = RolePatch { sub_allow: ListPatch::Set(subjects), ..RolePatch::default() };
    d.add_role("huge", role);
    d.add_user("hugo", "APP", "huge", PW);
    d.start().await;
    let mut errors = d.auth_errors(0).await;
    let started = std::time::Instant::now();
    let refused = d.connect(0, password("hugo", PW), &ClientEvents::new()).await;
    assert!(refused.is_err(), "a login whose JWT cannot be sent was admitted");
    let reason = errors.next_reason().await;
    let prefix = callout_reason(&"response for user \"hugo\" is ");
    assert!(
        reason.starts_with(&prefix) && reason.ends_with("over the server's max payload of 16384"),
        "{reason}"
    );
    assert!(
        started.elapsed() < DeployOptions::default().auth_timeout,
        "the login waited for the auth timeout"
    );
    // Others are unaffected.
    d.login("alice", PW, &ClientEvents::new()).await;
}
