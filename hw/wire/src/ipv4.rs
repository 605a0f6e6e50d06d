//! IPv4 (RFC 791): header view with fragmentation fields, an options iterator, and a `Repr`
//! for option-less headers such as the outer header of a tunnel.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::error::Error;

/// IANA protocol numbers, shared by the IPv4 protocol field and the IPv6 next header field.
pub mod protocol {
    /// IPv6 hop-by-hop options (IPv6 next header only).
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP.
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 destination options.
    pub const IPV6_OPTS: u8 = 60;
}

/// IPv4 option kinds (the whole type octet: copied flag, class and number).
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (padding between options).
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Internet timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Basic security (RFC 1108).
    pub const SECURITY: u8 = 130;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert (RFC 2113).
    pub const ROUTER_ALERT: u8 = 148;
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than the header,
    /// and [`payload`](Packet::payload) if it is shorter than the total length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Packet::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header and the total length fit the buffer and agree with each other.
    /// The version is not checked here; [`Repr::parse`] does.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || total_len < header_len {
            Err(Error::Malformed)
        } else if header_len > len || total_len > len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Version nibble (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// Don't fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments flag.
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units; 8191 × 8 still fits a u16).
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this packet is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.read_u16(field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Upper-layer protocol ([`protocol`] constants).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as received.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::data(header) == 0xffff
    }

    /// The option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// An iterator over the options.
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.options())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: from the end of the header to the total length (Ethernet padding
    /// excluded).
    pub fn payload(&self) -> &'a [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the DSCP.
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Sets the ECN bits.
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT, value);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let raw = self.read_u16(field::FLG_OFF);
        self.write_u16(field::FLG_OFF, if value { raw | flag } else { raw & !flag });
    }

    /// Sets the don't fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    /// Sets the more fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = self.read_u16(field::FLG_OFF);
        self.write_u16(field::FLG_OFF, (raw & !OFFSET_MASK) | (value >> 3));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the upper-layer protocol.
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes and stores the header checksum; call it after every other header field is set.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(!sum);
    }

    /// Mutable access to the payload (header length up to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// One IPv4 option as found by [`OptionsIter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The option type octet ([`option`] constants).
    pub kind: u8,
    /// The option data, without the type and length octets (empty for NOP).
    pub data: &'a [u8],
}

/// Iterates over IPv4 options, stopping at End of Option List or the end of the options.
///
/// A length octet below 2 or running past the options yields one `Err(Error::Malformed)`
/// and ends the iteration, since nothing after it can be located.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    /// Iterates over raw option bytes (as returned by [`Packet::options`]).
    pub const fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter { rest: options }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<Ipv4Option<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            option::END => {
                self.rest = &[];
                None
            }
            option::NOP => {
                self.rest = after_kind;
                Some(Ok(Ipv4Option { kind, data: &[] }))
            }
            _ => {
                let len = after_kind.first().map(|&l| usize::from(l));
                match len.filter(|&l| l >= 2).and_then(|l| self.rest.get(2..l)) {
                    Some(data) => {
                        self.rest = &self.rest[data.len() + 2..];
                        Some(Ok(Ipv4Option { kind, data }))
                    }
                    None => {
                        self.rest = &[];
                        Some(Err(Error::Malformed))
                    }
                }
            }
        }
    }
}

/// A high-level representation of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Upper-layer protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length minus the header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Differentiated services code point and ECN, as the second header octet.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment flag.
    pub dont_frag: bool,
    /// More fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
}

