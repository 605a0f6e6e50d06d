//! Findings as Suricata EVE JSON: typed `alert`, `flow`, `anomaly` and `stats` events with
//! a Community ID, valid against Suricata 7's EVE schema, and a reader for Suricata's own
//! `eve.json` that keeps every line (typed where the event type is known, raw JSON
//! otherwise) and loses no field (unknown fields are kept and written back).
//!
//! # Where shadownet's own fields go
//!
//! Suricata's schema (`suricata-eve-7.0.json`) closes the top level
//! (`additionalProperties: false`), so a top-level `shadownet` object would make every event
//! invalid. The one open object is an alert's `alert.metadata` (`additionalProperties:
//! true`), where Suricata puts rule metadata; alerts carry the [`Shadownet`] extension there
//! as `alert.metadata.shadownet` (tenant, network, shadow, mirror session, shadow VNI,
//! direction, score, class and explanation). Every event names its sensor in the top-level
//! `host` field (Suricata's sensor name; [`FindingContext::sensor`] makes it
//! `shadownet/<tenant>/<shadow>`), so flows, anomalies and stats can still be attributed.

mod community_id;
mod time;

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::{
    detector::{Alert, ClassHint, DetectorStats, FeatureDeviation},
    honeypot::{Interaction, InteractionKind},
};

pub use community_id::community_id_v1;
pub use time::{format_timestamp, to_rfc3339};

/// What can be wrong with an EVE event or its inputs.
#[derive(Debug, thiserror::Error)]
pub enum EveError {
    /// The line is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object.
    #[error("an EVE event must be a JSON object, this is {0}")]
    NotObject(&'static str),
    /// A required field is missing.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A known field has the wrong type or content.
    #[error("field `{field}`: {source}")]
    Field {
        /// The field (a dotted path).
        field: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The timestamp is not in Suricata's format.
    #[error("timestamp {0:?} is not in Suricata's format (2026-11-21T10:00:00.123456+0000)")]
    Timestamp(String),
    /// A Community ID of endpoints of two address families.
    #[error("community id: source {src} and destination {dst} are of different address families")]
    MixedFamilies {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
}

/// Suricata's name of an IP protocol in EVE's `proto` field.
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// The protocol number of an EVE `proto` name (inverse of [`proto_name`]).
pub fn proto_number(name: &str) -> Option<u8> {
    match name {
        "ICMP" => Some(1),
        "TCP" => Some(6),
        "UDP" => Some(17),
        "IPv6-ICMP" | "ICMPv6" => Some(58),
        "SCTP" => Some(132),
        n => n.parse().ok(),
    }
}

/// Which way mirrored traffic went through the production VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficDirection {
    /// Towards the production VM.
    Ingress,
    /// From the production VM.
    Egress,
}

/// shadownet's extension of an alert (`alert.metadata.shadownet`): which production network
/// and shadow a finding concerns, and why the detector raised it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shadownet {
    /// Tenant owning the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Production network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Shadow the traffic was seen in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
    /// NIC mirror session of the shadow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u16>,
    /// VNI of the shadow network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_vni: Option<u32>,
    /// Direction of the mirrored traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<TrafficDirection>,
    /// The built-in detector's score (baseline standard deviations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The detector's class (snake_case [`ClassHint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ClassHint>,
    /// The features that moved, most deviant first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<FeatureDeviation>,
    /// For a honeypot's alert: the decoy's analysis-node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honeypot: Option<String>,
    /// For a honeypot's alert: what the peer did, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<String>,
}

/// `alert.metadata`: rule metadata (Suricata writes `key: [values]`) and shadownet's
/// extension.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertMetadata {
    /// shadownet's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadownet: Option<Shadownet>,
    /// Rule metadata as Suricata writes it.
    #[serde(flatten)]
    pub rule: Map<String, Value>,
}

