//! Per-packet input of the detector: the fields it keys on, from the NIC's parser stage.

use core::net::IpAddr;

use serde::{Deserialize, Serialize};
use shadownet_wire::{L4, ParseConfig, ParseError, ip_protocol, parse};

/// What the detector needs of one packet. Addresses and ports are those of the innermost
/// frame (a VXLAN or Geneve tunnel is looked through, as the NIC's parser does for mirrored
/// traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PacketMeta {
    /// Capture time in nanoseconds (any epoch; only differences matter).
    pub ts_ns: u64,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (6 TCP, 17 UDP, 1 ICMP, ...).
    pub proto: u8,
    /// Source port (0 without ports).
    pub sport: u16,
    /// Destination port (0 without ports).
    pub dport: u16,
    /// Bytes of the IP packet.
    pub len: u16,
    /// Bytes of L4 payload (after the TCP or UDP header); 0 when unknown.
    pub payload_len: u16,
    /// TCP flags octet; 0 for other protocols.
    pub tcp_flags: u8,
}

/// Most tunnel layers looked through; mirrored traffic has one, a second is a tunnel of the
/// tenant's own.
const MAX_TUNNEL_DEPTH: usize = 2;

impl PacketMeta {
    /// Extracts the fields from an Ethernet frame with the NIC's parser. `Ok(None)` for
    /// frames that are well formed but not IP (ARP, other EtherTypes); an error for frames
    /// the NIC would drop as malformed.
    pub fn from_frame(
        ts_ns: u64,
        frame: &[u8],
        cfg: &ParseConfig,
    ) -> Result<Option<PacketMeta>, ParseError> {
        let mut bytes = frame;
        let mut h = parse(bytes, cfg)?;
        for _ in 0..MAX_TUNNEL_DEPTH {
            match h.inner_frame(bytes) {
                Some(inner) if !inner.is_empty() => {
                    bytes = inner;
                    h = parse(bytes, cfg)?;
                }
                _ => break,
            }
        }
        let (Some(src), Some(dst)) = (h.src_ip(), h.dst_ip()) else {
            return Ok(None);
        };
        let ip_end = usize::from(h.l3_offset) + usize::from(h.ip_total_len);
        let l4 = usize::from(h.l4_offset);
        let (sport, dport, tcp_flags, header) = match h.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                // The data offset was validated by the parser.
                let hl = bytes.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
                (sport, dport, flags, hl)
            }
            L4::Udp { sport, dport } => (sport, dport, 0, 8),
            L4::Icmp { .. } | L4::Icmpv6 { .. } => (0, 0, 0, 4),
            _ => (0, 0, 0, 0),
        };
        let payload_len = ip_end.saturating_sub(l4 + header);
        Ok(Some(PacketMeta {
            ts_ns,
            src,
            dst,
            proto: h.protocol,
            sport,
            dport,
            len: h.ip_total_len,
            payload_len: u16::try_from(payload_len).unwrap_or(u16::MAX),
            tcp_flags,
        }))
    }

    /// Whether this is a TCP packet.
    pub fn is_tcp(&self) -> bool {
        self.proto == ip_protocol::TCP
    }

    /// Whether this is a UDP packet.
    pub fn is_udp(&self) -> bool {
        self.proto == ip_protocol::UDP
    }
}

/// An address as the 128-bit key the tables use (IPv4 as IPv4-mapped IPv6).
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address a table key stands for.
pub fn key_ip(key: u128) -> IpAddr {
    let v6 = core::net::Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}
