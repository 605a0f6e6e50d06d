//! The closed loop, measured: every attack class on benign background, in mirror and in
//! redirect mode, through the simulated production NIC with the shadow's analysis in the
//! loop (built-in detector inline; Suricata over what the shadow received), findings
//! correlated and blocked in the production ACL by the `auto` mitigation policy.
//!
//! `cargo run -p shadownet-tests --example closed_loop [SEED]` prints a Markdown table.
//!
//! Each case runs twice on a fresh daemon: first with findings acting the moment they reach
//! the shadow (measures the host work of the first block: ingest, correlation, store,
//! NIC programming and read-back, in wall time, plus the firmware's cycles), then with
//! findings held back by that much NIC time, so the block is active in the NIC when the
//! host work would have ended. The second run's figures are reported.

use std::collections::BTreeMap;

use serde_json::Value;
use shadownet_host::{
    analysis::{suricata::run_pcap, trafficgen::AttackClass},
    control::{ShadowRef, blocked_sources, parse_timestamp},
};
use shadownet_tests::{
    closed_loop::{SHADOW, TENANT, control_delay_ns, run, scenario, setup, setup_with_policy},
    daemon::TestDaemon,
    scratch::Scratch,
    suricata,
};

const BASELINE_S: f64 = 20.0;

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// Suricata over the shadow's traffic when nothing is blocked (policy `propose`), its alerts
/// ingested as findings: one row of the second table.
fn watch(
    s: &shadownet_host::analysis::trafficgen::Scenario,
    class: AttackClass,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let Some(bin) = bin else {
        return Ok(format!(
            "| {} | suricata not installed | | | |",
            class.name()
        ));
    };
    let d = TestDaemon::start("closed-loop-watch");
    let token = setup_with_policy(&d, "mirror", "propose");
    let dir = Scratch::new("closed-loop-shadow");
    let capture = dir.path().join("shadow.pcap");
    let r = run(&d, s, BASELINE_S, None, Some(&capture));
    let first_ns = r
        .classes
        .get(class.name())
        .and_then(|c| c.first_ns)
        .unwrap_or(0);
    let events = run_pcap(
        bin,
        &dir.path().join("suricata"),
        vec![suricata::SUBNET.to_string()],
        &capture,
    )?;
    let alerts: Vec<Value> = events
        .into_iter()
        .filter(|e| e["event_type"] == "alert")
        .collect();
    let expected = suricata::expected_sids(class);
    let mut sids: BTreeMap<u64, u64> = BTreeMap::new();
    let mut first_alert_ms: Option<i64> = None;
    // The loop stamps the shadow's capture with the controller's clock at the run's start.
    let epoch_ms = 1_800_000_000_000i64;
    for a in &alerts {
        let Some(sid) = a["alert"]["signature_id"].as_u64() else {
            continue;
        };
        *sids.entry(sid).or_default() += 1;
        if expected.contains(&sid)
            && let Some(t) = a["timestamp"]
                .as_str()
                .and_then(|t| parse_timestamp(t).ok())
        {
            let after = t - epoch_ms - (first_ns / 1_000_000) as i64;
            first_alert_ms = Some(first_alert_ms.map_or(after, |m| m.min(after)));
        }
    }
    let hit = sids.keys().any(|s| expected.contains(s));
    if !alerts.is_empty() {
        let batch: Vec<Value> = alerts.into_iter().take(10_000).collect();
        d.ctl
            .call_blocking(move |c| {
                c.ingest_findings(
                    ShadowRef::Name {
                        tenant: TENANT.into(),
                        name: SHADOW.into(),
                    },
                    batch,
                    "suricata",
                )
            })
            .map_err(|e| anyhow::anyhow!("{e:?}"))??;
    }
    // The production VMs Suricata's findings of the class were correlated to.
    let findings = d.client(&token).get("/v1/findings?limit=100000")?;
    let mut vms: Vec<String> = findings
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            f["signature_id"]
                .as_u64()
                .is_some_and(|x| expected.contains(&x))
        })
        .flat_map(|f| {
            ["src_vm", "dest_vm"].map(|side| {
                let v = &f["correlation"][side];
                v["vm"]
                    .as_str()
                    .map(|vm| format!("{}/{vm}", v["network"].as_str().unwrap_or("")))
            })
        })
        .flatten()
        .collect();
    vms.sort();
    vms.dedup();
    Ok(format!(
        "| {} | {} | {} | {} | {} |",
        class.name(),
        sids.iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        if hit { "yes" } else { "no" },
        first_alert_ms.map(|m| m.to_string()).unwrap_or_default(),
        vms.join(" ")
    ))
}

