//! The telemetry producer (`hw/docs/telemetry_ring.md`): records from the cores to a ring in
//! host memory, written by DMA with phase bits, so the host reads telemetry without a single
//! register read.
//!
//! Every `INTERVAL` device cycles, and when the host sets `CTRL.EXPORT`, the firmware writes
//! a record for every port and session whose counters changed since the last export that
//! reached the host, the heavy hitters of the interval (then starts a new interval of the
//! sketch), and a heartbeat. An `AGED` record follows every rule the ageing deletes. The
//! device never writes more than the ring size ahead of the host's `CONS_IDX`: a record that
//! does not fit is dropped and counted in `DROPPED`, never written over an unread one; a
//! port or session whose record was dropped is reported again at the next export.

use shadownet_hw::{
    DeviceView, NUM_SESSIONS, Port,
    counters::{self, CounterId, PortCounter, SessionCounter},
    layout::ring::{MAX_SIZE_LOG2, TELEMETRY_LEN, TelemetryKind, TelemetryRecord, phase},
    table::TableId,
};

use crate::{
    cost,
    ring::Dma,
    sketch::{FlowSample, HeavyHitter, Sketch, TOP_K},
};

/// What the producer reads from the rest of the device: the counter memory, and the flow
/// samples the data path leaves in its sample buffer (one per packet, while the telemetry
/// ring is enabled).
pub trait TelemetrySource {
    /// Current value of a counter.
    fn counter(&self, id: CounterId) -> u64;
    /// The oldest sample not yet taken.
    fn next_sample(&mut self) -> Option<FlowSample>;
}

/// A source with no counters and no samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTelemetry;

impl TelemetrySource for NoTelemetry {
    fn counter(&self, _: CounterId) -> u64 {
        0
    }
    fn next_sample(&mut self) -> Option<FlowSample> {
        None
    }
}

/// Rules aged in one slice that still need their record (at most every aged rule).
const AGED_QUEUE: usize = crate::cores::AGEING_CAPACITY;

/// The ring as latched at enable time.
#[derive(Clone, Copy, Debug)]
struct Ring {
    base: u64,
    size_log2: u32,
    prod: u32,
    /// A DMA transfer failed or the configuration was invalid: nothing more is written
    /// until the host disables and re-enables the ring.
    stopped: bool,
}

/// What the producer did in one slice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TelemetrySlice {
    /// Records written.
    pub records: u32,
    /// Records dropped because the ring was full.
    pub dropped: u32,
    /// Flow samples counted into the sketch.
    pub samples: u32,
    /// Cycles of the samples (included in `cycles`).
    pub sketch_cycles: u64,
    /// Cycles spent.
    pub cycles: u64,
    /// The ring's interrupt fired.
    pub interrupt: bool,
}

/// The producer's state.
#[derive(Clone, Debug)]
pub struct Telemetry {
    ring: Option<Ring>,
    dropped: u32,
    next_export: u64,
    last_port: [(u64, u64); Port::COUNT],
    last_session: [(u64, u64); NUM_SESSIONS],
    sketch: Sketch,
    aged: [(u8, u32, u64); AGED_QUEUE],
    aged_len: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            ring: None,
            dropped: 0,
            next_export: 0,
            last_port: [(0, 0); Port::COUNT],
            last_session: [(0, 0); NUM_SESSIONS],
            sketch: Sketch::new(),
            aged: [(0, 0, 0); AGED_QUEUE],
            aged_len: 0,
        }
    }
}

/// Values a heartbeat record carries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Beat {
    pub heartbeat: u32,
    pub cycles: u64,
}

/// One slice's writer: the ring, the host's consumer index as last read, the slice's tally.
struct Writer<'a, 'r, D: Dma + ?Sized> {
    regs: &'a DeviceView<'r>,
    dma: &'a mut D,
    ring: &'a mut Ring,
    cons: u32,
    dropped: &'a mut u32,
    now: u64,
    out: TelemetrySlice,
}

