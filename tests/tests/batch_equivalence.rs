//! Receiving frames in batches changes nothing, for every kind of traffic and every table
//! feature that changes a decision: the same frames leave at the same times in the same
//! order, with the same counters, run statistics and trace, as when the same frames are
//! received one by one.
//!
//! `batching.rs` checks this for the two traffics the fast lane and the scheduler's deferral
//! were built for. Here a seeded generator mixes every kind of frame the parser knows (ARP,
//! IPv4 with options and fragments, IPv6 with extension headers, TCP with and without SYN,
//! UDP, ICMP, ICMPv6, 802.1Q and QinQ tags, VXLAN and Geneve from the uplink to local VMs,
//! to unknown networks and to shadow addresses, malformed frames, frames from the PF, from
//! every VF of the lab and from VFs nobody configured, jumbo frames, and captures of the
//! shared corpus) at paces from bursts faster than a port's line rate to six times slower,
//! with pauses; the lab's tables get a random set of ACL rules, mirror filters (direction,
//! protocol, port ranges, prefixes, sampling, truncation, do-not-mirror), sessions (Geneve
//! and VXLAN, mirror and redirect, policed or not), shadow-map entries and network flags,
//! and some of them change between frames while the traffic runs (with now and then a
//! device reset, or the end of a run, `finish`, before more traffic). Each seed's traffic is
//! received one frame at a time, then in batches of fixed and of random sizes (1 to 300,
//! varying within the run, with empty batches and frames one by one between them), with
//! the fast lane on and off, with the trace on, and with the telemetry ring on (flow
//! sampling). Compared: every frame the sink receives (port, queue, session, times, packet,
//! bytes) in order; how many it has received when each batch returns (against one by one
//! at the batch's last frame); every counter at each table change and at the end; the run
//! statistics; the trace, line by line; the telemetry export at the end.
//!
//! `SHADOWNET_BATCH_CASES=<n>` runs `n` cases per test instead of 30 (a soak).

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex, OnceLock},
};

