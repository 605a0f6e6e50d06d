//! The daemon's API served in-process on an ephemeral loopback port, over the simulated NIC,
//! with a clock the test moves; and requests to it through `shadowctl`'s client.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use serde_json::{Value, json};
use shadowctl::client::{Client, ClientError};
use shadownet_host::{
    analysis::suricata::{NodeOptions, SuricataNode},
    api::{ApiState, Handle, router},
    control::{Controller, new_token, token_hash},
    driver::{Nic, PortConfig, sim::SimDevice},
    store::Store,
};
use shadownet_hw::{layout::Mac, timing::Timing};
use shadownet_sim::NicModel;

use crate::scratch::Scratch;

/// This NIC's substrate address in the tests.
pub const NIC_IP: &str = "10.0.0.1";
/// This NIC's substrate MAC in the tests.
pub const NIC_MAC: &str = "02:00:00:00:00:01";

/// What a test daemon runs besides the API.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Supervise a Suricata with this binary (`shadownetd --suricata-binary`), in
    /// `<data>/suricata`.
    pub suricata: Option<PathBuf>,
}

/// A daemon serving on loopback.
pub struct TestDaemon {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token.
    pub admin: String,
    /// The controller, for what the API does not expose (expiry ticks).
    pub ctl: Handle<SimDevice>,
    /// Unix milliseconds the controller sees.
    pub clock: Arc<AtomicI64>,
    /// The data directory.
    pub data: Scratch,
    _suricata: SuricataGuard,
    _runtime: tokio::runtime::Runtime,
}

/// Stops the daemon's Suricata when the daemon goes (a child process outlives the test
/// otherwise).
struct SuricataGuard(Handle<SimDevice>);

impl Drop for SuricataGuard {
    fn drop(&mut self) {
        if let Ok(Some(node)) = self.0.call_blocking(|c| c.take_suricata()) {
            node.stop();
        }
    }
}

/// The port configuration of the test NIC.
pub fn port_config() -> PortConfig {
    PortConfig {
        local_mac: NIC_MAC.parse::<Mac>().unwrap_or_default(),
        local_ipv4: NIC_IP.parse().ok(),
        ..PortConfig::default()
    }
}

impl TestDaemon {
    /// Starts a daemon with an empty store.
    pub fn start(what: &str) -> TestDaemon {
        let data = Scratch::new(what);
        TestDaemon::start_in(data)
    }

    /// Starts a daemon on an existing data directory.
    pub fn start_in(data: Scratch) -> TestDaemon {
        TestDaemon::start_with(data, DaemonOptions::default())
    }