impl Repr {
    /// Reads a header. Options are skipped (the `Repr` does not carry them) and the checksum
    /// is not verified: use [`Packet::verify_checksum`] where that matters.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        let buf = packet.buffer.as_ref();
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            tos: buf[field::DSCP_ECN],
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with a correct checksum. `payload_len` must be at most
    /// 65515 so the total length fits; the caller checks that. The buffer must hold at least
    /// [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        // Built in a local array and copied once: the encapsulation path emits one of these
        // per frame, and per-field setters would each re-check the buffer's length.
        let mut h = [0u8; HEADER_LEN];
        h[0] = 0x45;
        h[field::DSCP_ECN] = self.tos;
        h[2..4].copy_from_slice(&((HEADER_LEN + self.payload_len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let mut flg_off = (self.frag_offset >> 3) & OFFSET_MASK;
        if self.dont_frag {
            flg_off |= FLAG_DF;
        }
        if self.more_frags {
            flg_off |= FLAG_MF;
        }
        h[6..8].copy_from_slice(&flg_off.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[12..16].copy_from_slice(&self.src_addr.octets());
        h[16..20].copy_from_slice(&self.dst_addr.octets());
        let sum = !checksum::data(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        packet.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The IPv4 header of a TCP SYN from 192.168.1.100 to 93.184.216.34: total length 60, DF,
    // TTL 64; the checksum is left zero and filled by `syn_packet`.
    const SYN_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x8f, 0x3a, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0xa8, 0x01,
        0x64, 0x5d, 0xb8, 0xd8, 0x22,
    ];

    fn syn_packet() -> [u8; 60] {
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&SYN_HEADER);
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        buf
    }

    #[test]
    fn read() {
        let buf = syn_packet();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x8f3a);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::TCP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(93, 184, 216, 34));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 40);
        assert!(p.options().is_empty());
    }

    #[test]
    fn check_len_cases() {
        let buf = syn_packet();
        assert_eq!(
            Packet::new_checked(&buf[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&buf[..59]).err(),
            Some(Error::Truncated)
        );
        let mut bad = buf;
        bad[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&bad[..]).err(), Some(Error::Malformed));
        let mut bad = buf;
        bad[2..4].copy_from_slice(&16u16.to_be_bytes()); // total < header
        assert_eq!(Packet::new_checked(&bad[..]).err(), Some(Error::Malformed));
        // Ethernet padding after the packet is fine.
        let mut padded = [0u8; 64];
        padded[..60].copy_from_slice(&buf);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 40);
    }

    #[test]
    fn fragment_fields() {
        let mut buf = syn_packet();
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(&buf[6..8], &[0x20, 0xb9]);
    }

    #[test]
    fn options_iterator() {
        // IHL 8: router alert (4 bytes), NOP, timestamp-ish TLV of length 3, END, padding.
        let mut buf = [0u8; 32];
        buf[..20].copy_from_slice(&SYN_HEADER);
        buf[0] = 0x48;
        buf[2..4].copy_from_slice(&32u16.to_be_bytes());
        buf[20..32].copy_from_slice(&[
            0x94, 0x04, 0x00, 0x00, 0x01, 0x44, 0x03, 0xaa, 0x00, 0x00, 0x00, 0x00,
        ]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        let mut it = p.options_iter();
        assert_eq!(
            it.next(),
            Some(Ok(Ipv4Option {
                kind: option::ROUTER_ALERT,
                data: &[0, 0]
            }))
        );
        assert_eq!(
            it.next(),
            Some(Ok(Ipv4Option {
                kind: option::NOP,
                data: &[]
            }))
        );
        assert_eq!(
            it.next(),
            Some(Ok(Ipv4Option {
                kind: option::TIMESTAMP,
                data: &[0xaa]
            }))
        );
        assert_eq!(it.next(), None);
    }

    #[test]
    fn options_iterator_malformed() {
        // Length 1 is impossible, length 9 runs past the 4 option bytes.
        for opts in [
            [0x07u8, 0x01, 0, 0],
            [0x07, 0x09, 0, 0],
            [0x01, 0x01, 0x01, 0x07],
        ] {
            assert_eq!(
                OptionsIter::new(&opts).last(),
                Some(Err(Error::Malformed)),
                "{opts:?}"
            );
        }
    }

    #[test]
    fn repr_round_trip() {
        let buf = syn_packet();
        let repr = Repr::parse(&Packet::new_unchecked(&buf[..])).unwrap();
        assert_eq!(repr.payload_len, 40);
        let mut out = [0u8; 20];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, buf[..20]);
    }

    #[test]
    fn repr_rejects_bad_version() {
        let mut buf = syn_packet();
        buf[0] = 0x65;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::Malformed)
        );
    }
}
