//! API token commands.

use serde::{Deserialize, Serialize};

use super::view::{Response, TokenView};
use super::{check_lifetime, reading, writing, AdminError, Command, Context, Outcome};
use crate::auth::ApiTokenSecret;
use crate::model::ApiToken;
use crate::store::{Store, StoreRead};

/// Create an API token; the secret is in the answer only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAdd {
    /// User name.
    pub name: String,
    /// Label.
    pub label: Option<String>,
    /// Lifetime in seconds.
    pub expires_secs: Option<u64>,
}

impl Command for TokenAdd {
    const NAME: &'static str = "token_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            if let Some(secs) = self.expires_secs {
                check_lifetime("token lifetime", secs)?;
            }
            let mut u = tx.require_user(&self.name)?;
            let secret = ApiTokenSecret::generate();
            let id = token_id();
            u.tokens.push(ApiToken {
                id: id.clone(),
                label: self.label.clone().unwrap_or_default(),
                hash: secret.hash(),
                created: ctx.now,
                expires: self.expires_secs.map(|s| ctx.now.saturating_add_unsigned(s)),
            });
            u.updated = ctx.now;
            tx.update_user(&u)?;
            let token = secret.expose().to_string();
            Ok(Response::Token { user: self.name.clone(), id, token })
        })
    }
}

/// List a user's tokens (never their secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// User name.
    pub name: String,
}

impl Command for TokenList {
    const NAME: &'static str = "token_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let u = tx.require_user(&self.name)?;
            let tokens = u.tokens.iter().map(|t| TokenView {
                id: t.id.clone(),
                label: t.label.clone(),
                created: t.created,
                expires: t.expires,
            });
            Ok(Response::Tokens(tokens.collect()))
        })
    }
}

/// Revoke a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoke {
    /// User name.
    pub name: String,
    /// Token id.
    pub id: String,
}

impl Command for TokenRevoke {
    const NAME: &'static str = "token_revoke";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let (name, id) = (&self.name, &self.id);
            let mut u = tx.require_user(name)?;
            let before = u.tokens.len();
            u.tokens.retain(|t| &t.id != id);
            if u.tokens.len() == before {
                return Err(AdminError::NotFound { what: "token", name: id.clone() });
            }
            u.updated = ctx.now;
            tx.update_user(&u)?;
            Ok(Response::Done { message: format!("token {id} of {name} revoked") })
        })
    }
}

/// A fresh token id (`tok_` and 64 random bits in base32).
pub(super) fn token_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!("tok_{}", data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase())
}
