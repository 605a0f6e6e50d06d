//! The NIC's parser stage: one pass over a frame that extracts what the match-action stages
//! after it key on, or the reason the frame is dropped.
//!
//! [`parse`] reads Ethernet, up to two VLAN tags, ARP / IPv4 / IPv6 (with extension headers),
//! TCP / UDP / ICMP / ICMPv6 and an outer VXLAN or Geneve header. It never descends into a
//! tunnel's inner frame: the caller parses `&frame[tunnel.inner_offset..]` as a new frame.
//!
//! It never panics, never allocates, reads every byte at most a bounded number of times, and
//! does not verify checksums (a NIC flags bad checksums, it does not drop on them).
//!
//! # Decisions a caller must know
//!
//! - The frame is the bytes given, without FCS. Bytes after the IP packet (Ethernet padding)
//!   are ignored; an IP length beyond the frame is an error.
//! - Unknown EtherTypes ([`L3::Other`]) and unknown IP protocols ([`L4::Other`]) are not
//!   errors: such frames take the standard path. ARP other than Ethernet/IPv4 is `L3::Other`
//!   too (with `ethertype` 0x0806).
//! - `fragment` follows the reassembly meaning for both families: a fragment is a packet
//!   with MF set or a non-zero offset. An IPv6 *atomic fragment* (fragment header with offset
//!   0 and M clear, RFC 6946) is therefore [`Fragment::None`]; its fragment header still
//!   counts in `ipv6_ext_count`.
//! - In a first fragment, L4 is parsed but a UDP length beyond the fragment is allowed (the
//!   datagram continues in later fragments) and no tunnel is recognised. A TCP header split
//!   across fragments is an error.
//! - The IPv6 extension headers walked are hop-by-hop (first only), routing, fragment,
//!   destination options and AH; at most [`MAX_IPV6_EXT_HEADERS`]. ESP, No Next Header and
//!   anything else end the chain and become `protocol` (with [`L4::Other`]). After a
//!   non-first fragment header the walk stops, since what follows is fragment data.
//! - `dst` is the IPv6 header's destination, not the final one a routing header may name.
//! - Jumbograms: `ip_total_len` and `Tunnel::inner_len` saturate at 65535; the bounds checks
//!   use the full jumbo length. A UDP length of 0 inside a jumbogram means "the rest of the
//!   payload" (RFC 2675 section 4).
//! - A tunnel port of 0 in [`ParseConfig`] disables that tunnel. If both ports are equal,
//!   VXLAN wins.
//! - Geneve: all options are walked (their lengths must tile the options area exactly); the
//!   first shadow metadata option is returned. Our option class and type with fewer than 3
//!   words of data is [`ParseError::GeneveBadShadowOption`]; more than 3 words is accepted
//!   and the excess ignored. Critical options are not rejected here.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::ethernet::{self, EthernetAddress, ethertype};
use crate::geneve::{self, ShadowMetadata};
use crate::ipv4::{self, protocol};
use crate::ipv6;
use crate::{arp, icmp, tcp, udp, vlan, vxlan};

/// Most VLAN tags a frame may carry.
pub const MAX_VLAN_TAGS: usize = 2;

/// Most IPv6 extension headers walked before the packet is rejected.
pub const MAX_IPV6_EXT_HEADERS: u8 = 8;

/// Which UDP destination ports are tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseConfig {
    /// VXLAN UDP destination port (default 4789); 0 disables VXLAN.
    pub vxlan_port: u16,
    /// Geneve UDP destination port (default 6081); 0 disables Geneve.
    pub geneve_port: u16,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            vxlan_port: vxlan::UDP_PORT,
            geneve_port: geneve::UDP_PORT,
        }
    }
}

/// The network layer found after the VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    /// IPv4; the IP fields of [`Headers`] are valid.
    Ipv4,
    /// IPv6; the IP fields of [`Headers`] are valid.
    Ipv6,
    /// Ethernet/IPv4 ARP.
    Arp {
        /// Operation (1 request, 2 reply).
        op: u16,
        /// Sender protocol address.
        sender_ip: [u8; 4],
        /// Target protocol address.
        target_ip: [u8; 4],
    },
    /// Any other EtherType (or ARP for other address types).
    Other,
}

