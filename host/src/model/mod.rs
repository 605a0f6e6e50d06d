//! The control plane's model: what tenants declare (networks, nodes, security groups, routes,
//! network services), the shadows they ask for, and the limits they live within.
//!
//! These types are the JSON documents of the API and the bodies the store versions. Addresses,
//! prefixes and port ranges are kept as the strings people wrote, so that validation
//! ([`validate`]) can name the exact field and value at fault instead of a deserializer's
//! column number; [`compile`] turns a validated desired state into the entries of one NIC.
//!
//! Every object is owned by one tenant; names are unique within a tenant and kind.

pub mod compile;
pub mod diff;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod mitigation;
pub mod validate;

pub use mitigation::{BlockRule, Mitigation, MitigationPolicy, MitigationState};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A tenant and its resource limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Name: lowercase letters, digits and `-`, 1 to 63 characters.
    pub name: String,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: String,
    /// Resource limits (R12).
    #[serde(default)]
    pub limits: Limits,
}

/// Per-tenant resource limits. A request that would exceed one is refused with the limit's
/// name, its value and by how much it would be exceeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Shadows alive at once.
    pub max_shadows: u32,
    /// Mirrored bandwidth summed over the tenant's shadows, in Mbit/s (programmed as each
    /// shadow's mirror policer).
    pub max_mirror_mbps: u32,
    /// Mirror rules summed over the tenant's shadows.
    pub max_mirror_rules: u32,
    /// NIC table entries the tenant's networks and shadows may occupy.
    pub max_table_entries: u32,
    /// Longest shadow lifetime, in seconds.
    pub max_shadow_lifetime_s: u64,
    /// Bytes the store may hold for the tenant (every version of every object, artefacts).
    pub max_stored_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_shadows: 4,
            max_mirror_mbps: 10_000,
            max_mirror_rules: 256,
            max_table_entries: 100_000,
            max_shadow_lifetime_s: 7 * 24 * 3600,
            max_stored_bytes: 256 << 20,
        }
    }
}

/// A production virtual network: its VNI, address space, nodes, security and routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name, unique within the tenant.
    pub name: String,
    /// VXLAN/Geneve network identifier (1 to 2^24-1), unique on the fabric.
    pub vni: u32,
    /// Address prefixes of the network (`192.168.10.0/24`, `fd00:10::/64`).
    pub prefixes: Vec<String>,
    /// Subnets carved from the prefixes.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// VMs and other endpoints.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Security groups; nodes name the groups they are in.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
    /// Route tables; subnets name the table they use.
    #[serde(default)]
    pub route_tables: Vec<RouteTable>,
    /// DHCP and DNS settings handed to nodes.
    #[serde(default)]
    pub services: NetworkServices,
    /// Where packets to an address the network does not know go.
    #[serde(default)]
    pub miss: Miss,
    /// Verdict for traffic towards a node when no rule matches.
    #[serde(default)]
    pub default_to_node: RuleAction,
    /// Verdict for traffic from a node when no rule matches.
    #[serde(default)]
    pub default_from_node: RuleAction,
}

/// Where packets to unknown destinations go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Miss {
    /// The host's own stack (the standard path).
    #[default]
    Host,
    /// Dropped and counted.
    Drop,
}

/// A subnet of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// Name, unique within the network.
    pub name: String,
    /// Prefix, inside one of the network's prefixes; subnets do not overlap.
    pub prefix: String,
    /// Gateway address, inside the prefix.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Route table used by nodes of the subnet.
    #[serde(default)]
    pub route_table: Option<String>,
}

/// A VM (or other endpoint) of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Name, unique within the network.
    pub name: String,
    /// Overlay address.
    pub ip: String,
    /// Overlay MAC.
    pub mac: String,
    /// Substrate address of the host the node runs on.
    pub host: String,
    /// Substrate MAC of that host (the next hop on the fabric).
    pub host_mac: String,
    /// Subnet the node is in (must contain `ip`).
    #[serde(default)]
    pub subnet: Option<String>,
    /// Security groups the node is in.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The VF of this NIC the node is attached to, when it runs on this host; assigned by the
    /// control plane when absent and then kept.
    #[serde(default)]
    pub vf: Option<u16>,
    /// What the node is: opaque to the NIC, versioned and replicated into shadows.
    #[serde(default)]
    pub definition: NodeDefinition,
}

/// A node's definition as the compute layer knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDefinition {
    /// Image the node boots.
    #[serde(default)]
    pub image: String,
    /// Size or flavour.
    #[serde(default)]
    pub size: String,
    /// Anything else, as opaque JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

/// A security group: rules applied to the nodes that are members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// Name, unique within the network.
    pub name: String,
    /// Rules; the highest priority match wins.
    #[serde(default)]
    pub rules: Vec<SecurityRule>,
}

