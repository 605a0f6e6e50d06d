//! Timing: receive FIFOs, the pipeline's cycles, egress queues, the mirror policer, and the
//! egress scheduler (hw/docs/timing.md has the full rules).
//!
//! Time is kept in picoseconds. A frame is *received* when its last byte arrives; it waits in
//! its port's receive FIFO until the pipeline admits it (one frame at a time, first come first
//! served across ports, on a cycle edge, for `beats` cycles). Admitted at cycle `a`, a
//! production frame is written into the in-order output stage at `a + primary_latency` and
//! is in its egress queue `beats` cycles later; a mirror copy goes through the mirror engine
//! (`mirror_latency`, its own output stage) to the session's policer and the port's mirror
//! queue.
//!
//! Each egress port sends production frames first come first served, never waiting for a
//! copy. A copy may start on the wire only in a gap: when no production frame is
//! transmitting or waiting, and none will be ready before the copy ends. The scheduler knows
//! every production frame that will be ready within `egress_lookahead` cycles — they are
//! already in the pipeline — so copies whose wire time fits within that horizon can be placed
//! exactly; longer copies are dropped (`MIRROR_OVERSIZE`). Production frames therefore leave
//! at the same cycle with or without mirroring.

use shadownet_hw::{
    NUM_SESSIONS, Port, counters::PipelineCounter, drop::DropReason, timing::Timing,
};

use crate::{
    counters::Counters,
    datapath::{OutFrame, Two},
    fifo::{Cursor, Fifo, Ring},
    frames::FrameBuf,
    sessions::Sessions,
};

/// A frame leaving a port: plain words, written once into its in-flight slot at dispatch and
/// handed to the sink from there.
#[derive(Debug)]
pub struct Departure {
    /// Packet id of the frame it came from.
    pub packet: u64,
    /// When that frame was received (ps).
    pub ingress_ps: u64,
    /// When it entered its egress queue (ps).
    pub ready_ps: u64,
    /// When its first byte leaves (ps).
    pub start_ps: u64,
    /// The frame.
    pub frame: OutFrame,
    /// [`Port::index`] of the port that frame was received on.
    ingress: u8,
}

impl Departure {
    /// Port the frame it came from was received on.
    #[inline(always)]
    pub fn ingress_port(&self) -> Port {
        crate::datapath::port_of_index(self.ingress as usize)
    }

    /// [`Port::index`] of the port the frame it came from was received on.
    #[inline(always)]
    pub fn ingress_index(&self) -> usize {
        self.ingress as usize
    }
}

/// A frame or copy dropped after the pipeline decided to send it.
#[derive(Clone, Copy, Debug)]
pub struct LateDrop {
    /// Packet id.
    pub packet: u64,
    /// Port the frame was received on.
    pub ingress_port: Port,
    /// Copy number (0: the production frame).
    pub copy: u8,
    /// Session of a copy.
    pub session: Option<u16>,
    /// Egress port.
    pub port: Port,
    /// When (ps).
    pub at_ps: u64,
    /// Why.
    pub reason: DropReason,
    /// Frame length.
    pub len: usize,
    /// The frame's bytes, to be freed.
    pub(crate) buf: FrameBuf,
}

/// A frame between the pipeline's output and the wire, with its wire time; a free slot
/// holds the next free one in `next_free` (an intrusive free list: freeing and taking a slot
/// are a store and a load, no list of its own to grow).
struct Slot {
    dep: Departure,
    wire: u64,
    next_free: u32,
}

/// The frames between the pipeline's output and the wire. A frame keeps its slot from
/// dispatch until the model has transmitted it, and every queue holds only slot numbers, so a
/// frame's record is written once and never moved. Freed slots are reused.
pub(crate) struct InFlight {
    slots: Vec<Slot>,
    /// The first free slot ([`NO_SLOT`] when none is).
    free: u32,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            slots: Vec::new(),
            free: NO_SLOT,
        }
    }
}

/// The end of the free list.
const NO_SLOT: u32 = u32::MAX;

