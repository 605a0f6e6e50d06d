//! Findings from a shadow's analysis nodes (Suricata-EVE alerts): parsed, correlated to
//! production (R8), stored with the shadow, and grouped into incidents.
//!
//! Correlation joins a finding to the production network the shadow was captured from: the
//! shadow (by name, or by its VNI for the daemon's own pipeline) names the network version
//! it replicates; the finding's addresses are looked up among that version's nodes, which
//! gives the VM, its host substrate address and VF; the NIC's counters of that VF are read
//! at ingest. The side that is not a production node is the outside party (the attacker for
//! inbound alerts); a finding neither of whose addresses is a node is kept and says so.
//!
//! Grouping is deterministic: findings of a batch are taken in event-time order (ties in the
//! order sent); a finding joins the open incident of the same production network with the
//! lowest id that shares one of the policy's keys (outside address, target address,
//! signature) and whose time span is within the policy's window of the finding's time;
//! otherwise it opens a new incident.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shadownet_hw::{
    Port,
    counters::{PortCounter, port as port_counter},
};
use utoipa::ToSchema;

use super::{
    Caller, ControlError, Controller, World, from_json, kind,
    mitigation::Activation,
    object_id,
    telemetry::{HeavyHitter, protocol_number},
    to_json,
};
use crate::{
    driver::Device,
    model::{
        HONEYPOT_KIND, Network, Shadow, ShadowState,
        mitigation::{GroupKey, MitigationPolicy},
        validate::FieldError,
    },
    store::{FindingRecord, IncidentRecord},
};

/// Most events in one ingest call.
pub const MAX_BATCH: usize = 10_000;

/// Which shadow findings come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShadowRef {
    /// A tenant's shadow by name (the API).
    Name {
        /// The tenant.
        tenant: String,
        /// The shadow.
        name: String,
    },
    /// The shadow whose network has this VNI (the daemon's own analysis pipeline, which
    /// knows the VNI from the Geneve metadata of mirrored frames).
    Vni(u32),
}

/// A NIC port's counters at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortCounters {
    /// Packets received from the VM's VF.
    pub rx_packets: u64,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Packets sent to it.
    pub tx_packets: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Frames dropped on receive.
    pub rx_drops: u64,
    /// Frames dropped on transmit.
    pub tx_drops: u64,
}

/// A production VM a finding concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductionVm {
    /// Tenant.
    pub tenant: String,
    /// Production network.
    pub network: String,
    /// VM (node) name.
    pub vm: String,
    /// Overlay address.
    pub ip: String,
    /// Substrate address of its host.
    pub host: String,
    /// The VF of this NIC it is attached to, when it runs here.
    pub vf: Option<u16>,
    /// That VF's counters on the production NIC when the finding arrived.
    pub counters: Option<PortCounters>,
}

/// A finding joined to production.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Correlation {
    /// Production network the shadow replicates.
    pub network: String,
    /// The version of it the shadow captured.
    pub network_version: u64,
    /// The production VNI.
    pub vni: u32,
    /// The production VM with the source address, if any.
    pub src_vm: Option<ProductionVm>,
    /// The production VM with the destination address, if any.
    pub dest_vm: Option<ProductionVm>,
    /// Which side is production: `src`, `dest`, `both` or `none`.
    pub ours: String,
    /// The outside party (the side that is not production; when both or neither are, the
    /// flow's initiator as the event gives it, else the packet's source): what a block rule
    /// would name.
    pub outside: String,
    /// The production address attacked (the other side).
    pub target: String,
    /// Whether either address is a production node.
    pub matched: bool,
    /// In words.
    pub note: String,
    /// The finding's flow among the NIC's heavy hitters (telemetry top-K of the interval up
    /// to the ingest), when the telemetry ring is enabled and it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heavy_hitter: Option<HeavyHitter>,
}