/// The `alert` object of an alert event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// `allowed` or `blocked`.
    pub action: String,
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub signature_id: u64,
    /// Signature revision.
    pub rev: u32,
    /// Signature message.
    pub signature: String,
    /// Classification (absent for rules without a classtype).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 1 (high) to 3 (low), Suricata's classification priority.
    pub severity: u8,
    /// Rule metadata and shadownet's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AlertMetadata>,
    /// Fields not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `flow` object of a flow event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// Packets from the client.
    pub pkts_toserver: u64,
    /// Packets from the server.
    pub pkts_toclient: u64,
    /// Bytes from the client.
    pub bytes_toserver: u64,
    /// Bytes from the server.
    pub bytes_toclient: u64,
    /// First packet (EVE timestamp).
    pub start: String,
    /// Last packet (EVE timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Whole seconds between the first and last packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u64>,
    /// `new`, `established`, `closed`, `bypassed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why the record was written: `timeout`, `forced`, `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the flow raised an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerted: Option<bool>,
    /// Fields not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `anomaly` object of an anomaly event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyInfo {
    /// `decode`, `stream` or `applayer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event name (`decoder.ipv4.trunc_pkt`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Protocol layer of an application-layer anomaly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Numeric event code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// Application protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_proto: Option<String>,
    /// Fields not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `stats` object of a stats event: uptime and counter groups (`decoder`, `detect`,
/// `flow`, ... as Suricata names them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsInfo {
    /// Seconds since the engine started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    /// Counter groups.
    #[serde(flatten)]
    pub counters: Map<String, Value>,
}

impl StatsInfo {
    /// The built-in detector's counters under Suricata's names: `decoder.pkts`,
    /// `decoder.invalid`, `detect.alert`, `detect.alerts_suppressed`, `flow.active`.
    pub fn from_detector(stats: &DetectorStats, uptime_s: u64) -> StatsInfo {
        let mut counters = Map::new();
        counters.insert(
            "decoder".into(),
            serde_json::json!({"pkts": stats.packets, "invalid": stats.malformed}),
        );
        counters.insert(
            "detect".into(),
            serde_json::json!({"alert": stats.alerts, "alerts_suppressed": stats.alerts_suppressed}),
        );
        counters.insert(
            "flow".into(),
            serde_json::json!({"active": stats.tracked[2]}),
        );
        StatsInfo {
            uptime: Some(uptime_s),
            counters,
        }
    }
}

/// The event-type-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EveBody {
    /// `event_type: alert`.
    Alert(AlertInfo),
    /// `event_type: flow`.
    Flow(FlowInfo),
    /// `event_type: anomaly`.
    Anomaly(AnomalyInfo),
    /// `event_type: stats`.
    Stats(StatsInfo),
}

impl EveBody {
    /// The `event_type`, which is also the key of the body object.
    pub fn event_type(&self) -> &'static str {
        match self {
            EveBody::Alert(_) => "alert",
            EveBody::Flow(_) => "flow",
            EveBody::Anomaly(_) => "anomaly",
            EveBody::Stats(_) => "stats",
        }
    }
}

/// A typed EVE event. (De)serializes to exactly the JSON Suricata writes: common fields at
/// the top, the body under its event type's key, unknown fields where they were.
#[derive(Debug, Clone, PartialEq)]
pub struct EveEvent {
    /// `2026-11-21T10:00:00.123456+0000`.
    pub timestamp: String,
    /// Flow id (Suricata's, or ours: see [`flow_id`]).
    pub flow_id: Option<u64>,
    /// Interface the packet came in on.
    pub in_iface: Option<String>,
    /// Source address as written (Suricata writes IPv6 addresses uncompressed).
    pub src_ip: Option<String>,
    /// Source port (ICMP events carry `icmp_type`/`icmp_code` instead, in `extra`).
    pub src_port: Option<u16>,
    /// Destination address as written.
    pub dest_ip: Option<String>,
    /// Destination port.
    pub dest_port: Option<u16>,
    /// Protocol name (see [`proto_name`]).
    pub proto: Option<String>,
    /// Community ID v1 of the flow.
    pub community_id: Option<String>,
    /// The sensor's name.
    pub host: Option<String>,
    /// The event-type-specific object.
    pub body: EveBody,
    /// Every other top-level field, kept as it came.
    pub extra: Map<String, Value>,
}

/// Event types [`EveEvent`] types.
pub const TYPED_EVENT_TYPES: [&str; 4] = ["alert", "flow", "anomaly", "stats"];

