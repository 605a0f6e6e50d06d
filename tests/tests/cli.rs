//! `shadowctl`'s API commands against a running daemon: what they print, with and without
//! `--json`, and how they report the daemon's problems.

use shadowctl::traffic::generate_files;
use shadownet_host::analysis::trafficgen::Scenario;
use shadownet_tests::{
    cli::{ctl, ok},
    daemon::{TestDaemon, raw},
    repo_root,
};

#[test]
fn the_cli_covers_the_api_with_tables_and_json() {
    let d = TestDaemon::start("cli");
    let root = repo_root();
    let shop = root.join("examples/api/shop.json");
    let spec = root.join("examples/api/shop-shadow.json");
    let pcap = root.join("examples/two-tier-web1.pcap");

    let out = ok(&d, &["tenant", "create", "acme", "--max-shadows", "2"]);
    assert!(out.starts_with("tenant acme created\ntoken "), "{out}");
    let out = ok(
        &d,
        &["network", "create", "--file", shop.to_str().expect("path")],
    );
    assert_eq!(out, "network shop is at version 1\n");
    let out = ok(&d, &["network", "list"]);
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("NAME") && h.contains("VNI")),
        "{out}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("shop") && l.contains("5001")),
        "{out}"
    );
    let out = ok(&d, &["network", "show", "shop"]);
    assert!(
        out.contains("web1") && out.contains("security group web"),
        "{out}"
    );

    let out = ok(
        &d,
        &["shadow", "create", "--file", spec.to_str().expect("path")],
    );
    assert!(
        out.starts_with("shadow shop-shadow version 1: active of network shop version 1"),
        "{out}"
    );
    let out = ok(
        &d,
        &[
            "nic",
            "inject",
            pcap.to_str().expect("path"),
            "--port",
            "web1",
        ],
    );
    assert!(out.contains("frames into web1"), "{out}");
    let out = ok(
        &d,
        &[
            "shadow",
            "capacity",
            "shop-shadow",
            "--mbps",
            "1000",
            "--sample",
            "4",
        ],
    );
    assert_eq!(out, "shadow shop-shadow is at version 2\n");
    let out = ok(&d, &["shadow", "diff", "shop-shadow", "--from", "1"]);
    assert!(out.contains("~") && out.contains("capacity"), "{out}");

    let out = ok(
        &d,
        &[
            "node",
            "add",
            "shop",
            "--name",
            "cache1",
            "--ip",
            "192.168.10.31",
            "--mac",
            "02:00:00:00:10:31",
            "--host",
            "10.0.0.4",
            "--host-mac",
            "02:00:00:00:00:04",
        ],
    );
    assert_eq!(out, "network shop is at version 2\n");
    let out = ok(&d, &["network", "diff", "shop", "--from", "1"]);
    assert!(out.contains("+ node nodes/cache1"), "{out}");
    let out = ok(&d, &["network", "history", "shop"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = ok(&d, &["network", "rollback", "shop", "--to", "1"]);
    assert_eq!(out, "network shop is at version 3\n");
    assert_eq!(
        ok(&d, &["network", "diff", "shop", "--from", "1"]),
        "no differences\n"
    );

    // JSON is the API's own answer.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&d, &["shadow", "list", "--json"])).expect("JSON");
    assert_eq!(json[0]["object"]["name"], "shop-shadow");
    let out = ok(&d, &["nic", "status"]);
    assert!(out.contains("shadow_map"), "{out}");
    let out = ok(&d, &["shadow", "complete", "shop-shadow"]);
    assert!(out.contains("0 left after read-back"), "{out}");
    let out = ok(&d, &["audit", "--limit", "100"]);
    assert!(
        out.contains("shadow.purge") && out.contains("network.create"),
        "{out}"
    );

    // Problems are reported with their title, status and what is wrong.
    let e = ctl(&d, &["network", "show", "nope"]).expect_err("no such network");
    assert_eq!(
        format!("{e:#}"),
        "Not found (404): network 'nope' does not exist"
    );
    let bad = d.data.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "x", "vni": 7, "prefixes": ["10.0.0.0/33"]}"#,
    )
    .expect("write");
    let e = ctl(
        &d,
        &["network", "create", "--file", bad.to_str().expect("path")],
    )
    .expect_err("bad");
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("Invalid request (422)") && msg.contains("prefixes/0"),
        "{msg}"
    );
}

