use std::path::Path;

use shadownet_hw::{
    Port,
    layout::rule::{DirectionMatch, RuleMatch},
    timing::Timing,
};
use shadownet_sim::{Departure, NicModel, Sink, datapath::Queue};

use super::*;
use crate::{
    driver::{Nic, sim::SimDevice},
    model::{
        BlockRule, MirrorRule, NextHop, Route,
        fixtures::{mirror_rule, port, rule, shop, shop_shadow},
    },
};

const EXAMPLE: &str = include_str!("../../../../examples/two-tier.toml");

fn state<'a>(networks: &'a [Network], shadows: &'a [(Shadow, Network)]) -> TenantState<'a> {
    TenantState {
        tenant: "acme",
        networks: networks.iter().collect(),
        shadows: shadows.iter().map(|(s, n)| (s, n)).collect(),
        blocks: vec![],
    }
}

fn compile_shop(
    networks: &[Network],
    shadows: &[(Shadow, Network)],
    slots: &mut SlotAllocator,
) -> Result<Compiled, CompileError> {
    compile(&port(), &[state(networks, shadows)], slots)
}

/// The tables of a plan in a canonical order, ACL and mirror-filter slots and rule ids left
/// out (netdesc numbers rules by line).
fn tables(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |kind: &str, mut v: Vec<String>| {
        v.sort();
        out.extend(v.into_iter().map(|x| format!("{kind} {x}")));
    };
    add("vni", plan.vnis.iter().map(|x| format!("{x:?}")).collect());
    add(
        "vport",
        plan.vports.iter().map(|x| format!("{x:?}")).collect(),
    );
    add("map", plan.map.iter().map(|x| format!("{x:?}")).collect());
    add(
        "shadow_map",
        plan.shadow_map.iter().map(|x| format!("{x:?}")).collect(),
    );
    add(
        "session",
        plan.sessions.iter().map(|x| format!("{x:?}")).collect(),
    );
    add(
        "acl",
        plan.acl
            .iter()
            .map(|(_, r)| {
                let mut r = *r;
                r.action.rule_id = 0;
                format!("{r:?}")
            })
            .collect(),
    );
    add(
        "mirror",
        plan.mirror_filters
            .iter()
            .map(|(_, f)| {
                let mut f = *f;
                f.action.rule_id = 0;
                format!("{f:?}")
            })
            .collect(),
    );
    out
}

#[test]
fn the_two_tier_model_compiles_to_the_tables_of_the_example() {
    let expected =
        Plan::from_str(EXAMPLE, Path::new("two-tier.toml")).expect("the example is valid");
    let networks = [shop()];
    let shadows = [(shop_shadow(), shop())];
    let compiled = compile_shop(&networks, &shadows, &mut SlotAllocator::default()).expect("valid");
    assert_eq!(tables(&compiled.plan), tables(&expected));
    assert_eq!(compiled.plan.port, expected.port);
    // 2 VNIs, 3 VF bindings, 5 map entries, 2 shadow-map entries, 2 ACL rules, 3 filters.
    assert_eq!(compiled.entries_by_tenant.get("acme"), Some(&17));
    // Every rule has an id naming it.
    let names: BTreeSet<&str> = compiled.rule_ids.values().map(String::as_str).collect();
    assert!(
        names.contains("acme/shop/security_groups/default/rules/1"),
        "{names:?}"
    );
    assert!(
        names.contains("acme/shadows/shop-shadow/policy/rules/2"),
        "{names:?}"
    );
    for (_, r) in &compiled.plan.acl {
        assert!(compiled.rule_ids.contains_key(&r.action.rule_id));
    }
    assert_eq!(
        compiled
            .plan
            .local_ports
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["acme/shop/web1", "acme/shop/web2", "acme/shop-shadow/web2"]
    );
}

