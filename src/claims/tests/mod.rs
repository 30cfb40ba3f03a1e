//! Tests of the claims module: Go vectors, round trips, defaults, rejections, validation.

mod defaults;
mod reject;
mod roundtrip;
mod validation;
mod vectors;

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use crate::keys::{KeyKind, KeyPair};

/// Reads a file of `tests/data`.
fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `tests/data/vectors.json`.
fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors.json is readable"))
        .expect("vectors.json is json")
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64URL_NOPAD.encode(bytes.as_ref())
}

fn unb64(text: &str) -> Vec<u8> {
    BASE64URL_NOPAD.decode(text.as_bytes()).expect("valid base64url")
}

/// The decoded payload bytes of a token.
fn payload_bytes(token: &str) -> Vec<u8> {
    unb64(token.split('.').nth(1).expect("token has a payload"))
}

/// A token over arbitrary header and payload text, v2-signed by `kp`.
fn sign_raw(header: &str, payload: &str, kp: &KeyPair) -> String {
    let mut token = format!("{}.{}", b64(header), b64(payload));
    let sig = kp.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64(sig));
    token
}

/// A token over `payload` with Go's header, v2-signed by `kp`.
fn sign_payload(payload: &Value, kp: &KeyPair) -> String {
    sign_raw(super::JWT_HEADER, &payload.to_string(), kp)
}

fn key(kind: KeyKind) -> KeyPair {
    KeyPair::generate(kind)
}

/// Looks up a dotted path in a JSON value.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, k| v.get(k))
}
