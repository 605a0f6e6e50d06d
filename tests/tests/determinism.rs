//! Same input twice gives byte-identical outputs (DESIGN.md, "The simulator": "the same
//! inputs and configuration give byte-identical output pcaps and trace").
//!
//! The README's main job runs twice with the trace on, for each pacing, and every file it
//! writes must be identical. The second run goes into the same path as the first (the first
//! run's directory is moved aside), because `summary.json` names its output files: with the
//! same path, the whole file must match byte for byte, with nothing masked. A corpus capture
//! with many frames of many protocols also runs twice through the lab model and must leave
//! the same frames at the same times.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use shadowctl::{
    simrun::{InputSpec, SimRunOptions, sim_run},
    summary::Summary,
};
use shadownet_hw::{Port, timing::Timing};
use shadownet_sim::run::{Input, Pacing, run};
use shadownet_tests::{
    corpus_dir,
    lab::{Collect, Lab, Sent},
    repo_root,
    scratch::Scratch,
};

fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

fn readme_job(out: PathBuf, pacing: Pacing) -> SimRunOptions {
    SimRunOptions {
        config: example("two-tier.toml"),
        inputs: vec![
            InputSpec {
                port: None,
                path: example("two-tier-uplink.pcap"),
            },
            InputSpec {
                port: Some("web1".into()),
                path: example("two-tier-web1.pcap"),
            },
        ],
        out,
        pacing,
        trace: true,
        timing: Timing::DEFAULT,
    }
}

/// Every file in `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("an entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).expect("reading an output");
            (name, bytes)
        })
        .collect()
}

/// The first differing byte of two files, for the message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i} of {}/{}", a.len(), b.len()),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// Runs the README's job twice into the same path and returns both runs' files and summaries.
fn twice(pacing: Pacing, tag: &str) -> [(BTreeMap<String, Vec<u8>>, Summary); 2] {
    let dir = Scratch::new(tag);
    let out = dir.join("out");
    let first = sim_run(&readme_job(out.clone(), pacing), &mut |_, _| {}).expect("first run");
    let aside = dir.join("first");
    std::fs::rename(&out, &aside).expect("moving the first run aside");
    let second = sim_run(&readme_job(out.clone(), pacing), &mut |_, _| {}).expect("second run");
    [(files(&aside), first), (files(&out), second)]
}

fn check_identical(pacing: Pacing, tag: &str) -> BTreeMap<String, Vec<u8>> {
    let [(a, sa), (b, sb)] = twice(pacing, tag);
    let expected = [
        "pf.pcap",
        "summary.json",
        "trace.jsonl",
        "uplink.pcap",
        "vf0.pcap",
        "vf1.pcap",
        "vf2.pcap",
    ];
    assert_eq!(
        a.keys().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "files of the first run ({pacing:?})"
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the two runs wrote different files ({pacing:?})"
    );
    for (name, bytes) in &a {
        let other = &b[name];
        assert!(
            bytes == other,
            "{name} differs between two identical runs ({pacing:?}): {}",
            first_difference(bytes, other)
        );
    }
    assert_eq!(sa, sb, "the returned summaries differ ({pacing:?})");
    assert!(sa.accounting.balanced, "{:?}", sa.accounting);
    // The trace has a line per packet event, at least rx for every frame received.
    let trace = String::from_utf8(a["trace.jsonl"].clone()).expect("the trace is UTF-8");
    let rx = trace
        .lines()
        .filter(|l| l.contains("\"stage\":\"rx\""))
        .count() as u64;
    assert_eq!(rx, sa.accounting.received, "rx events in the trace");
    a
}

/// What the example implies (examples/two-tier.toml): web1's traffic is mirrored both ways,
/// SSH from outside the admin prefix is denied, web1 talks HTTPS to web2 on the same NIC, ARP
/// and DNS misses from web1 and management traffic for the host take the standard path.
fn check_classes(s: &Summary) {
    let class = |name: &str| s.classes.get(name).copied().unwrap_or(0);
    assert!(class("mirrored_to_shadow") > 0, "{:?}", s.classes);
    assert!(class("delivered_vm_to_vm") > 0, "{:?}", s.classes);
    assert!(class("forwarded_to_substrate") > 0, "{:?}", s.classes);
    assert!(class("delivered_from_substrate") > 0, "{:?}", s.classes);
    assert!(class("uplink_to_host_standard_path") > 0, "{:?}", s.classes);
    assert!(class("vm_to_host_standard_path") > 0, "{:?}", s.classes);
    assert_eq!(
        class("redirected_to_shadow"),
        0,
        "mirror mode redirects nothing"
    );
    assert!(
        s.drops.get("acl_deny").copied().unwrap_or(0) > 0,
        "{:?}",
        s.drops
    );
    assert_eq!(
        class("mirrored_to_shadow"),
        s.accounting.copies_transmitted,
        "copies by class and by counter"
    );
}

#[test]
fn the_readme_job_twice_at_capture_timestamps_writes_identical_files() {
    let files = check_identical(Pacing::Timestamps, "determinism-ts");
    let s: Summary = serde_json::from_slice(&files["summary.json"]).expect("summary.json");
    check_classes(&s);
}

#[test]
fn the_readme_job_twice_at_line_rate_writes_identical_files() {
    let line = check_identical(Pacing::LineRate { percent: 100 }, "determinism-line");
    let s: Summary = serde_json::from_slice(&line["summary.json"]).expect("summary.json");
    check_classes(&s);
    // The pacing matters: at line rate frames leave at other times than at the captures'.
    let [(ts, _), _] = twice(Pacing::Timestamps, "determinism-vs");
    assert_ne!(
        ts["uplink.pcap"], line["uplink.pcap"],
        "pacing made no difference"
    );
}

/// A corpus capture with thousands of frames of many protocols (SMB, DCERPC, DNS, ARP, IGMP,
/// IPv4 options, malformed frames), fed into the uplink and vf0 at once.
const MIXED: &str = "sv-bug-5162.pcap";

fn mixed_run() -> (Vec<Sent>, Vec<u64>) {
    let mut lab = Lab::new();
    let path = corpus_dir().join(MIXED);
    let mut sink = Collect::default();
    {
        let mut model = lab.model();
        run(
            &mut model,
            &[
                Input {
                    port: Port::Uplink,
                    path: path.clone(),
                },
                Input {
                    port: Port::Vport(0),
                    path,
                },
            ],
            Pacing::Timestamps,
            &mut sink,
            &mut |_, _| {},
        )
        .expect("the capture runs");
    }
    (sink.0, lab.counts().0.values)
}

#[test]
fn a_mixed_corpus_capture_twice_leaves_the_same_frames_at_the_same_times() {
    let (a, ca) = mixed_run();
    let (b, cb) = mixed_run();
    assert!(a.len() > 5_000, "only {} frames left", a.len());
    assert!(a.iter().any(|s| s.mirror), "no copies");
    assert!(a.iter().any(|s| s.port == Port::Pf), "no standard path");
    assert_eq!(a.len(), b.len(), "frames sent");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "frame {i} differs");
    }
    assert!(ca == cb, "the counters differ");
}
