//! Register blocks placed on a mapped BAR.
//!
//! The BAR is memory: a VFIO region mapped with memmap2 on hardware, a shared-memory mapping
//! under the simulator. [`RegisterView`] (the host's side) and [`DeviceView`] (the side that
//! implements the registers) turn its base address into references to the generated register
//! blocks. This module holds the only `unsafe` of the crate: the cast of base + block offset to
//! a register block, and the volatile read used to walk the block chain.

use core::{marker::PhantomData, ptr::NonNull};

use crate::{BAR_SIZE, device_regs, regs};

/// Why a memory region cannot carry the register map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// The region is shorter than [`BAR_SIZE`].
    TooSmall {
        /// Length of the region.
        len: usize,
    },
    /// The region's base is not aligned to 4 bytes.
    Misaligned {
        /// The base address.
        addr: usize,
    },
}

impl core::error::Error for ViewError {}

impl core::fmt::Display for ViewError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ViewError::TooSmall { len } => {
                write!(
                    f,
                    "BAR region is {len} bytes, the register map needs {BAR_SIZE}"
                )
            }
            ViewError::Misaligned { addr } => {
                write!(f, "BAR region at {addr:#x} is not 4-byte aligned")
            }
        }
    }
}

/// The three words that open every register block (Corundum's register-block chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// BAR offset of the block.
    pub offset: u32,
    /// `BLK_TYPE`: one of [`crate::block_type`].
    pub block_type: u32,
    /// `BLK_VERSION`: 0 for a reserved, not yet implemented block.
    pub version: u32,
    /// `BLK_NEXT`: offset of the next block, 0 at the end of the chain.
    pub next: u32,
}

/// A validated BAR base: 4-byte aligned and at least [`BAR_SIZE`] bytes long.
#[derive(Clone, Copy)]
struct Bar<'a> {
    base: NonNull<u8>,
    _mem: PhantomData<&'a [u8]>,
}

impl<'a> Bar<'a> {
    /// # Safety
    /// See [`RegisterView::new`].
    unsafe fn new(base: NonNull<u8>, len: usize) -> Result<Self, ViewError> {
        if len < BAR_SIZE {
            return Err(ViewError::TooSmall { len });
        }
        if !(base.as_ptr() as usize).is_multiple_of(4) {
            return Err(ViewError::Misaligned {
                addr: base.as_ptr() as usize,
            });
        }
        Ok(Bar {
            base,
            _mem: PhantomData,
        })
    }

    /// The register block of type `T` at BAR offset `offset`.
    fn block<T>(&self, offset: usize) -> &'a T {
        debug_assert!(offset + core::mem::size_of::<T>() <= BAR_SIZE);
        debug_assert!(core::mem::align_of::<T>() <= 4);
        // SAFETY: `Bar::new`'s caller guaranteed that BAR_SIZE bytes from `base` stay mapped and
        // are accessed only as volatile registers for 'a; `base` is 4-byte aligned, which is the
        // alignment of every generated register block (u32 registers, `repr(C)`); each block
        // lies inside the BAR (the test `blocks_fit_inside_the_bar` checks every offset + size).
        unsafe { &*self.base.as_ptr().add(offset).cast::<T>() }
    }

    /// Reads the 32-bit word at `offset` (must be 4-aligned and inside the BAR).
    fn word(&self, offset: u32) -> Option<u32> {
        let offset = offset as usize;
        if !offset.is_multiple_of(4) || offset + 4 > BAR_SIZE {
            return None;
        }
        // SAFETY: in bounds and aligned (checked above); the memory is valid for 'a (see
        // `Bar::new`). Volatile because the other side of the BAR changes it.
        Some(unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() })
    }

    fn header(&self, offset: u32) -> Option<BlockHeader> {
        Some(BlockHeader {
            offset,
            block_type: self.word(offset)?,
            version: self.word(offset.checked_add(4)?)?,
            next: self.word(offset.checked_add(8)?)?,
        })
    }
}

/// Iterator over the register-block chain, starting at the ID block (offset 0).
///
/// Stops at `BLK_NEXT == 0`, at an offset outside the BAR, at a backward link (which would
/// loop), or after 64 blocks.
pub struct Chain<'a> {
    bar: Bar<'a>,
    next: Option<u32>,
    seen: u32,
}

impl Iterator for Chain<'_> {
    type Item = BlockHeader;

    fn next(&mut self) -> Option<BlockHeader> {
        let offset = self.next.take()?;
        if self.seen >= 64 {
            return None;
        }
        self.seen += 1;
        let header = self.bar.header(offset)?;
        if header.next > offset {
            self.next = Some(header.next);
        }
        Some(header)
    }
}

