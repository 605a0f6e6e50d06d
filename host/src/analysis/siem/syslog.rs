//! Syslog RFC 5424 over TCP with octet-counting framing (RFC 6587 3.4.1):
//! `LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`.
//!
//! The structured data carries the identifiers a SIEM correlates on (`eve@32473`: event
//! type, flow id, Community ID, endpoints, signature; `shadownet@32473`: tenant, network,
//! shadow, session, VNI, score); MSG is the whole EVE JSON. 32473 is the enterprise number
//! RFC 5612 reserves for documentation: a site replaces it with its own ([`SyslogConfig`]).

use std::time::Duration;

use serde_json::Value;

use super::{EventSink, SiemError, TcpConfig, TcpForwarder, TcpStats};
use crate::analysis::eve::{EveError, to_rfc3339};

/// What goes into the syslog header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// The receiver.
    pub tcp: TcpConfig,
    /// Facility (0..=23); 16 is local0, 13 log audit, 4 security.
    pub facility: u8,
    /// HOSTNAME (printable ASCII; `-` when empty).
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID (`-` when empty).
    pub procid: String,
    /// Enterprise number in the SD-IDs (`eve@<n>`, `shadownet@<n>`).
    pub enterprise: u32,
    /// How long [`EventSink::flush`] waits for the receiver.
    pub flush_timeout: Duration,
}

impl SyslogConfig {
    /// local0, this host's name, `shadownet`, this process id.
    pub fn new(addr: impl Into<String>) -> SyslogConfig {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        SyslogConfig {
            tcp: TcpConfig::new(addr),
            facility: 16,
            hostname,
            app_name: "shadownet".into(),
            procid: std::process::id().to_string(),
            enterprise: 32473,
            flush_timeout: Duration::from_secs(10),
        }
    }
}

