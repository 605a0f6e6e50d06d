//! The NIC's tables as the model stores them, and the table commands that change them.
//!
//! Exact tables keep hardware-format memory (`shadownet_hw::table::exact`), maintained by the
//! firmware crate's code as the NIC's embedded cores would; rule tables keep their decoded
//! rules and compile them into a classifier the first time a packet needs it after a change.
//! A command is applied whole between two packets, so no packet sees half of a change.

mod exact;
mod memory;
mod rules;

use shadownet_hw::{
    device_regs::tbl_cmd::cmd::TableOp,
    device_regs::tbl_cmd::status::CmdResult,
    layout::{
        LayoutError, WINDOW_WORDS, acl::AclAction, bytes_to_words, map,
        mirror_filter::MirrorAction, rule::RuleMatch, shadow_map, vni, vport::VportEntry,
        words_to_bytes,
    },
    table::{TableId, TableKind, exact::key_from_window},
};

pub use exact::{ExactStore, Prefetched};
pub use rules::{Classifier, CompiledRule, PacketKey, RuleAction, RuleTable};

/// A KEY or VALUE register window.
pub type Window = [u32; WINDOW_WORDS];

/// What a table command produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdOutcome {
    /// Result code for STATUS.RESULT.
    pub result: CmdResult,
    /// Slot touched (RESULT_INDEX).
    pub index: u32,
    /// RESULT_KEY/RESULT_VALUE hold an entry.
    pub valid: bool,
    /// WRITE replaced an existing entry.
    pub replaced: bool,
    /// The table changed (GENERATION advances).
    pub changed: bool,
    /// RESULT_KEY.
    pub key: Window,
    /// RESULT_VALUE.
    pub value: Window,
}

impl CmdOutcome {
    fn result(result: CmdResult) -> CmdOutcome {
        CmdOutcome {
            result,
            index: 0,
            valid: false,
            replaced: false,
            changed: false,
            key: [0; WINDOW_WORDS],
            value: [0; WINDOW_WORDS],
        }
    }

    fn ok() -> CmdOutcome {
        CmdOutcome::result(CmdResult::Ok)
    }
}

/// A VF port binding with the words it was written with.
#[derive(Clone, Copy, Debug)]
pub struct VportSlot {
    /// The binding.
    pub entry: VportEntry,
    /// VALUE words as written.
    pub value: Window,
}

/// Every table of the NIC.
pub struct Tables {
    /// VF port bindings.
    pub vports: Vec<Option<VportSlot>>,
    /// Virtual networks.
    pub vni: ExactStore,
    /// ACL rules.
    pub acl: RuleTable<AclAction>,
    /// Overlay to substrate map.
    pub map: ExactStore,
    /// Mirror filters.
    pub mirror_filters: RuleTable<MirrorAction>,
    /// Production to shadow map.
    pub shadow_map: ExactStore,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::new()
    }
}

impl Tables {
    /// Empty tables of the contract's sizes.
    pub fn new() -> Tables {
        Tables {
            vports: vec![None; TableId::Vport.capacity() as usize],
            vni: ExactStore::new(TableId::Vni),
            acl: RuleTable::new(TableId::Acl),
            map: ExactStore::new(TableId::Map),
            mirror_filters: RuleTable::new(TableId::MirrorFilter),
            shadow_map: ExactStore::new(TableId::ShadowMap),
        }
    }

    /// The binding of VF port `v`, if any.
    #[inline]
    pub fn vport(&self, v: u16) -> Option<VportEntry> {
        self.vports.get(v as usize)?.as_ref().map(|s| s.entry)
    }

    /// Removes every entry of every table.
    pub fn clear_all(&mut self) {
        for t in TableId::ALL {
            self.clear(t);
        }
    }

    fn clear(&mut self, t: TableId) {
        match t {
            TableId::Vport => self.vports.iter_mut().for_each(|s| *s = None),
            TableId::Vni => self.vni.clear(),
            TableId::Acl => self.acl.clear(),
            TableId::Map => self.map.clear(),
            TableId::MirrorFilter => self.mirror_filters.clear(),
            TableId::ShadowMap => self.shadow_map.clear(),
        }
    }

    /// Occupied slots of a table.
    pub fn occupancy(&self, t: TableId) -> u32 {
        match t {
            TableId::Vport => self.vports.iter().filter(|s| s.is_some()).count() as u32,
            TableId::Vni => self.vni.occupancy(),
            TableId::Acl => self.acl.occupancy(),
            TableId::Map => self.map.occupancy(),
            TableId::MirrorFilter => self.mirror_filters.occupancy(),
            TableId::ShadowMap => self.shadow_map.occupancy(),
        }
    }

