//! DMA memory and MSI-X vectors of a VFIO device.
//!
//! DMA memory is host memory: an anonymous memmap2 mapping, mapped for the IOMMU at an IOVA
//! taken from an [`IovaAllocator`]. The device may write it at any time, so it is reached
//! through raw pointers only (volatile word accesses and byte copies), never as a slice.

use std::{
    collections::BTreeMap,
    ops::Range,
    ptr,
    sync::{Arc, Mutex, MutexGuard},
};

use memmap2::{MmapOptions, MmapRaw};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{PciAddress, VfioError, VfioHandle};

/// Granule of DMA mappings and IOVAs: the IOMMU maps whole pages.
pub const PAGE: u64 = 4096;

/// First-fit allocator of IO virtual addresses in a window, in pages.
#[derive(Clone, Debug)]
pub struct IovaAllocator {
    window: Range<u64>,
    /// Free ranges: start -> length, coalesced.
    free: BTreeMap<u64, u64>,
}

impl IovaAllocator {
    /// An allocator over `window` (rounded inwards to pages).
    pub fn new(window: Range<u64>) -> IovaAllocator {
        let start = window.start.div_ceil(PAGE) * PAGE;
        let end = window.end / PAGE * PAGE;
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        IovaAllocator {
            window: start..end.max(start),
            free,
        }
    }

    /// The window.
    pub fn window(&self) -> Range<u64> {
        self.window.clone()
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// Takes `size` bytes, rounded up to a multiple of [`PAGE`]; `size` must be above 0 and
    /// at most [`MAX_DMA`].
    pub fn alloc(&mut self, size: u64) -> Result<u64, VfioError> {
        if size == 0 || size > MAX_DMA {
            return Err(VfioError::DmaSize {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                max: MAX_DMA,
            });
        }
        let size = size.div_ceil(PAGE) * PAGE;
        let found = self
            .free
            .iter()
            .find(|&(_, &len)| len >= size)
            .map(|(&s, &l)| (s, l));
        let Some((start, len)) = found else {
            return Err(VfioError::IovaExhausted {
                requested: size,
                start: self.window.start,
                end: self.window.end,
                largest_free: self.free.values().copied().max().unwrap_or(0),
            });
        };
        self.free.remove(&start);
        if len > size {
            self.free.insert(start + size, len - size);
        }
        Ok(start)
    }

    /// Gives back a range taken by [`IovaAllocator::alloc`] (with the page-rounded size).
    pub fn release(&mut self, start: u64, size: u64) {
        let mut start = start;
        let mut size = size;
        // Merge with the free range that ends where this one starts…
        if let Some((&prev, &plen)) = self.free.range(..start).next_back()
            && prev + plen == start
        {
            self.free.remove(&prev);
            start = prev;
            size += plen;
        }
        // …and with the one that starts where it ends.
        if let Some(&nlen) = self.free.get(&(start + size)) {
            self.free.remove(&(start + size));
            size += nlen;
        }
        self.free.insert(start, size);
    }
}

pub(crate) type SharedIova = Arc<Mutex<IovaAllocator>>;

fn lock(a: &SharedIova) -> MutexGuard<'_, IovaAllocator> {
    // The allocator's state is consistent between calls, so a panic elsewhere while holding
    // the lock leaves nothing half-done.
    a.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Host memory the device reaches by DMA at [`DmaRegion::iova`]. Unmapped from the IOMMU
/// and freed on drop.
pub struct DmaRegion {
    map: MmapRaw,
    iova: u64,
    size: u64,
    handle: Arc<dyn VfioHandle>,
    allocator: SharedIova,
}

impl std::fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaRegion")
            .field("iova", &format_args!("{:#x}", self.iova))
            .field("len", &self.map.len())
            .finish()
    }
}

/// Largest DMA buffer accepted in one piece (1 GiB).
pub const MAX_DMA: u64 = 1 << 30;

impl DmaRegion {
    pub(crate) fn new(
        device: PciAddress,
        size: usize,
        handle: Arc<dyn VfioHandle>,
        allocator: SharedIova,
    ) -> Result<DmaRegion, VfioError> {
        if size == 0 || size as u64 > MAX_DMA {
            return Err(VfioError::DmaSize { size, max: MAX_DMA });
        }
        let rounded = (size as u64).div_ceil(PAGE) * PAGE;
        let iova = lock(&allocator).alloc(rounded)?;
        let map = match MmapOptions::new().len(rounded as usize).map_anon() {
            Ok(m) => MmapRaw::from(m),
            Err(source) => {
                lock(&allocator).release(iova, rounded);
                return Err(VfioError::Map {
                    device,
                    what: "DMA memory",
                    source,
                });
            }
        };
        if let Err(e) = handle.dma_map(iova, &map) {
            lock(&allocator).release(iova, rounded);
            return Err(e);
        }
        tracing::debug!(%device, iova, size = rounded, "DMA region mapped");
        Ok(DmaRegion {
            map,
            iova,
            size: rounded,
            handle,
            allocator,
        })
    }

