//! The summary of a simulator run: what happened to every frame, counters per port, table,
//! drop reason and session, throughput at the modelled clock and cycles per packet. Written
//! as `summary.json` and printed for people.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};
use shadownet_host::driver::{CounterSnapshot, Identity};
use shadownet_hw::{
    NUM_SESSIONS, Port,
    counters::{self, PipelineCounter, PortCounter, SessionCounter, TableCounter},
    drop::DropReason,
    table::TableId,
};
use shadownet_sim::stats::{Class, Histogram, RunStats};

/// The device the run used.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    /// Build id.
    pub build_id: String,
    /// Contract version.
    pub version: String,
    /// Pipeline clock in MHz.
    pub clock_mhz: f64,
    /// Uplink rate.
    pub uplink_gbps: u32,
}

/// One input capture.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputSummary {
    /// Port it fed.
    pub port: String,
    /// The file.
    pub path: String,
    /// Frames fed.
    pub frames: u64,
    /// Bytes fed.
    pub bytes: u64,
    /// Frames of a link type the port cannot present as Ethernet.
    pub unsupported: u64,
    /// Frames captured shorter than on the wire.
    pub cut_short: u64,
    /// Damage that stopped reading early.
    pub damaged: Option<String>,
    /// Silences longer than a second before this input's frames, shortened to a second.
    pub gaps_shortened: u64,
}

/// One output capture.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputSummary {
    /// Port.
    pub port: String,
    /// The file.
    pub path: String,
    /// Frames written.
    pub frames: u64,
}

/// Every frame accounted for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Accounting {
    /// Frames received on all ports.
    pub received: u64,
    /// Production frames transmitted.
    pub transmitted: u64,
    /// Production frames dropped (all production drop reasons).
    pub dropped: u64,
    /// Mirror copies the filters asked for.
    pub copies: u64,
    /// Copies transmitted.
    pub copies_transmitted: u64,
    /// Copies dropped (all mirror drop reasons).
    pub copies_dropped: u64,
    /// received = transmitted + dropped and copies = copies_transmitted + copies_dropped.
    pub balanced: bool,
}

/// A table's counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableSummary {
    /// Slots.
    pub capacity: u32,
    /// Occupied slots.
    pub occupancy: u32,
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
    /// Entries deleted.
    pub deletes: u64,
}

/// Latency distribution in cycles.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Frames measured.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl From<&Histogram> for Latency {
    fn from(h: &Histogram) -> Latency {
        Latency {
            count: h.count(),
            min: h.min(),
            mean: (h.mean() * 100.0).round() / 100.0,
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
            max: h.max(),
        }
    }
}

/// Throughput at the modelled clock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Simulated time from the first arrival to the end of the last transmission, ns.
    pub simulated_ns: f64,
    /// Pipeline cycles in that time.
    pub simulated_cycles: u64,
    /// Frames received per second.
    pub rx_mpps: f64,
    /// Bits received per second.
    pub rx_gbps: f64,
    /// Production frames sent per second.
    pub tx_mpps: f64,
    /// Production bits sent per second.
    pub tx_gbps: f64,
    /// Copy bits sent per second.
    pub mirror_gbps: f64,
    /// Share of cycles the pipeline input was busy.
    pub pipeline_utilisation: f64,
}

/// Cycles per packet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cycles {
    /// Cycles each admitted frame occupied the pipeline input (its cost in throughput).
    pub pipeline_per_frame: f64,
    /// Cycles from ingress to the start of transmission, production frames.
    pub latency_production: Latency,
    /// The same for mirror copies.
    pub latency_mirror: Latency,
}

/// The summary of one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// The network description.
    pub config: String,
    /// The device.
    pub device: DeviceInfo,
    /// How inputs were paced.
    pub pacing: String,
    /// Inputs.
    pub inputs: Vec<InputSummary>,
    /// Outputs.
    pub outputs: Vec<OutputSummary>,
    /// Every frame accounted for.
    pub accounting: Accounting,
    /// Frames transmitted by class.
    pub classes: BTreeMap<String, u64>,
    /// Drops by reason (non-zero).
    pub drops: BTreeMap<String, u64>,
    /// Port counters (ports with traffic), by port.
    pub ports: BTreeMap<String, BTreeMap<String, u64>>,
    /// Table counters.
    pub tables: BTreeMap<String, TableSummary>,
    /// Session counters (sessions with traffic).
    pub sessions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Pipeline counters.
    pub pipeline: BTreeMap<String, u64>,
    /// Throughput at the modelled clock.
    pub throughput: Throughput,
    /// Cycles per packet.
    pub cycles: Cycles,
}

