//! Reading classic pcap and pcapng files.
//!
//! The classic pcap file header is decoded by `pcap-file`; records and all of
//! pcapng are parsed here, because pcap-file 2.0.0 gets too much of them wrong for
//! real captures (see the crate's tests/corpus.rs and the commit history):
//! it rejects records whose original length exceeds the snaplen and records with
//! a nanosecond field ≥ 10⁹, ignores pcapng `if_tsresol`, cannot say where a damaged
//! record is, does not swap the length fields of pre-2.3 files, and does not
//! mask the FCS bits of the link-type field.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapHeader;

use crate::error::CaptureError;
use crate::linktype::{headroom, max_caplen, to_ethernet};

const READ_BUFFER: usize = 256 * 1024;

/// pcapng block types.
const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_PB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;
/// pcapng byte-order magic as read big-endian.
const BOM_BE: u32 = 0x1A2B_3C4D;
const BOM_LE: u32 = 0x4D3C_2B1A;
/// Largest pcapng block accepted (the largest plausible packet plus room for options).
const MAX_BLOCK_LEN: u32 = 128 * 1024 * 1024 + 64 * 1024;

/// pcap link-type field: bit 26 says bits 28..31 hold the FCS length in 16-bit words.
const LT_FCS_PRESENT: u32 = 0x0400_0000;

/// Container format of a capture file, as detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap {
        /// Header and record fields are big-endian.
        big_endian: bool,
        /// Timestamps carry nanoseconds (magic `0xa1b23c4d`) rather than microseconds.
        nanosecond: bool,
        /// File format major version (2 in practice).
        version_major: u16,
        /// File format minor version (4 in practice; below 3 the length fields are swapped).
        version_minor: u16,
    },
    /// pcapng.
    PcapNg {
        /// The first section is big-endian (later sections may differ).
        big_endian: bool,
    },
}

impl fmt::Display for CaptureFormat {
    /// `pcap-le-v2.4`, `pcap-ns-be-v2.4`, `pcapng-le`, … (the corpus manifest's spelling).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = |be: bool| if be { "be" } else { "le" };
        match *self {
            CaptureFormat::Pcap {
                big_endian,
                nanosecond,
                version_major,
                version_minor,
            } => write!(
                f,
                "pcap-{}{}-v{version_major}.{version_minor}",
                if nanosecond { "ns-" } else { "" },
                order(big_endian)
            ),
            CaptureFormat::PcapNg { big_endian } => write!(f, "pcapng-{}", order(big_endian)),
        }
    }
}

/// A record's frame, converted to Ethernet where its link type allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An Ethernet frame (possibly cut short of its wire length, see
    /// [`CaptureRecord::orig_len`]), FCS removed where the file declared one.
    Ethernet(Vec<u8>),
    /// A frame that cannot be offered to an Ethernet port.
    Unsupported {
        /// The record's link type.
        link_type: u32,
        /// Why it cannot be converted.
        reason: &'static str,
        /// Number of captured bytes the record held (after FCS removal).
        len: usize,
    },
}

/// One packet record of a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRecord {
    /// 0-based position among the file's packet records.
    pub index: u64,
    /// Nanoseconds since 1970-01-01 00:00:00 UTC.
    pub timestamp_ns: u64,
    /// Wire length of the frame as delivered (see the crate docs, "Lengths");
    /// never smaller than the delivered frame.
    pub orig_len: u32,
    /// Link type of the record (pcap: the header field's low 16 bits; pcapng: the interface's).
    pub link_type: u32,
    /// The frame.
    pub frame: Frame,
}

/// A record without its frame, as returned by [`CaptureReader::next_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// 0-based position among the file's packet records.
    pub index: u64,
    /// Nanoseconds since 1970-01-01 00:00:00 UTC.
    pub timestamp_ns: u64,
    /// Wire length of the frame as delivered; see [`CaptureRecord::orig_len`].
    pub orig_len: u32,
    /// Number of frame bytes the file stored for this record (before FCS removal
    /// and conversion).
    pub captured_len: u32,
    /// Link type of the record.
    pub link_type: u32,
    /// The buffer holds an Ethernet frame (`unsupported_reason` is `None`).
    pub is_ethernet: bool,
    /// Why the frame is not Ethernet; then the buffer holds the bytes as captured.
    pub unsupported_reason: Option<&'static str>,
}