fn take<T: DeserializeOwned>(m: &mut Map<String, Value>, key: &str) -> Result<Option<T>, EveError> {
    match m.remove(key) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|source| EveError::Field {
                field: key.to_owned(),
                source,
            }),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl EveEvent {
    /// An event with the common fields empty but for the timestamp.
    pub fn new(timestamp: String, body: EveBody) -> EveEvent {
        EveEvent {
            timestamp,
            flow_id: None,
            in_iface: None,
            src_ip: None,
            src_port: None,
            dest_ip: None,
            dest_port: None,
            proto: None,
            community_id: None,
            host: None,
            body,
            extra: Map::new(),
        }
    }

    /// The `event_type`.
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }

    /// shadownet's extension, when the event carries one.
    pub fn shadownet(&self) -> Option<&Shadownet> {
        match &self.body {
            EveBody::Alert(a) => a.metadata.as_ref()?.shadownet.as_ref(),
            _ => None,
        }
    }

    /// Reads an event of a typed event type from its JSON. The `event_type` must be one of
    /// [`TYPED_EVENT_TYPES`]; use [`EveRecord::from_value`] for any line.
    pub fn from_value(v: Value) -> Result<EveEvent, EveError> {
        let mut m = match v {
            Value::Object(m) => m,
            other => return Err(EveError::NotObject(kind_of(&other))),
        };
        let event_type: String =
            take(&mut m, "event_type")?.ok_or(EveError::Missing("event_type"))?;
        let timestamp: String = take(&mut m, "timestamp")?.ok_or(EveError::Missing("timestamp"))?;
        time::check(&timestamp)?;
        let body = match event_type.as_str() {
            "alert" => EveBody::Alert(take(&mut m, "alert")?.ok_or(EveError::Missing("alert"))?),
            "flow" => EveBody::Flow(take(&mut m, "flow")?.ok_or(EveError::Missing("flow"))?),
            "anomaly" => {
                EveBody::Anomaly(take(&mut m, "anomaly")?.ok_or(EveError::Missing("anomaly"))?)
            }
            "stats" => EveBody::Stats(take(&mut m, "stats")?.ok_or(EveError::Missing("stats"))?),
            _ => {
                return Err(EveError::Field {
                    field: "event_type".into(),
                    source: serde::de::Error::custom(format!(
                        "{event_type:?} is not one of {TYPED_EVENT_TYPES:?}"
                    )),
                });
            }
        };
        Ok(EveEvent {
            timestamp,
            flow_id: take(&mut m, "flow_id")?,
            in_iface: take(&mut m, "in_iface")?,
            src_ip: take(&mut m, "src_ip")?,
            src_port: take(&mut m, "src_port")?,
            dest_ip: take(&mut m, "dest_ip")?,
            dest_port: take(&mut m, "dest_port")?,
            proto: take(&mut m, "proto")?,
            community_id: take(&mut m, "community_id")?,
            host: take(&mut m, "host")?,
            body,
            extra: m,
        })
    }

    /// The event's JSON, fields in Suricata's order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("timestamp".into(), self.timestamp.clone().into());
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        opt("flow_id", self.flow_id.map(Value::from));
        opt("in_iface", self.in_iface.clone().map(Value::from));
        m.insert("event_type".into(), self.event_type().into());
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        opt("src_ip", self.src_ip.clone().map(Value::from));
        opt("src_port", self.src_port.map(Value::from));
        opt("dest_ip", self.dest_ip.clone().map(Value::from));
        opt("dest_port", self.dest_port.map(Value::from));
        opt("proto", self.proto.clone().map(Value::from));
        opt("community_id", self.community_id.clone().map(Value::from));
        opt("host", self.host.clone().map(Value::from));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        // The typed structs hold only JSON-representable data, so this cannot fail.
        let body = match &self.body {
            EveBody::Alert(b) => serde_json::to_value(b),
            EveBody::Flow(b) => serde_json::to_value(b),
            EveBody::Anomaly(b) => serde_json::to_value(b),
            EveBody::Stats(b) => serde_json::to_value(b),
        }
        .unwrap_or(Value::Null);
        m.insert(self.event_type().into(), body);
        Value::Object(m)
    }

    /// The event as one line of JSON (no newline).
    pub fn to_line(&self) -> String {
        self.to_value().to_string()
    }
}

impl Serialize for EveEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for EveEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EveEvent::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One line of an EVE stream: typed when its event type is one [`EveEvent`] knows, raw JSON
/// otherwise (`dns`, `http`, `tls`, `fileinfo`, ... from Suricata), written back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum EveRecord {
    /// A typed event.
    Event(Box<EveEvent>),
    /// Any other event, as it came.
    Raw(Value),
}

