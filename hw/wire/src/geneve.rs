//! Geneve (RFC 8926): base header, option TLVs, and shadownet's shadow metadata option.
//!
//! # Shadow metadata option (device contract)
//!
//! Every mirror copy the NIC sends over Geneve carries one option of class
//! [`SHADOW_OPTION_CLASS`] (0xFF53, in the experimental range 0xFF00..=0xFFFF), type
//! [`SHADOW_OPTION_TYPE`] (0x01, critical bit clear so any receiver may ignore it) and
//! [`SHADOW_OPTION_LEN_WORDS`] (3) words of data:
//!
//! | data bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | session | mirror session id, network order |
//! | 2 | direction | 1 = toward the VM (VM ingress), 2 = from the VM (VM egress) |
//! | 3 | flags | bit 0 TRUNCATED, bit 1 REDIRECTED, bit 2 RELEASED |
//! | 4..8 | sequence | per-session sequence number, so analysis can count loss |
//! | 8..10 | original length | length of the production frame before truncation |
//! | 10..12 | reserved | sent as zero, ignored on receipt |

use crate::error::Error;

/// IANA-assigned UDP destination port.
pub const UDP_PORT: u16 = 6081;

/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// Option class of the shadow metadata option.
pub const SHADOW_OPTION_CLASS: u16 = 0xFF53;
/// Option type of the shadow metadata option (critical bit clear).
pub const SHADOW_OPTION_TYPE: u8 = 0x01;
/// Data length of the shadow metadata option in 4-byte words.
pub const SHADOW_OPTION_LEN_WORDS: u8 = 3;
/// `ShadowMetadata::direction`: the mirrored frame was going toward the VM (VM ingress).
pub const SHADOW_DIRECTION_TO_VM: u8 = 1;
/// `ShadowMetadata::direction`: the mirrored frame came from the VM (VM egress).
pub const SHADOW_DIRECTION_FROM_VM: u8 = 2;
/// `ShadowMetadata::flags`: the copy was truncated; `original_len` has the full length.
pub const SHADOW_FLAG_TRUNCATED: u8 = 0x01;
/// `ShadowMetadata::flags`: redirect mode, production waits for the analysis verdict.
pub const SHADOW_FLAG_REDIRECTED: u8 = 0x02;
/// `ShadowMetadata::flags`: a redirected frame the shadow's analysis accepted, sent back to
/// the NIC (VNI = the production network's) to be delivered to production. The NIC accepts it
/// only from the substrate address it redirected the frame to (see [`crate::release`]).
pub const SHADOW_FLAG_RELEASED: u8 = 0x04;

mod field {
    use core::ops::Range;

    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Range<usize> = 2..4;
    // The VNI is the top 24 bits of this word; the low byte is reserved.
    pub const VNI_WORD: Range<usize> = 4..8;
    pub const OPTIONS: usize = 8;
}

/// Length of the base header, without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// Longest options area: 63 words.
pub const MAX_OPTIONS_LEN: usize = 63 * 4;

/// Length of an option TLV header (class, type, length).
pub const OPTION_HEADER_LEN: usize = 4;

/// Longest data of a single option: 31 words.
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;

const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;
/// Type bit marking an option the receiver must understand.
pub const OPTION_TYPE_CRITICAL: u8 = 0x80;

