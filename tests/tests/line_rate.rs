//! With uplink input at 100% of line rate and every packet mirrored, production is exactly
//! what it is without mirroring — the same frames leave at the same picosecond, the same
//! production drops, the same latency — and every copy that cannot be sent is counted
//! (DESIGN.md: "*Mirror* mode never delays production: mirror traffic has its own queue with
//! strict low priority and its own policer, is dropped first, and every drop is counted by
//! reason"; README: "Mirroring never delays production").
//!
//! Traffic: VXLAN frames from db1's host to web1 (vf0) and web2 (vf1) back to back at exactly
//! the uplink's line rate, inner frames of 64..1500 bytes; at the same time web1 sends to db1
//! at 60% of its VF's line rate, so its encapsulated frames and the copies of everything
//! compete for the uplink's egress. The same arrivals go through three fresh labs: with
//! mirror filters on vf0 and vf1 (both directions), the same with the session's policer set,
//! and with the filters deleted.

use std::collections::BTreeMap;

use shadownet_hw::{
    Port,
    counters::PortCounter,
    drop::DropReason,
    layout::{
        rule::DirectionMatch,
        session::{Encap, MirrorSession, Mode},
    },
    table::TableId,
};
use shadownet_tests::rng::SplitMix64 as Rng;
use shadownet_tests::{
    accounting::Balance,
    counts::Counts,
    lab::{Collect, DB1, LOCAL, Lab, PROD_HOST, PROD_VNI, SESSION, Sent, WEB1, WEB2, mirror_all},
    packet::{Builder, mac},
};

/// Frames arriving on the uplink.
const UPLINK_FRAMES: usize = 17_000;
/// web1's share of its VF's line rate in the main runs. With the uplink at 100% this is more
/// than the pipeline passes (its 128 Gbit/s bus is shared by all ports; hw/docs/timing.md,
/// "Pipeline capacity"), so some frames are dropped at the receive FIFOs — with and without
/// mirroring alike.
const VF0_PERCENT: u64 = 60;
/// web1's share in the runs that stay within the pipeline's capacity.
const VF0_PERCENT_LIGHT: u64 = 20;
/// Picoseconds per pipeline cycle at the default 250 MHz.
const CYCLE_PS: u64 = 4_000;

/// One frame arriving (its last byte) on a port.
struct Arrival {
    at: u64,
    port: Port,
    frame: Vec<u8>,
}

/// An inner frame length in 64..=1500.
fn inner_len(rng: &mut Rng) -> usize {
    64 + rng.below(1437) as usize
}

/// The uplink at 100% and web1 at `vf0_percent`, merged in arrival order.
fn traffic(lab: &Lab, vf0_percent: u64) -> Vec<Arrival> {
    let model = lab.model();
    let mut rng = Rng(0x5eed_0001);
    let mut out = Vec::new();
    // Arrival k ends the wire time of frame k after arrival k-1: back to back at line rate.
    let mut t = 1_000_000u64;
    for k in 0..UPLINK_FRAMES {
        let (dst, dst_mac) = if rng.below(2) == 0 {
            (WEB1, mac(0x11))
        } else {
            (WEB2, mac(0x12))
        };
        let len = inner_len(&mut rng);
        let sport = 40_000 + (k % 512) as u16;
        let inner = if rng.below(4) == 0 {
            Builder::udp(DB1, dst, 53, sport)
        } else {
            Builder::tcp(DB1, dst, 5432, sport).flags(0x18)
        }
        .macs(mac(0x21), dst_mac)
        .frame_len(len)
        .build();
        assert_eq!(inner.len(), len);
        let frame = shadownet_tests::packet::vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner);
        t += model.wire_ps(Port::Uplink, frame.len());
        out.push(Arrival {
            at: t,
            port: Port::Uplink,
            frame,
        });
    }
    let end = t;
    let mut t = 1_000_000u64;
    let mut k = 0u16;
    loop {
        let len = inner_len(&mut rng);
        let frame = Builder::tcp(WEB1, DB1, 50_000 + k % 512, 5432)
            .flags(0x18)
            .macs(mac(0x11), mac(0x21))
            .frame_len(len)
            .build();
        t += model.wire_ps(Port::Vport(0), len) * 100 / vf0_percent;
        if t > end {
            break;
        }
        out.push(Arrival {
            at: t,
            port: Port::Vport(0),
            frame,
        });
        k = k.wrapping_add(1);
    }
    // Stable: at equal times the uplink's frame comes first.
    out.sort_by_key(|a| a.at);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// Mirror filters for vf0 and vf1, both directions.
    Mirror,
    /// The same with the session's policer at 20 Gbit/s, 64 KiB burst.
    MirrorPoliced,
    /// The filters written and deleted again.
    NoMirror,
}

