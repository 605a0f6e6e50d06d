//! Suricata as an analysis node: the generated configuration passes `suricata -T` in every
//! input mode; the supervisor restarts a crashed Suricata with backoff and counts it, stops
//! it cleanly and exposes its counters; our rules raise the expected alert for every attack
//! class of the traffic generator, offline from a capture and live from a veth in a network
//! namespace with EVE consumed as it is written.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use shadownet_host::analysis::{
    netns::NetnsVeth,
    suricata::{
        Input, PcapServer, RestartPolicy, Supervisor, SupervisorOptions, SuricataConfig, run_pcap,
    },
    sys::{Signal, signal},
    trafficgen::{AttackClass, Label},
};
use shadownet_tests::{
    scratch::Scratch,
    suricata::{self as st, SUBNET},
};

fn home() -> Vec<String> {
    vec![SUBNET.to_string()]
}

#[test]
fn generated_configuration_passes_suricata_t_in_every_mode() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-config");
    for (name, input) in [
        (
            "live",
            Input::AfPacket {
                interface: "lo".into(),
            },
        ),
        (
            "file",
            Input::PcapFile {
                path: dir.join("none.pcap"),
            },
        ),
        ("socket", Input::UnixSocket),
    ] {
        let c = SuricataConfig::new(&dir.join(name), home(), input);
        c.test(&bin)
            .unwrap_or_else(|e| panic!("{name}: suricata -T rejects the configuration: {e}"));
    }
    // A rule file that does not parse is reported with Suricata's own message.
    let rules = dir.join("badrules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(
        rules.join("bad.rules"),
        "alert tcp any any -> any any (nonsense;)\n",
    )
    .expect("write");
    let mut c = SuricataConfig::new(&dir.join("bad"), home(), Input::UnixSocket);
    c.rules_dir = rules;
    c.rule_files = vec!["bad.rules".into()];
    let e = c
        .test(&bin)
        .expect_err("a broken rule is rejected")
        .to_string();
    assert!(e.contains("nonsense"), "{e}");
}

/// A fake Suricata that fails at once: restarts back off exponentially up to the cap.
#[test]
fn a_failing_process_is_restarted_with_capped_backoff() {
    let dir = Scratch::new("suricata-backoff");
    let fake = dir.join("fake-suricata");
    std::fs::write(&fake, "#!/bin/sh\nexit 3\n").expect("write");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    let config = SuricataConfig::new(dir.path(), home(), Input::UnixSocket);
    let options = SupervisorOptions {
        binary: fake,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(160),
        ..SupervisorOptions::default()
    };
    let t0 = Instant::now();
    let sup = Supervisor::start(config, options, Box::new(|_| {})).expect("start");
    while sup.stats().restarts < 7 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", sup.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = t0.elapsed();
    // The exit code is recorded: seen between two starts (stopping may catch a start, whose
    // exit is then the requested SIGTERM).
    let mut seen = sup.stats();
    while seen.last_exit.as_ref().and_then(|e| e.code) != Some(3) {
        assert!(t0.elapsed() < Duration::from_secs(10), "{seen:?}");
        std::thread::sleep(Duration::from_millis(2));
        seen = sup.stats();
    }
    let s = sup.stop();
    assert!(!s.running, "{s:?}");
    // Delays 20, 40, 80, 160, 160, 160, 160 ms: at least 780 ms for 7 restarts; without the
    // cap it would take 2.5 s.
    assert!(
        elapsed >= Duration::from_millis(780) && elapsed < Duration::from_millis(2500),
        "7 restarts took {elapsed:?}"
    );
}

#[test]
fn supervisor_restarts_a_killed_suricata_exposes_counters_and_stops_cleanly() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-supervise");
    let config = SuricataConfig::new(dir.path(), home(), Input::UnixSocket);
    let options = SupervisorOptions {
        binary: bin,
        restart: RestartPolicy::Always,
        backoff_initial: Duration::from_millis(100),
        grace: Duration::from_secs(10),
        ..SupervisorOptions::default()
    };
    let sup = Supervisor::start(config, options, Box::new(|_| {})).expect("start");
    sup.wait_ready(Duration::from_secs(60)).expect("ready");
    let first = sup.stats();
    assert!(first.running && first.restarts == 0, "{first:?}");
    let uptime = sup.command("uptime", None).expect("uptime");
    assert!(uptime.as_u64().is_some_and(|u| u < 600), "{uptime}");

    // Kill it behind the supervisor's back: it comes back, counted, with the signal noted.
    signal(first.pid.expect("pid"), Signal::Kill).expect("kill");
    let t0 = Instant::now();
    loop {
        let s = sup.stats();
        if s.restarts == 1 && s.running {
            assert_eq!(
                s.last_exit.as_ref().and_then(|e| e.signal),
                Some(9),
                "{s:?}"
            );
            assert_ne!(s.pid, first.pid);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no restart: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    sup.wait_ready(Duration::from_secs(60))
        .expect("ready again");
    let up = sup.stats().uptime_ms.expect("uptime");
    assert!(up < 60_000, "{up}");

    // A clean stop: SIGTERM, exit within the grace period, not killed.
    let t0 = Instant::now();
    let s = sup.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t0.elapsed()
    );
    let exit = s.last_exit.expect("an exit");
    assert!(exit.requested && exit.signal.is_none(), "{exit:?}");
    assert!(!s.running && s.finished);
}

/// Which attack classes the capture has, by label.
fn classes(
    frames: &[shadownet_host::analysis::trafficgen::LabelledFrame],
) -> BTreeSet<AttackClass> {
    frames
        .iter()
        .filter_map(|f| match f.label {
            Label::Attack(c) => Some(c),
            Label::Benign => None,
        })
        .collect()
}