/// A header field: printable US-ASCII (33..=126) only, at most `max` characters, `-` when
/// empty (RFC 5424 NILVALUE).
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 6.3.3); everything else, newlines
/// and non-ASCII UTF-8 included, stays as it is.
pub fn escape_param_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Syslog severity for an EVE event: alerts by their severity (1 -> critical, 2 -> error,
/// else warning), anomalies notice, everything else informational.
fn syslog_severity(event: &Value) -> u8 {
    match event.get("event_type").and_then(Value::as_str) {
        Some("alert") => match event.pointer("/alert/severity").and_then(Value::as_u64) {
            Some(1) => 2,
            Some(2) => 3,
            _ => 4,
        },
        Some("anomaly") => 5,
        _ => 6,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One SD-ELEMENT of the parameters of `event` at the given JSON pointers that exist.
fn sd_element(id: &str, event: &Value, params: &[(&str, &str)]) -> Option<String> {
    let mut s = format!("[{id}");
    let mut any = false;
    for (name, pointer) in params {
        if let Some(v) = event.pointer(pointer).and_then(scalar) {
            s.push_str(&format!(" {name}=\"{}\"", escape_param_value(&v)));
            any = true;
        }
    }
    s.push(']');
    any.then_some(s)
}

/// The RFC 5424 message (without the octet count) for one EVE event.
pub fn syslog_message(cfg: &SyslogConfig, event: &Value) -> Result<String, SiemError> {
    if !event.is_object() {
        return Err(EveError::NotObject("not an object").into());
    }
    let pri = u16::from(cfg.facility) * 8 + u16::from(syslog_severity(event));
    let ts = match event.get("timestamp").and_then(Value::as_str) {
        Some(t) => to_rfc3339(t)?,
        None => return Err(EveError::Missing("timestamp").into()),
    };
    let msgid = event
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let eve_id = format!("eve@{}", cfg.enterprise);
    let sn_id = format!("shadownet@{}", cfg.enterprise);
    let ext = if event.pointer("/alert/metadata/shadownet").is_some() {
        "/alert/metadata/shadownet"
    } else {
        "/shadownet"
    };
    let p = |f: &str| format!("{ext}/{f}");
    let (tenant, network, shadow, session, vni, score) = (
        p("tenant"),
        p("network"),
        p("shadow"),
        p("session"),
        p("shadow_vni"),
        p("score"),
    );
    let sd: String = [
        sd_element(
            &eve_id,
            event,
            &[
                ("event_type", "/event_type"),
                ("flow_id", "/flow_id"),
                ("community_id", "/community_id"),
                ("src_ip", "/src_ip"),
                ("src_port", "/src_port"),
                ("dest_ip", "/dest_ip"),
                ("dest_port", "/dest_port"),
                ("proto", "/proto"),
                ("in_iface", "/in_iface"),
                ("gid", "/alert/gid"),
                ("signature_id", "/alert/signature_id"),
                ("rev", "/alert/rev"),
                ("severity", "/alert/severity"),
                ("signature", "/alert/signature"),
            ],
        ),
        sd_element(
            &sn_id,
            event,
            &[
                ("tenant", &tenant),
                ("network", &network),
                ("shadow", &shadow),
                ("session", &session),
                ("shadow_vni", &vni),
                ("score", &score),
            ],
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let sd = if sd.is_empty() { "-".to_owned() } else { sd };
    Ok(format!(
        "<{pri}>1 {ts} {} {} {} {} {sd} {}",
        header_field(&cfg.hostname, 255),
        header_field(&cfg.app_name, 48),
        header_field(&cfg.procid, 128),
        header_field(msgid, 32),
        event
    ))
}

/// The octet-counted frame: the message's length in bytes, a space, the message.
pub fn syslog_frame(cfg: &SyslogConfig, event: &Value) -> Result<Vec<u8>, SiemError> {
    let msg = syslog_message(cfg, event)?;
    let mut f = format!("{} ", msg.len()).into_bytes();
    f.extend_from_slice(msg.as_bytes());
    Ok(f)
}

/// EVE events to a syslog receiver over TCP.
#[derive(Debug)]
pub struct SyslogSink {
    cfg: SyslogConfig,
    tcp: TcpForwarder,
}

impl SyslogSink {
    /// A sink; it connects on the first event.
    pub fn new(cfg: SyslogConfig) -> Result<SyslogSink, SiemError> {
        if cfg.facility > 23 {
            return Err(SiemError::Config {
                field: "facility",
                reason: format!("{} is not 0..=23", cfg.facility),
            });
        }
        Ok(SyslogSink {
            tcp: TcpForwarder::new(cfg.tcp.clone())?,
            cfg,
        })
    }

    /// Delivery counters.
    pub fn stats(&self) -> TcpStats {
        self.tcp.stats()
    }
}

impl EventSink for SyslogSink {
    fn send(&mut self, event: &Value) -> Result<(), SiemError> {
        let frame = syslog_frame(&self.cfg, event)?;
        self.tcp.push(frame);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SiemError> {
        self.tcp.flush(self.cfg.flush_timeout)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg() -> SyslogConfig {
        SyslogConfig {
            hostname: "nic-host-1".into(),
            procid: "4242".into(),
            ..SyslogConfig::new("127.0.0.1:1")
        }
    }

    fn alert() -> Value {
        json!({
            "timestamp": "2026-11-21T10:00:00.123456+0000",
            "flow_id": 42,
            "event_type": "alert",
            "src_ip": "10.0.0.1", "src_port": 1234, "dest_ip": "10.0.0.2", "dest_port": 80,
            "proto": "TCP",
            "community_id": "1:abc=",
            "alert": {"action": "allowed", "gid": 1, "signature_id": 7, "rev": 1,
                      "signature": "say \"hi\" [x] \\ ok", "severity": 1,
                      "metadata": {"shadownet": {"tenant": "acme", "score": 30.5}}}
        })
    }

    #[test]
    fn exact_frame_for_a_known_event() {
        let ev = alert();
        let frame = syslog_frame(&cfg(), &ev).expect("frame");
        let msg = format!(
            "<130>1 2026-11-21T10:00:00.123456Z nic-host-1 shadownet 4242 alert \
             [eve@32473 event_type=\"alert\" flow_id=\"42\" community_id=\"1:abc=\" \
             src_ip=\"10.0.0.1\" src_port=\"1234\" dest_ip=\"10.0.0.2\" dest_port=\"80\" \
             proto=\"TCP\" gid=\"1\" signature_id=\"7\" rev=\"1\" severity=\"1\" \
             signature=\"say \\\"hi\\\" [x\\] \\\\ ok\"]\
             [shadownet@32473 tenant=\"acme\" score=\"30.5\"] {ev}"
        );
        // local0 (16) * 8 + critical (2) = 130.
        let want = format!("{} {msg}", msg.len());
        assert_eq!(String::from_utf8(frame).expect("utf-8"), want);
    }

    #[test]
    fn sd_escaping() {
        assert_eq!(escape_param_value(r#"a"b\c]d[e"#), r#"a\"b\\c\]d[e"#);
        assert_eq!(escape_param_value("zürich\nnext"), "zürich\nnext");
    }

    #[test]
    fn octet_count_is_bytes_not_chars() {
        let mut ev = alert();
        ev["alert"]["signature"] = json!("naïve\nline two");
        let frame = syslog_frame(&cfg(), &ev).expect("frame");
        let sp = frame.iter().position(|&b| b == b' ').expect("space");
        let n: usize = std::str::from_utf8(&frame[..sp])
            .expect("digits")
            .parse()
            .expect("count");
        assert_eq!(n, frame.len() - sp - 1);
        let text = std::str::from_utf8(&frame[sp + 1..]).expect("utf-8");
        assert!(n > text.chars().count(), "ï takes two bytes");
        assert!(text.contains("naïve\nline two"), "SD keeps the raw newline");
    }

    #[test]
    fn nil_values_and_severities() {
        let c = SyslogConfig {
            hostname: String::new(),
            procid: "a b".into(),
            ..cfg()
        };
        let ev = json!({"timestamp": "2026-11-21T10:00:00.000001+0100", "event_type": "stats", "stats": {"uptime": 1}});
        let m = syslog_message(&c, &ev).expect("message");
        assert_eq!(
            m,
            format!(
                "<134>1 2026-11-21T10:00:00.000001+01:00 - shadownet ab stats [eve@32473 event_type=\"stats\"] {ev}"
            )
        );
        assert!(syslog_message(&c, &json!({"event_type": "flow"})).is_err());
        assert!(syslog_message(&c, &json!("x")).is_err());
        let mut bad = cfg();
        bad.facility = 24;
        assert!(SyslogSink::new(bad).is_err());
    }
}
