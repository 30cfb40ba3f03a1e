//! Exit classes of the pure layers' errors (minting, claims, records, keys, credentials) and
//! of the store key at the edge.

use super::{Classify, ExitClass};
use crate::auth::AuthError;
use crate::claims::ClaimsError;
use crate::issue::IssueError;
use crate::keys::KeyError;
use crate::model::ModelError;
use crate::seal::SealError;

use super::super::rekey::RekeyError;
use super::super::requests::NotARequest;
use super::super::store_key::StoreKeyError;

/// Minting fails on stored data, not on the command's input: exit 1, as the admin layer says.
impl Classify for IssueError {
    fn exit_class(&self) -> ExitClass {
        match self {
            IssueError::Claims(_)
            | IssueError::Model(_)
            | IssueError::Key(_)
            | IssueError::NoSigningKey(_)
            | IssueError::Invalid { .. } => ExitClass::Other,
            // A role's templates that do not fill in for a user: fixed by editing the user.
            IssueError::Render(_) => ExitClass::Usage,
        }
    }
}

/// A token pbn cannot read or write is data gone wrong, not a bad flag (exit 1).
impl Classify for ClaimsError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ClaimsError::TooLarge { .. }
            | ClaimsError::PartCount { .. }
            | ClaimsError::Base64 { .. }
            | ClaimsError::Header { .. }
            | ClaimsError::TokenType { .. }
            | ClaimsError::Algorithm { .. }
            | ClaimsError::Payload { .. }
            | ClaimsError::UnsupportedVersion { .. }
            | ClaimsError::MissingVersion { .. }
            | ClaimsError::UnsupportedType { .. }
            | ClaimsError::WrongType { .. }
            | ClaimsError::InvalidIssuer { .. }
            | ClaimsError::BadSignature { .. }
            | ClaimsError::IssuerKind { .. }
            | ClaimsError::MissingSubject { .. }
            | ClaimsError::SubjectKind { .. }
            | ClaimsError::SignerKind { .. }
            | ClaimsError::AccountServerUrl { .. }
            | ClaimsError::Serialize { .. }
            | ClaimsError::Invalid(_)
            | ClaimsError::CredsMissing(_)
            | ClaimsError::CredsSeed(_)
            | ClaimsError::Xkey(_) => ExitClass::Other,
        }
    }
}

/// A value the model refuses is bad input (exit 2), as the admin layer classifies it.
impl Classify for ModelError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ModelError::LimitBelowMinusOne(_)
            | ModelError::LimitNotANumber(_)
            | ModelError::NameLength(_)
            | ModelError::NameStart(_)
            | ModelError::NameChar { .. }
            | ModelError::SubjectEmpty
            | ModelError::SubjectWhitespace(_)
            | ModelError::SubjectEmptyToken(_)
            | ModelError::SubjectWildcard(_)
            | ModelError::QueueInvalid(_)
            | ModelError::ResponseMaxBelowMinusOne(_)
            | ModelError::JwtTtlTooShort(_)
            | ModelError::ConnectionType(_)
            | ModelError::TextTooLong { .. }
            | ModelError::ReservedName(_)
            | ModelError::JwtTooLarge { .. }
            | ModelError::ControlChar { .. }
            | ModelError::OperatorName(_)
            | ModelError::Key(_)
            | ModelError::KeyMismatch(_)
            | ModelError::NoSigningKey(_)
            | ModelError::RevocationKey(_)
            | ModelError::ResponseTypeOnStream(_)
            | ModelError::TokenPosition { .. }
            | ModelError::CalloutOnNonAuthAccount(_)
            | ModelError::XkeyKind(_)
            | ModelError::Email(_)
            | ModelError::PasswordNotHashed(_)
            | ModelError::TokenId(_)
            | ModelError::TokenHash(_)
            | ModelError::DuplicateToken(_)
            | ModelError::AdminScope(_)
            | ModelError::AdminExpiry(_)
            | ModelError::TooManyTags(_)
            | ModelError::TagKey(_)
            | ModelError::TagValue(_)
            | ModelError::Template(_) => ExitClass::Usage,
        }
    }
}

/// A bad subject template is bad input (exit 2).
impl Classify for crate::model::template::TemplateError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::Unbalanced(_) | Self::Unknown { .. } | Self::Placement(_) => ExitClass::Usage,
        }
    }
}

/// A user whose tags do not fill its role's templates is fixed by editing the user (exit 2).
impl Classify for crate::model::template::RenderError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::MissingTag(_)
            | Self::MissingClaim(_)
            | Self::NotAToken { .. }
            | Self::Template(_) => ExitClass::Usage,
        }
    }
}

/// A rekey asked of the service, or onto the key in use, is a usage error.
impl Classify for RekeyError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }
}

/// Only reachable by a command that is not an admin request: a usage error.
impl Classify for NotARequest {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }
}

/// A key or seed pbn refuses is bad input (exit 2), as the admin layer classifies it.
impl Classify for StoreKeyError {
    fn exit_class(&self) -> ExitClass {
        match self {
            StoreKeyError::Missing(_) | StoreKeyError::Invalid { .. } => ExitClass::StoreKey,
            StoreKeyError::Read { .. } => ExitClass::Other,
        }
    }
}

impl Classify for SealError {
    fn exit_class(&self) -> ExitClass {
        match self {
            SealError::WrongKey | SealError::KeyLength(_) | SealError::KeyText => {
                ExitClass::StoreKey
            }
            SealError::Open { .. }
            | SealError::UnknownVersion { .. }
            | SealError::Truncated { .. }
            | SealError::Encoding { .. }
            | SealError::NotASeed { .. }
            | SealError::Kdf(_) => ExitClass::Other,
        }
    }
}

impl Classify for KeyError {
    fn exit_class(&self) -> ExitClass {
        match self {
            KeyError::InvalidPublicKey(_)
            | KeyError::WrongKind { .. }
            | KeyError::InvalidSeed { .. }
            | KeyError::WrongSeedKind { .. }
            | KeyError::BadSignature(_)
            | KeyError::Xkey(_) => ExitClass::Usage,
        }
    }
}

/// Credential checks fail on stored hashes or at login, not on the command's input (exit 1),
/// as the admin layer classifies them.
impl Classify for AuthError {
    fn exit_class(&self) -> ExitClass {
        match self {
            AuthError::EmptyPassword
            | AuthError::PasswordTooLong { .. }
            | AuthError::InvalidParams { .. }
            | AuthError::Hashing(_)
            | AuthError::MalformedHash { .. }
            | AuthError::UnsupportedAlgorithm { .. }
            | AuthError::MissingNonce { .. }
            | AuthError::MissingSignature { .. }
            | AuthError::SignatureEncoding { .. }
            | AuthError::BadSignature { .. }
            | AuthError::Throttled { .. }
            | AuthError::InvalidThrottleConfig(_)
            | AuthError::InvalidHost(_) => ExitClass::Other,
        }
    }
}
