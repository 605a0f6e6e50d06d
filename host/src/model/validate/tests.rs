use super::*;
use crate::model::{
    AnalysisNode, Dhcp, Endpoint, HoneypotService, NextHop, Route, RuleAction, RuleDirection,
    Subnet,
    fixtures::{mirror_rule, rule, shop, shop_shadow},
};

fn errors(n: &Network) -> Vec<FieldError> {
    validate_network(n).expect_err("the network has a problem")
}

/// Asserts a problem at exactly `path` whose message contains `text`.
#[track_caller]
fn has(errors: &[FieldError], path: &str, text: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(text)),
        "no problem at {path} mentioning {text:?} in {errors:#?}"
    );
}

#[track_caller]
fn network_error(change: impl FnOnce(&mut Network), path: &str, text: &str) {
    let mut n = shop();
    change(&mut n);
    let es = errors(&n);
    has(&es, path, text);
}

#[test]
fn the_fixtures_are_valid() {
    assert_eq!(validate_network(&shop()), Ok(()));
    assert_eq!(validate_shadow_spec(&shop_shadow().spec, &shop()), Ok(()));
}

#[test]
fn names() {
    assert_eq!(validate_name("network", "web-1"), Ok(()));
    for (name, text) in [
        ("", "is empty"),
        ("Web_1", "has 'W'"),
        ("-web", "starts or ends with '-'"),
        ("web-", "starts or ends with '-'"),
        (&"a".repeat(64), "64 characters"),
    ] {
        let e = validate_name("network", name).expect_err(name);
        assert_eq!(e.path, "name");
        assert!(
            e.message.contains(text) && e.message.contains(&format!("'{name}'")),
            "{e:?}"
        );
    }
    network_error(
        |n| n.nodes[1].name = "Web 2".into(),
        "nodes/1/name",
        "node name 'Web 2'",
    );
    let t = Tenant {
        name: "ACME".into(),
        description: String::new(),
        limits: Default::default(),
    };
    has(
        &validate_tenant(&t).expect_err("bad name"),
        "name",
        "tenant name 'ACME'",
    );
}

#[test]
fn prefixes_and_vni() {
    network_error(|n| n.vni = 0, "vni", "VNI 0 is outside");
    network_error(
        |n| n.prefixes = vec!["192.168.10.0/33".into()],
        "prefixes/0",
        "'192.168.10.0/33' is not a prefix",
    );
    network_error(
        |n| n.prefixes = vec!["192.168.10.5/24".into()],
        "prefixes/0",
        "bits set beyond its length",
    );
    network_error(
        |n| n.prefixes.push("192.168.0.0/16".into()),
        "prefixes/1",
        "prefix '192.168.0.0/16' overlaps '192.168.10.0/24' (prefixes/0)",
    );
    network_error(|n| n.prefixes.clear(), "prefixes", "at least one prefix");
}

#[test]
fn subnets() {
    network_error(
        |n| n.subnets[0].prefix = "10.1.0.0/24".into(),
        "subnets/0/prefix",
        "outside the network's prefixes",
    );
    network_error(
        |n| {
            n.subnets.push(Subnet {
                name: "db".into(),
                prefix: "192.168.10.128/25".into(),
                gateway: Some("192.168.10.1".into()),
                route_table: Some("nope".into()),
            })
        },
        "subnets/1/prefix",
        "subnet '192.168.10.128/25' overlaps subnet '192.168.10.0/24' (subnets/0)",
    );
    let mut n = shop();
    n.subnets.push(Subnet {
        name: "web".into(),
        prefix: "192.168.10.128/25".into(),
        gateway: Some("192.168.10.1".into()),
        route_table: Some("nope".into()),
    });
    let es = errors(&n);
    has(&es, "subnets/1/name", "subnet 'web' is defined twice");
    has(
        &es,
        "subnets/1/gateway",
        "gateway 192.168.10.1 is outside the subnet 192.168.10.128/25",
    );
    has(
        &es,
        "subnets/1/route_table",
        "route table 'nope' is not defined",
    );
    network_error(
        |n| n.subnets[0].gateway = Some("192.168.10.300".into()),
        "subnets/0/gateway",
        "'192.168.10.300' is not an IPv4 or IPv6 address",
    );
}

