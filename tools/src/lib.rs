//! The library behind the `shadowctl` command: each subcommand's job as a function that
//! returns a typed result, so tests run exactly what the command runs.
//!
//! - [`simrun`]: `shadowctl sim run` — a network description programmed into the simulated
//!   NIC through the driver, capture files fed into its ports, one capture per egress port
//!   and a `summary.json` out.
//! - [`client`]: a blocking client of the daemon's API.
//! - [`apicli`]: the commands that call the API (tenants, networks, shadows, ...).
//! - [`summary`]: the summary of a run.
//! - [`device`]: `shadowctl device list|bind|unbind|info` — shadownet NICs on the PCI bus,
//!   vfio-pci binding, and the NIC opened through VFIO.
//! - [`image`], [`ihex`]: `shadowctl image build | inspect | verify | keygen` — firmware
//!   images as raw binary or Intel HEX.
//! - [`flash`]: `shadowctl flash` — an image written into the simulated NIC's A/B slots.
//! - [`traffic`]: `shadowctl traffic gen` — labelled traffic (benign mix and attacks) as a
//!   capture, a label file and the scenario.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod apicli;
pub mod client;
pub mod device;
pub mod flash;
pub mod ihex;
pub mod image;
pub mod simrun;
pub mod summary;
pub mod traffic;
