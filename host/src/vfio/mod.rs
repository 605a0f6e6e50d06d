//! The VFIO device backend: the NIC on real hardware.
//!
//! - [`sysfs`] finds PCI functions in sysfs (ids, class, driver, IOMMU group, NUMA node,
//!   BAR0 size) under an injectable root, so tests run on a fake tree;
//! - [`bind`] hands a function to `vfio-pci` (driver_override, unbind, drivers_probe) and
//!   back, refusing when another member of its IOMMU group is held by a host driver;
//! - [`ioctls`] holds every VFIO ioctl, through rust-vmm's `vfio-ioctls`, behind the
//!   [`VfioOps`]/[`VfioHandle`] traits; [`fake`] stands in for it in tests;
//! - [`VfioDevice`] opens a function by PCI address, maps BAR0 with memmap2 and implements
//!   the driver's [`Device`](crate::driver::Device) trait; it also maps DMA memory
//!   ([`DmaRegion`]), wires MSI-X vectors to eventfds ([`MsixVectors`]) and resets the
//!   function.
//!
//! On a machine without the device, the IOMMU or `/dev/vfio`, opening fails with a
//! [`VfioError`] that names what is missing and what to do about it.

mod addr;
pub mod bind;
#[allow(unsafe_code)]
mod device;
#[allow(unsafe_code)]
mod dma;
mod error;
pub mod fake;
#[allow(unsafe_code)]
pub mod ioctls;
pub mod sysfs;

pub use addr::PciAddress;
pub use device::{ResetMethod, VfioDevice, VfioEnv};
pub use dma::{DmaRegion, IovaAllocator, MAX_DMA, MsixVectors, PAGE};
pub use error::{GroupMember, VfioError};
pub use ioctls::{KernelVfio, RegionInfo, ResetOutcome, VfioHandle, VfioOps};
pub use sysfs::{PciFunction, Sysfs};

/// The kernel driver that gives user space a PCI function through VFIO.
pub const VFIO_PCI: &str = "vfio-pci";
