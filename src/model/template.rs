//! Subject templates: per-user subjects from one role (`devices.{{name}}.>`).
//!
//! A role's permission entries may hold placeholders, each standing for exactly one subject
//! token of the user the JWT is minted for:
//! - `{{name}}`: the user name;
//! - `{{account}}`: the account name;
//! - `{{tag:KEY}}`: the user's tag `KEY` (see [`UserTags`]);
//! - `{{claim:PATH}}`: a value of the verified identity-provider claims of the login, `PATH`
//!   being dot-separated keys into the claims object (only logins that carry claims).
//!
//! An entry is checked once, when the role is written ([`check_entry`]): the placeholders must
//! be known and well formed, and the entry with every placeholder replaced by a plain token must
//! be a valid subject (so `{{name}}>` or `*{{name}}` are refused: NATS would not accept them).
//!
//! Rendering ([`render_into`]) is injection-safe: a value must be exactly one subject token (not
//! empty, no `.`, `*`, `>`, whitespace or control characters, see [`is_token`]); otherwise
//! rendering fails and the caller refuses the login or the creds, so a value can never widen a
//! permission. Rendering is one pass: a value holding `{{` is text, never a placeholder. An
//! entry without `{{` is copied as is, without a scan for placeholders.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{clip, ModelError, SubSubject, Subject};

/// Opens a placeholder.
const OPEN: &str = "{{";
/// Closes a placeholder.
const CLOSE: &str = "}}";

/// Longest tag key, in characters.
pub const TAG_KEY_MAX_LEN: usize = 64;
/// Longest tag value, in characters.
pub const TAG_VALUE_MAX_LEN: usize = 256;
/// Most tags a user may have: tags are for a handful of attributes (site, team, device class);
/// the bound keeps a user record, and the work per login, small.
pub const MAX_TAGS: usize = 32;

/// Why a template is not valid (when a role is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without its `}}`.
    #[error("subject template {0:?} has a '{{{{' without its '}}}}'")]
    Unbalanced(String),
    /// A placeholder pbn does not know.
    #[error(
        "subject template {entry:?} has the unknown placeholder {placeholder:?} (known: \
         {{{{name}}}}, {{{{account}}}}, {{{{tag:KEY}}}}, {{{{claim:PATH}}}})"
    )]
    Unknown {
        /// The entry.
        entry: String,
        /// The placeholder as written.
        placeholder: String,
    },
    /// A placeholder that does not form a valid subject with the text around it.
    #[error("subject template {0:?} is not a valid subject once its placeholders are filled in")]
    Placement(String),
}

/// Why an entry could not be rendered for a user (the login or the creds are refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The user lacks a tag the role needs.
    #[error("user has no tag {0:?}, which the role's subjects need")]
    MissingTag(String),
    /// The login carries no claim at this path (or no claims at all).
    #[error("login has no claim {0:?}, which the role's subjects need")]
    MissingClaim(String),
    /// A value that is not exactly one subject token.
    #[error("{what} value {value:?} is not a single subject token (no '.', '*', '>', spaces)")]
    NotAToken {
        /// `name`, `account`, `tag KEY` or `claim PATH`.
        what: String,
        /// The value (cut).
        value: String,
    },
    /// A stored entry that is not a valid template (written by an older build).
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A user's tags: `KEY=VALUE` pairs that subject templates can refer to (`{{tag:KEY}}`).
///
/// Keys are 1 to [`TAG_KEY_MAX_LEN`] characters of `[A-Za-z0-9_-]`; values are 1 to
/// [`TAG_VALUE_MAX_LEN`] printable characters. A value need not be a subject token to be
/// stored: one that is not refuses the logins whose role uses it.
pub type UserTags = BTreeMap<String, String>;

/// Checks a user's tags (see [`UserTags`]).
pub fn check_tags(tags: &UserTags) -> Result<(), ModelError> {
    if tags.len() > MAX_TAGS {
        return Err(ModelError::TooManyTags(tags.len()));
    }
    for (k, v) in tags {
        check_tag_key(k)?;
        let printable = !v.chars().any(char::is_control);
        if v.is_empty() || v.chars().count() > TAG_VALUE_MAX_LEN || !printable {
            return Err(ModelError::TagValue(clip(k)));
        }
    }
    Ok(())
}

/// Checks a tag key: 1 to [`TAG_KEY_MAX_LEN`] characters of `[A-Za-z0-9_-]`.
pub fn check_tag_key(key: &str) -> Result<(), ModelError> {
    let ok = !key.is_empty()
        && key.len() <= TAG_KEY_MAX_LEN
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ModelError::TagKey(clip(key)))
    }
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder<'a> {
    Name,
    Account,
    Tag(&'a str),
    Claim(&'a str),
}

fn placeholder(inner: &str) -> Option<Placeholder<'_>> {
    match inner {
        "name" => return Some(Placeholder::Name),
        "account" => return Some(Placeholder::Account),
        _ => {}
    }
    if let Some(key) = inner.strip_prefix("tag:") {
        return check_tag_key(key).is_ok().then_some(Placeholder::Tag(key));
    }
    let path = inner.strip_prefix("claim:")?;
    let keys_ok = path.split('.').all(|k| !k.is_empty() && k.bytes().all(is_claim_key_byte));
    keys_ok.then_some(Placeholder::Claim(path))
}

