//! The cores' view of the device: the register BAR, table memory, rule memory and the
//! host-memory DMA window, at the addresses of the memory map. This module holds the image's
//! only `unsafe`: turning those addresses into references.

use core::ptr::NonNull;

use shadownet_firmware::{
    ChangeCounter,
    command::{ExactAccess, TableHw, Window},
    ring::{Dma, DmaError},
    tables::exact::ExactTable,
};
use shadownet_hw::{
    BAR_SIZE, DeviceView,
    device_regs::tbl_cmd::cmd::TableOp,
    layout::{
        WINDOW_WORDS, acl::AclAction, mirror_filter::MirrorAction, rule::RuleMatch,
        vport::VportEntry,
    },
    table::{
        TableId, TableKind,
        exact::{Slot, WAYS},
    },
};

/// One entry of rule memory (VPORT, ACL, MIRROR_FILTER): what the pipeline's comparators
/// load. `valid` is written last.
#[repr(C)]
#[derive(Clone, Copy)]
struct RuleEntry {
    key: Window,
    value: Window,
    valid: u32,
}

const fn slots(t: TableId) -> usize {
    match t.kind() {
        TableKind::Exact { buckets_log2 } => (1usize << buckets_log2) * WAYS,
        TableKind::Indexed { slots } => slots as usize,
    }
}

/// Byte offset of table `t`'s tags in table memory; its slots follow them, 64-byte aligned.
const fn exact_offset(t: TableId) -> usize {
    let order = [TableId::Vni, TableId::Map, TableId::ShadowMap];
    let mut at = 0;
    let mut i = 0;
    while i < order.len() {
        if order[i] as u8 == t as u8 {
            return at;
        }
        let n = slots(order[i]);
        at += (n * 4).next_multiple_of(64) + n * core::mem::size_of::<Slot>();
        i += 1;
    }
    at
}

const TABLE_MEMORY: usize = exact_offset(TableId::Acl);

const fn rule_offset(t: TableId) -> usize {
    let e = core::mem::size_of::<RuleEntry>();
    match t {
        TableId::Vport => 0,
        TableId::Acl => slots(TableId::Vport) * e,
        _ => (slots(TableId::Vport) + slots(TableId::Acl)) * e,
    }
}

const RULE_MEMORY: usize =
    (slots(TableId::Vport) + slots(TableId::Acl) + slots(TableId::MirrorFilter))
        * core::mem::size_of::<RuleEntry>();

// The regions of memory.x hold what this layout needs: table memory (0x8000_0000) ends before
// the DMA window (0xC000_0000), rule memory (0x6000_0000) before table memory.
const _: () = assert!(TABLE_MEMORY <= 0x4000_0000);
const _: () = assert!(RULE_MEMORY <= 0x2000_0000);

#[cfg(target_arch = "riscv32")]
mod regions {
    unsafe extern "C" {
        static __shadownic_bar: u8;
        static __table_memory: u8;
        static __rule_memory: u8;
        static __dma_window: u8;
        static __dma_window_size: u8;
    }
    pub fn bar() -> *mut u8 {
        (&raw const __shadownic_bar).cast_mut()
    }
    pub fn tables() -> *mut u8 {
        (&raw const __table_memory).cast_mut()
    }
    pub fn rules() -> *mut u8 {
        (&raw const __rule_memory).cast_mut()
    }
    pub fn dma() -> (*mut u8, usize) {
        (
            (&raw const __dma_window).cast_mut(),
            (&raw const __dma_window_size) as usize,
        )
    }
}

#[cfg(not(target_arch = "riscv32"))]
mod regions {
    //! The host build has no device behind the image: the regions are zeroed statics of the
    //! same sizes (in .bss, so the file stays small).
    use super::{BAR_SIZE, RULE_MEMORY, TABLE_MEMORY};

    #[repr(C, align(4096))]
    struct Region<const N: usize>([u8; N]);

