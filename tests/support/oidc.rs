//! A real OpenID Connect provider for the OIDC login tests: the `oidc-provider` npm package
//! running `tests/oidc/provider.mjs` (installed into `.tools/oidc-provider` by
//! `scripts/install-oidc-provider.sh`), on a loopback port, killed on drop.
//!
//! The provider issues JWT access tokens by the client-credentials grant; see the script for
//! its clients (alice, bob, carol) and resources.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, process, Deadline};

/// How long the provider may take to answer its discovery document after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One provider process.
pub struct OidcProvider {
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
}

/// Where the install script puts the provider.
fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir() && dir.join("provider.mjs").is_file(),
        "oidc-provider is missing from {}: run scripts/install-oidc-provider.sh",
        dir.display()
    );
    dir
}

impl OidcProvider {
    /// Starts a provider whose key ids start with `prefix`, on a free port.
    pub async fn start(prefix: &str) -> OidcProvider {
        let mut p = OidcProvider { port: free_port(), child: None, http: reqwest::Client::new() };
        p.spawn(prefix).await;
        p
    }

    async fn spawn(&mut self, prefix: &str) {
        let dir = dir();
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir)
            .arg("provider.mjs")
            .arg(self.port.to_string())
            .arg(prefix)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(process::spawn(cmd).expect("spawn node for oidc-provider"));
        let deadline =
            Deadline::after(START_TIMEOUT, format!("oidc-provider on port {}", self.port));
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("oidc-provider exited during startup: {status}");
            }
            deadline.tick().await;
        }
    }

    /// The issuer URL (`iss` of its tokens).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh access token for client `client` (alice, bob, carol) and resource `resource`.
    pub async fn token(&self, client: &str, resource: &str) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", &format!("secret-{client}")),
            ("resource", resource),
        ];
        let resp = self
            .http
            .post(format!("{}/token", self.issuer()))
            .form(&form)
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.expect("token response is JSON");
        assert!(status.is_success(), "token request refused: {body}");
        body["access_token"].as_str().expect("an access_token").to_string()
    }

    /// The provider's published JWKS.
    pub async fn jwks(&self) -> serde_json::Value {
        let url = format!("{}/jwks", self.issuer());
        self.http.get(url).send().await.expect("jwks").json().await.expect("jwks is JSON")
    }

    /// Stops the provider (it can no longer be reached).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (same issuer) with new keys whose ids start with
    /// `prefix`: a key rotation.
    pub async fn restart(&mut self, prefix: &str) {
        self.stop();
        self.spawn(prefix).await;
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
