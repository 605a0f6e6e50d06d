//! Packets per second of the built-in detector on one core, scoring (the baseline is learnt
//! before measuring), over a realistic mix: many clients to a few servers with handshakes,
//! data and closes, DNS, plus a spoofed SYN flood and a port scan mixed in, so that the
//! tables churn and the sketches work. Measured on pre-parsed `PacketMeta` records and on
//! raw Ethernet frames (the parser stage included), and in batches (`observe_batch`), after a
//! baseline at a hundredth of the scored rate (the flood regime) and, in batches, after one at
//! the same rate (`observe_batch_steady`, the steady regime). The
//! time measured is the benchmark thread's CPU time, not wall-clock time: the machine is
//! shared, and the target is packets per second on one core.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_host::analysis::detector::{Detector, DetectorConfig, PacketMeta};

const TCP: u8 = 6;
const UDP: u8 = 17;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// `n` packets at about 1 Mpps of simulated time: 20 000 concurrent client flows (4096
/// clients, 32 servers), one in 40 packets starting a new flow, DNS, and 5% spoofed SYN
/// flood plus 2% port scan that churn the tables.
fn mix(n: usize, start_ns: u64) -> Vec<PacketMeta> {
    let mut rng = Rng(7);
    let mut out = Vec::with_capacity(n);
    let mut t = start_ns;
    let new_flow = |rng: &mut Rng| {
        let r = rng.next();
        (
            v4(10, 1, (r >> 8) as u8 % 16, (r >> 16) as u8),
            v4(10, 2, 0, 1 + (r >> 24) as u8 % 32),
            1024 + (r >> 32) as u16 % 60_000,
        )
    };
    let mut flows: Vec<(IpAddr, IpAddr, u16)> = (0..20_000).map(|_| new_flow(&mut rng)).collect();
    while out.len() < n {
        t += 1_000;
        let r = rng.next();
        let slot = (r >> 40) as usize % flows.len();
        let mut syn = false;
        if r.is_multiple_of(40) {
            flows[slot] = new_flow(&mut rng);
            syn = true;
        }
        let (client, server, sp) = flows[slot];
        let m = |src, dst, proto, sport, dport, len: u16, flags| PacketMeta {
            ts_ns: t,
            src,
            dst,
            proto,
            sport,
            dport,
            len,
            payload_len: len.saturating_sub(40),
            tcp_flags: flags,
        };
        let p = match (syn, r % 100) {
            (true, _) => m(client, server, TCP, sp, 443, 40, 0x02),
            (_, 0..=49) => m(server, client, TCP, 443, sp, 1500, 0x10),
            (_, 50..=84) => m(
                client,
                server,
                TCP,
                sp,
                443,
                40 + (r >> 48) as u16 % 600,
                0x18,
            ),
            (_, 85..=86) => m(client, v4(10, 0, 0, 53), UDP, sp, 53, 70, 0),
            (_, 87..=88) => m(v4(10, 0, 0, 53), client, UDP, 53, sp, 180, 0),
            (_, 89..=90) => m(server, client, TCP, 443, sp, 40, 0x12),
            (_, 91..=92) => m(
                v4(10, 9, 9, 9),
                server,
                TCP,
                55_555,
                (r >> 48) as u16,
                40,
                0x02,
            ),
            _ => m(
                v4(172, 16, (r >> 40) as u8, (r >> 48) as u8),
                server,
                TCP,
                sp,
                80,
                40,
                0x02,
            ),
        };
        out.push(p);
    }
    out
}

fn frame(m: &PacketMeta) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (m.src, m.dst) else {
        return Vec::new();
    };
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45,
        0,
        (m.len >> 8) as u8,
        m.len as u8,
        0,
        0,
        0x40,
        0,
        64,
        m.proto,
        0,
        0,
    ]);
    f.extend_from_slice(&s.octets());
    f.extend_from_slice(&d.octets());
    f.extend_from_slice(&m.sport.to_be_bytes());
    f.extend_from_slice(&m.dport.to_be_bytes());
    if m.proto == TCP {
        f.extend_from_slice(&[
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0x50,
            m.tcp_flags,
            0xff,
            0xff,
            0,
            0,
            0,
            0,
        ]);
    } else {
        let ul = m.len - 20;
        f.extend_from_slice(&[(ul >> 8) as u8, ul as u8, 0, 0]);
    }
    f.resize(14 + usize::from(m.len), 0);
    f
}

