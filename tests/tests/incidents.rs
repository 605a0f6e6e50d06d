//! Findings, correlation, incidents and mitigation end to end through the in-process daemon
//! (fake clock, simulated NIC) and its HTTP API: two attacks become two incidents correlated
//! to the right VMs; the policy in auto mode puts ACL denies into the NIC that drop the
//! attacker's traffic; allow-list and max-rules refusals; TTL expiry; restart; a trial whose
//! numbers are checked against a capture built here; bad findings refused without effect.

use serde_json::{Value, json};
use shadownet_host::reconcile::read_back;
use shadownet_hw::{
    counters::drop_reason,
    drop::DropReason,
    layout::acl::{AclRule, Verdict},
};
use shadownet_tests::{
    cli::{ctl, ok},
    daemon::{NIC_IP, TestDaemon, raw, status_of, two_tier},
    packet::{Builder, arp_request, mac, vxlan},
};

/// The daemon's fake clock starts at 2027-01-15T08:00:00Z.
const T0_MS: i64 = 1_800_000_000_000;

const ATTACKER_A: &str = "203.0.113.7";
const ATTACKER_B: &str = "203.0.113.99";
const WEB1: &str = "192.168.10.11";
const WEB2: &str = "192.168.10.12";
const DB1: &str = "192.168.10.21";

/// An RFC 3339 timestamp `offset_ms` after T0 (within the day).
fn ts(offset_ms: i64) -> String {
    let ms = 8 * 3_600_000 + offset_ms;
    format!(
        "2027-01-15T{:02}:{:02}:{:02}.{:03}000+0000",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[allow(clippy::too_many_arguments)]
fn alert(
    at_ms: i64,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    sid: u64,
    signature: &str,
    severity: u8,
) -> Value {
    json!({
        "timestamp": ts(at_ms),
        "event_type": "alert",
        "src_ip": src, "src_port": sport, "dest_ip": dst, "dest_port": dport, "proto": "TCP",
        "community_id": "1:abcdefghijklmnopqrstuvwxyz0=",
        "in_iface": "shadow0",
        "alert": {"signature_id": sid, "signature": signature, "category": "Attempted Information Leak", "severity": severity},
        "shadownet": {"shadow": "shop-shadow", "session": 0, "direction": "to_vm"}
    })
}

fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A tenant `acme` with the two-tier network `shop` (VNI 100) and the shadow `shop-shadow`,
/// and the given mitigation policy; returns the tenant's token.
fn setup(d: &TestDaemon, policy: Value) -> String {
    let token = d.tenant("acme", json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 100), &[])
        .expect("network");
    c.send(
        "POST",
        "/v1/shadows",
        &json!({
            "name": "shop-shadow", "network": "shop", "ttl_s": 86_400,
            "collector": {"ip": "10.0.0.50", "mac": "02:00:00:00:00:50"},
            "policy": {"rules": [{"direction": "both"}]}
        }),
        &[],
    )
    .expect("shadow");
    c.send("PUT", "/v1/mitigation-policy", &policy, &[])
        .expect("policy");
    token
}

fn ingest(d: &TestDaemon, token: &str, events: &[Value]) -> Value {
    d.client(token)
        .send_bytes(
            "/v1/shadows/shop-shadow/findings",
            "application/x-ndjson",
            &ndjson(events),
        )
        .unwrap_or_else(|e| panic!("ingest: {e}"))
}

/// Deny rules at the highest priority on the NIC: the block rules.
fn block_rules(d: &TestDaemon) -> Vec<AclRule> {
    let t = d
        .ctl
        .call_blocking(|c| read_back(c.nic()))
        .expect("controller")
        .expect("read back");
    t.acl
        .values()
        .filter(|r| r.action.verdict == Verdict::Deny && r.action.priority == u16::MAX)
        .copied()
        .collect()
}

fn blocks_source(rules: &[AclRule], ip: &str) -> bool {
    let ip: std::net::IpAddr = ip.parse().expect("address");
    rules.iter().any(|r| {
        r.matches
            .src
            .is_some_and(|p| p.contains(ip) && p.len() == 32)
    })
}

/// Proposes a mitigation (`body` as `POST /v1/mitigations` takes it) and commits it: its id
/// and the commit's answer.
fn propose_and_commit(c: &shadowctl::client::Client, body: &Value) -> (String, Value) {
    let m = c
        .send("POST", "/v1/mitigations", body, &[])
        .expect("propose");
    let id = m["object"]["id"].as_str().expect("id").to_string();
    let done = c
        .send(
            "POST",
            &format!("/v1/mitigations/{id}/commit"),
            &json!({}),
            &[],
        )
        .expect("commit");
    (id, done)
}

fn acl_drops(d: &TestDaemon) -> u64 {
    d.ctl
        .call_blocking(|c| c.nic().snapshot_counters())
        .expect("controller")
        .expect("counters")
        .get(drop_reason(DropReason::AclDeny))
}

fn audit_actions(d: &TestDaemon, token: &str) -> Vec<String> {
    d.client(token)
        .get("/v1/audit?limit=1000")
        .expect("audit")
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["action"].as_str().unwrap_or("").to_string())
        .collect()
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let dir = shadownet_tests::scratch::Scratch::new("incidents-pcap");
    let p = dir.path().join("c.pcap");
    let mut w = shadownet_capture::PcapWriter::create(&p, 65_535).expect("pcap");
    for (i, f) in frames.iter().enumerate() {
        w.write(1_000_000 * i as u64, f).expect("frame");
    }
    w.finish().expect("finish");
    std::fs::read(&p).expect("read back")
}

fn policy(mode: &str, max_rules: u32, ttl_s: u64) -> Value {
    json!({
        "mode": mode, "min_severity": 2, "min_findings": 2, "allow_list": ["198.51.100.0/24"],
        "max_rules": max_rules, "rule_ttl_s": ttl_s, "incident_window_s": 300
    })
}

fn two_attacks() -> Vec<Value> {
    vec![
        alert(
            0,
            ATTACKER_A,
            40_000,
            WEB1,
            443,
            2_001,
            "ET SCAN web1 probe",
            1,
        ),
        alert(
            500,
            ATTACKER_B,
            41_000,
            WEB2,
            80,
            3_001,
            "ET WEB_SERVER exploit",
            2,
        ),
        alert(
            1_000,
            ATTACKER_A,
            40_000,
            WEB1,
            443,
            2_001,
            "ET SCAN web1 probe",
            1,
        ),
        alert(
            1_500,
            ATTACKER_B,
            41_001,
            WEB2,
            80,
            3_001,
            "ET WEB_SERVER exploit",
            2,
        ),
        alert(
            2_000,
            ATTACKER_A,
            40_002,
            WEB1,
            443,
            2_001,
            "ET SCAN web1 probe",
            1,
        ),
    ]
}

