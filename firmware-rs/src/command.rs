//! Table commands: what the cores do for one TBL_CMD command or one command-ring descriptor.
//!
//! The firmware validates the operands against the table layouts, runs the exact-table
//! maintenance (cuckoo insertion with displacement, deletes) on table memory, and hands rule
//! and port entries, once parsed, to the rule memory (the TCAM the pipeline compares). What
//! the hardware stores is behind [`TableHw`]; the simulator implements it over its table
//! memory. Every command is charged in cycles ([`crate::cost`]).
//!
//! ## No packet sees half an entry
//!
//! A command runs whole between two packets of the pipeline's table port. Inside table memory
//! the order of writes keeps every lookup answering the old or the new state: an exact-table
//! slot's tag is its valid word, written last when a slot is filled and first when it is
//! emptied; a replaced value is written into a free slot of the key's buckets and published by
//! its tag before the old slot's tag is cleared (`tables::exact`). `TBL_CMD.GENERATION` counts
//! the changes: a reader that sees the same generation before and after reading a set of
//! entries has read one state of the tables.

use shadownet_hw::{
    device_regs::tbl_cmd::{cmd::TableOp, status::CmdResult},
    layout::{
        LayoutError, WINDOW_WORDS,
        acl::AclAction,
        map,
        mirror_filter::MirrorAction,
        rule::{self, RuleMatch},
        shadow_map, vni,
        vport::{self, VportEntry},
        words_to_bytes,
    },
    table::{
        TableId, TableKind,
        exact::{Slot, Value, key_from_window},
    },
};

use crate::{
    cost,
    tables::exact::{ExactError, ExactTable},
};

/// A KEY or VALUE window (16 little-endian words).
pub type Window = [u32; WINDOW_WORDS];

/// Exact-table memory and its occupancy count, as the cores reach it.
pub struct ExactAccess<'a> {
    /// The table memory.
    pub table: ExactTable<'a>,
    /// Occupied slots, kept by the firmware.
    pub occupancy: &'a mut u32,
}

/// The table hardware the firmware maintains: exact-table memory, and the rule and port
/// memories whose entries the firmware has validated.
pub trait TableHw {
    /// Memory of an exact table (VNI, MAP, SHADOW_MAP); `None` for other tables.
    fn exact(&mut self, table: TableId) -> Option<ExactAccess<'_>>;
    /// Binds VF `index`; returns whether it replaced a binding.
    fn write_vport(&mut self, index: u32, entry: VportEntry, value: &Window) -> bool;
    /// Writes ACL slot `index`; returns whether it replaced a rule.
    fn write_acl(
        &mut self,
        index: u32,
        matches: RuleMatch,
        action: AclAction,
        key: &Window,
        value: &Window,
    ) -> bool;
    /// Writes mirror-filter slot `index`; returns whether it replaced a rule.
    fn write_mirror_filter(
        &mut self,
        index: u32,
        matches: RuleMatch,
        action: MirrorAction,
        key: &Window,
        value: &Window,
    ) -> bool;
    /// Clears slot `index` of an indexed table; returns whether it held an entry.
    fn delete_indexed(&mut self, table: TableId, index: u32) -> bool;
    /// KEY and VALUE words of slot `index` of an indexed table, as written.
    fn read_indexed(&self, table: TableId, index: u32) -> Option<(Window, Window)>;
    /// Empties an indexed table (exact tables are cleared through [`TableHw::exact`]).
    fn clear_indexed(&mut self, table: TableId);
    /// Occupied slots of a table.
    fn occupancy(&self, table: TableId) -> u32;
}

/// One table command, from the registers or from a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// `TableOp` code.
    pub op: u8,
    /// `TableId` code.
    pub table: u8,
    /// Slot.
    pub index: u32,
    /// KEY words.
    pub key: Window,
    /// VALUE words.
    pub value: Window,
}

/// What a command produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Result code.
    pub result: CmdResult,
    /// Slot touched (`RESULT_INDEX`).
    pub index: u32,
    /// `key`/`value` hold an entry.
    pub valid: bool,
    /// A WRITE replaced an existing entry.
    pub replaced: bool,
    /// The table changed (the generation advances).
    pub changed: bool,
    /// Entries an exact-table insert moved.
    pub displaced: u32,
    /// Cycles the command took on the cores.
    pub cycles: u32,
    /// `RESULT_KEY`.
    pub key: Window,
    /// `RESULT_VALUE`.
    pub value: Window,
}

impl Outcome {
    fn result(result: CmdResult) -> Outcome {
        Outcome {
            result,
            index: 0,
            valid: false,
            replaced: false,
            changed: false,
            displaced: 0,
            cycles: 0,
            key: [0; WINDOW_WORDS],
            value: [0; WINDOW_WORDS],
        }
    }

