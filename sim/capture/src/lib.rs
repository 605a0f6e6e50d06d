//! Capture-file ports for the shadownet NIC simulator.
//!
//! * [`CaptureReader`] reads classic pcap (all four magics: µs/ns × little/big endian)
//!   and pcapng, detected by the first bytes of the file, never by its name. Every
//!   record comes out with a nanosecond timestamp, its original (wire) length and its
//!   frame converted to Ethernet where the link type allows it ([`Frame`]).
//! * [`PcapWriter`] writes one classic, nanosecond-resolution, little-endian,
//!   Ethernet-link-type pcap per egress port, with deterministic bytes.
//!
//! ```no_run
//! use std::path::Path;
//! use shadownet_capture::{CaptureError, CaptureReader, PcapWriter};
//!
//! # fn main() -> Result<(), CaptureError> {
//! let mut reader = CaptureReader::open(Path::new("in.pcapng"))?;
//! let mut port0 = PcapWriter::create(Path::new("port0.pcap"), 65535)?;
//! let mut buf = Vec::new(); // reused for every record
//! while let Some(meta) = reader.next_into(&mut buf) {
//!     let meta = meta?; // a damaged record ends the loop with an error
//!     if meta.is_ethernet {
//!         port0.write_truncated(meta.timestamp_ns, &buf, meta.orig_len)?;
//!     }
//! }
//! port0.finish()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Conversion to Ethernet
//!
//! The simulated NIC only has Ethernet ports, so every record is offered as an
//! Ethernet frame when that is possible without guessing:
//!
//! | link type | conversion |
//! |---|---|
//! | `ETHERNET` (1) | as is (even when shorter than an Ethernet header) |
//! | `RAW` (101), `IPV4` (228), `IPV6` (229) | 14-byte header prepended, EtherType from the IP version nibble |
//! | `NULL` (0), `LOOP` (108) | 4-byte address family replaced by a 14-byte header |
//! | `LINUX_SLL` (113), `LINUX_SLL2` (276) | cooked header replaced by a 14-byte header with its protocol as EtherType |
//! | anything else | [`Frame::Unsupported`] with a reason |
//!
//! Synthesised headers use the locally administered MACs [`SYNTH_SRC_MAC`] and
//! [`SYNTH_DST_MAC`].
//!
//! # Lengths
//!
//! [`CaptureRecord::orig_len`] is the wire length *of the frame as delivered*: for a
//! converted frame it is adjusted by the same number of bytes as the link header
//! (so a RAW record of 60 wire bytes becomes an Ethernet frame of 74 wire bytes),
//! stripped FCS bytes are taken off, and it is never smaller than the delivered
//! frame. A frame is cut short of its wire length exactly when
//! `frame.len() < orig_len`.
//!
//! # Damage
//!
//! A record that cannot be framed (implausible captured length, record or block
//! cut off by the end of the file, pcapng block lengths that disagree, …) ends the
//! iteration with exactly one [`CaptureError::Damaged`] naming the record index and
//! byte offset; the frames after it cannot be located.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod linktype;
mod reader;
mod writer;

pub use error::CaptureError;
pub use linktype::{
    LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW, SYNTH_DST_MAC, SYNTH_SRC_MAC, link_type_name,
};
pub use reader::{CaptureFormat, CaptureReader, CaptureRecord, Frame, RecordMeta};
pub use writer::PcapWriter;
