//! The simulated NIC: its registers (watched in the shared-memory BAR), its command
//! interfaces, and the data path and timing behind its ports.
//!
//! The host changes the device only through registers: it stages operands and writes a
//! command register with a new sequence tag. [`NicModel::service`] notices every command whose
//! tag differs from the block's `STATUS.SEQ`, performs it whole, and publishes the tag with
//! the result — between two packets, so no packet sees half a command.

use std::{
    io::Write,
    sync::atomic::{Ordering, fence},
};

use shadownet_hw::{
    DeviceView, NUM_SESSIONS, Port,
    counters::{self, PortCounter, SessionCounter, TableCounter},
    device_regs::{
        counters::cmd::CounterOp,
        ctrl::cmd::CtrlOp,
        mirror::cmd::SessionOp,
        tbl_cmd::{cmd::TableOp, status::CmdResult},
    },
    drop::DropReason,
    layout::{WINDOW_WORDS, session},
    table::TableId,
    timing::{Timing, TimingError},
};

use shadownet_firmware::{ChangeCounter, Firmware, TelemetrySource, sketch::FlowSample};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::{
    bar::{BarError, SharedBar},
    datapath::{Datapath, FastCounts, Plan, Queue, ReadAhead, Route, Two},
    dma::{DmaEngine, DmaSpace},
    sched::{AdmitSums, Departure, LateDrop, NOT_ADMITTED, Scheduler},
    stats::{Class, RunStats, Tally},
    trace::{Event, Record, Stage, TraceWriter},
};

/// Build id the model reports in `ID.BUILD_ID`: the contract's major version in the high 16
/// bits and the model's revision in the low 16, bumped when the model's behaviour changes
/// (revision 2: redirected frames timed through the mirror engine; redirects counted once
/// built; revision 3: the firmware crate runs as the embedded cores — command ring,
/// mailbox, a replaced exact-table entry moves to a free slot of its buckets; revision 4:
/// the telemetry ring — the firmware exports counters, heavy hitters and aged rules, fed by
/// flow samples the data path leaves while the ring is enabled).
pub const MODEL_BUILD_ID: u32 = 0x0001_0004;

/// Flow samples the data path's sample buffer holds; when it is full the cores count them
/// into the sketch before the next packet (they run beside the pipeline and keep up).
pub const SAMPLE_BUFFER: usize = 256;

/// Error creating the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The timing description is unusable.
    #[error("timing: {0}")]
    Timing(#[from] TimingError),
    /// The BAR could not be mapped.
    #[error(transparent)]
    Bar(#[from] BarError),
    /// The flash could not be set up.
    #[error(transparent)]
    Flash(#[from] crate::flash::FlashStateError),
}

/// A frame fully received on a port at a time.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    /// The port.
    pub port: Port,
    /// The frame.
    pub frame: &'a [u8],
    /// When its last byte arrived (ps).
    pub at_ps: u64,
}

/// What the model counts and traces of a departure: its fields but the bytes.
struct Transmitted {
    packet: u64,
    ingress_port: Port,
    ingress_ps: u64,
    ready_ps: u64,
    start_ps: u64,
    wire_ps: u64,
    port: Port,
    queue: Queue,
    session: Option<u16>,
    copy: u8,
    len: usize,
}

impl Transmitted {
    fn of(dep: &Departure, wire_ps: u64) -> Transmitted {
        let f = &dep.frame;
        Transmitted {
            packet: dep.packet,
            ingress_port: dep.ingress_port(),
            ingress_ps: dep.ingress_ps,
            ready_ps: dep.ready_ps,
            start_ps: dep.start_ps,
            wire_ps,
            port: f.port(),
            queue: f.queue(),
            session: f.session(),
            copy: f.copy(),
            len: f.len(),
        }
    }
}

/// Receives the frames the NIC transmits.
pub trait Sink {
    /// A frame, `bytes`, starts leaving its port (`departure.frame.port()`) at
    /// `departure.start_ps`. The bytes live in the model's frame arena: a sink that keeps them
    /// copies them.
    fn transmit(&mut self, departure: &Departure, bytes: &[u8]);
}

/// A sink that only counts (the counters already do).
pub struct Discard;

impl Sink for Discard {
    fn transmit(&mut self, _: &Departure, _: &[u8]) {}
}

/// The simulated NIC.
pub struct NicModel {
    bar: std::sync::Arc<SharedBar>,
    timing: Timing,
    /// Tables, sessions, configuration and counters.
    pub dp: Datapath,
    sched: Scheduler,
    stats: RunStats,
    packets: u64,
    events: Vec<Event>,
    trace: Option<TraceWriter<Box<dyn Write + Send>>>,
    trace_error: Option<std::io::Error>,
    reset_count: u32,
    /// Per frame of the batch being received that takes the general path: what the
    /// read-ahead found.
    read_ahead: Vec<ReadAhead>,
    /// Per frame of the batch being received: the fast lane's plan.
    plans: Vec<Plan>,
    /// Per frame of the batch being received: its admission.
    admits: Vec<u64>,
    /// Common frames take the fast lane (see `datapath::fast`); off, every frame takes the
    /// general path.
    fast_lane: bool,
    /// The flash and its FLASH register block.
    flash: crate::flash::FlashDevice,
    /// The embedded cores.
    firmware: Firmware,
    /// Cycles the cores have used.
    fw_cycles: u64,
    /// The cores' DMA engine.
    dma: DmaEngine,
    /// Where the command ring's interrupt goes.
    cmd_ring_irq: Option<EventFd>,
    /// Where the telemetry ring's interrupt goes.
    telemetry_irq: Option<EventFd>,
    /// The data path leaves a flow sample per packet (the telemetry ring is enabled).
    sampling: bool,
    /// The sample buffer between the data path and the cores.
    samples: Vec<FlowSample>,
}

/// The counter memory and the sample buffer, as the firmware's telemetry producer reads them.
struct CoreView<'a> {
    counters: &'a crate::counters::Counters,
    samples: &'a mut Vec<FlowSample>,
    taken: usize,
}

