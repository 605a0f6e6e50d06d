//! The telemetry ring (`hw/docs/telemetry_ring.md`): counters, heavy hitters, aged rules and
//! heartbeats the NIC's firmware writes into host memory.
//!
//! The hot path, [`Nic::poll_telemetry`], reads host memory only: it finds new records by
//! their phase bit and tells the device how far it has read with one register write
//! (`CONS_IDX`, the doorbell) per poll that found anything. It never reads a register.

use std::sync::atomic::{Ordering, fence};

use shadownet_hw::{
    Port,
    layout::ring::{
        MAX_SIZE_LOG2, TELEMETRY_LEN, TelemetryKind, TelemetryRecord as RawRecord, flags, phase,
    },
    table::TableId,
};

use super::{Device, DmaBuffer, DriverError, Nic};

/// `ID.CAPS` bit of the telemetry ring.
const CAP_TELEMETRY_RING: u32 = 1 << 6;

/// One telemetry record, decoded. `cycle` is the device cycle the record describes (the
/// export, or the ageing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelemetryRecord {
    /// A port's receive counters (as `COUNTERS` `port.<p>.rx_packets` / `rx_bytes`).
    Port {
        /// The port.
        port: Port,
        /// Device cycle of the export.
        cycle: u64,
        /// Frames received.
        rx_packets: u64,
        /// Bytes received.
        rx_bytes: u64,
    },
    /// A mirror session's counters (as `session.<s>.tx_packets` / `tx_bytes`).
    Session {
        /// The session.
        session: u16,
        /// Device cycle of the export.
        cycle: u64,
        /// Copies sent.
        tx_packets: u64,
        /// Bytes of copies sent.
        tx_bytes: u64,
    },
    /// One of the interval's heavy hitters.
    HeavyHitter {
        /// 0 for the largest flow of the interval, then 1, 2, …
        rank: u16,
        /// The flow hash (`shadownet_sim::datapath::flow_hash` of its inner headers).
        flow: u32,
        /// Device cycle of the export that ended the interval.
        cycle: u64,
        /// Estimated packets in the interval (never below the truth).
        packets: u64,
        /// Estimated bytes in the interval (never below the truth).
        bytes: u64,
    },
    /// A rule deleted because its time to live ran out.
    Aged {
        /// Its table.
        table: TableId,
        /// Its slot.
        slot: u32,
        /// Its deadline (device cycle).
        deadline: u64,
        /// Device cycle the firmware deleted it in.
        cycle: u64,
    },
    /// The firmware's heartbeat, last record of every export.
    Heartbeat {
        /// `FW_MAILBOX.HEARTBEAT` at the export.
        heartbeat: u32,
        /// Embedded-core cycles used since boot.
        cycles_used: u64,
        /// Device cycle of the export.
        cycle: u64,
    },
}

impl TelemetryRecord {
    /// Decodes a raw record; `Err` says what is wrong with it.
    pub fn decode(r: &RawRecord) -> Result<TelemetryRecord, String> {
        Ok(match r.kind {
            TelemetryKind::Port => TelemetryRecord::Port {
                port: Port::from_index(r.id as usize)
                    .ok_or_else(|| format!("port index {} does not exist", r.id))?,
                cycle: r.cycle,
                rx_packets: r.a,
                rx_bytes: r.b,
            },
            TelemetryKind::Session => TelemetryRecord::Session {
                session: u16::try_from(r.id)
                    .ok()
                    .filter(|&s| (s as usize) < shadownet_hw::NUM_SESSIONS)
                    .ok_or_else(|| format!("session {} does not exist", r.id))?,
                cycle: r.cycle,
                tx_packets: r.a,
                tx_bytes: r.b,
            },
            TelemetryKind::HeavyHitter => TelemetryRecord::HeavyHitter {
                rank: r.aux,
                flow: r.id,
                cycle: r.cycle,
                packets: r.a,
                bytes: r.b,
            },
            TelemetryKind::Aged => TelemetryRecord::Aged {
                table: u8::try_from(r.aux)
                    .ok()
                    .and_then(TableId::from_u8)
                    .ok_or_else(|| format!("table {} does not exist", r.aux))?,
                slot: r.id,
                deadline: r.a,
                cycle: r.cycle,
            },
            TelemetryKind::Heartbeat => TelemetryRecord::Heartbeat {
                heartbeat: r.a as u32,
                cycles_used: r.b,
                cycle: r.cycle,
            },
        })
    }
}

/// The ring's memory and the driver's index.
pub(super) struct TelemetryRing {
    buf: Box<dyn DmaBuffer>,
    size_log2: u32,
    /// Next record index to read (free-running).
    consumed: u32,
}