/// A read/write view of a Geneve header, its options and the payload after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than the header
    /// and its options.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`check_len`](Header::check_len).
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the base header and the options area fit the buffer. The version is not
    /// checked here; [`Repr::parse`] does.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (0 is the only one defined).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> 6
    }

    /// Length of the options area in bytes.
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_OPTLEN] & 0x3f) * 4
    }

    /// Base header plus options, in bytes: where the payload starts.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// O bit: the payload is a control (OAM) message.
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_OAM != 0
    }

    /// C bit: at least one option has its critical bit set.
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_CRITICAL != 0
    }

    /// Protocol type of the payload, an EtherType (0x6558 for Ethernet).
    pub fn protocol_type(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::PROTOCOL];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The 24-bit virtual network identifier.
    pub fn vni(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VNI_WORD];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 8
    }

    /// The raw options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// An iterator over the options.
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.options())
    }

    /// The first shadow metadata option, if any. Options after a malformed one cannot be
    /// located and are not searched.
    pub fn shadow_metadata(&self) -> Option<Result<ShadowMetadata, Error>> {
        self.options_iter()
            .map_while(Result::ok)
            .find_map(|o| ShadowMetadata::from_option(&o))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The encapsulated payload after the options.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the version.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & 0x3f) | (value << 6);
    }

    /// Sets the options length in bytes (a multiple of 4, at most [`MAX_OPTIONS_LEN`]).
    pub fn set_options_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & 0xc0) | ((value / 4) as u8 & 0x3f);
    }

    /// Sets the O bit.
    pub fn set_oam(&mut self, value: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = if value { *b | FLAG_OAM } else { *b & !FLAG_OAM };
    }

    /// Sets the C bit.
    pub fn set_critical(&mut self, value: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = if value {
            *b | FLAG_CRITICAL
        } else {
            *b & !FLAG_CRITICAL
        };
    }

    /// Zeroes the six reserved bits after O and C.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::FLAGS] &= FLAG_OAM | FLAG_CRITICAL;
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the VNI (low 24 bits used) and zeroes the reserved byte after it.
    pub fn set_vni(&mut self, value: u32) {
        let word = (value & VNI_MAX) << 8;
        self.buffer.as_mut()[field::VNI_WORD].copy_from_slice(&word.to_be_bytes());
    }

    /// Mutable access to the options area (size it with `set_options_len` first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Mutable access to the payload after the options.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// One option TLV as found by [`OptionsIter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class (namespace of the type).
    pub class: u16,
    /// Option type; the high bit is the critical bit.
    pub ty: u8,
    /// Option data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// Whether the receiver must drop the packet if it does not understand this option.
    pub const fn is_critical(&self) -> bool {
        self.ty & OPTION_TYPE_CRITICAL != 0
    }
}

/// Iterates over Geneve options.
///
/// Fewer than 4 bytes left, or an option running past the options area, yields one
/// `Err(Error::Malformed)` and ends the iteration.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    /// Iterates over a raw options area (as returned by [`Header::options`]).
    pub const fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter { rest: options }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<GeneveOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let found = match *self.rest {
            [c0, c1, ty, len, ref after @ ..] => {
                let data_len = usize::from(len & 0x1f) * 4;
                after
                    .get(..data_len)
                    .zip(after.get(data_len..))
                    .map(|(data, rest)| {
                        (
                            GeneveOption {
                                class: u16::from_be_bytes([c0, c1]),
                                ty,
                                data,
                            },
                            rest,
                        )
                    })
            }
            _ => None,
        };
        match found {
            Some((option, rest)) => {
                self.rest = rest;
                Some(Ok(option))
            }
            None => {
                self.rest = &[];
                Some(Err(Error::Malformed))
            }
        }
    }
}

/// Writes one option TLV at the start of `buf` and returns its length. `data` must be a
/// multiple of 4 bytes and at most [`MAX_OPTION_DATA_LEN`] (else [`Error::Malformed`]);
/// `buf` must hold the TLV (else [`Error::Truncated`]).
pub fn emit_option(buf: &mut [u8], class: u16, ty: u8, data: &[u8]) -> Result<usize, Error> {
    if !data.len().is_multiple_of(4) || data.len() > MAX_OPTION_DATA_LEN {
        return Err(Error::Malformed);
    }
    let total = OPTION_HEADER_LEN + data.len();
    let out = buf.get_mut(..total).ok_or(Error::Truncated)?;
    let (head, body) = out.split_at_mut(OPTION_HEADER_LEN);
    let [c0, c1] = class.to_be_bytes();
    head.copy_from_slice(&[c0, c1, ty, (data.len() / 4) as u8]);
    body.copy_from_slice(data);
    Ok(total)
}

/// A high-level representation of the Geneve base header (options are handled separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// O bit.
    pub oam: bool,
    /// C bit.
    pub critical: bool,
    /// Payload protocol type (an EtherType).
    pub protocol_type: u16,
    /// VNI, at most [`VNI_MAX`].
    pub vni: u32,
    /// Options area length in bytes, a multiple of 4, at most [`MAX_OPTIONS_LEN`].
    pub options_len: usize,
}