#[test]
fn the_shadow_is_isolated() {
    let networks = [shop()];
    let mut shadow = shop_shadow();
    shadow.spec.analysis_nodes[0].ip = Some("192.168.10.99".into());
    let shadows = [(shadow, shop())];
    let plan = compile_shop(&networks, &shadows, &mut SlotAllocator::default())
        .expect("valid")
        .plan;
    let shadow_vports: Vec<u16> = plan
        .vports
        .iter()
        .filter(|(_, v)| v.vni == 9001)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(shadow_vports, [2]);
    // Everything in the shadow VNI is a shadow endpoint: replicas and the analysis node.
    let in_shadow: Vec<_> = plan.map.iter().filter(|(k, _)| k.vni == 9001).collect();
    assert_eq!(in_shadow.len(), 3);
    for (k, v) in &in_shadow {
        assert!(v.shadow, "{k:?}");
        assert!(
            v.local_vport.is_none_or(|p| shadow_vports.contains(&p)),
            "{k:?} maps to a production VF"
        );
    }
    // No production entry points into the shadow.
    for (k, v) in plan.map.iter().filter(|(k, _)| k.vni == 5001) {
        assert!(
            !v.shadow && v.local_vport.is_none_or(|p| !shadow_vports.contains(&p)),
            "{k:?}"
        );
    }
    let vni = plan
        .vnis
        .iter()
        .find(|(v, _)| *v == 9001)
        .map(|(_, e)| *e)
        .expect("shadow VNI");
    assert!(vni.shadow && !vni.miss_to_host && vni.production_vni == Some(5001));
}

#[test]
fn security_groups_scope_rules_to_local_members() {
    let mut n = shop();
    // web1 alone in "web": a rule per local member, scoped by its address.
    n.security_groups.push(crate::model::SecurityGroup {
        name: "web".into(),
        rules: vec![
            rule(
                RuleDirection::ToNode,
                "tcp",
                Some("10.0.0.0/8"),
                "443",
                RuleAction::Allow,
                100,
            ),
            rule(
                RuleDirection::FromNode,
                "udp",
                None,
                "53",
                RuleAction::Deny,
                100,
            ),
        ],
    });
    n.nodes[0].security_groups.push("web".into());
    // A group of the remote node only: enforced by its own host's NIC.
    n.security_groups.push(crate::model::SecurityGroup {
        name: "db".into(),
        rules: vec![rule(
            RuleDirection::ToNode,
            "tcp",
            None,
            "5432",
            RuleAction::Allow,
            100,
        )],
    });
    n.nodes[2].security_groups.push("db".into());
    // A blackhole route for the subnet every node is in.
    n.route_tables[0].routes.push(Route {
        prefix: "10.66.0.0/16".into(),
        next_hop: NextHop::Drop,
    });
    let plan = compile_shop(&[n], &[], &mut SlotAllocator::default())
        .expect("valid")
        .plan;
    let web1 = Prefix::host("192.168.10.11".parse().expect("ip"));
    let to = plan
        .acl
        .iter()
        .find(|(_, r)| r.matches.dport.lo == 443)
        .expect("443 rule")
        .1;
    assert_eq!(
        (to.matches.direction, to.matches.dst, to.matches.src),
        (
            DirectionMatch::ToVm,
            Some(web1),
            Some("10.0.0.0/8".parse().expect("prefix"))
        )
    );
    let from = plan
        .acl
        .iter()
        .find(|(_, r)| r.matches.dport.lo == 53)
        .expect("53 rule")
        .1;
    assert_eq!(
        (from.matches.direction, from.matches.src, from.matches.dst),
        (DirectionMatch::FromVm, Some(web1), None)
    );
    assert!(!plan.acl.iter().any(|(_, r)| r.matches.dport.lo == 5432));
    let drop = plan
        .acl
        .iter()
        .find(|(_, r)| r.action.priority == u16::MAX)
        .expect("drop route")
        .1;
    assert_eq!(drop.action.verdict, Verdict::Deny);
    assert_eq!(
        (drop.matches.direction, drop.matches.src, drop.matches.dst),
        (
            DirectionMatch::FromVm,
            None,
            Some("10.66.0.0/16".parse().expect("prefix"))
        )
    );
    assert_eq!(drop.matches.scope, Some(5001));
    assert_eq!(plan.acl.len(), 5);
}

