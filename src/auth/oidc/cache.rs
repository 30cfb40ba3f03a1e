//! The providers' signing keys: parsed JWKS ([`KeySet`]) and the cache that fetches them
//! ([`KeyCache`]).
//!
//! Keys are fetched when a provider is first used, when a token names a `kid` the cached set
//! lacks (at most once per [`MIN_REFRESH_GAP`] per provider, so forged key ids cannot flood
//! the provider), and by [`KeyCache::refresh_all`] on the service's schedule. A fetch that
//! fails keeps the keys already cached: a provider that is down does not stop logins with
//! tokens it signed before. One fetch per provider runs at a time; logins that need it wait
//! for it (at most [`FETCH_TIMEOUT`] per request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{OidcError, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES, MAX_KEYS, MIN_REFRESH_GAP};
use crate::model::{IdentityProvider, KeySource, MAX_IDPS};

/// The kind of a public key, and so the algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Family {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            Family::Rsa => {
                matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512)
            }
            Family::P256 => alg == A::ES256,
            Family::P384 => alg == A::ES384,
            Family::Ed25519 => alg == A::EdDSA,
        }
    }
}

struct Key {
    kid: Option<String>,
    family: Family,
    alg: Option<String>,
    key: DecodingKey,
}

/// A provider's usable public keys (at most [`MAX_KEYS`]); symmetric keys, encryption keys and
/// keys of unknown types are left out.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| (&k.kid, k.family))).finish()
    }
}

fn one_key(v: &Value) -> Option<Key> {
    if v["use"].as_str().is_some_and(|u| u != "sig") {
        return None;
    }
    let jwk: Jwk = serde_json::from_value(v.clone()).ok()?;
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Family::P256,
            EllipticCurve::P384 => Family::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Family::Ed25519
        }
        // Symmetric (`oct`) keys are HMAC secrets: never a verification key here.
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    let kid = v["kid"].as_str().map(String::from);
    let alg = v["alg"].as_str().map(String::from);
    Some(Key { kid, family, alg, key })
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the usable keys.
    pub fn parse(bytes: &[u8], source: &str) -> Result<KeySet, OidcError> {
        let bad = |reason: &str| OidcError::Document {
            source_name: source.to_string(),
            reason: reason.to_string(),
        };
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
        let list = doc["keys"].as_array().ok_or_else(|| bad("no \"keys\" array"))?;
        let keys: Vec<Key> = list.iter().filter_map(one_key).take(MAX_KEYS).collect();
        if keys.is_empty() {
            return Err(bad("no usable signing key (RSA, P-256, P-384 or Ed25519)"));
        }
        Ok(KeySet { keys })
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may have signed a token with `kid` and `alg`: the key with that id (when
    /// the token names one), of a type that verifies `alg`, and declared for `alg` if it
    /// declares an algorithm at all.
    pub fn matching(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&DecodingKey> {
        let name = format!("{alg:?}");
        self.keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.family.fits(alg) && k.alg.as_ref().is_none_or(|a| *a == name))
            .map(|k| &k.key)
            .collect()
    }
}

/// What the cache holds of one provider.
struct Entry {
    /// The key source these keys came from: a provider edited to another source starts over.
    source: String,
    keys: Mutex<Option<Arc<KeySet>>>,
    /// One fetch at a time; holds when the last one started and whether it failed.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    failing: bool,
}

/// A fetch's outcome, as reported to the observer (metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchReport {
    /// Whether it succeeded.
    pub ok: bool,
    /// Providers whose last fetch failed, after this one.
    pub unreachable: usize,
}

type Observer = Box<dyn Fn(FetchReport) + Send + Sync>;

/// The keys of every provider in use (at most [`MAX_IDPS`] entries; providers no longer in
/// the store are dropped by [`KeyCache::refresh_all`]).
pub struct KeyCache {
    client: reqwest::Client,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().len();
        f.debug_struct("KeyCache").field("providers", &n).finish()
    }
}

fn source_of(idp: &IdentityProvider) -> String {
    format!("{}|{:?}", idp.issuer, idp.keys)
}

impl KeyCache {
    /// An empty cache; `observer` hears of every fetch.
    pub fn new(observer: Option<Observer>) -> KeyCache {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        KeyCache { client, entries: Mutex::new(HashMap::new()), observer }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, idp: &IdentityProvider) -> Arc<Entry> {
        let source = source_of(idp);
        let mut entries = self.lock();
        if let Some(e) = entries.get(idp.name.as_str()).filter(|e| e.source == source) {
            return e.clone();
        }
        if entries.len() >= MAX_IDPS && !entries.contains_key(idp.name.as_str()) {
            // Only reachable when providers were replaced faster than the schedule prunes.
            entries.clear();
        }
        let e = Arc::new(Entry {
            source,
            keys: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        });
        entries.insert(idp.name.to_string(), e.clone());
        e
    }