/// Fragmentation state of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Fragment {
    /// Not a fragment (or not IP).
    #[default]
    None,
    /// Offset 0 with more fragments to follow: carries the L4 header.
    First,
    /// Non-zero offset: no L4 header.
    NonFirst,
}

/// The transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// The flags octet (CWR ECE URG ACK PSH RST SYN FIN, see [`tcp::flags`]).
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP over IPv4.
    Icmp {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
    /// ICMPv6 over IPv6.
    Icmpv6 {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
    /// An IP protocol the parser does not decode (`Headers::protocol` says which).
    Other,
    /// A non-first fragment: the L4 header is in another packet.
    NotFirstFragment,
    /// Not IP.
    None,
}

/// Which tunnel header follows the outer UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN (RFC 7348).
    Vxlan,
    /// Geneve (RFC 8926).
    Geneve,
}

/// An outer tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// 24-bit virtual network identifier.
    pub vni: u32,
    /// Offset of the inner frame (after the tunnel header and its options) from the start
    /// of the frame.
    pub inner_offset: u16,
    /// Bytes of inner frame inside the UDP datagram (excluding anything after the datagram);
    /// may be 0. Saturates at 65535 (only possible in an IPv6 jumbogram).
    pub inner_len: u16,
    /// Geneve protocol type of the inner frame (0x6558 for Ethernet); 0x6558 for VXLAN.
    pub geneve_protocol: u16,
    /// Shadow metadata from a Geneve option, if present.
    pub shadow: Option<ShadowMetadata>,
}

/// Everything the parser stage extracts from one frame.
///
/// IP fields (`src` to `ipv6_ext_count`) are zero / `Fragment::None` when `l3` is not
/// IP. Offsets count from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Headers {
    /// Destination MAC address.
    pub eth_dst: EthernetAddress,
    /// Source MAC address.
    pub eth_src: EthernetAddress,
    /// VLAN ids, outermost first; entries past `vlan_count` are 0.
    pub vlan_ids: [u16; 2],
    /// Number of VLAN tags, 0..=2.
    pub vlan_count: u8,
    /// The EtherType after the VLAN tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: u16,
    /// The L3 protocol.
    pub l3: L3,
    /// Source address; IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub src: [u8; 16],
    /// Destination address; IPv4 as IPv4-mapped IPv6.
    pub dst: [u8; 16],
    /// Upper-layer protocol: the IPv4 protocol, or the IPv6 next header after the
    /// extension headers.
    pub protocol: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Bytes of the IP packet per its header (IPv6: 40 + payload length or jumbo length,
    /// saturating at 65535). `l3_offset + ip_total_len` is where padding starts.
    pub ip_total_len: u16,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// Whether the IPv4 header has options (IHL > 5); they are not validated.
    pub has_ipv4_options: bool,
    /// Number of IPv6 extension headers walked.
    pub ipv6_ext_count: u8,
    /// Offset of the L4 header (or of the fragment data for a non-first fragment, or of
    /// whatever follows the IP headers for `L4::Other`); 0 when not IP.
    pub l4_offset: u16,
    /// The L4 protocol.
    pub l4: L4,
    /// The outer tunnel header, when the frame is UDP to a configured tunnel port.
    pub tunnel: Option<Tunnel>,
}

impl Headers {
    const EMPTY: Headers = Headers {
        eth_dst: EthernetAddress([0; 6]),
        eth_src: EthernetAddress([0; 6]),
        vlan_ids: [0; 2],
        vlan_count: 0,
        ethertype: 0,
        l3_offset: 0,
        l3: L3::Other,
        src: [0; 16],
        dst: [0; 16],
        protocol: 0,
        ttl: 0,
        ip_total_len: 0,
        fragment: Fragment::None,
        has_ipv4_options: false,
        ipv6_ext_count: 0,
        l4_offset: 0,
        l4: L4::None,
        tunnel: None,
    };