#[test]
fn nodes() {
    network_error(
        |n| n.nodes[2].ip = "10.0.0.300".into(),
        "nodes/2/ip",
        "'10.0.0.300' is not an IPv4 or IPv6 address",
    );
    network_error(
        |n| n.nodes[2].ip = "10.1.2.3".into(),
        "nodes/2/ip",
        "10.1.2.3 is outside the network's prefixes (192.168.10.0/24)",
    );
    network_error(
        |n| n.nodes[2].ip = "192.168.10.11".into(),
        "nodes/2/ip",
        "address 192.168.10.11 is already used by node 'web1'",
    );
    network_error(
        |n| n.nodes[2].ip = "192.168.10.1".into(),
        "nodes/2/ip",
        "is the gateway of a subnet (subnets/0/gateway)",
    );
    network_error(
        |n| {
            n.subnets[0].prefix = "192.168.10.0/28".into();
            n.subnets[0].gateway = None;
        },
        "nodes/2/ip",
        "192.168.10.21 is outside subnet 'web' (192.168.10.0/28)",
    );
    network_error(
        |n| n.nodes[2].mac = "02:00:00:00:10:11".into(),
        "nodes/2/mac",
        "MAC 02:00:00:00:10:11 is already used by node 'web1'",
    );
    network_error(
        |n| n.nodes[2].mac = "02:00:00:00:10".into(),
        "nodes/2/mac",
        "'02:00:00:00:10' is not a MAC address",
    );
    network_error(
        |n| n.nodes[2].mac = "01:00:5e:00:00:01".into(),
        "nodes/2/mac",
        "multicast",
    );
    network_error(
        |n| n.nodes[1].name = "web1".into(),
        "nodes/1/name",
        "node 'web1' is already defined (nodes/0)",
    );
    network_error(
        |n| n.nodes[2].host = "host-b".into(),
        "nodes/2/host",
        "'host-b' is not an IPv4 or IPv6 address",
    );
    network_error(
        |n| n.nodes[2].subnet = Some("db".into()),
        "nodes/2/subnet",
        "subnet 'db' is not defined",
    );
    network_error(
        |n| n.nodes[2].security_groups.push("admin".into()),
        "nodes/2/security_groups/1",
        "security group 'admin' is not defined",
    );
    network_error(
        |n| n.nodes[1].vf = Some(0),
        "nodes/1/vf",
        "vf 0 of host 10.0.0.1 is already used by node 'web1'",
    );
    network_error(
        |n| n.nodes[1].vf = Some(64),
        "nodes/1/vf",
        "vf 64 does not exist",
    );
}

#[test]
fn security_rules() {
    let at = "security_groups/0/rules/2";
    let push = |r: SecurityRule| move |n: &mut Network| n.security_groups[0].rules.push(r);
    let r = |proto: &str, remote: Option<&str>, ports: &str, prio: u16| {
        rule(
            RuleDirection::ToNode,
            proto,
            remote,
            ports,
            RuleAction::Allow,
            prio,
        )
    };
    network_error(
        push(r("tcp", None, "8100-8000", 10)),
        &format!("{at}/ports"),
        "port range 8100-8000 is reversed",
    );
    network_error(
        push(r("tcp", None, "http", 10)),
        &format!("{at}/ports"),
        "'http' is not a port or a range",
    );
    network_error(
        push(r("tcpp", None, "80", 10)),
        &format!("{at}/protocol"),
        "protocol 'tcpp' is not tcp, udp",
    );
    network_error(
        push(r("icmp", None, "80", 10)),
        &format!("{at}/ports"),
        "ports '80' need protocol tcp or udp, not 'icmp'",
    );
    network_error(
        push(r("tcp", Some("fd00::/8"), "80", 10)),
        &format!("{at}/remote"),
        "remote 'fd00::/8' is IPv6 but the network has no IPv6 prefix",
    );
    network_error(
        push(r("tcp", Some("10.0.0.0/33"), "80", 10)),
        &format!("{at}/remote"),
        "'10.0.0.0/33' is not a prefix",
    );
    // Covered by rule 1 (allow ssh from 10.9/16 at 200): a narrower rule below it never matches.
    network_error(
        push(rule(
            RuleDirection::ToNode,
            "tcp",
            Some("10.9.1.0/24"),
            "22",
            RuleAction::Deny,
            150,
        )),
        at,
        "this rule can never match: rule 1 of the group (priority 200) matches everything it matches",
    );
    // A lower-priority rule written before a covering one.
    network_error(
        |n| {
            n.security_groups[0].rules.insert(
                0,
                rule(
                    RuleDirection::ToNode,
                    "tcp",
                    Some("10.9.1.0/24"),
                    "22",
                    RuleAction::Deny,
                    150,
                ),
            )
        },
        "security_groups/0/rules/0",
        "rule 2 of the group (priority 200)",
    );
    network_error(
        push(rule(
            RuleDirection::ToNode,
            "tcp",
            None,
            "22",
            RuleAction::Deny,
            100,
        )),
        at,
        "it repeats rule 0",
    );
    // Not covered: another direction, a wider port range, or a higher priority.
    let mut n = shop();
    n.security_groups[0].rules.extend([
        rule(
            RuleDirection::FromNode,
            "tcp",
            Some("10.9.1.0/24"),
            "22",
            RuleAction::Deny,
            150,
        ),
        rule(
            RuleDirection::ToNode,
            "tcp",
            Some("10.9.1.0/24"),
            "20-22",
            RuleAction::Deny,
            150,
        ),
        rule(
            RuleDirection::ToNode,
            "tcp",
            Some("10.9.1.0/24"),
            "22",
            RuleAction::Deny,
            300,
        ),
    ]);
    assert_eq!(validate_network(&n), Ok(()));
    network_error(
        |n| n.security_groups.push(n.security_groups[0].clone()),
        "security_groups/1/name",
        "security group 'default' is defined twice",
    );
}

