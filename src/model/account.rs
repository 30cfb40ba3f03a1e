//! The operator and accounts: identities, signing keys, limits, exports, imports, revocations.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{check_text, clip, AccountLimits, ModelError, Name, Subject, DESCRIPTION_MAX_LEN};
use crate::keys::{AccountPublicKey, KeyKind, KeyPair, OperatorPublicKey, Seed, UserPublicKey};

/// Longest export or import name, in characters.
pub const EXPORT_NAME_MAX_LEN: usize = 256;

/// The key of an account-wide revocation ("every user JWT issued before …").
pub const REVOKE_ALL: &str = "*";

/// A signing key of the operator (`O…`) or of an account (`A…`), with its public key and the time
/// it was added. The newest key (largest `created`, the later one on a tie) signs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The secret seed. Never printed.
    pub seed: Seed,
    /// The public key derived from `seed` (kept so reads need no key derivation).
    pub public: String,
    /// Unix seconds when the key was added.
    pub created: i64,
}

impl SigningKey {
    /// A fresh signing key of `kind` (operator or account).
    pub fn generate(kind: KeyKind, created: i64) -> Self {
        let kp = KeyPair::generate(kind);
        SigningKey { seed: kp.seed(), public: kp.public_key().to_string(), created }
    }

    /// Wraps an existing seed, deriving its public key.
    pub fn from_seed(seed: Seed, created: i64) -> Result<Self, ModelError> {
        let public = KeyPair::from_seed(&seed)?.public_key().to_string();
        Ok(SigningKey { seed, public, created })
    }

    /// The public key.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The key pair, for signing.
    pub fn key_pair(&self) -> Result<KeyPair, ModelError> {
        Ok(KeyPair::from_seed(&self.seed)?)
    }

    /// Checks that the seed is of `kind` and that `public` belongs to it.
    pub fn validate(&self, kind: KeyKind) -> Result<(), ModelError> {
        check_seed(&self.seed, &self.public, kind)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("seed", &"<redacted>")
            .field("public", &self.public)
            .field("created", &self.created)
            .finish()
    }
}

/// The newest key of `keys` (largest `created`; on a tie the later entry), which signs.
pub fn current_signing_key(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter().max_by_key(|k| k.created)
}

fn check_seed(seed: &Seed, public: &str, kind: KeyKind) -> Result<(), ModelError> {
    let kp = KeyPair::from_seed_of(seed, kind)?;
    if kp.public_key() != public {
        return Err(ModelError::KeyMismatch(public.to_string()));
    }
    Ok(())
}

fn check_signing_keys(keys: &[SigningKey], kind: KeyKind, owner: &str) -> Result<(), ModelError> {
    if keys.is_empty() {
        return Err(ModelError::NoSigningKey(owner.to_string()));
    }
    keys.iter().try_for_each(|k| k.validate(kind))
}

/// The operator: the root of trust. It signs account JWTs with its newest signing key and its own
/// JWT (and account deletions) with its identity key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Operator name as it appears in the operator JWT (free text, 1..=128 characters).
    pub name: String,
    /// Identity seed (`SO…`). Never printed.
    pub identity: Seed,
    /// Identity public key (`O…`), derived from `identity`.
    pub public_key: OperatorPublicKey,
    /// Signing keys; the newest signs account JWTs.
    pub signing_keys: Vec<SigningKey>,
    /// The system account (`SYS`).
    pub system_account: AccountPublicKey,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl Operator {
    /// A new operator with a fresh identity and one fresh signing key.
    pub fn generate(name: &str, system_account: AccountPublicKey, now: i64) -> Self {
        let kp = KeyPair::generate(KeyKind::Operator);
        // Invariant: a freshly generated operator key pair has an operator public key.
        let public_key =
            OperatorPublicKey::parse(kp.public_key()).expect("generated operator key is valid");
        Operator {
            name: name.to_string(),
            identity: kp.seed(),
            public_key,
            signing_keys: vec![SigningKey::generate(KeyKind::Operator, now)],
            system_account,
            created: now,
            updated: now,
        }
    }

    /// The signing key that signs account JWTs.
    pub fn current_signing_key(&self) -> Option<&SigningKey> {
        current_signing_key(&self.signing_keys)
    }

    /// Checks the name, that the identity matches `public_key`, and the signing keys.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.name.trim().is_empty()
            || self.name.chars().count() > 128
            || self.name.chars().any(char::is_control)
        {
            return Err(ModelError::OperatorName(clip(&self.name)));
        }
        check_seed(&self.identity, self.public_key.as_str(), KeyKind::Operator)?;
        check_signing_keys(&self.signing_keys, KeyKind::Operator, &self.name)
    }
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("identity", &"<redacted>")
            .field("public_key", &self.public_key)
            .field("signing_keys", &self.signing_keys)
            .field("system_account", &self.system_account)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

