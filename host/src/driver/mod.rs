//! The NIC driver: identify, reset, configure, program every table, configure mirror
//! sessions, read counters — all through the generated register code on the BAR.
//!
//! A [`Device`] gives the driver the BAR's registers and a way to wait. On hardware the BAR
//! is the VFIO region and waiting spins; under the simulator ([`sim::SimDevice`]) the BAR is
//! shared memory and waiting lets the model run, so the code the tests exercise is the code
//! that runs on hardware.

mod error;
pub mod flash;
mod nic;
pub mod sim;

pub use error::DriverError;
pub use flash::{FlashError, FlashPhase, FlashProgress, FlashUpdate};
pub use nic::{CounterSnapshot, Identity, Nic, PortConfig, RawEntry};

use shadownet_hw::RegisterView;

/// What the driver needs from a device backend.
pub trait Device {
    /// The registers of BAR0.
    fn regs(&self) -> RegisterView<'_>;
    /// Called while waiting for the device to complete a command.
    fn relax(&self);
    /// A name for messages (PCI address, "sim", …).
    fn name(&self) -> String;
}
