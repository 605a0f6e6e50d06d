//! The command ring: descriptors fetched from host memory by DMA, executed as table
//! commands, completions written back with phase bits (`hw/docs/cmd_ring.md`).

use shadownet_hw::{
    DeviceView,
    device_regs::{cmd_ring::error::RingError, tbl_cmd::status::CmdResult},
    layout::{
        WINDOW_WORDS, bytes_to_words,
        ring::{
            COMPLETION_LEN, CmdDescriptor, Completion, DESC_KEY_LEN, DESC_VALUE_LEN,
            DESCRIPTOR_LEN, MAX_SIZE_LOG2, phase,
        },
    },
};

use crate::{
    command::{self, Command, Outcome, TableHw},
    cost,
};

/// Why a DMA transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The address range is not mapped for the device.
    Unmapped {
        /// First address.
        addr: u64,
        /// Bytes.
        len: usize,
    },
    /// The address or length is not a multiple of 4.
    Misaligned {
        /// The address.
        addr: u64,
    },
}

/// The DMA engine the cores program: transfers between host memory and core memory.
pub trait Dma {
    /// Copies `buf.len()` bytes of host memory at `addr` into `buf`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Copies `buf` into host memory at `addr`, word by word in increasing address order,
    /// each word visible to the host no earlier than the ones before it.
    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError>;
}

/// Descriptors executed per service slice when `BATCH_MAX` is 0.
pub const DEFAULT_BATCH: u32 = 64;

/// The ring as latched when the host enabled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ring {
    base: u64,
    completions: u64,
    size_log2: u32,
    cons: u32,
    completed: u32,
    /// Stopped on an error until the host disables and re-enables the ring.
    stopped: bool,
}

/// What one slice did with the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingSlice {
    /// Descriptors executed.
    pub executed: u32,
    /// Table changes among them.
    pub changes: u32,
    /// Exact-table displacements among them.
    pub displaced: u32,
    /// Cycles spent.
    pub cycles: u64,
    /// The ring stopped on an error in this slice.
    pub error: bool,
    /// The device raised the ring's interrupt (a cause it has enabled).
    pub interrupt: bool,
}

fn addr(lo: u32, hi: u32) -> u64 {
    (hi as u64) << 32 | lo as u64
}

/// Follows `CMD_RING.CTRL.ENABLE`: latches the ring on 0→1, forgets it on 1→0.
pub(crate) fn follow_enable(regs: &DeviceView<'_>, ring: &mut Option<Ring>) {
    let r = regs.cmd_ring();
    let enabled = r.ctrl().read().enable().bit();
    match (enabled, ring.is_some()) {
        (true, false) => {
            let size_log2 = r.size_log2().read().bits();
            let base = addr(r.base_lo().read().bits(), r.base_hi().read().bits());
            let completions = addr(
                r.compl_base_lo().read().bits(),
                r.compl_base_hi().read().bits(),
            );
            r.cons_idx().write(|w| w.set(0));
            r.completed_lo().write(|w| w.set(0));
            let error = if size_log2 > MAX_SIZE_LOG2 {
                Some(RingError::BadSize)
            } else if !base.is_multiple_of(DESCRIPTOR_LEN as u64)
                || !completions.is_multiple_of(COMPLETION_LEN as u64)
            {
                Some(RingError::BadAddress)
            } else {
                None
            };
            r.error().write(|w| {
                w.code()
                    .variant(error.unwrap_or(RingError::None))
                    .index()
                    .set(0)
            });
            *ring = Some(Ring {
                base,
                completions,
                size_log2: size_log2.min(MAX_SIZE_LOG2),
                cons: 0,
                completed: 0,
                stopped: error.is_some(),
            });
            if error.is_some() {
                raise(regs, 0b10);
            }
        }
        (false, true) => *ring = None,
        _ => {}
    }
}

/// Applies `IRQ_ACK` to `IRQ_STATUS`.
pub(crate) fn acknowledge(regs: &DeviceView<'_>) {
    let r = regs.cmd_ring();
    let ack = r.irq_ack().read().bits();
    if ack != 0 {
        let status = r.irq_status().read().bits() & !ack;
        r.irq_status().write(|w| status_bits(w, status));
        r.irq_ack()
            .write(|w| w.completion().clear_bit().error().clear_bit());
    }
}

fn status_bits(
    w: &mut shadownet_hw::device_regs::cmd_ring::irq_status::W,
    bits: u32,
) -> &mut shadownet_hw::device_regs::cmd_ring::irq_status::W {
    w.completion().bit(bits & 1 != 0).error().bit(bits & 2 != 0)
}

/// Latches `causes` (bit 0 completion, bit 1 error) into `IRQ_STATUS`; returns whether one of
/// them is enabled, i.e. the interrupt fires.
fn raise(regs: &DeviceView<'_>, causes: u32) -> bool {
    let r = regs.cmd_ring();
    let status = r.irq_status().read().bits() | causes;
    r.irq_status().write(|w| status_bits(w, status));
    r.irq_enable().read().bits() & causes != 0
}

