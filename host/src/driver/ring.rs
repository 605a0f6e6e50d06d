//! The command ring (`hw/docs/cmd_ring.md`): table operations programmed in batches through
//! host memory.
//!
//! The driver writes descriptors into a ring in DMA memory, writes the doorbell
//! (`CMD_RING.PROD_IDX`) once per batch, and finds each completion in a second ring by its
//! phase bit. Apart from the doorbell, the hot path touches memory only; a register is read
//! only when a wait takes long (to report why the ring stopped).

use std::{
    sync::atomic::{Ordering, fence},
    time::Instant,
};

use shadownet_hw::{
    layout::{
        LayoutError,
        acl::AclRule,
        bytes_to_words,
        map::{MapKey, MapValue},
        mirror_filter::MirrorFilter,
        ring::{
            COMPLETION_LEN, CmdDescriptor, Completion, DESC_KEY_LEN, DESC_VALUE_LEN,
            DESCRIPTOR_LEN, MAX_SIZE_LOG2, phase,
        },
        rule,
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::{VniEntry, VniKey},
        vport::VportEntry,
    },
    regs::{
        cmd_ring::error::RingError,
        tbl_cmd::{cmd::TableOp, status::CmdResult},
    },
    table::TableId,
};

use super::{
    Device, DmaBuffer, DriverError, Nic,
    nic::{COMMAND_TIMEOUT, result_code, result_name},
};

/// `ID.CAPS` bit of the command ring.
const CAP_CMD_RING: u32 = 1 << 5;

/// One table operation for the ring, checked against the table's layout before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingOp {
    table: TableId,
    op: TableOp,
    index: u32,
    key: [u8; DESC_KEY_LEN],
    value: [u8; DESC_VALUE_LEN],
}

fn bytes<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..src.len()].copy_from_slice(src);
    out
}

fn invalid(what: &'static str) -> impl Fn(LayoutError) -> DriverError {
    move |source| DriverError::InvalidEntry { what, source }
}

impl RingOp {
    fn new(table: TableId, op: TableOp, index: u32, key: &[u8], value: &[u8]) -> RingOp {
        RingOp {
            table,
            op,
            index,
            key: bytes(key),
            value: bytes(value),
        }
    }

