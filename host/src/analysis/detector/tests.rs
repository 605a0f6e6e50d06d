//! End-to-end tests on synthetic traffic: a benign office-and-servers mix for the baseline,
//! then each attack class mixed into continuing benign traffic.

use core::net::{IpAddr, Ipv4Addr};

use super::hst::SplitMix;
use super::*;

const S: u64 = 1_000_000_000;
const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = flags::SYN;
const ACK: u8 = flags::ACK;
const PSH: u8 = flags::PSH;
const FIN: u8 = flags::FIN;
const RST: u8 = flags::RST;

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[derive(Clone, Copy)]
struct P {
    meta: PacketMeta,
    attack: bool,
}

#[allow(clippy::too_many_arguments)]
fn pkt(
    ts: u64,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sp: u16,
    dp: u16,
    payload: u16,
    fl: u8,
) -> PacketMeta {
    let hdr = if proto == TCP { 40 } else { 28 };
    PacketMeta {
        ts_ns: ts,
        src,
        dst,
        proto,
        sport: sp,
        dport: dp,
        len: hdr + payload,
        payload_len: payload,
        tcp_flags: fl,
    }
}

/// A TCP connection: handshake, `req` bytes up, `resp_pkts` full packets down, close.
#[allow(clippy::too_many_arguments)]
fn tcp_session(
    out: &mut Vec<P>,
    rng: &mut SplitMix,
    t: u64,
    c: IpAddr,
    s: IpAddr,
    sp: u16,
    dp: u16,
    req: u16,
    resp_pkts: u32,
    attack: bool,
) -> u64 {
    let rtt = 300_000 + (rng.next_u64() % 700_000);
    let mut t = t;
    let mut push = |_: u64, m: PacketMeta| out.push(P { meta: m, attack });
    push(t, pkt(t, c, s, TCP, sp, dp, 0, SYN));
    t += rtt / 2;
    push(t, pkt(t, s, c, TCP, dp, sp, 0, SYN | ACK));
    t += rtt / 2;
    push(t, pkt(t, c, s, TCP, sp, dp, 0, ACK));
    push(t + 1000, pkt(t + 1000, c, s, TCP, sp, dp, req, ACK | PSH));
    t += rtt;
    for i in 0..resp_pkts {
        let len = if i + 1 == resp_pkts {
            200 + (rng.next_u64() % 1200) as u16
        } else {
            1460
        };
        push(t, pkt(t, s, c, TCP, dp, sp, len, ACK));
        t += 20_000 + rng.next_u64() % 50_000;
        if i % 2 == 1 {
            push(t, pkt(t, c, s, TCP, sp, dp, 0, ACK));
        }
    }
    t += rtt / 2;
    push(t, pkt(t, c, s, TCP, sp, dp, 0, FIN | ACK));
    t += rtt / 2;
    push(t, pkt(t, s, c, TCP, dp, sp, 0, FIN | ACK));
    push(t + rtt / 2, pkt(t + rtt / 2, c, s, TCP, sp, dp, 0, ACK));
    t
}

fn exp_gap(rng: &mut SplitMix, mean_s: f64) -> u64 {
    let u = f64::from(rng.next_f32()).max(1e-6);
    (-u.ln() * mean_s * 1e9) as u64
}

