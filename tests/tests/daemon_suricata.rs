//! The daemon supervising Suricata (issue 4, item 1): `GET /v1/analysis/suricata` shows it
//! running with its version and counters; a loop run through `POST /v1/shadows/{s}/loop`
//! has it analyse the shadow's traffic, and its port-scan alerts come back as findings
//! correlated to the scanned production VM; killed, it is restarted by the supervisor and
//! the next analysis works. A daemon whose Suricata cannot start runs without it and says
//! so.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use shadownet_host::analysis::trafficgen::AttackClass;
use shadownet_tests::{
    cli::ok,
    closed_loop::{scenario, setup},
    daemon::{DaemonOptions, TestDaemon},
    scratch::Scratch,
    suricata::{binary, expected_sids},
};

const BASELINE_S: f64 = 5.0;

/// A port scan from `attacker` (the generator's default scanner when `None`).
fn loop_body(seed: u64, attacker: Option<&str>) -> Value {
    let mut s = scenario(seed, AttackClass::PortScan, BASELINE_S, 4.0);
    if let Some(a) = attacker {
        s.attacks[0].attacker = Some(a.to_string());
    }
    json!({
        "scenario": serde_json::to_value(&s).expect("scenario"),
        "baseline_s": BASELINE_S,
    })
}

/// `POST /v1/shadows/shop-shadow/loop` as the tenant; the report.
fn run_loop(d: &TestDaemon, token: &str, body: &Value) -> Value {
    d.client(token)
        .send("POST", "/v1/shadows/shop-shadow/loop", body, &[])
        .unwrap_or_else(|e| panic!("loop: {e}"))
}

fn status(d: &TestDaemon) -> Value {
    d.admin()
        .get("/v1/analysis/suricata")
        .expect("GET /v1/analysis/suricata")
}