#[test]
fn rate_limited_rules() {
    let at = "security_groups/0/rules/2";
    let limited = |proto: &str, action, pps, burst, connections_only| SecurityRule {
        rate_limit: Some(crate::model::RateLimit { pps, burst }),
        connections_only,
        ..rule(RuleDirection::ToNode, proto, None, "443", action, 200)
    };
    let mut n = shop();
    n.security_groups[0]
        .rules
        .push(limited("tcp", RuleAction::Allow, 200, None, true));
    assert_eq!(validate_network(&n), Ok(()));
    let push = |r: SecurityRule| move |n: &mut Network| n.security_groups[0].rules.push(r);
    network_error(
        push(limited("tcp", RuleAction::Deny, 200, None, false)),
        &format!("{at}/rate_limit"),
        "needs action 'allow'",
    );
    network_error(
        push(limited("tcp", RuleAction::Allow, 0, None, false)),
        &format!("{at}/rate_limit/pps"),
        "use action 'deny'",
    );
    network_error(
        push(limited("tcp", RuleAction::Allow, 10, Some(0), false)),
        &format!("{at}/rate_limit/burst"),
        "lets nothing through",
    );
    network_error(
        push(limited("udp", RuleAction::Allow, 10, None, true)),
        &format!("{at}/connections_only"),
        "needs protocol 'tcp', not 'udp'",
    );
    // A rule for connection attempts covers no more than them: a broader rule after it at
    // a lower priority still matches the rest.
    let mut n = shop();
    n.security_groups[0].rules.extend([
        limited("tcp", RuleAction::Allow, 200, None, true),
        SecurityRule {
            priority: 100,
            ..rule(
                RuleDirection::ToNode,
                "tcp",
                None,
                "443",
                RuleAction::Allow,
                100,
            )
        },
    ]);
    assert_eq!(validate_network(&n), Ok(()));
}

