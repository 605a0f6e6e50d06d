//! Encapsulation of a frame in outer Ethernet + IPv4/IPv6 + UDP + VXLAN/Geneve, as the NIC's
//! encap stage does for production traffic and mirror copies.
//!
//! The outer headers follow the RFCs' sender rules so that Wireshark decodes every frame:
//! IPv4 with DF set, identification 0, a correct header checksum and a zero UDP checksum
//! (RFC 7348 section 5 allows it); IPv6 with flow label 0 and a computed UDP checksum (a zero
//! one is not allowed over IPv6 without RFC 6935 negotiation). No outer VLAN tag.

use core::net::IpAddr;

use crate::checksum;
use crate::error::EncapError;
use crate::ethernet::{self, EthernetAddress, ethertype};
use crate::geneve::{self, ShadowMetadata};
use crate::ipv4::{self, protocol};
use crate::{ipv6, udp, vxlan};

/// The tunnel header to put between the outer UDP header and the inner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelHeader {
    /// VXLAN with the I flag set.
    Vxlan {
        /// 24-bit VNI.
        vni: u32,
    },
    /// Geneve version 0, protocol type 0x6558, with the shadow option when given.
    Geneve {
        /// 24-bit VNI.
        vni: u32,
        /// Shadow metadata to carry in a Geneve option.
        shadow: Option<ShadowMetadata>,
    },
}

impl TunnelHeader {
    /// The VNI.
    pub const fn vni(&self) -> u32 {
        match *self {
            TunnelHeader::Vxlan { vni } | TunnelHeader::Geneve { vni, .. } => vni,
        }
    }

    /// Bytes of tunnel header, options included.
    pub const fn header_len(&self) -> usize {
        match self {
            TunnelHeader::Vxlan { .. } => vxlan::HEADER_LEN,
            TunnelHeader::Geneve { shadow: None, .. } => geneve::HEADER_LEN,
            TunnelHeader::Geneve {
                shadow: Some(_), ..
            } => geneve::HEADER_LEN + ShadowMetadata::OPTION_LEN,
        }
    }

    /// The IANA UDP port for this tunnel type (4789 or 6081).
    pub const fn default_port(&self) -> u16 {
        match self {
            TunnelHeader::Vxlan { .. } => vxlan::UDP_PORT,
            TunnelHeader::Geneve { .. } => geneve::UDP_PORT,
        }
    }
}

/// Everything the outer headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapParams {
    /// Outer source MAC.
    pub src_mac: EthernetAddress,
    /// Outer destination MAC (the next hop on the substrate).
    pub dst_mac: EthernetAddress,
    /// Outer source IP; its family picks IPv4 or IPv6.
    pub src_ip: IpAddr,
    /// Outer destination IP; must be of the same family as `src_ip`.
    pub dst_ip: IpAddr,
    /// UDP source port: flow entropy for ECMP, see [`flow_entropy_port`].
    pub udp_src_port: u16,
    /// UDP destination port (4789 for VXLAN, 6081 for Geneve unless configured otherwise).
    pub udp_dst_port: u16,
    /// Outer IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The tunnel header.
    pub tunnel: TunnelHeader,
}

const fn ip_header_len(ip: &IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => ipv4::HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    }
}

/// Bytes [`emit_encap`] puts before the inner frame. The IP header size follows `src_ip`'s
/// family (a family mismatch is only reported by `emit_encap`).
pub const fn encap_overhead(params: &EncapParams) -> usize {
    ethernet::HEADER_LEN
        + ip_header_len(&params.src_ip)
        + udp::HEADER_LEN
        + params.tunnel.header_len()
}

/// Most bytes [`emit_encap`] puts before the inner frame: Ethernet, IPv6, UDP and Geneve with
/// the shadow option.
pub const MAX_ENCAP_OVERHEAD: usize = ethernet::HEADER_LEN
    + ipv6::HEADER_LEN
    + udp::HEADER_LEN
    + geneve::HEADER_LEN
    + ShadowMetadata::OPTION_LEN;