/// What the summary is made from.
pub struct Sources<'a> {
    /// Description file.
    pub config: String,
    /// The device's identity (read through the driver).
    pub identity: &'a Identity,
    /// Counters (read through the driver).
    pub counters: &'a CounterSnapshot,
    /// Table occupancies (read through the driver).
    pub occupancy: Vec<(TableId, u32)>,
    /// The model's run statistics.
    pub stats: &'a RunStats,
    /// Pacing, in words.
    pub pacing: String,
    /// Inputs.
    pub inputs: Vec<InputSummary>,
    /// Outputs.
    pub outputs: Vec<OutputSummary>,
    /// Names of ports.
    pub port_label: &'a dyn Fn(Port) -> String,
}

fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

impl Summary {
    /// Builds the summary.
    pub fn build(s: Sources<'_>) -> Summary {
        let c = s.counters;
        let mut ports = BTreeMap::new();
        let (mut received, mut transmitted, mut copies_transmitted) = (0, 0, 0);
        let (mut rx_bytes, mut tx_bytes, mut mirror_bytes) = (0u64, 0u64, 0u64);
        for i in 0..Port::COUNT {
            let Some(port) = Port::from_index(i) else {
                continue;
            };
            let values: BTreeMap<String, u64> = PortCounter::ALL
                .iter()
                .map(|&k| (k.name().to_string(), c.get(counters::port(port, k))))
                .collect();
            received += values["rx_packets"];
            transmitted += values["tx_packets"];
            copies_transmitted += values["tx_mirror_packets"];
            rx_bytes += values["rx_bytes"];
            tx_bytes += values["tx_bytes"];
            mirror_bytes += values["tx_mirror_bytes"];
            if values.values().any(|&v| v != 0) {
                ports.insert((s.port_label)(port), values);
            }
        }
        let mut drops = BTreeMap::new();
        let (mut dropped, mut copies_dropped) = (0, 0);
        for r in DropReason::ALL {
            let n = c.get(counters::drop_reason(r));
            if r.is_mirror() {
                copies_dropped += n;
            } else {
                dropped += n;
            }
            if n != 0 {
                drops.insert(r.name().to_string(), n);
            }
        }
        let mut sessions = BTreeMap::new();
        let mut copies = 0;
        for sid in 0..NUM_SESSIONS as u16 {
            let values: BTreeMap<String, u64> = SessionCounter::ALL
                .iter()
                .map(|&k| (k.name().to_string(), c.get(counters::session(sid, k))))
                .collect();
            copies += values["copies"];
            if values.values().any(|&v| v != 0) {
                sessions.insert(sid.to_string(), values);
            }
        }
        let tables = TableId::ALL
            .iter()
            .map(|&t| {
                let get = |k| c.get(counters::table(t, k));
                (
                    t.name().to_string(),
                    TableSummary {
                        capacity: t.capacity(),
                        occupancy: s
                            .occupancy
                            .iter()
                            .find(|(x, _)| *x == t)
                            .map(|x| x.1)
                            .unwrap_or(0),
                        hits: get(TableCounter::Hits),
                        misses: get(TableCounter::Misses),
                        writes: get(TableCounter::Writes),
                        deletes: get(TableCounter::Deletes),
                    },
                )
            })
            .collect();
        let pipeline: BTreeMap<String, u64> = PipelineCounter::ALL
            .iter()
            .map(|&k| (k.name().to_string(), c.get(counters::pipeline(k))))
            .collect();
        let classes = Class::ALL
            .iter()
            .map(|&k| (k, s.stats.classes[k as usize]))
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| (k.name().to_string(), n))
            .collect();