use shadownet_capture::{CaptureReader, Frame};
use shadownet_host::driver::{Device, PortConfig};
use shadownet_hw::{
    NUM_SESSIONS, Port,
    counters::{self, CounterId, PortCounter, SessionCounter, TableCounter},
    drop::DropReason,
    layout::{
        Mac, PortRange, Prefix,
        acl::{AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
        rule::{DirectionMatch, RuleMatch},
        session::{Encap, MirrorSession, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::VniEntry,
        vport::VportEntry,
    },
    table::TableId,
    timing::Timing,
};
use shadownet_sim::Arrival;
use shadownet_tests::rng::SplitMix64 as Rng;
use shadownet_tests::{
    corpus,
    lab::{
        COLLECTOR, Collect, DB1, LOCAL, Lab, PROD_HOST, PROD_VNI, SESSION, SHADOW_HOST, SHADOW_VNI,
        Sent, WEB1, WEB2, acl,
    },
    packet::{Builder, arp_request, geneve, ip, mac, vxlan},
};
use shadownet_wire::checksum;

// Addresses beyond the lab's own (see `lab.rs`).

/// Remote production VMs on db1's host.
const REMOTE: [&str; 4] = [
    "192.168.10.22",
    "192.168.10.23",
    "192.168.10.24",
    "192.168.10.25",
];
/// A remote production VM on another host (10.0.0.4).
const DB2: &str = "192.168.10.26";
/// A shadow VM's address in the production network: production may not reach it.
const SHADOWED: &str = "192.168.10.40";
/// A remote production VM whose host has an IPv6 substrate address.
const V6_HOSTED: &str = "192.168.10.50";
/// An address no map entry has (a map miss).
const NOWHERE: &str = "192.168.10.99";
/// web1's and db1's IPv6 overlay addresses.
const WEB1_V6: &str = "fd10::11";
const DB1_V6: &str = "fd10::21";
/// This NIC's and db1's host's IPv6 substrate addresses (the first configured at random).
const LOCAL_V6: &str = "fd00::1";
const PROD_HOST_V6: &str = "fd00::2";
/// The second and third sessions the setups use (the lab's is [`SESSION`]).
const SESSION2: u16 = 2;
const SESSION3: u16 = 3;

/// One change to the NIC's tables, sessions or configuration, made through the driver.
#[derive(Clone, Debug)]
enum Program {
    Acl(u32, AclRule),
    Mirror(u32, MirrorFilter),
    Session(u16, MirrorSession),
    Vni(u32, VniEntry),
    Vport(u16, VportEntry),
    Map(MapKey, MapValue),
    DeleteMap(MapKey),
    ShadowMap(ShadowMapKey, ShadowMapValue),
    DeleteShadowMap(ShadowMapKey),
    Port(PortConfig),
    /// A device reset (tables, sessions, counters, configuration, queues), after which
    /// the run programs its setup again.
    Restart,
    /// The end of a run (`NicModel::finish`: everything queued is sent) before more
    /// traffic: nothing to program; the run does it.
    Finish,
}

impl Program {
    fn apply(&self, lab: &mut Lab) {
        let nic = &mut lab.nic;
        let done = match self {
            Program::Acl(slot, r) => nic.write_acl(*slot, r),
            Program::Mirror(slot, f) => nic.write_mirror_filter(*slot, f),
            Program::Session(s, cfg) => nic.configure_session(*s, cfg),
            Program::Vni(vni, e) => nic.write_vni(*vni, e),
            Program::Vport(v, e) => nic.write_vport(*v, e),
            Program::Map(k, v) => nic.write_map(k, v).map(|_| ()),
            Program::DeleteMap(k) => nic.delete_map(k).map(|_| ()),
            Program::ShadowMap(k, v) => nic.write_shadow_map(k, v).map(|_| ()),
            Program::DeleteShadowMap(k) => nic.delete_shadow_map(k).map(|_| ()),
            Program::Port(cfg) => nic.configure_port(cfg),
            Program::Restart => {
                lab.restart();
                Ok(())
            }
            Program::Finish => Ok(()),
        };
        if let Err(e) = done {
            panic!("programming {self:?}: {e}");
        }
    }
}

fn v4(s: &str) -> Ipv4Addr {
    match ip(s) {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("{s} is not IPv4"),
    }
}

fn prefix(s: &str) -> Prefix {
    s.parse()
        .unwrap_or_else(|e| panic!("bad prefix literal {s}: {e:?}"))
}

fn remote_vm(host: &str, last: u8, shadow: bool) -> MapValue {
    MapValue {
        substrate_ip: ip(host),
        substrate_mac: Mac(mac(last)),
        local_vport: None,
        shadow,
    }
}

fn shadow_key(session: u16, addr: &str) -> ShadowMapKey {
    ShadowMapKey {
        session,
        vni: PROD_VNI,
        ip: ip(addr),
    }
}

fn shadow_node(host: &str, last: u8) -> ShadowMapValue {
    ShadowMapValue {
        substrate_ip: ip(host),
        substrate_mac: Mac(mac(last)),
        shadow_vni: SHADOW_VNI,
    }
}

/// A random mirror filter: on one of the lab's VFs (or one nobody uses, which makes it a
/// rule that never matches), any direction, with or without protocol, ports and prefixes,
/// mirror or do-not-mirror, to one of four sessions (the fourth never configured),
/// truncated and sampled or not.
fn random_mirror(rng: &mut Rng) -> MirrorFilter {
    let protocol = rng.pick(&[None, None, Some(6u8), Some(6), Some(17), Some(1), Some(58)]);
    let ports = matches!(protocol, None | Some(6) | Some(17));
    let dport = if ports {
        rng.pick(&[
            PortRange::ANY,
            PortRange::ANY,
            PortRange::single(5432),
            PortRange::single(22),
            PortRange::single(53),
            PortRange::new(5000, 5500).expect("lo <= hi"),
            PortRange::new(40_000, 40_031).expect("lo <= hi"),
        ])
    } else {
        PortRange::ANY
    };
    let sport = if ports && rng.chance(20) {
        PortRange::new(40_000, 40_015).expect("lo <= hi")
    } else {
        PortRange::ANY
    };
    let dst = rng.pick(&[
        None,
        None,
        None,
        Some("192.168.10.16/28"),
        Some("192.168.10.21/32"),
        Some("192.168.10.0/24"),
        Some("fd10::/64"),
    ]);
    let src = match dst {
        Some(d) if d.contains(':') => None,
        _ => rng.pick(&[None, None, None, Some("192.168.10.8/29")]),
    };
    let verdict = if rng.chance(20) {
        MirrorVerdict::DoNotMirror
    } else {
        MirrorVerdict::Mirror
    };
    MirrorFilter {
        matches: RuleMatch {
            scope: Some(rng.pick(&[0u32, 0, 0, 1, 1, 2, 60])),
            direction: rng.pick(&[
                DirectionMatch::Both,
                DirectionMatch::Both,
                DirectionMatch::ToVm,
                DirectionMatch::FromVm,
            ]),
            protocol,
            src: src.map(prefix),
            dst: dst.map(prefix),
            sport,
            dport,
            tcp_syn: protocol == Some(6) && rng.chance(25),
            ..RuleMatch::ANY
        },
        action: MirrorAction {
            priority: rng.pick(&[5, 10, 15, 20, 30]),
            verdict,
            rule_id: rng.range(1, 10_000) as u32,
            session: rng.pick(&[SESSION, SESSION, SESSION, SESSION2, SESSION2, SESSION3, 4]),
            truncate: rng.pick(&[None, None, None, Some(64), Some(128), Some(200), Some(1000)]),
            sample_one_in: rng.pick(&[1, 1, 1, 2, 3, 5]),
        },
    }
}

/// A random ACL rule: in the production or the shadow network (or every network), any
/// direction, allow, deny or police, at one of several priorities.
fn random_acl(rng: &mut Rng) -> AclRule {
    let protocol = rng.pick(&[None, Some(6u8), Some(6), Some(17), Some(1)]);
    let ports = matches!(protocol, None | Some(6) | Some(17));
    let dport = if ports {
        rng.pick(&[
            PortRange::ANY,
            PortRange::single(22),
            PortRange::single(53),
            PortRange::single(5432),
            PortRange::new(1000, 9999).expect("lo <= hi"),
        ])
    } else {
        PortRange::ANY
    };
    let dst = rng.pick(&[
        None,
        None,
        Some("192.168.10.24/30"),
        Some("192.168.10.0/28"),
        Some("fd10::/64"),
    ]);
    let src = match dst {
        Some(d) if d.contains(':') => None,
        _ => rng.pick(&[None, None, Some("192.168.10.8/29")]),
    };
    let verdict = match rng.below(10) {
        0..=3 => Verdict::Allow,
        4..=7 => Verdict::Deny,
        _ => Verdict::Police {
            rate_pps: rng.pick(&[1_000, 100_000]),
            burst: rng.pick(&[3, 50]),
        },
    };
    acl(
        rng.pick(&[1, 5, 10, 20, 30]),
        verdict,
        rng.range(1, 10_000) as u32,
        RuleMatch {
            scope: rng.pick(&[Some(PROD_VNI), Some(PROD_VNI), Some(SHADOW_VNI), None]),
            direction: rng.pick(&[
                DirectionMatch::Both,
                DirectionMatch::ToVm,
                DirectionMatch::FromVm,
            ]),
            protocol,
            src: src.map(prefix),
            dst: dst.map(prefix),
            dport,
            tcp_syn: protocol == Some(6) && rng.chance(30),
            ..RuleMatch::ANY
        },
    )
}

/// A random session configuration: Geneve or VXLAN, mirror or (rarely) redirect, to an
/// IPv4 or (rarely) an IPv6 collector, policed or not, now and then disabled.
fn random_session(rng: &mut Rng) -> MirrorSession {
    let policed = rng.chance(40);
    MirrorSession {
        enabled: rng.chance(92),
        encap: rng.pick(&[Encap::Geneve, Encap::Geneve, Encap::Vxlan]),
        mode: if rng.chance(12) {
            Mode::Redirect
        } else {
            Mode::Mirror
        },
        shadow_vni: SHADOW_VNI,
        collector_ip: ip(if rng.chance(10) {
            "fd00::50"
        } else {
            COLLECTOR
        }),
        collector_mac: Mac(mac(0x50)),
        policer_mbps: if policed {
            rng.pick(&[500, 2_000, 10_000, 30_000])
        } else {
            0
        },
        policer_burst: if policed {
            rng.pick(&[1_600, 8_000, 32_768])
        } else {
            0
        },
    }
}

fn random_prod_vni(rng: &mut Rng) -> VniEntry {
    VniEntry {
        shadow: false,
        miss_to_host: rng.chance(80),
        default_deny_to_vm: rng.chance(12),
        default_deny_from_vm: rng.chance(12),
        production_vni: None,
    }
}

/// A change made while the traffic runs.
fn random_change(rng: &mut Rng) -> Program {
    if rng.chance(4) {
        return Program::Restart;
    }
    if rng.chance(5) {
        return Program::Finish;
    }
    match rng.below(9) {
        0 | 1 => Program::Mirror(rng.below(8) as u32, random_mirror(rng)),
        2 => Program::Acl(rng.below(8) as u32, random_acl(rng)),
        3 => Program::Session(rng.pick(&[SESSION, SESSION, SESSION2]), random_session(rng)),
        4 => Program::Vni(PROD_VNI, random_prod_vni(rng)),
        5 => {
            let addr = rng.pick(&[DB1, REMOTE[0], REMOTE[1], DB2]);
            let s = rng.pick(&[SESSION, SESSION2]);
            if rng.chance(50) {
                Program::DeleteShadowMap(shadow_key(s, addr))
            } else {
                Program::ShadowMap(
                    shadow_key(s, addr),
                    shadow_node(rng.pick(&[SHADOW_HOST, "10.0.0.5"]), 3),
                )
            }
        }
        6 => {
            let addr = rng.pick(&REMOTE);
            let key = MapKey {
                vni: PROD_VNI,
                ip: ip(addr),
            };
            if rng.chance(40) {
                Program::DeleteMap(key)
            } else {
                Program::Map(key, remote_vm(rng.pick(&[PROD_HOST, "10.0.0.4"]), 4, false))
            }
        }
        7 => Program::Vport(
            1,
            VportEntry {
                vni: PROD_VNI,
                mac: Mac(mac(0x12)),
                enabled: rng.chance(60),
            },
        ),
        _ => Program::Vport(
            0,
            VportEntry {
                vni: PROD_VNI,
                mac: Mac(mac(0x11)),
                enabled: rng.chance(85),
            },
        ),
    }
}

/// What a seed programs on top of the lab, and whether the NIC got an IPv6 address.
struct Setup {
    timing: Timing,
    programs: Vec<Program>,
    local_v6: bool,
}

fn random_setup(rng: &mut Rng) -> Setup {
    let timing = match rng.below(6) {
        0 => Timing {
            rx_fifo_bytes: 16 * 1024,
            ..Timing::DEFAULT
        },
        1 => Timing {
            primary_queue_bytes: 32 * 1024,
            mirror_queue_bytes: 16 * 1024,
            ..Timing::DEFAULT
        },
        2 => Timing {
            host_gbps: 25,
            ..Timing::DEFAULT
        },
        _ => Timing::DEFAULT,
    };
    let local_v6 = rng.chance(50);
    let mut p = vec![Program::Port(PortConfig {
        local_mac: Mac(mac(1)),
        local_ipv4: Some(v4(LOCAL)),
        local_ipv6: local_v6.then(|| LOCAL_V6.parse().expect("an IPv6 literal")),
        uplink_mtu: rng.pick(&[9216, 9216, 9000, 1600, 1500, 1500]),
        ..PortConfig::default()
    })];
    // More remote VMs, a shadow address in production, a host with an IPv6 substrate
    // address, IPv6 overlay addresses.
    let map = |addr: &str, value: MapValue| {
        Program::Map(
            MapKey {
                vni: PROD_VNI,
                ip: ip(addr),
            },
            value,
        )
    };
    for addr in REMOTE {
        p.push(map(addr, remote_vm(PROD_HOST, 2, false)));
    }
    p.push(map(DB2, remote_vm("10.0.0.4", rng.pick(&[2, 4]), false)));
    p.push(map(SHADOWED, remote_vm(SHADOW_HOST, 3, true)));
    p.push(map(V6_HOSTED, remote_vm(PROD_HOST_V6, 2, false)));
    p.push(map(DB1_V6, remote_vm(PROD_HOST, 2, false)));
    // A production host's entry in the shadow network: the shadow VM may not reach it.
    p.push(Program::Map(
        MapKey {
            vni: SHADOW_VNI,
            ip: ip(REMOTE[0]),
        },
        remote_vm(PROD_HOST, 2, false),
    ));
    p.push(map(
        WEB1_V6,
        MapValue {
            substrate_ip: ip(LOCAL),
            substrate_mac: Mac(mac(1)),
            local_vport: Some(0),
            shadow: false,
        },
    ));
    // Shadow-map entries beyond the lab's (session 1's for web1 and db1): session 2's for
    // db1 and a remote VM, and more below.
    for addr in [DB1, REMOTE[0]] {
        p.push(Program::ShadowMap(
            shadow_key(SESSION2, addr),
            shadow_node(SHADOW_HOST, 3),
        ));
    }
    // Shadow nodes behind one gateway: the same MAC address, other IP addresses.
    p.push(Program::ShadowMap(
        shadow_key(SESSION, REMOTE[1]),
        shadow_node("10.0.0.5", 3),
    ));
    p.push(Program::ShadowMap(
        shadow_key(SESSION, REMOTE[3]),
        shadow_node("10.0.0.6", 3),
    ));
    p.push(Program::ShadowMap(
        shadow_key(SESSION2, DB2),
        shadow_node("10.0.0.5", 3),
    ));
    p.push(Program::ShadowMap(
        shadow_key(SESSION, REMOTE[2]),
        shadow_node("fd00::3", 3),
    ));
    p.push(Program::Vni(PROD_VNI, random_prod_vni(rng)));
    p.push(Program::Session(SESSION, random_session(rng)));
    p.push(Program::Session(SESSION2, random_session(rng)));
    p.push(Program::Session(
        SESSION3,
        Lab::session(Encap::Geneve, Mode::Redirect),
    ));
    // vf0's filter in slot 0: the lab's (copy everything, whole: the fast lane's plain
    // copy), one copying everything with another action (sampled, truncated, to another
    // session, one direction, do-not-mirror), a random one, or none that matches. Few
    // other filters and ACL rules most of the time, so that vf0's frames often all get the
    // same answers (the fast lane's simple case) and sometimes need a walk of the rules.
    match rng.below(20) {
        0..=6 => {}
        7..=12 => {
            let mut f = random_mirror(rng);
            f.matches = RuleMatch {
                scope: Some(0),
                direction: f.matches.direction,
                ..RuleMatch::ANY
            };
            p.push(Program::Mirror(0, f));
        }
        13..=16 => p.push(Program::Mirror(0, random_mirror(rng))),
        _ => {
            let mut f = random_mirror(rng);
            f.matches.scope = Some(60);
            p.push(Program::Mirror(0, f));
        }
    }
    for _ in 0..rng.pick(&[0, 0, 0, 1, 2, 3, 5, 7]) {
        let slot = rng.range(1, 8) as u32;
        p.push(Program::Mirror(slot, random_mirror(rng)));
    }
    for _ in 0..rng.pick(&[0, 0, 0, 1, 2, 4, 6]) {
        let slot = rng.below(7) as u32;
        p.push(Program::Acl(slot, random_acl(rng)));
    }
    // An ACL rule allowing all of the production network: the lane's "always" answer.
    if rng.chance(25) {
        p.push(Program::Acl(
            7,
            acl(
                1,
                Verdict::Allow,
                77,
                RuleMatch {
                    scope: Some(PROD_VNI),
                    ..RuleMatch::ANY
                },
            ),
        ));
    }
    Setup {
        timing,
        programs: p,
        local_v6,
    }
}

/// One frame arriving (its last byte) on a port, and what it is (for messages).
struct Received {
    at: u64,
    port: Port,
    frame: Vec<u8>,
    kind: &'static str,
}

/// A seed's traffic and tables.
struct Case {
    /// Names the case in messages.
    name: String,
    setup: Setup,
    traffic: Vec<Received>,
    /// Changes made after the frame at the index is received, in index order.
    changes: Vec<(usize, Program)>,
}

/// Recomputes the IPv4 header checksum of the header at `at`.
fn fix_ipv4_checksum(f: &mut [u8], at: usize) {
    let ihl = (f[at] & 0x0f) as usize * 4;
    if ihl < 20 || at + ihl > f.len() {
        return;
    }
    f[at + 10..at + 12].copy_from_slice(&[0, 0]);
    let c = !checksum::data(&f[at..at + ihl]);
    f[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
}

/// `f` (Ethernet, IPv4 at 14) with `words` words of IPv4 options (NOPs, then an end of
/// options list).
fn with_ipv4_options(f: &[u8], words: usize) -> Vec<u8> {
    let mut opts = vec![1u8; words * 4];
    if let Some(last) = opts.last_mut() {
        *last = 0;
    }
    let mut out = f[..34].to_vec();
    out.extend_from_slice(&opts);
    out.extend_from_slice(&f[34..]);
    out[14] = 0x40 | (5 + words) as u8;
    let total = u16::from_be_bytes([out[16], out[17]]) as usize + words * 4;
    out[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    fix_ipv4_checksum(&mut out, 14);
    out
}

/// `f` (Ethernet, IPv6 at 14) with an 8-byte extension header of type `ext` (hop-by-hop 0,
/// routing 43, fragment 44, destination options 60) in front of its upper layer.
fn with_ipv6_extension(f: &[u8], ext: u8, more_fragments: bool) -> Vec<u8> {
    let next = f[20];
    let mut h = [next, 0, 0, 0, 0, 0, 0, 0];
    match ext {
        // Padding: a PadN option of four bytes.
        0 | 60 => h[2..8].copy_from_slice(&[1, 4, 0, 0, 0, 0]),
        // Segment routing type 4 with no segments left is still parseable.
        43 => h[2..4].copy_from_slice(&[4, 0]),
        44 => {
            h[3] = more_fragments as u8;
            h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        }
        _ => {}
    }
    let mut out = f[..54].to_vec();
    out[20] = ext;
    let plen = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&f[54..]);
    out
}

/// Wraps `inner` in VXLAN over an IPv6 substrate, db1's host to this NIC.
fn vxlan6(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    Builder::udp(PROD_HOST_V6, LOCAL_V6, 50_000, 4789)
        .macs(mac(2), mac(1))
        .payload(&payload)
        .build()
}

/// A frame length: mostly up to 1,514 bytes, now and then a jumbo frame.
fn frame_len(rng: &mut Rng) -> usize {
    if rng.chance(6) {
        rng.range(1515, 9000) as usize
    } else if rng.chance(50) {
        rng.pick(&[60, 60, 64, 128, 572, 1514])
    } else {
        rng.range(60, 1514) as usize
    }
}

/// A TCP or UDP or ICMP frame between two overlay addresses (same family).
fn overlay(rng: &mut Rng, src: &str, dst: &str, len: usize) -> Builder {
    let sport = 40_000 + rng.below(32) as u16;
    let dport = rng.pick(&[5432u16, 5432, 22, 53, 80, 443, 5000, 8080]);
    match rng.below(10) {
        0..=5 => Builder::tcp(src, dst, sport, dport)
            .flags(rng.pick(&[0x18, 0x18, 0x10, 0x02, 0x12, 0x11, 0x04])),
        6..=8 => Builder::udp(src, dst, sport, dport),
        _ => Builder::icmp_echo(src, dst),
    }
    .frame_len(len)
}

/// What a VM on `port` sends (with its MAC) to `dst`.
fn from_vm(rng: &mut Rng, port: u16, src: &str, dst: &str, len: usize) -> (Port, Vec<u8>) {
    let src_mac = mac(0x11 + port as u8);
    let f = overlay(rng, src, dst, len).macs(src_mac, mac(0x21)).build();
    (Port::Vport(port), f)
}

/// The frames a seed mixes: the fast lane's common case (a VM to a remote VM) most of the
/// time in "fast" stretches, every kind in "mixed" ones, tunnels from the uplink in
/// "tunnel" ones.
#[derive(Clone, Copy)]
enum Focus {
    Fast,
    Mixed,
    Tunnels,
}

/// Number of frame kinds [`frame_of`] knows.
const KINDS: u64 = 30;

/// A frame of kind `kind` (0..[`KINDS`]): its port, bytes and name.
fn frame_of(
    rng: &mut Rng,
    kind: u64,
    local_v6: bool,
    corpus: &[Vec<u8>],
) -> (Port, Vec<u8>, &'static str) {
    let len = frame_len(rng);
    let (port, frame) = match kind {
        // A VM to a remote VM: the fast lane's case.
        0 => from_vm(rng, 0, WEB1, DB1, len),
        1 => {
            let dst = rng.pick(&[DB1, REMOTE[0], REMOTE[1], REMOTE[2], REMOTE[3], DB2]);
            let (v, src) = rng.pick(&[(0u16, WEB1), (1, WEB2)]);
            from_vm(rng, v, src, dst, len)
        }
        // To a VM on this NIC.
        2 => from_vm(rng, 0, WEB1, WEB2, len),
        3 => from_vm(rng, 1, WEB2, WEB1, len),
        // A map miss (to the host or dropped).
        4 => {
            let (v, src) = rng.pick(&[(0u16, WEB1), (1, WEB2)]);
            from_vm(rng, v, src, NOWHERE, len)
        }
        // Production to a shadow address (isolation).
        5 => from_vm(rng, 0, WEB1, SHADOWED, len),
        // A remote VM whose host has an IPv6 address.
        6 => from_vm(rng, 0, WEB1, V6_HOSTED, len),
        // The shadow VM (vf2) to the shadow's db1 and web1, to a production host, to a
        // miss.
        7 => {
            let dst = rng.pick(&[DB1, WEB1, REMOTE[0], NOWHERE]);
            from_vm(rng, 2, WEB2, dst, len)
        }
        // IPv6 from web1, with an extension header now and then.
        8 => {
            let (p, f) = from_vm(rng, 0, WEB1_V6, DB1_V6, len);
            if rng.chance(50) {
                let ext = rng.pick(&[0u8, 43, 44, 60]);
                (p, with_ipv6_extension(&f, ext, rng.chance(50)))
            } else {
                (p, f)
            }
        }
        // IPv4 with options.
        9 => {
            let dst = rng.pick(&[DB1, WEB2]);
            let (p, f) = from_vm(rng, 0, WEB1, dst, len.min(1400));
            (p, with_ipv4_options(&f, rng.range(1, 10) as usize))
        }
        // IPv4 fragments: first (more fragments), middle, last.
        10 => {
            let dst = rng.pick(&[DB1, WEB2, NOWHERE]);
            let (p, mut f) = from_vm(rng, 0, WEB1, dst, len);
            let (mf, offset) = rng.pick(&[(true, 0u16), (true, 185), (false, 370)]);
            let word = offset | if mf { 0x2000 } else { 0 };
            f[20..22].copy_from_slice(&word.to_be_bytes());
            fix_ipv4_checksum(&mut f, 14);
            (p, f)
        }
        // 802.1Q and QinQ tagged.
        11 => {
            let b = overlay(rng, WEB1, DB1, len).macs(mac(0x11), mac(0x21));
            let b = if rng.chance(50) {
                b.vlan(0x8100, rng.range(1, 4094) as u16)
            } else {
                b.vlan(0x88A8, 100).vlan(0x8100, rng.range(1, 4094) as u16)
            };
            (
                rng.pick(&[Port::Vport(0), Port::Uplink, Port::Pf]),
                b.build(),
            )
        }
        // ARP from every side.
        12 => {
            let port = rng.pick(&[
                Port::Vport(0),
                Port::Vport(1),
                Port::Vport(2),
                Port::Uplink,
                Port::Pf,
            ]);
            (
                port,
                arp_request(mac(0x11), [192, 168, 10, 11], [192, 168, 10, 1]),
            )
        }
        // VXLAN and Geneve from db1's host to web1 or web2.
        13 | 14 => {
            let (dst, m) = rng.pick(&[(WEB1, 0x11u8), (WEB2, 0x12)]);
            let inner = overlay(rng, DB1, dst, len.min(8900))
                .macs(mac(0x21), mac(m))
                .build();
            let f = if kind == 13 {
                vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner)
            } else {
                geneve(PROD_HOST, LOCAL, PROD_VNI, &inner)
            };
            (Port::Uplink, f)
        }
        // A tunnel to an unknown network.
        15 => {
            let inner = overlay(rng, DB1, WEB1, len.min(8900)).build();
            (
                Port::Uplink,
                vxlan(PROD_HOST, LOCAL, rng.pick(&[7777, 1, 0xFF_FFFF]), &inner),
            )
        }
        // To the shadow VM (vf2) in the shadow network, from the shadow host.
        16 => {
            let inner = overlay(rng, DB1, WEB2, len.min(8900))
                .macs(mac(0x21), mac(0x12))
                .build();
            (Port::Uplink, geneve(SHADOW_HOST, LOCAL, SHADOW_VNI, &inner))
        }
        // A tunnel to a shadow address, a map miss, web1 in the shadow network (remote).
        17 => {
            let (vni, dst) = rng.pick(&[
                (PROD_VNI, SHADOWED),
                (PROD_VNI, NOWHERE),
                (SHADOW_VNI, WEB1),
            ]);
            let inner = overlay(rng, DB1, dst, len.min(8900)).build();
            (Port::Uplink, vxlan(PROD_HOST, LOCAL, vni, &inner))
        }
        // Uplink traffic not tunnelled to this NIC: plain, to another host.
        18 => {
            let f = if rng.chance(50) {
                overlay(rng, PROD_HOST, LOCAL, len)
                    .macs(mac(2), mac(1))
                    .build()
            } else {
                let inner = overlay(rng, DB1, WEB1, len.min(8900)).build();
                vxlan(PROD_HOST, "10.0.0.9", PROD_VNI, &inner)
            };
            (Port::Uplink, f)
        }
        // From the host (PF).
        19 => {
            let f = match rng.below(3) {
                0 => overlay(rng, LOCAL, PROD_HOST, len)
                    .macs(mac(1), mac(2))
                    .build(),
                1 => vxlan(
                    LOCAL,
                    PROD_HOST,
                    PROD_VNI,
                    &overlay(rng, WEB1, DB1, 200).build(),
                ),
                _ => overlay(rng, "fd00::1", "fd00::2", len)
                    .macs(mac(1), mac(2))
                    .build(),
            };
            (Port::Pf, f)
        }
        // From a VF nobody configured.
        20 => {
            let v = rng.range(3, 63) as u16;
            from_vm(rng, v, WEB1, DB1, len)
        }
        // IPv6 tunnel to this NIC (to web1), when it has an IPv6 address; else ICMPv6.
        21 => {
            let inner = overlay(rng, DB1, WEB1, len.min(8800))
                .macs(mac(0x21), mac(0x11))
                .build();
            if local_v6 {
                (Port::Uplink, vxlan6(PROD_VNI, &inner))
            } else {
                let f = Builder::icmp_echo(WEB1_V6, DB1_V6)
                    .macs(mac(0x11), mac(0x21))
                    .frame_len(len.min(1500))
                    .build();
                (Port::Vport(0), f)
            }
        }
        // Malformed: cut short anywhere.
        22 => {
            let (p, f) = if rng.chance(50) {
                from_vm(rng, 0, WEB1, DB1, len.min(300))
            } else {
                let inner = overlay(rng, DB1, WEB1, 200).build();
                (Port::Uplink, vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner))
            };
            let cut = rng.range(1, f.len() as u64 - 1) as usize;
            (p, f[..cut].to_vec())
        }
        // Malformed: bad IHL, bad total length, bad TCP data offset, bad IPv6 payload length.
        23 => {
            let (v, src) = rng.pick(&[(0u16, WEB1), (1, WEB2)]);
            let (p, mut f) = from_vm(rng, v, src, DB1, len.min(600));
            match rng.below(4) {
                0 => f[14] = 0x40 | rng.pick(&[0u8, 1, 4, 15]),
                1 => {
                    let total = rng.pick(&[0u16, 19, 40, 0xFFFF]);
                    f[16..18].copy_from_slice(&total.to_be_bytes());
                }
                2 => f[14] = rng.pick(&[0x65u8, 0x05, 0xF5]),
                _ => {
                    if f[23] == 6 {
                        f[46] = rng.pick(&[0x00u8, 0x40, 0xF0]);
                    } else {
                        f[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
                    }
                }
            }
            fix_ipv4_checksum(&mut f, 14);
            (p, f)
        }
        // Malformed tunnels: garbage inner frame, truncated VXLAN header.
        24 => {
            let mut inner = mac(0x11).to_vec();
            inner.extend_from_slice(&mac(0x21));
            inner.extend_from_slice(&0x0800u16.to_be_bytes());
            inner.extend_from_slice(&[0xFF; 40]);
            let mut f = vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner);
            if rng.chance(50) {
                f.truncate(14 + 20 + 8 + rng.range(0, 7) as usize);
            }
            (Port::Uplink, f)
        }
        // Tiny frames.
        25 => {
            let n = rng.range(1, 20) as usize;
            (
                rng.pick(&[Port::Vport(0), Port::Uplink, Port::Pf]),
                vec![0x02; n],
            )
        }
        // A capture of the corpus, as it is, into any port.
        26 | 27 if !corpus.is_empty() => {
            let f = corpus[rng.below(corpus.len() as u64) as usize].clone();
            (
                rng.pick(&[
                    Port::Vport(0),
                    Port::Vport(1),
                    Port::Vport(2),
                    Port::Uplink,
                    Port::Pf,
                ]),
                f,
            )
        }
        // A corpus IPv4 frame readdressed to db1 from web1's port (its payload and headers
        // as captured: the fast lane's case with whatever the capture holds).
        28 if !corpus.is_empty() => {
            let mut f = corpus[rng.below(corpus.len() as u64) as usize].clone();
            if f.len() >= 34 && f[12..14] == [0x08, 0x00] {
                f[30..34].copy_from_slice(&v4(DB1).octets());
                fix_ipv4_checksum(&mut f, 14);
            }
            (Port::Vport(0), f)
        }
        // A VM's SYN to a remote VM (rules on connection attempts).
        _ => {
            let f = Builder::tcp(
                WEB1,
                rng.pick(&[DB1, REMOTE[0], DB2]),
                40_000 + rng.below(32) as u16,
                rng.pick(&[22, 5432, 443]),
            )
            .flags(0x02)
            .macs(mac(0x11), mac(0x21))
            .frame_len(60)
            .build();
            (Port::Vport(0), f)
        }
    };
    const NAMES: [&str; KINDS as usize] = [
        "web1 to db1 (fast lane)",
        "VM to a remote VM",
        "web1 to web2 (local)",
        "web2 to web1 (local)",
        "VM to a map miss",
        "web1 to a shadow address",
        "web1 to a VM on an IPv6 host",
        "shadow VM (vf2)",
        "IPv6 (extension headers)",
        "IPv4 with options",
        "IPv4 fragment",
        "802.1Q/QinQ tagged",
        "ARP",
        "VXLAN to a local VM",
        "Geneve to a local VM",
        "tunnel to an unknown VNI",
        "Geneve to the shadow VM",
        "tunnel to a shadow address or miss",
        "uplink, not a tunnel to this NIC",
        "from the PF",
        "from an unconfigured VF",
        "IPv6 tunnel or ICMPv6",
        "truncated",
        "bad IHL, length or offset",
        "malformed tunnel",
        "tiny",
        "corpus",
        "corpus",
        "corpus readdressed to db1",
        "SYN to a remote VM",
    ];
    (port, frame, NAMES[kind as usize])
}

/// Wire time of `len` bytes on `port`.
fn wire_ps(timing: &Timing, port: Port, len: usize) -> u64 {
    let gbps = if port == Port::Uplink {
        timing.uplink_gbps
    } else {
        timing.host_gbps
    };
    timing.wire_bytes(len as u32) as u64 * Timing::byte_ps(gbps)
}

/// A seed's case: its setup, about `frames` frames in stretches of one focus and pace
/// (tenths of a frame's wire time: bursts faster than line rate, line rate, up to six
/// times slower), pauses now and then, and table changes between stretches.
fn generate(seed: u64, frames: usize, corpus: &[Vec<u8>]) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x0ba7_c4ed);
    let setup = random_setup(&mut rng);
    let mut traffic = Vec::with_capacity(frames);
    let mut changes = Vec::new();
    let mut t = 1_000_000u64;
    while traffic.len() < frames {
        let focus = rng.pick(&[
            Focus::Fast,
            Focus::Fast,
            Focus::Mixed,
            Focus::Mixed,
            Focus::Tunnels,
        ]);
        let pace = rng.pick(&[0u64, 3, 6, 10, 10, 11, 13, 16, 20, 30, 60]);
        for _ in 0..rng.range(20, 400) {
            let kind = match focus {
                Focus::Fast if rng.chance(85) => rng.pick(&[0, 0, 0, 1, 29]),
                Focus::Tunnels if rng.chance(70) => rng.pick(&[13, 14, 15, 16, 17, 21]),
                _ => rng.below(KINDS),
            };
            let (port, frame, kind) = frame_of(&mut rng, kind, setup.local_v6, corpus);
            // Jitter of up to 30% of the pace; bursts as fast as their pace says; at pace 0,
            // half the frames arrive at the same instant as the one before (on another
            // port, or as a burst a real port could not deliver).
            let wire = wire_ps(&setup.timing, port, frame.len());
            t += match pace {
                0 => wire * rng.below(2),
                1..10 => wire * pace / 10,
                _ => wire * (pace + rng.below(4)) / 10,
            };
            traffic.push(Received {
                at: t,
                port,
                frame,
                kind,
            });
        }
        if rng.chance(20) {
            t += rng.pick(&[2_000_000u64, 50_000_000, 1_000_000_000]);
        }
        if rng.chance(40) {
            changes.push((traffic.len() - 1, random_change(&mut rng)));
        }
    }
    Case {
        name: format!("seed {seed}"),
        setup,
        traffic,
        changes,
    }
}

