use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use shadownet_wire::{Ipv4Packet, TcpPacket, UdpPacket, tcp::flags};

use super::*;

/// The fields the shape checks look at.
#[derive(Debug, Clone)]
struct Pkt {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: bool,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: usize,
    fragment: bool,
}

fn ip_of(frame: &[u8]) -> Ipv4Packet<&[u8]> {
    let off = if frame[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    Ipv4Packet::new_checked(&frame[off..]).expect("IPv4 header")
}

fn pkt(frame: &[u8]) -> Pkt {
    let ip = ip_of(frame);
    let fragment = ip.is_fragment();
    let mut p = Pkt {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        tcp: ip.protocol() == 6,
        sport: 0,
        dport: 0,
        flags: 0,
        payload: 0,
        fragment,
    };
    if ip.frag_offset() != 0 {
        return p;
    }
    if p.tcp {
        let t = TcpPacket::new_checked(ip.payload()).expect("TCP header");
        p.sport = t.src_port();
        p.dport = t.dst_port();
        p.flags = t.flags();
        p.payload = t.payload().len();
    } else {
        let u = UdpPacket::new_unchecked(ip.payload());
        p.sport = u.src_port();
        p.dport = u.dst_port();
        p.payload = usize::from(u.len()).saturating_sub(8);
    }
    p
}

fn quiet(attacks: Vec<AttackSpec>) -> Scenario {
    Scenario {
        seed: 42,
        duration_s: 30.0,
        benign_pps: 100.0,
        attacks,
        ..Scenario::default()
    }
}

fn attack(class: AttackClass, start: f64, duration: f64, rate: f64) -> AttackSpec {
    AttackSpec {
        class,
        start_s: start,
        duration_s: duration,
        rate_pps: rate,
        attacker: None,
        target: None,
    }
}

fn frames_of(s: &Scenario) -> Vec<LabelledFrame> {
    generate(s).expect("valid scenario").collect()
}

fn of_class(frames: &[LabelledFrame], c: AttackClass) -> Vec<(u64, u32, Pkt)> {
    frames
        .iter()
        .filter(|f| f.label == Label::Attack(c))
        .map(|f| (f.ts_ns, f.flow, pkt(&f.frame)))
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let s = Scenario {
        duration_s: 12.0,
        benign_pps: 300.0,
        ..Scenario::preset_mixed(9, 12.0)
    };
    let a = frames_of(&s);
    let b = frames_of(&s);
    assert!(a.len() > 1000, "{} frames", a.len());
    assert_eq!(a, b);
    let c = frames_of(&Scenario { seed: 10, ..s });
    assert_ne!(a, c);
}

#[test]
fn time_ordered_checksummed_and_within_duration() {
    let s = Scenario {
        vlan: Some(100),
        ..Scenario::preset_mixed(3, 15.0)
    };
    let frames = frames_of(&s);
    let end = (s.duration_s * 1e9) as u64;
    let mut last = 0;
    let mut flows_seen = BTreeSet::new();
    for f in &frames {
        assert!(f.ts_ns >= last, "frame at {} after {}", f.ts_ns, last);
        assert!(f.ts_ns <= end);
        last = f.ts_ns;
        assert!(f.frame.len() <= 1518, "frame of {} bytes", f.frame.len());
        assert_eq!(&f.frame[12..16], &[0x81, 0x00, 0x00, 100]);
        let ip = ip_of(&f.frame);
        assert!(ip.verify_checksum());
        let (s, d) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
        if ip.protocol() == 6 {
            let t = TcpPacket::new_checked(ip.payload()).expect("tcp");
            assert!(t.verify_checksum(&s, &d));
        } else if !ip.is_fragment() {
            let u = UdpPacket::new_checked(ip.payload()).expect("udp");
            assert!(u.verify_checksum(&s, &d));
        }
        assert_eq!(f.label == Label::Benign, f.benign_class.is_some());
        flows_seen.insert(f.flow);
    }
    assert!(flows_seen.len() > 500);
}

#[test]
fn syn_flood_many_syns_no_handshakes() {
    let s = quiet(vec![attack(AttackClass::SynFlood, 5.0, 10.0, 1000.0)]);
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::SynFlood);
    let syns = a.iter().filter(|(_, _, p)| p.flags == flags::SYN).count();
    let synacks = a
        .iter()
        .filter(|(_, _, p)| p.flags == flags::SYN | flags::ACK)
        .count();
    let acks = a.iter().filter(|(_, _, p)| p.flags == flags::ACK).count();
    assert!(syns > 4000, "{syns} SYNs");
    assert!(synacks > syns / 2 && synacks < syns);
    assert_eq!(acks, 0, "no handshake completes");
    let sources: BTreeSet<_> = a
        .iter()
        .filter(|(_, _, p)| p.flags == flags::SYN)
        .map(|(_, _, p)| p.src)
        .collect();
    assert!(
        sources.len() > syns * 9 / 10,
        "spoofed sources: {}",
        sources.len()
    );
    let ts: Vec<u64> = a.iter().map(|(t, _, _)| *t).collect();
    assert!(
        ts.iter()
            .all(|t| (5_000_000_000..15_500_000_000).contains(t))
    );
    // The rate is about as asked.
    let rate = a.len() as f64 / 10.0;
    assert!((rate - 1000.0).abs() < 150.0, "rate {rate}");
}

