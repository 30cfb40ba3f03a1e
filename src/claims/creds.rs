//! Creds files: a user JWT and its seed in Go's decorated layout (`FormatUserConfig`).

use zeroize::Zeroizing;

use crate::keys::{KeyKind, KeyPair, Seed};

use super::ClaimsError;

/// A parsed creds file. `Debug` never shows the seed.
#[derive(Debug, Clone)]
pub struct Creds {
    /// The user JWT.
    pub jwt: String,
    /// The seed (normally a user seed).
    pub seed: Seed,
}

impl Creds {
    /// The key pair of the seed.
    pub fn key_pair(&self) -> Result<KeyPair, ClaimsError> {
        KeyPair::from_seed(&self.seed).map_err(ClaimsError::CredsSeed)
    }
}

/// Writes `jwt` and `seed` exactly as Go's `jwt.FormatUserConfig` does (the seed block is
/// labelled by the seed's kind, `USER` for user seeds). The result holds the seed, so it is
/// wiped on drop.
pub fn format_user_creds(jwt: &str, seed: &Seed) -> Zeroizing<String> {
    let kind = match seed.kind() {
        Ok(KeyKind::Account) => "ACCOUNT",
        Ok(KeyKind::Operator) => "OPERATOR",
        _ => "USER",
    };
    let secret = seed.expose();
    let mut out = Zeroizing::new(String::with_capacity(jwt.len() + secret.len() + 400));
    out.push_str("-----BEGIN NATS USER JWT-----\n");
    out.push_str(jwt);
    out.push_str("\n------END NATS USER JWT------\n\n");
    out.push_str("************************* IMPORTANT *************************\n");
    out.push_str("NKEY Seed printed below can be used to sign and prove identity.\n");
    out.push_str("NKEYs are sensitive and should be treated as secrets.\n\n");
    out.push_str("-----BEGIN ");
    out.push_str(kind);
    out.push_str(" NKEY SEED-----\n");
    out.push_str(secret);
    out.push_str("\n------END ");
    out.push_str(kind);
    out.push_str(" NKEY SEED------\n\n");
    out.push_str("*************************************************************\n");
    out
}

fn is_fence(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 6 && line.starts_with("---") && line.ends_with("---")
}

fn is_token(line: &str) -> bool {
    !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
}

/// The values framed by `---…---` fence lines, in order (Go's `userConfigRE`).
fn fenced_blocks(contents: &str) -> Vec<&str> {
    let lines: Vec<&str> = contents.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i + 2 < lines.len() {
        if is_fence(lines[i]) && is_token(lines[i + 1]) && is_fence(lines[i + 2]) {
            blocks.push(lines[i + 1]);
            i += 3;
        } else {
            i += 1;
        }
    }
    blocks
}

/// Reads a creds file as Go's `ParseDecoratedJWT` / `ParseDecoratedNKey` do: the first fenced
/// block is the JWT, the second the seed; without fences, a line starting with `SU`, `SA` or
/// `SO` is taken as the seed.
pub fn parse_creds(contents: &str) -> Result<Creds, ClaimsError> {
    let blocks = fenced_blocks(contents);
    let jwt = blocks.first().ok_or(ClaimsError::CredsMissing("jwt"))?;
    let seed_text = match blocks.get(1) {
        Some(seed) => *seed,
        None => contents
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("SU") || l.starts_with("SA") || l.starts_with("SO"))
            .ok_or(ClaimsError::CredsMissing("seed"))?,
    };
    let seed = Seed::new(seed_text).map_err(ClaimsError::CredsSeed)?;
    Ok(Creds { jwt: (*jwt).to_string(), seed })
}