    static mut BAR: Region<BAR_SIZE> = Region([0; BAR_SIZE]);
    static mut TABLES: Region<TABLE_MEMORY> = Region([0; TABLE_MEMORY]);
    static mut RULES: Region<RULE_MEMORY> = Region([0; RULE_MEMORY]);
    const DMA_SIZE: usize = 1 << 20;
    static mut DMA: Region<DMA_SIZE> = Region([0; DMA_SIZE]);

    pub fn bar() -> *mut u8 {
        (&raw mut BAR).cast()
    }
    pub fn tables() -> *mut u8 {
        (&raw mut TABLES).cast()
    }
    pub fn rules() -> *mut u8 {
        (&raw mut RULES).cast()
    }
    pub fn dma() -> (*mut u8, usize) {
        ((&raw mut DMA).cast(), DMA_SIZE)
    }
}

/// The device as the cores reach it. Only one exists ([`Board::take`] is called once, from
/// the entry point).
pub struct Board {
    tables: Tables,
    dma: DmaWindow,
    changes: Changes,
}

/// Table memory and rule memory.
pub struct Tables {
    memory: *mut u8,
    rules: *mut u8,
    occupancy: [u32; TableId::ALL.len()],
}

/// The host-memory DMA window (I/O virtual address = offset in the window).
pub struct DmaWindow {
    base: *mut u8,
    len: usize,
}

/// Table changes counted by the cores.
#[derive(Default)]
pub struct Changes([u32; TableId::ALL.len()]);

impl ChangeCounter for Changes {
    fn changed(&mut self, table: TableId, _: TableOp) {
        self.0[table as usize] = self.0[table as usize].wrapping_add(1);
    }
}

impl Board {
    /// The board, from the memory map.
    pub fn take() -> Board {
        let (base, len) = regions::dma();
        Board {
            tables: Tables {
                memory: regions::tables(),
                rules: regions::rules(),
                occupancy: [0; TableId::ALL.len()],
            },
            dma: DmaWindow { base, len },
            changes: Changes::default(),
        }
    }

    /// The register blocks.
    pub fn registers(&self) -> DeviceView<'static> {
        let bar = NonNull::new(regions::bar()).unwrap_or(NonNull::dangling());
        // SAFETY: the memory map reserves BAR_SIZE bytes at this page-aligned address for the
        // register blocks, for the whole life of the image, and the firmware reaches them only
        // through the register view (volatile accesses).
        match unsafe { DeviceView::new(bar, BAR_SIZE) } {
            Ok(v) => v,
            Err(_) => panic!("the memory map's BAR is misplaced"),
        }
    }

    /// What one service slice needs.
    pub fn parts(&mut self) -> (&mut Tables, &mut DmaWindow, &mut Changes) {
        (&mut self.tables, &mut self.dma, &mut self.changes)
    }
}

impl Tables {
    fn rule(&mut self, t: TableId, index: u32) -> Option<&mut RuleEntry> {
        if index as usize >= slots(t) {
            return None;
        }
        let at = rule_offset(t) + index as usize * core::mem::size_of::<RuleEntry>();
        // SAFETY: rule memory is RULE_MEMORY bytes reserved for the cores' rule entries; `at`
        // addresses a whole entry of table t inside it (index < slots(t)), 4-byte aligned
        // (entries are u32 arrays at multiples of their size). Only this code writes it.
        Some(unsafe { &mut *self.rules.add(at).cast::<RuleEntry>() })
    }

    fn write_rule(&mut self, t: TableId, index: u32, key: &Window, value: &Window) -> bool {
        let Some(e) = self.rule(t, index) else {
            return false;
        };
        let replaced = e.valid != 0;
        e.valid = 0;
        e.key = *key;
        e.value = *value;
        e.valid = 1;
        if !replaced {
            self.occupancy[t as usize] += 1;
        }
        replaced
    }
}

