//! `--http-tls-cert/--http-tls-key`: the listener speaks HTTPS only, and the console's
//! cookies are `Secure`.

use std::sync::Arc;
use std::time::Duration;

use pbn::RawConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::http_api::Api;
use crate::support::Deadline;

/// `GET path` over TLS trusting `cert`; the raw answer, or why there is none.
async fn get_tls(addr: &str, cert: &[u8], path: &str) -> Result<String, String> {
    let mut roots = RootCertStore::empty();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert).map_err(|e| e.to_string())?;
    roots.add(der).map_err(|e| e.to_string())?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a cert");
    let (cert_pem, key_pem) = (key.cert.pem(), key.signing_key.serialize_pem());
    let (cert, keyfile) = (dir.path().join("http.crt"), dir.path().join("http.key"));
    std::fs::write(&cert, &cert_pem).expect("write");
    std::fs::write(&keyfile, &key_pem).expect("write");
    let config = RawConfig {
        http_tls_cert: Some(cert.clone()),
        http_tls_key: Some(keyfile),
        ..RawConfig::default()
    };
    let api = Api::start_with(config, false).await;
    let deadline = Deadline::after(Duration::from_secs(30), "the HTTPS listener");
    let page = loop {
        match get_tls(&api.addr, cert_pem.as_bytes(), "/signin").await {
            Ok(p) if p.starts_with("HTTP/1.0 200") => break p,
            _ => deadline.tick().await,
        }
    };
    let cookie =
        page.lines().find(|l| l.to_lowercase().starts_with("set-cookie:")).expect("a cookie");
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let api_doc = get_tls(&api.addr, cert_pem.as_bytes(), "/api/v1/openapi.json").await.unwrap();
    assert!(api_doc.contains("\"openapi\""), "{api_doc}");
    // Plain HTTP gets no HTTP answer.
    let plain = crate::http_api::raw(&api.addr, b"GET /signin HTTP/1.0\r\n\r\n").await;
    assert!(plain.is_err(), "{plain:?}");
}