impl TelemetrySource for CoreView<'_> {
    fn counter(&self, id: counters::CounterId) -> u64 {
        self.counters.get(id)
    }

    fn next_sample(&mut self) -> Option<FlowSample> {
        let s = self.samples.get(self.taken).copied();
        match s {
            Some(_) => self.taken += 1,
            None => self.samples.clear(),
        }
        s
    }
}

/// Table WRITE/DELETE counts of one slice (writes, deletes by table), added to the counters
/// after it: the telemetry producer reads the counters during the slice.
#[derive(Default)]
struct TableChanges([[u64; 2]; TableId::ALL.len()]);

impl ChangeCounter for TableChanges {
    fn changed(&mut self, table: TableId, op: TableOp) {
        let kind = usize::from(op == TableOp::Delete);
        self.0[table as usize][kind] += 1;
    }
}

impl TableChanges {
    fn apply(&self, c: &mut crate::counters::Counters) {
        for tid in TableId::ALL {
            let [w, d] = self.0[tid as usize];
            if w > 0 {
                c.add(counters::table(tid, TableCounter::Writes), w);
            }
            if d > 0 {
                c.add(counters::table(tid, TableCounter::Deletes), d);
            }
        }
    }
}

impl NicModel {
    /// Powers on a NIC with an anonymous BAR.
    pub fn new(timing: Timing) -> Result<NicModel, ModelError> {
        NicModel::with_bar(timing, SharedBar::anonymous()?)
    }

    /// Powers on a NIC on the given BAR memory. The flash persists in `<BAR file>.flash` when
    /// the BAR is a file, else in memory (erased at first).
    pub fn with_bar(timing: Timing, bar: SharedBar) -> Result<NicModel, ModelError> {
        let flash = crate::flash::Flash::beside_bar(bar.path())?;
        NicModel::with_flash(timing, bar, flash)
    }

    /// Powers on a NIC on the given BAR memory with the given flash (its boot ROM runs).
    pub fn with_flash(
        timing: Timing,
        bar: SharedBar,
        flash: crate::flash::Flash,
    ) -> Result<NicModel, ModelError> {
        timing.validate()?;
        let mut m = NicModel {
            bar: std::sync::Arc::new(bar),
            timing,
            dp: Datapath::new(),
            sched: Scheduler::new(timing),
            stats: RunStats::default(),
            packets: 0,
            events: Vec::new(),
            trace: None,
            trace_error: None,
            reset_count: 0,
            read_ahead: Vec::new(),
            plans: Vec::new(),
            admits: Vec::new(),
            fast_lane: true,
            flash: crate::flash::FlashDevice::new(flash),
            firmware: Firmware::new(),
            fw_cycles: 0,
            dma: DmaEngine::new(DmaSpace::default()),
            cmd_ring_irq: None,
            telemetry_irq: None,
            sampling: false,
            samples: Vec::with_capacity(SAMPLE_BUFFER),
        };
        m.power_on();
        Ok(m)
    }

    /// Lets common frames of a batch take the fast lane (the default) or sends every frame
    /// down the general path: both decide the same, byte for byte and counter for counter
    /// (the switch is for comparing them).
    pub fn set_fast_lane(&mut self, on: bool) {
        self.fast_lane = on;
    }

    /// The BAR the host maps (shared with the model).
    pub fn bar(&self) -> std::sync::Arc<SharedBar> {
        self.bar.clone()
    }

    /// The flash behind the FLASH block (to schedule a power cut, or take it out).
    pub fn flash(&mut self) -> &mut crate::flash::FlashDevice {
        &mut self.flash
    }

    /// Takes the flash out of a model that is being switched off.
    pub fn into_flash(self) -> crate::flash::Flash {
        self.flash.into_flash()
    }

    /// The timing the model runs with.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Run statistics (latencies, first and last events).
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// Writes a JSON-lines trace of every packet event to `out` (when `CTRL.CONFIG.TRACE` is
    /// also set by the host, or `force` is true).
    pub fn set_trace(&mut self, out: Box<dyn Write + Send>, force: bool) {
        self.trace = Some(TraceWriter::new(out));
        if force {
            self.dp.config.trace = true;
        }
    }

    /// Flushes the trace and reports the first write error, if any.
    pub fn finish_trace(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.trace_error.take() {
            return Err(e);
        }
        if let Some(t) = self.trace.take() {
            t.into_inner()?;
        }
        Ok(())
    }

    fn power_on(&mut self) {
        let regs = self.bar.device_view();
        write_reset_values(&regs, &self.timing);
        self.flash.power_on(&regs);
        self.firmware.boot(&regs);
        regs.ctrl().status().write(|w| w.ready().set_bit());
    }

    fn reset(&mut self) {
        self.dp.tables.clear_all();
        self.dp.sessions = Default::default();
        self.dp.counters.clear();
        self.dp.config = crate::config::RunningConfig::RESET;
        self.sched = Scheduler::new(self.timing);
        // The frames in the old scheduler's queues are gone with it.
        self.dp.frames.clear();
        self.reset_count += 1;
        let regs = self.bar.device_view();
        // The host's RESET command and its completion survive the reset.
        let cmd = regs.ctrl().cmd().read().bits();
        write_reset_values(&regs, &self.timing);
        self.flash.reset(&regs);
        // The cores reboot: the rings are forgotten (their registers are back at reset values).
        self.firmware.boot(&regs);
        self.sampling = false;
        self.samples.clear();
        regs.ctrl().cmd().write(|w| w.set(cmd));
        regs.ctrl().reset_count().write(|w| w.set(self.reset_count));
    }