#[test]
fn slots_are_stable_and_reused() {
    let mut slots = SlotAllocator::default();
    let networks = [shop()];
    let shadows = [(shop_shadow(), shop())];
    let first = compile_shop(&networks, &shadows, &mut slots)
        .expect("valid")
        .plan;
    let slot_of = |plan: &Plan, port: u16| -> Vec<u32> {
        plan.mirror_filters
            .iter()
            .filter(|(_, f)| f.matches.scope == Some(port as u32))
            .map(|(s, _)| *s)
            .collect()
    };
    // A new rule first in the policy: the others keep their slots and ids.
    let mut more = shop_shadow();
    more.spec.policy.rules.insert(
        0,
        MirrorRule {
            protocol: Some("icmp".into()),
            ..mirror_rule("web2")
        },
    );
    let shadows2 = [(more, shop())];
    let second = compile_shop(&networks, &shadows2, &mut slots)
        .expect("valid")
        .plan;
    for (s, f) in &first.mirror_filters {
        assert!(
            second.mirror_filters.contains(&(*s, *f)),
            "filter {s} moved or changed"
        );
    }
    assert_eq!(second.mirror_filters.len(), first.mirror_filters.len() + 1);
    let new_slot = second
        .mirror_filters
        .iter()
        .find(|(_, f)| f.matches.protocol == Some(1))
        .expect("icmp")
        .0;
    assert_eq!(new_slot, 3);
    for (s, r) in &first.acl {
        assert!(second.acl.contains(&(*s, *r)));
    }
    // Removing web1's rules frees their slots; the next new rule reuses the lowest.
    let mut fewer = shop_shadow();
    fewer
        .spec
        .policy
        .rules
        .retain(|r| r.node.as_deref() != Some("web1"));
    let shadows3 = [(fewer, shop())];
    let third = compile_shop(&networks, &shadows3, &mut slots)
        .expect("valid")
        .plan;
    assert_eq!(slot_of(&third, 1), slot_of(&first, 1));
    assert_eq!(third.mirror_filters.len(), 1);
    assert_eq!(slots.mirror_slots().len(), 1);
    let mut again = shop_shadow();
    again.spec.policy.rules = vec![
        again.spec.policy.rules[2].clone(),
        MirrorRule {
            protocol: Some("tcp".into()),
            ..mirror_rule("web1")
        },
    ];
    let shadows4 = [(again, shop())];
    let fourth = compile_shop(&networks, &shadows4, &mut slots)
        .expect("valid")
        .plan;
    let web1_slot = slot_of(&fourth, 0);
    assert_eq!(web1_slot, [0]);
    // The allocator survives a round trip through JSON, as the daemon keeps it.
    let json = serde_json::to_string(&slots).expect("serializes");
    let back: SlotAllocator = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, slots);
}

#[test]
fn clashes_and_capacity() {
    // Two networks of two tenants with one VNI.
    let a = [shop()];
    let mut other = shop();
    other.name = "blog".into();
    for n in &mut other.nodes {
        n.vf = n.vf.map(|v| v + 10);
    }
    let b = [other.clone()];
    let err = compile(
        &port(),
        &[
            state(&a, &[]),
            TenantState {
                tenant: "beta",
                networks: b.iter().collect(),
                shadows: vec![],
                blocks: vec![],
            },
        ],
        &mut SlotAllocator::default(),
    )
    .expect_err("VNI clash");
    assert!(
        matches!(&err, CompileError::VniClash { vni: 5001, first, second } if first == "acme/networks/shop" && second == "beta/networks/blog"),
        "{err}"
    );
    // A shadow on a production VNI.
    let mut s = shop_shadow();
    s.vni = 5001;
    let err = compile_shop(&a, &[(s, shop())], &mut SlotAllocator::default()).expect_err("clash");
    assert!(
        matches!(err, CompileError::VniClash { vni: 5001, .. }),
        "{err}"
    );
    // Two nodes on one VF.
    other.vni = 5002;
    other.nodes[0].vf = Some(1);
    let b = [other];
    let err = compile(
        &port(),
        &[
            state(&a, &[]),
            TenantState {
                tenant: "beta",
                networks: b.iter().collect(),
                shadows: vec![],
                blocks: vec![],
            },
        ],
        &mut SlotAllocator::default(),
    )
    .expect_err("VF clash");
    assert!(
        matches!(&err, CompileError::VfClash { vf: 1, first, second } if first == "acme/shop/web2" && second == "beta/blog/web1"),
        "{err}"
    );
    // A local node without a VF.
    let mut n = shop();
    n.nodes[0].vf = None;
    let err = compile_shop(&[n.clone()], &[], &mut SlotAllocator::default()).expect_err("no VF");
    assert!(
        matches!(&err, CompileError::VfMissing { who } if who == "acme/shop/web1"),
        "{err}"
    );
    // assign_vfs gives it the lowest free one (vf1 is web2's).
    let mut nets = [("acme", &mut n)];
    let assigned = assign_vfs(&port(), &mut nets, &mut []).expect("a VF is free");
    assert_eq!(assigned, [("acme/shop/web1".to_string(), 0)]);
    // More mirror filters than the table holds.
    let mut s = shop_shadow();
    s.spec.policy.rules = (0..=TableId::MirrorFilter.capacity())
        .map(|p| MirrorRule {
            protocol: Some("tcp".into()),
            dst_ports: Some(p.to_string()),
            ..mirror_rule("web1")
        })
        .collect();
    let mut slots = SlotAllocator::default();
    let err = compile_shop(&a, &[(s, shop())], &mut slots).expect_err("too many");
    assert!(
        matches!(&err, CompileError::Capacity { table, needed: 4097, capacity: 4096 } if table == "mirror_filter"),
        "{err}"
    );
    assert_eq!(
        slots,
        SlotAllocator::default(),
        "a failed compile changes no slot"
    );
}

