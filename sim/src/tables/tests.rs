//! The shadow map's key filter through the real table-command path ([`Tables::execute`],
//! what a register command and a command-ring descriptor run): it never rules out a stored
//! key, whatever writes, replacements, displacements, deletes and clears it went through,
//! and writes between batches do not build it again.

use std::{collections::BTreeMap, net::Ipv4Addr, ops::Range, sync::OnceLock};

use proptest::prelude::*;
use shadownet_hw::{
    device_regs::tbl_cmd::{cmd::TableOp, status::CmdResult},
    layout::{
        Mac,
        shadow_map::{self, ShadowMapKey, ShadowMapValue},
    },
    table::{
        TableId,
        exact::{self, Key, WAYS},
    },
};

use super::{Tables, Window, to_window};

/// The key words and KEY window of shadow-map entry `ip` (session 1, VNI 5001).
fn key(ip: u32) -> (Key, Window) {
    let k = ShadowMapKey {
        session: 1,
        vni: 5001,
        ip: Ipv4Addr::from(ip).into(),
    };
    let mut b = [0u8; shadow_map::KEY_LEN];
    k.emit(&mut b);
    (exact::key_from_window(&to_window(&b)), to_window(&b))
}

/// Version `v` of an entry's VALUE window.
fn value(v: u32) -> Window {
    let mut b = [0u8; shadow_map::VALUE_LEN];
    ShadowMapValue {
        substrate_ip: Ipv4Addr::from(0x0afd_0000 | (v & 0xffff)).into(),
        substrate_mac: Mac([2, 0, 0, 0, (v >> 8) as u8, v as u8]),
        shadow_vni: 9001,
    }
    .emit(&mut b);
    to_window(&b)
}

/// Addresses whose keys crowd two buckets: `WAYS` keys whose first bucket is the anchor's
/// first bucket, `WAYS` whose first bucket is the anchor's second, then the anchor. Written
/// in that order into an empty table, the anchor finds both its buckets full and the
/// firmware moves an entry to its other bucket to make room.
fn crowded() -> &'static [u32] {
    static KEYS: OnceLock<Vec<u32>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let anchor = 0x0a00_0001;
        let buckets_log2 = match TableId::ShadowMap.kind() {
            shadownet_hw::table::TableKind::Exact { buckets_log2 } => buckets_log2,
            other => panic!("the shadow map is exact, not {other:?}"),
        };
        let first = |ip| exact::buckets(exact::hash(&key(ip).0), buckets_log2).0;
        let (x, y) = exact::buckets(exact::hash(&key(anchor).0), buckets_log2);
        let (mut in_x, mut in_y) = (Vec::new(), Vec::new());
        for ip in 0x0b00_0000u32.. {
            let b = first(ip);
            if b == x && in_x.len() < WAYS {
                in_x.push(ip);
            } else if b == y && in_y.len() < WAYS {
                in_y.push(ip);
            }
            if in_x.len() == WAYS && in_y.len() == WAYS {
                break;
            }
        }
        in_x.into_iter().chain(in_y).chain([anchor]).collect()
    })
}

/// An address of the test's key pool: the crowded keys first, then others.
fn pool(i: u32) -> u32 {
    crowded()
        .get(i as usize)
        .copied()
        .unwrap_or(0x0c00_0000 + i)
}

fn write(t: &mut Tables, ip: u32, v: u32) -> super::Outcome {
    let out = t.execute(
        TableId::ShadowMap as u8,
        Some(TableOp::Write),
        0,
        &key(ip).1,
        &value(v),
    );
    assert_eq!(out.result, CmdResult::Ok, "write of {ip:#x}");
    out
}

/// Every key of `reference` is stored with its value and passes the filter as it stands
/// (not built again first: it must hold at every moment); every other pool key is absent.
fn check(t: &Tables, reference: &BTreeMap<u32, u32>, pool_size: u32) -> Result<(), TestCaseError> {
    let view = t.shadow_map.view();
    for i in 0..pool_size {
        let ip = pool(i);
        let (k, _) = key(ip);
        let h = exact::hash(&k);
        let stored = view.find_value(&k, h).copied();
        let expected = reference.get(&ip).map(|&v| {
            let mut w = [0u32; 8];
            w.copy_from_slice(&value(v)[..8]);
            w
        });
        prop_assert_eq!(stored, expected, "key {:#x}", ip);
        if stored.is_some() {
            prop_assert!(view.may_hold(h), "stored key {:#x} ruled out", ip);
        }
    }
    prop_assert_eq!(
        t.occupancy(TableId::ShadowMap),
        reference.len() as u32,
        "occupancy"
    );
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Write pool key `.0` with version `.1` (an insert or a replacement).
    Write(u32, u32),
    /// Delete pool key `.0` (found or not).
    Delete(u32),
    /// CLEAR the table.
    Clear,
    /// A batch begins: the filter is refreshed as the fast lane does.
    Batch,
}

fn op(pool_size: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..pool_size, 1..1000u32).prop_map(|(k, v)| Op::Write(k, v)),
        5 => (0..pool_size).prop_map(Op::Delete),
        1 => Just(Op::Clear),
        4 => Just(Op::Batch),
    ]
}

