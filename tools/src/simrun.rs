//! `shadowctl sim run`: program the simulated NIC from a network description through the
//! driver, feed capture files into its ports, write one capture per egress port and a
//! `summary.json`.

use std::{
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
    str::FromStr,
};

use shadownet_host::{
    driver::{DriverError, Nic, sim::SimDevice},
    netdesc::{DescError, Plan},
};
use shadownet_hw::{Port, table::TableId, timing::Timing};
use shadownet_sim::{
    ModelError, NicModel,
    run::{Input, Pacing, PcapSink, RunError},
};

use crate::summary::{InputSummary, OutputSummary, Sources, Summary};

/// A capture to feed, as given on the command line: `[PORT=]FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Port name (`uplink`, `pf`, `vfN` or a local VM's name); `None`: the uplink.
    pub port: Option<String>,
    /// The capture.
    pub path: PathBuf,
}

impl FromStr for InputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<InputSpec, String> {
        if s.is_empty() {
            return Err("empty capture argument".to_string());
        }
        // `PORT=FILE` unless the part before '=' looks like a path.
        match s.split_once('=') {
            Some((port, path)) if !port.is_empty() && !port.contains('/') => {
                if path.is_empty() {
                    return Err(format!("'{s}': no capture file after '='"));
                }
                Ok(InputSpec {
                    port: Some(port.to_string()),
                    path: PathBuf::from(path),
                })
            }
            _ => Ok(InputSpec {
                port: None,
                path: PathBuf::from(s),
            }),
        }
    }
}

/// Parses pacing: `line` (100% of line rate), `line:PERCENT`, or `timestamps`.
pub fn parse_pacing(s: &str) -> Result<Pacing, String> {
    match s {
        "line" => Ok(Pacing::LineRate { percent: 100 }),
        "timestamps" | "pcap" => Ok(Pacing::Timestamps),
        _ => match s
            .strip_prefix("line:")
            .map(|p| p.trim_end_matches('%').parse::<u32>())
        {
            Some(Ok(p)) if (1..=100).contains(&p) => Ok(Pacing::LineRate { percent: p }),
            _ => Err(format!(
                "pacing '{s}' is not 'line', 'line:PERCENT' (1-100) or 'timestamps'"
            )),
        },
    }
}

