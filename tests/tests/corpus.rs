//! Every capture of the shared corpus (`../shared/corpus`, 380 files) runs through the
//! simulated NIC without a panic, and every frame is accounted for (DESIGN.md: "a malformed
//! frame is counted and dropped, never a panic"; README: "Every frame is accounted for").
//!
//! One lab NIC, programmed through the driver with mirroring of vf0 on, receives every file
//! twice — once on the uplink, once on vf0 — through `shadownet_sim::run::run`, one run after
//! the other on the same model. Around each run the counters are latched through the driver
//! and the deltas must balance: received = transmitted + dropped by reason, copies = copies
//! sent + copies dropped by reason, and the port's received frames = the frames the run fed.

use std::{
    collections::{BTreeMap, BTreeSet},
    panic::AssertUnwindSafe,
    time::Instant,
};

use shadownet_hw::{Port, counters::PortCounter, drop::DropReason};
use shadownet_sim::{
    Departure, Sink,
    datapath::Queue,
    run::{Input, InputReport, Pacing, run},
    stats::Class,
};
use shadownet_tests::{
    accounting::{Balance, delta},
    corpus::{self, Entry},
    corpus_dir,
    counts::Counts,
    lab::Lab,
};

/// The files the manifest notes as damaged (a record header with an implausible length).
const DAMAGED: [&str; 2] = [
    "sv-bug-1450-04-tls_DER-incomplete-header.pcap",
    "sv-bug-6875-01-fuzz.pcap",
];

/// Drop reasons this configuration cannot produce for any input: the device is enabled, vf0
/// is bound and enabled, the production network has no ACL rules and allows by default,
/// misses go to the host, the session is enabled without a policer, every substrate address
/// and the collector are IPv4 and the NIC has an IPv4 address.
const IMPOSSIBLE: [DropReason; 9] = [
    DropReason::DeviceDisabled,
    DropReason::VportDisabled,
    DropReason::AclDeny,
    DropReason::AclDefaultDeny,
    DropReason::NoSubstrateAddress,
    DropReason::VniMismatch,
    DropReason::MirrorSessionDisabled,
    DropReason::MirrorPoliced,
    DropReason::MirrorNoSubstrateAddress,
];

/// Counts what leaves, by queue.
#[derive(Default)]
struct Tally {
    production: u64,
    copies: u64,
    production_by_port: BTreeMap<Port, u64>,
    classes: BTreeMap<Class, u64>,
}

impl Sink for Tally {
    fn transmit(&mut self, d: &Departure, _: &[u8]) {
        *self
            .classes
            .entry(Class::of(d.ingress_port(), &d.frame))
            .or_default() += 1;
        if d.frame.queue() == Queue::Mirror {
            self.copies += 1;
        } else {
            self.production += 1;
            *self.production_by_port.entry(d.frame.port()).or_default() += 1;
        }
    }
}

/// What one run of one file into one port did.
struct Outcome {
    report: InputReport,
    delta: Counts,
    tally: Tally,
}

fn run_one(lab: &mut Lab, entry: &Entry, port: Port, pacing: Pacing) -> Result<Outcome, String> {
    let before = lab.counts();
    let mut tally = Tally::default();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut model = lab.model();
        run(
            &mut model,
            &[Input {
                port,
                path: entry.path(),
            }],
            pacing,
            &mut tally,
            &mut |_, _| {},
        )
    }));
    let reports = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("the run failed: {e}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("PANIC: {msg}"));
        }
    };
    assert_eq!(reports.len(), 1, "one report per input");
    // Every frame the model built left or was dropped, and either way gave its bytes back.
    let held = lab.model().dp.frames.live();
    if held != 0 {
        return Err(format!(
            "{held} frames still held in the frame arena after the run"
        ));
    }
    let after = lab.counts();
    Ok(Outcome {
        report: reports.into_iter().next().expect("one report"),
        delta: delta(&before, &after),
        tally,
    })
}