const POOL: u32 = 40;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random writes, replacements (some in place, both buckets full), displacements,
    /// deletes and clears through the command path, with batches between: after every
    /// command every stored key passes the filter.
    #[test]
    fn the_filter_never_rules_out_a_stored_key(
        ops in proptest::collection::vec(op(POOL), 1..300)
    ) {
        // One model's tables for all cases would leak state between them; a fresh one is
        // cheap (table memory is mapped lazily).
        let mut t = Tables::new();
        let mut reference = BTreeMap::new();
        for op in ops {
            match op {
                Op::Write(k, v) => {
                    write(&mut t, pool(k), v);
                    reference.insert(pool(k), v);
                }
                Op::Delete(k) => {
                    let out = t.execute(
                        TableId::ShadowMap as u8,
                        Some(TableOp::Delete),
                        0,
                        &key(pool(k)).1,
                        &[0; 16],
                    );
                    let expected = if reference.remove(&pool(k)).is_some() {
                        CmdResult::Ok
                    } else {
                        CmdResult::NotFound
                    };
                    prop_assert_eq!(out.result, expected);
                }
                Op::Clear => {
                    let out = t.execute(TableId::ShadowMap as u8, Some(TableOp::Clear), 0, &[0; 16], &[0; 16]);
                    prop_assert_eq!(out.result, CmdResult::Ok);
                    reference.clear();
                }
                Op::Batch => t.shadow_map.refresh_filter(),
            }
            check(&t, &reference, POOL)?;
        }
    }
}

/// The crowded keys make the firmware displace an entry, and the moved entry and the new
/// one both pass the filter without it being built again.
#[test]
fn a_displacement_keeps_every_key_in_the_filter() {
    let mut t = Tables::new();
    let mut reference = BTreeMap::new();
    let keys = crowded();
    let mut displaced = 0;
    for (v, &ip) in (1..).zip(keys) {
        displaced += write(&mut t, ip, v).displaced;
        reference.insert(ip, v);
    }
    assert!(displaced > 0, "the anchor key displaced no entry");
    // Both buckets full: a replacement is written in place.
    let again = write(&mut t, keys[0], 999);
    assert!(again.replaced);
    reference.insert(keys[0], 999);
    check(&t, &reference, keys.len() as u32).expect("every key stored and in the filter");
    assert_eq!(t.shadow_map.filter_rebuilds(), 0);
}

/// Table programming interleaved with batches: one write (insert, replacement or delete)
/// between batches, thousands of times, builds the filter again only when deletes have left
/// more stale bits than stored keys — never on inserts and replacements. Before the filter
/// followed writes, every batch after a write built it again (one per write here).
#[test]
fn writes_between_batches_do_not_rebuild_the_filter() {
    let mut t = Tables::new();
    let mut reference = BTreeMap::new();
    // 3,000 inserts, then 3,000 replacements, a batch after each.
    for round in 0..2u32 {
        for i in 0..3_000 {
            write(&mut t, 0x0d00_0000 + i, round * 10_000 + i + 1);
            reference.insert(0x0d00_0000 + i, round * 10_000 + i + 1);
            t.shadow_map.refresh_filter();
        }
    }
    assert_eq!(
        t.shadow_map.filter_rebuilds(),
        0,
        "inserts and replacements"
    );
    // Deletes of keys `range` (of the 3,000), a batch after each.
    let delete = |t: &mut Tables, reference: &mut BTreeMap<u32, u32>, range: Range<u32>| {
        for i in range {
            let out = t.execute(
                TableId::ShadowMap as u8,
                Some(TableOp::Delete),
                0,
                &key(0x0d00_0000 + i).1,
                &[0; 16],
            );
            assert_eq!(out.result, CmdResult::Ok);
            reference.remove(&(0x0d00_0000 + i));
            t.shadow_map.refresh_filter();
        }
    };
    // Deletes of as many keys as stay stored leave the filter as it is.
    delete(&mut t, &mut reference, 0..1_500);
    assert_eq!(t.shadow_map.filter_rebuilds(), 0, "1,500 deletes of 3,000");
    // More deletes than keys left: the filter is built again, once.
    delete(&mut t, &mut reference, 1_500..2_500);
    assert_eq!(t.shadow_map.filter_rebuilds(), 1, "2,500 deletes of 3,000");
    // Built again, it rules out the keys deleted before (all but those sharing a bit with
    // a stored one); those deleted since may still pass.
    let view = t.shadow_map.view();
    let ruled_out = (0..1_500)
        .filter(|&i| !view.may_hold(exact::hash(&key(0x0d00_0000 + i).0)))
        .count();
    assert!(ruled_out > 1_490, "only {ruled_out} deleted keys ruled out");
    for i in 2_500..3_000 {
        assert!(view.may_hold(exact::hash(&key(0x0d00_0000 + i).0)));
    }
    assert_eq!(t.occupancy(TableId::ShadowMap), reference.len() as u32);
}
