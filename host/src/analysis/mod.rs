//! Analysis of shadow traffic, and the data it is developed and evaluated on.
//!
//! - [`detector`]: the built-in streaming anomaly detector (damped per-host, per-pair and
//!   per-flow statistics, half-space trees, sketches; alerts with explanations).
//! - [`honeypot`]: decoy hosts that answer probes inside a shadow (R7).
//! - [`tap`]: a shadow's traffic in: decapsulation, loss, detector, honeypots, redirect gate.
//! - [`trafficgen`]: a seeded generator of labelled traffic (a benign mix and six attack
//!   classes) for training and evaluating detectors in-process or through
//!   `shadowctl traffic gen`.
//! - [`suricata`]: Suricata 7 as a supervised analysis node (generated configuration, our
//!   rules, supervision, EVE followed as it is written, counters, offline capture runs).
//! - [`netns`]: a network namespace with a veth pair, the live input of an analysis node.
//! - [`decap`]: the shadow's mirror copies decapsulated back to production frames with their
//!   shadow metadata and mirror-loss accounting, for offline analysis.
//! - [`eve`]: findings as Suricata EVE JSON (alert, flow, anomaly, stats) with Community
//!   IDs, and a lossless reader of Suricata's own `eve.json`.
//! - [`quality`]: the detector's quality on labelled traffic (ROC AUC per attack class,
//!   false-positive and detection rates at the threshold), as `shadowctl traffic eval`
//!   reports it.
//! - [`siem`]: exporters of EVE events: NDJSON files, syslog (RFC 5424 over TCP) and ECS.

pub mod decap;
pub mod detector;
pub mod eve;
pub mod honeypot;
pub mod netns;
pub mod quality;
pub mod siem;
pub mod suricata;
// The unsafe code of analysis: kill(2) and an AF_PACKET socket here, and in the detector's
// tables a prefetch hint and madvise(MADV_HUGEPAGE) (`detector::table`), each fenced.
#[allow(unsafe_code)]
pub mod sys;
pub mod tap;
pub mod trafficgen;