/// One security-group rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityRule {
    /// Traffic towards the member nodes (`to_node`) or from them (`from_node`).
    pub direction: RuleDirection,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, a protocol number, or absent for any.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The other side's prefix (source for `to_node`, destination for `from_node`).
    #[serde(default)]
    pub remote: Option<String>,
    /// Destination ports: `443`, `8000-8100`; absent for any.
    #[serde(default)]
    pub ports: Option<String>,
    /// Allow or deny.
    pub action: RuleAction,
    /// Higher wins; 0 to 65535.
    #[serde(default = "default_priority")]
    pub priority: u16,
    /// With `allow`: let at most this through (the NIC polices it), the rest is dropped
    /// and counted as `acl_policed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Only TCP connection attempts (SYN without ACK) match; needs protocol `tcp`. With a
    /// rate limit: new connections a second, whatever the established ones carry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connections_only: bool,
}

/// A security rule's rate limit: a token bucket in the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Packets a second let through once the burst is spent; at least 1.
    pub pps: u32,
    /// Packets let through back to back; at least 1 (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The burst, defaulted.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.pps).max(1)
    }
}

fn default_priority() -> u16 {
    100
}

/// Direction of a rule relative to the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleDirection {
    /// Traffic towards the node.
    ToNode,
    /// Traffic from the node.
    FromNode,
}

/// Verdict of a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Let it through.
    #[default]
    Allow,
    /// Drop it and count it.
    Deny,
}

/// A route table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// Name, unique within the network.
    pub name: String,
    /// Routes; the longest matching prefix wins.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix.
    pub prefix: String,
    /// Where matching traffic goes.
    pub next_hop: NextHop,
}

/// Next hop of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NextHop {
    /// A node of the network (an appliance).
    Node(String),
    /// The host's stack (the standard path, e.g. to the internet gateway).
    Host,
    /// Dropped (a blackhole route).
    Drop,
}

/// Network services settings handed to nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkServices {
    /// DHCP, when the network offers it.
    #[serde(default)]
    pub dhcp: Option<Dhcp>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Dns,
}

/// DHCP options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    /// Lease time in seconds.
    pub lease_s: u32,
    /// Extra options by number, as text.
    #[serde(default)]
    pub options: BTreeMap<u8, String>,
}

/// DNS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolver addresses.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
}

/// What a tenant asks for when it creates a shadow of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// Name, unique within the tenant; generated when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The production network to shadow.
    pub network: String,
    /// Mirror (copies; production never waits) or redirect (production waits for the
    /// shadow's verdict).
    #[serde(default)]
    pub mode: ShadowMode,
    /// Tunnel of the copies; Geneve carries session, direction and sequence number.
    #[serde(default)]
    pub encap: ShadowEncap,
    /// Lifetime in seconds; the shadow is deleted when it runs out.
    pub ttl_s: u64,
    /// Which production traffic is copied in.
    #[serde(default)]
    pub policy: MirrorPolicy,
    /// Analysis capacity: mirrored bandwidth and sampling (R6); changeable on its own.
    #[serde(default)]
    pub capacity: Capacity,
    /// Where copies go when their destination has no replica in the shadow.
    pub collector: Endpoint,
    /// Analysis nodes attached to the shadow network.
    #[serde(default)]
    pub analysis_nodes: Vec<AnalysisNode>,
    /// Production nodes that get no replica (copies to them go to the collector).
    #[serde(default)]
    pub exclude_nodes: Vec<String>,
}

/// Shadow mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShadowMode {
    /// Copies; production is never delayed.
    #[default]
    Mirror,
    /// Production receives a packet only after the shadow's verdict.
    Redirect,
}

/// Tunnel of mirror copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShadowEncap {
    /// VXLAN (UDP 4789).
    Vxlan,
    /// Geneve (UDP 6081) with the shadow-metadata option.
    #[default]
    Geneve,
}

/// A substrate endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Substrate address.
    pub ip: String,
    /// Substrate MAC (next hop).
    pub mac: String,
}

/// An analysis node of a shadow (IDS, anomaly detector, performance monitor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisNode {
    /// Name, unique within the shadow.
    pub name: String,
    /// What runs there: `suricata`, `detector`, or anything else.
    pub kind: String,
    /// Substrate endpoint of the node.
    pub endpoint: Endpoint,
    /// Overlay address of the node inside the shadow network, when shadow nodes address it
    /// directly (a resolver, a honeypot); it must not be a production node's address. Without
    /// one the node receives only what the shadow's session sends to it as collector.
    #[serde(default)]
    pub ip: Option<String>,
    /// For kind `honeypot` (a decoy at `ip`, which must be IPv4): what listens on it. A
    /// honeypot without services still answers ARP and pings, and refuses every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<HoneypotService>,
}

/// The kind of analysis node that is a decoy host answering probes in the shadow (R7).
pub const HONEYPOT_KIND: &str = "honeypot";

/// One listening service of a honeypot analysis node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoneypotService {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port it listens on.
    pub port: u16,
    /// What it says (sent on connection for services that speak first, otherwise in answer
    /// to the first request); absent: a plausible banner for well-known ports (SSH, FTP,
    /// SMTP, HTTP, Redis, MySQL, ...), else nothing.
    #[serde(default)]
    pub banner: Option<String>,
    /// Whether it talks first; absent: as the well-known service on that port does.
    #[serde(default)]
    pub speaks_first: Option<bool>,
}

