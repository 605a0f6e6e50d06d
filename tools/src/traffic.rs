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
use shadownet_capture::{CaptureError, CaptureReader, PcapWriter};
use shadownet_host::analysis::detector::DetectorConfig;
use shadownet_host::analysis::quality::{Evaluation, Evaluator};
use shadownet_host::analysis::trafficgen::{
    AttackSpec, LABELS_HEADER, LabelsError, Scenario, TrafficGenError, generate, label_line,
    parse_labels, parse_seconds,
};

/// Capture timestamps start here (2024-01-01T00:00:00Z), so tools show plausible dates;
/// frame `ts_ns` values are relative to it.
pub const EPOCH_NS: u64 = 1_704_067_200 * 1_000_000_000;

/// `shadowctl traffic ...`
#[derive(Debug, Subcommand)]
pub enum TrafficCommand {
    /// Generate labelled traffic: DIR/traffic.pcap, DIR/labels.csv, DIR/scenario.json.
    Gen(GenArgs),
    /// Score a labelled capture with the built-in detector and report its quality: ROC AUC
    /// per attack class, false-positive and detection rates at the alert threshold, time
    /// to the first detection.
    Eval(EvalArgs),
}

/// `shadowctl traffic eval` options.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The capture (pcap or pcapng).
    #[arg(long)]
    pub pcap: PathBuf,
    /// Its ground truth: `labels.csv` as `traffic gen` writes it, one row per frame.
    #[arg(long)]
    pub labels: PathBuf,
    /// Seconds the detector learns before it scores (from the first frame).
    #[arg(long, default_value_t = 60.0)]
    pub baseline: f64,
    /// Alert threshold the rates are measured at (default the detector's).
    #[arg(long)]
    pub threshold: Option<f32>,
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

/// Why `traffic gen` or `traffic eval` failed.
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
    /// Reading or writing a capture.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A labels file does not parse.
    #[error("{}: {problem}", path.display())]
    Labels {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong with it.
        problem: LabelsError,
    },
    /// A labels file does not have one row per frame of its capture.
    #[error("{}: {rows} rows, but {} has {frames} frames (labels go with the capture they were written with)", labels.display(), pcap.display())]
    LabelCount {
        /// The labels file.
        labels: PathBuf,
        /// Its rows.
        rows: usize,
        /// The capture.
        pcap: PathBuf,
        /// Its frames.
        frames: String,
    },
    /// The detector's configuration is refused.
    #[error("{0}")]
    Detector(String),
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

/// What `traffic eval` measured, and on what.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    /// The capture.
    pub pcap: PathBuf,
    /// Its labels.
    pub labels: PathBuf,
    /// Seconds of baseline.
    pub baseline_s: f64,
    /// The figures.
    pub evaluation: Evaluation,
}

impl EvalSummary {
    /// The quality table.
    pub fn render(&self) -> String {
        let e = &self.evaluation;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} frames: {} while learning ({} s), {} unread; threshold {}",
            e.frames, e.learning, self.baseline_s, e.unread, e.threshold
        );
        let _ = writeln!(
            t,
            "benign: {} scored, {} false positives ({:.4}%)",
            e.benign_scored,
            e.false_positives,
            100.0 * e.false_positive_rate()
        );
        let _ = writeln!(
            t,
            "  {:<20} {:>9} {:>8} {:>10} {:>16}",
            "class", "scored", "AUC", "detected", "first detected"
        );
        for (c, q) in &e.classes {
            let auc = q.auc.map_or("-".to_string(), |a| format!("{a:.4}"));
            let first = q
                .first_detection_s
                .map_or("never".to_string(), |s| format!("after {s:.3} s"));
            let _ = writeln!(
                t,
                "  {:<20} {:>9} {auc:>8} {:>9.1}% {first:>16}",
                c.name(),
                q.scored,
                100.0 * q.detected as f64 / q.scored.max(1) as f64
            );
        }
        if e.classes.is_empty() {
            let _ = writeln!(t, "  (no attack frames after the baseline)");
        }
        t
    }
}

/// Scores the capture at `pcap` with its labels at `labels` (see [`Evaluator`]);
/// `progress` is called now and then with the frames read.
pub fn evaluate_files(
    pcap: &Path,
    labels: &Path,
    cfg: DetectorConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<EvalSummary, TrafficError> {
    let text = std::fs::read_to_string(labels).map_err(io(labels))?;
    let truth = parse_labels(&text).map_err(|problem| TrafficError::Labels {
        path: labels.to_path_buf(),
        problem,
    })?;
    let baseline_s = cfg.baseline_s;
    let mut ev = Evaluator::new(cfg).map_err(|e| TrafficError::Detector(e.to_string()))?;
    let mut r = CaptureReader::open(pcap)?;
    let mut buf = Vec::new();
    let mut n = 0usize;
    while let Some(rec) = r.next_into(&mut buf) {
        let ts = rec?.timestamp_ns;
        let Some(label) = truth.get(n) else {
            return Err(TrafficError::LabelCount {
                labels: labels.to_path_buf(),
                rows: truth.len(),
                pcap: pcap.to_path_buf(),
                frames: format!("more than {}", truth.len()),
            });
        };
        ev.frame(ts, &buf, *label);
        n += 1;
        if n.is_multiple_of(4096) {
            progress(n as u64);
        }
    }
    if n != truth.len() {
        return Err(TrafficError::LabelCount {
            labels: labels.to_path_buf(),
            rows: truth.len(),
            pcap: pcap.to_path_buf(),
            frames: n.to_string(),
        });
    }
    Ok(EvalSummary {
        pcap: pcap.to_path_buf(),
        labels: labels.to_path_buf(),
        baseline_s,
        evaluation: ev.finish(),
    })
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
