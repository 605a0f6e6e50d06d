//! shadownet's control plane on the host.
//!
//! - [`driver`]: the NIC driver. It is the only code that touches registers; everything else
//!   programs the NIC through its [`driver::Nic`] API.
//! - [`model`]: what tenants declare and ask for: networks, nodes, security groups, routes,
//!   shadows, automation rules, limits.
//! - [`netdesc`]: network descriptions (TOML) checked and compiled into table entries.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod driver;
mod entries;
pub mod model;
pub mod netdesc;
