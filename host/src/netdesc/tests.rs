use std::path::Path;

use shadownet_hw::{Port, layout::rule::DirectionMatch};

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/two-tier.toml");

fn compile(text: &str) -> Result<Plan, DescError> {
    Plan::from_str(text, Path::new("net.toml"))
}

fn problems(text: &str) -> Vec<Problem> {
    match compile(text) {
        Err(DescError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

const BASE: &str = r#"
[nic]
mac = "02:00:00:00:00:01"
ipv4 = "10.0.0.1"

[[tenant]]
name = "t"

[[network]]
name = "n"
tenant = "t"
vni = 100
prefixes = ["192.168.1.0/24"]
"#;

#[test]
fn the_example_compiles_to_the_expected_tables() {
    let plan = compile(EXAMPLE).expect("the bundled example is valid");
    assert_eq!(plan.port_named("web1"), Some(Port::Vport(0)));
    assert_eq!(plan.port_named("web2"), Some(Port::Vport(1)));
    assert_eq!(plan.port_named("shop-shadow/web2"), Some(Port::Vport(2)));
    assert_eq!(plan.port_named("uplink"), Some(Port::Uplink));
    assert_eq!(plan.port_named("vf7"), Some(Port::Vport(7)));
    assert_eq!(plan.port_named("nope"), None);
    // Production VMs (3) plus shadow nodes (2) in the map.
    assert_eq!(plan.map.len(), 5);
    assert_eq!(plan.shadow_map.len(), 2);
    assert_eq!(plan.vnis.len(), 2);
    assert!(
        plan.vnis
            .iter()
            .any(|(v, e)| *v == 9001 && e.shadow && e.production_vni == Some(5001))
    );
    assert_eq!(plan.sessions.len(), 1);
    assert_eq!(plan.sessions[0].1.policer_mbps, 20_000);
    // Three mirror rules, each for one VM.
    assert_eq!(plan.mirror_filters.len(), 3);
    let skip = &plan.mirror_filters[1].1;
    assert_eq!(skip.action.verdict, MirrorVerdict::DoNotMirror);
    assert_eq!(skip.matches.protocol, Some(17));
    let web2 = &plan.mirror_filters[2].1;
    assert_eq!(web2.matches.scope, Some(1));
    assert_eq!(web2.matches.direction, DirectionMatch::ToVm);
    assert_eq!(web2.action.truncate, Some(128));
    assert_eq!(web2.action.sample_one_in, 2);
    assert_eq!(plan.acl.len(), 2);
    assert_eq!(plan.acl[0].1.matches.scope, Some(5001));
}

#[test]
fn syntax_errors_name_the_line() {
    let text = format!("{BASE}\n[[vm]]\nname = \"a\"\nnetwork = 5\n");
    match compile(&text) {
        Err(e @ DescError::Syntax { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("net.toml:"), "{msg}");
            assert!(
                msg.starts_with("net.toml:17:"),
                "line of the bad field expected in: {msg}"
            );
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let unknown = format!("{BASE}\n[[vm]]\nname = \"a\"\nnetwrk = \"n\"\n");
    let msg = compile(&unknown).expect_err("unknown field").to_string();
    assert!(msg.contains("netwrk"), "{msg}");
}

#[test]
fn every_semantic_problem_is_reported_with_its_line() {
    let text = format!(
        r#"{BASE}
[[vm]]
name = "a"
network = "nope"
ip = "192.168.1.5"
mac = "02:00:00:00:00:05"
host = "local"

[[vm]]
name = "b"
network = "n"
ip = "10.1.1.1"
mac = "zz"
host = "10.0.0.9"

[[acl]]
network = "n"
protocol = "icmp"
dst_ports = "22"
action = "deny"
priority = 1
"#
    );
    let ps = problems(&text);
    let text_of = |needle: &str| {
        ps.iter()
            .find(|p| p.message.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentioning {needle}: {ps:#?}"))
    };
    assert_eq!(text_of("network 'nope' is not defined").line, Some(15));
    assert_eq!(text_of("'zz' is not a MAC address").line, Some(22));
    assert_eq!(text_of("port ranges need protocol").line, Some(29));
    let all = compile(&text).expect_err("invalid").to_string();
    assert!(all.contains("net.toml:15:"), "{all}");
}

#[test]
fn rejects_inconsistent_networks_and_vms() {
    let text = format!(
        r#"{BASE}
[[network]]
name = "m"
tenant = "ghost"
vni = 100
prefixes = ["10.0.0.0/8", "10.1.0.0/16"]

[[vm]]
name = "a"
network = "n"
ip = "192.168.2.1"
mac = "02:00:00:00:00:05"
host = "local"

[[vm]]
name = "c"
network = "n"
ip = "192.168.1.1"
mac = "02:00:00:00:00:06"
host = "local"
vf = 70

[[vm]]
name = "d"
network = "n"
ip = "192.168.1.1"
mac = "02:00:00:00:00:07"
host = "10.0.0.5"
host_mac = "02:00:00:00:00:05"

[[vm]]
name = "e"
network = "n"
ip = "192.168.1.77"
mac = "02:00:00:00:00:08"
host = "10.0.0.6"
"#
    );
    let ps: Vec<String> = problems(&text).into_iter().map(|p| p.message).collect();
    for needle in [
        "tenant 'ghost' is not defined",
        "VNI 100 is already used",
        "overlap",
        "is outside network 'n'",
        "vf 70 does not exist",
        "address 192.168.1.1 is already used",
        "needs host_mac",
    ] {
        assert!(
            ps.iter().any(|p| p.contains(needle)),
            "missing '{needle}' in {ps:#?}"
        );
    }
}

#[test]
fn rejects_bad_shadows_and_mirror_rules() {
    let text = format!(
        r#"{BASE}
[[vm]]
name = "r"
network = "n"
ip = "192.168.1.9"
mac = "02:00:00:00:00:09"
host = "10.0.0.2"
host_mac = "02:00:00:00:00:02"

[[shadow]]
name = "s"
network = "n"
vni = 100
session = 64
collector = {{ ip = "10.0.0.50", mac = "02:00:00:00:00:50" }}

[[shadow]]
name = "s2"
network = "n"
vni = 200
session = 2
collector = {{ ip = "10.0.0.50", mac = "02:00:00:00:00:50" }}
policer = {{ mbps = 100, burst = 10 }}

[[mirror]]
shadow = "s2"
vm = "r"

[[mirror]]
shadow = "s2"
sample = 0

[[mirror]]
shadow = "s2"
truncate = 4
"#
    );
    let ps: Vec<String> = problems(&text).into_iter().map(|p| p.message).collect();
    for needle in [
        "VNI 100 is already used",
        "session 64 is beyond",
        "burst 10 bytes is below",
        "vm 'r' is not on this NIC",
        "sample must be at least 1",
        "truncate 4 is shorter",
    ] {
        assert!(
            ps.iter().any(|p| p.contains(needle)),
            "missing '{needle}' in {ps:#?}"
        );
    }
}

#[test]
fn an_invalid_entry_is_reported_once_not_again_where_it_is_referenced() {
    let text = format!(
        r#"{BASE}
[[vm]]
name = "a"
network = "nope"
ip = "192.168.1.5"
mac = "02:00:00:00:00:05"
host = "local"

[[shadow]]
name = "s"
network = "n"
vni = 200
session = 1
collector = {{ ip = "10.0.0.50", mac = "02:00:00:00:00:50" }}

[[shadow.node]]
vm = "a"
host = "local"

[[mirror]]
shadow = "s"
vm = "a"
"#
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "only the root problem: {ps:#?}");
    assert!(ps[0].message.contains("network 'nope' is not defined"));
}

#[test]
fn acl_police_rules_and_their_mistakes() {
    let ok = format!(
        r#"{BASE}
[[acl]]
network = "n"
direction = "to_vm"
protocol = "tcp"
dst_ports = "80"
connections_only = true
action = "police"
rate_pps = 200
priority = 10
"#
    );
    let plan = compile(&ok).expect("valid");
    let rule = &plan.acl[0].1;
    assert_eq!(
        rule.action.verdict,
        Verdict::Police {
            rate_pps: 200,
            burst: 200
        }
    );
    assert!(rule.matches.tcp_syn);
    let bad = format!(
        r#"{BASE}
[[acl]]
network = "n"
action = "police"
priority = 10

[[acl]]
network = "n"
action = "deny"
rate_pps = 5
priority = 10

[[acl]]
network = "n"
protocol = "udp"
connections_only = true
action = "deny"
priority = 10
"#
    );
    let ps = problems(&bad);
    for (needle, line) in [
        ("action police needs rate_pps", 15),
        ("rate_pps and burst go with action police", 20),
        ("TCP connection attempts needs protocol 6", 26),
    ] {
        assert!(
            ps.iter()
                .any(|p| p.message.contains(needle) && p.line == Some(line)),
            "missing '{needle}' at line {line} in {ps:#?}"
        );
    }
}