/// A stored finding: the EVE alert's fields, the correlation, and the event as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// Sequence number (0 until stored).
    #[serde(default)]
    pub seq: u64,
    /// The shadow it came from.
    pub shadow: String,
    /// That shadow's VNI.
    pub shadow_vni: u32,
    /// Event time as sent.
    pub timestamp: String,
    /// Event time, unix milliseconds.
    pub at_ms: i64,
    /// Source address.
    pub src_ip: String,
    /// Source port.
    pub src_port: Option<u16>,
    /// Destination address.
    pub dest_ip: String,
    /// Destination port.
    pub dest_port: Option<u16>,
    /// Protocol as sent (`TCP`, `UDP`, ...).
    pub proto: Option<String>,
    /// Community ID of the flow.
    pub community_id: Option<String>,
    /// Signature id.
    pub signature_id: u64,
    /// Signature text.
    pub signature: String,
    /// Category.
    pub category: Option<String>,
    /// Suricata severity: 1 (high) to 4 (low).
    pub severity: u8,
    /// Detector score (`shadownet.score`), when the built-in detector raised it.
    pub score: Option<f64>,
    /// Detector explanation.
    pub explanation: Option<String>,
    /// The incident it was grouped into.
    pub incident: Option<u64>,
    /// Production side of it.
    pub correlation: Correlation,
    /// The event as received.
    #[schema(value_type = Object)]
    pub event: Value,
}

impl Finding {
    pub(super) fn from_record(r: FindingRecord) -> Result<Finding, ControlError> {
        let mut f: Finding = from_json(r.body)?;
        f.seq = r.seq;
        f.incident = r.incident;
        Ok(f)
    }
}

/// Where an incident is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Findings still join it.
    Open,
    /// A block rule answering it was committed; findings still join it.
    Mitigated,
    /// Closed by a person; new findings open a new incident.
    Closed,
}

impl IncidentState {
    fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Mitigated => "mitigated",
            IncidentState::Closed => "closed",
        }
    }
}

/// Findings of one signature in an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignatureCount {
    /// Signature id.
    pub signature_id: u64,
    /// Signature text.
    pub signature: String,
    /// Findings.
    pub count: u64,
}

/// Findings grouped: same source, target or campaign within the policy's window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// Id (0 until stored).
    #[serde(default)]
    pub id: u64,
    /// State.
    pub state: IncidentState,
    /// The production network concerned.
    pub network: String,
    /// Shadows whose findings it holds.
    pub shadows: Vec<String>,
    /// First finding, unix milliseconds (event time).
    pub first_seen_ms: i64,
    /// Last finding.
    pub last_seen_ms: i64,
    /// Findings.
    pub findings: u64,
    /// Findings per signature.
    pub signatures: Vec<SignatureCount>,
    /// Outside parties (what block rules name).
    pub sources: Vec<String>,
    /// Production addresses attacked.
    pub targets: Vec<String>,
    /// Production VMs involved (`network/vm`).
    pub vms: Vec<String>,
    /// Most severe finding (1 = highest).
    pub max_severity: u8,
    /// Highest detector score, when a finding had one.
    pub max_score: Option<f64>,
    /// Mitigations proposed for it.
    pub mitigations: Vec<String>,
    /// Sources the policy refused to block, with why.
    #[serde(default)]
    pub refused: Vec<String>,
    /// When it was closed.
    #[serde(default)]
    pub closed_at_ms: Option<i64>,
}

impl Incident {
    pub(super) fn from_record(r: IncidentRecord) -> Result<Incident, ControlError> {
        let mut i: Incident = from_json(r.body)?;
        i.id = r.id;
        Ok(i)
    }

    fn new(f: &Finding) -> Incident {
        Incident {
            id: 0,
            state: IncidentState::Open,
            network: f.correlation.network.clone(),
            shadows: Vec::new(),
            first_seen_ms: f.at_ms,
            last_seen_ms: f.at_ms,
            findings: 0,
            signatures: Vec::new(),
            sources: Vec::new(),
            targets: Vec::new(),
            vms: Vec::new(),
            max_severity: f.severity,
            max_score: None,
            mitigations: Vec::new(),
            refused: Vec::new(),
            closed_at_ms: None,
        }
    }