impl EveRecord {
    /// Reads one line of `eve.json`. A line whose `event_type` is typed but whose fields do
    /// not fit is an error naming the field, not a silent fallback.
    pub fn parse_line(line: &str) -> Result<EveRecord, EveError> {
        EveRecord::from_value(serde_json::from_str(line).map_err(EveError::NotJson)?)
    }

    /// Reads one event's JSON. Every event needs a string `event_type` and `timestamp`
    /// (the schema's required fields).
    pub fn from_value(v: Value) -> Result<EveRecord, EveError> {
        let Some(m) = v.as_object() else {
            return Err(EveError::NotObject(kind_of(&v)));
        };
        // The two fields the schema requires of every event.
        let Some(event_type) = m.get("event_type").and_then(Value::as_str) else {
            return Err(EveError::Missing("event_type"));
        };
        if !m.get("timestamp").is_some_and(Value::is_string) {
            return Err(EveError::Missing("timestamp"));
        }
        if TYPED_EVENT_TYPES.contains(&event_type) {
            Ok(EveRecord::Event(Box::new(EveEvent::from_value(v)?)))
        } else {
            Ok(EveRecord::Raw(v))
        }
    }

    /// The event's JSON.
    pub fn to_value(&self) -> Value {
        match self {
            EveRecord::Event(e) => e.to_value(),
            EveRecord::Raw(v) => v.clone(),
        }
    }

    /// The `event_type`, if it has one.
    pub fn event_type(&self) -> Option<&str> {
        match self {
            EveRecord::Event(e) => Some(e.event_type()),
            EveRecord::Raw(v) => v.get("event_type").and_then(Value::as_str),
        }
    }
}

/// A flow id for our own events: 51 bits (exact in every JSON reader, like Suricata's) of
/// a hash of the flow's Community ID and its start, so two flows of the same 5-tuple at
/// different times differ and an alert and its flow record share the id.
pub fn flow_id(community_id: &str, start_ns: u64) -> u64 {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(community_id.as_bytes());
    h.update(start_ns.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) & ((1 << 51) - 1)
}

/// Where findings come from: the sensor, the interface and the production context that
/// correlation found, stamped on every event built here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingContext {
    /// Interface name (`in_iface`), e.g. the shadow's veth.
    pub in_iface: Option<String>,
    /// Production and shadow identity, copied into alerts' extension.
    pub shadownet: Shadownet,
    /// Community ID seed (0 unless the site agreed on another).
    pub community_id_seed: u16,
    /// The detector's alert threshold, the unit of the severity scale
    /// ([`severity_from_score`]).
    pub alert_threshold: f32,
}

impl FindingContext {
    /// The sensor name for EVE's `host`: `shadownet/<tenant>/<shadow>` (or as much of it as
    /// is known).
    pub fn sensor(&self) -> String {
        let mut s = String::from("shadownet");
        for part in [&self.shadownet.tenant, &self.shadownet.shadow]
            .into_iter()
            .flatten()
        {
            s.push('/');
            s.push_str(part);
        }
        s
    }

    fn stamp(&self, e: &mut EveEvent) {
        e.in_iface.clone_from(&self.in_iface);
        e.host = Some(self.sensor());
    }
}

/// Suricata severity (1 high .. 3 low) of a detector score: 1 at four times the alert
/// threshold or more, 2 at twice, 3 below.
pub fn severity_from_score(score: f32, threshold: f32) -> u8 {
    let t = if threshold.is_finite() && threshold > 0.0 {
        threshold
    } else {
        1.0
    };
    if score >= 4.0 * t {
        1
    } else if score >= 2.0 * t {
        2
    } else {
        3
    }
}

/// The built-in detector's generator id (Suricata's rules are gid 1, its decoder events
/// other gids; this one is ours).
pub const DETECTOR_GID: u32 = 9100;

/// Signature id, message and Suricata classification of each detector class.
pub fn detector_signature(class: ClassHint) -> (u64, &'static str, &'static str) {
    match class {
        ClassHint::SynFlood => (
            1,
            "SHADOWNET DETECTOR SYN flood",
            "Attempted Denial of Service",
        ),
        ClassHint::PortScan => (
            2,
            "SHADOWNET DETECTOR port scan",
            "Detection of a Network Scan",
        ),
        ClassHint::DnsAmplification => (
            3,
            "SHADOWNET DETECTOR DNS amplification",
            "Attempted Denial of Service",
        ),
        ClassHint::Slowloris => (
            4,
            "SHADOWNET DETECTOR slowloris",
            "Attempted Denial of Service",
        ),
        ClassHint::Beaconing => (
            5,
            "SHADOWNET DETECTOR beaconing or exfiltration",
            "A Network Trojan was detected",
        ),
        ClassHint::LateralMovement => (6, "SHADOWNET DETECTOR lateral movement", "Misc Attack"),
        ClassHint::Anomaly => (
            7,
            "SHADOWNET DETECTOR traffic anomaly",
            "Potentially Bad Traffic",
        ),
    }
}