impl InFlight {
    /// Takes a slot for a frame's departure, written field by field in place (building the
    /// record and copying it in cost more stores).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn insert(
        &mut self,
        packet: u64,
        ingress_index: u8,
        ingress_ps: u64,
        ready_ps: u64,
        start_ps: u64,
        frame: OutFrame,
        wire: u64,
    ) -> u32 {
        if let Some(slot) = self.slots.get_mut(self.free as usize) {
            let i = self.free;
            self.free = slot.next_free;
            slot.dep.packet = packet;
            slot.dep.ingress = ingress_index;
            slot.dep.ingress_ps = ingress_ps;
            slot.dep.ready_ps = ready_ps;
            slot.dep.start_ps = start_ps;
            slot.dep.frame = frame;
            slot.wire = wire;
            return i;
        }
        self.slots.push(Slot {
            dep: Departure {
                packet,
                ingress_ps,
                ready_ps,
                start_ps,
                frame,
                ingress: ingress_index,
            },
            wire,
            next_free: NO_SLOT,
        });
        (self.slots.len() - 1) as u32
    }

    #[inline]
    fn slot(&self, i: u32) -> &Slot {
        &self.slots[i as usize]
    }

    #[inline]
    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.slots[i as usize]
    }

    /// A released transmission.
    #[inline]
    pub(crate) fn departure(&self, i: u32) -> &Departure {
        &self.slot(i).dep
    }

    /// Wire time of a released transmission (ps).
    #[inline]
    pub(crate) fn wire_ps(&self, i: u32) -> u64 {
        self.slot(i).wire
    }

    /// Frees the slot of a released transmission and hands back its departure and wire time
    /// (ps), valid until the next insert: one look-up for the departure's accounting and
    /// the slot's freeing.
    #[inline(always)]
    pub(crate) fn take(&mut self, i: u32) -> (&Departure, u64) {
        let slot = &mut self.slots[i as usize];
        slot.next_free = self.free;
        self.free = i;
        (&slot.dep, slot.wire)
    }

    /// Frees a slot and hands back its frame's bytes, to be freed.
    pub(crate) fn remove(&mut self, i: u32) -> FrameBuf {
        let slot = &mut self.slots[i as usize];
        slot.next_free = self.free;
        self.free = i;
        slot.dep.frame.buf()
    }
}

/// A copy waiting to be admitted to the mirror queue or to be placed on the wire: what the
/// scheduler decides with, kept with the slot of its frame.
#[derive(Clone, Copy, Default)]
struct PendingCopy {
    ready: u64,
    wire: u64,
    len: u32,
    slot: u32,
}

/// A production frame decided (its start is known when it is queued), written once and read
/// by three cursors of [`Egress::production`]: [`WAITING`] (queue occupancy until it starts),
/// [`INTERVALS`] (wire time a pending copy may have to avoid) and [`RELEASE`].
#[derive(Clone, Copy, Default)]
struct Produced {
    start: u64,
    end: u64,
    seq: u64,
    len: u32,
    slot: u32,
}

/// A copy whose start is decided, written once and read by two cursors of
/// [`Egress::decided`]: [`STARTED`] (mirror queue occupancy until it starts) and [`COPY_RELEASE`].
#[derive(Clone, Copy, Default)]
struct Decided {
    start: u64,
    seq: u64,
    len: u32,
    slot: u32,
}

/// The slot of a copy refused at the mirror queue's door behind queued copies.
const REFUSED: u32 = u32::MAX;

/// Cursor of production frames not yet started.
const WAITING: usize = 0;
/// Cursor of production transmissions a pending copy may have to avoid.
const INTERVALS: usize = 1;
/// Cursor of copies decided but not started.
const STARTED: usize = 0;
/// Cursor of production frames not yet released.
const RELEASE: usize = 2;
/// Cursor of decided copies not yet released.
const COPY_RELEASE: usize = 1;

/// One egress port's queues and wire.
struct Egress {
    byte_ps: u64,
    /// End of the last production transmission.
    primary_free: u64,
    /// Production frames decided, for the waiting, intervals and release cursors.
    production: Ring<Produced, 3>,
    primary_waiting_bytes: u64,
    /// Copies made for this port, in arrival order: the first `queued` admitted to the mirror
    /// queue (start not yet decided), the rest at its door (admission not yet decidable).
    /// Admitting a copy moves the boundary, not the record; a copy refused while others are
    /// queued stays, marked [`REFUSED`], until the decisions reach it.
    copies: Fifo<PendingCopy>,
    /// How many of `copies` are in the mirror queue.
    queued: usize,
    queue_bytes: u64,
    /// Copies decided, for the started and release cursors.
    decided: Ring<Decided, 2>,
    started_bytes: u64,
    /// End of the last copy's transmission.
    mirror_free: u64,
    /// Lower bound on the start of the undecided queue head.
    head_lb: Option<u64>,
    active: bool,
    /// Below this horizon nothing of this port can be decided or released: `advance` skips
    /// it. New frames reset it to 0.
    wake: u64,
}

impl Egress {
    /// A frame was queued on this port (number `p`): `advance` visits it, whatever its
    /// horizon, and it is in the `active` list.
    #[inline(always)]
    fn activate(&mut self, p: usize, active: &mut Vec<usize>) {
        self.wake = 0;
        if !self.active {
            self.active = true;
            active.push(p);
        }
    }

    fn new(byte_ps: u64) -> Egress {
        Egress {
            byte_ps,
            primary_free: 0,
            production: Ring::default(),
            primary_waiting_bytes: 0,
            copies: Fifo::default(),
            queued: 0,
            queue_bytes: 0,
            decided: Ring::default(),
            started_bytes: 0,
            mirror_free: 0,
            head_lb: None,
            active: false,
            wake: 0,
        }
    }

    fn mirror_pending(&self) -> bool {
        !self.copies.is_empty()
    }

    /// The undecided head of the mirror queue (never a refused mark once `advance_port` has
    /// run: it decides past them).
    fn queue_head(&self) -> Option<&PendingCopy> {
        if self.queued > 0 {
            self.copies.front()
        } else {
            None
        }
    }

    /// Whether no decided transmission waits to be released.
    fn nothing_to_release(&self) -> bool {
        self.production.is_empty(RELEASE) && self.decided.is_empty(COPY_RELEASE)
    }