/// How a run receives its frames.
#[derive(Clone, Copy, Debug)]
enum Batching {
    /// One by one (`NicModel::receive`).
    Single,
    /// In batches of this many (the last of each stretch between changes shorter).
    Fixed(usize),
    /// In batches of random sizes from 1 to 300, drawn with this seed.
    Random(u64),
}

#[derive(Clone, Copy, Debug)]
struct How {
    batching: Batching,
    fast_lane: bool,
    /// The per-packet trace on (batches then take the general path and never defer).
    trace: bool,
    /// The telemetry ring on (flow sampling: batches then take the general path).
    telemetry: bool,
}

impl How {
    fn name(&self) -> String {
        let b = match self.batching {
            Batching::Single => "one by one".to_string(),
            Batching::Fixed(n) => format!("batches of {n}"),
            Batching::Random(s) => format!("random batches (seed {s})"),
        };
        format!(
            "{b}, fast lane {}{}{}",
            if self.fast_lane { "on" } else { "off" },
            if self.trace { ", traced" } else { "" },
            if self.telemetry { ", telemetry on" } else { "" }
        )
    }
}

/// A trace sink the test can read after the run.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("trace buffer poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run did.
struct Outcome {
    /// Every frame the sink received, in order.
    sent: Vec<Sent>,
    /// For each frame of the traffic, how many frames the sink had received when the call
    /// that received it returned ([`NOT_MARKED`] for frames before the last of a batch).
    marks: Vec<usize>,
    /// Every counter at the end of the run ([`snapshot`]).
    counters: Vec<u64>,
    /// Every counter just before each change of the case ([`snapshot`]).
    at_changes: Vec<Vec<u64>>,
    /// The run statistics.
    stats: String,
    /// The trace (empty unless traced).
    trace: Vec<u8>,
    /// The telemetry records of an export at the end (none unless telemetry is on).
    telemetry: Vec<String>,
}

