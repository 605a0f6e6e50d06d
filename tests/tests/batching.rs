//! Receiving frames in batches changes nothing: the same frames leave at the same times, in
//! the same order across ports, with the same counters and run statistics, as when the same
//! frames are received one by one.
//!
//! A batch lets the model read table memory ahead, and lets the scheduler defer deciding and
//! releasing while every frame leaves by the one port already active (`Scheduler::catch_up`).
//! The traffic here has long runs of that (web1 to a remote VM: production and copy both
//! leave by the uplink, at line rate so that the mirror queue overflows) and stretches where
//! frames leave by several ports (the uplink delivering to both local VMs), so that deferring
//! starts and stops many times inside batches.

use shadownet_hw::{
    Port,
    layout::session::{Encap, MirrorSession, Mode},
};
use shadownet_sim::Arrival;
use shadownet_tests::rng::SplitMix64 as Rng;
use shadownet_tests::{
    lab::{Collect, DB1, LOCAL, Lab, PROD_HOST, PROD_VNI, SESSION, Sent, WEB1, WEB2},
    packet::{Builder, mac, vxlan},
};

/// One frame arriving (its last byte) on a port.
struct Received {
    at: u64,
    port: Port,
    frame: Vec<u8>,
}

/// A frame of `len` bytes, number `k` of its traffic: from the uplink, db1 answering web1 or
/// web2 (one local VM each, drawn by `rng`), or from web1's port, web1 sending to db1.
fn frame_of(rng: &mut Rng, k: u16, len: usize, from_uplink: bool) -> (Port, Vec<u8>) {
    if from_uplink {
        let (dst, dst_mac) = if rng.below(2) == 0 {
            (WEB1, mac(0x11))
        } else {
            (WEB2, mac(0x12))
        };
        let inner = Builder::tcp(DB1, dst, 5432, 40_000 + k % 64)
            .flags(0x18)
            .macs(mac(0x21), dst_mac)
            .frame_len(len)
            .build();
        (Port::Uplink, vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner))
    } else {
        let frame = Builder::tcp(WEB1, DB1, 50_000 + k % 64, 5432)
            .flags(0x18)
            .macs(mac(0x11), mac(0x21))
            .frame_len(len)
            .build();
        (Port::Vport(0), frame)
    }
}

/// Stretches of web1 sending to db1 (one egress port) alternating with stretches where the
/// uplink also delivers to web1 and web2 (several egress ports), each at line rate.
fn traffic(lab: &Lab) -> Vec<Received> {
    let model = lab.model();
    let mut rng = Rng(0x0ba7_c4ed);
    let mut out = Vec::new();
    let mut t = 1_000_000u64;
    for stretch in 0..8 {
        let mixed = stretch % 2 == 1;
        for k in 0..600u16 {
            let len = 60 + rng.below(1455) as usize;
            let from_uplink = mixed && rng.below(2) == 0;
            let (port, frame) = frame_of(&mut rng, k, len, from_uplink);
            t += model.wire_ps(port, frame.len());
            out.push(Received { at: t, port, frame });
        }
        // A pause now and then, so that queues drain and ports go idle.
        if stretch % 3 == 2 {
            t += 50_000_000;
        }
    }
    out
}

/// web1 sending to db1 (production and copy both leave by the uplink) at a quarter of its
/// line rate, IMIX sizes (7:4:1 of 64, 576 and 1500-byte packets): everything fits on the
/// uplink, and whole batches defer to the one active port.
fn quarter_rate_imix(lab: &Lab) -> Vec<Received> {
    let model = lab.model();
    let imix = [60usize, 60, 60, 60, 60, 60, 60, 572, 572, 572, 572, 1514];
    let mut t = 1_000_000u64;
    (0..4096u16)
        .map(|k| {
            let frame = Builder::tcp(WEB1, DB1, 50_000 + k % 64, 5432)
                .flags(0x18)
                .macs(mac(0x11), mac(0x21))
                .frame_len(imix[k as usize % imix.len()])
                .build();
            t += model.wire_ps(Port::Vport(0), frame.len()) * 4;
            Received {
                at: t,
                port: Port::Vport(0),
                frame,
            }
        })
        .collect()
}

/// Web1 sending to db1 with the uplink delivering to web1 and web2 now and then, sizes from
/// 60 to 1,514 bytes, in stretches at paces from line rate to six times slower: the mirror
/// queue goes from full to empty and back many times, through the states between (the
/// traffic above keeps it full; [`quarter_rate_imix`] keeps it near empty).
fn random_pace(lab: &Lab, seed: u64) -> Vec<Received> {
    let model = lab.model();
    let mut rng = Rng(seed);
    let mut t = 1_000_000u64;
    let mut pace = 10;
    let mut mixed = false;
    (0..2400u16)
        .map(|k| {
            // Stretches of 200 frames at one pace, in tenths of a frame's wire time: from
            // line rate (the mirror queue fills) to six times slower (it empties), with
            // jitter within a stretch; a third of them with the uplink delivering to web1 and
            // web2 half the time (several egress ports).
            if k % 200 == 0 {
                pace = [10, 11, 13, 16, 20, 30, 60][rng.below(7) as usize];
                mixed = rng.below(3) == 0;
            }
            let len = 60 + rng.below(1455) as usize;
            let from_uplink = mixed && rng.below(2) == 0;
            let (port, frame) = frame_of(&mut rng, k, len, from_uplink);
            t += model.wire_ps(port, frame.len()) * (pace + rng.below(4)) / 10;
            Received { at: t, port, frame }
        })
        .collect()
}

