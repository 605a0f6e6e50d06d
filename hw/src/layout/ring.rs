//! Records of the DMA rings (`CMD_RING`, `TELEMETRY_RING`): command descriptors the host
//! writes, completion records and telemetry records the device writes, all in host memory.
//!
//! Every record carries a **phase bit**. A ring of `2^n` entries is walked with free-running
//! indices; the phase of index `i` is `(i >> n) & 1 == 0`, i.e. 1 on the first pass, 0 on the
//! second, and so on. Whoever writes a record sets the phase of the pass it belongs to, so the
//! reader knows a record is new without reading a device register: a completion whose phase
//! equals the phase of the reader's index has been written in this pass. Rings start zeroed, so
//! nothing looks written before the first pass.
//!
//! Multi-byte fields are little-endian, like the register windows.

use super::LayoutError;

/// Bytes of a command descriptor.
pub const DESCRIPTOR_LEN: usize = 128;
/// Bytes of a completion record.
pub const COMPLETION_LEN: usize = 16;
/// Bytes of a telemetry record.
pub const TELEMETRY_LEN: usize = 32;
/// Largest ring: `2^MAX_SIZE_LOG2` entries.
pub const MAX_SIZE_LOG2: u32 = 16;
/// Key bytes a descriptor carries (the longest key, a rule's match words, is 48).
pub const DESC_KEY_LEN: usize = 48;
/// Value bytes a descriptor carries (the longest value is 32).
pub const DESC_VALUE_LEN: usize = 32;

// A descriptor carries every table's key and value (the longest key is a rule's match words).
const _: () = assert!(DESC_KEY_LEN >= super::rule::LEN);
const _: () = assert!(DESC_VALUE_LEN >= super::map::VALUE_LEN);
const _: () = assert!(DESC_VALUE_LEN >= super::shadow_map::VALUE_LEN);
const _: () = assert!(DESC_VALUE_LEN >= super::acl::VALUE_LEN);

/// The phase of free-running index `index` in a ring of `2^size_log2` entries.
#[inline]
pub const fn phase(index: u32, size_log2: u32) -> bool {
    // A 64-bit shift so that a 2^32-entry pass count (size_log2 = 32) is well defined.
    ((index as u64) >> size_log2) & 1 == 0
}

mod field {
    use core::ops::Range;
    pub const OP: usize = 0;
    pub const TABLE: usize = 1;
    pub const FLAGS: usize = 2;
    pub const RESERVED0: usize = 3;
    pub const INDEX: Range<usize> = 4..8;
    pub const SEQ: Range<usize> = 8..12;
    pub const RESERVED1: Range<usize> = 12..16;
    pub const KEY: Range<usize> = 16..64;
    pub const VALUE: Range<usize> = 64..96;
    pub const RESERVED2: Range<usize> = 96..128;

    pub const C_SEQ: Range<usize> = 0..4;
    pub const C_STATUS: usize = 4;
    pub const C_FLAGS: usize = 5;
    pub const C_OP: usize = 6;
    pub const C_TABLE: usize = 7;
    pub const C_INDEX: Range<usize> = 8..12;
    pub const C_CYCLES: Range<usize> = 12..16;

    pub const T_KIND: usize = 0;
    pub const T_FLAGS: usize = 1;
    pub const T_AUX: Range<usize> = 2..4;
    pub const T_ID: Range<usize> = 4..8;
    pub const T_CYCLE: Range<usize> = 8..16;
    pub const T_A: Range<usize> = 16..24;
    pub const T_B: Range<usize> = 24..32;
}

/// Flag bits of descriptors, completions and telemetry records.
pub mod flags {
    /// The record belongs to the pass with this phase (see [`super::phase`]).
    pub const PHASE: u8 = 1 << 0;
    /// Completion: a WRITE replaced an existing entry.
    pub const REPLACED: u8 = 1 << 1;
    /// Completion: a LOOKUP or READ_SLOT found an entry (its slot is in `index`).
    pub const FOUND: u8 = 1 << 2;
}