    /// The first decided transmission not yet released, in (start, seq) order — production
    /// frames are decided in start order and so are copies, but a copy may fill a gap before
    /// production frames decided earlier: the two are merged here — and whether it is a copy.
    fn first_to_release(&self) -> Option<(u64, u32, bool)> {
        match (
            self.production.front(RELEASE),
            self.decided.front(COPY_RELEASE),
        ) {
            (Some(p), Some(c)) if (c.start, c.seq) < (p.start, p.seq) => {
                Some((c.start, c.slot, true))
            }
            (Some(p), _) => Some((p.start, p.slot, false)),
            (None, c) => c.map(|c| (c.start, c.slot, true)),
        }
    }

    /// Earliest start at or after `s0` (on a cycle edge) of a copy of wire time `d` that
    /// overlaps no production transmission: the intervals cursor first moved past every
    /// transmission ending by `s0`, then searched, in locals (see `Ring::cursor`).
    #[inline(always)]
    fn earliest_gap(&mut self, s0: u64, d: u64, cycle: CycleDiv) -> u64 {
        let mut intervals = self.production.cursor(INTERVALS);
        while intervals.front().is_some_and(|i| i.end <= s0) {
            intervals.drop_front();
        }
        let s = Self::gap_from(&intervals, s0, d, cycle);
        let head = intervals.head();
        self.production.set_head(INTERVALS, head);
        s
    }

    /// [`Egress::earliest_gap`]'s search from the first transmission of `intervals`.
    #[inline(always)]
    fn gap_from(intervals: &Cursor<'_, Produced>, s0: u64, d: u64, cycle: CycleDiv) -> u64 {
        let mut s = s0;
        for &Produced {
            start: ps, end: pe, ..
        } in intervals.iter()
        {
            if pe <= s {
                continue;
            }
            if ps >= s.saturating_add(d) {
                break;
            }
            s = cycle.div_ceil(pe) * cycle.cycle;
        }
        s
    }
}

/// Division by the cycle time (ps) as a multiply and a shift: the scheduler divides a time
/// by the cycle a few times per frame (a latency in cycles, the next cycle edge), and a
/// 64-bit `div` takes tens of cycles on current CPUs where a multiply takes three.
///
/// Exact for every dividend below 2^63 (larger ones, which no run reaches, are divided):
/// with `c >= 2` the cycle, `s = ceil(log2 c)` (so `2^(s-1) < c <= 2^s`), `k = 63 + s` and
/// `m = ceil(2^k / c) = (2^k + e) / c` with `0 <= e < c`, for `x < 2^63`
/// `x * m / 2^k = x / c + x * e / (c * 2^k)`, whose second term is below
/// `2^63 * c / (c * 2^(63 + s)) = 2^-s <= 1 / c`; writing `x = q * c + r` with `r <= c - 1`,
/// the sum is below `q + (c - 1) / c + 1 / c = q + 1`, so its floor is `q`. And
/// `m < 2^k / 2^(s-1) + 1 = 2^64 + 1`, with `m = 2^64` impossible (it would need
/// `c <= 2^(s-1)`): `m` fits in 64 bits, and `x * m` in 128, whose high word shifted by
/// `k - 64 = s - 1` is the quotient. A cycle of 1 ps divides (no shift is needed, but no
/// multiplier fits either).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CycleDiv {
    /// The divisor (ps per cycle).
    cycle: u64,
    /// `ceil(2^(63 + s) / cycle)`.
    m: u64,
    /// `s - 1`.
    shift: u32,
    /// Dividends below this are multiplied: 2^63, or 0 when the cycle is 1 ps.
    limit: u64,
    /// Dividends below this are rounded up by multiplying: `limit - cycle` (or 0).
    ceil_limit: u64,
}

impl CycleDiv {
    /// Division by `cycle` (not zero).
    pub(crate) fn new(cycle: u64) -> CycleDiv {
        assert!(cycle > 0, "a cycle of 0 ps");
        if cycle == 1 {
            return CycleDiv {
                cycle,
                m: 0,
                shift: 0,
                limit: 0,
                ceil_limit: 0,
            };
        }
        // ceil(log2 cycle), at least 1.
        let s = 64 - (cycle - 1).leading_zeros();
        let k = 63 + s;
        let m = (1u128 << k).div_ceil(cycle as u128);
        let m = u64::try_from(m).expect("the multiplier fits in 64 bits (see CycleDiv)");
        CycleDiv {
            cycle,
            m,
            shift: s - 1,
            limit: 1 << 63,
            ceil_limit: (1u64 << 63).saturating_sub(cycle),
        }
    }

    /// `x / cycle`.
    #[inline(always)]
    pub(crate) fn div(self, x: u64) -> u64 {
        if x < self.limit {
            (((x as u128 * self.m as u128) >> 64) as u64) >> self.shift
        } else {
            x / self.cycle
        }
    }

    /// `x.div_ceil(cycle)`.
    #[inline(always)]
    pub(crate) fn div_ceil(self, x: u64) -> u64 {
        // `x + cycle - 1` stays below the limit: the same division.
        if x < self.ceil_limit {
            self.div(x + self.cycle - 1)
        } else {
            x.div_ceil(self.cycle)
        }
    }
}

