//! The daemon's Suricata: one [`PcapServer`] under the daemon's data directory, supervised
//! (restarted with backoff when it dies), that analyses the shadow captures the closed loop
//! writes. A node that could not start is kept too, so the API can say why it is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    PcapServer, RestartPolicy, SupervisorOptions, SuricataConfig, SuricataCounters, SuricataError,
    config::Input, socket::CommandSocket, supervisor::ExitInfo,
};

/// `HOME_NET` of the daemon's Suricata when none is given: the private and unique-local
/// ranges overlay networks use. One server analyses every shadow's captures, so it cannot
/// take one shadow's prefixes.
pub const DEFAULT_HOME_NET: [&str; 4] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// How the daemon's Suricata is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// The Suricata binary.
    pub binary: PathBuf,
    /// Its directory (configuration, socket, logs, analyses): `<data>/suricata`.
    pub dir: PathBuf,
    /// `HOME_NET`.
    pub home_net: Vec<String>,
    /// How long the first start and an analysis after a restart wait for the command
    /// socket.
    pub ready_timeout: Duration,
    /// First delay before a restart.
    pub backoff_initial: Duration,
    /// Longest delay before a restart.
    pub backoff_max: Duration,
    /// After a failed start (binary missing, configuration rejected, not ready in time), how
    /// long until the next analysis request tries again.
    pub retry_start_after: Duration,
}

impl NodeOptions {
    /// Options for `binary` in `dir` with the default `HOME_NET` and timings.
    pub fn new(binary: &Path, dir: &Path) -> NodeOptions {
        NodeOptions {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            home_net: DEFAULT_HOME_NET.iter().map(|s| s.to_string()).collect(),
            ready_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            retry_start_after: Duration::from_secs(30),
        }
    }
}

/// What `GET /v1/analysis/suricata` says about the daemon's Suricata.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuricataStatus {
    /// Whether the daemon was asked to supervise Suricata.
    pub enabled: bool,
    /// Whether a Suricata process runs now.
    pub running: bool,
    /// The binary.
    pub binary: Option<String>,
    /// Its version (`suricata -V`).
    pub version: Option<String>,
    /// Why it is not there (it did not start), or the last analysis error.
    pub error: Option<String>,
    /// Its process id.
    pub pid: Option<u32>,
    /// Processes started.
    pub starts: u64,
    /// Of those, restarts after an exit.
    pub restarts: u64,
    /// How the last run ended.
    pub last_exit: Option<ExitInfo>,
    /// Milliseconds the current process has been running.
    pub uptime_ms: Option<u64>,
    /// Suricata's own counters: read now with `dump-counters` on the command socket when it
    /// answers, else those of the last analysis (its final `stats` event). In unix-socket
    /// mode the engine's counters are synchronised only while a file is analysed, so
    /// between analyses `dump-counters` is refused ("stats not yet synchronized").
    pub counters: Option<SuricataCounters>,
    /// `dump-counters` or `last-analysis`.
    pub counters_source: Option<String>,
    /// Why `dump-counters` failed.
    pub counters_error: Option<String>,
    /// Packets decoded over every analysis.
    pub packets_total: u64,
    /// Alerts raised over every analysis (`detect.alert`).
    pub alerts_total: u64,
    /// Packets dropped before or in the engine over every analysis (kernel drops; 0 for
    /// capture files unless the engine drops).
    pub drops_total: u64,
    /// EVE events read: those of the server's own `eve.json` and of every analysis.
    pub eve_events: u64,
    /// Of them, alerts.
    pub eve_alerts: u64,
    /// Captures analysed.
    pub analyses: u64,
    /// The server's directory.
    pub dir: Option<String>,
    /// Attempts to start the server: after a failed start, an analysis request tries again
    /// every `retry_start_after` (30 s).
    pub start_attempts: u64,
}

impl SuricataStatus {
    /// The status of a daemon that does not supervise Suricata.
    pub fn disabled() -> SuricataStatus {
        SuricataStatus {
            enabled: false,
            running: false,
            binary: None,
            version: None,
            error: Some("the daemon does not supervise Suricata (start it with --suricata)".into()),
            pid: None,
            starts: 0,
            restarts: 0,
            last_exit: None,
            uptime_ms: None,
            counters: None,
            counters_source: None,
            counters_error: None,
            packets_total: 0,
            alerts_total: 0,
            drops_total: 0,
            eve_events: 0,
            eve_alerts: 0,
            analyses: 0,
            dir: None,
            start_attempts: 0,
        }
    }
}

