//! The closed loop on the simulated NIC: generated attacks on a production network whose VMs
//! all run behind this NIC, mirrored (or redirected) into a shadow, detected there, correlated
//! to production and blocked in the production ACL.
//!
//! The production network `shop` (VNI 100, `192.168.10.0/24`) has one VM per host address
//! the traffic generator uses (`.10` up, MACs as the generator makes them) and a remote
//! node `edge` on the substrate host `10.0.0.2` through which outside traffic arrives.

use std::{net::Ipv4Addr, path::Path};

use serde_json::{Value, json};
use shadownet_host::{
    analysis::{
        detector::DetectorConfig,
        trafficgen::{AttackClass, AttackSpec, Scenario},
    },
    control::{Caller, LoopFrame, LoopReport, LoopRequest},
};

use crate::daemon::{NIC_IP, NIC_MAC, TestDaemon};

/// The production network's VNI.
pub const VNI: u32 = 100;
/// VMs of the production network (the generator's internal hosts).
pub const HOSTS: u32 = 8;
/// The substrate host outside traffic arrives from.
pub const EDGE_HOST: &str = "10.0.0.2";
/// The tenant.
pub const TENANT: &str = "acme";
/// The shadow.
pub const SHADOW: &str = "shop-shadow";

/// The generator's `i`th internal host.
pub fn vm_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 10, 10 + i as u8)
}

/// The production network.
pub fn network() -> Value {
    let mut nodes: Vec<Value> = (0..HOSTS)
        .map(|i| {
            let ip = vm_ip(i);
            let o = ip.octets();
            json!({
                "name": format!("vm{}", o[3]),
                "ip": ip.to_string(),
                "mac": format!("02:5e:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
                "host": NIC_IP, "host_mac": NIC_MAC,
            })
        })
        .collect();
    nodes.push(json!({
        "name": "edge", "ip": "192.168.10.250", "mac": "02:00:00:00:10:fa",
        "host": EDGE_HOST, "host_mac": "02:00:00:00:00:02"
    }));
    json!({
        "name": "shop", "vni": VNI,
        "prefixes": ["192.168.10.0/24"],
        "subnets": [{"name": "app", "prefix": "192.168.10.0/24"}],
        "nodes": nodes,
    })
}

/// Sets up the tenant, the network, a shadow of it in `mode` (`mirror` or `redirect`) that
/// takes every packet, and a mitigation policy in `auto` mode that blocks on the first
/// finding; returns the tenant's token.
pub fn setup(d: &TestDaemon, mode: &str) -> String {
    setup_with_policy(d, mode, "auto")
}

/// [`setup`] with the mitigation policy in `policy_mode` (`off`, `propose`, `auto`).
pub fn setup_with_policy(d: &TestDaemon, mode: &str, policy_mode: &str) -> String {
    setup_shadow(d, mode, policy_mode, json!([]))
}

/// [`setup_with_policy`] with the shadow's `analysis_nodes`.
pub fn setup_shadow(
    d: &TestDaemon,
    mode: &str,
    policy_mode: &str,
    analysis_nodes: Value,
) -> String {
    let token = d.tenant(TENANT, json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &network(), &[])
        .expect("network");
    c.send(
        "POST",
        "/v1/shadows",
        &json!({
            "name": SHADOW, "network": "shop", "ttl_s": 86_400, "mode": mode,
            "collector": {"ip": "10.0.0.50", "mac": "02:00:00:00:00:50"},
            "policy": {"rules": [{"direction": "both"}]},
            "analysis_nodes": analysis_nodes,
        }),
        &[],
    )
    .expect("shadow");
    c.send(
        "PUT",
        "/v1/mitigation-policy",
        &json!({
            "mode": policy_mode, "min_severity": 3, "min_findings": 1, "max_rules": 64,
            "rule_ttl_s": 3600, "incident_window_s": 600
        }),
        &[],
    )
    .expect("policy");
    token
}

/// One attack class on benign background: the detector learns for `baseline_s`, the attack
/// starts then and lasts `attack_s`. The SYN flood comes from one address and the DNS
/// amplification from one reflector.
pub fn scenario(seed: u64, class: AttackClass, baseline_s: f64, attack_s: f64) -> Scenario {
    Scenario {
        seed,
        duration_s: baseline_s + attack_s + 2.0,
        subnet: "192.168.10.0/24".into(),
        hosts: HOSTS,
        benign_pps: 300.0,
        attacks: vec![AttackSpec {
            class,
            start_s: baseline_s,
            duration_s: attack_s,
            rate_pps: class.default_rate(),
            // One flooding source and one reflector: a block by source address can stop
            // them (spoofed or widely distributed floods need rate limits, not ACL rules).
            attacker: match class {
                AttackClass::SynFlood => Some("198.51.100.66".into()),
                AttackClass::DnsAmplification => Some("198.51.100.53".into()),
                _ => None,
            },
            target: None,
        }],
        ..Scenario::default()
    }
}

/// The loop's detector: the built-in one with a baseline of `baseline_s`.
pub fn detector(baseline_s: f64) -> DetectorConfig {
    DetectorConfig {
        baseline_s,
        ..DetectorConfig::default()
    }
}

/// Runs `scenario` through the daemon's NIC with the shadow in the loop.
pub fn run(
    d: &TestDaemon,
    scenario: &Scenario,
    baseline_s: f64,
    control_delay_ns: Option<u64>,
    shadow_capture: Option<&Path>,
) -> LoopReport {
    run_with(
        d,
        scenario,
        baseline_s,
        control_delay_ns,
        shadow_capture,
        |_| {},
    )
}

/// [`run`] with `extra` changing the frames the daemon mapped onto the NIC's ports before
/// they are fed (frames must stay in arrival order).
pub fn run_with(
    d: &TestDaemon,
    scenario: &Scenario,
    baseline_s: f64,
    control_delay_ns: Option<u64>,
    shadow_capture: Option<&Path>,
    extra: impl FnOnce(&mut Vec<LoopFrame>) + Send + 'static,
) -> LoopReport {
    let scenario = scenario.clone();
    let capture = shadow_capture.map(Path::to_path_buf);
    d.ctl
        .call_blocking(move |c| {
            let caller = Caller {
                tenant: Some(TENANT.into()),
                admin: false,
                actor: format!("tenant:{TENANT}"),
            };
            // The daemon's own mapping of generated traffic onto the NIC's ports.
            let mut frames = c.generated_frames(&caller, SHADOW, &scenario)?;
            extra(&mut frames);
            c.run_shadow_loop(
                &caller,
                LoopRequest {
                    shadow: SHADOW.into(),
                    frames,
                    detector: detector(baseline_s),
                    gate_score: 6.5,
                    fabric_ns: 5_000,
                    control_delay_ns,
                    honeypots: vec![],
                    shadow_capture: capture,
                },
            )
        })
        .expect("controller")
        .unwrap_or_else(|e| panic!("loop: {e}"))
}

/// The host work of a run's first block, in NIC ns: the ingest's wall time and its firmware
/// cycles (what the second, honest run holds findings back by).
pub fn control_delay_ns(r: &LoopReport) -> Option<u64> {
    let i = r.ingests.iter().find(|i| i.active_ns.is_some())?;
    Some(i.wall_ns + i.firmware_cycles * r.cycle_ps / 1000)
}
