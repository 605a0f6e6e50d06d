//! Shadow isolation (MISSION.md R1, R2): nothing from the shadow ever reaches production, and
//! shadow traffic is processed inside the shadow and never mirrored.

use std::cell::RefCell;

use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, RngSeed},
};
use shadownet_hw::{
    Port,
    counters::{PortCounter, SessionCounter},
    drop::DropReason,
    layout::rule::DirectionMatch,
};
use shadownet_tests::{
    decode::{decode, summary, try_decode},
    lab::*,
    packet::{Builder, arp_request, geneve, ip, mac, vxlan},
    rules::{local_vm, map_key, remote_vm},
};
use shadownet_wire::TunnelKind;

const VF0: Port = Port::Vport(0);
const VF1: Port = Port::Vport(1);
const VF2: Port = Port::Vport(2);
/// A production VM known only to the production network (db2 on db1's host).
const DB2: &str = "192.168.10.30";

fn is_production_port(p: Port) -> bool {
    matches!(p, Port::Pf) || matches!(p, Port::Vport(n) if n != 2)
}

/// The lab plus db2, a production-only address.
fn lab() -> Lab {
    let mut lab = Lab::new();
    add_db2(&mut lab);
    lab
}

fn add_db2(lab: &mut Lab) {
    lab.nic
        .write_map(&map_key(PROD_VNI, DB2), &remote_vm(PROD_HOST, 2, false))
        .expect("map");
}

thread_local! {
    static LAB: RefCell<Option<Lab>> = const { RefCell::new(None) };
}

/// Runs `f` on a freshly programmed lab, reusing this thread's model (building one takes
/// most of a property case's time otherwise).
fn with_fresh_lab<R>(f: impl FnOnce(&mut Lab) -> R) -> R {
    LAB.with(|cell| {
        let mut cell = cell.borrow_mut();
        let lab = cell.get_or_insert_with(Lab::new);
        lab.restart();
        add_db2(lab);
        f(lab)
    })
}

/// web2' (the shadow of web2, on vf2) → `dst`.
fn from_shadow_vm(dst: &str, dport: u16) -> Vec<u8> {
    Builder::tcp(WEB2, dst, 40_000, dport)
        .macs(mac(0x12), mac(0x21))
        .payload_len(20)
        .build()
}

#[test]
fn shadow_vm_to_a_shadow_address_stays_in_the_shadow_vni() {
    let mut lab = lab();
    let f = from_shadow_vm(DB1, 5432);
    let sent = lab.send(VF2, &f);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    let s = &sent[0];
    assert_eq!(s.port, Port::Uplink);
    assert!(!s.mirror);
    assert_eq!(s.session, None);
    let d = decode(s);
    assert_eq!(d.kind, TunnelKind::Vxlan);
    assert_eq!(d.vni, SHADOW_VNI);
    assert_eq!(d.dst, ip(SHADOW_HOST));
    assert_eq!(d.eth_dst, mac(3));
    assert_eq!(d.inner, f);
}

#[test]
fn shadow_vm_to_a_production_only_address_is_dropped() {
    let mut lab = lab();
    for dst in [DB2, "192.168.10.99", "8.8.8.8"] {
        let sent = lab.send(VF2, &from_shadow_vm(dst, 443));
        assert!(sent.is_empty(), "{dst}: {:?}", summary(&sent));
    }
    let c = lab.counts();
    assert_eq!(c.drops(), [(DropReason::MapMiss, 3)]);
    assert_eq!(c.port(Port::Pf, PortCounter::TxPackets), 0);
}

#[test]
fn shadow_vm_arp_is_dropped_never_sent_to_the_host() {
    let mut lab = lab();
    let arp = arp_request(mac(0x12), [192, 168, 10, 12], [192, 168, 10, 1]);
    let sent = lab.send(VF2, &arp);
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    // Nor any other non-IP frame.
    let mut lldp = arp.clone();
    lldp[12..14].copy_from_slice(&0x88CCu16.to_be_bytes());
    assert!(lab.send(VF2, &lldp).is_empty());
    assert_eq!(
        lab.counts().drops(),
        [(DropReason::ShadowIsolation, 2)],
        "non-IP from a shadow VM"
    );
}

