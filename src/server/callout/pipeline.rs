//! The callout pipeline: one synchronous call per request (see the module docs).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::argon::ArgonPool;
use super::authn::{authenticate, client_ip, Identity};
use super::CalloutError;
use crate::auth::oidc::{KeyCache, OidcLogin};
use crate::auth::{source_allowed, LoginThrottle, ThrottleConfig, VerifiedCache};
use crate::claims::{
    self, AuthorizationRequestClaims, AuthorizationResponseClaims, Claims, AUTH_REQUEST_AUDIENCE,
};
use crate::config::CalloutSettings;
use crate::issue::{self, UserSpec};
use crate::keys::{
    AccountPublicKey, CurvePublicKey, KeyPair, ServerPublicKey, UserPublicKey, XKeyPair,
};
use crate::model::AUTH_ACCOUNT;
use crate::model::{Account, AccountKind, PermissionDefaults, Session, User};
use crate::server::audit::Audit;
use crate::server::metrics::Metrics;
use crate::server::sessions::SessionRegistry;
use crate::store::{IdpRead, Store, StoreRead};

/// Tuning of the pipeline (from [`CalloutSettings`]).
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Minted JWT lifetime when the role sets none.
    pub default_jwt_ttl: Duration,
    /// Verified-password cache size.
    pub password_cache_size: usize,
    /// Verified-password cache TTL.
    pub password_cache_ttl: Duration,
    /// Failed logins allowed per (user, client host) within the window; a host gets five
    /// times as many over all its users.
    pub throttle_max_failures: u32,
    /// Failed logins per user within the window, from hosts that already failed for it,
    /// after which only hosts with a clean record for the user are checked.
    pub throttle_user_budget: u32,
    /// Throttle window.
    pub throttle_window: Duration,
    /// Password checks that may wait for argon2 before logins are refused as busy.
    pub argon_max_waiting: usize,
    /// Lists for permission lists a role leaves unset.
    pub defaults: PermissionDefaults,
}

impl PipelineOptions {
    /// Options from checked settings, with pbn's built-in permission defaults.
    pub fn from_settings(s: &CalloutSettings) -> Self {
        PipelineOptions {
            default_jwt_ttl: s.default_jwt_ttl,
            password_cache_size: s.password_cache_size,
            password_cache_ttl: s.password_cache_ttl,
            throttle_max_failures: s.throttle_max_failures,
            throttle_user_budget: s.throttle_user_budget,
            throttle_window: s.throttle_window,
            argon_max_waiting: s.argon_max_waiting,
            defaults: issue::default_permissions(),
        }
    }
}

/// What became of one request.
#[derive(Debug)]
pub struct Handled {
    /// Bytes to send to the reply subject; `None` = send nothing.
    pub reply: Option<Vec<u8>>,
    /// The session admitted, when a JWT was minted.
    pub admitted: Option<Session>,
    /// Why the request was refused, if it was.
    pub error: Option<CalloutError>,
    /// How the client authenticated (one of [`LOGIN_METHODS`](crate::server::metrics::LOGIN_METHODS)).
    pub method: &'static str,
    /// What the request says of the client, for audit events (`None` when it failed
    /// verification and nothing in it can be trusted).
    pub client: Option<LoginClient>,
}

/// What a verified request says of the client: never a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginClient {
    /// The user name the client gave, or the nkey it presented (empty for a token).
    pub user: String,
    /// The client's host as the server reported it.
    pub host: String,
    /// The id of the server the client connected to.
    pub server_id: String,
}

/// A request that passed every check.
struct Verified {
    claims: Claims<AuthorizationRequestClaims>,
    /// The client's nkey (`user_nkey`), checked.
    user_key: UserPublicKey,
    sealed: bool,
    server_xkey: Option<CurvePublicKey>,
}

/// The callout pipeline: everything needed to turn a request into a response.
pub struct Pipeline {
    store: Store,
    auth_key: AccountPublicKey,
    signer: KeyPair,
    xkey: Option<XKeyPair>,
    cache: VerifiedCache,
    throttle: LoginThrottle,
    argon: ArgonPool,
    sessions: Arc<SessionRegistry>,
    /// Login counts and latencies (shared with the HTTP listener).
    metrics: Arc<Metrics>,
    /// Where login decisions are recorded, when audit events are on.
    audit: Option<Audit>,
    opts: PipelineOptions,
    /// Parsed account signing keys by public key: parsing a seed costs a scalar multiplication,
    /// and the key of a rotated account simply stops being asked for.
    signers: Mutex<HashMap<String, Arc<KeyPair>>>,
    /// Identity providers' keys.
    oidc: Arc<KeyCache>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("auth_account", &self.auth_key)
            .field("encrypted", &self.xkey.is_some())
            .finish()
    }
}