/// What a lab did with the traffic: every frame sent in order, and the counters followed by
/// the run statistics (copies dropped at index [`MIRROR_DROPS`]).
fn feed(policed: bool, batch: Option<usize>, traffic: &[Received]) -> (Vec<Sent>, Vec<u64>) {
    let mut lab = Lab::new();
    if policed {
        lab.nic
            .configure_session(
                SESSION,
                &MirrorSession {
                    policer_mbps: 30_000,
                    policer_burst: 32_768,
                    ..Lab::session(Encap::Geneve, Mode::Mirror)
                },
            )
            .expect("session with a policer");
    }
    let mut sink = Collect::default();
    let stats = {
        let mut model = lab.model();
        match batch {
            None => {
                for r in traffic {
                    model.receive(r.port, &r.frame, r.at, &mut sink);
                }
            }
            Some(n) => {
                for chunk in traffic.chunks(n) {
                    let arrivals: Vec<Arrival<'_>> = chunk
                        .iter()
                        .map(|r| Arrival {
                            port: r.port,
                            frame: &r.frame,
                            at_ps: r.at,
                        })
                        .collect();
                    model.receive_batch(&arrivals, &mut sink);
                }
            }
        }
        model.finish(&mut sink);
        let s = model.stats();
        vec![
            s.tx_frames,
            s.tx_bytes,
            s.mirror_frames,
            s.mirror_bytes,
            s.primary_drops,
            s.mirror_drops,
            s.last_tx_end_ps,
            s.last_event_ps,
            s.primary_latency.count(),
            s.primary_latency.max(),
            s.mirror_latency.count(),
            s.mirror_latency.max(),
            s.primary_latency.quantile(0.5),
            s.mirror_latency.quantile(0.99),
        ]
    };
    let mut counters = lab.counts().0.values.to_vec();
    counters.extend(stats);
    (sink.0, counters)
}

/// Feeds `traffic` in batches of each size of `batches` and asserts that every run sends
/// exactly `one_by_one` (the same frames in the same order) with the same `counters`
/// (counters and run statistics) as receiving the frames one by one; `what` names the case.
fn assert_batches_match(
    what: &str,
    policed: bool,
    traffic: &[Received],
    batches: &[usize],
    one_by_one: &[Sent],
    counters: &[u64],
) {
    for &batch in batches {
        let (batched, batched_counters) = feed(policed, Some(batch), traffic);
        assert_eq!(
            batched.len(),
            one_by_one.len(),
            "{what}, batches of {batch}: frames sent"
        );
        for (i, (a, b)) in one_by_one.iter().zip(&batched).enumerate() {
            assert_eq!(a, b, "{what}, batches of {batch}: frame {i}");
        }
        assert!(
            counters == batched_counters,
            "{what}, batches of {batch}: counters or statistics differ"
        );
    }
}

/// Where `feed` puts the number of copies dropped.
const MIRROR_DROPS: usize = shadownet_hw::counters::NUM_COUNTERS + 5;

#[test]
fn batches_leave_the_same_frames_in_the_same_order_as_single_frames() {
    let traffic = {
        let lab = Lab::new();
        traffic(&lab)
    };
    for policed in [false, true] {
        let (one_by_one, counters) = feed(policed, None, &traffic);
        assert!(one_by_one.iter().any(|s| s.mirror), "no copies");
        assert!(
            one_by_one.iter().any(|s| s.port == Port::Vport(1)),
            "nothing delivered to web2"
        );
        assert!(
            counters[MIRROR_DROPS] > 0,
            "policed {policed}: no copy dropped"
        );
        assert_batches_match(
            &format!("policed {policed}"),
            policed,
            &traffic,
            &[1, 7, 64, 256],
            &one_by_one,
            &counters,
        );
    }
}

/// A batch's copies reach the mirror queue's door together when the batch defers to one
/// port: each must be admitted only once it is known whether the copies ahead of it have
/// started by then (a copy admitted into an empty queue is decided first), or a batch counts
/// copies long gone as queued and drops copies that one frame at a time are sent.
#[test]
fn batches_admit_copies_to_the_mirror_queue_as_single_frames() {
    let traffic = {
        let lab = Lab::new();
        quarter_rate_imix(&lab)
    };
    let (one_by_one, counters) = feed(false, None, &traffic);
    assert_eq!(counters[MIRROR_DROPS], 0, "one by one: copies dropped");
    assert_eq!(
        one_by_one.len(),
        2 * traffic.len(),
        "one by one: frames sent"
    );
    for batch in [16, 256] {
        let (batched, batched_counters) = feed(false, Some(batch), &traffic);
        assert_eq!(
            batched_counters[MIRROR_DROPS], 0,
            "batches of {batch}: copies dropped"
        );
        assert!(
            batched == one_by_one,
            "batches of {batch}: frames sent differ"
        );
        assert!(
            counters == batched_counters,
            "batches of {batch}: counters or statistics differ"
        );
    }
}

/// Batches equal single frames at every pace between the mirror queue always full and
/// always empty: frames, order, counters and statistics, with and without a policer.
#[test]
fn batches_equal_single_frames_at_random_paces() {
    for seed in [1u64, 2, 3, 4] {
        let traffic = {
            let lab = Lab::new();
            random_pace(&lab, seed)
        };
        for policed in [false, true] {
            let (one_by_one, counters) = feed(policed, None, &traffic);
            assert!(
                one_by_one.iter().any(|s| s.mirror),
                "seed {seed}: no copies"
            );
            assert!(
                counters[MIRROR_DROPS] > 0,
                "seed {seed}, policed {policed}: the mirror queue never filled"
            );
            assert_batches_match(
                &format!("seed {seed}, policed {policed}"),
                policed,
                &traffic,
                &[7, 64, 256],
                &one_by_one,
                &counters,
            );
        }
    }
}