fn lab(setup: Setup) -> Lab {
    let mut lab = Lab::new();
    lab.nic
        .write_mirror_filter(1, &mirror_all(1, DirectionMatch::Both))
        .expect("mirror filter for vf1");
    match setup {
        Setup::Mirror => {}
        Setup::MirrorPoliced => lab
            .nic
            .configure_session(
                SESSION,
                &MirrorSession {
                    policer_mbps: 20_000,
                    policer_burst: 65_536,
                    ..Lab::session(Encap::Geneve, Mode::Mirror)
                },
            )
            .expect("session with a policer"),
        Setup::NoMirror => {
            for slot in [0, 1] {
                assert!(
                    lab.nic
                        .delete_slot(TableId::MirrorFilter, slot)
                        .expect("delete"),
                    "mirror filter slot {slot} was empty"
                );
            }
        }
    }
    lab
}

/// What one lab did with the traffic.
struct Outcome {
    sent: Vec<Sent>,
    counts: Counts,
}

impl Outcome {
    /// Production frames in (packet, port) order.
    fn production(&self) -> Vec<&Sent> {
        let mut p: Vec<&Sent> = self.sent.iter().filter(|s| !s.mirror).collect();
        p.sort_by_key(|s| (s.packet, s.port));
        p
    }

    fn copies_sent(&self) -> usize {
        self.sent.iter().filter(|s| s.mirror).count()
    }

    /// Production latencies (ingress to start of transmission), ps, sorted.
    fn latencies(&self) -> Vec<u64> {
        let mut l: Vec<u64> = self
            .sent
            .iter()
            .filter(|s| !s.mirror)
            .map(|s| s.start_ps - s.ingress_ps)
            .collect();
        l.sort_unstable();
        l
    }
}

