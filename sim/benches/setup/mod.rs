//! The pipeline benchmark's NIC and traffic, shared with `examples/filter_writes.rs`: one VM
//! on VF 0 in network 5001 whose every frame is mirrored whole in Geneve (session 1), a map of
//! `map_entries` remote VMs, a shadow map of `shadow_entries` of them, and 64-byte (or
//! longer) TCP frames from the VM to map entries. Tables are programmed through the
//! table-command path a register command runs (`Tables::execute`).

use shadownet_hw::{
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
use shadownet_sim::{NicModel, tables::to_window};

const VNI: u32 = 5001;
const SHADOW_VNI: u32 = 9001;

/// Overlay address of map entry `i`.
pub fn overlay(i: u32) -> [u8; 4] {
    [10, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// Runs table command `op` on table `t` with the given KEY and VALUE windows; panics if the
/// command fails (a benchmark's set-up is not input).
pub fn write(model: &mut NicModel, t: TableId, op: TableOp, key: &[u32; 16], value: &[u32; 16]) {
    let out = model.dp.tables.execute(t as u8, Some(op), 0, key, value);
    assert!(out.result as u8 == 0, "{t} {op:?} failed: {:?}", out.result);
}

/// Shadow-map entry `i` (for map entry `i * 241`, within a map of `map_entries`), version
/// `v` (the shadow node's address: 10.253.0.3 for version 0).
pub fn shadow_entry(i: u32, map_entries: u32, v: u32) -> ([u32; 16], [u32; 16]) {
    let mut k = [0u8; 24];
    ShadowMapKey {
        session: 1,
        vni: VNI,
        ip: std::net::Ipv4Addr::from(overlay(i.wrapping_mul(241) % map_entries)).into(),
    }
    .emit(&mut k);
    let mut val = [0u8; 32];
    ShadowMapValue {
        substrate_ip: std::net::Ipv4Addr::new(10, 253, (v >> 8) as u8, v as u8 | 3).into(),
        substrate_mac: Mac([2, 0, 0, 0, 0, 3]),
        shadow_vni: SHADOW_VNI,
    }
    .emit(&mut val);
    (to_window(&k), to_window(&val))
}

/// The NIC programmed: networks, VF 0's binding, `map_entries` map entries, the first
/// `shadow_entries` shadow-map entries, session 1 and VF 0's mirror rule.
pub fn programmed(map_entries: u32, shadow_entries: u32) -> NicModel {
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
        let (k, v) = (to_window(&k), to_window(&v));
        write(&mut m, TableId::Vni, TableOp::Write, &k, &v);
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
    for i in 0..map_entries {
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
        let (k, v) = (to_window(&k), to_window(&v));
        write(&mut m, TableId::Map, TableOp::Write, &k, &v);
    }
    for i in 0..shadow_entries {
        let (k, v) = shadow_entry(i, map_entries, 0);
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
    let (k, v) = (to_window(&k), to_window(&v));
    write(&mut m, TableId::MirrorFilter, TableOp::Write, &k, &v);
    m
}

/// A TCP frame of `len` bytes (at least 54) from the VM to map entry `i`.
pub fn frame(i: u32, len: usize) -> Vec<u8> {
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

/// `n` destinations drawn uniformly from a map of `map_entries` (xorshift, fixed seed).
pub fn destinations(n: usize, map_entries: u32) -> Vec<u32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % map_entries as u64) as u32
        })
        .collect()
}
