//! The NIC's NOR flash and its FLASH register block.
//!
//! [`Flash`] is the memory: erasing a sector sets every byte to `0xFF` and takes
//! [`FlashTiming::erase_cycles`]; programming can only clear bits (new = old AND data) and
//! takes [`FlashTiming::program_cycles_per_word`] per 32-bit word; every erase adds one to the
//! sector's wear count. Its clock runs only while an operation is in progress, so "cycle N"
//! names one instant of the work the flash has done since power-on, and
//! [`Flash::power_cut_at`] can stop any operation at any such instant. What a cut leaves is
//! what NOR flash leaves: a sector whose erase was cut is neither its old contents nor all
//! `0xFF` (the pre-program phase has zeroed part of it, or the erase pulses have raised only
//! some of its bits), and the word being programmed when power went has only some of its bits
//! cleared.
//!
//! [`FlashDevice`] puts the flash behind the FLASH register block (`hw/docs/flash.md`): the
//! command protocol of the other blocks (stage, write `CMD` with a new `SEQ`, poll
//! `STATUS.SEQ`), `STATUS.BUSY` while an operation is in progress, and each `service` call
//! standing for one poll of the host ([`FlashTiming::poll_cycles`] of flash time). At power-on
//! it runs the boot ROM ([`shadownet_hw::flash::select_boot_slot`]) and reports the outcome in
//! `ACTIVE_SLOT` and `BOOT_STATUS`. After a power cut every FLASH register reads all ones, as
//! a PCIe device that has lost power does, and nothing more happens until the next power-on.
//!
//! The contents persist in a state file ([`Flash::open`]) or only in memory
//! ([`Flash::in_memory`]).

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::atomic::{Ordering, fence},
};

use shadownet_hw::{
    DeviceView,
    device_regs::flash::{
        boot_status::BootOutcome as RegOutcome, cmd::FlashOp, status::FlashResult,
    },
    flash::{
        BootChoice, BootOutcome, FlashGeometry, GeometryError, WINDOW_BYTES, select_boot_slot,
    },
};

/// How long flash operations take, in device cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashTiming {
    /// One sector erase.
    pub erase_cycles: u64,
    /// Programming one 32-bit word.
    pub program_cycles_per_word: u64,
    /// Reading one 32-bit word.
    pub read_cycles_per_word: u64,
    /// Flash time that passes per host poll of `STATUS` (one `service` call).
    pub poll_cycles: u64,
}

impl FlashTiming {
    /// A serial NOR flash at the 250 MHz device clock: 4 KiB sector erase 45 ms, page
    /// programming 2.7 µs per word (0.7 ms per 256-byte page), reads at 2 cycles per word,
    /// a host poll every 1 µs.
    pub const DEFAULT: FlashTiming = FlashTiming {
        erase_cycles: 11_250_000,
        program_cycles_per_word: 675,
        read_cycles_per_word: 2,
        poll_cycles: 250,
    };
}

/// Error opening or keeping the flash state.
#[derive(Debug, thiserror::Error)]
pub enum FlashStateError {
    /// Reading or writing the state file failed.
    #[error("flash state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is not a flash state file, or is damaged.
    #[error("flash state file {path}: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The geometry is unusable.
    #[error("flash geometry: {0}")]
    Geometry(#[from] GeometryError),
}

const STATE_MAGIC: &[u8; 8] = b"SNFLASH1";
const STATE_HEADER: u64 = 64;

/// Outcome of an operation on the flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// Completed.
    Done,
    /// Power was cut during the operation (or before it started): it is partly done.
    PowerLost,
}

/// NOR flash memory with wear counters, an operation clock and a power-cut switch.
pub struct Flash {
    geometry: FlashGeometry,
    timing: FlashTiming,
    mem: Vec<u8>,
    wear: Vec<u32>,
    clock: u64,
    cut_at: Option<u64>,
    powered: bool,
    file: Option<(File, PathBuf)>,
    io_error: Option<FlashStateError>,
    noise: u64,
}