    /// Whether `f` belongs here under `policy`.
    fn takes(&self, f: &Finding, policy: &MitigationPolicy) -> bool {
        if self.state == IncidentState::Closed || self.network != f.correlation.network {
            return false;
        }
        let window =
            i64::try_from(policy.incident_window_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        if f.at_ms < self.first_seen_ms.saturating_sub(window)
            || f.at_ms > self.last_seen_ms.saturating_add(window)
        {
            return false;
        }
        policy.group_by.iter().any(|k| match k {
            GroupKey::Source => self.sources.contains(&f.correlation.outside),
            GroupKey::Target => self.targets.contains(&f.correlation.target),
            GroupKey::Signature => self
                .signatures
                .iter()
                .any(|s| s.signature_id == f.signature_id),
        })
    }

    fn add(&mut self, f: &Finding) {
        self.first_seen_ms = self.first_seen_ms.min(f.at_ms);
        self.last_seen_ms = self.last_seen_ms.max(f.at_ms);
        self.findings += 1;
        match self
            .signatures
            .iter_mut()
            .find(|s| s.signature_id == f.signature_id)
        {
            Some(s) => s.count += 1,
            None => self.signatures.push(SignatureCount {
                signature_id: f.signature_id,
                signature: f.signature.clone(),
                count: 1,
            }),
        }
        let insert = |v: &mut Vec<String>, x: &str| {
            if !v.iter().any(|y| y == x) {
                v.push(x.to_string());
                v.sort();
            }
        };
        insert(&mut self.shadows, &f.shadow);
        insert(&mut self.sources, &f.correlation.outside);
        insert(&mut self.targets, &f.correlation.target);
        for vm in [&f.correlation.src_vm, &f.correlation.dest_vm]
            .into_iter()
            .flatten()
        {
            insert(&mut self.vms, &format!("{}/{}", vm.network, vm.vm));
        }
        self.max_severity = self.max_severity.min(f.severity);
        if let Some(s) = f.score {
            self.max_score = Some(self.max_score.map_or(s, |m| m.max(s)));
        }
    }
}

/// What an ingest did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IngestReport {
    /// The shadow.
    pub shadow: String,
    /// Findings stored.
    pub accepted: u64,
    /// Of them, findings naming a production VM.
    pub correlated: u64,
    /// Of them, findings whose addresses match no production node (kept, and marked so).
    pub uncorrelated: u64,
    /// Sequence numbers of the stored findings.
    pub findings: Vec<u64>,
    /// Incidents opened or joined, by id.
    pub incidents: Vec<u64>,
    /// What the mitigation policy did about them.
    pub mitigations: Vec<PolicyAction>,
}

/// One thing the mitigation policy did after an ingest.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PolicyAction {
    /// The incident.
    pub incident: u64,
    /// The outside address concerned.
    pub source: String,
    /// `proposed`, `committed`, `refused`.
    pub action: String,
    /// The mitigation, when one was made.
    pub mitigation: Option<String>,
    /// Why, for refusals.
    pub detail: String,
    /// For `committed`: where the rule sits on the NIC and from which table generation and
    /// time it drops traffic.
    pub activation: Option<Activation>,
}

impl IngestReport {
    /// The block rules this ingest made active on the NIC (`auto` mode), in commit order.
    pub fn activations(&self) -> impl Iterator<Item = &Activation> {
        self.mitigations
            .iter()
            .filter_map(|a| a.activation.as_ref())
    }
}

/// Parses an ingest body: one JSON object, or NDJSON (one object per line, blank lines
/// ignored). A JSON array is taken too. Errors name the line at fault.
pub fn parse_events(body: &[u8]) -> Result<Vec<Value>, Vec<FieldError>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| vec![FieldError::new("body", "the body is not UTF-8 text")])?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match v {
            Value::Array(a) => Ok(a),
            v => Ok(vec![v]),
        };
    }
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push(v),
            Err(e) => errs.push(FieldError::new(
                format!("lines/{}", i + 1),
                format!("not JSON: {e}"),
            )),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(out)
}

/// Unix milliseconds of an RFC 3339 / Suricata timestamp (`2027-01-15T08:00:00.123456+0000`,
/// `...Z`, `...+01:00`).
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let bad = || format!("'{s}' is not a timestamp like 2027-01-15T08:00:00.000000+0000");
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 60
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        let digits = &frac[..n];
        ms = digits
            .chars()
            .chain("000".chars())
            .take(3)
            .collect::<String>()
            .parse()
            .map_err(|_| bad())?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let t = rest[1..].replace(':', "");
            if t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let hh: i64 = t[..2].parse().map_err(|_| bad())?;
            let mm: i64 = t[2..].parse().map_err(|_| bad())?;
            sign * (hh * 60 + mm)
        }
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + ms)
}