/// The admission of a frame that overflowed its port's receive FIFO (see
/// [`Scheduler::admit_run`]).
pub(crate) const NOT_ADMITTED: u64 = u64::MAX;

/// The pipeline counters of admissions, summed over a batch and added once.
#[derive(Default)]
pub(crate) struct AdmitSums {
    admitted: u64,
    busy: u64,
    wait: u64,
    /// The receive FIFOs' highest fill (bytes) seen.
    high: u64,
}

impl AdmitSums {
    /// Adds the sums to `counters`.
    pub(crate) fn flush(&self, counters: &mut Counters) {
        counters.pipeline(PipelineCounter::Admitted, self.admitted);
        counters.pipeline(PipelineCounter::BusyCycles, self.busy);
        counters.pipeline(PipelineCounter::RxWaitCycles, self.wait);
        counters.max(
            shadownet_hw::counters::pipeline(PipelineCounter::RxFifoHighWater),
            self.high,
        );
    }
}

/// A port's receive FIFO: when each frame waiting in it is admitted, and their bytes.
#[derive(Default)]
struct RxFifo {
    fifo: Fifo<(u64, u32)>,
    bytes: u64,
}

#[derive(Clone, Copy, Default)]
struct Policer {
    /// Tokens in micro-bits: a rate of R Mbit/s adds R micro-bits per picosecond.
    tokens: u128,
    last: u64,
    primed: bool,
}

