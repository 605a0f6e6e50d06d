//! Exporting findings to SIEMs. Every exporter is an [`EventSink`] that takes EVE events as
//! JSON — our typed [`EveEvent`]s or Suricata's own lines unchanged — and writes them in a
//! format SIEMs ingest:
//!
//! - [`EveFileSink`]: EVE NDJSON files (what Filebeat, the Splunk forwarder or Vector tail),
//!   with size-based rotation, an fsync policy, and never a torn line: whole lines are
//!   written, and a torn last line left by a crash is cut off when the file is reopened.
//! - [`SyslogSink`]: syslog RFC 5424 over TCP with octet-counting framing (RFC 6587
//!   3.4.1), key identifiers as structured data and the EVE JSON as the message;
//!   reconnects with backoff and keeps a bounded backlog (what overflows is counted).
//! - [`EcsSink`]: the events mapped to the Elastic Common Schema, NDJSON to a file or TCP.
//!
//! The sinks are blocking (std I/O); the daemon runs them on a blocking thread.

mod ecs;
mod file;
mod syslog;
mod tcp;

use std::path::PathBuf;

use serde_json::Value;

use super::eve::{EveError, EveEvent};

pub use ecs::{EcsOutput, EcsSink, Observer, to_ecs};
pub use file::{EveFileSink, FileConfig, FsyncPolicy, NdjsonFile};
pub use syslog::{SyslogConfig, SyslogSink, escape_param_value, syslog_frame, syslog_message};
pub use tcp::{TcpConfig, TcpForwarder, TcpStats};

/// What can go wrong exporting findings.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    /// A file could not be opened, written, synced or rotated.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The event cannot be exported (not an object, bad timestamp, ...).
    #[error("event: {0}")]
    Event(#[from] EveError),
    /// Events still waited for the receiver when the flush gave up.
    #[error(
        "{pending} event(s) not delivered to {addr} after {waited_ms} ms (receiver unreachable)"
    )]
    Undelivered {
        /// The receiver.
        addr: String,
        /// Events left in the backlog.
        pending: usize,
        /// How long the flush tried.
        waited_ms: u64,
    },
}

/// A destination for EVE events.
pub trait EventSink {
    /// Exports one event (an EVE JSON object). Network sinks queue it when the receiver is
    /// away; an error means the event itself cannot be exported or the file failed.
    fn send(&mut self, event: &Value) -> Result<(), SiemError>;

    /// Exports one typed event.
    fn send_event(&mut self, event: &EveEvent) -> Result<(), SiemError> {
        self.send(&event.to_value())
    }

    /// Pushes everything queued to the destination (files: to disk, fsync included).
    fn flush(&mut self) -> Result<(), SiemError>;
}