fn stop(regs: &DeviceView<'_>, ring: &mut Ring, code: RingError) {
    ring.stopped = true;
    let slot = ring.cons & ((1u32 << ring.size_log2) - 1);
    regs.cmd_ring()
        .error()
        .write(|w| w.code().variant(code).index().set(slot as u16));
}

/// Executes the descriptors between `CONS_IDX` and the doorbell, at most `BATCH_MAX`.
pub(crate) fn service<H: TableHw + ?Sized, D: Dma + ?Sized>(
    regs: &DeviceView<'_>,
    ring: &mut Ring,
    hw: &mut H,
    dma: &mut D,
    mut each: impl FnMut(u8, u8, &Outcome),
) -> RingSlice {
    let mut slice = RingSlice::default();
    if ring.stopped {
        return slice;
    }
    let r = regs.cmd_ring();
    let prod = r.prod_idx().read().bits();
    if prod == ring.cons {
        return slice;
    }
    // The doorbell was read; the descriptors before it are read after (the host wrote them
    // before it, with a release fence).
    core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
    let batch = match r.batch_max().read().bits() {
        0 => DEFAULT_BATCH,
        n => n,
    };
    slice.cycles += (cost::REGISTER * 2) as u64;
    let size = 1u32 << ring.size_log2;
    let mask = size - 1;
    if prod.wrapping_sub(ring.cons) > size {
        stop(regs, ring, RingError::Overrun);
        slice.error = true;
    }
    let mut desc = [0u8; DESCRIPTOR_LEN];
    while !ring.stopped && ring.cons != prod && slice.executed < batch {
        let slot = ring.cons & mask;
        let at = ring.base + slot as u64 * DESCRIPTOR_LEN as u64;
        slice.cycles += cost::dma(DESCRIPTOR_LEN) as u64;
        if dma.read(at, &mut desc).is_err() {
            stop(regs, ring, RingError::BadAddress);
            slice.error = true;
            break;
        }
        let pass = phase(ring.cons, ring.size_log2);
        if CmdDescriptor::phase_of(&desc) != pass {
            stop(regs, ring, RingError::BadPhase);
            slice.error = true;
            break;
        }
        let (out, op, table, seq) = match CmdDescriptor::parse(&desc) {
            Ok(d) => {
                let out = command::execute(hw, &command_of(&d));
                (out, d.op, d.table, d.seq)
            }
            Err(_) => {
                let out = Outcome {
                    cycles: cost::COMMAND,
                    ..bad_entry()
                };
                // The tag is readable even when the rest is not.
                (
                    out,
                    desc[0],
                    desc[1],
                    u32::from_le_bytes([desc[8], desc[9], desc[10], desc[11]]),
                )
            }
        };
        each(op, table, &out);
        let completion = Completion {
            seq,
            status: out.result as u8,
            phase: pass,
            replaced: out.replaced,
            found: out.valid,
            op,
            table,
            index: out.index,
            cycles: out.cycles + cost::dma(DESCRIPTOR_LEN) + cost::dma(COMPLETION_LEN),
        };
        let mut rec = [0u8; COMPLETION_LEN];
        completion.emit(&mut rec);
        let at = ring.completions + slot as u64 * COMPLETION_LEN as u64;
        // The words after the flags first, then seq and the word holding status and phase:
        // the host, polling the phase, sees a whole record.
        let written = dma
            .write(at + 8, &rec[8..])
            .and_then(|()| dma.write(at, &rec[..8]));
        slice.cycles += (out.cycles + cost::dma(COMPLETION_LEN)) as u64;
        if written.is_err() {
            stop(regs, ring, RingError::BadAddress);
            slice.error = true;
            break;
        }
        ring.cons = ring.cons.wrapping_add(1);
        ring.completed = ring.completed.wrapping_add(1);
        slice.executed += 1;
        slice.displaced += out.displaced;
        if out.changed {
            slice.changes += 1;
        }
    }
    if slice.executed > 0 || slice.error {
        let cons = ring.cons;
        let completed = ring.completed;
        r.cons_idx().write(|w| w.set(cons));
        r.completed_lo().write(|w| w.set(completed));
        let causes = u32::from(slice.executed > 0) | u32::from(slice.error) << 1;
        slice.interrupt = raise(regs, causes);
        slice.cycles += (cost::REGISTER * 4) as u64;
    }
    slice
}

fn bad_entry() -> Outcome {
    Outcome {
        result: CmdResult::BadEntry,
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

/// The table command a descriptor carries: its key and value bytes in the register windows'
/// layout.
pub fn command_of(d: &CmdDescriptor) -> Command {
    let mut key = [0u8; 64];
    key[..DESC_KEY_LEN].copy_from_slice(&d.key);
    let mut value = [0u8; 64];
    value[..DESC_VALUE_LEN].copy_from_slice(&d.value);
    Command {
        op: d.op,
        table: d.table,
        index: d.index,
        key: bytes_to_words(&key),
        value: bytes_to_words(&value),
    }
}