/// What an account is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// The system account (`SYS`).
    System,
    /// The auth-callout account (`AUTH`).
    Auth,
    /// An ordinary account whose users log in through the callout.
    Managed,
}

/// Export or import type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    /// A message stream.
    Stream,
    /// A request/reply service.
    Service,
}

/// How a service export responds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseType {
    /// One reply.
    Singleton,
    /// Several replies.
    Stream,
    /// One reply in several chunks.
    Chunked,
}

/// Something an account offers to other accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Export name (free text).
    pub name: String,
    /// Exported subject.
    pub subject: Subject,
    /// Stream or service.
    pub kind: ExportKind,
    /// Whether importers need an activation token.
    pub token_req: bool,
    /// Response type of a service export (`None` = NATS' default, singleton).
    pub response_type: Option<ResponseType>,
    /// 1-based position of the `*` token that must equal the importing account's key.
    pub account_token_position: Option<u32>,
    /// Free-text description.
    pub description: String,
    /// Whether the export is advertised.
    pub advertise: bool,
}

impl Export {
    /// Checks text lengths, that only services have a response type, and the token position.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_text("export name", &self.name, EXPORT_NAME_MAX_LEN)?;
        check_text("export description", &self.description, DESCRIPTION_MAX_LEN)?;
        if self.response_type.is_some() && self.kind != ExportKind::Service {
            return Err(ModelError::ResponseTypeOnStream(clip(&self.name)));
        }
        if let Some(pos) = self.account_token_position {
            let token = self.subject.as_str().split('.').nth((pos as usize).wrapping_sub(1));
            if token != Some("*") {
                return Err(ModelError::TokenPosition { export: clip(&self.name), position: pos });
            }
        }
        Ok(())
    }
}

/// Something an account takes from another account's exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// Import name (free text).
    pub name: String,
    /// Subject as exported by the other account.
    pub subject: Subject,
    /// The exporting account.
    pub account: AccountPublicKey,
    /// Stream or service.
    pub kind: ExportKind,
    /// Subject under which the import appears locally (`None` = same as `subject`).
    pub local_subject: Option<Subject>,
    /// Whether to share connection information with the exporter (services).
    pub share: bool,
    /// Activation token JWT, when the export requires one.
    pub token: Option<String>,
}

impl Import {
    /// Checks the name length.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_text("import name", &self.name, EXPORT_NAME_MAX_LEN)
    }
}

/// The auth-callout settings of the `AUTH` account.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CalloutConfig {
    /// Users that bypass the callout and answer it (the service user).
    pub auth_users: Vec<UserPublicKey>,
    /// Curve seed (`SX…`) for encrypted callouts; `None` = unencrypted. Never printed.
    pub xkey: Option<Seed>,
    /// Seed (`SU…`) of pbn's own service user, the one listed in `auth_users`. It is pbn's
    /// identity towards nats-server, held like the account seeds; never a managed user's seed.
    #[serde(default)]
    pub service_user: Option<Seed>,
}

