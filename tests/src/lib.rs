//! Support code for the end-to-end tests: packet builders, a lab topology programmed through
//! the driver onto the simulated NIC, a collecting sink, and helpers for external tools.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod accounting;
pub mod cli;
pub mod closed_loop;
pub mod corpus;
pub mod counts;
pub mod daemon;
pub mod decode;
pub mod examples;
pub mod lab;
pub mod packet;
pub mod rng;
pub mod rules;
pub mod scratch;
pub mod suricata;
pub mod tools;

use std::path::PathBuf;

/// The shared capture corpus (`../shared/corpus` from the repository root).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