#[test]
fn port_scan_one_source_many_ports() {
    let s = quiet(vec![attack(AttackClass::PortScan, 2.0, 10.0, 400.0)]);
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::PortScan);
    let probes: Vec<&Pkt> = a
        .iter()
        .map(|(_, _, p)| p)
        .filter(|p| p.flags == flags::SYN)
        .collect();
    let sources: BTreeSet<_> = probes.iter().map(|p| p.src).collect();
    let ports: BTreeSet<_> = probes.iter().map(|p| p.dport).collect();
    let targets: BTreeSet<_> = probes.iter().map(|p| p.dst).collect();
    assert_eq!(sources.len(), 1);
    assert_eq!(targets.len(), 1);
    assert!(ports.len() > 1500, "{} ports", ports.len());
    let rst_acks = a
        .iter()
        .filter(|(_, _, p)| p.flags == flags::RST | flags::ACK)
        .count();
    assert!(rst_acks > probes.len() * 9 / 10);
    // Open ports of the web server answer with SYN-ACK and get the scanner's RST.
    let open: BTreeSet<_> = a
        .iter()
        .filter(|(_, _, p)| p.flags == flags::SYN | flags::ACK)
        .map(|(_, _, p)| p.sport)
        .collect();
    assert_eq!(open, BTreeSet::from([22, 80, 443]));
}

#[test]
fn dns_amplification_large_responses_to_a_victim_that_never_asked() {
    let s = quiet(vec![attack(AttackClass::DnsAmplification, 3.0, 8.0, 600.0)]);
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::DnsAmplification);
    assert!(a.len() > 3000);
    let victims: BTreeSet<_> = a.iter().map(|(_, _, p)| p.dst).collect();
    assert_eq!(victims.len(), 1);
    let victim = *victims.iter().next().expect("one victim");
    let reflectors: BTreeSet<_> = a.iter().map(|(_, _, p)| p.src).collect();
    assert!(reflectors.len() > 100);
    let firsts: Vec<&Pkt> = a
        .iter()
        .map(|(_, _, p)| p)
        .filter(|p| p.sport == 53)
        .collect();
    assert!(
        firsts.iter().all(|p| p.payload >= 2800 && p.fragment),
        "large, fragmented"
    );
    // The victim never sent a query.
    assert!(!frames.iter().any(|f| {
        let p = pkt(&f.frame);
        p.src == victim && p.dport == 53
    }));
}