/// A detector past its baseline (10 s of the mix at 0.01 Mpps): the scored traffic, 100 times
/// denser, looks like a flood to it, so the trees flag most flows (the flood regime).
fn trained() -> Detector {
    let cfg = DetectorConfig {
        baseline_s: 10.0,
        ..DetectorConfig::default()
    };
    let mut det = Detector::new(cfg).expect("valid config");
    let warm = mix(110_000, 1);
    for (i, m) in warm.iter().enumerate() {
        let mut m = *m;
        m.ts_ns = 1 + i as u64 * 100_000;
        det.observe(&m);
    }
    assert!(det.is_scoring());
    det
}

/// A detector whose baseline is the same mix at the same rate as the scored traffic (2 s at
/// 1 Mpps): the steady regime, where the trees flag few flows. Returns the detector and the
/// simulated time its baseline ended.
fn trained_steady() -> (Detector, u64) {
    let cfg = DetectorConfig {
        baseline_s: 2.0,
        ..DetectorConfig::default()
    };
    let mut det = Detector::new(cfg).expect("valid config");
    let warm = mix(2_100_000, 1);
    let end = warm.last().map_or(0, |m| m.ts_ns);
    let mut verdicts = Vec::with_capacity(256);
    for chunk in warm.chunks(256) {
        verdicts.clear();
        det.observe_batch(chunk, &mut verdicts);
    }
    assert!(det.is_scoring());
    (det, end)
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), if the
/// kernel tells.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` `iters` times and returns the time this thread spent on a CPU meanwhile: the
/// machine is shared, and wall-clock time would count the time other processes had the
/// core. Falls back to wall-clock time where the kernel does not report CPU time.
fn on_cpu<O>(iters: u64, mut f: impl FnMut() -> O) -> Duration {
    let wall = Instant::now();
    let cpu = thread_cpu_ns();
    for _ in 0..iters {
        black_box(f());
    }
    match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall.elapsed(),
    }
}

/// One pass of `pkts` through `observe_batch` in batches of 256, shifted `offset` ns later
/// than the previous pass; returns the sum of the scores (kept so nothing is optimised away).
fn batches(
    det: &mut Detector,
    pkts: &[PacketMeta],
    offset: &mut u64,
    batch: &mut Vec<PacketMeta>,
    verdicts: &mut Vec<shadownet_host::analysis::detector::Verdict>,
) -> f32 {
    let mut acc = 0f32;
    for chunk in pkts.chunks(256) {
        batch.clear();
        batch.extend(chunk.iter().map(|m| PacketMeta {
            ts_ns: m.ts_ns + *offset,
            ..*m
        }));
        verdicts.clear();
        det.observe_batch(batch, verdicts);
        acc += verdicts.iter().map(|v| v.score).sum::<f32>();
    }
    *offset += pkts.len() as u64 * 1_000;
    det.take_alerts();
    acc
}

fn bench(c: &mut Criterion) {
    const N: usize = 200_000;
    let start = 12_000_000_000;
    let pkts = mix(N, start);
    let frames: Vec<(u64, Vec<u8>)> = pkts.iter().map(|m| (m.ts_ns, frame(m))).collect();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);

    let mut det = trained();
    let mut offset = 0u64;
    g.bench_function("observe_meta", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                let mut acc = 0f32;
                for m in &pkts {
                    let mut m = *m;
                    m.ts_ns += offset;
                    acc += det.observe(&m).score;
                }
                offset += N as u64 * 1_000;
                det.take_alerts();
                acc
            })
        })
    });

    let mut det = trained();
    let mut offset = 0u64;
    let mut batch: Vec<PacketMeta> = Vec::with_capacity(256);
    let mut verdicts = Vec::with_capacity(256);
    g.bench_function("observe_batch", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                batches(&mut det, &pkts, &mut offset, &mut batch, &mut verdicts)
            })
        })
    });

    let (mut det, end) = trained_steady();
    // The same mix continues after the baseline (its own seed restarts the flows; the rate
    // and the shape are the baseline's).
    let mut offset = end + 1_000 - start;
    g.bench_function("observe_batch_steady", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                batches(&mut det, &pkts, &mut offset, &mut batch, &mut verdicts)
            })
        })
    });
    let st = det.stats();
    eprintln!(
        "steady regime: {} packets, {} alerts raised ({} suppressed by the per-subject limit)",
        st.packets, st.alerts, st.alerts_suppressed
    );

    let mut det = trained();
    let mut offset = 0u64;
    g.bench_function("observe_frame", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                let mut acc = 0f32;
                for (ts, f) in &frames {
                    if let Ok(Some(v)) = det.observe_frame(ts + offset, f) {
                        acc += v.score;
                    }
                }
                offset += N as u64 * 1_000;
                det.take_alerts();
                acc
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