    /// Performs every command the host has posted. Returns whether there was one.
    pub fn service(&mut self) -> bool {
        let mut any = false;
        any |= self.service_ctrl();
        any |= self.service_firmware();
        any |= self.service_sessions();
        any |= self.service_counters();
        any |= self.flash.service(&self.bar.device_view());
        any
    }

    fn service_ctrl(&mut self) -> bool {
        let regs = self.bar.device_view();
        let cmd = regs.ctrl().cmd().read();
        let seq = cmd.seq().bits();
        if seq == regs.ctrl().status().read().seq().bits() {
            return false;
        }
        fence(Ordering::Acquire);
        let result = match cmd.op().variant() {
            Some(CtrlOp::Nop) => CmdResult::Ok,
            Some(CtrlOp::Reset) => {
                self.reset();
                CmdResult::Ok
            }
            Some(CtrlOp::ApplyConfig) => {
                let regs = self.bar.device_view();
                self.dp.config = crate::config::RunningConfig::latch(&regs);
                CmdResult::Ok
            }
            None => CmdResult::BadOp,
        };
        let regs = self.bar.device_view();
        fence(Ordering::Release);
        regs.ctrl().status().write(|w| {
            w.ready()
                .set_bit()
                .result()
                .set(result as u8)
                .seq()
                .set(seq)
        });
        true
    }

    /// One slice of the embedded cores: the firmware performs a pending TBL_CMD command,
    /// drains up to `CMD_RING.BATCH_MAX` ring descriptors and answers the mailbox; the model
    /// charges its cycles and delivers the ring's interrupt.
    fn service_firmware(&mut self) -> bool {
        let regs = self.bar.device_view();
        // The device clock the firmware ages rules by: the cycle of the latest simulated event.
        let now = self.stats.last_event_ps / self.sched.cycle_ps();
        let f = regs.fw_mailbox();
        f.now_lo().write(|w| w.set(now as u32));
        f.now_hi().write(|w| w.set((now >> 32) as u32));
        let mut counter = TableChanges::default();
        let mut view = CoreView {
            counters: &self.dp.counters,
            samples: &mut self.samples,
            taken: 0,
        };
        let slice = self.firmware.service(
            &regs,
            &mut self.dp.tables,
            &mut self.dma,
            &mut counter,
            &mut view,
        );
        counter.apply(&mut self.dp.counters);
        self.sampling = self.firmware.telemetry().enabled();
        self.fw_cycles += slice.cycles;
        if slice.telemetry.interrupt
            && let Some(irq) = &self.telemetry_irq
        {
            // As for the command ring: a lost wake-up only delays a host that polls memory.
            let _ = irq.write(1);
        }
        if slice.ring.interrupt
            && let Some(irq) = &self.cmd_ring_irq
        {
            // A full counter (2^64 - 2 unread interrupts) cannot happen in a run; a failed
            // write would only lose a wake-up, and the host polls memory anyway.
            let _ = irq.write(1);
        }
        slice.any()
    }

    /// Cycles the embedded cores have used since power-on.
    pub fn firmware_cycles(&self) -> u64 {
        self.fw_cycles
    }

    /// The firmware's work counters.
    pub fn firmware_stats(&self) -> shadownet_firmware::Stats {
        self.firmware.stats()
    }

    /// The device's DMA address space: the host maps its ring memory here.
    pub fn dma_space(&self) -> &DmaSpace {
        self.dma.space()
    }

    /// An eventfd the command ring's interrupt is written to (created on first use; every
    /// call returns a new descriptor of the same eventfd).
    pub fn cmd_ring_eventfd(&mut self) -> std::io::Result<EventFd> {
        if self.cmd_ring_irq.is_none() {
            self.cmd_ring_irq = Some(EventFd::new(EFD_NONBLOCK)?);
        }
        match &self.cmd_ring_irq {
            Some(e) => e.try_clone(),
            None => Err(std::io::Error::other("eventfd vanished")),
        }
    }

    /// An eventfd the telemetry ring's interrupt is written to (created on first use; every
    /// call returns a new descriptor of the same eventfd).
    pub fn telemetry_eventfd(&mut self) -> std::io::Result<EventFd> {
        if self.telemetry_irq.is_none() {
            self.telemetry_irq = Some(EventFd::new(EFD_NONBLOCK)?);
        }
        match &self.telemetry_irq {
            Some(e) => e.try_clone(),
            None => Err(std::io::Error::other("eventfd vanished")),
        }
    }

    /// Leaves a packet's flow sample for the cores (only while the telemetry ring is
    /// enabled); a full buffer is counted into the sketch at once.
    #[inline]
    fn sample(&mut self, ahead: &ReadAhead, len: usize) {
        let Some(flow) = ahead.flow() else { return };
        self.samples.push(FlowSample {
            flow,
            len: len as u32,
        });
        if self.samples.len() >= SAMPLE_BUFFER {
            let mut view = CoreView {
                counters: &self.dp.counters,
                samples: &mut self.samples,
                taken: 0,
            };
            self.fw_cycles += self.firmware.absorb_samples(&mut view);
        }
    }