#[test]
fn shadow_tunnel_from_the_uplink_is_delivered_to_the_shadow_vm_only() {
    let mut lab = lab();
    let inner = Builder::tcp(DB1, WEB2, 5432, 40_000)
        .macs(mac(0x21), mac(0x12))
        .build();
    for outer in [
        vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner),
        geneve(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner),
    ] {
        let sent = lab.send(Port::Uplink, &outer);
        assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
        assert_eq!(sent[0].port, VF2, "the shadow of web2, not web2 on vf1");
        assert!(!sent[0].mirror);
        assert_eq!(sent[0].bytes, inner);
    }
    // ARP in the shadow reaches the shadow VM too.
    let arp = arp_request(mac(0x21), [192, 168, 10, 21], [192, 168, 10, 12]);
    let sent = lab.send(Port::Uplink, &vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &arp));
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].port, VF2);
    let c = lab.counts();
    assert_eq!(c.port(VF1, PortCounter::TxPackets), 0);
    assert_eq!(c.port(VF2, PortCounter::TxPackets), 3);
}

#[test]
fn shadow_tunnel_to_a_remote_shadow_address_is_not_delivered_here() {
    let mut lab = lab();
    // web1' lives on the shadow host, not here: a VNI 9001 tunnel for it is dropped, never
    // delivered to web1 on vf0.
    let inner = Builder::tcp(DB1, WEB1, 5432, 40_000).build();
    let sent = lab.send(Port::Uplink, &vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner));
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    assert_eq!(lab.counts().drops(), [(DropReason::NotLocal, 1)]);
}

#[test]
fn misprogrammed_shadow_map_entry_to_a_production_vport_is_dropped() {
    for shadow_flag in [true, false] {
        let mut lab = lab();
        // VNI 9001 says web1' is local on vport 0, which is production web1.
        lab.nic
            .write_map(&map_key(SHADOW_VNI, WEB1), &local_vm(0, shadow_flag))
            .expect("map");
        let sent = lab.send(VF2, &from_shadow_vm(WEB1, 80));
        assert!(sent.is_empty(), "{:?}", summary(&sent));
        let inner = Builder::tcp(DB1, WEB1, 5432, 40_000).build();
        let outer = vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner);
        let sent = lab.send(Port::Uplink, &outer);
        assert!(sent.is_empty(), "{:?}", summary(&sent));
        let c = lab.counts();
        let isolation = c.drop(DropReason::VniMismatch) + c.drop(DropReason::ShadowIsolation);
        assert_eq!(isolation, 2, "shadow flag {shadow_flag}: {:?}", c.drops());
        assert_eq!(c.port(VF0, PortCounter::TxPackets), 0);
    }
}

#[test]
fn production_packet_whose_map_entry_is_flagged_shadow_is_dropped() {
    let mut lab = lab();
    lab.nic
        .write_map(&map_key(PROD_VNI, DB1), &remote_vm(PROD_HOST, 2, true))
        .expect("map");
    let f = Builder::tcp(WEB1, DB1, 40_000, 5432).build();
    let sent = lab.send(VF0, &f);
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let c = lab.counts();
    assert_eq!(c.drops(), [(DropReason::ShadowIsolation, 1)]);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
}

#[test]
fn shadow_traffic_is_never_mirrored_even_with_a_filter_on_the_shadow_vm() {
    let mut lab = lab();
    lab.nic
        .write_mirror_filter(1, &mirror_all(2, DirectionMatch::Both))
        .expect("filter");
    let sent = lab.send(VF2, &from_shadow_vm(DB1, 5432));
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert!(!sent[0].mirror);
    let inner = Builder::tcp(DB1, WEB2, 5432, 40_000).build();
    let sent = lab.send(Port::Uplink, &vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner));
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].port, VF2);
    let c = lab.counts();
    assert_eq!(c.all_sessions(SessionCounter::Copies), 0);
    assert_eq!(c.all_ports(PortCounter::TxMirrorPackets), 0);
}

// 16: property ---------------------------------------------------------------------------------

/// Where a generated frame enters.
#[derive(Clone, Copy, Debug)]
enum Ingress {
    /// The shadow VM.
    ShadowVm,
    /// A VXLAN tunnel, VNI 9001, to this NIC.
    ShadowVxlan,
    /// A Geneve tunnel, VNI 9001, to this NIC.
    ShadowGeneve,
    /// Production: web1 on vf0.
    Web1,
    /// Production: a VXLAN tunnel, VNI 5001, to this NIC.
    ProdVxlan,
}