        let clock_khz = s.identity.clock_khz as f64;
        let span_ps = s.stats.span_ps();
        let span_s = span_ps as f64 * 1e-12;
        let per_s = |n: u64| if span_s > 0.0 { n as f64 / span_s } else { 0.0 };
        let cycle_ps = 1e9 / clock_khz;
        let simulated_cycles = (span_ps as f64 / cycle_ps).round() as u64;
        let admitted = pipeline["admitted"];
        let busy = pipeline["busy_cycles"];
        let (major, minor, patch) = s.identity.version;
        Summary {
            config: s.config,
            device: DeviceInfo {
                build_id: format!("{:#010x}", s.identity.build_id),
                version: format!("{major}.{minor}.{patch}"),
                clock_mhz: clock_khz / 1000.0,
                uplink_gbps: s.identity.uplink_gbps,
            },
            pacing: s.pacing,
            inputs: s.inputs,
            outputs: s.outputs,
            accounting: Accounting {
                received,
                transmitted,
                dropped,
                copies,
                copies_transmitted,
                copies_dropped,
                balanced: received == transmitted + dropped
                    && copies == copies_transmitted + copies_dropped,
            },
            classes,
            drops,
            ports,
            tables,
            sessions,
            pipeline,
            throughput: Throughput {
                simulated_ns: round(span_ps as f64 / 1000.0, 3),
                simulated_cycles,
                rx_mpps: round(per_s(received) / 1e6, 3),
                rx_gbps: round(per_s(rx_bytes * 8) / 1e9, 3),
                tx_mpps: round(per_s(transmitted) / 1e6, 3),
                tx_gbps: round(per_s(tx_bytes * 8) / 1e9, 3),
                mirror_gbps: round(per_s(mirror_bytes * 8) / 1e9, 3),
                pipeline_utilisation: if simulated_cycles > 0 {
                    round(busy as f64 / simulated_cycles as f64, 4)
                } else {
                    0.0
                },
            },
            cycles: Cycles {
                pipeline_per_frame: if admitted > 0 {
                    round(busy as f64 / admitted as f64, 3)
                } else {
                    0.0
                },
                latency_production: Latency::from(&s.stats.primary_latency),
                latency_mirror: Latency::from(&s.stats.mirror_latency),
            },
        }
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let d = &self.device;
        let _ = writeln!(
            o,
            "shadownet sim run: {} on the simulated NIC (build {}, contract {}, {} MHz, uplink {} Gbit/s), {}",
            self.config, d.build_id, d.version, d.clock_mhz, d.uplink_gbps, self.pacing
        );
        let _ = writeln!(o, "\ninputs");
        for i in &self.inputs {
            let mut notes = Vec::new();
            if i.unsupported > 0 {
                notes.push(format!("{} of an unsupported link type", i.unsupported));
            }
            if i.cut_short > 0 {
                notes.push(format!("{} cut short by the capture", i.cut_short));
            }
            if let Some(d) = &i.damaged {
                notes.push(format!("reading stopped: {d}"));
            }
            if i.gaps_shortened > 0 {
                notes.push(format!("{} idle gaps shortened to 1 s", i.gaps_shortened));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            };
            let _ = writeln!(
                o,
                "  {:<22} {:>9} frames  {}{notes}",
                i.port, i.frames, i.path
            );
        }
        let _ = writeln!(o, "\nwhat happened to every frame");
        for (k, n) in &self.classes {
            let _ = writeln!(o, "  {:<34} {:>9}", k.replace('_', " "), n);
        }
        for (k, n) in &self.drops {
            let _ = writeln!(o, "  dropped: {:<25} {:>9}", k.replace('_', " "), n);
        }
        let a = &self.accounting;
        let _ = writeln!(
            o,
            "\naccounting: {} received = {} transmitted + {} dropped; {} copies = {} sent + {} dropped: {}",
            a.received,
            a.transmitted,
            a.dropped,
            a.copies,
            a.copies_transmitted,
            a.copies_dropped,
            if a.balanced {
                "every frame accounted for"
            } else {
                "DOES NOT BALANCE"
            }
        );
        let t = &self.throughput;
        let _ = writeln!(
            o,
            "throughput at {} MHz: {} ns simulated ({} cycles); in {} Mpps / {} Gbit/s, out {} Mpps / {} Gbit/s + {} Gbit/s of copies; pipeline {:.1}% busy",
            d.clock_mhz,
            t.simulated_ns,
            t.simulated_cycles,
            t.rx_mpps,
            t.rx_gbps,
            t.tx_mpps,
            t.tx_gbps,
            t.mirror_gbps,
            t.pipeline_utilisation * 100.0
        );
        let c = &self.cycles;
        let lat = |l: &Latency| {
            format!(
                "min {} p50 {} p99 {} max {} (n={})",
                l.min, l.p50, l.p99, l.max, l.count
            )
        };
        let _ = writeln!(
            o,
            "cycles per frame in the pipeline: {}",
            c.pipeline_per_frame
        );
        let _ = writeln!(
            o,
            "latency, cycles from ingress to transmit: production {}",
            lat(&c.latency_production)
        );
        let _ = writeln!(
            o,
            "                                          mirror     {}",
            lat(&c.latency_mirror)
        );
        let _ = writeln!(o, "\noutputs");
        for out in &self.outputs {
            let _ = writeln!(
                o,
                "  {:<22} {:>9} frames  {}",
                out.port, out.frames, out.path
            );
        }
        o
    }
}
