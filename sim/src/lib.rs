//! Cycle-accurate model of the shadownet NIC: the hardware every test runs on.
//!
//! - [`bar`]: the BAR0 shared-memory mapping the host driver and the model share;
//! - [`device`]: the NIC — register interface, the embedded cores running the firmware
//!   crate, and ports;
//! - [`dma`]: host memory the device reaches by DMA (the command ring lives there);
//! - [`datapath`]: what happens to each frame (parse, classify, ACL, map, mirror filter,
//!   shadow map, encapsulation);
//! - [`frames`]: the bytes of the frames it builds, in an arena, until they leave;
//! - [`sched`]: when it happens (FIFOs, pipeline cycles, egress queues, policers, the egress
//!   scheduler that keeps mirroring from delaying production);
//! - [`tables`]: table memory and the table commands;
//! - [`flash`]: the NOR flash (erase/program timing, wear, power cuts) behind the FLASH block;
//! - [`trace`], [`stats`]: per-packet JSON-lines trace and run statistics;
//! - [`run`]: feeding capture files into ports and writing one capture per egress port.
//!
//! The model is deterministic: the same inputs and configuration give byte-identical output.
#![deny(missing_docs)]
// Only `bar` (register views on the BAR) and `dma` (atomic words of host memory) map memory.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod bar;
pub mod config;
pub mod counters;
pub mod datapath;
pub mod device;
#[allow(unsafe_code)]
pub mod dma;
mod fifo;
pub mod flash;
pub mod frames;
mod outer;
pub mod run;
pub mod sched;
pub mod sessions;
pub mod stats;
pub mod tables;
pub mod trace;

pub use device::{Arrival, Discard, ModelError, NicModel, Sink};
pub use sched::Departure;
