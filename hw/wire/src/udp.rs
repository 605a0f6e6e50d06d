//! UDP (RFC 768) datagram header.

use core::net::IpAddr;

use crate::checksum;
use crate::error::Error;
use crate::ipv4::protocol;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes,
    /// and [`payload`](Packet::payload) if shorter than the length field says.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Packet::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header fits and that the length field is at least 8 and within the
    /// buffer. (Length 0 is legal only in IPv6 jumbograms, RFC 2675; the parser stage handles
    /// that case itself.)
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            Err(Error::Malformed)
        } else if field_len > len {
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Length of header plus payload.
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as received; 0 means "not computed" over IPv4.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Whether the checksum is correct for the datagram (per its length field) sent from `src`
    /// to `dst`. A zero checksum over IPv4 means none was computed and passes; over IPv6 it
    /// is never valid (RFC 8200 8.1). False when the addresses differ in family.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_)));
        }
        let Some(data) = self.buffer.as_ref().get(..usize::from(self.len())) else {
            return false;
        };
        match checksum::pseudo_header(src, dst, protocol::UDP, u32::from(self.len())) {
            Some(pseudo) => checksum::combine(&[pseudo, checksum::data(data)]) == 0xffff,
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload per the length field.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.write_u16(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.write_u16(field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Computes the checksum over the datagram (per its length field) and stores it; a
    /// computed 0 is sent as 0xffff, since 0 means "no checksum". Fails when the addresses
    /// differ in family or the buffer is shorter than the length field.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) -> Result<(), Error> {
        self.set_checksum(0);
        let len = self.len();
        let data = self
            .buffer
            .as_ref()
            .get(..usize::from(len))
            .ok_or(Error::Truncated)?;
        let pseudo = checksum::pseudo_header(src, dst, protocol::UDP, u32::from(len))
            .ok_or(Error::Malformed)?;
        let sum = !checksum::combine(&[pseudo, checksum::data(data)]);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
        Ok(())
    }

    /// Mutable access to the payload per the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A high-level representation of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Reads the ports of a checked datagram.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for `payload_len` bytes of payload with a zero checksum; callers
    /// that need one call [`Packet::fill_checksum`] after writing the payload. The caller
    /// keeps `payload_len` at most 65527.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, payload_len: usize) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    // DNS query for example.com A, 192.168.1.100:53124 -> 8.8.8.8:53 (checksum verified by
    // Wireshark).
    const DNS: [u8; 37] = [
        0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0xe2, 0x92, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
        0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));

    #[test]
    fn read() {
        let p = Packet::new_checked(&DNS[..]).unwrap();
        assert_eq!(p.src_port(), 53124);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert!(!p.is_empty());
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(&SRC, &DST));
        assert!(!p.verify_checksum(&SRC, &SRC));
    }

    #[test]
    fn check_len_cases() {
        assert_eq!(Packet::new_checked(&DNS[..7]).err(), Some(Error::Truncated));
        assert_eq!(
            Packet::new_checked(&DNS[..36]).err(),
            Some(Error::Truncated)
        );
        let mut bad = DNS;
        bad[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn zero_checksum() {
        let mut buf = DNS;
        buf[6..8].copy_from_slice(&[0, 0]);
        let p = Packet::new_unchecked(&buf[..]);
        assert!(p.verify_checksum(&SRC, &DST));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(!p.verify_checksum(&v6, &v6));
    }

    #[test]
    fn fill_checksum_matches_sender() {
        let mut buf = DNS;
        Packet::new_unchecked(&mut buf[..])
            .fill_checksum(&SRC, &DST)
            .unwrap();
        assert_eq!(buf, DNS);
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr::parse(&Packet::new_unchecked(&DNS[..])).unwrap();
        let mut buf = DNS;
        buf[..8].fill(0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, 29);
        p.fill_checksum(&SRC, &DST).unwrap();
        assert_eq!(buf, DNS);
    }
}