/// Reads the packet records of a pcap or pcapng file.
///
/// As an iterator it yields one `Result` per record; after an error (a
/// [`CaptureError::Damaged`] record or a failed read) it yields nothing more.
#[derive(Debug)]
pub struct CaptureReader {
    src: Source,
    format: CaptureFormat,
    kind: Kind,
    next_index: u64,
    last_timestamp_ns: u64,
    done: bool,
}

#[derive(Debug)]
enum Kind {
    Pcap(PcapState),
    PcapNg(NgState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthOrder {
    /// caplen then len (version 2.4 and later).
    Normal,
    /// len then caplen (before 2.3, and DG/UX's 543.0).
    Swapped,
    /// Version 2.3 files were written both ways: swap when caplen > len.
    Maybe,
}

#[derive(Debug)]
struct PcapState {
    big_endian: bool,
    nanosecond: bool,
    link_type: u32,
    fcs_len: u32,
    lengths: LengthOrder,
}

#[derive(Debug)]
struct NgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    tsresol: u8,
    tsoffset_s: i64,
    fcs_len: u32,
}

/// The open file with its byte position.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
}

impl Source {
    /// Reads until `dst` is full or the file ends; returns the number of bytes read.
    fn fill(&mut self, dst: &mut [u8]) -> Result<usize, CaptureError> {
        let start = self.offset;
        let mut got = 0;
        while got < dst.len() {
            match self.input.read(&mut dst[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Read {
                        path: self.path.clone(),
                        offset: start + got as u64,
                        source,
                    });
                }
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// Appends up to `n` bytes to `buf`; returns how many the file still had.
    fn append(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<usize, CaptureError> {
        let start = buf.len();
        buf.resize(start + n, 0);
        let got = self.fill(&mut buf[start..])?;
        buf.truncate(start + got);
        Ok(got)
    }

    /// Skips up to `n` bytes; returns how many the file still had.
    fn skip(&mut self, n: u64) -> Result<u64, CaptureError> {
        let start = self.offset;
        let got = io::copy(&mut (&mut self.input).take(n), &mut io::sink()).map_err(|source| {
            CaptureError::Read {
                path: self.path.clone(),
                offset: start,
                source,
            }
        })?;
        self.offset += got;
        Ok(got)
    }

    fn damaged(&self, record_index: u64, offset: u64, reason: String) -> CaptureError {
        CaptureError::Damaged {
            path: self.path.clone(),
            record_index,
            offset,
            reason,
        }
    }
}

fn u16_at(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// Converts a pcapng timestamp in interface units to nanoseconds since the epoch.
fn ng_timestamp_ns(units: u64, tsresol: u8, tsoffset_s: i64) -> u64 {
    let units = u128::from(units);
    let exp = u32::from(tsresol & 0x7F);
    let ns: u128 = if tsresol & 0x80 != 0 {
        // 2^-exp seconds per unit; units < 2^64 and 10^9 < 2^30, so no overflow.
        (units * 1_000_000_000) >> exp
    } else if exp <= 9 {
        units * 10u128.pow(9 - exp)
    } else {
        10u128.checked_pow(exp - 9).map_or(0, |div| units / div)
    };
    let total = ns as i128 + i128::from(tsoffset_s) * 1_000_000_000;
    total.clamp(0, i128::from(u64::MAX)) as u64
}

impl CaptureReader {
    /// Opens a capture file and reads its file header (pcapng: its first section header).
    ///
    /// The format is detected from the first bytes; the file name plays no part.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut src = Source {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(READ_BUFFER, file),
            offset: 0,
        };
        let mut magic = [0u8; 4];
        let got = src.fill(&mut magic)?;
        if got == 0 {
            return Err(CaptureError::Empty {
                path: path.to_path_buf(),
            });
        }
        if got < magic.len() {
            return Err(CaptureError::TooShort {
                path: path.to_path_buf(),
                len: got as u64,
            });
        }
        let bad_header = |reason: String| CaptureError::BadHeader {
            path: path.to_path_buf(),
            reason,
        };
        match u32::from_be_bytes(magic) {
            0xA1B2_C3D4 | 0xD4C3_B2A1 | 0xA1B2_3C4D | 0x4D3C_B2A1 => {
                let mut hdr = [0u8; 24];
                hdr[..4].copy_from_slice(&magic);
                let got = src.fill(&mut hdr[4..])?;
                if got < 20 {
                    return Err(bad_header(format!(
                        "pcap file header cut off by end of file ({} of 24 bytes)",
                        4 + got
                    )));
                }
                let (_, header) = PcapHeader::from_slice(&hdr)
                    .map_err(|e| bad_header(format!("pcap file header: {e}")))?;
                let big_endian = header.endianness.is_big();
                let nanosecond = header.ts_resolution == pcap_file::TsResolution::NanoSecond;
                let field = u32::from(header.datalink);
                let fcs_len = if field & LT_FCS_PRESENT != 0 {
                    (field >> 28) * 2
                } else {
                    0
                };
                let lengths = match (header.version_major, header.version_minor) {
                    (2, minor) if minor < 3 => LengthOrder::Swapped,
                    (2, 3) => LengthOrder::Maybe,
                    (543, _) => LengthOrder::Swapped,
                    _ => LengthOrder::Normal,
                };
                Ok(CaptureReader {
                    src,
                    format: CaptureFormat::Pcap {
                        big_endian,
                        nanosecond,
                        version_major: header.version_major,
                        version_minor: header.version_minor,
                    },
                    kind: Kind::Pcap(PcapState {
                        big_endian,
                        nanosecond,
                        link_type: field & 0xFFFF,
                        fcs_len,
                        lengths,
                    }),
                    next_index: 0,
                    last_timestamp_ns: 0,
                    done: false,
                })
            }
            BT_SHB => {
                let mut bom = [0u8; 8];
                let got = src.fill(&mut bom)?;
                if got < bom.len() {
                    return Err(bad_header(format!(
                        "pcapng section header cut off by end of file ({} of at least 28 bytes)",
                        4 + got
                    )));
                }
                let big_endian = match u32::from_be_bytes([bom[4], bom[5], bom[6], bom[7]]) {
                    BOM_BE => true,
                    BOM_LE => false,
                    _ => {
                        return Err(CaptureError::NotACapture {
                            path: path.to_path_buf(),
                            magic,
                        });
                    }
                };
                let total_len = u32_at(&bom, 0, big_endian);
                let mut st = NgState {
                    big_endian,
                    interfaces: Vec::new(),
                    scratch: Vec::new(),
                };
                read_shb_rest(&mut src, &mut st, total_len).map_err(bad_header)?;
                Ok(CaptureReader {
                    src,
                    format: CaptureFormat::PcapNg { big_endian },
                    kind: Kind::PcapNg(st),
                    next_index: 0,
                    last_timestamp_ns: 0,
                    done: false,
                })
            }
            _ => Err(CaptureError::NotACapture {
                path: path.to_path_buf(),
                magic,
            }),
        }
    }

    /// The file this reader reads.
    pub fn path(&self) -> &Path {
        &self.src.path
    }

    /// The detected container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Number of packet records returned so far.
    pub fn records_read(&self) -> u64 {
        self.next_index
    }

    /// Reads the next record into `buf` (cleared first; its capacity is reused).
    ///
    /// On `Some(Ok(meta))`, `buf` holds the Ethernet frame when `meta.is_ethernet`,
    /// otherwise the frame's bytes as captured. `None` means the file has ended;
    /// after an error every further call returns `None`.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Option<Result<RecordMeta, CaptureError>> {
        if self.done {
            return None;
        }
        buf.clear();
        let result = match &mut self.kind {
            Kind::Pcap(st) => next_pcap(&mut self.src, st, self.next_index, buf),
            Kind::PcapNg(st) => next_pcapng(
                &mut self.src,
                st,
                self.next_index,
                self.last_timestamp_ns,
                buf,
            ),
        };
        match result {
            Ok(Some(meta)) => {
                self.next_index += 1;
                self.last_timestamp_ns = meta.timestamp_ns;
                Some(Ok(meta))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                buf.clear();
                Some(Err(e))
            }
        }
    }
}

impl Iterator for CaptureReader {
    type Item = Result<CaptureRecord, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        let meta = match self.next_into(&mut buf)? {
            Ok(meta) => meta,
            Err(e) => return Some(Err(e)),
        };
        let frame = match meta.unsupported_reason {
            None => Frame::Ethernet(buf),
            Some(reason) => Frame::Unsupported {
                link_type: meta.link_type,
                reason,
                len: buf.len(),
            },
        };
        Some(Ok(CaptureRecord {
            index: meta.index,
            timestamp_ns: meta.timestamp_ns,
            orig_len: meta.orig_len,
            link_type: meta.link_type,
            frame,
        }))
    }
}

