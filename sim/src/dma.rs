//! DMA: host memory the device reads and writes, as the simulator models it.
//!
//! On hardware the host maps buffers for the device's IOMMU through VFIO and gives the device
//! their I/O virtual addresses. Here the host allocates a [`DmaRegion`] (a shared anonymous
//! mapping: host memory) and maps it into the model's [`DmaSpace`], a small registry from
//! I/O virtual addresses to regions; the firmware's DMA engine ([`DmaEngine`]) resolves every
//! transfer through it, and a transfer outside every mapped region fails as it would on an
//! IOMMU. Both sides reach the memory only as 32-bit atomics, so host and model may run on
//! different threads.

use std::{
    ptr::NonNull,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use memmap2::{MmapOptions, MmapRaw};
use shadownet_firmware::ring::{Dma, DmaError};

/// First I/O virtual address handed out: above 4 GiB, so the `_HI` halves of the ring
/// address registers are exercised.
const IOVA_BASE: u64 = 0x1_0000_0000;
/// Mappings are aligned to 2 MiB, like huge-page IOMMU mappings.
const IOVA_ALIGN: u64 = 2 << 20;

/// A buffer of host memory the device may reach by DMA.
pub struct DmaRegion {
    map: MmapRaw,
    len: usize,
}

impl std::fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaRegion").field("len", &self.len).finish()
    }
}

impl DmaRegion {
    /// `len` bytes of zeroed host memory (rounded up to a multiple of 4).
    pub fn new(len: usize) -> std::io::Result<DmaRegion> {
        let len = len.max(4).next_multiple_of(4);
        let map = MmapOptions::new().len(len).map_anon()?;
        Ok(DmaRegion {
            map: MmapRaw::from(map),
            len,
        })
    }

    /// Bytes of the region.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: regions hold at least one word).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        let base = NonNull::new(self.map.as_mut_ptr())?;
        // SAFETY: the mapping is `len` bytes, page aligned, and lives as long as `self`;
        // `offset + 4 <= len` and `offset` is 4-aligned (checked above), so the pointer is an
        // aligned in-bounds u32. The memory is only ever accessed through these atomics (by
        // the host and the model alike), never as plain bytes, so there is no data race.
        Some(unsafe { AtomicU32::from_ptr(base.as_ptr().add(offset).cast::<u32>()) })
    }

    /// The word at byte `offset` (acquire: what was written before it is visible).
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        self.word(offset).map(|w| w.load(Ordering::Acquire))
    }

    /// Writes the word at byte `offset` (release: what was written before it is visible to
    /// a reader that sees it).
    pub fn write_u32(&self, offset: usize, value: u32) -> Option<()> {
        self.word(offset).map(|w| w.store(value, Ordering::Release))
    }

    /// The words of `len` bytes at `offset`, bounds and alignment checked once.
    fn words(&self, offset: usize, len: usize) -> Option<&[AtomicU32]> {
        if !offset.is_multiple_of(4)
            || !len.is_multiple_of(4)
            || offset.checked_add(len)? > self.len
        {
            return None;
        }
        let base = NonNull::new(self.map.as_mut_ptr())?;
        // SAFETY: as in `word`: `offset..offset + len` is inside the mapping and 4-aligned,
        // accessed only as atomics; the slice borrows `self`, which keeps the mapping alive.
        Some(unsafe {
            std::slice::from_raw_parts(base.as_ptr().add(offset).cast::<AtomicU32>(), len / 4)
        })
    }

    /// Copies bytes out, word by word (acquire).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        let words = self.words(offset, buf.len())?;
        for (w, chunk) in words.iter().zip(buf.chunks_exact_mut(4)) {
            chunk.copy_from_slice(&w.load(Ordering::Acquire).to_le_bytes());
        }
        Some(())
    }

    /// Copies bytes in, word by word in increasing address order (release).
    pub fn write(&self, offset: usize, buf: &[u8]) -> Option<()> {
        let words = self.words(offset, buf.len())?;
        for (w, chunk) in words.iter().zip(buf.chunks_exact(4)) {
            w.store(
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                Ordering::Release,
            );
        }
        Some(())
    }

    /// Writes words in increasing address order (release).
    pub fn write_words(&self, offset: usize, src: &[u32]) -> Option<()> {
        let words = self.words(offset, src.len() * 4)?;
        for (w, v) in words.iter().zip(src) {
            w.store(*v, Ordering::Release);
        }
        Some(())
    }
}

#[derive(Default)]
struct Mappings {
    regions: Vec<(u64, Arc<DmaRegion>)>,
    next: u64,
}