impl Flash {
    /// An erased flash held in memory.
    pub fn in_memory(
        geometry: FlashGeometry,
        timing: FlashTiming,
    ) -> Result<Flash, FlashStateError> {
        geometry.validate()?;
        Ok(Flash {
            geometry,
            timing,
            mem: vec![0xFF; geometry.size() as usize],
            wear: vec![0; geometry.sector_count as usize],
            clock: 0,
            cut_at: None,
            powered: true,
            file: None,
            io_error: None,
            noise: 0x9E37_79B9_7F4A_7C15,
        })
    }

    /// The flash kept in the state file `path`: loaded when it exists (its geometry is the
    /// file's), created erased with `geometry` when it does not. Every change is written
    /// through to the file as it happens, partial operations included.
    pub fn open(
        path: &Path,
        geometry: FlashGeometry,
        timing: FlashTiming,
    ) -> Result<Flash, FlashStateError> {
        let io = |source| FlashStateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = |detail: String| FlashStateError::Format {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut flash;
        if len == 0 {
            flash = Flash::in_memory(geometry, timing)?;
            let mut head = [0u8; STATE_HEADER as usize];
            head[..8].copy_from_slice(STATE_MAGIC);
            head[8..12].copy_from_slice(&geometry.sector_size.to_le_bytes());
            head[12..16].copy_from_slice(&geometry.sector_count.to_le_bytes());
            head[16..20].copy_from_slice(&geometry.slot_size.to_le_bytes());
            file.write_all(&head).map_err(io)?;
            file.write_all(&flash.mem).map_err(io)?;
            let wear: Vec<u8> = flash.wear.iter().flat_map(|w| w.to_le_bytes()).collect();
            file.write_all(&wear).map_err(io)?;
        } else {
            let mut head = [0u8; STATE_HEADER as usize];
            file.read_exact(&mut head)
                .map_err(|e| format(format!("too short for a header ({e})")))?;
            if &head[..8] != STATE_MAGIC {
                return Err(format(
                    "not a shadownet flash state file (bad magic)".into(),
                ));
            }
            let le = |at: usize| {
                u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]])
            };
            let g = FlashGeometry {
                sector_size: le(8),
                sector_count: le(12),
                slot_size: le(16),
            };
            g.validate()
                .map_err(|e| format(format!("geometry in the file: {e}")))?;
            let expected = STATE_HEADER + g.size() + 4 * u64::from(g.sector_count);
            if len != expected {
                return Err(format(format!(
                    "{len} bytes, a flash of this geometry needs {expected}"
                )));
            }
            flash = Flash::in_memory(g, timing)?;
            file.read_exact(&mut flash.mem).map_err(io)?;
            let mut wear = vec![0u8; 4 * g.sector_count as usize];
            file.read_exact(&mut wear).map_err(io)?;
            for (w, b) in flash.wear.iter_mut().zip(wear.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        flash.file = Some((file, path.to_path_buf()));
        Ok(flash)
    }

    /// A copy of the contents and wear counters, held in memory (the state file, if any, is
    /// not shared): what a flash chip moved to another board would hold.
    pub fn copy_in_memory(&self) -> Flash {
        Flash {
            geometry: self.geometry,
            timing: self.timing,
            mem: self.mem.clone(),
            wear: self.wear.clone(),
            clock: 0,
            cut_at: None,
            powered: true,
            file: None,
            io_error: None,
            noise: self.noise,
        }
    }

    /// The NIC's flash ([`FlashGeometry::DEFAULT`], [`FlashTiming::DEFAULT`]) for a BAR: kept
    /// in `<bar file>.flash` when the BAR is a file, in memory otherwise.
    pub fn beside_bar(bar_file: Option<&Path>) -> Result<Flash, FlashStateError> {
        match bar_file {
            Some(p) => {
                let mut name = p.as_os_str().to_os_string();
                name.push(".flash");
                Flash::open(
                    Path::new(&name),
                    FlashGeometry::DEFAULT,
                    FlashTiming::DEFAULT,
                )
            }
            None => Flash::in_memory(FlashGeometry::DEFAULT, FlashTiming::DEFAULT),
        }
    }