/// Fills the 5-tuple fields and the Community ID.
fn set_tuple(
    e: &mut EveEvent,
    seed: u16,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
) -> Result<(), EveError> {
    let cid = community_id_v1(seed, src, dst, proto, sport, dport)?;
    e.src_ip = Some(src.to_string());
    e.dest_ip = Some(dst.to_string());
    e.proto = Some(proto_name(proto));
    if matches!(proto, 1 | 58) {
        // Suricata writes ICMP type/code, not ports.
        e.extra.insert("icmp_type".into(), sport.into());
        e.extra.insert("icmp_code".into(), dport.into());
    } else if matches!(proto, 6 | 17 | 132) {
        e.src_port = Some(sport);
        e.dest_port = Some(dport);
    }
    e.community_id = Some(cid);
    Ok(())
}

/// An EVE `alert` for a detector alert: signature from its class, severity from its score,
/// score, class and explanation in `alert.metadata.shadownet`. `flow_start_ns`, when the
/// flow record's start is known, makes the alert's `flow_id` that of the flow record.
pub fn alert_from_detector(
    alert: &Alert,
    ctx: &FindingContext,
    flow_start_ns: Option<u64>,
) -> Result<EveEvent, EveError> {
    let (sid, signature, category) = detector_signature(alert.class_hint);
    let mut ext = ctx.shadownet.clone();
    ext.score = Some(f64::from(alert.score));
    ext.class = Some(alert.class_hint);
    ext.explanation.clone_from(&alert.explanation);
    let info = AlertInfo {
        action: "allowed".into(),
        gid: DETECTOR_GID,
        signature_id: sid,
        rev: 1,
        signature: signature.into(),
        category: Some(category.into()),
        severity: severity_from_score(alert.score, ctx.alert_threshold),
        metadata: Some(AlertMetadata {
            shadownet: Some(ext),
            rule: Map::new(),
        }),
        extra: Map::new(),
    };
    let mut e = EveEvent::new(format_timestamp(alert.ts_ns), EveBody::Alert(info));
    ctx.stamp(&mut e);
    set_tuple(
        &mut e,
        ctx.community_id_seed,
        alert.src,
        alert.sport,
        alert.dst,
        alert.dport,
        alert.proto,
    )?;
    if let (Some(cid), Some(start)) = (&e.community_id, flow_start_ns) {
        e.flow_id = Some(flow_id(cid, start));
    }
    // As Suricata 7 writes it: the packet's direction, and for an answer the flow's own
    // endpoints (initiator first), which correlation acts on.
    e.extra.insert(
        "direction".into(),
        if alert.answer {
            "to_client"
        } else {
            "to_server"
        }
        .into(),
    );
    if alert.answer {
        let mut flow = Map::new();
        flow.insert("src_ip".into(), alert.dst.to_string().into());
        flow.insert("dest_ip".into(), alert.src.to_string().into());
        if matches!(alert.proto, 6 | 17 | 132) {
            flow.insert("src_port".into(), alert.dport.into());
            flow.insert("dest_port".into(), alert.sport.into());
        }
        e.extra.insert("flow".into(), Value::Object(flow));
    }
    Ok(e)
}

/// The honeypots' generator id (next to the detector's [`DETECTOR_GID`]).
pub const HONEYPOT_GID: u32 = 9200;

