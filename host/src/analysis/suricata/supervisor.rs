//! Supervising a Suricata process: start, watch, restart with capped exponential backoff,
//! stop cleanly, and expose its state and counters.
//!
//! A monitor thread owns the child. When the child exits and the restart policy says so, it
//! is started again after a delay that doubles from `backoff_initial` up to `backoff_max`
//! and falls back to `backoff_initial` after a run longer than `stable_after`. An EVE
//! follower thread reads `eve.json` as it is written, for the supervisor's whole life (across
//! restarts Suricata appends to the same file, so nothing is read twice or missed), takes
//! Suricata's counters from `stats` events and hands every event to the caller.

use std::{
    fs::OpenOptions,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;

use super::{
    SuricataError,
    config::{Input, SuricataConfig},
    counters::SuricataCounters,
    socket::CommandSocket,
    tail::EveFollower,
};
use crate::analysis::sys::{Signal, signal};

/// When the supervisor starts Suricata again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// After every exit (a live node).
    Always,
    /// After an exit with an error or a signal (a capture read to its end is done).
    OnFailure,
    /// Never: one run.
    Never,
}

/// How a Suricata process is supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorOptions {
    /// The Suricata binary.
    pub binary: PathBuf,
    /// Network namespace to run it in (`ip netns exec NS suricata ...`).
    pub netns: Option<String>,
    /// When to restart.
    pub restart: RestartPolicy,
    /// First delay before a restart.
    pub backoff_initial: Duration,
    /// Longest delay before a restart.
    pub backoff_max: Duration,
    /// A run at least this long resets the delay to `backoff_initial`.
    pub stable_after: Duration,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// How often the EVE file is read.
    pub eve_poll: Duration,
    /// Offset in `eve.json` to start reading at (0: from the start; an offset from
    /// [`SupervisorStats::eve_offset`] to resume).
    pub eve_offset: u64,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            binary: PathBuf::from("suricata"),
            netns: None,
            restart: RestartPolicy::Always,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            eve_poll: Duration::from_millis(50),
            eve_offset: 0,
        }
    }
}

/// How a run of Suricata ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// How long that run lasted, milliseconds.
    pub ran_ms: u64,
    /// Whether the supervisor asked it to stop.
    pub requested: bool,
}

impl ExitInfo {
    fn new(status: ExitStatus, ran: Duration, requested: bool) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
            ran_ms: u64::try_from(ran.as_millis()).unwrap_or(u64::MAX),
            requested,
        }
    }

    /// Whether the run ended well (exit code 0, or stopped on request).
    pub fn success(&self) -> bool {
        self.code == Some(0) || self.requested
    }
}

/// A snapshot of a supervised instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorStats {
    /// Whether a Suricata process runs now.
    pub running: bool,
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
    /// Whether the supervisor gave up or finished (policy said no restart, or stopped).
    pub finished: bool,
    /// EVE events read, all types.
    pub events: u64,
    /// EVE `alert` events read.
    pub alerts: u64,
    /// EVE `stats` events read.
    pub stats_events: u64,
    /// Suricata's counters from the last `stats` event.
    pub counters: SuricataCounters,
    /// Offset in `eve.json` after the last event read.
    pub eve_offset: u64,
}

