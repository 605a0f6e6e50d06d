//! Simulated packets per second on one core: VM traffic through the whole model (parse,
//! classify, ACL, a 1,000,000-entry map, mirror filter, shadow map, two encapsulations, the
//! scheduler) with every packet mirrored, for 64-byte frames and IMIX.
//!
//! Tables are programmed through the device's table-command path (`Tables::execute`, what a
//! register command runs). Frames go to destinations drawn uniformly from the whole map, so
//! map lookups miss the CPU caches as they would on a busy host. The time measured is the
//! benchmark thread's CPU time, not wall-clock time: the machine is shared.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_hw::{
    Port,
    device_regs::tbl_cmd::cmd::TableOp,
    layout::{
        Mac, ip_to_bytes,
        map::{MapKey, MapValue},
        mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
        rule::{self, DirectionMatch, RuleMatch},
        session::{Encap, MirrorSession, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::{VniEntry, VniKey},
        vport::VportEntry,
    },
    table::TableId,
    timing::Timing,
};
use shadownet_sim::{Arrival, Discard, NicModel, tables::to_window};

const MAP_ENTRIES: u32 = 1_000_000;
const VNI: u32 = 5001;
const SHADOW_VNI: u32 = 9001;

fn overlay(i: u32) -> [u8; 4] {
    [10, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn write(model: &mut NicModel, t: TableId, index: u32, key: &[u32; 16], value: &[u32; 16]) {
    let out = model
        .dp
        .tables
        .execute(t as u8, Some(TableOp::Write), index, key, value);
    assert!(out.result as u8 == 0, "{t} write failed: {:?}", out.result);
}

fn programmed() -> NicModel {
    let mut m = NicModel::new(Timing::DEFAULT).expect("default timing");
    m.dp.config.enabled = true;
    m.dp.config.local_mac = Mac([2, 0, 0, 0, 0, 1]);
    m.dp.config.local_ipv4 = Some(ip_to_bytes("10.255.0.1".parse().expect("literal")));
    for (vni, shadow) in [(VNI, false), (SHADOW_VNI, true)] {
        let mut k = [0u8; 8];
        VniKey { vni }.emit(&mut k);
        let mut v = [0u8; 8];
        VniEntry {
            shadow,
            miss_to_host: false,
            default_deny_to_vm: false,
            default_deny_from_vm: false,
            production_vni: shadow.then_some(VNI),
        }
        .emit(&mut v);
        write(&mut m, TableId::Vni, 0, &to_window(&k), &to_window(&v));
    }
    let mut v = [0u8; 16];
    VportEntry {
        vni: VNI,
        mac: Mac([2, 0, 0, 0, 0, 0x11]),
        enabled: true,
    }
    .emit(&mut v);
    write(&mut m, TableId::Vport, 0, &[0; 16], &to_window(&v));
    for i in 0..MAP_ENTRIES {
        let mut k = [0u8; 24];
        MapKey {
            vni: VNI,
            ip: std::net::Ipv4Addr::from(overlay(i)).into(),
        }
        .emit(&mut k);
        let mut v = [0u8; 32];
        MapValue {
            substrate_ip: std::net::Ipv4Addr::new(10, 254, (i >> 8) as u8 & 0x3f, i as u8).into(),
            substrate_mac: Mac([2, 0, 0, 0, 1, (i % 200) as u8]),
            local_vport: None,
            shadow: false,
        }
        .emit(&mut v);
        write(&mut m, TableId::Map, 0, &to_window(&k), &to_window(&v));
    }
    for i in 0..4096 {
        let mut k = [0u8; 24];
        ShadowMapKey {
            session: 1,
            vni: VNI,
            ip: std::net::Ipv4Addr::from(overlay(i * 241)).into(),
        }
        .emit(&mut k);
        let mut v = [0u8; 32];
        ShadowMapValue {
            substrate_ip: "10.253.0.3".parse().expect("literal"),
            substrate_mac: Mac([2, 0, 0, 0, 0, 3]),
            shadow_vni: SHADOW_VNI,
        }
        .emit(&mut v);
        write(
            &mut m,
            TableId::ShadowMap,
            0,
            &to_window(&k),
            &to_window(&v),
        );
    }
    m.dp.sessions.commit(
        1,
        MirrorSession {
            enabled: true,
            encap: Encap::Geneve,
            mode: Mode::Mirror,
            shadow_vni: SHADOW_VNI,
            collector_ip: "10.253.0.50".parse().expect("literal"),
            collector_mac: Mac([2, 0, 0, 0, 0, 0x50]),
            policer_mbps: 0,
            policer_burst: 0,
        },
    );
    let filter = MirrorFilter {
        matches: RuleMatch {
            scope: Some(0),
            direction: DirectionMatch::Both,
            ..RuleMatch::ANY
        },
        action: MirrorAction {
            priority: 1,
            verdict: MirrorVerdict::Mirror,
            rule_id: 1,
            session: 1,
            truncate: None,
            sample_one_in: 1,
        },
    };
    let mut k = [0u8; rule::LEN];
    filter.matches.emit(&mut k);
    let mut v = [0u8; 16];
    filter.action.emit(&mut v);
    write(
        &mut m,
        TableId::MirrorFilter,
        0,
        &to_window(&k),
        &to_window(&v),
    );
    m
}

/// A TCP frame of `len` bytes from the VM to map entry `i`.
fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(54)];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xfe]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x11]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (f.len() - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 200, 0, 11]);
    f[30..34].copy_from_slice(&overlay(i));
    f[34..36].copy_from_slice(&(40000 + (i % 1000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&443u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x18;
    f
}

/// A deterministic stream of destinations spread over the whole map.
fn destinations(n: usize) -> Vec<u32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % MAP_ENTRIES as u64) as u32
        })
        .collect()
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), if the
/// kernel tells.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` `iters` times and returns the time this thread spent on a CPU meanwhile: the
/// target is packets per second on one core, and on a shared machine wall-clock time also
/// counts the time other processes had the core. Falls back to wall-clock time where the
/// kernel does not report CPU time. (The detector's benchmark measures the same way.)
fn on_cpu(iters: u64, mut f: impl FnMut()) -> Duration {
    let wall = Instant::now();
    let cpu = thread_cpu_ns();
    for _ in 0..iters {
        f();
    }
    match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall.elapsed(),
    }
}

