//! `shadowctl`: the shadownet command line.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shadowctl::apicli::{ApiArgs, ApiCommand};
use shadowctl::simrun::{InputSpec, SimRunOptions, parse_pacing, sim_run};
use shadownet_host::driver::{Nic, sim::SimDevice};
use shadownet_hw::{block_type, timing::Timing};
use shadownet_sim::{NicModel, run::Pacing};

/// `print!` that returns the write's error instead of panicking (a closed pipe, as with
/// `shadowctl ... | head`, ends the command quietly; see [`main`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` that returns the write's error, like [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

#[derive(Parser)]
#[command(
    name = "shadowctl",
    version,
    about = "shadownet: traffic shadowing on the NIC"
)]
struct Cli {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cycle-accurate NIC simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Commands that call the daemon's API.
    #[command(flatten)]
    Api(ApiCommand),
    /// shadownet NICs on this machine: list, bind to vfio-pci, unbind, open through VFIO.
    #[command(subcommand)]
    Device(shadowctl::device::DeviceCommand),
    /// Firmware images: build, inspect, verify, keygen.
    #[command(subcommand)]
    Image(shadowctl::image::ImageCommand),
    /// Write a firmware image into the simulated NIC's flash (the inactive A/B slot by
    /// default) and activate it once it reads back and verifies.
    Flash {
        /// Image file (raw or Intel HEX).
        #[arg(long)]
        image: PathBuf,
        /// Slot to write: auto (the one not running), a or b.
        #[arg(long, value_enum, default_value = "auto")]
        slot: shadowctl::flash::SlotArg,
        /// Flash state file: the flash persists there across invocations.
        #[arg(long)]
        state: Option<PathBuf>,
        /// ed25519 public key the image's signature must verify with.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Labelled traffic for training and evaluating detectors.
    #[command(subcommand)]
    Traffic(shadowctl::traffic::TrafficCommand),
}

#[derive(Subcommand)]
enum SimCommand {
    /// Program the simulated NIC from a network description, feed captures into its ports,
    /// write one capture per egress port and summary.json.
    Run {
        /// Network description (TOML; see the README and examples/).
        #[arg(long)]
        config: PathBuf,
        /// A capture to feed: [PORT=]FILE. PORT is uplink (the default), pf, vfN or a local
        /// VM's name. Repeat for several ports.
        #[arg(long = "pcap", value_name = "[PORT=]FILE", required = true)]
        pcaps: Vec<InputSpec>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Input pacing: timestamps (the captures' own timing, never faster than line rate),
        /// line (back to back at line rate) or line:PERCENT.
        #[arg(long, default_value = "timestamps", value_parser = parse_pacing)]
        pace: Pacing,
        /// Also write trace.jsonl: one JSON line per packet event (print the summary as JSON
        /// with the global --json).
        #[arg(long)]
        trace: bool,
    },
    /// Power on the simulated NIC and show what the driver reads from it.
    Info,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader of the output went away (`| head`): nothing more to say to anyone.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shadowctl: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// A command's summary: as JSON with `--json`, else as the table `rendered`.
fn print_summary(
    json: bool,
    summary: &impl serde::Serialize,
    rendered: String,
) -> anyhow::Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(summary).context("serialising the summary")?
        )?;
    } else {
        out!("{rendered}")?;
    }
    Ok(())
}

/// The error and its causes, leaving out a cause whose text the message already has (many
/// errors name their cause in their own message, which `{:#}` would print twice).
fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Api(cmd) => {
            out!("{}", shadowctl::apicli::run(cmd, &cli.api)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(cmd) => {
            shadowctl::device::run(cmd, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image(cmd) => {
            cmd.run(cli.api.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Flash {
            image,
            slot,
            state,
            key,
        } => {
            let json = cli.api.json;
            shadowctl::flash::run(&image, slot, state.as_ref(), key.as_ref(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Traffic(shadowctl::traffic::TrafficCommand::Gen(args)) => {
            let scenario = args.traffic.scenario()?;
            let bar = ProgressBar::new((scenario.duration_s * 1e9) as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:40} {percent:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let summary =
                shadowctl::traffic::generate_files(&scenario, &args.out, &mut |ts, frames| {
                    bar.set_position(ts);
                    bar.set_message(format!("{frames} frames"));
                });
            bar.finish_and_clear();
            let summary = summary?;
            print_summary(cli.api.json, &summary, summary.render())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Traffic(shadowctl::traffic::TrafficCommand::Eval(args)) => {
            let mut cfg = shadownet_host::analysis::detector::DetectorConfig {
                baseline_s: args.baseline,
                ..Default::default()
            };
            if let Some(t) = args.threshold {
                cfg.alert_threshold = t;
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let summary =
                shadowctl::traffic::evaluate_files(&args.pcap, &args.labels, cfg, &mut |n| {
                    bar.set_message(format!("{n} frames scored"));
                    bar.tick();
                });
            bar.finish_and_clear();
            let summary = summary?;
            print_summary(cli.api.json, &summary, summary.render())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Run {
            config,
            pcaps,
            out,
            pace,
            trace,
        }) => {
            let json = cli.api.json;
            let total: u64 = pcaps
                .iter()
                .filter_map(|p| std::fs::metadata(&p.path).ok())
                .map(|m| m.len())
                .sum();
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:40} {percent:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let opts = SimRunOptions {
                config,
                inputs: pcaps,
                out: out.clone(),
                pacing: pace,
                trace,
                timing: Timing::DEFAULT,
            };
            let summary = sim_run(&opts, &mut |frames, bytes| {
                // Each record costs its bytes plus a 16-byte header in the file.
                bar.set_position(bytes + 16 * frames);
                bar.set_message(format!("{frames} frames"));
            });
            bar.finish_and_clear();
            let summary = summary?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&summary).context("serialising the summary")?
                )?;
            } else {
                out!("{}", summary.render())?;
                outln!(
                    "  summary                {}",
                    out.join("summary.json").display()
                )?;
                if trace {
                    outln!(
                        "  trace                  {}",
                        out.join("trace.jsonl").display()
                    )?;
                }
            }
            Ok(if summary.accounting.balanced {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Sim(SimCommand::Info) => {
            let model = NicModel::new(Timing::DEFAULT).context("powering on the simulated NIC")?;
            let nic = Nic::open(SimDevice::new(model)).context("opening the simulated NIC")?;
            let id = nic.identify();
            let (major, minor, patch) = id.version;
            outln!("shadownet NIC (simulated: {})", id.simulated())?;
            outln!(
                "  contract version {major}.{minor}.{patch}, build {:#010x}",
                id.build_id
            )?;
            outln!("  capabilities {:#010x}", id.caps)?;
            outln!(
                "  {} VF ports, {} mirror sessions, {} MHz pipeline clock, uplink {} Gbit/s",
                id.num_vports,
                id.num_sessions,
                id.clock_khz as f64 / 1000.0,
                id.uplink_gbps
            )?;
            outln!("  register blocks:")?;
            for b in &id.blocks {
                let name = block_type::name(b.block_type).unwrap_or("?");
                let state = if b.version == 0 { " (reserved)" } else { "" };
                outln!(
                    "    {:#07x} {name:<15} version {}{state}",
                    b.offset,
                    b.version
                )?;
            }
            outln!("  tables:")?;
            for (t, cap) in &id.capacities {
                outln!("    {:<14} {cap:>9} slots", t.name())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
