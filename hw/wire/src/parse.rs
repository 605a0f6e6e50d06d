//! The NIC's parser stage: one pass over a frame that extracts what the match-action stages
//! after it key on, or the reason the frame is dropped.
//!
//! [`parse()`] reads Ethernet, up to two VLAN tags, ARP / IPv4 / IPv6 (with extension headers),
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

/// Empty headers: what [`parse_into`] starts from (storage for it, not a parsed frame).
impl Default for Headers {
    fn default() -> Self {
        Headers::EMPTY
    }
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
    let mut result = Ok(Headers::EMPTY);
    if let Ok(h) = &mut result
        && let Err(e) = parse_fields(frame, cfg, h)
    {
        result = Err(e);
    }
    result
}

/// [`parse()`] into caller-owned storage, for a pipeline that keeps `Headers` in its
/// per-packet context: it saves moving the result, which costs a few nanoseconds (the
/// move re-reads with wide loads fields just written with narrow stores). `out` is reset
/// first; after an error its contents are unspecified.
pub fn parse_into(frame: &[u8], cfg: &ParseConfig, out: &mut Headers) -> Result<(), ParseError> {
    *out = Headers::EMPTY;
    parse_fields(frame, cfg, out)
}

// The stage functions are inlined into `parse` so the optimiser sees one function; the
// tunnel parser stays out of line, where it measured faster. `h` is `Headers::EMPTY`.
#[inline(always)]
fn parse_fields(frame: &[u8], cfg: &ParseConfig, h: &mut Headers) -> Result<(), ParseError> {
    if parse_common(frame, cfg, h) {
        return Ok(());
    }
    parse_full(frame, cfg, h)
}

/// What [`parse_plain`] reads from the most common frame: untagged Ethernet, IPv4 without
/// options and not a fragment, well-formed TCP, or well-formed UDP to a port that is not a
/// configured tunnel port. Everything else a full parse would find follows from the layout:
/// EtherType IPv4, L3 at 14, L4 at 34, no VLAN tags, no tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain {
    /// IPv4 source address.
    pub src: [u8; 4],
    /// IPv4 destination address.
    pub dst: [u8; 4],
    /// IP protocol (TCP or UDP).
    pub protocol: u8,
    /// TTL.
    pub ttl: u8,
    /// IPv4 total length.
    pub total_len: u16,
    /// The TCP or UDP header's fields.
    pub l4: L4,
}

impl Plain {
    /// Source and destination ports.
    #[inline(always)]
    pub const fn ports(&self) -> (u16, u16) {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
            _ => (0, 0),
        }
    }
}

/// The parser's fast path on its own: the fixed-offset read of the most common frame (see
/// [`Plain`]), or `None` for anything else (every malformed frame among them), which only
/// the full [`parse()`] decides. For such a frame [`parse()`] returns exactly the headers
/// [`Plain`] describes (the tests compare both on every corpus frame and on random
/// variations of the fixed layout).
#[inline(always)]
pub fn parse_plain(frame: &[u8], cfg: &ParseConfig) -> Option<Plain> {
    const L3_AT: usize = ethernet::HEADER_LEN;
    const L4_AT: usize = L3_AT + ipv4::HEADER_LEN;
    let b = frame.get(..L4_AT)?;
    let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    // IPv4 (0x0800), version 4, IHL 5; MF clear and fragment offset 0.
    if be(12) != ethertype::IPV4 || b[L3_AT] != 0x45 || be(L3_AT + 6) & 0x3fff != 0 {
        return None;
    }
    let total_len = be(L3_AT + 2);
    let end = L3_AT + usize::from(total_len);
    if end < L4_AT || end > frame.len() {
        return None;
    }
    let payload = &frame[L4_AT..end];
    let proto = b[L3_AT + 9];
    let l4 = match proto {
        protocol::TCP => {
            let t = payload.get(..tcp::HEADER_LEN)?;
            let header_len = usize::from(t[12] >> 4) * 4;
            if header_len < tcp::HEADER_LEN || header_len > payload.len() {
                return None;
            }
            L4::Tcp {
                sport: u16::from_be_bytes([t[0], t[1]]),
                dport: u16::from_be_bytes([t[2], t[3]]),
                flags: t[13],
            }
        }
        protocol::UDP => {
            let u = payload.get(..udp::HEADER_LEN)?;
            let dport = u16::from_be_bytes([u[2], u[3]]);
            let udp_len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if udp_len < udp::HEADER_LEN || udp_len > payload.len() {
                return None;
            }
            let tunnel_port = |p: u16| p != 0 && p == dport;
            if tunnel_port(cfg.vxlan_port) || tunnel_port(cfg.geneve_port) {
                return None;
            }
            L4::Udp {
                sport: u16::from_be_bytes([u[0], u[1]]),
                dport,
            }
        }
        _ => return None,
    };
    let addr = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
    Some(Plain {
        src: addr(L3_AT + 12),
        dst: addr(L3_AT + 16),
        protocol: proto,
        ttl: b[L3_AT + 8],
        total_len,
        l4,
    })
}

/// [`parse_plain`] into `h` (`Headers::EMPTY`): returns false, having written nothing, for
/// a frame it does not take; [`parse_full`] then decides. The fields it writes are exactly
/// those `parse_full` writes for such a frame.
#[inline(always)]
fn parse_common(frame: &[u8], cfg: &ParseConfig, h: &mut Headers) -> bool {
    let Some(p) = parse_plain(frame, cfg) else {
        return false;
    };
    let b = &frame[..ethernet::HEADER_LEN];
    h.eth_dst = EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]]);
    h.eth_src = EthernetAddress([b[6], b[7], b[8], b[9], b[10], b[11]]);
    h.ethertype = ethertype::IPV4;
    h.l3_offset = ethernet::HEADER_LEN as u16;
    h.l3 = L3::Ipv4;
    h.src = mapped_v4(p.src);
    h.dst = mapped_v4(p.dst);
    h.protocol = p.protocol;
    h.ttl = p.ttl;
    h.ip_total_len = p.total_len;
    h.l4_offset = (ethernet::HEADER_LEN + ipv4::HEADER_LEN) as u16;
    h.l4 = p.l4;
    true
}

