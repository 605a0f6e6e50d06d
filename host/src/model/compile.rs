//! The model's desired state compiled into the table entries of one NIC (a [`Plan`]).
//!
//! - A network becomes a VNI entry (map misses, ACL defaults per direction). Its nodes whose
//!   `host` is this NIC's substrate address ([`local_node`]) are bound to their VF and mapped
//!   locally; the others are mapped to their host.
//! - A security group's rules become ACL rules scoped to the network's VNI, only where this NIC
//!   enforces them: for its local member nodes (`dst` = the node for `to_node`, `src` = the
//!   node for `from_node`, `remote` on the other side), or as one rule without a node address
//!   when every node of the network is a member. A rule whose `remote` is of the other family
//!   than a member's address does not apply to that member and gets no entry for it.
//! - Routes: a route table applies to the nodes of the subnets that name it. A `drop` route
//!   becomes an ACL deny `from_node` toward its prefix, at priority 65535 so it wins over
//!   every security rule (validation reserves that priority in networks with drop routes).
//!   Routes toward a node (an appliance) or the host are validated and versioned but not
//!   programmed: the map is an exact match on the destination address and cannot steer a
//!   prefix to a next hop; traffic to addresses the map does not hold follows the network's
//!   `miss` setting (the host's stack, or dropped).
//! - A shadow becomes a shadow VNI entry naming its production VNI, its mirror session (tunnel,
//!   mode, collector, policer from its capacity), its replicas (the production node's overlay
//!   address and MAC in the shadow VNI, in the map and as the target of copies in the shadow
//!   map; local replicas on their VF), its analysis nodes that have an overlay address (map
//!   entries in the shadow VNI), and its mirror rules as mirror filters on the VF of every local
//!   production node they select, with the rule's sampling multiplied by the capacity's.
//!   Nothing in a shadow VNI maps to a production address or VF: the NIC drops anything that
//!   would cross (`shadow_isolation`).
//!
//! ACL and mirror-filter slots are stable: a [`SlotAllocator`] remembers the slot of every
//! entry by the identity of its rule (what it matches, not its position or priority), so a
//! recompile after adding, removing or reprioritising a rule rewrites only the slots of that
//! rule, and slots of removed rules are reused.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::{Deserialize, Serialize};
use shadownet_hw::{
    NUM_SESSIONS, NUM_VPORTS, Port,
    layout::{
        Mac, Prefix, VNI_MAX,
        acl::{AclAction, AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
        rule::DirectionMatch,
        session::{Encap, MirrorSession, Mode},
        vni::VniEntry,
        vport::VportEntry,
    },
    table::TableId,
};

use super::{
    MirrorRuleAction, Miss, Mitigation, Network, NextHop, Node, RuleAction, RuleDirection, Shadow,
    ShadowEncap, ShadowMode,
    validate::{
        FieldError, mirror_direction, validate_name, validate_network, validate_shadow_spec,
    },
};
use crate::{
    driver::PortConfig,
    entries::{self, ReplicaAt, RuleFields, VfAllocator},
    netdesc::{LocalPort, Plan},
};

/// Everything of one tenant that the NIC carries.
pub struct TenantState<'a> {
    /// The tenant's name.
    pub tenant: &'a str,
    /// Its production networks, current versions.
    pub networks: Vec<&'a Network>,
    /// Its live shadows, each with the production network version it captured.
    pub shadows: Vec<(&'a Shadow, &'a Network)>,
    /// Its committed block rules (mitigations in state `active`).
    pub blocks: Vec<&'a Mitigation>,
}

/// Stable slots of ACL rules and mirror filters, and stable rule ids, by rule identity. The
/// daemon keeps it (as JSON) with the NIC's state so that recompiles move nothing that did not
/// change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotAllocator {
    /// ACL slot of every entry, by entry identity.
    #[serde(default)]
    acl: BTreeMap<String, u32>,
    /// Mirror-filter slot of every entry, by entry identity.
    #[serde(default)]
    mirror: BTreeMap<String, u32>,
    /// Rule id (reported with counters and traces) of every rule, by rule identity.
    #[serde(default)]
    rule_ids: BTreeMap<String, u32>,
}

impl SlotAllocator {
    /// ACL slots by entry identity.
    pub fn acl_slots(&self) -> &BTreeMap<String, u32> {
        &self.acl
    }

    /// Mirror-filter slots by entry identity.
    pub fn mirror_slots(&self) -> &BTreeMap<String, u32> {
        &self.mirror
    }
}

/// Gives every wanted identity a number: the one it had, or the lowest free one from `first`.
/// Identities not wanted any more are forgotten, their numbers free again.
fn assign(
    held: &mut BTreeMap<String, u32>,
    wanted: &[String],
    first: u32,
    table: &str,
    capacity: u32,
) -> Result<Vec<u32>, CompileError> {
    let needed = wanted.len() as u32;
    if needed > capacity {
        return Err(CompileError::Capacity {
            table: table.to_string(),
            needed,
            capacity,
        });
    }
    let wanted_set: BTreeSet<&String> = wanted.iter().collect();
    held.retain(|k, _| wanted_set.contains(k));
    let mut used: BTreeSet<u32> = held.values().copied().collect();
    let mut next = first;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let n = match held.get(w) {
            Some(n) => *n,
            None => {
                while used.contains(&next) {
                    next += 1;
                }
                used.insert(next);
                held.insert(w.clone(), next);
                next
            }
        };
        out.push(n);
    }
    Ok(out)
}