    /// The geometry.
    pub fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    /// The timing.
    pub fn timing(&self) -> FlashTiming {
        self.timing
    }

    /// The whole contents.
    pub fn contents(&self) -> &[u8] {
        &self.mem
    }

    /// Erase counts, by sector.
    pub fn wear(&self) -> &[u32] {
        &self.wear
    }

    /// Cycles the flash has spent on operations since power-on.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Whether the flash still has power.
    pub fn powered(&self) -> bool {
        self.powered
    }

    /// Cuts the power when the clock reaches `cycle` (during whatever operation is running
    /// then; at once if the clock is already there).
    pub fn power_cut_at(&mut self, cycle: u64) {
        self.cut_at = Some(cycle);
    }

    /// Power comes back: the clock restarts at 0 and the contents are what they were.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.cut_at = None;
        self.clock = 0;
    }

    /// The first error writing the state file since the last call, if any.
    pub fn take_io_error(&mut self) -> Option<FlashStateError> {
        self.io_error.take()
    }

    /// Duration of an erase.
    pub fn erase_duration(&self) -> u64 {
        self.timing.erase_cycles
    }

    /// Duration of programming `len` bytes.
    pub fn program_duration(&self, len: usize) -> u64 {
        len.div_ceil(4) as u64 * self.timing.program_cycles_per_word
    }

    /// Duration of reading `len` bytes.
    pub fn read_duration(&self, len: usize) -> u64 {
        len.div_ceil(4) as u64 * self.timing.read_cycles_per_word
    }

    /// How far an operation of `duration` starting now gets before the power cut: `None`
    /// if it completes. Advances the clock to the operation's end or the cut.
    fn run_for(&mut self, duration: u64) -> Option<(u64, u64)> {
        let start = self.clock;
        let end = start.saturating_add(duration);
        match self.cut_at {
            Some(cut) if cut < end || (duration == 0 && cut <= start) => {
                let at = cut.max(start);
                self.clock = at;
                self.powered = false;
                Some((at - start, duration))
            }
            _ => {
                self.clock = end;
                None
            }
        }
    }

    fn next_noise(&mut self) -> u64 {
        // xorshift64*: deterministic garbage, different at each cut.
        let mut x = self.noise ^ self.clock.wrapping_mul(0x2545_F491_4F6C_DD1D);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.noise = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Erases the sector `sector` (must exist).
    pub fn erase(&mut self, sector: u32) -> OpOutcome {
        if !self.powered {
            return OpOutcome::PowerLost;
        }
        let ss = self.geometry.sector_size as usize;
        let base = sector as usize * ss;
        let cut = self.run_for(self.timing.erase_cycles);
        self.wear[sector as usize] = self.wear[sector as usize].saturating_add(1);
        let outcome = match cut {
            None => {
                self.mem[base..base + ss].fill(0xFF);
                OpOutcome::Done
            }
            Some((done, total)) => {
                // NOR erase: first every cell is programmed to 0 (the first 30% of the time,
                // in address order), then erase pulses raise the bits to 1, not all at once.
                let f = done as f64 / total.max(1) as f64;
                if f < 0.3 {
                    let zeroed = ((f / 0.3) * ss as f64) as usize;
                    self.mem[base..base + zeroed].fill(0);
                } else {
                    let p = (f - 0.3) / 0.7;
                    let threshold = (p * 256.0) as u64;
                    for i in 0..ss {
                        let mut byte = 0u8;
                        let r = self.next_noise();
                        for bit in 0..8 {
                            if (r >> (bit * 8)) & 0xFF < threshold {
                                byte |= 1 << bit;
                            }
                        }
                        self.mem[base + i] = byte;
                    }
                }
                OpOutcome::PowerLost
            }
        };
        self.persist(base, ss);
        self.persist_wear(sector);
        outcome
    }

    /// Programs `data` at `addr` (4-byte aligned, inside the flash): bits only go from 1 to 0.
    pub fn program(&mut self, addr: u32, data: &[u8]) -> OpOutcome {
        if !self.powered {
            return OpOutcome::PowerLost;
        }
        let base = addr as usize;
        let cut = self.run_for(self.program_duration(data.len()));
        let words = match cut {
            None => data.len().div_ceil(4),
            Some((done, _)) => (done / self.timing.program_cycles_per_word.max(1)) as usize,
        };
        let full = (words * 4).min(data.len());
        for (m, d) in self.mem[base..base + full].iter_mut().zip(&data[..full]) {
            *m &= *d;
        }
        if cut.is_some() && full < data.len() {
            // The word in progress: some of the bits it clears are cleared.
            let end = (full + 4).min(data.len());
            let r = self.next_noise();
            for (i, d) in data[full..end].iter().enumerate() {
                let not_yet = (r >> (i * 8)) as u8;
                self.mem[base + full + i] &= *d | not_yet;
            }
        }
        self.persist(base, data.len());
        if cut.is_some() {
            OpOutcome::PowerLost
        } else {
            OpOutcome::Done
        }
    }

    /// Reads `out.len()` bytes at `addr` (inside the flash).
    pub fn read(&mut self, addr: u32, out: &mut [u8]) -> OpOutcome {
        if !self.powered {
            return OpOutcome::PowerLost;
        }
        if self.run_for(self.read_duration(out.len())).is_some() {
            return OpOutcome::PowerLost;
        }
        let base = addr as usize;
        out.copy_from_slice(&self.mem[base..base + out.len()]);
        OpOutcome::Done
    }

    /// The boot ROM's choice over the current contents (takes no flash time: the boot ROM
    /// runs before the host can talk to the device).
    pub fn boot(&self) -> BootChoice {
        let mem = &self.mem;
        let read = |addr: u32, out: &mut [u8]| {
            let a = addr as usize;
            match mem.get(a..a + out.len()) {
                Some(src) => {
                    out.copy_from_slice(src);
                    Ok(())
                }
                None => Err(()),
            }
        };
        select_boot_slot(&self.geometry, read).unwrap_or(BootChoice {
            booted: None,
            records: [None; 2],
        })
    }

    fn persist(&mut self, at: usize, len: usize) {
        if let Some((file, path)) = &self.file
            && let Err(source) =
                file.write_all_at(&self.mem[at..at + len], STATE_HEADER + at as u64)
            && self.io_error.is_none()
        {
            self.io_error = Some(FlashStateError::Io {
                path: path.clone(),
                source,
            });
        }
    }

    fn persist_wear(&mut self, sector: u32) {
        let at = STATE_HEADER + self.geometry.size() + 4 * u64::from(sector);
        if let Some((file, path)) = &self.file
            && let Err(source) = file.write_all_at(&self.wear[sector as usize].to_le_bytes(), at)
            && self.io_error.is_none()
        {
            self.io_error = Some(FlashStateError::Io {
                path: path.clone(),
                source,
            });
        }
    }
}