#[test]
fn slowloris_many_long_lived_connections_with_tiny_sends() {
    let s = quiet(vec![attack(AttackClass::Slowloris, 2.0, 25.0, 60.0)]);
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::Slowloris);
    let mut conns: HashMap<u32, Vec<(u64, Pkt)>> = HashMap::new();
    for (t, flow, p) in a {
        conns.entry(flow).or_default().push((t, p));
    }
    assert!(conns.len() >= 50, "{} connections", conns.len());
    let long = conns
        .values()
        .filter(|c| c[c.len() - 1].0 - c[0].0 > 15_000_000_000)
        .count();
    assert!(
        long * 10 >= conns.len() * 9,
        "{long} of {} long-lived",
        conns.len()
    );
    for c in conns.values() {
        let sends: Vec<usize> = c
            .iter()
            .filter(|(_, p)| p.payload > 0)
            .map(|(_, p)| p.payload)
            .collect();
        assert!(sends.len() >= 2);
        assert!(
            sends[1..].iter().all(|&n| n < 20),
            "tiny keep-alive sends: {sends:?}"
        );
        // Nothing finishes the request.
        assert!(c.iter().all(|(_, p)| p.flags & flags::FIN == 0));
    }
}

#[test]
fn beaconing_periodic_low_jitter_plus_exfiltration() {
    let s = quiet(vec![attack(AttackClass::Beaconing, 1.0, 120.0, 10.0)]);
    let s = Scenario {
        duration_s: 130.0,
        benign_pps: 20.0,
        ..s
    };
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::Beaconing);
    let mut conns: BTreeMap<u32, Vec<(u64, Pkt)>> = BTreeMap::new();
    for (t, flow, p) in a {
        conns.entry(flow).or_default().push((t, p));
    }
    let peers: BTreeSet<(Ipv4Addr, Ipv4Addr)> =
        conns.values().map(|c| (c[0].1.src, c[0].1.dst)).collect();
    assert_eq!(peers.len(), 1, "one internal host to one external host");
    let up = |c: &Vec<(u64, Pkt)>| -> usize {
        c.iter()
            .filter(|(_, p)| p.src == c[0].1.src)
            .map(|(_, p)| p.payload)
            .sum()
    };
    let (beacons, exfil): (Vec<_>, Vec<_>) = conns.values().partition(|c| up(c) < 5_000);
    assert!(beacons.len() >= 8, "{} beacons", beacons.len());
    assert!(!exfil.is_empty(), "no exfiltration");
    assert!(exfil.iter().all(|c| up(c) > 50_000));
    let starts: Vec<f64> = beacons.iter().map(|c| c[0].0 as f64).collect();
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    assert!(sd / mean < 0.03, "jitter {}", sd / mean);
}

#[test]
fn lateral_movement_one_host_to_many_on_admin_ports() {
    let s = quiet(vec![attack(AttackClass::LateralMovement, 2.0, 20.0, 60.0)]);
    let frames = frames_of(&s);
    let a = of_class(&frames, AttackClass::LateralMovement);
    let syns: Vec<&Pkt> = a
        .iter()
        .map(|(_, _, p)| p)
        .filter(|p| p.flags == flags::SYN)
        .collect();
    let src: BTreeSet<_> = syns.iter().map(|p| p.src).collect();
    let dsts: BTreeSet<_> = syns.iter().map(|p| p.dst).collect();
    let ports: BTreeSet<_> = syns.iter().map(|p| p.dport).collect();
    assert_eq!(src.len(), 1);
    let subnet = Ipv4Addr::new(192, 168, 10, 0);
    assert!(
        src.iter()
            .chain(dsts.iter())
            .all(|ip| ip.octets()[..3] == subnet.octets()[..3])
    );
    assert!(dsts.len() >= 20, "{} hosts", dsts.len());
    assert_eq!(ports, BTreeSet::from([22, 445, 3389, 5985]));
    // Some succeed (data exchanged), many are refused.
    assert!(a.iter().any(|(_, _, p)| p.payload > 0));
    assert!(a.iter().any(|(_, _, p)| p.flags == flags::RST | flags::ACK));
}

