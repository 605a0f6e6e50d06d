//! Table state as a set of keyed entries: what a [`Plan`] asks for, and what the NIC holds,
//! read back through the driver.

use std::collections::BTreeMap;

use shadownet_hw::{
    NUM_SESSIONS,
    layout::{
        LayoutError,
        acl::{self, AclAction, AclRule},
        map::{self, MapKey, MapValue},
        mirror_filter::{self, MirrorAction, MirrorFilter},
        rule::{self, RuleMatch},
        session::{self, MirrorSession},
        shadow_map::{self, ShadowMapKey, ShadowMapValue},
        vni::{self, VniEntry, VniKey},
        vport::{self, VportEntry},
    },
    table::TableId,
};

use super::{ReconcileError, Table, describe::Describe};
use crate::{
    driver::{Device, Nic, RawEntry},
    netdesc::Plan,
};

/// Every table entry and enabled mirror session of one NIC, keyed the way the device
/// addresses them: exact tables by key, rule tables by slot, sessions by number, VF bindings
/// by port.
///
/// Entries are held in their canonical form (what the device gives back for them), so two
/// states compare equal exactly when the device would hold the same bytes. A mirror session
/// is present only while enabled: a disabled session forwards nothing, whatever its other
/// fields say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableState {
    /// Virtual networks by VNI.
    pub vnis: BTreeMap<u32, VniEntry>,
    /// VF bindings by port.
    pub vports: BTreeMap<u16, VportEntry>,
    /// Overlay to substrate map.
    pub map: BTreeMap<MapKey, MapValue>,
    /// Production to shadow map.
    pub shadow_map: BTreeMap<ShadowMapKey, ShadowMapValue>,
    /// Enabled mirror sessions by number.
    pub sessions: BTreeMap<u16, MirrorSession>,
    /// ACL rules by slot.
    pub acl: BTreeMap<u32, AclRule>,
    /// Mirror filters by slot.
    pub mirror_filters: BTreeMap<u32, MirrorFilter>,
}

/// What the NIC holds, as read back.
pub type Actual = TableState;

/// Inserts `key → value`; the same key with another value is a conflict (a plan that
/// programs one slot twice would leave whichever came last, silently).
fn put<K: Ord + Copy + Describe, V: PartialEq + Describe>(
    into: &mut BTreeMap<K, V>,
    table: Table,
    key: K,
    value: V,
) -> Result<(), ReconcileError> {
    if let Some(old) = into.get(&key) {
        if *old != value {
            return Err(ReconcileError::Conflict {
                table,
                key: key.describe(),
                first: old.describe(),
                second: value.describe(),
            });
        }
        return Ok(());
    }
    into.insert(key, value);
    Ok(())
}

/// The form the device gives back for an entry: emitted and parsed again. An entry the
/// device would refuse stays as it is (the driver reports it when it is written).
macro_rules! canonical {
    ($ty:ty, $len:expr, $value:expr) => {{
        let value: &$ty = $value;
        let mut b = [0u8; $len];
        value.emit(&mut b);
        <$ty>::parse(&b).unwrap_or(*value)
    }};
}

fn canonical_rule(m: &RuleMatch, scope_is_vni: bool) -> RuleMatch {
    let mut b = [0u8; rule::LEN];
    m.emit(&mut b);
    RuleMatch::parse(&b, scope_is_vni).unwrap_or(*m)
}

fn canonical_acl(r: &AclRule) -> AclRule {
    AclRule {
        matches: canonical_rule(&r.matches, true),
        action: canonical!(AclAction, acl::VALUE_LEN, &r.action),
    }
}

fn canonical_filter(f: &MirrorFilter) -> MirrorFilter {
    MirrorFilter {
        matches: canonical_rule(&f.matches, false),
        action: canonical!(MirrorAction, mirror_filter::VALUE_LEN, &f.action),
    }
}

