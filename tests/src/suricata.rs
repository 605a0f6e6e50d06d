//! Support for the Suricata tests: finding the binary (and root for live capture) under the
//! `SHADOWNET_REQUIRE_TOOLS` rule, generated attack traffic, and alerts reduced to
//! comparable keys.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use shadownet_capture::PcapWriter;
use shadownet_host::analysis::trafficgen::{
    AttackClass, AttackSpec, LabelledFrame, Scenario, generate,
};

fn required() -> bool {
    std::env::var("SHADOWNET_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// The Suricata binary if it runs (`suricata -V`; it has no `--version`); panics when it
/// does not and tools are required, else prints why the test is skipped.
pub fn binary() -> Option<PathBuf> {
    let ok = Command::new("suricata")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(PathBuf::from("suricata"));
    }
    if required() {
        panic!(
            "suricata is required (SHADOWNET_REQUIRE_TOOLS=1) but does not run; install it (tools/test.sh does)"
        );
    }
    eprintln!(
        "note: suricata not found; skipping (set SHADOWNET_REQUIRE_TOOLS=1 to make this a failure)"
    );
    None
}

/// Whether the test may create namespaces and raw sockets: true as root (with `ip`); panics
/// when not and tools are required; false with a note otherwise.
pub fn require_root_and_ip() -> bool {
    // The effective uid is the second number of /proc/self/status's `Uid:` line.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if root && ip {
        return true;
    }
    let why = if root {
        "`ip` (iproute2) does not run"
    } else {
        "not running as root (network namespaces, veth and AF_PACKET need it)"
    };
    if required() {
        panic!("live Suricata test: {why} (SHADOWNET_REQUIRE_TOOLS=1)");
    }
    eprintln!("note: {why}; skipping (set SHADOWNET_REQUIRE_TOOLS=1 to make this a failure)");
    false
}

/// The overlay subnet of the generated traffic: the shadow's HOME_NET.
pub const SUBNET: &str = "192.168.10.0/24";

/// A short scenario with every attack class, one after the other, on light benign traffic.
pub fn attack_scenario(seed: u64) -> Scenario {
    let at = |class: AttackClass, start_s: f64, duration_s: f64| AttackSpec {
        class,
        start_s,
        duration_s,
        rate_pps: class.default_rate(),
        attacker: None,
        target: None,
    };
    Scenario {
        seed,
        duration_s: 40.0,
        subnet: SUBNET.to_string(),
        hosts: 16,
        benign_pps: 100.0,
        attacks: vec![
            at(AttackClass::PortScan, 1.0, 4.0),
            at(AttackClass::SynFlood, 6.0, 3.0),
            at(AttackClass::DnsAmplification, 10.0, 3.0),
            at(AttackClass::LateralMovement, 14.0, 6.0),
            at(AttackClass::Slowloris, 14.0, 24.0),
            at(AttackClass::Beaconing, 1.0, 38.0),
        ],
        ..Scenario::default()
    }
}

/// The scenario's frames.
pub fn frames(s: &Scenario) -> Vec<LabelledFrame> {
    generate(s).expect("the scenario is valid").collect()
}

/// Start of the generated captures' clock (2024-01-01), so Suricata sees a plausible time.
pub const EPOCH_NS: u64 = 1_704_067_200_000_000_000;

/// Writes frames to a pcap at their timestamps.
pub fn write_pcap(path: &Path, frames: &[LabelledFrame]) {
    let mut w = PcapWriter::create(path, 65535).expect("create pcap");
    for f in frames {
        w.write(EPOCH_NS + f.ts_ns, &f.frame).expect("write frame");
    }
    w.finish().expect("finish pcap");
}

/// The rule ids each attack class is expected to raise with `analysis/rules/shadownet.rules`.
pub fn expected_sids(class: AttackClass) -> &'static [u64] {
    match class {
        AttackClass::SynFlood => &[9000001],
        AttackClass::PortScan => &[9000010, 9000011],
        AttackClass::DnsAmplification => &[9000020],
        AttackClass::Slowloris => &[9000030],
        AttackClass::Beaconing => &[9000040],
        AttackClass::LateralMovement => &[9000050, 9000051, 9000052, 9000053],
    }
}

/// The alert events of an EVE stream.
pub fn alerts(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .collect()
}

/// An alert reduced to what two runs over the same traffic must agree on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertKey {
    /// Rule id.
    pub sid: u64,
    /// Source address.
    pub src_ip: String,
    /// Source port (0 without ports).
    pub src_port: u64,
    /// Destination address.
    pub dest_ip: String,
    /// Destination port.
    pub dest_port: u64,
    /// Protocol.
    pub proto: String,
}

/// Alerts counted by key.
pub fn alert_counts(events: &[Value]) -> BTreeMap<AlertKey, u64> {
    let mut m = BTreeMap::new();
    for a in alerts(events) {
        let k = AlertKey {
            sid: a["alert"]["signature_id"].as_u64().unwrap_or(0),
            src_ip: a["src_ip"].as_str().unwrap_or("").to_string(),
            src_port: a["src_port"].as_u64().unwrap_or(0),
            dest_ip: a["dest_ip"].as_str().unwrap_or("").to_string(),
            dest_port: a["dest_port"].as_u64().unwrap_or(0),
            proto: a["proto"].as_str().unwrap_or("").to_string(),
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Alerts counted by rule id.
pub fn sid_counts(events: &[Value]) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for a in alerts(events) {
        *m.entry(a["alert"]["signature_id"].as_u64().unwrap_or(0))
            .or_insert(0) += 1;
    }
    m
}
