//! SIEM export against a real syslog receiver: rsyslogd (Debian's) on loopback, imtcp,
//! parsing RFC 5424 with octet-counted framing. Every event sent must come out parsed with
//! the right APP-NAME, MSGID, structured data and MSG (the EVE JSON), including one whose
//! structured data holds a raw newline and non-ASCII text (LF framing would split it);
//! rsyslog is stopped mid-stream and restarted, and the events sent meanwhile arrive from
//! the sink's backlog. Also measures events/s into rsyslog.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use shadownet_host::analysis::siem::{
    EcsOutput, EcsSink, EventSink, FileConfig, NdjsonFile, Observer, SyslogConfig, SyslogSink,
    TcpConfig, TcpForwarder, syslog_message,
};
use shadownet_tests::{scratch::Scratch, tools};

fn rsyslogd() -> &'static str {
    if Path::new("/usr/sbin/rsyslogd").exists() {
        "/usr/sbin/rsyslogd"
    } else {
        "rsyslogd"
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Rsyslog {
        let conf = dir.join("rsyslog.conf");
        let out = dir.join("out.jsonl");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="app" name="app-name" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="ts" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
*.* action(type="omfile" file="{out}" template="fields")
"#,
                dir = dir.display(),
                out = out.display()
            ),
        )
        .expect("rsyslog config");
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting rsyslogd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rsyslog { child }
    }

    /// SIGTERM (rsyslog writes out what it received) and wait for the exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `path` holds `n` lines (rsyslog writes asynchronously) and returns them.
