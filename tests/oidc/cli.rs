//! `pbn admin idp …` on a store file with the real binary: JSON output, bad input with its
//! exit code, and nothing changed by a refused command.

use crate::support::pbn::{Pbn, PbnOutput};

struct Store {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Store {
    fn init() -> Store {
        let dir = tempfile::Builder::new().prefix("pbn-idp-").tempdir().expect("temp dir");
        let path = dir.path().join("pbn.redb");
        Pbn::new(["init", "--store"]).args([&path]).run().success();
        Store { _dir: dir, path }
    }

    fn admin(&self, args: &[&str]) -> PbnOutput {
        Pbn::new(["admin", "--store"]).args([&self.path]).args(args).run()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self._dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    }
}

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

#[test]
fn idp_commands_answer_in_json_and_refuse_bad_input_with_their_exit_codes() {
    let s = Store::init();
    s.admin(&["account", "add", "APP"]).success();
    s.admin(&["role", "add", "dev", "--pub", "dev.>"]).success();
    let jwks = s.file("jwks.json", JWKS);
    let added = s.admin(&[
        "--json",
        "idp",
        "add",
        "kc",
        "--issuer",
        "https://kc.example.com/realms/a",
        "--audience",
        "nats",
        "--jwks-file",
        &jwks,
        "--username-claim",
        "email",
        "--leeway",
        "10s",
    ]);
    let v = added.success().json();
    assert_eq!(v["data"]["keys"], "inline", "{v}");
    assert_eq!(v["data"]["username_claim"], "email");
    assert_eq!(v["data"]["leeway_secs"], 10);
    s.admin(&[
        "idp",
        "map",
        "kc",
        "--claim",
        "realm_access.roles",
        "--value",
        "dev",
        "--account",
        "APP",
        "--role",
        "dev",
    ])
    .success();
    s.admin(&["idp", "map", "kc", "--default", "--account", "APP", "--role", "dev"]).success();
    let shown = s.admin(&["--json", "idp", "show", "kc"]).success().json();
    assert_eq!(shown["data"]["mappings"][0]["claim"], "realm_access.roles", "{shown}");
    assert_eq!(shown["data"]["default"]["account"], "APP");
    let listed = s.admin(&["idp", "list"]);
    assert!(listed.success().streams().contains("kc"));

    let state = || s.admin(&["--json", "idp", "list"]).success().json();
    let before = state();
    // Bad input: exit 2; missing records: exit 3; taken names: exit 4.
    s.admin(&["idp", "add", "x", "--issuer", "http://kc.example.com", "--audience", "n"]).code(2);
    s.admin(&["idp", "add", "x", "--issuer", "https://x", "--audience", "n", "--leeway", "1h"])
        .code(2);
    let hmac = s.file("oct.json", r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#);
    s.admin(&["idp", "add", "x", "--issuer", "https://x", "--audience", "n", "--jwks-file", &hmac])
        .code(2);
    s.admin(&["idp", "add", "kc", "--issuer", "https://other", "--audience", "n"]).code(4);
    s.admin(&["idp", "add", "x", "--issuer", "https://kc.example.com/realms/a", "--audience", "n"])
        .code(4);
    s.admin(&["idp", "show", "nope"]).code(3);
    s.admin(&[
        "idp",
        "map",
        "kc",
        "--claim",
        "groups",
        "--value",
        "v",
        "--account",
        "NOPE",
        "--role",
        "dev",
    ])
    .code(3);
    s.admin(&[
        "idp",
        "map",
        "kc",
        "--claim",
        "groups",
        "--value",
        "v",
        "--account",
        "SYS",
        "--role",
        "dev",
    ])
    .code(2);
    s.admin(&["idp", "map", "kc", "--claim", "groups", "--account", "APP", "--role", "dev"])
        .code(2);
    s.admin(&["idp", "unmap", "kc", "--claim", "groups", "--value", "v"]).code(3);
    assert_eq!(state(), before, "refused commands change nothing");

    s.admin(&["idp", "unmap", "kc", "--default"]).success();
    s.admin(&["idp", "edit", "kc", "--discovery", "--provision", "true"]).success();
    let shown = s.admin(&["--json", "idp", "show", "kc"]).success().json();
    assert_eq!(
        (shown["data"]["keys"].as_str(), shown["data"]["provision"].as_bool()),
        (Some("discovery"), Some(true))
    );
    assert!(shown["data"]["default"].is_null());
    s.admin(&["idp", "delete", "kc"]).success();
    s.admin(&["idp", "delete", "kc"]).code(3);
}