impl Ingress {
    fn shadow(self) -> bool {
        matches!(
            self,
            Ingress::ShadowVm | Ingress::ShadowVxlan | Ingress::ShadowGeneve
        )
    }
}

/// The inner frame of a generated input.
#[derive(Clone, Debug)]
enum Frame {
    Ip {
        src: String,
        dst: String,
        l4: u8,
        sport: u16,
        dport: u16,
        payload: usize,
        vlan: Option<u16>,
    },
    Arp {
        target: [u8; 4],
    },
    Bytes(Vec<u8>),
}

/// IPv4 addresses of the lab (the VMs twice, so more inputs reach them).
const LAB_V4: [&str; 11] = [
    WEB1,
    WEB2,
    DB1,
    WEB1,
    WEB2,
    DB1,
    DB2,
    LOCAL,
    COLLECTOR,
    SHADOW_HOST,
    "192.168.10.99",
];

fn v4_addr() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(LAB_V4.to_vec()).prop_map(str::to_string),
        1 => any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
    ]
}

fn v6_addr() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["2001:db8::11", "2001:db8::21", "fe80::1"])
            .prop_map(str::to_string),
        any::<[u8; 16]>().prop_map(|o| std::net::Ipv6Addr::from(o).to_string()),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let port = prop_oneof![
        prop::sample::select(vec![22u16, 53, 80, 443, 4789, 5432, 6081]),
        any::<u16>()
    ];
    let ip = (
        prop_oneof![3 => (v4_addr(), v4_addr()), 1 => (v6_addr(), v6_addr())],
        prop::sample::select(vec![6u8, 17, 1, 47, 132]),
        port.clone(),
        port,
        0usize..200,
        prop::option::of(1u16..4095),
    )
        .prop_map(|((src, dst), l4, sport, dport, payload, vlan)| Frame::Ip {
            src,
            dst,
            l4,
            sport,
            dport,
            payload,
            vlan,
        });
    prop_oneof![
        6 => ip,
        1 => any::<[u8; 4]>().prop_map(|target| Frame::Arp { target }),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Frame::Bytes),
    ]
}

fn build(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Ip {
            src,
            dst,
            l4,
            sport,
            dport,
            payload,
            vlan,
        } => {
            let mut b = match l4 {
                6 => Builder::tcp(src, dst, *sport, *dport),
                17 => Builder::udp(src, dst, *sport, *dport),
                1 => Builder::icmp_echo(src, dst),
                p => Builder::raw(src, dst, *p),
            };
            if let Some(v) = vlan {
                b = b.vlan(0x8100, *v);
            }
            b.payload_len(*payload).build()
        }
        Frame::Arp { target } => arp_request(mac(0x12), [192, 168, 10, 12], *target),
        Frame::Bytes(b) => b.clone(),
    }
}

fn input() -> impl Strategy<Value = (Ingress, Frame)> {
    let ingress = prop_oneof![
        3 => Just(Ingress::ShadowVm),
        2 => Just(Ingress::ShadowVxlan),
        2 => Just(Ingress::ShadowGeneve),
        1 => Just(Ingress::Web1),
        1 => Just(Ingress::ProdVxlan),
    ];
    (ingress, frame())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5AD0_1A7E),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn nothing_from_the_shadow_reaches_production(inputs in prop::collection::vec(input(), 1..8)) {
        with_fresh_lab(|lab| check_isolation(lab, &inputs))?;
    }
}