// One command latched at a time; the data window is held inline rather than boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
enum Op {
    Erase(u32),
    Program {
        addr: u32,
        len: usize,
        data: [u8; WINDOW_BYTES],
    },
    Read {
        addr: u32,
        len: usize,
    },
    ReadWear(u32),
}

#[derive(Clone, Copy)]
struct Pending {
    seq: u16,
    op: Op,
    /// Flash time the operation still needs.
    remaining: u64,
    /// Flash time spent on it so far (polls that did not complete it).
    elapsed: u64,
}

/// The flash behind the FLASH register block.
pub struct FlashDevice {
    flash: Flash,
    pending: Option<Pending>,
    boot: BootChoice,
    /// Power was cut: the registers read all ones until the next power-on.
    dead: bool,
}

impl FlashDevice {
    /// The device around `flash` (booted at the model's power-on).
    pub fn new(flash: Flash) -> FlashDevice {
        FlashDevice {
            flash,
            pending: None,
            boot: BootChoice {
                booted: None,
                records: [None; 2],
            },
            dead: false,
        }
    }

    /// The flash memory.
    pub fn flash(&self) -> &Flash {
        &self.flash
    }

    /// The flash memory, mutably (to schedule a power cut).
    pub fn flash_mut(&mut self) -> &mut Flash {
        &mut self.flash
    }

