//! Links the image: on riscv32 with the cores' memory map (`memory.x`), on the host target
//! freestanding (no C runtime, no libc, static).

use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    if target.starts_with("riscv32") {
        fs::copy("memory.x", out.join("memory.x")).expect("copying memory.x");
        println!("cargo:rustc-link-search={}", out.display());
        println!("cargo:rustc-link-arg=-Tmemory.x");
    } else if target.contains("linux") {
        for arg in ["-nostartfiles", "-nostdlib", "-static", "-Wl,--gc-sections"] {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
}