macro_rules! register_view {
    ($(#[$doc:meta])* $view:ident, $module:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $view<'a> {
            bar: Bar<'a>,
        }

        impl<'a> $view<'a> {
            /// Places the register map on the memory at `base`.
            ///
            /// # Safety
            /// `base` must point to `len` bytes that stay mapped, readable and writable for
            /// `'a`, and that nothing accesses other than as volatile 32-bit registers (through
            /// register views or the device on the other side of the BAR).
            pub unsafe fn new(base: NonNull<u8>, len: usize) -> Result<Self, ViewError> {
                // SAFETY: forwarded to our caller.
                Ok($view { bar: unsafe { Bar::new(base, len)? } })
            }

            /// ID block.
            pub fn id(&self) -> &'a $module::id::RegisterBlock {
                self.bar.block($module::Id::PTR as usize)
            }
            /// Control and reset.
            pub fn ctrl(&self) -> &'a $module::ctrl::RegisterBlock {
                self.bar.block($module::Ctrl::PTR as usize)
            }
            /// Table-command interface.
            pub fn tbl_cmd(&self) -> &'a $module::tbl_cmd::RegisterBlock {
                self.bar.block($module::TblCmd::PTR as usize)
            }
            /// Mirror sessions.
            pub fn mirror(&self) -> &'a $module::mirror::RegisterBlock {
                self.bar.block($module::Mirror::PTR as usize)
            }
            /// Uplink and substrate addressing.
            pub fn port(&self) -> &'a $module::port::RegisterBlock {
                self.bar.block($module::Port::PTR as usize)
            }
            /// Counters.
            pub fn counters(&self) -> &'a $module::counters::RegisterBlock {
                self.bar.block($module::Counters::PTR as usize)
            }
            /// Command ring (host to NIC).
            pub fn cmd_ring(&self) -> &'a $module::cmd_ring::RegisterBlock {
                self.bar.block($module::CmdRing::PTR as usize)
            }
            /// Telemetry ring (NIC to host).
            pub fn telemetry_ring(&self) -> &'a $module::telemetry_ring::RegisterBlock {
                self.bar.block($module::TelemetryRing::PTR as usize)
            }
            /// Firmware mailbox.
            pub fn fw_mailbox(&self) -> &'a $module::fw_mailbox::RegisterBlock {
                self.bar.block($module::FwMailbox::PTR as usize)
            }
            /// Flash window (reserved).
            pub fn flash(&self) -> &'a $module::flash::RegisterBlock {
                self.bar.block($module::Flash::PTR as usize)
            }
            /// Walks the register-block chain from the ID block.
            pub fn chain(&self) -> Chain<'a> {
                Chain { bar: self.bar, next: Some(0), seen: 0 }
            }
        }
    };
}

register_view!(
    /// The register map as the host sees it: read-only registers cannot be written.
    RegisterView,
    regs
);
register_view!(
    /// The register map as the implementing side (device model, firmware) sees it: every
    /// register can be read and written.
    DeviceView,
    device_regs
);

/// A block of the map, as laid out by the SVD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block name in the SVD.
    pub name: &'static str,
    /// BAR offset.
    pub offset: usize,
    /// Size of the generated register block.
    pub size: usize,
    /// `BLK_TYPE` reset value.
    pub block_type: u32,
}

