//! IPv6 (RFC 8200): the fixed header, extension headers and the options inside hop-by-hop
//! and destination options headers, including the jumbo payload option (RFC 2675).

use core::net::Ipv6Addr;

use crate::error::Error;
use crate::ipv4::protocol;

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Whether `next_header` names one of the extension headers the parser walks: hop-by-hop,
/// routing, fragment, destination options and AH. ESP is not among them: what follows it is
/// encrypted, so it ends the chain like an upper-layer protocol.
pub const fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        protocol::HOPOPT
            | protocol::IPV6_ROUTE
            | protocol::IPV6_FRAG
            | protocol::IPV6_OPTS
            | protocol::AH
    )
}

/// A read/write view of an IPv6 fixed header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 40 bytes,
    /// and [`payload`](Packet::payload) if shorter than the payload length says.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Packet::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header and the payload length fit the buffer. A jumbogram
    /// (payload length 0) passes with an empty [`payload`](Packet::payload); its real length
    /// is in the hop-by-hop header.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Version nibble (6 for a valid packet).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length: bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The first extension header or the upper-layer protocol.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Destination address (of this hop: a routing header may name later ones).
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload per the payload length field (Ethernet padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, value: u8) {
        let v = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_ver_tc_flow(v);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Sets the flow label (low 20 bits used).
    pub fn set_flow_label(&mut self, value: u32) {
        let v = (self.ver_tc_flow() & 0xfff0_0000) | (value & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Mutable access to the payload per the payload length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A high-level representation of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; the buffer must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ver_tc_flow(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff),
        );
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

mod ext_field {
    use core::ops::Range;

    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    pub const DATA: usize = 2;
    // Routing header only.
    pub const ROUTING_TYPE: usize = 2;
    pub const SEGMENTS_LEFT: usize = 3;
    // Fragment header.
    pub const FRAG_OFF_M: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
    // Authentication header.
    pub const AH_SPI: Range<usize> = 4..8;
    pub const AH_SEQ: Range<usize> = 8..12;
}

/// A read/write view of an extension header whose length counts 8-byte units beyond the
/// first: hop-by-hop options, routing and destination options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checking it; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> ExtHeader<T> {
        ExtHeader { buffer }
    }

    /// Wraps a buffer after checking that the whole header fits.
    pub fn new_checked(buffer: T) -> Result<ExtHeader<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the whole header, as long as its length field says, fits the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < 8 || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The following header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ext_field::NXT_HDR]
    }

    /// Header length in bytes: (length field + 1) × 8.
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[ext_field::LENGTH]) + 1) * 8
    }

    /// Everything after the next header and length octets: options, or routing data.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[ext_field::DATA..self.header_len()]
    }

    /// Iterates over the options of a hop-by-hop or destination options header.
    pub fn options(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.data())
    }

    /// The routing type (routing headers only).
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[ext_field::ROUTING_TYPE]
    }

    /// Segments left (routing headers only).
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[ext_field::SEGMENTS_LEFT]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Sets the following header.
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[ext_field::NXT_HDR] = value;
    }

    /// Sets the header length in bytes (a multiple of 8, 8..=2048).
    pub fn set_header_len(&mut self, value: usize) {
        self.buffer.as_mut()[ext_field::LENGTH] = (value / 8).saturating_sub(1) as u8;
    }

    /// Mutable access to the data after the next header and length octets.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[ext_field::DATA..end]
    }
}

/// Length of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A read/write view of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> FragmentHeader<T> {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer after checking that it holds 8 bytes.
    pub fn new_checked(buffer: T) -> Result<FragmentHeader<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that every accessor is in bounds.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn off_m(&self) -> u16 {
        let d = &self.buffer.as_ref()[ext_field::FRAG_OFF_M];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The header after the fragmentable part.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ext_field::NXT_HDR]
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        self.off_m() & 0xfff8
    }

    /// More fragments flag.
    pub fn more_frags(&self) -> bool {
        self.off_m() & 0x0001 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        let d = &self.buffer.as_ref()[ext_field::FRAG_IDENT];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Sets the next header.
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[ext_field::NXT_HDR] = value;
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        let v = (self.off_m() & 0x0007) | (value & 0xfff8);
        self.buffer.as_mut()[ext_field::FRAG_OFF_M].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the more fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        let v = (self.off_m() & 0xfffe) | u16::from(value);
        self.buffer.as_mut()[ext_field::FRAG_OFF_M].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u32) {
        self.buffer.as_mut()[ext_field::FRAG_IDENT].copy_from_slice(&value.to_be_bytes());
    }
}

