//! What the NIC does with each kind of packet (DESIGN.md "The data path", MISSION.md R2):
//! production forwarding, mirror copies and their selection, redirect, ACL, the standard
//! path, drops and their counters. Every frame enters a port of the simulated NIC programmed
//! through the driver; what leaves is taken apart with the parser stage.

use shadownet_hw::{
    Port,
    counters::{PortCounter, SessionCounter, TableCounter},
    drop::DropReason,
    layout::{
        Prefix,
        acl::Verdict,
        mirror_filter::{MirrorFilter, MirrorVerdict},
        rule::{DirectionMatch, RuleMatch},
        session::{Encap, Mode},
        vni::VniEntry,
        vport::VportEntry,
    },
    table::TableId,
};
use shadownet_tests::{
    decode::{copies, decode, on, one_copy, one_production, production, summary},
    lab::*,
    packet::{Builder, arp_request, ip, mac, vxlan},
    rules::{map_key, mirror_rule, remote_vm},
};
use shadownet_wire::{
    SHADOW_DIRECTION_FROM_VM, SHADOW_DIRECTION_TO_VM, SHADOW_FLAG_REDIRECTED,
    SHADOW_FLAG_TRUNCATED, ShadowMetadata, TunnelKind, tcp,
};

const VF0: Port = Port::Vport(0);
const VF1: Port = Port::Vport(1);
const OTHER: &str = "192.168.10.99";

/// web1 → db1, TCP to 5432, `n` bytes of payload.
fn web1_to_db1(sport: u16, n: usize) -> Vec<u8> {
    Builder::tcp(WEB1, DB1, sport, 5432)
        .macs(mac(0x11), mac(0x21))
        .payload_len(n)
        .build()
}

/// db1 → web1 as it arrives from db1's host: VXLAN, VNI 5001, to this NIC. Returns the inner
/// frame and the tunnel frame.
fn db1_to_web1(inner: Builder) -> (Vec<u8>, Vec<u8>) {
    let inner = inner.macs(mac(0x21), mac(0x11)).build();
    let outer = vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner);
    (inner, outer)
}

fn set_filter(lab: &mut Lab, slot: u32, f: &MirrorFilter) {
    lab.nic.write_mirror_filter(slot, f).expect("mirror filter");
}

fn set_vni(lab: &mut Lab, vni: u32, f: impl FnOnce(&mut VniEntry)) {
    let mut e = VniEntry {
        shadow: false,
        miss_to_host: true,
        default_deny_to_vm: false,
        default_deny_from_vm: false,
        production_vni: None,
    };
    f(&mut e);
    lab.nic.write_vni(vni, &e).expect("vni");
}

/// Asserts the frame is one copy to the shadow (Geneve, session 1) and returns its metadata.
fn geneve_copy(s: &shadownet_tests::lab::Sent, dst: &str, inner: &[u8]) -> ShadowMetadata {
    assert_eq!(s.port, Port::Uplink);
    assert!(s.mirror, "a copy leaves from the mirror queue");
    assert_eq!(s.session, Some(SESSION));
    let d = decode(s);
    assert_eq!(d.kind, TunnelKind::Geneve);
    assert_eq!(d.udp_dport, 6081);
    assert_eq!(d.protocol, 0x6558, "Geneve carries Ethernet");
    assert_eq!(d.vni, SHADOW_VNI);
    assert_eq!(d.src, ip(LOCAL));
    assert_eq!(d.dst, ip(dst));
    assert_eq!(d.eth_src, mac(1));
    assert_eq!(d.inner, inner, "the copy's inner frame");
    d.shadow
        .expect("a Geneve copy carries the shadow metadata option")
}

// 1 ------------------------------------------------------------------------------------------

#[test]
fn production_packet_goes_once_to_production_and_once_to_the_shadow_node() {
    let mut lab = Lab::new();
    for seq in 0..3u32 {
        let f = web1_to_db1(40_000 + seq as u16, 100 + 10 * seq as usize);
        let sent = lab.send(VF0, &f);
        assert_eq!(sent.len(), 2, "{:?}", summary(&sent));

        let p = one_production(&sent);
        assert_eq!(p.port, Port::Uplink);
        assert_eq!(p.session, None);
        let d = decode(p);
        assert_eq!(d.kind, TunnelKind::Vxlan);
        assert_eq!(d.udp_dport, 4789);
        assert_eq!(d.vni, PROD_VNI);
        assert_eq!(d.dst, ip(PROD_HOST));
        assert_eq!(d.src, ip(LOCAL));
        assert_eq!(d.eth_dst, mac(2));
        assert_eq!(d.eth_src, mac(1));
        assert_eq!(d.shadow, None);
        assert_eq!(d.inner, f, "production inner frame is the original");

        let c = one_copy(&sent);
        let m = geneve_copy(c, SHADOW_HOST, &f);
        assert_eq!(decode(c).eth_dst, mac(3), "shadow node's substrate MAC");
        assert_eq!(
            m,
            ShadowMetadata {
                session: SESSION,
                direction: SHADOW_DIRECTION_FROM_VM,
                flags: 0,
                sequence: seq,
                original_len: f.len() as u16,
            }
        );
    }
}

// 2 ------------------------------------------------------------------------------------------