impl std::iter::FusedIterator for CaptureReader {}

/// Fields of a record once its bytes are in `buf[headroom(link_type)..]`.
struct Raw {
    index: u64,
    timestamp_ns: u64,
    link_type: u32,
    captured_len: u32,
    orig_len: u32,
    fcs_len: u32,
}

/// Strips the FCS, converts to Ethernet and fixes up the original length.
fn finish(raw: Raw, buf: &mut Vec<u8>) -> RecordMeta {
    let room = headroom(raw.link_type);
    let mut orig = raw.orig_len;
    if raw.fcs_len > 0 {
        // The FCS ends the wire frame; only bytes past orig_len - fcs are FCS.
        let frame_len = orig.saturating_sub(raw.fcs_len);
        let keep = (buf.len() - room).min(frame_len as usize);
        buf.truncate(room + keep);
        orig = frame_len;
    }
    let raw_len = buf.len() - room;
    let unsupported_reason = to_ethernet(raw.link_type, buf).err();
    let orig = if unsupported_reason.is_none() {
        // Link header replaced by a 14-byte Ethernet header: same change to the wire length.
        i64::from(orig) + buf.len() as i64 - raw_len as i64
    } else {
        i64::from(orig)
    };
    let orig_len = orig.clamp(buf.len() as i64, i64::from(u32::MAX)) as u32;
    RecordMeta {
        index: raw.index,
        timestamp_ns: raw.timestamp_ns,
        orig_len,
        captured_len: raw.captured_len,
        link_type: raw.link_type,
        is_ethernet: unsupported_reason.is_none(),
        unsupported_reason,
    }
}

