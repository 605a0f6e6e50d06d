use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::analysis::honeypot::Service;
use crate::analysis::trafficgen::packet::{Endpoint, IpFields, TcpFields, tcp_frame};
use shadownet_wire::{
    EncapParams, EthernetAddress, SHADOW_DIRECTION_FROM_VM, SHADOW_DIRECTION_TO_VM,
    SHADOW_FLAG_REDIRECTED, ShadowMetadata, TunnelHeader, emit_encap, tcp,
};

const SHADOW_VNI: u32 = 0xF0_0001;

fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    tcp_frame(
        &Endpoint {
            mac: [2, 0, 0, 0, 0, 1],
            ip: src,
            port: sport,
        },
        &Endpoint {
            mac: [2, 0, 0, 0, 0, 2],
            ip: dst,
            port: dport,
        },
        None,
        IpFields { ttl: 64, ident: 1 },
        TcpFields {
            seq: 100,
            ack: 0,
            flags: tcp::flags::SYN,
            window: 1024,
        },
        &[],
        &[],
    )
}

fn encap(inner: &[u8], vni: u32, sequence: u32, flags: u8) -> Vec<u8> {
    encap_dir(inner, vni, sequence, flags, SHADOW_DIRECTION_TO_VM)
}

fn encap_dir(inner: &[u8], vni: u32, sequence: u32, flags: u8, direction: u8) -> Vec<u8> {
    let params = EncapParams {
        src_mac: EthernetAddress([2, 0, 0, 0, 1, 1]),
        dst_mac: EthernetAddress([2, 0, 0, 0, 1, 2]),
        src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        udp_src_port: 50000,
        udp_dst_port: 6081,
        ttl: 64,
        tunnel: TunnelHeader::Geneve {
            vni,
            shadow: Some(ShadowMetadata {
                session: 3,
                direction,
                flags,
                sequence,
                original_len: inner.len() as u16,
            }),
        },
    };
    let mut out = vec![0u8; inner.len() + 200];
    let n = emit_encap(&params, inner, &mut out).expect("encap");
    out.truncate(n);
    out
}

fn config(gate_score: f32) -> TapConfig {
    TapConfig {
        vni: SHADOW_VNI,
        detector: DetectorConfig {
            baseline_s: 1.0,
            ..DetectorConfig::default()
        },
        honeypots: vec![],
        gate_score,
    }
}

