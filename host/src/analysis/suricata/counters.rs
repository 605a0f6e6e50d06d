//! Suricata's own counters, from EVE `stats` events or the `dump-counters` command (both
//! carry the same tree).

use serde::Serialize;
use serde_json::Value;

/// The counters a supervisor exposes. Missing counters read 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SuricataCounters {
    /// Seconds the engine has been running (`uptime`).
    pub uptime_s: u64,
    /// Packets the kernel handed to the capture (`capture.kernel_packets`; live only).
    pub kernel_packets: u64,
    /// Packets the kernel dropped before the capture (`capture.kernel_drops`).
    pub kernel_drops: u64,
    /// Packets decoded (`decoder.pkts`).
    pub decoder_pkts: u64,
    /// Bytes decoded (`decoder.bytes`).
    pub decoder_bytes: u64,
    /// Packets the decoder found invalid (`decoder.invalid`).
    pub decoder_invalid: u64,
    /// Alerts raised (`detect.alert`).
    pub alerts: u64,
    /// Alerts suppressed by thresholds and the like (`detect.alerts_suppressed`).
    pub alerts_suppressed: u64,
    /// Flows active (`flow.active`).
    pub flows_active: u64,
    /// Flows created, TCP, UDP and other (`flow.total`).
    pub flows_total: u64,
    /// TCP sessions (`tcp.sessions`).
    pub tcp_sessions: u64,
    /// Number of `stats` events or dumps these counters came from.
    pub samples: u64,
}

fn at(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

impl SuricataCounters {
    /// Reads the counter tree of a `stats` event's `stats` object or of `dump-counters`'
    /// message. `None` when `tree` is not an object.
    pub fn from_tree(tree: &Value) -> Option<SuricataCounters> {
        if !tree.is_object() {
            return None;
        }
        let flow_total = at(tree, &["flow", "total"]);
        let flows_total = if flow_total > 0 {
            flow_total
        } else {
            at(tree, &["flow", "tcp"])
                + at(tree, &["flow", "udp"])
                + at(tree, &["flow", "icmpv4"])
                + at(tree, &["flow", "icmpv6"])
        };
        Some(SuricataCounters {
            uptime_s: at(tree, &["uptime"]),
            kernel_packets: at(tree, &["capture", "kernel_packets"]),
            kernel_drops: at(tree, &["capture", "kernel_drops"]),
            decoder_pkts: at(tree, &["decoder", "pkts"]),
            decoder_bytes: at(tree, &["decoder", "bytes"]),
            decoder_invalid: at(tree, &["decoder", "invalid"]),
            alerts: at(tree, &["detect", "alert"]),
            alerts_suppressed: at(tree, &["detect", "alerts_suppressed"]),
            flows_active: at(tree, &["flow", "active"]),
            flows_total,
            tcp_sessions: at(tree, &["tcp", "sessions"]),
            samples: 1,
        })
    }

    /// The counters of an EVE event if it is a `stats` event.
    pub fn from_eve(event: &Value) -> Option<SuricataCounters> {
        if event.get("event_type").and_then(Value::as_str) != Some("stats") {
            return None;
        }
        SuricataCounters::from_tree(event.get("stats")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_stats_event() {
        let e = json!({"event_type": "stats", "stats": {
            "uptime": 12,
            "capture": {"kernel_packets": 100, "kernel_drops": 2},
            "decoder": {"pkts": 98, "bytes": 9000, "invalid": 1},
            "detect": {"alert": 7, "alerts_suppressed": 3},
            "flow": {"tcp": 4, "udp": 5, "icmpv4": 1, "icmpv6": 0, "active": 2},
            "tcp": {"sessions": 3}
        }});
        let c = SuricataCounters::from_eve(&e).expect("a stats event");
        assert_eq!(c.kernel_packets, 100);
        assert_eq!(c.decoder_pkts, 98);
        assert_eq!(c.alerts, 7);
        assert_eq!(c.flows_total, 10);
        assert_eq!(c.flows_active, 2);
        assert_eq!(c.uptime_s, 12);
        assert!(SuricataCounters::from_eve(&json!({"event_type": "alert"})).is_none());
    }
}
