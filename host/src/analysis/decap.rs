//! The shadow path for offline analysis: mirror copies (VXLAN or Geneve with the shadow's
//! VNI) decapsulated back to the production frames they carry, with their shadow metadata.
//!
//! The outer headers are read by the NIC's own parser stage ([`shadownet_wire::parse()`]), so
//! what counts as a copy here is exactly what the data path emits. Sequence numbers of the
//! Geneve shadow option are checked per session: a jump forward is mirror loss (copies the
//! NIC dropped, counted by how many numbers were skipped), a step back is a reordered or
//! duplicated copy.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, BufWriter},
    path::Path,
    time::Duration,
};

use pcap_file::{
    DataLink, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter},
};
use serde::Serialize;
use shadownet_wire::{
    geneve::{
        SHADOW_DIRECTION_FROM_VM, SHADOW_DIRECTION_TO_VM, SHADOW_FLAG_TRUNCATED, ShadowMetadata,
    },
    parse::{ParseConfig, TunnelKind, parse},
};
use thiserror::Error;

/// Why a capture could not be decapsulated.
#[derive(Debug, Error)]
pub enum DecapError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a pcap file the reader understands, or the output could not be
    /// written.
    #[error("{path}: {reason}")]
    Pcap {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What to decapsulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecapOptions {
    /// Only copies with this VNI (the shadow's); `None` takes every VXLAN or Geneve frame.
    pub vni: Option<u32>,
    /// Tunnel ports, as the NIC is configured.
    pub parse: ParseConfig,
    /// Added to every timestamp. The simulator's clock starts at 0 with the first frame it
    /// is fed; adding that frame's capture timestamp puts the copies on the capture's clock,
    /// which analysis comparing with the original capture wants.
    pub time_offset: Duration,
}

/// One decapsulated copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowFrame<'a> {
    /// The tunnel's VNI.
    pub vni: u32,
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// The Geneve shadow option, when present.
    pub meta: Option<ShadowMetadata>,
    /// The production frame (possibly truncated; see `meta`).
    pub inner: &'a [u8],
}

impl ShadowFrame<'_> {
    /// Whether the NIC redirected the frame (production gets it only after the verdict).
    pub fn redirected(&self) -> bool {
        self.meta.is_some_and(|m| m.is_redirected())
    }

    /// Length of the production frame: the metadata's original length when the copy was
    /// truncated, else the inner frame's length.
    pub fn original_len(&self) -> usize {
        match self.meta {
            Some(m) if m.flags & SHADOW_FLAG_TRUNCATED != 0 => {
                usize::from(m.original_len).max(self.inner.len())
            }
            _ => self.inner.len(),
        }
    }
}

/// Loss and order of one mirror session's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SessionSequence {
    /// Copies received.
    pub received: u64,
    /// First sequence number seen.
    pub first: u32,
    /// Highest sequence number seen.
    pub highest: u32,
    /// Sequence numbers skipped: copies lost between the NIC and here.
    pub lost: u64,
    /// Copies whose number was not above the highest seen (reordered or duplicated).
    pub out_of_order: u64,
}

/// What decapsulation found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DecapStats {
    /// Frames read.
    pub frames: u64,
    /// Copies decapsulated (written).
    pub decapsulated: u64,
    /// Frames that are not VXLAN or Geneve (ignored).
    pub not_tunnel: u64,
    /// Tunnel frames of another VNI (ignored).
    pub other_vni: u64,
    /// Frames the parser rejected (ignored).
    pub malformed: u64,
    /// Copies without the Geneve shadow option (VXLAN, or Geneve from elsewhere).
    pub without_metadata: u64,
    /// Copies the NIC truncated.
    pub truncated: u64,
    /// Copies toward a VM and from a VM (Geneve metadata).
    pub to_vm: u64,
    /// See `to_vm`.
    pub from_vm: u64,
    /// Sequence accounting per mirror session.
    pub sessions: BTreeMap<u16, SessionSequence>,
}

impl DecapStats {
    /// Copies lost over all sessions (skipped sequence numbers).
    pub fn lost(&self) -> u64 {
        self.sessions.values().map(|s| s.lost).sum()
    }
}

