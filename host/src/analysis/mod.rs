//! Analysis of shadow traffic, and the data it is developed and evaluated on.
//!
//! - [`trafficgen`]: a seeded generator of labelled traffic (a benign mix and six attack
//!   classes) for training and evaluating detectors in-process or through
//!   `shadowctl traffic gen`.

pub mod trafficgen;