/// Every accounting problem of one run.
fn check(entry: &Entry, port: Port, o: &Outcome) -> Vec<String> {
    let mut problems = Balance::of(&o.delta).problems();
    let d = &o.delta;
    let r = &o.report;
    let b = Balance::of(d);
    if b.received != r.frames {
        problems.push(format!(
            "rx_packets grew by {} but the run fed {} frames",
            b.received, r.frames
        ));
    }
    let here = d.port(port, PortCounter::RxPackets);
    if here != r.frames {
        problems.push(format!(
            "{port} rx_packets grew by {here}, the run fed it {}",
            r.frames
        ));
    }
    if o.tally.production != b.transmitted {
        problems.push(format!(
            "{} production frames left the model but tx_packets grew by {}",
            o.tally.production, b.transmitted
        ));
    }
    for (&p, &n) in &o.tally.production_by_port {
        let c = d.port(p, PortCounter::TxPackets);
        if c != n {
            problems.push(format!(
                "{n} production frames left {p}, its tx_packets grew by {c}"
            ));
        }
    }
    if o.tally.copies != b.copies_sent {
        problems.push(format!(
            "{} copies left the model but tx_mirror_packets grew by {}",
            o.tally.copies, b.copies_sent
        ));
    }
    let unsupported = d.drop(DropReason::UnsupportedLinkType);
    if unsupported != r.unsupported {
        problems.push(format!(
            "unsupported_link_type grew by {unsupported}, the run reported {} unsupported frames",
            r.unsupported
        ));
    }
    if !corpus::convertible(entry.link_type) && r.unsupported != r.frames {
        problems.push(format!(
            "link type {} is not convertible to Ethernet, yet only {} of {} frames were unsupported",
            entry.link_type_text, r.unsupported, r.frames
        ));
    }
    if corpus::convertible(entry.link_type) && entry.link_type == 1 && r.unsupported != 0 {
        problems.push(format!(
            "an Ethernet capture had {} unsupported frames",
            r.unsupported
        ));
    }
    let damaged = DAMAGED.contains(&entry.file.as_str());
    match (&r.damaged, damaged) {
        (None, true) => problems.push("the manifest notes damage; the run reported none".into()),
        (Some(e), false) => problems.push(format!("damage reported for an intact file: {e}")),
        _ => {}
    }
    if r.frames != entry.packets {
        problems.push(format!(
            "the run fed {} frames, the manifest lists {} packets",
            r.frames, entry.packets
        ));
    }
    problems
}

/// The captures whose timestamps span more than the model's clock can hold (2^64 ps, about
/// 213 days): feeding them at their timestamps overflows the simulated clock (see
/// `captures_spanning_more_than_213_days_run_at_their_timestamps`).
const OVER_LONG: [&str; 5] = [
    "sv-enip-keywords-enip_cip_example.pcap",
    "tcpdump-icmpv6.pcap",
    "tcpdump-isis-extd-isreach-oobr.pcap",
    "tcpdump-olsr-oobr-1.pcap",
    "tcpdump-rx_serviceid_oobr.pcap",
];

/// Seconds from a capture's first frame to its latest one.
fn span_s(entry: &Entry) -> u64 {
    let mut r = shadownet_capture::CaptureReader::open(&entry.path()).expect("the capture opens");
    let mut buf = Vec::new();
    let (mut first, mut last) = (None, 0u64);
    while let Some(Ok(m)) = r.next_into(&mut buf) {
        first.get_or_insert(m.timestamp_ns);
        last = last.max(m.timestamp_ns);
    }
    last.saturating_sub(first.unwrap_or(0)) / 1_000_000_000
}

/// The manifest, checked against the directory.
fn checked_manifest() -> Vec<Entry> {
    let manifest = corpus::manifest();
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .filter(|n| n != "MANIFEST.tsv" && n != "README.md")
        .collect();
    let listed: BTreeSet<String> = manifest.iter().map(|e| e.file.clone()).collect();
    assert_eq!(
        on_disk, listed,
        "MANIFEST.tsv and the corpus directory differ"
    );
    assert_eq!(manifest.len(), 380, "the corpus has 380 captures");
    let noted: BTreeSet<&str> = manifest
        .iter()
        .filter(|e| e.damaged())
        .map(|e| e.file.as_str())
        .collect();
    assert_eq!(
        noted,
        DAMAGED.into_iter().collect(),
        "the manifest's damaged files"
    );
    manifest
}