#[test]
fn tunnel_from_uplink_is_decapsulated_to_the_vm_and_copied_toward_its_shadow() {
    let mut lab = Lab::new();
    let (inner, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000).payload_len(64));
    let sent = lab.send(Port::Uplink, &outer);
    assert_eq!(sent.len(), 2, "{:?}", summary(&sent));
    let p = one_production(&sent);
    assert_eq!(p.port, VF0);
    assert_eq!(p.bytes, inner, "delivered decapsulated");
    let m = geneve_copy(one_copy(&sent), SHADOW_HOST, &inner);
    assert_eq!(m.direction, SHADOW_DIRECTION_TO_VM);
    assert_eq!(m.flags, 0);
    assert_eq!(m.sequence, 0);
    assert_eq!(m.original_len, inner.len() as u16);
}

// 3 ------------------------------------------------------------------------------------------

#[test]
fn map_miss_with_miss_to_host_goes_to_pf_and_copy_goes_to_the_collector() {
    let mut lab = Lab::new();
    let f = Builder::tcp(WEB1, OTHER, 40_000, 443)
        .payload_len(40)
        .build();
    let sent = lab.send(VF0, &f);
    assert_eq!(sent.len(), 2, "{:?}", summary(&sent));
    let p = one_production(&sent);
    assert_eq!(p.port, Port::Pf, "standard path");
    assert_eq!(p.bytes, f, "unchanged");
    let c = one_copy(&sent);
    let m = geneve_copy(c, COLLECTOR, &f);
    assert_eq!(decode(c).eth_dst, mac(0x50), "collector MAC");
    assert_eq!(m.direction, SHADOW_DIRECTION_FROM_VM);
}

#[test]
fn local_vf_to_vf_delivery_and_copy_to_the_collector_without_a_shadow_node() {
    let mut lab = Lab::new();
    let f = Builder::udp(WEB1, WEB2, 40_000, 53).payload_len(30).build();
    let sent = lab.send(VF0, &f);
    assert_eq!(sent.len(), 2, "{:?}", summary(&sent));
    let p = one_production(&sent);
    assert_eq!(p.port, VF1);
    assert_eq!(p.bytes, f, "delivered unchanged");
    // web2 has no shadow-map entry: the copy goes to the session's collector.
    let m = geneve_copy(one_copy(&sent), COLLECTOR, &f);
    assert_eq!(m.direction, SHADOW_DIRECTION_FROM_VM);
    assert_eq!(m.sequence, 0);
}

#[test]
fn vf_to_vf_with_filters_on_both_vms_makes_one_copy_per_direction() {
    let mut lab = Lab::new();
    set_filter(&mut lab, 1, &mirror_all(1, DirectionMatch::ToVm));
    let f = Builder::tcp(WEB1, WEB2, 40_000, 80).build();
    let sent = lab.send(VF0, &f);
    assert_eq!(on(&sent, VF1).len(), 1);
    let c = copies(&sent);
    assert_eq!(c.len(), 2, "{:?}", summary(&sent));
    let mut dirs: Vec<(u8, u32)> = c
        .iter()
        .map(|s| {
            let m = geneve_copy(s, COLLECTOR, &f);
            (m.direction, m.sequence)
        })
        .collect();
    dirs.sort();
    assert_eq!(
        dirs.iter().map(|d| d.0).collect::<Vec<_>>(),
        [SHADOW_DIRECTION_TO_VM, SHADOW_DIRECTION_FROM_VM]
    );
    let mut seqs: Vec<u32> = dirs.iter().map(|d| d.1).collect();
    seqs.sort();
    assert_eq!(seqs, [0, 1]);
}

// 4 ------------------------------------------------------------------------------------------

#[test]
fn direction_filter_selects_egress_or_ingress() {
    let mut lab = Lab::new();
    let egress = web1_to_db1(40_000, 20);
    let (ingress_inner, ingress) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000));

    set_filter(&mut lab, 0, &mirror_all(0, DirectionMatch::ToVm));
    let sent = lab.send(VF0, &egress);
    assert_eq!(production(&sent).len(), 1);
    assert!(copies(&sent).is_empty(), "to-VM filter: no copy of egress");
    let sent = lab.send(Port::Uplink, &ingress);
    assert_eq!(one_production(&sent).port, VF0);
    let m = geneve_copy(one_copy(&sent), SHADOW_HOST, &ingress_inner);
    assert_eq!(m.direction, SHADOW_DIRECTION_TO_VM);

    set_filter(&mut lab, 0, &mirror_all(0, DirectionMatch::FromVm));
    let sent = lab.send(VF0, &egress);
    assert_eq!(production(&sent).len(), 1);
    let m = geneve_copy(one_copy(&sent), SHADOW_HOST, &egress);
    assert_eq!(m.direction, SHADOW_DIRECTION_FROM_VM);
    let sent = lab.send(Port::Uplink, &ingress);
    assert_eq!(one_production(&sent).port, VF0);
    assert!(
        copies(&sent).is_empty(),
        "from-VM filter: no copy of ingress"
    );
}

// 5 ------------------------------------------------------------------------------------------

/// Sends `f` from vf0 and returns whether a copy was made (production must leave once).
fn copied(lab: &mut Lab, f: &[u8]) -> bool {
    let sent = lab.send(VF0, f);
    assert_eq!(production(&sent).len(), 1, "{:?}", summary(&sent));
    match copies(&sent).as_slice() {
        [] => false,
        [c] => {
            geneve_copy(c, &decode_dst_shadow(f), f);
            true
        }
        more => panic!("{} copies", more.len()),
    }
}