    fn service_sessions(&mut self) -> bool {
        let regs = self.bar.device_view();
        let m = regs.mirror();
        let cmd = m.cmd().read();
        let seq = cmd.seq().bits();
        if seq == m.status().read().seq().bits() {
            return false;
        }
        fence(Ordering::Acquire);
        let index = m.session().read().bits();
        let op = cmd.op().variant();
        let result = if op == Some(SessionOp::Nop) {
            CmdResult::Ok
        } else if index as usize >= NUM_SESSIONS {
            CmdResult::BadIndex
        } else {
            let s = index as u16;
            match op {
                Some(SessionOp::Nop) => CmdResult::Ok,
                Some(SessionOp::Commit) => {
                    let mut words = [0u32; session::WORDS];
                    for (i, w) in words.iter_mut().enumerate() {
                        *w = m.stage(i).read().bits();
                    }
                    let bytes: [u8; session::LEN] = shadownet_hw::layout::words_to_bytes(&words);
                    match session::MirrorSession::parse(&bytes) {
                        Ok(cfg) => {
                            self.dp.sessions.commit(s, cfg);
                            self.sched.reset_policer(s);
                            CmdResult::Ok
                        }
                        Err(_) => CmdResult::BadEntry,
                    }
                }
                Some(SessionOp::Fetch) => {
                    let mut bytes = [0u8; session::LEN];
                    self.dp.sessions.get(s).emit(&mut bytes);
                    let words: [u32; session::WORDS] = shadownet_hw::layout::bytes_to_words(&bytes);
                    for (i, w) in words.iter().enumerate() {
                        m.fetched(i).write(|r| r.set(*w));
                    }
                    CmdResult::Ok
                }
                Some(SessionOp::Disable) => {
                    self.dp.sessions.disable(s);
                    self.sched.reset_policer(s);
                    CmdResult::Ok
                }
                None => CmdResult::BadOp,
            }
        };
        fence(Ordering::Release);
        m.status()
            .write(|w| w.result().set(result as u8).seq().set(seq));
        true
    }

    fn service_counters(&mut self) -> bool {
        let regs = self.bar.device_view();
        let c = regs.counters();
        let cmd = c.cmd().read();
        let seq = cmd.seq().bits();
        if seq == c.status().read().seq().bits() {
            return false;
        }
        fence(Ordering::Acquire);
        let result = match cmd.op().variant() {
            Some(CounterOp::Nop) => CmdResult::Ok,
            Some(CounterOp::Snapshot) => {
                for (i, &v) in self.dp.counters.values().iter().enumerate() {
                    c.counter(i).lo().write(|w| w.set(v as u32));
                    c.counter(i).hi().write(|w| w.set((v >> 32) as u32));
                }
                let cycle = self.stats.last_event_ps / self.sched.cycle_ps();
                c.snapshot_cycle_lo().write(|w| w.set(cycle as u32));
                c.snapshot_cycle_hi().write(|w| w.set((cycle >> 32) as u32));
                CmdResult::Ok
            }
            Some(CounterOp::Clear) => {
                self.dp.counters.clear();
                CmdResult::Ok
            }
            None => CmdResult::BadOp,
        };
        fence(Ordering::Release);
        c.status()
            .write(|w| w.result().set(result as u8).seq().set(seq));
        true
    }

    /// A frame that the port could not present as Ethernet: counted as received and dropped.
    pub fn receive_unsupported(&mut self, port: Port, len: usize, arrival_ps: u64) {
        let packet = self.next_packet(arrival_ps);
        self.dp
            .counters
            .port(port, PortCounter::RxPackets, PortCounter::RxBytes, len);
        self.drop_frame(
            packet,
            0,
            None,
            port,
            arrival_ps,
            DropReason::UnsupportedLinkType,
            len,
        );
    }

    fn next_packet(&mut self, arrival_ps: u64) -> u64 {
        let id = self.packets;
        self.packets += 1;
        self.stats.saw(arrival_ps);
        id
    }

    /// A frame fully received on `port` at `arrival_ps` (arrivals must come in time order).
    pub fn receive(&mut self, port: Port, frame: &[u8], arrival_ps: u64, sink: &mut dyn Sink) {
        let mut ahead = ReadAhead::default();
        self.dp.read_ahead(port, frame, None, &mut ahead);
        self.receive_read_ahead(port, frame, arrival_ps, &ahead, false, sink);
    }

    /// A frame received, with what the read-ahead found. With `in_batch`, the scheduler may
    /// defer deciding and releasing to a later frame of the batch (when that changes
    /// nothing, see `Scheduler::catch_up`); the batch catches up at its end.
    fn receive_read_ahead(
        &mut self,
        port: Port,
        frame: &[u8],
        arrival_ps: u64,
        ahead: &ReadAhead,
        in_batch: bool,
        sink: &mut dyn Sink,
    ) {
        let packet = self.next_packet(arrival_ps);
        let len = frame.len();
        self.dp
            .counters
            .port(port, PortCounter::RxPackets, PortCounter::RxBytes, len);
        if self.sampling {
            self.sample(ahead, len);
        }
        let tracing = self.trace.is_some() && self.dp.config.trace;
        if tracing {
            self.trace_event(
                packet,
                0,
                arrival_ps,
                Some(port),
                &Event::stage(Stage::Rx),
                None,
                Some(len),
                None,
            );
        }
        let admit = match self
            .sched
            .admit(port, len, arrival_ps, &mut self.dp.counters)
        {
            Ok(a) => a,
            Err(reason) => {
                self.drop_frame(packet, 0, None, port, arrival_ps, reason, len);
                return;
            }
        };
        self.decide_general(
            packet, port, frame, arrival_ps, admit, ahead, in_batch, tracing, sink,
        );
    }