impl TelemetryRing {
    /// The record at the consumer index, if the device has written it in this pass.
    fn next(&mut self) -> Result<Option<Result<RawRecord, String>>, DriverError> {
        let slot = self.consumed & ((1 << self.size_log2) - 1);
        let base = slot as usize * TELEMETRY_LEN;
        let out_of_range = || DriverError::DmaOutOfRange { offset: base };
        // Word 0 (kind, flags, aux) is the device's last write of a record.
        let first = self.buf.read_u32(base).ok_or_else(out_of_range)?;
        let f = (first >> 8) as u8;
        if (f & flags::PHASE != 0) != phase(self.consumed, self.size_log2) {
            return Ok(None);
        }
        fence(Ordering::Acquire);
        let mut rec = [0u8; TELEMETRY_LEN];
        rec[..4].copy_from_slice(&first.to_le_bytes());
        for i in 1..TELEMETRY_LEN / 4 {
            let w = self.buf.read_u32(base + i * 4).ok_or_else(out_of_range)?;
            rec[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        self.consumed = self.consumed.wrapping_add(1);
        Ok(Some(RawRecord::parse(&rec).map_err(|e| e.to_string())))
    }
}

impl<D: Device> Nic<D> {
    /// Sets up the telemetry ring with `2^size_log2` records (at most 2^16) in DMA memory the
    /// backend provides, exporting counters every `interval_cycles` device cycles (0: only
    /// when asked, [`Nic::request_telemetry`]), and enables it. A ring already enabled is
    /// replaced; its unread records are lost.
    pub fn enable_telemetry(
        &mut self,
        size_log2: u32,
        interval_cycles: u32,
    ) -> Result<(), DriverError> {
        let r = self.regs();
        let t = r.telemetry_ring();
        if r.id().caps().read().bits() & CAP_TELEMETRY_RING == 0
            || t.blk_version().read().bits() == 0
        {
            return Err(DriverError::Unsupported {
                device: self.name.clone(),
                feature: "telemetry ring",
            });
        }
        if size_log2 > MAX_SIZE_LOG2 {
            return Err(DriverError::RingSize { size_log2 });
        }
        let n = 1usize << size_log2;
        let buf = self.dev.alloc_dma(n * TELEMETRY_LEN)?;
        self.disable_telemetry();
        {
            let r = self.regs();
            let t = r.telemetry_ring();
            let base = buf.iova();
            t.base_lo().write(|w| w.set(base as u32));
            t.base_hi().write(|w| w.set((base >> 32) as u32));
            t.size_log2().write(|w| w.set(size_log2));
            t.interval().write(|w| w.set(interval_cycles));
            t.cons_idx().write(|w| w.set(0));
            t.irq_ack()
                .write(|w| w.completion().set_bit().error().set_bit());
            t.irq_enable()
                .write(|w| w.completion().set_bit().error().set_bit());
            fence(Ordering::Release);
            t.ctrl().write(|w| w.enable().set_bit());
        }
        // The device latches the ring in its next slice; a bad configuration shows then.
        self.dev.relax();
        if self
            .regs()
            .telemetry_ring()
            .irq_status()
            .read()
            .error()
            .bit()
        {
            return Err(DriverError::TelemetryStopped {
                device: self.name.clone(),
                reason: "ring address misaligned or not mapped for DMA",
            });
        }
        self.telemetry = Some(TelemetryRing {
            buf,
            size_log2,
            consumed: 0,
        });
        tracing::debug!(device = %self.name, records = n, interval_cycles, "telemetry ring enabled");
        Ok(())
    }

    /// Stops the telemetry ring (unread records are lost).
    pub fn disable_telemetry(&mut self) {
        self.regs()
            .telemetry_ring()
            .ctrl()
            .write(|w| w.enable().clear_bit());
        self.dev.relax();
        self.telemetry = None;
    }

    /// Asks the firmware for an export now (every changed counter, the heavy hitters, a
    /// heartbeat), as at the end of an interval.
    pub fn request_telemetry(&mut self) -> Result<(), DriverError> {
        if self.telemetry.is_none() {
            return Err(DriverError::TelemetryNotEnabled {
                device: self.name.clone(),
            });
        }
        self.regs()
            .telemetry_ring()
            .ctrl()
            .write(|w| w.enable().set_bit().export().set_bit());
        Ok(())
    }

    /// Records the device dropped because the ring was full (a register read: not for the
    /// hot path).
    pub fn telemetry_dropped(&self) -> u32 {
        self.regs().telemetry_ring().dropped().read().bits()
    }

    /// Appends every record the device has written since the last poll to `out`, reading
    /// host memory only, then writes the consumer index once (if anything was read); returns
    /// how many were appended. A record that cannot be decoded is consumed and reported as
    /// [`DriverError::BadTelemetryRecord`] after the records before it are appended.
    pub fn poll_telemetry(&mut self, out: &mut Vec<TelemetryRecord>) -> Result<usize, DriverError> {
        let device = &self.name;
        let ring = self
            .telemetry
            .as_mut()
            .ok_or_else(|| DriverError::TelemetryNotEnabled {
                device: device.clone(),
            })?;
        let start = ring.consumed;
        let mut n = 0;
        let mut bad = None;
        while let Some(raw) = ring.next()? {
            match raw.and_then(|r| TelemetryRecord::decode(&r)) {
                Ok(rec) => {
                    out.push(rec);
                    n += 1;
                }
                Err(detail) => {
                    bad = Some(DriverError::BadTelemetryRecord {
                        device: device.clone(),
                        index: ring.consumed.wrapping_sub(1),
                        detail,
                    });
                    break;
                }
            }
        }
        let consumed = ring.consumed;
        if consumed != start {
            fence(Ordering::Release);
            self.regs()
                .telemetry_ring()
                .cons_idx()
                .write(|w| w.set(consumed));
        }
        match bad {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}