impl TableState {
    /// The state a plan asks for. Fails when the plan gives one key two different entries.
    pub fn from_plan(plan: &Plan) -> Result<TableState, ReconcileError> {
        let mut s = TableState::default();
        for (v, e) in &plan.vnis {
            let e = canonical!(VniEntry, vni::VALUE_LEN, e);
            put(&mut s.vnis, Table::Vni, *v, e)?;
        }
        for (p, e) in &plan.vports {
            let e = canonical!(VportEntry, vport::VALUE_LEN, e);
            put(&mut s.vports, Table::Vport, *p, e)?;
        }
        for (k, v) in &plan.map {
            let k = canonical!(MapKey, map::KEY_LEN, k);
            let v = canonical!(MapValue, map::VALUE_LEN, v);
            put(&mut s.map, Table::Map, k, v)?;
        }
        for (k, v) in &plan.shadow_map {
            let k = canonical!(ShadowMapKey, shadow_map::KEY_LEN, k);
            let v = canonical!(ShadowMapValue, shadow_map::VALUE_LEN, v);
            put(&mut s.shadow_map, Table::ShadowMap, k, v)?;
        }
        for (n, cfg) in &plan.sessions {
            let cfg = canonical!(MirrorSession, session::LEN, cfg);
            // A disabled session is the reset state: asking for one asks for nothing.
            if cfg.enabled {
                put(&mut s.sessions, Table::Session, *n, cfg)?;
            }
        }
        for (slot, r) in &plan.acl {
            put(&mut s.acl, Table::Acl, *slot, canonical_acl(r))?;
        }
        for (slot, f) in &plan.mirror_filters {
            put(
                &mut s.mirror_filters,
                Table::MirrorFilter,
                *slot,
                canonical_filter(f),
            )?;
        }
        Ok(s)
    }

    /// Entries held, over every table and session.
    pub fn len(&self) -> usize {
        self.vnis.len()
            + self.vports.len()
            + self.map.len()
            + self.shadow_map.len()
            + self.sessions.len()
            + self.acl.len()
            + self.mirror_filters.len()
    }

    /// Whether nothing is programmed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn undecodable(table: TableId, slot: u32) -> impl Fn(LayoutError) -> ReconcileError {
    move |source| ReconcileError::Undecodable {
        table,
        slot,
        source,
    }
}

