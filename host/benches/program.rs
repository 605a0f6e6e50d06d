//! Table entries programmed per second through the driver: every entry goes through the
//! register interface (stage KEY/VALUE words, write CMD with a new sequence tag, poll STATUS)
//! of the simulated NIC, whose table engine places it.

use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_host::driver::{Nic, sim::SimDevice};
use shadownet_hw::{
    layout::{
        Mac, PortRange,
        acl::{AclAction, AclRule, Verdict},
        map::{MapKey, MapValue},
        rule::RuleMatch,
    },
    table::TableId,
    timing::Timing,
};
use shadownet_sim::NicModel;

fn key(i: u32) -> MapKey {
    MapKey {
        vni: 5001 + (i >> 24),
        ip: Ipv4Addr::from(0x0A00_0000 | (i & 0x00FF_FFFF)).into(),
    }
}

fn value(i: u32) -> MapValue {
    MapValue {
        substrate_ip: Ipv4Addr::new(10, 254, (i >> 8) as u8, i as u8).into(),
        substrate_mac: Mac([2, 0, 0, 0, 1, i as u8]),
        local_vport: None,
        shadow: false,
    }
}

fn bench(c: &mut Criterion) {
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    let mut nic = Nic::open(SimDevice::new(model)).expect("opens");
    let mut g = c.benchmark_group("driver_programming");
    g.throughput(Throughput::Elements(1));

    // Map inserts into a table kept between half and fully loaded (1,000,000 entries).
    let mut next = 0u32;
    for i in 0..500_000 {
        nic.write_map(&key(i), &value(i)).expect("insert");
    }
    next += 500_000;
    g.bench_function("map_insert_into_0.5M-1M_entries", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                if next >= 1_000_000 {
                    for i in 500_000..next {
                        nic.delete_map(&key(i)).expect("delete");
                    }
                    next = 500_000;
                }
                let t = std::time::Instant::now();
                nic.write_map(&key(next), &value(next)).expect("insert");
                spent += t.elapsed();
                next += 1;
            }
            spent
        })
    });

    g.bench_function("map_replace", |b| {
        let mut i = 0u32;
        b.iter(|| {
            nic.write_map(&key(i % 500_000), &value(i))
                .expect("replace");
            i += 1;
        })
    });

    g.bench_function("map_delete_and_reinsert", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let k = key(i % 500_000);
            nic.delete_map(&k).expect("delete");
            nic.write_map(&k, &value(i)).expect("insert");
            i += 1;
        })
    });

    g.bench_function("acl_rule_write", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let rule = AclRule {
                matches: RuleMatch {
                    scope: Some(5001),
                    protocol: Some(6),
                    dport: PortRange::single((i % 60_000) as u16),
                    ..RuleMatch::ANY
                },
                action: AclAction {
                    priority: (i % 100) as u16,
                    verdict: Verdict::Deny,
                    rule_id: i,
                },
            };
            nic.write_acl(i % TableId::Acl.capacity(), &rule)
                .expect("acl");
            i += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
