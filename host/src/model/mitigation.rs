//! Mitigation (R4): the per-tenant policy that turns incidents into block rules in the
//! production NIC's ACL, and the block rules themselves.
//!
//! A block rule denies traffic from a source prefix inside one production network's VNI
//! (optionally only one protocol and destination ports), in both directions relative to the
//! network's VMs, and without ports also traffic to that prefix, at the highest ACL priority
//! so that no security-group rule of a higher slot can let it through. Rules are versioned objects like networks: proposing, committing, expiring and
//! withdrawing one are versions and audit records, and committing or removing one goes
//! through the normal change pipeline (compile, commit, reconcile).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::FieldError;
use crate::entries;

/// What the policy does with an incident that passes its thresholds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MitigationMode {
    /// Nothing: incidents are only recorded.
    Off,
    /// Block rules are proposed; a person commits them.
    #[default]
    Propose,
    /// Block rules are proposed and committed at once.
    Auto,
}

/// What makes findings the same incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    /// The same outside (attacking) address.
    Source,
    /// The same production address attacked.
    Target,
    /// The same signature (a campaign).
    Signature,
}

/// A tenant's mitigation policy: correlation window, thresholds, allow-list, limits, mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MitigationPolicy {
    /// Off, propose, or auto.
    pub mode: MitigationMode,
    /// An incident qualifies when its most severe finding has a Suricata severity number of at
    /// most this (1 = highest, 4 = lowest).
    pub min_severity: u8,
    /// An incident qualifies when it holds at least this many findings.
    pub min_findings: u32,
    /// With a value above 0: an incident whose findings carry a detector score qualifies only
    /// when its highest score reaches this. Findings without a score (Suricata's) are judged
    /// by severity and count alone.
    pub min_score: f64,
    /// Prefixes never blocked (resolvers, monitoring, partners): a rule whose source overlaps
    /// one is refused.
    pub allow_list: Vec<String>,
    /// Block rules active at once.
    pub max_rules: u32,
    /// Lifetime of a committed rule, seconds; it is removed from the NIC when it runs out.
    pub rule_ttl_s: u64,
    /// Findings join an incident whose last finding is at most this many seconds older.
    pub incident_window_s: u64,
    /// What makes findings the same incident (any one of these keys in common).
    pub group_by: Vec<GroupKey>,
    /// A qualifying incident with one target and at least this many distinct sources (a
    /// spoofed or distributed flood, which blocks by source cannot stop) gets a rate limit
    /// toward the target proposed. 0: never.
    pub flood_min_sources: u32,
    /// The rate limit's rate: the target's baseline rate (the detector's, for a SYN flood)
    /// times this.
    pub flood_headroom: f64,
    /// The least rate a flood's rate limit lets through, packets a second.
    pub flood_min_pps: u32,
}

impl Default for MitigationPolicy {
    fn default() -> Self {
        MitigationPolicy {
            mode: MitigationMode::Propose,
            min_severity: 2,
            min_findings: 3,
            min_score: 0.0,
            allow_list: Vec::new(),
            max_rules: 64,
            rule_ttl_s: 3600,
            incident_window_s: 300,
            group_by: vec![GroupKey::Source, GroupKey::Target, GroupKey::Signature],
            flood_min_sources: 8,
            flood_headroom: 4.0,
            flood_min_pps: 50,
        }
    }
}

/// Most block rules a policy may allow (a quarter of the NIC's ACL).
pub const MAX_BLOCK_RULES: u32 = shadownet_hw::table::TableId::Acl.capacity() / 4;

/// Longest rule lifetime and incident window: 30 days.
pub const MAX_MITIGATION_S: u64 = 30 * 24 * 3600;

