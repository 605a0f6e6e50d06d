//! Validation of the model's documents: every problem at once, each with the path of the
//! field at fault (`nodes/2/ip`, `security_groups/0/rules/1/ports`) and a message that names
//! the value (`'10.0.0.300' is not an IPv4 or IPv6 address`).
//!
//! What is checked beyond syntax: prefixes that overlap; subnets outside the network or
//! overlapping each other; gateways outside their subnet; duplicate names, addresses and MACs;
//! references to subnets, security groups, route tables and nodes that do not exist; port
//! ranges on protocols without ports; remote prefixes of a family the network does not have;
//! security rules that can never match because a higher-priority rule of the same group
//! covers them entirely; duplicate routes; network-service settings; and for shadows, mirror
//! rules, capacity, analysis nodes and excluded nodes.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::Serialize;
use shadownet_hw::{
    NUM_VPORTS,
    layout::{
        Mac, PortRange, Prefix, VNI_MAX, mirror_filter::MIN_TRUNCATE, rule::DirectionMatch,
        session::MIN_BURST,
    },
};
use utoipa::ToSchema;

use super::{
    AnalysisNode, Automation, Endpoint, HONEYPOT_KIND, MirrorDirection, MirrorRule, Network,
    NextHop, RuleAction, SecurityRule, ShadowSpec, Tenant,
};
use crate::{
    analysis::honeypot::MAX_BANNER,
    entries::{self, RuleFields},
};

/// One problem with a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: the JSON path of the field, segments separated by `/` (`nodes/2/ip`).
    pub path: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from a containing document: `prefix/path`.
    pub fn nested(self, prefix: &str) -> FieldError {
        FieldError {
            path: join(prefix, &self.path),
            message: self.message,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{path}"),
    }
}

/// Checks a name: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with `-` (a DNS
/// label, so names can appear in host names and URLs). The error's path is `name`; callers
/// nest it; `what` says what is named in the message ("network name 'Web_1' ...").
pub fn validate_name(what: &str, name: &str) -> Result<(), FieldError> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > 63 {
        Some(format!("is {} characters long (at most 63)", name.len()))
    } else if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        Some(format!(
            "has '{c}'; names use lowercase letters, digits and '-'"
        ))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("starts or ends with '-'".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(FieldError::new("name", format!("{what} name '{name}' {p}"))),
    }
}