fn check_every_class(sids: &BTreeMap<u64, u64>, classes: &BTreeSet<AttackClass>, how: &str) {
    println!("{how}: alerts by rule id: {sids:?}");
    assert_eq!(classes.len(), 6, "the scenario has every class");
    for c in classes {
        let want = st::expected_sids(*c);
        let got: Vec<u64> = want
            .iter()
            .filter(|s| sids.contains_key(s))
            .copied()
            .collect();
        assert!(
            !got.is_empty(),
            "{how}: no alert for {c} (expected one of {want:?}); alerts: {sids:?}"
        );
    }
}

#[test]
fn every_attack_class_raises_its_alert_from_a_capture() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-attacks");
    let frames = st::frames(&st::attack_scenario(7));
    let pcap = dir.join("attacks.pcap");
    st::write_pcap(&pcap, &frames);
    let events = run_pcap(&bin, &dir.join("run"), home(), &pcap).expect("suricata -r");
    check_every_class(&st::sid_counts(&events), &classes(&frames), "capture");
    // The flow and stats records are there too.
    assert!(events.iter().any(|e| e["event_type"] == "flow"));
    assert!(events.iter().any(|e| e["event_type"] == "stats"));
    // Alerts carry metadata (flow, community id) for correlation.
    let a = st::alerts(&events)[0];
    assert!(a["community_id"].is_string(), "{a}");
}

#[test]
fn no_attack_class_rule_fires_on_benign_traffic() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-benign");
    // Two minutes of the benign mix alone, at three times the attack scenario's rate. (The
    // beaconing rule is a rate: at 1,000 frames/s over these 16 hosts the busiest pairs reach
    // it too; see analysis/rules/shadownet.rules.)
    let mut s = st::attack_scenario(13);
    s.attacks.clear();
    s.duration_s = 120.0;
    s.benign_pps = 300.0;
    let frames = st::frames(&s);
    let pcap = dir.join("benign.pcap");
    st::write_pcap(&pcap, &frames);
    let events = run_pcap(&bin, &dir.join("run"), home(), &pcap).expect("suricata -r");
    let sids = st::sid_counts(&events);
    for class in AttackClass::ALL {
        for sid in st::expected_sids(class) {
            assert!(
                !sids.contains_key(sid),
                "{class}'s rule {sid} fired on benign traffic: {sids:?}"
            );
        }
    }
}

#[test]
fn the_pcap_server_analyses_captures_with_rules_loaded_once() {
    let Some(bin) = st::binary() else { return };
    let dir = Scratch::new("suricata-server");
    let frames = st::frames(&st::attack_scenario(9));
    let pcap = dir.join("attacks.pcap");
    st::write_pcap(&pcap, &frames);
    let direct = run_pcap(&bin, &dir.join("direct"), home(), &pcap).expect("suricata -r");
    let server = PcapServer::start(&bin, &dir.join("server"), home()).expect("server");
    let a = server.analyse(&pcap, &dir.join("out1")).expect("first");
    let b = server.analyse(&pcap, &dir.join("out2")).expect("second");
    let s = server.stop();
    assert_eq!(s.starts, 1, "{s:?}");
    assert_eq!(
        st::alert_counts(&a),
        st::alert_counts(&direct),
        "server vs -r"
    );
    assert_eq!(
        st::sid_counts(&a),
        st::sid_counts(&b),
        "a second run of the same capture"
    );
}

#[test]
fn live_attack_frames_in_a_veth_raise_alerts_read_from_eve_as_written() {
    let Some(bin) = st::binary() else { return };
    if !st::require_root_and_ip() {
        return;
    }
    let dir = Scratch::new("suricata-live");
    let lab = NetnsVeth::create().expect("namespace and veth");
    let config = SuricataConfig::new(
        dir.path(),
        home(),
        Input::AfPacket {
            interface: lab.ns_interface().to_string(),
        },
    );
    let (tx, rx) = mpsc::channel::<Value>();
    let options = SupervisorOptions {
        binary: bin,
        netns: Some(lab.netns().to_string()),
        ..SupervisorOptions::default()
    };
    let sup = Supervisor::start(
        config,
        options,
        Box::new(move |e| {
            let _ = tx.send(e);
        }),
    )
    .expect("start suricata in the namespace");
    sup.wait_ready(Duration::from_secs(90)).expect("ready");

    let frames = st::frames(&st::attack_scenario(11));
    let want = classes(&frames);
    let writer = lab.writer().expect("AF_PACKET writer");
    // Replayed at 4x the capture's pace: thresholds count per second of arrival time.
    let t0 = Instant::now();
    for f in &frames {
        let due = Duration::from_nanos(f.ts_ns / 4);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        writer.send(&f.frame).expect("send");
    }

    // Alerts arrive through the callback while Suricata runs.
    let mut sids: BTreeMap<u64, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |sids: &BTreeMap<u64, u64>| {
        want.iter()
            .all(|c| st::expected_sids(*c).iter().any(|s| sids.contains_key(s)))
    };
    while !done(&sids) && Instant::now() < deadline {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(200))
            && e["event_type"] == "alert"
        {
            *sids
                .entry(e["alert"]["signature_id"].as_u64().unwrap_or(0))
                .or_insert(0) += 1;
        }
    }
    let counters = sup.stats().counters;
    let dumped = sup.dump_counters().expect("dump-counters");
    let s = sup.stop();
    assert!(
        dumped.decoder_pkts >= counters.decoder_pkts,
        "{dumped:?} {counters:?}"
    );
    println!("live: {counters:?}; {} frames sent", frames.len());
    check_every_class(&sids, &want, "live");
    assert!(
        counters.kernel_packets > 0 && counters.decoder_pkts > 0,
        "{counters:?}"
    );
    assert_eq!(s.restarts, 0, "{s:?}");
}