/// The daemon's supervised Suricata, or why it is missing.
#[derive(Debug)]
pub struct SuricataNode {
    options: NodeOptions,
    version: Option<String>,
    server: Option<PcapServer>,
    error: Option<String>,
    analyses: u64,
    analysis_events: u64,
    analysis_alerts: u64,
    /// Counters of the last analysis's final `stats` event.
    last_counters: Option<SuricataCounters>,
    packets_total: u64,
    alerts_total: u64,
    drops_total: u64,
    /// Attempts to start the server, and when the last one was made.
    start_attempts: u64,
    last_attempt: Instant,
}

/// The version `binary -V` prints (`This is Suricata version 7.0.10 RELEASE`).
pub fn version(binary: &Path) -> Result<String, SuricataError> {
    let out = Command::new(binary)
        .arg("-V")
        .output()
        .map_err(|e| SuricataError::Spawn {
            binary: binary.to_path_buf(),
            source: e,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SuricataError::CommandFailed {
            command: format!("{} -V", binary.display()),
            reply: format!("{}: {}", out.status, text.trim()),
        });
    }
    Ok(parse_version(&text))
}

/// The version in `suricata -V`'s output (the whole output, trimmed, when it has no
/// `version ` in it).
fn parse_version(text: &str) -> String {
    text.split_once("version ")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| text.trim().to_string())
}

impl SuricataNode {
    /// Starts Suricata in unix-socket mode in `options.dir` and waits until it answers. A
    /// failure (binary missing, configuration rejected, not ready in time) is logged as a
    /// warning and kept: the node then reports it and analyses nothing.
    pub fn start(options: NodeOptions) -> SuricataNode {
        let mut node = SuricataNode {
            options,
            version: None,
            server: None,
            error: None,
            analyses: 0,
            analysis_events: 0,
            analysis_alerts: 0,
            last_counters: None,
            packets_total: 0,
            alerts_total: 0,
            drops_total: 0,
            start_attempts: 0,
            last_attempt: Instant::now(),
        };
        match node.try_start() {
            Ok(()) => tracing::info!(
                binary = %node.options.binary.display(),
                version = node.version.as_deref().unwrap_or("?"),
                dir = %node.options.dir.display(),
                "suricata analysis node running"
            ),
            Err(e) => {
                tracing::warn!(
                    binary = %node.options.binary.display(),
                    error = %e,
                    "suricata is not available: the daemon runs without it (the loop uses the built-in detector only)"
                );
                node.error = Some(e.to_string());
            }
        }
        node
    }