    fn ok() -> Outcome {
        Outcome::result(CmdResult::Ok)
    }
}

/// The `TableOp` with this code.
pub fn table_op(code: u8) -> Option<TableOp> {
    Some(match code {
        0 => TableOp::Nop,
        1 => TableOp::Write,
        2 => TableOp::Delete,
        3 => TableOp::Lookup,
        4 => TableOp::ReadSlot,
        5 => TableOp::Clear,
        _ => return None,
    })
}

/// Executes one command against the table hardware.
pub fn execute<H: TableHw + ?Sized>(hw: &mut H, cmd: &Command) -> Outcome {
    let mut out = dispatch(hw, cmd);
    out.cycles = out.cycles.saturating_add(cost::COMMAND);
    out
}

fn dispatch<H: TableHw + ?Sized>(hw: &mut H, cmd: &Command) -> Outcome {
    let Some(op) = table_op(cmd.op) else {
        return Outcome::result(CmdResult::BadOp);
    };
    if op == TableOp::Nop {
        return Outcome::ok();
    }
    let Some(t) = TableId::from_u8(cmd.table) else {
        return Outcome::result(CmdResult::BadTable);
    };
    if op == TableOp::Clear {
        let cycles = clear(hw, t);
        return Outcome {
            changed: true,
            cycles,
            ..Outcome::ok()
        };
    }
    match t.kind() {
        TableKind::Indexed { slots } => {
            if cmd.index >= slots {
                return Outcome::result(CmdResult::BadIndex);
            }
            indexed(hw, t, op, cmd)
        }
        TableKind::Exact { .. } => exact(hw, t, op, cmd),
    }
}

fn clear<H: TableHw + ?Sized>(hw: &mut H, t: TableId) -> u32 {
    match hw.exact(t) {
        Some(mut e) => {
            // An empty table is left alone: clearing touches every slot of memory that may
            // never have been used (the MAP table is 128 MiB).
            if *e.occupancy == 0 {
                return cost::RULE_WRITE;
            }
            e.table.clear();
            *e.occupancy = 0;
            // One write per slot: clearing a big table is the slowest command there is.
            (e.table.capacity() as u32).saturating_mul(cost::SLOT_WRITE)
        }
        None => {
            hw.clear_indexed(t);
            t.capacity().saturating_mul(cost::RULE_WRITE)
        }
    }
}

fn indexed<H: TableHw + ?Sized>(hw: &mut H, t: TableId, op: TableOp, cmd: &Command) -> Outcome {
    let index = cmd.index;
    let (key, value) = (&cmd.key, &cmd.value);
    match op {
        TableOp::Write => {
            if let Err(code) = check_unused(t, key, value) {
                return Outcome::result(code);
            }
            let replaced = match t {
                TableId::Vport => {
                    let Ok(entry) = VportEntry::parse(&window_bytes::<{ vport::VALUE_LEN }>(value))
                    else {
                        return Outcome::result(CmdResult::BadEntry);
                    };
                    hw.write_vport(index, entry, value)
                }
                TableId::Acl => match parse_rule(key, value, true)
                    .and_then(|m| Ok((m, AclAction::parse(&window_bytes(value))?)))
                {
                    Ok((m, a)) => hw.write_acl(index, m, a, key, value),
                    Err(_) => return Outcome::result(CmdResult::BadEntry),
                },
                TableId::MirrorFilter => match parse_rule(key, value, false)
                    .and_then(|m| Ok((m, MirrorAction::parse(&window_bytes(value))?)))
                {
                    Ok((m, a)) => hw.write_mirror_filter(index, m, a, key, value),
                    Err(_) => return Outcome::result(CmdResult::BadEntry),
                },
                // Exact tables never reach here (TableKind::Indexed).
                TableId::Vni | TableId::Map | TableId::ShadowMap => {
                    return Outcome::result(CmdResult::BadTable);
                }
            };
            Outcome {
                index,
                replaced,
                changed: true,
                cycles: cost::VALIDATE + cost::RULE_WRITE,
                ..Outcome::ok()
            }
        }
        TableOp::Delete => {
            if hw.delete_indexed(t, index) {
                Outcome {
                    index,
                    changed: true,
                    cycles: cost::RULE_WRITE,
                    ..Outcome::ok()
                }
            } else {
                Outcome::result(CmdResult::NotFound)
            }
        }
        TableOp::ReadSlot => match hw.read_indexed(t, index) {
            Some((key, value)) => Outcome {
                index,
                valid: true,
                key,
                value,
                cycles: cost::RULE_WRITE,
                ..Outcome::ok()
            },
            None => Outcome {
                index,
                ..Outcome::result(CmdResult::NotFound)
            },
        },
        TableOp::Lookup => Outcome::result(CmdResult::BadOp),
        TableOp::Nop | TableOp::Clear => Outcome::ok(),
    }
}