fn u32_at(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[r]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[r]);
    u64::from_le_bytes(w)
}

/// A table operation in the command ring: the same operation codes, tables, index and
/// KEY/VALUE layouts as the TBL_CMD registers (`TableOp`, `TableId`), so a descriptor is a
/// table command that travels by DMA instead of through the register window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdDescriptor {
    /// `TBL_CMD.CMD.OP` code (`TableOp`).
    pub op: u8,
    /// `TBL_CMD.TABLE.ID` (`TableId`).
    pub table: u8,
    /// Phase of the pass the host wrote the descriptor in.
    pub phase: bool,
    /// `TBL_CMD.INDEX`: slot of indexed tables and of READ_SLOT.
    pub index: u32,
    /// Host tag echoed in the completion.
    pub seq: u32,
    /// Key bytes (`TBL_CMD.KEY`, the first 48 bytes).
    pub key: [u8; DESC_KEY_LEN],
    /// Value bytes (`TBL_CMD.VALUE`, the first 32 bytes).
    pub value: [u8; DESC_VALUE_LEN],
}

impl CmdDescriptor {
    /// Reads a descriptor. Reserved bytes and unknown flags must be zero.
    pub fn parse(b: &[u8; DESCRIPTOR_LEN]) -> Result<CmdDescriptor, LayoutError> {
        let flags = b[field::FLAGS];
        if flags & !flags::PHASE != 0 {
            return Err(LayoutError::ReservedNotZero {
                offset: field::FLAGS,
            });
        }
        reserved_zero(b, field::RESERVED0..field::RESERVED0 + 1)?;
        reserved_zero(b, field::RESERVED1)?;
        reserved_zero(b, field::RESERVED2)?;
        let mut key = [0u8; DESC_KEY_LEN];
        key.copy_from_slice(&b[field::KEY]);
        let mut value = [0u8; DESC_VALUE_LEN];
        value.copy_from_slice(&b[field::VALUE]);
        Ok(CmdDescriptor {
            op: b[field::OP],
            table: b[field::TABLE],
            phase: flags & flags::PHASE != 0,
            index: u32_at(b, field::INDEX),
            seq: u32_at(b, field::SEQ),
            key,
            value,
        })
    }

    /// The phase bit of a descriptor without parsing the rest (what the device checks first).
    pub fn phase_of(b: &[u8; DESCRIPTOR_LEN]) -> bool {
        b[field::FLAGS] & flags::PHASE != 0
    }

    /// Writes the descriptor.
    pub fn emit(&self, b: &mut [u8; DESCRIPTOR_LEN]) {
        b.fill(0);
        b[field::OP] = self.op;
        b[field::TABLE] = self.table;
        b[field::FLAGS] = if self.phase { flags::PHASE } else { 0 };
        b[field::INDEX].copy_from_slice(&self.index.to_le_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_le_bytes());
        b[field::KEY].copy_from_slice(&self.key);
        b[field::VALUE].copy_from_slice(&self.value);
    }
}

fn reserved_zero(b: &[u8], r: core::ops::Range<usize>) -> Result<(), LayoutError> {
    let start = r.start;
    match b[r].iter().position(|&x| x != 0) {
        Some(i) => Err(LayoutError::ReservedNotZero { offset: start + i }),
        None => Ok(()),
    }
}

/// What the device wrote back for one descriptor, in the completion ring slot of the same
/// index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The descriptor's `seq`.
    pub seq: u32,
    /// Result code (`CmdResult`); `BAD_ENTRY` also for a descriptor with reserved bits set.
    pub status: u8,
    /// Phase of the pass the device wrote it in.
    pub phase: bool,
    /// A WRITE replaced an existing entry.
    pub replaced: bool,
    /// A LOOKUP or READ_SLOT found an entry.
    pub found: bool,
    /// The descriptor's op code.
    pub op: u8,
    /// The descriptor's table.
    pub table: u8,
    /// Slot touched (as `TBL_CMD.RESULT_INDEX`).
    pub index: u32,
    /// Embedded-core cycles the command took.
    pub cycles: u32,
}