/// Where the copy of a frame from web1 goes: the shadow host for db1, else the collector.
fn decode_dst_shadow(f: &[u8]) -> String {
    let h = shadownet_wire::parse(f, &Default::default()).expect("test frame parses");
    if h.dst_ip() == Some(ip(DB1)) || h.dst_ip() == Some(ip(WEB1)) {
        SHADOW_HOST.to_string()
    } else {
        COLLECTOR.to_string()
    }
}

#[test]
fn protocol_filter_copies_only_that_protocol() {
    let mut lab = Lab::new();
    let tcp_only = RuleMatch {
        protocol: Some(6),
        ..RuleMatch::ANY
    };
    set_filter(
        &mut lab,
        0,
        &mirror_rule(0, 10, MirrorVerdict::Mirror, 1, tcp_only),
    );
    assert!(copied(&mut lab, &web1_to_db1(40_000, 10)));
    assert!(!copied(
        &mut lab,
        &Builder::udp(WEB1, DB1, 40_000, 5432).build()
    ));
    assert!(!copied(&mut lab, &Builder::icmp_echo(WEB1, DB1).build()));
}

#[test]
fn port_range_filter_copies_only_ports_in_range() {
    let mut lab = Lab::new();
    let range = RuleMatch {
        dport: shadownet_hw::layout::PortRange::new(5000, 5500).expect("range"),
        ..RuleMatch::ANY
    };
    set_filter(
        &mut lab,
        0,
        &mirror_rule(0, 10, MirrorVerdict::Mirror, 1, range),
    );
    assert!(copied(
        &mut lab,
        &Builder::tcp(WEB1, DB1, 40_000, 5432).build()
    ));
    assert!(copied(
        &mut lab,
        &Builder::tcp(WEB1, DB1, 40_000, 5000).build()
    ));
    assert!(copied(
        &mut lab,
        &Builder::udp(WEB1, DB1, 40_000, 5500).build()
    ));
    assert!(!copied(
        &mut lab,
        &Builder::tcp(WEB1, DB1, 40_000, 80).build()
    ));
    assert!(!copied(
        &mut lab,
        &Builder::tcp(WEB1, DB1, 40_000, 5501).build()
    ));
    // A port range matches only packets that carry ports.
    assert!(!copied(&mut lab, &Builder::icmp_echo(WEB1, DB1).build()));
}

#[test]
fn prefix_filter_copies_only_destinations_in_the_prefix() {
    let mut lab = Lab::new();
    let prefix: Prefix = "192.168.10.16/28".parse().expect("prefix");
    let m = RuleMatch {
        dst: Some(prefix),
        ..RuleMatch::ANY
    };
    set_filter(
        &mut lab,
        0,
        &mirror_rule(0, 10, MirrorVerdict::Mirror, 1, m),
    );
    assert!(copied(&mut lab, &web1_to_db1(40_000, 0)), "db1 .21");
    assert!(
        !copied(&mut lab, &Builder::tcp(WEB1, WEB2, 40_000, 80).build()),
        "web2 .12"
    );
    assert!(
        !copied(&mut lab, &Builder::tcp(WEB1, OTHER, 40_000, 80).build()),
        ".99"
    );
}

#[test]
fn do_not_mirror_rule_with_higher_priority_carves_an_exception() {
    let mut lab = Lab::new();
    // slot 0: mirror everything (priority 10, from the lab).
    let postgres = RuleMatch {
        protocol: Some(6),
        dport: shadownet_hw::layout::PortRange::single(5432),
        ..RuleMatch::ANY
    };
    set_filter(
        &mut lab,
        1,
        &mirror_rule(0, 20, MirrorVerdict::DoNotMirror, 2, postgres),
    );
    assert!(!copied(&mut lab, &web1_to_db1(40_000, 0)), "exception");
    assert!(copied(
        &mut lab,
        &Builder::tcp(WEB1, DB1, 40_000, 80).build()
    ));
    assert!(copied(
        &mut lab,
        &Builder::udp(WEB1, DB1, 40_000, 5432).build()
    ));
    // With a lower priority than the broad rule the exception does nothing.
    set_filter(
        &mut lab,
        1,
        &mirror_rule(0, 5, MirrorVerdict::DoNotMirror, 2, postgres),
    );
    assert!(copied(&mut lab, &web1_to_db1(40_000, 0)));
}

// 6 ------------------------------------------------------------------------------------------

#[test]
fn sampling_one_in_four_copies_every_fourth_packet_and_counts_the_rest() {
    let mut lab = Lab::new();
    let mut f = mirror_all(0, DirectionMatch::Both);
    f.action.sample_one_in = 4;
    set_filter(&mut lab, 0, &f);
    let mut copied_at = Vec::new();
    let mut seqs = Vec::new();
    for i in 0..100u16 {
        let frame = web1_to_db1(40_000 + i, 0);
        let sent = lab.send(VF0, &frame);
        assert_eq!(production(&sent).len(), 1);
        match copies(&sent).as_slice() {
            [] => {}
            [c] => {
                copied_at.push(i);
                seqs.push(geneve_copy(c, SHADOW_HOST, &frame).sequence);
            }
            more => panic!("{} copies of packet {i}", more.len()),
        }
    }
    assert_eq!(copied_at, (0..100).step_by(4).collect::<Vec<u16>>());
    assert_eq!(seqs, (0..25).collect::<Vec<u32>>(), "contiguous sequence");
    let c = lab.counts();
    assert_eq!(c.session(SESSION, SessionCounter::SampledOut), 75);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 25);
    assert_eq!(c.session(SESSION, SessionCounter::TxPackets), 25);
    assert_eq!(c.port(Port::Uplink, PortCounter::TxMirrorPackets), 25);
    assert_eq!(c.port(Port::Uplink, PortCounter::TxPackets), 100);
}

