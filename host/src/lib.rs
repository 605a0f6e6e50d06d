//! shadownet's control plane on the host.
//!
//! - [`driver`]: the NIC driver. It is the only code that touches registers; everything else
//!   programs the NIC through its [`driver::Nic`] API.
//! - [`netdesc`]: network descriptions (TOML) checked and compiled into table entries.
//! - [`vfio`]: the NIC on hardware: PCI discovery in sysfs, binding to vfio-pci, and a
//!   [`driver::Device`] over VFIO.
#![deny(missing_docs)]
// Unsafe code is confined to the VFIO backend's ioctl layer and its BAR and DMA mappings
// (modules marked `#[allow(unsafe_code)]` in `vfio`).
#![deny(unsafe_code)]

pub mod driver;
pub mod netdesc;
pub mod vfio;
