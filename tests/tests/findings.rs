//! Findings as Suricata EVE: every event type we write validates against Suricata 7's EVE
//! schema, and Suricata's own `eve.json` (from a real `suricata -r` run on a corpus capture)
//! is read line by line — typed where we know the event type, raw otherwise — and written
//! back without losing a field; its Community IDs agree with ours.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, process::Command};

use serde_json::Value;
use shadownet_host::analysis::{
    detector::{Alert, ClassHint, DetectorStats, FeatureDeviation},
    eve::{
        self, EveBody, EveEvent, EveRecord, FindingContext, FlowBuilder, Shadownet,
        TrafficDirection,
    },
    honeypot::{Interaction, InteractionKind},
    siem::{EveFileSink, EventSink, FileConfig},
};
use shadownet_tests::{corpus_dir, repo_root, scratch::Scratch, tools};

fn schema_validator() -> jsonschema::Validator {
    let path = repo_root().join("../shared/schemas/suricata-eve-7.0.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, ev: &Value) {
    let errors: Vec<String> = v
        .iter_errors(ev)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{ev}\nis not valid EVE: {errors:#?}");
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ctx() -> FindingContext {
    FindingContext {
        in_iface: Some("sn-shop-shadow".into()),
        shadownet: Shadownet {
            tenant: Some("acme".into()),
            network: Some("shop".into()),
            shadow: Some("shop-shadow".into()),
            session: Some(2),
            shadow_vni: Some(0xF0_0002),
            direction: Some(TrafficDirection::Egress),
            ..Shadownet::default()
        },
        community_id_seed: 0,
        alert_threshold: 6.5,
    }
}

/// One of each event type we produce, for IPv4 and IPv6, TCP, UDP and ICMP.
fn our_events() -> Vec<EveEvent> {
    let t0 = 1_795_255_200_000_000_000u64;
    let mut out = Vec::new();
    for (class, src, dst, proto, sport, dport) in [
        (
            ClassHint::SynFlood,
            "10.1.0.7",
            "10.1.0.2",
            6u8,
            40000u16,
            80u16,
        ),
        (
            ClassHint::DnsAmplification,
            "192.0.2.53",
            "10.1.0.9",
            17,
            53,
            33333,
        ),
        (ClassHint::PortScan, "fd00::66", "fd00::2", 6, 50000, 22),
        (ClassHint::Anomaly, "10.1.0.7", "10.1.0.2", 1, 8, 0),
    ] {
        let a = Alert {
            ts_ns: t0 + 5_000,
            score: 17.25,
            class_hint: class,
            src: ip(src),
            dst: ip(dst),
            proto,
            sport,
            dport,
            explanation: vec![FeatureDeviation {
                feature: "pair_rate".into(),
                baseline: 3.0,
                observed: 4000.0,
                z: 17.25,
            }],
            // The reflector's answers: the flow's initiator is the victim.
            answer: class == ClassHint::DnsAmplification,
        };
        out.push(eve::alert_from_detector(&a, &ctx(), Some(t0)).expect("alert"));
        let mut fb = FlowBuilder::new(ip(src), sport, ip(dst), dport, proto, t0);
        fb.packet(t0, 60, true)
            .packet(t0 + 1_000, 1400, false)
            .alerted();
        out.push(fb.to_eve(&ctx(), "timeout").expect("flow"));
    }
    // A honeypot's alerts: ARP, ping, probe, connection and data (with payload_printable);
    // a close raises none.
    let decoy = std::net::Ipv4Addr::new(10, 1, 0, 99);
    for (kind, protocol, port) in [
        (InteractionKind::ArpRequest, 0u8, 0u16),
        (InteractionKind::Ping, 1, 0),
        (InteractionKind::SynProbe { open: false }, 6, 445),
        (InteractionKind::Connected, 6, 22),
        (
            InteractionKind::Data {
                len: 9,
                head: b"GET /\r\n\x00".to_vec(),
            },
            6,
            80,
        ),
        (InteractionKind::UdpProbe { open: true }, 17, 53),
        (InteractionKind::Closed, 6, 22),
    ] {
        let i = Interaction {
            at_ns: t0 + 7_000,
            peer: std::net::Ipv4Addr::new(10, 1, 0, 7),
            peer_port: if protocol == 0 || protocol == 1 {
                0
            } else {
                41_000
            },
            port,
            protocol,
            kind: kind.clone(),
        };
        let e = eve::alert_from_honeypot(&i, "decoy", decoy, &ctx()).expect("alert");
        if kind == InteractionKind::Closed {
            assert!(e.is_none(), "a close raises no alert");
            continue;
        }
        let e = e.expect("an alert");
        let v = e.to_value();
        assert_eq!(v["alert"]["source"]["ip"], "10.1.0.7", "{v}");
        assert_eq!(v["alert"]["target"]["ip"], "10.1.0.99", "{v}");
        assert_eq!(
            v["alert"]["metadata"]["shadownet"]["honeypot"], "decoy",
            "{v}"
        );
        if let InteractionKind::Data { .. } = kind {
            assert_eq!(v["payload_printable"], "GET /...", "{v}");
        }
        out.push(e);
    }
    out.push(eve::decode_anomaly(t0, &ctx(), "decoder.ipv4.trunc_pkt"));
    let stats = DetectorStats {
        packets: 1000,
        malformed: 2,
        alerts: 3,
        alerts_suppressed: 4,
        tracked: [5, 6, 7, 8],
        evicted: [0; 4],
        not_ip: 9,
    };
    out.push(eve::detector_stats(t0, &ctx(), &stats, 120));
    out
}

#[test]
fn every_event_we_write_is_valid_eve() {
    let v = schema_validator();
    let events = our_events();
    let mut types = BTreeMap::new();
    for e in &events {
        let json = e.to_value();
        assert_valid(&v, &json);
        // And it reads back to the same typed event.
        let line = e.to_line();
        let back = EveRecord::parse_line(&line).expect("reads back");
        assert_eq!(back, EveRecord::Event(Box::new(e.clone())));
        *types.entry(e.event_type()).or_insert(0) += 1;
    }
    assert_eq!(
        types.keys().copied().collect::<Vec<_>>(),
        ["alert", "anomaly", "flow", "stats"]
    );
    // The schema's top level is closed: the extension could not live there. This is why
    // alerts carry it in alert.metadata (the open object).
    let mut top = events[0].to_value();
    top["shadownet"] = serde_json::json!({"tenant": "acme"});
    assert!(
        !v.is_valid(&top),
        "the schema accepted a top-level shadownet object"
    );
}

fn suricata_config(dir: &Scratch) -> (PathBuf, PathBuf) {
    let yaml = dir.join("suricata.yaml");
    let log = dir.join("log");
    std::fs::create_dir_all(&log).expect("log dir");
    std::fs::write(
        &yaml,
        format!(
            r#"%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "any"
    EXTERNAL_NET: "any"
default-log-dir: {log}
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      community-id: true
      types:
        - alert:
            metadata: yes
        - anomaly:
            enabled: yes
            types:
              decode: yes
              stream: yes
              applayer: yes
        - flow
        - stats:
            totals: yes
            threads: no
        - dns
stats:
  enabled: yes
  interval: 1
logging:
  default-log-level: warning
  outputs:
    - console:
        enabled: yes
"#,
            log = log.display()
        ),
    )
    .expect("config");
    let rules = dir.join("local.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any any (msg:\"SHADOWNET TEST established TCP\"; \
         flow:established,to_server; metadata:tag shadownet-test; sid:1000001; rev:1;)\n",
    )
    .expect("rules");
    (yaml, rules)
}

#[test]
fn suricata_eve_output_is_read_and_written_back_losslessly() {
    if !tools::require_with("suricata", "-V") {
        return;
    }
    let dir = Scratch::new("findings-suricata");
    let (yaml, rules) = suricata_config(&dir);
    // A capture with TCP (SMB/DCERPC), DNS and malformed packets: alerts, flows, decoder
    // anomalies, stats and untyped dns events.
    let pcap = corpus_dir().join("sv-bug-5162.pcap");
    let out = Command::new("suricata")
        .arg("-c")
        .arg(&yaml)
        .arg("-S")
        .arg(&rules)
        .arg("-r")
        .arg(&pcap)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-k", "none"])
        .output()
        .expect("running suricata");
    assert!(
        out.status.success(),
        "suricata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("log/eve.json")).expect("eve.json");
    let v = schema_validator();
    let mut typed = BTreeMap::<String, usize>::new();
    let mut raw = BTreeMap::<String, usize>::new();
    let mut ids_checked = 0;
    let mut forward = EveFileSink::open(FileConfig::new(dir.join("forwarded.json"))).expect("sink");
    for (n, line) in text.lines().enumerate() {
        let original: Value = serde_json::from_str(line).expect("suricata writes JSON");
        let rec =
            EveRecord::parse_line(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", n + 1));
        assert_eq!(
            rec.to_value(),
            original,
            "line {} changed in the round trip",
            n + 1
        );
        let et = rec.event_type().unwrap_or("none").to_owned();
        match &rec {
            EveRecord::Event(e) => {
                // Suricata's own events of the types we type are valid EVE (a check of the
                // validator set-up as much as of Suricata).
                assert_valid(&v, &original);
                if let EveBody::Alert(a) = &e.body {
                    assert_eq!(a.signature_id, 1_000_001);
                    let md = a.metadata.as_ref().expect("rule metadata");
                    assert_eq!(md.rule["tag"], serde_json::json!(["shadownet-test"]));
                }
                *typed.entry(et).or_insert(0) += 1;
                // Our Community ID agrees with Suricata's.
                if let (Some(cid), Some(s), Some(d), Some(p)) =
                    (&e.community_id, &e.src_ip, &e.dest_ip, &e.proto)
                {
                    let proto = eve::proto_number(p).expect("known proto");
                    let (sp, dp) = match proto {
                        1 | 58 => (
                            e.extra["icmp_type"].as_u64().unwrap_or(0) as u16,
                            e.extra["icmp_code"].as_u64().unwrap_or(0) as u16,
                        ),
                        _ => (e.src_port.unwrap_or(0), e.dest_port.unwrap_or(0)),
                    };
                    let ours = eve::community_id_v1(0, ip(s), ip(d), proto, sp, dp).expect("cid");
                    assert_eq!(&ours, cid, "line {}: {line}", n + 1);
                    ids_checked += 1;
                }
            }
            EveRecord::Raw(_) => *raw.entry(et).or_insert(0) += 1,
        }
        forward.send(&rec.to_value()).expect("forward");
    }
    forward.flush().expect("flush");
    eprintln!(
        "suricata eve.json: typed {typed:?}, raw {raw:?}, {ids_checked} community ids checked"
    );
    for t in ["alert", "flow", "anomaly", "stats"] {
        assert!(
            typed.get(t).is_some_and(|&n| n > 0),
            "no {t} events: {typed:?}"
        );
    }
    assert!(
        raw.get("dns").is_some_and(|&n| n > 0),
        "no raw dns events: {raw:?}"
    );
    assert!(ids_checked > 100);
    // Forwarded through the EVE file sink unchanged, line for line.
    let fwd = std::fs::read_to_string(dir.join("forwarded.json")).expect("forwarded");
    assert_eq!(fwd.lines().count(), text.lines().count());
    for (a, b) in fwd.lines().zip(text.lines()) {
        assert_eq!(
            serde_json::from_str::<Value>(a).expect("json"),
            serde_json::from_str::<Value>(b).expect("json")
        );
    }
}
