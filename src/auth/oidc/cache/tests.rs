use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::model::{Name, DEFAULT_LEEWAY_SECS};

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// A JWKS server on loopback counting the requests it answers; it stops when the returned
/// handle is aborted.
async fn jwks_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            counted.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                JWKS.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(JWKS.as_bytes()).await;
        }
    });
    (url, hits, task)
}

fn idp(url: &str) -> IdentityProvider {
    IdentityProvider {
        name: Name::parse("kc").unwrap(),
        issuer: "http://127.0.0.1".into(),
        audience: "nats".into(),
        keys: KeySource::Url(url.into()),
        username_claim: "sub".into(),
        leeway_secs: DEFAULT_LEEWAY_SECS,
        provision: false,
        mappings: vec![],
        default: None,
        created: 0,
        updated: 0,
    }
}

#[tokio::test]
async fn unknown_kids_refresh_at_most_once_per_gap() {
    let (url, hits, server) = jwks_server().await;
    let cache = KeyCache::new(None);
    let p = idp(&url);
    assert_eq!(cache.keys_for(&p, Some("k1")).await.unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Known kid or none: no fetch.
    cache.keys_for(&p, Some("k1")).await.unwrap();
    cache.keys_for(&p, None).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Unknown kids within the gap: the cached set, no fetch.
    for kid in ["x1", "x2", "x3"] {
        assert_eq!(cache.keys_for(&p, Some(kid)).await.unwrap().len(), 1);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "rate-limited");
    // The schedule fetches regardless.
    cache.refresh_all(std::slice::from_ref(&p)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    server.abort();
}

#[tokio::test]
async fn an_unreachable_provider_keeps_its_cached_keys_and_is_reported() {
    let (url, _, server) = jwks_server().await;
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let cache = KeyCache::new(Some(Box::new(move |r| seen.lock().unwrap().push(r))));
    let p = idp(&url);
    cache.keys_for(&p, Some("k1")).await.unwrap();
    server.abort();
    let _ = server.await;
    cache.refresh_all(std::slice::from_ref(&p)).await;
    let got = reports.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![FetchReport { ok: true, unreachable: 0 }, FetchReport { ok: false, unreachable: 1 }]
    );
    assert_eq!(cache.unreachable(), 1);
    assert_eq!(cache.keys_for(&p, Some("k1")).await.unwrap().len(), 1, "cached keys stay");
    // A provider never reached has no keys to fall back on.
    let (dead, _, server) = jwks_server().await;
    server.abort();
    let _ = server.await;
    let err = cache.keys_for(&idp(&dead), None).await.unwrap_err();
    assert!(matches!(err, OidcError::KeysUnavailable { .. }), "{err:?}");
    // Providers gone from the store are forgotten by the schedule.
    cache.refresh_all(&[]).await;
    assert_eq!(cache.lock().len(), 0);
}
