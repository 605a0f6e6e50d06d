//! Entries reconciled per second for a 100,000-entry map diff, through the driver and the
//! register interface of the simulated NIC: read back, diff, batched programming and the
//! verifying read-back, all included.
//!
//! - `add_100k`: from an empty NIC to 100,000 map entries;
//! - `change_100k`: every one of 100,000 entries gets a new substrate host (alternating
//!   between two desired states), one in-place write each;
//! - `noop_100k`: the NIC already holds the 100,000 entries (the read-back alone).

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_host::{
    driver::{Nic, sim::SimDevice},
    netdesc::Plan,
    reconcile::Reconciler,
};
use shadownet_hw::{
    layout::{
        Mac,
        map::{MapKey, MapValue},
        vni::VniEntry,
    },
    timing::Timing,
};
use shadownet_sim::NicModel;

const ENTRIES: u32 = 100_000;

fn plan(generation: u8) -> Plan {
    let mut p = Plan::default();
    p.vnis.push((
        5001,
        VniEntry {
            shadow: false,
            miss_to_host: true,
            default_deny_to_vm: false,
            default_deny_from_vm: false,
            production_vni: None,
        },
    ));
    p.map = (0..ENTRIES)
        .map(|i| {
            (
                MapKey {
                    vni: 5001,
                    ip: Ipv4Addr::from(0x0A00_0000 | i).into(),
                },
                MapValue {
                    substrate_ip: Ipv4Addr::new(10, 254, generation, (i % 200) as u8).into(),
                    substrate_mac: Mac([2, 0, 0, generation, 1, (i % 200) as u8]),
                    local_vport: None,
                    shadow: false,
                },
            )
        })
        .collect();
    p
}

fn bench(c: &mut Criterion) {
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    let mut nic = Nic::open(SimDevice::new(model)).expect("opens");
    let plans = [plan(1), plan(2)];
    let mut g = c.benchmark_group("reconcile");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(ENTRIES)));

    g.bench_function("add_100k", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                nic.reset().expect("reset");
                let mut r = Reconciler::new();
                let t = Instant::now();
                let report = r.reconcile(&mut nic, &plans[0]).expect("reconcile");
                spent += t.elapsed();
                assert_eq!(report.applied.commands, ENTRIES as usize + 1);
            }
            spent
        })
    });

    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &plans[0]).expect("reconcile");
    let mut which = 0;
    g.bench_function("change_100k", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                which = 1 - which;
                let t = Instant::now();
                let report = r.reconcile(&mut nic, &plans[which]).expect("reconcile");
                spent += t.elapsed();
                assert_eq!(report.drift.changed, ENTRIES as usize);
            }
            spent
        })
    });

    g.bench_function("noop_100k", |b| {
        b.iter(|| {
            let report = r.reconcile(&mut nic, &plans[which]).expect("reconcile");
            assert_eq!(report.operations(), 0);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
