//! Validated names (accounts, roles, users) and NATS subjects.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{clip, ModelError};

/// Longest allowed [`Name`], in characters.
pub const NAME_MAX_LEN: usize = 64;

/// The name of an account, role or user: 1 to 64 characters of `[A-Za-z0-9_-]`, starting with a
/// letter or a digit.
///
/// Names are keys in the store and appear in JWTs and on command lines, so they exclude anything
/// that needs quoting. Comparison is exact (case-sensitive).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        Self::check(text)?;
        Ok(Name(text.to_string()))
    }

    fn check(text: &str) -> Result<(), ModelError> {
        if text.is_empty() || text.len() > NAME_MAX_LEN {
            return Err(ModelError::NameLength(clip(text)));
        }
        // Invariant: text is non-empty, checked just above.
        let first = text.chars().next().expect("name is non-empty");
        if !first.is_ascii_alphanumeric() {
            return Err(ModelError::NameStart(clip(text)));
        }
        if let Some(ch) =
            text.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(ModelError::NameChar { name: clip(text), ch });
        }
        Ok(())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = ModelError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::check(&value)?;
        Ok(Name(value))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl FromStr for Name {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::parse(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Account names pbn creates itself (`pbn init`): refused for new accounts in any letter case, so
/// `sys` cannot pass for the system account in listings and logs.
pub const RESERVED_NAMES: [&str; 2] = [SYS_ACCOUNT, AUTH_ACCOUNT];

/// Name of the system account.
pub const SYS_ACCOUNT: &str = "SYS";
/// Name of the callout account, whose users are the callout service.
pub const AUTH_ACCOUNT: &str = "AUTH";

/// Whether `name` is one of [`RESERVED_NAMES`], ignoring ASCII case.
pub fn is_reserved(name: &str) -> bool {
    RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A NATS subject or subject pattern, as used in permissions, exports and imports.
///
/// Rules: not empty; no whitespace or control characters; tokens (separated by `.`) are never
/// empty; `*` and `>` appear only as whole tokens; `>` only as the last token.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

impl Subject {
    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        check_subject(text)?;
        Ok(Subject(text.to_string()))
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the subject contains a `*` or `>` wildcard token.
    pub fn has_wildcard(&self) -> bool {
        self.0.split('.').any(|t| t == "*" || t == ">")
    }
}

fn check_subject(text: &str) -> Result<(), ModelError> {
    if text.is_empty() {
        return Err(ModelError::SubjectEmpty);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ModelError::SubjectWhitespace(clip(text)));
    }
    let mut tokens = text.split('.').peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() {
            return Err(ModelError::SubjectEmptyToken(clip(text)));
        }
        let is_last = tokens.peek().is_none();
        let misplaced_wildcard =
            (token.len() > 1 && token.contains(['*', '>'])) || (token == ">" && !is_last);
        if misplaced_wildcard {
            return Err(ModelError::SubjectWildcard(clip(text)));
        }
    }
    Ok(())
}

impl TryFrom<String> for Subject {
    type Error = ModelError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_subject(&value)?;
        Ok(Subject(value))
    }
}

impl From<Subject> for String {
    fn from(subject: Subject) -> String {
        subject.0
    }
}

impl FromStr for Subject {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subject::parse(s)
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A subscribe-permission entry: a subject, optionally restricted to one queue group, written
/// `"subject queue"` as NATS permissions spell it. The queue follows the subject rules (it may
/// be a pattern such as `workers.*`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubSubject {
    subject: Subject,
    queue: Option<Subject>,
}

impl SubSubject {
    /// Parses `"subject"` or `"subject queue"` (one space between them).
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text.split_once(' ') {
            None => Ok(SubSubject { subject: Subject::parse(text)?, queue: None }),
            Some((subject, queue)) => {
                let subject = Subject::parse(subject)?;
                let queue =
                    Subject::parse(queue).map_err(|_| ModelError::QueueInvalid(clip(text)))?;
                Ok(SubSubject { subject, queue: Some(queue) })
            }
        }
    }

    /// A plain subject entry without a queue.
    pub fn new(subject: Subject) -> Self {
        SubSubject { subject, queue: None }
    }

    /// A subject entry restricted to `queue`.
    pub fn with_queue(subject: Subject, queue: Subject) -> Self {
        SubSubject { subject, queue: Some(queue) }
    }

    /// The subject part.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The queue group part, if any.
    pub fn queue(&self) -> Option<&Subject> {
        self.queue.as_ref()
    }
}