#[test]
fn sequence_gaps_of_the_shadow_count_as_loss() {
    let mut tap = ShadowTap::new(config(6.5)).expect("tap");
    let inner = syn(
        Ipv4Addr::new(10, 0, 0, 1),
        1234,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    for s in [10, 11, 14, 15] {
        tap.observe_encapsulated(u64::from(s), &encap(&inner, SHADOW_VNI, s, 0))
            .expect("a copy of this shadow");
    }
    // 12 and 13 never arrived.
    assert_eq!(tap.stats().lost, 2);
    assert_eq!(tap.decap_stats().decapsulated, 4);
}

#[test]
fn frames_of_another_shadow_are_rejected() {
    let mut tap = ShadowTap::new(config(6.5)).expect("tap");
    let inner = syn(
        Ipv4Addr::new(10, 0, 0, 1),
        1234,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    assert!(
        tap.observe_encapsulated(1, &encap(&inner, 7, 0, 0))
            .is_err()
    );
    assert_eq!(tap.stats().rejected, 1);
}

#[test]
fn the_gate_releases_until_a_source_is_blocked_or_detected() {
    let mut tap = ShadowTap::new(config(6.5)).expect("tap");
    let client = Ipv4Addr::new(10, 0, 0, 1);
    let server = Ipv4Addr::new(10, 0, 0, 2);
    let attacker = Ipv4Addr::new(203, 0, 113, 9);
    let mut seq = 0;
    let mut send = |tap: &mut ShadowTap, ts_ns: u64, inner: &[u8]| {
        seq += 1;
        let o = tap
            .observe_encapsulated(
                ts_ns,
                &encap(inner, SHADOW_VNI, seq, SHADOW_FLAG_REDIRECTED),
            )
            .expect("observed");
        o.verdict.expect("redirected frames get a verdict")
    };
    // Baseline: a client opening a connection to the web server every 10 ms for 2 s.
    for i in 0..200u64 {
        let v = send(
            &mut tap,
            i * 10_000_000,
            &syn(client, 30000 + i as u16, server, 80),
        );
        assert_eq!(v, GateVerdict::Release);
    }
    // A named source is refused from now on.
    tap.block(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    let v = send(
        &mut tap,
        2_000_000_000,
        &syn(Ipv4Addr::new(198, 51, 100, 1), 1, server, 80),
    );
    assert_eq!(v, GateVerdict::BlockedSource);
    // A port scan: the detector scores it, the gate withholds it and the pair from then on.
    let mut detected_at = None;
    for p in 0..2000u16 {
        let v = send(
            &mut tap,
            2_100_000_000 + u64::from(p) * 100_000,
            &syn(attacker, 40000, server, 1 + p),
        );
        match v {
            GateVerdict::Release => assert!(detected_at.is_none(), "released after detection"),
            GateVerdict::Detected { .. } if detected_at.is_none() => detected_at = Some(p),
            _ => {}
        }
    }
    let first = detected_at.expect("the scan is detected");
    assert!(first < 500, "detected only after {first} probes");
    assert!(tap.detected_pairs().any(|(a, b)| {
        (*a, *b) == (IpAddr::V4(attacker), IpAddr::V4(server))
            || (*b, *a) == (IpAddr::V4(attacker), IpAddr::V4(server))
    }));
    let s = tap.stats();
    assert_eq!(s.released + s.withheld, 200 + 1 + 2000);
    assert_eq!(s.withheld, 1 + 2000 - u64::from(first));
    // The client is still released.
    let v = send(&mut tap, 2_400_000_000, &syn(client, 50001, server, 80));
    assert_eq!(v, GateVerdict::Release);
}

#[test]
fn honeypots_answer_inside_the_shadow() {
    let hp_ip = Ipv4Addr::new(10, 0, 0, 99);
    let mut cfg = config(6.5);
    cfg.honeypots = vec![HoneypotSpec {
        ip: hp_ip,
        mac: [2, 0, 0, 0, 0, 2],
        services: vec![Service::tcp(80, b"HTTP/1.1 200 OK\r\n\r\n")],
        cookie_key: 1,
    }];
    let mut tap = ShadowTap::new(cfg).expect("tap");
    let o = tap
        .observe_encapsulated(
            1,
            &encap(
                &syn(Ipv4Addr::new(10, 0, 0, 1), 1000, hp_ip, 80),
                SHADOW_VNI,
                0,
                0,
            ),
        )
        .expect("observed");
    assert_eq!(o.replies.len(), 1);
    assert!(o.verdict.is_none(), "a mirrored copy needs no verdict");
    let seen = tap.take_interactions();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, hp_ip, "the interaction names its honeypot");
    assert_eq!(tap.stats().honeypot_replies, 1);
}

#[test]
fn a_frame_between_two_vms_of_the_nic_is_analysed_once() {
    let mut tap = ShadowTap::new(config(6.5)).expect("tap");
    let a = syn(
        Ipv4Addr::new(10, 0, 0, 1),
        1234,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    let b = syn(
        Ipv4Addr::new(10, 0, 0, 1),
        1235,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    let mut seq = 0;
    let mut copy = |tap: &mut ShadowTap, ts: u64, inner: &[u8], dir: u8, flags: u8| {
        seq += 1;
        tap.observe_encapsulated(ts, &encap_dir(inner, SHADOW_VNI, seq, flags, dir))
            .expect("copy")
            .duplicate
    };
    // Leaving the first VM, then entering the second: the second copy is the same frame.
    assert!(!copy(&mut tap, 1_000, &a, SHADOW_DIRECTION_FROM_VM, 0));
    assert!(copy(&mut tap, 3_000, &a, SHADOW_DIRECTION_TO_VM, 0));
    // Another frame; the same bytes leaving twice (a retransmission) before the first
    // arrival's copy: still one analysis per copy pair.
    assert!(!copy(&mut tap, 4_000, &b, SHADOW_DIRECTION_TO_VM, 0));
    assert!(!copy(&mut tap, 5_000, &a, SHADOW_DIRECTION_FROM_VM, 0));
    assert!(!copy(&mut tap, 6_000, &a, SHADOW_DIRECTION_FROM_VM, 0));
    assert!(copy(&mut tap, 7_000, &a, SHADOW_DIRECTION_TO_VM, 0));
    // Two copies in one direction are two frames (a repeated frame from outside).
    assert!(!copy(&mut tap, 8_000, &b, SHADOW_DIRECTION_TO_VM, 0));
    // Copies further apart than the window are not paired.
    let late = 8_000 + DUPLICATE_WINDOW_NS + 1;
    assert!(!copy(&mut tap, late, &b, SHADOW_DIRECTION_FROM_VM, 0));
    // Redirected frames are never copies of one another: the NIC sends each once.
    assert!(!copy(
        &mut tap,
        late + 1,
        &b,
        SHADOW_DIRECTION_TO_VM,
        SHADOW_FLAG_REDIRECTED
    ));
    let s = tap.stats();
    assert_eq!(s.duplicates, 2, "{s:?}");
    assert_eq!(
        tap.detector().stats().packets,
        7,
        "all but the two second copies"
    );
}