/// Benign traffic from `from` to `to` seconds: web clients with DNS lookups, an admin who
/// uses SSH now and then, a health checker polling every server every 5 s.
fn benign(seed: u64, from: u64, to: u64) -> Vec<P> {
    let mut rng = SplitMix::new(seed);
    let mut out = Vec::new();
    let resolver = ip(10, 0, 0, 53);
    for c in 1..=40u8 {
        let client = ip(10, 0, 1, c);
        let mut t = from * S + exp_gap(&mut rng, 1.0);
        let mut sport = 20_000u16 + u16::from(c) * 300;
        while t < to * S {
            if rng.next_f32() < 0.4 {
                let q = 40 + (rng.next_u64() % 30) as u16;
                out.push(P {
                    meta: pkt(t, client, resolver, UDP, sport, 53, q, 0),
                    attack: false,
                });
                let r = q + 16 + (rng.next_u64() % 120) as u16;
                let t2 = t + 2_000_000;
                out.push(P {
                    meta: pkt(t2, resolver, client, UDP, 53, sport, r, 0),
                    attack: false,
                });
                t += 3_000_000;
            }
            let server = ip(10, 0, 2, 1 + (rng.next_u64() % 5) as u8);
            let dport = if rng.next_f32() < 0.7 { 443 } else { 80 };
            sport = sport.wrapping_add(1).max(1024);
            let req = 200 + (rng.next_u64() % 500) as u16;
            let resp = 1 + (rng.next_u64() % 12) as u32;
            tcp_session(
                &mut out, &mut rng, t, client, server, sport, dport, req, resp, false,
            );
            t += exp_gap(&mut rng, 2.0);
        }
    }
    // The admin.
    let admin = ip(10, 0, 1, 250);
    let mut t = from * S + exp_gap(&mut rng, 10.0);
    let mut sp = 40_000;
    while t < to * S {
        let server = ip(10, 0, 2, 1 + (rng.next_u64() % 3) as u8);
        sp += 1;
        tcp_session(&mut out, &mut rng, t, admin, server, sp, 22, 100, 3, false);
        t += exp_gap(&mut rng, 15.0);
    }
    // The health checker (periodic by design: the baseline must learn it).
    let checker = ip(10, 0, 0, 9);
    for k in 0..5u8 {
        let server = ip(10, 0, 2, 1 + k);
        let mut t = from * S + u64::from(k) * 700_000_000;
        let mut sp = 50_000 + u16::from(k) * 1000;
        while t < to * S {
            sp = sp.wrapping_add(1).max(1024);
            tcp_session(&mut out, &mut rng, t, checker, server, sp, 80, 80, 1, false);
            t += 5 * S + rng.next_u64() % 10_000_000;
        }
    }
    out
}

fn syn_flood(rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let victim = ip(10, 0, 2, 1);
    let n = secs * 5_000;
    (0..n)
        .map(|i| {
            let t = from * S + i * S / 5_000;
            let r = rng.next_u64();
            let src = ip(172, 16 + (r % 16) as u8, (r >> 8) as u8, (r >> 16) as u8);
            P {
                meta: pkt(
                    t,
                    src,
                    victim,
                    TCP,
                    1024 + (r >> 24) as u16 % 60_000,
                    80,
                    0,
                    SYN,
                ),
                attack: true,
            }
        })
        .collect()
}

fn port_scan(_rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let scanner = ip(10, 0, 1, 66);
    let target = ip(10, 0, 2, 3);
    let mut out = Vec::new();
    for i in 0..(secs * 200) {
        let t = from * S + i * S / 200;
        let port = 1 + (i % 4000) as u16;
        out.push(P {
            meta: pkt(t, scanner, target, TCP, 61_000, port, 0, SYN),
            attack: true,
        });
        out.push(P {
            meta: pkt(
                t + 200_000,
                target,
                scanner,
                TCP,
                port,
                61_000,
                0,
                RST | ACK,
            ),
            attack: true,
        });
    }
    out
}

fn dns_amp(rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let victim = ip(10, 0, 1, 7);
    (0..secs * 2_000)
        .map(|i| {
            let t = from * S + i * S / 2_000;
            let r = rng.next_u64();
            let reflector = ip(198, 51, 100, (r % 200) as u8);
            P {
                meta: pkt(
                    t,
                    reflector,
                    victim,
                    UDP,
                    53,
                    4444,
                    1400 + (r >> 16) as u16 % 60,
                    0,
                ),
                attack: true,
            }
        })
        .collect()
}