impl<D: Dma + ?Sized> Writer<'_, '_, D> {
    /// Writes one record, or counts it dropped when the ring is full; returns whether it
    /// reached the ring.
    fn put(&mut self, kind: TelemetryKind, aux: u16, id: u32, a: u64, b: u64) -> bool {
        self.out.cycles += cost::RECORD as u64;
        let size = 1u32 << self.ring.size_log2;
        if self.ring.stopped {
            return false;
        }
        if self.ring.prod.wrapping_sub(self.cons) >= size {
            // Full as last seen: the host may have consumed since.
            self.cons = self.regs.telemetry_ring().cons_idx().read().bits();
            self.out.cycles += cost::REGISTER as u64;
            if self.ring.prod.wrapping_sub(self.cons) >= size {
                *self.dropped = self.dropped.wrapping_add(1);
                self.out.dropped += 1;
                return false;
            }
        }
        let rec = TelemetryRecord {
            kind,
            phase: phase(self.ring.prod, self.ring.size_log2),
            aux,
            id,
            cycle: self.now,
            a,
            b,
        };
        let mut bytes = [0u8; TELEMETRY_LEN];
        rec.emit(&mut bytes);
        let slot = self.ring.prod & (size - 1);
        let at = self.ring.base + slot as u64 * TELEMETRY_LEN as u64;
        // The body first, then the word holding kind and phase: the host, polling the
        // phase, sees a whole record.
        let written = self
            .dma
            .write(at + 4, &bytes[4..])
            .and_then(|()| self.dma.write(at, &bytes[..4]));
        self.out.cycles += (cost::dma(TELEMETRY_LEN - 4) + cost::dma(4)) as u64;
        if written.is_err() {
            self.ring.stopped = true;
            raise(self.regs, 0b10);
            return false;
        }
        self.ring.prod = self.ring.prod.wrapping_add(1);
        self.out.records += 1;
        true
    }
}

fn status_bits(
    w: &mut shadownet_hw::device_regs::telemetry_ring::irq_status::W,
    bits: u32,
) -> &mut shadownet_hw::device_regs::telemetry_ring::irq_status::W {
    w.completion().bit(bits & 1 != 0).error().bit(bits & 2 != 0)
}

/// Latches `causes` into `IRQ_STATUS`; returns whether one of them is enabled.
fn raise(regs: &DeviceView<'_>, causes: u32) -> bool {
    let r = regs.telemetry_ring();
    let status = r.irq_status().read().bits() | causes;
    r.irq_status().write(|w| status_bits(w, status));
    r.irq_enable().read().bits() & causes != 0
}

fn addr(lo: u32, hi: u32) -> u64 {
    (hi as u64) << 32 | lo as u64
}

impl Telemetry {
    /// Whether the ring is enabled (the data path leaves flow samples only then).
    pub fn enabled(&self) -> bool {
        self.ring.is_some()
    }

    /// Records dropped since the ring was enabled.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The sketch of the current interval.
    pub fn sketch(&self) -> &Sketch {
        &self.sketch
    }

    /// Counts flow samples into the sketch; returns (samples, cycles).
    pub fn absorb<S: TelemetrySource + ?Sized>(&mut self, src: &mut S) -> (u32, u64) {
        let mut n = 0;
        let mut cycles = 0u64;
        while let Some(s) = src.next_sample() {
            cycles += self.sketch.update(s) as u64;
            n += 1;
        }
        (n, cycles)
    }

    /// A rule was deleted by ageing: its record goes out in this slice.
    pub(crate) fn aged(&mut self, table: TableId, slot: u32, deadline: u64) {
        if self.ring.is_some() && self.aged_len < AGED_QUEUE {
            self.aged[self.aged_len] = (table as u8, slot, deadline);
            self.aged_len += 1;
        }
    }

    /// Follows `CTRL.ENABLE`: latches the ring on 0→1 (a new start: indices, drop count,
    /// last exported counters and the sketch), forgets it on 1→0.
    fn follow_enable(&mut self, regs: &DeviceView<'_>, now: u64) -> u64 {
        let r = regs.telemetry_ring();
        let enabled = r.ctrl().read().enable().bit();
        match (enabled, self.ring.is_some()) {
            (true, false) => {
                let size_log2 = r.size_log2().read().bits();
                let base = addr(r.base_lo().read().bits(), r.base_hi().read().bits());
                let bad = size_log2 > MAX_SIZE_LOG2 || !base.is_multiple_of(TELEMETRY_LEN as u64);
                r.prod_idx().write(|w| w.set(0));
                r.dropped().write(|w| w.set(0));
                self.dropped = 0;
                self.last_port = [(0, 0); Port::COUNT];
                self.last_session = [(0, 0); NUM_SESSIONS];
                self.sketch.clear();
                self.aged_len = 0;
                self.next_export = now.saturating_add(r.interval().read().bits() as u64);
                self.ring = Some(Ring {
                    base,
                    size_log2: size_log2.min(MAX_SIZE_LOG2),
                    prod: 0,
                    stopped: bad,
                });
                if bad {
                    raise(regs, 0b10);
                }
                (cost::REGISTER * 8) as u64
            }
            (false, true) => {
                self.ring = None;
                0
            }
            _ => 0,
        }
    }