fn wait_lines(path: &PathBuf, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete: Vec<&str> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .collect();
        if complete.len() >= n || Instant::now() > deadline {
            return complete
                .iter()
                .map(|l| {
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("rsyslog line {l:?}: {e}"))
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(seq: u64) -> Value {
    let signature = if seq == 3 {
        // A raw newline and non-ASCII in the structured data (and JSON-escaped in MSG).
        "SHADOWNET DETECTOR exfiltration to Zürich\nsecond line ] \" \\".to_owned()
    } else {
        format!("SHADOWNET DETECTOR port scan #{seq}")
    };
    json!({
        "timestamp": "2026-11-21T10:00:00.123456+0000",
        "flow_id": seq,
        "in_iface": "sn-shop-shadow",
        "event_type": "alert",
        "src_ip": "10.1.0.7", "src_port": 40000 + seq % 1000, "dest_ip": "10.1.0.2", "dest_port": 22,
        "proto": "TCP",
        "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
        "alert": {"action": "allowed", "gid": 9100, "signature_id": 2, "rev": 1,
                  "signature": signature, "category": "Detection of a Network Scan",
                  "severity": 1 + seq % 3,
                  "metadata": {"shadownet": {"tenant": "acme", "network": "shop",
                                             "shadow": "shop-shadow", "score": 12.5}}}
    })
}

fn check_received(cfg: &SyslogConfig, got: &[Value], sent: &BTreeMap<u64, Value>) {
    let mut seen = BTreeMap::new();
    for g in got {
        assert_eq!(g["app"], "shadownet", "{g}");
        assert_eq!(g["host"], "siem-test-host");
        assert_eq!(g["msgid"], "alert");
        let msg: Value = serde_json::from_str(g["msg"].as_str().expect("msg"))
            .unwrap_or_else(|e| panic!("MSG is not the EVE JSON ({e}): {g}"));
        let seq = msg["flow_id"].as_u64().expect("flow id");
        let want = &sent[&seq];
        assert_eq!(&msg, want, "MSG differs");
        let line = syslog_message(cfg, want).expect("message");
        let header_and_sd = line.strip_suffix(&format!(" {want}")).expect("MSG last");
        let sd = header_and_sd.splitn(7, ' ').nth(6).expect("SD");
        assert_eq!(g["sd"], sd, "structured data of event {seq}");
        let pri: u64 = g["pri"].as_str().and_then(|p| p.parse().ok()).expect("pri");
        assert_eq!(pri, 16 * 8 + [2, 3, 4][(seq % 3) as usize]);
        assert_eq!(g["ts"], "2026-11-21T10:00:00.123456Z");
        *seen.entry(seq).or_insert(0) += 1;
    }
    let missing: Vec<_> = sent.keys().filter(|k| !seen.contains_key(k)).collect();
    assert!(missing.is_empty(), "not received: {missing:?}");
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "received twice: {dup:?}");
}

#[test]
fn rsyslog_parses_every_event_and_the_backlog_survives_a_restart() {
    if !tools::require_with(rsyslogd(), "-v") {
        return;
    }
    let dir = Scratch::new("siem-rsyslog");
    let port = free_port();
    let out = dir.join("out.jsonl");
    let rs = Rsyslog::start(dir.path(), port);
    let mut cfg = SyslogConfig::new(format!("127.0.0.1:{port}"));
    cfg.hostname = "siem-test-host".into();
    cfg.tcp.backoff_min = Duration::from_millis(20);
    cfg.tcp.backoff_max = Duration::from_millis(200);
    let mut sink = SyslogSink::new(cfg.clone()).expect("sink");

    // Phase 1: receiver up.
    let mut sent = BTreeMap::new();
    for seq in 0..200 {
        let ev = event(seq);
        sink.send(&ev).expect("send");
        sent.insert(seq, ev);
    }
    sink.flush().expect("flush");
    let got = wait_lines(&out, 200, Duration::from_secs(15));
    assert_eq!(got.len(), 200, "rsyslog wrote {} of 200", got.len());
    check_received(&cfg, &got, &sent);
    let special = got
        .iter()
        .find(|g| {
            g["sd"]
                .as_str()
                .is_some_and(|s| s.contains("Zürich\nsecond line"))
        })
        .expect("the event with a raw newline arrived as one message");
    assert!(
        special["sd"]
            .as_str()
            .expect("sd")
            .contains(r#"second line \] \" \\"#)
    );

    // Phase 2: rsyslog goes away mid-stream; events queue up.
    rs.stop();
    for seq in 200..300 {
        let ev = event(seq);
        sink.send(&ev).expect("send while down");
        sent.insert(seq, ev);
    }
    let st = sink.stats();
    assert!(
        st.backlog > 0,
        "nothing queued while the receiver is down: {st:?}"
    );
    // Whether a reconnect was already attempted (and failed) depends on the backoff timer;
    // the lost connection itself must have been noticed.
    assert!(st.disconnects >= 1, "{st:?}");

    // Phase 3: rsyslog is back; the backlog is delivered.
    let rs = Rsyslog::start(dir.path(), port);
    sink.flush().expect("backlog delivered after the restart");
    let got = wait_lines(&out, 300, Duration::from_secs(15));
    assert_eq!(got.len(), 300, "rsyslog wrote {} of 300", got.len());
    check_received(&cfg, &got, &sent);
    let st = sink.stats();
    assert_eq!((st.dropped, st.backlog, st.sent), (0, 0, 300), "{st:?}");
    assert!(st.connects >= 2, "{st:?}");

    // Throughput into rsyslog (events written to its file, not just to the socket).
    let n = 20_000u64;
    let base = 300;
    let t = Instant::now();
    for seq in base..base + n {
        sink.send(&event(seq)).expect("send");
    }
    sink.flush().expect("flush");
    let got = wait_lines(&out, (base + n) as usize, Duration::from_secs(60));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got.len() as u64, base + n);
    eprintln!(
        "syslog to rsyslog: {n} events in {secs:.3} s = {:.0} events/s (written by rsyslog)",
        n as f64 / secs
    );
    rs.stop();
}

#[test]
fn a_full_backlog_drops_the_oldest_and_counts() {
    // Nobody listens on this port (bound, then released).
    let port = free_port();
    let mut cfg = TcpConfig::new(format!("127.0.0.1:{port}"));
    cfg.backlog = 5;
    let mut f = TcpForwarder::new(cfg).expect("forwarder");
    for i in 0..12u8 {
        f.push(vec![i]);
    }
    let st = f.stats();
    assert_eq!((st.backlog, st.dropped, st.sent), (5, 7, 0), "{st:?}");
    let e = f
        .flush(Duration::from_millis(50))
        .expect_err("nobody listens");
    assert!(e.to_string().contains("5 event(s) not delivered"), "{e}");
}

#[test]
fn ecs_documents_map_the_key_fields() {
    let dir = Scratch::new("siem-ecs");
    let path = dir.join("ecs.json");
    let obs = Observer {
        hostname: "nic-host-1".into(),
        ..Observer::default()
    };
    let mut sink = EcsSink::new(
        EcsOutput::File(NdjsonFile::open(FileConfig::new(&path)).expect("file")),
        obs,
    );
    let alert = event(7);
    let flow = json!({
        "timestamp": "2026-11-21T10:00:02.500000+0000", "flow_id": 9, "event_type": "flow",
        "src_ip": "fd00:0000:0000:0000:0000:0000:0000:0066", "src_port": 5353,
        "dest_ip": "fd00::2", "dest_port": 53, "proto": "UDP", "community_id": "1:x=",
        "flow": {"pkts_toserver": 3, "pkts_toclient": 2, "bytes_toserver": 300, "bytes_toclient": 2000,
                 "start": "2026-11-21T10:00:00.000000+0000", "end": "2026-11-21T10:00:02.500000+0000",
                 "age": 2, "state": "established", "reason": "timeout", "alerted": false}
    });
    sink.send(&alert).expect("alert");
    sink.send(&flow).expect("flow");
    assert!(
        sink.send(&json!({"event_type": "flow"})).is_err(),
        "no timestamp"
    );
    sink.flush().expect("flush");
    let text = std::fs::read_to_string(&path).expect("read");
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert_eq!(docs.len(), 2, "the bad event wrote nothing");
    let a = &docs[0];
    assert_eq!(a["@timestamp"], "2026-11-21T10:00:00.123456Z");
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(
        a["event"]["category"],
        json!(["network", "intrusion_detection"])
    );
    assert_eq!(a["event"]["severity"], 2);
    assert_eq!(a["event"]["risk_score"], 12.5);
    assert_eq!(a["source"]["ip"], "10.1.0.7");
    assert_eq!(a["destination"]["port"], 22);
    assert_eq!(a["network"]["transport"], "tcp");
    assert_eq!(a["network"]["iana_number"], "6");
    assert_eq!(
        a["network"]["community_id"],
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    );
    assert_eq!(a["rule"]["id"], "2");
    assert_eq!(a["rule"]["name"], "SHADOWNET DETECTOR port scan #7");
    assert_eq!(a["observer"]["hostname"], "nic-host-1");
    assert_eq!(
        a["observer"]["ingress"]["interface"]["name"],
        "sn-shop-shadow"
    );
    assert_eq!(a["labels"]["tenant"], "acme");
    assert_eq!(a["labels"]["shadow"], "shop-shadow");
    assert_eq!(
        serde_json::from_str::<Value>(a["event"]["original"].as_str().expect("original"))
            .expect("json"),
        alert
    );
    let f = &docs[1];
    assert_eq!(f["event"]["kind"], "event");
    assert_eq!(f["event"]["type"], json!(["connection", "end"]));
    assert_eq!(f["source"]["ip"], "fd00::66", "IPv6 normalised");
    assert_eq!(f["network"]["type"], "ipv6");
    assert_eq!(f["source"]["bytes"], 300);
    assert_eq!(f["destination"]["packets"], 2);
    assert_eq!(f["network"]["bytes"], 2300);
    assert_eq!(f["event"]["duration"], 2_500_000_000u64);
    assert_eq!(f["event"]["start"], "2026-11-21T10:00:00.000000Z");
    assert_eq!(f["suricata"]["eve"]["flow_id"], 9);
}
