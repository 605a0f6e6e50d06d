//! `shadownetd`: the shadownet daemon. Started with no arguments it powers on the simulated
//! NIC, opens (or creates) its store in `./shadownet-data`, reconciles the NIC from the store,
//! and serves the API on 127.0.0.1:7878.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use shadownet_host::{
    analysis::suricata::{NodeOptions, SuricataNode},
    api::{ApiState, Handle, router},
    control::{Controller, system_clock, token_hash},
    driver::{Nic, PortConfig, sim::SimDevice},
    store::Store,
};
use shadownet_hw::{layout::Mac, timing::Timing};
use shadownet_sim::NicModel;

/// The shadownet daemon.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address the API listens on. Anything but loopback exposes the API to the network.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Directory of the store, the admin token and simulator output.
    #[arg(long, default_value = "shadownet-data")]
    data_dir: PathBuf,
    /// This NIC's substrate address.
    #[arg(long, default_value = "10.0.0.1")]
    substrate_ip: IpAddr,
    /// This NIC's substrate MAC.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    substrate_mac: String,
    /// File holding the admin token (created with a random token when missing; default
    /// `<data-dir>/admin.token`).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// How often shadows are checked for expiry, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    expiry_interval_ms: u64,
    /// Supervise a Suricata (unix-socket mode, in `<data-dir>/suricata`) that analyses the
    /// shadow's traffic of every loop run; its alerts become findings. When it cannot start
    /// the daemon runs without it and says so in `GET /v1/analysis/suricata`.
    #[arg(long)]
    suricata: bool,
    /// The Suricata binary (implies `--suricata`).
    #[arg(long)]
    suricata_binary: Option<PathBuf>,
    /// Suricata's HOME_NET, comma-separated prefixes (default the private and unique-local
    /// ranges).
    #[arg(long, value_delimiter = ',')]
    suricata_home_net: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn admin_token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_string();
            if t.len() < 16 {
                bail!(
                    "{}: the admin token is shorter than 16 characters",
                    path.display()
                );
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = shadownet_host::control::new_token();
            write_private(path, &t).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "created the admin token");
            Ok(t)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

async fn serve(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let token_path = args
        .admin_token_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("admin.token"));
    let admin = admin_token(&token_path)?;
    let mac: Mac = args
        .substrate_mac
        .parse()
        .map_err(|e| anyhow::anyhow!("--substrate-mac '{}': {e}", args.substrate_mac))?;
    let mut port = PortConfig {
        local_mac: mac,
        ..PortConfig::default()
    };
    match args.substrate_ip {
        IpAddr::V4(a) => port.local_ipv4 = Some(a),
        IpAddr::V6(a) => port.local_ipv6 = Some(a),
    }
    let data_dir = args.data_dir.clone();
    let suricata = (args.suricata || args.suricata_binary.is_some()).then(|| {
        let binary = args
            .suricata_binary
            .clone()
            .unwrap_or_else(|| PathBuf::from("suricata"));
        let mut o = NodeOptions::new(&binary, &args.data_dir.join("suricata"));
        if !args.suricata_home_net.is_empty() {
            o.home_net.clone_from(&args.suricata_home_net);
        }
        o
    });
    let ctl = Handle::spawn(move || -> anyhow::Result<Controller<SimDevice>> {
        let store = Store::open(&data_dir)?;
        let model = NicModel::new(Timing::DEFAULT).context("powering on the simulated NIC")?;
        let nic = Nic::open(SimDevice::new(model)).context("opening the simulated NIC")?;
        let (mut c, drift) = Controller::start(store, nic, port, Arc::new(system_clock))
            .context("reconciling the NIC from the store")?;
        if drift.is_empty() {
            tracing::info!("the NIC matched the store");
        } else {
            tracing::warn!(%drift, "the NIC differed from the store; reprogrammed it");
        }
        c.set_sim_out(data_dir.join("sim-out"));
        if let Some(o) = suricata {
            // Logs a warning and keeps the reason when Suricata cannot start.
            c.set_suricata(SuricataNode::start(o));
        }
        Ok(c)
    })?;

    // Expiry: the times are in the store, so a restart picks up where it left off.
    let timer = ctl.clone();
    let every = Duration::from_millis(args.expiry_interval_ms.max(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match timer.call(|c| c.watch_nic()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "rebuilding the NIC after a reset"),
                Err(_) => break,
                Ok(Ok(_)) => {}
            }
            match timer.call(|c| c.expire_due()).await {
                Ok(Ok(done)) => {
                    for t in done {
                        tracing::info!(shadow = %t.shadow, reason = %t.reason, removed = t.entries_removed, "shadow torn down");
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "expiring shadows"),
                Err(_) => break,
            }
        }
    });

    let state = ApiState {
        ctl,
        admin_token_hash: token_hash(&admin),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "the API listens beyond loopback");
    }
    // Tests and scripts find the address (and a port chosen by the OS) here.
    std::fs::write(args.data_dir.join("listen.addr"), bound.to_string())
        .with_context(|| format!("writing {}", args.data_dir.join("listen.addr").display()))?;
    tracing::info!(%bound, data = %args.data_dir.display(), token = %token_path.display(), "shadownetd serving /v1/");
    let stopper = state.ctl.clone();
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving the API");
    // Suricata is a child process: it would outlive the daemon if not stopped here.
    if let Ok(Some(node)) = stopper.call(|c| c.take_suricata()).await {
        let stats = tokio::task::spawn_blocking(move || node.stop()).await;
        tracing::info!(?stats, "suricata stopped");
    }
    served?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. Every acknowledged change is already durable, so stopping
/// only ends the connections in flight.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
