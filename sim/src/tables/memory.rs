//! Table memory: a dedicated zero-filled anonymous mapping backed by huge pages where the
//! kernel allows it. Multi-million-slot tables are looked up at random; with 4 KiB pages
//! nearly every lookup would also miss the TLB.

use bytemuck::Pod;
use memmap2::{Advice, MmapMut, MmapOptions};

/// An array of `T` in its own mapping.
pub struct TableMemory<T> {
    map: MmapMut,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Pod> TableMemory<T> {
    /// `len` zeroed elements. Falls back to the heap's alignment rules only through
    /// bytemuck's checks: a mapping is page aligned, which suits every table element.
    pub fn zeroed(len: usize) -> std::io::Result<TableMemory<T>> {
        let bytes = (len * std::mem::size_of::<T>()).max(1);
        let map = MmapOptions::new().len(bytes).map_anon()?;
        // Huge pages are a performance hint; without them the table still works.
        let _ = map.advise(Advice::HugePage);
        Ok(TableMemory {
            map,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// The elements.
    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        &bytemuck::cast_slice(&self.map[..])[..self.len]
    }

    /// The elements, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut(&mut self.map[..])[..self.len]
    }
}