/// The full parser: every frame, every error. `h` is `Headers::EMPTY`.
#[inline(always)]
fn parse_full(frame: &[u8], cfg: &ParseConfig, h: &mut Headers) -> Result<(), ParseError> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| ParseError::EthernetTruncated)?;
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
        ethertype::IPV4 => parse_ipv4(frame, offset, cfg, h),
        ethertype::IPV6 => parse_ipv6(frame, offset, cfg, h),
        ethertype::ARP => parse_arp(tail(frame, offset), h),
        _ => Ok(()),
    }
}

#[inline(always)]
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

#[inline(always)]
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

#[inline(always)]
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
#[inline(always)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geneve::{SHADOW_DIRECTION_FROM_VM, SHADOW_FLAG_TRUNCATED};
    use crate::tcp::flags;
    use std::vec::Vec;

    // Real packets, written out by hand and checked with Wireshark (all checksums good).

    /// 192.168.1.100:51000 -> 93.184.216.34:80 SYN, MSS/SACK/TS/NOP/WS options.
    const TCP_SYN: &str = concat!(
        "001a2b3c4d5e001b213a4f5c08004500003c8f3a40004006b39ac0a8",
        "01645db8d822c73800503b9aca0000000000a002faf0a63200000204",
        "05b40402080a0009e1c80000000001030307",
    );
    /// DNS query for example.com A, 192.168.1.100:53124 -> 8.8.8.8:53.
    const DNS_QUERY: &str = concat!(
        "001a2b3c4d5e001b213a4f5c0800450000391c46000040118c52c0a8",
        "016408080808cf8400350025e292abcd010000010000000000000765",
        "78616d706c6503636f6d0000010001",
    );
    /// ICMP echo request 192.168.1.100 -> 8.8.8.8, id 1 seq 7, TTL 128.
    const ICMP_ECHO: &str = concat!(
        "001a2b3c4d5e001b213a4f5c08004500003c3a01000080012ea4c0a8",
        "01640808080808004d54000100076162636465666768696a6b6c6d6e",
        "6f7071727374757677616263646566676869",
    );
    /// Who has 192.168.1.1? Tell 192.168.1.100 — padded to the 60-byte minimum.
    const ARP_REQUEST: &str = concat!(
        "ffffffffffff001b213a4f5c08060001080006040001001b213a4f5c",
        "c0a80164000000000000c0a801010000000000000000000000000000",
        "00000000",
    );
    /// 2001:db8::1:49153 -> 2001:db8::2:443 SYN behind a hop-by-hop header (router alert)
    /// and an atomic fragment header (offset 0, M clear, id 0x12345678).
    const IPV6_HBH_FRAG_TCP: &str = concat!(
        "001a2b3c4d5e001b213a4f5c86dd600000000028004020010db80000",
        "0000000000000000000120010db80000000000000000000000022c00",
        "0502000001000600000012345678c00101bb00000001000000006002",
        "ffff7b080000020405a0",
    );
    /// 802.1Q VLAN 100 (PCP 3), DNS query 10.0.0.1 -> 10.0.0.53.
    const VLAN_DNS: &str = concat!(
        "001a2b3c4d5e001b213a4f5c81006064080045000039000100004011",
        "667e0a0000010a0000359c4000350025d3bdabcd0100000100000000",
        "0000076578616d706c6503636f6d0000010001",
    );
    /// 802.1ad S-tag 200 + 802.1Q C-tag 100, ICMP echo 10.0.0.1 -> 10.0.0.2.
    const QINQ_ICMP: &str = concat!(
        "001a2b3c4d5e001b213a4f5c88a800c88100006408004500003c0002",
        "0000400166bd0a0000010a00000208004d5400010007616263646566",
        "6768696a6b6c6d6e6f7071727374757677616263646566676869",
    );
    /// VXLAN VNI 5000, 10.1.1.1 -> 10.1.1.2, UDP checksum 0, inner ICMP echo.
    const VXLAN_ICMP: &str = concat!(
        "001a2b3c4d5e001b213a4f5c08004500006e000040004011247b0a01",
        "01010a010102d43112b5005a00000800000000138800020000000002",
        "02000000000108004500003c000300004001229bac100001ac100002",
        "08004d54000100076162636465666768696a6b6c6d6e6f7071727374",
        "757677616263646566676869",
    );
    /// Geneve VNI 0x123456 with an OVN-class option and the shadow option (session 0x0102,
    /// from the VM, truncated, sequence 0xa0b0c0d0, original length 1514), inner ICMP echo.
    const GENEVE_SHADOW: &str = concat!(
        "001a2b3c4d5e001b213a4f5c08004500008600004000401124630a01",
        "01010a010102d43117c100720f1d060065581234560001020501dead",
        "beefff53010301020201a0b0c0d005ea000002000000000202000000",
        "000108004500003c000300004001229bac100001ac10000208004d54",
        "000100076162636465666768696a6b6c6d6e6f707172737475767761",
        "6263646566676869",
    );

    const ALL_REAL: [&str; 9] = [
        TCP_SYN,
        DNS_QUERY,
        ICMP_ECHO,
        ARP_REQUEST,
        IPV6_HBH_FRAG_TCP,
        VLAN_DNS,
        QINQ_ICMP,
        VXLAN_ICMP,
        GENEVE_SHADOW,
    ];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn cfg() -> ParseConfig {
        ParseConfig::default()
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        mapped_v4([a, b, c, d])
    }

    // Builders for the minimal malformed frames below.

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = MACS.to_vec();
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// IPv4 header (no options, not fragmented) + payload, total length from the payload.
    fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = std::vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// IPv6 fixed header + payload, payload length from the payload.
    fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0x60, 0, 0, 0, 0, 0, next_header, 64];
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = std::vec![0xc0, 0x00];
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn tcp_header() -> Vec<u8> {
        std::vec![
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0
        ]
    }

    /// Checks the promises every successful parse makes about offsets.
    fn check_offsets(frame: &[u8], h: &Headers) {
        let len = frame.len();
        let l3 = usize::from(h.l3_offset);
        assert_eq!(l3, 14 + 4 * usize::from(h.vlan_count));
        assert!(l3 <= len);
        assert!(h.vlan_count <= 2);
        if h.is_ip() {
            let ip_end = l3 + usize::from(h.ip_total_len);
            assert!(ip_end <= len || h.ip_total_len == u16::MAX);
            let l4 = usize::from(h.l4_offset);
            assert!(l4 >= l3 + 20 && l4 <= ip_end.min(len), "{h:?}");
        } else {
            assert_eq!(h.l4_offset, 0);
            assert_eq!(h.l4, L4::None);
            assert_eq!(h.fragment, Fragment::None);
        }
        if let Some(t) = h.tunnel {
            let inner = usize::from(t.inner_offset);
            assert!(inner >= usize::from(h.l4_offset) + 16);
            assert!(inner + usize::from(t.inner_len) <= len);
            assert!(h.inner_frame(frame).is_some());
            assert!(t.vni <= 0x00ff_ffff);
            assert!(matches!(h.l4, L4::Udp { .. }));
        }
    }

    /// Parses a frame and, recursively, tunnel inner frames; checks offsets at every level.
    fn parse_deep(frame: &[u8], cfg: &ParseConfig, depth: u8) {
        let result = parse(frame, cfg);
        // The in-place variant agrees, even when `out` held another packet's headers.
        let mut out = parse(&hex(QINQ_ICMP), cfg).unwrap();
        match parse_into(frame, cfg, &mut out) {
            Ok(()) => assert_eq!(result, Ok(out)),
            Err(e) => assert_eq!(result, Err(e)),
        }
        if let Ok(h) = result {
            check_offsets(frame, &h);
            if depth > 0
                && let Some(inner) = h.inner_frame(frame)
            {
                parse_deep(inner, cfg, depth - 1);
            }
        }
    }

    #[test]
    fn tcp_syn() {
        let f = hex(TCP_SYN);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(
            h.eth_dst,
            EthernetAddress([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e])
        );
        assert_eq!(
            h.eth_src,
            EthernetAddress([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x5c])
        );
        assert_eq!((h.vlan_count, h.vlan_ids), (0, [0, 0]));
        assert_eq!(h.ethertype, ethertype::IPV4);
        assert_eq!(h.l3_offset, 14);
        assert_eq!(h.l3, L3::Ipv4);
        assert_eq!(h.src, v4(192, 168, 1, 100));
        assert_eq!(h.dst, v4(93, 184, 216, 34));
        assert_eq!(h.src_ip(), Some("192.168.1.100".parse().unwrap()));
        assert_eq!(h.dst_ip(), Some("93.184.216.34".parse().unwrap()));
        assert_eq!((h.protocol, h.ttl, h.ip_total_len), (6, 64, 60));
        assert_eq!(h.fragment, Fragment::None);
        assert!(!h.has_ipv4_options);
        assert_eq!(h.ipv6_ext_count, 0);
        assert_eq!(h.l4_offset, 34);
        assert_eq!(
            h.l4,
            L4::Tcp {
                sport: 51000,
                dport: 80,
                flags: flags::SYN
            }
        );
        assert_eq!(h.ports(), Some((51000, 80)));
        assert_eq!(h.tunnel, None);
        check_offsets(&f, &h);
    }

    #[test]
    fn dns_query() {
        let f = hex(DNS_QUERY);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.dst, v4(8, 8, 8, 8));
        assert_eq!((h.protocol, h.ip_total_len), (17, 57));
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 53124,
                dport: 53
            }
        );
        assert_eq!(h.tunnel, None);
    }

    #[test]
    fn icmp_echo() {
        let h = parse(&hex(ICMP_ECHO), &cfg()).unwrap();
        assert_eq!(h.ttl, 128);
        assert_eq!(h.l4, L4::Icmp { ty: 8, code: 0 });
        assert_eq!(h.ports(), None);
    }

    #[test]
    fn arp_request() {
        let f = hex(ARP_REQUEST);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.eth_dst, EthernetAddress::BROADCAST);
        assert_eq!(h.ethertype, ethertype::ARP);
        assert_eq!(
            h.l3,
            L3::Arp {
                op: 1,
                sender_ip: [192, 168, 1, 100],
                target_ip: [192, 168, 1, 1]
            }
        );
        assert_eq!(h.l4, L4::None);
        assert!(!h.is_ip() && h.src_ip().is_none());
        check_offsets(&f, &h);
    }

    #[test]
    fn arp_for_other_protocols_is_other() {
        // ARP for a 16-byte protocol address (not IPv4): valid, but not ours to decode.
        let mut arp = std::vec![0x00, 0x01, 0x86, 0xdd, 6, 16, 0, 1];
        arp.extend_from_slice(&[0u8; 44]);
        let h = parse(&eth(ethertype::ARP, &arp), &cfg()).unwrap();
        assert_eq!((h.ethertype, h.l3), (ethertype::ARP, L3::Other));
    }

    #[test]
    fn ipv6_hop_by_hop_and_atomic_fragment() {
        let f = hex(IPV6_HBH_FRAG_TCP);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.ethertype, ethertype::IPV6);
        assert_eq!(h.l3, L3::Ipv6);
        assert_eq!(h.src_ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(h.dst_ip(), Some("2001:db8::2".parse().unwrap()));
        assert_eq!((h.protocol, h.ttl, h.ip_total_len), (6, 64, 80));
        assert_eq!(h.ipv6_ext_count, 2);
        // An atomic fragment is a whole packet (RFC 6946).
        assert_eq!(h.fragment, Fragment::None);
        assert_eq!(h.l4_offset, 14 + 40 + 8 + 8);
        assert_eq!(
            h.l4,
            L4::Tcp {
                sport: 49153,
                dport: 443,
                flags: flags::SYN
            }
        );
        check_offsets(&f, &h);
    }

    #[test]
    fn ipv6_first_and_non_first_fragments() {
        let mut f = hex(IPV6_HBH_FRAG_TCP);
        // Fragment header at 14 + 40 + 8; its offset/M field is bytes 2..4.
        f[64..66].copy_from_slice(&[0x00, 0x01]);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.fragment, Fragment::First);
        assert!(matches!(h.l4, L4::Tcp { dport: 443, .. }));

        f[64..66].copy_from_slice(&[0x05, 0xa8]);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.fragment, Fragment::NonFirst);
        assert_eq!(h.l4, L4::NotFirstFragment);
        assert_eq!(h.protocol, 6);
        assert_eq!(h.l4_offset, 70);
        check_offsets(&f, &h);
    }

    #[test]
    fn vlan_8021q() {
        let f = hex(VLAN_DNS);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!((h.vlan_count, h.vlan_ids), (1, [100, 0]));
        assert_eq!(h.ethertype, ethertype::IPV4);
        assert_eq!(h.l3_offset, 18);
        assert_eq!(h.l4_offset, 38);
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 40000,
                dport: 53
            }
        );
        check_offsets(&f, &h);
    }

    #[test]
    fn vlan_qinq() {
        let f = hex(QINQ_ICMP);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!((h.vlan_count, h.vlan_ids), (2, [200, 100]));
        assert_eq!((h.ethertype, h.l3_offset), (ethertype::IPV4, 22));
        assert_eq!(h.l4, L4::Icmp { ty: 8, code: 0 });
        // The legacy 0x9100 S-tag works the same.
        let mut legacy = f.clone();
        legacy[12..14].copy_from_slice(&[0x91, 0x00]);
        assert_eq!(parse(&legacy, &cfg()).unwrap().vlan_ids, [200, 100]);
        check_offsets(&f, &h);
    }

    #[test]
    fn vxlan() {
        let f = hex(VXLAN_ICMP);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 54321,
                dport: 4789
            }
        );
        let t = h.tunnel.unwrap();
        assert_eq!(
            t,
            Tunnel {
                kind: TunnelKind::Vxlan,
                vni: 5000,
                inner_offset: 50,
                inner_len: 74,
                geneve_protocol: ethertype::TEB,
                shadow: None,
            }
        );
        let inner = parse(&f[50..], &cfg()).unwrap();
        assert_eq!(inner.eth_src, EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(inner.src, v4(172, 16, 0, 1));
        assert_eq!(inner.l4, L4::Icmp { ty: 8, code: 0 });
        check_offsets(&f, &h);
    }

    #[test]
    fn geneve_with_shadow_option() {
        let f = hex(GENEVE_SHADOW);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 54321,
                dport: 6081
            }
        );
        let t = h.tunnel.unwrap();
        assert_eq!(t.kind, TunnelKind::Geneve);
        assert_eq!(t.vni, 0x12_3456);
        assert_eq!(t.inner_offset, 42 + 8 + 24);
        assert_eq!(t.inner_len, 74);
        assert_eq!(t.geneve_protocol, ethertype::TEB);
        assert_eq!(
            t.shadow,
            Some(ShadowMetadata {
                session: 0x0102,
                direction: SHADOW_DIRECTION_FROM_VM,
                flags: SHADOW_FLAG_TRUNCATED,
                sequence: 0xa0b0_c0d0,
                original_len: 1514,
            })
        );
        assert_eq!(h.inner_frame(&f), Some(&hex(VXLAN_ICMP)[50..]));
        check_offsets(&f, &h);
    }

    #[test]
    fn geneve_without_options_and_other_protocol() {
        // Geneve carrying IPv4 directly (protocol type 0x0800), no options.
        let g = [0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x45];
        let f = eth(ethertype::IPV4, &ipv4(17, &udp(6081, &g)));
        let t = parse(&f, &cfg()).unwrap().tunnel.unwrap();
        assert_eq!(
            (t.kind, t.vni, t.geneve_protocol),
            (TunnelKind::Geneve, 42, 0x0800)
        );
        assert_eq!((t.inner_offset, t.inner_len, t.shadow), (50, 1, None));
    }

    #[test]
    fn tunnel_ports_are_configurable() {
        let f = hex(VXLAN_ICMP);
        let off = ParseConfig {
            vxlan_port: 0,
            geneve_port: 0,
        };
        assert_eq!(parse(&f, &off).unwrap().tunnel, None);
        let mut moved = f.clone();
        moved[36..38].copy_from_slice(&8472u16.to_be_bytes());
        assert_eq!(parse(&moved, &cfg()).unwrap().tunnel, None);
        let linux = ParseConfig {
            vxlan_port: 8472,
            ..ParseConfig::default()
        };
        assert_eq!(parse(&moved, &linux).unwrap().tunnel.unwrap().vni, 5000);
        // Geneve port configured to VXLAN's: VXLAN wins.
        let same = ParseConfig {
            vxlan_port: 4789,
            geneve_port: 4789,
        };
        assert_eq!(
            parse(&f, &same).unwrap().tunnel.unwrap().kind,
            TunnelKind::Vxlan
        );
    }

    #[test]
    fn empty_vxlan_payload_is_the_inner_parsers_problem() {
        let vx = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let f = eth(ethertype::IPV4, &ipv4(17, &udp(4789, &vx)));
        let h = parse(&f, &cfg()).unwrap();
        let t = h.tunnel.unwrap();
        assert_eq!((usize::from(t.inner_offset), t.inner_len), (f.len(), 0));
        assert_eq!(
            parse(h.inner_frame(&f).unwrap(), &cfg()),
            Err(ParseError::EthernetTruncated)
        );
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        let mut f = hex(DNS_QUERY);
        f.extend_from_slice(&[0xee; 9]);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.ip_total_len, 57);
        // A minimum-size frame with a tiny IPv4/UDP packet and padding.
        let mut small = eth(ethertype::IPV4, &ipv4(17, &udp(53, &[])));
        small.resize(60, 0);
        assert_eq!(
            parse(&small, &cfg()).unwrap().l4,
            L4::Udp {
                sport: 0xc000,
                dport: 53
            }
        );
    }

    #[test]
    fn l4_must_lie_inside_the_ip_packet() {
        // The TCP header sits in the frame but after the IP packet's end (in "padding").
        let mut ip = ipv4(6, &[]);
        ip.extend_from_slice(&tcp_header());
        assert_eq!(
            parse(&eth(0x0800, &ip), &cfg()),
            Err(ParseError::TcpTruncated)
        );
    }

    #[test]
    fn unknown_ethertype_and_protocol_are_not_errors() {
        let h = parse(&eth(0x88cc, &[0; 46]), &cfg()).unwrap(); // LLDP
        assert_eq!((h.ethertype, h.l3, h.l4), (0x88cc, L3::Other, L4::None));
        // An 802.3 length field instead of an EtherType.
        assert_eq!(parse(&eth(0x0026, &[0; 46]), &cfg()).unwrap().l3, L3::Other);
        let h = parse(&eth(0x0800, &ipv4(47, &[0, 0, 0x65, 0x58])), &cfg()).unwrap(); // GRE
        assert_eq!((h.protocol, h.l4, h.l4_offset), (47, L4::Other, 34));
        // ICMPv6's number over IPv4 and ICMP's over IPv6 mean nothing.
        let h = parse(&eth(0x0800, &ipv4(58, &[0; 8])), &cfg()).unwrap();
        assert_eq!(h.l4, L4::Other);
        let h = parse(&eth(0x86dd, &ipv6(1, &[0; 8])), &cfg()).unwrap();
        assert_eq!(h.l4, L4::Other);
    }

    #[test]
    fn icmpv6() {
        // Neighbor solicitation header (type 135, code 0).
        let h = parse(&eth(0x86dd, &ipv6(58, &[135, 0, 0, 0])), &cfg()).unwrap();
        assert_eq!(h.l4, L4::Icmpv6 { ty: 135, code: 0 });
    }

    #[test]
    fn ipv4_options() {
        // IHL 6 with a router alert option, then UDP.
        let mut ip = ipv4(17, &udp(53, &[]));
        ip[0] = 0x46;
        ip.splice(20..20, [0x94, 0x04, 0x00, 0x00]);
        ip[2..4].copy_from_slice(&32u16.to_be_bytes());
        let h = parse(&eth(0x0800, &ip), &cfg()).unwrap();
        assert!(h.has_ipv4_options);
        assert_eq!(h.l4_offset, 14 + 24);
        assert!(matches!(h.l4, L4::Udp { dport: 53, .. }));
        // Option bytes are not validated in the fast path: garbage options still parse.
        ip[20..24].copy_from_slice(&[0x07, 0x00, 0xff, 0xff]);
        assert!(parse(&eth(0x0800, &ip), &cfg()).is_ok());
    }

    #[test]
    fn ipv4_fragments() {
        let vx = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let mut ip = ipv4(17, &udp(4789, &vx));
        // First fragment (MF): L4 parsed, UDP length may exceed the fragment, no tunnel.
        ip[6..8].copy_from_slice(&[0x20, 0x00]);
        ip[24..26].copy_from_slice(&1400u16.to_be_bytes());
        let h = parse(&eth(0x0800, &ip), &cfg()).unwrap();
        assert_eq!(h.fragment, Fragment::First);
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 0xc000,
                dport: 4789
            }
        );
        assert_eq!(h.tunnel, None);
        // Last fragment (offset 1480, MF clear): no L4.
        ip[6..8].copy_from_slice(&[0x00, 0xb9]);
        let h = parse(&eth(0x0800, &ip), &cfg()).unwrap();
        assert_eq!(h.fragment, Fragment::NonFirst);
        assert_eq!(
            (h.l4, h.l4_offset, h.protocol),
            (L4::NotFirstFragment, 34, 17)
        );
        // DF alone is not a fragment.
        ip[6..8].copy_from_slice(&[0x40, 0x00]);
        ip[24..26].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            parse(&eth(0x0800, &ip), &cfg()).unwrap().fragment,
            Fragment::None
        );
    }

    #[test]
    fn ipv6_zero_payload_without_hop_by_hop() {
        let h = parse(&eth(0x86dd, &ipv6(59, &[])), &cfg()).unwrap();
        assert_eq!((h.ip_total_len, h.protocol, h.l4), (40, 59, L4::Other));
        // Bytes after a zero-length packet are padding: TCP finds nothing there.
        let mut ip = ipv6(6, &[]);
        ip.extend_from_slice(&tcp_header());
        assert_eq!(
            parse(&eth(0x86dd, &ip), &cfg()),
            Err(ParseError::TcpTruncated)
        );
    }

    /// HBH (next UDP) with a jumbo payload option for `jumbo` bytes, then `rest`.
    fn jumbogram(jumbo: u32, rest: &[u8]) -> Vec<u8> {
        let mut payload = std::vec![17, 0, 0xc2, 4];
        payload.extend_from_slice(&jumbo.to_be_bytes());
        payload.extend_from_slice(rest);
        let mut ip = ipv6(0, &payload);
        ip[4..6].copy_from_slice(&[0, 0]);
        eth(0x86dd, &ip)
    }

    #[test]
    fn ipv6_jumbogram() {
        // UDP length 0 in a jumbogram: the datagram runs to the end of the payload.
        let mut u = udp(9, &[1, 2, 3, 4]);
        u[4..6].copy_from_slice(&[0, 0]);
        let f = jumbogram(8 + 12, &u);
        let h = parse(&f, &cfg()).unwrap();
        assert_eq!(h.ip_total_len, 40 + 20);
        assert_eq!(h.ipv6_ext_count, 1);
        assert_eq!(
            h.l4,
            L4::Udp {
                sport: 0xc000,
                dport: 9
            }
        );
        check_offsets(&f, &h);
        // The jumbo length must fit the frame.
        assert_eq!(
            parse(&jumbogram(8 + 13, &u), &cfg()),
            Err(ParseError::Ipv6BadPayloadLength)
        );
    }

    #[test]
    fn ipv6_ah_and_esp() {
        // AH (length 4 -> 24 bytes) then TCP.
        let mut ah = std::vec![6, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
        ah.extend_from_slice(&[0; 12]);
        ah.extend_from_slice(&tcp_header());
        let h = parse(&eth(0x86dd, &ipv6(51, &ah)), &cfg()).unwrap();
        assert_eq!(
            (h.ipv6_ext_count, h.protocol, h.l4_offset),
            (1, 6, 14 + 40 + 24)
        );
        assert!(matches!(h.l4, L4::Tcp { dport: 80, .. }));
        // ESP ends the chain.
        let h = parse(&eth(0x86dd, &ipv6(50, &[0; 16])), &cfg()).unwrap();
        assert_eq!((h.protocol, h.l4, h.ipv6_ext_count), (50, L4::Other, 0));
    }

    #[test]
    fn ipv6_routing_and_destination_options() {
        // Routing (type 4, segments left 0, 24 bytes) -> destination options (8) -> UDP.
        let mut p = std::vec![60, 2, 4, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&udp(53, &[]));
        let h = parse(&eth(0x86dd, &ipv6(43, &p)), &cfg()).unwrap();
        assert_eq!((h.ipv6_ext_count, h.protocol), (2, 17));
        assert_eq!(h.l4_offset, 14 + 40 + 24 + 8);
        // Eight extension headers are the most accepted.
        let mut p = Vec::new();
        for i in 0..8 {
            p.extend_from_slice(&[if i == 7 { 59 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        let h = parse(&eth(0x86dd, &ipv6(60, &p)), &cfg()).unwrap();
        assert_eq!((h.ipv6_ext_count, h.protocol), (8, 59));
    }

    /// One minimal frame per error variant. The test below checks that every variant is
    /// covered, so adding a variant without a case fails.
    fn error_cases() -> Vec<(ParseError, Vec<u8>)> {
        use ParseError::*;
        let geneve = |g: &[u8]| eth(0x0800, &ipv4(17, &udp(6081, g)));
        let vxlan = |v: &[u8]| eth(0x0800, &ipv4(17, &udp(4789, v)));
        let mut cases = std::vec![
            (EthernetTruncated, std::vec![0; 13]),
            (VlanTruncated, eth(0x8100, &[0x00, 0x64])),
            (
                TooManyVlanTags,
                eth(
                    0x88a8,
                    &[0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x08, 0x00]
                ),
            ),
            (ArpTruncated, eth(0x0806, &hex(ARP_REQUEST)[14..41])),
            (Ipv4Truncated, eth(0x0800, &[0x45; 19])),
            (
                Ipv4BadVersion,
                eth(0x0800, &{
                    let mut ip = ipv4(6, &[]);
                    ip[0] = 0x65;
                    ip
                })
            ),
            (
                Ipv4BadHeaderLength,
                eth(0x0800, &{
                    let mut ip = ipv4(6, &[]);
                    ip[0] = 0x44;
                    ip
                })
            ),
            (
                Ipv4BadTotalLength,
                eth(0x0800, &{
                    let mut ip = ipv4(6, &[]);
                    ip[3] = 19;
                    ip
                })
            ),
            (Ipv6Truncated, eth(0x86dd, &[0x60; 39])),
            (
                Ipv6BadVersion,
                eth(0x86dd, &{
                    let mut ip = ipv6(59, &[]);
                    ip[0] = 0x40;
                    ip
                })
            ),
            (
                Ipv6BadPayloadLength,
                eth(0x86dd, &{
                    let mut ip = ipv6(59, &[]);
                    ip[5] = 1;
                    ip
                })
            ),
            (
                Ipv6ExtHeaderTruncated,
                eth(0x86dd, &ipv6(60, &[59, 1, 1, 12, 0, 0, 0, 0]))
            ),
            (
                Ipv6TooManyExtHeaders,
                eth(0x86dd, &ipv6(60, &[60, 0, 1, 4, 0, 0, 0, 0].repeat(9)))
            ),
            (
                Ipv6MissingJumboOption,
                eth(0x86dd, &{
                    let mut ip = ipv6(0, &[59, 0, 1, 4, 0, 0, 0, 0]);
                    ip[4..6].copy_from_slice(&[0, 0]);
                    ip
                })
            ),
            (
                Ipv6HopByHopNotFirst,
                eth(
                    0x86dd,
                    &ipv6(60, &[0, 0, 1, 4, 0, 0, 0, 0, 59, 0, 1, 4, 0, 0, 0, 0])
                )
            ),
            (TcpTruncated, eth(0x0800, &ipv4(6, &tcp_header()[..19]))),
            (
                TcpBadDataOffset,
                eth(
                    0x0800,
                    &ipv4(6, &{
                        let mut t = tcp_header();
                        t[12] = 0x40;
                        t
                    })
                )
            ),
            (UdpTruncated, eth(0x0800, &ipv4(17, &[0; 7]))),
            (
                UdpBadLength,
                eth(0x0800, &ipv4(17, &[0, 1, 0, 2, 0, 7, 0, 0]))
            ),
            (IcmpTruncated, eth(0x0800, &ipv4(1, &[8, 0, 0]))),
            (VxlanTruncated, vxlan(&[0x08, 0, 0, 0, 0, 0, 1])),
            (VxlanNoVniFlag, vxlan(&[0x00, 0, 0, 0, 0, 0, 1, 0])),
            (GeneveTruncated, geneve(&[0, 0, 0x65, 0x58, 0, 0, 1])),
            (GeneveBadVersion, geneve(&[0x40, 0, 0x65, 0x58, 0, 0, 1, 0])),
            (
                GeneveBadOptionLength,
                geneve(&[0x01, 0, 0x65, 0x58, 0, 0, 1, 0])
            ),
            (
                GeneveBadShadowOption,
                geneve(&[
                    0x03, 0, 0x65, 0x58, 0, 0, 1, 0, 0xff, 0x53, 0x01, 0x02, 0, 1, 1, 0, 0, 0, 0, 1
                ]),
            ),
        ];
        // Further ways into some variants.
        cases.extend([
            (
                Ipv4Truncated,
                eth(0x0800, &{
                    let mut ip = ipv4(6, &[]);
                    ip[0] = 0x4f; // IHL 15: 60-byte header, 20 present
                    ip
                }),
            ),
            (
                Ipv4BadTotalLength,
                eth(0x0800, &{
                    let mut ip = ipv4(6, &[]);
                    ip[3] = 21; // one byte beyond the frame
                    ip
                }),
            ),
            (Ipv6BadPayloadLength, jumbogram(9, &[])),
            (
                Ipv6ExtHeaderTruncated,
                eth(0x86dd, &ipv6(0, &[59, 0, 1, 4, 0, 0, 0])),
            ),
            (
                Ipv6ExtHeaderTruncated,
                eth(0x86dd, &ipv6(44, &[6, 0, 0, 0, 0, 0, 0])),
            ),
            (
                Ipv6ExtHeaderTruncated,
                eth(0x86dd, &ipv6(51, &[6, 0, 0, 0, 0, 0, 0, 0])),
            ),
            (
                Ipv6MissingJumboOption,
                eth(0x86dd, &{
                    // A jumbo option of the wrong length is no jumbo option.
                    let mut ip = ipv6(0, &[59, 0, 0xc2, 3, 0, 0, 0, 0]);
                    ip[4..6].copy_from_slice(&[0, 0]);
                    ip
                }),
            ),
            (
                TcpBadDataOffset,
                eth(
                    0x0800,
                    &ipv4(6, &{
                        let mut t = tcp_header();
                        t[12] = 0x60; // 24-byte header, 20 present
                        t
                    }),
                ),
            ),
            (
                UdpBadLength,
                eth(0x0800, &ipv4(17, &[0, 1, 0, 2, 0, 9, 0, 0])),
            ),
            (IcmpTruncated, eth(0x86dd, &ipv6(58, &[128, 0, 0]))),
            (
                GeneveBadOptionLength,
                geneve(&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 1, 2, 0, 0, 0, 0]),
            ),
            (
                GeneveBadOptionLength,
                geneve(&[0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 1]),
            ),
        ]);
        cases
    }

    #[test]
    fn every_error_variant_is_triggered() {
        let cases = error_cases();
        for (expected, frame) in &cases {
            assert_eq!(parse(frame, &cfg()).err(), Some(*expected), "{frame:02x?}");
        }
        for variant in ParseError::ALL {
            assert!(
                cases.iter().any(|(e, _)| e == variant),
                "no test frame for {variant:?}"
            );
        }
    }

    #[test]
    fn errors_report_their_layer() {
        assert_eq!(ParseError::VlanTruncated.layer(), crate::Layer::L2);
        assert_eq!(ParseError::Ipv6TooManyExtHeaders.layer(), crate::Layer::L3);
        assert_eq!(ParseError::TcpBadDataOffset.layer(), crate::Layer::L4);
        assert_eq!(
            ParseError::GeneveBadOptionLength.layer(),
            crate::Layer::Tunnel
        );
        assert_eq!(
            ParseError::Ipv6MissingJumboOption.name(),
            "ipv6_missing_jumbo_option"
        );
    }

    #[test]
    fn every_truncation_of_real_packets_is_handled() {
        for p in ALL_REAL {
            let f = hex(p);
            for n in 0..=f.len() {
                parse_deep(&f[..n], &cfg(), 3);
            }
            assert!(parse(&f, &cfg()).is_ok());
        }
    }

    #[test]
    fn headers_stay_compact() {
        let size = core::mem::size_of::<Headers>();
        std::eprintln!("size_of::<Headers>() = {size}");
        assert!(size <= 128, "Headers is {size} bytes");
    }

    proptest::proptest! {
        // PROPTEST_CASES raises the count for a longer fuzzing run.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(16384)
        ))]

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            ethertype in proptest::sample::select(std::vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8]),
        ) {
            parse_deep(&bytes, &cfg(), 3);
            // Random bytes rarely get past Ethernet; give them a plausible EtherType too.
            parse_deep(&eth(ethertype, &bytes), &cfg(), 3);
        }

        #[test]
        fn mutated_real_packets_never_panic(
            which in 0..ALL_REAL.len(),
            flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..6),
            cut in proptest::num::usize::ANY,
            extra in proptest::collection::vec(proptest::num::u8::ANY, 0..8),
        ) {
            let mut f = hex(ALL_REAL[which]);
            for (at, byte) in flips {
                let at = at % f.len();
                f[at] = byte;
            }
            let cut = cut % (f.len() + 1);
            parse_deep(&f[..cut], &cfg(), 3);
            f.extend_from_slice(&extra);
            parse_deep(&f, &cfg(), 3);
        }
    }

    /// Reads an Ethernet pcap (either byte order, micro- or nanosecond) into frames; `None`
    /// for pcapng or other link types. Stops at the first damaged record.
    fn pcap_ethernet_frames(data: &[u8]) -> Option<Vec<&[u8]>> {
        let magic = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
        let le = match magic {
            0xa1b2_c3d4 | 0xa1b2_3c4d => true,
            0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
            _ => return None,
        };
        let u32_at = |at: usize| -> Option<u32> {
            let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
            Some(if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            })
        };
        // The top bits of the link-type field may carry FCS information.
        if u32_at(20)? & 0x0fff_ffff != 1 {
            return None;
        }
        let mut frames = Vec::new();
        let mut at = 24;
        while let Some(caplen) = u32_at(at + 8) {
            let start = at + 16;
            let Some(frame) = data.get(start..start + caplen as usize) else {
                break;
            };
            frames.push(frame);
            at = start + caplen as usize;
        }
        Some(frames)
    }

    /// The bytes of every file of the shared capture corpus (`SHADOWNET_CORPUS`, else
    /// `../shared/corpus` next to the repository); `None`, said on stderr, when it is absent.
    fn corpus_captures() -> Option<Vec<Vec<u8>>> {
        let dir = std::env::var_os("SHADOWNET_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
            });
        let Ok(entries) = std::fs::read_dir(&dir) else {
            std::eprintln!("corpus not found at {}, skipped", dir.display());
            return None;
        };
        Some(
            entries
                .flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect(),
        )
    }

    /// Runs the parser over every Ethernet frame of the shared capture corpus (real traffic
    /// from suricata-verify and tcpdump) when it is present next to the repository.
    #[test]
    fn corpus_never_panics() {
        let Some(captures) = corpus_captures() else {
            return;
        };
        let (mut frames, mut ok, mut tunnels, mut shadow) = (0usize, 0usize, 0usize, 0usize);
        let mut errors = [0usize; ParseError::COUNT];
        for data in &captures {
            let Some(list) = pcap_ethernet_frames(data) else {
                continue;
            };
            for f in list {
                frames += 1;
                parse_deep(f, &cfg(), 4);
                match parse(f, &cfg()) {
                    Ok(h) => {
                        ok += 1;
                        if let Some(t) = h.tunnel {
                            tunnels += 1;
                            shadow += usize::from(t.shadow.is_some());
                        }
                    }
                    Err(e) => errors[e as usize] += 1,
                }
            }
        }
        std::eprintln!(
            "corpus: {frames} Ethernet frames, {ok} parsed, {tunnels} tunnelled ({shadow} with shadow metadata)"
        );
        for (e, n) in ParseError::ALL.iter().zip(errors) {
            if n > 0 {
                std::eprintln!("  {:<28} {n}", e.name());
            }
        }
        assert!(frames == 0 || ok > 0);
    }

    /// The full parser's answer alone.
    fn full(f: &[u8], cfg: &ParseConfig) -> Result<Headers, ParseError> {
        let mut h = Headers::EMPTY;
        parse_full(f, cfg, &mut h).map(|()| h)
    }

    /// Configurations the fast path must agree under: the NIC's uplink (default ports),
    /// no tunnels (VM ports), and tunnel ports on common service ports.
    fn configs() -> [ParseConfig; 3] {
        [
            cfg(),
            ParseConfig {
                vxlan_port: 0,
                geneve_port: 0,
            },
            ParseConfig {
                vxlan_port: 53,
                geneve_port: 80,
            },
        ]
    }

    /// Whether `parse` and `parse_into` (fast path first) give what the full parser gives;
    /// returns whether the fast path took the frame.
    fn agree(f: &[u8], cfg: &ParseConfig) -> bool {
        let reference = full(f, cfg);
        assert_eq!(parse(f, cfg), reference, "frame {f:02x?}");
        let mut h = Headers::EMPTY;
        h.vlan_count = 9;
        let into = parse_into(f, cfg, &mut h).map(|()| h);
        assert_eq!(into, reference, "frame {f:02x?}");
        let mut probe = Headers::EMPTY;
        parse_common(f, cfg, &mut probe)
    }

    #[test]
    fn the_fast_path_agrees_on_the_hand_written_frames() {
        let mut fast = 0;
        for p in ALL_REAL {
            let f = hex(p);
            for cfg in configs() {
                for cut in 0..=f.len() {
                    fast += usize::from(agree(&f[..cut], &cfg));
                }
            }
        }
        // TCP_SYN and DNS_QUERY whole (DNS only where 53 is not a tunnel port), VLAN_DNS never.
        assert!(fast >= 5, "the fast path took {fast} frames");
    }

    /// Every Ethernet frame of the shared corpus (when present) through both parsers, under
    /// each configuration.
    #[test]
    fn the_fast_path_agrees_on_every_corpus_frame() {
        let Some(captures) = corpus_captures() else {
            return;
        };
        let (mut frames, mut fast) = (0usize, 0usize);
        for data in &captures {
            let Some(list) = pcap_ethernet_frames(data) else {
                continue;
            };
            for f in list {
                for cfg in configs() {
                    frames += 1;
                    fast += usize::from(agree(f, &cfg));
                }
            }
        }
        std::eprintln!("corpus: {frames} frame parses compared, {fast} by the fast path");
        assert!(frames == 0 || fast > 0);
    }

    /// Variations of the fixed layout: every field the fast path checks at, next to and
    /// away from its accepted values, lengths at and around each bound, other bytes from a
    /// generator. Both parsers agree on every one, and the fast path takes many.
    #[test]
    fn the_fast_path_agrees_on_variations() {
        let mut x: u32 = 0x9E37_79B9;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let (mut cases, mut fast) = (0usize, 0usize);
        for ethertype in [0x0800u16, 0x86dd, 0x8100, 0x0806] {
            for ver_ihl in [0x45u8, 0x46, 0x44, 0x55] {
                for frag in [0u16, 0x4000, 0x2000, 0x0001, 0x8000] {
                    for proto in [6u8, 17, 1] {
                        for len in [0usize, 14, 33, 34, 41, 42, 53, 54, 60, 64, 90] {
                            // IPv4 total length: the frame's rest, one more, less, tiny.
                            for total in [len.saturating_sub(14), len.saturating_sub(13), 20, 19] {
                                // UDP length / TCP data offset: at, past and below the room.
                                let room = total.saturating_sub(20);
                                for l4 in [room, room + 1, 20, 16, 8, 7, 0] {
                                    for dport in [4789u16, 6081, 53, 443] {
                                        let mut f: std::vec::Vec<u8> =
                                            (0..96).map(|_| next() as u8).collect();
                                        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
                                        f[14] = ver_ihl;
                                        f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
                                        f[20..22].copy_from_slice(&frag.to_be_bytes());
                                        f[23] = proto;
                                        f[36..38].copy_from_slice(&dport.to_be_bytes());
                                        f[38..40].copy_from_slice(&(l4 as u16).to_be_bytes());
                                        // TCP data offset in words.
                                        f[46] = ((l4 / 4).min(15) as u8) << 4 | (f[46] & 0x0f);
                                        for cfg in configs() {
                                            cases += 1;
                                            fast += usize::from(agree(&f[..len], &cfg));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        std::eprintln!("variations: {cases} compared, {fast} by the fast path");
        assert!(fast > 500, "the fast path took {fast} of {cases}");
    }

    /// Parse speed on an Ethernet/IPv4/TCP SYN. Run with
    /// `cargo test --release -p shadownet-wire -- --ignored --nocapture parse_speed`.
    #[test]
    #[ignore]
    fn parse_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        let cfg = cfg();
        for (name, p) in [
            ("ipv4_tcp", TCP_SYN),
            ("ipv4_udp", DNS_QUERY),
            ("arp", ARP_REQUEST),
            ("qinq_icmp", QINQ_ICMP),
            ("ipv6_ext_tcp", IPV6_HBH_FRAG_TCP),
            ("vxlan", VXLAN_ICMP),
            ("geneve_shadow", GENEVE_SHADOW),
        ] {
            let f = hex(p);
            let n = 20_000_000u32;
            let mut best = f64::MAX;
            for _ in 0..5 {
                let start = Instant::now();
                for _ in 0..n {
                    let h = parse(black_box(&f), black_box(&cfg));
                    black_box(h.is_ok());
                    black_box(&h);
                }
                best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(n));
            }
            std::println!("parse {name}: {best:.2} ns/frame (best of 5 x {n})");
            let mut best = f64::MAX;
            let mut h = Headers::EMPTY;
            for _ in 0..5 {
                let start = Instant::now();
                for _ in 0..n {
                    let r = parse_into(black_box(&f), black_box(&cfg), black_box(&mut h));
                    black_box(r.is_ok());
                }
                best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(n));
            }
            std::println!("parse_into {name}: {best:.2} ns/frame (best of 5 x {n})");
        }
    }
}