/// Smallest authentication header: next header, length, reserved, SPI, sequence number.
pub const AUTH_HEADER_MIN_LEN: usize = 12;

/// A read-only view of an IPsec authentication header (RFC 4302), whose length counts
/// 4-byte units minus 2, unlike the other extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AuthHeader<T> {
    /// Wraps a buffer without checking it; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> AuthHeader<T> {
        AuthHeader { buffer }
    }

    /// Wraps a buffer after checking that the whole header fits and covers its fixed fields.
    pub fn new_checked(buffer: T) -> Result<AuthHeader<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the buffer against the length field.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < AUTH_HEADER_MIN_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else if self.header_len() < AUTH_HEADER_MIN_LEN {
            Err(Error::Malformed)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The following header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ext_field::NXT_HDR]
    }

    /// Header length in bytes: (length field + 2) × 4.
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[ext_field::LENGTH]) + 2) * 4
    }

    /// Security parameters index.
    pub fn spi(&self) -> u32 {
        let d = &self.buffer.as_ref()[ext_field::AH_SPI];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Sequence number.
    pub fn sequence_number(&self) -> u32 {
        let d = &self.buffer.as_ref()[ext_field::AH_SEQ];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Integrity check value.
    pub fn icv(&self) -> &[u8] {
        &self.buffer.as_ref()[ext_field::AH_SEQ.end..self.header_len()]
    }
}

/// Option types inside hop-by-hop and destination options headers.
pub mod option {
    /// A single padding byte; the only option without a length octet.
    pub const PAD1: u8 = 0x00;
    /// Padding of any length.
    pub const PADN: u8 = 0x01;
    /// Router alert (RFC 2711).
    pub const ROUTER_ALERT: u8 = 0x05;
    /// Jumbo payload (RFC 2675): 4 bytes of payload length.
    pub const JUMBO_PAYLOAD: u8 = 0xc2;
}

/// One option found by [`OptionsIter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Option<'a> {
    /// Option type ([`option`] constants).
    pub ty: u8,
    /// Option data without type and length octets (empty for Pad1).
    pub data: &'a [u8],
}

