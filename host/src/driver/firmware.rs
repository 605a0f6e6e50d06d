//! The embedded cores' mailbox (`hw/docs/fw_mailbox.md`): what firmware runs, its heartbeat
//! for a watchdog, its cycles, and the mailbox commands.

use std::sync::atomic::{Ordering, fence};

use shadownet_hw::{
    regs::fw_mailbox::{cmd::MailboxOp, fw_state::FwState},
    table::TableId,
};

use super::{
    Device, DriverError, Nic,
    nic::{result_code, result_name},
};

/// `ID.CAPS` bit of the firmware mailbox.
const CAP_FIRMWARE: u32 = 1 << 7;

/// The firmware as the mailbox reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareStatus {
    /// Firmware version (major, minor, patch).
    pub version: (u16, u8, u8),
    /// Whether the cores run (`FW_STATE` = `RUNNING`).
    pub running: bool,
    /// Heartbeat: advances once per service slice.
    pub heartbeat: u32,
    /// Cycles the cores have used since reset.
    pub cycles: u64,
}

/// The firmware's work counters (mailbox `STATS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareStats {
    /// Table commands executed from the registers (low 32 bits).
    pub register_commands: u32,
    /// Ring descriptors executed (low 32 bits).
    pub descriptors: u32,
    /// Exact-table entries moved by inserts (low 32 bits).
    pub displacements: u32,
    /// Cycles of the last table command.
    pub last_command_cycles: u32,
}

impl<D: Device> Nic<D> {
    fn require_firmware(&self) -> Result<(), DriverError> {
        if self.regs().id().caps().read().bits() & CAP_FIRMWARE == 0 {
            return Err(DriverError::Unsupported {
                device: self.name.clone(),
                feature: "firmware mailbox",
            });
        }
        Ok(())
    }

    /// Version, state, heartbeat and cycles of the firmware. Reading it twice, a service
    /// slice apart, with the same heartbeat means the cores are stuck.
    pub fn firmware_status(&self) -> Result<FirmwareStatus, DriverError> {
        self.require_firmware()?;
        let r = self.regs();
        let f = r.fw_mailbox();
        let v = f.fw_version().read();
        Ok(FirmwareStatus {
            version: (v.major().bits(), v.minor().bits(), v.patch().bits()),
            running: f.fw_state().read().state().variant() == Some(FwState::Running),
            heartbeat: f.heartbeat().read().bits(),
            cycles: (f.cycles_hi().read().bits() as u64) << 32 | f.cycles_lo().read().bits() as u64,
        })
    }

    fn mailbox(
        &mut self,
        op: MailboxOp,
        name: &'static str,
        args: [u32; 4],
    ) -> Result<[u32; 4], DriverError> {
        self.require_firmware()?;
        let seq = self
            .regs()
            .fw_mailbox()
            .status()
            .read()
            .seq()
            .bits()
            .wrapping_add(1);
        {
            let r = self.regs();
            for (i, a) in args.iter().enumerate() {
                r.fw_mailbox().arg(i).write(|w| w.set(*a));
            }
        }
        fence(Ordering::Release);
        self.regs()
            .fw_mailbox()
            .cmd()
            .write(|w| w.op().variant(op).seq().set(seq));
        self.wait("FW_MAILBOX", name, |r| {
            r.fw_mailbox().status().read().seq().bits() == seq
        })?;
        let r = self.regs();
        let result = r.fw_mailbox().status().read().result().bits();
        if result != 0 {
            return Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("FW_MAILBOX {name}"),
                result: result_name(result_code(result)),
            });
        }
        let mut out = [0u32; 4];
        for (i, o) in out.iter_mut().enumerate() {
            *o = r.fw_mailbox().result(i).read().bits();
        }
        Ok(out)
    }

    /// Asks the cores to echo `args`: proves they execute commands, not only that the
    /// heartbeat advances.
    pub fn firmware_ping(&mut self, args: [u32; 4]) -> Result<[u32; 4], DriverError> {
        self.mailbox(MailboxOp::Ping, "ping", args)
    }

    /// Gives ACL or mirror-filter rule `slot` a time to live of `ttl_cycles` device cycles from
    /// now (0 cancels): the NIC deletes the rule itself when it runs out, unless the slot is
    /// written, deleted or cleared before. Returns the deadline (device cycle).
    pub fn set_rule_ttl(
        &mut self,
        table: TableId,
        slot: u32,
        ttl_cycles: u64,
    ) -> Result<u64, DriverError> {
        if !matches!(table, TableId::Acl | TableId::MirrorFilter) {
            return Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("time to live on table {table}"),
                result: "only ACL and mirror-filter rules age",
            });
        }
        let capacity = table.capacity();
        if slot >= capacity {
            return Err(DriverError::IndexOutOfRange {
                device: self.name.clone(),
                table,
                index: slot,
                capacity,
            });
        }
        let args = [
            table as u32,
            slot,
            ttl_cycles as u32,
            (ttl_cycles >> 32) as u32,
        ];
        let [lo, hi, _, _] = self.mailbox(MailboxOp::SetTtl, "set_ttl", args)?;
        Ok((hi as u64) << 32 | lo as u64)
    }

    /// The firmware's work counters.
    pub fn firmware_stats(&mut self) -> Result<FirmwareStats, DriverError> {
        let [
            register_commands,
            descriptors,
            displacements,
            last_command_cycles,
        ] = self.mailbox(MailboxOp::Stats, "stats", [0; 4])?;
        Ok(FirmwareStats {
            register_commands,
            descriptors,
            displacements,
            last_command_cycles,
        })
    }
}