/// The fields of one EVE alert the control plane uses; problems go to `errs` with paths
/// under `events/<i>/`.
fn parse_alert(
    i: usize,
    ev: &Value,
    shadow: &Shadow,
    errs: &mut Vec<FieldError>,
) -> Option<Finding> {
    let at = |f: &str| format!("events/{i}/{f}");
    let n0 = errs.len();
    let Some(obj) = ev.as_object() else {
        errs.push(FieldError::new(
            format!("events/{i}"),
            "an EVE event must be a JSON object",
        ));
        return None;
    };
    match obj.get("event_type").and_then(Value::as_str) {
        Some("alert") => {}
        Some(other) => errs.push(FieldError::new(
            at("event_type"),
            format!("'{other}' is not a finding: only 'alert' events are taken"),
        )),
        None => errs.push(FieldError::new(
            at("event_type"),
            "missing (must be 'alert')",
        )),
    }
    let text = |errs: &mut Vec<FieldError>, f: &str| -> Option<String> {
        match obj.get(f) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errs.push(FieldError::new(at(f), "must be a string"));
                None
            }
            None => {
                errs.push(FieldError::new(at(f), "missing"));
                None
            }
        }
    };
    let ip = |errs: &mut Vec<FieldError>, f: &str| -> Option<IpAddr> {
        let s = text(errs, f)?;
        match s.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.push(FieldError::new(
                    at(f),
                    format!("'{s}' is not an IP address"),
                ));
                None
            }
        }
    };
    let port = |errs: &mut Vec<FieldError>, f: &str| -> Option<u16> {
        match obj.get(f) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|p| u16::try_from(p).ok()) {
                Some(p) => Some(p),
                None => {
                    errs.push(FieldError::new(at(f), format!("{v} is not a port number")));
                    None
                }
            },
        }
    };
    let opt_text = |errs: &mut Vec<FieldError>,
                    o: &serde_json::Map<String, Value>,
                    path: String,
                    f: &str|
     -> Option<String> {
        match o.get(f) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errs.push(FieldError::new(path, "must be a string"));
                None
            }
        }
    };
    let timestamp = text(errs, "timestamp");
    let at_ms = timestamp.as_deref().and_then(|t| match parse_timestamp(t) {
        Ok(ms) => Some(ms),
        Err(e) => {
            errs.push(FieldError::new(at("timestamp"), e));
            None
        }
    });
    let src = ip(errs, "src_ip");
    let dst = ip(errs, "dest_ip");
    let src_port = port(errs, "src_port");
    let dest_port = port(errs, "dest_port");
    let proto = opt_text(errs, obj, at("proto"), "proto");
    let community_id = opt_text(errs, obj, at("community_id"), "community_id");
    let (mut sid, mut signature, mut category, mut severity) = (None, None, None, None);
    match obj.get("alert") {
        Some(Value::Object(a)) => {
            sid = a.get("signature_id").and_then(Value::as_u64);
            if sid.is_none() {
                errs.push(FieldError::new(
                    at("alert/signature_id"),
                    "missing or not a number",
                ));
            }
            signature = a
                .get("signature")
                .and_then(Value::as_str)
                .map(str::to_string);
            if signature.is_none() {
                errs.push(FieldError::new(
                    at("alert/signature"),
                    "missing or not a string",
                ));
            }
            category = opt_text(errs, a, at("alert/category"), "category");
            severity = a
                .get("severity")
                .and_then(Value::as_u64)
                .and_then(|s| u8::try_from(s).ok())
                .filter(|s| (1..=4).contains(s));
            if severity.is_none() {
                errs.push(FieldError::new(
                    at("alert/severity"),
                    "missing, or not 1 (high) to 4 (low)",
                ));
            }
        }
        Some(_) => errs.push(FieldError::new(at("alert"), "must be an object")),
        None => errs.push(FieldError::new(at("alert"), "missing")),
    }
    let (mut score, mut explanation) = (None, None);
    match obj.get("shadownet") {
        None | Some(Value::Null) => {}
        Some(Value::Object(x)) => {
            if let Some(v) = x.get("shadow")
                && v.as_str() != Some(shadow.name.as_str())
            {
                errs.push(FieldError::new(
                    at("shadownet/shadow"),
                    format!(
                        "{v} is not the shadow these findings are sent to ('{}')",
                        shadow.name
                    ),
                ));
            }
            if let Some(v) = x.get("shadow_vni")
                && v.as_u64() != Some(u64::from(shadow.vni))
            {
                errs.push(FieldError::new(
                    at("shadownet/shadow_vni"),
                    format!("{v} is not the shadow's VNI ({})", shadow.vni),
                ));
            }
            match x.get("score") {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_f64().filter(|s| s.is_finite()) {
                    Some(s) => score = Some(s),
                    None => errs.push(FieldError::new(at("shadownet/score"), "must be a number")),
                },
            }
            explanation = match x.get("explanation") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => Some(v.to_string()),
            };
        }
        Some(_) => errs.push(FieldError::new(at("shadownet"), "must be an object")),
    }
    if errs.len() > n0 {
        return None;
    }
    Some(Finding {
        seq: 0,
        shadow: shadow.name.clone(),
        shadow_vni: shadow.vni,
        timestamp: timestamp?,
        at_ms: at_ms?,
        src_ip: src?.to_string(),
        src_port,
        dest_ip: dst?.to_string(),
        dest_port,
        proto,
        community_id,
        signature_id: sid?,
        signature: signature?,
        category,
        severity: severity?,
        score,
        explanation,
        incident: None,
        correlation: Correlation {
            network: String::new(),
            network_version: 0,
            vni: 0,
            src_vm: None,
            dest_vm: None,
            ours: String::new(),
            outside: String::new(),
            target: String::new(),
            matched: false,
            note: String::new(),
            heavy_hitter: None,
        },
        event: ev.clone(),
    })
}

