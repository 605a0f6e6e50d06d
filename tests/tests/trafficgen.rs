//! `shadowctl traffic gen`'s files: the capture is byte-identical for a seed, tshark decodes
//! every frame without a malformed packet, bad checksum or other error, and labels.csv
//! names every frame of the capture with its timestamp and the generator's ground truth.

use std::process::Command;

use shadowctl::traffic::{EPOCH_NS, evaluate_files, generate_files};
use shadownet_host::analysis::{
    detector::DetectorConfig,
    quality::Evaluator,
    trafficgen::{AttackClass, LABELS_HEADER, Label, Scenario, generate, label_line, parse_labels},
};
use shadownet_tests::{scratch::Scratch, tools};

fn scenario() -> Scenario {
    Scenario {
        benign_pps: 400.0,
        vlan: Some(42),
        ..Scenario::preset_mixed(11, 20.0)
    }
}

#[test]
fn files_are_deterministic_and_labels_match_the_generator() {
    let dir = Scratch::new("trafficgen-files");
    let s = scenario();
    let a = generate_files(&s, &dir.join("a"), &mut |_, _| {}).expect("first run");
    let b = generate_files(&s, &dir.join("b"), &mut |_, _| {}).expect("second run");
    let read = |p: &std::path::Path| std::fs::read(p).expect("output file");
    assert_eq!(read(&a.pcap), read(&b.pcap), "same seed, same capture");
    assert_eq!(read(&a.labels), read(&b.labels));
    let labels = String::from_utf8(read(&a.labels)).expect("utf-8");
    let mut lines = labels.lines();
    assert_eq!(lines.next(), Some(LABELS_HEADER));
    let frames: Vec<_> = generate(&s).expect("valid").collect();
    assert_eq!(frames.len() as u64, a.total.frames);
    for (i, (line, f)) in lines.zip(&frames).enumerate() {
        assert_eq!(line, label_line(i as u64 + 1, EPOCH_NS, f));
    }
    assert_eq!(labels.lines().count(), frames.len() + 1);
    // What a replay reads back is the generator's ground truth, frame by frame.
    let truth: Vec<Label> = frames.iter().map(|f| f.label).collect();
    assert_eq!(parse_labels(&labels).expect("labels.csv parses"), truth);
    let back: Scenario =
        serde_json::from_slice(&read(&a.scenario)).expect("scenario.json reads back");
    assert_eq!(back, s);
    // Every attack class of the preset is there.
    assert_eq!(a.per_label.len(), 7, "{:?}", a.per_label.keys());
}

#[test]
fn tshark_decodes_every_frame_and_agrees_with_the_labels() {
    if !tools::require("tshark") {
        return;
    }
    let dir = Scratch::new("trafficgen-tshark");
    let s = scenario();
    let sum = generate_files(&s, dir.path(), &mut |_, _| {}).expect("run");
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&sum.pcap)
        .args(checks)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
        ])
        .args([
            "-e",
            "frame.protocols",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .args(["-e", "_ws.expert.message"])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let labels = std::fs::read_to_string(&sum.labels).expect("labels");
    let mut n = 0;
    for (row, label) in text.lines().zip(labels.lines().skip(1)) {
        n += 1;
        let f: Vec<&str> = row.split('\t').collect();
        let l: Vec<&str> = label.split(',').collect();
        assert_eq!(f[0], l[0], "frame numbers");
        assert_eq!(f[1], l[1], "timestamps of frame {}", f[0]);
        assert!(
            f[2].starts_with("eth:ethertype:vlan:ethertype:ip:"),
            "frame {}: {}",
            f[0],
            f[2]
        );
        assert!(f[3].is_empty(), "frame {} malformed: {row}", f[0]);
        // Expert severities (decimal): 0x200000 chat, 0x400000 note, 0x600000 warning
        // (resets, which the traffic has on purpose), 0x800000 error.
        for sev in f[4].split(',').filter(|x| !x.is_empty()) {
            let v: u32 = sev.parse().unwrap_or(u32::MAX);
            assert!(v < 0x0080_0000, "frame {}: expert error: {row}", f[0]);
        }
    }
    assert_eq!(n, sum.total.frames);
    assert!(labels.lines().nth(1).is_some_and(|l| {
        let ts: f64 = l
            .split(',')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0);
        ts >= EPOCH_NS as f64 / 1e9
    }));
}

#[test]
fn eval_of_the_files_is_the_detector_on_the_generated_frames() {
    let dir = Scratch::new("trafficgen-eval");
    let s = Scenario {
        duration_s: 40.0,
        benign_pps: 300.0,
        attacks: vec![
            "port_scan:start=25,duration=5".parse().expect("spec"),
            "syn_flood:start=32,duration=4".parse().expect("spec"),
        ],
        ..Scenario::default()
    };
    let sum = generate_files(&s, dir.path(), &mut |_, _| {}).expect("gen");
    let cfg = DetectorConfig {
        baseline_s: 20.0,
        ..DetectorConfig::default()
    };
    let from_files =
        evaluate_files(&sum.pcap, &sum.labels, cfg.clone(), &mut |_| {}).expect("eval");
    // The same frames scored in memory, stamped as the capture stamps them.
    let mut ev = Evaluator::new(cfg).expect("config");
    for f in generate(&s).expect("scenario") {
        ev.frame(EPOCH_NS + f.ts_ns, &f.frame, f.label);
    }
    assert_eq!(from_files.evaluation, ev.finish());
    let e = &from_files.evaluation;
    assert_eq!(e.frames, sum.total.frames);
    let scan = &e.classes[&AttackClass::PortScan];
    assert!(scan.auc.is_some_and(|a| a > 0.95), "{e:?}");
    assert!(scan.first_detection_s.is_some_and(|t| t < 2.0), "{e:?}");
    let table = from_files.render();
    assert!(
        table.contains("port_scan") && table.contains("syn_flood"),
        "{table}"
    );

    // Labels that are not this capture's, or do not parse, are refused with the file.
    let text = std::fs::read_to_string(&sum.labels).expect("labels");
    let short = dir.path().join("short.csv");
    let cut: Vec<&str> = text.lines().take(100).collect();
    std::fs::write(&short, cut.join("\n")).expect("write");
    let err = evaluate_files(&sum.pcap, &short, DetectorConfig::default(), &mut |_| {})
        .expect_err("99 rows")
        .to_string();
    assert!(err.contains("short.csv: 99 rows"), "{err}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, text.replacen(",benign,", ",bogus,", 1)).expect("write");
    let err = evaluate_files(&sum.pcap, &bad, DetectorConfig::default(), &mut |_| {})
        .expect_err("bad label")
        .to_string();
    assert!(err.contains("bad.csv: line 2: label \"bogus\""), "{err}");
}
