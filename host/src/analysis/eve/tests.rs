use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::analysis::detector::{Alert, ClassHint, FeatureDeviation};

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
            session: Some(3),
            shadow_vni: Some(0xF0_0001),
            direction: Some(TrafficDirection::Ingress),
            ..Shadownet::default()
        },
        community_id_seed: 0,
        alert_threshold: 6.5,
    }
}

fn syn_alert(score: f32) -> Alert {
    Alert {
        ts_ns: 1_795_255_200_123_456_789,
        score,
        class_hint: ClassHint::SynFlood,
        src: ip("128.232.110.120"),
        dst: ip("66.35.250.204"),
        proto: 6,
        sport: 34855,
        dport: 80,
        explanation: vec![FeatureDeviation {
            feature: "dst_syn_rate".into(),
            baseline: 12.0,
            observed: 9000.0,
            z: 31.5,
        }],
        answer: false,
    }
}

#[test]
fn detector_alert_becomes_an_eve_alert() {
    let e = alert_from_detector(&syn_alert(30.0), &ctx(), Some(1_795_255_199_000_000_000))
        .expect("alert");
    let v = e.to_value();
    assert_eq!(v["timestamp"], "2026-11-21T10:00:00.123456+0000");
    assert_eq!(v["event_type"], "alert");
    assert_eq!(v["community_id"], "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    assert_eq!(v["src_ip"], "128.232.110.120");
    assert_eq!(v["dest_port"], 80);
    assert_eq!(v["proto"], "TCP");
    assert_eq!(v["host"], "shadownet/acme/shop-shadow");
    assert_eq!(v["in_iface"], "sn-shop-shadow");
    assert_eq!(v["alert"]["gid"], DETECTOR_GID);
    assert_eq!(v["alert"]["signature"], "SHADOWNET DETECTOR SYN flood");
    assert_eq!(v["alert"]["severity"], 1, "30 is over four times 6.5");
    let ext = &v["alert"]["metadata"]["shadownet"];
    assert_eq!(ext["tenant"], "acme");
    assert_eq!(ext["shadow_vni"], 0xF0_0001);
    assert_eq!(ext["direction"], "ingress");
    assert_eq!(ext["class"], "syn_flood");
    assert_eq!(ext["score"], 30.0);
    assert_eq!(ext["explanation"][0]["feature"], "dst_syn_rate");
    // The alert shares its flow id with the flow record of the same flow.
    let mut fb = FlowBuilder::new(
        ip("128.232.110.120"),
        34855,
        ip("66.35.250.204"),
        80,
        6,
        1_795_255_199_000_000_000,
    );
    fb.packet(1_795_255_199_000_000_000, 60, true);
    let flow = fb.to_eve(&ctx(), "timeout").expect("flow");
    assert_eq!(flow.flow_id, e.flow_id);
    // Typed round trip.
    let back = EveEvent::from_value(v.clone()).expect("reads back");
    assert_eq!(back, e);
    assert_eq!(back.shadownet().and_then(|s| s.score), Some(30.0));
    assert_eq!(v["direction"], "to_server");
    assert!(v.get("flow").is_none(), "{v}");
    // An alert on an answer names the flow as its initiator started it, as Suricata 7 does.
    let answer = Alert {
        answer: true,
        ..syn_alert(30.0)
    };
    let v = alert_from_detector(&answer, &ctx(), None)
        .expect("alert")
        .to_value();
    assert_eq!(v["direction"], "to_client");
    assert_eq!(v["flow"]["src_ip"], "66.35.250.204");
    assert_eq!(v["flow"]["src_port"], 80);
    assert_eq!(v["flow"]["dest_ip"], "128.232.110.120");
    assert_eq!(v["flow"]["dest_port"], 34855);
}

#[test]
fn severity_follows_the_score() {
    assert_eq!(severity_from_score(6.5, 6.5), 3);
    assert_eq!(severity_from_score(13.0, 6.5), 2);
    assert_eq!(severity_from_score(26.0, 6.5), 1);
    assert_eq!(
        severity_from_score(5.0, 0.0),
        1,
        "a bad threshold counts as 1"
    );
}

#[test]
fn flow_builder_counts_both_directions() {
    let t0 = 1_795_255_200_000_000_000;
    let mut fb = FlowBuilder::new(ip("10.0.0.1"), 40000, ip("10.0.0.2"), 443, 6, t0);
    fb.packet(t0, 74, true)
        .packet(t0 + 1_000_000, 74, false)
        .packet(t0 + 2_500_000_000, 1500, true)
        .close();
    let e = fb.to_eve(&ctx(), "forced").expect("flow");
    let v = e.to_value();
    assert_eq!(
        v["flow"],
        json!({
            "pkts_toserver": 2, "pkts_toclient": 1, "bytes_toserver": 1574, "bytes_toclient": 74,
            "start": "2026-11-21T10:00:00.000000+0000", "end": "2026-11-21T10:00:02.500000+0000",
            "age": 2, "state": "closed", "reason": "forced", "alerted": false
        })
    );
    assert_eq!(v["timestamp"], v["flow"]["end"]);
    assert!(e.flow_id.is_some_and(|id| id < 1 << 51));
}

#[test]
fn icmp_events_carry_type_and_code() {
    let mut fb = FlowBuilder::new(ip("192.168.0.89"), 8, ip("192.168.0.1"), 0, 1, 0);
    fb.packet(0, 98, true);
    let v = fb.to_eve(&ctx(), "timeout").expect("flow").to_value();
    assert_eq!(v["icmp_type"], 8);
    assert_eq!(v["icmp_code"], 0);
    assert!(v.get("src_port").is_none());
    assert_eq!(v["community_id"], "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
}

#[test]
fn unknown_fields_round_trip() {
    let line = r#"{"timestamp":"2019-01-01T00:00:00.000001+0100","flow_id":1234,"event_type":"alert","src_ip":"fe80:0000:0000:0000:0000:0000:0000:0001","src_port":1,"dest_ip":"10.0.0.1","dest_port":2,"proto":"TCP","pkt_src":"wire/pcap","tx_id":0,"alert":{"action":"allowed","gid":1,"signature_id":9,"rev":2,"signature":"x","category":"","severity":3,"metadata":{"tag":["a"],"shadownet":{"score":1.5}},"rule":"alert ip any any -> any any (sid:9;)","source":{"ip":"10.0.0.1","port":2}},"flow":{"pkts_toserver":1,"pkts_toclient":0,"bytes_toserver":60,"bytes_toclient":0,"start":"2019-01-01T00:00:00.000001+0100","src_ip":"x"},"app_proto":"failed"}"#;
    let original: serde_json::Value = serde_json::from_str(line).expect("json");
    let rec = EveRecord::parse_line(line).expect("typed");
    let EveRecord::Event(e) = &rec else {
        panic!("alert not typed")
    };
    let EveBody::Alert(a) = &e.body else {
        panic!("not an alert")
    };
    assert_eq!(a.signature_id, 9);
    assert_eq!(a.extra["rule"], "alert ip any any -> any any (sid:9;)");
    assert_eq!(
        a.metadata.as_ref().expect("metadata").rule["tag"],
        json!(["a"])
    );
    assert_eq!(rec.to_value(), original);

    let dns = r#"{"timestamp":"2019-01-01T00:00:00.000001+0000","event_type":"dns","dns":{"type":"query","rrname":"example.com"}}"#;
    let rec = EveRecord::parse_line(dns).expect("raw");
    assert!(matches!(rec, EveRecord::Raw(_)));
    assert_eq!(rec.event_type(), Some("dns"));
    assert_eq!(
        rec.to_value(),
        serde_json::from_str::<serde_json::Value>(dns).expect("json")
    );
}

#[test]
fn bad_lines_name_what_is_wrong() {
    let cases = [
        ("not json", "not JSON"),
        ("[1]", "an array"),
        (
            r#"{"timestamp":"2019-01-01T00:00:00.1+0000"}"#,
            "event_type",
        ),
        (
            r#"{"event_type":"flow","timestamp":"yesterday","flow":{}}"#,
            "yesterday",
        ),
        (
            r#"{"event_type":"alert","timestamp":"2019-01-01T00:00:00.1+0000"}"#,
            "`alert` is missing",
        ),
        (
            r#"{"event_type":"flow","timestamp":"2019-01-01T00:00:00.1+0000","src_port":"http","flow":{"pkts_toserver":1,"pkts_toclient":0,"bytes_toserver":1,"bytes_toclient":0,"start":"2019-01-01T00:00:00.1+0000"}}"#,
            "src_port",
        ),
    ];
    for (line, want) in cases {
        let e = EveRecord::parse_line(line).expect_err(line);
        assert!(e.to_string().contains(want), "{line}: {e}");
    }
}

#[test]
fn stats_use_suricata_names() {
    let stats = crate::analysis::detector::DetectorStats {
        packets: 10,
        malformed: 1,
        alerts: 2,
        alerts_suppressed: 3,
        tracked: [4, 5, 6, 7],
        ..Default::default()
    };
    let v = detector_stats(0, &ctx(), &stats, 60).to_value();
    assert_eq!(v["stats"]["uptime"], 60);
    assert_eq!(v["stats"]["decoder"]["pkts"], 10);
    assert_eq!(v["stats"]["detect"]["alerts_suppressed"], 3);
    assert_eq!(v["stats"]["flow"]["active"], 6);
}