fn part<const N: usize>(bytes: &[u8; 64]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn decode_vni(e: &RawEntry) -> Result<(u32, VniEntry), ReconcileError> {
    let bad = undecodable(TableId::Vni, e.index);
    let key = VniKey::parse(&part(&e.key)).map_err(&bad)?;
    Ok((key.vni, VniEntry::parse(&part(&e.value)).map_err(&bad)?))
}

fn decode_vport(e: &RawEntry) -> Result<(u16, VportEntry), ReconcileError> {
    let bad = undecodable(TableId::Vport, e.index);
    let port = u16::try_from(e.index).map_err(|_| bad(LayoutError::VportOutOfRange(u16::MAX)))?;
    Ok((port, VportEntry::parse(&part(&e.value)).map_err(&bad)?))
}

fn decode_map(e: &RawEntry) -> Result<(MapKey, MapValue), ReconcileError> {
    let bad = undecodable(TableId::Map, e.index);
    Ok((
        MapKey::parse(&part(&e.key)).map_err(&bad)?,
        MapValue::parse(&part(&e.value)).map_err(&bad)?,
    ))
}

fn decode_shadow_map(e: &RawEntry) -> Result<(ShadowMapKey, ShadowMapValue), ReconcileError> {
    let bad = undecodable(TableId::ShadowMap, e.index);
    Ok((
        ShadowMapKey::parse(&part(&e.key)).map_err(&bad)?,
        ShadowMapValue::parse(&part(&e.value)).map_err(&bad)?,
    ))
}

fn decode_acl(e: &RawEntry) -> Result<AclRule, ReconcileError> {
    let bad = undecodable(TableId::Acl, e.index);
    Ok(AclRule {
        matches: RuleMatch::parse(&part(&e.key), true).map_err(&bad)?,
        action: AclAction::parse(&part(&e.value)).map_err(&bad)?,
    })
}

fn decode_filter(e: &RawEntry) -> Result<MirrorFilter, ReconcileError> {
    let bad = undecodable(TableId::MirrorFilter, e.index);
    Ok(MirrorFilter {
        matches: RuleMatch::parse(&part(&e.key), false).map_err(&bad)?,
        action: MirrorAction::parse(&part(&e.value)).map_err(&bad)?,
    })
}

/// Every enabled mirror session of the device.
fn read_sessions<D: Device>(
    nic: &mut Nic<D>,
) -> Result<BTreeMap<u16, MirrorSession>, ReconcileError> {
    let mut out = BTreeMap::new();
    for s in 0..NUM_SESSIONS as u16 {
        let cfg = nic.fetch_session(s)?;
        if cfg.enabled {
            out.insert(s, cfg);
        }
    }
    Ok(out)
}

/// Fills the indexed tables (VF bindings, ACL, mirror filters) of `s` from the device.
fn dump_indexed<D: Device>(nic: &mut Nic<D>, s: &mut TableState) -> Result<(), ReconcileError> {
    for e in nic.dump(TableId::Vport)? {
        let (p, v) = decode_vport(&e)?;
        s.vports.insert(p, v);
    }
    for e in nic.dump(TableId::Acl)? {
        s.acl.insert(e.index, decode_acl(&e)?);
    }
    for e in nic.dump(TableId::MirrorFilter)? {
        s.mirror_filters.insert(e.index, decode_filter(&e)?);
    }
    Ok(())
}

/// The NIC's current state: every slot of every table dumped through the driver and decoded,
/// and every mirror session fetched.
///
/// The port configuration is not part of it: its registers are staged, and reading them
/// shows what was last written, not what the pipeline runs with (`hw/docs/ctrl.md`).
pub fn read_back<D: Device>(nic: &mut Nic<D>) -> Result<Actual, ReconcileError> {
    let mut s = TableState::default();
    for e in nic.dump(TableId::Vni)? {
        let (k, v) = decode_vni(&e)?;
        s.vnis.insert(k, v);
    }
    for e in nic.dump(TableId::Map)? {
        let (k, v) = decode_map(&e)?;
        s.map.insert(k, v);
    }
    for e in nic.dump(TableId::ShadowMap)? {
        let (k, v) = decode_shadow_map(&e)?;
        s.shadow_map.insert(k, v);
    }
    dump_indexed(nic, &mut s)?;
    s.sessions = read_sessions(nic)?;
    Ok(s)
}

/// Reads one exact table back by looking up the keys expected to be there, and dumps it
/// only when the device holds more entries than those lookups found.
///
/// The device's occupancy count makes this a complete read-back: if every entry it holds is
/// accounted for by a lookup, there is nothing else to find; otherwise the whole table is
/// dumped. A dump of the map walks up to two million slots one command at a time, a lookup
/// is one command per entry.
fn read_exact<D, K, V>(
    nic: &mut Nic<D>,
    table: TableId,
    keys: impl Iterator<Item = K>,
    lookup: impl Fn(&mut Nic<D>, &K) -> Result<Option<V>, ReconcileError>,
    decode: impl Fn(&RawEntry) -> Result<(K, V), ReconcileError>,
) -> Result<BTreeMap<K, V>, ReconcileError>
where
    D: Device,
    K: Ord,
{
    let mut found = BTreeMap::new();
    for k in keys {
        if let Some(v) = lookup(nic, &k)? {
            found.insert(k, v);
        }
    }
    if nic.occupancy(table) as usize == found.len() {
        return Ok(found);
    }
    tracing::debug!(
        %table,
        occupancy = nic.occupancy(table),
        known = found.len(),
        "entries not asked for: dumping the table"
    );
    let mut all = BTreeMap::new();
    for e in nic.dump(table)? {
        let (k, v) = decode(&e)?;
        all.insert(k, v);
    }
    Ok(all)
}

/// The NIC's current state, read back as [`read_back`] does, but with the exact tables
/// (VNI, map, shadow map) read by looking up the keys of `expected` and of `also` (the state
/// last programmed), dumping a table only when the device holds entries beyond those. The
/// result is the same as [`read_back`]'s; it is much faster when the NIC holds what was
/// expected.
pub fn read_back_expecting<D: Device>(
    nic: &mut Nic<D>,
    expected: &TableState,
    also: Option<&TableState>,
) -> Result<Actual, ReconcileError> {
    let empty = TableState::default();
    let also = also.unwrap_or(&empty);
    let mut s = TableState {
        vnis: read_exact(
            nic,
            TableId::Vni,
            merged(&expected.vnis, &also.vnis),
            |nic, k| Ok(nic.lookup_vni(*k)?),
            decode_vni,
        )?,
        map: read_exact(
            nic,
            TableId::Map,
            merged(&expected.map, &also.map),
            |nic, k| Ok(nic.lookup_map(k)?),
            decode_map,
        )?,
        shadow_map: read_exact(
            nic,
            TableId::ShadowMap,
            merged(&expected.shadow_map, &also.shadow_map),
            |nic, k| Ok(nic.lookup_shadow_map(k)?),
            decode_shadow_map,
        )?,
        sessions: read_sessions(nic)?,
        ..TableState::default()
    };
    dump_indexed(nic, &mut s)?;
    Ok(s)
}

/// The keys of two maps, each once, in order.
fn merged<'a, K: Ord + Copy + 'a, V: 'a>(
    a: &'a BTreeMap<K, V>,
    b: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = K> + 'a {
    let mut ia = a.keys().copied().peekable();
    let mut ib = b.keys().copied().peekable();
    std::iter::from_fn(move || match (ia.peek(), ib.peek()) {
        (Some(x), Some(y)) => match x.cmp(y) {
            std::cmp::Ordering::Less => ia.next(),
            std::cmp::Ordering::Greater => ib.next(),
            std::cmp::Ordering::Equal => {
                ib.next();
                ia.next()
            }
        },
        (Some(_), None) => ia.next(),
        (None, _) => ib.next(),
    })
}