/// Collects problems.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    fn name(&mut self, path: &str, what: &str, name: &str) {
        if let Err(e) = validate_name(what, name) {
            // The name may sit in a field not called `name` (`network`, `node`).
            self.0.push(FieldError::new(path, e.message));
        }
    }

    fn ok<T>(&mut self, path: impl Into<String>, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(path, e);
                None
            }
        }
    }

    fn ip(&mut self, path: impl Into<String>, s: &str) -> Option<IpAddr> {
        self.ok(path, entries::parse_ip(s))
    }

    fn mac(&mut self, path: impl Into<String>, s: &str) -> Option<Mac> {
        self.ok(path, entries::parse_mac(s))
    }

    fn prefix(&mut self, path: impl Into<String>, s: &str) -> Option<Prefix> {
        self.ok(path, entries::parse_prefix(s))
    }

    fn endpoint(&mut self, path: &str, e: &Endpoint) {
        self.ip(join(path, "ip"), &e.ip);
        self.mac(join(path, "mac"), &e.mac);
    }

    fn done(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// A honeypot node's own rules: an IPv4 decoy address and well-formed services; services on
/// any other kind of node are a mistake, not something to ignore.
fn honeypot(e: &mut Errors, at: &str, a: &AnalysisNode) {
    if a.kind != HONEYPOT_KIND {
        if !a.services.is_empty() {
            e.push(
                join(at, "services"),
                format!(
                    "services are for '{HONEYPOT_KIND}' nodes; this node's kind is '{}'",
                    a.kind
                ),
            );
        }
        return;
    }
    match a.ip.as_deref().map(entries::parse_ip) {
        None => e.push(
            join(at, "ip"),
            "a honeypot needs the overlay address it answers on",
        ),
        Some(Ok(IpAddr::V6(ip))) => e.push(
            join(at, "ip"),
            format!("{ip}: honeypots answer on IPv4 addresses only"),
        ),
        Some(Ok(IpAddr::V4(ip)))
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() =>
        {
            e.push(
                join(at, "ip"),
                format!("{ip} cannot be a host's address (unspecified, broadcast or multicast)"),
            );
        }
        // A malformed address is reported by the common checks.
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for (k, svc) in a.services.iter().enumerate() {
        let sat = format!("{at}/services/{k}");
        if !matches!(svc.protocol.as_str(), "tcp" | "udp") {
            e.push(
                join(&sat, "protocol"),
                format!("'{}' is not tcp or udp", svc.protocol),
            );
        }
        if svc.port == 0 {
            e.push(join(&sat, "port"), "port 0 cannot be listened on");
        } else if !seen.insert((svc.protocol.as_str(), svc.port)) {
            e.push(
                join(&sat, "port"),
                format!("{}/{} is listed twice", svc.protocol, svc.port),
            );
        }
        if let Some(b) = &svc.banner
            && b.len() > MAX_BANNER
        {
            e.push(
                join(&sat, "banner"),
                format!(
                    "the banner is {} bytes; at most {MAX_BANNER} (one segment)",
                    b.len()
                ),
            );
        }
    }
}

/// Checks a tenant: its name and limits.
pub fn validate_tenant(t: &Tenant) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.name("name", "tenant", &t.name);
    if t.limits.max_shadow_lifetime_s == 0 {
        e.push(
            "limits/max_shadow_lifetime_s",
            "a shadow lifetime limit of 0 seconds leaves no shadow alive",
        );
    }
    e.done()
}

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// A parsed security rule, for coverage checks.
#[derive(Clone, Copy)]
struct ParsedRule {
    direction: super::RuleDirection,
    protocol: Option<u8>,
    remote: Option<Prefix>,
    ports: PortRange,
    priority: u16,
    /// Only TCP connection attempts.
    connections_only: bool,
}

fn prefix_covers(outer: Option<Prefix>, inner: Option<Prefix>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => {
            o.addr().is_ipv4() == i.addr().is_ipv4() && o.len() <= i.len() && o.contains(i.addr())
        }
    }
}

impl ParsedRule {
    /// Whether every packet `other` matches, `self` matches too.
    fn covers(&self, other: &ParsedRule) -> bool {
        self.direction == other.direction
            && (self.protocol.is_none() || self.protocol == other.protocol)
            && prefix_covers(self.remote, other.remote)
            && self.ports.lo <= other.ports.lo
            && other.ports.hi <= self.ports.hi
            && (!self.connections_only || other.connections_only)
    }
}

