//! Byte layouts of table entries and mirror sessions as they travel through the registers.
//!
//! A table command carries up to 64 key bytes in `TBL_CMD.KEY[0..16]` and 64 value bytes in
//! `TBL_CMD.VALUE[0..16]`, little-endian words (byte 0 of the layout is bits 7:0 of word 0). A
//! mirror session travels in the 48 bytes of `MIRROR.STAGE[0..12]`. Each submodule gives one
//! layout in the style of smoltcp's `wire`: private byte ranges (`field`), a typed `Repr` with
//! `parse` (which rejects anything the device would answer `BAD_ENTRY` to) and `emit`, and tests
//! that pin sizes and offsets.
//!
//! Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), so
//! one comparator serves both families. Prefix lengths on the wire count bits of that 128-bit
//! form (an IPv4 /24 is stored as 120).
//!
//! [`ring`] holds the records of the DMA rings (command descriptors, completions, telemetry),
//! which travel through host memory rather than registers.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod acl;
pub mod map;
pub mod mirror_filter;
pub mod ring;
pub mod rule;
pub mod session;
pub mod shadow_map;
pub mod vni;
pub mod vport;

/// Bytes of the KEY register window.
pub const KEY_BYTES: usize = 64;
/// Bytes of the VALUE register window.
pub const VALUE_BYTES: usize = 64;
/// Words of the KEY and VALUE windows.
pub const WINDOW_WORDS: usize = 16;

/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00FF_FFFF;

/// Why bytes are not a valid entry: the device answers `BAD_ENTRY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A VNI does not fit in 24 bits.
    VniOutOfRange(u32),
    /// A prefix length is longer than its address family allows.
    PrefixTooLong(u8),
    /// A prefix has bits set beyond its length.
    HostBitsSet,
    /// Source and destination prefixes are of different families: no packet matches both.
    FamilyMismatch,
    /// A port range has its low end above its high end.
    PortRangeReversed {
        /// Low end.
        lo: u16,
        /// High end.
        hi: u16,
    },
    /// A field holds a value outside its enumeration.
    BadEnum {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A reserved byte is not zero.
    ReservedNotZero {
        /// Byte offset inside the layout.
        offset: usize,
    },
    /// Sampling one in zero packets.
    SampleZero,
    /// Truncation shorter than an Ethernet header.
    TruncateTooShort(u16),
    /// A policer whose burst cannot hold one full-size frame would police everything.
    BurstTooSmall(u32),
    /// A vport number beyond the device's ports.
    VportOutOfRange(u16),
    /// A mirror session number beyond the device's sessions.
    SessionOutOfRange(u16),
    /// An ACL police rule with a rate or burst of zero packets (it would drop everything;
    /// deny says that).
    PoliceZero(&'static str),
    /// A rule limited to TCP connection attempts whose protocol is not TCP.
    SynNeedsTcp,
}

impl core::error::Error for LayoutError {}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::VniOutOfRange(v) => write!(f, "VNI {v} does not fit in 24 bits"),
            LayoutError::PrefixTooLong(l) => write!(f, "prefix length {l} is too long"),
            LayoutError::HostBitsSet => f.write_str("prefix has bits set beyond its length"),
            LayoutError::FamilyMismatch => {
                f.write_str("source and destination prefixes are of different address families")
            }
            LayoutError::PortRangeReversed { lo, hi } => {
                write!(f, "port range {lo}-{hi} is reversed")
            }
            LayoutError::BadEnum { field, value } => write!(f, "{field} = {value} is not defined"),
            LayoutError::ReservedNotZero { offset } => {
                write!(f, "reserved byte {offset} is not zero")
            }
            LayoutError::SampleZero => f.write_str("sampling 1 in 0 packets"),
            LayoutError::TruncateTooShort(n) => {
                write!(
                    f,
                    "truncation to {n} bytes is shorter than an Ethernet header"
                )
            }
            LayoutError::BurstTooSmall(b) => {
                write!(
                    f,
                    "policer burst of {b} bytes cannot pass a full-size frame"
                )
            }
            LayoutError::VportOutOfRange(v) => write!(f, "vport {v} does not exist"),
            LayoutError::SessionOutOfRange(s) => write!(f, "mirror session {s} does not exist"),
            LayoutError::SynNeedsTcp => {
                f.write_str("a rule for TCP connection attempts needs protocol 6 (tcp)")
            }
            LayoutError::PoliceZero(what) => {
                write!(f, "a police rule's {what} must be at least one packet")
            }
        }
    }
}