/// Every counter, then the device cycle of the snapshot (from the latest event).
fn snapshot(lab: &mut Lab) -> Vec<u64> {
    let s = lab.counts().0;
    let mut v = s.values;
    v.push(s.cycle);
    v
}

/// [`Outcome::marks`] of a frame received in a batch before its last.
const NOT_MARKED: usize = usize::MAX;

/// Size of a random batch: small ones, large ones, anything between.
fn random_batch(rng: &mut Rng) -> usize {
    match rng.below(4) {
        0 => rng.range(1, 8) as usize,
        1 => rng.range(200, 300) as usize,
        _ => rng.range(1, 300) as usize,
    }
}

fn run(case: &Case, how: How) -> Outcome {
    let mut lab = Lab::with_timing(case.setup.timing);
    for p in &case.setup.programs {
        p.apply(&mut lab);
    }
    if how.telemetry
        && let Err(e) = lab.nic.enable_telemetry(12, 0)
    {
        panic!("{}: enabling telemetry: {e}", case.name);
    }
    let trace = SharedBuf::default();
    {
        let mut model = lab.model();
        model.set_fast_lane(how.fast_lane);
        if how.trace {
            model.set_trace(Box::new(trace.clone()), true);
        }
    }
    let mut sink = Collect::default();
    let mut sizes = Rng(match how.batching {
        Batching::Random(s) => s,
        _ => 0,
    });
    let mut marks = Vec::with_capacity(case.traffic.len());
    let mut at_changes = Vec::new();
    let mut start = 0;
    let ends = case
        .changes
        .iter()
        .map(|(i, p)| (i + 1, Some(p)))
        .chain([(case.traffic.len(), None)]);
    for (end, change) in ends {
        let stretch = &case.traffic[start..end];
        start = end;
        {
            let mut model = lab.model();
            match how.batching {
                Batching::Single => {
                    for r in stretch {
                        model.receive(r.port, &r.frame, r.at, &mut sink);
                        marks.push(sink.0.len());
                    }
                }
                Batching::Fixed(_) | Batching::Random(_) => {
                    let mut rest = stretch;
                    while !rest.is_empty() {
                        let (n, singles) = match how.batching {
                            Batching::Fixed(n) => (n, false),
                            // Now and then an empty batch, or frames one by one between
                            // batches (a consumer may mix the two).
                            _ if sizes.chance(2) => (0, false),
                            _ => (random_batch(&mut sizes), sizes.chance(8)),
                        };
                        let (batch, more) = rest.split_at(n.min(rest.len()));
                        rest = more;
                        if singles {
                            for r in batch {
                                model.receive(r.port, &r.frame, r.at, &mut sink);
                                marks.push(sink.0.len());
                            }
                            continue;
                        }
                        let arrivals: Vec<Arrival<'_>> = batch
                            .iter()
                            .map(|r| Arrival {
                                port: r.port,
                                frame: &r.frame,
                                at_ps: r.at,
                            })
                            .collect();
                        let before = sink.0.len();
                        model.receive_batch(&arrivals, &mut sink);
                        if batch.is_empty() {
                            assert_eq!(
                                sink.0.len(),
                                before,
                                "{}, {}: an empty batch sent frames",
                                case.name,
                                how.name()
                            );
                        } else {
                            marks.resize(marks.len() + batch.len() - 1, NOT_MARKED);
                            marks.push(sink.0.len());
                        }
                    }
                }
            }
        }
        if let Some(p) = change {
            if let Program::Finish = p {
                lab.model().finish(&mut sink);
            }
            at_changes.push(snapshot(&mut lab));
            p.apply(&mut lab);
            if let Program::Restart = p {
                for q in &case.setup.programs {
                    q.apply(&mut lab);
                }
                // The reset turned the trace and telemetry off.
                if how.trace {
                    let mut model = lab.model();
                    if let Err(e) = model.finish_trace() {
                        panic!("{}, {}: the trace: {e}", case.name, how.name());
                    }
                    model.set_trace(Box::new(trace.clone()), true);
                }
                if how.telemetry
                    && let Err(e) = lab.nic.enable_telemetry(12, 0)
                {
                    panic!("{}: enabling telemetry: {e}", case.name);
                }
            }
        }
    }
    let stats = {
        let mut model = lab.model();
        model.finish(&mut sink);
        if let Err(e) = model.finish_trace() {
            panic!("{}, {}: the trace: {e}", case.name, how.name());
        }
        format!("{:?}", model.stats())
    };
    let counters = snapshot(&mut lab);
    let mut telemetry = Vec::new();
    if how.telemetry {
        let mut records = Vec::new();
        let polled = lab.nic.request_telemetry().and_then(|()| {
            lab.nic.device().relax();
            lab.nic.poll_telemetry(&mut records)
        });
        if let Err(e) = polled {
            panic!("{}: reading telemetry: {e}", case.name);
        }
        telemetry = records.iter().map(|r| format!("{r:?}")).collect();
    }
    let trace = match trace.0.lock() {
        Ok(t) => t.clone(),
        Err(_) => panic!("trace buffer poisoned"),
    };
    Outcome {
        sent: sink.0,
        marks,
        counters,
        at_changes,
        stats,
        trace,
        telemetry,
    }
}