    /// Starts a daemon on an existing data directory with `options`.
    pub fn start_with(data: Scratch, options: DaemonOptions) -> TestDaemon {
        let clock = Arc::new(AtomicI64::new(1_800_000_000_000));
        let c2 = clock.clone();
        let dir = data.path().to_path_buf();
        let ctl = Handle::spawn(move || -> Result<Controller<SimDevice>, String> {
            let store = Store::open(&dir).map_err(|e| e.to_string())?;
            let model = NicModel::new(Timing::DEFAULT).map_err(|e| e.to_string())?;
            let nic = Nic::open(SimDevice::new(model)).map_err(|e| e.to_string())?;
            let (mut c, _) = Controller::start(
                store,
                nic,
                port_config(),
                Arc::new(move || c2.load(Ordering::SeqCst)),
            )
            .map_err(|e| e.to_string())?;
            c.set_sim_out(dir.join("sim-out"));
            if let Some(binary) = options.suricata {
                let mut o = NodeOptions::new(&binary, &dir.join("suricata"));
                o.ready_timeout = std::time::Duration::from_secs(30);
                // A failed start is tried again on the next analysis request, not 30 s later.
                o.retry_start_after = std::time::Duration::ZERO;
                c.set_suricata(SuricataNode::start(o));
            }
            Ok(c)
        })
        .unwrap_or_else(|e| panic!("starting the controller: {e}"));
        let admin = new_token();
        let state = ApiState {
            ctl: ctl.clone(),
            admin_token_hash: token_hash(&admin),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binding loopback");
        let addr = listener.local_addr().expect("bound address");
        runtime.spawn(async move {
            let _ = axum::serve(listener, router(state)).await;
        });
        TestDaemon {
            base: format!("http://{addr}"),
            admin,
            _suricata: SuricataGuard(ctl.clone()),
            ctl,
            clock,
            data,
            _runtime: runtime,
        }
    }

    /// A client with the admin token.
    pub fn admin(&self) -> Client {
        Client::new(&self.base, Some(self.admin.clone()), None)
    }

    /// A client with a token.
    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token.to_string()), None)
    }

    /// Creates a tenant with limits; returns its token.
    pub fn tenant(&self, name: &str, limits: Value) -> String {
        let v = self
            .admin()
            .send(
                "POST",
                "/v1/tenants",
                &json!({"name": name, "limits": limits}),
                &[],
            )
            .unwrap_or_else(|e| panic!("creating tenant {name}: {e}"));
        v["token"].as_str().expect("a token").to_string()
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Runs the expiry check now (the daemon's timer does this every second).
    pub fn expire(&self) -> Vec<String> {
        self.ctl
            .call_blocking(|c| c.expire_due())
            .expect("controller alive")
            .expect("expiry")
            .into_iter()
            .map(|t| t.shadow)
            .collect()
    }

    /// Stops the daemon, keeping its data directory.
    pub fn stop(self) -> Scratch {
        let TestDaemon {
            data,
            _runtime,
            ctl,
            ..
        } = self;
        drop(ctl);
        _runtime.shutdown_background();
        data
    }
}

/// A raw HTTP request, for what the typed client cannot send (bad JSON, wrong media type,
/// missing tokens): returns status, content type and body.
pub fn raw(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String, Value) {
    let agent = ureq::AgentBuilder::new().build();
    let mut r = agent.request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(c) = content_type {
        r = r.set("Content-Type", c);
    }
    let res = if body.is_empty() && method == "GET" {
        r.call()
    } else {
        r.send_bytes(body)
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let ct = resp.content_type().to_string();
    let text = resp.into_string().unwrap_or_default();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// The status of a failed call.
pub fn status_of(e: &ClientError) -> u16 {
    match e {
        ClientError::Problem(p) => p.status,
        _ => 0,
    }
}

/// A two-tier network document: web1 and web2 on this NIC, db1 on another host; SSH denied
/// except from the bastion prefix.
pub fn two_tier(name: &str, vni: u32) -> Value {
    json!({
        "name": name,
        "vni": vni,
        "prefixes": ["192.168.10.0/24"],
        "subnets": [{"name": "app", "prefix": "192.168.10.0/25"}],
        "nodes": [
            {"name": "web1", "ip": "192.168.10.11", "mac": "02:00:00:00:10:11", "host": NIC_IP, "host_mac": NIC_MAC,
             "security_groups": ["web"], "definition": {"image": "nginx-1.27", "size": "m1.small"}},
            {"name": "web2", "ip": "192.168.10.12", "mac": "02:00:00:00:10:12", "host": NIC_IP, "host_mac": NIC_MAC,
             "security_groups": ["web"]},
            {"name": "db1", "ip": "192.168.10.21", "mac": "02:00:00:00:10:21", "host": "10.0.0.2", "host_mac": "02:00:00:00:00:02"}
        ],
        "security_groups": [{"name": "web", "rules": [
            {"direction": "to_node", "protocol": "tcp", "ports": "22", "action": "deny", "priority": 100},
            {"direction": "to_node", "protocol": "tcp", "remote": "10.9.0.0/16", "ports": "22", "action": "allow", "priority": 200}
        ]}]
    })
}

/// Reads every frame of a capture.
pub fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut r = shadownet_capture::CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(rec) = r.next_into(&mut buf) {
        rec.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(buf.clone());
    }
    out
}