impl From<Subject> for SubSubject {
    fn from(subject: Subject) -> Self {
        SubSubject::new(subject)
    }
}

impl TryFrom<String> for SubSubject {
    type Error = ModelError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        SubSubject::parse(&value)
    }
}

impl From<SubSubject> for String {
    fn from(s: SubSubject) -> String {
        s.to_string()
    }
}

impl FromStr for SubSubject {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SubSubject::parse(s)
    }
}

impl fmt::Display for SubSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.queue {
            None => write!(f, "{}", self.subject),
            Some(q) => write!(f, "{} {}", self.subject, q),
        }
    }
}

impl fmt::Debug for SubSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in ["a", "A1", "0day", "team_ops-2", &"x".repeat(NAME_MAX_LEN)] {
            assert_eq!(Name::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn bad_names_name_the_problem() {
        assert!(matches!(Name::parse(""), Err(ModelError::NameLength(_))));
        assert!(matches!(Name::parse(&"x".repeat(65)), Err(ModelError::NameLength(_))));
        assert!(matches!(Name::parse("_x"), Err(ModelError::NameStart(n)) if n == "_x"));
        assert!(matches!(Name::parse("-x"), Err(ModelError::NameStart(_))));
        assert!(matches!(Name::parse("a b"), Err(ModelError::NameChar { ch: ' ', .. })));
        assert!(matches!(Name::parse("a.b"), Err(ModelError::NameChar { ch: '.', .. })));
        assert!(matches!(Name::parse("é"), Err(ModelError::NameStart(_))));
        assert!(matches!(Name::parse("aé"), Err(ModelError::NameChar { ch: 'é', .. })));
        assert!(matches!(Name::parse("a\n"), Err(ModelError::NameChar { .. })));
    }

    #[test]
    fn names_validate_on_deserialize() {
        assert!(serde_json::from_str::<Name>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<Name>("\"bad name\"").is_err());
    }

    #[test]
    fn good_subjects() {
        for s in ["foo", "foo.bar", "foo.*", "foo.>", ">", "*", "*.bar.>", "$SYS.>", "_INBOX.>"] {
            assert_eq!(Subject::parse(s).unwrap().as_str(), s);
        }
        assert!(Subject::parse("a.*").unwrap().has_wildcard());
        assert!(!Subject::parse("a.b").unwrap().has_wildcard());
    }

    #[test]
    fn bad_subjects() {
        assert_eq!(Subject::parse(""), Err(ModelError::SubjectEmpty));
        for s in ["foo bar", "foo\tbar", " foo", "foo\n"] {
            assert!(matches!(Subject::parse(s), Err(ModelError::SubjectWhitespace(_))), "{s:?}");
        }
        for s in [".foo", "foo.", "foo..bar", "."] {
            assert!(matches!(Subject::parse(s), Err(ModelError::SubjectEmptyToken(_))), "{s:?}");
        }
        for s in [">.foo", "foo.>.bar", "foo*", "foo.b*r", "foo.>>", "a.**", "x>"] {
            assert!(matches!(Subject::parse(s), Err(ModelError::SubjectWildcard(_))), "{s:?}");
        }
        assert!(serde_json::from_str::<Subject>("\"a..b\"").is_err());
    }

    #[test]
    fn sub_subjects_with_and_without_queue() {
        let plain = SubSubject::parse("orders.>").unwrap();
        assert_eq!(plain.subject().as_str(), "orders.>");
        assert!(plain.queue().is_none());
        let q = SubSubject::parse("orders.* workers").unwrap();
        assert_eq!(q.queue().unwrap().as_str(), "workers");
        assert_eq!(q.to_string(), "orders.* workers");
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, "\"orders.* workers\"");
        assert_eq!(serde_json::from_str::<SubSubject>(&json).unwrap(), q);
    }

    #[test]
    fn bad_sub_subjects() {
        assert!(matches!(SubSubject::parse("a b c"), Err(ModelError::QueueInvalid(_))));
        assert!(matches!(SubSubject::parse("a "), Err(ModelError::QueueInvalid(_))));
        assert!(matches!(SubSubject::parse("a..b q"), Err(ModelError::SubjectEmptyToken(_))));
        assert!(matches!(SubSubject::parse(""), Err(ModelError::SubjectEmpty)));
    }
}
