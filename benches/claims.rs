//! Criterion benches of the claims module (group `claims`).
//!
//! - `mint_user_jwt`: build and sign a realistic callout user JWT with an account signing key.
//! - `nats_jwt_token_sign`: the `nats-jwt` crate's `Token::sign` for equivalent claims (it has
//!   no response permission), the baseline pbn must not be slower than.
//! - `decode_verify_user_jwt`: decode + signature check of that user JWT.
//! - `encode_account_jwt_1000_revocations`: an account JWT with 1,000 revoked users.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pbn::claims::{decode, AccountClaims, Claims, UserClaims};
use pbn::keys::{KeyKind, KeyPair};
use pbn::unix_now;

const PUB_ALLOW: [&str; 6] = [
    "orders.>",
    "inventory.*.update",
    "billing.invoices",
    "events.app.>",
    "metrics.app",
    "_INBOX.>",
];
const PUB_DENY: [&str; 2] = ["orders.admin.>", "billing.refunds"];
const SUB_ALLOW: [&str; 4] = ["orders.*.status", "inventory.>", "_INBOX.>", "events.app.>"];

fn user_claims(user: &str, account: &str, exp: i64) -> Claims<UserClaims> {
    let mut body =
        UserClaims::new().with_issuer_account(account).with_resp(1, Duration::from_secs(120));
    body.limits.publish.allow = PUB_ALLOW.iter().map(|s| s.to_string()).collect();
    body.limits.publish.deny = PUB_DENY.iter().map(|s| s.to_string()).collect();
    body.limits.subscribe.allow = SUB_ALLOW.iter().map(|s| s.to_string()).collect();
    Claims::new(user, body).with_name("alice@example.com").with_expires(exp)
}

fn bench_claims(c: &mut Criterion) {
    let account = KeyPair::generate(KeyKind::Account);
    let signing_key = KeyPair::generate(KeyKind::Account);
    let user = KeyPair::generate(KeyKind::User);
    let exp = unix_now() + 3600;
    let mut group = c.benchmark_group("claims");

    group.bench_function("mint_user_jwt", |b| {
        b.iter(|| {
            let mut claims = user_claims(user.public_key(), account.public_key(), exp);
            black_box(claims.encode(&signing_key).expect("mint"))
        })
    });

    let nats_jwt_key = nats_jwt::KeyPair::from_seed(signing_key.seed().expose()).expect("seed");
    group.bench_function("nats_jwt_token_sign", |b| {
        b.iter(|| {
            let mut token = nats_jwt::Token::new_user(account.public_key(), user.public_key())
                .name("alice@example.com")
                .expires(exp);
            for s in PUB_ALLOW {
                token = token.allow_publish(s);
            }
            for s in PUB_DENY {
                token = token.deny_publish(s);
            }
            for s in SUB_ALLOW {
                token = token.allow_subscribe(s);
            }
            black_box(token.sign(&nats_jwt_key))
        })
    });

    let token = user_claims(user.public_key(), account.public_key(), exp)
        .encode(&signing_key)
        .expect("mint");
    group.bench_function("decode_verify_user_jwt", |b| {
        b.iter(|| black_box(decode::<UserClaims>(black_box(&token)).expect("decodes")))
    });

    bench_account(&mut group, &account, &signing_key);
    group.finish();
}

/// `encode_account_jwt_1000_revocations`.
fn bench_account(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    account: &KeyPair,
    signing_key: &KeyPair,
) {
    let operator = KeyPair::generate(KeyKind::Operator);
    let mut body = AccountClaims::new();
    for i in 0..1000 {
        body.revoke(KeyPair::generate(KeyKind::User).public_key(), 1_700_000_000 + i);
    }
    body.add_signing_key(signing_key.public_key());
    let mut account_claims = Claims::new(account.public_key(), body).with_name("ACME");
    group.bench_function("encode_account_jwt_1000_revocations", |b| {
        b.iter(|| black_box(account_claims.encode(&operator).expect("encodes")))
    });
}

criterion_group!(benches, bench_claims);
criterion_main!(benches);
