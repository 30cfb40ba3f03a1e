//! Auth-callout claims: the request nats-server sends and the response the callout returns.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

use super::json::is_zero;
use super::sealed::Hooks;
use super::validate::{is_key, FindingKind, Validation};
use super::{claim_body, generic_mut, ClaimType, Claims};

/// The `aud` of every callout request.
pub const AUTH_REQUEST_AUDIENCE: &str = "nats-authorization-request";

/// The server asking (Go's `ServerID`). `name`, `host` and `id` are always written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerId {
    /// Server name.
    pub name: String,
    /// Listen host.
    pub host: String,
    /// Server public key (`N…`); equals the request's `iss`.
    pub id: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Server tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The server's curve key, present when requests are encrypted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub xkey: String,
}

/// The connecting client (Go's `ClientInformation`); every key may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    /// Client address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Client id on the server (for kicks).
    #[serde(skip_serializing_if = "is_zero")]
    pub id: u64,
    /// User the client presented.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Connection name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Name tag.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    /// `Client`, `Leafnode`, …
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `nats`, `mqtt`, `websocket`, …
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub client_type: String,
    /// MQTT client id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mqtt_id: String,
    /// The nonce the client signed (for nkey authentication).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
}

/// The client's CONNECT options (Go's `ConnectOptions`). `protocol` is always written.
///
/// `Debug` redacts `pass` and `auth_token`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectOptions {
    /// User JWT the client sent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    /// Public nkey the client sent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nkey: String,
    /// Signature over `client_info.nonce` (base64url).
    #[serde(rename = "sig", skip_serializing_if = "String::is_empty")]
    pub signed_nonce: String,
    /// Token (a secret).
    #[serde(rename = "auth_token", skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// User name.
    #[serde(rename = "user", skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password (a secret).
    #[serde(rename = "pass", skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// Connection name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client language.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    /// Client version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Protocol level.
    pub protocol: i64,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ConnectOptions")
            .field("jwt", &self.jwt)
            .field("nkey", &self.nkey)
            .field("sig", &self.signed_nonce)
            .field("auth_token", &redact(&self.token))
            .field("user", &self.username)
            .field("pass", &redact(&self.password))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// TLS state of the client (Go's `ClientTLS`); the server fills `certs` or `verified_chains`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTls {
    /// TLS version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Cipher suite.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cipher: String,
    /// Unverified client certificates (PEM).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<String>,
    /// Verified chains (PEM), the client certificate first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified_chains: Vec<Vec<String>>,
}

/// The `nats` body of a callout request (Go's `AuthorizationRequest`), signed by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationRequestClaims {
    /// The server asking.
    #[serde(rename = "server_id")]
    pub server: ServerId,
    /// The fresh user key the server made for this connection; the response `sub` and the
    /// user JWT `sub` must equal it.
    pub user_nkey: String,
    /// The client.
    #[serde(rename = "client_info")]
    pub client: ClientInfo,
    /// The CONNECT options.
    pub connect_opts: ConnectOptions,
    /// TLS state, when the client uses TLS.
    #[serde(rename = "client_tls", skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    /// Request nonce.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_nonce: String,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"authorization_request"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(
    AuthorizationRequestClaims,
    ClaimType::AuthorizationRequest,
    issuers: [KeyKind::Server],
    subjects: [KeyKind::Account]
);

impl Hooks for AuthorizationRequestClaims {
    generic_mut!();

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        let key = &claims.nats.user_nkey;
        if key.is_empty() {
            v.error(FindingKind::InvalidUserNkey, "user nkey is required".into());
        } else if !is_key(key, KeyKind::User) {
            v.error(
                FindingKind::InvalidUserNkey,
                format!("user nkey {key:?} is not a user public key"),
            );
        }
    }
}

/// The `nats` body of a callout response (Go's `AuthorizationResponse`): exactly one of `jwt`
/// and `error`. Top level: `sub` = the request's `user_nkey`, `aud` = the server id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationResponseClaims {
    /// The minted user JWT.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    /// Why the client is refused (logged by the server, not shown to the client).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The callout account when a signing key signs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"authorization_response"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(
    AuthorizationResponseClaims,
    ClaimType::AuthorizationResponse,
    issuers: [KeyKind::Account],
    subjects: [KeyKind::User]
);

impl AuthorizationResponseClaims {
    /// A response admitting the client with `jwt`.
    pub fn success(jwt: impl Into<String>) -> Self {
        AuthorizationResponseClaims { jwt: jwt.into(), ..Default::default() }
    }

    /// A response refusing the client with `error`.
    pub fn failure(error: impl Into<String>) -> Self {
        AuthorizationResponseClaims { error: error.into(), ..Default::default() }
    }

    /// Sets `issuer_account` (needed when a signing key of the callout account signs).
    pub fn with_issuer_account(mut self, account: impl Into<String>) -> Self {
        self.issuer_account = account.into();
        self
    }
}

impl Hooks for AuthorizationResponseClaims {
    generic_mut!();

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        let r = &claims.nats;
        if !is_key(&claims.sub, KeyKind::User) {
            v.error(
                FindingKind::InvalidSubjectKey,
                format!("subject {:?} is not a user public key", claims.sub),
            );
        }
        if !is_key(&claims.aud, KeyKind::Server) {
            v.error(
                FindingKind::InvalidAudience,
                format!("audience {:?} is not a server public key", claims.aud),
            );
        }
        match (r.jwt.is_empty(), r.error.is_empty()) {
            (true, true) => {
                v.error(FindingKind::MissingJwtOrError, "response has neither jwt nor error".into())
            }
            (false, false) => {
                v.error(FindingKind::JwtAndError, "response has both jwt and error".into())
            }
            _ => {}
        }
        if !r.issuer_account.is_empty() && !is_key(&r.issuer_account, KeyKind::Account) {
            v.error(
                FindingKind::InvalidIssuerAccount,
                format!("issuer_account {:?} is not an account public key", r.issuer_account),
            );
        }
    }
}
