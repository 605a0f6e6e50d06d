//! The reconciler against the simulated NIC: from empty, idempotence, random desired states,
//! NIC resets, drift reports, shadow deletion, and packets sent between the commands of an
//! apply seeing only old or new entries.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use proptest::prelude::*;
use shadownet_host::{
    driver::{Nic, PortConfig, sim::SimDevice},
    netdesc::Plan,
    reconcile::{
        Command, ReconcileError, Reconciler, Table, TableState, apply, apply_observed, diff,
        plan_batches, read_back,
    },
};
use shadownet_hw::{
    Port,
    layout::{
        Mac, PortRange, Prefix,
        acl::{AclAction, AclRule, Verdict},
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
use shadownet_sim::{Departure, NicModel, Sink};

fn nic() -> Nic<SimDevice> {
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    Nic::open(SimDevice::new(model)).expect("the simulated NIC opens")
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/two-tier.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).expect("examples/two-tier.toml")
}

fn compile(text: &str) -> Plan {
    Plan::from_str(text, Path::new("test.toml")).expect("the description compiles")
}

fn two_tier() -> Plan {
    compile(&example_text())
}

/// The example without its shadow: everything from `[[shadow]]` up to the first `[[acl]]`.
fn two_tier_without_shadow() -> Plan {
    let text = example_text();
    let start = text.find("[[shadow]]").expect("the example has a shadow");
    let end = start + text[start..].find("[[acl]]").expect("ACL rules follow");
    compile(&format!("{}{}", &text[..start], &text[end..]))
}

fn state(plan: &Plan) -> TableState {
    TableState::from_plan(plan).expect("a consistent plan")
}

/// Every occupied slot's key and value words, slot numbers left out for exact tables
/// (where the device's hashing, not the order of writes, decides them).
/// Rows of a table: slot (indexed tables only) and the key and value bytes.
type Rows = Vec<(Option<u32>, Vec<u8>)>;

fn raw_tables(nic: &mut Nic<SimDevice>) -> BTreeMap<TableId, Rows> {
    let mut out = BTreeMap::new();
    for t in TableId::ALL {
        let exact = matches!(t, TableId::Vni | TableId::Map | TableId::ShadowMap);
        let mut rows: Vec<_> = nic
            .dump(t)
            .expect("dump")
            .into_iter()
            .map(|e| {
                let mut bytes = e.key.to_vec();
                bytes.extend_from_slice(&e.value);
                ((!exact).then_some(e.index), bytes)
            })
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

fn sessions(nic: &mut Nic<SimDevice>) -> Vec<MirrorSession> {
    (0..64)
        .map(|s| nic.fetch_session(s).expect("fetch"))
        .collect()
}

#[test]
fn reconciling_an_empty_nic_gives_what_plan_apply_gives() {
    let plan = two_tier();
    let mut applied = nic();
    plan.apply(&mut applied, false).expect("Plan::apply");

    let mut reconciled = nic();
    let mut r = Reconciler::new();
    let report = r.reconcile(&mut reconciled, &plan).expect("reconcile");
    assert!(report.port_configured && report.enabled);
    assert_eq!(report.drift.added, state(&plan).len());
    assert_eq!(report.drift.changed + report.drift.removed, 0);

    assert_eq!(raw_tables(&mut reconciled), raw_tables(&mut applied));
    assert_eq!(sessions(&mut reconciled), sessions(&mut applied));
    assert_eq!(read_back(&mut reconciled).expect("read back"), state(&plan));
}

#[test]
fn a_second_reconcile_does_nothing() {
    let plan = two_tier();
    let mut nic = nic();
    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &plan).expect("first");
    let g = nic.generation();
    let again = r.reconcile(&mut nic, &plan).expect("second");
    assert_eq!(again.operations(), 0, "{again:?}");
    assert_eq!(again.drift.total(), 0);
    assert!(!again.reset_detected && !again.foreign_table_changes);
    assert_eq!(nic.generation(), g, "no table was written");
    assert!(r.drift(&mut nic, &plan).expect("drift").is_empty());
}

#[test]
fn a_nic_reset_is_noticed_and_everything_rebuilt() {
    let plan = two_tier();
    let mut nic = nic();
    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &plan).expect("first");
    let before = raw_tables(&mut nic);
    nic.reset().expect("reset");
    assert!(r.reset_since_last(&nic));
    assert_eq!(
        read_back(&mut nic).expect("read back"),
        TableState::default()
    );

    let report = r.reconcile(&mut nic, &plan).expect("after reset");
    assert!(report.reset_detected && report.port_configured && report.enabled);
    assert_eq!(report.drift.added, state(&plan).len());
    assert_eq!(raw_tables(&mut nic), before);
    assert!(!r.reset_since_last(&nic));
    // Forwarding is back on: a frame from the host's stack leaves on the uplink.
    let mut sink = Collect::default();
    {
        let mut model = nic.device().model();
        model.receive(Port::Pf, &[0u8; 60], 1_000_000, &mut sink);
        model.finish(&mut sink);
    }
    assert_eq!(sink.0.len(), 1);
    assert_eq!(sink.0[0].port, Port::Uplink);
}

#[test]
fn drift_names_exactly_the_entries_written_behind_the_reconcilers_back() {
    let plan = two_tier();
    let mut nic = nic();
    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &plan).expect("reconcile");

    let stray = MapKey {
        vni: 5001,
        ip: "192.168.10.99".parse().expect("literal"),
    };
    let value = MapValue {
        substrate_ip: "10.0.0.66".parse().expect("literal"),
        substrate_mac: Mac([2, 0, 0, 0, 0, 0x66]),
        local_vport: None,
        shadow: false,
    };
    nic.write_map(&stray, &value).expect("stray write");
    let (slot, rule) = plan.acl[0];
    let mut loosened = rule;
    loosened.action.verdict = Verdict::Allow;
    nic.write_acl(slot, &loosened).expect("tamper");

    let d = r.drift(&mut nic, &plan).expect("drift");
    assert_eq!(d.map.remove, vec![(stray, value)]);
    assert!(d.map.add.is_empty() && d.map.change.is_empty());
    assert_eq!(d.acl.change.len(), 1);
    assert_eq!(d.acl.change[0].key, slot);
    assert_eq!(d.acl.change[0].old, loosened);
    let total = d.total();
    assert_eq!((total.added, total.changed, total.removed), (0, 1, 1));

    let text = d.to_string();
    assert!(text.contains("map - vni 5001 192.168.10.99"), "{text}");
    assert!(
        text.contains(&format!("acl ~ slot {slot}: allow")),
        "{text}"
    );
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json[0]["table"], "map");
    assert_eq!(json[0]["removed"][0]["key"], "vni 5001 192.168.10.99");

    let report = r.reconcile(&mut nic, &plan).expect("repair");
    assert!(report.foreign_table_changes);
    assert_eq!(report.applied.commands, 2);
    assert_eq!(read_back(&mut nic).expect("read back"), state(&plan));
}