impl Policer {
    fn conform(&mut self, rate_mbps: u32, burst: u32, t: u64, len: usize) -> bool {
        if rate_mbps == 0 {
            return true;
        }
        let cap = burst as u128 * 8_000_000;
        if !self.primed {
            self.tokens = cap;
            self.last = t;
            self.primed = true;
        }
        let elapsed = t.saturating_sub(self.last) as u128;
        self.tokens = (self.tokens + elapsed * rate_mbps as u128).min(cap);
        self.last = self.last.max(t);
        let need = len as u128 * 8_000_000;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

/// Longest frame whose bus beats [`Scheduler`] keeps in a table (an MTU-sized frame with
/// its encapsulation fits).
const BEATS_TABLE: usize = 2048;

/// Bus beats (cycles) a frame of `len` bytes takes: from `table` (`timing.beats` by length,
/// up to [`BEATS_TABLE`]) for common lengths (a division per frame and stage saved), else
/// computed.
#[inline(always)]
fn beats_of(table: &[u32], timing: &Timing, len: usize) -> u64 {
    match table.get(len) {
        Some(&b) => b as u64,
        None => timing.beats(len as u32) as u64,
    }
}

/// The timing model of the whole NIC.
pub struct Scheduler {
    timing: Timing,
    /// Division by `cycle`.
    per_cycle: CycleDiv,
    /// `timing.beats(len)` by length, for lengths up to [`BEATS_TABLE`].
    beats: Box<[u32]>,
    cycle: u64,
    primary_latency: u64,
    mirror_latency: u64,
    lookahead: u64,
    mirror_max_wire: u64,
    /// The cycle the pipeline input is free from (kept in cycles: admission is on a cycle
    /// edge, so the wait is a difference of cycle numbers, not a division).
    pipeline_free_cycle: u64,
    output_free: u64,
    mirror_output_free: u64,
    last_admit: u64,
    rx: Vec<RxFifo>,
    ports: Vec<Egress>,
    active: Vec<usize>,
    policers: Vec<Policer>,
    seq: u64,
    /// Admission of the last packet whose deciding and releasing was deferred (see
    /// [`Scheduler::catch_up`]).
    deferred_admit: Option<u64>,
    /// Every frame between the pipeline's output and the wire.
    pub(crate) in_flight: InFlight,
    /// Slots of the transmissions released, in start order per port (drained by the model,
    /// which frees the slots).
    pub(crate) released: Vec<u32>,
    /// Drops after the pipeline (drained by the model).
    pub drops: Vec<LateDrop>,
}

impl Scheduler {
    /// A scheduler for `timing` (validated by the caller).
    pub fn new(timing: Timing) -> Scheduler {
        let cycle = timing.cycle_ps();
        let ports = (0..Port::COUNT)
            .map(|i| {
                let gbps = if Port::from_index(i) == Some(Port::Uplink) {
                    timing.uplink_gbps
                } else {
                    timing.host_gbps
                };
                Egress::new(Timing::byte_ps(gbps))
            })
            .collect();
        Scheduler {
            timing,
            beats: (0..=BEATS_TABLE as u32).map(|l| timing.beats(l)).collect(),
            per_cycle: CycleDiv::new(cycle),
            cycle,
            primary_latency: timing.primary_latency() as u64 * cycle,
            mirror_latency: timing.mirror_latency() as u64 * cycle,
            lookahead: timing.egress_lookahead() as u64 * cycle,
            // A copy longer than this could overlap a production frame the scheduler cannot
            // yet see when it must decide (see the module docs).
            mirror_max_wire: timing.mirror_max_wire_cycles() as u64 * cycle,
            pipeline_free_cycle: 0,
            output_free: 0,
            mirror_output_free: 0,
            last_admit: 0,
            rx: (0..Port::COUNT).map(|_| RxFifo::default()).collect(),
            ports,
            active: Vec::new(),
            policers: vec![Policer::default(); NUM_SESSIONS],
            seq: 0,
            deferred_admit: None,
            in_flight: InFlight::default(),
            released: Vec::new(),
            drops: Vec::new(),
        }
    }

    /// Whether there are released transmissions or drops for the model to drain.
    #[inline(always)]
    pub(crate) fn has_output(&self) -> bool {
        !self.released.is_empty() || !self.drops.is_empty()
    }

    /// Bus beats (cycles) a frame of `len` bytes takes ([`beats_of`]).
    #[inline(always)]
    fn beats(&self, len: usize) -> u64 {
        beats_of(&self.beats, &self.timing, len)
    }

    /// Picoseconds per cycle.
    pub fn cycle_ps(&self) -> u64 {
        self.cycle
    }

    /// Division by the cycle time, for latencies in cycles.
    #[inline(always)]
    pub(crate) fn per_cycle(&self) -> CycleDiv {
        self.per_cycle
    }

    /// Wire time of a frame of `len` bytes on `port`.
    pub fn wire_ps(&self, port: Port, len: usize) -> u64 {
        self.timing.wire_bytes(len as u32) as u64 * self.ports[port.index()].byte_ps
    }

    /// Resets a session's policer (its configuration changed).
    pub fn reset_policer(&mut self, session: u16) {
        self.policers[session as usize] = Policer::default();
    }

    /// A frame of `len` bytes fully received on `port` at `arrival`: when the pipeline admits
    /// it, or why it never gets there.
    pub fn admit(
        &mut self,
        port: Port,
        len: usize,
        arrival: u64,
        counters: &mut Counters,
    ) -> Result<u64, DropReason> {
        let mut sums = AdmitSums::default();
        let mut admit = [NOT_ADMITTED];
        self.admit_run(port.index(), [(len, arrival)], &mut admit, &mut sums);
        sums.flush(counters);
        let [admit] = admit;
        if admit == NOT_ADMITTED {
            Err(DropReason::RxFifoOverflow)
        } else {
            Ok(admit)
        }
    }

    /// [`Scheduler::admit`] for a run of frames received on the port of [`Port::index`]
    /// `port`, each given by its length and arrival (in arrival order): each frame's admission
    /// written to `admits`, or [`NOT_ADMITTED`] when it overflows the port's receive FIFO, and
    /// the pipeline's counters summed in `sums` (added once per batch). Admission depends only
    /// on arrival times and lengths, so a batch's frames are admitted in one pass before any is
    /// decided; the FIFO's bytes, the pipeline's free cycle and the sums stay in locals for the
    /// run (admitting frame by frame stored them and loaded them back each time). Returns the
    /// run's bytes, its latest arrival and whether a frame was refused.
    #[inline(always)]
    pub(crate) fn admit_run(
        &mut self,
        port: usize,
        run: impl IntoIterator<Item = (usize, u64)>,
        admits: &mut [u64],
        sums: &mut AdmitSums,
    ) -> (u64, u64, bool) {
        let cycle = self.cycle;
        let per_cycle = self.per_cycle;
        let fifo_cap = self.timing.rx_fifo_bytes as u64;
        let beats_table = &self.beats;
        let timing = &self.timing;
        let rx = &mut self.rx[port];
        let mut rx_bytes = rx.bytes;
        let mut free_cycle = self.pipeline_free_cycle;
        let mut last_admit = self.last_admit;
        let (mut admitted, mut busy, mut wait, mut high) = (0u64, 0u64, 0u64, sums.high);
        let mut run_bytes = 0u64;
        let mut latest = 0u64;
        let mut refused = false;
        for ((len, arrival), slot) in run.into_iter().zip(admits.iter_mut()) {
            run_bytes += len as u64;
            latest = latest.max(arrival);
            let beats = beats_of(beats_table, timing, len);
            while let Some((_, l)) = rx.fifo.pop_front_if(|&(admit, _)| admit <= arrival) {
                rx_bytes -= l as u64;
            }
            if rx_bytes + len as u64 > fifo_cap {
                *slot = NOT_ADMITTED;
                refused = true;
                continue;
            }
            let edge = per_cycle.div_ceil(arrival);
            let admit_cycle = edge.max(free_cycle);
            let admit = admit_cycle * cycle;
            free_cycle = admit_cycle + beats;
            if admit > arrival {
                rx.fifo.push_back((admit, len as u32));
                rx_bytes += len as u64;
                high = high.max(rx_bytes);
            }
            admitted += 1;
            busy += beats;
            // `(admit - arrival) / cycle`: the arrival is at most a cycle before its edge.
            wait += admit_cycle - edge;
            last_admit = admit;
            *slot = admit;
        }
        rx.bytes = rx_bytes;
        self.pipeline_free_cycle = free_cycle;
        self.last_admit = last_admit;
        sums.admitted += admitted;
        sums.busy += busy;
        sums.wait += wait;
        sums.high = high;
        (run_bytes, latest, refused)
    }

    /// Queues the pipeline's output for a frame admitted at `admit`, then decides and
    /// releases what can be — or, with `may_defer` and every frame of the packet leaving by
    /// the one port already active, leaves that to a later packet or to
    /// [`Scheduler::catch_up`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn dispatch(
        &mut self,
        packet: u64,
        ingress_port: Port,
        ingress: u64,
        admit: u64,
        primary: Option<OutFrame>,
        copies: &mut Two<OutFrame>,
        sessions: &Sessions,
        may_defer: bool,
    ) {
        // The ingress port's index once for the packet's frames.
        let ingress_index = ingress_port.index() as u8;
        // Copies fill `copies` in order: no second without a first.
        let (first, second) = copies.take_both();
        let defer = may_defer
            && self.keeps_one_port_active([primary.as_ref(), first.as_ref(), second.as_ref()]);
        if !defer {
            self.catch_up();
        }
        if let Some(frame) = primary {
            let beats = self.beats(frame.len());
            // A redirected frame is built by the mirror engine (shadow map, encapsulation)
            // and then queued as production.
            let ready = if frame.session().is_some() {
                let write = (admit + self.mirror_latency).max(self.mirror_output_free);
                self.mirror_output_free = write + beats * self.cycle;
                self.mirror_output_free
            } else {
                let write = (admit + self.primary_latency).max(self.output_free);
                self.output_free = write + beats * self.cycle;
                self.output_free
            };
            self.enqueue_primary(packet, ingress_port, ingress_index, ingress, ready, frame);
        }
        if let Some(first) = first {
            self.queue_copy(
                packet,
                ingress_port,
                ingress_index,
                ingress,
                admit,
                first,
                sessions,
            );
            if let Some(frame) = second {
                self.queue_copy(
                    packet,
                    ingress_port,
                    ingress_index,
                    ingress,
                    admit,
                    frame,
                    sessions,
                );
            }
        }
        // The packet admitted last when it is dispatched (its batch may have been admitted
        // ahead of its decisions).
        self.last_admit = admit;
        if defer {
            self.deferred_admit = Some(admit);
        } else {
            self.advance(admit + self.lookahead, admit);
        }
    }

    /// A copy from the pipeline's output for a frame admitted at `admit`: policed, then
    /// queued at its port's mirror queue's door (or dropped).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn queue_copy(
        &mut self,
        packet: u64,
        ingress_port: Port,
        ingress_index: u8,
        ingress: u64,
        admit: u64,
        frame: OutFrame,
        sessions: &Sessions,
    ) {
        let len = frame.len();
        let beats = self.beats(len);
        let write = (admit + self.mirror_latency).max(self.mirror_output_free);
        let ready = write + beats * self.cycle;
        self.mirror_output_free = ready;
        let session = frame.session().unwrap_or(0);
        let cfg = sessions.get(session);
        let drop = |reason| LateDrop {
            packet,
            ingress_port,
            copy: frame.copy(),
            session: frame.session(),
            port: frame.port(),
            at_ps: ready,
            reason,
            len,
            buf: frame.buf(),
        };
        // An unpoliced session (rate 0) conforms without its policer being looked up.
        if cfg.policer_mbps != 0
            && !self.policers[session as usize].conform(
                cfg.policer_mbps,
                cfg.policer_burst,
                ready,
                len,
            )
        {
            self.drops.push(drop(DropReason::MirrorPoliced));
            return;
        }
        let p = frame.port_index();
        let e = &mut self.ports[p];
        let wire = self.timing.wire_bytes(len as u32) as u64 * e.byte_ps;
        if wire > self.mirror_max_wire {
            self.drops.push(drop(DropReason::MirrorOversize));
            return;
        }
        let slot = self
            .in_flight
            .insert(packet, ingress_index, ingress, ready, 0, frame, wire);
        e.copies.push_back(PendingCopy {
            ready,
            wire,
            len: len as u32,
            slot,
        });
        e.activate(p, &mut self.active);
    }

