//! The internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of TCP, UDP and ICMPv6.
//!
//! Functions here return the *folded, uncomplemented* one's-complement sum, so partial sums
//! can be combined with [`combine`] before the final complement. A checksum field is filled
//! with `!combine(&[..])`, and a received packet verifies when the sum over everything,
//! checksum field included, is `0xffff`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Folds a wide one's-complement accumulator into 16 bits.
const fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The one's-complement sum of `data` taken as big-endian 16-bit words; an odd trailing byte
/// is padded with a zero byte, as RFC 1071 says.
pub fn data(data: &[u8]) -> u16 {
    // Summing 32-bit big-endian words into a 64-bit accumulator gives the same folded result as
    // summing 16-bit words (2^16 is 1 modulo 0xffff) at half the additions, and 2^32 additions
    // of at most 2^32 each cannot overflow 64 bits.
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    fold(sum)
}

/// Adds partial sums produced by [`data`] and the pseudo-header functions.
pub fn combine(checksums: &[u16]) -> u16 {
    fold(checksums.iter().map(|&c| u64::from(c)).sum())
}

/// The IPv4 pseudo-header (RFC 793 / RFC 768): addresses, zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    combine(&[
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        length,
    ])
}

/// The IPv6 pseudo-header (RFC 8200 8.1): addresses, 32-bit upper-layer length, next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        (length >> 16) as u16,
        length as u16,
        u16::from(next_header),
    ])
}

/// The pseudo-header for either family; `None` when `src` and `dst` are of different families,
/// which no real packet can be.
///
/// For IPv4 the length is truncated to 16 bits, as the IPv4 pseudo-header has no room for more.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, length: u32) -> Option<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header_v4(s, d, protocol, length as u16)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, protocol, length)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight 16-bit reference implementation to check the 32-bit fast path against.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_lengths_match_reference() {
        let bytes: [u8; 13] = [
            0xff, 0xfe, 0x01, 0x80, 0x7f, 0x00, 0x33, 0x44, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
        ];
        for n in 0..=bytes.len() {
            assert_eq!(data(&bytes[..n]), reference(&bytes[..n]), "len {n}");
        }
    }

    #[test]
    fn ipv4_header_verifies() {
        // The worked example of Wikipedia's "IPv4 header checksum" article (172.16.10.99 ->
        // 172.16.10.12, checksum b1e6): the sum over the whole header must be 0xffff.
        let hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xb1, 0xe6, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        assert_eq!(data(&hdr), 0xffff);
    }

    #[test]
    fn mixed_families_have_no_pseudo_header() {
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let b = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(pseudo_header(&a, &b, 17, 8), None);
        assert!(pseudo_header(&a, &a, 17, 8).is_some());
    }

    proptest::proptest! {
        #[test]
        fn fast_sum_equals_reference(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(data(&bytes), reference(&bytes));
        }
    }
}