#[test]
fn deleting_a_shadow_leaves_its_tables_and_session_empty() {
    let with = two_tier();
    let without = two_tier_without_shadow();
    assert!(!with.shadow_map.is_empty() && !with.sessions.is_empty());
    let mut nic = nic();
    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &with).expect("with the shadow");
    let report = r.reconcile(&mut nic, &without).expect("without");
    assert!(report.drift.removed > 0);

    let actual = read_back(&mut nic).expect("read back");
    assert!(actual.shadow_map.is_empty());
    assert!(actual.mirror_filters.is_empty());
    assert!(actual.sessions.is_empty());
    assert!(!actual.vnis.contains_key(&9001), "the shadow VNI is gone");
    assert!(
        actual.map.keys().all(|k| k.vni != 9001),
        "no map entry of the shadow network is left"
    );
    assert!(!sessions(&mut nic)[1].enabled, "session 1 is disabled");
    for t in [TableId::ShadowMap, TableId::MirrorFilter] {
        assert_eq!(nic.occupancy(t), 0, "{t} is empty");
    }
    assert_eq!(actual, state(&without));
}

#[test]
fn conflicting_desired_entries_are_refused_before_anything_changes() {
    let mut plan = two_tier();
    let (k, mut v) = plan.map[0];
    v.substrate_mac = Mac([2, 0, 0, 0, 0, 0x77]);
    plan.map.push((k, v));
    let mut nic = nic();
    let g = nic.generation();
    let err = Reconciler::new()
        .reconcile(&mut nic, &plan)
        .expect_err("conflict");
    assert!(
        matches!(
            err,
            ReconcileError::Conflict {
                table: Table::Map,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("two entries"), "{err}");
    assert_eq!(nic.generation(), g);
}

#[test]
fn batches_put_restrictions_and_referenced_entries_first() {
    let plan = two_tier();
    let d = diff(&state(&plan), &TableState::default());
    let order: Vec<(Table, &str)> = plan_batches(&d)
        .iter()
        .map(|b| (b.table, b.stage))
        .collect();
    let pos = |stage: &str| {
        order
            .iter()
            .position(|(_, s)| *s == stage)
            .unwrap_or_else(|| panic!("no stage {stage} in {order:?}"))
    };
    assert!(pos("add virtual networks") < pos("add deny rules"));
    assert!(pos("add deny rules") < pos("bind VFs"));
    assert!(pos("bind VFs") < pos("add map entries"));
    assert!(pos("configure mirror sessions") < pos("add mirror filters"));
    assert!(pos("add shadow map entries") < pos("add mirror filters"));
    assert!(pos("add mirror skip rules") < pos("add mirror filters"));
    assert!(pos("add map entries") < pos("add allow rules"));

    let back = diff(&TableState::default(), &state(&plan));
    let order: Vec<&str> = plan_batches(&back).iter().map(|b| b.stage).collect();
    let pos = |stage: &str| order.iter().position(|s| *s == stage).expect("stage");
    assert!(pos("remove mirror filters") < pos("disable mirror sessions"));
    assert!(pos("remove allow rules") < pos("remove deny rules"));
    assert!(pos("remove map entries") < pos("unbind VFs"));
    assert!(pos("unbind VFs") < pos("remove deny rules"));
    assert!(pos("remove shadow map entries") < pos("remove virtual networks"));
}

// ---------------------------------------------------------------------------------------
// Packets between the commands of an apply.

#[derive(Default)]
struct Collect(Vec<Out>);

#[derive(Debug)]
struct Out {
    ingress_ps: u64,
    port: Port,
    copy: u8,
    bytes: Vec<u8>,
}

impl Sink for Collect {
    fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
        self.0.push(Out {
            ingress_ps: d.ingress_ps,
            port: d.frame.port(),
            copy: d.frame.copy(),
            bytes: bytes.to_vec(),
        });
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4 frame with a TCP or UDP header (checksum left 0, which UDP allows and
/// the NIC does not check for TCP) and 18 bytes of payload.
fn frame(src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, dport: u16) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 };
    let payload = 18;
    let total = 20 + l4_len + payload;
    let mut f = Vec::new();
    f.extend_from_slice(&[2, 0, 0, 0, 0x10, 0x21]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut l4 = vec![0u8; l4_len];
    l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        l4[12] = 5 << 4;
        l4[13] = 0x02;
    } else {
        l4[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    }
    f.extend_from_slice(&l4);
    f.extend_from_slice(&[0xAB; 18]);
    f
}

/// Outer destination MAC and IPv4 address of an encapsulated frame.
fn outer(bytes: &[u8]) -> ([u8; 6], Ipv4Addr) {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[0..6]);
    let ip = Ipv4Addr::new(bytes[30], bytes[31], bytes[32], bytes[33]);
    (mac, ip)
}

fn ipv4(s: &str) -> Ipv4Addr {
    s.parse().expect("literal")
}

#[test]
fn packets_between_commands_see_each_entry_old_or_new_never_half() {
    // Old: db1 on 10.0.0.2, its shadow on 10.0.0.3. New: db1 moved to 10.0.0.4, its shadow
    // to 10.0.0.5, a third VM web3 joins on a VF of its own (vf5: with the next free VF
    // the description would renumber the shadow node's VF), and SSH from VMs of the
    // network is denied: web3 must never get SSH out, whatever the step.
    let old_text = example_text();
    let mut new_text = old_text
        .replace("10.0.0.2\"", "10.0.0.4\"")
        .replace("02:00:00:00:00:02", "02:00:00:00:00:04")
        .replace("10.0.0.3\"", "10.0.0.5\"")
        .replace("02:00:00:00:00:03", "02:00:00:00:00:05");
    let web3 = "[[vm]]\nname = \"web3\"\nnetwork = \"shop\"\nip = \"192.168.10.13\"\n\
                mac = \"02:00:00:00:10:13\"\nhost = \"local\"\nvf = 5\n\n";
    let at = new_text.find("[[shadow]]").expect("shadow section");
    new_text.insert_str(at, web3);
    new_text.push_str(
        "\n[[acl]]\nnetwork = \"shop\"\ndirection = \"from_vm\"\nprotocol = \"tcp\"\n\
         dst_ports = \"22\"\naction = \"deny\"\npriority = 300\n",
    );
    let old = compile(&old_text);
    let new = compile(&new_text);
    let web1 = old.port_named("web1").expect("web1");
    let web3 = new.port_named("web3").expect("web3");

    let mut nic = nic();
    let mut r = Reconciler::new();
    r.reconcile(&mut nic, &old).expect("old state");
    let actual = read_back(&mut nic).expect("read back");
    let d = diff(&state(&new), &actual);
    let db1 = MapKey {
        vni: 5001,
        ip: "192.168.10.21".parse().expect("literal"),
    };
    assert!(d.map.change.iter().any(|c| c.key == db1), "{d}");
    assert!(
        d.shadow_map.change.iter().any(|c| c.key.ip == db1.ip),
        "{d}"
    );

    let to_db1 = frame(
        [2, 0, 0, 0, 0x10, 0x11],
        ipv4("192.168.10.11"),
        ipv4("192.168.10.21"),
        17,
        5000,
    );
    let ssh_from_web3 = frame(
        [2, 0, 0, 0, 0x10, 0x13],
        ipv4("192.168.10.13"),
        ipv4("192.168.10.21"),
        6,
        22,
    );
    let mut sink = Collect::default();
    let mut now = 0u64;
    let mut probes = Vec::new();
    let mut commands = Vec::new();
    let mut send = |nic: &mut Nic<SimDevice>, c: Option<&Command>, sink: &mut Collect| {
        let mut model = nic.device().model();
        now += 10_000_000;
        model.receive(web1, &to_db1, now, sink);
        probes.push((now, true));
        now += 10_000_000;
        model.receive(web3, &ssh_from_web3, now, sink);
        probes.push((now, false));
        commands.extend(c.copied());
    };
    send(&mut nic, None, &mut sink);
    let report =
        apply_observed(&mut nic, &d, &mut |nic, c| send(nic, Some(c), &mut sink)).expect("apply");
    nic.device().model().finish(&mut sink);
    assert_eq!(commands.len(), report.commands);
    assert!(commands.len() > 5, "the diff takes several commands");

    let prod = [
        ([2, 0, 0, 0, 0, 2], ipv4("10.0.0.2")),
        ([2, 0, 0, 0, 0, 4], ipv4("10.0.0.4")),
    ];
    let shadow = [
        ([2, 0, 0, 0, 0, 3], ipv4("10.0.0.3")),
        ([2, 0, 0, 0, 0, 5], ipv4("10.0.0.5")),
    ];
    let mut seen_new = (false, false);
    for (at, to_db1) in probes {
        let outs: Vec<&Out> = sink.0.iter().filter(|o| o.ingress_ps == at).collect();
        if !to_db1 {
            assert!(
                outs.iter().all(|o| o.copy != 0),
                "SSH from web3 was forwarded at some step: {outs:?}"
            );
            continue;
        }
        let production: Vec<_> = outs.iter().filter(|o| o.copy == 0).collect();
        assert_eq!(
            production.len(),
            1,
            "one production frame per packet: {outs:?}"
        );
        assert_eq!(production[0].port, Port::Uplink);
        let o = outer(&production[0].bytes);
        assert!(
            prod.contains(&o),
            "production frame to a mix of old and new: {o:?}"
        );
        seen_new.0 |= o == prod[1];
        let copies: Vec<_> = outs.iter().filter(|o| o.copy != 0).collect();
        assert_eq!(copies.len(), 1, "one copy per packet: {outs:?}");
        let o = outer(&copies[0].bytes);
        assert!(shadow.contains(&o), "copy to a mix of old and new: {o:?}");
        seen_new.1 |= o == shadow[1];
    }
    assert_eq!(seen_new, (true, true), "the new entries were reached");
    assert_eq!(read_back(&mut nic).expect("read back"), state(&new));
}

// ---------------------------------------------------------------------------------------
// Random desired states.

fn vni_entry(shadow_of: Option<u32>, deny: bool) -> VniEntry {
    VniEntry {
        shadow: shadow_of.is_some(),
        miss_to_host: shadow_of.is_none(),
        default_deny_to_vm: deny,
        default_deny_from_vm: false,
        production_vni: shadow_of,
    }
}

const VNIS: [(u32, Option<u32>); 3] = [(5001, None), (5002, None), (9001, Some(5001))];

fn host(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// One VM slot: present or not, and which of two placements.
#[derive(Clone, Debug)]
struct Desired {
    vnis: Vec<(usize, bool)>,
    vms: Vec<(u8, u8, bool)>,
    shadows: Vec<(u8, u8)>,
    sessions: Vec<(u16, bool)>,
    acl: Vec<(u32, u8, bool)>,
    filters: Vec<(u32, u16, bool)>,
}

fn desired() -> impl Strategy<Value = Desired> {
    (
        prop::collection::vec((0usize..3, any::<bool>()), 0..3),
        prop::collection::vec((0u8..24, 0u8..3, any::<bool>()), 0..16),
        prop::collection::vec((0u8..24, 0u8..2), 0..8),
        prop::collection::vec((0u16..4, any::<bool>()), 0..3),
        prop::collection::vec((0u32..24, 0u8..3, any::<bool>()), 0..8),
        prop::collection::vec((0u32..24, 0u16..4, any::<bool>()), 0..6),
    )
        .prop_map(|(vnis, vms, shadows, sessions, acl, filters)| Desired {
            vnis,
            vms,
            shadows,
            sessions,
            acl,
            filters,
        })
}

/// A plan from random choices; later choices for the same key win, so the plan is
/// consistent.
fn plan_of(d: &Desired) -> Plan {
    let mut p = Plan {
        port: PortConfig {
            local_mac: Mac([2, 0, 0, 0, 0, 1]),
            local_ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ..PortConfig::default()
        },
        ..Plan::default()
    };
    let mut vnis = BTreeMap::new();
    for &(i, deny) in &d.vnis {
        let (v, of) = VNIS[i];
        vnis.insert(v, vni_entry(of, deny));
    }
    let mut vports = BTreeMap::new();
    let mut map = BTreeMap::new();
    for &(vm, placement, local) in &d.vms {
        let vni = 5001 + u32::from(vm % 2);
        let key = MapKey {
            vni,
            ip: IpAddr::V4(Ipv4Addr::new(192, 168, 10, vm)),
        };
        let port = u16::from(vm);
        map.insert(
            key,
            MapValue {
                substrate_ip: host(2 + placement),
                substrate_mac: Mac([2, 0, 0, 0, 0, 2 + placement]),
                local_vport: local.then_some(port),
                shadow: false,
            },
        );
        if local {
            vports.insert(
                port,
                VportEntry {
                    vni,
                    mac: Mac([2, 0, 0, 0, 0x10, vm]),
                    enabled: true,
                },
            );
        }
    }
    let mut shadow_map = BTreeMap::new();
    for &(vm, placement) in &d.shadows {
        shadow_map.insert(
            ShadowMapKey {
                session: 1,
                vni: 5001,
                ip: IpAddr::V4(Ipv4Addr::new(192, 168, 10, vm)),
            },
            ShadowMapValue {
                substrate_ip: host(30 + placement),
                substrate_mac: Mac([2, 0, 0, 0, 0, 30 + placement]),
                shadow_vni: 9001,
            },
        );
    }
    let mut sessions = BTreeMap::new();
    for &(s, geneve) in &d.sessions {
        sessions.insert(
            s,
            MirrorSession {
                enabled: true,
                encap: if geneve { Encap::Geneve } else { Encap::Vxlan },
                mode: Mode::Mirror,
                shadow_vni: 9001,
                collector_ip: host(50),
                collector_mac: Mac([2, 0, 0, 0, 0, 50]),
                policer_mbps: 0,
                policer_burst: 0,
            },
        );
    }
    let mut acl = BTreeMap::new();
    for &(slot, port, deny) in &d.acl {
        acl.insert(
            slot,
            AclRule {
                matches: RuleMatch {
                    scope: Some(5001),
                    direction: DirectionMatch::ToVm,
                    protocol: Some(6),
                    dst: Some(
                        Prefix::new(IpAddr::V4(Ipv4Addr::new(192, 168, 10, 0)), 24)
                            .expect("prefix"),
                    ),
                    dport: PortRange::new(22 + u16::from(port), 22 + u16::from(port))
                        .expect("range"),
                    ..RuleMatch::ANY
                },
                action: AclAction {
                    priority: 100 + slot as u16,
                    verdict: if deny { Verdict::Deny } else { Verdict::Allow },
                    rule_id: slot,
                },
            },
        );
    }
    let mut filters = BTreeMap::new();
    for &(slot, session, skip) in &d.filters {
        filters.insert(
            slot,
            MirrorFilter {
                matches: RuleMatch {
                    scope: Some(slot % 8),
                    ..RuleMatch::ANY
                },
                action: MirrorAction {
                    priority: 10,
                    verdict: if skip {
                        MirrorVerdict::DoNotMirror
                    } else {
                        MirrorVerdict::Mirror
                    },
                    rule_id: slot,
                    session,
                    truncate: None,
                    sample_one_in: 1,
                },
            },
        );
    }
    p.vnis = vnis.into_iter().collect();
    p.vports = vports.into_iter().collect();
    p.map = map.into_iter().collect();
    p.shadow_map = shadow_map.into_iter().collect();
    p.sessions = sessions.into_iter().collect();
    p.acl = acl.into_iter().collect();
    p.mirror_filters = filters.into_iter().collect();
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn after_reconcile_the_nic_holds_exactly_the_desired_state(
        steps in prop::collection::vec(desired(), 1..4)
    ) {
        let mut nic = nic();
        let mut r = Reconciler::new();
        for step in &steps {
            let plan = plan_of(step);
            r.reconcile(&mut nic, &plan).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = read_back(&mut nic).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&actual, &state(&plan));
            let again = diff(&state(&plan), &actual);
            prop_assert!(again.is_empty(), "{}", again);
            // A plain apply of an empty diff issues nothing.
            let none = apply(&mut nic, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(none.commands, 0);
        }
    }
}