    /// Whether `l3` is IPv4 or IPv6.
    pub const fn is_ip(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6)
    }

    fn addr(&self, bytes: &[u8; 16]) -> Option<IpAddr> {
        match self.l3 {
            L3::Ipv4 => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[12], bytes[13], bytes[14], bytes[15],
            ))),
            L3::Ipv6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
            _ => None,
        }
    }

    /// The source address as an `IpAddr` of the packet's own family; `None` when not IP.
    pub fn src_ip(&self) -> Option<IpAddr> {
        self.addr(&self.src)
    }

    /// The destination address as an `IpAddr` of the packet's own family.
    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.addr(&self.dst)
    }

    /// Source and destination ports for TCP and UDP.
    pub const fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => Some((sport, dport)),
            _ => None,
        }
    }

    /// The tunnel's inner frame within `frame` (the same bytes that were parsed), bounded by
    /// the UDP datagram. `None` without a tunnel.
    pub fn inner_frame<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let t = self.tunnel.as_ref()?;
        let start = usize::from(t.inner_offset);
        frame.get(start..start + usize::from(t.inner_len))
    }
}

/// Offsets are bounded far below 65536 by construction (at most 22 bytes of L2, 60 of IPv4
/// or 40 + 8 × 2048 of IPv6 headers, 8 of UDP and 260 of tunnel header), so saturation never
/// happens; it only keeps the conversion total.
fn off16(offset: usize) -> u16 {
    u16::try_from(offset).unwrap_or(u16::MAX)
}

fn tail(frame: &[u8], from: usize) -> &[u8] {
    frame.get(from..).unwrap_or(&[])
}

fn mapped_v4(octets: [u8; 4]) -> [u8; 16] {
    let [a, b, c, d] = octets;
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

/// Parses one frame. See the [module docs](self) for the decisions behind edge cases.
pub fn parse(frame: &[u8], cfg: &ParseConfig) -> Result<Headers, ParseError> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| ParseError::EthernetTruncated)?;
    let mut h = Headers::EMPTY;
    h.eth_dst = eth.dst_addr();
    h.eth_src = eth.src_addr();

    let mut ethertype = eth.ethertype();
    let mut offset = ethernet::HEADER_LEN;
    while vlan::is_tag_protocol(ethertype) {
        let slot = h
            .vlan_ids
            .get_mut(usize::from(h.vlan_count))
            .ok_or(ParseError::TooManyVlanTags)?;
        let tag =
            vlan::Tag::new_checked(tail(frame, offset)).map_err(|_| ParseError::VlanTruncated)?;
        *slot = tag.vid();
        ethertype = tag.ethertype();
        h.vlan_count += 1;
        offset += vlan::HEADER_LEN;
    }
    h.ethertype = ethertype;
    h.l3_offset = off16(offset);

    match ethertype {
        ethertype::IPV4 => parse_ipv4(frame, offset, cfg, &mut h)?,
        ethertype::IPV6 => parse_ipv6(frame, offset, cfg, &mut h)?,
        ethertype::ARP => parse_arp(tail(frame, offset), &mut h)?,
        _ => {}
    }
    Ok(h)
}

fn parse_arp(bytes: &[u8], h: &mut Headers) -> Result<(), ParseError> {
    let p = arp::Packet::new_checked(bytes).map_err(|_| ParseError::ArpTruncated)?;
    if p.is_ethernet_ipv4() {
        let ip = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        h.l3 = L3::Arp {
            op: p.operation(),
            sender_ip: ip(p.source_protocol_addr()),
            target_ip: ip(p.target_protocol_addr()),
        };
    }
    Ok(())
}

fn parse_ipv4(
    frame: &[u8],
    l3: usize,
    cfg: &ParseConfig,
    h: &mut Headers,
) -> Result<(), ParseError> {
    let bytes = tail(frame, l3);
    if bytes.len() < ipv4::HEADER_LEN {
        return Err(ParseError::Ipv4Truncated);
    }
    let p = ipv4::Packet::new_unchecked(bytes);
    if p.version() != 4 {
        return Err(ParseError::Ipv4BadVersion);
    }
    let header_len = usize::from(p.header_len());
    if header_len < ipv4::HEADER_LEN {
        return Err(ParseError::Ipv4BadHeaderLength);
    }
    if header_len > bytes.len() {
        return Err(ParseError::Ipv4Truncated);
    }
    let total_len = usize::from(p.total_len());
    if total_len < header_len || total_len > bytes.len() {
        return Err(ParseError::Ipv4BadTotalLength);
    }

    h.l3 = L3::Ipv4;
    h.src = mapped_v4(p.src_addr().octets());
    h.dst = mapped_v4(p.dst_addr().octets());
    h.protocol = p.protocol();
    h.ttl = p.ttl();
    h.ip_total_len = p.total_len();
    h.has_ipv4_options = header_len > ipv4::HEADER_LEN;
    h.fragment = if p.frag_offset() != 0 {
        Fragment::NonFirst
    } else if p.more_frags() {
        Fragment::First
    } else {
        Fragment::None
    };
    parse_l4(frame, l3 + header_len, l3 + total_len, false, cfg, h)
}