#[test]
fn routes_and_services() {
    fn route(prefix: &'static str, next_hop: NextHop) -> impl FnOnce(&mut Network) {
        move |n: &mut Network| {
            n.route_tables[0].routes.push(Route {
                prefix: prefix.into(),
                next_hop,
            })
        }
    }
    network_error(
        route("0.0.0.0/0", NextHop::Drop),
        "route_tables/0/routes/1/prefix",
        "route '0.0.0.0/0' is already in the table (route_tables/0/routes/0)",
    );
    network_error(
        route("10.0.0.0/8", NextHop::Node("fw".into())),
        "route_tables/0/routes/1/next_hop",
        "next hop node 'fw' is not a node of the network",
    );
    network_error(
        route("10.0.0.0/x", NextHop::Host),
        "route_tables/0/routes/1/prefix",
        "'10.0.0.0/x' is not a prefix",
    );
    network_error(
        route("fd00::/8", NextHop::Host),
        "route_tables/0/routes/1/prefix",
        "is IPv6 but the network has no IPv6 prefix",
    );
    network_error(
        |n| {
            n.route_tables[0].routes.push(Route {
                prefix: "10.66.0.0/16".into(),
                next_hop: NextHop::Drop,
            });
            n.security_groups[0].rules[0].priority = 65535;
        },
        "security_groups/0/rules/0/priority",
        "priority 65535 is reserved for blackhole routes (route_tables/0/routes/1)",
    );
    network_error(
        |n| n.services.dns.servers.push("dns.example".into()),
        "services/dns/servers/1",
        "'dns.example' is not an IPv4 or IPv6 address",
    );
    network_error(
        |n| n.services.dns.search.push("bad..domain".into()),
        "services/dns/search/1",
        "'bad..domain' is not a domain name",
    );
    network_error(
        |n| {
            n.services.dhcp = Some(Dhcp {
                lease_s: 0,
                options: Default::default(),
            })
        },
        "services/dhcp/lease_s",
        "0 seconds",
    );
}

#[test]
fn every_problem_at_once() {
    let mut n = shop();
    n.vni = 0;
    n.nodes[0].ip = "x".into();
    n.services.dns.servers[0] = "y".into();
    let es = errors(&n);
    assert_eq!(es.len(), 3, "{es:#?}");
}

#[test]
fn shadow_specs() {
    let prod = shop();
    let check = |change: &dyn Fn(&mut ShadowSpec), path: &str, text: &str| {
        let mut s = shop_shadow().spec;
        change(&mut s);
        let es = validate_shadow_spec(&s, &prod).expect_err("a problem");
        has(&es, path, text);
    };
    check(&|s| s.ttl_s = 0, "ttl_s", "0 seconds");
    check(&|s| s.capacity.sample = 0, "capacity/sample", "sample 0");
    check(
        &|s| s.capacity.burst_bytes = 1000,
        "capacity/burst_bytes",
        "policer burst 1000 bytes is below 1600",
    );
    check(
        &|s| s.network = "other".into(),
        "network",
        "network 'other' is not the shadowed network 'shop'",
    );
    check(
        &|s| s.collector.ip = "10.0.0".into(),
        "collector/ip",
        "'10.0.0' is not an IPv4 or IPv6 address",
    );
    check(
        &|s| s.policy.rules[0].sample = 0,
        "policy/rules/0/sample",
        "sample 0",
    );
    check(
        &|s| s.policy.rules[0].truncate = Some(10),
        "policy/rules/0/truncate",
        "truncate 10 is shorter than an Ethernet header (14 bytes)",
    );
    check(
        &|s| s.policy.rules[0].node = Some("web9".into()),
        "policy/rules/0/node",
        "node 'web9' is not in the shadowed network",
    );
    check(
        &|s| s.policy.rules[0].dst_ports = Some("8100-8000".into()),
        "policy/rules/0/dst_ports",
        "port range 8100-8000 is reversed",
    );
    check(
        &|s| s.policy.rules[2].protocol = Some("icmp".into()),
        "policy/rules/2/dst_ports",
        "port ranges need protocol tcp or udp",
    );
    check(
        &|s| {
            s.policy.rules[0].src = Some("10.0.0.0/8".into());
            s.policy.rules[0].dst = Some("fd00::/8".into());
        },
        "policy/rules/0/dst",
        "different address families",
    );
    check(
        &|s| s.exclude_nodes.push("web9".into()),
        "exclude_nodes/1",
        "node 'web9' is not in the shadowed network",
    );
    check(
        &|s| s.analysis_nodes[0].endpoint.mac = "zz".into(),
        "analysis_nodes/0/endpoint/mac",
        "'zz' is not a MAC address",
    );
    check(
        &|s| s.analysis_nodes[0].endpoint.ip = "10.0.0.500".into(),
        "analysis_nodes/0/endpoint/ip",
        "'10.0.0.500'",
    );
    check(
        &|s| s.analysis_nodes[0].ip = Some("192.168.10.12".into()),
        "analysis_nodes/0/ip",
        "production node 'web2'",
    );
    check(
        &|s| {
            s.analysis_nodes.push(AnalysisNode {
                name: "ids".into(),
                kind: String::new(),
                endpoint: s.analysis_nodes[0].endpoint.clone(),
                ip: None,
                services: vec![],
            })
        },
        "analysis_nodes/1/name",
        "analysis node 'ids' is defined twice",
    );
    let honeypot = |ip: Option<&str>, services: Vec<HoneypotService>| AnalysisNode {
        name: "decoy".into(),
        kind: "honeypot".into(),
        endpoint: Endpoint {
            ip: "10.0.0.51".into(),
            mac: "02:00:00:00:00:51".into(),
        },
        ip: ip.map(str::to_string),
        services,
    };
    let svc = |protocol: &str, port: u16, banner: Option<String>| HoneypotService {
        protocol: protocol.into(),
        port,
        banner,
        speaks_first: None,
    };
    check(
        &|s| s.analysis_nodes.push(honeypot(None, vec![])),
        "analysis_nodes/1/ip",
        "a honeypot needs the overlay address",
    );
    check(
        &|s| s.analysis_nodes.push(honeypot(Some("fd00::9"), vec![])),
        "analysis_nodes/1/ip",
        "IPv4 addresses only",
    );
    check(
        &|s| {
            s.analysis_nodes.push(honeypot(
                Some("192.168.10.99"),
                vec![svc("tcp", 22, None), svc("sctp", 9, None)],
            ))
        },
        "analysis_nodes/1/services/1/protocol",
        "'sctp' is not tcp or udp",
    );
    check(
        &|s| {
            s.analysis_nodes.push(honeypot(
                Some("192.168.10.99"),
                vec![svc("tcp", 22, None), svc("tcp", 22, None)],
            ))
        },
        "analysis_nodes/1/services/1/port",
        "tcp/22 is listed twice",
    );
    check(
        &|s| {
            s.analysis_nodes
                .push(honeypot(Some("192.168.10.99"), vec![svc("udp", 0, None)]))
        },
        "analysis_nodes/1/services/0/port",
        "port 0",
    );
    check(
        &|s| {
            s.analysis_nodes.push(honeypot(
                Some("192.168.10.99"),
                vec![svc("tcp", 80, Some("x".repeat(2000)))],
            ))
        },
        "analysis_nodes/1/services/0/banner",
        "2000 bytes",
    );
    let mut good = shop_shadow().spec;
    good.analysis_nodes.push(honeypot(
        Some("192.168.10.99"),
        vec![svc("tcp", 22, None), svc("udp", 22, Some("hi".into()))],
    ));
    assert_eq!(validate_shadow_spec(&good, &prod), Ok(()));
    check(
        &|s| s.analysis_nodes[0].services.push(svc("tcp", 22, None)),
        "analysis_nodes/0/services",
        "services are for 'honeypot' nodes",
    );
    check(
        &|s| s.name = Some("Shadow!".into()),
        "name",
        "shadow name 'Shadow!'",
    );
    let _ = mirror_rule("web1");
}