#[test]
fn invalid_documents_are_reported_with_their_place() {
    let mut n = shop();
    n.nodes[2].ip = "10.0.0.300".into();
    let mut s = shop_shadow();
    s.spec.ttl_s = 0;
    s.replicas[0].node = "web9".into();
    let err =
        compile_shop(&[n.clone()], &[(s, n)], &mut SlotAllocator::default()).expect_err("invalid");
    let CompileError::Invalid(es) = err else {
        panic!("{err}")
    };
    let paths: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"acme/networks/shop/nodes/2/ip"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"acme/shadows/shop-shadow/spec/ttl_s"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"acme/shadows/shop-shadow/replicas/0/node"),
        "{paths:?}"
    );
}

#[derive(Default)]
struct Collect(Vec<(Port, bool, Vec<u8>)>);

impl Sink for Collect {
    fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
        self.0.push((
            d.frame.port(),
            d.frame.queue() == Queue::Mirror,
            bytes.to_vec(),
        ));
    }
}

/// An IPv4 header without options, with its checksum, for `total` bytes of packet.
fn ipv4_header(protocol: u8, src: [u8; 4], dst: [u8; 4], total: usize) -> Vec<u8> {
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        protocol,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !((sum & 0xFFFF) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

/// Ethernet + IPv4 + TCP or UDP with a few bytes of payload.
fn frame(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], protocol: u8, dport: u16) -> Vec<u8> {
    let l4_len = if protocol == 6 { 20 } else { 8 };
    let payload = [0xABu8; 16];
    let total = 20 + l4_len + payload.len();
    let mut f = Vec::new();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0xFE]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ipv4_header(protocol, src, dst, total));
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    if protocol == 6 {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(&payload);
    f
}

/// Outer IPv4 destination and UDP destination port of a tunnelled frame.
fn outer(bytes: &[u8]) -> ([u8; 4], u16) {
    (
        [bytes[30], bytes[31], bytes[32], bytes[33]],
        u16::from_be_bytes([bytes[36], bytes[37]]),
    )
}

#[test]
fn a_compiled_plan_mirrors_per_the_policy_in_the_simulated_nic() {
    let networks = [shop()];
    let shadows = [(shop_shadow(), shop())];
    let plan = compile_shop(&networks, &shadows, &mut SlotAllocator::default())
        .expect("valid")
        .plan;
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    let mut nic = Nic::open(SimDevice::new(model)).expect("the simulated NIC opens");
    plan.apply(&mut nic, false).expect("programmed");
    let web1_mac = [2, 0, 0, 0, 0x10, 0x11];
    let mut now = 0u64;
    let mut send = |port: Port, f: &[u8]| {
        now += 1_000_000;
        let mut sink = Collect::default();
        let mut model = nic.device().model();
        model.receive(port, f, now, &mut sink);
        model.finish(&mut sink);
        sink.0
    };
    // web1 -> db1 HTTPS: production to db1's host in VXLAN, a Geneve copy to db1's replica.
    let out = send(
        Port::Vport(0),
        &frame(web1_mac, [192, 168, 10, 11], [192, 168, 10, 21], 6, 443),
    );
    let production: Vec<_> = out.iter().filter(|(_, m, _)| !m).collect();
    let copies: Vec<_> = out.iter().filter(|(_, m, _)| *m).collect();
    assert_eq!(production.len(), 1, "{out:?}");
    assert_eq!(
        (production[0].0, outer(&production[0].2)),
        (Port::Uplink, ([10, 0, 0, 2], 4789))
    );
    assert_eq!(copies.len(), 1, "{out:?}");
    assert_eq!(
        (copies[0].0, outer(&copies[0].2)),
        (Port::Uplink, ([10, 0, 0, 3], 6081))
    );
    // web1 -> db1 DNS: the skip rule (priority 200) wins, no copy.
    let out = send(
        Port::Vport(0),
        &frame(web1_mac, [192, 168, 10, 11], [192, 168, 10, 21], 17, 53),
    );
    assert_eq!(out.iter().filter(|(_, m, _)| *m).count(), 0, "{out:?}");
    assert_eq!(out.iter().filter(|(_, m, _)| !m).count(), 1, "{out:?}");
}

