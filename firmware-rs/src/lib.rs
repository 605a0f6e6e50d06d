//! Firmware of the shadownet NIC's embedded cores.
//!
//! The pipeline reads table memory; the embedded cores maintain it. This crate holds that
//! maintenance logic as `no_std` code tested on the host, and the simulator runs it as its
//! embedded cores:
//!
//! - [`tables::exact`]: insertion with displacement, replacement and deletion in the bucketed
//!   cuckoo tables, keeping every stored key findable at every step, so a packet looking up
//!   between two memory writes never misses an entry that is not being deleted.
//!
//! Command processing from the host (mailbox and command ring), ageing, telemetry and the
//! watchdog arrive with the firmware issue.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod tables;