#[test]
fn two_attacks_become_two_incidents_and_auto_mode_blocks_them_in_the_nic() {
    let d = TestDaemon::start("incidents-auto");
    let token = setup(&d, policy("auto", 8, 600));
    let c = d.client(&token);
    let report = ingest(&d, &token, &two_attacks());
    assert_eq!(report["accepted"], 5);
    assert_eq!(report["correlated"], 5);
    assert_eq!(
        report["incidents"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );

    // Each finding names the production VM it concerns, on this NIC's VF.
    let findings = c.get("/v1/findings?shadow=shop-shadow").expect("findings");
    let findings = findings.as_array().expect("list");
    assert_eq!(findings.len(), 5);
    for f in findings {
        let corr = &f["correlation"];
        let vm = if f["src_ip"] == ATTACKER_A {
            "web1"
        } else {
            "web2"
        };
        assert_eq!(corr["dest_vm"]["vm"], vm, "{f}");
        assert_eq!(corr["dest_vm"]["tenant"], "acme");
        assert_eq!(corr["dest_vm"]["host"], NIC_IP);
        assert!(corr["dest_vm"]["vf"].is_u64(), "{f}");
        assert!(corr["dest_vm"]["counters"]["rx_packets"].is_u64(), "{f}");
        assert_eq!(corr["ours"], "dest");
        assert_eq!(corr["outside"], f["src_ip"]);
        assert_eq!(corr["network"], "shop");
        assert_eq!(corr["network_version"], 1);
    }

    let incidents = c.get("/v1/incidents").expect("incidents");
    let incidents = incidents.as_array().expect("list");
    assert_eq!(incidents.len(), 2);
    let a = &incidents[0];
    assert_eq!(a["sources"], json!([ATTACKER_A]));
    assert_eq!(a["vms"], json!(["shop/web1"]));
    assert_eq!(a["findings"], 3);
    assert_eq!(a["max_severity"], 1);
    assert_eq!(a["first_seen_ms"], T0_MS);
    assert_eq!(a["last_seen_ms"], T0_MS + 2_000);
    assert_eq!(
        a["signatures"],
        json!([{"signature_id": 2001, "signature": "ET SCAN web1 probe", "count": 3}])
    );
    assert_eq!(a["state"], "mitigated");
    let b = &incidents[1];
    assert_eq!(b["sources"], json!([ATTACKER_B]));
    assert_eq!(b["vms"], json!(["shop/web2"]));
    assert_eq!(b["findings"], 2);
    assert_eq!(b["state"], "mitigated");
    let id = a["id"].as_u64().expect("id");
    let detail = c.get(&format!("/v1/incidents/{id}")).expect("incident");
    assert_eq!(detail["findings"].as_array().map(Vec::len), Some(3));

    // Two block rules, committed through the change pipeline, on the NIC.
    let ms = c.get("/v1/mitigations").expect("mitigations");
    let ms = ms.as_array().expect("list");
    assert_eq!(ms.len(), 2);
    assert!(
        ms.iter().all(|m| m["object"]["state"] == "active"),
        "{ms:?}"
    );
    let rules = block_rules(&d);
    assert!(blocks_source(&rules, ATTACKER_A), "{rules:?}");
    assert!(blocks_source(&rules, ATTACKER_B), "{rules:?}");
    let actions = audit_actions(&d, &token);
    for a in ["findings.ingest", "mitigation.propose", "mitigation.commit"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }

    // The attacker's traffic from the fabric is dropped by the ACL and counted; another
    // source's reaches web1.
    let to_web1 = |src: &str| {
        vxlan(
            "10.0.0.2",
            NIC_IP,
            100,
            &Builder::tcp(src, WEB1, 40_000, 443)
                .macs(mac(9), [0x02, 0, 0, 0, 0x10, 0x11])
                .build(),
        )
    };
    let before = acl_drops(&d);
    let out = d
        .admin()
        .send_bytes(
            "/v1/sim/inject?port=uplink",
            "application/vnd.tcpdump.pcap",
            &pcap(&[to_web1(ATTACKER_A), to_web1("203.0.113.50")]),
        )
        .expect("inject");
    assert_eq!(acl_drops(&d) - before, 1, "{out}");
    let web1 = out["outputs"]
        .as_array()
        .and_then(|o| {
            o.iter().find(|p| {
                p["port"]
                    .as_str()
                    .is_some_and(|n| n.contains("acme/shop/web1"))
            })
        })
        .map(|p| p["frames"].as_u64().unwrap_or(0));
    assert_eq!(web1, Some(1), "{out}");

    // Withdrawn: gone from the NIC, audited.
    let m = ms[0]["object"]["id"].as_str().expect("id").to_string();
    c.delete(&format!("/v1/mitigations/{m}")).expect("withdraw");
    assert!(!blocks_source(&block_rules(&d), ATTACKER_A));
    assert!(
        audit_actions(&d, &token)
            .iter()
            .any(|a| a == "mitigation.withdraw")
    );
}

#[test]
fn allow_list_and_max_rules_are_enforced_and_audited() {
    let d = TestDaemon::start("incidents-limits");
    let token = setup(&d, policy("auto", 1, 600));
    let c = d.client(&token);
    let mut events = two_attacks();
    // An allow-listed partner scanning db1, severe and repeated: never blocked.
    for i in 0..3 {
        events.push(alert(
            3_000 + i,
            "198.51.100.5",
            50_000,
            DB1,
            5432,
            4_001,
            "ET POLICY db probe",
            1,
        ));
    }
    let report = ingest(&d, &token, &events);
    assert_eq!(
        report["incidents"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    let actions: Vec<(String, String)> = report["mitigations"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["source"].as_str().unwrap_or("").into(),
                a["action"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("198.51.100.5".into(), "refused".into())),
        "{actions:?}"
    );
    // One rule allowed: A's is committed, B's is proposed and refused at commit.
    assert!(
        actions.contains(&(ATTACKER_A.into(), "committed".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(ATTACKER_B.into(), "refused".into())),
        "{actions:?}"
    );
    let rules = block_rules(&d);
    assert_eq!(
        rules.len(),
        2,
        "one rule: a src entry and a dst entry: {rules:?}"
    );
    assert!(blocks_source(&rules, ATTACKER_A));
    assert!(!blocks_source(&rules, ATTACKER_B));
    assert!(!blocks_source(&rules, "198.51.100.5"));
    let audit = c.get("/v1/audit?limit=1000").expect("audit");
    let refusals: Vec<&Value> = audit
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["action"] == "mitigation.refused")
        .collect();
    assert!(
        refusals
            .iter()
            .any(|a| a["detail"]["reason"] == "allow_list"),
        "{refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|a| a["detail"]["reason"] == "max_rules"),
        "{refusals:?}"
    );

    // A second batch from the allow-listed source is not refused (nor audited) again.
    let n = refusals.len();
    ingest(
        &d,
        &token,
        &[alert(
            4_000,
            "198.51.100.5",
            50_000,
            DB1,
            5432,
            4_001,
            "ET POLICY db probe",
            1,
        )],
    );
    let again = c.get("/v1/audit?limit=1000").expect("audit");
    let m = again
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["action"] == "mitigation.refused")
        .count();
    assert_eq!(m, n);

    // By hand: committing B's rule is a 429 naming the limit; nothing changes on the NIC.
    let ms = c.get("/v1/mitigations").expect("mitigations");
    let b = ms
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|m| m["object"]["rule"]["src"] == format!("{ATTACKER_B}/32"))
        })
        .map(|m| m["object"]["id"].as_str().unwrap_or("").to_string())
        .expect("B's proposal");
    let e = c
        .send(
            "POST",
            &format!("/v1/mitigations/{b}/commit"),
            &json!({}),
            &[],
        )
        .expect_err("over max_rules");
    assert_eq!(status_of(&e), 429, "{e}");
    if let shadowctl::client::ClientError::Problem(p) = &e {
        assert_eq!(p.body["quota"]["limit"], "max_rules");
        assert_eq!(p.body["type"], "urn:shadownet:problem:quota-exceeded");
    }
    assert_eq!(block_rules(&d), rules);
    // Proposing an allow-listed source by hand: 409, audited, nothing stored.
    let before = ms.as_array().map(Vec::len);
    let e = c
        .send(
            "POST",
            "/v1/mitigations",
            &json!({"network": "shop", "rule": {"src": "198.51.100.0/25"}}),
            &[],
        )
        .expect_err("allow-listed");
    assert_eq!(status_of(&e), 409, "{e}");
    let after = c.get("/v1/mitigations").expect("mitigations");
    assert_eq!(after.as_array().map(Vec::len), before);
}

