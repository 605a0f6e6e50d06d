//! Analysis of shadow traffic, and the data it is developed and evaluated on.
//!
//! - [`detector`]: the built-in streaming anomaly detector (damped per-host, per-pair and
//!   per-flow statistics, half-space trees, sketches; alerts with explanations).
//! - [`honeypot`]: decoy hosts that answer probes inside a shadow (R7).
//! - [`tap`]: a shadow's traffic in: decapsulation, loss, detector, honeypots, redirect gate.
//! - [`trafficgen`]: a seeded generator of labelled traffic (a benign mix and six attack
//!   classes) for training and evaluating detectors in-process or through
//!   `shadowctl traffic gen`.

pub mod detector;
pub mod honeypot;
pub mod tap;
pub mod trafficgen;