/// [`run`], naming the case and the run if the model panics.
fn run_named(case: &Case, how: How) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(case, how))).unwrap_or_else(|e| {
        let why = e
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| e.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        panic!("{}, {}: panicked: {why}", case.name, how.name())
    })
}

/// A departure and the frame it came from, for messages.
fn describe(case: &Case, s: &Sent) -> String {
    let from = match case.traffic.get(s.packet as usize) {
        Some(r) => format!(
            "traffic frame {} ({}, {} bytes on {:?} at {} ps)",
            s.packet,
            r.kind,
            r.frame.len(),
            r.port,
            r.at
        ),
        None => format!("packet {}", s.packet),
    };
    format!(
        "{} bytes on {:?}{}{} starting {} ps, from {from}",
        s.bytes.len(),
        s.port,
        if s.mirror { " (copy)" } else { "" },
        s.session
            .map(|x| format!(" session {x}"))
            .unwrap_or_default(),
        s.start_ps,
    )
}

/// Which frames were received with traffic frame `k` in a run with these
/// [`Outcome::marks`] (a call returns after the frames marked), and the last table change
/// before it.
fn context(case: &Case, marks: &[usize], k: usize) -> String {
    if k >= marks.len() {
        return String::new();
    }
    let change = match case.changes.iter().rev().find(|(after, _)| *after < k) {
        Some((after, p)) => format!("\n  the last change before it, after frame {after}: {p:?}"),
        None => String::new(),
    };
    let first = marks[..k]
        .iter()
        .rposition(|&m| m != NOT_MARKED)
        .map_or(0, |i| i + 1);
    let last = marks[k..]
        .iter()
        .position(|&m| m != NOT_MARKED)
        .map_or(marks.len() - 1, |i| k + i);
    format!(
        "\n  traffic frame {k} was received in a call with frames {first} to {last} ({} \
         frames){change}",
        last - first + 1
    )
}