impl Ipv6Option<'_> {
    /// The jumbo payload length, if this is a well-formed jumbo payload option.
    pub fn jumbo_payload_len(&self) -> Option<u32> {
        match (self.ty, self.data) {
            (option::JUMBO_PAYLOAD, &[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }
}

/// Iterates over the TLV options of a hop-by-hop or destination options header.
///
/// An option running past the end yields one `Err(Error::Malformed)` and ends the iteration.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    /// Iterates over raw option bytes (as returned by [`ExtHeader::data`]).
    pub const fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter { rest: options }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<Ipv6Option<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&ty, after_ty) = self.rest.split_first()?;
        if ty == option::PAD1 {
            self.rest = after_ty;
            return Some(Ok(Ipv6Option { ty, data: &[] }));
        }
        let found = after_ty.split_first().and_then(|(&len, after_len)| {
            let len = usize::from(len);
            Some((after_len.get(..len)?, after_len.get(len..)?))
        });
        match found {
            Some((data, rest)) => {
                self.rest = rest;
                Some(Ok(Ipv6Option { ty, data }))
            }
            None => {
                self.rest = &[];
                Some(Err(Error::Malformed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv6 TCP SYN 2001:db8::1 -> 2001:db8::2 with a hop-by-hop header (router alert + PadN)
    // and an atomic fragment header before the 20-byte TCP header.
    const PACKET: [u8; 76] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x40, // ver 6, plen 36, HBH, hlim 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0x2c, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00, // HBH: next frag, router alert, PadN
        0x06, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, // frag: next TCP, offset 0, M 0
        0xc0, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, // TCP SYN header (checksum not computed here)
    ];

    #[test]
    fn fixed_header() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.payload_len(), 36);
        assert_eq!(p.next_header(), protocol::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 36);
    }

    #[test]
    fn check_len_cases() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..75]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn extension_chain() {
        let hbh = ExtHeader::new_checked(&PACKET[40..]).unwrap();
        assert_eq!(hbh.next_header(), protocol::IPV6_FRAG);
        assert_eq!(hbh.header_len(), 8);
        let mut opts = hbh.options();
        assert_eq!(
            opts.next(),
            Some(Ok(Ipv6Option {
                ty: option::ROUTER_ALERT,
                data: &[0, 0]
            }))
        );
        assert_eq!(
            opts.next(),
            Some(Ok(Ipv6Option {
                ty: option::PADN,
                data: &[]
            }))
        );
        assert_eq!(opts.next(), None);
        let frag = FragmentHeader::new_checked(&PACKET[48..]).unwrap();
        assert_eq!(frag.next_header(), protocol::TCP);
        assert_eq!(frag.frag_offset(), 0);
        assert!(!frag.more_frags());
        assert_eq!(frag.ident(), 0x1234_5678);
    }

    #[test]
    fn fragment_setters() {
        let mut buf = [0u8; 8];
        let mut f = FragmentHeader::new_unchecked(&mut buf[..]);
        f.set_next_header(protocol::UDP);
        f.set_frag_offset(1448);
        f.set_more_frags(true);
        f.set_ident(7);
        assert_eq!(buf, [17, 0, 0x05, 0xa9, 0, 0, 0, 7]);
    }

    #[test]
    fn ext_header_truncated() {
        // Length field 1 means 16 bytes; only 8 are present.
        let buf = [0x06, 0x01, 0x01, 0x04, 0, 0, 0, 0];
        assert_eq!(
            ExtHeader::new_checked(&buf[..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            ExtHeader::new_checked(&buf[..7]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn jumbo_option() {
        // A hop-by-hop header holding only a jumbo payload option of 70000 bytes.
        let hbh = [0x11, 0x00, 0xc2, 0x04, 0x00, 0x01, 0x11, 0x70];
        let h = ExtHeader::new_checked(&hbh[..]).unwrap();
        let jumbo = h
            .options()
            .filter_map(Result::ok)
            .find_map(|o| o.jumbo_payload_len());
        assert_eq!(jumbo, Some(70000));
    }

    #[test]
    fn options_malformed() {
        // PadN claiming 9 bytes in a 6-byte option area.
        let mut it = OptionsIter::new(&[0x01, 0x09, 0, 0, 0, 0]);
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
        // A type octet with no length octet.
        let mut it = OptionsIter::new(&[0x00, 0x05]);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
    }

    #[test]
    fn auth_header() {
        // AH: next TCP, length 4 -> 24 bytes, SPI 0x100, seq 1, 12-byte ICV.
        let mut ah = [0u8; 24];
        ah[..12].copy_from_slice(&[6, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
        let h = AuthHeader::new_checked(&ah[..]).unwrap();
        assert_eq!(h.header_len(), 24);
        assert_eq!(h.next_header(), protocol::TCP);
        assert_eq!(h.spi(), 0x100);
        assert_eq!(h.sequence_number(), 1);
        assert_eq!(h.icv().len(), 12);
        assert_eq!(
            AuthHeader::new_checked(&ah[..23]).err(),
            Some(Error::Truncated)
        );
        let mut short = ah;
        short[1] = 0; // 8 bytes: less than the fixed fields
        assert_eq!(
            AuthHeader::new_checked(&short[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr::parse(&Packet::new_unchecked(&PACKET[..])).unwrap();
        let mut out = [0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, PACKET[..40]);
        let mut bad = PACKET;
        bad[0] = 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0x12345)
        );
        assert_eq!(&buf[..4], &[0x6b, 0x81, 0x23, 0x45]);
    }

    #[test]
    fn extension_header_set() {
        for nh in [0u8, 43, 44, 51, 60] {
            assert!(is_extension_header(nh));
        }
        for nh in [6u8, 17, 50, 58, 59] {
            assert!(!is_extension_header(nh));
        }
    }
}