/// Checks a production network; every problem at once.
pub fn validate_network(n: &Network) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.name("name", "network", &n.name);
    if n.vni == 0 || n.vni > VNI_MAX {
        e.push("vni", format!("VNI {} is outside 1-{VNI_MAX}", n.vni));
    }

    // Prefixes.
    if n.prefixes.is_empty() {
        e.push("prefixes", "a network needs at least one prefix");
    }
    let mut prefixes: Vec<(usize, Prefix)> = Vec::new();
    for (i, s) in n.prefixes.iter().enumerate() {
        let Some(p) = e.prefix(format!("prefixes/{i}"), s) else {
            continue;
        };
        if let Some((j, o)) = prefixes.iter().find(|(_, o)| o.overlaps(&p)) {
            e.push(
                format!("prefixes/{i}"),
                format!("prefix '{p}' overlaps '{o}' (prefixes/{j})"),
            );
        }
        prefixes.push((i, p));
    }
    let has_v4 = prefixes.iter().any(|(_, p)| p.addr().is_ipv4());
    let has_v6 = prefixes.iter().any(|(_, p)| !p.addr().is_ipv4());
    let in_network = |ip: IpAddr| prefixes.iter().any(|(_, p)| p.contains(ip));
    let list = n.prefixes.join(", ");
    // Checks a prefix written for this network is of a family it has (once its own
    // prefixes parsed: otherwise every prefix would be reported).
    let family_ok =
        |p: &Prefix| prefixes.is_empty() || if p.addr().is_ipv4() { has_v4 } else { has_v6 };

    // Route tables first: subnets refer to them.
    let mut tables: BTreeSet<&str> = BTreeSet::new();
    let mut drop_route: Option<String> = None;
    for (i, t) in n.route_tables.iter().enumerate() {
        let at = format!("route_tables/{i}");
        e.name(&join(&at, "name"), "route table", &t.name);
        if !tables.insert(t.name.as_str()) {
            e.push(
                join(&at, "name"),
                format!("route table '{}' is defined twice", t.name),
            );
        }
        let mut seen: BTreeMap<(IpAddr, u8), usize> = BTreeMap::new();
        for (j, r) in t.routes.iter().enumerate() {
            let rat = format!("{at}/routes/{j}");
            if let Some(p) = e.prefix(join(&rat, "prefix"), &r.prefix) {
                if !family_ok(&p) {
                    e.push(
                        join(&rat, "prefix"),
                        format!(
                            "route '{p}' is {} but the network has no {} prefix",
                            family_name(&p.addr()),
                            family_name(&p.addr())
                        ),
                    );
                }
                if let Some(k) = seen.insert((p.addr(), p.len()), j) {
                    e.push(
                        join(&rat, "prefix"),
                        format!("route '{p}' is already in the table ({at}/routes/{k})"),
                    );
                }
            }
            match &r.next_hop {
                NextHop::Node(node) => {
                    if !n.nodes.iter().any(|x| &x.name == node) {
                        e.push(
                            join(&rat, "next_hop"),
                            format!("next hop node '{node}' is not a node of the network"),
                        );
                    }
                }
                NextHop::Drop => {
                    drop_route.get_or_insert_with(|| rat.clone());
                }
                NextHop::Host => {}
            }
        }
    }

    // Subnets.
    let mut subnets: BTreeMap<&str, Option<Prefix>> = BTreeMap::new();
    let mut subnet_prefixes: Vec<(usize, Prefix)> = Vec::new();
    let mut gateways: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (i, s) in n.subnets.iter().enumerate() {
        let at = format!("subnets/{i}");
        e.name(&join(&at, "name"), "subnet", &s.name);
        if subnets.contains_key(s.name.as_str()) {
            e.push(
                join(&at, "name"),
                format!("subnet '{}' is defined twice", s.name),
            );
        }
        let prefix = e.prefix(join(&at, "prefix"), &s.prefix);
        if let Some(p) = prefix {
            if !prefixes.is_empty()
                && !prefixes
                    .iter()
                    .any(|(_, np)| prefix_covers(Some(*np), Some(p)))
            {
                e.push(
                    join(&at, "prefix"),
                    format!("subnet '{p}' is outside the network's prefixes ({list})"),
                );
            }
            if let Some((j, o)) = subnet_prefixes.iter().find(|(_, o)| o.overlaps(&p)) {
                e.push(
                    join(&at, "prefix"),
                    format!("subnet '{p}' overlaps subnet '{o}' (subnets/{j})"),
                );
            }
            subnet_prefixes.push((i, p));
        }
        if let Some(g) = &s.gateway
            && let Some(ip) = e.ip(join(&at, "gateway"), g)
        {
            if let Some(p) = prefix
                && !p.contains(ip)
            {
                e.push(
                    join(&at, "gateway"),
                    format!("gateway {ip} is outside the subnet {p}"),
                );
            }
            gateways.insert(ip, join(&at, "gateway"));
        }
        if let Some(t) = &s.route_table
            && !tables.contains(t.as_str())
        {
            e.push(
                join(&at, "route_table"),
                format!("route table '{t}' is not defined"),
            );
        }
        subnets.entry(s.name.as_str()).or_insert(prefix);
    }

    let groups: BTreeSet<&str> = n.security_groups.iter().map(|g| g.name.as_str()).collect();

    // Nodes.
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ips: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut macs: BTreeMap<Mac, usize> = BTreeMap::new();
    let mut vfs: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, node) in n.nodes.iter().enumerate() {
        let at = format!("nodes/{i}");
        e.name(&join(&at, "name"), "node", &node.name);
        if let Some(j) = names.insert(node.name.as_str(), i) {
            e.push(
                join(&at, "name"),
                format!("node '{}' is already defined (nodes/{j})", node.name),
            );
        }
        if let Some(ip) = e.ip(join(&at, "ip"), &node.ip) {
            if !prefixes.is_empty() && !in_network(ip) {
                e.push(
                    join(&at, "ip"),
                    format!("{ip} is outside the network's prefixes ({list})"),
                );
            }
            if let Some(Some(p)) = node.subnet.as_deref().and_then(|s| subnets.get(s))
                && !p.contains(ip)
            {
                e.push(
                    join(&at, "ip"),
                    format!(
                        "{ip} is outside subnet '{}' ({p})",
                        node.subnet.as_deref().unwrap_or_default()
                    ),
                );
            }
            if let Some(j) = ips.insert(ip, i) {
                e.push(
                    join(&at, "ip"),
                    format!("address {ip} is already used by node '{}'", n.nodes[j].name),
                );
            }
            if let Some(g) = gateways.get(&ip) {
                e.push(
                    join(&at, "ip"),
                    format!("address {ip} is the gateway of a subnet ({g})"),
                );
            }
        }
        if let Some(mac) = e.mac(join(&at, "mac"), &node.mac) {
            if mac.0[0] & 1 != 0 {
                e.push(
                    join(&at, "mac"),
                    format!("'{mac}' is a multicast MAC; a node needs a unicast one"),
                );
            }
            if let Some(j) = macs.insert(mac, i) {
                e.push(
                    join(&at, "mac"),
                    format!("MAC {mac} is already used by node '{}'", n.nodes[j].name),
                );
            }
        }
        e.ip(join(&at, "host"), &node.host);
        e.mac(join(&at, "host_mac"), &node.host_mac);
        if let Some(s) = &node.subnet
            && !subnets.contains_key(s.as_str())
        {
            e.push(join(&at, "subnet"), format!("subnet '{s}' is not defined"));
        }
        let mut member_of = BTreeSet::new();
        for (k, g) in node.security_groups.iter().enumerate() {
            if !groups.contains(g.as_str()) {
                e.push(
                    format!("{at}/security_groups/{k}"),
                    format!("security group '{g}' is not defined"),
                );
            } else if !member_of.insert(g) {
                e.push(
                    format!("{at}/security_groups/{k}"),
                    format!("security group '{g}' is listed twice"),
                );
            }
        }
        if let Some(vf) = node.vf {
            if vf as usize >= NUM_VPORTS {
                e.push(
                    join(&at, "vf"),
                    format!(
                        "vf {vf} does not exist (the NIC has vf0-vf{})",
                        NUM_VPORTS - 1
                    ),
                );
            } else if let Some(j) = vfs.get(&vf)
                && n.nodes[*j].host == node.host
            {
                e.push(
                    join(&at, "vf"),
                    format!(
                        "vf {vf} of host {} is already used by node '{}'",
                        node.host, n.nodes[*j].name
                    ),
                );
            } else {
                vfs.insert(vf, i);
            }
        }
    }

    // Security groups.
    let mut seen_groups = BTreeSet::new();
    for (i, g) in n.security_groups.iter().enumerate() {
        let at = format!("security_groups/{i}");
        e.name(&join(&at, "name"), "security group", &g.name);
        if !seen_groups.insert(g.name.as_str()) {
            e.push(
                join(&at, "name"),
                format!("security group '{}' is defined twice", g.name),
            );
        }
        let mut parsed: Vec<(usize, ParsedRule)> = Vec::new();
        for (j, r) in g.rules.iter().enumerate() {
            let rat = format!("{at}/rules/{j}");
            let Some(p) = security_rule(&mut e, &rat, r, &family_ok) else {
                continue;
            };
            if r.priority == u16::MAX
                && let Some(route) = &drop_route
            {
                e.push(
                    join(&rat, "priority"),
                    format!(
                        "priority 65535 is reserved for blackhole routes ({route}) in this network"
                    ),
                );
            }
            let cover = parsed.iter().find(|(_, q)| {
                q.covers(&p) && (q.priority > p.priority || q.priority == p.priority && p.covers(q))
            });
            if let Some((k, q)) = cover {
                let why = if q.priority == p.priority {
                    format!("it repeats rule {k} of the group")
                } else {
                    format!(
                        "rule {k} of the group (priority {}) matches everything it matches",
                        q.priority
                    )
                };
                e.push(rat, format!("this rule can never match: {why}"));
            }
            parsed.push((j, p));
        }
        // A lower-priority rule written before a covering one is unreachable too.
        for (a, (j, p)) in parsed.iter().enumerate() {
            if let Some((k, q)) = parsed[a + 1..]
                .iter()
                .find(|(_, q)| q.covers(p) && q.priority > p.priority)
            {
                e.push(
                    format!("{at}/rules/{j}"),
                    format!(
                        "this rule can never match: rule {k} of the group (priority {}) matches everything it matches",
                        q.priority
                    ),
                );
            }
        }
    }

    // Services.
    if let Some(d) = &n.services.dhcp {
        if d.lease_s == 0 {
            e.push(
                "services/dhcp/lease_s",
                "a DHCP lease of 0 seconds expires as it is granted",
            );
        }
        for (code, value) in &d.options {
            if *code == 0 || *code == 255 {
                e.push(
                    format!("services/dhcp/options/{code}"),
                    format!("DHCP option {code} is a pad/end marker, not an option"),
                );
            } else if value.len() > 255 {
                e.push(
                    format!("services/dhcp/options/{code}"),
                    format!("DHCP option {code} is {} bytes (at most 255)", value.len()),
                );
            }
        }
    }
    for (i, s) in n.services.dns.servers.iter().enumerate() {
        e.ip(format!("services/dns/servers/{i}"), s);
    }
    for (i, d) in n.services.dns.search.iter().enumerate() {
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            e.push(
                format!("services/dns/search/{i}"),
                format!("'{d}' is not a domain name"),
            );
        }
    }
    e.done()
}