// 7 ------------------------------------------------------------------------------------------

#[test]
fn truncation_cuts_the_copy_and_says_so() {
    let mut lab = Lab::new();
    let mut f = mirror_all(0, DirectionMatch::Both);
    f.action.truncate = Some(128);
    set_filter(&mut lab, 0, &f);

    let long = Builder::tcp(WEB1, DB1, 40_000, 5432)
        .frame_len(1000)
        .build();
    assert_eq!(long.len(), 1000);
    let sent = lab.send(VF0, &long);
    assert_eq!(
        decode(one_production(&sent)).inner,
        long,
        "production is whole"
    );
    let m = geneve_copy(one_copy(&sent), SHADOW_HOST, &long[..128]);
    assert_eq!(m.flags, SHADOW_FLAG_TRUNCATED);
    assert_eq!(m.original_len, 1000);

    for len in [100, 128] {
        let short = Builder::tcp(WEB1, DB1, 40_000, 5432).frame_len(len).build();
        assert_eq!(short.len(), len);
        let sent = lab.send(VF0, &short);
        let m = geneve_copy(one_copy(&sent), SHADOW_HOST, &short);
        assert_eq!(m.flags, 0, "{len}-byte frame is not truncated");
        assert_eq!(m.original_len, len as u16);
    }
}

// 8 ------------------------------------------------------------------------------------------

#[test]
fn vxlan_session_sends_vxlan_copies_without_metadata() {
    let mut lab = Lab::new();
    lab.nic
        .configure_session(SESSION, &Lab::session(Encap::Vxlan, Mode::Mirror))
        .expect("session");
    let f = web1_to_db1(40_000, 50);
    let sent = lab.send(VF0, &f);
    assert_eq!(decode(one_production(&sent)).vni, PROD_VNI);
    let c = one_copy(&sent);
    assert_eq!(c.session, Some(SESSION));
    let d = decode(c);
    assert_eq!(d.kind, TunnelKind::Vxlan);
    assert_eq!(d.udp_dport, 4789);
    assert_eq!(d.vni, SHADOW_VNI);
    assert_eq!(d.dst, ip(SHADOW_HOST));
    assert_eq!(d.shadow, None);
    assert_eq!(d.inner, f);
}

// 9 ------------------------------------------------------------------------------------------

#[test]
fn acl_deny_drops_counts_and_makes_no_copy() {
    let mut lab = Lab::new();
    lab.nic
        .write_acl(0, &acl(10, Verdict::Deny, 1, match_port(6, 22, 22)))
        .expect("acl");
    let ssh = Builder::tcp(WEB1, DB1, 40_000, 22).build();
    let sent = lab.send(VF0, &ssh);
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::AclDeny), 1);
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 1);
    assert!(c.table(TableId::Acl, TableCounter::Hits) >= 1);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
    assert_eq!(c.port(Port::Uplink, PortCounter::TxMirrorPackets), 0);
    assert_eq!(c.drops(), [(DropReason::AclDeny, 1)]);
    // Other ports pass.
    let sent = lab.send(VF0, &Builder::tcp(WEB1, DB1, 40_000, 80).build());
    assert_eq!(sent.len(), 2);
}

#[test]
fn acl_police_rate_limits_connection_attempts_only() {
    let mut lab = Lab::new();
    // At most 5 back to back, then 1,000 new SSH connections a second.
    let syn_only = RuleMatch {
        tcp_syn: true,
        ..match_port(6, 22, 22)
    };
    let police = Verdict::Police {
        rate_pps: 1000,
        burst: 5,
    };
    lab.nic
        .write_acl(0, &acl(10, police, 7, syn_only))
        .expect("acl");
    let syn = |sport| {
        Builder::tcp(WEB1, DB1, sport, 22)
            .flags(tcp::flags::SYN)
            .build()
    };
    // 20 attempts a microsecond apart: the burst passes, the rest is policed.
    let passed: usize = (0..20)
        .map(|i| production(&lab.send(VF0, &syn(40_000 + i))).len())
        .sum();
    assert_eq!(passed, 5);
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::AclPoliced), 15);
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 15);
    assert_eq!(c.drops(), [(DropReason::AclPoliced, 15)]);
    // Segments of established connections (ACK set) are not connection attempts: the
    // rule does not see them, however empty its bucket.
    let ack = Builder::tcp(WEB1, DB1, 40_000, 22)
        .flags(tcp::flags::ACK | tcp::flags::PSH)
        .build();
    assert_eq!(production(&lab.send(VF0, &ack)).len(), 1);
    // 3 ms later the bucket has 3 tokens again.
    lab.now_ps += 3_000_000_000;
    let passed: usize = (0..5)
        .map(|i| production(&lab.send(VF0, &syn(41_000 + i))).len())
        .sum();
    assert_eq!(passed, 3);
    // Writing the slot again fills its bucket.
    lab.nic
        .write_acl(0, &acl(10, police, 7, syn_only))
        .expect("acl");
    assert_eq!(production(&lab.send(VF0, &syn(42_000))).len(), 1);
    assert_eq!(lab.counts().drop(DropReason::AclPoliced), 17);
}

