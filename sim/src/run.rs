//! Runs capture files through the model: each input feeds a port, and every egress port's
//! frames are written to a capture of its own.
//!
//! Inputs are paced either back to back at a share of the port's line rate, or by their
//! capture timestamps (never faster than the line rate); frames from all inputs enter the
//! model in order of arrival, ties broken by input order, so a run is deterministic.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    path::{Path, PathBuf},
};

use shadownet_capture::{CaptureError, CaptureReader, PcapWriter};
use shadownet_hw::Port;

use crate::{Arrival, Departure, NicModel, Sink};

/// How inputs are paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Back to back at this percentage (1..=100) of the port's line rate.
    LineRate {
        /// Share of the line rate.
        percent: u32,
    },
    /// At the captures' timestamps, relative to the earliest first frame of all inputs, but
    /// never faster than the port's line rate.
    Timestamps,
}

/// One capture feeding one port.
#[derive(Clone, Debug)]
pub struct Input {
    /// The port it feeds.
    pub port: Port,
    /// The capture file.
    pub path: PathBuf,
}

/// What one input contributed.
#[derive(Clone, Debug, Default)]
pub struct InputReport {
    /// Frames fed to the port (including those the port could not present as Ethernet).
    pub frames: u64,
    /// Bytes fed.
    pub bytes: u64,
    /// Frames whose link type is not Ethernet and could not be converted.
    pub unsupported: u64,
    /// Frames captured shorter than they were on the wire.
    pub cut_short: u64,
    /// The capture's damage, if reading stopped early.
    pub damaged: Option<String>,
    /// Idle gaps before this input's frames that were shortened to [`MAX_IDLE_PS`].
    pub gaps_shortened: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An input could not be opened.
    #[error(transparent)]
    Open(CaptureError),
    /// An output capture could not be written.
    #[error(transparent)]
    Write(CaptureError),
    /// The output directory could not be created.
    #[error("creating output directory {}: {source}", path.display())]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A pacing percentage outside 1..=100.
    #[error("pacing of {0}% of line rate is outside 1-100")]
    Pacing(u32),
}

/// Writes every egress port's frames to `<dir>/<port>.pcap`.
pub struct PcapSink {
    dir: PathBuf,
    writers: BTreeMap<Port, PcapWriter>,
    counts: BTreeMap<Port, u64>,
    error: Option<CaptureError>,
}

impl PcapSink {
    /// A sink writing into `dir`, with (possibly empty) captures for `ports` even if nothing
    /// leaves them.
    pub fn new(dir: &Path, ports: &[Port]) -> Result<PcapSink, RunError> {
        std::fs::create_dir_all(dir).map_err(|source| RunError::OutDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut sink = PcapSink {
            dir: dir.to_path_buf(),
            writers: BTreeMap::new(),
            counts: BTreeMap::new(),
            error: None,
        };
        for &p in ports {
            sink.writer(p).map_err(RunError::Write)?;
        }
        Ok(sink)
    }

    /// The capture a port's frames go to.
    pub fn path_of(dir: &Path, port: Port) -> PathBuf {
        dir.join(format!("{port}.pcap"))
    }

    fn writer(&mut self, port: Port) -> Result<&mut PcapWriter, CaptureError> {
        if !self.writers.contains_key(&port) {
            let w = PcapWriter::create(&PcapSink::path_of(&self.dir, port), 262_144)?;
            self.writers.insert(port, w);
            self.counts.insert(port, 0);
        }
        Ok(self.writers.get_mut(&port).expect("inserted above"))
    }

    /// Finishes every capture; returns frames written per port.
    pub fn finish(self) -> Result<BTreeMap<Port, (PathBuf, u64)>, RunError> {
        if let Some(e) = self.error {
            return Err(RunError::Write(e));
        }
        let mut out = BTreeMap::new();
        for (port, w) in self.writers {
            let path = w.path().to_path_buf();
            w.finish().map_err(RunError::Write)?;
            out.insert(port, (path, self.counts.get(&port).copied().unwrap_or(0)));
        }
        Ok(out)
    }
}

impl Sink for PcapSink {
    fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let port = d.frame.port();
        let result = self
            .writer(port)
            .and_then(|w| w.write(d.start_ps / 1000, bytes));
        match result {
            Ok(()) => *self.counts.entry(port).or_default() += 1,
            Err(e) => self.error = Some(e),
        }
    }
}