fn main() -> anyhow::Result<()> {
    let seed: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(7);
    let suricata_bin = suricata::binary();
    println!(
        "| attack | mode | attack frames | reached production | after the first | detected (ms after first) | block active (ms after first) | after detection | in NIC cycles | host work (ms wall) | blocked | VMs in incident |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let mut suricata_rows = Vec::new();
    for class in AttackClass::ALL {
        let attack_s = if class == AttackClass::Beaconing {
            60.0
        } else {
            20.0
        };
        let s = scenario(seed, class, BASELINE_S, attack_s);
        for mode in ["mirror", "redirect"] {
            let d = TestDaemon::start("closed-loop-measure");
            setup(&d, mode);
            let first = run(&d, &s, BASELINE_S, None, None);
            let delay = control_delay_ns(&first);
            drop(d);
            let d = TestDaemon::start("closed-loop");
            let token = setup(&d, mode);
            let r = run(&d, &s, BASELINE_S, delay, None);
            let c = r.classes.get(class.name()).cloned().unwrap_or_default();
            let first_ns = c.first_ns.unwrap_or(0);
            let detected = c.detected_ns.map(|t| ms(t.saturating_sub(first_ns)));
            let active = r.first_block_ns();
            let cycles = active.map(|a| a.saturating_sub(first_ns) * 1000 / r.cycle_ps);
            // The host work the second run accounted for: the first run's, measured.
            let host = delay.map(ms);
            let blocked: Vec<String> = blocked_sources(&r).iter().map(|a| a.to_string()).collect();
            let incidents = d.client(&token).get("/v1/incidents")?;
            let mut vms: Vec<String> = incidents
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|i| i["vms"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            vms.sort();
            vms.dedup();
            println!(
                "| {} | {mode} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                class.name(),
                c.fed,
                c.delivered,
                c.delivered_after_first,
                detected.unwrap_or_else(|| "not detected".into()),
                active
                    .map(|a| ms(a.saturating_sub(first_ns)))
                    .unwrap_or_else(|| "no block".into()),
                c.delivered_after_detected,
                cycles.map(|c| c.to_string()).unwrap_or_default(),
                host.unwrap_or_default(),
                blocked.join(" "),
                vms.join(" "),
            );
            let b = r.classes.get("benign").cloned().unwrap_or_default();
            if mode == "mirror" {
                suricata_rows.push(watch(&s, class, suricata_bin.as_deref())?);
            }
            eprintln!(
                "{} {mode}: benign fed {} delivered {} withheld {}; shadow frames {} lost {}; alerts {}; releases {}; run {} ms wall",
                class.name(),
                b.fed,
                b.delivered,
                b.withheld,
                r.shadow_frames,
                r.shadow_lost,
                r.alerts,
                r.releases,
                ms(r.wall_ns)
            );
        }
    }
    println!();
    println!(
        "| attack | Suricata alerts on the shadow's traffic (sid×count) | class rule fired | first class alert (ms after first attack frame) | production VMs its class findings name |"
    );
    println!("|---|---|---|---:|---|");
    for row in suricata_rows {
        println!("{row}");
    }
    Ok(())
}