/// Joins a finding's addresses to the nodes of the captured network.
fn correlate(
    f: &mut Finding,
    tenant: &str,
    shadow: &Shadow,
    captured: &Network,
    live_vni: u32,
    counters: &dyn Fn(u16) -> Option<PortCounters>,
) {
    let vm_of = |ip: &str| -> Option<ProductionVm> {
        let a: IpAddr = ip.parse().ok()?;
        captured
            .nodes
            .iter()
            .find(|n| n.ip.parse::<IpAddr>().ok() == Some(a))
            .map(|n| ProductionVm {
                tenant: tenant.to_string(),
                network: captured.name.clone(),
                vm: n.name.clone(),
                ip: n.ip.clone(),
                host: n.host.clone(),
                vf: n.vf,
                counters: n.vf.and_then(counters),
            })
    };
    let src_vm = vm_of(&f.src_ip);
    let dest_vm = vm_of(&f.dest_ip);
    let ours = match (&src_vm, &dest_vm) {
        (None, Some(_)) => "dest",
        (Some(_), None) => "src",
        (Some(_), Some(_)) => "both",
        (None, None) => "none",
    };
    let name = |v: &Option<ProductionVm>| v.as_ref().map(|v| v.vm.clone()).unwrap_or_default();
    // A rule that names the attack's source and target (Suricata's `alert.source` and
    // `alert.target`; a honeypot's alerts) is taken at its word: a production VM that probes
    // a decoy is the party to act on, not the decoy.
    let decoy = |ip: &str| {
        shadow.spec.analysis_nodes.iter().find(|a| {
            a.kind == HONEYPOT_KIND
                && a.ip.as_deref().and_then(|x| x.parse::<IpAddr>().ok()) == ip.parse().ok()
        })
    };
    let (outside, target, note) = if let Some((source, victim)) = named_source_and_target(f) {
        let source_vm = if source == f.src_ip {
            &src_vm
        } else {
            &dest_vm
        };
        let note = match (source_vm, decoy(&victim)) {
            (Some(vm), Some(d)) => format!(
                "production VM {} probed honeypot '{}' ({victim})",
                vm.vm, d.name
            ),
            (None, Some(d)) => format!("{source} probed honeypot '{}' ({victim})", d.name),
            (Some(vm), None) => format!(
                "production VM {} is the source of the attack on {victim}, as the rule names it",
                vm.vm
            ),
            (None, None) => format!("{source} attacks {victim}, as the rule names it"),
        };
        (source, victim, note)
    } else {
        match ours {
            "dest" => (
                f.src_ip.clone(),
                f.dest_ip.clone(),
                format!(
                    "{} attacks production VM {} from outside",
                    f.src_ip,
                    name(&dest_vm)
                ),
            ),
            "src" => (
                f.dest_ip.clone(),
                f.src_ip.clone(),
                format!(
                    "production VM {} talks to outside address {}",
                    name(&src_vm),
                    f.dest_ip
                ),
            ),
            // When both sides are production (or neither is), the address to act on is the
            // one that started the flow, not the sender of the packet that alerted: an answer
            // of a swept VM must not make that VM the attacker.
            _ => {
                let reply = packet_is_reply(f);
                let ((initiator, initiator_vm), (responder, responder_vm)) = if reply {
                    ((&f.dest_ip, &dest_vm), (&f.src_ip, &src_vm))
                } else {
                    ((&f.src_ip, &src_vm), (&f.dest_ip, &dest_vm))
                };
                let note = if ours == "both" {
                    format!(
                        "from production VM {} to production VM {} (lateral{})",
                        name(initiator_vm),
                        name(responder_vm),
                        if reply {
                            "; the alert was on an answer"
                        } else {
                            ""
                        }
                    )
                } else {
                    format!(
                        "neither {} nor {} is a node of network '{}' version {}",
                        f.src_ip, f.dest_ip, captured.name, shadow.network_version
                    )
                };
                (initiator.clone(), responder.clone(), note)
            }
        }
    };
    f.correlation = Correlation {
        network: captured.name.clone(),
        network_version: shadow.network_version,
        vni: live_vni,
        matched: src_vm.is_some() || dest_vm.is_some(),
        ours: ours.into(),
        outside,
        target,
        src_vm,
        dest_vm,
        note,
        heavy_hitter: None,
    };
}

