//! The firmware image of the shadownet NIC's embedded cores: the `shadownet-firmware` crate's
//! main loop over the cores' memory map.
//!
//! Built freestanding (`no_std`, `no_main`, `panic = "abort"`) for `riscv32imac-unknown-none-elf`
//! with `memory.x`, and for the host target without a C runtime, so that every test run checks
//! that the firmware needs nothing of `std` or an OS. On the host target the device regions are
//! statics (the image links and starts, but there is no device behind them); on the cores
//! they are the addresses `memory.x` gives.
#![no_std]
#![no_main]

mod hw;

use shadownet_firmware::{Firmware, TelemetrySource, sketch::FlowSample};
use shadownet_hw::{DeviceView, counters::CounterId};

/// What the telemetry producer reads on this board: the COUNTERS window of the BAR (the
/// values as of the host's last snapshot; the board's memory map gives the cores no view of
/// the live counter memory) and no flow samples (the map has no sample buffer yet).
struct BarCounters<'a, 'r>(&'a DeviceView<'r>);

impl TelemetrySource for BarCounters<'_, '_> {
    fn counter(&self, id: CounterId) -> u64 {
        let c = self.0.counters().counter(id.index());
        (c.hi().read().bits() as u64) << 32 | c.lo().read().bits() as u64
    }
    fn next_sample(&mut self) -> Option<FlowSample> {
        None
    }
}

/// Entry after `_start` has set up a stack: boot, then one service slice after another.
#[unsafe(no_mangle)]
pub extern "C" fn firmware_main() -> ! {
    let mut board = hw::Board::take();
    let regs = board.registers();
    let mut firmware = Firmware::new();
    firmware.boot(&regs);
    loop {
        let (tables, dma, counter) = board.parts();
        firmware.service(&regs, tables, dma, counter, &mut BarCounters(&regs));
        core::hint::spin_loop();
    }
}

/// A panic stops the heartbeat; the host's watchdog notices and resets the device.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// The host build links no C library: the few memory routines the compiler calls are here
/// (the riscv32 target's compiler_builtins provides its own).
#[cfg(not(target_arch = "riscv32"))]
mod mem {
    /// Written with volatile accesses so the compiler does not turn the loops back into
    /// calls to themselves.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        for i in 0..n {
            // SAFETY: the caller (compiler-generated code) passes n writable bytes at dst.
            unsafe { dst.add(i).write_volatile(c as u8) };
        }
        dst
    }

    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        for i in 0..n {
            // SAFETY: the caller passes n readable bytes at src and n writable at dst.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
        dst
    }

    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dst as usize) < (src as usize) {
            // SAFETY: forwarded; a forward copy is correct when dst is below src.
            return unsafe { memcpy(dst, src, n) };
        }
        for i in (0..n).rev() {
            // SAFETY: as for memcpy; backwards because the ranges may overlap.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
        dst
    }

    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        for i in 0..n {
            // SAFETY: the caller passes n readable bytes at a and at b.
            let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
            if x != y {
                return x as i32 - y as i32;
            }
        }
        0
    }

    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: forwarded.
        unsafe { memcmp(a, b, n) }
    }

    /// The host target's precompiled `core` refers to the unwinder's personality routine;
    /// with `panic = "abort"` nothing unwinds, so it is never called.
    #[unsafe(no_mangle)]
    pub extern "C" fn rust_eh_personality() {}
}

#[cfg(target_arch = "riscv32")]
core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".globl _start",
    "_start:",
    "  la sp, __stack_top",
    "  call {main}",
    main = sym firmware_main,
);

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "  and rsp, -16",
    "  call {main}",
    main = sym firmware_main,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "  bl {main}",
    main = sym firmware_main,
);