    /// Takes the flash out (to power it on again in a new model).
    pub fn into_flash(self) -> Flash {
        self.flash
    }

    /// What the boot ROM chose at power-on.
    pub fn boot_choice(&self) -> &BootChoice {
        &self.boot
    }

    /// Power-on: the boot ROM runs and the registers are published.
    pub fn power_on(&mut self, regs: &DeviceView<'_>) {
        self.flash.power_on();
        self.pending = None;
        self.dead = false;
        self.boot = self.flash.boot();
        if let Some(b) = self.boot.booted {
            tracing::debug!(slot = %b.slot, build_id = b.header.build_id, outcome = ?b.outcome, "flash boot");
        } else {
            tracing::debug!("flash boot: no slot holds an image that verifies");
        }
        self.publish(regs);
    }

    /// A device reset: an operation in progress completes, and the registers return to
    /// their reset values with the geometry and boot status filled in (the flash and what
    /// was booted are not reset).
    pub fn reset(&mut self, regs: &DeviceView<'_>) {
        if let Some(p) = self.pending.take() {
            self.perform(regs, p);
        }
        self.publish(regs);
    }

    fn publish(&self, regs: &DeviceView<'_>) {
        let r = regs.flash();
        let g = self.flash.geometry;
        r.blk_version().write(|w| w.set(1));
        r.sector_size().write(|w| w.set(g.sector_size));
        r.sector_count().write(|w| w.set(g.sector_count));
        r.slot_size().write(|w| w.set(g.slot_size));
        let t = self.flash.timing;
        r.erase_cycles()
            .write(|w| w.set(u32::try_from(t.erase_cycles).unwrap_or(u32::MAX)));
        r.program_cycles()
            .write(|w| w.set(u32::try_from(t.program_cycles_per_word).unwrap_or(u32::MAX)));
        let (slot, valid, outcome, seq, build) = match self.boot.booted {
            Some(b) => (
                b.slot as u8,
                true,
                match b.outcome {
                    BootOutcome::Record => RegOutcome::Record,
                    BootOutcome::OlderRecord => RegOutcome::OlderRecord,
                    BootOutcome::Fallback => RegOutcome::Fallback,
                },
                b.record_seq.unwrap_or(0),
                b.header.build_id,
            ),
            None => (0, false, RegOutcome::None, 0, 0),
        };
        r.active_slot()
            .write(|w| w.slot().bit(slot == 1).valid().bit(valid));
        let records =
            self.boot.records[0].is_some() as u8 | (self.boot.records[1].is_some() as u8) << 1;
        r.boot_status()
            .write(|w| w.outcome().variant(outcome).records().set(records));
        r.boot_seq().write(|w| w.set(seq));
        r.boot_build_id().write(|w| w.set(build));
        self.publish_counters(regs);
        regs.id().caps().modify(|_, w| w.flash().set_bit());
    }

    fn publish_counters(&self, regs: &DeviceView<'_>) {
        let r = regs.flash();
        let max = self.flash.wear.iter().copied().max().unwrap_or(0);
        r.wear_max().write(|w| w.set(max));
        let c = self.flash.clock;
        r.busy_cycles_lo().write(|w| w.set(c as u32));
        r.busy_cycles_hi().write(|w| w.set((c >> 32) as u32));
    }

