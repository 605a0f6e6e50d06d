//! The flash: its geometry, the A/B slot layout, the boot record, and the boot ROM's choice of
//! image.
//!
//! Layout (`hw/docs/flash.md`): sector 0 and sector 1 each hold one copy of the boot record;
//! slot A starts at sector 2 and slot B right after it, each [`FlashGeometry::slot_size`]
//! bytes. An image (an [`ImageHeader`] and its payload) sits at the
//! start of a slot.
//!
//! The boot record names the slot to boot, the header CRC of the image it activates, and a
//! sequence number. It is written in two copies, one per sector, and an update always
//! rewrites the copy that does *not* hold the newest record, so a power cut while it is
//! being erased or programmed leaves the newest intact record as it was. The boot ROM
//! ([`select_boot_slot`]) takes the newest valid record whose slot holds that image and the
//! image verifies (header CRC, payload CRC32 and SHA-256); failing that an older record; failing
//! that any slot whose image verifies.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::image::{HEADER_LEN, ImageError, ImageHeader};

/// One of the two image slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// Slot A (index 0).
    A = 0,
    /// Slot B (index 1).
    B = 1,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The slot of an index (0 A, 1 B).
    pub fn from_index(i: u32) -> Option<Slot> {
        match i {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

/// Largest number of bytes one PROGRAM or READ command moves (the FLASH data window).
pub const WINDOW_BYTES: usize = 256;

/// Why a geometry is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// The sector size is not a power of two of at least 256 bytes (one data window).
    SectorSize(u32),
    /// The slot size is zero or not a whole number of sectors.
    SlotSize(u32),
    /// Two boot-record sectors and two slots do not fit in the sectors the flash has.
    TooFewSectors {
        /// Sectors the layout needs.
        needed: u64,
        /// Sectors the flash has.
        count: u32,
    },
}

impl core::error::Error for GeometryError {}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::SectorSize(s) => write!(
                f,
                "sector size {s} is not a power of two of at least {WINDOW_BYTES} bytes"
            ),
            GeometryError::SlotSize(s) => {
                write!(f, "slot size {s} is not a non-zero whole number of sectors")
            }
            GeometryError::TooFewSectors { needed, count } => write!(
                f,
                "two boot-record sectors and two slots need {needed} sectors, the flash has {count}"
            ),
        }
    }
}

/// The flash's shape, as the FLASH block reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashGeometry {
    /// Bytes per erase sector.
    pub sector_size: u32,
    /// Number of sectors.
    pub sector_count: u32,
    /// Bytes per image slot (a whole number of sectors).
    pub slot_size: u32,
}

impl FlashGeometry {
    /// The NIC's flash: 130 sectors of 4 KiB (two boot-record sectors and two 256 KiB slots).
    /// These are the SVD's reset values of `SECTOR_SIZE`, `SECTOR_COUNT` and `SLOT_SIZE`.
    pub const DEFAULT: FlashGeometry = FlashGeometry {
        sector_size: 4096,
        sector_count: 130,
        slot_size: 256 * 1024,
    };

    /// Checks that the layout fits.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if !self.sector_size.is_power_of_two() || (self.sector_size as usize) < WINDOW_BYTES {
            return Err(GeometryError::SectorSize(self.sector_size));
        }
        if self.slot_size == 0 || !self.slot_size.is_multiple_of(self.sector_size) {
            return Err(GeometryError::SlotSize(self.slot_size));
        }
        let needed = 2 + 2 * u64::from(self.slot_size / self.sector_size);
        if needed > u64::from(self.sector_count) {
            return Err(GeometryError::TooFewSectors {
                needed,
                count: self.sector_count,
            });
        }
        Ok(())
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.sector_size) * u64::from(self.sector_count)
    }

    /// Sector holding byte `addr`.
    pub fn sector_of(&self, addr: u32) -> u32 {
        addr / self.sector_size
    }

    /// Sectors per slot.
    pub fn slot_sectors(&self) -> u32 {
        self.slot_size / self.sector_size
    }

    /// Byte address of boot-record copy `copy` (0 or 1): the start of sector `copy`.
    pub fn record_addr(&self, copy: usize) -> u32 {
        copy as u32 * self.sector_size
    }

    /// Byte address of the start of `slot`.
    pub fn slot_addr(&self, slot: Slot) -> u32 {
        2 * self.sector_size + slot as u32 * self.slot_size
    }

    /// The largest image (header and payload) a slot holds.
    pub fn max_image_len(&self) -> usize {
        self.slot_size as usize
    }
}