/// A record read ahead: (timestamp ns, frame, is Ethernet, length).
type Record = (u64, Vec<u8>, bool, usize);

/// An idle gap longer than this (no frame arriving on any port) is shortened to it. After a
/// second without traffic every queue has long drained and every policer is full, so nothing
/// the NIC does depends on how long the silence was; without this a capture spanning more than
/// 213 days would overflow the model's 64-bit picosecond clock.
pub const MAX_IDLE_PS: u64 = 1_000_000_000_000;

/// Frames handed to the model at once (see [`NicModel::receive_batch`]).
const BATCH: usize = 64;

struct Feed {
    reader: CaptureReader,
    port: Port,
    /// End of the previous frame on this input, on the captures' clock (ps).
    next_free: u128,
    report: InputReport,
    done: bool,
}

struct Pending {
    /// Arrival on the captures' clock (ps).
    arrival: u128,
    frame: Vec<u8>,
    ethernet: bool,
    len: usize,
}

/// Maps arrivals on the captures' clock onto the model's, shortening idle gaps.
struct Clock {
    last_capture: Option<u128>,
    last_model: u64,
}

impl Clock {
    fn map(&mut self, arrival: u128) -> (u64, bool) {
        let gap = match self.last_capture {
            Some(last) => arrival.saturating_sub(last),
            None => arrival,
        };
        let shortened = gap > MAX_IDLE_PS as u128;
        let step = if shortened { MAX_IDLE_PS } else { gap as u64 };
        self.last_capture = Some(arrival);
        self.last_model = self.last_model.saturating_add(step);
        (self.last_model, shortened)
    }
}

/// Feeds `inputs` into `model` and lets it finish; `progress` is told how many frames and
/// bytes have been fed so far (about every 4096 frames).
pub fn run(
    model: &mut NicModel,
    inputs: &[Input],
    pacing: Pacing,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<InputReport>, RunError> {
    if let Pacing::LineRate { percent } = pacing
        && !(1..=100).contains(&percent)
    {
        return Err(RunError::Pacing(percent));
    }
    let mut feeds = Vec::with_capacity(inputs.len());
    for i in inputs {
        feeds.push(Feed {
            reader: CaptureReader::open(&i.path).map_err(RunError::Open)?,
            port: i.port,
            next_free: 0,
            report: InputReport::default(),
            done: false,
        });
    }
    // A model that has run before continues from where it stopped, a microsecond later.
    let mut clock = Clock {
        last_capture: None,
        last_model: match model.stats().first_arrival_ps {
            None => 0,
            Some(_) => model
                .stats()
                .last_event_ps
                .max(model.last_tx_end_ps())
                .saturating_add(1_000_000),
        },
    };
    // With timestamp pacing, time starts at the earliest first frame of all inputs.
    let mut base_ns: Option<u64> = None;
    let mut first: Vec<Option<Record>> = (0..feeds.len()).map(|_| None).collect();
    if pacing == Pacing::Timestamps {
        for (i, f) in feeds.iter_mut().enumerate() {
            let mut buf = Vec::new();
            if let Some((ts, eth, len)) = read_next(f, &mut buf) {
                base_ns = Some(base_ns.map_or(ts, |b: u64| b.min(ts)));
                first[i] = Some((ts, buf, eth, len));
            }
        }
    }
    let base_ns = base_ns.unwrap_or(0);
    let mut heap: BinaryHeap<Reverse<(u128, usize)>> = BinaryHeap::new();
    let mut pending: Vec<Option<Pending>> = (0..feeds.len()).map(|_| None).collect();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    for i in 0..feeds.len() {
        let next = match first[i].take() {
            Some(f) => Some(f),
            None => {
                let mut buf = spare.pop().unwrap_or_default();
                read_next(&mut feeds[i], &mut buf).map(|(ts, eth, len)| (ts, buf, eth, len))
            }
        };
        if let Some((ts, frame, ethernet, len)) = next {
            let arrival = arrival_of(model, &mut feeds[i], pacing, base_ns, ts, len);
            heap.push(Reverse((arrival, i)));
            pending[i] = Some(Pending {
                arrival,
                frame,
                ethernet,
                len,
            });
        }
    }
    let mut batch: Vec<(Port, Vec<u8>, u64)> = Vec::with_capacity(BATCH);
    let (mut fed, mut fed_bytes) = (0u64, 0u64);
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(p) = pending[i].take() else { continue };
        let (at, shortened) = clock.map(p.arrival);
        if shortened {
            feeds[i].report.gaps_shortened += 1;
        }
        let port = feeds[i].port;
        if p.ethernet {
            batch.push((port, p.frame, at));
        } else {
            // Keep packet ids in arrival order: what is batched goes first.
            flush(model, &mut batch, &mut spare, sink);
            model.receive_unsupported(port, p.len, at);
            spare.push(p.frame);
        }
        if batch.len() == BATCH {
            flush(model, &mut batch, &mut spare, sink);
        }
        fed += 1;
        fed_bytes += p.len as u64;
        if fed.is_multiple_of(4096) {
            progress(fed, fed_bytes);
        }
        let mut buf = spare.pop().unwrap_or_default();
        if let Some((ts, ethernet, len)) = read_next(&mut feeds[i], &mut buf) {
            let arrival = arrival_of(model, &mut feeds[i], pacing, base_ns, ts, len);
            heap.push(Reverse((arrival, i)));
            pending[i] = Some(Pending {
                arrival,
                frame: buf,
                ethernet,
                len,
            });
        } else {
            spare.push(buf);
        }
    }
    flush(model, &mut batch, &mut spare, sink);
    progress(fed, fed_bytes);
    model.finish(sink);
    Ok(feeds.into_iter().map(|f| f.report).collect())
}