fn next_pcap(
    src: &mut Source,
    st: &PcapState,
    index: u64,
    buf: &mut Vec<u8>,
) -> Result<Option<RecordMeta>, CaptureError> {
    let at = src.offset;
    let mut hdr = [0u8; 16];
    let got = src.fill(&mut hdr)?;
    if got == 0 {
        return Ok(None);
    }
    if got < hdr.len() {
        return Err(src.damaged(
            index,
            at,
            format!("record header cut off by end of file ({got} of 16 bytes)"),
        ));
    }
    let be = st.big_endian;
    let ts_sec = u32_at(&hdr, 0, be);
    let ts_frac = u32_at(&hdr, 4, be);
    let (mut caplen, mut len) = (u32_at(&hdr, 8, be), u32_at(&hdr, 12, be));
    if st.lengths == LengthOrder::Swapped || (st.lengths == LengthOrder::Maybe && caplen > len) {
        std::mem::swap(&mut caplen, &mut len);
    }
    let limit = max_caplen(st.link_type);
    if caplen > limit {
        return Err(src.damaged(
            index,
            at,
            format!("implausible caplen {caplen} (limit {limit}), orig_len {len}"),
        ));
    }
    let room = headroom(st.link_type);
    buf.resize(room, 0);
    let got = src.append(buf, caplen as usize)?;
    if got < caplen as usize {
        return Err(src.damaged(
            index,
            at,
            format!("record data cut off by end of file (caplen {caplen}, {got} bytes left)"),
        ));
    }
    // Fraction ≥ 1 s (seen in damaged or fuzzed files) carries into the seconds.
    let frac_ns = u64::from(ts_frac) * if st.nanosecond { 1 } else { 1000 };
    let raw = Raw {
        index,
        timestamp_ns: u64::from(ts_sec) * 1_000_000_000 + frac_ns,
        link_type: st.link_type,
        captured_len: caplen,
        orig_len: len,
        fcs_len: st.fcs_len,
    };
    Ok(Some(finish(raw, buf)))
}

/// Reads the rest of a section header block whose type, length and byte-order
/// magic (12 bytes) have been read. Errors are reasons; the caller picks the variant.
fn read_shb_rest(src: &mut Source, st: &mut NgState, total_len: u32) -> Result<(), String> {
    if total_len < 28 || !total_len.is_multiple_of(4) || total_len > MAX_BLOCK_LEN {
        return Err(format!("implausible section header length {total_len}"));
    }
    let mut ver = [0u8; 4];
    if src.fill(&mut ver).map_err(|e| e.to_string())? < ver.len() {
        return Err("section header cut off by end of file".into());
    }
    let major = u16_at(&ver, 0, st.big_endian);
    let minor = u16_at(&ver, 2, st.big_endian);
    if major != 1 {
        return Err(format!("unsupported pcapng version {major}.{minor}"));
    }
    let rest = u64::from(total_len - 20);
    if src.skip(rest).map_err(|e| e.to_string())? < rest {
        return Err("section header cut off by end of file".into());
    }
    check_trailer(src, st.big_endian, total_len)?;
    st.interfaces.clear();
    Ok(())
}

