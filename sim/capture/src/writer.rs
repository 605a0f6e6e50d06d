//! Writing classic pcap files (one per egress port).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use crate::error::CaptureError;

const WRITE_BUFFER: usize = 256 * 1024;

/// Writes an Ethernet, nanosecond-resolution (magic `0xa1b23c4d`), little-endian,
/// version 2.4 classic pcap file through a buffer.
///
/// The bytes depend only on the calls made (no clock, no host information).
/// Frames longer than the snaplen are stored cut to the snaplen with their
/// original length kept. Call [`PcapWriter::finish`] to flush and see write
/// errors; dropping the writer flushes but ignores them.
#[derive(Debug)]
pub struct PcapWriter {
    path: PathBuf,
    inner: pcap_file::pcap::PcapWriter<BufWriter<File>>,
    snaplen: u32,
    records: u64,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the file header.
    ///
    /// `snaplen` must be at least 1.
    pub fn create(path: &Path, snaplen: u32) -> Result<Self, CaptureError> {
        if snaplen == 0 {
            return Err(CaptureError::InvalidSnaplen {
                path: path.to_path_buf(),
                snaplen,
            });
        }
        let file = File::create(path).map_err(|source| CaptureError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
        };
        let inner = pcap_file::pcap::PcapWriter::with_header(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            header,
        )
        .map_err(|e| pcap_error(path, 0, e))?;
        Ok(PcapWriter {
            path: path.to_path_buf(),
            inner,
            snaplen,
            records: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Writes a whole frame (its original length is its length).
    pub fn write(&mut self, timestamp_ns: u64, frame: &[u8]) -> Result<(), CaptureError> {
        let len = u32::try_from(frame.len()).map_err(|_| CaptureError::FrameTooLong {
            path: self.path.clone(),
            record_index: self.records,
            len: frame.len(),
        })?;
        self.write_truncated(timestamp_ns, frame, len)
    }

    /// Writes a frame that may already be cut short of its wire length `orig_len`.
    ///
    /// The stored original length is `max(orig_len, frame.len())`; the stored bytes
    /// are at most `snaplen`.
    pub fn write_truncated(
        &mut self,
        timestamp_ns: u64,
        frame: &[u8],
        orig_len: u32,
    ) -> Result<(), CaptureError> {
        let index = self.records;
        let len = u32::try_from(frame.len()).map_err(|_| CaptureError::FrameTooLong {
            path: self.path.clone(),
            record_index: index,
            len: frame.len(),
        })?;
        let secs = timestamp_ns / 1_000_000_000;
        if secs > u64::from(u32::MAX) {
            return Err(CaptureError::TimestampOutOfRange {
                path: self.path.clone(),
                record_index: index,
                timestamp_ns,
            });
        }
        let caplen = len.min(self.snaplen) as usize;
        let packet = PcapPacket {
            timestamp: Duration::from_nanos(timestamp_ns),
            orig_len: orig_len.max(len),
            data: Cow::Borrowed(&frame[..caplen]),
        };
        self.inner
            .write_packet(&packet)
            .map_err(|e| pcap_error(&self.path, index, e))?;
        self.records += 1;
        Ok(())
    }

    /// Flushes the buffer to the file and closes it.
    pub fn finish(self) -> Result<(), CaptureError> {
        let PcapWriter {
            path,
            inner,
            records,
            ..
        } = self;
        let mut out = inner.into_writer();
        out.flush().map_err(|source| CaptureError::Write {
            path,
            record_index: records,
            source,
        })
    }
}

fn pcap_error(path: &Path, record_index: u64, e: PcapError) -> CaptureError {
    match e {
        PcapError::IoError(source) => CaptureError::Write {
            path: path.to_path_buf(),
            record_index,
            source,
        },
        other => CaptureError::Encode {
            path: path.to_path_buf(),
            record_index,
            reason: other.to_string(),
        },
    }
}
