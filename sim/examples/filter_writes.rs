//! Traffic with shadow-map programming interleaved: batches of 256 64-byte frames (the
//! pipeline benchmark's traffic, every packet mirrored) with one shadow-map write between
//! batches, through the table-command path a register command runs (`Tables::execute`).
//! For measuring what table writes cost the traffic around them, with callgrind:
//!
//! ```text
//! cargo build --release -p shadownet-sim --example filter_writes
//! valgrind --tool=callgrind --toggle-collect='*filter_writes::run*' \
//!     target/release/examples/filter_writes replace
//! ```
//!
//! The first argument names the writes: `none` (traffic only), `replace` (a new value for a
//! stored entry), `insert` (a new entry), `churn` (alternately a new entry and the delete of
//! the oldest one, so the table keeps its size); the second the batches (default 512).
//! Instructions collected in `run` divided by the frames it prints are instructions per
//! frame, the writes included.

use std::hint::black_box;

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

/// Map entries: enough that look-ups spread over a table much larger than the caches' share
/// a hot set would use, few enough that programming it under callgrind takes seconds.
const MAP_ENTRIES: u32 = 65_536;
/// Shadow-map entries programmed before the traffic (the pipeline benchmark's 4,096).
const SHADOW_ENTRIES: u32 = 4_096;
const VNI: u32 = 5001;
const SHADOW_VNI: u32 = 9001;
const BATCH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Writes {
    None,
    Replace,
    Insert,
    Churn,
}

fn overlay(i: u32) -> [u8; 4] {
    [10, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn write(model: &mut NicModel, t: TableId, op: TableOp, key: &[u32; 16], value: &[u32; 16]) {
    let out = model.dp.tables.execute(t as u8, Some(op), 0, key, value);
    assert!(out.result as u8 == 0, "{t} {op:?} failed: {:?}", out.result);
}

/// Shadow-map entry `i` (a production address of the map, every 241st), version `v`.
fn shadow_entry(i: u32, v: u32) -> ([u32; 16], [u32; 16]) {
    let mut k = [0u8; 24];
    ShadowMapKey {
        session: 1,
        vni: VNI,
        ip: std::net::Ipv4Addr::from(overlay(i.wrapping_mul(241) % MAP_ENTRIES)).into(),
    }
    .emit(&mut k);
    let mut val = [0u8; 32];
    ShadowMapValue {
        substrate_ip: std::net::Ipv4Addr::new(10, 253, (v >> 8) as u8, v as u8 | 1).into(),
        substrate_mac: Mac([2, 0, 0, 0, 0, 3]),
        shadow_vni: SHADOW_VNI,
    }
    .emit(&mut val);
    (to_window(&k), to_window(&val))
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
        write(
            &mut m,
            TableId::Vni,
            TableOp::Write,
            &to_window(&k),
            &to_window(&v),
        );
    }
    let mut v = [0u8; 16];
    VportEntry {
        vni: VNI,
        mac: Mac([2, 0, 0, 0, 0, 0x11]),
        enabled: true,
    }
    .emit(&mut v);
    write(
        &mut m,
        TableId::Vport,
        TableOp::Write,
        &[0; 16],
        &to_window(&v),
    );
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
        write(
            &mut m,
            TableId::Map,
            TableOp::Write,
            &to_window(&k),
            &to_window(&v),
        );
    }
    for i in 0..SHADOW_ENTRIES {
        let (k, v) = shadow_entry(i, 0);
        write(&mut m, TableId::ShadowMap, TableOp::Write, &k, &v);
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
        TableOp::Write,
        &to_window(&k),
        &to_window(&v),
    );
    m
}

/// A TCP frame of 64 bytes (60 without FCS) from the VM to map entry `i`.
fn frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
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

/// Destinations drawn uniformly from the map (xorshift, fixed seed).
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

/// The measured loop: every batch of frames, then one write of kind `writes`. Returns the
/// frames received.
#[inline(never)]
fn run(model: &mut NicModel, frames: &[Vec<u8>], gap_ps: u64, writes: Writes) -> usize {
    let mut now = model.last_tx_end_ps() + 1_000_000;
    let mut batch = Vec::with_capacity(BATCH);
    let mut received = 0;
    for (n, fs) in (0u32..).zip(frames.chunks(BATCH)) {
        batch.clear();
        for f in fs {
            now += gap_ps;
            batch.push(Arrival {
                port: Port::Vport(0),
                frame: black_box(f),
                at_ps: now,
            });
        }
        model.receive_batch(&batch, &mut Discard);
        received += fs.len();
        match writes {
            Writes::None => {}
            Writes::Replace => {
                let (k, v) = shadow_entry(n % SHADOW_ENTRIES, n + 1);
                write(model, TableId::ShadowMap, TableOp::Write, &k, &v);
            }
            Writes::Insert => {
                let (k, v) = shadow_entry(SHADOW_ENTRIES + n, 1);
                write(model, TableId::ShadowMap, TableOp::Write, &k, &v);
            }
            Writes::Churn => {
                // Even batches insert entry SHADOW_ENTRIES + n/2, odd ones delete entry
                // n/2: the table stays at about SHADOW_ENTRIES entries.
                let (op, i) = if n % 2 == 0 {
                    (TableOp::Write, SHADOW_ENTRIES + n / 2)
                } else {
                    (TableOp::Delete, n / 2)
                };
                let (k, v) = shadow_entry(i, 1);
                let v = if op == TableOp::Delete { [0; 16] } else { v };
                write(model, TableId::ShadowMap, op, &k, &v);
            }
        }
    }
    received
}

fn main() {
    let mut args = std::env::args().skip(1);
    let writes = match args.next().as_deref() {
        None | Some("none") => Writes::None,
        Some("replace") => Writes::Replace,
        Some("insert") => Writes::Insert,
        Some("churn") => Writes::Churn,
        Some(other) => {
            eprintln!("unknown writes {other:?}: none, replace, insert or churn");
            std::process::exit(2);
        }
    };
    let batches = match args.next().map(|s| s.parse::<usize>()) {
        None => 512,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("batches: {e}");
            std::process::exit(2);
        }
    };
    let mut model = programmed();
    let frames: Vec<Vec<u8>> = destinations(batches * BATCH)
        .into_iter()
        .map(frame)
        .collect();
    // Paced at 25% of line rate, as in the pipeline benchmark: nothing is dropped.
    let gap_ps = model.wire_ps(Port::Vport(0), 60) * 100 / 25;
    let received = run(&mut model, &frames, gap_ps, writes);
    let s = model.stats();
    println!(
        "writes {writes:?}: {received} frames in {batches} batches, {} sent, {} copies, {} drops, shadow map {} entries, filter built {} times",
        s.tx_frames,
        s.mirror_frames,
        s.primary_drops + s.mirror_drops,
        model.dp.tables.occupancy(TableId::ShadowMap),
        model.dp.tables.shadow_map.filter_rebuilds(),
    );
}
