//! The admin request: one enum over every command type, the one vocabulary of local and remote
//! administration.
//!
//! Requests carry raw user input (names, subjects, limits as given); [`super::execute`] validates
//! them into model values inside the store transaction. Passwords never travel: the client hashes
//! them (argon2id) and sends the PHC string. Secrets created by the service (creds, API tokens) are
//! in the response once and never stored.

use serde::{Deserialize, Serialize};

use super::accounts::{AccountAdd, AccountDelete, AccountEdit, AccountList, AccountShow};
use super::admins::{AdminAdd, AdminDelete, AdminList, AdminRevoke, AdminShow};
use super::api_tokens::{AdminPasswd, AdminTokenAdd, AdminTokenList, AdminTokenRevoke};
use super::audit::AuditList;
use super::bulk::{BulkCheck, BulkExport, BulkImport};
use super::idps::{IdpAdd, IdpDelete, IdpEdit, IdpList, IdpMap, IdpShow, IdpUnmap};
use super::init::{NatsConfTrust, OperatorAdminCreds, OperatorShow};
use super::outbox::{OutboxList, OutboxRetry};
use super::replicas::{ReplicaAdd, ReplicaList, ReplicaRemove, ReplicaShow};
use super::roles::{RoleAdd, RoleDelete, RoleEdit, RoleList, RoleShow};
use super::sessions::{SessionKick, SessionList};
use super::shares::{ExportAdd, ExportRemove, ImportAdd, ImportRemove};
use super::signing_keys::{AccountRotateKeys, AccountSigningKeyAdd, AccountSigningKeyRemove};
use super::tokens::{TokenAdd, TokenList, TokenRevoke};
use super::users::{UserAdd, UserCreds, UserDelete, UserEdit, UserList, UserPasswd, UserShow};
use super::{AdminError, Command, Context, Outcome};
use crate::store::Store;

/// Declares [`Request`], the wire enum of every command (internally tagged by `op`, the
/// command's [`Command::NAME`]), and its exhaustive dispatch: adding a command to the list is the
/// only way to make it reachable, and the compiler then requires its [`Command`] impl.
macro_rules! requests {
    ($($command:ident),* $(,)?) => {
        /// Every admin operation, each its own type (see [`Command`]). `Debug` shows the JSON
        /// form with password hashes redacted, so a logged request never carries one.
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            $(
                #[doc = concat!("See [`", stringify!($command), "`].")]
                $command($command),
            )*
        }

        impl Request {
            /// The command's name (`op` on the wire).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Request::$command(_) => <$command as Command>::NAME,)*
                }
            }

            /// True for commands that only read.
            pub fn is_read_only(&self) -> bool {
                match self {
                    $(Request::$command(_) => <$command as Command>::READ_ONLY,)*
                }
            }

            /// Runs the command: one read or one write transaction.
            pub(super) fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
                match self {
                    $(Request::$command(c) => c.run(store, ctx),)*
                }
            }

            /// One request of every kind, with default fields (for exhaustive tests).
            #[cfg(test)]
            pub(crate) fn every_kind() -> Vec<Request> {
                vec![$(Request::$command($command::default()),)*]
            }
        }

        $(
            impl From<$command> for Request {
                fn from(c: $command) -> Request {
                    Request::$command(c)
                }
            }
        )*
    };
}

requests! {
    OperatorShow,
    OperatorAdminCreds,
    AccountAdd,
    AccountList,
    AccountShow,
    AccountEdit,
    AccountDelete,
    ExportAdd,
    ExportRemove,
    ImportAdd,
    ImportRemove,
    AccountRotateKeys,
    AccountSigningKeyAdd,
    AccountSigningKeyRemove,
    RoleAdd,
    RoleList,
    RoleShow,
    RoleEdit,
    RoleDelete,
    UserAdd,
    UserList,
    UserShow,
    UserEdit,
    UserDelete,
    UserPasswd,
    UserCreds,
    TokenAdd,
    TokenList,
    TokenRevoke,
    OutboxList,
    NatsConfTrust,
    OutboxRetry,
    AdminAdd,
    AdminList,
    AdminShow,
    AdminRevoke,
    AdminDelete,
    AuditList,
    SessionList,
    SessionKick,
    ReplicaAdd,
    ReplicaList,
    ReplicaShow,
    ReplicaRemove,
    AdminTokenAdd,
    AdminTokenList,
    AdminTokenRevoke,
    AdminPasswd,
    BulkCheck,
    BulkImport,
    BulkExport,
    IdpAdd,
    IdpList,
    IdpShow,
    IdpEdit,
    IdpDelete,
    IdpMap,
    IdpUnmap,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(hash) = v.get_mut("password_hash").filter(|h| !h.is_null()) {
            *hash = serde_json::Value::String("<redacted>".into());
        }
        write!(f, "Request({v})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password_hashes() {
        let phc = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        let req = Request::from(UserPasswd { name: "alice".into(), password_hash: phc.into() });
        let shown = format!("{req:?}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("alice") && shown.contains("<redacted>"), "{shown}");
        let req = Request::from(AccountShow { name: "APP".into() });
        assert!(format!("{req:?}").contains("account_show"));
    }

    #[test]
    fn every_command_is_named_on_the_wire_as_its_name_says_and_round_trips() {
        let all = Request::every_kind();
        assert_eq!(all.len(), 58);
        let mut names = std::collections::HashSet::new();
        for req in all {
            let json = serde_json::to_value(&req).expect("encodes");
            assert_eq!(json["op"], req.name(), "{json}");
            assert!(names.insert(req.name()), "{} named twice", req.name());
            let back: Request = serde_json::from_value(json).expect("decodes");
            assert_eq!(back, req);
        }
    }
}