/// Reads a block's trailing length and checks it against the leading one.
fn check_trailer(src: &mut Source, big_endian: bool, total_len: u32) -> Result<(), String> {
    let mut t = [0u8; 4];
    if src.fill(&mut t).map_err(|e| e.to_string())? < t.len() {
        return Err("block cut off by end of file".into());
    }
    let trailer = u32_at(&t, 0, big_endian);
    if trailer != total_len {
        return Err(format!(
            "block length fields disagree (leading {total_len}, trailing {trailer})"
        ));
    }
    Ok(())
}

fn parse_idb(body: &[u8], be: bool) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link_type: u32::from(u16_at(body, 0, be)),
        snaplen: u32_at(body, 4, be),
        tsresol: 6,
        tsoffset_s: 0,
        fcs_len: 0,
    };
    // Options: lenient, as readers are; a malformed option ends the list.
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, be);
        let len = usize::from(u16_at(opts, 2, be));
        if code == 0 || opts.len() < 4 + len {
            break;
        }
        let value = &opts[4..4 + len];
        match (code, len) {
            (9, 1) => iface.tsresol = value[0],
            (13, 1) if value[0].is_multiple_of(8) => iface.fcs_len = u32::from(value[0] / 8),
            (14, 8) => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(value);
                iface.tsoffset_s = if be {
                    i64::from_be_bytes(raw)
                } else {
                    i64::from_le_bytes(raw)
                };
            }
            _ => {}
        }
        let padded = len.div_ceil(4) * 4;
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    Some(iface)
}

