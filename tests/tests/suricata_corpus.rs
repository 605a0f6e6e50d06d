//! Must-show (issue 4): Suricata run on ../shared/corpus through our shadow path raises the
//! same alerts as Suricata run directly on the capture files.
//!
//! For every capture: pass 1 has Suricata read the file itself. Pass 2 feeds the file into
//! the simulated NIC (`shadowctl sim run`'s library code) on the port of a production VM
//! whose traffic a shadow mirrors in full (Geneve, no sampling, truncation or policer),
//! decapsulates the shadow's copies from the uplink capture (`analysis::decap`, the NIC's
//! own parser) back to the frames they carry, and has Suricata read that. Alerts are
//! compared by (signature id, source and destination address and port, protocol) with their
//! counts.
//!
//! Two Suricata instances in unix-socket mode (rules loaded once each) take the files in the
//! same order: one the originals, one the shadow captures, so per-host threshold state
//! carried from one file to the next is the same in both.
//!
//! A difference is allowed only with a reason the test prints, each a thing the shadow
//! legitimately does not see the same way:
//! - frames the NIC does not mirror: non-IP frames (ARP and others take the host's standard
//!   path), frames its parser drops as malformed, link types it cannot convert to
//!   Ethernet, records after a damaged one;
//! - silences over one second that the simulator shortens (flow and threshold timing moves).
//!
//! Captures Suricata cannot read directly (it says so: an unsupported datalink type, an
//! empty file) are skipped with Suricata's message; there is nothing to compare with.

use std::{
    collections::BTreeMap,
    io::Read,
    path::Path,
    time::{Duration, Instant},
};

use shadowctl::simrun::{InputSpec, SimRunOptions, sim_run};
use shadownet_capture::CaptureReader;
use shadownet_host::analysis::{
    decap::{DecapOptions, decap_pcap},
    suricata::PcapServer,
};
use shadownet_hw::timing::Timing;
use shadownet_sim::run::Pacing;
use shadownet_tests::{
    corpus,
    scratch::Scratch,
    suricata::{self as st, AlertKey},
};

/// A production VM whose every frame the shadow mirrors (both directions, everything).
const NETWORK: &str = r#"
[nic]
mac = "02:00:00:00:00:01"
ipv4 = "10.0.0.1"

[[tenant]]
name = "corpus"

[[network]]
name = "prod"
tenant = "corpus"
vni = 5001
prefixes = ["10.255.0.0/16"]
miss = "host"
default_to_vm = "allow"
default_from_vm = "allow"

[[vm]]
name = "tap"
network = "prod"
ip = "10.255.0.10"
mac = "02:00:00:00:10:10"
host = "local"

[[shadow]]
name = "prod-shadow"
network = "prod"
vni = 9001
session = 1
encap = "geneve"
mode = "mirror"
collector = { ip = "10.0.0.50", mac = "02:00:00:00:00:50" }

[[mirror]]
shadow = "prod-shadow"
vm = "tap"
direction = "both"
"#;

const SHADOW_VNI: u32 = 9001;

/// HOME_NET for the corpus: the private ranges most captures use.
fn home() -> Vec<String> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
        .map(String::from)
        .to_vec()
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Suricata's error lines written to `path` after `from`.
fn errors_since(path: &Path, from: u64) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        use std::io::Seek;
        let _ = f.seek(std::io::SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    text.lines()
        .filter(|l| l.starts_with("E: pcap") || l.contains("Failed to init pcap file"))
        .map(String::from)
        .collect()
}

fn first_timestamp_ns(path: &Path) -> Option<u64> {
    let mut r = CaptureReader::open(path).ok()?;
    let mut buf = Vec::new();
    r.next_into(&mut buf)?.ok().map(|m| m.timestamp_ns)
}

#[derive(Debug, Default)]
struct Tally {
    files: usize,
    unreadable: Vec<(String, String)>,
    matched: usize,
    matched_with_alerts: usize,
    alerts_direct: u64,
    alerts_shadow: u64,
    explained: Vec<(String, String)>,
    unexplained: Vec<(String, String)>,
    /// Files that matched only when analysed a second time.
    second_analysis: Vec<String>,
}