#[test]
fn acl_allow_with_higher_priority_wins_over_deny() {
    let mut lab = Lab::new();
    let ssh = Builder::tcp(WEB1, DB1, 40_000, 22).build();
    lab.nic
        .write_acl(0, &acl(10, Verdict::Deny, 1, match_port(6, 22, 22)))
        .expect("acl");
    lab.nic
        .write_acl(1, &acl(20, Verdict::Allow, 2, match_port(6, 22, 22)))
        .expect("acl");
    let sent = lab.send(VF0, &ssh);
    assert_eq!(production(&sent).len(), 1, "allow wins");
    assert_eq!(copies(&sent).len(), 1);
    lab.nic
        .write_acl(1, &acl(5, Verdict::Allow, 2, match_port(6, 22, 22)))
        .expect("acl");
    assert!(lab.send(VF0, &ssh).is_empty(), "deny wins");
    assert_eq!(lab.counts().drop(DropReason::AclDeny), 1);
}

#[test]
fn default_deny_from_vm_drops_unmatched_and_allow_rules_pass() {
    let mut lab = Lab::new();
    set_vni(&mut lab, PROD_VNI, |e| e.default_deny_from_vm = true);
    let allow = RuleMatch {
        direction: DirectionMatch::FromVm,
        ..match_port(6, 5432, 5432)
    };
    lab.nic
        .write_acl(0, &acl(10, Verdict::Allow, 1, allow))
        .expect("acl");
    let sent = lab.send(VF0, &Builder::udp(WEB1, DB1, 40_000, 53).build());
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let sent = lab.send(VF0, &web1_to_db1(40_000, 0));
    assert_eq!(production(&sent).len(), 1);
    assert_eq!(copies(&sent).len(), 1);
    // The VM's ingress is not under the from-VM default.
    let (inner, outer) = db1_to_web1(Builder::udp(DB1, WEB1, 53, 40_000));
    let sent = lab.send(Port::Uplink, &outer);
    assert_eq!(one_production(&sent).bytes, inner);
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::AclDefaultDeny), 1);
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 1);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 2);
}

#[test]
fn acl_applies_to_ingress_with_a_to_vm_rule() {
    let mut lab = Lab::new();
    let to_vm_ssh = RuleMatch {
        direction: DirectionMatch::ToVm,
        ..match_port(6, 22, 22)
    };
    lab.nic
        .write_acl(0, &acl(10, Verdict::Deny, 1, to_vm_ssh))
        .expect("acl");
    let (_, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 40_000, 22));
    let sent = lab.send(Port::Uplink, &outer);
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    // The to-VM rule does not stop web1's own ssh to db1.
    let sent = lab.send(VF0, &Builder::tcp(WEB1, DB1, 40_000, 22).build());
    assert_eq!(production(&sent).len(), 1);
    // ... but it does stop web1 → web2 ssh at web2's ingress.
    let sent = lab.send(VF0, &Builder::tcp(WEB1, WEB2, 40_000, 22).build());
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::AclDeny), 2);
    assert_eq!(c.port(Port::Uplink, PortCounter::RxDrops), 1);
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 1);
    assert_eq!(
        c.session(SESSION, SessionCounter::Copies),
        1,
        "only the passed one"
    );
}

#[test]
fn default_deny_to_vm_drops_unmatched_ingress() {
    let mut lab = Lab::new();
    set_vni(&mut lab, PROD_VNI, |e| e.default_deny_to_vm = true);
    let (_, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000));
    assert!(lab.send(Port::Uplink, &outer).is_empty());
    assert_eq!(lab.counts().drop(DropReason::AclDefaultDeny), 1);
    // Egress is not under the to-VM default.
    assert_eq!(lab.send(VF0, &web1_to_db1(40_000, 0)).len(), 2);
}

// 10 -----------------------------------------------------------------------------------------

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let mut lab = Lab::new();
    let eth = |ethertype: u16| {
        let mut f = Vec::new();
        f.extend_from_slice(&mac(0x21));
        f.extend_from_slice(&mac(0x11));
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    };
    // IPv4 header cut after 10 bytes.
    let mut short_ip = eth(0x0800);
    short_ip.extend_from_slice(&Builder::tcp(WEB1, DB1, 1, 2).build()[14..24]);
    assert!(lab.send(VF0, &short_ip).is_empty());
    // 10 bytes: not even an Ethernet header.
    assert!(lab.send(VF0, &[0x02; 10]).is_empty());
    // TCP data offset below 5 words.
    let mut bad_tcp = web1_to_db1(40_000, 10);
    bad_tcp[14 + 20 + 12] = 0x10;
    assert!(lab.send(VF0, &bad_tcp).is_empty());
    // VXLAN to this NIC whose inner "IPv4" header has version 15.
    let mut garbage = eth(0x0800);
    garbage.extend_from_slice(&[0xFF; 40]);
    let outer = vxlan(PROD_HOST, LOCAL, PROD_VNI, &garbage);
    assert!(lab.send(Port::Uplink, &outer).is_empty());

    let c = lab.counts();
    assert_eq!(
        c.drops(),
        [
            (DropReason::MalformedL2, 1),
            (DropReason::MalformedL3, 1),
            (DropReason::MalformedL4, 1),
            (DropReason::MalformedTunnel, 1),
        ]
    );
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 3);
    assert_eq!(c.port(Port::Uplink, PortCounter::RxDrops), 1);
    assert_eq!(c.port(VF0, PortCounter::RxPackets), 3);
    assert_eq!(c.all_ports(PortCounter::TxPackets), 0);
    assert_eq!(c.all_ports(PortCounter::TxMirrorPackets), 0);
}

// 11 -----------------------------------------------------------------------------------------

