//! The flash through the FLASH block: geometry, erase, program, read, wear, and image updates
//! into the A/B slots (`hw/docs/flash.md`).
//!
//! An update never endangers the image the device runs: it writes the *inactive* slot, reads
//! it back and verifies it (header, CRC32, SHA-256, and the signature when a key is given)
//! before it writes a new boot record, and the boot record goes into the copy that does not
//! hold the newest record. A power cut at any instant therefore leaves a flash that boots the
//! old image or the new one.

use std::{
    sync::atomic::{Ordering, fence},
    time::{Duration, Instant},
};

use shadownet_hw::{
    flash::{
        BOOT_RECORD_LEN, BootChoice, BootRecord, FlashGeometry, GeometryError, Slot, SlotError,
        WINDOW_BYTES, read_records, select_boot_slot, verify_slot,
    },
    image::{self, HEADER_LEN, ImageError, ImageHeader},
    regs::flash::{boot_status::BootOutcome as RegOutcome, cmd::FlashOp, status::FlashResult},
};

use super::{Device, Nic};

/// How long one flash command may take (a sector erase of a real NOR part is well under 1 s).
const FLASH_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong with the flash.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The device has no flash block.
    #[error("{device}: the device has no flash (FLASH.BLK_VERSION is 0)")]
    NoFlash {
        /// Device name.
        device: String,
    },
    /// Every FLASH register reads all ones: the device lost power or was removed.
    #[error(
        "{device}: the device stopped answering (FLASH registers read all ones: power lost or device removed)"
    )]
    DeviceGone {
        /// Device name.
        device: String,
    },
    /// A command did not complete.
    #[error("{device}: flash {op} did not complete within {millis} ms")]
    Timeout {
        /// Device name.
        device: String,
        /// Operation.
        op: &'static str,
        /// How long we waited.
        millis: u128,
    },
    /// The device refused a command.
    #[error("{device}: flash {op} at {addr:#x} refused: {result}")]
    Refused {
        /// Device name.
        device: String,
        /// Operation.
        op: &'static str,
        /// Address.
        addr: u32,
        /// The device's result, in words.
        result: &'static str,
    },
    /// The device reports an unusable geometry.
    #[error("{device}: flash geometry: {problem}")]
    Geometry {
        /// Device name.
        device: String,
        /// What is wrong.
        problem: GeometryError,
    },
    /// A range outside the flash or misaligned.
    #[error(
        "flash range {addr:#x}+{len} is outside the flash ({size} bytes) or not 4-byte aligned"
    )]
    BadRange {
        /// Start.
        addr: u32,
        /// Length.
        len: usize,
        /// Flash size.
        size: u64,
    },
    /// The image itself is bad (checked before anything is written).
    #[error("image: {0}")]
    Image(#[from] ImageError),
    /// The image does not fit a slot.
    #[error("image is {len} bytes; a slot holds {slot_size}")]
    TooLarge {
        /// Image length.
        len: usize,
        /// Slot size.
        slot_size: u32,
    },
    /// The slot asked for is the one the device runs from.
    #[error("slot {slot} holds the running image; an update writes the other slot")]
    ActiveSlot {
        /// The slot.
        slot: Slot,
    },
    /// What was written does not read back as written.
    #[error("slot {slot} does not verify after writing: {detail}")]
    ReadBack {
        /// The slot.
        slot: Slot,
        /// What is wrong.
        detail: String,
    },
    /// A boot record copy does not read back as written.
    #[error("boot record copy {copy} does not read back as written")]
    RecordReadBack {
        /// The copy.
        copy: usize,
    },
}

/// Where an update is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashPhase {
    /// Erasing the slot's sectors.
    Erase,
    /// Programming the image.
    Program,
    /// Reading the slot back and verifying it.
    Verify,
    /// Writing the boot record.
    Activate,
}

/// Progress of an update: `done` of `total` bytes of the phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashProgress {
    /// The phase.
    pub phase: FlashPhase,
    /// Bytes done.
    pub done: u64,
    /// Bytes in the phase.
    pub total: u64,
}

/// What the device booted at power-on (`ACTIVE_SLOT`, `BOOT_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashBootStatus {
    /// The slot booted, if an image verified.
    pub active: Option<Slot>,
    /// How it was chosen: `none`, `record`, `older_record` or `fallback`.
    pub outcome: &'static str,
    /// Sequence number of the boot record used (0 without one).
    pub record_seq: u32,
    /// Build id of the booted image.
    pub build_id: u32,
    /// Which boot-record copies were intact (bit n: copy n).
    pub records: u8,
}