fn rate_limit(id: &str, dst: &str, ports: &str, pps: u32, burst: u32) -> Mitigation {
    Mitigation {
        id: id.into(),
        network: "shop".into(),
        shadow: None,
        incident: None,
        rule: BlockRule {
            src: "0.0.0.0/0".into(),
            protocol: Some("tcp".into()),
            dst_ports: Some(ports.into()),
            dst: Some(dst.into()),
            connections_only: true,
            rate_limit: Some(crate::model::RateLimit {
                pps,
                burst: Some(burst),
            }),
        },
        state: super::super::MitigationState::Active,
        origin: "test".into(),
        reason: String::new(),
        ttl_s: 60,
        created_at_ms: 0,
        committed_at_ms: None,
        expires_at_ms: None,
        last_trial: None,
    }
}

fn compile_with(networks: &[Network], blocks: &[Mitigation]) -> Result<Compiled, CompileError> {
    let mut ts = state(networks, &[]);
    ts.blocks = blocks.iter().collect();
    compile(&port(), &[ts], &mut SlotAllocator::default())
}

/// `frame` as a TCP connection attempt (SYN, no ACK), in VXLAN from db1's host (10.0.0.2)
/// to this NIC in shop's VNI: traffic toward a local VM from outside.
fn syn_from_fabric(src: [u8; 4], dst: [u8; 4], dport: u16, dst_mac: [u8; 6]) -> Vec<u8> {
    let mut inner = frame([2, 0, 0, 0, 0, 0x99], src, dst, 6, dport);
    inner[0..6].copy_from_slice(&dst_mac);
    inner[14 + 20 + 13] = 0x02;
    let udp_len = 8 + 8 + inner.len();
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&ipv4_header(17, [10, 0, 0, 2], [10, 0, 0, 1], 20 + udp_len));
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0]);
    f.extend_from_slice(&(5001u32 << 8).to_be_bytes());
    f.extend_from_slice(&inner);
    f
}

#[test]
fn a_rate_limit_polices_only_what_the_networks_rules_let_through() {
    // ssh to web1: shop denies it (priority 100) but from 10.9.0.0/16 (allow, 200); https is
    // allowed by the network's default.
    let networks = [shop()];
    let limits = [
        rate_limit("m-1", "192.168.10.11", "22", 5, 2),
        rate_limit("m-2", "192.168.10.11", "443", 5, 3),
    ];
    let plan = compile_with(&networks, &limits).expect("valid").plan;
    let policed: Vec<_> = plan
        .acl
        .iter()
        .filter(|(_, r)| matches!(r.action.verdict, Verdict::Police { .. }))
        .map(|(_, r)| r)
        .collect();
    // ssh: a twin of the 10.9/16 allow one priority above it, and one of the default at 0;
    // https: only the default's (no rule of shop names 443).
    assert_eq!(policed.len(), 3, "{policed:#?}");
    let ssh_allow = policed
        .iter()
        .find(|r| r.action.priority == 201)
        .expect("the allow's twin");
    assert_eq!(
        ssh_allow.matches.src,
        Some("10.9.0.0/16".parse().expect("prefix"))
    );
    assert_eq!(
        ssh_allow.matches.dst,
        Some("192.168.10.11/32".parse().expect("prefix"))
    );
    assert!(ssh_allow.matches.tcp_syn);
    assert_eq!(ssh_allow.matches.direction, DirectionMatch::ToVm);
    assert_eq!(
        policed.iter().filter(|r| r.action.priority == 0).count(),
        2,
        "{policed:#?}"
    );

    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    let mut nic = Nic::open(SimDevice::new(model)).expect("the simulated NIC opens");
    plan.apply(&mut nic, false).expect("programmed");
    let web1_mac = [2, 0, 0, 0, 0x10, 0x11];
    let mut now = 0u64;
    let mut delivered = |src: [u8; 4], dport: u16, n: usize| {
        let mut got = 0;
        for _ in 0..n {
            // 10 microseconds apart: far faster than 5 a second, so only the burst passes.
            now += 10_000_000;
            let mut sink = Collect::default();
            let mut model = nic.device().model();
            model.receive(
                Port::Uplink,
                &syn_from_fabric(src, [192, 168, 10, 11], dport, web1_mac),
                now,
                &mut sink,
            );
            model.finish(&mut sink);
            got += sink
                .0
                .iter()
                .filter(|(p, m, _)| *p == Port::Vport(0) && !m)
                .count();
        }
        got
    };
    // Allowed ssh is policed to its burst; ssh the network denies stays denied (a rate
    // limit placed above every rule would have let its burst through).
    assert_eq!(delivered([10, 9, 1, 1], 22, 10), 2);
    assert_eq!(delivered([203, 0, 113, 9], 22, 10), 0);
    // https from anywhere: policed to its own burst.
    assert_eq!(delivered([203, 0, 113, 9], 443, 10), 3);
    // Other ports are untouched.
    assert_eq!(delivered([203, 0, 113, 9], 80, 10), 10);
}

