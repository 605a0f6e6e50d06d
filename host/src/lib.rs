//! shadownet's control plane on the host.
//!
//! - [`driver`]: the NIC driver. It is the only code that touches registers; everything else
//!   programs the NIC through its [`driver::Nic`] API.
//! - [`netdesc`]: network descriptions (TOML) checked and compiled into table entries.
//! - [`reconcile`]: desired table state diffed against the NIC, programmed in batches and
//!   read back; rebuilds after NIC resets.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod driver;
pub mod netdesc;
pub mod reconcile;