impl TableHw for Tables {
    fn exact(&mut self, table: TableId) -> Option<ExactAccess<'_>> {
        let TableKind::Exact { buckets_log2 } = table.kind() else {
            return None;
        };
        let n = slots(table);
        let at = exact_offset(table);
        let slots_at = at + (n * 4).next_multiple_of(64);
        // SAFETY: table memory holds, for each exact table, n tags then n 64-byte-aligned
        // slots at these offsets (exact_offset lays them out without overlap, TABLE_MEMORY
        // covers them all); the two slices are disjoint and only the firmware writes them.
        let (tags, slots) = unsafe {
            (
                core::slice::from_raw_parts_mut(self.memory.add(at).cast::<u32>(), n),
                core::slice::from_raw_parts_mut(self.memory.add(slots_at).cast::<Slot>(), n),
            )
        };
        let table_memory = ExactTable::new(buckets_log2, tags, slots).ok()?;
        Some(ExactAccess {
            table: table_memory,
            occupancy: &mut self.occupancy[table as usize],
        })
    }

    fn write_vport(&mut self, index: u32, _: VportEntry, value: &Window) -> bool {
        self.write_rule(TableId::Vport, index, &[0; WINDOW_WORDS], value)
    }

    fn write_acl(&mut self, i: u32, _: RuleMatch, _: AclAction, k: &Window, v: &Window) -> bool {
        self.write_rule(TableId::Acl, i, k, v)
    }

    fn write_mirror_filter(
        &mut self,
        i: u32,
        _: RuleMatch,
        _: MirrorAction,
        k: &Window,
        v: &Window,
    ) -> bool {
        self.write_rule(TableId::MirrorFilter, i, k, v)
    }

    fn delete_indexed(&mut self, table: TableId, index: u32) -> bool {
        let Some(e) = self.rule(table, index) else {
            return false;
        };
        let existed = e.valid != 0;
        e.valid = 0;
        if existed {
            self.occupancy[table as usize] -= 1;
        }
        existed
    }

    fn read_indexed(&self, table: TableId, index: u32) -> Option<(Window, Window)> {
        if index as usize >= slots(table) {
            return None;
        }
        let at = rule_offset(table) + index as usize * core::mem::size_of::<RuleEntry>();
        // SAFETY: as in `Tables::rule`, read-only.
        let e = unsafe { &*self.rules.add(at).cast::<RuleEntry>() };
        (e.valid != 0).then_some((e.key, e.value))
    }

    fn clear_indexed(&mut self, table: TableId) {
        for i in 0..slots(table) as u32 {
            if let Some(e) = self.rule(table, i) {
                e.valid = 0;
            }
        }
        self.occupancy[table as usize] = 0;
    }

    fn occupancy(&self, table: TableId) -> u32 {
        self.occupancy[table as usize]
    }
}

impl DmaWindow {
    fn span(&self, addr: u64, len: usize) -> Result<*mut u32, DmaError> {
        if !addr.is_multiple_of(4) || !len.is_multiple_of(4) {
            return Err(DmaError::Misaligned { addr });
        }
        let end = addr.checked_add(len as u64);
        if end.is_none_or(|e| e > self.len as u64) {
            return Err(DmaError::Unmapped { addr, len });
        }
        // SAFETY: addr + len is inside the window (checked above).
        Ok(unsafe { self.base.add(addr as usize).cast::<u32>() })
    }
}

impl Dma for DmaWindow {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let p = self.span(addr, buf.len())?;
        for (i, chunk) in buf.chunks_exact_mut(4).enumerate() {
            // SAFETY: word i of the span checked by `span`; volatile because the host writes
            // this memory.
            let w = unsafe { p.add(i).read_volatile() };
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let p = self.span(addr, buf.len())?;
        for (i, chunk) in buf.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            // SAFETY: as in `read`; in increasing address order, as `Dma::write` promises.
            unsafe { p.add(i).write_volatile(w) };
        }
        Ok(())
    }
}