#[test]
fn rules_expire_by_ttl_and_everything_survives_a_restart() {
    let d = TestDaemon::start("incidents-ttl");
    let token = setup(&d, policy("auto", 8, 60));
    ingest(&d, &token, &two_attacks()[..3]);
    assert!(blocks_source(&block_rules(&d), ATTACKER_A));

    // Restart on the same data: incidents, findings and mitigations are there, and the NIC
    // is rebuilt with the block rule.
    let data = d.stop();
    let d = TestDaemon::start_in(data);
    let c = d.client(&token);
    let incidents = c.get("/v1/incidents").expect("incidents");
    assert_eq!(incidents.as_array().map(Vec::len), Some(2), "{incidents}");
    let ms = c.get("/v1/mitigations").expect("mitigations");
    assert_eq!(ms.as_array().map(Vec::len), Some(1), "{ms}");
    assert_eq!(ms[0]["object"]["state"], "active");
    assert!(blocks_source(&block_rules(&d), ATTACKER_A));

    // Not yet due: nothing happens; due: the timer removes it from the NIC.
    d.advance_ms(59_000);
    d.expire();
    assert!(blocks_source(&block_rules(&d), ATTACKER_A));
    d.advance_ms(1_000);
    d.expire();
    assert!(block_rules(&d).is_empty());
    let ms = c.get("/v1/mitigations").expect("mitigations");
    assert_eq!(ms[0]["object"]["state"], "expired");
    assert!(
        audit_actions(&d, &token)
            .iter()
            .any(|a| a == "mitigation.expire")
    );

    // Completing the shadow purges its findings; the incidents stay.
    let before = c.get("/v1/tenants/acme").expect("tenant")["usage"]["stored_bytes"]
        .as_u64()
        .expect("bytes");
    c.send("POST", "/v1/shadows/shop-shadow/complete", &json!({}), &[])
        .expect("complete");
    let after = c.get("/v1/tenants/acme").expect("tenant")["usage"]["stored_bytes"]
        .as_u64()
        .expect("bytes");
    assert!(after < before, "{after} < {before}");
    assert_eq!(c.get("/v1/findings").expect("findings"), json!([]));
    assert_eq!(
        c.get("/v1/incidents")
            .expect("incidents")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn grouping_follows_the_window_and_closing() {
    let d = TestDaemon::start("incidents-window");
    let token = setup(
        &d,
        json!({"mode": "off", "incident_window_s": 300, "group_by": ["source"]}),
    );
    let c = d.client(&token);
    // Same source: t0 and t0+100 s together; t0+1000 s is past the window: a new incident.
    // Another source hitting the same VM with the same signature stays apart (source only).
    ingest(
        &d,
        &token,
        &[
            alert(1_000_000, ATTACKER_A, 1, WEB1, 443, 7, "x", 3),
            alert(0, ATTACKER_A, 1, WEB1, 443, 7, "x", 3),
            alert(100_000, ATTACKER_A, 1, WEB1, 443, 7, "x", 3),
            alert(100_000, ATTACKER_B, 1, WEB1, 443, 7, "x", 3),
        ],
    );
    let inc = c.get("/v1/incidents").expect("incidents");
    let got: Vec<(Value, Value, Value)> = inc
        .as_array()
        .expect("list")
        .iter()
        .map(|i| {
            (
                i["sources"].clone(),
                i["findings"].clone(),
                i["first_seen_ms"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!([ATTACKER_A]), json!(2), json!(T0_MS)),
            (json!([ATTACKER_B]), json!(1), json!(T0_MS + 100_000)),
            (json!([ATTACKER_A]), json!(1), json!(T0_MS + 1_000_000)),
        ]
    );
    assert!(
        c.get("/v1/mitigations")
            .expect("m")
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    // Closed: the next finding of that source opens a new incident.
    let id = inc[2]["id"].as_u64().expect("id");
    let closed = c
        .send(
            "POST",
            &format!("/v1/incidents/{id}/close"),
            &json!({}),
            &[],
        )
        .expect("close");
    assert_eq!(closed["state"], "closed");
    ingest(
        &d,
        &token,
        &[alert(1_000_500, ATTACKER_A, 1, WEB1, 443, 7, "x", 3)],
    );
    assert_eq!(
        c.get("/v1/incidents").expect("i").as_array().map(Vec::len),
        Some(4)
    );
    // `since` filters by event time.
    let recent = c
        .get(&format!("/v1/findings?since={}", T0_MS + 1_000_000))
        .expect("findings");
    assert_eq!(recent.as_array().map(Vec::len), Some(2));
}

#[test]
fn a_trial_reports_what_the_rule_would_have_blocked() {
    let d = TestDaemon::start("incidents-trial");
    let token = setup(&d, policy("propose", 8, 600));
    let c = d.client(&token);
    ingest(&d, &token, &two_attacks()[..3]);
    let ms = c.get("/v1/mitigations").expect("mitigations");
    assert_eq!(ms.as_array().map(Vec::len), Some(1), "{ms}");
    assert_eq!(ms[0]["object"]["state"], "proposed");
    assert!(block_rules(&d).is_empty(), "propose mode programs nothing");
    let id = ms[0]["object"]["id"].as_str().expect("id").to_string();

    // The recorded traffic, as the shadow saw it.
    let w1 = [0x02, 0, 0, 0, 0x10, 0x11];
    let w2 = [0x02, 0, 0, 0, 0x10, 0x12];
    let tcp = |src: &str, sp: u16, dst: &str, dp: u16, len: usize| {
        Builder::tcp(src, dst, sp, dp)
            .macs(mac(9), w1)
            .payload_len(len)
            .build()
    };
    let mut frames = Vec::new();
    // 3 of the flow the findings name: blocked, true positives.
    for _ in 0..3 {
        frames.push(tcp(ATTACKER_A, 40_000, WEB1, 443, 100));
    }
    // 2 to web2 (a flow no finding names): blocked, collateral.
    for _ in 0..2 {
        frames.push(
            Builder::tcp(ATTACKER_A, WEB2, 40_001, 80)
                .macs(mac(9), w2)
                .payload_len(200)
                .build(),
        );
    }
    // 1 to web1's SSH: the security group denies it already.
    frames.push(tcp(ATTACKER_A, 40_002, WEB1, 22, 0));
    // 2 from someone else: not blocked.
    for _ in 0..2 {
        frames.push(tcp("203.0.113.50", 50_000, WEB1, 443, 50));
    }
    // web1's reply to the attacker: blocked (the rule covers both directions), a finding's flow.
    frames.push(
        Builder::tcp(WEB1, ATTACKER_A, 443, 40_000)
            .macs(w1, mac(9))
            .payload_len(10)
            .build(),
    );
    // Not IP: skipped.
    frames.push(arp_request(mac(9), [192, 168, 10, 99], [192, 168, 10, 11]));
    let len = |i: usize| frames[i].len() as u64;
    let tp_bytes = len(0) + len(1) + len(2) + len(8);
    let fp_bytes = len(3) + len(4);

    let generation = d.admin().get("/v1/nic").expect("nic")["generation"].clone();
    let r = c
        .send_bytes(
            &format!("/v1/mitigations/{id}/trial"),
            "application/vnd.tcpdump.pcap",
            &pcap(&frames),
        )
        .unwrap_or_else(|e| panic!("trial: {e}"));
    assert_eq!(r["frames"], 10, "{r}");
    assert_eq!(r["replayed"], 9, "{r}");
    assert_eq!(r["skipped"], 1, "{r}");
    assert_eq!(r["already_blocked"], 1, "{r}");
    assert_eq!(
        r["blocked"],
        json!({"packets": 6, "bytes": tp_bytes + fp_bytes, "flows": 3}),
        "{r}"
    );
    assert_eq!(
        r["in_findings"],
        json!({"packets": 4, "bytes": tp_bytes, "flows": 2}),
        "{r}"
    );
    assert_eq!(
        r["not_in_findings"],
        json!({"packets": 2, "bytes": fp_bytes, "flows": 1}),
        "{r}"
    );
    let per_vm: Vec<(Value, Value, Value)> = r["per_vm"]
        .as_array()
        .expect("per vm")
        .iter()
        .map(|v| {
            (
                v["vm"].clone(),
                v["direction"].clone(),
                v["blocked"]["packets"].clone(),
            )
        })
        .collect();
    assert_eq!(
        per_vm,
        vec![
            (json!("shop/web1"), json!("from_vm"), json!(1)),
            (json!("shop/web1"), json!("to_vm"), json!(3)),
            (json!("shop/web2"), json!("to_vm"), json!(2)),
        ]
    );

    // Production did not change: same table generation, no block rule, still proposed; the
    // report is kept with the mitigation and the trial is audited.
    assert_eq!(
        d.admin().get("/v1/nic").expect("nic")["generation"],
        generation
    );
    assert!(block_rules(&d).is_empty());
    let m = c.get(&format!("/v1/mitigations/{id}")).expect("mitigation");
    assert_eq!(m["object"]["state"], "proposed");
    assert_eq!(m["object"]["last_trial"]["blocked"]["packets"], 6);
    assert!(
        audit_actions(&d, &token)
            .iter()
            .any(|a| a == "mitigation.trial")
    );

    // The same recording stored with the shadow and named: the same numbers.
    let put = |token: &str, body: &[u8]| {
        raw(
            &d.base,
            "PUT",
            "/v1/shadows/shop-shadow/captures/recorded",
            Some(token),
            Some("application/vnd.tcpdump.pcap"),
            body,
        )
    };
    let capture = pcap(&frames);
    let (status, _, stored) = put(&token, &capture);
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["bytes"], capture.len());
    assert_eq!(stored["format"], "pcap");
    let (status, _, problem) = put(&token, b"not a capture");
    assert_eq!(status, 422, "{problem}");
    let other = d.tenant("globex", json!({}));
    let (status, _, problem) = put(&other, &capture);
    assert_eq!(status, 404, "another tenant's shadow: {problem}");
    let r2 = c
        .send(
            "POST",
            &format!("/v1/mitigations/{id}/trial"),
            &json!({"artefact": "recorded"}),
            &[],
        )
        .expect("trial from the artefact");
    assert_eq!(r2["capture"], "artefact:recorded");
    for k in [
        "frames",
        "blocked",
        "in_findings",
        "not_in_findings",
        "per_vm",
    ] {
        assert_eq!(r2[k], r[k], "{k}");
    }
    let e = c
        .send(
            "POST",
            &format!("/v1/mitigations/{id}/trial"),
            &json!({"artefact": "nope"}),
            &[],
        )
        .expect_err("unknown artefact");
    assert_eq!(status_of(&e), 404);

    // Then committed by hand: the rule is on the NIC.
    c.send(
        "POST",
        &format!("/v1/mitigations/{id}/commit"),
        &json!({}),
        &[],
    )
    .expect("commit");
    assert!(blocks_source(&block_rules(&d), ATTACKER_A));
}

#[test]
fn bad_findings_are_refused_and_change_nothing() {
    let d = TestDaemon::start("incidents-bad");
    let token = setup(&d, policy("auto", 8, 600));
    let other = d.tenant("globex", json!({}));
    let c = d.client(&token);
    let audit_before = audit_actions(&d, &token).len();
    let good = alert(0, ATTACKER_A, 1, WEB1, 443, 2_001, "x", 1);
    let post = |token: &str, shadow: &str, ct: &str, body: &[u8]| {
        raw(
            &d.base,
            "POST",
            &format!("/v1/shadows/{shadow}/findings"),
            Some(token),
            Some(ct),
            body,
        )
    };
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("src_ip");
    let mut bad_ip = good.clone();
    bad_ip["dest_ip"] = json!("192.168.10.300");
    let mut bad_sev = good.clone();
    bad_sev["alert"]["severity"] = json!(9);
    let mut wrong_shadow = good.clone();
    wrong_shadow["shadownet"]["shadow"] = json!("another");
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "shop-shadow",
            ndjson(&[good.clone(), missing]),
            "application/x-ndjson",
            422,
            "events/1/src_ip",
        ),
        (
            "shop-shadow",
            bad_ip.to_string().into_bytes(),
            "application/json",
            422,
            "events/0/dest_ip",
        ),
        (
            "shop-shadow",
            bad_sev.to_string().into_bytes(),
            "application/json",
            422,
            "events/0/alert/severity",
        ),
        (
            "shop-shadow",
            wrong_shadow.to_string().into_bytes(),
            "application/json",
            422,
            "events/0/shadownet/shadow",
        ),
        (
            "shop-shadow",
            b"{\"a\":1}\nnot json".to_vec(),
            "application/x-ndjson",
            400,
            "lines/2",
        ),
        (
            "shop-shadow",
            good.to_string().into_bytes(),
            "text/plain",
            415,
            "",
        ),
        (
            "nope",
            good.to_string().into_bytes(),
            "application/json",
            404,
            "",
        ),
    ];
    for (shadow, body, ct, status, path) in cases {
        let (s, ctype, problem) = post(&token, shadow, ct, &body);
        assert_eq!(s, status, "{shadow} {ct}: {problem}");
        assert_eq!(ctype, "application/problem+json");
        if !path.is_empty() {
            let paths: Vec<&str> = problem["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .filter_map(|e| e["path"].as_str())
                .collect();
            assert!(paths.contains(&path), "{path} in {problem}");
        }
    }
    // Another tenant cannot send findings to acme's shadow: it does not exist for them.
    let (s, _, problem) = post(
        &other,
        "shop-shadow",
        "application/json",
        good.to_string().as_bytes(),
    );
    assert_eq!(s, 404, "{problem}");
    // Nothing was stored or done.
    assert_eq!(c.get("/v1/findings").expect("findings"), json!([]));
    assert_eq!(c.get("/v1/incidents").expect("incidents"), json!([]));
    assert_eq!(c.get("/v1/mitigations").expect("mitigations"), json!([]));
    assert_eq!(audit_actions(&d, &token).len(), audit_before);
    assert!(block_rules(&d).is_empty());
    // Bad policies and unknown incidents are problems too.
    let e = c
        .send(
            "PUT",
            "/v1/mitigation-policy",
            &json!({"min_severity": 0, "allow_list": ["10.0.0.0/33"]}),
            &[],
        )
        .expect_err("bad policy");
    assert_eq!(status_of(&e), 422);
    assert_eq!(
        status_of(&c.get("/v1/incidents/999").expect_err("unknown")),
        404
    );
    assert_eq!(
        status_of(
            &c.get("/v1/findings?since=yesterday")
                .expect_err("bad since")
        ),
        400
    );
}

#[test]
fn the_cli_lists_findings_incidents_and_drives_mitigations() {
    let d = TestDaemon::start("incidents-cli");
    setup(&d, policy("propose", 8, 600));
    let eve = d.data.join("eve.json");
    std::fs::write(&eve, ndjson(&two_attacks()[..3])).expect("eve file");
    let out = ok(
        &d,
        &[
            "finding",
            "send",
            "--shadow",
            "shop-shadow",
            eve.to_str().expect("path"),
        ],
    );
    assert!(
        out.starts_with(
            "3 findings stored (3 correlated to a production VM, 0 not); incidents: 1, 2"
        ),
        "{out}"
    );
    assert!(out.contains("proposed") && out.contains("m-1"), "{out}");

    let out = ok(&d, &["finding", "list", "--shadow", "shop-shadow"]);
    assert!(
        out.lines().next().is_some_and(|h| h.contains("PRODUCTION")),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("shop/web1")).count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("shop/web2")).count(),
        1,
        "{out}"
    );
    let out = ok(&d, &["incident", "list"]);
    assert!(
        out.contains(ATTACKER_A) && out.contains("shop/web1") && out.contains("m-1"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(&d, &["--json", "incident", "list"])).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    let out = ok(&d, &["incident", "show", "1"]);
    assert!(
        out.contains("ET SCAN web1 probe") && out.contains("2001"),
        "{out}"
    );

    let out = ok(&d, &["mitigation", "policy"]);
    assert!(out.starts_with("mode propose"), "{out}");
    // This daemon runs without Suricata, and says so.
    let out = ok(&d, &["analysis", "suricata"]);
    assert_eq!(
        out,
        "suricata: not supervised (the daemon does not supervise Suricata (start it with --suricata))\n"
    );
    let out = ok(&d, &["mitigation", "list"]);
    assert!(
        out.contains("m-1") && out.contains("proposed") && out.contains("203.0.113.7/32"),
        "{out}"
    );

    let cap = d.data.join("recorded.pcap");
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            Builder::tcp(ATTACKER_A, WEB1, 40_000, 443)
                .macs(mac(9), [0x02, 0, 0, 0, 0x10, 0x11])
                .build()
        })
        .collect();
    std::fs::write(&cap, pcap(&frames)).expect("capture");
    let out = ok(
        &d,
        &[
            "mitigation",
            "trial",
            "m-1",
            "--pcap",
            cap.to_str().expect("path"),
        ],
    );
    assert!(out.contains("would have blocked: 3 packets"), "{out}");
    assert!(out.contains("in findings:     3 packets"), "{out}");
    let out = ok(&d, &["mitigation", "commit", "m-1"]);
    assert!(out.starts_with("mitigation m-1 is active"), "{out}");
    assert!(
        out.contains("active from NIC table generation") && out.contains("at 2027-01-15 08:00:00"),
        "{out}"
    );
    assert_eq!(out.matches("  ACL slot ").count(), 2, "{out}");
    let out = ok(&d, &["mitigation", "withdraw", "m-1"]);
    assert!(out.starts_with("mitigation m-1 is withdrawn"), "{out}");
    let e = ctl(
        &d,
        &[
            "mitigation",
            "propose",
            "--src",
            "198.51.100.1",
            "--network",
            "shop",
        ],
    )
    .expect_err("allow-listed");
    assert!(format!("{e:#}").contains("allow-listed"), "{e:#}");
    let out = ok(
        &d,
        &[
            "mitigation",
            "propose",
            "--src",
            "192.0.2.0/24",
            "--shadow",
            "shop-shadow",
            "--protocol",
            "tcp",
            "--dst-ports",
            "22",
            "--ttl",
            "30m",
        ],
    );
    assert_eq!(
        out,
        "mitigation m-2 proposed: block 192.0.2.0/24 in network shop\n"
    );
    let out = ok(
        &d,
        &[
            "mitigation",
            "propose",
            "--src",
            "0.0.0.0/0",
            "--dst",
            WEB1,
            "--network",
            "shop",
            "--protocol",
            "tcp",
            "--dst-ports",
            "443",
            "--connections-only",
            "--rate-limit",
            "200/20",
        ],
    );
    assert_eq!(
        out,
        "mitigation m-3 proposed: rate-limit 0.0.0.0/0 in network shop\n"
    );
    let out = ok(&d, &["mitigation", "list"]);
    assert!(
        out.contains("0.0.0.0/0 to 192.168.10.11 tcp port 443 connections <= 200/s"),
        "{out}"
    );
    let e = ctl(
        &d,
        &[
            "mitigation",
            "propose",
            "--src",
            "0.0.0.0/0",
            "--network",
            "shop",
            "--rate-limit",
            "200/x",
        ],
    )
    .expect_err("a bad rate");
    assert!(format!("{e:#}").contains("'x' in '200/x'"), "{e:#}");
    let out = ok(&d, &["incident", "close", "2"]);
    assert_eq!(out, "incident 2 closed\n");
}

