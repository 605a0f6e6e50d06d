//! shadownet's control plane on the host.
//!
//! - [`driver`]: the NIC driver. It is the only code that touches registers; everything else
//!   programs the NIC through its [`driver::Nic`] API.
//! - [`analysis`]: analysis of shadow traffic: the built-in streaming anomaly detector, and
//!   [`analysis::trafficgen`], labelled traffic (a benign mix and six attack classes) to develop
//!   and evaluate detectors on.
//! - [`api`]: the HTTP/JSON API (axum) with its OpenAPI document.
//! - [`control`]: the operations behind the API: validate, compile, commit, reconcile.
//! - [`model`]: what tenants declare and ask for: networks, nodes, security groups, routes,
//!   shadows, automation rules, limits.
//! - [`netdesc`]: network descriptions (TOML) checked and compiled into table entries.
//! - [`store`]: the versioned store (embedded SQLite) holding desired state, its history,
//!   artefacts, idempotency records and the audit log.
//! - [`reconcile`]: desired table state diffed against the NIC, programmed in batches and
//!   read back; rebuilds after NIC resets.
//! - [`vfio`]: the NIC on hardware: PCI discovery in sysfs, binding to vfio-pci, and a
//!   [`driver::Device`] over VFIO.
#![deny(missing_docs)]
// Unsafe code is confined to the VFIO backend's ioctl layer and its BAR and DMA mappings
// (modules marked `#[allow(unsafe_code)]` in `vfio`).
#![deny(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod control;
pub mod driver;
mod entries;
pub mod model;
pub mod netdesc;
pub mod reconcile;
pub mod store;
pub mod vfio;