impl fmt::Debug for CalloutConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalloutConfig")
            .field("auth_users", &self.auth_users)
            .field("xkey", &self.xkey.as_ref().map(|_| "<redacted>"))
            .field("service_user", &self.service_user.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An account: identity, signing keys, limits, exports, imports and revocations.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Unique account name.
    pub name: Name,
    /// Free-text description.
    pub description: String,
    /// Identity seed (`SA…`). Never printed.
    pub identity: Seed,
    /// Identity public key (`A…`), derived from `identity`.
    pub public_key: AccountPublicKey,
    /// Signing keys; the newest signs user JWTs.
    pub signing_keys: Vec<SigningKey>,
    /// Inactive accounts are deleted from the servers and accept no users.
    pub active: bool,
    /// Limits carried by the account JWT.
    pub limits: AccountLimits,
    /// Refuse bearer user JWTs.
    pub disallow_bearer: bool,
    /// Exports.
    pub exports: Vec<Export>,
    /// Imports.
    pub imports: Vec<Import>,
    /// Revoked user keys (or `REVOKE_ALL`) → unix seconds: JWTs issued at or before it are void.
    pub revocations: BTreeMap<String, i64>,
    /// System, auth-callout or managed account.
    pub kind: AccountKind,
    /// Callout settings; only on the [`AccountKind::Auth`] account.
    pub callout: Option<CalloutConfig>,
    /// `iat` of the last account JWT issued, so the next one gets a strictly greater one.
    pub last_jwt_iat: i64,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl Account {
    /// A new active account with a fresh identity, one fresh signing key and default limits.
    pub fn generate(name: Name, kind: AccountKind, now: i64) -> Self {
        let kp = KeyPair::generate(KeyKind::Account);
        // Invariant: a freshly generated account key pair has an account public key.
        let public_key =
            AccountPublicKey::parse(kp.public_key()).expect("generated account key is valid");
        Account {
            name,
            description: String::new(),
            identity: kp.seed(),
            public_key,
            signing_keys: vec![SigningKey::generate(KeyKind::Account, now)],
            active: true,
            limits: AccountLimits::default(),
            disallow_bearer: false,
            exports: vec![],
            imports: vec![],
            revocations: BTreeMap::new(),
            kind,
            callout: None,
            last_jwt_iat: 0,
            created: now,
            updated: now,
        }
    }

    /// The signing key that signs user JWTs.
    pub fn current_signing_key(&self) -> Option<&SigningKey> {
        current_signing_key(&self.signing_keys)
    }

    /// Reserves the `iat` of the next account JWT: `now`, or one more than the last one if that
    /// is not greater. Records it, so the caller must store the account afterwards.
    pub fn next_jwt_iat(&mut self, now: i64) -> i64 {
        let iat = now.max(self.last_jwt_iat.saturating_add(1));
        self.last_jwt_iat = iat;
        iat
    }

    /// Revokes JWTs of `user` issued at or before `at`. A cutoff only ever moves forward.
    pub fn revoke(&mut self, user: &UserPublicKey, at: i64) {
        self.revoke_key(user.as_str(), at);
    }

    /// Revokes every user JWT issued at or before `at`.
    pub fn revoke_all(&mut self, at: i64) {
        self.revoke_key(REVOKE_ALL, at);
    }

    fn revoke_key(&mut self, key: &str, at: i64) {
        let cutoff = self.revocations.entry(key.to_string()).or_insert(at);
        *cutoff = (*cutoff).max(at);
    }

    /// Whether a JWT for `user` issued at `iat` is revoked (by its key or by `REVOKE_ALL`).
    pub fn is_revoked(&self, user: &str, iat: i64) -> bool {
        [user, REVOKE_ALL].iter().any(|k| self.revocations.get(*k).is_some_and(|&cut| iat <= cut))
    }

    /// Checks keys, texts, exports, imports, revocation keys and the callout settings.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_text("account description", &self.description, DESCRIPTION_MAX_LEN)?;
        check_seed(&self.identity, self.public_key.as_str(), KeyKind::Account)?;
        check_signing_keys(&self.signing_keys, KeyKind::Account, self.name.as_str())?;
        self.exports.iter().try_for_each(Export::validate)?;
        self.imports.iter().try_for_each(Import::validate)?;
        if let Some(bad) = self
            .revocations
            .keys()
            .find(|k| k.as_str() != REVOKE_ALL && UserPublicKey::parse(k).is_err())
        {
            return Err(ModelError::RevocationKey(clip(bad)));
        }
        self.validate_callout()
    }

    fn validate_callout(&self) -> Result<(), ModelError> {
        let Some(callout) = &self.callout else { return Ok(()) };
        if self.kind != AccountKind::Auth {
            return Err(ModelError::CalloutOnNonAuthAccount(self.name.to_string()));
        }
        if let Some(xkey) = &callout.xkey {
            let kind = xkey.kind()?;
            if kind != KeyKind::Curve {
                return Err(ModelError::XkeyKind(kind));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("identity", &"<redacted>")
            .field("public_key", &self.public_key)
            .field("signing_keys", &self.signing_keys)
            .field("active", &self.active)
            .field("limits", &self.limits)
            .field("disallow_bearer", &self.disallow_bearer)
            .field("exports", &self.exports)
            .field("imports", &self.imports)
            .field("revocations", &self.revocations)
            .field("kind", &self.kind)
            .field("callout", &self.callout)
            .field("last_jwt_iat", &self.last_jwt_iat)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account::generate(Name::parse("orders").unwrap(), AccountKind::Managed, 1_000)
    }

    #[test]
    fn generated_records_validate() {
        let acc = account();
        acc.validate().unwrap();
        assert!(acc.active);
        assert_eq!(acc.limits, AccountLimits::default());
        let op = Operator::generate("pbn", acc.public_key.clone(), 1_000);
        op.validate().unwrap();
    }

    #[test]
    fn debug_redacts_seeds() {
        let mut acc = account();
        acc.callout = Some(CalloutConfig {
            auth_users: vec![],
            xkey: Some(crate::keys::XKeyPair::generate().seed()),
            service_user: Some(KeyPair::generate(KeyKind::User).seed()),
        });
        let text = format!("{acc:?}");
        assert!(!text.contains(acc.identity.expose()));
        assert!(!text.contains(acc.signing_keys[0].seed.expose()));
        assert!(!text.contains(acc.callout.as_ref().unwrap().xkey.as_ref().unwrap().expose()));
        assert!(text.contains(acc.public_key.as_str()));
        let op = Operator::generate("pbn", acc.public_key.clone(), 1);
        let text = format!("{op:?}");
        assert!(!text.contains(op.identity.expose()));
        assert!(!text.contains(op.signing_keys[0].seed.expose()));
    }

    #[test]
    fn mismatched_identity_is_invalid() {
        let mut acc = account();
        acc.identity = KeyPair::generate(KeyKind::Account).seed();
        assert!(matches!(acc.validate(), Err(ModelError::KeyMismatch(_))));
        let mut acc = account();
        acc.signing_keys[0] = SigningKey::generate(KeyKind::Operator, 1);
        assert!(matches!(acc.validate(), Err(ModelError::Key(_))));
        let mut acc = account();
        acc.signing_keys.clear();
        assert!(matches!(acc.validate(), Err(ModelError::NoSigningKey(_))));
    }

    #[test]
    fn newest_signing_key_signs() {
        let mut acc = account();
        let newer = SigningKey::generate(KeyKind::Account, 2_000);
        acc.signing_keys.insert(0, newer.clone());
        assert_eq!(acc.current_signing_key().unwrap().public(), newer.public());
        let same_time = SigningKey::generate(KeyKind::Account, 2_000);
        acc.signing_keys.push(same_time.clone());
        assert_eq!(acc.current_signing_key().unwrap().public(), same_time.public());
    }

    #[test]
    fn jwt_iat_strictly_increases() {
        let mut acc = account();
        assert_eq!(acc.next_jwt_iat(100), 100);
        assert_eq!(acc.next_jwt_iat(100), 101);
        assert_eq!(acc.next_jwt_iat(50), 102);
        assert_eq!(acc.next_jwt_iat(500), 500);
    }

    #[test]
    fn revocation_cutoffs_only_move_forward() {
        let mut acc = account();
        let user = UserPublicKey::parse(KeyPair::generate(KeyKind::User).public_key()).unwrap();
        acc.revoke(&user, 100);
        acc.revoke(&user, 50);
        assert_eq!(acc.revocations[user.as_str()], 100);
        assert!(acc.is_revoked(user.as_str(), 100));
        assert!(!acc.is_revoked(user.as_str(), 101));
        acc.revoke_all(200);
        assert!(acc.is_revoked("UOTHER", 150));
        acc.validate().unwrap();
        acc.revocations.insert("not-a-key".into(), 1);
        assert!(matches!(acc.validate(), Err(ModelError::RevocationKey(k)) if k == "not-a-key"));
    }

    #[test]
    fn export_rules() {
        let mut ex = Export {
            name: "svc".into(),
            subject: Subject::parse("svc.*.req").unwrap(),
            kind: ExportKind::Stream,
            token_req: false,
            response_type: Some(ResponseType::Stream),
            account_token_position: Some(2),
            description: String::new(),
            advertise: false,
        };
        assert!(matches!(ex.validate(), Err(ModelError::ResponseTypeOnStream(_))));
        ex.kind = ExportKind::Service;
        ex.validate().unwrap();
        ex.account_token_position = Some(1);
        assert!(matches!(ex.validate(), Err(ModelError::TokenPosition { position: 1, .. })));
        ex.account_token_position = Some(0);
        assert!(matches!(ex.validate(), Err(ModelError::TokenPosition { position: 0, .. })));
    }

    #[test]
    fn callout_only_on_auth_with_curve_key() {
        let mut acc = account();
        acc.callout = Some(CalloutConfig::default());
        assert!(matches!(acc.validate(), Err(ModelError::CalloutOnNonAuthAccount(_))));
        acc.kind = AccountKind::Auth;
        acc.validate().unwrap();
        acc.callout.as_mut().unwrap().xkey = Some(KeyPair::generate(KeyKind::User).seed());
        assert!(matches!(acc.validate(), Err(ModelError::XkeyKind(KeyKind::User))));
    }

    #[test]
    fn serde_round_trip() {
        let acc = account();
        let json = serde_json::to_string(&acc).unwrap();
        let back: Account = serde_json::from_str(&json).unwrap();
        assert_eq!(back, acc);
    }
}