    fn cached(entry: &Entry) -> Option<Arc<KeySet>> {
        entry.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The keys of `idp` for a token with `kid`: the cached set when it has that key (or the
    /// token names none), else the set after a refresh (rate-limited), else the cached set.
    pub async fn keys_for(
        &self,
        idp: &IdentityProvider,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, OidcError> {
        let entry = self.entry(idp);
        if let Some(keys) = Self::cached(&entry) {
            let known = kid.is_none_or(|k| keys.keys.iter().any(|x| x.kid.as_deref() == Some(k)));
            if known {
                return Ok(keys);
            }
        }
        let error = self.refresh_entry(&entry, idp, true).await.err();
        match (Self::cached(&entry), error) {
            (Some(keys), _) => Ok(keys),
            (None, Some(e)) => Err(OidcError::KeysUnavailable {
                provider: idp.name.to_string(),
                reason: e.to_string(),
            }),
            (None, None) => Err(OidcError::KeysUnavailable {
                provider: idp.name.to_string(),
                reason: "fetched too recently; retry shortly".into(),
            }),
        }
    }

    /// Fetches the keys of `idp` now (one fetch per provider at a time; with `limited`, not
    /// within [`MIN_REFRESH_GAP`] of the last attempt). A failure keeps the cached keys.
    async fn refresh_entry(
        &self,
        entry: &Entry,
        idp: &IdentityProvider,
        limited: bool,
    ) -> Result<(), OidcError> {
        let mut state = entry.fetch.lock().await;
        if limited && state.last_attempt.is_some_and(|t| t.elapsed() < MIN_REFRESH_GAP) {
            return Ok(());
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch(idp).await;
        state.failing = result.is_err();
        drop(state);
        let ok = result.is_ok();
        let result = match result {
            Ok(keys) => {
                tracing::debug!(provider = %idp.name, keys = keys.len(), "identity provider keys fetched");
                *entry.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(keys));
                Ok(())
            }
            Err(e) => {
                let cached = Self::cached(entry).map_or(0, |k| k.len());
                tracing::warn!(provider = %idp.name, error = %e, cached, "identity provider keys not refreshed; cached keys stay in use");
                Err(e)
            }
        };
        if let Some(observe) = &self.observer {
            observe(FetchReport { ok, unreachable: self.unreachable() });
        }
        result
    }

    /// Refreshes the keys of every provider in `idps` and forgets the others (the service's
    /// schedule). Providers are fetched one after another: their number is bounded and each
    /// fetch by [`FETCH_TIMEOUT`] per request.
    pub async fn refresh_all(&self, idps: &[IdentityProvider]) {
        self.lock().retain(|name, _| idps.iter().any(|p| p.name.as_str() == name));
        for idp in idps {
            let entry = self.entry(idp);
            let _ = self.refresh_entry(&entry, idp, false).await;
        }
    }

    /// How many providers' last fetch failed.
    pub fn unreachable(&self) -> usize {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        entries.iter().filter(|e| e.fetch.try_lock().is_ok_and(|s| s.failing)).count()
    }

    async fn fetch(&self, idp: &IdentityProvider) -> Result<KeySet, OidcError> {
        match &idp.keys {
            KeySource::Inline(text) => KeySet::parse(text.as_bytes(), "the inline JWKS"),
            KeySource::Url(url) => KeySet::parse(&self.get(url).await?, url),
            KeySource::Discovery => {
                let url = discovery_url(&idp.issuer);
                let doc: Value = serde_json::from_slice(&self.get(&url).await?).map_err(|_| {
                    OidcError::Document { source_name: url.clone(), reason: "not JSON".into() }
                })?;
                if doc["issuer"].as_str() != Some(idp.issuer.as_str()) {
                    let reason = format!("issuer {} is not {}", doc["issuer"], idp.issuer);
                    return Err(OidcError::Document { source_name: url, reason });
                }
                let jwks = doc["jwks_uri"].as_str().ok_or_else(|| OidcError::Document {
                    source_name: url.clone(),
                    reason: "no jwks_uri".into(),
                })?;
                KeySet::parse(&self.get(jwks).await?, jwks)
            }
        }
    }

    /// GETs `url`, reading at most [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &str) -> Result<Vec<u8>, OidcError> {
        let fail = |reason: String| OidcError::Fetch { url: url.to_string(), reason };
        let mut resp = self.client.get(url).send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("status {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The discovery document of `issuer`.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Refreshes the keys of every provider in `store` every [`super::REFRESH_INTERVAL`] (the
/// first time at once, so a provider that is down shows in the logs and metrics at start)
/// until `shutdown`.
pub async fn refresh_on_schedule(
    cache: Arc<KeyCache>,
    store: crate::store::Store,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use crate::store::IdpRead;
    let mut tick = tokio::time::interval(super::REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
        match store.read_async(|tx| tx.list_idps()).await {
            Ok(idps) => {
                tokio::select! {
                    _ = cache.refresh_all(&idps) => {}
                    _ = crate::shutdown::requested(&mut shutdown) => return,
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list identity providers"),
        }
    }
}

#[cfg(test)]
mod tests;