impl Completion {
    /// Reads a completion record.
    pub fn parse(b: &[u8; COMPLETION_LEN]) -> Completion {
        let f = b[field::C_FLAGS];
        Completion {
            seq: u32_at(b, field::C_SEQ),
            status: b[field::C_STATUS],
            phase: f & flags::PHASE != 0,
            replaced: f & flags::REPLACED != 0,
            found: f & flags::FOUND != 0,
            op: b[field::C_OP],
            table: b[field::C_TABLE],
            index: u32_at(b, field::C_INDEX),
            cycles: u32_at(b, field::C_CYCLES),
        }
    }

    /// Writes the record.
    pub fn emit(&self, b: &mut [u8; COMPLETION_LEN]) {
        b[field::C_SEQ].copy_from_slice(&self.seq.to_le_bytes());
        b[field::C_STATUS] = self.status;
        let mut f = 0;
        if self.phase {
            f |= flags::PHASE;
        }
        if self.replaced {
            f |= flags::REPLACED;
        }
        if self.found {
            f |= flags::FOUND;
        }
        b[field::C_FLAGS] = f;
        b[field::C_OP] = self.op;
        b[field::C_TABLE] = self.table;
        b[field::C_INDEX].copy_from_slice(&self.index.to_le_bytes());
        b[field::C_CYCLES].copy_from_slice(&self.cycles.to_le_bytes());
    }
}

/// Kinds of telemetry record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TelemetryKind {
    /// Per-port counters: `id` = dense port index, `a` = packets received, `b` = bytes received.
    Port = 1,
    /// Per-session counters: `id` = session, `a` = copies sent, `b` = bytes sent.
    Session = 2,
    /// A heavy hitter: `id` = flow hash, `aux` = rank, `a` = estimated packets, `b` = bytes.
    HeavyHitter = 3,
    /// An entry expired: `aux` = table, `id` = slot, `a` = its deadline (cycle).
    Aged = 4,
    /// Firmware heartbeat: `a` = heartbeat count, `b` = cycles used.
    Heartbeat = 5,
}

impl TelemetryKind {
    /// The kind with this code.
    pub fn from_u8(code: u8) -> Option<TelemetryKind> {
        Some(match code {
            1 => TelemetryKind::Port,
            2 => TelemetryKind::Session,
            3 => TelemetryKind::HeavyHitter,
            4 => TelemetryKind::Aged,
            5 => TelemetryKind::Heartbeat,
            _ => return None,
        })
    }
}

/// One telemetry record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelemetryRecord {
    /// What the record reports.
    pub kind: TelemetryKind,
    /// Phase of the pass the device wrote it in.
    pub phase: bool,
    /// Kind-specific small field (rank, table).
    pub aux: u16,
    /// Kind-specific id (port, session, flow hash, slot).
    pub id: u32,
    /// Device cycle the record describes.
    pub cycle: u64,
    /// First value.
    pub a: u64,
    /// Second value.
    pub b: u64,
}

impl TelemetryRecord {
    /// Reads a record; an unknown kind is `BadEnum`.
    pub fn parse(b: &[u8; TELEMETRY_LEN]) -> Result<TelemetryRecord, LayoutError> {
        let code = b[field::T_KIND];
        let kind = TelemetryKind::from_u8(code).ok_or(LayoutError::BadEnum {
            field: "telemetry kind",
            value: code as u32,
        })?;
        let mut aux = [0u8; 2];
        aux.copy_from_slice(&b[field::T_AUX]);
        Ok(TelemetryRecord {
            kind,
            phase: b[field::T_FLAGS] & flags::PHASE != 0,
            aux: u16::from_le_bytes(aux),
            id: u32_at(b, field::T_ID),
            cycle: u64_at(b, field::T_CYCLE),
            a: u64_at(b, field::T_A),
            b: u64_at(b, field::T_B),
        })
    }

