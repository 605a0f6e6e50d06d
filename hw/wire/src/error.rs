//! Error types: one for the packet views, one for the parser stage, one for encapsulation.
//!
//! All three are small `Copy` enums so that the data path can count them per reason without
//! allocating or formatting anything.

use core::fmt;

/// Why a packet view or a `Repr` refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field inside it says.
    Truncated,
    /// A field contradicts the format (bad version, a length below the header's own size, ...).
    Malformed,
    /// The bytes are well formed but describe something the `Repr` does not represent
    /// (for example ARP for a hardware type other than Ethernet).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl core::error::Error for Error {}

/// The protocol layer a [`ParseError`] belongs to; drop counters are grouped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Ethernet and VLAN tags.
    L2,
    /// ARP, IPv4, IPv6 and IPv6 extension headers.
    L3,
    /// TCP, UDP, ICMP, ICMPv6.
    L4,
    /// The outer VXLAN or Geneve header.
    Tunnel,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::L2 => "l2",
            Layer::L3 => "l3",
            Layer::L4 => "l4",
            Layer::Tunnel => "tunnel",
        })
    }
}

macro_rules! parse_errors {
    ($($(#[doc = $doc:literal])* $variant:ident => ($layer:ident, $name:literal),)*) => {
        /// Why the parser stage rejected a frame. The NIC counts the frame under this reason
        /// and drops it.
        ///
        /// `#[repr(u8)]` with dense discriminants so that `err as usize` indexes a counter
        /// array of [`ParseError::COUNT`] entries; [`ParseError::ALL`] lists them in order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum ParseError {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ParseError {
            /// Every variant, in discriminant order.
            pub const ALL: &'static [ParseError] = &[$(ParseError::$variant,)*];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();

            /// The layer whose header was at fault.
            pub const fn layer(&self) -> Layer {
                match self {
                    $(ParseError::$variant => Layer::$layer,)*
                }
            }

            /// A stable snake_case name, suitable for counter names and trace records.
            pub const fn name(&self) -> &'static str {
                match self {
                    $(ParseError::$variant => $name,)*
                }
            }
        }
    };
}

parse_errors! {
    /// Fewer than 14 bytes: no complete Ethernet header.
    EthernetTruncated => (L2, "ethernet_truncated"),
    /// A VLAN TPID is not followed by a complete 4-byte tag.
    VlanTruncated => (L2, "vlan_truncated"),
    /// A third VLAN tag; the pipeline matches on at most two.
    TooManyVlanTags => (L2, "too_many_vlan_tags"),
    /// The ARP packet is shorter than its fixed part or than its address lengths say.
    ArpTruncated => (L3, "arp_truncated"),
    /// Fewer than 20 bytes, or fewer than the IHL says.
    Ipv4Truncated => (L3, "ipv4_truncated"),
    /// EtherType says IPv4 but the version nibble is not 4.
    Ipv4BadVersion => (L3, "ipv4_bad_version"),
    /// IHL below 5.
    Ipv4BadHeaderLength => (L3, "ipv4_bad_header_length"),
    /// Total length below the header length or beyond the frame.
    Ipv4BadTotalLength => (L3, "ipv4_bad_total_length"),
    /// Fewer than 40 bytes.
    Ipv6Truncated => (L3, "ipv6_truncated"),
    /// EtherType says IPv6 but the version nibble is not 6.
    Ipv6BadVersion => (L3, "ipv6_bad_version"),
    /// Payload length (or jumbo payload length) beyond the frame.
    Ipv6BadPayloadLength => (L3, "ipv6_bad_payload_length"),
    /// An extension header does not fit inside the IPv6 packet.
    Ipv6ExtHeaderTruncated => (L3, "ipv6_ext_header_truncated"),
    /// More than 8 extension headers.
    Ipv6TooManyExtHeaders => (L3, "ipv6_too_many_ext_headers"),
    /// Payload length 0 with a hop-by-hop header that has no jumbo payload option.
    Ipv6MissingJumboOption => (L3, "ipv6_missing_jumbo_option"),
    /// A hop-by-hop header anywhere but directly after the IPv6 header (RFC 8200 4.1).
    Ipv6HopByHopNotFirst => (L3, "ipv6_hop_by_hop_not_first"),
    /// Fewer than 20 bytes of TCP header inside the IP packet.
    TcpTruncated => (L4, "tcp_truncated"),
    /// Data offset below 5, or beyond the IP payload.
    TcpBadDataOffset => (L4, "tcp_bad_data_offset"),
    /// Fewer than 8 bytes of UDP header inside the IP packet.
    UdpTruncated => (L4, "udp_truncated"),
    /// UDP length below 8 or beyond the IP payload.
    UdpBadLength => (L4, "udp_bad_length"),
    /// Fewer than 4 bytes of ICMP or ICMPv6 header inside the IP packet.
    IcmpTruncated => (L4, "icmp_truncated"),
    /// Fewer than 8 bytes of VXLAN header inside the UDP datagram.
    VxlanTruncated => (Tunnel, "vxlan_truncated"),
    /// The VXLAN I flag is clear, so the VNI field is not valid (RFC 7348).
    VxlanNoVniFlag => (Tunnel, "vxlan_no_vni_flag"),
    /// Fewer than 8 bytes of Geneve header inside the UDP datagram.
    GeneveTruncated => (Tunnel, "geneve_truncated"),
    /// Geneve version other than 0.
    GeneveBadVersion => (Tunnel, "geneve_bad_version"),
    /// The options length runs past the UDP datagram, or an option runs past the options.
    GeneveBadOptionLength => (Tunnel, "geneve_bad_option_length"),
    /// Our shadow metadata option class and type with fewer than 3 words of data.
    GeneveBadShadowOption => (Tunnel, "geneve_bad_shadow_option"),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for ParseError {}

/// Why [`emit_encap`](crate::encap::emit_encap) refused to build an encapsulated frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapError {
    /// The outer source and destination addresses are of different IP families.
    AddressFamilyMismatch,
    /// The output buffer cannot hold the outer headers plus the inner frame.
    BufferTooSmall,
    /// The VNI does not fit in 24 bits.
    VniOutOfRange,
    /// The outer IP total length (IPv4) or payload length (IPv6) would exceed 65535.
    TooLong,
}

impl fmt::Display for EncapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncapError::AddressFamilyMismatch => "outer source and destination IP families differ",
            EncapError::BufferTooSmall => "output buffer too small",
            EncapError::VniOutOfRange => "VNI exceeds 24 bits",
            EncapError::TooLong => "encapsulated packet exceeds 65535 bytes",
        })
    }
}

impl core::error::Error for EncapError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_all() {
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
        assert_eq!(ParseError::COUNT, ParseError::ALL.len());
    }

    #[test]
    fn names_are_unique_snake_case() {
        for (i, a) in ParseError::ALL.iter().enumerate() {
            assert!(
                a.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            for b in &ParseError::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn layers() {
        assert_eq!(ParseError::TooManyVlanTags.layer(), Layer::L2);
        assert_eq!(ParseError::Ipv6MissingJumboOption.layer(), Layer::L3);
        assert_eq!(ParseError::UdpBadLength.layer(), Layer::L4);
        assert_eq!(ParseError::VxlanNoVniFlag.layer(), Layer::Tunnel);
    }

    #[test]
    fn display() {
        use std::string::ToString;
        assert_eq!(
            ParseError::Ipv4BadTotalLength.to_string(),
            "ipv4_bad_total_length"
        );
        assert_eq!(Layer::Tunnel.to_string(), "tunnel");
    }
}