impl Repr {
    /// Reads the base header; versions other than 0 are [`Error::Malformed`].
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<Repr, Error> {
        header.check_len()?;
        if header.version() != 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            oam: header.oam(),
            critical: header.critical(),
            protocol_type: header.protocol_type(),
            vni: header.vni(),
            options_len: header.options_len(),
        })
    }

    /// Bytes of base header plus options.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options_len
    }

    /// Writes the base header (version 0, reserved fields zero); the options area is left for
    /// the caller. The buffer must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        header.set_version(0);
        header.set_options_len(self.options_len);
        header.clear_reserved();
        header.set_oam(self.oam);
        header.set_critical(self.critical);
        header.set_protocol_type(self.protocol_type);
        header.set_vni(self.vni);
    }
}

/// The shadow metadata carried in a Geneve option (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShadowMetadata {
    /// Mirror session id.
    pub session: u16,
    /// [`SHADOW_DIRECTION_TO_VM`] or [`SHADOW_DIRECTION_FROM_VM`]; other values are passed
    /// through as received.
    pub direction: u8,
    /// [`SHADOW_FLAG_TRUNCATED`] | [`SHADOW_FLAG_REDIRECTED`] | [`SHADOW_FLAG_RELEASED`];
    /// unknown bits passed through.
    pub flags: u8,
    /// Per-session sequence number.
    pub sequence: u32,
    /// Length of the production frame before truncation.
    pub original_len: u16,
}

impl ShadowMetadata {
    /// Bytes of option data.
    pub const DATA_LEN: usize = SHADOW_OPTION_LEN_WORDS as usize * 4;
    /// Bytes of the whole option TLV.
    pub const OPTION_LEN: usize = OPTION_HEADER_LEN + Self::DATA_LEN;

    /// Reads the option data. Data longer than 12 bytes is accepted and the excess ignored, so
    /// a later revision of the contract may append fields.
    pub fn parse(data: &[u8]) -> Result<ShadowMetadata, Error> {
        match *data {
            [s0, s1, direction, flags, q0, q1, q2, q3, l0, l1, _, _, ..] => Ok(ShadowMetadata {
                session: u16::from_be_bytes([s0, s1]),
                direction,
                flags,
                sequence: u32::from_be_bytes([q0, q1, q2, q3]),
                original_len: u16::from_be_bytes([l0, l1]),
            }),
            _ => Err(Error::Truncated),
        }
    }

    /// The metadata in `option` if it is a shadow metadata option, `None` for any other
    /// option.
    pub fn from_option(option: &GeneveOption<'_>) -> Option<Result<ShadowMetadata, Error>> {
        (option.class == SHADOW_OPTION_CLASS && option.ty == SHADOW_OPTION_TYPE)
            .then(|| Self::parse(option.data))
    }

    /// The 12 data bytes, reserved bytes zero.
    pub fn to_data(&self) -> [u8; Self::DATA_LEN] {
        let [s0, s1] = self.session.to_be_bytes();
        let [q0, q1, q2, q3] = self.sequence.to_be_bytes();
        let [l0, l1] = self.original_len.to_be_bytes();
        [
            s0,
            s1,
            self.direction,
            self.flags,
            q0,
            q1,
            q2,
            q3,
            l0,
            l1,
            0,
            0,
        ]
    }

    /// Writes the whole option TLV (16 bytes) at the start of `buf` and returns its length.
    pub fn emit_option(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_option(
            buf,
            SHADOW_OPTION_CLASS,
            SHADOW_OPTION_TYPE,
            &self.to_data(),
        )
    }

    /// Whether the copy was truncated.
    pub const fn is_truncated(&self) -> bool {
        self.flags & SHADOW_FLAG_TRUNCATED != 0
    }

    /// Whether the copy was sent in redirect mode.
    pub const fn is_redirected(&self) -> bool {
        self.flags & SHADOW_FLAG_REDIRECTED != 0
    }