fn slowloris(rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let attacker = ip(10, 0, 1, 77);
    let server = ip(10, 0, 2, 2);
    let mut out = Vec::new();
    for k in 0..300u64 {
        let sp = 30_000 + k as u16;
        let mut t = from * S + k * 30_000_000;
        let push = |out: &mut Vec<P>, m| {
            out.push(P {
                meta: m,
                attack: true,
            })
        };
        push(&mut out, pkt(t, attacker, server, TCP, sp, 80, 0, SYN));
        push(
            &mut out,
            pkt(t + 500_000, server, attacker, TCP, 80, sp, 0, SYN | ACK),
        );
        push(
            &mut out,
            pkt(t + 1_000_000, attacker, server, TCP, sp, 80, 0, ACK),
        );
        push(
            &mut out,
            pkt(t + 1_100_000, attacker, server, TCP, sp, 80, 60, ACK | PSH),
        );
        t += 1_100_000;
        while t < (from + secs) * S {
            t += 8 * S + rng.next_u64() % (2 * S);
            push(
                &mut out,
                pkt(t, attacker, server, TCP, sp, 80, 12, ACK | PSH),
            );
            push(
                &mut out,
                pkt(t + 600_000, server, attacker, TCP, 80, sp, 0, ACK),
            );
        }
    }
    out.retain(|p| p.meta.ts_ns < (from + secs) * S);
    out
}

fn beaconing(rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let implant = ip(10, 0, 1, 88);
    let c2 = ip(203, 0, 113, 9);
    let mut out = Vec::new();
    let mut t = from * S;
    let mut sp = 45_000;
    while t < (from + secs) * S {
        sp += 1;
        tcp_session(&mut out, rng, t, implant, c2, sp, 443, 900, 1, true);
        // Every 10 s with ±2% jitter.
        t += 10 * S - S / 5 + rng.next_u64() % (2 * S / 5);
    }
    out
}

fn lateral(rng: &mut SplitMix, from: u64, secs: u64) -> Vec<P> {
    let pivot = ip(10, 0, 1, 99);
    let mut out = Vec::new();
    let mut t = from * S;
    let mut sp = 52_000;
    let mut k = 0u8;
    while t < (from + secs) * S {
        let target = if k.is_multiple_of(2) {
            ip(10, 0, 1, 100 + k)
        } else {
            ip(10, 0, 2, 10 + k)
        };
        let port = if k.is_multiple_of(3) { 22 } else { 445 };
        sp += 1;
        tcp_session(&mut out, rng, t, pivot, target, sp, port, 300, 4, true);
        k = k.wrapping_add(1);
        t += 2 * S + rng.next_u64() % S;
    }
    out
}

fn sorted(mut v: Vec<P>) -> Vec<P> {
    v.sort_by_key(|p| p.meta.ts_ns);
    v
}

struct Run {
    attack_scores: Vec<f32>,
    attack_hints: Vec<ClassHint>,
    benign_scores: Vec<f32>,
    benign_hints: Vec<ClassHint>,
    alerts: Vec<Alert>,
}

/// An attack generator: rng, start second, duration in seconds.
type AttackGen = fn(&mut SplitMix, u64, u64) -> Vec<P>;

fn run(attack: Option<AttackGen>, secs: u64) -> Run {
    let mut det = Detector::new(DetectorConfig::default()).expect("default config");
    let mut traffic = benign(11, 0, 70 + secs);
    if let Some(f) = attack {
        traffic.extend(f(&mut SplitMix::new(99), 70, secs));
    }
    let traffic = sorted(traffic);
    let mut r = Run {
        attack_scores: vec![],
        attack_hints: vec![],
        benign_scores: vec![],
        benign_hints: vec![],
        alerts: vec![],
    };
    for p in &traffic {
        let v = det.observe(&p.meta);
        if p.meta.ts_ns >= 61 * S {
            assert!(!v.learning);
            if p.attack {
                r.attack_scores.push(v.score);
                r.attack_hints.push(v.class_hint);
            } else {
                r.benign_scores.push(v.score);
                if v.score >= det.config().alert_threshold {
                    r.benign_hints.push(v.class_hint);
                }
            }
        } else {
            assert!(v.learning || p.meta.ts_ns >= 60 * S);
        }
    }
    r.alerts = det.take_alerts();
    for b in det.baseline() {
        eprintln!("baseline {b:?}");
    }
    r
}