/// Feeds every capture of `entries` into the uplink and then into vf0 of one lab NIC with
/// `pacing`, checks every run's accounting, and checks the whole for plausibility.
fn corpus_run(entries: &[Entry], pacing: Pacing) {
    let started = Instant::now();
    let mut lab = Lab::new();
    let mut failures: Vec<String> = Vec::new();
    let mut total = lab.counts();
    total.0.values.iter_mut().for_each(|v| *v = 0);
    let (mut frames, mut files_unsupported, mut damaged_seen) = (0u64, 0usize, 0usize);
    let mut classes: BTreeMap<Class, u64> = BTreeMap::new();
    for entry in entries {
        for port in [Port::Uplink, Port::Vport(0)] {
            let o = match run_one(&mut lab, entry, port, pacing) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{} into {port}: {e}", entry.file));
                    // A panic leaves the model in an unknown state: go on with a fresh one.
                    lab = Lab::new();
                    continue;
                }
            };
            for p in check(entry, port, &o) {
                failures.push(format!("{} into {port}: {p}", entry.file));
            }
            frames += o.report.frames;
            if o.report.unsupported > 0 {
                files_unsupported += 1;
            }
            if o.report.damaged.is_some() {
                damaged_seen += 1;
            }
            for (c, n) in &o.tally.classes {
                *classes.entry(*c).or_default() += n;
            }
            for (t, d) in total.0.values.iter_mut().zip(&o.delta.0.values) {
                *t += d;
            }
        }
    }
    let elapsed = started.elapsed();

    let b = Balance::of(&total);
    println!(
        "corpus ({pacing:?}): {} files x 2 ports, {frames} frames in {:.2} s; {} transmitted, {} dropped; {} copies: {} sent, {} dropped",
        entries.len(),
        elapsed.as_secs_f64(),
        b.transmitted,
        b.dropped,
        b.copies,
        b.copies_sent,
        b.copies_dropped
    );
    println!("drops by reason:");
    for (r, n) in total.drops() {
        println!("  {:<28} {n:>7}", r.name());
    }
    println!("frames by class:");
    for (c, n) in &classes {
        println!("  {:<32} {n:>7}", c.name());
    }

    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        Balance::of(&total).problems().is_empty(),
        "the totals do not balance"
    );
    let damaged_fed = entries
        .iter()
        .filter(|e| DAMAGED.contains(&e.file.as_str()))
        .count();
    assert_eq!(damaged_seen, 2 * damaged_fed, "runs reporting damage");
    assert!(files_unsupported > 0, "no file had unsupported frames");
    assert!(frames > 10_000, "only {frames} frames fed");
    // Every drop is one this configuration can produce.
    let impossible: Vec<_> = total
        .drops()
        .into_iter()
        .filter(|(r, _)| IMPOSSIBLE.contains(r))
        .collect();
    assert!(
        impossible.is_empty(),
        "drop reasons this configuration cannot produce: {impossible:?}"
    );
    let malformed: u64 = [
        DropReason::MalformedL2,
        DropReason::MalformedL3,
        DropReason::MalformedL4,
    ]
    .iter()
    .map(|&r| total.drop(r))
    .sum();
    assert!(malformed > 0, "the corpus produced no malformed_* drops");
    assert!(
        total.drop(DropReason::UnsupportedLinkType) > 0,
        "no unsupported_link_type drops"
    );
    // Standard-path traffic both ways: the uplink's frames that are not tunnels to this NIC
    // go to the host, and so do vf0's non-IP frames and map misses.
    for class in [Class::UplinkToHost, Class::VmToHost] {
        assert!(
            classes.get(&class).copied().unwrap_or(0) > 0,
            "no {} frames",
            class.name()
        );
    }
    assert_eq!(
        total.port(Port::Pf, PortCounter::TxPackets),
        classes.get(&Class::UplinkToHost).copied().unwrap_or(0)
            + classes.get(&Class::VmToHost).copied().unwrap_or(0),
        "the PF's transmissions are the standard path's"
    );
    assert!(b.copies_sent > 0, "no copies of vf0's traffic left");
    assert!(
        elapsed.as_secs() < 30,
        "the corpus took {elapsed:?}; it must run in well under a minute"
    );
}

/// The whole corpus at its capture timestamps, the pacing the brief and the README's main
/// job use.
#[test]
fn every_capture_at_its_timestamps_runs_and_is_accounted_for() {
    corpus_run(&checked_manifest(), Pacing::Timestamps);
}

/// The whole corpus back to back at line rate: no timestamps involved, queues under load.
#[test]
fn every_capture_at_line_rate_runs_and_is_accounted_for() {
    corpus_run(&checked_manifest(), Pacing::LineRate { percent: 100 });
}

/// Each over-long capture into a fresh NIC's uplink and vf0 at its timestamps, then an
/// ordinary capture into the same port of the same NIC: the simulated clock must not overflow
/// (the README: captures are fed "at their capture timestamps"; the corpus README: "every
/// file must run through the sim with no panic"), and the model must go on working after
/// them (a model continues in time across runs).
#[test]
fn captures_spanning_more_than_213_days_run_at_their_timestamps() {
    let manifest = checked_manifest();
    let ordinary = manifest
        .iter()
        .find(|e| e.file == "sv-bug-4903-01.pcap")
        .expect("an ordinary capture")
        .clone();
    let long: Vec<&Entry> = manifest
        .iter()
        .filter(|e| OVER_LONG.contains(&e.file.as_str()))
        .collect();
    assert_eq!(long.len(), OVER_LONG.len());
    // 2^64 ps is 18,446,744 s: these captures do span more, so the test exercises the clock.
    for e in &long {
        assert!(span_s(e) > 18_446_744, "{} is not over-long", e.file);
    }
    let mut failures = Vec::new();
    for e in long {
        for port in [Port::Uplink, Port::Vport(0)] {
            let mut lab = Lab::new();
            for what in [e, &ordinary] {
                match run_one(&mut lab, what, port, Pacing::Timestamps) {
                    Ok(o) => failures.extend(
                        check(what, port, &o)
                            .into_iter()
                            .map(|p| format!("{} into {port}: {p}", what.file)),
                    ),
                    Err(err) => {
                        let after = if what.file == e.file {
                            String::new()
                        } else {
                            format!(" (after {})", e.file)
                        };
                        failures.push(format!("{} into {port}{after}: {err}", what.file));
                        break;
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