    /// Whether the frame is a release: a redirected frame the shadow sends back for delivery.
    pub const fn is_released(&self) -> bool {
        self.flags & SHADOW_FLAG_RELEASED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VNI 0x123456, protocol TEB, 24 bytes of options: an OVN-class option (0x0102, type 5,
    // 4 bytes) and the shadow option (session 0x0102, from the VM, truncated, sequence
    // 0xa0b0c0d0, original length 1514). Decoded by Wireshark as shown in the option table.
    const HEADER: [u8; 32] = [
        0x06, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0x00, 0x01, 0x02, 0x05, 0x01, 0xde, 0xad, 0xbe,
        0xef, 0xff, 0x53, 0x01, 0x03, 0x01, 0x02, 0x02, 0x01, 0xa0, 0xb0, 0xc0, 0xd0, 0x05, 0xea,
        0x00, 0x00,
    ];

    const SHADOW: ShadowMetadata = ShadowMetadata {
        session: 0x0102,
        direction: SHADOW_DIRECTION_FROM_VM,
        flags: SHADOW_FLAG_TRUNCATED,
        sequence: 0xa0b0_c0d0,
        original_len: 1514,
    };

    #[test]
    fn read() {
        let h = Header::new_checked(&HEADER[..]).unwrap();
        assert_eq!(h.version(), 0);
        assert_eq!(h.options_len(), 24);
        assert_eq!(h.header_len(), 32);
        assert!(!h.oam() && !h.critical());
        assert_eq!(h.protocol_type(), 0x6558);
        assert_eq!(h.vni(), 0x12_3456);
        assert!(h.payload().is_empty());
        let mut it = h.options_iter();
        let first = it.next().unwrap().unwrap();
        assert_eq!(
            (first.class, first.ty, first.data),
            (0x0102, 5, &[0xde, 0xad, 0xbe, 0xef][..])
        );
        assert!(!first.is_critical());
        let second = it.next().unwrap().unwrap();
        assert_eq!(second.class, SHADOW_OPTION_CLASS);
        assert_eq!(it.next(), None);
        assert_eq!(h.shadow_metadata(), Some(Ok(SHADOW)));
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Header::new_checked(&HEADER[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Header::new_checked(&HEADER[..31]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn option_past_the_end() {
        // Option claims 2 words of data, the area has 1.
        let mut it = OptionsIter::new(&[0x01, 0x02, 0x05, 0x02, 0, 0, 0, 0]);
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
        // Fewer than 4 bytes for an option header.
        let mut it = OptionsIter::new(&[0x01, 0x02, 0x05]);
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
    }

    #[test]
    fn shadow_round_trip() {
        let mut buf = [0u8; 16];
        assert_eq!(SHADOW.emit_option(&mut buf), Ok(16));
        assert_eq!(buf, HEADER[16..]);
        assert!(SHADOW.is_truncated() && !SHADOW.is_redirected());
        assert_eq!(ShadowMetadata::parse(&buf[4..]), Ok(SHADOW));
        assert_eq!(ShadowMetadata::parse(&buf[4..15]), Err(Error::Truncated));
        assert_eq!(SHADOW.emit_option(&mut buf[..15]), Err(Error::Truncated));
    }

    #[test]
    fn shadow_wrong_length_is_reported() {
        // Our class and type with only 2 words of data.
        let opts = [0xff, 0x53, 0x01, 0x02, 0, 1, 1, 0, 0, 0, 0, 1];
        let o = OptionsIter::new(&opts).next().unwrap().unwrap();
        assert_eq!(ShadowMetadata::from_option(&o), Some(Err(Error::Truncated)));
        // Same class, other type: not ours.
        let opts = [0xff, 0x53, 0x81, 0x00];
        let o = OptionsIter::new(&opts).next().unwrap().unwrap();
        assert!(o.is_critical());
        assert_eq!(ShadowMetadata::from_option(&o), None);
    }

    #[test]
    fn repr_round_trip() {
        let h = Header::new_unchecked(&HEADER[..]);
        let repr = Repr::parse(&h).unwrap();
        assert_eq!(repr.buffer_len(), 32);
        let mut out = [0xffu8; 32];
        let mut g = Header::new_unchecked(&mut out[..]);
        repr.emit(&mut g);
        g.options_mut().copy_from_slice(h.options());
        assert_eq!(out, HEADER);
        let mut bad = HEADER;
        bad[0] |= 0x40;
        assert_eq!(
            Repr::parse(&Header::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn emit_option_rejects_bad_data() {
        let mut buf = [0u8; 256];
        assert_eq!(emit_option(&mut buf, 1, 1, &[0; 3]), Err(Error::Malformed));
        assert_eq!(
            emit_option(&mut buf, 1, 1, &[0; 128]),
            Err(Error::Malformed)
        );
        assert_eq!(emit_option(&mut buf, 1, 1, &[0; 124]), Ok(128));
    }
}