#[test]
fn the_daemon_supervises_suricata_and_its_alerts_become_correlated_findings() {
    let Some(bin) = binary() else { return };
    let t0 = Instant::now();
    let d = TestDaemon::start_with(
        Scratch::new("daemon-suricata"),
        DaemonOptions {
            suricata: Some(bin),
        },
    );
    let token = setup(&d, "mirror");
    // Blocks from high and medium findings only: the bundled rules also log benign HTTP, DNS
    // and TLS as low-severity `misc-activity` alerts, which must not block anyone.
    d.client(&token)
        .send(
            "PUT",
            "/v1/mitigation-policy",
            &json!({
                "mode": "auto", "min_severity": 2, "min_findings": 1, "max_rules": 64,
                "rule_ttl_s": 3600, "incident_window_s": 600
            }),
            &[],
        )
        .expect("policy");

    // Running, with a version, readable by a tenant too.
    let st = d
        .client(&token)
        .get("/v1/analysis/suricata")
        .expect("tenant reads the status");
    assert_eq!(st["enabled"], true, "{st}");
    assert_eq!(st["running"], true, "{st}");
    assert!(
        st["version"].as_str().is_some_and(|v| v.starts_with('7')),
        "{st}"
    );
    assert_eq!(st["restarts"], 0, "{st}");
    let pid = st["pid"].as_u64().expect("a pid");
    let out = ok(&d, &["analysis", "suricata"]);
    assert!(
        out.starts_with(&format!("suricata: running, pid {pid}, version 7")),
        "{out}"
    );
    assert!(out.contains("starts 1, restarts 0"), "{out}");

    // A port scan through the loop: Suricata's alerts come back with the report and as
    // findings of the shadow correlated to the scanned VM.
    let r = run_loop(&d, &token, &loop_body(61, None));
    let su = &r["suricata"];
    assert!(su["error"].is_null(), "{su}");
    let expected = expected_sids(AttackClass::PortScan);
    let scan_alerts: u64 = expected
        .iter()
        .filter_map(|sid| su["alerts_by_sid"][sid.to_string()].as_u64())
        .sum();
    assert!(scan_alerts > 0, "no port-scan alert from suricata: {su}");
    assert!(su["events"].as_u64() > su["alerts"].as_u64(), "{su}");
    assert_eq!(
        su["accepted"]
            .as_u64()
            .zip(su["low_severity"].as_u64())
            .map(|(a, l)| a + l),
        su["alerts"].as_u64(),
        "{su}"
    );
    assert!(su["correlated"].as_u64() > Some(0), "{su}");
    assert!(
        !su["incidents"].as_array().expect("incidents").is_empty(),
        "{su}"
    );
    // The policy acted on Suricata's findings: with them the scanned VM's incident reaches
    // the policy's severity and the scanner is blocked in the NIC. (The incident also holds
    // the built-in detector's low-severity findings, whose sources the policy blocks with it.)
    assert!(
        su["mitigations"]
            .as_array()
            .expect("mitigations")
            .iter()
            .any(|m| m["source"] == "198.51.100.23" && m["action"] == "committed"),
        "{su}"
    );
    eprintln!(
        "suricata in the loop: {} events, alerts by sid {}, {} findings ({} correlated), incidents {}, mitigations {}, analysis {:.1} ms, ingest {:.1} ms",
        su["events"],
        su["alerts_by_sid"],
        su["accepted"],
        su["correlated"],
        su["incidents"],
        su["mitigations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{} {}", m["action"], m["source"]))
            .collect::<Vec<_>>()
            .join(", "),
        su["analysis_ns"].as_f64().unwrap_or(0.0) / 1e6,
        su["ingest_ns"].as_f64().unwrap_or(0.0) / 1e6
    );
    let findings = d
        .client(&token)
        .get("/v1/findings?limit=100000")
        .expect("findings");
    let scan: Vec<&Value> = findings
        .as_array()
        .expect("list")
        .iter()
        .filter(|f| {
            f["signature_id"]
                .as_u64()
                .is_some_and(|s| expected.contains(&s))
        })
        .collect();
    assert!(!scan.is_empty(), "{findings}");
    let vms: Vec<String> = scan
        .iter()
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
    assert!(vms.iter().any(|v| v == "shop/vm11"), "{vms:?}: {scan:?}");

    // The status counts the analysis and carries Suricata's counters: live from
    // `dump-counters` when the engine answers it, else the last analysis's.
    let st = status(&d);
    assert_eq!(st["analyses"], 1, "{st}");
    assert!(st["eve_alerts"].as_u64() >= su["alerts"].as_u64(), "{st}");
    assert!(st["counters"]["decoder_pkts"].as_u64() > Some(0), "{st}");
    assert!(st["packets_total"].as_u64() > Some(0), "{st}");
    assert_eq!(st["alerts_total"], su["alerts"], "{st}");
    assert!(
        st["counters_source"] == "dump-counters" || st["counters_source"] == "last-analysis",
        "{st}"
    );

    // Killed, Suricata is restarted by the supervisor and the next analysis works.
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = status(&d);
        if st["restarts"].as_u64() >= Some(1) && st["running"] == true {
            break st;
        }
        assert!(Instant::now() < deadline, "not restarted: {st}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(st["pid"].as_u64(), Some(pid), "{st}");
    assert_eq!(st["last_exit"]["signal"], 9, "{st}");
    let out = ok(&d, &["analysis", "suricata"]);
    assert!(
        out.contains("restarts 1; last exit: signal 9 after"),
        "{out}"
    );
    // Another scanner: the first is blocked in the NIC now, so none of its frames would
    // reach the shadow.
    let r = run_loop(&d, &token, &loop_body(62, Some("198.51.100.24")));
    let su = &r["suricata"];
    assert!(su["error"].is_null(), "{su}");
    assert!(su["events"].as_u64() > Some(0), "{su}");
    let scan_alerts: u64 = expected
        .iter()
        .filter_map(|sid| su["alerts_by_sid"][sid.to_string()].as_u64())
        .sum();
    assert!(
        scan_alerts > 0,
        "no port-scan alert after the restart: {su}"
    );
    assert_eq!(status(&d)["analyses"], 2);
    eprintln!("whole test: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_daemon_whose_suricata_cannot_start_runs_without_it_and_says_so() {
    // The binary is not there at start; it is installed later.
    let bin_dir = Scratch::new("daemon-no-suricata-bin");
    let later = bin_dir.path().join("suricata");
    let d = TestDaemon::start_with(
        Scratch::new("daemon-no-suricata"),
        DaemonOptions {
            suricata: Some(later.clone()),
        },
    );
    let st = status(&d);
    assert_eq!(st["enabled"], true, "{st}");
    assert_eq!(st["running"], false, "{st}");
    assert!(
        st["error"]
            .as_str()
            .is_some_and(|e| e.contains(&*later.to_string_lossy())),
        "{st}"
    );
    assert_eq!(st["start_attempts"], 1, "{st}");
    // The loop still runs, with the built-in detector only.
    let token = setup(&d, "mirror");
    let r = run_loop(&d, &token, &loop_body(63, None));
    assert!(r["suricata"].is_null(), "{r}");
    assert!(r["classes"]["port_scan"]["fed"].as_u64() > Some(0), "{r}");
    assert_eq!(status(&d)["start_attempts"], 2, "the loop tried again");

    // Installed since: the next loop starts it and has it analyse the shadow's traffic.
    if let Some(bin) = binary() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &later,
            format!("#!/bin/sh\nexec {} \"$@\"\n", bin.display()),
        )
        .expect("install");
        std::fs::set_permissions(&later, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
        let r = run_loop(&d, &token, &loop_body(64, None));
        assert!(r["suricata"]["error"].is_null(), "{r}");
        assert!(r["suricata"]["events"].as_u64() > Some(0), "{r}");
        let st = status(&d);
        assert_eq!(st["running"], true, "{st}");
        assert!(st["error"].is_null(), "{st}");
        assert_eq!(st["start_attempts"], 3, "{st}");
    }

    // A daemon not asked to supervise Suricata says that.
    let plain = TestDaemon::start("daemon-without-suricata");
    let st = status(&plain);
    assert_eq!(st["enabled"], false, "{st}");
    assert!(
        st["error"]
            .as_str()
            .is_some_and(|e| e.contains("--suricata"))
    );
}