#[test]
fn suricata_through_the_shadow_path_raises_the_same_alerts_as_on_the_captures() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-corpus");
    let config = dir.join("corpus.toml");
    std::fs::write(&config, NETWORK).expect("write the description");
    let direct = PcapServer::start(&bin, &dir.join("direct"), home()).expect("direct server");
    let shadow = PcapServer::start(&bin, &dir.join("shadow"), home()).expect("shadow server");
    let direct_log = dir.join("direct/log/suricata.stderr");

    let t0 = Instant::now();
    let mut t = Tally::default();
    let entries = corpus::manifest();
    for (i, e) in entries.iter().enumerate() {
        t.files += 1;
        let work = dir.join(&format!("f{i}"));
        // Pass 1: Suricata on the capture.
        let before = log_len(&direct_log);
        let d_events = direct
            .analyse(&e.path(), &work.join("direct"))
            .unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let errors = errors_since(&direct_log, before);
        // The engine goes on with the next file; its stats records still reach EVE, so
        // only its messages tell that it could not read this one.
        if !errors.is_empty() {
            t.unreadable.push((e.file.clone(), errors.join(" | ")));
            continue;
        }

        // Pass 2: the capture through the NIC into the shadow, decapsulated, to Suricata.
        let out = work.join("sim");
        let opts = SimRunOptions {
            config: config.clone(),
            inputs: vec![InputSpec {
                port: Some("tap".into()),
                path: e.path(),
            }],
            out: out.clone(),
            pacing: Pacing::Timestamps,
            trace: false,
            timing: Timing::DEFAULT,
        };
        let summary =
            sim_run(&opts, &mut |_, _| {}).unwrap_or_else(|err| panic!("{}: sim: {err}", e.file));
        let offset = Duration::from_nanos(first_timestamp_ns(&e.path()).unwrap_or(0));
        let shadow_pcap = work.join("shadow.pcap");
        let dstats = decap_pcap(
            &out.join("uplink.pcap"),
            &shadow_pcap,
            &DecapOptions {
                vni: Some(SHADOW_VNI),
                time_offset: offset,
                ..DecapOptions::default()
            },
        )
        .unwrap_or_else(|err| panic!("{}: decap: {err}", e.file));
        let s_events = shadow
            .analyse(&shadow_pcap, &work.join("shadow"))
            .unwrap_or_else(|err| panic!("{}: {err}", e.file));

        let mut a = st::alert_counts(&d_events);
        let mut b = st::alert_counts(&s_events);
        if a != b {
            // Under load, Suricata's unix-socket mode has been seen to leave out the alerts a
            // flow raises at its end (2 of 335 files, not reproducible alone): analyse both
            // once more before calling it a difference, and count that it happened.
            let again = |server: &PcapServer, pcap: &Path, to: &str| {
                server
                    .analyse(pcap, &work.join(to))
                    .unwrap_or_else(|err| panic!("{}: {err}", e.file))
            };
            let a2 = st::alert_counts(&again(&direct, &e.path(), "direct-again"));
            let b2 = st::alert_counts(&again(&shadow, &shadow_pcap, "shadow-again"));
            if a2 == b2 {
                t.second_analysis.push(e.file.clone());
                a = a2;
                b = b2;
            }
        }
        t.alerts_direct += a.values().sum::<u64>();
        t.alerts_shadow += b.values().sum::<u64>();
        // Everything fed, copied and not lost, on the capture's own clock.
        let fed: u64 = summary.inputs.iter().map(|i| i.frames).sum();
        let unsupported: u64 = summary.inputs.iter().map(|i| i.unsupported).sum();
        let damaged = summary.inputs.iter().find_map(|i| i.damaged.clone());
        let gaps: u64 = summary.inputs.iter().map(|i| i.gaps_shortened).sum();
        let unmirrored = fed.saturating_sub(dstats.decapsulated);
        if a == b {
            t.matched += 1;
            if !a.is_empty() {
                t.matched_with_alerts += 1;
            }
            continue;
        }
        let mut reasons = Vec::new();
        if unmirrored > 0 {
            let drops: BTreeMap<_, _> = summary.drops.iter().filter(|(_, n)| **n > 0).collect();
            let dropped: u64 = drops.values().copied().sum();
            let non_ip = unmirrored.saturating_sub(dropped);
            reasons.push(format!(
                "{unmirrored} of {fed} frames not mirrored (dropped {dropped}: {drops:?}, of which unsupported link type {unsupported}; {non_ip} non-IP on the standard path)"
            ));
        }
        if let Some(d) = damaged {
            reasons.push(format!("capture damaged: {d}"));
        }
        if gaps > 0 {
            reasons.push(format!(
                "{gaps} silences over 1 s shortened by the simulator"
            ));
        }
        if dstats.lost() > 0 {
            reasons.push(format!("{} copies lost (sequence gaps)", dstats.lost()));
        }
        let diff = describe(&a, &b);
        if reasons.is_empty() {
            t.unexplained.push((e.file.clone(), diff));
        } else {
            t.explained
                .push((e.file.clone(), format!("{}; {diff}", reasons.join("; "))));
        }
    }
    let d = direct.stop();
    let s = shadow.stop();
    assert_eq!(
        (d.starts, s.starts),
        (1, 1),
        "a server restarted: {d:?} {s:?}"
    );

    println!(
        "corpus: {} files in {:.0?}; {} unreadable by Suricata itself; {} identical ({} with alerts); {} differ with a reason; {} differ without one; alerts direct {} shadow {}",
        t.files,
        t0.elapsed(),
        t.unreadable.len(),
        t.matched,
        t.matched_with_alerts,
        t.explained.len(),
        t.unexplained.len(),
        t.alerts_direct,
        t.alerts_shadow
    );
    for (f, why) in &t.unreadable {
        println!("  skipped {f}: Suricata cannot read it: {why}");
    }
    for (f, why) in &t.explained {
        println!("  differs {f}: {why}");
    }
    for (f, why) in &t.unexplained {
        println!("  UNEXPLAINED {f}: {why}");
    }
    for f in &t.second_analysis {
        println!("  matched on a second analysis: {f}");
    }
    assert!(
        t.second_analysis.len() <= 3,
        "too many files match only on a second analysis: {:?}",
        t.second_analysis
    );
    assert!(
        t.unexplained.is_empty(),
        "alerts differ without a reason: {:?}",
        t.unexplained
    );
    assert!(
        t.matched_with_alerts >= 20,
        "too few captures raise alerts to compare: {t:?}"
    );
}

/// The keys whose counts differ, both ways.
fn describe(a: &BTreeMap<AlertKey, u64>, b: &BTreeMap<AlertKey, u64>) -> String {
    let mut out = Vec::new();
    for (k, n) in a {
        let m = b.get(k).copied().unwrap_or(0);
        if m != *n {
            out.push(format!(
                "sid {} {}:{}->{}:{} {} direct {n} shadow {m}",
                k.sid, k.src_ip, k.src_port, k.dest_ip, k.dest_port, k.proto
            ));
        }
    }
    for (k, m) in b {
        if !a.contains_key(k) {
            out.push(format!(
                "sid {} {}:{}->{}:{} {} direct 0 shadow {m}",
                k.sid, k.src_ip, k.src_port, k.dest_ip, k.dest_port, k.proto
            ));
        }
    }
    out.join(", ")
}