impl Pipeline {
    /// Reads the AUTH account (its signing key and xkey) from the store.
    pub fn new(
        store: Store,
        sessions: Arc<SessionRegistry>,
        opts: PipelineOptions,
    ) -> Result<Pipeline, CalloutError> {
        let auth = store.read(|tx| tx.require_account(AUTH_ACCOUNT))?;
        let signer = issue::account_signer(&auth)?;
        let xkey = match auth.callout.as_ref().and_then(|c| c.xkey.as_ref()) {
            Some(seed) => Some(XKeyPair::from_seed(seed).map_err(CalloutError::Open)?),
            None => None,
        };
        let window = opts.throttle_window;
        let pairs = ThrottleConfig {
            window,
            max_failures: opts.throttle_max_failures,
            ..ThrottleConfig::users()
        };
        let hosts = ThrottleConfig {
            window,
            max_failures: opts.throttle_max_failures.saturating_mul(5),
            ..ThrottleConfig::hosts()
        };
        let users = ThrottleConfig {
            window,
            max_failures: opts.throttle_user_budget,
            ..ThrottleConfig::users()
        };
        let throttle = LoginThrottle::new(pairs, hosts, users).map_err(CalloutError::Auth)?;
        let metrics = Arc::new(Metrics::new());
        let observed = metrics.clone();
        let oidc = Arc::new(KeyCache::new(Some(Box::new(move |r| {
            observed.oidc_fetched(r.ok, r.unreachable)
        }))));
        Ok(Pipeline {
            store,
            auth_key: auth.public_key,
            signer,
            xkey,
            cache: VerifiedCache::new(opts.password_cache_size, opts.password_cache_ttl),
            throttle,
            argon: ArgonPool::for_this_machine(opts.argon_max_waiting, metrics.clone()),
            sessions,
            metrics,
            audit: None,
            opts,
            signers: Mutex::new(HashMap::new()),
            oidc,
        })
    }

    /// Identity providers' keys (the service refreshes them on its schedule).
    pub fn oidc(&self) -> &Arc<KeyCache> {
        &self.oidc
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    pub(super) fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    pub(super) fn argon(&self) -> &ArgonPool {
        &self.argon
    }

    /// This pipeline recording every login decision in `audit`.
    pub fn with_audit(self, audit: Audit) -> Self {
        Pipeline { audit: Some(audit), ..self }
    }

    /// Where login decisions are recorded, if anywhere.
    pub fn audit(&self) -> Option<&Audit> {
        self.audit.as_ref()
    }

    /// Login counts and latencies of this pipeline.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The session registry the pipeline admits into.
    pub fn sessions(&self) -> &Arc<SessionRegistry> {
        &self.sessions
    }

    /// Handles one request at time `now` (unix seconds). `max_reply` is the largest response
    /// the server takes (its max payload): a success response above it is replaced by a small
    /// error response, so the login fails at once with the reason instead of timing out.
    ///
    /// Everything but the argon2 verification runs on the caller's thread (it is cheap); the
    /// verification waits for a permit here and then runs on the blocking pool.
    pub async fn handle(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
        now: i64,
        max_reply: usize,
    ) -> Handled {
        let verified = match self.verify(payload, xkey_header, now) {
            Ok(v) => v,
            Err(e) => {
                let (method, client) = ("unknown", None);
                return Handled { reply: None, admitted: None, error: Some(e), method, client };
            }
        };
        let req = &verified.claims.nats;
        let method = super::authn::method(req);
        let client = Some(LoginClient {
            user: super::authn::claimed_user(req).to_string(),
            host: req.client.host.clone(),
            server_id: req.server.id.clone(),
        });
        let admitted = self.admit(&verified.claims.nats, &verified.user_key, now).await;
        let e = match admitted {
            Ok((jwt, session)) => match self.respond(&verified, Ok(jwt)) {
                Ok(reply) if reply.len() <= max_reply => {
                    let (reply, admitted) = (Some(reply), Some(session));
                    return Handled { reply, admitted, error: None, method, client };
                }
                Ok(reply) => {
                    self.sessions.remove(session.server_id.as_str(), session.client_id);
                    let (user, size) = (session.user.to_string(), reply.len());
                    CalloutError::ResponseTooLarge { user, size, max: max_reply }
                }
                Err(e) => {
                    self.sessions.remove(session.server_id.as_str(), session.client_id);
                    return Handled { reply: None, admitted: None, error: Some(e), method, client };
                }
            },
            Err(e) => e,
        };
        let reply = self.respond(&verified, Err(&e)).ok();
        Handled { reply, admitted: None, error: Some(e), method, client }
    }

    fn open<'p>(
        &self,
        payload: &'p [u8],
        header: Option<&str>,
    ) -> Result<(Cow<'p, [u8]>, Option<CurvePublicKey>), CalloutError> {
        let sealed = claims::is_sealed(payload);
        match (&self.xkey, sealed) {
            (None, false) => Ok((Cow::Borrowed(payload), None)),
            (None, true) => Err(CalloutError::UnexpectedSealed),
            (Some(_), false) => Err(CalloutError::ExpectedSealed),
            (Some(x), true) => {
                let header = header.ok_or(CalloutError::MissingXkeyHeader)?;
                let sender = CurvePublicKey::parse(header).map_err(CalloutError::Open)?;
                let plain = x.open(payload, &sender).map_err(CalloutError::Open)?;
                Ok((Cow::Owned(plain), Some(sender)))
            }
        }
    }

