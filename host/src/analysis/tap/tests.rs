use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::analysis::honeypot::Service;
use crate::analysis::trafficgen::packet::{Endpoint, IpFields, TcpFields, tcp_frame};
use shadownet_wire::{
    EncapParams, EthernetAddress, SHADOW_DIRECTION_TO_VM, SHADOW_FLAG_REDIRECTED, TunnelHeader,
    emit_encap, tcp,
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
                direction: SHADOW_DIRECTION_TO_VM,
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
fn decapsulation_gives_the_inner_frame_and_the_metadata() {
    let inner = syn(
        Ipv4Addr::new(10, 0, 0, 1),
        1234,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    let frame = encap(&inner, SHADOW_VNI, 9, SHADOW_FLAG_REDIRECTED);
    let f = decapsulate(&frame).expect("decapsulates");
    assert_eq!(f.vni, SHADOW_VNI);
    assert_eq!(f.kind, TunnelKind::Geneve);
    assert_eq!(f.inner, &inner[..]);
    let m = f.metadata.expect("metadata");
    assert_eq!((m.session, m.sequence), (3, 9));
    assert!(f.redirected());
    assert!(matches!(decapsulate(&inner), Err(TapError::NotTunnelled)));
    assert!(matches!(
        decapsulate(&[1, 2, 3]),
        Err(TapError::Malformed(_))
    ));
}

#[test]
fn sequence_gaps_count_as_loss_and_late_frames_separately() {
    let mut t = SequenceTracker::default();
    let m = |sequence| ShadowMetadata {
        session: 1,
        direction: 0,
        flags: 0,
        sequence,
        original_len: 60,
    };
    for s in [10, 11, 14, 15, 13, 16] {
        t.observe(&m(s));
    }
    // 12 and 13 were missing when 14 came; 13 came late.
    assert_eq!((t.seen, t.lost, t.late), (6, 2, 1));
    // Wrap-around is not loss.
    let mut t = SequenceTracker::default();
    t.observe(&m(u32::MAX));
    t.observe(&m(0));
    assert_eq!(t.lost, 0);
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
    // A port scan: the detector scores it, the gate withholds it and blocks its source.
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
    assert!(tap.blocked().any(|ip| *ip == IpAddr::V4(attacker)));
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
    assert_eq!(tap.take_interactions().len(), 1);
    assert_eq!(tap.stats().honeypot_replies, 1);
}
