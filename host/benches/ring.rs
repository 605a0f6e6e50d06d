//! Table operations per second through the command ring and through the register
//! interface, side by side, on the simulated NIC, and the firmware's cycles per operation.
//!
//! The ring path: the driver writes descriptors into DMA memory and rings the doorbell once
//! per batch; the model's embedded cores (the firmware crate) fetch them, execute them and
//! write completions the driver polls in memory. The register path: one TBL_CMD command per
//! entry (stage KEY/VALUE, write CMD, poll STATUS). Both insert into a MAP table kept between
//! half and fully loaded (0.5-1M entries), like the `program` bench.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_host::driver::{Nic, RingOp, sim::SimDevice};
use shadownet_hw::{
    layout::{
        Mac,
        map::{MapKey, MapValue},
    },
    timing::Timing,
};
use shadownet_sim::NicModel;

/// Descriptors per doorbell.
const BATCH: usize = 256;
const LOW: u32 = 500_000;
const HIGH: u32 = 1_000_000;

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

fn inserts(from: u32, n: usize) -> Vec<RingOp> {
    (from..from + n as u32)
        .map(|i| RingOp::write_map(&key(i), &value(i)).expect("valid entry"))
        .collect()
}

fn deletes(from: u32, to: u32) -> Vec<RingOp> {
    (from..to).map(|i| RingOp::delete_map(&key(i))).collect()
}

fn nic() -> Nic<SimDevice> {
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    let mut nic = Nic::open(SimDevice::new(model)).expect("opens");
    nic.enable_cmd_ring(12).expect("ring of 4096");
    for chunk in (0..LOW).step_by(4096) {
        let n = 4096.min((LOW - chunk) as usize);
        nic.ring_submit(&inserts(chunk, n)).expect("prefill");
    }
    nic
}

/// Mean firmware cycles per operation of `ops`, from their completion records.
fn cycles(nic: &mut Nic<SimDevice>, ops: &[RingOp]) -> f64 {
    let done = nic.ring_submit(ops).expect("submit");
    assert!(done.iter().all(|c| c.ok()), "every operation succeeds");
    done.iter().map(|c| c.cycles as f64).sum::<f64>() / done.len() as f64
}

fn bench(c: &mut Criterion) {
    let mut nic = nic();
    let mut g = c.benchmark_group("table_ops");
    g.throughput(Throughput::Elements(1));

    let mut next = LOW;
    g.bench_function("ring/map_insert_into_0.5M-1M_entries", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if next as usize + BATCH > HIGH as usize {
                    for from in (LOW..next).step_by(4096) {
                        nic.ring_submit(&deletes(from, (from + 4096).min(next)))
                            .expect("delete");
                    }
                    next = LOW;
                }
                let n = left.min(BATCH);
                let ops = inserts(next, n);
                let t = Instant::now();
                let done = nic.ring_submit(&ops).expect("insert");
                spent += t.elapsed();
                assert!(done.iter().all(|c| c.ok()));
                next += n as u32;
                left -= n;
            }
            spent
        })
    });
    for from in (LOW..next).step_by(4096) {
        nic.ring_submit(&deletes(from, (from + 4096).min(next)))
            .expect("delete");
    }
    next = LOW;

    g.bench_function("registers/map_insert_into_0.5M-1M_entries", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if next >= HIGH {
                    for from in (LOW..next).step_by(4096) {
                        nic.ring_submit(&deletes(from, (from + 4096).min(next)))
                            .expect("delete");
                    }
                    next = LOW;
                }
                let t = Instant::now();
                nic.write_map(&key(next), &value(next)).expect("insert");
                spent += t.elapsed();
                next += 1;
            }
            spent
        })
    });
    for from in (LOW..next).step_by(4096) {
        nic.ring_submit(&deletes(from, (from + 4096).min(next)))
            .expect("delete");
    }

    let mut i = 0u32;
    g.bench_function("ring/map_replace", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                let ops: Vec<RingOp> = (i..i + n as u32)
                    .map(|j| RingOp::write_map(&key(j % LOW), &value(j)).expect("valid"))
                    .collect();
                let t = Instant::now();
                nic.ring_submit(&ops).expect("replace");
                spent += t.elapsed();
                i += n as u32;
                left -= n;
            }
            spent
        })
    });
    g.bench_function("registers/map_replace", |b| {
        b.iter(|| {
            nic.write_map(&key(i % LOW), &value(i)).expect("replace");
            i += 1;
        })
    });
    g.finish();

    // Firmware cycles per operation (the cost model of firmware-rs/src/cost.rs), at the
    // same load.
    let insert = cycles(&mut nic, &inserts(LOW, 10_000));
    let replace = cycles(&mut nic, &inserts(LOW, 10_000));
    let delete = cycles(&mut nic, &deletes(LOW, LOW + 10_000));
    let clock_mhz = Timing::DEFAULT.clock_khz as f64 / 1000.0;
    eprintln!(
        "firmware cycles per ring operation at 0.5M entries: insert {insert:.1}, replace {replace:.1}, delete {delete:.1} \
         (one core at {clock_mhz} MHz: {:.2} M inserts/s)",
        clock_mhz / insert
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