    /// Whether every frame of a packet leaves by the one port already active (by one port,
    /// with none active): then deciding and releasing can wait (see
    /// [`Scheduler::catch_up`]). A frame the scheduler will drop counts too: the answer may
    /// be no when waiting was possible, never the other way round.
    #[inline(always)]
    fn keeps_one_port_active(&self, frames: [Option<&OutFrame>; 3]) -> bool {
        let mut port = match self.active.as_slice() {
            [] => None,
            [p] => Some(*p),
            _ => return false,
        };
        let mut by_port = |frame: &OutFrame| {
            let q = frame.port_index();
            *port.get_or_insert(q) == q
        };
        frames.into_iter().all(|f| f.is_none_or(&mut by_port))
    }

    /// Decides and releases what dispatching would have by now if it had not been deferred.
    /// With one port active, one advance to the horizon of the last packet dispatched
    /// decides exactly what advancing after every packet would have: a decision uses only
    /// production frames ready before its horizon, and a later packet's frames are ready no
    /// earlier than that horizon. The port's transmissions are released in start order
    /// either way, and with no other port active none interleave with them.
    pub fn catch_up(&mut self) {
        if let Some(last_admit) = self.deferred_admit.take() {
            self.advance(last_admit + self.lookahead, last_admit);
        }
    }