/// Signature id, message, Suricata classification and severity of a honeypot interaction;
/// `None` for what needs no alert of its own (a close after a connection already alerted).
/// Nothing legitimate talks to a decoy: a probe is severity 2, a completed connection or
/// data severity 1. An ARP request alone is severity 3 (hosts ARP for addresses for benign
/// reasons too).
pub fn honeypot_signature(kind: &InteractionKind) -> Option<(u64, &'static str, &'static str, u8)> {
    const PROBE: (u64, &str, &str) = (
        9_200_001,
        "SHADOWNET HONEYPOT probe of a decoy",
        "Detection of a Network Scan",
    );
    Some(match kind {
        InteractionKind::ArpRequest => (PROBE.0, PROBE.1, PROBE.2, 3),
        InteractionKind::Ping
        | InteractionKind::SynProbe { .. }
        | InteractionKind::UdpProbe { .. }
        | InteractionKind::StrayTcp => (PROBE.0, PROBE.1, PROBE.2, 2),
        InteractionKind::Connected => (
            9_200_002,
            "SHADOWNET HONEYPOT connection to a decoy",
            "Attempted Information Leak",
            1,
        ),
        InteractionKind::Data { .. } => (
            9_200_003,
            "SHADOWNET HONEYPOT data sent to a decoy",
            "Misc Attack",
            1,
        ),
        InteractionKind::Closed => return None,
    })
}

/// An EVE `alert` for an interaction with honeypot `name` at `decoy`: the peer is the
/// packet's source and is named as the attack's source (`alert.source`), the decoy as its
/// target, so correlation blocks the peer even when it is a production VM. Data shows its
/// first bytes in `payload_printable`. `None` for interactions that raise no alert
/// ([`honeypot_signature`]).
pub fn alert_from_honeypot(
    i: &Interaction,
    name: &str,
    decoy: Ipv4Addr,
    ctx: &FindingContext,
) -> Result<Option<EveEvent>, EveError> {
    let Some((sid, signature, category, severity)) = honeypot_signature(&i.kind) else {
        return Ok(None);
    };
    let mut ext = ctx.shadownet.clone();
    ext.honeypot = Some(name.to_string());
    ext.interaction = Some(interaction_words(&i.kind, i.protocol, i.port));
    let mut extra = Map::new();
    let endpoint = |ip: Ipv4Addr, port: u16| {
        let mut m = Map::new();
        m.insert("ip".into(), ip.to_string().into());
        if matches!(i.protocol, 6 | 17) {
            m.insert("port".into(), port.into());
        }
        Value::Object(m)
    };
    extra.insert("source".into(), endpoint(i.peer, i.peer_port));
    extra.insert("target".into(), endpoint(decoy, i.port));
    let info = AlertInfo {
        action: "allowed".into(),
        gid: HONEYPOT_GID,
        signature_id: sid,
        rev: 1,
        signature: signature.into(),
        category: Some(category.into()),
        severity,
        metadata: Some(AlertMetadata {
            shadownet: Some(ext),
            rule: Map::new(),
        }),
        extra,
    };
    let mut e = EveEvent::new(format_timestamp(i.at_ns), EveBody::Alert(info));
    ctx.stamp(&mut e);
    // ARP has no IP protocol; its tuple is the addresses alone.
    let (proto, sport, dport) = match i.protocol {
        0 => (0, 0, 0),
        // ICMP echo request: type 8, code 0.
        1 => (1, 8, 0),
        p => (p, i.peer_port, i.port),
    };
    if proto == 0 {
        e.src_ip = Some(i.peer.to_string());
        e.dest_ip = Some(decoy.to_string());
    } else {
        set_tuple(
            &mut e,
            ctx.community_id_seed,
            IpAddr::V4(i.peer),
            sport,
            IpAddr::V4(decoy),
            dport,
            proto,
        )?;
    }
    e.extra.insert("direction".into(), "to_server".into());
    if let InteractionKind::Data { head, .. } = &i.kind {
        let printable: String = head
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        e.extra.insert("payload_printable".into(), printable.into());
    }
    Ok(Some(e))
}

/// What a peer did to a decoy, for people.
fn interaction_words(kind: &InteractionKind, protocol: u8, port: u16) -> String {
    let t = if protocol == 17 { "udp" } else { "tcp" };
    match kind {
        InteractionKind::ArpRequest => "ARP request for the decoy's address".into(),
        InteractionKind::Ping => "ICMP echo request".into(),
        InteractionKind::SynProbe { open: true } => format!("SYN to open port tcp/{port}"),
        InteractionKind::SynProbe { open: false } => format!("SYN to closed port tcp/{port}"),
        InteractionKind::UdpProbe { open } => format!(
            "datagram to {} port udp/{port}",
            if *open { "open" } else { "closed" }
        ),
        InteractionKind::StrayTcp => format!("TCP segment outside any connection to tcp/{port}"),
        InteractionKind::Connected => format!("connection to tcp/{port} completed"),
        InteractionKind::Data { len, .. } => format!("{len} bytes of data to {t}/{port}"),
        InteractionKind::Closed => format!("connection to tcp/{port} closed"),
    }
}