fn parse_ipv6(
    frame: &[u8],
    l3: usize,
    cfg: &ParseConfig,
    h: &mut Headers,
) -> Result<(), ParseError> {
    let bytes = tail(frame, l3);
    if bytes.len() < ipv6::HEADER_LEN {
        return Err(ParseError::Ipv6Truncated);
    }
    let p = ipv6::Packet::new_unchecked(bytes);
    if p.version() != 6 {
        return Err(ParseError::Ipv6BadVersion);
    }
    h.l3 = L3::Ipv6;
    h.src = p.src_addr().octets();
    h.dst = p.dst_addr().octets();
    h.ttl = p.hop_limit();

    let mut next_header = p.next_header();
    let payload_len = usize::from(p.payload_len());
    let mut jumbo = false;
    let packet_len = if payload_len != 0 {
        ipv6::HEADER_LEN + payload_len
    } else if next_header == protocol::HOPOPT {
        // Payload length 0 with hop-by-hop: a jumbogram, whose length is in the option.
        let hbh = ipv6::ExtHeader::new_checked(tail(bytes, ipv6::HEADER_LEN))
            .map_err(|_| ParseError::Ipv6ExtHeaderTruncated)?;
        let jumbo_len = hbh
            .options()
            .map_while(Result::ok)
            .find_map(|o| o.jumbo_payload_len())
            .ok_or(ParseError::Ipv6MissingJumboOption)?;
        jumbo = true;
        usize::try_from(jumbo_len)
            .ok()
            .and_then(|l| l.checked_add(ipv6::HEADER_LEN))
            .unwrap_or(usize::MAX)
    } else {
        ipv6::HEADER_LEN
    };
    let packet = bytes
        .get(..packet_len)
        .ok_or(ParseError::Ipv6BadPayloadLength)?;
    h.ip_total_len = u16::try_from(packet_len).unwrap_or(u16::MAX);

    let mut offset = ipv6::HEADER_LEN;
    let mut count = 0u8;
    while ipv6::is_extension_header(next_header) {
        if next_header == protocol::HOPOPT && count != 0 {
            return Err(ParseError::Ipv6HopByHopNotFirst);
        }
        if count == MAX_IPV6_EXT_HEADERS {
            return Err(ParseError::Ipv6TooManyExtHeaders);
        }
        let rest = tail(packet, offset);
        let truncated = |_| ParseError::Ipv6ExtHeaderTruncated;
        let len = match next_header {
            protocol::IPV6_FRAG => {
                let f = ipv6::FragmentHeader::new_checked(rest).map_err(truncated)?;
                next_header = f.next_header();
                if f.frag_offset() != 0 {
                    h.fragment = Fragment::NonFirst;
                } else if f.more_frags() {
                    h.fragment = Fragment::First;
                }
                ipv6::FRAGMENT_HEADER_LEN
            }
            protocol::AH => {
                let a = ipv6::AuthHeader::new_checked(rest).map_err(truncated)?;
                next_header = a.next_header();
                a.header_len()
            }
            _ => {
                let e = ipv6::ExtHeader::new_checked(rest).map_err(truncated)?;
                next_header = e.next_header();
                e.header_len()
            }
        };
        count += 1;
        offset += len;
        if h.fragment == Fragment::NonFirst {
            break;
        }
    }
    h.protocol = next_header;
    h.ipv6_ext_count = count;
    parse_l4(frame, l3 + offset, l3 + packet_len, jumbo, cfg, h)
}

