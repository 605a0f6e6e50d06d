//! ARP (RFC 826). The view handles any hardware/protocol address length; the [`Repr`] only
//! Ethernet/IPv4, the one combination a datacenter NIC sees.

use core::net::Ipv4Addr;

use crate::error::Error;
use crate::ethernet::{EthernetAddress, ethertype};

/// ARP operation codes.
pub mod operation {
    /// Request (who has?).
    pub const REQUEST: u16 = 1;
    /// Reply (is at).
    pub const REPLY: u16 = 2;
}

/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    #![allow(non_snake_case)]
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;

    // The address fields move with the address lengths, so their ranges are functions.
    pub const fn SHA(hlen: u8, _plen: u8) -> Range<usize> {
        let start = OPER.end;
        start..start + hlen as usize
    }

    pub const fn SPA(hlen: u8, plen: u8) -> Range<usize> {
        let start = SHA(hlen, plen).end;
        start..start + plen as usize
    }

    pub const fn THA(hlen: u8, plen: u8) -> Range<usize> {
        let start = SPA(hlen, plen).end;
        start..start + hlen as usize
    }

    pub const fn TPA(hlen: u8, plen: u8) -> Range<usize> {
        let start = THA(hlen, plen).end;
        start..start + plen as usize
    }
}

/// Length of the fixed part, before the addresses.
pub const FIXED_LEN: usize = field::OPER.end;

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);

/// A read/write view of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that the fixed part and all four addresses fit.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that every accessor is in bounds.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < field::TPA(self.hlen(), self.plen()).end {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Bytes this packet occupies according to its address lengths.
    pub fn packet_len(&self) -> usize {
        field::TPA(self.hlen(), self.plen()).end
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }

    /// Protocol type (an EtherType, 0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE)
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation ([`operation::REQUEST`], [`operation::REPLY`], ...).
    pub fn operation(&self) -> u16 {
        self.read_u16(field::OPER)
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SHA(self.hlen(), self.plen())]
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SPA(self.hlen(), self.plen())]
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::THA(self.hlen(), self.plen())]
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::TPA(self.hlen(), self.plen())]
    }

    /// Whether this is the Ethernet/IPv4 form that [`Repr`] handles.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HARDWARE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.write_u16(field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        self.write_u16(field::PTYPE, value);
    }

    /// Sets the hardware address length; set it before the addresses.
    pub fn set_hlen(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length; set it before the addresses.
    pub fn set_plen(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: u16) {
        self.write_u16(field::OPER, value);
    }

    /// Sets the sender hardware address; `value` must be `hlen` bytes.
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        let r = field::SHA(self.hlen(), self.plen());
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the sender protocol address; `value` must be `plen` bytes.
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        let r = field::SPA(self.hlen(), self.plen());
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the target hardware address; `value` must be `hlen` bytes.
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        let r = field::THA(self.hlen(), self.plen());
        self.buffer.as_mut()[r].copy_from_slice(value);
    }

    /// Sets the target protocol address; `value` must be `plen` bytes.
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        let r = field::TPA(self.hlen(), self.plen());
        self.buffer.as_mut()[r].copy_from_slice(value);
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Operation code.
    pub operation: u16,
    /// Sender MAC address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC address (zero in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads an Ethernet/IPv4 ARP packet; other address types are [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if !packet.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let mac = |b: &[u8]| EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]]);
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()),
            source_protocol_addr: ip(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ip(packet.target_protocol_addr()),
        })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet; the buffer must hold [`ETHERNET_IPV4_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(ethertype::IPV4);
        packet.set_hlen(6);
        packet.set_plen(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Who has 192.168.1.1? Tell 192.168.1.100" from 00:1b:21:3a:4f:5c.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x5c, 0xc0, 0xa8, 0x01, 0x64, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01, // target
    ];

    #[test]
    fn read() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), operation::REQUEST);
        assert_eq!(p.source_protocol_addr(), &[192, 168, 1, 100]);
        assert_eq!(p.target_protocol_addr(), &[192, 168, 1, 1]);
        assert_eq!(p.packet_len(), 28);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&REQUEST[..5]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn other_lengths_are_viewable_but_unsupported() {
        // hlen 8, plen 4: the view follows the lengths, the Repr refuses.
        let mut buf = [0u8; 8 + 2 * 12];
        buf[..8].copy_from_slice(&[0x00, 0x06, 0x08, 0x00, 0x08, 0x04, 0x00, 0x01]);
        buf[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.source_protocol_addr(), &[10, 0, 0, 1]);
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr::parse(&Packet::new_unchecked(&REQUEST[..])).unwrap();
        assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(192, 168, 1, 100));
        let mut out = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
    }
}