#[test]
fn automations() {
    let prod = shop();
    let auto = Automation {
        name: "on-alert".into(),
        network: "shop".into(),
        max_severity: 2,
        template: shop_shadow().spec,
        enabled: true,
    };
    assert_eq!(validate_automation(&auto, Some(&prod)), Ok(()));
    assert_eq!(validate_automation(&auto, None), Ok(()));
    let mut bad = auto.clone();
    bad.max_severity = 5;
    bad.template.network = "other".into();
    bad.template.ttl_s = 0;
    let es = validate_automation(&bad, Some(&prod)).expect_err("problems");
    has(
        &es,
        "max_severity",
        "severity 5 is outside 1 (highest) to 4 (lowest)",
    );
    has(
        &es,
        "template/network",
        "the template shadows network 'other' but the rule watches 'shop'",
    );
    has(&es, "template/ttl_s", "0 seconds");
    let mut zero = auto.clone();
    zero.max_severity = 0;
    has(
        &validate_automation(&zero, None).expect_err("severity 0"),
        "max_severity",
        "severity 0",
    );
    // Without the network, node references cannot be checked; with it they are.
    let mut unknown = auto;
    unknown.template.exclude_nodes = vec!["web9".into()];
    assert_eq!(validate_automation(&unknown, None), Ok(()));
    has(
        &validate_automation(&unknown, Some(&prod)).expect_err("unknown node"),
        "template/exclude_nodes/0",
        "web9",
    );
}