/// What an update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashUpdate {
    /// The slot written.
    pub slot: Slot,
    /// The image's header.
    pub header: ImageHeader,
    /// The boot record written.
    pub record: BootRecord,
    /// The boot-record copy it went into.
    pub record_copy: usize,
}

fn result_name(r: Option<FlashResult>) -> &'static str {
    match r {
        Some(FlashResult::Ok) => "ok",
        Some(FlashResult::BadAddress) => "address outside the flash or misaligned",
        Some(FlashResult::BadLength) => "length not a multiple of 4 in 4..256",
        Some(FlashResult::BadOp) => "operation not defined",
        None => "unknown result code",
    }
}

fn op_name(op: FlashOp) -> &'static str {
    match op {
        FlashOp::Nop => "nop",
        FlashOp::EraseSector => "erase",
        FlashOp::Program => "program",
        FlashOp::Read => "read",
        FlashOp::ReadWear => "read_wear",
    }
}

impl<D: Device> Nic<D> {
    fn flash_name(&self) -> String {
        self.device().name()
    }

    fn gone(&self) -> FlashError {
        FlashError::DeviceGone {
            device: self.flash_name(),
        }
    }

    /// The flash geometry the device reports.
    pub fn flash_geometry(&self) -> Result<FlashGeometry, FlashError> {
        let r = self.device().regs();
        let f = r.flash();
        let version = f.blk_version().read().bits();
        if version == u32::MAX {
            return Err(self.gone());
        }
        if version == 0 {
            return Err(FlashError::NoFlash {
                device: self.flash_name(),
            });
        }
        let g = FlashGeometry {
            sector_size: f.sector_size().read().bits(),
            sector_count: f.sector_count().read().bits(),
            slot_size: f.slot_size().read().bits(),
        };
        g.validate().map_err(|problem| FlashError::Geometry {
            device: self.flash_name(),
            problem,
        })?;
        Ok(g)
    }

    /// What the device booted at power-on.
    pub fn flash_boot_status(&self) -> Result<FlashBootStatus, FlashError> {
        self.flash_geometry()?;
        let r = self.device().regs();
        let f = r.flash();
        let a = f.active_slot().read();
        let b = f.boot_status().read();
        Ok(FlashBootStatus {
            active: a
                .valid()
                .bit()
                .then_some(if a.slot().bit() { Slot::B } else { Slot::A }),
            outcome: match b.outcome().variant() {
                Some(RegOutcome::None) => "none",
                Some(RegOutcome::Record) => "record",
                Some(RegOutcome::OlderRecord) => "older_record",
                Some(RegOutcome::Fallback) => "fallback",
                None => "unknown",
            },
            record_seq: f.boot_seq().read().bits(),
            build_id: f.boot_build_id().read().bits(),
            records: b.records().bits(),
        })
    }

    /// Highest erase count of any sector, and the cycles the flash has been busy.
    pub fn flash_wear_max(&self) -> Result<(u32, u64), FlashError> {
        self.flash_geometry()?;
        let r = self.device().regs();
        let f = r.flash();
        let busy = u64::from(f.busy_cycles_hi().read().bits()) << 32
            | u64::from(f.busy_cycles_lo().read().bits());
        Ok((f.wear_max().read().bits(), busy))
    }