    fn verify(
        &self,
        payload: &[u8],
        header: Option<&str>,
        now: i64,
    ) -> Result<Verified, CalloutError> {
        let (plain, server_xkey) = self.open(payload, header)?;
        let token = std::str::from_utf8(&plain).map_err(|_| CalloutError::NotUtf8)?;
        let claims = claims::decode_request(token)?;
        let server = &claims.nats.server;
        if claims.iss != server.id {
            return Err(CalloutError::IssuerMismatch {
                iss: claims.iss.clone(),
                server: server.id.clone(),
            });
        }
        if let Some(h) = &server_xkey {
            if h.as_str() != server.xkey {
                return Err(CalloutError::XkeyMismatch {
                    header: h.to_string(),
                    server: server.xkey.clone(),
                });
            }
        }
        if claims.aud != AUTH_REQUEST_AUDIENCE {
            return Err(CalloutError::Audience(claims.aud.clone()));
        }
        if claims.exp > 0 && now > claims.exp {
            return Err(CalloutError::Expired { exp: claims.exp, now });
        }
        if claims.sub != self.auth_key.as_str() {
            return Err(CalloutError::WrongAccount(claims.sub.clone()));
        }
        let user_key = UserPublicKey::parse(&claims.nats.user_nkey)
            .map_err(|_| CalloutError::UserNkey(claims.nats.user_nkey.clone()))?;
        let sealed = server_xkey.is_some();
        Ok(Verified { claims, user_key, sealed, server_xkey })
    }