#[test]
fn the_openapi_document_has_the_new_routes_and_schemas() {
    let d = TestDaemon::start("incidents-openapi");
    let (status, _, doc) = raw(&d.base, "GET", "/openapi.json", None, None, &[]);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/shadows/{shadow}/findings",
        "/v1/findings",
        "/v1/incidents",
        "/v1/incidents/{id}",
        "/v1/incidents/{id}/close",
        "/v1/mitigation-policy",
        "/v1/mitigations",
        "/v1/mitigations/{id}",
        "/v1/mitigations/{id}/commit",
        "/v1/mitigations/{id}/trial",
        "/v1/shadows/{shadow}/captures/{name}",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    for s in [
        "Finding",
        "Correlation",
        "Incident",
        "MitigationPolicy",
        "Mitigation",
        "TrialReport",
        "IngestReport",
        "Activation",
        "AclEntry",
        "HeavyHitter",
    ] {
        assert!(
            doc["components"]["schemas"][s].is_object(),
            "schema {s} missing"
        );
    }
}

/// The Rust API the daemon's own analysis pipeline uses: `Controller::ingest_findings` with
/// the shadow's VNI returns, for each rule the policy committed, where it sits on the NIC,
/// from which table generation and at what time; the NIC's tables say the same.
#[test]
fn ingest_findings_reports_when_each_block_became_active_on_the_nic() {
    use shadownet_host::control::{NIC_AGEING_GRACE_S, ShadowRef};
    let d = TestDaemon::start("incidents-activation");
    let token = setup(&d, policy("auto", 8, 600));
    let c = d.client(&token);
    let vni = c.get("/v1/shadows/shop-shadow").expect("shadow")["object"]["vni"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .expect("shadow vni");
    let before = d.admin().get("/v1/nic").expect("nic")["generation"]
        .as_u64()
        .expect("generation");
    d.advance_ms(5_000);
    let events = two_attacks();
    let started = std::time::Instant::now();
    let report = d
        .ctl
        .call_blocking(move |c| c.ingest_findings(ShadowRef::Vni(vni), events, "pipeline"))
        .expect("controller")
        .expect("ingest");
    // Wall time from the call to both rules verified on the (simulated) NIC.
    eprintln!(
        "ingest of 5 findings → 2 incidents → 2 block rules active: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let acts: Vec<_> = report.activations().cloned().collect();
    assert_eq!(acts.len(), 2, "{report:?}");
    let after = d.admin().get("/v1/nic").expect("nic")["generation"]
        .as_u64()
        .expect("generation");
    let table = d
        .ctl
        .call_blocking(|c| read_back(c.nic()))
        .expect("controller")
        .expect("read back");
    let mut last_gen = before;
    for (a, src) in acts.iter().zip([ATTACKER_A, ATTACKER_B]) {
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.network, "shop");
        assert_eq!(a.rule.src, format!("{src}/32"));
        assert!(a.incident.is_some());
        assert_eq!(a.active_at_ms, T0_MS + 5_000);
        assert_eq!(a.expires_at_ms, Some(T0_MS + 5_000 + 600_000));
        // Each commit is its own change: the generation grows with each.
        assert!(u64::from(a.nic_generation) > last_gen, "{a:?}");
        last_gen = u64::from(a.nic_generation);
        assert!(a.sync.verified && a.sync.written >= 2, "{a:?}");
        // Without ports: one entry from the source and one to it, both on the NIC as reported.
        assert_eq!(a.acl.len(), 2, "{a:?}");
        for e in &a.acl {
            let rule = e.rule.expect("entry");
            assert_eq!(table.acl.get(&e.slot), Some(&rule), "slot {}", e.slot);
            assert_eq!(rule.action.verdict, Verdict::Deny);
            assert_eq!(rule.action.rule_id, e.rule_id);
            assert!(e.summary.contains("deny"), "{}", e.summary);
            // The firmware ages it too, a grace period after the daemon's timer would.
            let ttl_cycles = (600 + NIC_AGEING_GRACE_S) * 250_000_000;
            assert!(
                e.nic_deadline.is_some_and(|d| d >= ttl_cycles),
                "{:?}",
                e.nic_deadline
            );
        }
        let m = c
            .get(&format!("/v1/mitigations/{}", a.mitigation))
            .expect("mitigation");
        assert_eq!(m["object"]["state"], "active");
    }
    assert_eq!(last_gen, after);

    // The HTTP ingest report and a commit by hand carry the same activation.
    d.advance_ms(1_000);
    let report = ingest(
        &d,
        &token,
        &[
            alert(
                10_000,
                "203.0.113.200",
                1,
                WEB2,
                8080,
                9,
                "ET SCAN again",
                1,
            ),
            alert(
                10_500,
                "203.0.113.200",
                2,
                WEB2,
                8080,
                9,
                "ET SCAN again",
                1,
            ),
        ],
    );
    let committed = report["mitigations"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["action"] == "committed"))
        .cloned()
        .expect("committed");
    assert_eq!(committed["activation"]["active_at_ms"], T0_MS + 6_000);
    assert_eq!(
        committed["activation"]["acl"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(committed["activation"]["nic_generation"].as_u64() > Some(after));
    c.send(
        "PUT",
        "/v1/mitigation-policy",
        &policy("propose", 8, 600),
        &[],
    )
    .expect("policy");
    let (id, done) = propose_and_commit(
        &c,
        &json!({"rule": {"src": "198.18.0.0/24", "protocol": "tcp", "dst_ports": "22"}, "network": "shop"}),
    );
    // With ports only traffic from the prefix is denied: one entry.
    assert_eq!(
        done["activation"]["acl"].as_array().map(Vec::len),
        Some(1),
        "{done}"
    );
    assert_eq!(done["activation"]["mitigation"], id.as_str());
}

/// With the NIC's telemetry ring enabled, a finding whose flow is one of the heavy hitters
/// says so (rank, packets, which way round); the records read are handed on untouched.
#[test]
fn findings_are_joined_to_the_nics_heavy_hitters() {
    let d = TestDaemon::start("incidents-topk");
    let token = setup(&d, policy("off", 8, 600));
    let from = |src: &str, sport: u16| {
        vxlan(
            "10.0.0.2",
            NIC_IP,
            100,
            &Builder::tcp(src, WEB1, sport, 443)
                .macs(mac(9), [0x02, 0, 0, 0, 0x10, 0x11])
                .build(),
        )
    };
    // Without telemetry: no heavy-hitter join.
    let r = ingest(
        &d,
        &token,
        &[alert(0, ATTACKER_A, 40_000, WEB1, 443, 1, "x", 2)],
    );
    let seq = r["findings"][0].as_u64().expect("seq");
    let c = d.client(&token);
    let all = c.get("/v1/findings").expect("findings");
    let f = all
        .as_array()
        .and_then(|l| l.iter().find(|f| f["seq"] == seq))
        .expect("finding");
    assert!(f["correlation"].get("heavy_hitter").is_none(), "{f}");

    d.ctl
        .call_blocking(|c| c.nic().enable_telemetry(10, 0))
        .expect("controller")
        .expect("telemetry ring");
    // The attacker's flow is the elephant: 20 frames; two mice of one frame each.
    let mut frames: Vec<Vec<u8>> = (0..20).map(|_| from(ATTACKER_A, 40_000)).collect();
    frames.push(from("203.0.113.50", 50_000));
    frames.push(from("203.0.113.51", 50_001));
    d.admin()
        .send_bytes(
            "/v1/sim/inject?port=uplink",
            "application/vnd.tcpdump.pcap",
            &pcap(&frames),
        )
        .expect("inject");
    let r = ingest(
        &d,
        &token,
        &[
            alert(1_000, ATTACKER_A, 40_000, WEB1, 443, 1, "x", 2),
            // The reply direction of the same flow, as an alert on web1's answer.
            {
                let mut a = alert(1_001, WEB1, 443, ATTACKER_A, 40_000, 1, "x", 2);
                a["shadownet"]["direction"] = json!("from_vm");
                a
            },
            alert(1_002, "203.0.113.60", 1, WEB1, 443, 1, "x", 2),
        ],
    );
    let seqs: Vec<u64> = r["findings"]
        .as_array()
        .expect("seqs")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let all = c.get("/v1/findings").expect("findings");
    let by_seq = |s: u64| {
        all.as_array()
            .and_then(|l| l.iter().find(|f| f["seq"] == s))
            .cloned()
            .expect("finding")
    };
    let hh = by_seq(seqs[0])["correlation"]["heavy_hitter"].clone();
    assert_eq!(hh["rank"], 0, "{hh}");
    assert_eq!(hh["packets"], 20, "{hh}");
    assert_eq!(hh["direction"], "alerted", "{hh}");
    let rev = by_seq(seqs[1])["correlation"]["heavy_hitter"].clone();
    assert_eq!(rev["direction"], "reverse", "{rev}");
    assert_eq!(rev["flow"], hh["flow"]);
    assert!(
        by_seq(seqs[2])["correlation"].get("heavy_hitter").is_none(),
        "a flow the NIC never saw"
    );
    // The records the controller read are there for another consumer.
    let (records, dropped) = d
        .ctl
        .call_blocking(|c| c.take_telemetry())
        .expect("controller");
    assert_eq!(dropped, 0);
    assert!(
        records.iter().any(|r| matches!(
            r,
            shadownet_host::driver::TelemetryRecord::HeavyHitter {
                rank: 0,
                packets: 20,
                ..
            }
        )),
        "{records:?}"
    );
}

/// A finding neither of whose addresses is a production node is kept, counted as
/// uncorrelated and says so; one from a production VM to outside names the VM as the source.
#[test]
fn findings_matching_no_production_vm_are_kept_and_say_so() {
    let d = TestDaemon::start("incidents-unmatched");
    let token = setup(&d, policy("propose", 8, 600));
    let report = ingest(
        &d,
        &token,
        &[
            alert(0, "198.18.0.1", 1, "198.18.0.2", 80, 5, "ET strange", 3),
            alert(10, WEB2, 33_000, "192.0.2.80", 6667, 6, "ET C2 beacon", 1),
        ],
    );
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["correlated"], 1, "{report}");
    assert_eq!(report["uncorrelated"], 1, "{report}");
    let all = d.client(&token).get("/v1/findings").expect("findings");
    let all = all.as_array().expect("list");
    assert_eq!(all.len(), 2);
    let stray = &all[0]["correlation"];
    assert_eq!(stray["matched"], false, "{stray}");
    assert_eq!(stray["ours"], "none");
    assert!(stray["src_vm"].is_null() && stray["dest_vm"].is_null());
    assert!(
        stray["note"]
            .as_str()
            .is_some_and(|n| n.contains("is a node of network")),
        "{stray}"
    );
    let beacon = &all[1]["correlation"];
    assert_eq!(beacon["matched"], true);
    assert_eq!(beacon["ours"], "src");
    assert_eq!(beacon["src_vm"]["vm"], "web2");
    assert_eq!(beacon["outside"], "192.0.2.80");
}

#[test]
fn a_source_is_blocked_on_its_own_findings_not_on_the_incident_it_joined() {
    let d = TestDaemon::start("incidents-per-source");
    // Grouped by target: both sources' alerts on web1 make one incident.
    let mut p = policy("auto", 10, 3600);
    p["group_by"] = json!(["target"]);
    let token = setup(&d, p);
    let events = vec![
        alert(
            0,
            ATTACKER_A,
            40_000,
            WEB1,
            443,
            2_001,
            "ET SCAN web1 probe",
            1,
        ),
        alert(
            100,
            ATTACKER_B,
            41_000,
            WEB1,
            80,
            3_001,
            "ET WEB_SERVER exploit",
            1,
        ),
        alert(
            200,
            ATTACKER_A,
            40_001,
            WEB1,
            443,
            2_001,
            "ET SCAN web1 probe",
            1,
        ),
    ];
    ingest(&d, &token, &events);
    let incidents = d.client(&token).get("/v1/incidents").expect("incidents");
    let incidents = incidents.as_array().expect("list");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["findings"], 3);
    // min_findings 2: A has two findings, B one; the incident as a whole has three.
    let rules = block_rules(&d);
    assert!(blocks_source(&rules, ATTACKER_A), "{rules:?}");
    assert!(!blocks_source(&rules, ATTACKER_B), "{rules:?}");
}