    fn flash_wait(&self, op: FlashOp, done: impl Fn(u32) -> bool) -> Result<u32, FlashError> {
        let started = Instant::now();
        let mut polls: u32 = 0;
        loop {
            let status = self.device().regs().flash().status().read().bits();
            if status == u32::MAX {
                return Err(self.gone());
            }
            if done(status) {
                fence(Ordering::Acquire);
                return Ok(status);
            }
            self.device().relax();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) && started.elapsed() > FLASH_TIMEOUT {
                return Err(FlashError::Timeout {
                    device: self.flash_name(),
                    op: op_name(op),
                    millis: started.elapsed().as_millis(),
                });
            }
        }
    }

    /// One command: waits until no command is in progress, stages ADDR and LEN, rings with
    /// the tag after `STATUS.SEQ`, and waits for that tag.
    fn flash_cmd(&self, op: FlashOp, addr: u32, len: u32) -> Result<(), FlashError> {
        let busy_bit = 1 << 8;
        let status = self.flash_wait(op, |s| s & busy_bit == 0)?;
        let seq = ((status >> 16) as u16).wrapping_add(1);
        {
            let r = self.device().regs();
            let f = r.flash();
            f.addr().write(|w| w.set(addr));
            f.len().write(|w| w.set(len));
            fence(Ordering::Release);
            f.cmd().write(|w| w.op().variant(op).seq().set(seq));
        }
        let status = self.flash_wait(op, |s| (s >> 16) as u16 == seq && s & busy_bit == 0)?;
        let code = (status & 0xFF) as u8;
        if code != FlashResult::Ok as u8 {
            let result = [
                FlashResult::Ok,
                FlashResult::BadAddress,
                FlashResult::BadLength,
                FlashResult::BadOp,
            ]
            .into_iter()
            .find(|r| *r as u8 == code);
            return Err(FlashError::Refused {
                device: self.flash_name(),
                op: op_name(op),
                addr,
                result: result_name(result),
            });
        }
        Ok(())
    }

    fn check_range(&self, g: &FlashGeometry, addr: u32, len: usize) -> Result<(), FlashError> {
        if !addr.is_multiple_of(4) || u64::from(addr) + len as u64 > g.size() {
            return Err(FlashError::BadRange {
                addr,
                len,
                size: g.size(),
            });
        }
        Ok(())
    }

    /// Reads `out.len()` bytes at `addr` (4-byte aligned).
    pub fn flash_read(&self, addr: u32, out: &mut [u8]) -> Result<(), FlashError> {
        let g = self.flash_geometry()?;
        self.check_range(&g, addr, out.len())?;
        for (i, chunk) in out.chunks_mut(WINDOW_BYTES).enumerate() {
            let at = addr + (i * WINDOW_BYTES) as u32;
            let words = chunk.len().div_ceil(4);
            self.flash_cmd(FlashOp::Read, at, (words * 4) as u32)?;
            let r = self.device().regs();
            for (w, bytes) in chunk.chunks_mut(4).enumerate() {
                let v = r.flash().data(w).read().bits().to_le_bytes();
                bytes.copy_from_slice(&v[..bytes.len()]);
            }
        }
        Ok(())
    }

    /// Erases sector `sector`.
    pub fn flash_erase_sector(&self, sector: u32) -> Result<(), FlashError> {
        let g = self.flash_geometry()?;
        if sector >= g.sector_count {
            return Err(FlashError::BadRange {
                addr: sector.saturating_mul(g.sector_size),
                len: g.sector_size as usize,
                size: g.size(),
            });
        }
        self.flash_cmd(FlashOp::EraseSector, sector * g.sector_size, 0)
    }

    /// Programs `data` at `addr` (4-byte aligned; the last word is padded with `0xFF`, which
    /// leaves the flash's bits as they are).
    pub fn flash_program(&self, addr: u32, data: &[u8]) -> Result<(), FlashError> {
        let g = self.flash_geometry()?;
        self.check_range(&g, addr, data.len().div_ceil(4) * 4)?;
        for (i, chunk) in data.chunks(WINDOW_BYTES).enumerate() {
            let at = addr + (i * WINDOW_BYTES) as u32;
            let words = chunk.len().div_ceil(4);
            {
                let r = self.device().regs();
                for (w, bytes) in chunk.chunks(4).enumerate() {
                    let mut v = [0xFF; 4];
                    v[..bytes.len()].copy_from_slice(bytes);
                    r.flash().data(w).write(|x| x.set(u32::from_le_bytes(v)));
                }
            }
            self.flash_cmd(FlashOp::Program, at, (words * 4) as u32)?;
        }
        Ok(())
    }

    /// Erase count of sector `sector`.
    pub fn flash_wear(&self, sector: u32) -> Result<u32, FlashError> {
        let g = self.flash_geometry()?;
        if sector >= g.sector_count {
            return Err(FlashError::BadRange {
                addr: sector.saturating_mul(g.sector_size),
                len: 0,
                size: g.size(),
            });
        }
        self.flash_cmd(FlashOp::ReadWear, sector * g.sector_size, 0)?;
        Ok(self.device().regs().flash().wear().read().bits())
    }

    /// What the boot ROM would choose from the flash as it is now (read through the FLASH
    /// block with the boot ROM's own logic).
    pub fn flash_boot_preview(&self) -> Result<BootChoice, FlashError> {
        let g = self.flash_geometry()?;
        select_boot_slot(&g, |a, b: &mut [u8]| self.flash_read(a, b))
    }

    /// Writes `image` into `slot`: checks the image (and its signature with `key`), refuses
    /// the slot the device runs from, erases the sectors the image needs, programs it, reads
    /// it back and verifies it. Does not activate it ([`Nic::flash_activate`] does).
    pub fn flash_write_image(
        &mut self,
        slot: Slot,
        image: &[u8],
        key: Option<&[u8; 32]>,
        progress: &mut dyn FnMut(FlashProgress),
    ) -> Result<ImageHeader, FlashError> {
        let header = image::verify(image, key)?;
        let g = self.flash_geometry()?;
        if image.len() > g.max_image_len() {
            return Err(FlashError::TooLarge {
                len: image.len(),
                slot_size: g.slot_size,
            });
        }
        if self.flash_boot_status()?.active == Some(slot) {
            return Err(FlashError::ActiveSlot { slot });
        }
        let base = g.slot_addr(slot);
        let sectors = (image.len() as u32).div_ceil(g.sector_size);
        tracing::info!(%slot, build_id = header.build_id, bytes = image.len(), "flash: writing image");
        let first = g.sector_of(base);
        for s in 0..sectors {
            progress(FlashProgress {
                phase: FlashPhase::Erase,
                done: u64::from(s * g.sector_size),
                total: u64::from(sectors * g.sector_size),
            });
            self.flash_erase_sector(first + s)?;
        }
        for (i, chunk) in image.chunks(WINDOW_BYTES).enumerate() {
            progress(FlashProgress {
                phase: FlashPhase::Program,
                done: (i * WINDOW_BYTES) as u64,
                total: image.len() as u64,
            });
            self.flash_program(base + (i * WINDOW_BYTES) as u32, chunk)?;
        }
        progress(FlashProgress {
            phase: FlashPhase::Verify,
            done: 0,
            total: image.len() as u64,
        });
        let read_back = verify_slot(&g, slot, &mut |a, b: &mut [u8]| self.flash_read(a, b));
        let written = match read_back {
            Ok(h) => h,
            Err(SlotError::Read(e)) => return Err(e),
            Err(e) => {
                return Err(FlashError::ReadBack {
                    slot,
                    detail: e.to_string(),
                });
            }
        };
        if written != header {
            return Err(FlashError::ReadBack {
                slot,
                detail: "the header read back differs from the image's".into(),
            });
        }
        if let Some(k) = key {
            written.verify_signature(k)?;
        }
        progress(FlashProgress {
            phase: FlashPhase::Verify,
            done: image.len() as u64,
            total: image.len() as u64,
        });
        Ok(header)
    }

    /// Makes `slot` the one to boot: verifies the image there again, then writes a boot record
    /// with the next sequence number into the copy that does not hold the newest valid record,
    /// and reads it back. Returns the record and the copy written.
    pub fn flash_activate(&mut self, slot: Slot) -> Result<(BootRecord, usize), FlashError> {
        let g = self.flash_geometry()?;
        let header = match verify_slot(&g, slot, &mut |a, b: &mut [u8]| self.flash_read(a, b)) {
            Ok(h) => h,
            Err(SlotError::Read(e)) => return Err(e),
            Err(e) => {
                return Err(FlashError::ReadBack {
                    slot,
                    detail: e.to_string(),
                });
            }
        };
        let records = read_records(&g, &mut |a, b: &mut [u8]| self.flash_read(a, b))?;
        let newest = match records {
            [Some(a), Some(b)] => Some(if b.seq > a.seq { (1, b) } else { (0, a) }),
            [Some(a), None] => Some((0, a)),
            [None, Some(b)] => Some((1, b)),
            [None, None] => None,
        };
        let (copy, seq) = match newest {
            Some((c, r)) => (1 - c, r.seq.wrapping_add(1)),
            None => (0, 1),
        };
        let record = BootRecord {
            seq,
            slot,
            build_id: header.build_id,
            header_crc: header.header_crc(),
        };
        tracing::info!(%slot, seq, copy, "flash: writing boot record");
        self.flash_erase_sector(g.sector_of(g.record_addr(copy)))?;
        self.flash_program(g.record_addr(copy), &record.to_bytes())?;
        let mut back = [0u8; BOOT_RECORD_LEN];
        self.flash_read(g.record_addr(copy), &mut back)?;
        if BootRecord::parse(&back) != Some(record) {
            return Err(FlashError::RecordReadBack { copy });
        }
        Ok((record, copy))
    }

    /// A whole update: the image into `slot` (or, with `None`, the slot the device does not
    /// run from), verified, then activated.
    pub fn flash_update(
        &mut self,
        image: &[u8],
        slot: Option<Slot>,
        key: Option<&[u8; 32]>,
        progress: &mut dyn FnMut(FlashProgress),
    ) -> Result<FlashUpdate, FlashError> {
        let slot = match slot {
            Some(s) => s,
            None => match self.flash_boot_status()?.active {
                Some(active) => active.other(),
                None => Slot::A,
            },
        };
        let header = self.flash_write_image(slot, image, key, progress)?;
        progress(FlashProgress {
            phase: FlashPhase::Activate,
            done: 0,
            total: HEADER_LEN as u64,
        });
        let (record, record_copy) = self.flash_activate(slot)?;
        progress(FlashProgress {
            phase: FlashPhase::Activate,
            done: HEADER_LEN as u64,
            total: HEADER_LEN as u64,
        });
        Ok(FlashUpdate {
            slot,
            header,
            record,
            record_copy,
        })
    }
}