    fn signer_for(&self, acc: &Account) -> Result<Arc<KeyPair>, CalloutError> {
        let key = acc
            .current_signing_key()
            .ok_or_else(|| issue::IssueError::NoSigningKey(acc.name.to_string()))?;
        let mut signers = self.signers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kp) = signers.get(key.public()) {
            return Ok(kp.clone());
        }
        let kp = Arc::new(key.key_pair().map_err(issue::IssueError::from)?);
        signers.insert(key.public().to_string(), kp.clone());
        Ok(kp)
    }

    async fn admit(
        &self,
        req: &AuthorizationRequestClaims,
        user_key: &UserPublicKey,
        now: i64,
    ) -> Result<(String, Session), CalloutError> {
        let mut id = authenticate(self, req, now).await?;
        let (acc, role) = self.records(&mut id)?;
        let user = &id.user;
        check_user(user, &acc)?;
        if !role.source_cidrs.is_empty() {
            let allowed = client_ip(req).is_some_and(|ip| source_allowed(ip, &role.source_cidrs));
            if !allowed {
                let host = req.client.host.clone();
                return Err(CalloutError::SourceNotAllowed { user: user.name.to_string(), host });
            }
        }
        let exp = self.expiry(&role, id.oidc.as_ref(), now);
        let spec = UserSpec {
            account: &acc,
            role: &role,
            user_key,
            name: user.name.as_str(),
            iat: now,
            exp,
            defaults: &self.opts.defaults,
        };
        let signer = self.signer_for(&acc)?;
        let vars =
            issue::UserVars { tags: Some(&user.tags), claims: id.oidc.as_ref().map(|l| &l.claims) };
        let mut claims = issue::user_claims_with(&spec, vars).map_err(|e| match e {
            issue::IssueError::Render(source) => {
                CalloutError::Subjects { user: user.name.to_string(), source }
            }
            e => CalloutError::Issue(e),
        })?;
        let jwt = issue::sign_user(&acc, &signer, &mut claims)?;
        let server_id =
            ServerPublicKey::parse(&req.server.id).map_err(|_| CalloutError::IssuerMismatch {
                iss: req.server.id.clone(),
                server: req.server.id.clone(),
            })?;
        let session = Session {
            server_id,
            client_id: req.client.id,
            user: user.name.clone(),
            account: acc.public_key.clone(),
            user_nkey: Some(user_key.clone()),
            issuer: Some(signer.public_key().to_string()),
            issued: now,
            expires: exp,
            host: req.client.host.clone(),
            method: Some(super::authn::method(req).to_string()),
            since: now,
            provider: id.oidc.as_ref().map(|l| l.idp.name.clone()),
        };
        self.sessions.try_admit(session.clone(), role.max_connections, now).map_err(|_| {
            CalloutError::ConnectionLimit {
                user: user.name.to_string(),
                max: role.max_connections.get(),
            }
        })?;
        // An admin change committed while this login was being checked (argon2 takes tens of
        // milliseconds) must not slip through: the session is registered first, then the records
        // are read again. A change committed before this read is seen here and refused; one
        // committed after it finds the session in the registry and kicks it.
        if let Err(e) = self.unchanged(&id, &acc, &role) {
            self.sessions.remove(session.server_id.as_str(), session.client_id);
            return Err(e);
        }
        Ok((jwt, session))
    }

    /// The account and role of the user `id` proved to be: those read with the user when the
    /// login read them in one snapshot, else read now.
    fn records(&self, id: &mut Identity) -> Result<(Account, crate::model::Role), CalloutError> {
        if let Some(records) = id.records.take() {
            return Ok(records);
        }
        let user = &id.user;
        self.store.read(|tx| -> Result<_, CalloutError> {
            Ok((tx.require_account(user.account.as_str())?, tx.require_role(user.role.as_str())?))
        })
    }

    /// When a user JWT minted at `now` expires: after the role's lifetime, and never after the
    /// identity provider's token it was minted for (checked to be after `now`).
    fn expiry(&self, role: &crate::model::Role, login: Option<&OidcLogin>, now: i64) -> i64 {
        let ttl = role.jwt_ttl.unwrap_or(self.opts.default_jwt_ttl);
        let exp = now + ttl.as_secs().max(1) as i64;
        match login {
            Some(l) => {
                let sub = l.claims["sub"].as_str().unwrap_or_default();
                tracing::debug!(user = %l.user.name, provider = %l.idp.name, sub, "identity provider token verified");
                exp.min(l.expires)
            }
            None => exp,
        }
    }

    fn unchanged(
        &self,
        id: &Identity,
        acc: &Account,
        role: &crate::model::Role,
    ) -> Result<(), CalloutError> {
        let user = &id.user;
        let same = self.store.read(|tx| -> Result<bool, CalloutError> {
            let stored = tx.get_user(user.name.as_str())?;
            let user_same = match &id.oidc {
                // A user made up for this login: still no record of that name.
                Some(l) if !l.stored => stored.is_none(),
                _ => stored.as_ref() == Some(user),
            };
            let idp_same = match &id.oidc {
                Some(l) => tx.get_idp(l.idp.name.as_str())?.as_ref() == Some(&l.idp),
                None => true,
            };
            Ok(user_same
                && idp_same
                && tx.get_account(acc.name.as_str())?.is_some_and(|a| same_account(&a, acc))
                && tx.get_role(role.name.as_str())?.as_ref() == Some(role))
        })?;
        if same {
            Ok(())
        } else {
            Err(CalloutError::ChangedDuringLogin(user.name.to_string()))
        }
    }

    fn respond(
        &self,
        v: &Verified,
        result: Result<String, &CalloutError>,
    ) -> Result<Vec<u8>, CalloutError> {
        let req = &v.claims.nats;
        let body = match result {
            Ok(jwt) => AuthorizationResponseClaims::success(jwt),
            Err(e) => AuthorizationResponseClaims::failure(e.to_string()),
        }
        .with_issuer_account(self.auth_key.as_str());
        let mut c = Claims::new(req.user_nkey.as_str(), body).with_audience(req.server.id.as_str());
        let token = c.encode(&self.signer).map_err(issue::IssueError::from)?;
        match (&self.xkey, v.sealed, &v.server_xkey) {
            (Some(x), true, Some(server)) => {
                x.seal(token.as_bytes(), server).map_err(CalloutError::Open)
            }
            _ => Ok(token.into_bytes()),
        }
    }
}

/// Whether what a login depends on is unchanged: the account record itself also changes with
/// every push (its last JWT `iat`), which must not refuse logins.
fn same_account(a: &Account, b: &Account) -> bool {
    a.active == b.active
        && a.kind == b.kind
        && a.current_signing_key().map(|k| k.public())
            == b.current_signing_key().map(|k| k.public())
}

fn check_user(user: &User, acc: &Account) -> Result<(), CalloutError> {
    if !user.active {
        return Err(CalloutError::InactiveUser(user.name.to_string()));
    }
    if acc.kind != AccountKind::Managed {
        return Err(CalloutError::UnmanagedAccount(acc.name.to_string()));
    }
    if !acc.active {
        return Err(CalloutError::InactiveAccount(acc.name.to_string()));
    }
    Ok(())
}