fn security_rule(
    e: &mut Errors,
    at: &str,
    r: &SecurityRule,
    family_ok: &dyn Fn(&Prefix) -> bool,
) -> Option<ParsedRule> {
    let protocol = match &r.protocol {
        Some(s) => e.ok(join(at, "protocol"), entries::parse_protocol(s)),
        None => Some(None),
    };
    let remote = match &r.remote {
        Some(s) => e.prefix(join(at, "remote"), s).map(Some),
        None => Some(None),
    };
    if let Some(Some(p)) = remote
        && !family_ok(&p)
    {
        e.push(
            join(at, "remote"),
            format!(
                "remote '{p}' is {} but the network has no {} prefix; this rule could never match",
                family_name(&p.addr()),
                family_name(&p.addr())
            ),
        );
        return None;
    }
    let ports = match &r.ports {
        Some(s) => e.ok(join(at, "ports"), entries::parse_ports(s)),
        None => Some(PortRange::ANY),
    };
    if let Some(l) = &r.rate_limit {
        if r.action != RuleAction::Allow {
            e.push(
                join(at, "rate_limit"),
                "a rate limit lets traffic through up to a rate: it needs action 'allow'",
            );
        }
        if l.pps == 0 {
            e.push(
                join(at, "rate_limit/pps"),
                "0 packets a second lets nothing through; use action 'deny'",
            );
        }
        if l.burst == Some(0) {
            e.push(
                join(at, "rate_limit/burst"),
                "a burst of 0 packets lets nothing through; leave it out for one second's worth",
            );
        }
    }
    let (protocol, remote, ports) = (protocol?, remote?, ports?);
    if r.connections_only && protocol != Some(6) {
        e.push(
            join(at, "connections_only"),
            format!(
                "connection attempts are TCP: needs protocol 'tcp', not '{}'",
                r.protocol.as_deref().unwrap_or("any")
            ),
        );
        return None;
    }
    if !ports.is_any() && !entries::protocol_has_ports(protocol) {
        e.push(
            join(at, "ports"),
            format!(
                "ports '{ports}' need protocol tcp or udp, not '{}'; this rule could never match",
                r.protocol.as_deref().unwrap_or_default()
            ),
        );
        return None;
    }
    Some(ParsedRule {
        direction: r.direction,
        protocol,
        remote,
        ports,
        priority: r.priority,
        connections_only: r.connections_only,
    })
}