/// Length of a boot record.
pub const BOOT_RECORD_LEN: usize = 24;
/// `"SNBR"`: shadownet boot record.
pub const BOOT_RECORD_MAGIC: [u8; 4] = *b"SNBR";

/// A boot record: which slot to boot, and which image it is expected to hold.
///
/// | bytes | field |
/// |---|---|
/// | 0..4 | magic `"SNBR"` |
/// | 4..8 | sequence number, u32 LE (the higher is newer) |
/// | 8 | slot (0 A, 1 B) |
/// | 9..12 | reserved, 0 |
/// | 12..16 | build id of the image |
/// | 16..20 | header CRC of the image ([`ImageHeader::header_crc`]) |
/// | 20..24 | CRC32 of bytes 0..20 |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRecord {
    /// Sequence number.
    pub seq: u32,
    /// The slot to boot.
    pub slot: Slot,
    /// Build id of the image activated (for reports).
    pub build_id: u32,
    /// Header CRC of the image activated: a record names one image, not whatever the slot
    /// holds later.
    pub header_crc: u32,
}

impl BootRecord {
    /// The record's bytes.
    pub fn to_bytes(&self) -> [u8; BOOT_RECORD_LEN] {
        let mut b = [0; BOOT_RECORD_LEN];
        b[0..4].copy_from_slice(&BOOT_RECORD_MAGIC);
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8] = self.slot as u8;
        b[12..16].copy_from_slice(&self.build_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.header_crc.to_le_bytes());
        let crc = crate::image::crc32(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a record; `None` when the bytes are not a whole, intact record (erased, torn,
    /// never written).
    pub fn parse(b: &[u8]) -> Option<BootRecord> {
        let b = b.get(..BOOT_RECORD_LEN)?;
        if b[0..4] != BOOT_RECORD_MAGIC || b[9..12] != [0; 3] {
            return None;
        }
        let le = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if le(20) != crate::image::crc32(&b[..20]) {
            return None;
        }
        Some(BootRecord {
            seq: le(4),
            slot: Slot::from_index(u32::from(b[8]))?,
            build_id: le(12),
            header_crc: le(16),
        })
    }
}

/// How the boot ROM chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootOutcome {
    /// The newest valid record's slot.
    Record,
    /// An older valid record's slot (the newest one's did not verify).
    OlderRecord,
    /// No record named a slot that verifies; the first slot that does.
    Fallback,
}

/// The image the boot ROM booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Booted {
    /// The slot.
    pub slot: Slot,
    /// How it was chosen.
    pub outcome: BootOutcome,
    /// Sequence number of the record used (`None` for a fallback).
    pub record_seq: Option<u32>,
    /// The image's header.
    pub header: ImageHeader,
}

/// What the boot ROM found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootChoice {
    /// The image booted, or `None` when no slot holds an image that verifies.
    pub booted: Option<Booted>,
    /// The two boot-record copies, each `None` if not intact.
    pub records: [Option<BootRecord>; 2],
}

/// Why a slot does not hold a bootable image.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotError<E> {
    /// Reading the flash failed.
    Read(E),
    /// The image does not verify.
    Image(ImageError),
    /// The header states a payload longer than the slot.
    TooLong {
        /// Payload length stated.
        payload_len: u32,
    },
}

impl<E: fmt::Display> fmt::Display for SlotError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::Read(e) => write!(f, "reading the flash: {e}"),
            SlotError::Image(e) => write!(f, "{e}"),
            SlotError::TooLong { payload_len } => {
                write!(
                    f,
                    "header states a {payload_len}-byte payload, longer than the slot"
                )
            }
        }
    }
}

