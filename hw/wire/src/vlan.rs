//! IEEE 802.1Q / 802.1ad VLAN tags.
//!
//! On the wire a tag is a 2-byte TPID followed by a 2-byte TCI. The TPID sits where the
//! EtherType of the enclosing header would be, so the view here starts at the TCI and covers
//! TCI plus the EtherType (or next TPID) that follows it: 4 bytes, like the tag itself.

use crate::error::Error;
use crate::ethernet::ethertype;

mod field {
    use core::ops::Range;

    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Bytes a tag adds to a frame.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Largest VLAN identifier; 0 means "priority tag only" and 0xfff is reserved.
pub const VID_MAX: u16 = 0x0fff;

/// Whether `tpid` introduces a VLAN tag: 802.1Q (0x8100), 802.1ad (0x88a8) or the older
/// QinQ TPID 0x9100.
pub const fn is_tag_protocol(tpid: u16) -> bool {
    matches!(
        tpid,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_LEGACY
    )
}

/// A read/write view of a VLAN tag (TCI and the following EtherType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 4 bytes.
    pub const fn new_unchecked(buffer: T) -> Tag<T> {
        Tag { buffer }
    }

    /// Wraps a buffer after checking that it holds a complete tag.
    pub fn new_checked(buffer: T) -> Result<Tag<T>, Error> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
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

    /// The whole tag control information.
    pub fn tci(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Priority code point (802.1p class of service).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier.
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MAX
    }

    /// EtherType of the payload, or the TPID of the next tag.
    pub fn ethertype(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([d[0], d[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Tag<&'a T> {
    /// Everything after the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    /// Sets the whole tag control information.
    pub fn set_tci(&mut self, value: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the priority code point (only the low 3 bits are used).
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(value & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Sets the drop eligible indicator.
    pub fn set_dei(&mut self, value: bool) {
        let tci = (self.tci() & !0x1000) | if value { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Sets the VLAN identifier (only the low 12 bits are used).
    pub fn set_vid(&mut self, value: u16) {
        let tci = (self.tci() & !VID_MAX) | (value & VID_MAX);
        self.set_tci(tci);
    }

    /// Sets the EtherType that follows the tag.
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }
}

/// A high-level representation of a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
    /// EtherType after the tag.
    pub ethertype: u16,
}

impl Repr {
    /// Reads a tag.
    pub fn parse<T: AsRef<[u8]>>(tag: &Tag<T>) -> Result<Repr, Error> {
        tag.check_len()?;
        Ok(Repr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// Bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag; out-of-range PCP or VID bits are masked off.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut Tag<T>) {
        let tci = (u16::from(self.pcp & 0x7) << 13)
            | if self.dei { 0x1000 } else { 0 }
            | (self.vid & VID_MAX);
        tag.set_tci(tci);
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCI: PCP 5, DEI 0, VID 100 (0xa064), then IPv4.
    const TAG: [u8; 4] = [0xa0, 0x64, 0x08, 0x00];

    #[test]
    fn read() {
        let t = Tag::new_checked(&TAG[..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(!t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), ethertype::IPV4);
        assert!(t.payload().is_empty());
    }

    #[test]
    fn truncated() {
        assert_eq!(Tag::new_checked(&TAG[..3]).err(), Some(Error::Truncated));
    }

    #[test]
    fn set_fields_independently() {
        let mut buf = TAG;
        let mut t = Tag::new_unchecked(&mut buf[..]);
        t.set_dei(true);
        t.set_vid(0xfff);
        assert_eq!(t.pcp(), 5);
        t.set_pcp(1);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (1, true, 0xfff));
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr::parse(&Tag::new_unchecked(&TAG[..])).unwrap();
        let mut out = [0u8; 4];
        repr.emit(&mut Tag::new_unchecked(&mut out[..]));
        assert_eq!(out, TAG);
    }

    #[test]
    fn tag_protocols() {
        assert!(is_tag_protocol(0x8100));
        assert!(is_tag_protocol(0x88a8));
        assert!(is_tag_protocol(0x9100));
        assert!(!is_tag_protocol(0x0800));
    }
}