/// What a run needs.
#[derive(Clone, Debug)]
pub struct SimRunOptions {
    /// Network description.
    pub config: PathBuf,
    /// Captures to feed.
    pub inputs: Vec<InputSpec>,
    /// Output directory.
    pub out: PathBuf,
    /// Pacing of the inputs.
    pub pacing: Pacing,
    /// Write `trace.jsonl` with one line per packet event.
    pub trace: bool,
    /// The model's timing.
    pub timing: Timing,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimRunError {
    /// The description is unusable.
    #[error(transparent)]
    Description(#[from] DescError),
    /// A capture names a port the description does not have.
    #[error("--pcap {arg}: no port named '{name}' (ports: {known})")]
    UnknownPort {
        /// The argument.
        arg: String,
        /// The name.
        name: String,
        /// Names that exist.
        known: String,
    },
    /// A capture file does not exist.
    #[error("--pcap {}: no such file", path.display())]
    NoCapture {
        /// The file.
        path: PathBuf,
    },
    /// No captures given.
    #[error("no captures given (--pcap [PORT=]FILE)")]
    NoInputs,
    /// The model could not be made.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Feeding or writing captures failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> SimRunError + '_ {
    move |source| SimRunError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the simulator; `progress` is told frames and bytes fed so far.
pub fn sim_run(
    opts: &SimRunOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, SimRunError> {
    let plan = Plan::from_path(&opts.config)?;
    if opts.inputs.is_empty() {
        return Err(SimRunError::NoInputs);
    }
    let mut inputs = Vec::new();
    for spec in &opts.inputs {
        let port = match &spec.port {
            None => Port::Uplink,
            Some(name) => plan
                .port_named(name)
                .ok_or_else(|| SimRunError::UnknownPort {
                    arg: format!("{name}={}", spec.path.display()),
                    name: name.clone(),
                    known: known_ports(&plan),
                })?,
        };
        if !spec.path.is_file() {
            return Err(SimRunError::NoCapture {
                path: spec.path.clone(),
            });
        }
        inputs.push(Input {
            port,
            path: spec.path.clone(),
        });
    }

    let mut model = NicModel::new(opts.timing)?;
    std::fs::create_dir_all(&opts.out).map_err(write_err(&opts.out))?;
    if opts.trace {
        let path = opts.out.join("trace.jsonl");
        let f = File::create(&path).map_err(write_err(&path))?;
        model.set_trace(Box::new(BufWriter::new(f)), false);
    }
    let mut nic = Nic::open(SimDevice::new(model))?;
    plan.apply(&mut nic, opts.trace)?;

    let mut out_ports = vec![Port::Uplink, Port::Pf];
    out_ports.extend(plan.local_ports.iter().map(|p| p.port));
    let mut sink = PcapSink::new(&opts.out, &out_ports)?;
    let reports = {
        let mut model = nic.device().model();
        let r = shadownet_sim::run::run(&mut model, &inputs, opts.pacing, &mut sink, progress)?;
        model
            .finish_trace()
            .map_err(write_err(&opts.out.join("trace.jsonl")))?;
        r
    };
    let written = sink.finish()?;
    for (input, report) in inputs.iter().zip(&reports) {
        if let Some(damage) = &report.damaged {
            tracing::warn!(capture = %input.path.display(), %damage, "capture damaged: reading stopped early");
        }
        if report.gaps_shortened > 0 {
            tracing::info!(
                capture = %input.path.display(),
                gaps = report.gaps_shortened,
                "idle gaps longer than 1 s shortened to 1 s"
            );
        }
    }

    // Counters and occupancy are read back through the driver, as on hardware.
    let counters = nic.snapshot_counters()?;
    let identity = nic.identify();
    let occupancy = TableId::ALL
        .iter()
        .map(|&t| (t, nic.occupancy(t)))
        .collect();
    let model = nic.device().model();
    let label = |p: Port| plan.port_label(p);
    let summary = Summary::build(Sources {
        config: opts.config.display().to_string(),
        identity: &identity,
        counters: &counters,
        occupancy,
        stats: model.stats(),
        pacing: match opts.pacing {
            Pacing::LineRate { percent } => {
                format!("inputs back to back at {percent}% of line rate")
            }
            Pacing::Timestamps => "inputs at their capture timestamps".to_string(),
        },
        inputs: inputs
            .iter()
            .zip(&reports)
            .map(|(i, r)| InputSummary {
                port: label(i.port),
                path: i.path.display().to_string(),
                frames: r.frames,
                bytes: r.bytes,
                unsupported: r.unsupported,
                cut_short: r.cut_short,
                damaged: r.damaged.clone(),
                gaps_shortened: r.gaps_shortened,
            })
            .collect(),
        outputs: written
            .iter()
            .map(|(p, (path, n))| OutputSummary {
                port: label(*p),
                path: path.display().to_string(),
                frames: *n,
            })
            .collect(),
        port_label: &label,
    });
    let path = opts.out.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).expect("the summary serialises");
    std::fs::write(&path, json + "\n").map_err(write_err(&path))?;
    Ok(summary)
}

fn known_ports(plan: &Plan) -> String {
    let mut names = vec!["uplink".to_string(), "pf".to_string()];
    for p in &plan.local_ports {
        names.push(format!("{} or {}", p.name, p.port));
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_specs() {
        assert_eq!(
            "web1=a.pcap".parse::<InputSpec>(),
            Ok(InputSpec {
                port: Some("web1".into()),
                path: "a.pcap".into()
            })
        );
        assert_eq!(
            "dir/with=sign.pcap".parse::<InputSpec>(),
            Ok(InputSpec {
                port: None,
                path: "dir/with=sign.pcap".into()
            })
        );
        assert_eq!("x.pcap".parse::<InputSpec>().map(|s| s.port), Ok(None));
        assert!("web1=".parse::<InputSpec>().is_err());
    }

    #[test]
    fn pacing() {
        assert_eq!(parse_pacing("line"), Ok(Pacing::LineRate { percent: 100 }));
        assert_eq!(
            parse_pacing("line:40%"),
            Ok(Pacing::LineRate { percent: 40 })
        );
        assert_eq!(parse_pacing("timestamps"), Ok(Pacing::Timestamps));
        assert!(parse_pacing("line:0").is_err());
        assert!(parse_pacing("fast").is_err());
    }
}