fn flush(
    model: &mut NicModel,
    batch: &mut Vec<(Port, Vec<u8>, u64)>,
    spare: &mut Vec<Vec<u8>>,
    sink: &mut dyn Sink,
) {
    if batch.is_empty() {
        return;
    }
    let arrivals: Vec<Arrival<'_>> = batch
        .iter()
        .map(|(port, frame, at)| Arrival {
            port: *port,
            frame,
            at_ps: *at,
        })
        .collect();
    model.receive_batch(&arrivals, sink);
    drop(arrivals);
    spare.extend(batch.drain(..).map(|(_, f, _)| f));
}

/// Reads the next record into `buf`: (timestamp ns, is Ethernet, length).
fn read_next(f: &mut Feed, buf: &mut Vec<u8>) -> Option<(u64, bool, usize)> {
    if f.done {
        return None;
    }
    match f.reader.next_into(buf) {
        None => {
            f.done = true;
            None
        }
        Some(Err(e)) => {
            f.report.damaged = Some(e.to_string());
            f.done = true;
            None
        }
        Some(Ok(meta)) => {
            let len = meta.captured_len as usize;
            f.report.frames += 1;
            f.report.bytes += len as u64;
            if !meta.is_ethernet {
                f.report.unsupported += 1;
            }
            if (meta.captured_len as u64) < meta.orig_len as u64 {
                f.report.cut_short += 1;
            }
            Some((
                meta.timestamp_ns,
                meta.is_ethernet,
                if meta.is_ethernet { buf.len() } else { len },
            ))
        }
    }
}

fn arrival_of(
    model: &NicModel,
    f: &mut Feed,
    pacing: Pacing,
    base_ns: u64,
    ts_ns: u64,
    len: usize,
) -> u128 {
    let wire = model.wire_ps(f.port, len) as u128;
    let arrival = match pacing {
        Pacing::LineRate { percent } => f.next_free + wire * 100 / percent as u128,
        Pacing::Timestamps => {
            let at = ts_ns.saturating_sub(base_ns) as u128 * 1000;
            at.max(f.next_free + wire)
        }
    };
    f.next_free = arrival;
    arrival
}
