//! Analysis of shadow traffic, and the data it is developed and evaluated on.
//!
//! - [`detector`]: the built-in streaming anomaly detector (damped per-host, per-pair and
//!   per-flow statistics, half-space trees, sketches; alerts with explanations).
//! - [`trafficgen`]: a seeded generator of labelled traffic (a benign mix and six attack
//!   classes) for training and evaluating detectors in-process or through
//!   `shadowctl traffic gen`.
//! - [`eve`]: findings as Suricata EVE JSON (alert, flow, anomaly, stats) with Community
//!   IDs, and a lossless reader of Suricata's own `eve.json`.
//! - [`siem`]: exporters of EVE events: NDJSON files, syslog (RFC 5424 over TCP) and ECS.

pub mod detector;
pub mod eve;
pub mod siem;
pub mod trafficgen;
