//! Pieces shared by the two compilers of desired state into table entries — network
//! descriptions ([`crate::netdesc`]) and the control-plane model ([`crate::model::compile`]):
//! parsing of addresses, prefixes, ports and protocols with messages that name the value, rule
//! matches, VF allocation, and the entries that make a VM or a shadow replica reachable.
//!
//! Messages returned here do not name the field; callers prefix them with where the value
//! came from (a file line, or a JSON path).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use shadownet_hw::{
    NUM_VPORTS,
    layout::{
        Mac, PortRange, Prefix,
        map::{MapKey, MapValue},
        rule::{DirectionMatch, Family, RuleMatch},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::VniEntry,
    },
};

use crate::driver::PortConfig;

/// An overlay or substrate address.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

/// A MAC address `aa:bb:cc:dd:ee:ff`.
pub(crate) fn parse_mac(s: &str) -> Result<Mac, String> {
    s.parse::<Mac>()
        .map_err(|e| format!("'{s}' is not a MAC address ({e})"))
}

/// A prefix `a.b.c.d/n`, `x::/n`, or a bare address (a host prefix).
pub(crate) fn parse_prefix(s: &str) -> Result<Prefix, String> {
    s.parse::<Prefix>()
        .map_err(|e| format!("'{s}' is not a prefix ({e})"))
}

/// A port `N` or an inclusive range `N-M`.
pub(crate) fn parse_ports(s: &str) -> Result<PortRange, String> {
    let parsed = match s.split_once('-') {
        Some((lo, hi)) => lo.trim().parse().ok().zip(hi.trim().parse().ok()),
        None => s.trim().parse().ok().map(|p| (p, p)),
    };
    match parsed.map(|(lo, hi)| PortRange::new(lo, hi)) {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!(
            "'{s}' is not a port or a range N-M of ports 0-65535"
        )),
    }
}

/// A protocol name or number; `None` for any.
pub(crate) fn parse_protocol(s: &str) -> Result<Option<u8>, String> {
    Ok(Some(match s {
        "any" => return Ok(None),
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "sctp" => 132,
        "gre" => 47,
        "esp" => 50,
        n => n.parse::<u8>().map_err(|_| {
            format!(
                "protocol '{s}' is not tcp, udp, icmp, icmpv6, sctp, gre, esp, any or a number 0-255"
            )
        })?,
    }))
}

/// Whether packets of this protocol (`None`: any) can carry the ports the NIC matches on.
/// Without a protocol, port ranges match TCP and UDP packets.
pub(crate) fn protocol_has_ports(protocol: Option<u8>) -> bool {
    matches!(protocol, None | Some(6) | Some(17))
}

/// The parsed fields of a rule, before they are scoped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleFields {
    /// Directions covered.
    pub direction: DirectionMatch,
    /// IP protocol; `None` for any.
    pub protocol: Option<u8>,
    /// Source prefix.
    pub src: Option<Prefix>,
    /// Destination prefix.
    pub dst: Option<Prefix>,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
    /// Only TCP connection attempts (SYN without ACK).
    pub tcp_syn: bool,
}

impl RuleFields {
    /// The NIC's rule match for these fields in `scope` (a VNI for ACL rules, a vport for
    /// mirror filters); an error when no packet could ever match it.
    pub fn scoped(&self, scope: Option<u32>) -> Result<RuleMatch, String> {
        let has_ports = !(self.sport.is_any() && self.dport.is_any());
        if has_ports && !protocol_has_ports(self.protocol) {
            return Err(
                "port ranges need protocol tcp or udp; this rule could never match".to_string(),
            );
        }
        let rule = RuleMatch {
            scope,
            direction: self.direction,
            family: Family::Any,
            protocol: self.protocol,
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            tcp_syn: self.tcp_syn,
        };
        rule.validate()
            .map_err(|e| format!("{e}; this rule could never match"))?;
        Ok(rule)
    }
}

/// The packets two rule matches both cover, as one match; `None` when no packet is covered by
/// both. (A TCP connection-attempt match narrows the other side to TCP.)
pub(crate) fn intersect_matches(a: &RuleMatch, b: &RuleMatch) -> Option<RuleMatch> {
    fn both<T: Copy + PartialEq>(x: Option<T>, y: Option<T>) -> Option<Option<T>> {
        match (x, y) {
            (Some(x), Some(y)) if x != y => None,
            (x, y) => Some(x.or(y)),
        }
    }
    fn narrower(x: Option<Prefix>, y: Option<Prefix>) -> Option<Option<Prefix>> {
        match (x, y) {
            (Some(x), Some(y)) => (x.addr().is_ipv4() == y.addr().is_ipv4() && x.overlaps(&y))
                .then_some(Some(if x.len() >= y.len() { x } else { y })),
            (x, y) => Some(x.or(y)),
        }
    }
    fn ports(x: PortRange, y: PortRange) -> Option<PortRange> {
        let (lo, hi) = (x.lo.max(y.lo), x.hi.min(y.hi));
        (lo <= hi).then_some(PortRange { lo, hi })
    }
    let direction = match (a.direction, b.direction) {
        (DirectionMatch::Both, d) | (d, DirectionMatch::Both) => d,
        (x, y) if x == y => x,
        _ => return None,
    };
    let family = match (a.family, b.family) {
        (Family::Any, f) | (f, Family::Any) => f,
        (x, y) if x == y => x,
        _ => return None,
    };
    let tcp_syn = a.tcp_syn || b.tcp_syn;
    let mut protocol = both(a.protocol, b.protocol)?;
    if tcp_syn {
        if protocol.is_some_and(|p| p != 6) {
            return None;
        }
        protocol = Some(6);
    }
    let m = RuleMatch {
        scope: both(a.scope, b.scope)?,
        direction,
        family,
        protocol,
        src: narrower(a.src, b.src)?,
        dst: narrower(a.dst, b.dst)?,
        sport: ports(a.sport, b.sport)?,
        dport: ports(a.dport, b.dport)?,
        tcp_syn,
    };
    m.validate().ok()?;
    Some(m)
}