fn bench(c: &mut Criterion) {
    let mut model = programmed();
    const BATCH: usize = 65_536;
    let dests = destinations(BATCH);
    // IMIX 7:4:1 of 64, 576 and 1500-byte packets (frames without FCS).
    let imix = [60usize, 60, 60, 60, 60, 60, 60, 572, 572, 572, 572, 1514];
    // The same traffic with destinations from a hot set of 4,096 entries of the map:
    // realistic flow locality, and the model's cost without memory stalls.
    let hot: Vec<u32> = dests.iter().map(|d| (d % 4096) * 241).collect();
    let sized = |ds: &[u32], mix: bool| -> Vec<Vec<u8>> {
        ds.iter()
            .enumerate()
            .map(|(k, &d)| frame(d, if mix { imix[k % imix.len()] } else { 60 }))
            .collect()
    };
    let mixes: [(&str, Vec<Vec<u8>>); 4] = [
        ("64B", sized(&dests, false)),
        ("IMIX", sized(&dests, true)),
        ("64B_hot4096", sized(&hot, false)),
        ("IMIX_hot4096", sized(&hot, true)),
    ];
    let mut group = c.benchmark_group("sim_pipeline_mirror_all_1M_map");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, frames) in &mixes {
        // Paced at 25% of line rate: production and every copy fit on the uplink, so
        // nothing is dropped and every packet does the full work.
        let gaps: Vec<u64> = frames
            .iter()
            .map(|f| model.wire_ps(Port::Vport(0), f.len()) * 100 / 25)
            .collect();
        let mut now = model.last_tx_end_ps() + 1_000_000;
        let mut batch = Vec::with_capacity(256);
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                on_cpu(iters, || {
                    for (fs, gs) in frames.chunks(256).zip(gaps.chunks(256)) {
                        batch.clear();
                        for (f, gap) in fs.iter().zip(gs) {
                            now += gap;
                            batch.push(Arrival {
                                port: Port::Vport(0),
                                frame: black_box(f),
                                at_ps: now,
                            });
                        }
                        model.receive_batch(&batch, &mut Discard);
                    }
                })
            })
        });
    }
    group.finish();
    let s = model.stats();
    eprintln!(
        "after the benchmark: {} frames sent, {} copies sent, {} production drops, {} copy drops",
        s.tx_frames, s.mirror_frames, s.primary_drops, s.mirror_drops
    );
    // Drops mean less work per packet than the figures assume: name them.
    for reason in shadownet_hw::drop::DropReason::ALL {
        let n = model
            .dp
            .counters
            .get(shadownet_hw::counters::drop_reason(reason));
        if n > 0 {
            eprintln!("  dropped by {}: {n}", reason.name());
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
