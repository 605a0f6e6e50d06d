//! The embedded cores' main loop, one service slice at a time: the TBL_CMD registers, the
//! command ring, the mailbox, the heartbeat. The registers (`shadownet_hw::DeviceView`) are
//! the firmware's only view of the device; table memory is reached through [`TableHw`] and
//! host memory through [`Dma`].

use core::sync::atomic::{Ordering, fence};

use shadownet_hw::{
    DeviceView,
    device_regs::{
        fw_mailbox::{cmd::MailboxOp, fw_state::FwState},
        tbl_cmd::{cmd::TableOp, status::CmdResult},
    },
    layout::WINDOW_WORDS,
    table::TableId,
};

use crate::{
    command::{self, Command, Outcome, TableHw},
    cost,
    ring::{self, Dma, Ring, RingSlice},
    telemetry::{Beat, Telemetry, TelemetrySlice, TelemetrySource},
};

/// Version of this firmware, reported in `FW_MAILBOX.FW_VERSION`: (major, minor, patch).
pub const VERSION: (u16, u8, u8) = (1, 0, 0);

/// Work counters of the firmware (mailbox `STATS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Table commands executed from the registers.
    pub register_commands: u64,
    /// Descriptors executed from the command ring.
    pub descriptors: u64,
    /// Exact-table entries moved by inserts.
    pub displacements: u64,
    /// Cycles of the last table command.
    pub last_command_cycles: u32,
    /// Cycles used since boot.
    pub cycles: u64,
    /// Rules deleted because their time to live ran out.
    pub aged: u64,
    /// Telemetry records written.
    pub telemetry_records: u64,
    /// Telemetry records dropped because the ring was full.
    pub telemetry_dropped: u64,
    /// Cycles spent writing telemetry (records, counter checks; not the sketch).
    pub telemetry_cycles: u64,
    /// Flow samples counted into the heavy-hitter sketch.
    pub sketch_updates: u64,
    /// Cycles the sketch updates took.
    pub sketch_cycles: u64,
}

/// What one service slice did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// A TBL_CMD register command was performed.
    pub table_command: bool,
    /// The command ring's share.
    pub ring: RingSlice,
    /// A mailbox command was performed.
    pub mailbox: bool,
    /// The telemetry producer's share.
    pub telemetry: TelemetrySlice,
    /// Cycles the slice used.
    pub cycles: u64,
}

impl Slice {
    /// Whether the slice did anything the host asked for.
    pub fn any(&self) -> bool {
        self.table_command
            || self.ring.executed > 0
            || self.ring.error
            || self.mailbox
            || self.telemetry.records > 0
            || self.telemetry.dropped > 0
    }
}

/// Counts a table change where the device counts it (the COUNTERS block's per-table WRITES
/// and DELETES).
pub trait ChangeCounter {
    /// A WRITE or DELETE of `table` succeeded.
    fn changed(&mut self, table: TableId, op: TableOp);
}

/// Rules the firmware can age at once (mailbox `SET_TTL` answers `FULL` beyond).
pub const AGEING_CAPACITY: usize = 256;

/// A rule slot with a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ageing {
    table: TableId,
    slot: u32,
    /// Device cycle at which the slot is deleted.
    deadline: u64,
}

/// The firmware's state between slices.
#[derive(Debug)]
pub struct Firmware {
    ring: Option<Ring>,
    stats: Stats,
    heartbeat: u32,
    /// Rules with a time to live, in no particular order.
    ageing: [Option<Ageing>; AGEING_CAPACITY],
    /// The telemetry producer and its heavy-hitter sketch.
    telemetry: Telemetry,
}

impl Default for Firmware {
    fn default() -> Self {
        Firmware {
            ring: None,
            stats: Stats::default(),
            heartbeat: 0,
            ageing: [None; AGEING_CAPACITY],
            telemetry: Telemetry::default(),
        }
    }
}

impl Firmware {
    /// Firmware that has not booted.
    pub fn new() -> Firmware {
        Firmware::default()
    }