#[test]
fn benign_mix_follows_configuration() {
    let mix = BenignMix {
        web: 0.1,
        dns: 0.2,
        tls: 0.3,
        rpc: 0.4,
    };
    let s = Scenario {
        seed: 5,
        duration_s: 120.0,
        benign_pps: 1500.0,
        mix,
        ..Scenario::default()
    };
    let mut per: BTreeMap<BenignClass, usize> = BTreeMap::new();
    let mut n = 0;
    for f in generate(&s).expect("valid") {
        *per.entry(f.benign_class.expect("benign")).or_default() += 1;
        n += 1;
    }
    let rate = n as f64 / s.duration_s;
    assert!((rate / 1500.0 - 1.0).abs() < 0.35, "benign rate {rate}");
    for (c, want) in BenignClass::ALL.into_iter().zip(mix.normalised()) {
        let got = per.get(&c).copied().unwrap_or(0) as f64 / n as f64;
        assert!(
            (got / want - 1.0).abs() < 0.5,
            "{c:?}: {got:.3} of frames, configured {want}"
        );
    }
}

#[test]
fn bad_scenarios_are_refused_with_a_reason() {
    let ok = Scenario::default();
    let cases: Vec<(Scenario, &str)> = vec![
        (
            Scenario {
                duration_s: 0.0,
                ..ok.clone()
            },
            "duration",
        ),
        (
            Scenario {
                subnet: "192.168.10.1/24".into(),
                ..ok.clone()
            },
            "host bits",
        ),
        (
            Scenario {
                subnet: "10.0.0.0".into(),
                ..ok.clone()
            },
            "A.B.C.D/LEN",
        ),
        (
            Scenario {
                hosts: 3,
                ..ok.clone()
            },
            "too few",
        ),
        (
            Scenario {
                hosts: 250,
                ..ok.clone()
            },
            "do not fit",
        ),
        (
            Scenario {
                benign_pps: f64::NAN,
                ..ok.clone()
            },
            "benign_pps",
        ),
        (
            Scenario {
                vlan: Some(4095),
                ..ok.clone()
            },
            "VLAN",
        ),
        (
            Scenario {
                attacks: vec![attack(AttackClass::SynFlood, 70.0, 5.0, 10.0)],
                ..ok.clone()
            },
            "outside the capture",
        ),
        (
            Scenario {
                attacks: vec![AttackSpec {
                    attacker: Some("8.8.8.8".into()),
                    ..attack(AttackClass::LateralMovement, 1.0, 5.0, 10.0)
                }],
                ..ok.clone()
            },
            "internal hosts",
        ),
        (
            Scenario {
                attacks: vec![AttackSpec {
                    target: Some("nope".into()),
                    ..attack(AttackClass::PortScan, 1.0, 5.0, 10.0)
                }],
                ..ok.clone()
            },
            "not an IPv4 address",
        ),
    ];
    for (s, want) in cases {
        let e = generate(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(want), "expected `{want}` in `{e}`");
    }
}

#[test]
fn attack_specs_parse() {
    let a: AttackSpec =
        "syn-flood:start=10,duration=20s,rate=500,attacker=1.2.3.4,target=192.168.10.11"
            .parse()
            .expect("parses");
    assert_eq!(a.class, AttackClass::SynFlood);
    assert_eq!((a.start_s, a.duration_s, a.rate_pps), (10.0, 20.0, 500.0));
    assert_eq!(a.attacker.as_deref(), Some("1.2.3.4"));
    let d: AttackSpec = "beaconing".parse().expect("defaults");
    assert_eq!(d.rate_pps, AttackClass::Beaconing.default_rate());
    assert!("flood".parse::<AttackSpec>().is_err());
    assert!("port_scan:speed=3".parse::<AttackSpec>().is_err());
    assert!("port_scan:start".parse::<AttackSpec>().is_err());
    assert_eq!(parse_seconds("2m"), Ok(120.0));
    assert!(parse_seconds("2 fortnights").is_err());
    let toml = r#"
seed = 3
duration_s = 30.0
subnet = "10.1.0.0/16"
hosts = 100
benign_pps = 500.0
[[attacks]]
class = "port_scan"
start_s = 5.0
duration_s = 10.0
rate_pps = 100.0
"#;
    let s = Scenario::from_toml(toml).expect("toml");
    assert_eq!(s.attacks.len(), 1);
    s.validate().expect("valid");
    assert!(Scenario::from_toml("seed = 1\nbogus = 2").is_err());
}