/// A compiled desired state.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Every entry of the NIC.
    pub plan: Plan,
    /// Table entries each tenant occupies (VNIs, VF bindings, map, shadow map, ACL, mirror
    /// filters), for its `max_table_entries` limit.
    pub entries_by_tenant: BTreeMap<String, u32>,
    /// What each rule id stands for: `tenant/network/security_groups/web/rules/0`,
    /// `tenant/network/route_tables/main/routes/10.0.0.0/8`,
    /// `tenant/shadows/s1/policy/rules/2`.
    pub rule_ids: BTreeMap<u32, String>,
}

/// Why a desired state cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Documents with problems; paths start with `tenant/networks/<name>/` or
    /// `tenant/shadows/<name>/`.
    #[error("{}", invalid_message(.0))]
    Invalid(Vec<FieldError>),
    /// More entries than a table holds.
    #[error("table {table} would need {needed} entries; it holds {capacity}")]
    Capacity {
        /// The table.
        table: String,
        /// Entries needed.
        needed: u32,
        /// Entries it holds.
        capacity: u32,
    },
    /// Two networks (production or shadow) with one VNI.
    #[error("VNI {vni} is used by both {first} and {second}")]
    VniClash {
        /// The VNI.
        vni: u32,
        /// The first user (`tenant/networks/name` or `tenant/shadows/name`).
        first: String,
        /// The second user.
        second: String,
    },
    /// Two local endpoints on one VF.
    #[error("vf {vf} is claimed by both {first} and {second}")]
    VfClash {
        /// The VF.
        vf: u16,
        /// The first claimant (`tenant/network/node` or `tenant/shadow/node`).
        first: String,
        /// The second claimant.
        second: String,
    },
    /// A node or replica on this host without a VF (see [`assign_vfs`]).
    #[error("{who} runs on this host but has no VF assigned")]
    VfMissing {
        /// The node (`tenant/network/node`) or replica (`tenant/shadow/node`).
        who: String,
    },
    /// No VF left for a node or replica on this host.
    #[error("{who}: no free VF left (the NIC has {vfs})")]
    OutOfVfs {
        /// The node or replica that needs one.
        who: String,
        /// VFs of the NIC.
        vfs: usize,
    },
    /// Two shadows with one mirror session.
    #[error("mirror session {session} is used by both {first} and {second}")]
    SessionClash {
        /// The session.
        session: u16,
        /// The first shadow (`tenant/shadows/name`).
        first: String,
        /// The second.
        second: String,
    },
}

fn invalid_message(errors: &[FieldError]) -> String {
    let n = errors.len();
    let mut s = format!("{n} problem{}", if n == 1 { "" } else { "s" });
    for e in errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}

/// Whether a node's `host` is this NIC's substrate address (IPv4 or IPv6).
pub fn local_node(port: &PortConfig, host: &str) -> bool {
    host.parse::<IpAddr>()
        .is_ok_and(|ip| entries::is_local_address(port, ip))
}

/// Assigns the lowest free VF to every node and replica on this host that has none, keeping
/// the VFs already assigned. `networks` and `shadows` must be everything this NIC carries, so
/// that every VF taken is known. Returns what was assigned (`tenant/network/node` or
/// `tenant/shadow/node`, VF).
pub fn assign_vfs(
    port: &PortConfig,
    networks: &mut [(&str, &mut Network)],
    shadows: &mut [(&str, &mut Shadow)],
) -> Result<Vec<(String, u16)>, CompileError> {
    let mut vfs = VfAllocator::default();
    let clash = |vfs: &VfAllocator, vf: u16, who: String| CompileError::VfClash {
        vf,
        first: vfs.holder(vf).unwrap_or_default().to_string(),
        second: who,
    };
    for (tenant, n) in networks.iter() {
        for node in n.nodes.iter().filter(|x| local_node(port, &x.host)) {
            if let Some(vf) = node.vf {
                let who = format!("{tenant}/{}/{}", n.name, node.name);
                vfs.claim(vf, &who).map_err(|_| clash(&vfs, vf, who))?;
            }
        }
    }
    for (tenant, s) in shadows.iter() {
        for r in s.replicas.iter().filter(|r| local_node(port, &r.host)) {
            if let Some(vf) = r.vf {
                let who = format!("{tenant}/{}/{}", s.name, r.node);
                vfs.claim(vf, &who).map_err(|_| clash(&vfs, vf, who))?;
            }
        }
    }
    let mut assigned = Vec::new();
    let out_of_vfs = |who: String| CompileError::OutOfVfs {
        who,
        vfs: NUM_VPORTS,
    };
    for (tenant, n) in networks.iter_mut() {
        let name = n.name.clone();
        for node in n.nodes.iter_mut() {
            if node.vf.is_none() && local_node(port, &node.host) {
                let who = format!("{tenant}/{name}/{}", node.name);
                let vf = vfs.next(&who).map_err(|_| out_of_vfs(who.clone()))?;
                node.vf = Some(vf);
                assigned.push((who, vf));
            }
        }
    }
    for (tenant, s) in shadows.iter_mut() {
        let name = s.name.clone();
        for r in s.replicas.iter_mut() {
            if r.vf.is_none() && local_node(port, &r.host) {
                let who = format!("{tenant}/{name}/{}", r.node);
                let vf = vfs.next(&who).map_err(|_| out_of_vfs(who.clone()))?;
                r.vf = Some(vf);
                assigned.push((who, vf));
            }
        }
    }
    Ok(assigned)
}