/// Decapsulates copies one frame at a time, keeping the statistics.
#[derive(Debug, Clone, Default)]
pub struct Decapsulator {
    options: DecapOptions,
    stats: DecapStats,
}

impl Decapsulator {
    /// A decapsulator with these options.
    pub fn new(options: DecapOptions) -> Decapsulator {
        Decapsulator {
            options,
            stats: DecapStats::default(),
        }
    }

    /// What it has seen so far.
    pub fn stats(&self) -> &DecapStats {
        &self.stats
    }

    /// The copy `frame` carries, or `None` (counted) when it is not one of ours.
    pub fn frame<'a>(&mut self, frame: &'a [u8]) -> Option<ShadowFrame<'a>> {
        let s = &mut self.stats;
        s.frames += 1;
        let h = match parse(frame, &self.options.parse) {
            Ok(h) => h,
            Err(_) => {
                s.malformed += 1;
                return None;
            }
        };
        let (Some(t), Some(inner)) = (h.tunnel, h.inner_frame(frame)) else {
            s.not_tunnel += 1;
            return None;
        };
        if self.options.vni.is_some_and(|v| v != t.vni) {
            s.other_vni += 1;
            return None;
        }
        s.decapsulated += 1;
        match t.shadow {
            None => s.without_metadata += 1,
            Some(m) => {
                if m.flags & SHADOW_FLAG_TRUNCATED != 0 {
                    s.truncated += 1;
                }
                match m.direction {
                    SHADOW_DIRECTION_TO_VM => s.to_vm += 1,
                    SHADOW_DIRECTION_FROM_VM => s.from_vm += 1,
                    _ => {}
                }
                let q = s.sessions.entry(m.session).or_default();
                if q.received == 0 {
                    q.first = m.sequence;
                    q.highest = m.sequence;
                } else {
                    let ahead = m.sequence.wrapping_sub(q.highest);
                    // More than half the number space ahead is a step back that wrapped.
                    if ahead == 0 || ahead > u32::MAX / 2 {
                        q.out_of_order += 1;
                    } else {
                        q.lost += u64::from(ahead - 1);
                        q.highest = m.sequence;
                    }
                }
                q.received += 1;
            }
        }
        Some(ShadowFrame {
            vni: t.vni,
            kind: t.kind,
            meta: t.shadow,
            inner,
        })
    }
}

/// Decapsulates every copy in the pcap `input` into the pcap `output` (Ethernet,
/// nanosecond timestamps), each at its copy's timestamp plus `time_offset`.
pub fn decap_pcap(
    input: &Path,
    output: &Path,
    options: &DecapOptions,
) -> Result<DecapStats, DecapError> {
    fn io(p: &Path) -> impl Fn(std::io::Error) -> DecapError + '_ {
        move |e| DecapError::Io {
            path: p.display().to_string(),
            source: e,
        }
    }
    fn pcap(p: &Path) -> impl Fn(pcap_file::PcapError) -> DecapError + '_ {
        move |e| DecapError::Pcap {
            path: p.display().to_string(),
            reason: e.to_string(),
        }
    }
    let file = File::open(input).map_err(io(input))?;
    let mut reader = PcapReader::new(BufReader::new(file)).map_err(pcap(input))?;
    let out = File::create(output).map_err(io(output))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 65535,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(BufWriter::new(out), header).map_err(pcap(output))?;
    let mut d = Decapsulator::new(*options);
    while let Some(p) = reader.next_packet() {
        let p = p.map_err(pcap(input))?;
        let Some(f) = d.frame(&p.data) else {
            continue;
        };
        let ts = p.timestamp + options.time_offset;
        let orig = u32::try_from(f.original_len()).unwrap_or(u32::MAX);
        writer
            .write_packet(&PcapPacket::new(ts, orig, f.inner))
            .map_err(pcap(output))?;
    }
    writer
        .into_writer()
        .into_inner()
        .map_err(|e| io(output)(e.into_error()))?;
    Ok(d.stats.clone())
}