/// Verifies the image at the start of `slot`: header, then the payload's CRC32 and SHA-256,
/// streamed in window-sized reads (no buffer for the whole image). `read(addr, buf)` fills
/// `buf` with the flash bytes at `addr`.
pub fn verify_slot<E>(
    geometry: &FlashGeometry,
    slot: Slot,
    read: &mut impl FnMut(u32, &mut [u8]) -> Result<(), E>,
) -> Result<ImageHeader, SlotError<E>> {
    let base = geometry.slot_addr(slot);
    let mut head = [0u8; HEADER_LEN];
    read(base, &mut head).map_err(SlotError::Read)?;
    let header = ImageHeader::parse(&head).map_err(SlotError::Image)?;
    if header.payload_len as usize > geometry.slot_size as usize - HEADER_LEN {
        return Err(SlotError::TooLong {
            payload_len: header.payload_len,
        });
    }
    let mut crc = crc32fast::Hasher::new();
    let mut sha = Sha256::new();
    let mut buf = [0u8; WINDOW_BYTES];
    let mut done = 0usize;
    let len = header.payload_len as usize;
    while done < len {
        let n = (len - done).min(WINDOW_BYTES);
        read(base + (HEADER_LEN + done) as u32, &mut buf[..n]).map_err(SlotError::Read)?;
        crc.update(&buf[..n]);
        sha.update(&buf[..n]);
        done += n;
    }
    let computed = crc.finalize();
    if computed != header.payload_crc {
        return Err(SlotError::Image(ImageError::PayloadCrc {
            stated: header.payload_crc,
            computed,
        }));
    }
    let digest: [u8; 32] = sha.finalize().into();
    if digest != header.payload_sha {
        return Err(SlotError::Image(ImageError::PayloadSha));
    }
    Ok(header)
}

/// `read(addr, buf)`: fills `buf` with the flash bytes at `addr`.
type Reader<'a, E> = dyn FnMut(u32, &mut [u8]) -> Result<(), E> + 'a;

/// Reads both boot-record copies.
pub fn read_records<E>(
    geometry: &FlashGeometry,
    read: &mut impl FnMut(u32, &mut [u8]) -> Result<(), E>,
) -> Result<[Option<BootRecord>; 2], E> {
    let mut records = [None; 2];
    for (copy, r) in records.iter_mut().enumerate() {
        let mut b = [0u8; BOOT_RECORD_LEN];
        read(geometry.record_addr(copy), &mut b)?;
        *r = BootRecord::parse(&b);
    }
    Ok(records)
}