    /// Decodes the command the host posted, or the result code refusing it.
    fn decode(&self, regs: &DeviceView<'_>) -> Result<Option<Op>, FlashResult> {
        let r = regs.flash();
        let g = self.flash.geometry;
        let size = g.size();
        let addr = r.addr().read().bits();
        let len = r.len().read().bits();
        let in_flash = u64::from(addr) < size;
        let check_window = || {
            if len == 0 || len as usize > WINDOW_BYTES || !len.is_multiple_of(4) {
                return Err(FlashResult::BadLength);
            }
            if !addr.is_multiple_of(4) || u64::from(addr) + u64::from(len) > size {
                return Err(FlashResult::BadAddress);
            }
            Ok(len as usize)
        };
        Ok(Some(match r.cmd().read().op().variant() {
            Some(FlashOp::Nop) => return Ok(None),
            Some(FlashOp::EraseSector) if in_flash => Op::Erase(g.sector_of(addr)),
            Some(FlashOp::ReadWear) if in_flash => Op::ReadWear(g.sector_of(addr)),
            Some(FlashOp::EraseSector | FlashOp::ReadWear) => return Err(FlashResult::BadAddress),
            Some(FlashOp::Program) => {
                let len = check_window()?;
                let mut data = [0u8; WINDOW_BYTES];
                for (i, chunk) in data[..len].chunks_exact_mut(4).enumerate() {
                    chunk.copy_from_slice(&r.data(i).read().bits().to_le_bytes());
                }
                Op::Program { addr, len, data }
            }
            Some(FlashOp::Read) => Op::Read {
                addr,
                len: check_window()?,
            },
            None => return Err(FlashResult::BadOp),
        }))
    }

    fn duration(&self, op: &Op) -> u64 {
        match op {
            Op::Erase(_) => self.flash.erase_duration(),
            Op::Program { len, .. } => self.flash.program_duration(*len),
            Op::Read { len, .. } => self.flash.read_duration(*len),
            Op::ReadWear(_) => 1,
        }
    }

    /// Performs the operation on the flash; false if the power went during it.
    fn perform(&mut self, regs: &DeviceView<'_>, p: Pending) -> bool {
        let r = regs.flash();
        let outcome = match p.op {
            Op::Erase(sector) => self.flash.erase(sector),
            Op::Program { addr, len, data } => self.flash.program(addr, &data[..len]),
            Op::Read { addr, len } => {
                let mut buf = [0u8; WINDOW_BYTES];
                let o = self.flash.read(addr, &mut buf[..len]);
                if o == OpOutcome::Done {
                    for (i, chunk) in buf[..len].chunks_exact(4).enumerate() {
                        let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        r.data(i).write(|x| x.set(w));
                    }
                }
                o
            }
            Op::ReadWear(sector) => match self.flash.run_for(1) {
                None => {
                    r.wear().write(|w| w.set(self.flash.wear[sector as usize]));
                    OpOutcome::Done
                }
                Some(_) => OpOutcome::PowerLost,
            },
        };
        if let Some(e) = self.flash.take_io_error() {
            tracing::error!("{e}");
        }
        if outcome == OpOutcome::PowerLost {
            self.lose_power(regs);
            return false;
        }
        self.publish_counters(regs);
        fence(Ordering::Release);
        r.status()
            .write(|w| w.result().variant(FlashResult::Ok).seq().set(p.seq));
        true
    }