/// Converts a byte window to register words (little-endian).
pub fn bytes_to_words<const B: usize, const W: usize>(bytes: &[u8; B]) -> [u32; W] {
    const { assert!(B == W * 4) };
    let mut words = [0u32; W];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

/// Converts register words to a byte window (little-endian).
pub fn words_to_bytes<const W: usize, const B: usize>(words: &[u32; W]) -> [u8; B] {
    const { assert!(B == W * 4) };
    let mut bytes = [0u8; B];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// The 16-byte wire form of an address (IPv4 mapped).
pub fn ip_to_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a 16-byte wire form (IPv4-mapped → IPv4).
#[inline]
pub fn ip_from_bytes(bytes: [u8; 16]) -> IpAddr {
    // As one integer: the pipeline converts an address per frame it encapsulates.
    let bits = u128::from_be_bytes(bytes);
    if is_v4_mapped(&bytes) {
        IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from_bits(bits))
    }
}

/// Whether a 16-byte wire address is IPv4-mapped (`::ffff:a.b.c.d`).
#[inline]
pub fn is_v4_mapped(bytes: &[u8; 16]) -> bool {
    u128::from_be_bytes(*bytes) >> 32 == 0xFFFF
}

/// The all-zero address: what an all-zero address field reads as.
pub const UNSPECIFIED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// An address prefix: `addr/len` with `len` counted in the address's own family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix; rejects lengths beyond the family and bits set past the length.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, LayoutError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(LayoutError::PrefixTooLong(len));
        }
        let prefix = Prefix { addr, len };
        let bytes = ip_to_bytes(addr);
        if mask_bytes(&bytes, prefix.wire_len()) != bytes {
            return Err(LayoutError::HostBitsSet);
        }
        Ok(prefix)
    }

    /// The prefix covering one address.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The length in bits of the address's own family.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is a zero-length prefix (every address of its family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length on the 128-bit wire form.
    pub fn wire_len(&self) -> u8 {
        if self.addr.is_ipv4() {
            96 + self.len
        } else {
            self.len
        }
    }

    /// Whether the prefix contains an address given in wire form.
    pub fn contains_bytes(&self, ip: &[u8; 16]) -> bool {
        mask_bytes(ip, self.wire_len()) == ip_to_bytes(self.addr)
    }

    /// Whether the prefix contains an address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_bytes(&ip_to_bytes(ip))
    }

    /// Whether two prefixes share at least one address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        let shorter = self.wire_len().min(other.wire_len());
        mask_bytes(&ip_to_bytes(self.addr), shorter)
            == mask_bytes(&ip_to_bytes(other.addr), shorter)
    }

    /// Reads a prefix from its wire form (address + 128-bit length).
    pub fn from_wire(bytes: [u8; 16], wire_len: u8) -> Result<Prefix, LayoutError> {
        if wire_len > 128 {
            return Err(LayoutError::PrefixTooLong(wire_len));
        }
        if mask_bytes(&bytes, wire_len) != bytes {
            return Err(LayoutError::HostBitsSet);
        }
        if is_v4_mapped(&bytes) && wire_len >= 96 {
            Ok(Prefix {
                addr: ip_from_bytes(bytes),
                len: wire_len - 96,
            })
        } else {
            Ok(Prefix {
                addr: IpAddr::V6(Ipv6Addr::from(bytes)),
                len: wire_len,
            })
        }
    }
}

impl core::fmt::Display for Prefix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a prefix string does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixParseError {
    /// The address part is not an IPv4 or IPv6 address.
    BadAddress,
    /// The length part is not a number.
    BadLength,
    /// The prefix itself is invalid.
    Invalid(LayoutError),
}

impl core::error::Error for PrefixParseError {}

impl core::fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PrefixParseError::BadAddress => f.write_str("not an IPv4 or IPv6 address"),
            PrefixParseError::BadLength => f.write_str("prefix length is not a number"),
            PrefixParseError::Invalid(e) => e.fmt(f),
        }
    }
}

impl core::str::FromStr for Prefix {
    type Err = PrefixParseError;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, PrefixParseError> {
        match s.split_once('/') {
            Some((addr, len)) => {
                let addr: IpAddr = addr.parse().map_err(|_| PrefixParseError::BadAddress)?;
                let len: u8 = len.parse().map_err(|_| PrefixParseError::BadLength)?;
                Prefix::new(addr, len).map_err(PrefixParseError::Invalid)
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| PrefixParseError::BadAddress)?;
                Ok(Prefix::host(addr))
            }
        }
    }
}

/// Keeps the first `len` bits of a 16-byte address.
pub fn mask_bytes(bytes: &[u8; 16], len: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    let len = len.min(128) as usize;
    let full = len / 8;
    out[..full].copy_from_slice(&bytes[..full]);
    if !len.is_multiple_of(8) {
        out[full] = bytes[full] & (0xFFu8 << (8 - len % 8));
    }
    out
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    /// A range; rejects `lo > hi`.
    pub fn new(lo: u16, hi: u16) -> Result<PortRange, LayoutError> {
        if lo > hi {
            return Err(LayoutError::PortRangeReversed { lo, hi });
        }
        Ok(PortRange { lo, hi })
    }

    /// One port.
    pub const fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Whether the range is every port.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }

    /// Whether the range holds a port.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl core::fmt::Display for PortRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// A 48-bit MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl core::str::FromStr for Mac {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Mac, &'static str> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or("a MAC address has six bytes")?;
            if part.len() != 2 {
                return Err("each MAC byte is two hex digits");
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| "MAC bytes are hex digits")?;
        }
        if parts.next().is_some() {
            return Err("a MAC address has six bytes");
        }
        Ok(Mac(out))
    }
}

pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get_16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&b[at..at + 16]);
    out
}

pub(crate) fn get_mac(b: &[u8], at: usize) -> Mac {
    let mut out = [0u8; 6];
    out.copy_from_slice(&b[at..at + 6]);
    Mac(out)
}

/// Fails when any byte of `b[range]` is not zero.
pub(crate) fn check_reserved(b: &[u8], range: core::ops::Range<usize>) -> Result<(), LayoutError> {
    let start = range.start;
    match b[range].iter().position(|&x| x != 0) {
        Some(i) => Err(LayoutError::ReservedNotZero { offset: start + i }),
        None => Ok(()),
    }
}

pub(crate) fn check_vni(vni: u32) -> Result<u32, LayoutError> {
    if vni > VNI_MAX {
        Err(LayoutError::VniOutOfRange(vni))
    } else {
        Ok(vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_little_endian() {
        let mut bytes = [0u8; 64];
        bytes[0] = 0x11;
        bytes[3] = 0x44;
        bytes[4] = 0x55;
        let words: [u32; 16] = bytes_to_words(&bytes);
        assert_eq!(words[0], 0x4400_0011);
        assert_eq!(words[1], 0x0000_0055);
        let back: [u8; 64] = words_to_bytes(&words);
        assert_eq!(back, bytes);
    }

    #[test]
    fn ipv4_is_mapped_and_back() {
        let ip: IpAddr = "10.1.2.3".parse().expect("literal");
        let b = ip_to_bytes(ip);
        assert_eq!(&b[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(&b[12..], &[10, 1, 2, 3]);
        assert_eq!(ip_from_bytes(b), ip);
        let v6: IpAddr = "2001:db8::1".parse().expect("literal");
        assert_eq!(ip_from_bytes(ip_to_bytes(v6)), v6);
    }

    #[test]
    fn prefixes_parse_check_and_match() {
        let p: Prefix = "10.1.0.0/16".parse().expect("valid");
        assert_eq!(p.wire_len(), 112);
        assert!(p.contains("10.1.200.3".parse().expect("literal")));
        assert!(!p.contains("10.2.0.1".parse().expect("literal")));
        assert!(!p.contains("::a01:1".parse().expect("literal")));
        assert_eq!(
            "10.1.0.1/16".parse::<Prefix>(),
            Err(PrefixParseError::Invalid(LayoutError::HostBitsSet))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(PrefixParseError::Invalid(LayoutError::PrefixTooLong(33)))
        );
        assert_eq!(
            "nope/3".parse::<Prefix>(),
            Err(PrefixParseError::BadAddress)
        );
        let v6: Prefix = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains("2001:db8:1::5".parse().expect("literal")));
        let back = Prefix::from_wire(ip_to_bytes(p.addr()), p.wire_len()).expect("valid");
        assert_eq!(back, p);
        assert!(p.overlaps(&"10.1.2.0/24".parse().expect("valid")));
        assert!(!p.overlaps(&"10.2.0.0/16".parse().expect("valid")));
        let any4: Prefix = "0.0.0.0/0".parse().expect("valid");
        assert_eq!(any4.wire_len(), 96);
        assert!(!any4.contains("2001:db8::1".parse().expect("literal")));
    }

    #[test]
    fn macs_parse_and_print() {
        let m: Mac = "02:00:5e:10:00:ff".parse().expect("valid");
        assert_eq!(m.0, [2, 0, 0x5e, 0x10, 0, 0xff]);
        assert_eq!(format_mac(m).as_str(), "02:00:5e:10:00:ff");
        assert!("02:00:5e:10:00".parse::<Mac>().is_err());
        assert!("02:00:5e:10:00:ff:01".parse::<Mac>().is_err());
        assert!("0g:00:5e:10:00:ff".parse::<Mac>().is_err());
    }

    fn format_mac(m: Mac) -> FixedStr {
        use core::fmt::Write;
        let mut s = FixedStr::default();
        write!(s, "{m}").expect("fits");
        s
    }

    #[derive(Default)]
    struct FixedStr {
        buf: [u8; 32],
        len: usize,
    }
    impl FixedStr {
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).expect("ascii")
        }
    }
    impl core::fmt::Write for FixedStr {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            self.buf
                .get_mut(self.len..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    #[test]
    fn port_ranges() {
        assert!(PortRange::new(10, 5).is_err());
        let r = PortRange::new(1000, 2000).expect("valid");
        assert!(r.contains(1500) && !r.contains(2001));
        assert!(PortRange::ANY.is_any());
    }
}
