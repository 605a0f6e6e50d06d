//! The README's main job through the library (`shadowctl::simrun::sim_run`, exactly what
//! `shadowctl sim run` runs): the bundled example description and captures, the files it
//! writes, and the errors it reports for bad descriptions, unknown ports, missing captures and
//! files that are not captures.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use shadowctl::{
    simrun::{InputSpec, SimRunError, SimRunOptions, sim_run},
    summary::Summary,
};
use shadownet_hw::timing::Timing;
use shadownet_sim::run::Pacing;
use shadownet_tests::{repo_root, scratch::Scratch, tools};

fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// The README's first command: `--config examples/two-tier.toml --pcap
/// examples/two-tier-uplink.pcap --pcap web1=examples/two-tier-web1.pcap --out DIR`.
fn readme_job(out: PathBuf) -> SimRunOptions {
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
        pacing: Pacing::Timestamps,
        trace: false,
        timing: Timing::DEFAULT,
    }
}

/// The files the run writes, by name.
const OUTPUTS: [&str; 6] = [
    "uplink.pcap",
    "pf.pcap",
    "vf0.pcap",
    "vf1.pcap",
    "vf2.pcap",
    "summary.json",
];

fn file_name(path: &str) -> String {
    PathBuf::from(path)
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// Frames per output capture as the summary lists them, by file name.
fn frames_by_file(s: &Summary) -> BTreeMap<String, u64> {
    s.outputs
        .iter()
        .map(|o| (file_name(&o.path), o.frames))
        .collect()
}

#[test]
fn the_readme_job_succeeds_balanced_and_writes_every_output() {
    let dir = Scratch::new("sim-run-readme");
    let out = dir.join("out");
    let summary = sim_run(&readme_job(out.clone()), &mut |_, _| {}).expect("the README's job runs");
    let a = &summary.accounting;
    assert!(a.balanced, "the example does not balance: {a:?}");
    assert_eq!(a.received, a.transmitted + a.dropped, "{a:?}");
    assert_eq!(a.copies, a.copies_transmitted + a.copies_dropped, "{a:?}");

    // The inputs are the two captures, with every frame fed.
    assert_eq!(summary.inputs.len(), 2);
    let fed: u64 = summary.inputs.iter().map(|i| i.frames).sum();
    assert_eq!(a.received, fed, "received = frames fed");
    assert!(
        summary.inputs[0].frames > 100 && summary.inputs[1].frames > 100,
        "{:?}",
        summary.inputs
    );
    assert!(summary.inputs.iter().all(|i| i.damaged.is_none()));

    // Exactly the documented files, each non-empty.
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("the output directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    written.sort();
    let mut expected: Vec<String> = OUTPUTS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        written, expected,
        "the output directory without --trace holds"
    );
    for name in OUTPUTS {
        let len = std::fs::metadata(out.join(name)).expect(name).len();
        assert!(len >= 24, "{name} is {len} bytes");
    }
    // The summary lists one output per capture, and their frames add up to what left.
    let by_file = frames_by_file(&summary);
    assert_eq!(
        by_file.keys().cloned().collect::<Vec<_>>(),
        OUTPUTS[..5]
            .iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "outputs in the summary"
    );
    let left: u64 = by_file.values().sum();
    assert_eq!(
        left,
        a.transmitted + a.copies_transmitted,
        "frames written = production transmitted + copies transmitted"
    );
    for (name, n) in &by_file {
        assert!(*n > 0 || name == "vf2.pcap", "nothing left via {name}");
    }

    // summary.json is the returned summary.
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let parsed: Summary = serde_json::from_str(&text).expect("summary.json parses as a Summary");
    assert_eq!(
        parsed, summary,
        "summary.json differs from the returned summary"
    );
}

#[test]
fn tshark_reads_every_output_capture_with_the_summarys_frame_count() {
    if !tools::require("tshark") {
        return;
    }
    let dir = Scratch::new("sim-run-tshark");
    let out = dir.join("out");
    let summary = sim_run(&readme_job(out.clone()), &mut |_, _| {}).expect("the README's job runs");
    let by_file = frames_by_file(&summary);
    assert_eq!(by_file.len(), 5, "{by_file:?}");
    for (name, frames) in by_file {
        let path = out.join(&name);
        let o = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.number"])
            .output()
            .expect("tshark runs");
        assert!(
            o.status.success(),
            "tshark failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let numbers: Vec<u64> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.trim().parse().expect("a frame number"))
            .collect();
        assert_eq!(
            numbers.len() as u64,
            frames,
            "{name}: tshark reads {} frames, the summary says {frames}",
            numbers.len()
        );
        assert!(
            numbers.iter().copied().eq(1..=frames),
            "{name}: frame numbers"
        );
    }
}

/// Copies the example description with `edit` applied to its text.
fn edited_example(dir: &Scratch, edit: impl FnOnce(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(example("two-tier.toml")).expect("the example");
    let path = dir.join("bad.toml");
    std::fs::write(&path, edit(&text)).expect("writing the description");
    path
}

#[test]
fn a_description_naming_an_unknown_network_fails_with_the_file_and_line() {
    let dir = Scratch::new("sim-run-bad-desc");
    // web2 joins a network that does not exist.
    let needle = "name = \"web2\"\nnetwork = \"shop\"";
    let path = edited_example(&dir, |t| {
        assert!(t.contains(needle), "the example changed: no web2 in shop");
        t.replace(needle, "name = \"web2\"\nnetwork = \"warehouse\"")
    });
    let text = std::fs::read_to_string(&path).expect("the description");
    // The entry at fault is web2's [[vm]] table: the line of its header.
    let lines: Vec<&str> = text.lines().collect();
    let name_line = lines
        .iter()
        .position(|l| *l == "name = \"web2\"")
        .expect("web2's name");
    let header = (0..name_line)
        .rev()
        .find(|&i| lines[i].trim() == "[[vm]]")
        .expect("web2's [[vm]] header")
        + 1;
    let mut job = readme_job(dir.join("out"));
    job.config = path.clone();
    let err = sim_run(&job, &mut |_, _| {}).expect_err("an unknown network");
    assert!(
        matches!(err, SimRunError::Description(_)),
        "not a description error: {err:?}"
    );
    let msg = err.to_string();
    let at = format!("{}:{header}", path.display());
    assert!(msg.contains(&at), "'{at}' not in: {msg}");
    assert!(
        msg.contains("warehouse"),
        "the network's name not in: {msg}"
    );
    assert!(
        !dir.join("out").join("summary.json").exists(),
        "a failed run wrote a summary"
    );
}

#[test]
fn an_unknown_port_fails_naming_the_known_ports() {
    let dir = Scratch::new("sim-run-bad-port");
    let mut job = readme_job(dir.join("out"));
    job.inputs.push(
        format!("nosuchport={}", example("two-tier-web1.pcap").display())
            .parse()
            .expect("PORT=FILE"),
    );
    let err = sim_run(&job, &mut |_, _| {}).expect_err("an unknown port");
    assert!(
        matches!(err, SimRunError::UnknownPort { .. }),
        "not an unknown-port error: {err:?}"
    );
    let msg = err.to_string();
    for known in [
        "nosuchport",
        "uplink",
        "pf",
        "web1",
        "vf0",
        "web2",
        "vf1",
        "shop-shadow/web2",
        "vf2",
    ] {
        assert!(msg.contains(known), "'{known}' not in: {msg}");
    }
}

#[test]
fn a_missing_capture_fails_naming_it() {
    let dir = Scratch::new("sim-run-missing");
    let missing = dir.join("no-such-capture.pcap");
    let mut job = readme_job(dir.join("out"));
    job.inputs.push(InputSpec {
        port: Some("web2".into()),
        path: missing.clone(),
    });
    let err = sim_run(&job, &mut |_, _| {}).expect_err("a missing capture");
    let msg = err.to_string();
    assert!(
        msg.contains(&missing.display().to_string()),
        "{} not in: {msg}",
        missing.display()
    );
    assert!(
        !dir.join("out").join("summary.json").exists(),
        "a failed run wrote a summary"
    );
}

#[test]
fn a_file_that_is_not_a_capture_fails_naming_it() {
    let dir = Scratch::new("sim-run-not-capture");
    let bogus = dir.join("notes.pcap");
    std::fs::write(&bogus, "these are notes, not packets\n").expect("writing the file");
    let mut job = readme_job(dir.join("out"));
    job.inputs.insert(
        0,
        InputSpec {
            port: None,
            path: bogus.clone(),
        },
    );
    let err = sim_run(&job, &mut |_, _| {}).expect_err("not a capture");
    let msg = err.to_string();
    assert!(
        msg.contains(&bogus.display().to_string()),
        "{} not in: {msg}",
        bogus.display()
    );
    assert!(msg.contains("not a pcap"), "what is wrong not in: {msg}");
    assert!(
        !dir.join("out").join("summary.json").exists(),
        "a failed run wrote a summary"
    );
}