/// Writes the encapsulated frame (outer headers, then a copy of `inner`) to the start of
/// `out` and returns its length, `encap_overhead(params) + inner.len()`. Bytes of `out` after
/// that are untouched.
///
/// Errors are checked in this order: address family mismatch, VNI over 24 bits, IP length
/// over 65535, `out` too small. On error nothing is written.
pub fn emit_encap(params: &EncapParams, inner: &[u8], out: &mut [u8]) -> Result<usize, EncapError> {
    let mut headers = [0u8; MAX_ENCAP_OVERHEAD];
    let header_len = emit_encap_headers(params, inner, &mut headers)?;
    let total = header_len + inner.len();
    let out = out.get_mut(..total).ok_or(EncapError::BufferTooSmall)?;
    let (out_headers, out_inner) = out.split_at_mut(header_len);
    out_headers.copy_from_slice(&headers[..header_len]);
    out_inner.copy_from_slice(inner);
    Ok(total)
}

/// The outer headers [`emit_encap`] puts before `inner`, written in one pass to the start of
/// `headers`; returns their length, `encap_overhead(params)`. For a caller that assembles the
/// frame itself (`inner` is read only for the IPv6 UDP checksum). Errors as for
/// [`emit_encap`], but for the buffer size.
pub fn emit_encap_headers(
    params: &EncapParams,
    inner: &[u8],
    headers: &mut [u8; MAX_ENCAP_OVERHEAD],
) -> Result<usize, EncapError> {
    let (ip_len, ethertype) = match (params.src_ip, params.dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (ipv4::HEADER_LEN, ethertype::IPV4),
        (IpAddr::V6(_), IpAddr::V6(_)) => (ipv6::HEADER_LEN, ethertype::IPV6),
        _ => return Err(EncapError::AddressFamilyMismatch),
    };
    if params.tunnel.vni() > vxlan::VNI_MAX {
        return Err(EncapError::VniOutOfRange);
    }
    let tunnel_len = params.tunnel.header_len();
    let udp_len = udp::HEADER_LEN + tunnel_len + inner.len();
    // IPv4 counts its header in the total length, IPv6's payload length does not.
    let ip_length_field = if ethertype == ethertype::IPV6 {
        udp_len
    } else {
        ip_len + udp_len
    };
    let ip_length_field = u16::try_from(ip_length_field).map_err(|_| EncapError::TooLong)?;
    let udp_at = ethernet::HEADER_LEN + ip_len;
    let header_len = udp_at + udp::HEADER_LEN + tunnel_len;

    headers[0..6].copy_from_slice(params.dst_mac.as_bytes());
    headers[6..12].copy_from_slice(params.src_mac.as_bytes());
    headers[12..14].copy_from_slice(&ethertype.to_be_bytes());

    udp::Repr {
        src_port: params.udp_src_port,
        dst_port: params.udp_dst_port,
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut headers[udp_at..udp_at + udp::HEADER_LEN]),
        udp_len - udp::HEADER_LEN,
    );
    emit_tunnel_header(
        &params.tunnel,
        &mut headers[udp_at + udp::HEADER_LEN..header_len],
    );

    let ip_bytes = &mut headers[ethernet::HEADER_LEN..udp_at];
    match (params.src_ip, params.dst_ip) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => {
            ipv4::Repr {
                src_addr,
                dst_addr,
                protocol: protocol::UDP,
                payload_len: udp_len,
                ttl: params.ttl,
                tos: 0,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            }
            .emit(&mut ipv4::Packet::new_unchecked(ip_bytes));
        }
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => {
            ipv6::Repr {
                src_addr,
                dst_addr,
                next_header: protocol::UDP,
                payload_len: ip_length_field,
                hop_limit: params.ttl,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut ipv6::Packet::new_unchecked(ip_bytes));
            // The datagram is the UDP and tunnel headers (a whole number of 16-bit words, so
            // their sum and the inner frame's add up) followed by the inner frame.
            let pseudo =
                checksum::pseudo_header_v6(&src_addr, &dst_addr, protocol::UDP, udp_len as u32);
            let sum = !checksum::combine(&[
                pseudo,
                checksum::data(&headers[udp_at..header_len]),
                checksum::data(inner),
            ]);
            let sum = if sum == 0 { 0xffff } else { sum };
            headers[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
        }
        _ => return Err(EncapError::AddressFamilyMismatch),
    }
    Ok(header_len)
}

