//! The shadow's honeypot analysis nodes (kind `honeypot`, R7) as the decoys the shadow's tap
//! runs: services from the specification, well-known banners where none is given, a MAC and
//! a SYN-cookie key of their own.

use std::net::{IpAddr, Ipv4Addr};

use crate::{
    analysis::honeypot::{HoneypotSpec, Service, Transport, well_known_banner},
    model::{HONEYPOT_KIND, Shadow},
};

/// One decoy of a shadow: its node name and what the tap runs.
#[derive(Clone, Debug)]
pub(super) struct Decoy {
    /// The analysis node's name.
    pub name: String,
    /// The honeypot.
    pub spec: HoneypotSpec,
}

/// The decoys of `shadow` of `tenant`. Nodes the validator would refuse (no IPv4 address,
/// unknown protocol) are left out: the stored specification was validated when written.
pub(super) fn decoys(tenant: &str, shadow: &Shadow) -> Vec<Decoy> {
    shadow
        .spec
        .analysis_nodes
        .iter()
        .filter(|a| a.kind == HONEYPOT_KIND)
        .filter_map(|a| {
            let Some(Ok(IpAddr::V4(ip))) = a.ip.as_deref().map(str::parse::<IpAddr>) else {
                return None;
            };
            let services = a
                .services
                .iter()
                .filter_map(|s| {
                    let transport = match s.protocol.as_str() {
                        "tcp" => Transport::Tcp,
                        "udp" => Transport::Udp,
                        _ => return None,
                    };
                    let known = well_known_banner(transport, s.port);
                    let banner = s.banner.as_deref().map_or_else(
                        || known.map_or_else(Vec::new, |(b, _)| b.to_vec()),
                        |b| b.as_bytes().to_vec(),
                    );
                    let speaks_first = s
                        .speaks_first
                        .unwrap_or(known.is_some_and(|(_, first)| first));
                    Some(Service {
                        transport,
                        port: s.port,
                        banner,
                        speaks_first: speaks_first && transport == Transport::Tcp,
                    })
                })
                .collect();
            Some(Decoy {
                name: a.name.clone(),
                spec: HoneypotSpec {
                    ip,
                    mac: decoy_mac(ip),
                    services,
                    cookie_key: fnv1a(&[tenant, &shadow.name, &a.name]),
                },
            })
        })
        .collect()
}

/// A locally administered MAC carrying the decoy's address (02:5e + the four octets), so
/// that two decoys never share one and a capture shows whose it is.
fn decoy_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x5e, o[0], o[1], o[2], o[3]]
}

/// FNV-1a over the parts (each followed by a 0 byte): stable across runs and Rust versions,
/// unlike the standard library's hasher.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AnalysisNode, Endpoint, HoneypotService, fixtures::shop_shadow};

    fn node(name: &str, ip: &str, services: Vec<HoneypotService>) -> AnalysisNode {
        AnalysisNode {
            name: name.into(),
            kind: HONEYPOT_KIND.into(),
            endpoint: Endpoint {
                ip: "10.0.0.51".into(),
                mac: "02:00:00:00:00:51".into(),
            },
            ip: Some(ip.into()),
            services,
        }
    }

    #[test]
    fn services_get_well_known_banners_unless_given_and_decoys_differ() {
        let mut s = shop_shadow();
        let svc = |protocol: &str, port, banner: Option<&str>, speaks_first| HoneypotService {
            protocol: protocol.into(),
            port,
            banner: banner.map(str::to_string),
            speaks_first,
        };
        s.spec.analysis_nodes.push(node(
            "decoy-a",
            "192.168.10.99",
            vec![
                svc("tcp", 22, None, None),
                svc("tcp", 80, Some("HTTP/1.0 404\r\n\r\n"), None),
                svc("tcp", 9999, None, None),
                svc("udp", 22, None, Some(true)),
            ],
        ));
        s.spec
            .analysis_nodes
            .push(node("decoy-b", "192.168.10.98", vec![]));
        let d = decoys("acme", &s);
        // The fixture's Suricata node is not a decoy.
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "decoy-a");
        assert_eq!(d[0].spec.ip, Ipv4Addr::new(192, 168, 10, 99));
        assert_eq!(d[0].spec.mac, [0x02, 0x5e, 192, 168, 10, 99]);
        let sv = &d[0].spec.services;
        assert!(sv[0].banner.starts_with(b"SSH-2.0-") && sv[0].speaks_first);
        assert_eq!(sv[1].banner, b"HTTP/1.0 404\r\n\r\n");
        assert!(!sv[1].speaks_first, "HTTP answers a request");
        assert!(sv[2].banner.is_empty() && !sv[2].speaks_first);
        assert!(!sv[3].speaks_first, "UDP has no connection to greet on");
        assert_ne!(d[0].spec.cookie_key, d[1].spec.cookie_key);
        assert_eq!(d[0].spec.cookie_key, decoys("acme", &s)[0].spec.cookie_key);
        assert_ne!(d[0].spec.cookie_key, decoys("other", &s)[0].spec.cookie_key);
    }
}