    /// After a failed start, tries again once `retry_start_after` has passed since the last
    /// attempt (a binary installed since, a configuration fixed); returns whether the server
    /// is there now.
    pub fn retry_start_if_due(&mut self) -> bool {
        if self.server.is_some() {
            return true;
        }
        if self.last_attempt.elapsed() < self.options.retry_start_after {
            return false;
        }
        match self.try_start() {
            Ok(()) => {
                tracing::info!(
                    attempts = self.start_attempts,
                    version = self.version.as_deref().unwrap_or("?"),
                    "suricata analysis node running after a failed start"
                );
                self.error = None;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, attempts = self.start_attempts, "suricata still not available");
                self.error = Some(e.to_string());
                false
            }
        }
    }

    fn try_start(&mut self) -> Result<(), SuricataError> {
        self.start_attempts += 1;
        self.last_attempt = Instant::now();
        self.version = Some(version(&self.options.binary)?);
        let config = SuricataConfig::new(
            &self.options.dir,
            self.options.home_net.clone(),
            Input::UnixSocket,
        );
        let sup = SupervisorOptions {
            binary: self.options.binary.clone(),
            restart: RestartPolicy::OnFailure,
            backoff_initial: self.options.backoff_initial,
            backoff_max: self.options.backoff_max,
            grace: Duration::from_secs(5),
            ..SupervisorOptions::default()
        };
        self.server = Some(PcapServer::start_with(
            config,
            sup,
            self.options.ready_timeout,
        )?);
        Ok(())
    }

    /// Whether the server started (it may be restarting now).
    pub fn is_available(&self) -> bool {
        self.server.is_some()
    }

    /// The server, when it started.
    pub fn server(&self) -> Option<&PcapServer> {
        self.server.as_ref()
    }

    /// The options it runs with.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// Analyses `pcap` with its output in `out_dir` and returns its EVE events. Waits for a
    /// restarting server to be ready first.
    pub fn analyse(&mut self, pcap: &Path, out_dir: &Path) -> Result<Vec<Value>, SuricataError> {
        let Some(server) = &self.server else {
            return Err(SuricataError::Run {
                pcap: pcap.to_path_buf(),
                reason: format!(
                    "suricata is not running: {}",
                    self.error.as_deref().unwrap_or("it was not started")
                ),
            });
        };
        let r = server
            .supervisor()
            .wait_ready(self.options.ready_timeout)
            .and_then(|()| server.analyse(pcap, out_dir));
        match r {
            Ok(events) => {
                self.analyses += 1;
                self.analysis_events += events.len() as u64;
                self.analysis_alerts += events
                    .iter()
                    .filter(|e| e.get("event_type").and_then(Value::as_str) == Some("alert"))
                    .count() as u64;
                // The engine writes one `stats` event when a file is done: its counters
                // are that file's.
                if let Some(c) = events
                    .iter()
                    .rev()
                    .find(|e| e.get("event_type").and_then(Value::as_str) == Some("stats"))
                    .and_then(SuricataCounters::from_eve)
                {
                    self.packets_total += c.decoder_pkts;
                    self.alerts_total += c.alerts;
                    self.drops_total += c.kernel_drops;
                    self.last_counters = Some(c);
                }
                Ok(events)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Stops Suricata (SIGTERM, SIGKILL after the grace period); its final state, when it
    /// had started.
    pub fn stop(self) -> Option<super::SupervisorStats> {
        self.server.map(PcapServer::stop)
    }

    /// The node's state, with Suricata's counters read now over the command socket.
    pub fn status(&self) -> SuricataStatus {
        let mut s = SuricataStatus {
            enabled: true,
            binary: Some(self.options.binary.display().to_string()),
            version: self.version.clone(),
            error: self.error.clone(),
            analyses: self.analyses,
            eve_events: self.analysis_events,
            eve_alerts: self.analysis_alerts,
            dir: Some(self.options.dir.display().to_string()),
            packets_total: self.packets_total,
            alerts_total: self.alerts_total,
            drops_total: self.drops_total,
            start_attempts: self.start_attempts,
            ..SuricataStatus::disabled()
        };
        let Some(server) = &self.server else {
            return s;
        };
        let sup = server.supervisor();
        let st = sup.stats();
        s.running = st.running;
        s.pid = st.pid;
        s.starts = st.starts;
        s.restarts = st.restarts;
        s.last_exit = st.last_exit;
        s.uptime_ms = st.uptime_ms;
        s.eve_events += st.events;
        s.eve_alerts += st.alerts;
        if st.running {
            // A short timeout: the status must answer even when Suricata hangs.
            let dumped =
                CommandSocket::connect(&sup.config().socket_path(), Duration::from_secs(2))
                    .and_then(|mut c| c.command("dump-counters", None))
                    .and_then(|tree| {
                        SuricataCounters::from_tree(&tree).ok_or_else(|| {
                            SuricataError::CommandFailed {
                                command: "dump-counters".into(),
                                reply: tree.to_string(),
                            }
                        })
                    });
            match dumped {
                Ok(c) => {
                    s.counters = Some(c);
                    s.counters_source = Some("dump-counters".into());
                }
                Err(e) => s.counters_error = Some(e.to_string()),
            }
        } else {
            s.counters_error = Some("suricata is not running (restarting)".into());
        }
        if s.counters.is_none() && self.last_counters.is_some() {
            s.counters = self.last_counters;
            s.counters_source = Some("last-analysis".into());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_suricata_v() {
        assert_eq!(
            parse_version("This is Suricata version 7.0.10 RELEASE\n"),
            "7.0.10 RELEASE"
        );
        assert_eq!(parse_version(" odd \n"), "odd");
    }

    #[test]
    fn a_node_whose_binary_is_missing_says_why_and_analyses_nothing() {
        let dir = std::env::temp_dir().join(format!("shadownet-node-{}", std::process::id()));
        let mut node =
            SuricataNode::start(NodeOptions::new(Path::new("/nonexistent/suricata"), &dir));
        assert!(!node.is_available());
        let st = node.status();
        assert!(st.enabled && !st.running);
        assert!(
            st.error
                .as_deref()
                .is_some_and(|e| e.contains("/nonexistent/suricata")),
            "{st:?}"
        );
        let err = node
            .analyse(Path::new("/tmp/x.pcap"), &dir)
            .expect_err("nothing to analyse with");
        assert!(err.to_string().contains("not running"), "{err}");
        assert_eq!(node.status().analyses, 0);
        assert!(!SuricataStatus::disabled().enabled);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
