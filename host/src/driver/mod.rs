//! The NIC driver: identify, reset, configure, program every table, configure mirror
//! sessions, read counters — all through the generated register code on the BAR.
//!
//! A [`Device`] gives the driver the BAR's registers and a way to wait. On hardware the BAR
//! is the VFIO region and waiting spins; under the simulator ([`sim::SimDevice`]) the BAR is
//! shared memory and waiting lets the model run, so the code the tests exercise is the code
//! that runs on hardware.

mod error;
mod firmware;
pub mod flash;
mod nic;
mod ring;
pub mod sim;
mod telemetry;

pub use error::DriverError;
pub use firmware::{FirmwareStats, FirmwareStatus};
pub use flash::{FlashError, FlashPhase, FlashProgress, FlashUpdate};
pub use nic::{CounterSnapshot, Identity, Nic, PortConfig, RawEntry};
pub use ring::{RingCompletion, RingOp};
pub use telemetry::TelemetryRecord;

use shadownet_hw::RegisterView;

/// What the driver needs from a device backend.
pub trait Device {
    /// The registers of BAR0.
    fn regs(&self) -> RegisterView<'_>;
    /// Called while waiting for the device to complete a command.
    fn relax(&self);
    /// A name for messages (PCI address, "sim", …).
    fn name(&self) -> String;
    /// `len` bytes of zeroed host memory mapped for the device's DMA (on hardware: mapped
    /// for the IOMMU through VFIO; under the simulator: shared with the model). A backend
    /// without DMA answers [`DriverError::DmaUnsupported`].
    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DriverError> {
        let _ = len;
        Err(DriverError::DmaUnsupported {
            device: self.name(),
        })
    }
}

/// Host memory the device reaches by DMA, accessed as 32-bit words with acquire/release
/// ordering (the device reads and writes it concurrently).
pub trait DmaBuffer: Send {
    /// The address the device uses for the first byte (an I/O virtual address).
    fn iova(&self) -> u64;
    /// Bytes of the buffer.
    fn len(&self) -> usize;
    /// Whether the buffer is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The word at byte `offset` (4-aligned), `None` outside the buffer.
    fn read_u32(&self, offset: usize) -> Option<u32>;
    /// Writes the word at byte `offset` (4-aligned), `None` outside the buffer.
    fn write_u32(&self, offset: usize, value: u32) -> Option<()>;
    /// Writes `words` from byte `offset` on, in increasing address order.
    fn write_words(&self, offset: usize, words: &[u32]) -> Option<()> {
        for (i, w) in words.iter().enumerate() {
            self.write_u32(offset + i * 4, *w)?;
        }
        Some(())
    }
}