fn exact<H: TableHw + ?Sized>(hw: &mut H, t: TableId, op: TableOp, cmd: &Command) -> Outcome {
    let (key, value, index) = (&cmd.key, &cmd.value, cmd.index);
    // Operands are checked before table memory is touched: a refused command changes nothing.
    let operands_ok = match op {
        TableOp::Write => {
            check_unused(t, key, value).is_ok() && validate_exact(t, key, value).is_ok()
        }
        TableOp::Delete | TableOp::Lookup => check_unused(t, key, &[0; WINDOW_WORDS]).is_ok(),
        _ => true,
    };
    if !operands_ok {
        return Outcome::result(CmdResult::BadEntry);
    }
    let Some(e) = hw.exact(t) else {
        return Outcome::result(CmdResult::BadTable);
    };
    let ExactAccess {
        mut table,
        occupancy,
    } = e;
    let k = key_from_window(key);
    match op {
        TableOp::Write => {
            let mut v: Value = [0; 8];
            v.copy_from_slice(&value[..8]);
            match table.insert(&k, &v) {
                Ok(ins) => {
                    if !ins.replaced {
                        *occupancy += 1;
                    }
                    Outcome {
                        index: ins.slot as u32,
                        replaced: ins.replaced,
                        changed: true,
                        displaced: ins.displaced as u32,
                        cycles: cost::VALIDATE
                            + cost::BUCKET_READ * table.buckets_read() as u32
                            + cost::SLOT_WRITE * (1 + 2 * ins.displaced as u32),
                        ..Outcome::ok()
                    }
                }
                Err(ExactError::Full) => Outcome {
                    cycles: cost::VALIDATE + cost::BUCKET_READ * table.buckets_read() as u32,
                    ..Outcome::result(CmdResult::Full)
                },
                Err(ExactError::NotFound | ExactError::BadGeometry) => {
                    Outcome::result(CmdResult::BadTable)
                }
            }
        }
        TableOp::Delete => match table.remove(&k) {
            Ok(slot) => {
                *occupancy = occupancy.saturating_sub(1);
                Outcome {
                    index: slot as u32,
                    changed: true,
                    cycles: 2 * cost::BUCKET_READ + cost::SLOT_WRITE,
                    ..Outcome::ok()
                }
            }
            Err(_) => Outcome {
                cycles: 2 * cost::BUCKET_READ,
                ..Outcome::result(CmdResult::NotFound)
            },
        },
        TableOp::Lookup => match table.memory().find(&k) {
            Some(slot) => found(slot, &table.memory().slots[slot], 2 * cost::BUCKET_READ),
            None => Outcome {
                cycles: 2 * cost::BUCKET_READ,
                ..Outcome::result(CmdResult::NotFound)
            },
        },
        TableOp::ReadSlot => {
            if index >= t.capacity() {
                return Outcome::result(CmdResult::BadIndex);
            }
            let m = table.memory();
            match m.tags.get(index as usize) {
                Some(&tag) if tag != 0 => found(index as usize, &m.slots[index as usize], 2),
                _ => Outcome {
                    index,
                    ..Outcome::result(CmdResult::NotFound)
                },
            }
        }
        TableOp::Nop | TableOp::Clear => Outcome::ok(),
    }
}

fn found(slot: usize, s: &Slot, cycles: u32) -> Outcome {
    let mut key = [0; WINDOW_WORDS];
    key[..s.key.len()].copy_from_slice(&s.key);
    let mut value = [0; WINDOW_WORDS];
    value[..s.value.len()].copy_from_slice(&s.value);
    Outcome {
        index: slot as u32,
        valid: true,
        key,
        value,
        cycles,
        ..Outcome::ok()
    }
}

fn window_bytes<const B: usize>(w: &Window) -> [u8; B] {
    let all: [u8; 64] = words_to_bytes(w);
    let mut out = [0u8; B];
    out.copy_from_slice(&all[..B]);
    out
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
        TableId::Vport | TableId::Acl | TableId::MirrorFilter => {}
    }
    Ok(())
}

fn parse_rule(key: &Window, _value: &Window, scope_is_vni: bool) -> Result<RuleMatch, LayoutError> {
    RuleMatch::parse(&window_bytes::<{ rule::LEN }>(key), scope_is_vni)
}
