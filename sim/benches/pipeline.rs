//! Simulated packets per second on one core: VM traffic through the whole model (parse,
//! classify, ACL, a 1,000,000-entry map, mirror filter, shadow map, two encapsulations, the
//! scheduler) with every packet mirrored, for 64-byte frames and IMIX.
//!
//! Tables are programmed through the device's table-command path (`Tables::execute`, what a
//! register command runs). Frames go to destinations drawn uniformly from the whole map, so
//! map lookups miss the CPU caches as they would on a busy host. The time measured is the
//! benchmark thread's CPU time, not wall-clock time: the machine is shared.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_hw::Port;
use shadownet_sim::{Arrival, Discard};

mod setup;
use setup::{destinations, frame, programmed};

const MAP_ENTRIES: u32 = 1_000_000;
/// Shadow-map entries: every 241st map entry has a shadow node.
const SHADOW_ENTRIES: u32 = 4096;

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), if the
/// kernel tells.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` `iters` times and returns the time this thread spent on a CPU meanwhile: the
/// target is packets per second on one core, and on a shared machine wall-clock time also
/// counts the time other processes had the core. Falls back to wall-clock time where the
/// kernel does not report CPU time. (The detector's benchmark measures the same way.)
fn on_cpu(iters: u64, mut f: impl FnMut()) -> Duration {
    let wall = Instant::now();
    let cpu = thread_cpu_ns();
    for _ in 0..iters {
        f();
    }
    match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall.elapsed(),
    }
}

fn bench(c: &mut Criterion) {
    let mut model = programmed(MAP_ENTRIES, SHADOW_ENTRIES);
    const BATCH: usize = 65_536;
    let dests = destinations(BATCH, MAP_ENTRIES);
    // IMIX 7:4:1 of 64, 576 and 1500-byte packets (frames without FCS).
    let imix = [60usize, 60, 60, 60, 60, 60, 60, 572, 572, 572, 572, 1514];
    // The same traffic with destinations from a hot set of 4,096 entries of the map:
    // realistic flow locality, and the model's cost without memory stalls.
    let hot: Vec<u32> = dests.iter().map(|d| (d % 4096) * 241).collect();
    let sized = |ds: &[u32], mix: bool| -> Vec<Vec<u8>> {
        ds.iter()
            .enumerate()
            .map(|(k, &d)| frame(d, if mix { imix[k % imix.len()] } else { 60 }))
            .collect()
    };
    let mixes: [(&str, Vec<Vec<u8>>); 4] = [
        ("64B", sized(&dests, false)),
        ("IMIX", sized(&dests, true)),
        ("64B_hot4096", sized(&hot, false)),
        ("IMIX_hot4096", sized(&hot, true)),
    ];
    let mut group = c.benchmark_group("sim_pipeline_mirror_all_1M_map");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, frames) in &mixes {
        // Paced at 25% of line rate: production and every copy fit on the uplink, so
        // nothing is dropped and every packet does the full work.
        let gaps: Vec<u64> = frames
            .iter()
            .map(|f| model.wire_ps(Port::Vport(0), f.len()) * 100 / 25)
            .collect();
        let mut now = model.last_tx_end_ps() + 1_000_000;
        let mut batch = Vec::with_capacity(256);
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                on_cpu(iters, || {
                    for (fs, gs) in frames.chunks(256).zip(gaps.chunks(256)) {
                        batch.clear();
                        for (f, gap) in fs.iter().zip(gs) {
                            now += gap;
                            batch.push(Arrival {
                                port: Port::Vport(0),
                                frame: black_box(f),
                                at_ps: now,
                            });
                        }
                        model.receive_batch(&batch, &mut Discard);
                    }
                })
            })
        });
    }
    group.finish();
    let s = model.stats();
    eprintln!(
        "after the benchmark: {} frames sent, {} copies sent, {} production drops, {} copy drops",
        s.tx_frames, s.mirror_frames, s.primary_drops, s.mirror_drops
    );
    // Drops mean less work per packet than the figures assume: name them.
    for reason in shadownet_hw::drop::DropReason::ALL {
        let n = model
            .dp
            .counters
            .get(shadownet_hw::counters::drop_reason(reason));
        if n > 0 {
            eprintln!("  dropped by {}: {n}", reason.name());
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