fn count(h: &[ClassHint]) -> Vec<(ClassHint, usize)> {
    ClassHint::ALL
        .iter()
        .map(|c| (*c, h.iter().filter(|x| *x == c).count()))
        .filter(|x| x.1 > 0)
        .collect()
}

fn check_class(name: &str, f: AttackGen, secs: u64, class: ClassHint, min_auc: f64) {
    let r = run(Some(f), secs);
    let a =
        crate::analysis::quality::roc_auc(&r.attack_scores, &r.benign_scores).unwrap_or(f64::NAN);
    let hinted =
        r.attack_hints.iter().filter(|h| **h == class).count() as f64 / r.attack_hints.len() as f64;
    let thr = DetectorConfig::default().alert_threshold;
    let detected =
        r.attack_scores.iter().filter(|s| **s >= thr).count() as f64 / r.attack_scores.len() as f64;
    let fp =
        r.benign_scores.iter().filter(|s| **s >= thr).count() as f64 / r.benign_scores.len() as f64;
    let right_alerts = r.alerts.iter().filter(|a| a.class_hint == class).count();
    eprintln!(
        "{name}: AUC {a:.4}, hint {:.1}%, detected {:.1}%, benign FPR {:.3}%, alerts {} ({} right)",
        hinted * 100.0,
        detected * 100.0,
        fp * 100.0,
        r.alerts.len(),
        right_alerts
    );
    let mut q = r.attack_scores.clone();
    q.sort_by(f32::total_cmp);
    let at = |p: f64| q[((q.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{name}: attack score quantiles: p10 {} p50 {} p90 {} max {}",
        at(0.1),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    eprintln!(
        "{name}: benign above threshold by class {:?}; alerts {:?}",
        count(&r.benign_hints),
        count(&r.alerts.iter().map(|a| a.class_hint).collect::<Vec<_>>())
    );
    assert!(a >= min_auc, "{name}: AUC {a}");
    assert!(hinted >= 0.5, "{name}: class hint right for {hinted}");
    assert!(
        right_alerts >= 1,
        "{name}: no {class:?} alert among {:?}",
        r.alerts.iter().map(|a| a.class_hint).collect::<Vec<_>>()
    );
    let alert = r
        .alerts
        .iter()
        .find(|a| a.class_hint == class)
        .expect("checked");
    assert!(!alert.explanation.is_empty());
    assert!(
        alert.explanation[0].z >= f64::from(thr),
        "{:?}",
        alert.explanation
    );
    assert!(fp <= 0.002, "{name}: benign FPR {fp}");
}

#[test]
fn benign_after_baseline_raises_few_alerts() {
    let r = run(None, 60);
    let thr = DetectorConfig::default().alert_threshold;
    let fp = r.benign_scores.iter().filter(|s| **s >= thr).count();
    eprintln!(
        "benign: {} packets scored, {} at or above threshold, {} alerts",
        r.benign_scores.len(),
        fp,
        r.alerts.len()
    );
    let mut q = r.benign_scores.clone();
    q.sort_by(f32::total_cmp);
    let at = |p: f64| q[((q.len() - 1) as f64 * p) as usize];
    eprintln!(
        "benign score quantiles: p50 {} p99 {} p99.9 {} max {}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
    assert!(r.benign_scores.len() > 10_000);
    assert!(
        (fp as f64) <= 0.001 * r.benign_scores.len() as f64,
        "{fp} false positives"
    );
    assert!(r.alerts.len() <= 3, "{:?}", r.alerts);
}

#[test]
fn syn_flood_detected() {
    check_class("syn_flood", syn_flood, 20, ClassHint::SynFlood, 0.99);
}

#[test]
fn port_scan_detected() {
    check_class("port_scan", port_scan, 20, ClassHint::PortScan, 0.99);
}

#[test]
fn dns_amplification_detected() {
    check_class(
        "dns_amplification",
        dns_amp,
        20,
        ClassHint::DnsAmplification,
        0.99,
    );
}

#[test]
fn slowloris_detected() {
    check_class("slowloris", slowloris, 40, ClassHint::Slowloris, 0.95);
}

#[test]
fn beaconing_detected() {
    check_class("beaconing", beaconing, 300, ClassHint::Beaconing, 0.9);
}

#[test]
fn lateral_movement_detected() {
    check_class(
        "lateral_movement",
        lateral,
        60,
        ClassHint::LateralMovement,
        0.95,
    );
}

#[test]
fn frames_are_parsed_through_tunnels_and_bad_frames_refused() {
    let inner = build_tcp_frame([10, 0, 1, 5], [10, 0, 2, 1], 40_000, 80, SYN, 0);
    let outer = vxlan_wrap(&inner);
    let mut det = Detector::new(DetectorConfig::default()).expect("config");
    for (frame, tunnelled) in [(&inner, false), (&outer, true)] {
        let m = PacketMeta::from_frame(5, frame, &ParseConfig::default())
            .expect("parses")
            .expect("ip");
        assert_eq!(m.src, ip(10, 0, 1, 5), "tunnelled {tunnelled}");
        assert_eq!(m.dst, ip(10, 0, 2, 1));
        assert_eq!(
            (m.sport, m.dport, m.tcp_flags, m.proto),
            (40_000, 80, SYN, TCP)
        );
        assert_eq!(m.len, 40);
        assert_eq!(m.payload_len, 0);
        let v = det.observe_frame(5, frame).expect("observes").expect("ip");
        assert!(v.learning);
    }
    let data = build_tcp_frame([10, 0, 1, 5], [10, 0, 2, 1], 40_000, 80, ACK | PSH, 123);
    let m = PacketMeta::from_frame(6, &data, &ParseConfig::default())
        .expect("parses")
        .expect("ip");
    assert_eq!(m.payload_len, 123);
    assert!(matches!(
        det.observe_frame(7, &inner[..20]),
        Err(DetectorError::Frame(_))
    ));
    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0; 20]);
    assert!(det.observe_frame(8, &arp).expect("arp is fine").is_none());
    let st = det.stats();
    assert_eq!((st.packets, st.malformed, st.not_ip), (2, 1, 1));
}

#[test]
fn bad_configuration_is_refused() {
    for (cfg, field) in [
        (
            DetectorConfig {
                baseline_s: 0.0,
                ..Default::default()
            },
            "baseline_s",
        ),
        (
            DetectorConfig {
                max_flows: 1,
                ..Default::default()
            },
            "max_flows",
        ),
        (
            DetectorConfig {
                hst_depth: 40,
                ..Default::default()
            },
            "hst_depth",
        ),
        (
            DetectorConfig {
                alert_threshold: f32::NAN,
                ..Default::default()
            },
            "alert_threshold",
        ),
    ] {
        match Detector::new(cfg) {
            Err(DetectorError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {:?}", other.err()),
        }
    }
}

#[test]
fn memory_stays_bounded_under_a_spoofed_flood() {
    let cfg = DetectorConfig {
        baseline_s: 1.0,
        max_hosts: 1000,
        max_pairs: 1000,
        max_flows: 1000,
        max_host_ports: 1000,
        ..Default::default()
    };
    let mut det = Detector::new(cfg).expect("config");
    let mut rng = SplitMix::new(3);
    for p in syn_flood(&mut rng, 0, 4) {
        det.observe(&p.meta);
    }
    let st = det.stats();
    assert!(st.tracked.iter().all(|&n| n <= 1000), "{st:?}");
    assert!(st.evicted.iter().all(|&n| n > 10_000), "{st:?}");
}

#[test]
fn alerts_serialize_and_are_rate_limited() {
    let r = run(Some(syn_flood), 20);
    // 100k flood packets, alerts about the one victim at most every 10 s.
    let flood: Vec<&Alert> = r
        .alerts
        .iter()
        .filter(|a| a.class_hint == ClassHint::SynFlood)
        .collect();
    assert!(!flood.is_empty() && flood.len() <= 3, "{}", flood.len());
    let json = serde_json::to_string(flood[0]).expect("serialises");
    assert!(json.contains("\"class_hint\":\"syn_flood\""), "{json}");
    let back: Alert = serde_json::from_str(&json).expect("round trip");
    // serde_json's default float parsing may differ in the last bit.
    let a = flood[0];
    assert_eq!(
        (back.ts_ns, back.class_hint, back.src, back.dst),
        (a.ts_ns, a.class_hint, a.src, a.dst)
    );
    assert_eq!(back.explanation.len(), a.explanation.len());
    for (x, y) in back.explanation.iter().zip(&a.explanation) {
        assert_eq!(x.feature, y.feature);
        assert!(
            (x.z - y.z).abs() < 1e-9 && (x.observed - y.observed).abs() <= 1e-9 * y.observed.abs()
        );
    }
}

fn build_tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    fl: u8,
    payload: usize,
) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (40 + payload) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        TCP,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, fl, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend(std::iter::repeat_n(b'x', payload));
    f
}

fn vxlan_wrap(inner: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 8, 0x08, 0x00];
    let udp_len = (8 + 8 + inner.len()) as u16;
    let total = 20 + udp_len;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        UDP,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 254, 0, 1, 10, 254, 0, 2]);
    f.extend_from_slice(&50_000u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x13, 0x89, 0]);
    f.extend_from_slice(inner);
    f
}