/// The device's DMA address space: which host regions are mapped at which I/O virtual
/// addresses. Cloning shares it (the host maps, the model's DMA engine resolves).
#[derive(Clone, Default)]
pub struct DmaSpace {
    mappings: Arc<Mutex<Mappings>>,
    /// Bumped by every unmap, so a DMA engine's cached resolution is dropped.
    epoch: Arc<AtomicU64>,
}

impl DmaSpace {
    /// Maps `region` for the device; returns its I/O virtual address.
    pub fn map(&self, region: Arc<DmaRegion>) -> u64 {
        let mut m = self.mappings.lock().unwrap_or_else(|p| p.into_inner());
        let iova = m.next.max(IOVA_BASE);
        m.next = iova + (region.len() as u64).next_multiple_of(IOVA_ALIGN);
        m.regions.push((iova, region));
        iova
    }

    /// Unmaps the region at `iova`; returns whether one was mapped there.
    pub fn unmap(&self, iova: u64) -> bool {
        let mut m = self.mappings.lock().unwrap_or_else(|p| p.into_inner());
        let before = m.regions.len();
        m.regions.retain(|(at, _)| *at != iova);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.regions.len() != before
    }

    fn resolve(&self, addr: u64, len: usize) -> Option<(u64, Arc<DmaRegion>)> {
        let m = self.mappings.lock().unwrap_or_else(|p| p.into_inner());
        m.regions
            .iter()
            .find(|(at, r)| addr >= *at && addr.saturating_add(len as u64) <= at + r.len() as u64)
            .cloned()
    }
}

/// The firmware's DMA engine over a [`DmaSpace`], remembering the last region it used so
/// that a ring's transfers do not look the address up each time.
pub struct DmaEngine {
    space: DmaSpace,
    cached: Option<(u64, Arc<DmaRegion>, u64)>,
}

impl DmaEngine {
    /// An engine for `space`.
    pub fn new(space: DmaSpace) -> DmaEngine {
        DmaEngine {
            space,
            cached: None,
        }
    }

    /// The address space.
    pub fn space(&self) -> &DmaSpace {
        &self.space
    }

    fn region(&mut self, addr: u64, len: usize) -> Result<(&DmaRegion, usize), DmaError> {
        if !addr.is_multiple_of(4) || !len.is_multiple_of(4) {
            return Err(DmaError::Misaligned { addr });
        }
        let epoch = self.space.epoch.load(Ordering::Acquire);
        let hit = self.cached.as_ref().is_some_and(|(at, r, e)| {
            *e == epoch && addr >= *at && addr.saturating_add(len as u64) <= at + r.len() as u64
        });
        if !hit {
            let (at, r) = self
                .space
                .resolve(addr, len)
                .ok_or(DmaError::Unmapped { addr, len })?;
            self.cached = Some((at, r, epoch));
        }
        match &self.cached {
            Some((at, r, _)) => Ok((r, (addr - at) as usize)),
            None => Err(DmaError::Unmapped { addr, len }),
        }
    }
}

impl Dma for DmaEngine {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let (r, off) = self.region(addr, buf.len())?;
        r.read(off, buf).ok_or(DmaError::Unmapped {
            addr,
            len: buf.len(),
        })
    }

    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let (r, off) = self.region(addr, buf.len())?;
        r.write(off, buf).ok_or(DmaError::Unmapped {
            addr,
            len: buf.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_resolve_through_the_mappings_and_fail_outside_them() {
        let space = DmaSpace::default();
        let a = Arc::new(DmaRegion::new(4096).expect("mmap"));
        let b = Arc::new(DmaRegion::new(64).expect("mmap"));
        let ia = space.map(a.clone());
        let ib = space.map(b.clone());
        assert!(ia >= IOVA_BASE && ib >= ia + 4096);
        let mut e = DmaEngine::new(space.clone());
        e.write(ia + 8, &[1, 2, 3, 4, 5, 6, 7, 8]).expect("mapped");
        assert_eq!(a.read_u32(8), Some(0x0403_0201));
        b.write_u32(60, 77).expect("in bounds");
        let mut w = [0u8; 4];
        e.read(ib + 60, &mut w).expect("mapped");
        assert_eq!(u32::from_le_bytes(w), 77);
        assert_eq!(
            e.read(ib + 64, &mut w),
            Err(DmaError::Unmapped {
                addr: ib + 64,
                len: 4
            })
        );
        assert_eq!(
            e.read(ia + 2, &mut w),
            Err(DmaError::Misaligned { addr: ia + 2 })
        );
        assert!(space.unmap(ia));
        assert!(!space.unmap(ia));
        assert!(
            e.read(ia, &mut w).is_err(),
            "the cached mapping was dropped"
        );
    }
}