/// The granular mirror policy of a shadow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    /// Rules; the highest priority match wins. No rules: nothing is mirrored.
    #[serde(default)]
    pub rules: Vec<MirrorRule>,
}

/// One mirror rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorRule {
    /// The production node whose traffic is selected; absent for every node of the network
    /// on this NIC.
    #[serde(default)]
    pub node: Option<String>,
    /// `to_node`, `from_node` or `both`.
    #[serde(default)]
    pub direction: MirrorDirection,
    /// Protocol name or number; absent for any.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Source prefix.
    #[serde(default)]
    pub src: Option<String>,
    /// Destination prefix.
    #[serde(default)]
    pub dst: Option<String>,
    /// Source ports.
    #[serde(default)]
    pub src_ports: Option<String>,
    /// Destination ports.
    #[serde(default)]
    pub dst_ports: Option<String>,
    /// Copy one packet in N (1: all).
    #[serde(default = "one")]
    pub sample: u32,
    /// Cut copies to this many bytes.
    #[serde(default)]
    pub truncate: Option<u16>,
    /// `mirror`, or `skip` to carve an exception.
    #[serde(default)]
    pub action: MirrorRuleAction,
    /// Higher wins.
    #[serde(default = "default_priority")]
    pub priority: u16,
}

fn one() -> u32 {
    1
}

/// Direction selected by a mirror rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MirrorDirection {
    /// Towards the node.
    ToNode,
    /// From the node.
    FromNode,
    /// Both.
    #[default]
    Both,
}

/// What a mirror rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MirrorRuleAction {
    /// Copy.
    #[default]
    Mirror,
    /// Do not copy (an exception to a broader rule).
    Skip,
}

/// Analysis capacity of a shadow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    /// Mirror policer rate in Mbit/s (0: no cap, counted as the NIC's full uplink rate
    /// against the tenant's limit).
    pub mbps: u32,
    /// Policer burst in bytes (at least one full-size frame).
    pub burst_bytes: u32,
    /// A sampling factor applied on top of every rule's own: copy one in N.
    pub sample: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            mbps: 1_000,
            burst_bytes: 262_144,
            sample: 1,
        }
    }
}

/// A shadow as the control plane keeps it: the request, what was provisioned for it, and
/// where it is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// Name, unique within the tenant.
    pub name: String,
    /// What was asked for (after defaults).
    pub spec: ShadowSpec,
    /// The production network's version captured when the shadow was created: the shadow's
    /// topology is that version's, whatever production does later.
    pub network_version: u64,
    /// VNI allocated for the shadow network.
    pub vni: u32,
    /// NIC mirror session allocated for it.
    pub session: u16,
    /// Replicas of production nodes.
    pub replicas: Vec<Replica>,
    /// State.
    pub state: ShadowState,
    /// What created it.
    pub trigger: Trigger,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// When it expires, unix milliseconds.
    pub expires_at_ms: i64,
}

/// A shadow replica of a production node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    /// The production node it stands in for (same overlay address, in the shadow VNI).
    pub node: String,
    /// Substrate address of the host running the replica.
    pub host: String,
    /// Substrate MAC of that host.
    pub host_mac: String,
    /// The VF of this NIC it is attached to, when it runs on this host.
    #[serde(default)]
    pub vf: Option<u16>,
}

/// Where a shadow is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShadowState {
    /// Programmed in the NIC and receiving traffic.
    Active,
    /// Marked complete by its owner; being torn down.
    Completed,
    /// Its lifetime ran out; being torn down.
    Expired,
}

/// What created a shadow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "by", deny_unknown_fields)]
pub enum Trigger {
    /// An API call (the CLI uses the API too).
    Api {
        /// Who called.
        actor: String,
    },
    /// An automation rule fired on an alert.
    Automation {
        /// The rule.
        rule: String,
        /// The alert that fired it.
        alert: String,
    },
}

/// An automation rule: when an alert whose severity number is at most `max_severity` (1 is the
/// most severe, as in Suricata) concerns `network`, create a shadow from `template` unless one
/// created by this rule is still alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Automation {
    /// Name, unique within the tenant.
    pub name: String,
    /// The network watched.
    pub network: String,
    /// Lowest alert severity that fires the rule (1 = highest, as in Suricata).
    pub max_severity: u8,
    /// The shadow to create; its `network` must equal the rule's.
    pub template: ShadowSpec,
    /// Whether the rule is armed.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// An alert about a network, as analysis nodes report it to the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertReport {
    /// The network concerned.
    pub network: String,
    /// Suricata-style severity: 1 (high) to 4 (low).
    pub severity: u8,
    /// Signature or detector name.
    pub signature: String,
    /// Source address, when known.
    #[serde(default)]
    pub src_ip: Option<String>,
    /// Destination address, when known.
    #[serde(default)]
    pub dest_ip: Option<String>,
}