    fn lose_power(&mut self, regs: &DeviceView<'_>) {
        self.dead = true;
        self.pending = None;
        tracing::debug!(cycle = self.flash.clock, "flash: power cut");
        let r = regs.flash();
        // A PCIe device without power answers every read with all ones.
        r.blk_type().write(|w| w.set(u32::MAX));
        r.blk_version().write(|w| w.set(u32::MAX));
        r.blk_next().write(|w| w.set(u32::MAX));
        r.sector_size().write(|w| w.set(u32::MAX));
        r.sector_count().write(|w| w.set(u32::MAX));
        r.slot_size().write(|w| w.set(u32::MAX));
        r.status().write(|w| w.set(u32::MAX));
        r.active_slot().write(|w| w.set(u32::MAX));
        r.boot_status().write(|w| w.set(u32::MAX));
        r.boot_seq().write(|w| w.set(u32::MAX));
        r.boot_build_id().write(|w| w.set(u32::MAX));
        r.wear().write(|w| w.set(u32::MAX));
        r.wear_max().write(|w| w.set(u32::MAX));
        r.busy_cycles_lo().write(|w| w.set(u32::MAX));
        r.busy_cycles_hi().write(|w| w.set(u32::MAX));
        for i in 0..WINDOW_BYTES / 4 {
            r.data(i).write(|w| w.set(u32::MAX));
        }
    }

