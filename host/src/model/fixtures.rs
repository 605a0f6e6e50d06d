//! The model equivalent of `examples/two-tier.toml`, shared by the model's tests.

use std::net::Ipv4Addr;

use shadownet_hw::layout::Mac;

use super::*;
use crate::driver::PortConfig;

/// This NIC: 10.0.0.1.
pub fn port() -> PortConfig {
    PortConfig {
        local_mac: Mac([2, 0, 0, 0, 0, 1]),
        local_ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..PortConfig::default()
    }
}

pub fn node(name: &str, ip: &str, mac: &str, host: &str, host_mac: &str, vf: Option<u16>) -> Node {
    Node {
        name: name.into(),
        ip: ip.into(),
        mac: mac.into(),
        host: host.into(),
        host_mac: host_mac.into(),
        subnet: Some("web".into()),
        security_groups: vec!["default".into()],
        vf,
        definition: NodeDefinition::default(),
    }
}

pub fn rule(
    direction: RuleDirection,
    protocol: &str,
    remote: Option<&str>,
    ports: &str,
    action: RuleAction,
    priority: u16,
) -> SecurityRule {
    SecurityRule {
        direction,
        protocol: Some(protocol.into()),
        remote: remote.map(Into::into),
        ports: Some(ports.into()),
        action,
        priority,
        rate_limit: None,
        connections_only: false,
    }
}

/// `shop`: web1 and web2 on this NIC (vf0, vf1), db1 on 10.0.0.2; ssh denied except from
/// 10.9.0.0/16.
pub fn shop() -> Network {
    Network {
        name: "shop".into(),
        vni: 5001,
        prefixes: vec!["192.168.10.0/24".into()],
        subnets: vec![Subnet {
            name: "web".into(),
            prefix: "192.168.10.0/24".into(),
            gateway: Some("192.168.10.1".into()),
            route_table: Some("main".into()),
        }],
        nodes: vec![
            node(
                "web1",
                "192.168.10.11",
                "02:00:00:00:10:11",
                "10.0.0.1",
                "02:00:00:00:00:01",
                Some(0),
            ),
            node(
                "web2",
                "192.168.10.12",
                "02:00:00:00:10:12",
                "10.0.0.1",
                "02:00:00:00:00:01",
                Some(1),
            ),
            node(
                "db1",
                "192.168.10.21",
                "02:00:00:00:10:21",
                "10.0.0.2",
                "02:00:00:00:00:02",
                None,
            ),
        ],
        security_groups: vec![SecurityGroup {
            name: "default".into(),
            rules: vec![
                rule(
                    RuleDirection::ToNode,
                    "tcp",
                    None,
                    "22",
                    RuleAction::Deny,
                    100,
                ),
                rule(
                    RuleDirection::ToNode,
                    "tcp",
                    Some("10.9.0.0/16"),
                    "22",
                    RuleAction::Allow,
                    200,
                ),
            ],
        }],
        route_tables: vec![RouteTable {
            name: "main".into(),
            routes: vec![Route {
                prefix: "0.0.0.0/0".into(),
                next_hop: NextHop::Host,
            }],
        }],
        services: NetworkServices {
            dhcp: Some(Dhcp {
                lease_s: 3600,
                options: Default::default(),
            }),
            dns: Dns {
                servers: vec!["192.168.10.2".into()],
                search: vec!["shop.internal".into()],
            },
        },
        miss: Miss::Host,
        default_to_node: RuleAction::Allow,
        default_from_node: RuleAction::Allow,
    }
}

pub fn mirror_rule(node: &str) -> MirrorRule {
    MirrorRule {
        node: Some(node.into()),
        direction: MirrorDirection::Both,
        protocol: None,
        src: None,
        dst: None,
        src_ports: None,
        dst_ports: None,
        sample: 1,
        truncate: None,
        action: MirrorRuleAction::Mirror,
        priority: 100,
    }
}

/// The shadow of `shop` as in the example: copies of web1's traffic (but DNS) and of HTTPS
/// toward web2; replicas of db1 (on 10.0.0.3) and web2 (here, vf2).
pub fn shop_shadow() -> Shadow {
    Shadow {
        name: "shop-shadow".into(),
        spec: ShadowSpec {
            name: Some("shop-shadow".into()),
            network: "shop".into(),
            mode: ShadowMode::Mirror,
            encap: ShadowEncap::Geneve,
            ttl_s: 3600,
            policy: MirrorPolicy {
                rules: vec![
                    mirror_rule("web1"),
                    MirrorRule {
                        protocol: Some("udp".into()),
                        dst_ports: Some("53".into()),
                        action: MirrorRuleAction::Skip,
                        priority: 200,
                        ..mirror_rule("web1")
                    },
                    MirrorRule {
                        direction: MirrorDirection::ToNode,
                        protocol: Some("tcp".into()),
                        dst_ports: Some("443".into()),
                        truncate: Some(128),
                        sample: 2,
                        ..mirror_rule("web2")
                    },
                ],
            },
            capacity: Capacity {
                mbps: 20_000,
                burst_bytes: 262_144,
                sample: 1,
            },
            collector: Endpoint {
                ip: "10.0.0.50".into(),
                mac: "02:00:00:00:00:50".into(),
            },
            analysis_nodes: vec![AnalysisNode {
                name: "ids".into(),
                kind: "suricata".into(),
                endpoint: Endpoint {
                    ip: "10.0.0.50".into(),
                    mac: "02:00:00:00:00:50".into(),
                },
                ip: None,
                services: vec![],
            }],
            exclude_nodes: vec!["web1".into()],
        },
        network_version: 1,
        vni: 9001,
        session: 1,
        replicas: vec![
            Replica {
                node: "db1".into(),
                host: "10.0.0.3".into(),
                host_mac: "02:00:00:00:00:03".into(),
                vf: None,
            },
            Replica {
                node: "web2".into(),
                host: "10.0.0.1".into(),
                host_mac: "02:00:00:00:00:01".into(),
                vf: Some(2),
            },
        ],
        state: ShadowState::Active,
        trigger: Trigger::Api {
            actor: "test".into(),
        },
        created_at_ms: 0,
        expires_at_ms: 3_600_000,
    }
}