#[test]
fn non_ip_from_a_vm_takes_the_standard_path() {
    let mut lab = Lab::new();
    let arp = arp_request(mac(0x11), [192, 168, 10, 11], [192, 168, 10, 1]);
    let sent = lab.send(VF0, &arp);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].port, Port::Pf);
    assert!(!sent[0].mirror);
    assert_eq!(sent[0].bytes, arp);
}

#[test]
fn uplink_traffic_that_is_not_a_tunnel_to_this_nic_goes_to_the_pf_unchanged() {
    let mut lab = Lab::new();
    let plain = Builder::tcp(PROD_HOST, LOCAL, 40_000, 22)
        .macs(mac(2), mac(1))
        .build();
    let inner = Builder::tcp(DB1, WEB1, 5432, 40_000).build();
    let elsewhere = vxlan(PROD_HOST, "10.0.0.9", PROD_VNI, &inner);
    let arp = arp_request(mac(2), [10, 0, 0, 2], [10, 0, 0, 1]);
    for f in [plain, elsewhere, arp] {
        let sent = lab.send(Port::Uplink, &f);
        assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
        assert_eq!(sent[0].port, Port::Pf);
        assert!(!sent[0].mirror);
        assert_eq!(sent[0].bytes, f);
    }
}

#[test]
fn pf_traffic_goes_to_the_uplink_unchanged() {
    let mut lab = Lab::new();
    let plain = Builder::tcp(LOCAL, PROD_HOST, 22, 40_000)
        .macs(mac(1), mac(2))
        .build();
    let tunnel = vxlan(LOCAL, PROD_HOST, PROD_VNI, &web1_to_db1(1, 0));
    let arp = arp_request(mac(1), [10, 0, 0, 1], [10, 0, 0, 2]);
    for f in [plain, tunnel, arp] {
        let sent = lab.send(Port::Pf, &f);
        assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
        assert_eq!(sent[0].port, Port::Uplink);
        assert!(!sent[0].mirror);
        assert_eq!(sent[0].bytes, f);
    }
}

// 12 -----------------------------------------------------------------------------------------

#[test]
fn map_miss_without_miss_to_host_is_dropped() {
    let mut lab = Lab::new();
    set_vni(&mut lab, PROD_VNI, |e| e.miss_to_host = false);
    let sent = lab.send(VF0, &Builder::tcp(WEB1, OTHER, 40_000, 443).build());
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let c = lab.counts();
    assert_eq!(c.drops(), [(DropReason::MapMiss, 1)]);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
}

#[test]
fn unknown_vni_from_the_uplink_is_dropped() {
    let mut lab = Lab::new();
    let inner = Builder::tcp(DB1, WEB1, 5432, 40_000).build();
    let sent = lab.send(Port::Uplink, &vxlan(PROD_HOST, LOCAL, 7777, &inner));
    assert!(sent.is_empty(), "{:?}", summary(&sent));
    let c = lab.counts();
    assert_eq!(c.drops(), [(DropReason::VniUnknown, 1)]);
    assert_eq!(c.port(Port::Uplink, PortCounter::RxDrops), 1);
}

#[test]
fn disabled_vport_neither_sends_nor_receives() {
    let mut lab = Lab::new();
    lab.nic
        .write_vport(
            0,
            &VportEntry {
                vni: PROD_VNI,
                mac: shadownet_hw::layout::Mac(mac(0x11)),
                enabled: false,
            },
        )
        .expect("vport");
    assert!(lab.send(VF0, &web1_to_db1(40_000, 0)).is_empty());
    let (_, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000));
    assert!(lab.send(Port::Uplink, &outer).is_empty());
    let c = lab.counts();
    assert_eq!(c.drops(), [(DropReason::VportDisabled, 2)]);
    assert_eq!(c.port(VF0, PortCounter::RxDrops), 1);
    assert_eq!(c.port(Port::Uplink, PortCounter::RxDrops), 1);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
}

// 13 -----------------------------------------------------------------------------------------

#[test]
fn redirect_mode_sends_the_packet_only_to_the_shadow() {
    let mut lab = Lab::new();
    lab.nic
        .configure_session(SESSION, &Lab::session(Encap::Geneve, Mode::Redirect))
        .expect("session");
    let f = web1_to_db1(40_000, 80);
    let sent = lab.send(VF0, &f);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    let r = &sent[0];
    assert_eq!(r.port, Port::Uplink);
    assert!(!r.mirror, "a redirected frame uses the primary queue");
    assert_eq!(r.session, Some(SESSION));
    let d = decode(r);
    assert_eq!(d.kind, TunnelKind::Geneve);
    assert_eq!(d.vni, SHADOW_VNI);
    assert_eq!(d.dst, ip(SHADOW_HOST));
    assert_eq!(d.inner, f);
    let m = d.shadow.expect("shadow metadata");
    assert_eq!(m.flags, SHADOW_FLAG_REDIRECTED);
    assert_eq!(m.direction, SHADOW_DIRECTION_FROM_VM);
    assert_eq!(m.original_len, f.len() as u16);

    // Ingress is redirected too: nothing reaches vf0.
    let (inner, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000));
    let sent = lab.send(Port::Uplink, &outer);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].port, Port::Uplink);
    let d = decode(&sent[0]);
    assert_eq!(d.inner, inner);
    let m = d.shadow.expect("shadow metadata");
    assert_eq!(m.flags, SHADOW_FLAG_REDIRECTED);
    assert_eq!(m.direction, SHADOW_DIRECTION_TO_VM);

    // Traffic no filter selects is forwarded as usual.
    let other = Builder::tcp(WEB2, DB1, 40_000, 5432).build();
    let sent = lab.send(VF1, &other);
    assert_eq!(sent.len(), 1);
    assert_eq!(decode(&sent[0]).vni, PROD_VNI);

    let c = lab.counts();
    assert_eq!(c.session(SESSION, SessionCounter::Redirected), 2);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
    assert_eq!(c.port(Port::Uplink, PortCounter::TxMirrorPackets), 0);
    assert_eq!(c.port(Port::Uplink, PortCounter::TxPackets), 3);
    assert_eq!(c.port(VF0, PortCounter::TxPackets), 0);
}