/// The fields of two departures that differ.
fn differences(a: &Sent, b: &Sent) -> String {
    let mut d = Vec::new();
    if a.port != b.port {
        d.push("port");
    }
    if a.mirror != b.mirror {
        d.push("queue");
    }
    if a.session != b.session {
        d.push("session");
    }
    if a.start_ps != b.start_ps {
        d.push("start time");
    }
    if a.ingress_ps != b.ingress_ps {
        d.push("ingress time");
    }
    if a.packet != b.packet {
        d.push("packet");
    }
    if a.bytes != b.bytes {
        d.push("bytes");
    }
    d.join(", ")
}

/// Asserts that `batched` did exactly what `single` did; names the case, the run, and the
/// first departure, counter, statistic or trace line that differs.
fn assert_same(case: &Case, how: How, single: &Outcome, batched: &Outcome) {
    let what = format!("{}, {} against one by one", case.name, how.name());
    for (i, (a, b)) in single.sent.iter().zip(&batched.sent).enumerate() {
        assert!(
            a == b,
            "{what}: departure {i}: {} differ\n  one by one: {}\n  batched:    {}{}",
            differences(a, b),
            describe(case, a),
            describe(case, b),
            context(case, &batched.marks, b.packet as usize)
        );
    }
    if single.sent.len() != batched.sent.len() {
        let n = single.sent.len().min(batched.sent.len());
        let extra = single.sent.get(n).or(batched.sent.get(n));
        panic!(
            "{what}: {} departures one by one, {} batched; the first extra: {}",
            single.sent.len(),
            batched.sent.len(),
            extra.map(|s| describe(case, s)).unwrap_or_default()
        );
    }
    // A batch releases, by the time it returns, what receiving its frames one by one
    // would have by its last frame: live consumers of the sink see no delay.
    for (i, (&a, &b)) in single.marks.iter().zip(&batched.marks).enumerate() {
        assert!(
            b == NOT_MARKED || a == b,
            "{what}: after the batch ending with traffic frame {i} ({}), {b} frames sent; \
             one by one, {a} by then",
            case.traffic[i].kind
        );
    }
    let counted = |a: &[u64], b: &[u64], when: &str| {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x == y,
                "{what}: counter {i} ({}) {when}: {x} one by one, {y} batched",
                match counters::describe(CounterId(i as u16)) {
                    _ if i == counters::NUM_COUNTERS => "the snapshot's cycle".to_string(),
                    name => format!("{name:?}"),
                }
            );
        }
    };
    for (k, (a, b)) in single
        .at_changes
        .iter()
        .zip(&batched.at_changes)
        .enumerate()
    {
        let (after, change) = &case.changes[k];
        counted(
            a,
            b,
            &format!("after traffic frame {after}, before change {change:?}"),
        );
    }
    counted(&single.counters, &batched.counters, "at the end");
    assert_eq!(
        single.stats, batched.stats,
        "{what}: run statistics (left one by one, right batched)"
    );
    let (ta, tb) = (
        String::from_utf8_lossy(&single.trace),
        String::from_utf8_lossy(&batched.trace),
    );
    for (i, (a, b)) in ta.lines().zip(tb.lines()).enumerate() {
        assert!(
            a == b,
            "{what}: trace line {}:\n  one by one: {a}\n  batched:    {b}",
            i + 1
        );
    }
    assert_eq!(
        ta.lines().count(),
        tb.lines().count(),
        "{what}: trace lines"
    );
    for (i, (a, b)) in single.telemetry.iter().zip(&batched.telemetry).enumerate() {
        assert!(
            a == b,
            "{what}: telemetry record {i}:\n  one by one: {a}\n  batched:    {b}"
        );
    }
    assert_eq!(
        single.telemetry.len(),
        batched.telemetry.len(),
        "{what}: telemetry records"
    );
}