fn is_claim_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'/')
}

/// One piece of an entry: literal text, or a placeholder.
enum Piece<'a> {
    Text(&'a str),
    Hole(Placeholder<'a>),
}

/// Calls `f` with each piece of `entry` in order; a `{{…}}` that is not a placeholder is an
/// error. No allocation.
fn pieces<'a, E: From<TemplateError>>(
    entry: &'a str,
    mut f: impl FnMut(Piece<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = entry;
    while let Some(open) = rest.find(OPEN) {
        let (text, after) = rest.split_at(open);
        f(Piece::Text(text))?;
        let after = &after[OPEN.len()..];
        let close = after.find(CLOSE).ok_or_else(|| TemplateError::Unbalanced(clip(entry)))?;
        let inner = &after[..close];
        let hole = placeholder(inner).ok_or_else(|| TemplateError::Unknown {
            entry: clip(entry),
            placeholder: clip(&format!("{{{{{inner}}}}}")),
        })?;
        f(Piece::Hole(hole))?;
        rest = &after[close + CLOSE.len()..];
    }
    f(Piece::Text(rest))
}

/// Whether `entry` holds a placeholder.
pub fn is_template(entry: &str) -> bool {
    entry.contains(OPEN)
}

/// Checks a permission entry when a role is written: placeholders known and well formed, and
/// the entry a valid subject (`queue` false) or subscribe entry (`queue` true, `"subject
/// queue"`) once each placeholder is a plain token.
pub fn check_entry(entry: &str, queue: bool) -> Result<(), TemplateError> {
    if !is_template(entry) {
        return Ok(());
    }
    let mut filled = String::with_capacity(entry.len());
    pieces(entry, |p| {
        match p {
            Piece::Text(t) => filled.push_str(t),
            Piece::Hole(_) => filled.push('x'),
        }
        Ok::<_, TemplateError>(())
    })?;
    let valid =
        if queue { SubSubject::parse(&filled).is_ok() } else { Subject::parse(&filled).is_ok() };
    if valid {
        Ok(())
    } else {
        Err(TemplateError::Placement(clip(entry)))
    }
}

/// What placeholders are filled with for one user.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The user name.
    pub name: &'a str,
    /// The account name.
    pub account: &'a str,
    /// The user's tags.
    pub tags: &'a UserTags,
    /// The verified identity-provider claims of the login, if it has any.
    pub claims: Option<&'a serde_json::Value>,
    /// When set, every placeholder takes this value (the largest JWT a role can produce is
    /// measured this way).
    pub any: Option<&'a str>,
}

impl<'a> RenderContext<'a> {
    fn value(&self, hole: Placeholder<'_>) -> Result<&'a str, RenderError> {
        if let Some(any) = self.any {
            return Ok(any);
        }
        let value = match hole {
            Placeholder::Name => self.name,
            Placeholder::Account => self.account,
            Placeholder::Tag(k) => {
                self.tags.get(k).ok_or_else(|| RenderError::MissingTag(k.into()))?.as_str()
            }
            Placeholder::Claim(path) => self.claim(path)?,
        };
        if !is_token(value) {
            let what = match hole {
                Placeholder::Name => "name".to_string(),
                Placeholder::Account => "account".to_string(),
                Placeholder::Tag(k) => format!("tag {k}"),
                Placeholder::Claim(p) => format!("claim {p}"),
            };
            return Err(RenderError::NotAToken { what, value: clip(value) });
        }
        Ok(value)
    }

    fn claim(&self, path: &str) -> Result<&'a str, RenderError> {
        let missing = || RenderError::MissingClaim(path.into());
        let mut at = self.claims.ok_or_else(missing)?;
        for key in path.split('.') {
            at = at.get(key).ok_or_else(missing)?;
        }
        // Only a string is a value: a number or a list has no single obvious token form.
        at.as_str().ok_or_else(missing)
    }
}

/// Whether `value` is exactly one subject token: not empty, no `.`, `*`, `>`, whitespace or
/// control characters.
pub fn is_token(value: &str) -> bool {
    let bad = |c: char| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control();
    !value.is_empty() && !value.chars().any(bad)
}

/// Appends `entry` with its placeholders filled in from `ctx` to `out`. On an error `out` may
/// hold a partial entry: the caller discards it with the whole JWT.
pub fn render_into(
    entry: &str,
    ctx: &RenderContext<'_>,
    out: &mut String,
) -> Result<(), RenderError> {
    if !is_template(entry) {
        out.push_str(entry);
        return Ok(());
    }
    pieces(entry, |p| {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Hole(h) => out.push_str(ctx.value(h)?),
        }
        Ok(())
    })
}

/// `entry` with its placeholders filled in from `ctx`.
#[cfg(test)]
pub fn render(entry: &str, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(entry.len() + 16);
    render_into(entry, ctx, &mut out)?;
    Ok(out)
}

/// A change of a user's tags: values to set and keys to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagPatch {
    /// Tags to set (replacing a value of the same key).
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    pub unset: Vec<String>,
}

impl TagPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.unset.is_empty()
    }

    /// Applies the patch to `tags` (removals first, then the new values).
    pub fn apply(&self, tags: &mut UserTags) {
        for k in &self.unset {
            tags.remove(k);
        }
        for (k, v) in &self.set {
            tags.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests;