#[derive(Debug, Default)]
struct State {
    stop: bool,
    pid: Option<u32>,
    started_at: Option<Instant>,
    starts: u64,
    restarts: u64,
    last_exit: Option<ExitInfo>,
    finished: bool,
    events: u64,
    alerts: u64,
    stats_events: u64,
    /// `stats_events` when the current process started: readiness wants a newer one.
    stats_at_start: u64,
    counters: SuricataCounters,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A supervised Suricata instance. Dropping it stops Suricata.
#[derive(Debug)]
pub struct Supervisor {
    config: SuricataConfig,
    options: SupervisorOptions,
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
    follower: Option<EveFollower>,
}

impl Supervisor {
    /// Writes the configuration, starts Suricata and the EVE follower. `on_event` gets every
    /// EVE event, on the follower's thread. An error starting the first process is returned
    /// here; later failures are restarts.
    pub fn start(
        config: SuricataConfig,
        options: SupervisorOptions,
        mut on_event: Box<dyn FnMut(Value) + Send>,
    ) -> Result<Supervisor, SuricataError> {
        config.write()?;
        let shared = Arc::new(Shared::default());
        let child = spawn(&config, &options)?;
        {
            let mut s = shared.lock();
            s.pid = Some(child.id());
            s.started_at = Some(Instant::now());
            s.starts = 1;
        }
        tracing::info!(pid = child.id(), config = %config.config_path().display(), "suricata started");
        let ev_shared = shared.clone();
        let follower = EveFollower::spawn(
            &config.eve_path(),
            options.eve_offset,
            options.eve_poll,
            Box::new(move |event: Value| {
                {
                    let mut s = ev_shared.lock();
                    s.events += 1;
                    match event.get("event_type").and_then(Value::as_str) {
                        Some("alert") => s.alerts += 1,
                        Some("stats") => {
                            s.stats_events += 1;
                            if let Some(c) = SuricataCounters::from_eve(&event) {
                                let samples = s.counters.samples + 1;
                                s.counters = SuricataCounters { samples, ..c };
                            }
                        }
                        _ => {}
                    }
                }
                ev_shared.cv.notify_all();
                on_event(event);
            }),
        )?;
        let (m_shared, m_config, m_options) = (shared.clone(), config.clone(), options.clone());
        let monitor = std::thread::Builder::new()
            .name("suricata-supervisor".into())
            .spawn(move || monitor(child, &m_shared, &m_config, &m_options))
            .map_err(|e| SuricataError::io(&config.run_dir, e))?;
        Ok(Supervisor {
            config,
            options,
            shared,
            monitor: Some(monitor),
            follower: Some(follower),
        })
    }

    /// The configuration this instance runs.
    pub fn config(&self) -> &SuricataConfig {
        &self.config
    }

    /// How it is supervised.
    pub fn options(&self) -> &SupervisorOptions {
        &self.options
    }

    /// A snapshot of the instance.
    pub fn stats(&self) -> SupervisorStats {
        let eve_offset = self.follower.as_ref().map_or(0, EveFollower::offset);
        let s = self.shared.lock();
        SupervisorStats {
            running: s.pid.is_some(),
            pid: s.pid,
            starts: s.starts,
            restarts: s.restarts,
            last_exit: s.last_exit.clone(),
            uptime_ms: s
                .started_at
                .filter(|_| s.pid.is_some())
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            finished: s.finished,
            events: s.events,
            alerts: s.alerts,
            stats_events: s.stats_events,
            counters: s.counters,
            eve_offset,
        }
    }

    /// Waits until the running process is ready: its command socket answers and (for a
    /// capturing instance) it has written a `stats` event since it started, which it does
    /// only once its capture threads run.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), SuricataError> {
        let deadline = Instant::now() + timeout;
        let needs_stats = !matches!(self.config.input, Input::UnixSocket);
        loop {
            let (running, stats_ok, finished) = {
                let s = self.shared.lock();
                (
                    s.pid.is_some(),
                    s.stats_events > s.stats_at_start,
                    s.finished,
                )
            };
            if finished {
                return Err(SuricataError::NotReady {
                    reason: "suricata exited and is not restarted".into(),
                    stats: Box::new(self.stats()),
                });
            }
            if running
                && (stats_ok || !needs_stats)
                && CommandSocket::connect(&self.config.socket_path(), Duration::from_secs(2))
                    .and_then(|mut c| c.command("uptime", None))
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SuricataError::NotReady {
                    reason: format!("not ready within {timeout:?}"),
                    stats: Box::new(self.stats()),
                });
            }
            let s = self.shared.lock();
            let _ = self
                .shared
                .cv
                .wait_timeout(s, Duration::from_millis(100))
                .map_err(|_| ());
        }
    }

    /// Runs a command on the instance's command socket.
    pub fn command(&self, name: &str, arguments: Option<Value>) -> Result<Value, SuricataError> {
        CommandSocket::connect(&self.config.socket_path(), Duration::from_secs(10))?
            .command(name, arguments)
    }

    /// Suricata's counters now, from `dump-counters` on the command socket.
    pub fn dump_counters(&self) -> Result<SuricataCounters, SuricataError> {
        let tree = self.command("dump-counters", None)?;
        SuricataCounters::from_tree(&tree).ok_or_else(|| SuricataError::CommandFailed {
            command: "dump-counters".into(),
            reply: tree.to_string(),
        })
    }

    /// Waits until the supervisor has finished (the process exited and the policy does not
    /// restart it); returns how the last run ended, or `None` on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> Option<ExitInfo> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        while !s.finished {
            let left = deadline.checked_duration_since(Instant::now())?;
            s = self
                .shared
                .cv
                .wait_timeout(s, left.min(Duration::from_millis(100)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        s.last_exit.clone()
    }

    /// Stops Suricata (SIGTERM, SIGKILL after the grace period), reads what it wrote to EVE
    /// to the end, and returns the final state.
    pub fn stop(mut self) -> SupervisorStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> SupervisorStats {
        {
            let mut s = self.shared.lock();
            s.stop = true;
        }
        self.shared.cv.notify_all();
        if let Some(m) = self.monitor.take()
            && m.join().is_err()
        {
            tracing::error!("the supervisor thread panicked");
        }
        let mut stats = self.stats();
        if let Some(f) = self.follower.take() {
            let (offset, _) = f.stop();
            stats = self.stats();
            stats.eve_offset = offset;
        }
        stats
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.monitor.is_some() || self.follower.is_some() {
            self.shutdown();
        }
    }
}

