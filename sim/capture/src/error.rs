//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong reading or writing a capture file.
///
/// Every variant names the file; record-level variants also name the record index
/// (0-based count of packet records before it) and the byte offset in the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Reading failed for a reason other than reaching the end of the file.
    #[error("{}: read failed at byte {offset}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Byte offset where the read started.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The file has no bytes at all.
    #[error("{}: file is empty (0 bytes), not a capture", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// The file is shorter than any capture file's magic number.
    #[error("{}: file is only {len} bytes, too short for a capture file header", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The file's length in bytes.
        len: u64,
    },

    /// The first bytes are neither a classic pcap magic nor a pcapng section header.
    #[error(
        "{}: not a pcap or pcapng file (first bytes {:02x} {:02x} {:02x} {:02x})",
        path.display(), magic[0], magic[1], magic[2], magic[3]
    )]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// The first four bytes of the file.
        magic: [u8; 4],
    },

    /// The magic number is recognised but the file header is unusable.
    #[error("{}: bad file header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A record (or pcapng block) cannot be framed; iteration ends after this error.
    #[error("{}: damaged record {record_index} at byte {offset}: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Index the damaged record would have had (= number of good records before it).
        record_index: u64,
        /// Byte offset of the record header (pcapng: of the block).
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The output file could not be created.
    #[error("{}: cannot create: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing or flushing the output file failed.
    #[error("{}: write failed at record {record_index}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Number of records written before the failure.
        record_index: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A writer was asked for a snaplen of 0.
    #[error("{}: snaplen must be at least 1, got {snaplen}", path.display())]
    InvalidSnaplen {
        /// The file.
        path: PathBuf,
        /// The rejected snaplen.
        snaplen: u32,
    },

    /// A timestamp does not fit classic pcap's 32-bit seconds field.
    #[error(
        "{}: record {record_index}: timestamp {timestamp_ns} ns is past 2106-02-07, beyond pcap's 32-bit seconds",
        path.display()
    )]
    TimestampOutOfRange {
        /// The file.
        path: PathBuf,
        /// Index of the record being written.
        record_index: u64,
        /// The rejected timestamp.
        timestamp_ns: u64,
    },

    /// A frame is longer than a pcap length field can describe.
    #[error("{}: record {record_index}: frame of {len} bytes is too long for pcap", path.display())]
    FrameTooLong {
        /// The file.
        path: PathBuf,
        /// Index of the record being written.
        record_index: u64,
        /// The frame's length.
        len: usize,
    },

    /// pcap-file refused a record for a reason this crate did not foresee.
    #[error("{}: record {record_index}: pcap encoder refused the record: {reason}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// Index of the record being written.
        record_index: u64,
        /// pcap-file's message.
        reason: String,
    },
}
