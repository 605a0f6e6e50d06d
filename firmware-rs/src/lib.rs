//! Firmware of the shadownet NIC's embedded cores.
//!
//! The pipeline reads table memory; the embedded cores maintain it and talk to the host. This
//! crate holds that logic as `no_std` code tested on the host; the simulator runs it as its
//! embedded cores and accounts their cycles, and `firmware-rs/image` links it into
//! freestanding images. The device's registers (`shadownet_hw::DeviceView`) are the
//! firmware's only view of the hardware:
//!
//! - [`cores`]: the main loop, one service slice at a time — the TBL_CMD registers, the
//!   command ring, the FW_MAILBOX mailbox, heartbeat and cycle counter, and the ageing of
//!   ACL and mirror-filter rules with a time to live, in device time;
//! - [`command`]: one table command (from the registers or a ring descriptor): validation,
//!   exact-table maintenance, rule and port entries, with the write order that keeps every
//!   packet's lookup on the old or the new entry;
//! - [`ring`]: the command ring — descriptors fetched by DMA, completions with phase bits,
//!   doorbell, interrupt;
//! - [`tables::exact`]: insertion with displacement, replacement and deletion in the bucketed
//!   cuckoo tables, keeping every stored key findable at every step;
//! - [`telemetry`]: the telemetry ring — per-port and per-session counter records, heavy
//!   hitters, aged rules and heartbeats written by DMA with phase bits, periodically and on
//!   demand;
//! - [`sketch`]: the heavy-hitter sketch (count-min with a space-saving top-K) the data
//!   path's flow samples feed;
//! - [`cost`]: the cycle cost model the firmware charges itself from.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod command;
pub mod cores;
pub mod cost;
pub mod ring;
pub mod sketch;
pub mod tables;
pub mod telemetry;

pub use cores::{AGEING_CAPACITY, ChangeCounter, Firmware, Slice, Stats, VERSION};
pub use telemetry::{NoTelemetry, TelemetrySource};