fn spawn(config: &SuricataConfig, options: &SupervisorOptions) -> Result<Child, SuricataError> {
    // A socket file left by a killed run would make Suricata refuse to create its own.
    let sock = config.socket_path();
    if sock.exists() {
        std::fs::remove_file(&sock).map_err(|e| SuricataError::io(&sock, e))?;
    }
    let log = config.log_dir.join("suricata.stderr");
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| SuricataError::io(&log, e))
    };
    let mut cmd = match &options.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&options.binary);
            c
        }
        None => Command::new(&options.binary),
    };
    cmd.args(config.args())
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?);
    cmd.spawn().map_err(|e| SuricataError::Spawn {
        binary: options.binary.clone(),
        source: e,
    })
}

/// Waits for the child to exit or a stop request; returns the exit status and whether the
/// stop was requested.
fn watch(child: &mut Child, shared: &Shared, grace: Duration) -> (Option<ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "waiting for suricata");
                return (None, false);
            }
        }
        let s = shared.lock();
        if s.stop {
            drop(s);
            return (terminate(child, grace), true);
        }
        let _ = shared.cv.wait_timeout(s, Duration::from_millis(50));
    }
}

fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Err(e) = signal(child.id(), Signal::Term) {
        tracing::warn!(error = %e, "SIGTERM to suricata");
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(
        pid = child.id(),
        ?grace,
        "suricata ignored SIGTERM; killing it"
    );
    if let Err(e) = signal(child.id(), Signal::Kill) {
        tracing::warn!(error = %e, "SIGKILL to suricata");
    }
    child.wait().ok()
}

fn monitor(
    mut child: Child,
    shared: &Shared,
    config: &SuricataConfig,
    options: &SupervisorOptions,
) {
    let mut delay = options.backoff_initial;
    let mut started = Instant::now();
    loop {
        let (status, requested) = watch(&mut child, shared, options.grace);
        let ran = started.elapsed();
        let exit = status.map(|st| ExitInfo::new(st, ran, requested));
        let again = {
            let mut s = shared.lock();
            s.pid = None;
            s.started_at = None;
            s.last_exit.clone_from(&exit);
            let failed = exit.as_ref().is_none_or(|e| !e.success());
            let again = !s.stop
                && match options.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => failed,
                    RestartPolicy::Never => false,
                };
            if !again {
                s.finished = true;
            }
            again
        };
        shared.cv.notify_all();
        tracing::info!(?exit, restart = again, "suricata exited");
        if !again {
            return;
        }
        if ran >= options.stable_after {
            delay = options.backoff_initial;
        }
        // Start again after the delay, unless told to stop meanwhile; a failed spawn counts
        // as a run that ended at once.
        loop {
            let wait_until = Instant::now() + delay;
            delay = (delay * 2).min(options.backoff_max);
            {
                let mut s = shared.lock();
                while !s.stop {
                    let Some(left) = wait_until.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    s = shared
                        .cv
                        .wait_timeout(s, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                if s.stop {
                    s.finished = true;
                    drop(s);
                    shared.cv.notify_all();
                    return;
                }
            }
            match spawn(config, options) {
                Ok(c) => {
                    child = c;
                    started = Instant::now();
                    let mut s = shared.lock();
                    s.pid = Some(child.id());
                    s.started_at = Some(started);
                    s.starts += 1;
                    s.restarts += 1;
                    s.stats_at_start = s.stats_events;
                    tracing::info!(
                        pid = child.id(),
                        restarts = s.restarts,
                        "suricata restarted"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "restarting suricata");
                    let mut s = shared.lock();
                    s.restarts += 1;
                }
            }
        }
        shared.cv.notify_all();
    }
}