/// Writes the tunnel header into `buf`, which is exactly `tunnel.header_len()` bytes.
fn emit_tunnel_header(tunnel: &TunnelHeader, buf: &mut [u8]) {
    match *tunnel {
        TunnelHeader::Vxlan { vni } => {
            vxlan::Repr { vni }.emit(&mut vxlan::Packet::new_unchecked(buf));
        }
        TunnelHeader::Geneve { vni, shadow } => {
            let mut header = geneve::Header::new_unchecked(buf);
            geneve::Repr {
                oam: false,
                critical: false,
                protocol_type: ethertype::TEB,
                vni,
                options_len: if shadow.is_some() {
                    ShadowMetadata::OPTION_LEN
                } else {
                    0
                },
            }
            .emit(&mut header);
            if let Some(shadow) = shadow {
                // The options area is exactly OPTION_LEN bytes, so this cannot fail.
                let _ = shadow.emit_option(header.options_mut());
            }
        }
    }
}

/// Maps a flow hash to a UDP source port in the dynamic range 49152..=65535, as RFC 7348
/// section 5 recommends, so that substrate ECMP spreads tunnels by inner flow. Every bit of
/// `hash` influences the result, so weak hashes still spread.
pub const fn flow_entropy_port(hash: u32) -> u16 {
    let folded = hash ^ (hash >> 14) ^ (hash >> 28);
    0xc000 | (folded as u16 & 0x3fff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use crate::parse::{ParseConfig, TunnelKind, parse};
    use core::net::{Ipv4Addr, Ipv6Addr};

    // An inner Ethernet/IPv4/ICMP echo request (the VXLAN test packet's inner frame).
    const INNER: [u8; 74] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x00, 0x03, 0x00, 0x00, 0x40, 0x01, 0x22, 0x9b, 0xac, 0x10, 0x00, 0x01,
        0xac, 0x10, 0x00, 0x02, 0x08, 0x00, 0x4d, 0x54, 0x00, 0x01, 0x00, 0x07, 0x61, 0x62, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
        0x73, 0x74, 0x75, 0x76, 0x77, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    ];

    const SHADOW: ShadowMetadata = ShadowMetadata {
        session: 7,
        direction: geneve::SHADOW_DIRECTION_TO_VM,
        flags: geneve::SHADOW_FLAG_REDIRECTED,
        sequence: 0xdead_beef,
        original_len: 74,
    };

    fn params(src: IpAddr, dst: IpAddr, tunnel: TunnelHeader) -> EncapParams {
        EncapParams {
            src_mac: EthernetAddress([0x02, 0, 0, 0, 0x0a, 0x01]),
            dst_mac: EthernetAddress([0x02, 0, 0, 0, 0x0a, 0x02]),
            src_ip: src,
            dst_ip: dst,
            udp_src_port: flow_entropy_port(0x1234_5678),
            udp_dst_port: tunnel.default_port(),
            ttl: 64,
            tunnel,
        }
    }

    fn v4() -> (IpAddr, IpAddr) {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        )
    }

    fn v6() -> (IpAddr, IpAddr) {
        (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        )
    }

    fn tunnels() -> [TunnelHeader; 3] {
        [
            TunnelHeader::Vxlan { vni: 5000 },
            TunnelHeader::Geneve {
                vni: 0xab_cdef,
                shadow: None,
            },
            TunnelHeader::Geneve {
                vni: 0xff_ffff,
                shadow: Some(SHADOW),
            },
        ]
    }

    #[test]
    fn round_trip_through_parser() {
        let cfg = ParseConfig::default();
        for (src, dst) in [v4(), v6()] {
            for tunnel in tunnels() {
                let p = params(src, dst, tunnel);
                let mut out = [0u8; 256];
                let len = emit_encap(&p, &INNER, &mut out).unwrap();
                assert_eq!(len, encap_overhead(&p) + INNER.len());
                let mut headers = [0u8; MAX_ENCAP_OVERHEAD];
                let header_len = emit_encap_headers(&p, &INNER, &mut headers).unwrap();
                assert_eq!(header_len, encap_overhead(&p));
                assert_eq!(&headers[..header_len], &out[..header_len]);
                let frame = &out[..len];
                let h = parse(frame, &cfg).unwrap();
                assert_eq!(h.src_ip(), Some(src));
                assert_eq!(h.dst_ip(), Some(dst));
                assert_eq!(h.ttl, 64);
                assert_eq!(usize::from(h.l3_offset) + usize::from(h.ip_total_len), len);
                let t = h.tunnel.expect("tunnel");
                assert_eq!(t.vni, tunnel.vni());
                assert_eq!(t.geneve_protocol, ethertype::TEB);
                assert_eq!(usize::from(t.inner_offset), encap_overhead(&p));
                assert_eq!(h.inner_frame(frame), Some(&INNER[..]));
                match tunnel {
                    TunnelHeader::Vxlan { .. } => {
                        assert_eq!(t.kind, TunnelKind::Vxlan);
                        assert_eq!(t.shadow, None);
                    }
                    TunnelHeader::Geneve { shadow, .. } => {
                        assert_eq!(t.kind, TunnelKind::Geneve);
                        assert_eq!(t.shadow, shadow);
                    }
                }
                let inner = parse(&frame[usize::from(t.inner_offset)..], &cfg).unwrap();
                assert_eq!(inner.ip_total_len, 60);

                let ip = &frame[14..];
                let udp_bytes = &frame[usize::from(h.l4_offset)..];
                let udp = udp::Packet::new_checked(udp_bytes).unwrap();
                assert_eq!(udp.src_port(), flow_entropy_port(0x1234_5678));
                assert_eq!(udp.dst_port(), tunnel.default_port());
                if src.is_ipv4() {
                    let ip = ipv4::Packet::new_checked(ip).unwrap();
                    assert!(ip.verify_checksum());
                    assert!(ip.dont_frag() && !ip.is_fragment());
                    assert_eq!(ip.ident(), 0);
                    assert_eq!(udp.checksum(), 0);
                } else {
                    let ip = ipv6::Packet::new_checked(ip).unwrap();
                    assert_eq!(ip.flow_label(), 0);
                    assert_eq!(ip.hop_limit(), 64);
                    assert_ne!(udp.checksum(), 0);
                    assert!(udp.verify_checksum(&src, &dst));
                    // And independently of the view: pseudo-header plus datagram sums to ffff.
                    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                        unreachable!()
                    };
                    let pseudo = checksum::pseudo_header_v6(&s, &d, 17, udp_bytes.len() as u32);
                    let sum = checksum::combine(&[pseudo, checksum::data(udp_bytes)]);
                    assert_eq!(sum, 0xffff);
                }
            }
        }
    }

    #[test]
    fn ipv6_checksum_covers_an_odd_length_inner_frame() {
        let (src, dst) = v6();
        for tunnel in tunnels() {
            let p = params(src, dst, tunnel);
            let mut out = [0u8; 256];
            let len = emit_encap(&p, &INNER[..73], &mut out).unwrap();
            let udp_bytes = &out[14 + 40..len];
            assert!(
                udp::Packet::new_checked(udp_bytes)
                    .unwrap()
                    .verify_checksum(&src, &dst)
            );
        }
    }

    #[test]
    fn vxlan_bytes() {
        let (src, dst) = v4();
        let p = params(src, dst, TunnelHeader::Vxlan { vni: 5000 });
        let mut out = [0u8; 128];
        let len = emit_encap(&p, &INNER, &mut out).unwrap();
        assert_eq!(len, 50 + 74);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        // IPv4: 45 00, total 110, ident 0, DF, TTL 64, UDP.
        assert_eq!(
            &out[14..24],
            &[0x45, 0x00, 0x00, 0x6e, 0, 0, 0x40, 0x00, 64, 17]
        );
        // UDP length 90, checksum 0.
        assert_eq!(&out[38..42], &[0x00, 0x5a, 0x00, 0x00]);
        assert_eq!(&out[42..50], &[0x08, 0, 0, 0, 0x00, 0x13, 0x88, 0x00]);
    }

    #[test]
    fn geneve_bytes() {
        let (src, dst) = v4();
        let p = params(
            src,
            dst,
            TunnelHeader::Geneve {
                vni: 0x12_3456,
                shadow: Some(SHADOW),
            },
        );
        let mut out = [0u8; 160];
        let len = emit_encap(&p, &INNER, &mut out).unwrap();
        assert_eq!(len, 14 + 20 + 8 + 24 + 74);
        assert_eq!(
            &out[42..66],
            &[
                0x04, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0x00, // ver 0, 4 words, TEB
                0xff, 0x53, 0x01, 0x03, // shadow option header
                0x00, 0x07, 0x01, 0x02, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x4a, 0x00, 0x00,
            ]
        );
    }

    #[test]
    fn errors() {
        let (s4, d4) = v4();
        let (s6, _) = v6();
        let mut out = [0u8; 256];
        let vx = TunnelHeader::Vxlan { vni: 1 };
        assert_eq!(
            emit_encap(&params(s4, s6, vx), &INNER, &mut out),
            Err(EncapError::AddressFamilyMismatch)
        );
        assert_eq!(
            emit_encap(
                &params(s4, d4, TunnelHeader::Vxlan { vni: 1 << 24 }),
                &INNER,
                &mut out
            ),
            Err(EncapError::VniOutOfRange)
        );
        assert_eq!(
            emit_encap(&params(s4, d4, vx), &INNER, &mut out[..123]),
            Err(EncapError::BufferTooSmall)
        );
        assert_eq!(
            emit_encap(&params(s4, d4, vx), &INNER, &mut out[..124]),
            Ok(124)
        );
        // Nothing written on error.
        let mut untouched = [0xa5u8; 64];
        assert!(emit_encap(&params(s4, d4, vx), &INNER, &mut untouched).is_err());
        assert!(untouched.iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn too_long() {
        extern crate std;
        let big = std::vec![0u8; 65535 - 20 - 8 - 8 + 1];
        let mut out = std::vec![0u8; 70000];
        let (s4, d4) = v4();
        let vx = TunnelHeader::Vxlan { vni: 1 };
        assert_eq!(
            emit_encap(&params(s4, d4, vx), &big, &mut out),
            Err(EncapError::TooLong)
        );
        // One byte less fits exactly: IPv4 total length 65535.
        assert!(emit_encap(&params(s4, d4, vx), &big[1..], &mut out).is_ok());
        // IPv6 does not count its header: 20 more bytes fit.
        let (s6, d6) = v6();
        let big6 = std::vec![0u8; 65535 - 8 - 8];
        assert!(emit_encap(&params(s6, d6, vx), &big6, &mut out).is_ok());
        assert_eq!(
            emit_encap(&params(s6, d6, vx), &out.clone()[..65535 - 8 - 7], &mut out),
            Err(EncapError::TooLong)
        );
    }

    #[test]
    fn entropy_port_range() {
        for h in [
            0u32,
            1,
            0x3fff,
            0x4000,
            0xffff_ffff,
            0x8000_0000,
            0x1234_5678,
        ] {
            assert!(flow_entropy_port(h) >= 49152);
        }
        assert_eq!(flow_entropy_port(0), 49152);
        // Flows differing only in high bits still get different ports.
        assert_ne!(
            flow_entropy_port(0x1000_0000),
            flow_entropy_port(0x2000_0000)
        );
        assert_ne!(flow_entropy_port(0x0001_0000), flow_entropy_port(0));
    }
}