    /// The table it changes.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// Insert or replace a map entry.
    pub fn write_map(key: &MapKey, value: &MapValue) -> Result<RingOp, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
        key.emit(&mut k);
        MapKey::parse(&k).map_err(invalid("map key"))?;
        let mut v = [0u8; shadownet_hw::layout::map::VALUE_LEN];
        value.emit(&mut v);
        MapValue::parse(&v).map_err(invalid("map entry"))?;
        Ok(RingOp::new(TableId::Map, TableOp::Write, 0, &k, &v))
    }

    /// Remove a map entry.
    pub fn delete_map(key: &MapKey) -> RingOp {
        let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
        key.emit(&mut k);
        RingOp::new(TableId::Map, TableOp::Delete, 0, &k, &[])
    }

    /// Look a map entry up (the completion says whether it is present, and its slot).
    pub fn lookup_map(key: &MapKey) -> RingOp {
        let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
        key.emit(&mut k);
        RingOp::new(TableId::Map, TableOp::Lookup, 0, &k, &[])
    }

    /// Program a virtual network.
    pub fn write_vni(vni: u32, entry: &VniEntry) -> Result<RingOp, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::vni::KEY_LEN];
        VniKey { vni }.emit(&mut k);
        VniKey::parse(&k).map_err(invalid("VNI"))?;
        let mut v = [0u8; shadownet_hw::layout::vni::VALUE_LEN];
        entry.emit(&mut v);
        VniEntry::parse(&v).map_err(invalid("VNI entry"))?;
        Ok(RingOp::new(TableId::Vni, TableOp::Write, 0, &k, &v))
    }

    /// Insert or replace a production-to-shadow map entry.
    pub fn write_shadow_map(
        key: &ShadowMapKey,
        value: &ShadowMapValue,
    ) -> Result<RingOp, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::shadow_map::KEY_LEN];
        key.emit(&mut k);
        ShadowMapKey::parse(&k).map_err(invalid("shadow map key"))?;
        let mut v = [0u8; shadownet_hw::layout::shadow_map::VALUE_LEN];
        value.emit(&mut v);
        ShadowMapValue::parse(&v).map_err(invalid("shadow map entry"))?;
        Ok(RingOp::new(TableId::ShadowMap, TableOp::Write, 0, &k, &v))
    }

    /// Remove a production-to-shadow map entry.
    pub fn delete_shadow_map(key: &ShadowMapKey) -> RingOp {
        let mut k = [0u8; shadownet_hw::layout::shadow_map::KEY_LEN];
        key.emit(&mut k);
        RingOp::new(TableId::ShadowMap, TableOp::Delete, 0, &k, &[])
    }

    /// Bind VF `port`.
    pub fn write_vport(port: u16, entry: &VportEntry) -> Result<RingOp, DriverError> {
        let mut v = [0u8; shadownet_hw::layout::vport::VALUE_LEN];
        entry.emit(&mut v);
        VportEntry::parse(&v).map_err(invalid("vport entry"))?;
        RingOp::indexed(TableId::Vport, TableOp::Write, port as u32, &[], &v)
    }

    /// Write ACL rule `slot`.
    pub fn write_acl(slot: u32, r: &AclRule) -> Result<RingOp, DriverError> {
        r.matches.validate().map_err(invalid("ACL rule"))?;
        let mut k = [0u8; rule::LEN];
        r.matches.emit(&mut k);
        let mut v = [0u8; shadownet_hw::layout::acl::VALUE_LEN];
        r.action.emit(&mut v);
        RingOp::indexed(TableId::Acl, TableOp::Write, slot, &k, &v)
    }

    /// Write mirror filter `slot`.
    pub fn write_mirror_filter(slot: u32, f: &MirrorFilter) -> Result<RingOp, DriverError> {
        f.matches.validate().map_err(invalid("mirror filter"))?;
        let mut k = [0u8; rule::LEN];
        f.matches.emit(&mut k);
        let mut v = [0u8; shadownet_hw::layout::mirror_filter::VALUE_LEN];
        f.action.emit(&mut v);
        shadownet_hw::layout::mirror_filter::MirrorAction::parse(&v)
            .map_err(invalid("mirror filter action"))?;
        RingOp::indexed(TableId::MirrorFilter, TableOp::Write, slot, &k, &v)
    }

    /// Clear slot `index` of an indexed table (VPORT, ACL, MIRROR_FILTER).
    pub fn delete_slot(table: TableId, index: u32) -> Result<RingOp, DriverError> {
        RingOp::indexed(table, TableOp::Delete, index, &[], &[])
    }

    fn indexed(
        table: TableId,
        op: TableOp,
        index: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<RingOp, DriverError> {
        let capacity = table.capacity();
        if index >= capacity {
            return Err(DriverError::IndexOutOfRange {
                device: "command ring".to_string(),
                table,
                index,
                capacity,
            });
        }
        Ok(RingOp::new(table, op, index, key, value))
    }
}

/// What the device answered for one [`RingOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCompletion {
    /// The operation's table.
    pub table: TableId,
    /// Result code (`CmdResult`, as in `TBL_CMD.STATUS.RESULT`).
    pub status: u8,
    /// Slot touched.
    pub index: u32,
    /// A write replaced an entry.
    pub replaced: bool,
    /// A lookup found the key.
    pub found: bool,
    /// Embedded-core cycles the operation took.
    pub cycles: u32,
}

impl RingCompletion {
    /// The result code.
    pub fn result(&self) -> Option<CmdResult> {
        result_code(self.status)
    }

    /// Whether the device performed the operation (`OK`).
    pub fn ok(&self) -> bool {
        self.status == CmdResult::Ok as u8
    }

    /// `OK` or `NOT_FOUND` (an answer, not a failure), else the error it stands for.
    pub fn check(&self, device: &str) -> Result<(), DriverError> {
        match self.result() {
            Some(CmdResult::Ok | CmdResult::NotFound) => Ok(()),
            Some(CmdResult::Full) => Err(DriverError::TableFull {
                device: device.to_string(),
                table: self.table,
            }),
            other => Err(DriverError::Refused {
                device: device.to_string(),
                what: format!("ring operation on table {}", self.table),
                result: result_name(other),
            }),
        }
    }
}

/// The ring's memory and the driver's indices.
pub(super) struct CmdRing {
    descriptors: Box<dyn DmaBuffer>,
    completions: Box<dyn DmaBuffer>,
    size_log2: u32,
    /// Next descriptor index to write.
    produced: u32,
    /// Next completion index to read.
    consumed: u32,
    /// Tables of the operations in flight, by ring slot (for the completions).
    tables: Vec<TableId>,
    /// Next descriptor tag.
    seq: u32,
}