#[test]
fn shadow_loop_prints_what_reached_production_and_the_blocks() {
    let d = TestDaemon::start("cli-loop");
    let token = shadownet_tests::closed_loop::setup(&d, "mirror");
    let out = ok(
        &d,
        &[
            "shadow",
            "loop",
            "shop-shadow",
            "--seed",
            "5",
            "--duration",
            "14s",
            "--subnet",
            "192.168.10.0/24",
            "--hosts",
            "8",
            "--benign-pps",
            "300",
            "--attack",
            "port_scan:start=10,duration=3",
            "--baseline",
            "10",
        ],
    );
    assert!(out.contains("CLASS") && out.contains("port_scan"), "{out}");
    assert!(out.contains("committed m-1 198.51.100.23"), "{out}");
    // A scenario that does not validate is refused before anything is sent.
    let err = ctl(
        &d,
        &[
            "shadow",
            "loop",
            "shop-shadow",
            "--hosts",
            "0",
            "--baseline",
            "10",
        ],
    )
    .expect_err("no hosts");
    assert!(format!("{err:#}").contains("hosts"), "{err:#}");

    // A recording stored with the shadow and replayed through the loop.
    let pcap = repo_root().join("examples/two-tier-web1.pcap");
    let pcap = pcap.to_str().expect("path");
    let out = ok(&d, &["shadow", "capture", "shop-shadow", "rec", pcap]);
    assert!(
        out.starts_with("capture rec stored with shadow shop-shadow ("),
        "{out}"
    );
    let err = ctl(
        &d,
        &[
            "shadow",
            "loop",
            "shop-shadow",
            "--artefact",
            "rec",
            "--attack",
            "port_scan",
        ],
    )
    .expect_err("generated or recorded, not both");
    assert!(
        format!("{err:#}").contains("cannot be used with"),
        "{err:#}"
    );
    // web1's recording (192.168.10.0/24, the shop network's prefix) replays as unlabelled
    // traffic; nothing of it is an attack, so nothing is blocked.
    let out = ok(&d, &["shadow", "loop", "shop-shadow", "--artefact", "rec"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("unlabelled"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(cols[1].parse::<u64>().is_ok_and(|n| n > 0), "{out}");
    assert_eq!(cols[1], cols[2], "every frame delivered: {out}");

    // A generated capture stored with its labels replays with ground truth: per class.
    let gen_dir = d.data.join("gen");
    // What `shadowctl traffic gen` with these options writes.
    let scenario = Scenario {
        seed: 5,
        duration_s: 14.0,
        subnet: "192.168.10.0/24".into(),
        hosts: 8,
        benign_pps: 300.0,
        attacks: vec!["port_scan:start=10,duration=3".parse().expect("attack")],
        ..Scenario::default()
    };
    generate_files(&scenario, &gen_dir, &mut |_, _| {}).expect("traffic gen");
    let traffic = gen_dir.join("traffic.pcap");
    let labels = gen_dir.join("labels.csv");
    let (traffic, labels) = (
        traffic.to_str().expect("path"),
        labels.to_str().expect("path"),
    );
    // Labels that do not describe the capture are refused before anything is stored,
    // naming what is wrong.
    let err = ctl(
        &d,
        &[
            "shadow",
            "capture",
            "shop-shadow",
            "rec2",
            pcap,
            "--labels",
            labels,
        ],
    )
    .expect_err("labels of another capture");
    assert!(format!("{err:#}").contains("rows, but"), "{err:#}");
    let text = std::fs::read_to_string(gen_dir.join("labels.csv")).expect("labels");
    let broken = text.replacen(",attack,port_scan,", ",attack,ddos,", 1);
    let broken_path = d.data.join("broken.csv");
    std::fs::write(&broken_path, &broken).expect("write");
    let err = ctl(
        &d,
        &[
            "shadow",
            "capture",
            "shop-shadow",
            "gen",
            traffic,
            "--labels",
            broken_path.to_str().expect("path"),
        ],
    )
    .expect_err("unknown class");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("broken.csv") && msg.contains("line ") && msg.contains("`ddos`"),
        "{msg}"
    );
    // The API checks the same on its own: 422 with the line, 404 without the capture.
    let put_labels = |capture: &str, body: &[u8]| {
        raw(
            &d.base,
            "PUT",
            &format!("/v1/shadows/shop-shadow/captures/{capture}/labels"),
            Some(&token),
            Some("text/csv"),
            body,
        )
    };
    let (status, _, problem) = put_labels("rec", text.as_bytes());
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("frames; capture 'rec' has"),
        "{problem}"
    );
    let (status, _, problem) = put_labels("gen", text.as_bytes());
    assert_eq!(status, 404, "capture gen not stored yet: {problem}");
    ok(&d, &["shadow", "capture", "shop-shadow", "gen", traffic]);
    let (status, _, problem) = put_labels("gen", broken.as_bytes());
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("line "), "{problem}");
    let out = ok(
        &d,
        &[
            "shadow",
            "capture",
            "shop-shadow",
            "gen",
            traffic,
            "--labels",
            labels,
        ],
    );
    assert!(
        out.contains("labels: ") && out.contains("port_scan "),
        "{out}"
    );
    let out = ok(
        &d,
        &[
            "shadow",
            "loop",
            "shop-shadow",
            "--artefact",
            "gen",
            "--baseline",
            "10",
        ],
    );
    assert!(!out.contains("unlabelled"), "{out}");
    let row = |class: &str| -> Vec<u64> {
        out.lines()
            .find(|l| l.starts_with(class))
            .unwrap_or_else(|| panic!("no {class} row: {out}"))
            .split_whitespace()
            .skip(1)
            .filter_map(|c| c.parse().ok())
            .collect()
    };
    assert!(row("port_scan")[0] > 0, "{out}");
    assert!(row("benign")[0] > 0, "{out}");
    // The same capture stored again without labels replays unlabelled: stale ground truth
    // is dropped with the capture it described.
    ok(&d, &["shadow", "capture", "shop-shadow", "gen", traffic]);
    let out = ok(&d, &["shadow", "loop", "shop-shadow", "--artefact", "gen"]);
    assert!(out.contains("unlabelled"), "{out}");
    // The admin can name the files on the daemon's host instead.
    let out = ok(
        &d,
        &[
            "shadow",
            "loop",
            "shop-shadow",
            "--pcap",
            traffic,
            "--labels",
            labels,
        ],
    );
    assert!(
        !out.contains("unlabelled") && out.contains("port_scan"),
        "{out}"
    );
    let err = ctl(&d, &["shadow", "loop", "shop-shadow", "--labels", labels])
        .expect_err("labels need a pcap");
    assert!(format!("{err:#}").contains("--pcap"), "{err:#}");
}
