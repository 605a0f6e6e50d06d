//! Table maintenance.

pub mod exact;