impl CmdRing {
    fn size(&self) -> u32 {
        1 << self.size_log2
    }

    fn in_flight(&self) -> u32 {
        self.produced.wrapping_sub(self.consumed)
    }

    fn write(&mut self, op: &RingOp) -> Result<(), DriverError> {
        let slot = self.produced & (self.size() - 1);
        let d = CmdDescriptor {
            op: op.op as u8,
            table: op.table as u8,
            phase: phase(self.produced, self.size_log2),
            index: op.index,
            seq: self.seq,
            key: op.key,
            value: op.value,
        };
        let mut b = [0u8; DESCRIPTOR_LEN];
        d.emit(&mut b);
        let words: [u32; DESCRIPTOR_LEN / 4] = bytes_to_words(&b);
        let base = slot as usize * DESCRIPTOR_LEN;
        self.descriptors
            .write_words(base, &words)
            .ok_or(DriverError::DmaOutOfRange { offset: base })?;
        self.tables[slot as usize] = op.table;
        self.produced = self.produced.wrapping_add(1);
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// The next completion, if the device has written it.
    fn poll(&mut self) -> Result<Option<RingCompletion>, DriverError> {
        if self.consumed == self.produced {
            return Ok(None);
        }
        let slot = self.consumed & (self.size() - 1);
        let base = slot as usize * COMPLETION_LEN;
        let out_of_range = || DriverError::DmaOutOfRange { offset: base };
        // The word with status and phase is the device's last write of the record.
        let flags_word = self
            .completions
            .read_u32(base + 4)
            .ok_or_else(out_of_range)?;
        let flags = (flags_word >> 8) as u8;
        let expected = phase(self.consumed, self.size_log2);
        if (flags & shadownet_hw::layout::ring::flags::PHASE != 0) != expected {
            return Ok(None);
        }
        fence(Ordering::Acquire);
        let mut rec = [0u8; COMPLETION_LEN];
        for i in 0..COMPLETION_LEN / 4 {
            let w = if i == 1 {
                flags_word
            } else {
                self.completions
                    .read_u32(base + i * 4)
                    .ok_or_else(out_of_range)?
            };
            rec[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let c = Completion::parse(&rec);
        self.consumed = self.consumed.wrapping_add(1);
        Ok(Some(RingCompletion {
            table: self.tables[slot as usize],
            status: c.status,
            index: c.index,
            replaced: c.replaced,
            found: c.found,
            cycles: c.cycles,
        }))
    }
}

impl<D: Device> Nic<D> {
    /// Sets up the command ring with `2^size_log2` entries (at most 2^16) in DMA memory the
    /// device backend provides, and enables it. A ring already enabled is replaced (after its
    /// operations in flight are abandoned: call it with nothing in flight).
    pub fn enable_cmd_ring(&mut self, size_log2: u32) -> Result<(), DriverError> {
        if self.regs().id().caps().read().bits() & CAP_CMD_RING == 0 {
            return Err(DriverError::Unsupported {
                device: self.name.clone(),
                feature: "command ring",
            });
        }
        if size_log2 > MAX_SIZE_LOG2 {
            return Err(DriverError::RingSize { size_log2 });
        }
        let n = 1usize << size_log2;
        let descriptors = self.dev.alloc_dma(n * DESCRIPTOR_LEN)?;
        let completions = self.dev.alloc_dma(n * COMPLETION_LEN)?;
        self.disable_cmd_ring();
        {
            let r = self.regs();
            let c = r.cmd_ring();
            let (d, q) = (descriptors.iova(), completions.iova());
            c.base_lo().write(|w| w.set(d as u32));
            c.base_hi().write(|w| w.set((d >> 32) as u32));
            c.compl_base_lo().write(|w| w.set(q as u32));
            c.compl_base_hi().write(|w| w.set((q >> 32) as u32));
            c.size_log2().write(|w| w.set(size_log2));
            c.prod_idx().write(|w| w.set(0));
            c.irq_enable()
                .write(|w| w.completion().set_bit().error().set_bit());
            fence(Ordering::Release);
            c.ctrl().write(|w| w.enable().set_bit());
        }
        // The device latches the ring on its next service slice; wait for it so that a
        // misconfiguration is reported here rather than at the first batch.
        self.dev.relax();
        let error = self.regs().cmd_ring().error().read();
        if let Some(code) = error.code().variant()
            && code != RingError::None
        {
            return Err(self.ring_stopped(code, error.index().bits()));
        }
        self.ring = Some(CmdRing {
            descriptors,
            completions,
            size_log2,
            produced: 0,
            consumed: 0,
            tables: vec![TableId::Vport; n],
            seq: 0,
        });
        tracing::debug!(device = %self.name, entries = n, "command ring enabled");
        Ok(())
    }

    /// Sets the most descriptors the firmware executes per service slice (`BATCH_MAX`; 0:
    /// the firmware's default). Smaller slices let packets through sooner during a long batch.
    pub fn set_cmd_ring_slice(&mut self, max: u32) {
        self.regs().cmd_ring().batch_max().write(|w| w.set(max));
    }

    /// Stops the command ring (operations in flight are abandoned).
    pub fn disable_cmd_ring(&mut self) {
        self.regs()
            .cmd_ring()
            .ctrl()
            .write(|w| w.enable().clear_bit());
        self.dev.relax();
        self.ring = None;
    }

    fn ring_mut(&mut self) -> Result<&mut CmdRing, DriverError> {
        let device = self.name.clone();
        self.ring
            .as_mut()
            .ok_or(DriverError::RingNotEnabled { device })
    }

    /// Writes as many of `ops` as the ring has room for and rings the doorbell once; returns
    /// how many were posted. Does not wait.
    pub fn ring_post(&mut self, ops: &[RingOp]) -> Result<usize, DriverError> {
        let ring = self.ring_mut()?;
        let room = (ring.size() - ring.in_flight()) as usize;
        let n = room.min(ops.len());
        for op in &ops[..n] {
            ring.write(op)?;
        }
        if n > 0 {
            let produced = ring.produced;
            fence(Ordering::Release);
            self.regs().cmd_ring().prod_idx().write(|w| w.set(produced));
        }
        Ok(n)
    }

    /// Appends every completion the device has written since the last poll to `out`, reading
    /// host memory only; returns how many.
    pub fn ring_poll(&mut self, out: &mut Vec<RingCompletion>) -> Result<usize, DriverError> {
        let ring = self.ring_mut()?;
        let mut n = 0;
        while let Some(c) = ring.poll()? {
            out.push(c);
            n += 1;
        }
        Ok(n)
    }

    /// Operations posted and not yet completed.
    pub fn ring_in_flight(&self) -> u32 {
        self.ring.as_ref().map_or(0, CmdRing::in_flight)
    }

    /// Performs `ops` through the command ring, in order, in batches of up to the ring's
    /// size (one doorbell each), and returns their completions in the same order. A refused
    /// operation is reported in its completion, not as an error: the batch goes on.
    pub fn ring_submit(&mut self, ops: &[RingOp]) -> Result<Vec<RingCompletion>, DriverError> {
        // Completions of operations posted earlier (by `ring_post`) come first.
        let earlier = self.ring_in_flight() as usize;
        let mut out = Vec::with_capacity(earlier + ops.len());
        let mut posted = 0;
        let started = Instant::now();
        let mut polls: u32 = 0;
        while posted < ops.len() || self.ring_in_flight() > 0 {
            if posted < ops.len() {
                posted += self.ring_post(&ops[posted..])?;
            }
            if self.ring_poll(&mut out)? > 0 {
                continue;
            }
            self.dev.relax();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) {
                // The slow path: only here does the driver read a ring register.
                let error = self.regs().cmd_ring().error().read();
                if let Some(code) = error.code().variant()
                    && code != RingError::None
                {
                    return Err(self.ring_stopped(code, error.index().bits()));
                }
                if started.elapsed() > COMMAND_TIMEOUT {
                    return Err(DriverError::Timeout {
                        device: self.name.clone(),
                        block: "CMD_RING",
                        op: "batch",
                        millis: started.elapsed().as_millis(),
                    });
                }
            }
        }
        Ok(out.split_off(earlier))
    }

    fn ring_stopped(&self, code: RingError, slot: u16) -> DriverError {
        let reason = match code {
            RingError::None => "no error",
            RingError::BadSize => "ring size out of range",
            RingError::BadAddress => "ring address misaligned or not mapped for DMA",
            RingError::BadPhase => {
                "descriptor phase does not match (doorbell ahead of the descriptors)"
            }
            RingError::Overrun => "producer index more than the ring size ahead",
        };
        DriverError::RingStopped {
            device: self.name.clone(),
            reason,
            slot,
        }
    }
}