/// This NIC's substrate address of the overlay address's family, falling back to the other
/// family (the map only records where the VM lives).
pub(crate) fn local_substrate(port: &PortConfig, overlay: IpAddr) -> IpAddr {
    let v4 = port.local_ipv4.map(IpAddr::V4);
    let v6 = port.local_ipv6.map(IpAddr::V6);
    let (first, second) = if overlay.is_ipv4() {
        (v4, v6)
    } else {
        (v6, v4)
    };
    first
        .or(second)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Whether a substrate address is one of this NIC's.
pub(crate) fn is_local_address(port: &PortConfig, host: IpAddr) -> bool {
    match host {
        IpAddr::V4(a) => port.local_ipv4 == Some(a),
        IpAddr::V6(a) => port.local_ipv6 == Some(a),
    }
}

/// Map value of an endpoint behind a VF of this NIC.
pub(crate) fn local_map_value(
    port: &PortConfig,
    overlay: IpAddr,
    vport: u16,
    shadow: bool,
) -> MapValue {
    MapValue {
        substrate_ip: local_substrate(port, overlay),
        substrate_mac: port.local_mac,
        local_vport: Some(vport),
        shadow,
    }
}

/// The VNI entry of a shadow network: nothing goes down the standard path, no ACL defaults,
/// and the production network it stands in for (the NIC drops anything crossing between them).
pub(crate) fn shadow_vni_entry(production_vni: u32) -> VniEntry {
    VniEntry {
        shadow: true,
        miss_to_host: false,
        default_deny_to_vm: false,
        default_deny_from_vm: false,
        production_vni: Some(production_vni),
    }
}

/// Where a shadow replica of a production address lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplicaAt {
    /// Its host's substrate address.
    pub substrate_ip: IpAddr,
    /// The next hop toward that host.
    pub substrate_mac: Mac,
    /// Its VF when the host is this one.
    pub local_vport: Option<u16>,
}

/// The two entries of a shadow replica: reachable at its overlay address inside the shadow
/// VNI (map), and the target of copies of traffic to the production address (shadow map).
pub(crate) fn replica_entries(
    session: u16,
    production_vni: u32,
    shadow_vni: u32,
    overlay: IpAddr,
    at: ReplicaAt,
) -> ((MapKey, MapValue), (ShadowMapKey, ShadowMapValue)) {
    (
        (
            MapKey {
                vni: shadow_vni,
                ip: overlay,
            },
            MapValue {
                substrate_ip: at.substrate_ip,
                substrate_mac: at.substrate_mac,
                local_vport: at.local_vport,
                shadow: true,
            },
        ),
        (
            ShadowMapKey {
                session,
                vni: production_vni,
                ip: overlay,
            },
            ShadowMapValue {
                substrate_ip: at.substrate_ip,
                substrate_mac: at.substrate_mac,
                shadow_vni,
            },
        ),
    )
}

/// VFs of one NIC handed out to VMs and shadow replicas. Messages name `who`.
#[derive(Default)]
pub(crate) struct VfAllocator {
    taken: BTreeMap<u16, String>,
    next: u16,
}

impl VfAllocator {
    /// Claims a VF chosen by the description; an error when it does not exist or is taken.
    pub fn claim(&mut self, vf: u16, who: &str) -> Result<(), String> {
        if vf as usize >= NUM_VPORTS {
            return Err(format!(
                "{who}: vf {vf} does not exist (the NIC has vf0-vf{})",
                NUM_VPORTS - 1
            ));
        }
        if let Some(other) = self.taken.get(&vf) {
            return Err(format!("{who}: vf {vf} is already taken by {other}"));
        }
        self.taken.insert(vf, who.to_string());
        Ok(())
    }

    /// Who holds a VF.
    pub fn holder(&self, vf: u16) -> Option<&str> {
        self.taken.get(&vf).map(String::as_str)
    }

    /// The lowest free VF.
    pub fn next(&mut self, who: &str) -> Result<u16, String> {
        while self.taken.contains_key(&self.next) {
            self.next += 1;
        }
        if self.next as usize >= NUM_VPORTS {
            return Err(format!("{who}: no free VF left (the NIC has {NUM_VPORTS})"));
        }
        let v = self.next;
        self.taken.insert(v, who.to_string());
        Ok(v)
    }
}
