//! Turns `shadownic.svd`, the single source of truth for registers, into register access code.
//!
//! The generated module is included by `src/regs.rs`. It is built as a module (not a crate root)
//! for no target CPU: the block base addresses are BAR offsets, so nobody dereferences the
//! generated `PTR` constants directly; `RegisterView` adds them to the mapped BAR's base.

use std::{env, fs, path::PathBuf};

fn main() {
    let svd_path = "shadownic.svd";
    println!("cargo:rerun-if-changed={svd_path}");
    println!("cargo:rerun-if-changed=build.rs");

    let svd = fs::read_to_string(svd_path).unwrap_or_else(|e| panic!("reading {svd_path}: {e}"));
    let mut config = svd2rust::Config::default();
    config.target = svd2rust::Target::None;
    config.edition = svd2rust::config::RustEdition::E2024;
    config.make_mod = true;
    config.skip_crate_attributes = true;
    config.impl_debug = true;
    config.strict = true;
    let generation = svd2rust::generate(&svd, &config)
        .unwrap_or_else(|e| panic!("svd2rust failed on {svd_path}: {e:#}"));

    // svd2rust writes paths from the crate root (`crate :: Reg`); the generated code lives in
    // the `regs` module of this crate, so re-root them there.
    let code = generation.lib_rs.replace("crate ::", "crate :: regs ::");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("shadownic.rs"), code).expect("writing generated registers");
}