/// Checks a mirror rule's match and action; `nodes` are the shadowed network's node names.
fn mirror_rule(e: &mut Errors, at: &str, r: &MirrorRule, nodes: Option<&BTreeSet<&str>>) {
    if let (Some(node), Some(nodes)) = (&r.node, nodes)
        && !nodes.contains(node.as_str())
    {
        e.push(
            join(at, "node"),
            format!("node '{node}' is not in the shadowed network"),
        );
    }
    let parse_prefix = |e: &mut Errors, field: &str, s: &Option<String>| match s {
        Some(s) => e.prefix(join(at, field), s).map(Some),
        None => Some(None),
    };
    let src = parse_prefix(e, "src", &r.src);
    let dst = parse_prefix(e, "dst", &r.dst);
    let protocol = match &r.protocol {
        Some(s) => e.ok(join(at, "protocol"), entries::parse_protocol(s)),
        None => Some(None),
    };
    let ports = |e: &mut Errors, field: &str, s: &Option<String>| match s {
        Some(s) => e.ok(join(at, field), entries::parse_ports(s)),
        None => Some(PortRange::ANY),
    };
    let sport = ports(e, "src_ports", &r.src_ports);
    let dport = ports(e, "dst_ports", &r.dst_ports);
    if r.sample == 0 {
        e.push(
            join(at, "sample"),
            "sample 0 copies nothing; 1 copies every packet, N one in N",
        );
    }
    if let Some(t) = r.truncate
        && t < MIN_TRUNCATE
    {
        e.push(
            join(at, "truncate"),
            format!("truncate {t} is shorter than an Ethernet header ({MIN_TRUNCATE} bytes)"),
        );
    }
    if let (Some(protocol), Some(src), Some(dst), Some(sport), Some(dport)) =
        (protocol, src, dst, sport, dport)
    {
        let fields = RuleFields {
            direction: mirror_direction(r.direction),
            protocol,
            src,
            dst,
            sport,
            dport,
            tcp_syn: false,
        };
        if let Err(m) = fields.scoped(None) {
            let field = if sport.is_any() && dport.is_any() {
                "dst"
            } else if dport.is_any() {
                "src_ports"
            } else {
                "dst_ports"
            };
            e.push(join(at, field), m);
        }
    }
}