/// Parses the L4 header found at `start`, inside an IP packet ending at `end` (both offsets
/// into `frame`, already checked to lie within it).
fn parse_l4(
    frame: &[u8],
    start: usize,
    end: usize,
    jumbo: bool,
    cfg: &ParseConfig,
    h: &mut Headers,
) -> Result<(), ParseError> {
    h.l4_offset = off16(start);
    if h.fragment == Fragment::NonFirst {
        h.l4 = L4::NotFirstFragment;
        return Ok(());
    }
    let payload = frame.get(start..end).unwrap_or(&[]);
    h.l4 = match (h.l3, h.protocol) {
        (_, protocol::TCP) => {
            if payload.len() < tcp::HEADER_LEN {
                return Err(ParseError::TcpTruncated);
            }
            let t = tcp::Packet::new_unchecked(payload);
            let header_len = usize::from(t.header_len());
            if header_len < tcp::HEADER_LEN || header_len > payload.len() {
                return Err(ParseError::TcpBadDataOffset);
            }
            L4::Tcp {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
            }
        }
        (_, protocol::UDP) => {
            if payload.len() < udp::HEADER_LEN {
                return Err(ParseError::UdpTruncated);
            }
            let u = udp::Packet::new_unchecked(payload);
            let mut udp_len = usize::from(u.len());
            if udp_len == 0 && jumbo {
                udp_len = payload.len();
            }
            let fragmented = h.fragment != Fragment::None;
            if udp_len < udp::HEADER_LEN || (udp_len > payload.len() && !fragmented) {
                return Err(ParseError::UdpBadLength);
            }
            let (sport, dport) = (u.src_port(), u.dst_port());
            if !fragmented {
                let datagram = payload.get(udp::HEADER_LEN..udp_len).unwrap_or(&[]);
                h.tunnel = parse_tunnel(datagram, start + udp::HEADER_LEN, dport, cfg)?;
            }
            L4::Udp { sport, dport }
        }
        (L3::Ipv4, protocol::ICMP) | (L3::Ipv6, protocol::ICMPV6) => {
            if payload.len() < icmp::TYPE_CODE_LEN {
                return Err(ParseError::IcmpTruncated);
            }
            let i = icmp::Packet::new_unchecked(payload);
            let (ty, code) = (i.msg_type(), i.msg_code());
            if h.l3 == L3::Ipv4 {
                L4::Icmp { ty, code }
            } else {
                L4::Icmpv6 { ty, code }
            }
        }
        _ => L4::Other,
    };
    Ok(())
}

/// Recognises a tunnel header at the start of `datagram` (the UDP payload, which starts at
/// frame offset `start`).
fn parse_tunnel(
    datagram: &[u8],
    start: usize,
    dport: u16,
    cfg: &ParseConfig,
) -> Result<Option<Tunnel>, ParseError> {
    let (kind, vni, header_len, geneve_protocol, shadow) =
        if cfg.vxlan_port != 0 && dport == cfg.vxlan_port {
            let v = vxlan::Packet::new_checked(datagram).map_err(|_| ParseError::VxlanTruncated)?;
            if !v.vni_valid() {
                return Err(ParseError::VxlanNoVniFlag);
            }
            let teb = ethertype::TEB;
            (TunnelKind::Vxlan, v.vni(), vxlan::HEADER_LEN, teb, None)
        } else if cfg.geneve_port != 0 && dport == cfg.geneve_port {
            if datagram.len() < geneve::HEADER_LEN {
                return Err(ParseError::GeneveTruncated);
            }
            let g = geneve::Header::new_unchecked(datagram);
            if g.version() != 0 {
                return Err(ParseError::GeneveBadVersion);
            }
            if g.header_len() > datagram.len() {
                return Err(ParseError::GeneveBadOptionLength);
            }
            let mut shadow = None;
            for option in g.options_iter() {
                let option = option.map_err(|_| ParseError::GeneveBadOptionLength)?;
                if shadow.is_none()
                    && let Some(found) = ShadowMetadata::from_option(&option)
                {
                    shadow = Some(found.map_err(|_| ParseError::GeneveBadShadowOption)?);
                }
            }
            let kind = TunnelKind::Geneve;
            (kind, g.vni(), g.header_len(), g.protocol_type(), shadow)
        } else {
            return Ok(None);
        };
    Ok(Some(Tunnel {
        kind,
        vni,
        inner_offset: off16(start + header_len),
        inner_len: u16::try_from(datagram.len().saturating_sub(header_len)).unwrap_or(u16::MAX),
        geneve_protocol,
        shadow,
    }))
}