/// Checks a policy; every problem at once.
pub fn validate_policy(p: &MitigationPolicy) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    if !(1..=4).contains(&p.min_severity) {
        errs.push(FieldError::new(
            "min_severity",
            format!("{} is outside 1 (high) to 4 (low)", p.min_severity),
        ));
    }
    if !p.min_score.is_finite() || p.min_score < 0.0 {
        errs.push(FieldError::new(
            "min_score",
            format!("{} is not a finite number of at least 0", p.min_score),
        ));
    }
    for (i, a) in p.allow_list.iter().enumerate() {
        if let Err(e) = entries::parse_prefix(a) {
            errs.push(FieldError::new(format!("allow_list/{i}"), e));
        }
    }
    if p.max_rules > MAX_BLOCK_RULES {
        errs.push(FieldError::new(
            "max_rules",
            format!(
                "{} is above {MAX_BLOCK_RULES} (a quarter of the NIC's ACL)",
                p.max_rules
            ),
        ));
    }
    for (field, v) in [
        ("rule_ttl_s", p.rule_ttl_s),
        ("incident_window_s", p.incident_window_s),
    ] {
        if !(1..=MAX_MITIGATION_S).contains(&v) {
            errs.push(FieldError::new(
                field,
                format!("{v} is outside 1 to {MAX_MITIGATION_S} seconds"),
            ));
        }
    }
    if !p.flood_headroom.is_finite() || p.flood_headroom < 1.0 {
        errs.push(FieldError::new(
            "flood_headroom",
            format!(
                "{} is not a finite number of at least 1 (the limit would cut normal traffic)",
                p.flood_headroom
            ),
        ));
    }
    if p.flood_min_pps == 0 {
        errs.push(FieldError::new(
            "flood_min_pps",
            "0 packets a second would let nothing through",
        ));
    }
    if p.group_by.is_empty() {
        errs.push(FieldError::new(
            "group_by",
            "name at least one of source, target, signature",
        ));
    }
    for (i, k) in p.group_by.iter().enumerate() {
        if p.group_by[..i].contains(k) {
            errs.push(FieldError::new(
                format!("group_by/{i}"),
                format!("{k:?} is listed twice"),
            ));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// What a mitigation rule matches: traffic from `src` inside the network's VNI (and, with
/// `dst`, toward that address only). Without `rate_limit` the rule blocks; with it, the rule
/// polices: of what the network's own rules let through toward `dst`, at most the rate
/// passes (a flood from many or spoofed sources, where no single source can be blocked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRule {
    /// Source prefix (`203.0.113.7/32`, or an address for a single host; `0.0.0.0/0` or
    /// `::/0` for every source, which only a rate limit may name).
    pub src: String,
    /// `tcp`, `udp`, `icmp`, a number, or absent for every protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Destination ports (`22`, `8000-8100`; tcp or udp only), absent for all.
    #[serde(default)]
    pub dst_ports: Option<String>,
    /// Destination inside the network (an address or a prefix): only traffic toward it.
    /// Required with `rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    /// Only TCP connection attempts (SYN without ACK); needs protocol `tcp`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connections_only: bool,
    /// Police instead of block: packets a second (and burst) let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::model::RateLimit>,
}

impl BlockRule {
    /// A rule blocking every packet from `src` (an address or a prefix).
    pub fn block(src: impl Into<String>) -> BlockRule {
        BlockRule {
            src: src.into(),
            protocol: None,
            dst_ports: None,
            dst: None,
            connections_only: false,
            rate_limit: None,
        }
    }

    /// The source as a prefix (a bare address is a host prefix).
    pub fn src_prefix(&self) -> Result<shadownet_hw::layout::Prefix, String> {
        address_or_prefix(&self.src)
    }

    /// The destination as a prefix, when the rule names one.
    pub fn dst_prefix(&self) -> Option<Result<shadownet_hw::layout::Prefix, String>> {
        self.dst.as_deref().map(address_or_prefix)
    }

    /// Whether the rule polices (a rate limit) rather than blocks.
    pub fn is_rate_limit(&self) -> bool {
        self.rate_limit.is_some()
    }
}

fn address_or_prefix(s: &str) -> Result<shadownet_hw::layout::Prefix, String> {
    if s.contains('/') {
        entries::parse_prefix(s)
    } else {
        s.parse::<std::net::IpAddr>()
            .map(shadownet_hw::layout::Prefix::host)
            .map_err(|_| format!("'{s}' is neither an address nor a prefix"))
    }
}

/// Checks a block rule; paths are under `at`.
pub fn validate_block_rule(r: &BlockRule, at: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Err(e) = r.src_prefix() {
        errs.push(FieldError::new(format!("{at}src"), e));
    }
    let proto = match r.protocol.as_deref().map(entries::parse_protocol) {
        Some(Err(e)) => {
            errs.push(FieldError::new(format!("{at}protocol"), e));
            None
        }
        Some(Ok(p)) => p,
        None => None,
    };
    if let Some(ports) = &r.dst_ports {
        if let Err(e) = entries::parse_ports(ports) {
            errs.push(FieldError::new(format!("{at}dst_ports"), e));
        } else if !matches!(proto, Some(6) | Some(17)) {
            errs.push(FieldError::new(
                format!("{at}dst_ports"),
                "ports need protocol tcp or udp",
            ));
        }
    }
    let dst = match r.dst_prefix() {
        Some(Err(e)) => {
            errs.push(FieldError::new(format!("{at}dst"), e));
            None
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    if let (Ok(src), Some(dst)) = (r.src_prefix(), dst)
        && src.addr().is_ipv4() != dst.addr().is_ipv4()
    {
        errs.push(FieldError::new(
            format!("{at}dst"),
            format!("'{dst}' and the source '{src}' are of different address families"),
        ));
    }
    if r.connections_only && proto != Some(6) {
        errs.push(FieldError::new(
            format!("{at}connections_only"),
            "connection attempts are TCP: needs protocol 'tcp'",
        ));
    }
    match &r.rate_limit {
        Some(l) => {
            if l.pps == 0 {
                errs.push(FieldError::new(
                    format!("{at}rate_limit/pps"),
                    "0 packets a second lets nothing through; block instead (leave rate_limit out)",
                ));
            }
            if l.burst == Some(0) {
                errs.push(FieldError::new(
                    format!("{at}rate_limit/burst"),
                    "a burst of 0 packets lets nothing through; leave it out for one second's worth",
                ));
            }
            if r.dst.is_none() {
                errs.push(FieldError::new(
                    format!("{at}dst"),
                    "a rate limit polices traffic toward one destination: name it",
                ));
            }
        }
        None => {
            if r.src_prefix().is_ok_and(|p| p.is_empty()) {
                errs.push(FieldError::new(
                    format!("{at}src"),
                    "blocking every source cuts the network off; name a narrower prefix or add a rate_limit",
                ));
            }
        }
    }
    errs
}

/// Where a mitigation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MitigationState {
    /// Proposed: not in the NIC; can be tried and committed.
    Proposed,
    /// Committed: in the production NIC's ACL until it expires or is withdrawn.
    Active,
    /// Its lifetime ran out; removed from the NIC.
    Expired,
    /// Withdrawn by a person; removed from the NIC if it was there.
    Withdrawn,
}

/// A block rule with where it came from and where it is in its life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    /// Identifier within the tenant (`m-1`, `m-2`, ...).
    pub id: String,
    /// The production network whose VNI the rule is programmed in.
    pub network: String,
    /// The shadow whose findings led to it (and whose captured tables a trial uses).
    #[serde(default)]
    pub shadow: Option<String>,
    /// The incident it answers.
    #[serde(default)]
    pub incident: Option<u64>,
    /// What it blocks.
    pub rule: BlockRule,
    /// State.
    pub state: MitigationState,
    /// `policy` (proposed by the mitigation policy) or the actor who proposed it.
    pub origin: String,
    /// Why it was proposed.
    pub reason: String,
    /// Lifetime once committed, seconds.
    pub ttl_s: u64,
    /// When proposed, unix milliseconds.
    pub created_at_ms: i64,
    /// When committed.
    #[serde(default)]
    pub committed_at_ms: Option<i64>,
    /// When it expires (committed rules).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// The last trial's report.
    #[serde(default)]
    pub last_trial: Option<TrialReport>,
}

/// Packets, bytes and flows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    /// Packets.
    pub packets: u64,
    /// Bytes (frames as replayed, without outer tunnel headers).
    pub bytes: u64,
    /// Distinct flows (protocol, addresses and ports as sent).
    pub flows: u64,
}

/// What a rule would have blocked of one production VM's traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmVolume {
    /// `network/vm`.
    pub vm: String,
    /// `to_vm` (traffic toward it) or `from_vm`.
    pub direction: String,
    /// What would have been blocked.
    pub blocked: Volume,
}

/// "What would it have blocked": a capture replayed through a scratch simulated NIC
/// programmed with the shadow's tables, with and without the candidate rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrialReport {
    /// The capture replayed (a path on the daemon's host, or `artefact:<name>`).
    pub capture: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// Frames in the capture.
    pub frames: u64,
    /// Frames fed to the scratch NIC (IP frames to or from a VM on this NIC).
    pub replayed: u64,
    /// Frames not replayed: not IP, unparseable, or between addresses this NIC does not serve.
    pub skipped: u64,
    /// Frames the ACL dropped even without the rule.
    pub already_blocked: u64,
    /// What the rule would have blocked.
    pub blocked: Volume,
    /// Of that, traffic of flows named in the shadow's findings (true positives).
    pub in_findings: Volume,
    /// Of that, traffic no finding names (collateral: possible false positives).
    pub not_in_findings: Volume,
    /// Per production VM and direction.
    pub per_vm: Vec<VmVolume>,
}
