//! EVE events in the Elastic Common Schema (ECS 8.x), one JSON document per line.
//!
//! Mapped: `@timestamp`, `event.{kind,category,type,severity,action,dataset,start,end,
//! duration,risk_score,original}`, `source.{ip,port,packets,bytes}`,
//! `destination.{ip,port,packets,bytes}`, `network.{transport,iana_number,type,
//! community_id,packets,bytes}`, `rule.{id,name,category,version}`, `observer`,
//! `labels.{tenant,network,shadow}`, `message`; shadownet's extension under `shadownet`
//! (a custom field set) and Suricata's ids under `suricata.eve` as Elastic's Suricata
//! integration names them. `event.original` keeps the whole EVE line.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::{EventSink, NdjsonFile, SiemError, TcpForwarder};
use crate::analysis::eve::{EveError, proto_number, to_rfc3339};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Who observed the events (`observer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    /// `observer.hostname`.
    pub hostname: String,
    /// `observer.vendor`.
    pub vendor: String,
    /// `observer.product`.
    pub product: String,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            vendor: "shadownet".into(),
            product: "shadownet".into(),
        }
    }
}

fn set(m: &mut Map<String, Value>, path: &str, v: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = m;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), v);
            return;
        }
        let next = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(n) = next else { return };
        cur = n;
    }
}

/// Nanoseconds between two EVE timestamps of the same offset (flow start/end).
fn duration_ns(start: &str, end: &str) -> Option<u64> {
    // Both carry the same offset (Suricata writes one zone), so the offset is ignored and
    // the local times are subtracted.
    fn ns(ts: &str) -> Option<i128> {
        let (date, rest) = ts.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let (y, mo, da): (i64, i64, i64) = (
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
        );
        // Days from civil (H. Hinnant).
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + da - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let hms = rest.get(..8)?;
        let mut t = hms.splitn(3, ':');
        let (h, mi, s): (i64, i64, i64) = (
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
        );
        let frac_end = rest.find(['+', '-'])?;
        let frac = rest.get(9..frac_end)?;
        let mut f: i128 = 0;
        for (i, c) in frac.chars().take(9).enumerate() {
            f += i128::from(c.to_digit(10)?) * 10i128.pow(8 - i as u32);
        }
        Some(i128::from(days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000_000 + f)
    }
    let d = ns(end)? - ns(start)?;
    u64::try_from(d).ok()
}

/// An EVE event (typed or Suricata's) as an ECS document.
pub fn to_ecs(event: &Value, observer: &Observer) -> Result<Value, SiemError> {
    let Some(ev) = event.as_object() else {
        return Err(EveError::NotObject("not an object").into());
    };
    let ts = ev
        .get("timestamp")
        .and_then(Value::as_str)
        .ok_or(EveError::Missing("timestamp"))?;
    let event_type = ev
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut m = Map::new();
    set(&mut m, "@timestamp", to_rfc3339(ts)?.into());
    set(&mut m, "ecs.version", ECS_VERSION.into());
    let kind = match event_type {
        "alert" => "alert",
        "stats" => "metric",
        _ => "event",
    };
    set(&mut m, "event.kind", kind.into());
    set(&mut m, "event.dataset", format!("eve.{event_type}").into());
    set(&mut m, "event.original", event.to_string().into());
    match event_type {
        "alert" => {
            set(
                &mut m,
                "event.category",
                json!(["network", "intrusion_detection"]),
            );
            let blocked = event.pointer("/alert/action").and_then(Value::as_str) == Some("blocked");
            set(
                &mut m,
                "event.type",
                json!([if blocked { "denied" } else { "info" }]),
            );
            if let Some(a) = event.pointer("/alert/action") {
                set(&mut m, "event.action", a.clone());
            }
            if let Some(s) = event.pointer("/alert/severity") {
                set(&mut m, "event.severity", s.clone());
            }
            if let Some(id) = event.pointer("/alert/signature_id").and_then(Value::as_u64) {
                set(&mut m, "rule.id", id.to_string().into());
            }
            if let Some(sig) = event.pointer("/alert/signature") {
                set(&mut m, "rule.name", sig.clone());
                set(&mut m, "message", sig.clone());
            }
            if let Some(c) = event.pointer("/alert/category") {
                set(&mut m, "rule.category", c.clone());
            }
            if let Some(r) = event.pointer("/alert/rev").and_then(Value::as_u64) {
                set(&mut m, "rule.version", r.to_string().into());
            }
        }
        "flow" => {
            set(&mut m, "event.category", json!(["network"]));
            set(&mut m, "event.type", json!(["connection", "end"]));
        }
        "anomaly" => {
            set(&mut m, "event.category", json!(["network"]));
            set(&mut m, "event.type", json!(["info"]));
            if let Some(e) = event.pointer("/anomaly/event") {
                set(&mut m, "message", e.clone());
            }
        }
        _ => {
            set(&mut m, "event.type", json!(["info"]));
        }
    }
    // Endpoints: addresses normalised (Suricata writes IPv6 uncompressed).
    for (side, ip_key, port_key) in [
        ("source", "src_ip", "src_port"),
        ("destination", "dest_ip", "dest_port"),
    ] {
        if let Some(ip) = ev
            .get(ip_key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
        {
            set(&mut m, &format!("{side}.ip"), ip.to_string().into());
            if side == "source" {
                set(
                    &mut m,
                    "network.type",
                    if ip.is_ipv4() { "ipv4" } else { "ipv6" }.into(),
                );
            }
        }
        if let Some(p) = ev.get(port_key).and_then(Value::as_u64) {
            set(&mut m, &format!("{side}.port"), p.into());
        }
    }
    if let Some(proto) = ev.get("proto").and_then(Value::as_str) {
        set(
            &mut m,
            "network.transport",
            proto.to_ascii_lowercase().into(),
        );
        if let Some(n) = proto_number(proto) {
            set(&mut m, "network.iana_number", n.to_string().into());
        }
    }
    if let Some(c) = ev.get("community_id") {
        set(&mut m, "network.community_id", c.clone());
    }
    // Flow counters: the client is the source.
    if let Some(f) = ev.get("flow").and_then(Value::as_object) {
        let n = |k: &str| f.get(k).and_then(Value::as_u64);
        let (pts, ptc, bts, btc) = (
            n("pkts_toserver"),
            n("pkts_toclient"),
            n("bytes_toserver"),
            n("bytes_toclient"),
        );
        if let Some(v) = pts {
            set(&mut m, "source.packets", v.into());
        }
        if let Some(v) = bts {
            set(&mut m, "source.bytes", v.into());
        }
        if let Some(v) = ptc {
            set(&mut m, "destination.packets", v.into());
        }
        if let Some(v) = btc {
            set(&mut m, "destination.bytes", v.into());
        }
        if let (Some(a), Some(b)) = (pts, ptc) {
            set(&mut m, "network.packets", (a + b).into());
        }
        if let (Some(a), Some(b)) = (bts, btc) {
            set(&mut m, "network.bytes", (a + b).into());
        }
        if event_type == "flow" {
            let start = f.get("start").and_then(Value::as_str);
            let end = f.get("end").and_then(Value::as_str);
            if let Some(s) = start.and_then(|s| to_rfc3339(s).ok()) {
                set(&mut m, "event.start", s.into());
            }
            if let Some(e) = end.and_then(|s| to_rfc3339(s).ok()) {
                set(&mut m, "event.end", e.into());
            }
            if let Some(d) = start.zip(end).and_then(|(s, e)| duration_ns(s, e)) {
                set(&mut m, "event.duration", d.into());
            }
        }
    }
    // Observer.
    let hostname = if observer.hostname.is_empty() {
        None
    } else {
        Some(observer.hostname.clone())
    };
    if let Some(h) = hostname {
        set(&mut m, "observer.hostname", h.into());
    }
    if let Some(h) = ev.get("host") {
        set(&mut m, "observer.name", h.clone());
    }
    set(&mut m, "observer.vendor", observer.vendor.clone().into());
    set(&mut m, "observer.product", observer.product.clone().into());
    set(&mut m, "observer.type", "ids".into());
    if let Some(i) = ev.get("in_iface") {
        set(&mut m, "observer.ingress.interface.name", i.clone());
    }
    // shadownet's extension: labels for the identifiers, the rest as a custom field set.
    if let Some(ext) = event
        .pointer("/alert/metadata/shadownet")
        .and_then(Value::as_object)
    {
        for k in ["tenant", "network", "shadow"] {
            if let Some(v) = ext.get(k).and_then(Value::as_str) {
                set(&mut m, &format!("labels.{k}"), v.into());
            }
        }
        if let Some(s) = ext.get("score") {
            set(&mut m, "event.risk_score", s.clone());
        }
        set(&mut m, "shadownet", Value::Object(ext.clone()));
    }
    if let Some(id) = ev.get("flow_id") {
        set(&mut m, "suricata.eve.flow_id", id.clone());
    }
    set(&mut m, "suricata.eve.event_type", event_type.into());
    Ok(Value::Object(m))
}

/// Where ECS documents go.
#[derive(Debug)]
pub enum EcsOutput {
    /// An NDJSON file.
    File(NdjsonFile),
    /// Newline-delimited JSON over TCP (Logstash `json_lines`, Vector, Fluent Bit).
    Tcp(TcpForwarder),
}

/// EVE events as ECS documents.
#[derive(Debug)]
pub struct EcsSink {
    out: EcsOutput,
    observer: Observer,
}

impl EcsSink {
    /// A sink writing to `out`.
    pub fn new(out: EcsOutput, observer: Observer) -> EcsSink {
        EcsSink { out, observer }
    }

    /// The output.
    pub fn output(&mut self) -> &mut EcsOutput {
        &mut self.out
    }
}

impl EventSink for EcsSink {
    fn send(&mut self, event: &Value) -> Result<(), SiemError> {
        let doc = to_ecs(event, &self.observer)?.to_string();
        match &mut self.out {
            EcsOutput::File(f) => f.write_line(doc.as_bytes()),
            EcsOutput::Tcp(t) => {
                let mut b = doc.into_bytes();
                b.push(b'\n');
                t.push(b);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<(), SiemError> {
        match &mut self.out {
            EcsOutput::File(f) => f.flush(),
            EcsOutput::Tcp(t) => t.flush(std::time::Duration::from_secs(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_duration_spans_days() {
        assert_eq!(
            duration_ns(
                "2026-11-21T23:59:59.500000+0000",
                "2026-11-22T00:00:01.000001+0000"
            ),
            Some(1_500_001_000)
        );
        assert_eq!(
            duration_ns("2026-11-21T00:00:02.0+0000", "2026-11-21T00:00:01.0+0000"),
            None
        );
    }
}