/// An ACL or mirror-filter entry waiting for its slot.
struct Pending<T> {
    tenant: String,
    /// Identity of the entry (its rule's identity and the node it is for).
    entry: String,
    /// Identity of the rule.
    rule: String,
    /// Path of the rule in the current version.
    path: String,
    value: T,
}

struct Builder<'p> {
    port: &'p PortConfig,
    plan: Plan,
    counts: BTreeMap<String, u32>,
    acl: Vec<Pending<AclRule>>,
    mirror: Vec<Pending<MirrorFilter>>,
    vfs: BTreeMap<u16, String>,
    invalid: Vec<FieldError>,
}

/// The rule fields a mitigation names (source, destination, protocol, ports, connection
/// attempts), in both directions; `None` when a field does not parse (validation refuses
/// such a rule before it is stored, so this only keeps compile total).
fn mitigation_fields(m: &Mitigation) -> Option<RuleFields> {
    let src = m.rule.src_prefix().ok()?;
    let dst = m.rule.dst_prefix().transpose().ok()?;
    let protocol = m
        .rule
        .protocol
        .as_deref()
        .map_or(Ok(None), entries::parse_protocol)
        .ok()?;
    let dport = m
        .rule
        .dst_ports
        .as_deref()
        .map_or(
            Ok(shadownet_hw::layout::PortRange::ANY),
            entries::parse_ports,
        )
        .ok()?;
    Some(RuleFields {
        direction: DirectionMatch::Both,
        protocol,
        // Every source (a rate limit's `0.0.0.0/0`) is no source constraint, of either family.
        src: (!src.is_empty()).then_some(src),
        dst,
        sport: shadownet_hw::layout::PortRange::ANY,
        dport,
        tcp_syn: m.rule.connections_only,
    })
}

fn count(counts: &mut BTreeMap<String, u32>, tenant: &str) {
    *counts.entry(tenant.to_string()).or_default() += 1;
}

/// Occurrence-numbered identities, so that two rules with one match stay distinct.
#[derive(Default)]
struct Identities(BTreeMap<String, u32>);

impl Identities {
    fn next(&mut self, base: String) -> String {
        let n = self.0.entry(base.clone()).or_default();
        *n += 1;
        format!("{base}#{n}")
    }
}

