//! Traffic with shadow-map programming interleaved: batches of 256 64-byte frames (the
//! pipeline benchmark's traffic, every packet mirrored) with one shadow-map write between
//! batches, through the table-command path a register command runs (`Tables::execute`).
//! For measuring what table writes cost the traffic around them, with callgrind:
//!
//! ```text
//! cargo build --release -p shadownet-sim --example filter_writes
//! valgrind --tool=callgrind --toggle-collect='*filter_writes::run*' \
//!     target/release/examples/filter_writes replace
//! ```
//!
//! The first argument names the writes: `none` (traffic only), `replace` (a new value for a
//! stored entry), `insert` (a new entry), `churn` (alternately a new entry and the delete of
//! the oldest one, so the table keeps its size); the second the batches (default 512).
//! Instructions collected in `run` divided by the frames it prints are instructions per
//! frame, the writes included.

use std::hint::black_box;

use shadownet_hw::{Port, device_regs::tbl_cmd::cmd::TableOp, table::TableId};
use shadownet_sim::{Arrival, Discard, NicModel};

/// The pipeline benchmark's NIC and traffic.
#[path = "../benches/setup/mod.rs"]
mod setup;
use setup::{destinations, frame, programmed, write};

/// Map entries: enough that look-ups spread over a table much larger than the caches' share
/// a hot set would use, few enough that programming it under callgrind takes seconds.
const MAP_ENTRIES: u32 = 65_536;
/// Shadow-map entries programmed before the traffic (the pipeline benchmark's 4,096).
const SHADOW_ENTRIES: u32 = 4_096;
const BATCH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Writes {
    None,
    Replace,
    Insert,
    Churn,
}

/// Shadow-map entry `i` of this map, version `v`.
fn shadow_entry(i: u32, v: u32) -> ([u32; 16], [u32; 16]) {
    setup::shadow_entry(i, MAP_ENTRIES, v)
}

/// The measured loop: every batch of frames, then one write of kind `writes`. Returns the
/// frames received.
#[inline(never)]
fn run(model: &mut NicModel, frames: &[Vec<u8>], gap_ps: u64, writes: Writes) -> usize {
    let mut now = model.last_tx_end_ps() + 1_000_000;
    let mut batch = Vec::with_capacity(BATCH);
    let mut received = 0;
    for (n, fs) in (0u32..).zip(frames.chunks(BATCH)) {
        batch.clear();
        for f in fs {
            now += gap_ps;
            batch.push(Arrival {
                port: Port::Vport(0),
                frame: black_box(f),
                at_ps: now,
            });
        }
        model.receive_batch(&batch, &mut Discard);
        received += fs.len();
        match writes {
            Writes::None => {}
            Writes::Replace => {
                let (k, v) = shadow_entry(n % SHADOW_ENTRIES, n + 1);
                write(model, TableId::ShadowMap, TableOp::Write, &k, &v);
            }
            Writes::Insert => {
                let (k, v) = shadow_entry(SHADOW_ENTRIES + n, 1);
                write(model, TableId::ShadowMap, TableOp::Write, &k, &v);
            }
            Writes::Churn => {
                // Even batches insert entry SHADOW_ENTRIES + n/2, odd ones delete entry
                // n/2: the table stays at about SHADOW_ENTRIES entries.
                let (op, i) = if n % 2 == 0 {
                    (TableOp::Write, SHADOW_ENTRIES + n / 2)
                } else {
                    (TableOp::Delete, n / 2)
                };
                let (k, v) = shadow_entry(i, 1);
                let v = if op == TableOp::Delete { [0; 16] } else { v };
                write(model, TableId::ShadowMap, op, &k, &v);
            }
        }
    }
    received
}

fn main() {
    let mut args = std::env::args().skip(1);
    let writes = match args.next().as_deref() {
        None | Some("none") => Writes::None,
        Some("replace") => Writes::Replace,
        Some("insert") => Writes::Insert,
        Some("churn") => Writes::Churn,
        Some(other) => {
            eprintln!("unknown writes {other:?}: none, replace, insert or churn");
            std::process::exit(2);
        }
    };
    let batches = match args.next().map(|s| s.parse::<usize>()) {
        None => 512,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("batches: {e}");
            std::process::exit(2);
        }
    };
    let mut model = programmed(MAP_ENTRIES, SHADOW_ENTRIES);
    let frames: Vec<Vec<u8>> = destinations(batches * BATCH, MAP_ENTRIES)
        .into_iter()
        .map(|i| frame(i, 60))
        .collect();
    // Paced at 25% of line rate, as in the pipeline benchmark: nothing is dropped.
    let gap_ps = model.wire_ps(Port::Vport(0), 60) * 100 / 25;
    let received = run(&mut model, &frames, gap_ps, writes);
    let s = model.stats();
    println!(
        "writes {writes:?}: {received} frames in {batches} batches, {} sent, {} copies, {} drops, shadow map {} entries, filter built {} times",
        s.tx_frames,
        s.mirror_frames,
        s.primary_drops + s.mirror_drops,
        model.dp.tables.occupancy(TableId::ShadowMap),
        model.dp.tables.shadow_map.filter_rebuilds(),
    );
}