// 14 -----------------------------------------------------------------------------------------

/// The lab plus: a sampled, truncating filter on vf1, a deny rule for ssh and a policer on
/// the session small enough to drop copies.
fn accounting_lab() -> Lab {
    let mut lab = Lab::new();
    let mut f = mirror_all(1, DirectionMatch::Both);
    f.action.sample_one_in = 2;
    f.action.truncate = Some(64);
    set_filter(&mut lab, 1, &f);
    lab.nic
        .write_acl(0, &acl(10, Verdict::Deny, 1, match_port(6, 22, 22)))
        .expect("acl");
    let mut s = Lab::session(Encap::Geneve, Mode::Mirror);
    s.policer_mbps = 1;
    s.policer_burst = 1600;
    lab.nic.configure_session(SESSION, &s).expect("session");
    lab
}

/// About fifty frames covering forwarding, copies, the standard path and drops.
fn mixed_batch() -> Vec<(Port, Vec<u8>)> {
    let mut b = Vec::new();
    for i in 0..6u16 {
        b.push((VF0, web1_to_db1(40_000 + i, 20 * i as usize)));
        b.push((VF1, Builder::udp(WEB2, DB1, 40_000 + i, 53).build()));
        b.push((VF0, Builder::tcp(WEB1, WEB2, 40_000 + i, 80).build()));
        let (_, outer) = db1_to_web1(Builder::tcp(DB1, WEB1, 5432, 40_000 + i));
        b.push((Port::Uplink, outer));
    }
    for i in 0..3u16 {
        b.push((VF0, Builder::tcp(WEB1, DB1, 40_000 + i, 22).build())); // ACL deny
        b.push((VF0, Builder::tcp(WEB1, OTHER, 40_000 + i, 443).build())); // miss → PF
        b.push((
            VF0,
            arp_request(mac(0x11), [192, 168, 10, 11], [192, 168, 10, 1]),
        ));
        b.push((Port::Pf, Builder::tcp(LOCAL, PROD_HOST, 22, 40_000).build()));
        b.push((
            Port::Uplink,
            Builder::tcp(PROD_HOST, LOCAL, 40_000, 22).build(),
        ));
        let inner = Builder::tcp(DB1, WEB1, 5432, 40_000).build();
        b.push((Port::Uplink, vxlan(PROD_HOST, LOCAL, 7777, &inner))); // VNI unknown
        b.push((VF1, vec![0u8; 10])); // malformed
        b.push((VF2, Builder::tcp(WEB2, DB1, 40_000, 5432).build())); // shadow VM
    }
    b.push((
        Port::Vport(9),
        Builder::tcp(WEB1, DB1, 40_000, 5432).build(),
    )); // no vport
    b
}

const VF2: Port = Port::Vport(2);

#[test]
fn every_frame_and_every_copy_is_accounted_for() {
    let mut lab = accounting_lab();
    let batch = mixed_batch();
    assert!((45..=60).contains(&batch.len()), "{}", batch.len());
    let mut seen_production = 0u64;
    let mut seen_copies = 0u64;
    for (port, f) in &batch {
        let sent = lab.send(*port, f);
        seen_production += production(&sent).len() as u64;
        seen_copies += copies(&sent).len() as u64;
    }
    let c = lab.counts();
    let rx = c.all_ports(PortCounter::RxPackets);
    let tx = c.all_ports(PortCounter::TxPackets);
    let tx_mirror = c.all_ports(PortCounter::TxMirrorPackets);
    let made = c.all_sessions(SessionCounter::Copies);
    assert_eq!(rx, batch.len() as u64);
    assert_eq!(tx, seen_production);
    assert_eq!(tx_mirror, seen_copies);
    // The batch exercises both kinds of loss.
    // 3 ACL denies, 3 malformed, 3 unknown VNIs, 1 frame from a vport nobody configured.
    assert_eq!(c.production_drops(), 10, "{:?}", c.drops());
    assert!(c.copy_drops() > 0, "{:?}", c.drops());
    assert!(c.session(SESSION, SessionCounter::SampledOut) > 0);
    // Every frame received left once or was dropped once.
    assert_eq!(rx, tx + c.production_drops(), "{:?}", c.drops());
    // No queue overflows here: production drops happen at reception, copy drops (the
    // policer's) at transmission.
    assert_eq!(c.production_drops(), c.all_ports(PortCounter::RxDrops));
    assert_eq!(c.copy_drops(), c.all_ports(PortCounter::TxDrops));
    // Every copy made left or was dropped.
    assert_eq!(made, tx_mirror + c.copy_drops(), "{:?}", c.drops());
    assert_eq!(
        made,
        c.session(SESSION, SessionCounter::TxPackets)
            + c.session(SESSION, SessionCounter::Policed)
            + c.session(SESSION, SessionCounter::Dropped)
    );
}