impl Builder<'_> {
    fn claim_vf(&mut self, vf: u16, who: &str) -> Result<(), CompileError> {
        if let Some(first) = self.vfs.get(&vf) {
            return Err(CompileError::VfClash {
                vf,
                first: first.clone(),
                second: who.to_string(),
            });
        }
        self.vfs.insert(vf, who.to_string());
        Ok(())
    }

    /// Where a remote endpoint is; an error when this NIC has no substrate address of its
    /// family (it could not encapsulate toward it).
    fn remote(&mut self, path: String, host: &str, host_mac: &str) -> Option<(IpAddr, Mac)> {
        let ip: IpAddr = host.parse().ok()?;
        let mac: Mac = host_mac.parse().ok()?;
        let has_family = match ip {
            IpAddr::V4(_) => self.port.local_ipv4.is_some(),
            IpAddr::V6(_) => self.port.local_ipv6.is_some(),
        };
        if !has_family {
            self.invalid.push(FieldError::new(
                path,
                format!(
                    "host {ip} is {} but this NIC has no {} substrate address",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" },
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                ),
            ));
            return None;
        }
        Some((ip, mac))
    }

    fn local(&self, host: &str) -> bool {
        local_node(self.port, host)
    }

    fn network(&mut self, tenant: &str, n: &Network) -> Result<(), CompileError> {
        let t = tenant;
        self.plan.vnis.push((
            n.vni,
            VniEntry {
                shadow: false,
                miss_to_host: n.miss == Miss::Host,
                default_deny_to_vm: n.default_to_node == RuleAction::Deny,
                default_deny_from_vm: n.default_from_node == RuleAction::Deny,
                production_vni: None,
            },
        ));
        count(&mut self.counts, t);
        self.plan.networks.insert(format!("{t}/{}", n.name), n.vni);
        for (i, node) in n.nodes.iter().enumerate() {
            let Ok(ip) = node.ip.parse::<IpAddr>() else {
                continue;
            };
            let who = format!("{t}/{}/{}", n.name, node.name);
            if self.local(&node.host) {
                let vf = node
                    .vf
                    .ok_or(CompileError::VfMissing { who: who.clone() })?;
                self.claim_vf(vf, &who)?;
                let mac: Mac = node.mac.parse().unwrap_or_default();
                self.plan.vports.push((
                    vf,
                    VportEntry {
                        vni: n.vni,
                        mac,
                        enabled: true,
                    },
                ));
                self.plan.map.push((
                    MapKey { vni: n.vni, ip },
                    entries::local_map_value(self.port, ip, vf, false),
                ));
                self.plan.local_ports.push(LocalPort {
                    port: Port::Vport(vf),
                    name: who,
                    vni: n.vni,
                });
                count(&mut self.counts, t);
                count(&mut self.counts, t);
            } else if let Some((hip, hmac)) = self.remote(
                format!("{t}/networks/{}/nodes/{i}/host", n.name),
                &node.host,
                &node.host_mac,
            ) {
                self.plan.map.push((
                    MapKey { vni: n.vni, ip },
                    MapValue {
                        substrate_ip: hip,
                        substrate_mac: hmac,
                        local_vport: None,
                        shadow: false,
                    },
                ));
                count(&mut self.counts, t);
            }
        }
        self.security_groups(t, n);
        self.drop_routes(t, n);
        Ok(())
    }

    /// The nodes an ACL rule is written for: `[None]` (one rule for the whole VNI) when every
    /// node of the network is a member and one is local; each local member otherwise.
    fn acl_targets<'n>(
        &self,
        n: &'n Network,
        member: impl Fn(&Node) -> bool,
    ) -> Vec<Option<&'n Node>> {
        let members: Vec<&Node> = n.nodes.iter().filter(|x| member(x)).collect();
        let local: Vec<&Node> = members
            .iter()
            .copied()
            .filter(|x| self.local(&x.host))
            .collect();
        if local.is_empty() {
            Vec::new()
        } else if members.len() == n.nodes.len() {
            vec![None]
        } else {
            local.into_iter().map(Some).collect()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_acl(
        &mut self,
        tenant: &str,
        n: &Network,
        rule: &str,
        path: &str,
        target: Option<&Node>,
        toward_node: bool,
        remote: Option<Prefix>,
        fields: RuleFields,
        action: AclAction,
    ) {
        let node = target
            .and_then(|x| x.ip.parse::<IpAddr>().ok())
            .map(Prefix::host);
        let (src, dst) = if toward_node {
            (remote, node)
        } else {
            (node, remote)
        };
        let fields = RuleFields { src, dst, ..fields };
        // A remote prefix of the other family than the node's address: the rule does not
        // apply to that node.
        let Ok(matches) = fields.scoped(Some(n.vni)) else {
            return;
        };
        self.acl.push(Pending {
            tenant: tenant.to_string(),
            entry: format!("{rule}@{}", target.map_or("*", |x| x.name.as_str())),
            rule: rule.to_string(),
            path: path.to_string(),
            value: AclRule { matches, action },
        });
    }

    fn security_groups(&mut self, t: &str, n: &Network) {
        for g in &n.security_groups {
            let targets = self.acl_targets(n, |x| x.security_groups.contains(&g.name));
            if targets.is_empty() {
                continue;
            }
            let mut ids = Identities::default();
            for (k, r) in g.rules.iter().enumerate() {
                let rule = ids.next(format!(
                    "{t}/{}/security_groups/{}/{:?}/{}/{}/{}",
                    n.name,
                    g.name,
                    r.direction,
                    r.protocol.as_deref().unwrap_or("any"),
                    r.remote.as_deref().unwrap_or("any"),
                    r.ports.as_deref().unwrap_or("any"),
                ));
                let path = format!("{t}/{}/security_groups/{}/rules/{k}", n.name, g.name);
                let (Ok(protocol), Ok(remote), Ok(ports)) = (
                    r.protocol
                        .as_deref()
                        .map_or(Ok(None), entries::parse_protocol),
                    r.remote.as_deref().map(entries::parse_prefix).transpose(),
                    r.ports.as_deref().map_or(
                        Ok(shadownet_hw::layout::PortRange::ANY),
                        entries::parse_ports,
                    ),
                ) else {
                    continue;
                };
                let toward = r.direction == RuleDirection::ToNode;
                let fields = RuleFields {
                    direction: if toward {
                        DirectionMatch::ToVm
                    } else {
                        DirectionMatch::FromVm
                    },
                    protocol,
                    src: None,
                    dst: None,
                    sport: shadownet_hw::layout::PortRange::ANY,
                    dport: ports,
                    tcp_syn: r.connections_only,
                };
                let action = AclAction {
                    priority: r.priority,
                    verdict: match (r.action, r.rate_limit) {
                        (RuleAction::Allow, Some(l)) => Verdict::Police {
                            rate_pps: l.pps,
                            burst: l.burst(),
                        },
                        (RuleAction::Allow, None) => Verdict::Allow,
                        (RuleAction::Deny, _) => Verdict::Deny,
                    },
                    rule_id: 0,
                };
                for target in &targets {
                    self.push_acl(t, n, &rule, &path, *target, toward, remote, fields, action);
                }
            }
        }
    }

    /// A committed block rule: denies for the network's whole VNI, both directions, at the
    /// highest priority (ties go to the lowest slot, so a security-group allow at 65535 in a
    /// lower slot could still win; validation keeps 65535 for drop routes and block rules).
    /// A rule whose network is gone is inert.
    fn block(&mut self, t: &str, networks: &[&Network], m: &Mitigation) {
        let Some(n) = networks.iter().find(|n| n.name == m.network) else {
            return;
        };
        let Some(fields) = mitigation_fields(m) else {
            return;
        };
        let path = format!("{t}/{}/mitigations/{}", n.name, m.id);
        // From the source, and (without ports, which would name the other side's ports) to
        // it: a blocked address neither reaches the network (or `dst`) nor hears from it.
        let mut sides = vec![("src", fields)];
        if m.rule.dst_ports.is_none() && !m.rule.connections_only {
            sides.push((
                "dst",
                RuleFields {
                    src: fields.dst,
                    dst: fields.src,
                    ..fields
                },
            ));
        }
        for (side, fields) in sides {
            let Ok(matches) = fields.scoped(Some(n.vni)) else {
                continue;
            };
            self.acl.push(Pending {
                tenant: t.to_string(),
                entry: format!("{path}@{side}"),
                rule: path.clone(),
                path: path.clone(),
                value: AclRule {
                    matches,
                    action: AclAction {
                        priority: u16::MAX,
                        verdict: Verdict::Deny,
                        rule_id: 0,
                    },
                },
            });
        }
    }

    /// A committed rate limit. The NIC's ACL takes one rule per packet, and a policing rule
    /// lets conforming packets through, so a rate limit placed above the network's rules
    /// would let through traffic they deny. Instead, every rule of the network that lets
    /// matching traffic in (an allow, or a looser police) gets a policed twin narrowed to the
    /// limit's traffic, one priority above it: the twin takes exactly the packets its original
    /// would have taken, and rules above both still win. The network's default, when it
    /// allows, gets a twin at priority 0. A twin whose priority another overlapping rule
    /// shares with a different verdict (a deny the original may have lost to in slot order,
    /// or one the twin would tie with) could change which rule wins: the limit is refused
    /// then, naming that rule. Must run after every other entry of the network is pushed.
    fn rate_limit(&mut self, t: &str, networks: &[&Network], m: &Mitigation) {
        let Some(limit) = m.rule.rate_limit else {
            return;
        };
        let Some(n) = networks.iter().find(|n| n.name == m.network) else {
            return;
        };
        let Some(fields) = mitigation_fields(m) else {
            return;
        };
        let Ok(scope) = (RuleFields {
            direction: DirectionMatch::ToVm,
            ..fields
        })
        .scoped(Some(n.vni)) else {
            return;
        };
        let path = format!("{t}/{}/mitigations/{}", n.name, m.id);
        let allows = |v: Verdict| matches!(v, Verdict::Allow | Verdict::Police { .. });
        // (what the twin copies, its priority, the region, the original's own limit)
        let mut admits: Vec<(String, Option<u16>, _, Option<u32>)> = Vec::new();
        for p in &self.acl {
            if p.value.matches.scope != Some(n.vni) || !allows(p.value.action.verdict) {
                continue;
            }
            if let Some(region) = entries::intersect_matches(&p.value.matches, &scope) {
                let own = match p.value.action.verdict {
                    Verdict::Police { rate_pps, .. } => Some(rate_pps),
                    _ => None,
                };
                admits.push((p.entry.clone(), Some(p.value.action.priority), region, own));
            }
        }
        if n.default_to_node == RuleAction::Allow {
            admits.push(("default".into(), None, scope, None));
        }
        let mut twins = Vec::new();
        for (original, priority, region, own) in admits {
            let Some(twin_priority) = priority.map_or(Some(0), |p| p.checked_add(1)) else {
                self.invalid.push(FieldError::new(
                    &path,
                    format!(
                        "the rate limit cannot be placed above {original}: it is at priority 65535 already"
                    ),
                ));
                continue;
            };
            let clash = self.acl.iter().find(|q| {
                q.value.matches.scope == Some(n.vni)
                    && !allows(q.value.action.verdict)
                    && (Some(q.value.action.priority) == priority
                        || q.value.action.priority == twin_priority)
                    && entries::intersect_matches(&q.value.matches, &region).is_some()
            });
            if let Some(q) = clash {
                self.invalid.push(FieldError::new(
                    &path,
                    format!(
                        "the rate limit would sit at priority {twin_priority} above {original}, \
                         where {} (priority {}, {:?}) overlaps it: which of the two wins \
                         would depend on table slots; move that rule's priority by one",
                        q.path, q.value.action.priority, q.value.action.verdict
                    ),
                ));
                continue;
            }
            let rate_pps = own.map_or(limit.pps, |o| o.min(limit.pps));
            twins.push(Pending {
                tenant: t.to_string(),
                entry: format!("{path}@{original}"),
                rule: path.clone(),
                path: path.clone(),
                value: AclRule {
                    matches: region,
                    action: AclAction {
                        priority: twin_priority,
                        verdict: Verdict::Police {
                            rate_pps,
                            burst: limit.burst(),
                        },
                        rule_id: 0,
                    },
                },
            });
        }
        self.acl.extend(twins);
    }

    fn drop_routes(&mut self, t: &str, n: &Network) {
        for table in &n.route_tables {
            let subnets: BTreeSet<&str> = n
                .subnets
                .iter()
                .filter(|s| s.route_table.as_deref() == Some(table.name.as_str()))
                .map(|s| s.name.as_str())
                .collect();
            let targets = self.acl_targets(n, |x| {
                x.subnet.as_deref().is_some_and(|s| subnets.contains(s))
            });
            for r in &table.routes {
                if r.next_hop != NextHop::Drop {
                    continue;
                }
                let Ok(prefix) = entries::parse_prefix(&r.prefix) else {
                    continue;
                };
                let path = format!(
                    "{t}/{}/route_tables/{}/routes/{}",
                    n.name, table.name, r.prefix
                );
                let fields = RuleFields {
                    direction: DirectionMatch::FromVm,
                    protocol: None,
                    src: None,
                    dst: None,
                    sport: shadownet_hw::layout::PortRange::ANY,
                    dport: shadownet_hw::layout::PortRange::ANY,
                    tcp_syn: false,
                };
                let action = AclAction {
                    priority: u16::MAX,
                    verdict: Verdict::Deny,
                    rule_id: 0,
                };
                for target in &targets {
                    self.push_acl(
                        t,
                        n,
                        &path,
                        &path,
                        *target,
                        false,
                        Some(prefix),
                        fields,
                        action,
                    );
                }
            }
        }
    }

    fn shadow(
        &mut self,
        t: &str,
        s: &Shadow,
        captured: &Network,
        live: &Network,
    ) -> Result<(), CompileError> {
        let prod_vni = live.vni;
        self.plan
            .vnis
            .push((s.vni, entries::shadow_vni_entry(prod_vni)));
        count(&mut self.counts, t);
        self.plan.networks.insert(format!("{t}/{}", s.name), s.vni);
        let spec = &s.spec;
        let cap = &spec.capacity;
        self.plan.sessions.push((
            s.session,
            MirrorSession {
                enabled: true,
                encap: match spec.encap {
                    ShadowEncap::Vxlan => Encap::Vxlan,
                    ShadowEncap::Geneve => Encap::Geneve,
                },
                mode: match spec.mode {
                    ShadowMode::Mirror => Mode::Mirror,
                    ShadowMode::Redirect => Mode::Redirect,
                },
                shadow_vni: s.vni,
                collector_ip: spec
                    .collector
                    .ip
                    .parse()
                    .unwrap_or(shadownet_hw::layout::UNSPECIFIED),
                collector_mac: spec.collector.mac.parse().unwrap_or_default(),
                policer_mbps: cap.mbps,
                policer_burst: if cap.mbps == 0 { 0 } else { cap.burst_bytes },
            },
        ));
        for (i, r) in s.replicas.iter().enumerate() {
            let Some(node) = captured.nodes.iter().find(|x| x.name == r.node) else {
                continue;
            };
            let Ok(ip) = node.ip.parse::<IpAddr>() else {
                continue;
            };
            let who = format!("{t}/{}/{}", s.name, r.node);
            let at = if self.local(&r.host) {
                let vf = r.vf.ok_or(CompileError::VfMissing { who: who.clone() })?;
                self.claim_vf(vf, &who)?;
                self.plan.vports.push((
                    vf,
                    VportEntry {
                        vni: s.vni,
                        mac: node.mac.parse().unwrap_or_default(),
                        enabled: true,
                    },
                ));
                self.plan.local_ports.push(LocalPort {
                    port: Port::Vport(vf),
                    name: who,
                    vni: s.vni,
                });
                count(&mut self.counts, t);
                ReplicaAt {
                    substrate_ip: entries::local_substrate(self.port, ip),
                    substrate_mac: self.port.local_mac,
                    local_vport: Some(vf),
                }
            } else {
                let Some((hip, hmac)) = self.remote(
                    format!("{t}/shadows/{}/replicas/{i}/host", s.name),
                    &r.host,
                    &r.host_mac,
                ) else {
                    continue;
                };
                ReplicaAt {
                    substrate_ip: hip,
                    substrate_mac: hmac,
                    local_vport: None,
                }
            };
            let (map, shadow_map) = entries::replica_entries(s.session, prod_vni, s.vni, ip, at);
            self.plan.map.push(map);
            self.plan.shadow_map.push(shadow_map);
            count(&mut self.counts, t);
            count(&mut self.counts, t);
        }
        for (i, a) in spec.analysis_nodes.iter().enumerate() {
            let Some(ip) = a.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) else {
                continue;
            };
            let Some((hip, hmac)) = self.remote(
                format!("{t}/shadows/{}/spec/analysis_nodes/{i}/endpoint/ip", s.name),
                &a.endpoint.ip,
                &a.endpoint.mac,
            ) else {
                continue;
            };
            self.plan.map.push((
                MapKey { vni: s.vni, ip },
                MapValue {
                    substrate_ip: hip,
                    substrate_mac: hmac,
                    local_vport: None,
                    shadow: true,
                },
            ));
            count(&mut self.counts, t);
        }
        // Mirror filters go on the VFs of the live production nodes on this NIC.
        let vports: BTreeMap<&str, u16> = live
            .nodes
            .iter()
            .filter(|x| self.local(&x.host))
            .filter_map(|x| Some((x.name.as_str(), x.vf?)))
            .collect();
        let mut ids = Identities::default();
        for (k, r) in spec.policy.rules.iter().enumerate() {
            let rule = ids.next(format!(
                "{t}/shadows/{}/{}/{:?}/{}/{}/{}/{}/{}",
                s.name,
                r.node.as_deref().unwrap_or("*"),
                r.direction,
                r.protocol.as_deref().unwrap_or("any"),
                r.src.as_deref().unwrap_or("any"),
                r.dst.as_deref().unwrap_or("any"),
                r.src_ports.as_deref().unwrap_or("any"),
                r.dst_ports.as_deref().unwrap_or("any"),
            ));
            let path = format!("{t}/shadows/{}/policy/rules/{k}", s.name);
            let prefix = |p: &Option<String>| p.as_deref().map(entries::parse_prefix).transpose();
            let ports = |p: &Option<String>| {
                p.as_deref().map_or(
                    Ok(shadownet_hw::layout::PortRange::ANY),
                    entries::parse_ports,
                )
            };
            let (Ok(protocol), Ok(src), Ok(dst), Ok(sport), Ok(dport)) = (
                r.protocol
                    .as_deref()
                    .map_or(Ok(None), entries::parse_protocol),
                prefix(&r.src),
                prefix(&r.dst),
                ports(&r.src_ports),
                ports(&r.dst_ports),
            ) else {
                continue;
            };
            let fields = RuleFields {
                direction: mirror_direction(r.direction),
                protocol,
                src,
                dst,
                sport,
                dport,
                tcp_syn: false,
            };
            let targets: Vec<(&str, u16)> = match &r.node {
                Some(name) => vports
                    .get(name.as_str())
                    .map(|v| (name.as_str(), *v))
                    .into_iter()
                    .collect(),
                None => vports.iter().map(|(k, v)| (*k, *v)).collect(),
            };
            for (node, vport) in targets {
                let Ok(matches) = fields.scoped(Some(vport as u32)) else {
                    continue;
                };
                self.mirror.push(Pending {
                    tenant: t.to_string(),
                    entry: format!("{rule}@{node}"),
                    rule: rule.clone(),
                    path: path.clone(),
                    value: MirrorFilter {
                        matches,
                        action: MirrorAction {
                            priority: r.priority,
                            verdict: match r.action {
                                MirrorRuleAction::Mirror => MirrorVerdict::Mirror,
                                MirrorRuleAction::Skip => MirrorVerdict::DoNotMirror,
                            },
                            rule_id: 0,
                            session: s.session,
                            truncate: r.truncate,
                            sample_one_in: r.sample.saturating_mul(cap.sample).max(1),
                        },
                    },
                });
            }
        }
        Ok(())
    }
}

