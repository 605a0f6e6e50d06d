//! shadownet's control plane on the host.
//!
//! - [`driver`]: the NIC driver. It is the only code that touches registers; everything else
//!   programs the NIC through its [`driver::Nic`] API.
//! - [`netdesc`]: network descriptions (TOML) checked and compiled into table entries.
//! - [`store`]: the versioned store (embedded SQLite) holding desired state, its history,
//!   artefacts, idempotency records and the audit log.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod driver;
pub mod netdesc;
pub mod store;