/// TCP flow state as EVE names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// Packets seen in one direction only.
    New,
    /// Packets seen both ways.
    Established,
    /// Closed by FIN or RST.
    Closed,
}

/// Builds a flow record packet by packet: the first packet's source is the client.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowBuilder {
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
    start_ns: u64,
    end_ns: u64,
    pkts: [u64; 2],
    bytes: [u64; 2],
    closed: bool,
    alerted: bool,
}

impl FlowBuilder {
    /// A flow opened by `src:sport -> dst:dport` at `start_ns`.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8, start_ns: u64) -> Self {
        FlowBuilder {
            src,
            sport,
            dst,
            dport,
            proto,
            start_ns,
            end_ns: start_ns,
            pkts: [0; 2],
            bytes: [0; 2],
            closed: false,
            alerted: false,
        }
    }

    /// Counts one packet of `len` bytes at `ts_ns`, from the client when `to_server`.
    pub fn packet(&mut self, ts_ns: u64, len: u64, to_server: bool) -> &mut Self {
        let i = usize::from(!to_server);
        self.pkts[i] += 1;
        self.bytes[i] += len;
        self.end_ns = self.end_ns.max(ts_ns);
        self
    }

    /// Marks the flow closed (FIN/RST seen).
    pub fn close(&mut self) -> &mut Self {
        self.closed = true;
        self
    }

    /// Marks the flow as having raised an alert.
    pub fn alerted(&mut self) -> &mut Self {
        self.alerted = true;
        self
    }

    /// The flow's state.
    pub fn state(&self) -> FlowState {
        if self.closed {
            FlowState::Closed
        } else if self.pkts[0] > 0 && self.pkts[1] > 0 {
            FlowState::Established
        } else {
            FlowState::New
        }
    }

    /// The first packet's time (the flow id's input).
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// The EVE `flow` event, written for `reason` (`timeout`, `forced`, `shutdown`).
    pub fn to_eve(&self, ctx: &FindingContext, reason: &str) -> Result<EveEvent, EveError> {
        let state = match self.state() {
            FlowState::New => "new",
            FlowState::Established => "established",
            FlowState::Closed => "closed",
        };
        let info = FlowInfo {
            pkts_toserver: self.pkts[0],
            pkts_toclient: self.pkts[1],
            bytes_toserver: self.bytes[0],
            bytes_toclient: self.bytes[1],
            start: format_timestamp(self.start_ns),
            end: Some(format_timestamp(self.end_ns)),
            age: Some((self.end_ns - self.start_ns) / 1_000_000_000),
            state: Some(state.into()),
            reason: Some(reason.into()),
            alerted: Some(self.alerted),
            extra: Map::new(),
        };
        let mut e = EveEvent::new(format_timestamp(self.end_ns), EveBody::Flow(info));
        ctx.stamp(&mut e);
        set_tuple(
            &mut e,
            ctx.community_id_seed,
            self.src,
            self.sport,
            self.dst,
            self.dport,
            self.proto,
        )?;
        if let Some(cid) = &e.community_id {
            e.flow_id = Some(flow_id(cid, self.start_ns));
        }
        Ok(e)
    }
}

/// An EVE `anomaly` event for a frame the shadow's parser refused (`type: decode`).
pub fn decode_anomaly(ts_ns: u64, ctx: &FindingContext, event: &str) -> EveEvent {
    let mut e = EveEvent::new(
        format_timestamp(ts_ns),
        EveBody::Anomaly(AnomalyInfo {
            kind: "decode".into(),
            event: Some(event.into()),
            layer: None,
            code: None,
            app_proto: None,
            extra: Map::new(),
        }),
    );
    ctx.stamp(&mut e);
    e
}

/// An EVE `stats` event of the built-in detector's counters.
pub fn detector_stats(
    ts_ns: u64,
    ctx: &FindingContext,
    stats: &DetectorStats,
    uptime_s: u64,
) -> EveEvent {
    let mut e = EveEvent::new(
        format_timestamp(ts_ns),
        EveBody::Stats(StatsInfo::from_detector(stats, uptime_s)),
    );
    e.host = Some(ctx.sensor());
    e
}

#[cfg(test)]
mod tests;