/// Checks every document and the properties compile needs on top: session and VNI ranges,
/// replicas naming nodes of the captured network with valid hosts.
fn check(tenants: &[TenantState<'_>]) -> Vec<FieldError> {
    let mut out = Vec::new();
    for ts in tenants {
        let t = ts.tenant;
        if let Err(e) = validate_name("tenant", t) {
            out.push(e.nested(t));
        }
        for n in &ts.networks {
            if let Err(es) = validate_network(n) {
                let at = format!("{t}/networks/{}", n.name);
                out.extend(es.into_iter().map(|e| e.nested(&at)));
            }
        }
        for (s, captured) in &ts.shadows {
            let at = format!("{t}/shadows/{}", s.name);
            if let Err(es) = validate_shadow_spec(&s.spec, captured) {
                out.extend(es.into_iter().map(|e| e.nested(&format!("{at}/spec"))));
            }
            if s.vni == 0 || s.vni > VNI_MAX {
                out.push(FieldError::new(
                    format!("{at}/vni"),
                    format!("VNI {} is outside 1-{VNI_MAX}", s.vni),
                ));
            }
            if s.session as usize >= NUM_SESSIONS {
                out.push(FieldError::new(
                    format!("{at}/session"),
                    format!(
                        "session {} is beyond the NIC's {NUM_SESSIONS} sessions",
                        s.session
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, r) in s.replicas.iter().enumerate() {
                let rat = format!("{at}/replicas/{i}");
                if !captured.nodes.iter().any(|x| x.name == r.node) {
                    out.push(FieldError::new(
                        format!("{rat}/node"),
                        format!(
                            "node '{}' is not in the captured network '{}'",
                            r.node, captured.name
                        ),
                    ));
                } else if !seen.insert(r.node.as_str()) {
                    out.push(FieldError::new(
                        format!("{rat}/node"),
                        format!("node '{}' has two replicas", r.node),
                    ));
                }
                if let Err(m) = entries::parse_ip(&r.host) {
                    out.push(FieldError::new(format!("{rat}/host"), m));
                }
                if let Err(m) = entries::parse_mac(&r.host_mac) {
                    out.push(FieldError::new(format!("{rat}/host_mac"), m));
                }
                if let Some(vf) = r.vf
                    && vf as usize >= NUM_VPORTS
                {
                    out.push(FieldError::new(
                        format!("{rat}/vf"),
                        format!(
                            "vf {vf} does not exist (the NIC has vf0-vf{})",
                            NUM_VPORTS - 1
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Compiles the desired state of every tenant on this NIC into one [`Plan`].
///
/// Nothing is compiled from an invalid document: the error lists every problem of every
/// document. `slots` is updated only when compiling succeeds.
pub fn compile(
    port: &PortConfig,
    tenants: &[TenantState<'_>],
    slots: &mut SlotAllocator,
) -> Result<Compiled, CompileError> {
    let invalid = check(tenants);
    if !invalid.is_empty() {
        return Err(CompileError::Invalid(invalid));
    }
    // VNIs and sessions are shared by every tenant of the fabric.
    let mut vnis: BTreeMap<u32, String> = BTreeMap::new();
    let mut sessions: BTreeMap<u16, String> = BTreeMap::new();
    for ts in tenants {
        let t = ts.tenant;
        let users = ts
            .networks
            .iter()
            .map(|n| (n.vni, format!("{t}/networks/{}", n.name)))
            .chain(
                ts.shadows
                    .iter()
                    .map(|(s, _)| (s.vni, format!("{t}/shadows/{}", s.name))),
            );
        for (vni, who) in users {
            if let Some(first) = vnis.insert(vni, who.clone()) {
                return Err(CompileError::VniClash {
                    vni,
                    first,
                    second: who,
                });
            }
        }
        for (s, _) in &ts.shadows {
            let who = format!("{t}/shadows/{}", s.name);
            if let Some(first) = sessions.insert(s.session, who.clone()) {
                return Err(CompileError::SessionClash {
                    session: s.session,
                    first,
                    second: who,
                });
            }
        }
    }

    let mut b = Builder {
        port,
        plan: Plan {
            port: *port,
            ..Plan::default()
        },
        counts: BTreeMap::new(),
        acl: Vec::new(),
        mirror: Vec::new(),
        vfs: BTreeMap::new(),
        invalid: Vec::new(),
    };
    for ts in tenants {
        b.counts.entry(ts.tenant.to_string()).or_default();
        for n in &ts.networks {
            b.network(ts.tenant, n)?;
        }
        for (s, captured) in &ts.shadows {
            // The shadow follows production's current VNI and VFs; its topology is the
            // captured version's.
            let live = ts
                .networks
                .iter()
                .find(|n| n.name == s.spec.network)
                .copied()
                .unwrap_or(captured);
            b.shadow(ts.tenant, s, captured, live)?;
        }
        // Blocks first: rate limits are placed relative to every other rule.
        for m in ts.blocks.iter().filter(|m| !m.rule.is_rate_limit()) {
            b.block(ts.tenant, &ts.networks, m);
        }
        for m in ts.blocks.iter().filter(|m| m.rule.is_rate_limit()) {
            b.rate_limit(ts.tenant, &ts.networks, m);
        }
    }
    if !b.invalid.is_empty() {
        return Err(CompileError::Invalid(b.invalid));
    }
    for (table, n) in [
        (TableId::Vni, b.plan.vnis.len()),
        (TableId::Map, b.plan.map.len()),
        (TableId::ShadowMap, b.plan.shadow_map.len()),
    ] {
        if n as u32 > table.capacity() {
            return Err(CompileError::Capacity {
                table: table.name().to_string(),
                needed: n as u32,
                capacity: table.capacity(),
            });
        }
    }

    let mut next = slots.clone();
    let acl_slots = assign(
        &mut next.acl,
        &b.acl.iter().map(|p| p.entry.clone()).collect::<Vec<_>>(),
        0,
        TableId::Acl.name(),
        TableId::Acl.capacity(),
    )?;
    let mirror_slots = assign(
        &mut next.mirror,
        &b.mirror.iter().map(|p| p.entry.clone()).collect::<Vec<_>>(),
        0,
        TableId::MirrorFilter.name(),
        TableId::MirrorFilter.capacity(),
    )?;
    let mut rules: Vec<String> = Vec::new();
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    for (rule, path) in b
        .acl
        .iter()
        .map(|p| (&p.rule, &p.path))
        .chain(b.mirror.iter().map(|p| (&p.rule, &p.path)))
    {
        if !paths.contains_key(rule) {
            rules.push(rule.clone());
            paths.insert(rule.clone(), path.clone());
        }
    }
    let ids = assign(&mut next.rule_ids, &rules, 1, "rule ids", u32::MAX)?;
    let id_of: BTreeMap<&String, u32> = rules.iter().zip(ids.iter().copied()).collect();
    let mut rule_ids = BTreeMap::new();
    for (rule, id) in &id_of {
        if let Some(path) = paths.get(*rule) {
            rule_ids.insert(*id, path.clone());
        }
    }
    for (p, slot) in b.acl.into_iter().zip(acl_slots) {
        let mut rule = p.value;
        rule.action.rule_id = id_of.get(&p.rule).copied().unwrap_or(0);
        b.plan.acl.push((slot, rule));
        count(&mut b.counts, &p.tenant);
    }
    for (p, slot) in b.mirror.into_iter().zip(mirror_slots) {
        let mut f = p.value;
        f.action.rule_id = id_of.get(&p.rule).copied().unwrap_or(0);
        b.plan.mirror_filters.push((slot, f));
        count(&mut b.counts, &p.tenant);
    }
    b.plan.acl.sort_by_key(|(s, _)| *s);
    b.plan.mirror_filters.sort_by_key(|(s, _)| *s);
    b.plan.local_ports.sort_by_key(|p| p.port);
    *slots = next;
    Ok(Compiled {
        plan: b.plan,
        entries_by_tenant: b.counts,
        rule_ids,
    })
}

#[cfg(test)]
mod tests;