    /// One slice: acknowledged causes cleared, the ring followed, the samples counted, aged
    /// records written, and an export when it is due or asked for.
    pub(crate) fn service<D, S>(
        &mut self,
        regs: &DeviceView<'_>,
        dma: &mut D,
        src: &mut S,
        now: u64,
        beat: Beat,
    ) -> TelemetrySlice
    where
        D: Dma + ?Sized,
        S: TelemetrySource + ?Sized,
    {
        let mut slice = TelemetrySlice::default();
        let r = regs.telemetry_ring();
        let ack = r.irq_ack().read().bits();
        if ack != 0 {
            let status = r.irq_status().read().bits() & !ack;
            r.irq_status().write(|w| status_bits(w, status));
            r.irq_ack()
                .write(|w| w.completion().clear_bit().error().clear_bit());
        }
        slice.cycles += self.follow_enable(regs, now);
        let (samples, sketch_cycles) = self.absorb(src);
        slice.samples = samples;
        slice.sketch_cycles = sketch_cycles;
        slice.cycles += sketch_cycles;
        let Some(ring) = self.ring.as_mut() else {
            return slice;
        };
        let ctrl = r.ctrl().read();
        let asked = ctrl.export().bit();
        let interval = r.interval().read().bits() as u64;
        let due = interval > 0 && now >= self.next_export;
        if self.aged_len == 0 && !asked && !due {
            return slice;
        }
        let cons = r.cons_idx().read().bits();
        let mut w = Writer {
            regs,
            dma,
            ring,
            cons,
            dropped: &mut self.dropped,
            now,
            out: TelemetrySlice::default(),
        };
        for &(table, slot, deadline) in &self.aged[..self.aged_len] {
            w.put(TelemetryKind::Aged, table as u16, slot, deadline, 0);
        }
        self.aged_len = 0;
        if asked || due {
            for (i, last) in self.last_port.iter_mut().enumerate() {
                let Some(port) = Port::from_index(i) else {
                    continue;
                };
                let now_v = (
                    src.counter(counters::port(port, PortCounter::RxPackets)),
                    src.counter(counters::port(port, PortCounter::RxBytes)),
                );
                w.out.cycles += cost::COUNTER_CHECK as u64;
                if now_v != *last && w.put(TelemetryKind::Port, 0, i as u32, now_v.0, now_v.1) {
                    *last = now_v;
                }
            }
            for (s, last) in self.last_session.iter_mut().enumerate() {
                let now_v = (
                    src.counter(counters::session(s as u16, SessionCounter::TxPackets)),
                    src.counter(counters::session(s as u16, SessionCounter::TxBytes)),
                );
                w.out.cycles += cost::COUNTER_CHECK as u64;
                if now_v != *last && w.put(TelemetryKind::Session, 0, s as u32, now_v.0, now_v.1) {
                    *last = now_v;
                }
            }
            let mut top = [HeavyHitter::default(); TOP_K];
            let n = self.sketch.top(&mut top);
            for (rank, h) in top[..n].iter().enumerate() {
                w.put(
                    TelemetryKind::HeavyHitter,
                    rank as u16,
                    h.flow,
                    h.packets,
                    h.bytes,
                );
            }
            self.sketch.clear();
            w.put(
                TelemetryKind::Heartbeat,
                0,
                0,
                beat.heartbeat as u64,
                beat.cycles,
            );
            if asked {
                r.ctrl()
                    .write(|c| c.enable().set_bit().export().clear_bit());
            }
            if due {
                // Exports keep to the interval's grid; a slice late by more than one
                // interval exports once, not once per missed interval.
                let missed = (now - self.next_export) / interval;
                self.next_export += (missed + 1) * interval;
            }
        }
        let out = w.out;
        let prod = ring.prod;
        r.prod_idx().write(|x| x.set(prod));
        let dropped = self.dropped;
        r.dropped().write(|x| x.set(dropped));
        slice.records = out.records;
        slice.dropped = out.dropped;
        slice.cycles += out.cycles + (cost::REGISTER * 4) as u64;
        if out.records > 0 {
            slice.interrupt = raise(regs, 1);
        }
        slice
    }
}
