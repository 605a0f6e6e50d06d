//! `shadowctl traffic gen`: labelled traffic written as a capture, a label file and the
//! scenario that made them (see [`shadownet_host::analysis::trafficgen`]).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use clap::{Args, Subcommand};
use serde::Serialize;
use shadownet_capture::{CaptureError, PcapWriter};
use shadownet_host::analysis::trafficgen::{
    AttackSpec, LABELS_HEADER, Scenario, TrafficGenError, generate, label_line, parse_seconds,
};

/// Capture timestamps start here (2024-01-01T00:00:00Z), so tools show plausible dates;
/// frame `ts_ns` values are relative to it.
pub const EPOCH_NS: u64 = 1_704_067_200 * 1_000_000_000;

/// `shadowctl traffic ...`
#[derive(Debug, Subcommand)]
pub enum TrafficCommand {
    /// Generate labelled traffic: DIR/traffic.pcap, DIR/labels.csv, DIR/scenario.json.
    Gen(GenArgs),
}

/// Presets.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Preset {
    /// All six attacks at their default rates, staggered over the capture.
    Mixed,
}

/// `shadowctl traffic gen` options.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The scenario.
    #[command(flatten)]
    pub traffic: ScenarioArgs,
}

/// A scenario from a file or preset, with options that override its fields (shared by
/// `traffic gen` and `shadow loop`).
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Scenario file (TOML: seed, duration_s, subnet, hosts, benign_pps, `[mix]`, vlan,
    /// `[[attacks]]`).
    #[arg(long, conflicts_with = "preset")]
    pub scenario: Option<PathBuf>,
    /// A preset scenario.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Capture length (60, 60s, 2m, ...).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<f64>,
    /// Overlay subnet of the internal hosts (A.B.C.D/LEN).
    #[arg(long)]
    pub subnet: Option<String>,
    /// Number of internal hosts.
    #[arg(long)]
    pub hosts: Option<u32>,
    /// Benign frames per second.
    #[arg(long)]
    pub benign_pps: Option<f64>,
    /// 802.1Q VLAN id on every frame.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// An attack, added to the scenario's:
    /// CLASS[:start=S,duration=S,rate=PPS,attacker=IP,target=IP]. Classes: syn_flood,
    /// port_scan, dns_amplification, slowloris, beaconing, lateral_movement.
    #[arg(long = "attack", value_name = "CLASS[:KEY=VALUE,...]", value_parser = parse_attack)]
    pub attacks: Vec<AttackSpec>,
}

fn parse_duration(s: &str) -> Result<f64, String> {
    parse_seconds(s)
}

fn parse_attack(s: &str) -> Result<AttackSpec, String> {
    s.parse().map_err(|e: TrafficGenError| e.to_string())
}

/// Why `traffic gen` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] TrafficGenError),
    /// Reading the scenario file or writing an output.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing the capture.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrafficError + '_ {
    move |source| TrafficError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ScenarioArgs {
    /// The scenario these options describe.
    pub fn scenario(&self) -> Result<Scenario, TrafficError> {
        let mut s = match (&self.scenario, self.preset) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(io(path))?;
                Scenario::from_toml(&text).map_err(|e| match e {
                    TrafficGenError::Toml(m) => {
                        TrafficGenError::Toml(format!("{}: {m}", path.display()))
                    }
                    other => other,
                })?
            }
            (None, Some(Preset::Mixed)) => {
                Scenario::preset_mixed(self.seed.unwrap_or(1), self.duration.unwrap_or(120.0))
            }
            (None, None) => Scenario::default(),
        };
        if let Some(v) = self.seed {
            s.seed = v;
        }
        if let Some(v) = self.duration {
            s.duration_s = v;
        }
        if let Some(v) = &self.subnet {
            s.subnet = v.clone();
        }
        if let Some(v) = self.hosts {
            s.hosts = v;
        }
        if let Some(v) = self.benign_pps {
            s.benign_pps = v;
        }
        if self.vlan.is_some() {
            s.vlan = self.vlan;
        }
        s.attacks.extend(self.attacks.iter().cloned());
        s.validate()?;
        Ok(s)
    }
}

/// Frames and bytes of one label.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    /// Frames.
    pub frames: u64,
    /// Bytes of the frames.
    pub bytes: u64,
}

/// What `traffic gen` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GenSummary {
    /// Output files.
    pub pcap: PathBuf,
    /// The label file.
    pub labels: PathBuf,
    /// The scenario as run.
    pub scenario: PathBuf,
    /// Every frame.
    pub total: Count,
    /// Per label (`benign` and attack class names).
    pub per_label: BTreeMap<String, Count>,
    /// Benign frames per application.
    pub per_benign_class: BTreeMap<String, Count>,
}

impl GenSummary {
    /// The summary table.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "  {:<22} {:>12} {:>14}", "label", "frames", "bytes");
        let mut row = |name: &str, c: &Count| {
            let _ = writeln!(t, "  {name:<22} {:>12} {:>14}", c.frames, c.bytes);
        };
        for (k, c) in &self.per_label {
            row(k, c);
            if k == "benign" {
                for (b, c) in &self.per_benign_class {
                    row(&format!("  {b}"), c);
                }
            }
        }
        row("total", &self.total);
        let _ = writeln!(t, "  pcap      {}", self.pcap.display());
        let _ = writeln!(t, "  labels    {}", self.labels.display());
        let _ = writeln!(t, "  scenario  {}", self.scenario.display());
        t
    }
}

/// Generates `s` into `out`; `progress` is called now and then with the simulated time
/// reached (ns) and the frames written.
pub fn generate_files(
    s: &Scenario,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<GenSummary, TrafficError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let pcap = out.join("traffic.pcap");
    let labels = out.join("labels.csv");
    let scenario = out.join("scenario.json");
    let json = serde_json::to_string_pretty(s).map_err(|e| TrafficError::Io {
        path: scenario.clone(),
        source: e.into(),
    })?;
    std::fs::write(&scenario, json + "\n").map_err(io(&scenario))?;
    let frames = generate(s)?;
    let mut w = PcapWriter::create(&pcap, 65535)?;
    let file = File::create(&labels).map_err(io(&labels))?;
    let mut l = BufWriter::with_capacity(256 * 1024, file);
    writeln!(l, "{LABELS_HEADER}").map_err(io(&labels))?;
    let mut total = Count::default();
    let mut per_label: BTreeMap<String, Count> = BTreeMap::new();
    let mut per_benign_class: BTreeMap<String, Count> = BTreeMap::new();
    for (i, f) in frames.enumerate() {
        w.write(EPOCH_NS + f.ts_ns, &f.frame)?;
        writeln!(l, "{}", label_line(i as u64 + 1, EPOCH_NS, &f)).map_err(io(&labels))?;
        let n = f.frame.len() as u64;
        for c in [
            Some(&mut total),
            Some(per_label.entry(f.label.name().to_string()).or_default()),
            f.benign_class
                .map(|b| per_benign_class.entry(b.name().to_string()).or_default()),
        ]
        .into_iter()
        .flatten()
        {
            c.frames += 1;
            c.bytes += n;
        }
        if i % 4096 == 0 {
            progress(f.ts_ns, total.frames);
        }
    }
    w.finish()?;
    l.flush().map_err(io(&labels))?;
    Ok(GenSummary {
        pcap,
        labels,
        scenario,
        total,
        per_label,
        per_benign_class,
    })
}