#[test]
fn a_rate_limit_that_would_tie_with_a_deny_is_refused_naming_it() {
    let mut n = shop();
    // A deny at 201 overlapping the 10.9/16 allow's twin: which wins would depend on slots.
    n.security_groups[0].rules.push(rule(
        RuleDirection::ToNode,
        "tcp",
        Some("10.9.5.0/24"),
        "22",
        RuleAction::Deny,
        201,
    ));
    let err =
        compile_with(&[n], &[rate_limit("m-1", "192.168.10.11", "22", 5, 2)]).expect_err("refused");
    let CompileError::Invalid(es) = err else {
        panic!("{err}")
    };
    assert_eq!(es.len(), 1, "{es:?}");
    assert_eq!(es[0].path, "acme/shop/mitigations/m-1");
    assert!(
        es[0].message.contains("security_groups/default/rules/2"),
        "{es:?}"
    );
}

#[test]
fn rule_matches_intersect_field_by_field() {
    use crate::entries::intersect_matches;
    let p = |s: &str| Some(s.parse::<Prefix>().expect("prefix"));
    let a = RuleMatch {
        scope: Some(7),
        direction: DirectionMatch::Both,
        protocol: Some(6),
        src: p("10.0.0.0/8"),
        dport: shadownet_hw::layout::PortRange { lo: 20, hi: 30 },
        ..RuleMatch::ANY
    };
    let b = RuleMatch {
        scope: Some(7),
        direction: DirectionMatch::ToVm,
        src: p("10.1.0.0/16"),
        dst: p("192.168.1.1/32"),
        dport: shadownet_hw::layout::PortRange { lo: 25, hi: 80 },
        tcp_syn: true,
        protocol: Some(6),
        ..RuleMatch::ANY
    };
    let both = intersect_matches(&a, &b).expect("overlap");
    assert_eq!(both.scope, Some(7));
    assert_eq!(both.direction, DirectionMatch::ToVm);
    assert_eq!(both.src, p("10.1.0.0/16"));
    assert_eq!(both.dst, p("192.168.1.1/32"));
    assert_eq!(
        both.dport,
        shadownet_hw::layout::PortRange { lo: 25, hi: 30 }
    );
    assert!(both.tcp_syn);
    assert_eq!(intersect_matches(&b, &a), Some(both));
    // Disjoint in any one field: nothing in common.
    for other in [
        RuleMatch {
            scope: Some(8),
            ..a
        },
        RuleMatch {
            direction: DirectionMatch::FromVm,
            ..a
        },
        RuleMatch {
            src: p("11.0.0.0/8"),
            ..a
        },
        RuleMatch {
            dport: shadownet_hw::layout::PortRange { lo: 81, hi: 90 },
            ..a
        },
        RuleMatch {
            protocol: Some(17),
            ..a
        },
        RuleMatch {
            src: p("2001:db8::/32"),
            ..a
        },
    ] {
        assert_eq!(intersect_matches(&other, &b), None, "{other:?}");
    }
}