    /// Boots (at power-on and after every device reset): forgets the ring and the counters
    /// and reports version and state.
    pub fn boot(&mut self, regs: &DeviceView<'_>) {
        *self = Firmware::default();
        let (major, minor, patch) = VERSION;
        let f = regs.fw_mailbox();
        f.fw_version()
            .write(|w| w.major().set(major).minor().set(minor).patch().set(patch));
        f.fw_state().write(|w| w.state().variant(FwState::Running));
        f.heartbeat().write(|w| w.set(0));
        f.cycles_lo().write(|w| w.set(0));
        f.cycles_hi().write(|w| w.set(0));
    }

    /// Work counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The telemetry producer (its sketch, whether the ring is enabled).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Counts the data path's flow samples into the sketch outside a slice (when the sample
    /// buffer fills between two slices); returns the cycles it took.
    pub fn absorb_samples<S: TelemetrySource + ?Sized>(&mut self, src: &mut S) -> u64 {
        let (n, cycles) = self.telemetry.absorb(src);
        self.stats.sketch_updates += n as u64;
        self.stats.sketch_cycles += cycles;
        self.stats.cycles += cycles;
        cycles
    }

    /// One service slice: rules whose time to live ran out are deleted, then a pending TBL_CMD
    /// command, up to `BATCH_MAX` ring descriptors, a pending mailbox command, the telemetry
    /// producer (flow samples into the sketch, aged records, an export when due); then the
    /// heartbeat and the cycle counter advance.
    pub fn service<H, D, C, S>(
        &mut self,
        regs: &DeviceView<'_>,
        hw: &mut H,
        dma: &mut D,
        counter: &mut C,
        telemetry: &mut S,
    ) -> Slice
    where
        H: TableHw + ?Sized,
        D: Dma + ?Sized,
        C: ChangeCounter + ?Sized,
        S: TelemetrySource + ?Sized,
    {
        let mut slice = Slice {
            cycles: cost::SLICE as u64,
            ..Slice::default()
        };
        // Time first: a rule whose deadline has passed is gone before the host's next command.
        slice.cycles += self.expire(regs, hw, counter);
        if let Some(out) = self.table_registers(regs, hw, counter) {
            slice.table_command = true;
            slice.cycles += out.cycles as u64;
        }
        ring::acknowledge(regs);
        ring::follow_enable(regs, &mut self.ring);
        if let Some(r) = self.ring.as_mut() {
            let mut last = 0;
            let ageing = &mut self.ageing;
            let rs = ring::service(regs, r, hw, dma, |op, table, out: &Outcome| {
                last = out.cycles;
                count(counter, op, table, out);
                forget(ageing, op, table, out);
            });
            if rs.executed > 0 {
                self.stats.descriptors += rs.executed as u64;
                self.stats.displacements += rs.displaced as u64;
                self.stats.last_command_cycles = last;
                publish_tables(regs, hw, rs.changes);
            }
            slice.cycles += rs.cycles;
            slice.ring = rs;
        }
        slice.mailbox = self.mailbox(regs, hw);
        let beat = Beat {
            heartbeat: self.heartbeat.wrapping_add(1),
            cycles: self.stats.cycles + slice.cycles,
        };
        let ts = self
            .telemetry
            .service(regs, dma, telemetry, now(regs), beat);
        self.stats.telemetry_records += ts.records as u64;
        self.stats.telemetry_dropped += ts.dropped as u64;
        self.stats.sketch_updates += ts.samples as u64;
        self.stats.sketch_cycles += ts.sketch_cycles;
        self.stats.telemetry_cycles += ts.cycles - ts.sketch_cycles;
        slice.cycles += ts.cycles;
        slice.telemetry = ts;
        self.stats.cycles += slice.cycles;
        self.heartbeat = self.heartbeat.wrapping_add(1);
        let f = regs.fw_mailbox();
        let heartbeat = self.heartbeat;
        let cycles = self.stats.cycles;
        f.heartbeat().write(|w| w.set(heartbeat));
        f.cycles_lo().write(|w| w.set(cycles as u32));
        f.cycles_hi().write(|w| w.set((cycles >> 32) as u32));
        slice
    }