    /// One poll of the host: accepts a newly posted command, or lets the one in progress
    /// run for [`FlashTiming::poll_cycles`]. Returns whether anything happened.
    pub fn service(&mut self, regs: &DeviceView<'_>) -> bool {
        if self.dead {
            return false;
        }
        let r = regs.flash();
        if self.pending.is_none() {
            let cmd = r.cmd().read();
            let seq = cmd.seq().bits();
            let status = r.status().read();
            if seq == status.seq().bits() {
                return false;
            }
            fence(Ordering::Acquire);
            match self.decode(regs) {
                Ok(None) => {
                    fence(Ordering::Release);
                    r.status()
                        .write(|w| w.result().variant(FlashResult::Ok).seq().set(seq));
                    return true;
                }
                Err(result) => {
                    fence(Ordering::Release);
                    r.status()
                        .write(|w| w.result().variant(result).error().set_bit().seq().set(seq));
                    return true;
                }
                Ok(Some(op)) => {
                    let remaining = self.duration(&op);
                    self.pending = Some(Pending {
                        seq,
                        op,
                        remaining,
                        elapsed: 0,
                    });
                    let old = status.bits();
                    r.status().write(|w| w.set(old).busy().set_bit());
                }
            }
        }
        let Some(mut p) = self.pending else {
            return false;
        };
        let poll = self.flash.timing.poll_cycles.max(1);
        // A cut that falls inside this poll's share of the operation stops it there.
        let cut_now = self
            .flash
            .cut_at
            .is_some_and(|c| c < self.flash.clock + poll.min(p.remaining).max(1));
        if p.remaining > poll && !cut_now {
            // Not done yet: the clock runs; the operation's effect lands when it completes.
            p.remaining -= poll;
            p.elapsed += poll;
            self.flash.clock += poll;
            self.pending = Some(p);
            return true;
        }
        self.pending = None;
        // Rewind the clock to the operation's start so the flash applies it (whole, or up to
        // the cut) over its full duration.
        self.flash.clock -= p.elapsed;
        self.perform(regs, p);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: FlashGeometry = FlashGeometry {
        sector_size: 256,
        sector_count: 10,
        slot_size: 1024,
    };
    const T: FlashTiming = FlashTiming {
        erase_cycles: 1000,
        program_cycles_per_word: 10,
        read_cycles_per_word: 1,
        poll_cycles: 100,
    };

    #[test]
    fn erase_sets_ff_programming_only_clears_bits_and_wear_counts() {
        let mut f = Flash::in_memory(G, T).expect("valid");
        assert!(
            f.contents().iter().all(|&b| b == 0xFF),
            "new flash is erased"
        );
        assert_eq!(f.program(256, &[0x0F, 0xF0, 0x00, 0xAA]), OpOutcome::Done);
        assert_eq!(f.clock(), 10);
        assert_eq!(&f.contents()[256..260], &[0x0F, 0xF0, 0x00, 0xAA]);
        // Programming again ANDs: 1 bits cannot come back without an erase.
        f.program(256, &[0xFF, 0x0F, 0xFF, 0x55]);
        assert_eq!(&f.contents()[256..260], &[0x0F, 0x00, 0x00, 0x00]);
        assert_eq!(f.erase(1), OpOutcome::Done);
        assert_eq!(f.clock(), 1020);
        assert!(f.contents()[256..512].iter().all(|&b| b == 0xFF));
        f.erase(1);
        f.erase(3);
        assert_eq!(f.wear()[1], 2);
        assert_eq!(f.wear()[3], 1);
        assert_eq!(f.wear()[0], 0);
        let mut out = [0u8; 8];
        assert_eq!(f.read(256, &mut out), OpOutcome::Done);
        assert_eq!(out, [0xFF; 8]);
        assert_eq!(f.clock(), 3022);
    }

    #[test]
    fn a_cut_erase_leaves_neither_old_nor_erased() {
        for cut in [100u64, 500, 900] {
            let mut f = Flash::in_memory(G, T).expect("valid");
            f.program(0, &[0x12; 256]);
            let start = f.clock();
            f.power_cut_at(start + cut);
            assert_eq!(f.erase(0), OpOutcome::PowerLost);
            let s = &f.contents()[..256];
            assert!(s.iter().any(|&b| b != 0x12), "cut at {cut}: old contents");
            assert!(s.iter().any(|&b| b != 0xFF), "cut at {cut}: fully erased");
            assert_eq!(
                f.wear()[0],
                1,
                "an interrupted erase still wears the sector"
            );
            assert!(!f.powered());
            assert_eq!(
                f.program(0, &[0; 4]),
                OpOutcome::PowerLost,
                "dead flash does nothing"
            );
        }
    }

    #[test]
    fn a_cut_program_leaves_a_partial_word() {
        let mut f = Flash::in_memory(G, T).expect("valid");
        // 8 words take 80 cycles; cut after 3.5 words.
        f.power_cut_at(35);
        assert_eq!(f.program(0, &[0u8; 32]), OpOutcome::PowerLost);
        let c = f.contents();
        assert!(c[..12].iter().all(|&b| b == 0), "three words programmed");
        assert!(
            c[16..32].iter().all(|&b| b == 0xFF),
            "later words untouched"
        );
        assert_eq!(f.clock(), 35);
    }

    #[test]
    fn a_file_bar_keeps_its_flash_beside_it() {
        let dir = std::env::temp_dir().join(format!("shadownet-barflash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bar_path = dir.join("nic0");
        {
            let bar = crate::bar::SharedBar::file(&bar_path).expect("file BAR");
            let mut m = crate::NicModel::with_bar(shadownet_hw::timing::Timing::DEFAULT, bar)
                .expect("model");
            m.flash().flash_mut().program(0, b"kept");
        }
        let f = Flash::beside_bar(Some(&bar_path)).expect("reopened");
        assert_eq!(&f.contents()[..4], b"kept");
        assert!(dir.join("nic0.flash").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("shadownet-flash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("state.flash");
        let _ = std::fs::remove_file(&path);
        {
            let mut f = Flash::open(&path, G, T).expect("created");
            f.erase(2);
            f.program(512, b"abcd");
            f.power_cut_at(f.clock() + 5);
            f.program(516, &[0; 16]);
        }
        let f = Flash::open(&path, FlashGeometry::DEFAULT, T).expect("reopened");
        assert_eq!(f.geometry(), G, "the file's geometry wins");
        assert_eq!(&f.contents()[512..516], b"abcd");
        assert_eq!(f.wear()[2], 1);
        std::fs::write(&path, b"junk").expect("write");
        assert!(matches!(
            Flash::open(&path, G, T),
            Err(FlashStateError::Format { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
