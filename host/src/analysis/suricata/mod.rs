//! Suricata 7 as a supervised analysis node of a shadow.
//!
//! - [`config`]: a Rust description of one instance rendered to a complete `suricata.yaml`
//!   (HOME_NET from the shadow's prefixes, our rules, EVE with alerts, flows, anomalies and
//!   stats, the command socket, AF_PACKET or capture-file input), checked with `suricata -T`.
//! - [`supervisor`]: the process started, watched, restarted with capped exponential backoff
//!   and stopped cleanly; its restarts, exits, uptime and Suricata's own counters exposed.
//! - [`tail`]: `eve.json` followed as it is written (complete lines only, rotation and
//!   truncation handled, resumable offset).
//! - [`socket`]: the command socket's JSON protocol (`dump-counters`, `pcap-file`, ...).
//! - [`counters`]: Suricata's counters from `stats` events and `dump-counters`.
//! - [`PcapServer`] and [`run_pcap`]: offline analysis of capture files.
//!
//! Live input comes through [`crate::analysis::netns`] (a veth into a namespace where
//! Suricata captures), offline input from [`crate::analysis::decap`] (the shadow's copies
//! decapsulated to a capture). EVE events cross this boundary as `serde_json::Value`.

pub mod config;
pub mod counters;
pub mod node;
pub mod socket;
pub mod supervisor;
pub mod tail;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use thiserror::Error;

pub use config::{DetectProfile, Input, SuricataConfig};
pub use counters::SuricataCounters;
pub use node::{NodeOptions, SuricataNode, SuricataStatus};
pub use supervisor::{RestartPolicy, Supervisor, SupervisorOptions, SupervisorStats};
pub use tail::{EveFollower, EveTail, TailStats};

/// What went wrong running Suricata.
#[derive(Debug, Error)]
pub enum SuricataError {
    /// A configuration field is invalid.
    #[error("suricata configuration: {field}: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `suricata -T` rejected the generated configuration or the rules.
    #[error("suricata rejected {path}: {output}")]
    ConfigRejected {
        /// The configuration file.
        path: PathBuf,
        /// What Suricata printed.
        output: String,
    },
    /// The binary could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The command socket could not be used.
    #[error("command socket {path}: {reason}")]
    Socket {
        /// The socket.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A command was answered with `NOK` or something unexpected.
    #[error("command `{command}` failed: {reply}")]
    CommandFailed {
        /// The command.
        command: String,
        /// Suricata's reply.
        reply: String,
    },
    /// The instance did not become ready.
    #[error("suricata is not ready: {reason} (state: {stats:?})")]
    NotReady {
        /// Why.
        reason: String,
        /// The supervisor's state at that moment.
        stats: Box<SupervisorStats>,
    },
    /// A run over a capture failed.
    #[error("suricata on {pcap}: {reason}")]
    Run {
        /// The capture.
        pcap: PathBuf,
        /// What happened.
        reason: String,
    },
}

impl SuricataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SuricataError {
        SuricataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a whole EVE file (complete lines; a missing file is empty).
pub fn read_eve(path: &Path) -> Result<Vec<Value>, SuricataError> {
    let mut events = Vec::new();
    EveTail::new(path, 0).poll(&mut |v| events.push(v))?;
    Ok(events)
}

/// Runs Suricata once over `pcap` (`-r`) with a configuration in `dir` and returns its EVE
/// events.
pub fn run_pcap(
    binary: &Path,
    dir: &Path,
    home_net: Vec<String>,
    pcap: &Path,
) -> Result<Vec<Value>, SuricataError> {
    let config = SuricataConfig::new(
        dir,
        home_net,
        Input::PcapFile {
            path: pcap.to_path_buf(),
        },
    );
    config.write()?;
    let out = std::process::Command::new(binary)
        .args(config.args())
        .output()
        .map_err(|e| SuricataError::Spawn {
            binary: binary.to_path_buf(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(SuricataError::Run {
            pcap: pcap.to_path_buf(),
            reason: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    read_eve(&config.eve_path())
}

/// One Suricata in unix-socket mode that analyses capture files one after the other with
/// its rules loaded once: far cheaper than a start per capture.
#[derive(Debug)]
pub struct PcapServer {
    supervisor: Supervisor,
}

impl PcapServer {
    /// Starts the server with a configuration in `dir` and waits until its socket answers.
    pub fn start(
        binary: &Path,
        dir: &Path,
        home_net: Vec<String>,
    ) -> Result<PcapServer, SuricataError> {
        let config = SuricataConfig::new(dir, home_net, Input::UnixSocket);
        let options = SupervisorOptions {
            binary: binary.to_path_buf(),
            restart: RestartPolicy::OnFailure,
            grace: Duration::from_secs(5),
            ..SupervisorOptions::default()
        };
        PcapServer::start_with(config, options, Duration::from_secs(60))
    }

    /// Starts the server with `config` (its input must be [`Input::UnixSocket`]) supervised
    /// as `options` say, and waits up to `ready` until its socket answers.
    pub fn start_with(
        config: SuricataConfig,
        options: SupervisorOptions,
        ready: Duration,
    ) -> Result<PcapServer, SuricataError> {
        if !matches!(config.input, Input::UnixSocket) {
            return Err(SuricataError::Config {
                field: "input".into(),
                reason: "a capture-file server reads its files from the command socket".into(),
            });
        }
        let supervisor = Supervisor::start(config, options, Box::new(|_| {}))?;
        supervisor.wait_ready(ready)?;
        Ok(PcapServer { supervisor })
    }

    /// The supervisor running the server.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Analyses `pcap` with its output in `out_dir` (created) and returns its EVE events.
    pub fn analyse(&self, pcap: &Path, out_dir: &Path) -> Result<Vec<Value>, SuricataError> {
        std::fs::create_dir_all(out_dir).map_err(|e| SuricataError::io(out_dir, e))?;
        let pcap = std::fs::canonicalize(pcap).map_err(|e| SuricataError::io(pcap, e))?;
        let out_abs = std::fs::canonicalize(out_dir).map_err(|e| SuricataError::io(out_dir, e))?;
        self.supervisor.command(
            "pcap-file",
            Some(json!({
                "filename": pcap.to_string_lossy(),
                "output-dir": out_abs.to_string_lossy(),
            })),
        )?;
        // The file is queued when the command returns; the engine takes it off the queue and
        // names it current in one step, and clears it only after its outputs are closed.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let queued = self.supervisor.command("pcap-file-number", None)?;
            let current = self.supervisor.command("pcap-current", None)?;
            if queued == json!(0) && current == json!("None") {
                break;
            }
            if Instant::now() >= deadline {
                return Err(SuricataError::Run {
                    pcap: pcap.clone(),
                    reason: "not processed within 120 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        read_eve(&out_abs.join(config::EVE_FILE))
    }

    /// Stops the server.
    pub fn stop(self) -> SupervisorStats {
        self.supervisor.stop()
    }
}
