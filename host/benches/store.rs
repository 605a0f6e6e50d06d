//! The versioned store's costs: a durable commit (WAL, `synchronous=FULL`, on the disk the
//! benchmark runs on), the same commit in memory (the SQL work without the sync), and reads
//! of current state as the API and the reconciler do them.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use shadownet_host::store::{Expect, Store};

/// A network body of about the size the model writes (a few hundred bytes).
fn body(i: u64) -> serde_json::Value {
    json!({
        "vni": 5000 + i,
        "cidr": "10.0.0.0/16",
        "nodes": (0..8).map(|n| json!({"name": format!("vm{n}"), "ip": format!("10.0.0.{n}"),
                                       "mac": "02:00:00:00:00:01"})).collect::<Vec<_>>(),
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));

    let dir = tempfile::tempdir().expect("temp dir");
    let mut disk = Store::open(dir.path()).expect("opens");
    let mut mem = Store::open_in_memory().expect("opens");
    for s in [&mut disk, &mut mem] {
        s.transact(|t| {
            for i in 0..1000 {
                t.put(
                    "network",
                    &format!("n{i:04}"),
                    "t1",
                    &body(i),
                    Expect::Any,
                    "bench",
                    "seed",
                )?;
            }
            Ok(())
        })
        .expect("seed");
    }

    let mut i = 0u64;
    g.bench_function("put_commit_durable", |b| {
        b.iter(|| {
            i += 1;
            disk.transact(|t| {
                t.put(
                    "network",
                    &format!("n{:04}", i % 1000),
                    "t1",
                    &body(i),
                    Expect::Any,
                    "bench",
                    "update",
                )
            })
            .expect("put")
        })
    });
    g.bench_function("put_commit_in_memory", |b| {
        b.iter(|| {
            i += 1;
            mem.transact(|t| {
                t.put(
                    "network",
                    &format!("n{:04}", i % 1000),
                    "t1",
                    &body(i),
                    Expect::Any,
                    "bench",
                    "update",
                )
            })
            .expect("put")
        })
    });
    g.bench_function("get", |b| {
        b.iter(|| {
            i += 1;
            disk.get("network", &format!("n{:04}", i % 1000))
                .expect("get")
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("list_1000", |b| {
        b.iter(|| disk.list("network", None).expect("list"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