    /// The TBL_CMD register protocol: a command is pending when `CMD.SEQ != STATUS.SEQ`.
    fn table_registers<H, C>(
        &mut self,
        regs: &DeviceView<'_>,
        hw: &mut H,
        counter: &mut C,
    ) -> Option<Outcome>
    where
        H: TableHw + ?Sized,
        C: ChangeCounter + ?Sized,
    {
        let t = regs.tbl_cmd();
        let cmd = t.cmd().read();
        let seq = cmd.seq().bits();
        if seq == t.status().read().seq().bits() {
            return None;
        }
        fence(Ordering::Acquire);
        let mut c = Command {
            op: cmd.op().bits(),
            table: t.table().read().id().bits(),
            index: t.index().read().bits(),
            key: [0; WINDOW_WORDS],
            value: [0; WINDOW_WORDS],
        };
        for i in 0..WINDOW_WORDS {
            c.key[i] = t.key(i).read().bits();
            c.value[i] = t.value(i).read().bits();
        }
        let mut out = command::execute(hw, &c);
        out.cycles += cost::REGISTER * (3 + 2 * WINDOW_WORDS as u32);
        count(counter, c.op, c.table, &out);
        forget(&mut self.ageing, c.op, c.table, &out);
        t.result_index().write(|w| w.set(out.index));
        t.result_flags()
            .write(|w| w.valid().bit(out.valid).replaced().bit(out.replaced));
        for i in 0..WINDOW_WORDS {
            t.result_key(i).write(|w| w.set(out.key[i]));
            t.result_value(i).write(|w| w.set(out.value[i]));
        }
        publish_tables(regs, hw, u32::from(out.changed));
        out.cycles += cost::REGISTER * (3 + 2 * WINDOW_WORDS as u32);
        self.stats.register_commands += 1;
        self.stats.displacements += out.displaced as u64;
        self.stats.last_command_cycles = out.cycles;
        fence(Ordering::Release);
        t.status()
            .write(|w| w.result().variant(out.result).seq().set(seq));
        Some(out)
    }