#[test]
fn batches_give_the_verdicts_and_alerts_of_one_packet_at_a_time() {
    // Small tables so that evictions happen inside batches: prefetching ahead must not
    // change what any packet sees.
    let cfg = DetectorConfig {
        baseline_s: 8.0,
        max_hosts: 256,
        max_pairs: 256,
        max_flows: 512,
        max_host_ports: 256,
        ..Default::default()
    };
    let mut traffic = benign(5, 0, 16);
    traffic.extend(syn_flood(&mut SplitMix::new(6), 9, 2));
    traffic.extend(port_scan(&mut SplitMix::new(7), 12, 2));
    let pkts: Vec<PacketMeta> = sorted(traffic).into_iter().map(|p| p.meta).collect();

    let mut one = Detector::new(cfg.clone()).expect("config");
    let single: Vec<Verdict> = pkts.iter().map(|m| one.observe(m)).collect();
    let mut batched = Detector::new(cfg).expect("config");
    let mut verdicts = Vec::new();
    // Uneven batch sizes, some shorter than the prefetch distance.
    let mut rest = &pkts[..];
    for n in [1usize, 3, 7, 64, 1000].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (b, r) = rest.split_at(n.min(rest.len()));
        batched.observe_batch(b, &mut verdicts);
        rest = r;
    }
    assert_eq!(verdicts.len(), single.len());
    assert!(
        single.iter().any(|v| v.alerted),
        "the attacks raised no alert"
    );
    for (i, (a, b)) in single.iter().zip(&verdicts).enumerate() {
        assert_eq!(a, b, "packet {i}");
    }
    assert_eq!(one.take_alerts(), batched.take_alerts());
    assert_eq!(one.stats(), batched.stats());
}