fn next_pcapng(
    src: &mut Source,
    st: &mut NgState,
    index: u64,
    last_timestamp_ns: u64,
    buf: &mut Vec<u8>,
) -> Result<Option<RecordMeta>, CaptureError> {
    loop {
        let at = src.offset;
        let mut hdr = [0u8; 8];
        let got = src.fill(&mut hdr)?;
        if got == 0 {
            return Ok(None);
        }
        if got < hdr.len() {
            return Err(src.damaged(
                index,
                at,
                format!("block header cut off by end of file ({got} of 8 bytes)"),
            ));
        }
        let block_type = u32_at(&hdr, 0, st.big_endian);
        if block_type == BT_SHB {
            let mut bom = [0u8; 4];
            if src.fill(&mut bom)? < bom.len() {
                return Err(src.damaged(index, at, "section header cut off by end of file".into()));
            }
            st.big_endian = match u32::from_be_bytes(bom) {
                BOM_BE => true,
                BOM_LE => false,
                other => {
                    return Err(src.damaged(
                        index,
                        at,
                        format!("section header with unknown byte-order magic {other:#010x}"),
                    ));
                }
            };
            let total_len = u32_at(&hdr, 4, st.big_endian);
            read_shb_rest(src, st, total_len).map_err(|r| src.damaged(index, at, r))?;
            continue;
        }
        let total_len = u32_at(&hdr, 4, st.big_endian);
        if total_len < 12 || !total_len.is_multiple_of(4) || total_len > MAX_BLOCK_LEN {
            return Err(src.damaged(
                index,
                at,
                format!("implausible block length {total_len} (block type {block_type:#x})"),
            ));
        }
        let body_len = total_len - 12;
        let cut_off = |src: &Source| src.damaged(index, at, "block cut off by end of file".into());
        let be = st.big_endian;
        match block_type {
            BT_IDB => {
                st.scratch.clear();
                let mut scratch = std::mem::take(&mut st.scratch);
                let got = src.append(&mut scratch, body_len as usize)?;
                if got < body_len as usize {
                    return Err(cut_off(src));
                }
                let iface = parse_idb(&scratch, be);
                st.scratch = scratch;
                let iface = iface.ok_or_else(|| {
                    src.damaged(index, at, "interface description block too short".into())
                })?;
                check_trailer(src, be, total_len).map_err(|r| src.damaged(index, at, r))?;
                st.interfaces.push(iface);
            }
            BT_EPB | BT_PB | BT_SPB => {
                let fixed: u32 = if block_type == BT_SPB { 4 } else { 20 };
                if body_len < fixed {
                    return Err(src.damaged(
                        index,
                        at,
                        format!("packet block of {total_len} bytes is too short"),
                    ));
                }
                let mut f = [0u8; 20];
                if src.fill(&mut f[..fixed as usize])? < fixed as usize {
                    return Err(cut_off(src));
                }
                let room_for_data = body_len - fixed;
                let (if_id, units, caplen, orig_len) = if block_type == BT_SPB {
                    let orig_len = u32_at(&f, 0, be);
                    let snap = st.interfaces.first().map_or(0, |i| i.snaplen);
                    let snap = if snap == 0 { u32::MAX } else { snap };
                    (0, None, orig_len.min(room_for_data).min(snap), orig_len)
                } else {
                    let if_id = if block_type == BT_PB {
                        u32::from(u16_at(&f, 0, be))
                    } else {
                        u32_at(&f, 0, be)
                    };
                    let units = u64::from(u32_at(&f, 4, be)) << 32 | u64::from(u32_at(&f, 8, be));
                    (if_id, Some(units), u32_at(&f, 12, be), u32_at(&f, 16, be))
                };
                let iface = *st.interfaces.get(if_id as usize).ok_or_else(|| {
                    src.damaged(
                        index,
                        at,
                        format!(
                            "packet refers to interface {if_id}, but only {} are described",
                            st.interfaces.len()
                        ),
                    )
                })?;
                if caplen > room_for_data {
                    return Err(src.damaged(
                        index,
                        at,
                        format!("captured length {caplen} exceeds its block ({room_for_data} bytes left)"),
                    ));
                }
                let limit = max_caplen(iface.link_type);
                if caplen > limit {
                    return Err(src.damaged(
                        index,
                        at,
                        format!("implausible captured length {caplen} (limit {limit})"),
                    ));
                }
                let room = headroom(iface.link_type);
                buf.resize(room, 0);
                if src.append(buf, caplen as usize)? < caplen as usize {
                    return Err(cut_off(src));
                }
                let rest = u64::from(room_for_data - caplen);
                if src.skip(rest)? < rest {
                    return Err(cut_off(src));
                }
                check_trailer(src, be, total_len).map_err(|r| src.damaged(index, at, r))?;
                let timestamp_ns = match units {
                    Some(u) => ng_timestamp_ns(u, iface.tsresol, iface.tsoffset_s),
                    // Simple packet blocks carry no time: keep the previous record's.
                    None => last_timestamp_ns,
                };
                let raw = Raw {
                    index,
                    timestamp_ns,
                    link_type: iface.link_type,
                    captured_len: caplen,
                    orig_len,
                    fcs_len: iface.fcs_len,
                };
                return Ok(Some(finish(raw, buf)));
            }
            _ => {
                let rest = u64::from(body_len);
                if src.skip(rest)? < rest {
                    return Err(cut_off(src));
                }
                check_trailer(src, be, total_len).map_err(|r| src.damaged(index, at, r))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamp_resolutions() {
        // Default microseconds.
        assert_eq!(ng_timestamp_ns(1_500_000, 6, 0), 1_500_000_000);
        assert_eq!(ng_timestamp_ns(7, 9, 0), 7);
        assert_eq!(ng_timestamp_ns(7, 0, 0), 7_000_000_000);
        assert_eq!(ng_timestamp_ns(12_345, 12, 0), 12);
        // 2^-10 s units: 1024 units = 1 s.
        assert_eq!(ng_timestamp_ns(1024, 0x80 | 10, 0), 1_000_000_000);
        assert_eq!(ng_timestamp_ns(1, 0x80 | 1, 0), 500_000_000);
        assert_eq!(ng_timestamp_ns(3, 0x80, 0), 3_000_000_000);
        // Offsets in seconds, clamped at 0.
        assert_eq!(ng_timestamp_ns(1, 6, 10), 10_000_001_000);
        assert_eq!(ng_timestamp_ns(1, 6, -10), 0);
        // Absurd exponents do not overflow.
        assert_eq!(ng_timestamp_ns(u64::MAX, 127, 0), 0);
        assert_eq!(ng_timestamp_ns(u64::MAX, 0, 0), u64::MAX);
        assert_eq!(ng_timestamp_ns(u64::MAX, 0xFF, 0), 0);
    }

    #[test]
    fn format_display_matches_manifest_spelling() {
        let f = CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: true,
            version_major: 2,
            version_minor: 4,
        };
        assert_eq!(f.to_string(), "pcap-ns-le-v2.4");
        assert_eq!(
            CaptureFormat::PcapNg { big_endian: true }.to_string(),
            "pcapng-be"
        );
    }
}
