//! Who may call the HTTP API: bearer tokens of named admins (made, listed and revoked with
//! `pbn admin admin token`), and the scope and read-only flag of their admin.

use serde_json::json;

use super::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_or_with_a_revoked_one_get_401() {
    let api = Api::start().await;
    let none = api.call("GET", "/api/v1/accounts", None, None).await;
    assert_eq!((none.status, none.body["error"]["class"].as_str()), (401, Some("unauthenticated")));
    assert!(none.headers.contains("www-authenticate: bearer"), "{none:?}");
    let forged = format!("pbn_{}", "A".repeat(43));
    let bad = api.call("GET", "/api/v1/accounts", Some(&forged), None).await;
    assert_eq!(bad.status, 401, "{bad:?}");

    api.wait_admin_ready().await;
    let out = api.admin_cli(&["admin", "token", "add", "ops", "--label", "ci"]).await;
    let stdout = &out.success().stdout;
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no token printed: {stdout}"));
    let ok = api.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let list = api.admin_cli(&["admin", "token", "list", "ops", "--json"]).await;
    let list = list.success().json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .or_else(|| list.as_array())
        .expect("a token list")
        .iter()
        .filter(|t| t["label"] == "ci")
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "{list}");
    assert!(!list.to_string().contains(&token), "the token is never listed");
    api.admin_cli(&["admin", "token", "revoke", "ops", ids[0]]).await.success();
    let revoked = api.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!(revoked.status, 401, "{revoked:?}");

    // Revoking over HTTP works the same, the caller's own token included.
    let (other, other_id) = api.token_and_id("ops");
    let (mine, mine_id) = api.token_and_id("ops");
    let listed = api.call("GET", "/api/v1/admins/ops/tokens", Some(&mine), None).await;
    let ids = listed.body["ok"]["data"].to_string();
    assert!(ids.contains(&other_id) && ids.contains(&mine_id), "{listed:?}");
    for (token, id) in [(&other, &other_id), (&mine, &mine_id)] {
        let path = format!("/api/v1/admins/ops/tokens/{id}");
        let gone = api.call("DELETE", &path, Some(&mine), None).await;
        assert_eq!(gone.status, 200, "{gone:?}");
        assert_eq!(api.call("GET", "/api/v1/accounts", Some(token), None).await.status, 401);
    }
    let path = format!("/api/v1/admins/ops/tokens/{mine_id}");
    let again = api.call("DELETE", &path, Some(&mine), None).await;
    assert_eq!(again.status, 401, "a revoked token cannot revoke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_sees_only_its_account_and_a_reader_cannot_write() {
    let api = Api::start().await;
    let tenant = api.token("tenant");
    let t = Some(tenant.as_str());
    let other = api.call("GET", "/api/v1/accounts/OTHER", t, None).await;
    assert_eq!((other.status, other.body["error"]["class"].as_str()), (403, Some("out_of_scope")));
    assert_eq!(api.call("GET", "/api/v1/accounts/APP", t, None).await.status, 200);
    let users = api.call("GET", "/api/v1/users", t, None).await;
    let names: Vec<&str> = users.body["ok"]["data"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["alice"], "{users:?}");
    assert_eq!(api.call("GET", "/api/v1/users/olga", t, None).await.status, 403);
    let into_other = json!({"name": "eve", "account": "OTHER", "role": "app"});
    assert_eq!(api.call("POST", "/api/v1/users", t, Some(into_other)).await.status, 403);
    assert_eq!(api.call("POST", "/api/v1/admins/tenant/tokens", t, None).await.status, 403);
    let own = json!({"name": "ann", "account": "APP", "role": "app"});
    assert_eq!(api.call("POST", "/api/v1/users", t, Some(own)).await.status, 200);

    let reader = api.token("reader");
    let r = Some(reader.as_str());
    let write = api.call("POST", "/api/v1/accounts", r, Some(json!({"name": "NEW"}))).await;
    assert_eq!(
        (write.status, write.body["error"]["class"].as_str()),
        (403, Some("read_only_admin"))
    );
    assert_eq!(api.call("GET", "/api/v1/accounts", r, None).await.status, 200);
    // The refusals are in the audit trail.
    let ops = api.token("ops");
    let audit = api.call("GET", "/api/v1/audit?admin=tenant", Some(&ops), None).await;
    assert!(audit.body.to_string().contains("refused"), "{audit:?}");
}