#[test]
fn between_production_vms_the_flows_initiator_is_blocked_not_the_vm_that_answered() {
    let d = TestDaemon::start("incidents-lateral");
    let token = setup(&d, policy("auto", 10, 3600));
    // web1 sweeps db1's admin ports. Suricata 7 names an answer's flow in `flow.src_ip` (the
    // initiator) and marks the packet `to_client`; the built-in detector writes the same.
    let mut answer = alert(0, DB1, 22, WEB1, 51_000, 2_010, "lateral answer", 1);
    answer["direction"] = json!("to_client");
    answer["flow"] = json!({"src_ip": WEB1, "src_port": 51_000, "dest_ip": DB1, "dest_port": 22});
    // Only `direction` (an older sensor): still the answer's destination started the flow.
    let mut bare = alert(100, DB1, 3389, WEB1, 51_001, 2_010, "lateral answer", 1);
    bare["direction"] = json!("to_client");
    // The sweep itself, as the initiator sent it.
    let probe = alert(200, WEB1, 51_002, DB1, 5985, 2_011, "lateral probe", 1);
    ingest(&d, &token, &[answer, bare, probe]);

    let all = d.client(&token).get("/v1/findings").expect("findings");
    let all = all.as_array().expect("list");
    assert_eq!(all.len(), 3);
    for f in all {
        let c = &f["correlation"];
        assert_eq!(c["ours"], "both", "{c}");
        assert_eq!(c["outside"], WEB1, "{c}");
        assert_eq!(c["target"], DB1, "{c}");
        assert!(
            c["note"]
                .as_str()
                .is_some_and(|n| n.contains("from production VM web1 to production VM db1")),
            "{c}"
        );
    }
    let incidents = d.client(&token).get("/v1/incidents").expect("incidents");
    assert_eq!(incidents[0]["sources"], json!([WEB1]), "{incidents}");
    let rules = block_rules(&d);
    assert!(blocks_source(&rules, WEB1), "{rules:?}");
    assert!(!blocks_source(&rules, DB1), "{rules:?}");
}