/// The boot ROM's choice: the newest valid boot record whose slot holds the image it names
/// and that image verifies; else an older valid record's; else (fallback) the other slot of
/// the newest record, then its own slot (A then B when there is no valid record), if the image
/// there verifies. Only a read error is an error; no bootable image is `booted: None`.
pub fn select_boot_slot<E>(
    geometry: &FlashGeometry,
    mut read: impl FnMut(u32, &mut [u8]) -> Result<(), E>,
) -> Result<BootChoice, E> {
    let records = read_records(geometry, &mut read)?;
    let mut by_age: [Option<BootRecord>; 2] = records;
    if let [Some(a), Some(b)] = by_age
        && b.seq > a.seq
    {
        by_age = [Some(b), Some(a)];
    } else if by_age[0].is_none() {
        by_age = [by_age[1], None];
    }
    let mut checked: [Option<Option<ImageHeader>>; 2] = [None; 2];
    let mut check = |slot: Slot, read: &mut Reader<'_, E>| {
        if let Some(known) = checked[slot as usize] {
            return Ok(known);
        }
        let got = match verify_slot(geometry, slot, &mut |a, b: &mut [u8]| read(a, b)) {
            Ok(h) => Some(h),
            Err(SlotError::Read(e)) => return Err(e),
            Err(_) => None,
        };
        checked[slot as usize] = Some(got);
        Ok(got)
    };
    for (age, record) in by_age.iter().enumerate() {
        let Some(record) = record else { continue };
        if let Some(header) = check(record.slot, &mut read)?
            && header.header_crc() == record.header_crc
        {
            return Ok(BootChoice {
                booted: Some(Booted {
                    slot: record.slot,
                    outcome: if age == 0 {
                        BootOutcome::Record
                    } else {
                        BootOutcome::OlderRecord
                    },
                    record_seq: Some(record.seq),
                    header,
                }),
                records,
            });
        }
    }
    let order = match by_age[0] {
        Some(r) => [r.slot.other(), r.slot],
        None => Slot::ALL,
    };
    for slot in order {
        if let Some(header) = check(slot, &mut read)? {
            return Ok(BootChoice {
                booted: Some(Booted {
                    slot,
                    outcome: BootOutcome::Fallback,
                    record_seq: None,
                    header,
                }),
                records,
            });
        }
    }
    Ok(BootChoice {
        booted: None,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Target;

    const G: FlashGeometry = FlashGeometry {
        sector_size: 256,
        sector_count: 2 + 2 * 4,
        slot_size: 1024,
    };

    struct Mem([u8; 2560]);

    impl Mem {
        fn read(&self) -> impl FnMut(u32, &mut [u8]) -> Result<(), core::convert::Infallible> + '_ {
            |a, b: &mut [u8]| {
                b.copy_from_slice(&self.0[a as usize..a as usize + b.len()]);
                Ok(())
            }
        }

        fn put_image(&mut self, slot: Slot, build_id: u32) -> ImageHeader {
            let payload = [build_id as u8; 300];
            let h =
                ImageHeader::for_payload(&payload, Target::Host, build_id, 0, 0).expect("small");
            let at = G.slot_addr(slot) as usize;
            self.0[at..at + HEADER_LEN].copy_from_slice(&h.to_bytes());
            self.0[at + HEADER_LEN..at + HEADER_LEN + 300].copy_from_slice(&payload);
            h
        }

        fn put_record(&mut self, copy: usize, seq: u32, slot: Slot, h: &ImageHeader) {
            let r = BootRecord {
                seq,
                slot,
                build_id: h.build_id,
                header_crc: h.header_crc(),
            };
            let at = G.record_addr(copy) as usize;
            self.0[at..at + BOOT_RECORD_LEN].copy_from_slice(&r.to_bytes());
        }
    }

    fn boot(m: &Mem) -> BootChoice {
        match select_boot_slot(&G, m.read()) {
            Ok(c) => c,
            Err(e) => match e {},
        }
    }

    #[test]
    fn flash_registers_are_where_the_doc_page_says_and_reset_to_the_default_geometry() {
        use crate::regs::{self, generic::Resettable};
        assert_eq!(
            <regs::flash::sector_size::SectorSizeSpec as Resettable>::RESET_VALUE,
            FlashGeometry::DEFAULT.sector_size
        );
        assert_eq!(
            <regs::flash::sector_count::SectorCountSpec as Resettable>::RESET_VALUE,
            FlashGeometry::DEFAULT.sector_count
        );
        assert_eq!(
            <regs::flash::slot_size::SlotSizeSpec as Resettable>::RESET_VALUE,
            FlashGeometry::DEFAULT.slot_size
        );
        assert_eq!(
            <regs::flash::blk_version::BlkVersionSpec as Resettable>::RESET_VALUE,
            1
        );
        #[repr(C, align(4096))]
        struct Page([u8; crate::BAR_SIZE]);
        let mut page = Page([0; crate::BAR_SIZE]);
        let base = core::ptr::NonNull::new(page.0.as_mut_ptr()).expect("not null");
        // SAFETY: `page` outlives the view; only addresses are taken.
        let v = unsafe { crate::RegisterView::new(base, crate::BAR_SIZE).expect("valid") };
        let r = v.flash();
        let block = base.as_ptr() as usize + 0x1_0000;
        let at = |p: *const u8| p as usize - block;
        assert_eq!(at(r.addr() as *const _ as *const u8), 0x18);
        assert_eq!(at(r.cmd() as *const _ as *const u8), 0x20);
        assert_eq!(at(r.status() as *const _ as *const u8), 0x24);
        assert_eq!(at(r.active_slot() as *const _ as *const u8), 0x28);
        assert_eq!(at(r.wear_max() as *const _ as *const u8), 0x3C);
        assert_eq!(at(r.busy_cycles_hi() as *const _ as *const u8), 0x4C);
        assert_eq!(at(r.data(0) as *const _ as *const u8), 0x100);
        assert_eq!(at(r.data(63) as *const _ as *const u8), 0x1FC);
        assert_eq!(WINDOW_BYTES, 64 * 4);
    }

    #[test]
    fn geometry_layout_and_validation() {
        G.validate().expect("test geometry fits");
        FlashGeometry::DEFAULT.validate().expect("default fits");
        assert_eq!(FlashGeometry::DEFAULT.size(), 130 * 4096);
        assert_eq!(G.slot_addr(Slot::A), 512);
        assert_eq!(G.slot_addr(Slot::B), 1536);
        assert_eq!(G.record_addr(1), 256);
        let bad = FlashGeometry {
            sector_count: 9,
            ..G
        };
        assert_eq!(
            bad.validate(),
            Err(GeometryError::TooFewSectors {
                needed: 10,
                count: 9
            })
        );
        assert!(
            FlashGeometry {
                slot_size: 1000,
                ..G
            }
            .validate()
            .is_err()
        );
        assert!(
            FlashGeometry {
                sector_size: 300,
                ..G
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn boot_record_round_trip_and_torn_copies() {
        let r = BootRecord {
            seq: 7,
            slot: Slot::B,
            build_id: 3,
            header_crc: 0xDEAD_BEEF,
        };
        let b = r.to_bytes();
        assert_eq!(&b[0..4], b"SNBR");
        assert_eq!(&b[4..8], &[7, 0, 0, 0]);
        assert_eq!(b[8], 1);
        assert_eq!(BootRecord::parse(&b), Some(r));
        for i in 0..BOOT_RECORD_LEN {
            let mut torn = b;
            torn[i] ^= 0x01;
            assert_eq!(BootRecord::parse(&torn), None, "byte {i} damaged");
        }
        assert_eq!(BootRecord::parse(&[0xFF; BOOT_RECORD_LEN]), None);
    }

    #[test]
    fn newest_valid_record_wins_then_older_then_fallback() {
        let mut m = Mem([0xFF; 2560]);
        assert_eq!(boot(&m).booted, None, "an erased flash boots nothing");
        let a = m.put_image(Slot::A, 1);
        assert_eq!(
            boot(&m).booted.map(|b| (b.slot, b.outcome)),
            Some((Slot::A, BootOutcome::Fallback))
        );
        m.put_record(0, 1, Slot::A, &a);
        let b = m.put_image(Slot::B, 2);
        m.put_record(1, 2, Slot::B, &b);
        let c = boot(&m);
        assert_eq!(
            c.booted.map(|b| (b.slot, b.record_seq)),
            Some((Slot::B, Some(2)))
        );
        assert_eq!(c.booted.map(|b| b.outcome), Some(BootOutcome::Record));
        // Slot B damaged: the older record's slot A.
        m.0[G.slot_addr(Slot::B) as usize + HEADER_LEN + 5] ^= 1;
        let c = boot(&m);
        assert_eq!(
            c.booted.map(|b| (b.slot, b.outcome)),
            Some((Slot::A, BootOutcome::OlderRecord))
        );
        // The newest record torn: the other copy still names A.
        m.put_image(Slot::B, 2);
        m.0[G.record_addr(1) as usize + 3] = 0;
        assert_eq!(boot(&m).booted.map(|b| b.slot), Some(Slot::A));
        assert_eq!(boot(&m).records[1], None);
        // A record that names an image the slot no longer holds is not followed.
        let mut m2 = Mem([0xFF; 2560]);
        let old = m2.put_image(Slot::A, 1);
        m2.put_record(0, 5, Slot::B, &old);
        m2.put_image(Slot::B, 9);
        let c = boot(&m2);
        assert_eq!(
            c.booted.map(|b| (b.slot, b.outcome)),
            Some((Slot::A, BootOutcome::Fallback))
        );
    }
}
