//! `kill -9` of the daemon in the middle of a stream of changes: after a restart the store
//! holds every acknowledged change, and the NIC's tables (rebuilt from the store) agree with
//! it — checked through the API's drift report and table occupancy.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Daemon {
    child: Child,
    base: String,
    token: String,
}

fn scratch(what: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("shadownetd-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}

fn start(data: &Path) -> Daemon {
    let _ = std::fs::remove_file(data.join("listen.addr"));
    let child = Command::new(env!("CARGO_BIN_EXE_shadownetd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning shadownetd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(data.join("listen.addr"))
            && !a.is_empty()
        {
            break a;
        }
        assert!(Instant::now() < deadline, "shadownetd did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let token = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_string();
    Daemon {
        child,
        base: format!("http://{addr}"),
        token,
    }
}

impl Daemon {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, (u16, String)> {
        let r = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Shadownet-Tenant", "acme")
            .timeout(Duration::from_secs(20));
        let res = match body {
            Some(b) => r.send_json(b.clone()),
            None => r.call(),
        };
        match res {
            Ok(r) => Ok(r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => Err((s, r.into_string().unwrap_or_default())),
            Err(e) => Err((0, e.to_string())),
        }
    }

    fn kill(mut self) -> String {
        // SIGKILL: no chance to flush or clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

fn node(i: u32) -> Value {
    json!({"name": format!("n{i}"), "ip": format!("192.168.{}.{}", 20 + i / 200, 10 + i % 200),
           "mac": format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
           "host": format!("10.0.1.{}", 1 + i % 200), "host_mac": "02:00:00:00:00:02"})
}

#[test]
fn sigkill_during_a_stream_of_changes_loses_no_acknowledged_change() {
    let data = scratch("crash");
    let d = start(&data);
    d.call("POST", "/v1/tenants", Some(&json!({"name": "acme"})))
        .expect("tenant");
    d.call(
        "POST",
        "/v1/networks",
        Some(&json!({"name": "big", "vni": 7001, "prefixes": ["192.168.0.0/16"]})),
    )
    .expect("network");
    let mut acknowledged: Vec<u32> = Vec::new();
    let mut d = Some(d);
    let mut next = 0u32;
    // Three rounds: a writer thread streams node additions while the daemon is killed after
    // a varying delay; each restart must hold every acknowledged node.
    for (round, delay_ms) in [(0, 150u64), (1, 400), (2, 50)] {
        let daemon = d.take().expect("daemon");
        let base = daemon.base.clone();
        let token = daemon.token.clone();
        let start_at = next;
        let writer = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in start_at..start_at + 10_000 {
                let r = ureq::post(&format!("{base}/v1/networks/big/nodes"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Shadownet-Tenant", "acme")
                    .timeout(Duration::from_secs(5))
                    .send_json(node(i));
                match r {
                    Ok(_) => acked.push(i),
                    Err(_) => break,
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(delay_ms + 100));
        let log = daemon.kill();
        let acked = writer.join().expect("writer");
        assert!(
            !acked.is_empty() || round > 0,
            "no change was acknowledged before the kill: {log}"
        );
        eprintln!(
            "round {round}: {} changes acknowledged before SIGKILL",
            acked.len()
        );
        next = acked.last().map(|l| l + 1).unwrap_or(next) + 1;
        acknowledged.extend(acked);

        let r = start(&data);
        let net = r
            .call("GET", "/v1/networks/big", None)
            .expect("network after restart");
        let names: std::collections::BTreeSet<String> = net["object"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["name"].as_str().map(String::from))
            .collect();
        for i in &acknowledged {
            assert!(
                names.contains(&format!("n{i}")),
                "round {round}: acknowledged node n{i} lost"
            );
        }
        // The NIC was rebuilt from the store: nothing differs.
        let drift = r.call("GET", "/v1/nic/drift", None).expect("drift");
        fn has_entries(v: &Value) -> bool {
            match v {
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => o.values().any(has_entries),
                _ => false,
            }
        }
        assert!(
            !has_entries(&drift),
            "round {round}: drift after restart: {drift}"
        );
        let nic = r.call("GET", "/v1/nic", None).expect("nic");
        let map = nic["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|x| x["table"] == "map"))
            .and_then(|x| x["occupancy"].as_u64())
            .expect("map occupancy");
        assert_eq!(
            map as usize,
            names.len(),
            "round {round}: one map entry per node"
        );
        d = Some(r);
    }
    if let Some(d) = d {
        d.kill();
    }
    let _ = std::fs::remove_dir_all(&data);
    assert!(
        acknowledged.len() > 10,
        "only {} changes acknowledged",
        acknowledged.len()
    );
}