/// The NIC's direction for a mirror rule's.
pub(crate) fn mirror_direction(d: MirrorDirection) -> DirectionMatch {
    match d {
        MirrorDirection::ToNode => DirectionMatch::ToVm,
        MirrorDirection::FromNode => DirectionMatch::FromVm,
        MirrorDirection::Both => DirectionMatch::Both,
    }
}

/// Checks a shadow request against the production network it shadows.
pub fn validate_shadow_spec(
    spec: &ShadowSpec,
    production: &Network,
) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    shadow_spec(&mut e, spec, Some(production));
    e.done()
}

fn shadow_spec(e: &mut Errors, spec: &ShadowSpec, production: Option<&Network>) {
    if let Some(name) = &spec.name {
        e.name("name", "shadow", name);
    }
    if let Some(p) = production
        && spec.network != p.name
    {
        e.push(
            "network",
            format!(
                "network '{}' is not the shadowed network '{}'",
                spec.network, p.name
            ),
        );
    }
    if spec.ttl_s == 0 {
        e.push(
            "ttl_s",
            "a lifetime of 0 seconds expires the shadow at once",
        );
    }
    let c = &spec.capacity;
    if c.sample == 0 {
        e.push(
            "capacity/sample",
            "sample 0 copies nothing; 1 copies every packet, N one in N",
        );
    }
    if c.mbps > 0 && c.burst_bytes < MIN_BURST {
        e.push(
            "capacity/burst_bytes",
            format!(
                "policer burst {} bytes is below {MIN_BURST} (one full-size copy must fit)",
                c.burst_bytes
            ),
        );
    }
    e.endpoint("collector", &spec.collector);
    let nodes: Option<BTreeSet<&str>> =
        production.map(|p| p.nodes.iter().map(|n| n.name.as_str()).collect());
    let node_ips: BTreeMap<IpAddr, &str> = production
        .map(|p| {
            p.nodes
                .iter()
                .filter_map(|n| Some((n.ip.parse().ok()?, n.name.as_str())))
                .collect()
        })
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut overlay = BTreeMap::new();
    for (i, a) in spec.analysis_nodes.iter().enumerate() {
        let at = format!("analysis_nodes/{i}");
        e.name(&join(&at, "name"), "analysis node", &a.name);
        if !names.insert(a.name.as_str()) {
            e.push(
                join(&at, "name"),
                format!("analysis node '{}' is defined twice", a.name),
            );
        }
        if a.kind.trim().is_empty() {
            e.push(
                join(&at, "kind"),
                "an analysis node needs a kind (suricata, detector, ...)",
            );
        }
        e.endpoint(&join(&at, "endpoint"), &a.endpoint);
        if let Some(s) = &a.ip
            && let Some(ip) = e.ip(join(&at, "ip"), s)
        {
            if let Some(node) = node_ips.get(&ip) {
                e.push(
                    join(&at, "ip"),
                    format!("address {ip} is production node '{node}''s, replicated in the shadow"),
                );
            }
            if let Some(other) = overlay.insert(ip, a.name.as_str()) {
                e.push(
                    join(&at, "ip"),
                    format!("address {ip} is already used by analysis node '{other}'"),
                );
            }
        }
        honeypot(e, &at, a);
    }
    let mut excluded = BTreeSet::new();
    for (i, x) in spec.exclude_nodes.iter().enumerate() {
        if let Some(nodes) = &nodes
            && !nodes.contains(x.as_str())
        {
            e.push(
                format!("exclude_nodes/{i}"),
                format!("node '{x}' is not in the shadowed network"),
            );
        } else if !excluded.insert(x) {
            e.push(
                format!("exclude_nodes/{i}"),
                format!("node '{x}' is listed twice"),
            );
        }
    }
    for (i, r) in spec.policy.rules.iter().enumerate() {
        mirror_rule(e, &format!("policy/rules/{i}"), r, nodes.as_ref());
    }
}

/// Checks an automation rule; with `production`, its template is checked against that network
/// as [`validate_shadow_spec`] does; without it (the network is not known yet), everything that
/// does not need the network.
pub fn validate_automation(
    a: &Automation,
    production: Option<&Network>,
) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.name("name", "automation rule", &a.name);
    e.name("network", "network", &a.network);
    if !(1..=4).contains(&a.max_severity) {
        e.push(
            "max_severity",
            format!(
                "severity {} is outside 1 (highest) to 4 (lowest)",
                a.max_severity
            ),
        );
    }
    if a.template.network != a.network {
        e.push(
            "template/network",
            format!(
                "the template shadows network '{}' but the rule watches '{}'",
                a.template.network, a.network
            ),
        );
    }
    if let Some(p) = production
        && p.name != a.network
    {
        e.push(
            "network",
            format!("network '{}' is not '{}'", a.network, p.name),
        );
    }
    let mut t = Errors::default();
    // The template's network was checked above against the rule's.
    shadow_spec(
        &mut t,
        &a.template,
        production.filter(|p| p.name == a.template.network),
    );
    e.0.extend(t.0.into_iter().map(|f| f.nested("template")));
    e.done()
}

#[cfg(test)]
mod tests;
