//! Analysis of shadow traffic.
//!
//! - [`detector`]: the built-in streaming anomaly detector.

pub mod detector;