/// Frames of the shared corpus (Ethernet ones, at least one byte): at most `per_file` of
/// each capture, in the manifest's order.
fn corpus_frames(per_file: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for entry in corpus::manifest() {
        let Ok(reader) = CaptureReader::open(&entry.path()) else {
            continue;
        };
        // A damaged record ends the file.
        for rec in reader.take(per_file).map_while(Result::ok) {
            if let Frame::Ethernet(f) = rec.frame
                && !f.is_empty()
            {
                frames.push(f);
            }
        }
    }
    frames
}

/// A few frames of each capture, for the generator's corpus kinds.
fn corpus_sample() -> &'static [Vec<u8>] {
    static SAMPLE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let frames = corpus_frames(4);
        assert!(frames.len() > 500, "{} corpus frames", frames.len());
        frames
    })
}

/// Frames per generated case.
const FRAMES: usize = 4_000;

/// Runs `case` one by one and then `batched` each way (with the fast lane on or off),
/// traced or not and with telemetry or not as `trace` and `telemetry` say, asserting that
/// every batched run equals the run one by one; returns the counters of the latter.
fn check(case: &Case, trace: bool, telemetry: bool, batched: &[(Batching, bool)]) -> Vec<u64> {
    let how = |batching, fast_lane| How {
        batching,
        fast_lane,
        trace,
        telemetry,
    };
    let single = run_named(case, how(Batching::Single, true));
    assert!(
        !single.sent.is_empty(),
        "{}: nothing left the NIC",
        case.name
    );
    assert!(
        !trace || !single.trace.is_empty(),
        "{}: no trace",
        case.name
    );
    assert!(
        !telemetry || !single.telemetry.is_empty(),
        "{}: no telemetry",
        case.name
    );
    for &(batching, fast_lane) in batched {
        let h = how(batching, fast_lane);
        assert_same(case, h, &single, &run_named(case, h));
    }
    single.counters
}

