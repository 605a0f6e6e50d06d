//! The closed loop on the simulated NIC (issue 4's must-show, small): a SYN flood and a port
//! scan on benign background, mirrored or redirected into a shadow, detected by the built-in
//! detector there, correlated to the attacked VM and blocked in the production ACL. Mirror
//! mode lets attack packets through until the block is active and none after; redirect mode
//! lets none through once the shadow's verdict is in.

use shadownet_host::{
    analysis::trafficgen::{AttackClass, LABELS_HEADER, label_line},
    control::blocked_sources,
};
use shadownet_tests::{
    closed_loop::{control_delay_ns, run, run_with, scenario, setup},
    daemon::TestDaemon,
};

const BASELINE_S: f64 = 10.0;

fn incident_vms(d: &TestDaemon, token: &str) -> Vec<String> {
    let list = d.client(token).get("/v1/incidents").expect("incidents");
    list.as_array()
        .expect("list")
        .iter()
        .flat_map(|i| i["vms"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[test]
fn mirror_mode_blocks_the_flood_at_the_nic_and_nothing_passes_after_the_block() {
    let s = scenario(41, AttackClass::SynFlood, BASELINE_S, 5.0);
    // First run: findings act as soon as they reach the shadow; measures the host work.
    let d = TestDaemon::start("loop-mirror-measure");
    setup(&d, "mirror");
    let measure = run(&d, &s, BASELINE_S, None, None);
    let delay = control_delay_ns(&measure).expect("the flood was blocked");
    drop(d);
    // Second run: findings wait for that host work in NIC time.
    let d = TestDaemon::start("loop-mirror");
    let token = setup(&d, "mirror");
    let r = run(&d, &s, BASELINE_S, Some(delay), None);
    let flood = &r.classes["syn_flood"];
    let first = flood.first_ns.expect("flood fed");
    let detected = flood.detected_ns.expect("the detector saw the flood");
    let active = r.first_block_ns().expect("a block became active");
    assert!(first < detected && detected < active, "{r:#?}");
    assert!(active - detected >= delay, "{r:#?}");
    // The flood's source is the one blocked; the attacked VM is named.
    let blocked = blocked_sources(&r);
    assert!(
        blocked.contains(&"198.51.100.66".parse().expect("ip")),
        "{blocked:?}"
    );
    assert!(
        incident_vms(&d, &token).contains(&"shop/vm11".to_string()),
        "{:?}",
        incident_vms(&d, &token)
    );
    // Mirror mode: frames before the block reach production; none after it.
    assert!(
        flood.delivered > 0 && flood.delivered < flood.fed,
        "{flood:?}"
    );
    assert_eq!(flood.delivered_after_block, 0, "{flood:?}");
    // Benign traffic is untouched by the flood's block.
    let benign = &r.classes["benign"];
    assert_eq!(benign.delivered, benign.fed, "{benign:?}");
    assert!(r.shadow_frames > 0 && r.shadow_lost == 0, "{r:#?}");
}

#[test]
fn a_spoofed_syn_flood_is_rate_limited_at_the_nic_instead_of_blocked_source_by_source() {
    // Every SYN from a different random source: no block by source can stop it.
    let mut s = scenario(53, AttackClass::SynFlood, BASELINE_S, 5.0);
    s.attacks[0].attacker = None;
    let attack = s.attacks[0].clone();
    let d = TestDaemon::start("loop-spoofed-flood");
    let token = setup(&d, "mirror");
    // The generator records the server's SYN-ACKs whether or not its SYN got through;
    // production would not answer a SYN the NIC dropped. Feed the flood's SYNs only, so
    // what the class delivers is what the limit let through.
    let r = run_with(&d, &s, BASELINE_S, None, None, |frames| {
        frames.retain(|f| {
            f.attack.as_deref() != Some("syn_flood") || f.port == shadownet_hw::Port::Uplink
        })
    });
    let flood = &r.classes["syn_flood"];
    assert!(flood.detected_ns.is_some(), "{r:#?}");
    let active = r.first_block_ns().expect("a mitigation became active");
    // One rate limit toward the attacked VM, connection attempts to its port only; no
    // source blocked.
    let rules: Vec<_> = r
        .ingests
        .iter()
        .flat_map(|i| i.report.activations())
        .map(|a| a.rule.clone())
        .collect();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    let rule = &rules[0];
    let limit = rule.rate_limit.expect("a rate limit, not a block");
    assert_eq!(rule.src, "0.0.0.0/0");
    assert!(rule.connections_only, "{rule:?}");
    assert_eq!(rule.protocol.as_deref(), Some("tcp"));
    let target = rule.dst.clone().expect("the attacked VM");
    assert!(
        incident_vms(&d, &token)
            .iter()
            .any(|v| format!("shop/vm{}", target.rsplit('.').next().unwrap_or("")) == *v),
        "{target} {:?}",
        incident_vms(&d, &token)
    );
    // The limit is far below the flood's rate, above the target's normal connection rate.
    assert!(
        f64::from(limit.pps) < attack.rate_pps / 4.0,
        "{limit:?} vs {} pps",
        attack.rate_pps
    );
    // After the limit is active, at most its rate (and burst) of the flood gets through:
    // the flood lasts 5 s from its start; the limit was active before its end.
    let flood_end_ns = flood.first_ns.expect("fed") + 5_000_000_000;
    assert!(active < flood_end_ns, "{r:#?}");
    let allowed = f64::from(limit.pps) * (flood_end_ns - active) as f64 / 1e9
        + f64::from(limit.burst.unwrap_or(limit.pps));
    assert!(
        (flood.delivered_after_block as f64) <= allowed + 1.0,
        "{} delivered after the limit, {allowed:.0} allowed; {flood:?}",
        flood.delivered_after_block
    );
    eprintln!(
        "spoofed SYN flood: limit {} /s burst {:?}; {} SYNs fed, {} delivered, {} after the \
         limit ({allowed:.0} allowed)",
        limit.pps, limit.burst, flood.fed, flood.delivered, flood.delivered_after_block
    );
    assert!(flood.delivered < flood.fed / 2, "{flood:?}");
    // Benign traffic: what does not open connections to that port is untouched.
    let benign = &r.classes["benign"];
    assert!(
        benign.delivered as f64 >= 0.98 * benign.fed as f64,
        "{benign:?}"
    );
}

#[test]
fn redirect_mode_releases_nothing_of_a_scan_once_the_shadow_has_detected_it() {
    let s = scenario(43, AttackClass::PortScan, BASELINE_S, 5.0);
    let d = TestDaemon::start("loop-redirect");
    let token = setup(&d, "redirect");
    let r = run(&d, &s, BASELINE_S, None, None);
    let scan = &r.classes["port_scan"];
    assert!(scan.detected_ns.is_some(), "{r:#?}");
    assert_eq!(scan.released_after_detected, 0, "{scan:?}");
    assert_eq!(scan.delivered_after_detected, 0, "{scan:?}");
    assert!(scan.withheld > 0, "{scan:?}");
    // Production got exactly what the gate released.
    assert!(scan.delivered <= scan.released, "{scan:?}");
    assert!(scan.delivered < scan.fed / 2, "{scan:?}");
    assert!(
        blocked_sources(&r).contains(&"198.51.100.23".parse().expect("ip")),
        "{r:#?}"
    );
    assert!(incident_vms(&d, &token).contains(&"shop/vm11".to_string()));
    // Benign traffic reaches production through the gate.
    let benign = &r.classes["benign"];
    assert_eq!(benign.delivered, benign.released, "{benign:?}");
    assert!(
        benign.delivered as f64 >= 0.99 * benign.fed as f64,
        "{benign:?}"
    );
    assert_eq!(
        r.releases,
        r.classes.values().map(|c| c.released).sum::<u64>()
    );
}

#[test]
fn the_daemon_runs_generated_attacks_through_the_loop_and_refuses_bad_requests() {
    let d = TestDaemon::start("loop-api");
    let token = setup(&d, "mirror");
    let c = d.client(&token);
    let s = scenario(47, AttackClass::DnsAmplification, BASELINE_S, 3.0);
    let body = serde_json::json!({
        "scenario": serde_json::to_value(&s).expect("scenario"),
        "baseline_s": BASELINE_S,
        "control_delay_ms": 5.0,
    });
    let r = c
        .send("POST", "/v1/shadows/shop-shadow/loop", &body, &[])
        .expect("loop");
    let amp = &r["classes"]["dns_amplification"];
    assert!(amp["detected_ns"].as_u64().is_some(), "{r}");
    assert_eq!(amp["delivered_after_block"], 0, "{r}");
    assert!(amp["delivered"].as_u64() < amp["fed"].as_u64(), "{r}");
    let ingest = &r["ingests"][0];
    assert!(
        ingest["ingested_ns"].as_u64() >= ingest["raised_ns"].as_u64().map(|t| t + 5_000_000),
        "{r}"
    );
    assert_eq!(
        ingest["report"]["mitigations"][0]["source"], "198.51.100.53",
        "{r}"
    );
    // Bad requests change nothing and say what is wrong.
    let before = c.get("/v1/mitigations").expect("mitigations");
    let err = c
        .send("POST", "/v1/shadows/nope/loop", &body, &[])
        .expect_err("unknown shadow")
        .to_string();
    assert!(err.contains("404"), "{err}");
    let mut bad = body.clone();
    bad["scenario"]["benign_pps"] = serde_json::json!(-5.0);
    let err = c
        .send("POST", "/v1/shadows/shop-shadow/loop", &bad, &[])
        .expect_err("bad scenario")
        .to_string();
    assert!(err.contains("422") || err.contains("400"), "{err}");
    assert_eq!(c.get("/v1/mitigations").expect("mitigations"), before);
}

#[test]
fn a_vm_probing_the_shadows_honeypot_is_answered_in_the_shadow_and_quarantined() {
    use shadownet_hw::Port;
    use shadownet_tests::{
        closed_loop::{run_with, setup_shadow, vm_ip},
        packet::Builder,
    };
    const DECOY: &str = "192.168.10.99";
    let d = TestDaemon::start("loop-honeypot");
    let token = setup_shadow(
        &d,
        "mirror",
        "auto",
        serde_json::json!([{
            "name": "decoy", "kind": "honeypot", "ip": DECOY,
            "endpoint": {"ip": "10.0.0.51", "mac": "02:00:00:00:00:51"},
            "services": [{"protocol": "tcp", "port": 22}, {"protocol": "tcp", "port": 80}]
        }]),
    );
    // Benign background only; the detector is still learning when the run ends, so every
    // finding of the run is the honeypot's.
    let mut s = scenario(53, AttackClass::PortScan, BASELINE_S, 1.0);
    s.attacks.clear();
    s.duration_s = 6.0;
    let vm12 = vm_ip(2);
    let o = vm12.octets();
    let vm12_mac = [0x02, 0x5e, o[0], o[1], o[2], o[3]];
    // Findings wait 100 ms of NIC time for the host work, so the whole sweep (40 ms) reaches
    // the decoy before vm12 is blocked.
    let r = run_with(&d, &s, BASELINE_S, Some(100_000_000), None, move |frames| {
        let port = frames
            .iter()
            .find(|f| f.port != Port::Uplink && f.frame[6..12] == vm12_mac)
            .map(|f| f.port)
            .expect("vm12 sends in the background traffic");
        // vm12 sweeps its subnet and finds the decoy: SYNs to two open and two closed ports,
        // as production addresses them (to the gateway's MAC: production has no such VM).
        for (k, dport) in [22u16, 80, 445, 3389].into_iter().enumerate() {
            frames.push(shadownet_host::control::LoopFrame {
                port,
                at_ns: 2_000_000_000 + k as u64 * 10_000_000,
                frame: Builder::tcp(&vm12.to_string(), DECOY, 40_000 + k as u16, dport)
                    .macs(vm12_mac, [0x02, 0, 0, 0, 0, 1])
                    .flags(0x02)
                    .build(),
                attack: Some("decoy_probe".into()),
            });
        }
        frames.sort_by_key(|f| f.at_ns);
    });
    assert_eq!(r.alerts, 0, "the detector only learnt: {r:#?}");
    assert_eq!(r.honeypot_interactions, 4, "{r:#?}");
    // SYN-ACKs from the open ports, RSTs from the closed ones; they stay in the shadow.
    assert_eq!(r.honeypot_replies, 4, "{r:#?}");
    // Four probes within a second: one alert (one a second per peer, decoy and signature).
    assert_eq!(r.honeypot_alerts, 1, "{r:#?}");
    let probe = &r.classes["decoy_probe"];
    assert!(probe.detected_ns.is_some(), "{probe:?}");
    assert_eq!(
        blocked_sources(&r),
        vec![std::net::IpAddr::V4(vm12)],
        "{r:#?}"
    );

    let findings = d.client(&token).get("/v1/findings").expect("findings");
    let f = &findings[0];
    assert_eq!(f["signature_id"], 9_200_001, "{findings}");
    assert_eq!(f["correlation"]["outside"], vm12.to_string(), "{f}");
    assert_eq!(f["correlation"]["target"], DECOY, "{f}");
    assert!(
        f["correlation"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("production VM vm12 probed honeypot 'decoy'")),
        "{f}"
    );
    assert_eq!(
        f["event"]["alert"]["metadata"]["shadownet"]["honeypot"], "decoy",
        "{f}"
    );
    // vm12 is quarantined: its background traffic after the block no longer reaches
    // production (without a block every benign frame is delivered: see the tests above;
    // vm12's is the only block rule).
    let benign = &r.classes["benign"];
    assert!(benign.delivered < benign.fed, "{benign:?}");
}

#[test]
fn a_recorded_capture_stored_with_the_shadow_replays_through_the_loop() {
    use serde_json::Value;
    use shadownet_capture::PcapWriter;
    use shadownet_host::analysis::trafficgen::generate;
    use shadownet_tests::{daemon::raw, scratch::Scratch};
    let d = TestDaemon::start("loop-capture");
    let token = setup(&d, "mirror");
    let c = d.client(&token);
    // The recording: a port scan on benign background, as a capture file (no labels).
    let s = scenario(43, AttackClass::PortScan, BASELINE_S, 5.0);
    let dir = Scratch::new("loop-capture-pcap");
    let path = dir.path().join("scan.pcap");
    let mut w = PcapWriter::create(&path, 65_535).expect("pcap");
    let mut written = 0u64;
    let mut labels = format!("{LABELS_HEADER}\n");
    for f in generate(&s).expect("scenario") {
        w.write(1_795_000_000_000_000_000 + f.ts_ns, &f.frame)
            .expect("frame");
        written += 1;
        labels += &label_line(written, 1_795_000_000_000_000_000, &f);
        labels.push('\n');
    }
    w.finish().expect("finish");
    let labels_path = dir.path().join("labels.csv");
    std::fs::write(&labels_path, &labels).expect("labels");
    let capture = std::fs::read(&path).expect("read back");
    let (status, _, stored) = raw(
        &d.base,
        "PUT",
        "/v1/shadows/shop-shadow/captures/scan",
        Some(&token),
        Some("application/vnd.tcpdump.pcap"),
        &capture,
    );
    assert_eq!(status, 201, "{stored}");

    let body = serde_json::json!({"artefact": "scan", "baseline_s": BASELINE_S});
    let r = c
        .send("POST", "/v1/shadows/shop-shadow/loop", &body, &[])
        .expect("loop over the capture");
    let all = &r["classes"]["unlabelled"];
    // Every frame of the generated capture is from or to a VM of this NIC.
    assert_eq!(all["fed"], written, "{r}");
    assert_eq!(r["frames"], written, "{r}");
    assert!(r["alerts"].as_u64() > Some(0), "{r}");
    assert!(all["detected_ns"].as_u64().is_some(), "{r}");
    let committed: Vec<Value> = r["ingests"]
        .as_array()
        .expect("ingests")
        .iter()
        .flat_map(|i| {
            i["report"]["mitigations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["action"] == "committed")
        .collect();
    assert!(
        committed.iter().any(|m| m["source"] == "198.51.100.23"),
        "{r}"
    );

    // Bad requests say what is wrong and change nothing.
    let before = c.get("/v1/mitigations").expect("mitigations");
    for (bad, code, text) in [
        (
            serde_json::json!({"artefact": "scan", "scenario": serde_json::to_value(&s).expect("s")}),
            "422",
            "exactly one of 'scenario', 'artefact' and 'pcap'",
        ),
        (serde_json::json!({}), "422", "exactly one"),
        (
            serde_json::json!({"artefact": "nope"}),
            "404",
            "shop-shadow/nope",
        ),
        // A file on the daemon's host needs the admin token.
        (
            serde_json::json!({"pcap": path.display().to_string()}),
            "403",
            "admin token",
        ),
        (
            serde_json::json!({"artefact": "scan", "labels": labels_path.display().to_string()}),
            "422",
            "only with 'pcap'",
        ),
    ] {
        let err = c
            .send("POST", "/v1/shadows/shop-shadow/loop", &bad, &[])
            .expect_err("refused")
            .to_string();
        assert!(err.contains(code) && err.contains(text), "{bad}: {err}");
    }
    // The file with its ground truth, as the admin: counted per class.
    let admin = shadowctl::client::Client::new(
        &d.base,
        Some(d.admin.clone()),
        Some(shadownet_tests::closed_loop::TENANT.to_string()),
    );
    let r = admin
        .send(
            "POST",
            "/v1/shadows/shop-shadow/loop",
            &serde_json::json!({
                "pcap": path.display().to_string(),
                "labels": labels_path.display().to_string(),
                "baseline_s": BASELINE_S,
            }),
            &[],
        )
        .expect("labelled replay");
    let classes = r["classes"].as_object().expect("classes");
    assert!(!classes.contains_key("unlabelled"), "{r}");
    let fed = |c: &str| r["classes"][c]["fed"].as_u64().unwrap_or(0);
    assert!(fed("port_scan") > 0 && fed("benign") > 0, "{r}");
    assert_eq!(fed("port_scan") + fed("benign"), written, "{r}");
    // A capture none of whose frames would cross this NIC.
    let mut w = PcapWriter::create(&path, 65_535).expect("pcap");
    w.write(
        1,
        &shadownet_tests::packet::Builder::udp("10.9.9.1", "10.9.9.2", 1, 2).build(),
    )
    .expect("frame");
    w.finish().expect("finish");
    raw(
        &d.base,
        "PUT",
        "/v1/shadows/shop-shadow/captures/elsewhere",
        Some(&token),
        Some("application/vnd.tcpdump.pcap"),
        &std::fs::read(&path).expect("read"),
    );
    let err = c
        .send(
            "POST",
            "/v1/shadows/shop-shadow/loop",
            &serde_json::json!({"artefact": "elsewhere"}),
            &[],
        )
        .expect_err("nothing to replay")
        .to_string();
    assert!(
        err.contains("none of its 1 frames would cross this NIC"),
        "{err}"
    );
    assert_eq!(c.get("/v1/mitigations").expect("mitigations"), before);
}

#[test]
fn lateral_movement_blocks_the_sweeping_vm_not_the_vms_that_answer() {
    let s = scenario(7, AttackClass::LateralMovement, BASELINE_S, 8.0);
    let d = TestDaemon::start("loop-lateral");
    setup(&d, "mirror");
    let r = run(&d, &s, BASELINE_S, Some(5_000_000), None);
    let lateral = &r.classes["lateral_movement"];
    assert!(lateral.detected_ns.is_some(), "{r:#?}");
    // The generator's sweeper is the last internal host; the swept VMs answer it.
    let sweeper: std::net::IpAddr =
        shadownet_tests::closed_loop::vm_ip(shadownet_tests::closed_loop::HOSTS - 1).into();
    assert_eq!(blocked_sources(&r), vec![sweeper], "{r:#?}");
}

/// A loop run takes the controller for as long as it runs; `GET`s are answered between its
/// steps (with what it has stored so far), not after it.
#[test]
fn reads_are_answered_while_a_loop_runs() {
    let d = TestDaemon::start("loop-reads");
    let token = setup(&d, "mirror");
    // A scan detected a few seconds in, then a minute more of traffic.
    let s = scenario(59, AttackClass::PortScan, BASELINE_S, 60.0);
    let body = serde_json::json!({
        "scenario": serde_json::to_value(&s).expect("scenario"),
        "baseline_s": BASELINE_S,
    });
    let looping = d.client(&token);
    let run = std::thread::spawn(move || {
        looping
            .send("POST", "/v1/shadows/shop-shadow/loop", &body, &[])
            .expect("loop")
    });
    let c = d.client(&token);
    let mut seen_during_the_run = None;
    while !run.is_finished() {
        let incidents = c.get("/v1/incidents").expect("incidents");
        if !run.is_finished() && incidents.as_array().is_some_and(|a| !a.is_empty()) {
            seen_during_the_run = Some(incidents);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = run.join().expect("the loop's client");
    let seen = seen_during_the_run.expect("an incident the run opened, read while it ran");
    assert_eq!(seen[0]["vms"], serde_json::json!(["shop/vm11"]), "{seen}");
    // The run went on after that read and finished normally.
    assert!(
        report["classes"]["port_scan"]["detected_ns"]
            .as_u64()
            .is_some(),
        "{report}"
    );
}
