//! Exit classes of the runtime's errors (`pbn serve` and the nats-server harness).

use super::{chain_class, Classify, ExitClass};
use crate::auth::oidc::OidcError;
use crate::natsd::NatsdError;
use crate::server::callout::CalloutError;
use crate::server::connection::ConnectionError;
use crate::server::http::HttpError;
use crate::server::lifecycle::LifecycleError;
use crate::server::publisher::PublisherError;
use crate::server::sessions::SessionsError;
use crate::server::version::VersionError;
use crate::server::ServerError;

impl Classify for ServerError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ServerError::Store(e) => e.exit_class(),
            ServerError::Callout(e) => e.exit_class(),
            ServerError::Connection(e) => e.exit_class(),
            ServerError::Version { source, .. } => source.exit_class(),
            ServerError::Http(e) => e.exit_class(),
            ServerError::Replica(e) => e.exit_class(),
            ServerError::NotInitialised(_) | ServerError::Task(_) => ExitClass::Other,
        }
    }
}

impl Classify for HttpError {
    fn exit_class(&self) -> ExitClass {
        match self {
            // An address taken or not ours is like a port `pbn up` finds in use.
            HttpError::Bind { .. } | HttpError::Serve { .. } => ExitClass::Other,
            // A certificate or key that cannot be used is bad input.
            HttpError::Tls { .. } => ExitClass::Usage,
        }
    }
}

impl Classify for NatsdError {
    fn exit_class(&self) -> ExitClass {
        // `pbn up` reports a nats-server that cannot be found, started or kept running as a
        // failure of the run itself, not of the input.
        match self {
            NatsdError::NotFound { .. }
            | NatsdError::NotExecutable { .. }
            | NatsdError::Io { .. }
            | NatsdError::Spawn { .. }
            | NatsdError::PortInUse { .. }
            | NatsdError::Exited { .. }
            | NatsdError::NotReady { .. }
            | NatsdError::Signal { .. }
            | NatsdError::NotRunning { .. }
            | NatsdError::NoMonitoring { .. }
            | NatsdError::Monitor { .. } => ExitClass::Other,
        }
    }
}

impl Classify for VersionError {
    fn exit_class(&self) -> ExitClass {
        match self {
            VersionError::Unreadable(_) | VersionError::TooOld { .. } => ExitClass::Other,
        }
    }
}

impl Classify for ConnectionError {
    fn exit_class(&self) -> ExitClass {
        match self {
            // The provider's error may be a store error (a locked or missing store).
            ConnectionError::Credentials { source, .. } => chain_class(source.as_ref()),
            ConnectionError::NoServers
            | ConnectionError::InvalidServerUrl { .. }
            | ConnectionError::InvalidSetting { .. }
            | ConnectionError::NoRuntime { .. }
            | ConnectionError::InvalidSeed { .. }
            | ConnectionError::Connect { .. }
            | ConnectionError::Lost { .. }
            | ConnectionError::Timeout { .. }
            | ConnectionError::Flush { .. }
            | ConnectionError::Supervisor { .. } => ExitClass::Other,
        }
    }
}

/// A refused login is the client's problem, not the command's: only a store error classifies.
impl Classify for CalloutError {
    fn exit_class(&self) -> ExitClass {
        match self {
            CalloutError::Store(e) => e.exit_class(),
            CalloutError::UnexpectedSealed
            | CalloutError::ExpectedSealed
            | CalloutError::MissingXkeyHeader
            | CalloutError::Open(_)
            | CalloutError::NotUtf8
            | CalloutError::Decode(_)
            | CalloutError::IssuerMismatch { .. }
            | CalloutError::XkeyMismatch { .. }
            | CalloutError::Audience(_)
            | CalloutError::Expired { .. }
            | CalloutError::WrongAccount(_)
            | CalloutError::UserNkey(_)
            | CalloutError::NoCredentials
            | CalloutError::UnknownUser(_)
            | CalloutError::BadPassword(_)
            | CalloutError::UnknownToken
            | CalloutError::TokenExpired { .. }
            | CalloutError::UnknownNkey(_)
            | CalloutError::NkeySignature { .. }
            | CalloutError::Throttled(_)
            | CalloutError::InactiveUser(_)
            | CalloutError::InactiveAccount(_)
            | CalloutError::UnmanagedAccount(_)
            | CalloutError::SourceNotAllowed { .. }
            | CalloutError::ConnectionLimit { .. }
            | CalloutError::ChangedDuringLogin(_)
            | CalloutError::Busy { .. }
            | CalloutError::ResponseTooLarge { .. }
            | CalloutError::Subjects { .. }
            | CalloutError::Issue(_)
            | CalloutError::Auth(_) => ExitClass::Other,
            CalloutError::Oidc(e) => e.exit_class(),
        }
    }
}

/// A refused token is the client's problem; a bad JWKS file given to `idp add` is bad input.
impl Classify for OidcError {
    fn exit_class(&self) -> ExitClass {
        match self {
            OidcError::Document { .. } => ExitClass::Usage,
            OidcError::TooLarge { .. }
            | OidcError::Malformed(_)
            | OidcError::AlgorithmNotAllowed(_)
            | OidcError::UnknownIssuer(_)
            | OidcError::UnknownKey { .. }
            | OidcError::BadSignature(_)
            | OidcError::WrongAudience { .. }
            | OidcError::NoExpiry
            | OidcError::Expired { .. }
            | OidcError::NotYetValid { .. }
            | OidcError::IssuedInFuture { .. }
            | OidcError::NoUserName { .. }
            | OidcError::NoMapping { .. }
            | OidcError::MissingTarget { .. }
            | OidcError::NameTaken(_)
            | OidcError::KeysUnavailable { .. }
            | OidcError::Fetch { .. }
            | OidcError::Store(_) => ExitClass::Other,
        }
    }
}

impl Classify for PublisherError {
    fn exit_class(&self) -> ExitClass {
        match self {
            PublisherError::Store(e) => e.exit_class(),
            PublisherError::Replica(e) => e.exit_class(),
            PublisherError::Issue(_)
            | PublisherError::Claims(_)
            | PublisherError::Key(_)
            | PublisherError::Nats { .. }
            | PublisherError::NoReply { .. }
            | PublisherError::NoResponders { .. }
            | PublisherError::Rejected { .. }
            | PublisherError::BadReply { .. }
            | PublisherError::NotApplied { .. }
            | PublisherError::NotDeleted { .. } => ExitClass::Other,
        }
    }
}

impl Classify for LifecycleError {
    fn exit_class(&self) -> ExitClass {
        match self {
            LifecycleError::Request { .. } | LifecycleError::Refused { .. } => ExitClass::Other,
        }
    }
}

impl Classify for SessionsError {
    fn exit_class(&self) -> ExitClass {
        match self {
            SessionsError::NoAnswer { .. }
            | SessionsError::Request { .. }
            | SessionsError::Reply { .. }
            | SessionsError::TooLarge(_) => ExitClass::Other,
        }
    }
}
