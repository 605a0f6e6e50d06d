//! Prints one line per record of each capture file given on the command line:
//! `index timestamp_ns captured_len orig_len frame_len link_type kind`.
//!
//! `cargo run -p shadownet-capture --example capdump -- FILE...`

use std::path::Path;
use std::process::ExitCode;

use shadownet_capture::{CaptureReader, link_type_name};

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut buf = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let path = Path::new(&arg);
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                status = ExitCode::FAILURE;
                continue;
            }
        };
        println!("# {} {}", path.display(), reader.format());
        while let Some(next) = reader.next_into(&mut buf) {
            match next {
                Ok(m) => println!(
                    "{} {} {} {} {} {}:{} {}",
                    m.index,
                    m.timestamp_ns,
                    m.captured_len,
                    m.orig_len,
                    buf.len(),
                    m.link_type,
                    link_type_name(m.link_type),
                    m.unsupported_reason.unwrap_or("ethernet")
                ),
                Err(e) => {
                    println!("! {e}");
                    status = ExitCode::FAILURE;
                }
            }
        }
    }
    status
}