    #[inline(always)]
    fn enqueue_primary(
        &mut self,
        packet: u64,
        ingress_port: Port,
        ingress_index: u8,
        ingress: u64,
        ready: u64,
        frame: OutFrame,
    ) {
        let p = frame.port_index();
        let len = frame.len();
        let cap = self.timing.primary_queue_bytes as u64;
        let e = &mut self.ports[p];
        let wire = self.timing.wire_bytes(len as u32) as u64 * e.byte_ps;
        while let Some(w) = e.production.pop_front_if(WAITING, |w| w.start <= ready) {
            e.primary_waiting_bytes -= w.len as u64;
        }
        if e.primary_waiting_bytes + len as u64 > cap {
            self.drops.push(LateDrop {
                packet,
                ingress_port,
                copy: 0,
                session: frame.session(),
                port: frame.port(),
                at_ps: ready,
                reason: DropReason::PrimaryQueueFull,
                len,
                buf: frame.buf(),
            });
            return;
        }
        let start = ready.max(e.primary_free);
        let end = start + wire;
        e.primary_free = end;
        e.primary_waiting_bytes += len as u64;
        let slot = self
            .in_flight
            .insert(packet, ingress_index, ingress, ready, start, frame, wire);
        self.seq += 1;
        debug_assert!(
            e.production
                .back(RELEASE)
                .is_none_or(|b| (b.start, b.seq) < (start, self.seq))
        );
        e.production.push_back(Produced {
            start,
            end,
            seq: self.seq,
            len: len as u32,
            slot,
        });
        e.activate(p, &mut self.active);
    }