/// A rate limit proposed by hand: bad ones refused with the field at fault and nothing
/// stored; a good one commits as policed twins of the rules that let its traffic in (the
/// bastion's ssh allow and the network's default), never above the ssh deny.
#[test]
fn rate_limits_are_checked_and_commit_as_policed_twins_of_the_allowing_rules() {
    let d = TestDaemon::start("incidents-rate-limit");
    let token = setup(&d, policy("propose", 8, 600));
    let c = d.client(&token);
    let limit = json!({
        "src": "0.0.0.0/0", "dst": WEB1, "protocol": "tcp", "dst_ports": "22",
        "connections_only": true, "rate_limit": {"pps": 100, "burst": 10}
    });
    let with = |field: &str, v: Value| {
        let mut r = limit.clone();
        match v {
            Value::Null => {
                r.as_object_mut().expect("object").remove(field);
            }
            v => r[field] = v,
        }
        r
    };
    let bad = [
        (with("dst", Value::Null), "rule/dst"),
        (with("dst", json!("10.1.1.1")), "rule/dst"),
        (with("protocol", json!("udp")), "rule/connections_only"),
        (with("rate_limit", json!({"pps": 0})), "rule/rate_limit/pps"),
        (with("rate_limit", Value::Null), "rule/src"),
    ];
    for (rule, path) in bad {
        let e = c
            .send(
                "POST",
                "/v1/mitigations",
                &json!({"network": "shop", "rule": rule}),
                &[],
            )
            .expect_err("refused");
        assert_eq!(status_of(&e), 422, "{rule}: {e}");
        let shadowctl::client::ClientError::Problem(p) = &e else {
            panic!("{e}")
        };
        let paths: Vec<&str> = p.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["path"].as_str())
            .collect();
        assert!(paths.contains(&path), "{path} in {}", p.body);
    }
    assert_eq!(c.get("/v1/mitigations").expect("mitigations"), json!([]));

    let (_, done) = propose_and_commit(&c, &json!({"network": "shop", "rule": limit}));
    let entries = done["activation"]["acl"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{done}");
    let t = d
        .ctl
        .call_blocking(|c| read_back(c.nic()))
        .expect("controller")
        .expect("read back");
    let mut policed: Vec<(u16, Option<String>)> = t
        .acl
        .values()
        .filter(|r| {
            matches!(
                r.action.verdict,
                Verdict::Police {
                    rate_pps: 100,
                    burst: 10
                }
            )
        })
        .map(|r| (r.action.priority, r.matches.src.map(|p| p.to_string())))
        .collect();
    policed.sort();
    assert_eq!(
        policed,
        [(0, None), (201, Some("10.9.0.0/16".to_string()))],
        "{t:?}"
    );
    // The ssh deny (priority 100) is still there and above the default's twin.
    assert!(
        t.acl
            .values()
            .any(|r| r.action.verdict == Verdict::Deny && r.action.priority == 100)
    );
    // While the limit is active, a network change that would tie a deny with one of its
    // twins is refused, naming the limit, and changes nothing.
    let mut doc = c.get("/v1/networks/shop").expect("network")["object"].clone();
    doc["security_groups"][0]["rules"]
        .as_array_mut()
        .expect("rules")
        .push(json!({"direction": "to_node", "protocol": "tcp", "remote": "10.9.5.0/24", "ports": "22", "action": "deny", "priority": 201}));
    let e = c
        .send("PUT", "/v1/networks/shop", &doc, &[])
        .expect_err("a tie with the limit's twin");
    assert_eq!(status_of(&e), 409, "{e}");
    let shadowctl::client::ClientError::Problem(p) = &e else {
        panic!("{e}")
    };
    assert_eq!(
        p.body["type"], "urn:shadownet:problem:conflict",
        "{}",
        p.body
    );
    assert!(format!("{e}").contains("mitigations/m-1"), "{e}");
    let after = d
        .ctl
        .call_blocking(|c| read_back(c.nic()))
        .expect("controller")
        .expect("read back");
    assert_eq!(after.acl, t.acl);
}