#[test]
fn copies_for_a_disabled_session_are_accounted_for() {
    let mut lab = Lab::new();
    // vf1's filter points at session 2, which was never configured (disabled).
    let mut f = mirror_all(1, DirectionMatch::Both);
    f.action.session = 2;
    set_filter(&mut lab, 1, &f);
    let sent = lab.send(VF1, &Builder::tcp(WEB2, DB1, 40_000, 5432).build());
    assert_eq!(production(&sent).len(), 1);
    assert!(copies(&sent).is_empty());
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::MirrorSessionDisabled), 1);
    assert_eq!(c.session(2, SessionCounter::Dropped), 1);
    // A copy the filter asked for and dropped was a copy made (SessionCounter::Copies: "filter
    // matched and the sample selected the packet"; Dropped includes "session disabled").
    assert_eq!(
        c.all_sessions(SessionCounter::Copies),
        c.all_ports(PortCounter::TxMirrorPackets) + c.copy_drops(),
        "{:?}",
        c.drops()
    );
    assert_eq!(c.session(2, SessionCounter::Copies), 1);
}

#[test]
fn acl_hit_is_counted_on_the_table_and_copies_are_made_only_for_forwarded_frames() {
    let mut lab = Lab::new();
    lab.nic
        .write_acl(0, &acl(10, Verdict::Allow, 1, match_port(6, 5432, 5432)))
        .expect("acl");
    lab.send(VF0, &web1_to_db1(40_000, 0));
    lab.send(VF0, &Builder::udp(WEB1, DB1, 40_000, 53).build());
    let c = lab.counts();
    assert_eq!(c.table(TableId::Acl, TableCounter::Hits), 1);
    assert_eq!(c.table(TableId::Acl, TableCounter::Misses), 1);
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 2);
    // map: db1 twice, hit.
    assert_eq!(c.table(TableId::Map, TableCounter::Hits), 2);
    assert_eq!(c.table(TableId::ShadowMap, TableCounter::Hits), 2);
}

#[test]
fn a_production_entry_can_point_at_an_ipv6_overlay_address() {
    // An IPv6 production flow is forwarded and mirrored the same way as IPv4.
    let mut lab = Lab::new();
    let (w6, d6) = ("2001:db8::11", "2001:db8::21");
    lab.nic
        .write_map(&map_key(PROD_VNI, d6), &remote_vm(PROD_HOST, 2, false))
        .expect("map");
    let f = Builder::tcp(w6, d6, 40_000, 5432).payload_len(30).build();
    let sent = lab.send(VF0, &f);
    let d = decode(one_production(&sent));
    assert_eq!((d.vni, d.dst), (PROD_VNI, ip(PROD_HOST)));
    assert_eq!(d.inner, f);
    // No shadow node for d6: the copy goes to the collector.
    geneve_copy(one_copy(&sent), COLLECTOR, &f);
}

#[test]
fn redirect_mode_redirects_selected_standard_path_traffic_too() {
    let mut lab = Lab::new();
    lab.nic
        .configure_session(SESSION, &Lab::session(Encap::Geneve, Mode::Redirect))
        .expect("session");
    let f = Builder::tcp(WEB1, OTHER, 40_000, 443).build();
    let sent = lab.send(VF0, &f);
    let c = lab.counts();
    // vf0's filter selects the packet for session 1, a redirect session: the packet goes to
    // the shadow's analysis node (the collector: .99 has no shadow node) before production.
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].port, Port::Uplink, "{:?}", summary(&sent));
    let d = decode(&sent[0]);
    assert_eq!(d.dst, ip(COLLECTOR));
    assert_eq!(d.inner, f);
    assert_eq!(
        d.shadow.map(|m| m.flags),
        Some(SHADOW_FLAG_REDIRECTED),
        "redirected"
    );
    assert_eq!(c.session(SESSION, SessionCounter::Redirected), 1);
}

#[test]
fn no_copy_of_a_packet_production_has_no_substrate_address_for() {
    // db3 sits behind an IPv6 substrate address, but this NIC has none: production cannot
    // encapsulate (NoSubstrateAddress). Its copy goes to the collector, over IPv4.
    let mut lab = Lab::new();
    let db3 = "192.168.10.23";
    lab.nic
        .write_map(&map_key(PROD_VNI, db3), &remote_vm("fd00::2", 2, false))
        .expect("map");
    let sent = lab.send(VF0, &Builder::tcp(WEB1, db3, 40_000, 5432).build());
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::NoSubstrateAddress), 1);
    assert!(
        sent.is_empty(),
        "the shadow gets a packet production never sent: {:?}",
        summary(&sent)
    );
}

#[test]
fn no_copy_of_a_packet_too_big_for_production() {
    // A frame too big for the uplink once encapsulated (MtuExceeded), whose copy is
    // truncated to fit.
    let mut lab = Lab::new();
    lab.nic
        .configure_port(&shadownet_host::driver::PortConfig {
            local_mac: shadownet_hw::layout::Mac(mac(1)),
            local_ipv4: Some(LOCAL.parse().expect("literal")),
            uplink_mtu: 1000,
            ..Default::default()
        })
        .expect("port");
    let mut f = mirror_all(0, DirectionMatch::Both);
    f.action.truncate = Some(128);
    set_filter(&mut lab, 0, &f);
    let big = Builder::tcp(WEB1, DB1, 40_000, 5432).frame_len(990).build();
    let sent = lab.send(VF0, &big);
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::MtuExceeded), 1);
    assert!(
        sent.is_empty(),
        "the shadow gets a packet production never sent: {:?}",
        summary(&sent)
    );
}