    /// Decides what can be decided with every production frame ready before `horizon`
    /// known (the horizon of the packet admitted at `last_admit`, or the end of the run),
    /// and releases transmissions nothing can precede any more.
    fn advance(&mut self, horizon: u64, last_admit: u64) {
        let mut i = 0;
        while i < self.active.len() {
            let p = self.active[i];
            if horizon < self.ports[p].wake {
                i += 1;
                continue;
            }
            self.advance_port(p, horizon, last_admit);
            let e = &mut self.ports[p];
            if e.nothing_to_release() && !e.mirror_pending() {
                e.active = false;
                self.active.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn advance_port(&mut self, p: usize, horizon: u64, last_admit: u64) {
        let cycle = self.cycle;
        let per_cycle = self.per_cycle;
        let mirror_cap = self.timing.mirror_queue_bytes as u64;
        let copy_bound = last_admit + self.mirror_latency;
        let frames = &mut self.in_flight;
        let e = &mut self.ports[p];
        loop {
            // Decide every queued copy whose place on the wire is known by now.
            e.head_lb = None;
            while let Some(&c) = e.queue_head() {
                if c.slot == REFUSED {
                    e.copies.drop_front();
                    e.queued -= 1;
                    continue;
                }
                // A copy is ready on a cycle edge (admission, the mirror engine's latency and
                // its beats are whole cycles): only the end of the previous copy needs
                // rounding up to one.
                debug_assert!(c.ready.is_multiple_of(cycle));
                let s0 = if c.ready >= e.mirror_free {
                    c.ready
                } else {
                    per_cycle.div_ceil(e.mirror_free) * cycle
                };
                let s = e.earliest_gap(s0, c.wire, per_cycle);
                if s.saturating_add(c.wire) > horizon {
                    e.head_lb = Some(s);
                    break;
                }
                e.copies.drop_front();
                e.queued -= 1;
                e.queue_bytes -= c.len as u64;
                e.mirror_free = s + c.wire;
                e.started_bytes += c.len as u64;
                frames.slot_mut(c.slot).dep.start_ps = s;
                self.seq += 1;
                debug_assert!(
                    e.decided
                        .back(COPY_RELEASE)
                        .is_none_or(|b| (b.start, b.seq) < (s, self.seq))
                );
                e.decided.push_back(Decided {
                    start: s,
                    seq: self.seq,
                    len: c.len,
                    slot: c.slot,
                });
            }
            // Admit arrivals while it is known which queued copies have started by then: an
            // undecided head that could start before an arrival blocks it.
            let had_head = e.queued > 0;
            while let Some(&a) = e.copies.get(e.queued) {
                let r = a.ready;
                if e.head_lb.is_some_and(|lb| lb <= r) {
                    break;
                }
                while let Some(d) = e.decided.pop_front_if(STARTED, |d| d.start <= r) {
                    e.started_bytes -= d.len as u64;
                }
                let len = a.len as u64;
                if e.started_bytes + e.queue_bytes + len > mirror_cap {
                    let dep = frames.departure(a.slot);
                    self.drops.push(LateDrop {
                        packet: dep.packet,
                        ingress_port: dep.ingress_port(),
                        copy: dep.frame.copy(),
                        session: dep.frame.session(),
                        port: dep.frame.port(),
                        at_ps: r,
                        reason: DropReason::MirrorQueueFull,
                        len: len as usize,
                        buf: frames.remove(a.slot),
                    });
                    if e.queued == 0 {
                        e.copies.drop_front();
                    } else if let Some(mark) = e.copies.get_mut(e.queued) {
                        *mark = PendingCopy {
                            slot: REFUSED,
                            ..PendingCopy::default()
                        };
                        e.queued += 1;
                    }
                } else {
                    e.queue_bytes += len;
                    e.queued += 1;
                    // Admitted into an empty queue: an undecided head, to be decided before
                    // any arrival behind it (it may have started by then).
                    if !had_head {
                        break;
                    }
                }
            }
            // A copy admitted into an empty queue is a new head to decide.
            if had_head || e.queued == 0 {
                break;
            }
        }
        if !e.mirror_pending() {
            // Copies not yet made cannot start before `copy_bound`.
            let keep_from = e.mirror_free.max(copy_bound);
            while e
                .production
                .pop_front_if(INTERVALS, |i| i.end <= keep_from)
                .is_some()
            {}
        }
        // Nothing undecided can start before the watermark: release everything earlier.
        let mut watermark = horizon;
        if let Some(head) = e.queue_head() {
            // The head will start at or after its lower bound (unknown production frames
            // can only push it later).
            watermark = watermark.min(e.head_lb.unwrap_or(head.ready));
        }
        if let Some(a) = e.copies.get(e.queued) {
            watermark = watermark.min(a.ready);
        }
        // Release in `first_to_release`'s (start, seq) order, with the two cursors in locals
        // (see `Ring::cursor`): each push to `released` would otherwise reload both rings'
        // fields. The merge is written out here rather than shared with `first_to_release`
        // through a function over the two fronts: that measured 323 instructions per packet
        // in `advance` against 284.
        let mut production = e.production.cursor(RELEASE);
        let mut decided = e.decided.cursor(COPY_RELEASE);
        loop {
            let slot = match (production.front(), decided.front()) {
                (Some(p), Some(c)) if (c.start, c.seq) < (p.start, p.seq) => {
                    if c.start >= watermark {
                        break;
                    }
                    decided.drop_front();
                    c.slot
                }
                (Some(p), _) => {
                    if p.start >= watermark {
                        break;
                    }
                    production.drop_front();
                    p.slot
                }
                (None, Some(c)) => {
                    if c.start >= watermark {
                        break;
                    }
                    decided.drop_front();
                    c.slot
                }
                (None, None) => break,
            };
            self.released.push(slot);
        }
        let (production, decided) = (production.head(), decided.head());
        e.production.set_head(RELEASE, production);
        e.decided.set_head(COPY_RELEASE, decided);
        // The next horizon at which this port can progress: the undecided head's earliest
        // end (its decision also unblocks the arrivals behind it), or passing the first
        // transmission still held back.
        let mut wake = u64::MAX;
        if let Some(head) = e.queue_head() {
            wake = e.head_lb.unwrap_or(head.ready).saturating_add(head.wire);
        }
        if let Some((start, _, _)) = e.first_to_release() {
            wake = wake.min(start + 1);
        }
        e.wake = wake;
    }

    /// Ends the run: decides and releases everything still queued.
    pub fn finish(&mut self) {
        self.deferred_admit = None;
        self.advance(u64::MAX, self.last_admit);
    }

    /// End of the last transmission decided so far, over every port (ps).
    pub fn last_tx_end(&self) -> u64 {
        self.ports
            .iter()
            .map(|e| e.primary_free.max(e.mirror_free))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::CycleDiv;

    /// Dividends around multiples of `c` and powers of two, and a spread of others.
    fn dividends(c: u64) -> Vec<u64> {
        let mut xs = vec![
            0,
            1,
            2,
            c - 1,
            c,
            c.saturating_add(1),
            u64::MAX,
            u64::MAX - 1,
            (1 << 63) - 1,
        ];
        xs.extend([1u64 << 63, (1 << 63) + 1]);
        for b in 0..64 {
            let p = 1u64 << b;
            xs.extend([p - 1, p, p + 1]);
            // The multiples of c next to 2^b.
            let q = p / c;
            for k in q.saturating_sub(2)..q.saturating_add(3) {
                let m = k.saturating_mul(c);
                xs.extend([m.saturating_sub(1), m, m.saturating_add(1)]);
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            xs.extend([x, x >> 1, x >> 17, x >> 33, x % (c.saturating_mul(1 << 20))]);
        }
        xs
    }

    #[test]
    fn division_by_the_cycle_is_exact() {
        let mut cycles = vec![1u64, 2, 3, 5, 7, 10, 1000, 3999, 4000, 4001, 4096, 6400];
        cycles.extend([
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 1,
            1 << 40,
            (1 << 40) + 3,
        ]);
        cycles.extend([
            (1 << 63) - 1,
            1 << 63,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ]);
        for c in cycles {
            let d = CycleDiv::new(c);
            for x in dividends(c) {
                assert_eq!(d.div(x), x / c, "{x} / {c}");
                assert_eq!(d.div_ceil(x), x.div_ceil(c), "{x} div_ceil {c}");
            }
        }
    }
}