    /// The address the device uses for the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Size in bytes (a multiple of [`PAGE`]).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The host address of the first byte, for code that reaches it through raw pointers.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), VfioError> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.len()) || !offset.is_multiple_of(align) {
            return Err(VfioError::DmaBounds {
                offset,
                len,
                size: self.len(),
            });
        }
        Ok(())
    }

    /// Reads the 32-bit little-endian word at `offset` (4-aligned).
    pub fn read_u32(&self, offset: usize) -> Result<u32, VfioError> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-aligned (checked; the mapping is page aligned); the memory
        // stays mapped while `self` lives. Volatile because the device writes it.
        Ok(u32::from_le(unsafe {
            self.as_ptr().add(offset).cast::<u32>().read_volatile()
        }))
    }

    /// Writes the 32-bit little-endian word at `offset` (4-aligned).
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), VfioError> {
        self.check(offset, 4, 4)?;
        // SAFETY: as for `read_u32`.
        unsafe {
            self.as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value.to_le())
        };
        Ok(())
    }

    /// Copies `out.len()` bytes from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), VfioError> {
        self.check(offset, out.len(), 1)?;
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        // SAFETY: the source range is inside the mapping (checked) and the destination is a
        // distinct Rust buffer; a raw copy creates no reference to the DMA memory.
        unsafe { ptr::copy_nonoverlapping(self.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` to `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), VfioError> {
        self.check(offset, data.len(), 1)?;
        // SAFETY: as for `read`, in the other direction.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len()) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        match self.handle.dma_unmap(self.iova, self.size) {
            Ok(()) => lock(&self.allocator).release(self.iova, self.size),
            // The IOMMU may still point at these pages: never hand the IOVA out again. The
            // pages stay pinned by the kernel, so the device cannot reach reused memory.
            Err(e) => tracing::error!(
                iova = self.iova,
                "DMA unmap failed, IOVA range retired: {e}"
            ),
        }
    }
}

/// MSI-X vectors routed to eventfds; MSI-X is disabled on drop.
pub struct MsixVectors {
    fds: Vec<EventFd>,
    handle: Arc<dyn VfioHandle>,
}

impl MsixVectors {
    pub(crate) fn enable(
        device: PciAddress,
        count: u32,
        handle: Arc<dyn VfioHandle>,
    ) -> Result<MsixVectors, VfioError> {
        let available = handle.msix_count();
        if count == 0 || count > available {
            return Err(VfioError::MsixVectors {
                device,
                requested: count,
                available,
            });
        }
        let fds = (0..count)
            .map(|_| EventFd::new(EFD_NONBLOCK).map_err(VfioError::EventFd))
            .collect::<Result<Vec<_>, _>>()?;
        handle.enable_msix(&fds.iter().collect::<Vec<_>>())?;
        tracing::debug!(%device, count, "MSI-X enabled");
        Ok(MsixVectors { fds, handle })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Always false: at least one vector is enabled.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The eventfd of vector `i` (to poll or hand to an event loop).
    pub fn eventfd(&self, i: usize) -> Option<&EventFd> {
        self.fds.get(i)
    }

    /// How many times vector `i` fired since the last call (0 when it did not), without
    /// blocking.
    pub fn take(&self, i: usize) -> std::io::Result<u64> {
        let fd = self.fds.get(i).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no MSI-X vector {i} (have {})", self.fds.len()),
            )
        })?;
        match fd.read() {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl Drop for MsixVectors {
    fn drop(&mut self) {
        if let Err(e) = self.handle.disable_msix() {
            tracing::error!("disabling MSI-X: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_first_fit_coalesces_and_reports_exhaustion() {
        let mut a = IovaAllocator::new(0x1000..0x9000); // 8 pages
        let x = a.alloc(0x2000).expect("fits");
        let y = a.alloc(0x3000).expect("fits");
        let z = a.alloc(0x3000).expect("fits");
        assert_eq!((x, y, z), (0x1000, 0x3000, 0x6000));
        let err = a.alloc(1).expect_err("full");
        assert!(err.to_string().contains("IOVA space exhausted"), "{err}");
        a.release(y, 0x3000);
        a.release(x, 0x2000);
        // x and y merged: 5 pages at 0x1000.
        assert_eq!(a.alloc(0x5000).expect("merged"), 0x1000);
        a.release(0x1000, 0x5000);
        a.release(z, 0x3000);
        assert_eq!(a.free_bytes(), 0x8000);
        assert_eq!(a.alloc(0x7001).expect("whole window, rounded up"), 0x1000);
        assert!(a.alloc(0).is_err());
    }

    #[test]
    fn allocator_rounds_the_window_to_pages() {
        let a = IovaAllocator::new(0x1001..0x5fff);
        assert_eq!(a.window(), 0x2000..0x5000);
        assert_eq!(a.free_bytes(), 0x3000);
        let empty = IovaAllocator::new(0x1001..0x1fff);
        assert_eq!(empty.free_bytes(), 0);
    }
}
