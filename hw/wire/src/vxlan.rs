//! VXLAN (RFC 7348) header: 8 bytes between the outer UDP header and the inner Ethernet frame.

use crate::error::Error;

/// IANA-assigned UDP destination port.
pub const UDP_PORT: u16 = 4789;

/// The I flag: the VNI field is valid. RFC 7348 requires it set; the other flag bits are
/// reserved, sent as zero and ignored on receipt.
pub const FLAG_I: u8 = 0x08;

/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

mod field {
    use core::ops::Range;

    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    // The VNI is the top 24 bits of this word; the low byte is reserved.
    pub const VNI_WORD: Range<usize> = 4..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::VNI_WORD.end;

/// A read/write view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that every accessor is in bounds.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags octet.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (VNI valid) is set.
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VXLAN network identifier.
    pub fn vni(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VNI_WORD];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 8
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The inner Ethernet frame.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags octet.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the VNI (low 24 bits used) and zeroes the reserved byte after it.
    pub fn set_vni(&mut self, value: u32) {
        let word = (value & VNI_MAX) << 8;
        self.buffer.as_mut()[field::VNI_WORD].copy_from_slice(&word.to_be_bytes());
    }

    /// Zeroes the three reserved bytes after the flags.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED1].fill(0);
    }

    /// Mutable access to the inner frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A high-level representation of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// VXLAN network identifier, at most [`VNI_MAX`].
    pub vni: u32,
}

impl Repr {
    /// Reads a header; a clear I flag is [`Error::Malformed`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(Error::Malformed);
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: I flag only, reserved fields zero, VNI masked to 24 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VNI 5000 followed by the first bytes of the inner Ethernet header.
    const HEADER: [u8; 10] = [0x08, 0x00, 0x00, 0x00, 0x00, 0x13, 0x88, 0x00, 0x02, 0x00];

    #[test]
    fn read() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert!(p.vni_valid());
        assert_eq!(p.vni(), 5000);
        assert_eq!(p.payload(), &[0x02, 0x00]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&HEADER[..7]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn no_i_flag() {
        let mut buf = HEADER;
        buf[0] = 0x00;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr::parse(&Packet::new_unchecked(&HEADER[..])).unwrap();
        let mut out = [0xffu8; 8];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER[..8]);
        // A VNI wider than 24 bits is masked, never spills into the reserved byte.
        Repr { vni: 0x1ab_cdef }.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[4..], &[0xab, 0xcd, 0xef, 0x00]);
    }
}