fn feed(setup: Setup, traffic: &[Arrival]) -> Outcome {
    let mut lab = lab(setup);
    let mut sink = Collect::default();
    {
        let mut model = lab.model();
        for a in traffic {
            model.receive(a.port, &a.frame, a.at, &mut sink);
        }
        model.finish(&mut sink);
    }
    let counts = lab.counts();
    // Frames leave every port one after the other: none starts before the previous one
    // (production or copy) has left the wire.
    let model = lab.model();
    let mut by_port: BTreeMap<Port, Vec<&Sent>> = BTreeMap::new();
    for s in &sink.0 {
        by_port.entry(s.port).or_default().push(s);
    }
    for (port, mut frames) in by_port {
        frames.sort_by_key(|s| s.start_ps);
        for w in frames.windows(2) {
            let end = w[0].start_ps + model.wire_ps(port, w[0].bytes.len());
            assert!(
                w[1].start_ps >= end,
                "{setup:?}: on {port}, packet {} (mirror {}) starts at {} ps before packet {} (mirror {}) ends at {end} ps",
                w[1].packet,
                w[1].mirror,
                w[1].start_ps,
                w[0].packet,
                w[0].mirror
            );
        }
    }
    drop(model);
    Outcome {
        sent: sink.0,
        counts,
    }
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Production of `a` is exactly production of `b`: frames, drops, latency.
fn same_production(what: &str, a: &Outcome, b: &Outcome) {
    let (pa, pb) = (a.production(), b.production());
    if let Some(i) = (0..pa.len().min(pb.len())).find(|&i| pa[i] != pb[i]) {
        let (x, y) = (pa[i], pb[i]);
        panic!(
            "{what}: production frame {i} differs: packet {} on {} at {} ps ({} bytes) vs packet {} on {} at {} ps ({} bytes)",
            x.packet,
            x.port,
            x.start_ps,
            x.bytes.len(),
            y.packet,
            y.port,
            y.start_ps,
            y.bytes.len()
        );
    }
    assert_eq!(pa.len(), pb.len(), "{what}: production frames sent");
    for r in DropReason::ALL.iter().filter(|r| !r.is_mirror()) {
        assert_eq!(
            a.counts.drop(*r),
            b.counts.drop(*r),
            "{what}: production drops for {r}"
        );
    }
    let late_copy_drops = [
        DropReason::MirrorQueueFull,
        DropReason::MirrorPoliced,
        DropReason::MirrorOversize,
    ]
    .iter()
    .map(|&r| a.counts.drop(r))
    .sum::<u64>();
    for i in 0..Port::COUNT {
        let p = Port::from_index(i).expect("a port");
        for k in [
            PortCounter::RxPackets,
            PortCounter::RxDrops,
            PortCounter::TxPackets,
            PortCounter::TxBytes,
        ] {
            assert_eq!(
                a.counts.port(p, k),
                b.counts.port(p, k),
                "{what}: {p} {k:?}"
            );
        }
        // Copies all leave the uplink; its egress drops are production's plus the copies'.
        let copies_here = if p == Port::Uplink {
            late_copy_drops
        } else {
            0
        };
        assert_eq!(
            a.counts.port(p, PortCounter::TxDrops),
            b.counts.port(p, PortCounter::TxDrops) + copies_here,
            "{what}: {p} tx_drops"
        );
    }
    assert!(
        a.latencies() == b.latencies(),
        "{what}: production latency distributions differ"
    );
}

/// Every copy made was sent or dropped, and those not sent are counted by the egress reasons.
fn copies_accounted(what: &str, o: &Outcome) -> BTreeMap<DropReason, u64> {
    let c = &o.counts;
    let b = Balance::of(c);
    let problems = b.problems();
    assert!(problems.is_empty(), "{what}: {problems:?}");
    assert_eq!(
        o.copies_sent() as u64,
        b.copies_sent,
        "{what}: copies in the sink"
    );
    let not_sent = b.copies - b.copies_sent;
    let by_reason: BTreeMap<DropReason, u64> = DropReason::ALL
        .iter()
        .filter(|r| r.is_mirror())
        .map(|&r| (r, c.drop(r)))
        .filter(|&(_, n)| n > 0)
        .collect();
    let egress: u64 = [
        DropReason::MirrorQueueFull,
        DropReason::MirrorOversize,
        DropReason::MirrorPoliced,
    ]
    .iter()
    .map(|&r| c.drop(r))
    .sum();
    assert_eq!(
        egress, not_sent,
        "{what}: copies not sent ({not_sent}) vs queue full + oversize + policed: {by_reason:?}"
    );
    by_reason
}

fn report(what: &str, fed: usize, o: &Outcome) {
    let b = Balance::of(&o.counts);
    let l = o.latencies();
    let drops: Vec<String> = o
        .counts
        .drops()
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let copy_bytes: u64 = o
        .sent
        .iter()
        .filter(|s| s.mirror)
        .map(|s| s.bytes.len() as u64)
        .sum();
    println!(
        "{what}: {fed} frames fed; {} transmitted, {} dropped; {} copies: {} sent ({copy_bytes} bytes), {} dropped; drops: [{}]; production latency p50 {} / p99 {} / max {} cycles",
        b.transmitted,
        b.dropped,
        b.copies,
        b.copies_sent,
        b.copies_dropped,
        drops.join(", "),
        quantile(&l, 0.5) / CYCLE_PS,
        quantile(&l, 0.99) / CYCLE_PS,
        l.last().copied().unwrap_or(0) / CYCLE_PS
    );
}

/// Runs the traffic with and without mirroring and checks production is the same.
fn mirror_vs_no_mirror(vf0_percent: u64) -> (Outcome, Outcome) {
    let traffic = traffic(&Lab::new(), vf0_percent);
    let fed = traffic.len();
    assert!(fed >= 20_000, "only {fed} frames");
    let a = feed(Setup::Mirror, &traffic);
    let b = feed(Setup::NoMirror, &traffic);
    report(&format!("mirror, vf0 at {vf0_percent}%"), fed, &a);
    report(&format!("no mirror, vf0 at {vf0_percent}%"), fed, &b);

    // Without filters nothing is copied.
    assert_eq!(Balance::of(&b.counts).copies, 0, "copies without filters");
    assert_eq!(b.copies_sent(), 0);
    assert!(Balance::of(&b.counts).problems().is_empty());
    // Every frame fed was received.
    assert_eq!(Balance::of(&a.counts).received, fed as u64);

    same_production("mirror vs no mirror", &a, &b);

    // Everything of vf0 and vf1 was asked to be copied: one copy per frame the pipeline
    // admitted; the uplink could not carry them all next to production.
    let ba = Balance::of(&a.counts);
    let admitted = ba.received - a.counts.drop(DropReason::RxFifoOverflow);
    assert_eq!(ba.copies, admitted, "one copy per admitted frame");
    assert!(ba.copies_sent > 0, "no copy left");
    assert!(
        ba.copies_dropped * 10 > ba.copies,
        "only {} of {} copies dropped: the uplink was not contended",
        ba.copies_dropped,
        ba.copies
    );
    let by_reason = copies_accounted("mirror", &a);
    assert!(
        by_reason
            .get(&DropReason::MirrorQueueFull)
            .copied()
            .unwrap_or(0)
            > 0,
        "no mirror_queue_full drops: {by_reason:?}"
    );
    assert_eq!(
        a.counts.drop(DropReason::MirrorPoliced),
        0,
        "policed without a policer"
    );
    (a, b)
}

#[test]
fn mirroring_everything_at_line_rate_leaves_production_unchanged() {
    let (a, _) = mirror_vs_no_mirror(VF0_PERCENT);
    // The pipeline is oversubscribed: production loses frames at the receive FIFOs (the same
    // ones in both runs, checked above) and waits there.
    assert!(a.counts.drop(DropReason::RxFifoOverflow) > 0);
}

#[test]
fn within_the_pipelines_capacity_production_loses_nothing_and_is_unchanged() {
    let (a, _) = mirror_vs_no_mirror(VF0_PERCENT_LIGHT);
    assert_eq!(
        a.counts.production_drops(),
        0,
        "production drops: {:?}",
        a.counts.drops()
    );
    // Without receive-FIFO waits, a production frame starts on the wire within a few
    // hundred cycles of its arrival (50 cycles of pipeline plus its queues).
    let l = a.latencies();
    assert!(
        quantile(&l, 0.99) / CYCLE_PS < 1_000,
        "production p99 latency {} cycles",
        quantile(&l, 0.99) / CYCLE_PS
    );
}

#[test]
fn the_mirror_policer_drops_copies_and_leaves_production_unchanged() {
    let traffic = traffic(&Lab::new(), VF0_PERCENT);
    let fed = traffic.len();
    let a = feed(Setup::MirrorPoliced, &traffic);
    let b = feed(Setup::NoMirror, &traffic);
    report("mirror, policer 20 Gbit/s", fed, &a);

    same_production("policed mirror vs no mirror", &a, &b);
    let by_reason = copies_accounted("policed mirror", &a);
    let policed = a.counts.drop(DropReason::MirrorPoliced);
    assert!(policed > 0, "no mirror_policed drops: {by_reason:?}");
    // The policer passes at most 20 Gbit/s of copies (plus its burst) between the first
    // ingress and the last transmission.
    let first = a
        .sent
        .iter()
        .map(|s| s.ingress_ps)
        .min()
        .expect("frames left");
    let last = a
        .sent
        .iter()
        .map(|s| s.start_ps)
        .max()
        .expect("frames left");
    let span_ps = last - first;
    let sent_bits: u64 = a
        .sent
        .iter()
        .filter(|s| s.mirror)
        .map(|s| s.bytes.len() as u64 * 8)
        .sum();
    let allowed_bits = 20_000 * span_ps / 1_000_000 + 65_536 * 8;
    assert!(
        sent_bits <= allowed_bits,
        "copies sent {sent_bits} bits, the policer allows {allowed_bits}"
    );
    // The session's own counter agrees with the drop reason.
    assert_eq!(
        a.counts
            .all_sessions(shadownet_hw::counters::SessionCounter::Policed),
        policed,
        "session policed counter"
    );
}