    /// Writes the record.
    pub fn emit(&self, b: &mut [u8; TELEMETRY_LEN]) {
        b[field::T_KIND] = self.kind as u8;
        b[field::T_FLAGS] = if self.phase { flags::PHASE } else { 0 };
        b[field::T_AUX].copy_from_slice(&self.aux.to_le_bytes());
        b[field::T_ID].copy_from_slice(&self.id.to_le_bytes());
        b[field::T_CYCLE].copy_from_slice(&self.cycle.to_le_bytes());
        b[field::T_A].copy_from_slice(&self.a.to_le_bytes());
        b[field::T_B].copy_from_slice(&self.b.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_offsets_are_pinned() {
        assert_eq!(field::RESERVED2.end, DESCRIPTOR_LEN);
        assert_eq!(field::KEY.len(), DESC_KEY_LEN);
        assert_eq!(field::VALUE.len(), DESC_VALUE_LEN);
        assert_eq!(field::C_CYCLES.end, COMPLETION_LEN);
        assert_eq!(field::T_B.end, TELEMETRY_LEN);
        // Records tile a page: no record straddles a DMA page boundary.
        assert_eq!(4096 % DESCRIPTOR_LEN, 0);
        assert_eq!(4096 % COMPLETION_LEN, 0);
        assert_eq!(4096 % TELEMETRY_LEN, 0);
    }

    #[test]
    fn descriptor_bytes_are_where_the_contract_says() {
        let d = CmdDescriptor {
            op: 1,
            table: 3,
            phase: true,
            index: 0x0403_0201,
            seq: 0x0807_0605,
            key: [0xAA; DESC_KEY_LEN],
            value: [0xBB; DESC_VALUE_LEN],
        };
        let mut b = [0u8; DESCRIPTOR_LEN];
        d.emit(&mut b);
        assert_eq!(&b[..12], &[1, 3, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[16], 0xAA);
        assert_eq!(b[63], 0xAA);
        assert_eq!(b[64], 0xBB);
        assert_eq!(b[95], 0xBB);
        assert!(b[96..].iter().all(|&x| x == 0));
        assert_eq!(CmdDescriptor::parse(&b), Ok(d));
        assert!(CmdDescriptor::phase_of(&b));
        b[100] = 1;
        assert_eq!(
            CmdDescriptor::parse(&b),
            Err(LayoutError::ReservedNotZero { offset: 100 })
        );
        b[100] = 0;
        b[2] = 0x81;
        assert_eq!(
            CmdDescriptor::parse(&b),
            Err(LayoutError::ReservedNotZero { offset: 2 })
        );
    }

    #[test]
    fn completion_and_telemetry_round_trip() {
        let c = Completion {
            seq: 7,
            status: 2,
            phase: true,
            replaced: false,
            found: true,
            op: 3,
            table: 5,
            index: 99,
            cycles: 1234,
        };
        let mut b = [0u8; COMPLETION_LEN];
        c.emit(&mut b);
        assert_eq!(&b[..8], &[7, 0, 0, 0, 2, 0b101, 3, 5]);
        assert_eq!(Completion::parse(&b), c);
        let t = TelemetryRecord {
            kind: TelemetryKind::HeavyHitter,
            phase: false,
            aux: 2,
            id: 0xDEAD_BEEF,
            cycle: 1 << 40,
            a: 5,
            b: 6,
        };
        let mut b = [0u8; TELEMETRY_LEN];
        t.emit(&mut b);
        assert_eq!(b[0], 3);
        assert_eq!(&b[4..8], &0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(TelemetryRecord::parse(&b), Ok(t));
        b[0] = 0;
        assert!(TelemetryRecord::parse(&b).is_err());
    }

    #[test]
    fn phase_flips_every_pass() {
        assert!(phase(0, 4));
        assert!(phase(15, 4));
        assert!(!phase(16, 4));
        assert!(phase(32, 4));
        assert!(!phase(u32::MAX, 0));
        assert!(phase(u32::MAX, 32));
    }
}
