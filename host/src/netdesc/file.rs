//! The TOML form of a network description, as written by people (see `examples/`).

use serde::Deserialize;
use toml::Spanned;

/// A whole description file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// This NIC's substrate addressing.
    pub nic: Spanned<NicDesc>,
    /// Tenants.
    #[serde(default)]
    pub tenant: Vec<Spanned<TenantDesc>>,
    /// Virtual networks.
    #[serde(default)]
    pub network: Vec<Spanned<NetworkDesc>>,
    /// VMs.
    #[serde(default)]
    pub vm: Vec<Spanned<VmDesc>>,
    /// Shadows of networks.
    #[serde(default)]
    pub shadow: Vec<Spanned<ShadowDesc>>,
    /// Mirror rules.
    #[serde(default)]
    pub mirror: Vec<Spanned<MirrorDesc>>,
    /// ACL rules.
    #[serde(default)]
    pub acl: Vec<Spanned<AclDesc>>,
}

/// `[nic]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicDesc {
    /// Substrate MAC.
    pub mac: String,
    /// Substrate IPv4 address.
    pub ipv4: Option<String>,
    /// Substrate IPv6 address.
    pub ipv6: Option<String>,
    /// Uplink MTU (default 9216).
    pub mtu: Option<u32>,
    /// VXLAN UDP port (default 4789).
    pub vxlan_port: Option<u16>,
    /// Geneve UDP port (default 6081).
    pub geneve_port: Option<u16>,
}

/// `[[tenant]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDesc {
    /// Name.
    pub name: String,
}

/// What happens to a packet whose destination is not in the map.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Miss {
    /// The standard path: the host's stack (PF).
    Host,
    /// Dropped.
    Drop,
}

/// ACL default for a direction.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Default {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// `[[network]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDesc {
    /// Name.
    pub name: String,
    /// Tenant owning it.
    pub tenant: String,
    /// VNI.
    pub vni: u32,
    /// Address prefixes of the network.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Map misses (default: host).
    pub miss: Option<Miss>,
    /// ACL default toward VMs (default: allow).
    pub default_to_vm: Option<Default>,
    /// ACL default from VMs (default: allow).
    pub default_from_vm: Option<Default>,
}

/// `[[vm]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDesc {
    /// Name.
    pub name: String,
    /// Network.
    pub network: String,
    /// Overlay address.
    pub ip: String,
    /// MAC address.
    pub mac: String,
    /// "local" (behind this NIC) or the substrate address of its host.
    pub host: String,
    /// Substrate MAC toward a remote host.
    pub host_mac: Option<String>,
    /// VF of a local VM (default: the next free one).
    pub vf: Option<u16>,
}

/// Tunnel format of a shadow's copies.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EncapDesc {
    /// VXLAN.
    Vxlan,
    /// Geneve with shadow metadata.
    Geneve,
}

/// Mirror or redirect.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModeDesc {
    /// Copies; production never delayed.
    Mirror,
    /// Production frames go through the shadow first.
    Redirect,
}

/// A substrate endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDesc {
    /// Substrate address.
    pub ip: String,
    /// Substrate MAC of the next hop toward it.
    pub mac: String,
}

/// A policer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicerDesc {
    /// Rate in Mbit/s.
    pub mbps: u32,
    /// Burst in bytes.
    pub burst: u32,
}

/// A shadow node standing in for a production VM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDesc {
    /// The production VM it replicates.
    pub vm: String,
    /// "local" or the substrate address of its host.
    pub host: String,
    /// Substrate MAC toward a remote host.
    pub host_mac: Option<String>,
    /// VF of a local shadow node.
    pub vf: Option<u16>,
}

/// `[[shadow]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowDesc {
    /// Name.
    pub name: String,
    /// Production network it shadows.
    pub network: String,
    /// Shadow VNI.
    pub vni: u32,
    /// Mirror session number on this NIC.
    pub session: u16,
    /// Tunnel format of the copies (default geneve).
    pub encap: Option<EncapDesc>,
    /// Mirror or redirect (default mirror).
    pub mode: Option<ModeDesc>,
    /// The analysis node copies go to when the destination has no shadow node.
    pub collector: EndpointDesc,
    /// Mirror bandwidth cap.
    pub policer: Option<PolicerDesc>,
    /// Shadow nodes.
    #[serde(default)]
    pub node: Vec<NodeDesc>,
}

/// Direction of a rule.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DirectionDesc {
    /// Toward the VM.
    ToVm,
    /// From the VM.
    FromVm,
    /// Both.
    Both,
}

/// What a mirror rule does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MirrorActionDesc {
    /// Copy.
    Mirror,
    /// Do not copy (an exception).
    Skip,
}

/// `[[mirror]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorDesc {
    /// The shadow the copies go to.
    pub shadow: String,
    /// The local VM whose traffic is selected (default: every local VM of the network).
    pub vm: Option<String>,
    /// Direction (default both).
    pub direction: Option<DirectionDesc>,
    /// Protocol: tcp, udp, icmp, icmpv6, sctp, a number, or any (default).
    pub protocol: Option<String>,
    /// Source prefix.
    pub src: Option<String>,
    /// Destination prefix.
    pub dst: Option<String>,
    /// Source ports: "N" or "N-M".
    pub src_ports: Option<String>,
    /// Destination ports.
    pub dst_ports: Option<String>,
    /// Copy one in N matching packets (default 1).
    pub sample: Option<u32>,
    /// Truncate copies to this many bytes.
    pub truncate: Option<u16>,
    /// mirror (default) or skip.
    pub action: Option<MirrorActionDesc>,
    /// Priority (default 100; higher wins).
    pub priority: Option<u16>,
}

/// Verdict of an ACL rule.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AclActionDesc {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
    /// Allow up to `rate_pps` (after `burst` back to back); drop the rest.
    Police,
}

/// `[[acl]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclDesc {
    /// Network (VNI) the rule applies to.
    pub network: String,
    /// Direction (default both).
    pub direction: Option<DirectionDesc>,
    /// Protocol (default any).
    pub protocol: Option<String>,
    /// Source prefix.
    pub src: Option<String>,
    /// Destination prefix.
    pub dst: Option<String>,
    /// Source ports.
    pub src_ports: Option<String>,
    /// Destination ports.
    pub dst_ports: Option<String>,
    /// allow, deny or police.
    pub action: AclActionDesc,
    /// Priority (higher wins).
    pub priority: u16,
    /// police: packets a second let through.
    pub rate_pps: Option<u32>,
    /// police: packets let through back to back (default one second's worth).
    pub burst: Option<u32>,
    /// Only TCP connection attempts (SYN without ACK); needs protocol tcp.
    #[serde(default)]
    pub connections_only: bool,
}
