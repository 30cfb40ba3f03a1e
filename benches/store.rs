//! Criterion benches of the store (group `store`).
//!
//! - `lookup_user/1000` and `lookup_user/100000`: `get_user` by name in a read transaction (what
//!   the callout does per password login), at scattered names of a store of that many users.
//!   Each store is built once, with bulk inserts of 10,000 users per transaction, in a temp dir.
//! - `admin_write_user_edit/100000`: one `pbn::execute` of a small user edit (a description),
//!   i.e. one durable write transaction, in the 100,000-user store.
//! - `list_users/100000`: reading every user record, which is what an nkey login costs today
//!   (the callout finds the user of a registered nkey by scanning all users).

mod support;

use pbn::UserEdit;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pbn::StoreRead;
use pbn::{Context, Request};

use support::{bulk_users, served_store, Scatter, FAKE_PHC};

/// Store sizes to time lookups at.
const SIZES: [usize; 2] = [1_000, 100_000];
/// Users per bulk-insert transaction.
const BATCH: usize = 10_000;

fn bench_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    for size in SIZES {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = served_store(&dir.path().join("store.redb"), false);
        let users = bulk_users(&store, "user", size, BATCH, true, |_| Some(FAKE_PHC.into()));
        let found = store.read(|tx| tx.get_user(&users.names[size / 2])).expect("reads");
        assert!(found.is_some(), "the bulk users are in the store");

        let mut scatter = Scatter::new(0x5eed);
        group.bench_with_input(BenchmarkId::new("lookup_user", size), &size, |b, &size| {
            b.iter(|| {
                let name = &users.names[scatter.below(size)];
                let user = store.read(|tx| tx.get_user(black_box(name))).expect("reads");
                black_box(user.expect("present"))
            })
        });

        if size == 100_000 {
            let ctx = Context::now();
            let mut flip = false;
            let name = users.names[7].clone();
            group.bench_function(BenchmarkId::new("admin_write_user_edit", size), |b| {
                b.iter(|| {
                    flip = !flip;
                    let req = Request::UserEdit(UserEdit {
                        name: name.clone(),
                        account: None,
                        role: None,
                        active: None,
                        email: None,
                        description: Some(if flip { "on call" } else { "off duty" }.into()),
                        nkey: None,
                        tags: Default::default(),
                    });
                    black_box(pbn::execute(&store, &req, &ctx).expect("a valid edit"))
                })
            });
            // Slow by nature (every record decoded): the fewest samples criterion allows.
            group.sample_size(10);
            group.bench_function(BenchmarkId::new("list_users", size), |b| {
                b.iter(|| black_box(store.read(|tx| tx.list_users()).expect("reads").len()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