    /// The general path's decision for an admitted frame, and its dispatch.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decide_general(
        &mut self,
        packet: u64,
        port: Port,
        frame: &[u8],
        arrival_ps: u64,
        admit: u64,
        ahead: &ReadAhead,
        in_batch: bool,
        tracing: bool,
        sink: &mut dyn Sink,
    ) {
        let len = frame.len();
        self.events.clear();
        self.dp.admitted_ps = admit;
        let mut decision = self.dp.process(
            port,
            frame,
            ahead,
            if tracing {
                Some(&mut self.events)
            } else {
                None
            },
        );
        if tracing {
            self.trace_stages(packet, port, admit);
        }
        for cd in decision.copy_drops.iter() {
            self.dp
                .counters
                .session(cd.session, SessionCounter::Dropped, 1);
            self.drop_frame(
                packet,
                cd.copy,
                Some(cd.session),
                port,
                admit,
                cd.reason,
                len,
            );
        }
        let primary = match decision.primary {
            Ok(f) => Some(f),
            Err(reason) => {
                self.drop_frame(packet, 0, None, port, admit, reason, len);
                None
            }
        };
        self.sched.dispatch(
            packet,
            port,
            arrival_ps,
            admit,
            primary,
            &mut decision.copies,
            &self.dp.sessions,
            // The trace shows each packet's transmissions after its own events.
            in_batch && !tracing,
        );
        if self.sched.has_output() {
            self.drain(sink);
        }
    }

    /// Stage 3 of a batch (see [`NicModel::receive_batch_fast`]): every frame received and
    /// admitted, in one pass (admission depends only on arrival times and lengths): packet
    /// ids from the first one returned, receive counters in `counts`, each frame's admission
    /// in `admits` ([`NOT_ADMITTED`] for a receive FIFO overflow, counted here).
    #[inline(always)]
    fn admit_stage(
        &mut self,
        batch: &[Arrival<'_>],
        counts: &mut FastCounts,
        admits: &mut Vec<u64>,
    ) -> u64 {
        let first = self.packets;
        self.packets += batch.len() as u64;
        // Written in place (kept between batches): no capacity check per frame.
        admits.resize(batch.len(), NOT_ADMITTED);
        let mut sums = AdmitSums::default();
        let mut latest = 0;
        // Runs of frames from one port, each admitted in one pass; a refused frame's drop
        // is counted after its run (nothing in a run's admissions depends on it).
        let mut at = 0;
        while let Some(head) = batch.get(at) {
            let port = head.port;
            let n = batch[at..].iter().take_while(|a| a.port == port).count();
            let run = &batch[at..at + n];
            let index = port.index();
            let (bytes, run_latest, refused) = self.sched.admit_run(
                index,
                run.iter().map(|a| (a.frame.len(), a.at_ps)),
                &mut admits[at..at + n],
                &mut sums,
            );
            counts.received(port, index, n as u64, bytes, &mut self.dp.counters);
            latest = latest.max(run_latest);
            if refused {
                for (i, a) in run.iter().enumerate() {
                    if admits[at + i] == NOT_ADMITTED {
                        let reason = DropReason::RxFifoOverflow;
                        let packet = first + (at + i) as u64;
                        self.drop_frame(packet, 0, None, a.port, a.at_ps, reason, a.frame.len());
                    }
                }
            }
            at += n;
        }
        sums.flush(&mut self.dp.counters);
        if let Some(a) = batch.first() {
            self.stats.saw(a.at_ps);
            self.stats.saw(latest);
        }
        first
    }

    /// A fast-lane frame (see `datapath::fast`) admitted at `admit`: decided from its plan
    /// and dispatched — or decided by the general path when the lane declines it.
    #[inline(always)]
    fn receive_fast(
        &mut self,
        packet: u64,
        a: &Arrival<'_>,
        admit: u64,
        plan: &Plan,
        counts: &mut FastCounts,
        sink: &mut dyn Sink,
    ) {
        self.dp.admitted_ps = admit;
        let mut copies = Two::default();
        let Some(primary) = self.dp.decide_fast(plan, a.frame, counts, &mut copies) else {
            let mut late = ReadAhead::default();
            self.dp.read_ahead(a.port, a.frame, None, &mut late);
            self.dp.resolve(&mut late);
            self.decide_general(
                packet, a.port, a.frame, a.at_ps, admit, &late, true, false, sink,
            );
            return;
        };
        self.sched.dispatch(
            packet,
            a.port,
            a.at_ps,
            admit,
            Some(primary),
            &mut copies,
            &self.dp.sessions,
            true,
        );
        if self.sched.has_output() {
            self.drain(sink);
        }
    }

    /// Frames fully received, in time order: the same as [`NicModel::receive`] for each, but
    /// decided stage by stage over the batch. Common frames take the fast lane
    /// (`datapath::fast`: every frame planned, then every frame's look-ups made in one
    /// software-pipelined loop, then every frame admitted in one pass, then each admitted
    /// frame decided and dispatched in turn);
    /// the others, and every frame while tracing or flow sampling, take the general path,
    /// whose look-ups are also started ahead (see [`ReadAhead`]) so that cache misses overlap
    /// with work instead of following one another.
    pub fn receive_batch(&mut self, batch: &[Arrival<'_>], sink: &mut dyn Sink) {
        let tracing = self.trace.is_some() && self.dp.config.trace;
        if self.fast_lane && !tracing && !self.sampling && self.dp.begin_fast_batch() {
            self.receive_batch_fast(batch, sink);
        } else {
            self.receive_batch_general(batch, sink);
        }
    }

    /// [`NicModel::receive_batch`] with every frame on the general path: table memory is
    /// read while earlier frames are being processed (a software pipeline: tags of the frame
    /// `TAGS_AHEAD` places on, the slot of the one `SLOTS_AHEAD` places on).
    fn receive_batch_general(&mut self, batch: &[Arrival<'_>], sink: &mut dyn Sink) {
        const TAGS_AHEAD: usize = 16;
        const SLOTS_AHEAD: usize = 8;
        // Taken out of the model for the batch so that frames can be processed from it.
        let mut ahead = std::mem::take(&mut self.read_ahead);
        ahead.resize_with(batch.len(), ReadAhead::default);
        for (i, a) in batch.iter().enumerate() {
            let (done, todo) = ahead.split_at_mut(i);
            self.dp
                .read_ahead(a.port, a.frame, done.last(), &mut todo[0]);
        }
        let mut acc = 0u32;
        for read in ahead.iter().take(TAGS_AHEAD) {
            acc ^= self.dp.touch_tags(read);
        }
        for read in ahead.iter_mut().take(SLOTS_AHEAD) {
            self.dp.resolve(read);
        }
        for (i, a) in batch.iter().enumerate() {
            if let Some(read) = ahead.get(i + TAGS_AHEAD) {
                acc ^= self.dp.touch_tags(read);
            }
            if let Some(read) = ahead.get_mut(i + SLOTS_AHEAD) {
                self.dp.resolve(read);
            }
            self.receive_read_ahead(a.port, a.frame, a.at_ps, &ahead[i], true, sink);
        }
        std::hint::black_box(acc);
        self.sched.catch_up();
        self.drain(sink);
        self.read_ahead = ahead;
    }

    /// [`NicModel::receive_batch`] stage by stage: every frame's plan (the fast lane's, or
    /// the general path's read-ahead for the others), then every frame's look-ups
    /// (software-pipelined: the tags of the frame `AHEAD` places on are read while a frame's
    /// slots are), then every frame's admission (one pass: it depends only on arrival times
    /// and lengths), then each admitted frame in turn decided and dispatched (in arrival
    /// order: decisions share sampling counts, sequence numbers and the frame arena).
    /// Receive, pipeline and fast-lane counters are added once at the end.
    fn receive_batch_fast(&mut self, batch: &[Arrival<'_>], sink: &mut dyn Sink) {
        let mut ahead = std::mem::take(&mut self.read_ahead);
        let mut records = std::mem::take(&mut self.plans);
        // Each frame's plan is written by the plan stage (route first); the records stay
        // between batches.
        if records.len() < batch.len() {
            records.resize(batch.len(), Plan::GENERAL);
        }
        let plans = &mut records[..batch.len()];
        self.plan_stage(batch, plans, &mut ahead);
        self.probe_stage(plans, &mut ahead);
        let mut counts = FastCounts::default();
        let mut admits = std::mem::take(&mut self.admits);
        let first = self.admit_stage(batch, &mut counts, &mut admits);
        for (i, ((a, plan), &admit)) in batch.iter().zip(plans.iter()).zip(&admits).enumerate() {
            if admit == NOT_ADMITTED {
                continue;
            }
            let packet = first + i as u64;
            match plan.route {
                Route::Fast => self.receive_fast(packet, a, admit, plan, &mut counts, sink),
                Route::General(k) => self.decide_general(
                    packet,
                    a.port,
                    a.frame,
                    a.at_ps,
                    admit,
                    &ahead[k as usize],
                    true,
                    false,
                    sink,
                ),
                Route::Late => {
                    let mut late = ReadAhead::default();
                    self.dp.read_ahead(a.port, a.frame, None, &mut late);
                    self.dp.resolve(&mut late);
                    self.decide_general(
                        packet, a.port, a.frame, a.at_ps, admit, &late, true, false, sink,
                    );
                }
            }
        }
        self.admits = admits;
        counts.flush(&mut self.dp.counters);
        self.sched.catch_up();
        self.drain(sink);
        self.read_ahead = ahead;
        self.plans = records;
    }

    /// Stage 1 of a batch (see [`NicModel::receive_batch_fast`]): every frame's plan, or
    /// its read-ahead for the general path. A loop of its own: the stages' code kept apart
    /// compiles tighter than one loop body holding all of them.
    #[inline(never)]
    fn plan_stage(
        &mut self,
        batch: &[Arrival<'_>],
        plans: &mut [Plan],
        ahead: &mut Vec<ReadAhead>,
    ) {
        // Read-aheads are written in place (they are a few hundred bytes each) and kept
        // between batches.
        let mut general = 0usize;
        for (a, plan) in batch.iter().zip(plans.iter_mut()) {
            if self.dp.plan(a.port, a.frame, plan) {
                continue;
            }
            if ahead.len() <= general {
                ahead.push(ReadAhead::default());
            }
            let (done, todo) = ahead.split_at_mut(general);
            self.dp
                .read_ahead(a.port, a.frame, done.last(), &mut todo[0]);
            plan.route = Route::General(general as u32);
            general += 1;
        }
    }

    /// Stage 2 of a batch: every frame's look-ups, software-pipelined (the tags of the
    /// frame `AHEAD` places on are read while a frame's slots are).
    #[inline(never)]
    fn probe_stage(&self, plans: &mut [Plan], ahead: &mut [ReadAhead]) {
        const AHEAD: usize = 24;
        let mut acc = 0u32;
        let n = plans.len();
        let probes = self.dp.probes();
        for i in 0..n + AHEAD {
            if let Some(p) = plans.get_mut(i) {
                acc ^= match p.route {
                    Route::Fast => probes.touch(p),
                    Route::General(k) => self.dp.touch_tags(&ahead[k as usize]),
                    Route::Late => 0,
                };
            }
            if let Some(p) = i.checked_sub(AHEAD).and_then(|j| plans.get_mut(j)) {
                match p.route {
                    Route::Fast => probes.resolve(p),
                    Route::General(k) => self.dp.resolve(&mut ahead[k as usize]),
                    Route::Late => {}
                }
            }
        }
        std::hint::black_box(acc);
    }

    /// Ends a run: everything queued is transmitted (or dropped) and released to `sink`.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.sched.finish();
        self.drain(sink);
    }

    fn drain(&mut self, sink: &mut dyn Sink) {
        // By index: accounting borrows the model, the scheduler's lists are read in turn.
        for i in 0..self.sched.drops.len() {
            let d = self.sched.drops[i];
            self.late_drop(&d);
        }
        self.sched.drops.clear();
        if self.sched.released.is_empty() {
            return;
        }
        let tracing = self.trace.is_some() && self.dp.config.trace;
        if tracing {
            for i in 0..self.sched.released.len() {
                let slot = self.sched.released[i];
                let tx = Transmitted::of(
                    self.sched.in_flight.departure(slot),
                    self.sched.in_flight.wire_ps(slot),
                );
                self.depart(&tx, true);
                let dep = self.sched.in_flight.departure(slot);
                sink.transmit(dep, self.dp.frames.bytes(dep.frame.buf()));
                let buf = self.sched.in_flight.remove(slot);
                self.dp.frames.free(buf);
            }
        } else {
            // The same accounting as `depart`, read in place from the in-flight slot (the
            // fields of the model it touches are disjoint): no record is copied per frame, and
            // the run statistics' totals are summed in locals and added once.
            let per_cycle = self.sched.per_cycle();
            let sched = &mut self.sched;
            let counters = &mut self.dp.counters;
            let stats = &mut self.stats;
            let mut tally = Tally::default();
            for &slot in &sched.released {
                let (dep, wire) = sched.in_flight.take(slot);
                let f = &dep.frame;
                let len = f.len();
                let cycles = per_cycle.div(dep.start_ps - dep.ingress_ps);
                let end = dep.start_ps + wire;
                let port = f.port_index();
                if f.is_mirror() {
                    counters.port_index(
                        port,
                        PortCounter::TxMirrorPackets,
                        PortCounter::TxMirrorBytes,
                        len,
                    );
                    if let Some(s) = f.session() {
                        counters.session_len(
                            s,
                            SessionCounter::TxPackets,
                            SessionCounter::TxBytes,
                            len,
                        );
                    }
                    stats.tally_mirror(&mut tally, len, cycles, end);
                } else {
                    counters.port_index(port, PortCounter::TxPackets, PortCounter::TxBytes, len);
                    let class =
                        Class::of_production(dep.ingress_index(), port, f.session().is_some());
                    stats.tally_primary(&mut tally, class, port, len, cycles, end);
                }
                self.dp
                    .frames
                    .release(f.buf(), |bytes| sink.transmit(dep, bytes));
            }
            stats.absorb(&tally);
        }
        self.sched.released.clear();
    }

    fn late_drop(&mut self, d: &LateDrop) {
        self.dp.frames.free(d.buf);
        if let Some(s) = d.session {
            let kind = if d.reason == DropReason::MirrorPoliced {
                SessionCounter::Policed
            } else {
                SessionCounter::Dropped
            };
            if d.copy != 0 {
                self.dp.counters.session(s, kind, 1);
            }
        }
        self.dp
            .counters
            .add(counters::port(d.port, PortCounter::TxDrops), 1);
        if d.copy == 0 {
            // A production frame lost at egress is also one its ingress port received and
            // the NIC dropped.
            self.dp
                .counters
                .add(counters::port(d.ingress_port, PortCounter::RxDrops), 1);
        }
        self.dp.counters.dropped(d.reason);
        self.stats.dropped(d.copy != 0);
        if self.trace.is_some() && self.dp.config.trace {
            self.trace_event(
                d.packet,
                d.copy,
                d.at_ps,
                Some(d.port),
                &Event::stage(Stage::Drop),
                Some(d.reason),
                Some(d.len),
                d.session,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn drop_frame(
        &mut self,
        packet: u64,
        copy: u8,
        session: Option<u16>,
        port: Port,
        at_ps: u64,
        reason: DropReason,
        len: usize,
    ) {
        self.dp.counters.dropped(reason);
        if copy == 0 {
            self.dp
                .counters
                .add(counters::port(port, PortCounter::RxDrops), 1);
        }
        self.stats.dropped(copy != 0);
        if self.trace.is_some() && self.dp.config.trace {
            self.trace_event(
                packet,
                copy,
                at_ps,
                Some(port),
                &Event::stage(Stage::Drop),
                Some(reason),
                Some(len),
                session,
            );
        }
    }

    /// Counts and traces (when `tracing`) a transmission, before the sink receives it.
    fn depart(&mut self, tx: &Transmitted, tracing: bool) {
        let mirror = tx.queue == Queue::Mirror;
        count_transmission(
            &mut self.dp.counters,
            &mut self.stats,
            tx,
            self.sched.per_cycle(),
        );
        if tracing {
            let q = Event::stage(Stage::Queue);
            self.trace_event(
                tx.packet,
                tx.copy,
                tx.ready_ps,
                Some(tx.port),
                &q,
                None,
                Some(tx.len),
                tx.session,
            );
            let event = Event::stage(Stage::Tx).note(if mirror {
                "mirror queue"
            } else {
                "primary queue"
            });
            self.trace_event(
                tx.packet,
                tx.copy,
                tx.start_ps,
                Some(tx.port),
                &event,
                None,
                Some(tx.len),
                tx.session,
            );
        }
    }

    fn trace_stages(&mut self, packet: u64, port: Port, admit: u64) {
        let t = self.timing;
        let s = t.stages;
        let cycle = self.sched.cycle_ps();
        let base = admit / cycle;
        // The cycle each stage starts in, from the timing spec.
        let at = |stage: Stage| -> u64 {
            let c = match stage {
                Stage::Parse => s.rx_mac,
                Stage::Classify => s.rx_mac + s.parse,
                Stage::Acl => s.rx_mac + s.parse + s.classify,
                Stage::Map => s.rx_mac + s.parse + s.classify + s.acl,
                Stage::MirrorFilter => {
                    s.rx_mac + s.parse + s.classify + s.acl + s.map_hash + t.table_mem_latency
                }
                Stage::Encap => t.decision_latency(),
                Stage::ShadowMap => t.decision_latency() + s.clone,
                Stage::MirrorEncap => {
                    t.decision_latency() + s.clone + s.shadow_map_hash + t.table_mem_latency
                }
                _ => 0,
            };
            base + c as u64
        };
        let mut events = std::mem::take(&mut self.events);
        // The data path decides in logical order; the trace shows the pipeline's order.
        events.sort_by_key(|e| at(e.stage));
        let admit_event = Event::stage(Stage::Admit);
        self.trace_event(packet, 0, admit, Some(port), &admit_event, None, None, None);
        for e in &events {
            let cycle_of = at(e.stage) * cycle;
            self.trace_event(packet, e.copy, cycle_of, None, e, None, None, None);
        }
        self.events = events;
    }

    #[allow(clippy::too_many_arguments)]
    fn trace_event(
        &mut self,
        packet: u64,
        copy: u8,
        at_ps: u64,
        port: Option<Port>,
        event: &Event,
        reason: Option<DropReason>,
        len: Option<usize>,
        session: Option<u16>,
    ) {
        let cycle = at_ps / self.sched.cycle_ps();
        if let Some(t) = self.trace.as_mut()
            && self.trace_error.is_none()
            && let Err(e) = t.write(&Record {
                packet,
                copy,
                cycle,
                port,
                event,
                reason,
                len,
                session,
            })
        {
            self.trace_error = Some(e);
        }
    }

    /// End of the last transmission decided so far (ps).
    pub fn last_tx_end_ps(&self) -> u64 {
        self.sched.last_tx_end()
    }

    /// Wire time of `len` bytes on `port` (ps): for pacing inputs at line rate.
    pub fn wire_ps(&self, port: Port, len: usize) -> u64 {
        self.sched.wire_ps(port, len)
    }
}

/// Counts a transmission in the port and session counters and the run statistics.
#[inline(always)]
fn count_transmission(
    counters: &mut crate::counters::Counters,
    stats: &mut RunStats,
    tx: &Transmitted,
    per_cycle: crate::sched::CycleDiv,
) {
    let mirror = tx.queue == Queue::Mirror;
    if mirror {
        counters.port(
            tx.port,
            PortCounter::TxMirrorPackets,
            PortCounter::TxMirrorBytes,
            tx.len,
        );
    } else {
        counters.port(
            tx.port,
            PortCounter::TxPackets,
            PortCounter::TxBytes,
            tx.len,
        );
    }
    if let (Some(s), true) = (tx.session, mirror) {
        counters.session_len(
            s,
            SessionCounter::TxPackets,
            SessionCounter::TxBytes,
            tx.len,
        );
    }
    stats.transmitted(
        Class::of_frame(tx.ingress_port, tx.port, tx.queue, tx.session),
        mirror,
        tx.port,
        tx.len,
        per_cycle.div(tx.start_ps - tx.ingress_ps),
        tx.start_ps + tx.wire_ps,
    );
}

/// Writes every register's reset value, then what the model itself reports (capabilities,
/// build id, table capacities, the timing it runs with).
fn write_reset_values(r: &DeviceView<'_>, timing: &Timing) {
    macro_rules! reset {
        ($block:expr; $($reg:ident),* $(,)?) => { $( $block.$reg().reset(); )* };
    }
    macro_rules! reset_array {
        ($block:expr; $n:expr; $($reg:ident),* $(,)?) => {
            for i in 0..$n { $( $block.$reg(i).reset(); )* }
        };
    }
    let id = r.id();
    reset!(id; blk_type, blk_version, blk_next, magic, dev_version, caps, build_id, num_vports, num_sessions, clock_khz, bar_size);
    let ctrl = r.ctrl();
    reset!(ctrl; blk_type, blk_version, blk_next, cmd, status, config, reset_count);
    let t = r.tbl_cmd();
    reset!(t; blk_type, blk_version, blk_next, table, index, cmd, status, result_index, result_flags, generation);
    reset_array!(t; WINDOW_WORDS; key, value, result_key, result_value);
    reset_array!(t; 8; capacity, occupancy);
    let m = r.mirror();
    reset!(m; blk_type, blk_version, blk_next, session, cmd, status);
    reset_array!(m; session::WORDS; stage, fetched);
    let p = r.port();
    reset!(p; blk_type, blk_version, blk_next, local_mac_lo, local_mac_hi, local_ipv4, tunnel_ports, uplink_mtu, uplink_gbps, host_gbps);
    reset_array!(p; 4; local_ipv6);
    let c = r.counters();
    reset!(c; blk_type, blk_version, blk_next, cmd, status, num_counters, snapshot_cycle_lo, snapshot_cycle_hi);
    for i in 0..counters::NUM_COUNTERS {
        c.counter(i).lo().reset();
        c.counter(i).hi().reset();
    }
    reset!(r.cmd_ring(); blk_type, blk_version, blk_next, base_lo, base_hi, compl_base_lo, compl_base_hi, size_log2, ctrl, prod_idx, cons_idx, irq_enable, irq_status, irq_ack, error, completed_lo, batch_max);
    reset!(r.telemetry_ring(); blk_type, blk_version, blk_next, base_lo, base_hi, size_log2, ctrl, prod_idx, cons_idx, irq_enable, irq_status, irq_ack, interval, dropped);
    let f = r.fw_mailbox();
    reset!(f; blk_type, blk_version, blk_next, fw_version, fw_state, heartbeat, cycles_lo, cycles_hi, cmd, status, now_lo, now_hi);
    reset_array!(f; 4; arg, result);
    reset!(r.flash(); blk_type, blk_version, blk_next);

    id.caps().write(|w| {
        w.vxlan()
            .set_bit()
            .geneve()
            .set_bit()
            .ipv6_substrate()
            .set_bit()
            .redirect()
            .set_bit()
            .trace()
            .set_bit()
            .cmd_ring()
            .set_bit()
            .telemetry_ring()
            .set_bit()
            .firmware()
            .set_bit()
            .simulated()
            .set_bit()
    });
    id.build_id().write(|w| w.set(MODEL_BUILD_ID));
    id.clock_khz().write(|w| w.set(timing.clock_khz));
    p.uplink_gbps().write(|w| w.set(timing.uplink_gbps));
    p.host_gbps().write(|w| w.set(timing.host_gbps));
    for tid in TableId::ALL {
        t.capacity(tid as usize).write(|w| w.set(tid.capacity()));
    }
}