    /// Executes one table command from the register interface.
    pub fn execute(
        &mut self,
        table: u8,
        op: Option<TableOp>,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> CmdOutcome {
        let Some(op) = op else {
            return CmdOutcome::result(CmdResult::BadOp);
        };
        if op == TableOp::Nop {
            return CmdOutcome::ok();
        }
        let Some(t) = TableId::from_u8(table) else {
            return CmdOutcome::result(CmdResult::BadTable);
        };
        if op == TableOp::Clear {
            self.clear(t);
            return CmdOutcome {
                changed: true,
                ..CmdOutcome::ok()
            };
        }
        match t.kind() {
            TableKind::Indexed { slots } => {
                if index >= slots {
                    return CmdOutcome::result(CmdResult::BadIndex);
                }
                self.execute_indexed(t, op, index, key, value)
            }
            TableKind::Exact { .. } => self.execute_exact(t, op, index, key, value),
        }
    }

    fn execute_indexed(
        &mut self,
        t: TableId,
        op: TableOp,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> CmdOutcome {
        let i = index as usize;
        match op {
            TableOp::Write => {
                if let Err(code) = check_unused(t, key, value) {
                    return CmdOutcome::result(code);
                }
                let replaced = match t {
                    TableId::Vport => {
                        let Ok(entry) = VportEntry::parse(&window_bytes(value)) else {
                            return CmdOutcome::result(CmdResult::BadEntry);
                        };
                        self.vports[i]
                            .replace(VportSlot {
                                entry,
                                value: *value,
                            })
                            .is_some()
                    }
                    TableId::Acl => match parse_rule::<AclAction>(key, value, true) {
                        Ok((m, a)) => self.acl.write(index, m, a, key, value),
                        Err(_) => return CmdOutcome::result(CmdResult::BadEntry),
                    },
                    TableId::MirrorFilter => match parse_rule::<MirrorAction>(key, value, false) {
                        Ok((m, a)) => self.mirror_filters.write(index, m, a, key, value),
                        Err(_) => return CmdOutcome::result(CmdResult::BadEntry),
                    },
                    _ => unreachable!("indexed tables are VPORT, ACL and MIRROR_FILTER"),
                };
                CmdOutcome {
                    index,
                    replaced,
                    changed: true,
                    ..CmdOutcome::ok()
                }
            }
            TableOp::Delete => {
                let existed = match t {
                    TableId::Vport => self.vports[i].take().is_some(),
                    TableId::Acl => self.acl.delete(index),
                    TableId::MirrorFilter => self.mirror_filters.delete(index),
                    _ => unreachable!("indexed tables are VPORT, ACL and MIRROR_FILTER"),
                };
                if existed {
                    CmdOutcome {
                        index,
                        changed: true,
                        ..CmdOutcome::ok()
                    }
                } else {
                    CmdOutcome::result(CmdResult::NotFound)
                }
            }
            TableOp::ReadSlot => {
                let found = match t {
                    TableId::Vport => self.vports[i].map(|s| ([0; WINDOW_WORDS], s.value)),
                    TableId::Acl => self.acl.words(index),
                    TableId::MirrorFilter => self.mirror_filters.words(index),
                    _ => unreachable!("indexed tables are VPORT, ACL and MIRROR_FILTER"),
                };
                match found {
                    Some((key, value)) => CmdOutcome {
                        index,
                        valid: true,
                        key,
                        value,
                        ..CmdOutcome::ok()
                    },
                    None => CmdOutcome {
                        index,
                        ..CmdOutcome::result(CmdResult::NotFound)
                    },
                }
            }
            TableOp::Lookup => CmdOutcome::result(CmdResult::BadOp),
            TableOp::Nop | TableOp::Clear => CmdOutcome::ok(),
        }
    }

    fn execute_exact(
        &mut self,
        t: TableId,
        op: TableOp,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> CmdOutcome {
        let store = match t {
            TableId::Vni => &mut self.vni,
            TableId::Map => &mut self.map,
            TableId::ShadowMap => &mut self.shadow_map,
            _ => unreachable!("exact tables are VNI, MAP and SHADOW_MAP"),
        };
        match op {
            TableOp::Write => {
                if let Err(code) = check_unused(t, key, value) {
                    return CmdOutcome::result(code);
                }
                if validate_exact(t, key, value).is_err() {
                    return CmdOutcome::result(CmdResult::BadEntry);
                }
                match store.insert(&key_from_window(key), &exact_value(value)) {
                    Some(ins) => CmdOutcome {
                        index: ins.slot as u32,
                        replaced: ins.replaced,
                        changed: true,
                        ..CmdOutcome::ok()
                    },
                    None => CmdOutcome::result(CmdResult::Full),
                }
            }
            TableOp::Delete => {
                if check_unused(t, key, &[0; WINDOW_WORDS]).is_err() {
                    return CmdOutcome::result(CmdResult::BadEntry);
                }
                match store.remove(&key_from_window(key)) {
                    Some(slot) => CmdOutcome {
                        index: slot as u32,
                        changed: true,
                        ..CmdOutcome::ok()
                    },
                    None => CmdOutcome::result(CmdResult::NotFound),
                }
            }
            TableOp::Lookup => {
                if check_unused(t, key, &[0; WINDOW_WORDS]).is_err() {
                    return CmdOutcome::result(CmdResult::BadEntry);
                }
                match store.find_slot(&key_from_window(key)) {
                    Some(slot) => found(slot, store),
                    None => CmdOutcome::result(CmdResult::NotFound),
                }
            }
            TableOp::ReadSlot => {
                if index >= t.capacity() {
                    return CmdOutcome::result(CmdResult::BadIndex);
                }
                if store.occupied(index as usize) {
                    found(index as usize, store)
                } else {
                    CmdOutcome {
                        index,
                        ..CmdOutcome::result(CmdResult::NotFound)
                    }
                }
            }
            TableOp::Nop | TableOp::Clear => CmdOutcome::ok(),
        }
    }
}

fn found(slot: usize, store: &ExactStore) -> CmdOutcome {
    let s = store.slot(slot);
    let mut key = [0; WINDOW_WORDS];
    key[..s.key.len()].copy_from_slice(&s.key);
    let mut value = [0; WINDOW_WORDS];
    value[..s.value.len()].copy_from_slice(&s.value);
    CmdOutcome {
        index: slot as u32,
        valid: true,
        key,
        value,
        ..CmdOutcome::ok()
    }
}

fn window_bytes<const B: usize>(w: &Window) -> [u8; B] {
    let all: [u8; 64] = words_to_bytes(w);
    let mut out = [0u8; B];
    out.copy_from_slice(&all[..B]);
    out
}

fn exact_value(w: &Window) -> shadownet_hw::table::exact::Value {
    let mut v = [0u32; 8];
    v.copy_from_slice(&w[..8]);
    v
}

/// Words past a table's key and value lengths must be zero: a host writing more than the
/// layout holds has a bug the device reports rather than ignores.
fn check_unused(t: TableId, key: &Window, value: &Window) -> Result<(), CmdResult> {
    let (kw, vw) = (t.key_len() / 4, t.value_len() / 4);
    if key[kw..].iter().chain(&value[vw..]).any(|&w| w != 0) {
        return Err(CmdResult::BadEntry);
    }
    Ok(())
}

fn validate_exact(t: TableId, key: &Window, value: &Window) -> Result<(), LayoutError> {
    match t {
        TableId::Vni => {
            vni::VniKey::parse(&window_bytes(key))?;
            vni::VniEntry::parse(&window_bytes(value))?;
        }
        TableId::Map => {
            map::MapKey::parse(&window_bytes(key))?;
            map::MapValue::parse(&window_bytes(value))?;
        }
        TableId::ShadowMap => {
            shadow_map::ShadowMapKey::parse(&window_bytes(key))?;
            shadow_map::ShadowMapValue::parse(&window_bytes(value))?;
        }
        _ => unreachable!("exact tables are VNI, MAP and SHADOW_MAP"),
    }
    Ok(())
}

fn parse_rule<A: RuleAction>(
    key: &Window,
    value: &Window,
    scope_is_vni: bool,
) -> Result<(RuleMatch, A), LayoutError> {
    let m = RuleMatch::parse(&window_bytes(key), scope_is_vni)?;
    let a = A::parse(&window_bytes(value))?;
    Ok((m, a))
}

/// Words of a typed entry, for tests and tools that build commands.
pub fn to_window<const B: usize>(bytes: &[u8; B]) -> Window {
    let mut all = [0u8; 64];
    all[..B].copy_from_slice(bytes);
    bytes_to_words(&all)
}