/// Asserts that the traffic of every seed together reached each state that changes a
/// decision (`what` names the test).
fn assert_covered(what: &str, sums: &[u64]) {
    let c = |id: CounterId| sums.get(id.index()).copied().unwrap_or(0);
    let mut missing = Vec::new();
    for reason in [
        DropReason::MalformedL2,
        DropReason::MalformedL3,
        DropReason::MalformedL4,
        DropReason::MalformedTunnel,
        DropReason::AclDeny,
        DropReason::MapMiss,
        DropReason::ShadowIsolation,
        DropReason::VportDisabled,
        DropReason::VniUnknown,
        DropReason::MtuExceeded,
        DropReason::MirrorQueueFull,
        DropReason::MirrorPoliced,
        DropReason::RxFifoOverflow,
    ] {
        if c(counters::drop_reason(reason)) == 0 {
            missing.push(format!("{reason:?}"));
        }
    }
    for kind in [
        SessionCounter::Copies,
        SessionCounter::SampledOut,
        SessionCounter::Redirected,
    ] {
        let n: u64 = (0..NUM_SESSIONS as u16)
            .map(|s| c(counters::session(s, kind)))
            .sum();
        if n == 0 {
            missing.push(format!("{kind:?}"));
        }
    }
    for port in [
        Port::Vport(0),
        Port::Vport(1),
        Port::Vport(2),
        Port::Pf,
        Port::Uplink,
    ] {
        if c(counters::port(port, PortCounter::TxPackets)) == 0 {
            missing.push(format!("{port:?} sending"));
        }
    }
    if c(counters::port(Port::Uplink, PortCounter::TxMirrorPackets)) == 0 {
        missing.push("copies sent".to_string());
    }
    for table in [TableId::Acl, TableId::MirrorFilter, TableId::ShadowMap] {
        if c(counters::table(table, TableCounter::Hits)) == 0 {
            missing.push(format!("{table:?} hits"));
        }
    }
    assert!(missing.is_empty(), "{what}: never reached: {missing:?}");
}

fn add(sums: &mut Vec<u64>, counters: &[u64]) {
    sums.resize(sums.len().max(counters.len()), 0);
    for (s, c) in sums.iter_mut().zip(counters) {
        *s += c;
    }
}

/// Cases per test (seeds `first..first + cases()`): 30, or `SHADOWNET_BATCH_CASES` for a
/// longer soak.
fn cases() -> u64 {
    std::env::var("SHADOWNET_BATCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

#[test]
fn every_kind_of_traffic_in_fixed_batches_equals_single_frames() {
    let corpus = corpus_sample();
    let mut sums = Vec::new();
    for seed in 1..=cases() {
        let case = generate(seed, FRAMES, corpus);
        let fixed = [7, 64, 256].map(|n| (Batching::Fixed(n), true));
        add(&mut sums, &check(&case, false, false, &fixed));
    }
    assert_covered("fixed batches", &sums);
}

#[test]
fn every_kind_of_traffic_in_random_batches_equals_single_frames() {
    let corpus = corpus_sample();
    let mut sums = Vec::new();
    for seed in 100_001..100_001 + cases() {
        let case = generate(seed, FRAMES, corpus);
        let batched = [
            (Batching::Random(seed), true),
            (Batching::Random(seed + 1), false),
            (Batching::Fixed(1), true),
        ];
        add(&mut sums, &check(&case, false, false, &batched));
    }
    assert_covered("random batches", &sums);
}

#[test]
fn every_kind_of_traffic_traced_in_batches_equals_single_frames() {
    let corpus = corpus_sample();
    for seed in 200_001..200_001 + cases() / 3 {
        let case = generate(seed, FRAMES, corpus);
        let batched = [(Batching::Random(seed), true), (Batching::Fixed(64), true)];
        check(&case, true, false, &batched);
    }
}

/// With the telemetry ring on, every frame's flow is sampled into the heavy-hitter sketch:
/// batches take the general path, and the export at the end must be the same too.
#[test]
fn every_kind_of_traffic_with_telemetry_in_batches_equals_single_frames() {
    let corpus = corpus_sample();
    for seed in 400_001..400_001 + cases() / 3 {
        let case = generate(seed, FRAMES, corpus);
        let batched = [(Batching::Random(seed), true), (Batching::Fixed(256), true)];
        check(&case, false, true, &batched);
    }
}

/// Every Ethernet frame of the corpus, into random ports at random paces, with a random
/// setup per seed.
#[test]
fn the_corpus_in_batches_equals_single_frames() {
    let frames = corpus_frames(usize::MAX);
    assert!(frames.len() > 10_000, "{} corpus frames", frames.len());
    for seed in 301..=304u64 {
        let mut rng = Rng(seed);
        let setup = random_setup(&mut rng);
        let ports = [
            Port::Vport(0),
            Port::Vport(0),
            Port::Vport(1),
            Port::Vport(2),
            Port::Uplink,
            Port::Uplink,
            Port::Pf,
        ];
        let mut t = 1_000_000u64;
        let mut pace = 10;
        let traffic: Vec<Received> = frames
            .iter()
            .enumerate()
            .map(|(k, f)| {
                if k % 300 == 0 {
                    pace = rng.pick(&[3u64, 10, 10, 13, 20, 60]);
                    if rng.chance(20) {
                        t += 50_000_000;
                    }
                }
                let port = rng.pick(&ports);
                t += wire_ps(&setup.timing, port, f.len()) * pace / 10;
                Received {
                    at: t,
                    port,
                    frame: f.clone(),
                    kind: "corpus",
                }
            })
            .collect();
        let case = Case {
            name: format!("corpus, seed {seed}"),
            setup,
            traffic,
            changes: Vec::new(),
        };
        let batched = [
            (Batching::Random(seed), true),
            (Batching::Fixed(256), true),
            (Batching::Fixed(7), false),
        ];
        check(&case, false, false, &batched);
    }
}
