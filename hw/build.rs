//! Turns `shadownic.svd`, the single source of truth for registers, into register access code.
//!
//! Two views are generated from the one file:
//! - `shadownic_host.rs`: the map as the SVD states it, for the host driver;
//! - `shadownic_device.rs`: the same map with every register readable and writable and every
//!   value writable, for the side that implements the registers (the simulator's device model
//!   and the firmware), which must fill in what the host only reads: STATUS, RESULT_*,
//!   counters, the ID block.
//!
//! Both are built as modules (not crate roots) for no target CPU. The block base addresses are
//! BAR offsets, so nobody dereferences the generated `PTR` constants; `RegisterView` adds them
//! to the mapped BAR's base.

use std::{env, fs, path::PathBuf};

use svd_rs::{Access, WriteConstraint, WriteConstraintRange};

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
    config.ident_formats = svd2rust::config::IdentFormats::default_theme();

    let host = svd2rust::load_from(&svd, &config)
        .unwrap_or_else(|e| panic!("{svd_path} does not parse: {e:#}"));
    let mut device = host.clone();
    open_every_register(&mut device);

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, module, dev) in [
        ("shadownic_host.rs", "regs", &host),
        ("shadownic_device.rs", "device_regs", &device),
    ] {
        let mut device_x = String::new();
        let tokens = svd2rust::generate::device::render(dev, &config, &mut device_x)
            .unwrap_or_else(|e| panic!("svd2rust failed on {svd_path} ({module}): {e:#}"));
        // svd2rust writes paths from the crate root (`crate :: Reg`); each view lives in a
        // module of this crate, so re-root them there.
        let code = tokens
            .to_string()
            .replace("crate ::", &format!("crate :: {module} ::"))
            // ... and the intra-doc links inside the generated doc strings.
            .replace("](crate::", &format!("](crate::{module}::"));
        // Blocks are reached through the mapped BAR, never through svd2rust's `Peripherals`
        // singleton; its take-once flag is `no_mangle`, which two views cannot both export.
        let singleton_flag = "# [unsafe (no_mangle)] static mut DEVICE_PERIPHERALS";
        assert!(
            code.contains(singleton_flag),
            "svd2rust output changed: {singleton_flag} not found"
        );
        let code = code.replace(singleton_flag, "static mut DEVICE_PERIPHERALS");
        fs::write(out.join(name), code).expect("writing generated registers");
    }
}

/// The implementing side may read and write every register and every value.
fn open_every_register(device: &mut svd_rs::Device) {
    for peripheral in device.peripherals.iter_mut() {
        for register in peripheral.all_registers_mut() {
            register.properties.access = Some(Access::ReadWrite);
            let width = register.properties.size.unwrap_or(32);
            register.write_constraint = Some(full_range(width));
            for field in register.fields_mut() {
                field.access = Some(Access::ReadWrite);
                let is_enum = !field.enumerated_values.is_empty();
                if !is_enum {
                    field.write_constraint = Some(full_range(field.bit_range.width));
                }
            }
        }
    }
}

fn full_range(width: u32) -> WriteConstraint {
    WriteConstraint::Range(WriteConstraintRange {
        min: 0,
        max: u64::MAX >> (64 - width),
    })
}