    /// Deletes the aged rules whose deadline the device clock (`FW_MAILBOX.NOW`) has reached;
    /// returns the cycles spent.
    fn expire<H, C>(&mut self, regs: &DeviceView<'_>, hw: &mut H, counter: &mut C) -> u64
    where
        H: TableHw + ?Sized,
        C: ChangeCounter + ?Sized,
    {
        let now = now(regs);
        let mut changes = 0;
        let mut cycles = 0u64;
        for entry in self.ageing.iter_mut() {
            let Some(a) = *entry else { continue };
            cycles += 1;
            if a.deadline > now {
                continue;
            }
            *entry = None;
            if hw.delete_indexed(a.table, a.slot) {
                counter.changed(a.table, TableOp::Delete);
                self.telemetry.aged(a.table, a.slot, a.deadline);
                self.stats.aged += 1;
                changes += 1;
                cycles += cost::RULE_WRITE as u64;
            }
        }
        publish_tables(regs, hw, changes);
        cycles
    }

    /// Mailbox `SET_TTL`.
    fn set_ttl<H: TableHw + ?Sized>(
        &mut self,
        args: [u32; 4],
        now: u64,
        hw: &H,
    ) -> Result<u64, CmdResult> {
        let id = u8::try_from(args[0]).ok().and_then(TableId::from_u8);
        let table = match id {
            Some(t @ (TableId::Acl | TableId::MirrorFilter)) => t,
            Some(_) => return Err(CmdResult::BadOp),
            None => return Err(CmdResult::BadTable),
        };
        let slot = args[1];
        if slot >= table.capacity() {
            return Err(CmdResult::BadIndex);
        }
        let ttl = (args[3] as u64) << 32 | args[2] as u64;
        let existing = self
            .ageing
            .iter()
            .position(|a| a.is_some_and(|a| a.table == table && a.slot == slot));
        if ttl == 0 {
            if let Some(i) = existing {
                self.ageing[i] = None;
            }
            return Ok(0);
        }
        if hw.read_indexed(table, slot).is_none() {
            return Err(CmdResult::NotFound);
        }
        let at = existing
            .or_else(|| self.ageing.iter().position(Option::is_none))
            .ok_or(CmdResult::Full)?;
        let deadline = now.saturating_add(ttl);
        self.ageing[at] = Some(Ageing {
            table,
            slot,
            deadline,
        });
        Ok(deadline)
    }

    /// The mailbox protocol (same as the other command blocks).
    fn mailbox<H: TableHw + ?Sized>(&mut self, regs: &DeviceView<'_>, hw: &H) -> bool {
        let f = regs.fw_mailbox();
        let cmd = f.cmd().read();
        let seq = cmd.seq().bits();
        if seq == f.status().read().seq().bits() {
            return false;
        }
        fence(Ordering::Acquire);
        let result = match cmd.op().variant() {
            Some(MailboxOp::Nop) => CmdResult::Ok,
            Some(MailboxOp::Ping) => {
                for i in 0..4 {
                    let a = f.arg(i).read().bits();
                    f.result(i).write(|w| w.set(a));
                }
                CmdResult::Ok
            }
            Some(MailboxOp::Stats) => {
                let s = self.stats;
                let words = [
                    s.register_commands as u32,
                    s.descriptors as u32,
                    s.displacements as u32,
                    s.last_command_cycles,
                ];
                for (i, v) in words.into_iter().enumerate() {
                    f.result(i).write(|w| w.set(v));
                }
                CmdResult::Ok
            }
            Some(MailboxOp::SetTtl) => {
                let args = [0, 1, 2, 3].map(|i| f.arg(i).read().bits());
                match self.set_ttl(args, now(regs), hw) {
                    Ok(deadline) => {
                        f.result(0).write(|w| w.set(deadline as u32));
                        f.result(1).write(|w| w.set((deadline >> 32) as u32));
                        CmdResult::Ok
                    }
                    Err(code) => code,
                }
            }
            None => CmdResult::BadOp,
        };
        fence(Ordering::Release);
        f.status()
            .write(|w| w.result().set(result as u8).seq().set(seq));
        true
    }
}

/// The device clock.
fn now(regs: &DeviceView<'_>) -> u64 {
    let f = regs.fw_mailbox();
    (f.now_hi().read().bits() as u64) << 32 | f.now_lo().read().bits() as u64
}

/// A rule slot written, deleted or cleared by the host is no longer aged: its time to live
/// belonged to the rule it held.
fn forget(ageing: &mut [Option<Ageing>], op: u8, table: u8, out: &Outcome) {
    if out.result != CmdResult::Ok {
        return;
    }
    let Some(op) = command::table_op(op) else {
        return;
    };
    for entry in ageing.iter_mut() {
        if let Some(a) = *entry
            && a.table as u8 == table
            && (op == TableOp::Clear
                || (matches!(op, TableOp::Write | TableOp::Delete) && a.slot == out.index))
        {
            *entry = None;
        }
    }
}

/// Counts a successful WRITE or DELETE.
fn count<C: ChangeCounter + ?Sized>(counter: &mut C, op: u8, table: u8, out: &Outcome) {
    if out.result == CmdResult::Ok
        && let (Some(table), Some(op)) = (TableId::from_u8(table), command::table_op(op))
        && matches!(op, TableOp::Write | TableOp::Delete)
    {
        counter.changed(table, op);
    }
}

/// After `changes` table changes: the generation advances by as many, and every table's
/// occupancy is republished.
fn publish_tables<H: TableHw + ?Sized>(regs: &DeviceView<'_>, hw: &H, changes: u32) {
    if changes == 0 {
        return;
    }
    let t = regs.tbl_cmd();
    let g = t.generation().read().bits().wrapping_add(changes);
    t.generation().write(|w| w.set(g));
    for tid in TableId::ALL {
        let occupancy = hw.occupancy(tid);
        t.occupancy(tid as usize).write(|w| w.set(occupancy));
    }
}