fn check_isolation(lab: &mut Lab, inputs: &[(Ingress, Frame)]) -> Result<(), TestCaseError> {
    // A filter on the shadow VM too: it must never produce copies.
    lab.nic
        .write_mirror_filter(1, &mirror_all(2, DirectionMatch::Both))
        .expect("filter");
    let mut production_copies = 0u64;
    let mut production_port_frames = 0u64;
    for (ingress, f) in inputs {
        let inner = build(f);
        let (port, bytes) = match ingress {
            Ingress::ShadowVm => (VF2, inner.clone()),
            Ingress::Web1 => (VF0, inner.clone()),
            Ingress::ShadowVxlan => (Port::Uplink, vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner)),
            Ingress::ShadowGeneve => (Port::Uplink, geneve(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner)),
            Ingress::ProdVxlan => (Port::Uplink, vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner)),
        };
        let sent = lab.send(port, &bytes);
        if !ingress.shadow() {
            production_copies += sent.iter().filter(|s| s.mirror).count() as u64;
            production_port_frames +=
                sent.iter().filter(|s| is_production_port(s.port)).count() as u64;
            continue;
        }
        for s in &sent {
            prop_assert!(
                !is_production_port(s.port),
                "{ingress:?} {f:?} left on production port {}",
                s.port
            );
            prop_assert!(
                !s.mirror && s.session.is_none(),
                "{ingress:?} {f:?} was mirrored: {:?}",
                summary(&sent)
            );
            if s.port == Port::Uplink {
                let d = try_decode(&s.bytes);
                prop_assert!(d.is_some(), "{ingress:?} {f:?} left the uplink untunneled");
                let d = d.expect("checked");
                prop_assert_eq!(d.vni, SHADOW_VNI, "{:?} {:?}", ingress, f);
                prop_assert_eq!(d.shadow, None);
            }
        }
    }
    let c = lab.counts();
    prop_assert_eq!(c.all_sessions(SessionCounter::Copies), production_copies);
    prop_assert_eq!(c.all_sessions(SessionCounter::Redirected), 0);
    let to_production_ports = c.port(VF0, PortCounter::TxPackets)
        + c.port(VF1, PortCounter::TxPackets)
        + c.port(Port::Pf, PortCounter::TxPackets);
    prop_assert_eq!(to_production_ports, production_port_frames);
    Ok(())
}

/// The property above is only as good as its inputs: the same generator, run for a fixed
/// seed, must produce shadow traffic that is delivered to the shadow VM, forwarded in the
/// shadow VNI and dropped, and production traffic that is forwarded and copied.
#[test]
fn the_isolation_property_inputs_exercise_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut lab = lab();
    let (mut to_vf2, mut shadow_uplink, mut shadow_dropped, mut prod_out, mut prod_copies) =
        (0, 0, 0, 0, 0);
    for _ in 0..400 {
        let (ingress, f) = input().new_tree(&mut runner).expect("value").current();
        let inner = build(&f);
        let (port, bytes) = match ingress {
            Ingress::ShadowVm => (VF2, inner),
            Ingress::Web1 => (VF0, inner),
            Ingress::ShadowVxlan => (Port::Uplink, vxlan(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner)),
            Ingress::ShadowGeneve => (Port::Uplink, geneve(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner)),
            Ingress::ProdVxlan => (Port::Uplink, vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner)),
        };
        let sent = lab.send(port, &bytes);
        if ingress.shadow() {
            shadow_dropped += sent.is_empty() as u32;
            to_vf2 += sent.iter().filter(|s| s.port == VF2).count();
            shadow_uplink += sent.iter().filter(|s| s.port == Port::Uplink).count();
        } else {
            prod_out += sent.iter().filter(|s| !s.mirror).count();
            prod_copies += sent.iter().filter(|s| s.mirror).count();
        }
    }
    for (what, n) in [
        ("shadow delivered to vf2", to_vf2),
        ("shadow forwarded on the uplink", shadow_uplink),
        ("shadow dropped", shadow_dropped as usize),
        ("production forwarded", prod_out),
        ("production copied", prod_copies),
    ] {
        assert!(n >= 10, "{what}: only {n} of 400 inputs");
    }
}

#[test]
fn a_shadow_network_misprogrammed_with_miss_to_host_still_never_reaches_the_pf() {
    let mut lab = lab();
    lab.nic
        .write_vni(
            SHADOW_VNI,
            &shadownet_hw::layout::vni::VniEntry {
                shadow: true,
                miss_to_host: true,
                default_deny_to_vm: false,
                default_deny_from_vm: false,
                production_vni: Some(PROD_VNI),
            },
        )
        .expect("vni");
    let sent = lab.send(VF2, &from_shadow_vm("8.8.8.8", 443));
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let arp = arp_request(mac(0x12), [192, 168, 10, 12], [192, 168, 10, 1]);
    assert!(lab.send(VF2, &arp).is_empty());
    let c = lab.counts();
    assert_eq!(
        c.drops(),
        [(DropReason::MapMiss, 1), (DropReason::ShadowIsolation, 1)]
    );
    assert_eq!(c.port(Port::Pf, PortCounter::TxPackets), 0);
}