/// Every block of the map, in chain order.
pub fn blocks() -> [BlockInfo; 10] {
    use crate::block_type as t;
    use core::mem::size_of;
    fn info<RB, const A: usize>(name: &'static str, block_type: u32) -> BlockInfo {
        BlockInfo {
            name,
            offset: A,
            size: size_of::<RB>(),
            block_type,
        }
    }
    [
        info::<regs::id::RegisterBlock, 0x0>("ID", t::ID),
        info::<regs::ctrl::RegisterBlock, 0x100>("CTRL", t::CTRL),
        info::<regs::tbl_cmd::RegisterBlock, 0x1000>("TBL_CMD", t::TBL_CMD),
        info::<regs::mirror::RegisterBlock, 0x2000>("MIRROR", t::MIRROR),
        info::<regs::port::RegisterBlock, 0x3000>("PORT", t::PORT),
        info::<regs::counters::RegisterBlock, 0x4000>("COUNTERS", t::COUNTERS),
        info::<regs::cmd_ring::RegisterBlock, 0x9000>("CMD_RING", t::CMD_RING),
        info::<regs::telemetry_ring::RegisterBlock, 0x9100>("TELEMETRY_RING", t::TELEMETRY_RING),
        info::<regs::fw_mailbox::RegisterBlock, 0x9200>("FW_MAILBOX", t::FW_MAILBOX),
        info::<regs::flash::RegisterBlock, 0x1_0000>("FLASH", t::FLASH),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::generic::Resettable;

    #[repr(C, align(4096))]
    struct Page([u8; BAR_SIZE + 8]);

    #[test]
    fn blocks_fit_inside_the_bar_and_do_not_overlap() {
        let mut spans: [(usize, usize); 10] = [(0, 0); 10];
        let all = blocks();
        for (i, b) in all.iter().enumerate() {
            let name = b.name;
            assert!(b.offset + b.size <= BAR_SIZE, "{name} ends past the BAR");
            assert_eq!(b.offset % 4, 0, "{name} is misaligned");
            spans[i] = (b.offset, b.offset + b.size);
        }
        // The offsets written above must be the SVD's base addresses.
        assert_eq!(all[0].offset, regs::Id::PTR as usize);
        assert_eq!(all[1].offset, regs::Ctrl::PTR as usize);
        assert_eq!(all[2].offset, regs::TblCmd::PTR as usize);
        assert_eq!(all[3].offset, regs::Mirror::PTR as usize);
        assert_eq!(all[4].offset, regs::Port::PTR as usize);
        assert_eq!(all[5].offset, regs::Counters::PTR as usize);
        assert_eq!(all[6].offset, regs::CmdRing::PTR as usize);
        assert_eq!(all[7].offset, regs::TelemetryRing::PTR as usize);
        assert_eq!(all[8].offset, regs::FwMailbox::PTR as usize);
        assert_eq!(all[9].offset, regs::Flash::PTR as usize);
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "blocks overlap: {pair:?}");
        }
    }

    #[test]
    fn register_offsets_match_the_svd() {
        // Pins the BAR offsets the documentation pages and the firmware rely on.
        let mut page = Page([0; BAR_SIZE + 8]);
        let base = NonNull::new(page.0.as_mut_ptr()).expect("stack address is not null");
        // SAFETY: `page` outlives the view; only addresses are taken.
        let v = unsafe { RegisterView::new(base, BAR_SIZE).expect("valid") };
        let at = |r: *const u8| r as usize - base.as_ptr() as usize;
        let t = v.tbl_cmd();
        assert_eq!(at(t.table() as *const _ as *const u8), 0x100C);
        assert_eq!(at(t.cmd() as *const _ as *const u8), 0x1014);
        assert_eq!(at(t.status() as *const _ as *const u8), 0x1018);
        assert_eq!(at(t.key(0) as *const _ as *const u8), 0x1040);
        assert_eq!(at(t.value(0) as *const _ as *const u8), 0x1080);
        assert_eq!(at(t.result_key(0) as *const _ as *const u8), 0x10C0);
        assert_eq!(at(t.result_value(15) as *const _ as *const u8), 0x113C);
        assert_eq!(at(t.capacity(0) as *const _ as *const u8), 0x1140);
        assert_eq!(at(t.occupancy(7) as *const _ as *const u8), 0x117C);
        assert_eq!(at(v.mirror().stage(0) as *const _ as *const u8), 0x2020);
        assert_eq!(at(v.mirror().fetched(11) as *const _ as *const u8), 0x208C);
        assert_eq!(at(v.port().tunnel_ports() as *const _ as *const u8), 0x3028);
        assert_eq!(
            at(v.counters().counter(0).lo() as *const _ as *const u8),
            0x4100
        );
        assert_eq!(
            at(v.counters().counter(2047).hi() as *const _ as *const u8),
            0x80FC
        );
        assert_eq!(size_of::<regs::counters::RegisterBlock>(), 0x100 + 8 * 2048);
        let c = v.cmd_ring();
        assert_eq!(at(c.base_lo() as *const _ as *const u8), 0x900C);
        assert_eq!(at(c.compl_base_lo() as *const _ as *const u8), 0x9014);
        assert_eq!(at(c.size_log2() as *const _ as *const u8), 0x901C);
        assert_eq!(at(c.prod_idx() as *const _ as *const u8), 0x9024);
        assert_eq!(at(c.cons_idx() as *const _ as *const u8), 0x9028);
        assert_eq!(at(c.irq_ack() as *const _ as *const u8), 0x9034);
        assert_eq!(at(c.error() as *const _ as *const u8), 0x9038);
        assert_eq!(at(c.batch_max() as *const _ as *const u8), 0x9040);
        let t = v.telemetry_ring();
        assert_eq!(at(t.cons_idx() as *const _ as *const u8), 0x9120);
        assert_eq!(at(t.dropped() as *const _ as *const u8), 0x9134);
        let f = v.fw_mailbox();
        assert_eq!(at(f.heartbeat() as *const _ as *const u8), 0x9214);
        assert_eq!(at(f.cmd() as *const _ as *const u8), 0x9220);
        assert_eq!(at(f.arg(0) as *const _ as *const u8), 0x9230);
        assert_eq!(at(f.result(3) as *const _ as *const u8), 0x924C);
        assert_eq!(
            size_of::<regs::tbl_cmd::RegisterBlock>(),
            size_of::<device_regs::tbl_cmd::RegisterBlock>()
        );
    }

    #[test]
    fn chain_reset_values_link_every_block_in_order() {
        // The BLK_NEXT reset values in the SVD must walk the blocks in BLOCKS order.
        let nexts = [
            <regs::id::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::ctrl::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::tbl_cmd::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::mirror::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::port::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::counters::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::cmd_ring::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::telemetry_ring::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::fw_mailbox::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
            <regs::flash::blk_next::BlkNextSpec as Resettable>::RESET_VALUE,
        ];
        let all = blocks();
        for i in 0..all.len() - 1 {
            assert_eq!(
                nexts[i] as usize,
                all[i + 1].offset,
                "BLK_NEXT of {}",
                all[i].name
            );
        }
        assert_eq!(nexts[all.len() - 1], 0);
    }

    #[test]
    fn device_writes_are_seen_by_the_host_view_and_the_chain_walks() {
        let mut page = Page([0; BAR_SIZE + 8]);
        let base = NonNull::new(page.0.as_mut_ptr()).expect("stack address is not null");
        // SAFETY: `page` outlives both views and is only touched through them.
        let (host, device) = unsafe {
            (
                RegisterView::new(base, BAR_SIZE).expect("valid"),
                DeviceView::new(base, BAR_SIZE).expect("valid"),
            )
        };
        device
            .id()
            .blk_type()
            .write(|w| w.set(crate::block_type::ID));
        device.id().blk_next().write(|w| w.set(0x100));
        device
            .ctrl()
            .blk_type()
            .write(|w| w.set(crate::block_type::CTRL));
        device.id().magic().write(|w| w.set(crate::MAGIC));
        assert_eq!(host.id().magic().read().bits(), crate::MAGIC);
        let chain: heapless_chain::Vec2 = host.chain().collect();
        assert_eq!(chain.0[0].block_type, crate::block_type::ID);
        assert_eq!(chain.0[1].offset, 0x100);
        assert_eq!(chain.0[1].block_type, crate::block_type::CTRL);
        assert_eq!(chain.1, 2, "CTRL's BLK_NEXT is 0: the chain ends");
    }

    /// A two-element collector so the test needs no allocator.
    mod heapless_chain {
        use super::BlockHeader;
        pub struct Vec2(pub [BlockHeader; 2], pub usize);
        impl FromIterator<BlockHeader> for Vec2 {
            fn from_iter<I: IntoIterator<Item = BlockHeader>>(iter: I) -> Self {
                let empty = BlockHeader {
                    offset: 0,
                    block_type: 0,
                    version: 0,
                    next: 0,
                };
                let mut v = Vec2([empty; 2], 0);
                for h in iter {
                    if v.1 < 2 {
                        v.0[v.1] = h;
                    }
                    v.1 += 1;
                }
                v
            }
        }
    }

    #[test]
    fn rejects_short_and_misaligned_regions() {
        let mut page = Page([0; BAR_SIZE + 8]);
        let base = NonNull::new(page.0.as_mut_ptr()).expect("not null");
        // SAFETY: the views are rejected before any access.
        unsafe {
            assert_eq!(
                RegisterView::new(base, BAR_SIZE - 4).err(),
                Some(ViewError::TooSmall { len: BAR_SIZE - 4 })
            );
            let odd = NonNull::new(base.as_ptr().add(1)).expect("not null");
            assert!(matches!(
                RegisterView::new(odd, BAR_SIZE),
                Err(ViewError::Misaligned { .. })
            ));
        }
        let _ = &mut page;
    }
}