/// Whether the alerting packet went from the flow's responder to its initiator, by what the
/// event says about the flow: Suricata 7 names the flow's own endpoints in `flow.src_ip` /
/// `flow.dest_ip` (the initiator first) and the packet's in `direction` (`to_client` for an
/// answer). Without either, the packet is taken to come from the initiator.
fn packet_is_reply(f: &Finding) -> bool {
    let flow_src = f
        .event
        .get("flow")
        .and_then(|x| x.get("src_ip"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok());
    let packet_src = f.src_ip.parse::<IpAddr>().ok();
    let packet_dst = f.dest_ip.parse::<IpAddr>().ok();
    match flow_src {
        Some(a) if Some(a) == packet_dst && packet_src != packet_dst => true,
        Some(a) if Some(a) == packet_src => false,
        _ => f.event.get("direction").and_then(Value::as_str) == Some("to_client"),
    }
}

/// The attack's source and target as the alert's rule names them (`alert.source.ip`,
/// `alert.target.ip`), when both are there and are the packet's two addresses.
fn named_source_and_target(f: &Finding) -> Option<(String, String)> {
    let alert = f.event.get("alert")?;
    let ip = |k: &str| alert.get(k)?.get("ip")?.as_str()?.parse::<IpAddr>().ok();
    let (source, target) = (ip("source")?, ip("target")?);
    let (src, dst) = (
        f.src_ip.parse::<IpAddr>().ok()?,
        f.dest_ip.parse::<IpAddr>().ok()?,
    );
    if (source, target) == (src, dst) {
        Some((f.src_ip.clone(), f.dest_ip.clone()))
    } else if (source, target) == (dst, src) {
        Some((f.dest_ip.clone(), f.src_ip.clone()))
    } else {
        None
    }
}

/// Query of `GET /v1/findings`.
#[derive(Clone, Debug, Default)]
pub struct FindingQuery {
    /// Only this shadow's.
    pub shadow: Option<String>,
    /// Only from this event time on, unix milliseconds.
    pub since_ms: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl<D: Device> Controller<D> {
    /// Takes a batch of EVE alerts from a shadow's analysis nodes: every event is checked
    /// (a batch with one bad event is refused whole, naming each problem), correlated to
    /// production, stored with the shadow (counted against `max_stored_bytes`) and grouped
    /// into incidents in one transaction; then the tenant's mitigation policy acts on the
    /// incidents touched.
    pub fn ingest_findings(
        &mut self,
        shadow: ShadowRef,
        events: Vec<Value>,
        actor: &str,
    ) -> Result<IngestReport, ControlError> {
        let world = World::load(&self.store)?;
        let (tenant, (_, shadow, captured)) = match &shadow {
            ShadowRef::Name { tenant, name } => (
                tenant.clone(),
                world
                    .shadow(tenant, name)
                    .cloned()
                    .ok_or_else(|| ControlError::NotFound {
                        kind: "shadow",
                        name: name.clone(),
                    })?,
            ),
            ShadowRef::Vni(vni) => world
                .shadow_by_vni(*vni)
                .map(|(t, s)| (t.to_string(), s.clone()))
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow with VNI",
                    name: vni.to_string(),
                })?,
        };
        if shadow.state != ShadowState::Active {
            return Err(ControlError::Conflict(format!(
                "shadow '{}' is being torn down; it takes no more findings",
                shadow.name
            )));
        }
        if events.is_empty() {
            return Err(ControlError::field("body", "no events"));
        }
        if events.len() > MAX_BATCH {
            return Err(ControlError::field(
                "body",
                format!("{} events; at most {MAX_BATCH} per call", events.len()),
            ));
        }
        let mut errs = Vec::new();
        let mut findings: Vec<Finding> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| parse_alert(i, e, &shadow, &mut errs))
            .collect();
        if !errs.is_empty() {
            return Err(ControlError::Invalid(errs));
        }
        let live_vni = world
            .network(&tenant, &shadow.spec.network)
            .map_or(captured.vni, |(_, n)| n.vni);
        let snap = self.nic.snapshot_counters().ok();
        let counters = |vf: u16| -> Option<PortCounters> {
            let s = snap.as_ref()?;
            let p = Port::Vport(vf);
            let g = |k| s.get(port_counter(p, k));
            Some(PortCounters {
                rx_packets: g(PortCounter::RxPackets),
                rx_bytes: g(PortCounter::RxBytes),
                tx_packets: g(PortCounter::TxPackets),
                tx_bytes: g(PortCounter::TxBytes),
                rx_drops: g(PortCounter::RxDrops),
                tx_drops: g(PortCounter::TxDrops),
            })
        };
        for f in &mut findings {
            correlate(f, &tenant, &shadow, &captured, live_vni, &counters);
        }
        if self.refresh_heavy_hitters() {
            for f in &mut findings {
                let (Ok(src), Ok(dst)) = (f.src_ip.parse(), f.dest_ip.parse()) else {
                    continue;
                };
                let proto = f.proto.as_deref().and_then(protocol_number).unwrap_or(0);
                f.correlation.heavy_hitter = self.heavy_hitter_of(
                    src,
                    dst,
                    proto,
                    f.src_port.unwrap_or(0),
                    f.dest_port.unwrap_or(0),
                );
            }
        }
        // Event-time order, ties in the order sent: the same batch always groups the same way.
        findings.sort_by_key(|f| f.at_ms);

        let policy = self.policy_of(&tenant)?;
        let mut incidents: Vec<Incident> = self
            .store
            .incidents(&tenant, Some(&["open", "mitigated"]))?
            .into_iter()
            .map(Incident::from_record)
            .collect::<Result<_, _>>()?;
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        let mut member: Vec<usize> = Vec::with_capacity(findings.len());
        for f in &findings {
            let slot = match incidents.iter().position(|i| i.takes(f, &policy)) {
                Some(k) => k,
                None => {
                    incidents.push(Incident::new(f));
                    incidents.len() - 1
                }
            };
            incidents[slot].add(f);
            touched.insert(slot);
            member.push(slot);
        }
        let mut adding = 0u64;
        for f in &findings {
            adding += to_json(f)?.to_string().len() as u64;
        }
        for k in &touched {
            adding += to_json(&incidents[*k])?.to_string().len() as u64;
        }
        self.check_stored_bytes(&tenant, adding)?;

        let shadow_id = object_id(&tenant, &shadow.name);
        let (seqs, ids) = self.store.transact(|tx| {
            let mut ids: BTreeMap<usize, u64> = BTreeMap::new();
            for k in &touched {
                let i = &incidents[*k];
                let id = tx.put_incident(
                    (i.id != 0).then_some(i.id),
                    &tenant,
                    i.state.as_str(),
                    i.last_seen_ms,
                    &serde_json::to_value(i)?,
                )?;
                ids.insert(*k, id);
            }
            let mut seqs = Vec::with_capacity(findings.len());
            for (f, k) in findings.iter().zip(&member) {
                let id = ids.get(k).copied();
                seqs.push(tx.add_finding(
                    kind::SHADOW,
                    &shadow_id,
                    f.at_ms,
                    id,
                    &serde_json::to_value(f)?,
                )?);
            }
            tx.audit(
                Some(&tenant),
                actor,
                "findings.ingest",
                &shadow_id,
                &serde_json::json!({
                    "findings": seqs.len(),
                    "incidents": ids.values().collect::<Vec<_>>(),
                }),
            )?;
            Ok((seqs, ids))
        })?;
        let correlated = findings.iter().filter(|f| f.correlation.matched).count() as u64;
        let incident_ids: Vec<u64> = ids
            .values()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mitigations = self.apply_policy(&tenant, &policy, &incident_ids)?;
        Ok(IngestReport {
            shadow: shadow.name.clone(),
            accepted: findings.len() as u64,
            correlated,
            uncorrelated: findings.len() as u64 - correlated,
            findings: seqs,
            incidents: incident_ids,
            mitigations,
        })
    }

    /// The caller's findings, oldest first.
    pub fn list_findings(
        &self,
        caller: &Caller,
        q: &FindingQuery,
    ) -> Result<Vec<Finding>, ControlError> {
        let tenant = caller.tenant()?;
        let owner = match &q.shadow {
            Some(s) => {
                let id = object_id(tenant, s);
                if self.store.get(kind::SHADOW, &id)?.is_none() {
                    return Err(ControlError::NotFound {
                        kind: "shadow",
                        name: s.clone(),
                    });
                }
                Some(id)
            }
            None => None,
        };
        self.store
            .findings(
                tenant,
                owner.as_deref().map(|id| (kind::SHADOW, id)),
                q.since_ms,
                q.limit,
            )?
            .into_iter()
            .map(Finding::from_record)
            .collect()
    }

    /// The caller's incidents, by id.
    pub fn list_incidents(&self, caller: &Caller) -> Result<Vec<Incident>, ControlError> {
        self.store
            .incidents(caller.tenant()?, None)?
            .into_iter()
            .map(Incident::from_record)
            .collect()
    }

    /// One incident with its findings (those still stored: a purged shadow's go with it).
    pub fn get_incident(
        &self,
        caller: &Caller,
        id: u64,
    ) -> Result<(Incident, Vec<Finding>), ControlError> {
        let tenant = caller.tenant()?;
        let inc = self.incident_of(tenant, id)?;
        let findings = self
            .store
            .findings(tenant, None, None, usize::MAX)?
            .into_iter()
            .filter(|r| r.incident == Some(id))
            .map(Finding::from_record)
            .collect::<Result<_, _>>()?;
        Ok((inc, findings))
    }

    pub(super) fn incident_of(&self, tenant: &str, id: u64) -> Result<Incident, ControlError> {
        let r = self
            .store
            .incident(tenant, id)?
            .ok_or_else(|| ControlError::NotFound {
                kind: "incident",
                name: id.to_string(),
            })?;
        Incident::from_record(r)
    }

    /// Closes an incident: new findings open a new one. Its mitigations stay as they are.
    pub fn close_incident(&mut self, caller: &Caller, id: u64) -> Result<Incident, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let mut inc = self.incident_of(&tenant, id)?;
        if inc.state == IncidentState::Closed {
            return Err(ControlError::Conflict(format!(
                "incident {id} is already closed"
            )));
        }
        inc.state = IncidentState::Closed;
        inc.closed_at_ms = Some(self.now_ms());
        let body = to_json(&inc)?;
        self.store.transact(|tx| {
            tx.put_incident(Some(id), &tenant, "closed", inc.last_seen_ms, &body)?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "incident.close",
                &format!("incident/{id}"),
                &serde_json::json!({"findings": inc.findings}),
            )?;
            Ok(())
        })?;
        Ok(inc)
    }

    /// Writes an incident's new content (state and the lists the policy keeps).
    pub(super) fn save_incident(
        &mut self,
        tenant: &str,
        inc: &Incident,
    ) -> Result<(), ControlError> {
        let body = to_json(inc)?;
        self.store.transact(|tx| {
            tx.put_incident(
                Some(inc.id),
                tenant,
                inc.state.as_str(),
                inc.last_seen_ms,
                &body,
            )?;
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2027-01-15T08:00:00Z"),
            Ok(1_800_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2027-01-15T08:00:01.250000+0000"),
            Ok(1_800_000_001_250)
        );
        assert_eq!(
            parse_timestamp("2027-01-15T09:00:00+01:00"),
            Ok(1_800_000_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
        for bad in [
            "",
            "2027-13-01T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2027-01-15 08:00",
            "yesterday",
            "2027-01-15T08:00:00+1",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ndjson_and_single_events() {
        assert_eq!(parse_events(br#"{"a":1}"#).map(|v| v.len()).ok(), Some(1));
        assert_eq!(
            parse_events(b"{\"a\":1}\n\n{\"a\":2}\n")
                .map(|v| v.len())
                .ok(),
            Some(2)
        );
        assert_eq!(
            parse_events(b"[{\"a\":1},{\"a\":2}]").map(|v| v.len()).ok(),
            Some(2)
        );
        match parse_events(b"{\"a\":1}\nnot json\n") {
            Err(e) => assert_eq!(e[0].path, "lines/2"),
            other => panic!("{other:?}"),
        }
    }
}
