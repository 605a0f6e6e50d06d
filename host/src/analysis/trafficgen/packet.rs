//! Ethernet (optionally 802.1Q) / IPv4 / TCP or UDP frames with correct lengths and
//! checksums, built with `shadownet_wire`'s emit helpers. UDP datagrams larger than the MTU
//! leave as IPv4 fragments, as a real stack sends them.

use std::net::{IpAddr, Ipv4Addr};

use shadownet_wire::{
    EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr, VlanRepr, VlanTag, ethernet, ethertype, ip_protocol, ipv4, tcp, udp, vlan,
};

/// IP MTU of every link in the generated network.
pub(crate) const MTU: usize = 1500;
/// TCP maximum segment size for that MTU (no TCP options on data segments).
pub(crate) const MSS: usize = MTU - ipv4::HEADER_LEN - tcp::HEADER_LEN;

/// One end of a conversation as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) mac: [u8; 6],
    pub(crate) ip: Ipv4Addr,
    pub(crate) port: u16,
}

/// IP header fields that vary per packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpFields {
    pub(crate) ttl: u8,
    pub(crate) ident: u16,
}

/// A TCP segment's header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpFields {
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
}

fn l2_len(vlan: Option<u16>) -> usize {
    ethernet::HEADER_LEN + if vlan.is_some() { vlan::HEADER_LEN } else { 0 }
}

/// Writes the Ethernet header (and tag) and returns the offset of the IP header.
fn emit_l2(buf: &mut [u8], src: &Endpoint, dst: &Endpoint, vlan_id: Option<u16>) -> usize {
    let mut frame = EthernetFrame::new_unchecked(&mut *buf);
    EthernetRepr {
        src_addr: EthernetAddress(src.mac),
        dst_addr: EthernetAddress(dst.mac),
        ethertype: if vlan_id.is_some() {
            ethertype::VLAN
        } else {
            ethertype::IPV4
        },
    }
    .emit(&mut frame);
    match vlan_id {
        Some(vid) => {
            let mut tag = VlanTag::new_unchecked(&mut buf[ethernet::HEADER_LEN..]);
            VlanRepr {
                pcp: 0,
                dei: false,
                vid,
                ethertype: ethertype::IPV4,
            }
            .emit(&mut tag);
            ethernet::HEADER_LEN + vlan::HEADER_LEN
        }
        None => ethernet::HEADER_LEN,
    }
}

fn ip_repr(
    src: &Endpoint,
    dst: &Endpoint,
    protocol: u8,
    payload_len: usize,
    ip: IpFields,
) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: src.ip,
        dst_addr: dst.ip,
        protocol,
        payload_len,
        ttl: ip.ttl,
        tos: 0,
        ident: ip.ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
}

/// A TCP segment. `options` must be a multiple of 4 bytes long (at most 40).
pub(crate) fn tcp_frame(
    src: &Endpoint,
    dst: &Endpoint,
    vlan_id: Option<u16>,
    ip: IpFields,
    t: TcpFields,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let tcp_len = tcp::HEADER_LEN + options.len() + payload.len();
    let l2 = l2_len(vlan_id);
    let mut buf = vec![0u8; l2 + ipv4::HEADER_LEN + tcp_len];
    let off = emit_l2(&mut buf, src, dst, vlan_id);
    ip_repr(src, dst, ip_protocol::TCP, tcp_len, ip)
        .emit(&mut Ipv4Packet::new_unchecked(&mut buf[off..]));
    let seg = &mut buf[off + ipv4::HEADER_LEN..];
    let mut p = TcpPacket::new_unchecked(&mut *seg);
    TcpRepr {
        src_port: src.port,
        dst_port: dst.port,
        seq_number: t.seq,
        ack_number: t.ack,
        flags: t.flags,
        window_len: t.window,
        urgent_at: 0,
    }
    .emit(&mut p);
    p.set_header_len((tcp::HEADER_LEN + options.len()) as u8);
    seg[tcp::HEADER_LEN..tcp::HEADER_LEN + options.len()].copy_from_slice(options);
    seg[tcp::HEADER_LEN + options.len()..].copy_from_slice(payload);
    let mut p = TcpPacket::new_unchecked(&mut *seg);
    // Both addresses are IPv4, so the only failure (mixed families) cannot happen.
    let _ = p.fill_checksum(&IpAddr::V4(src.ip), &IpAddr::V4(dst.ip));
    buf
}

/// A UDP datagram: one frame, or IPv4 fragments when it does not fit the MTU.
pub(crate) fn udp_frames(
    src: &Endpoint,
    dst: &Endpoint,
    vlan_id: Option<u16>,
    ip: IpFields,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    let udp_len = udp::HEADER_LEN + payload.len();
    let mut dgram = vec![0u8; udp_len];
    let mut p = UdpPacket::new_unchecked(&mut dgram[..]);
    UdpRepr {
        src_port: src.port,
        dst_port: dst.port,
    }
    .emit(&mut p, payload.len());
    p.payload_mut().copy_from_slice(payload);
    let _ = p.fill_checksum(&IpAddr::V4(src.ip), &IpAddr::V4(dst.ip));

    let l2 = l2_len(vlan_id);
    let max = MTU - ipv4::HEADER_LEN;
    if udp_len <= max {
        let mut buf = vec![0u8; l2 + ipv4::HEADER_LEN + udp_len];
        let off = emit_l2(&mut buf, src, dst, vlan_id);
        let mut repr = ip_repr(src, dst, ip_protocol::UDP, udp_len, ip);
        repr.dont_frag = false;
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[off..]));
        buf[off + ipv4::HEADER_LEN..].copy_from_slice(&dgram);
        return vec![buf];
    }
    // Fragment payloads are multiples of 8 bytes except the last.
    let chunk = max / 8 * 8;
    dgram
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let offset = i * chunk;
            let mut buf = vec![0u8; l2 + ipv4::HEADER_LEN + part.len()];
            let off = emit_l2(&mut buf, src, dst, vlan_id);
            let mut repr = ip_repr(src, dst, ip_protocol::UDP, part.len(), ip);
            repr.dont_frag = false;
            repr.more_frags = offset + part.len() < udp_len;
            repr.frag_offset = offset as u16;
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[off..]));
            buf[off + ipv4::HEADER_LEN..].copy_from_slice(part);
            buf
        })
        .collect()
}

/// Frames a UDP payload of `len` bytes becomes.
pub(crate) fn udp_frame_count(len: usize) -> usize {
    let udp_len = udp::HEADER_LEN + len;
    let max = MTU - ipv4::HEADER_LEN;
    if udp_len <= max {
        1
    } else {
        udp_len.div_ceil(max / 8 * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadownet_wire::{L4, ParseConfig, parse};

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint {
            mac: [2, 0, 0, 0, 0, last],
            ip: Ipv4Addr::new(192, 168, 10, last),
            port,
        }
    }

    #[test]
    fn tcp_frame_parses_and_verifies() {
        let (a, b) = (ep(1, 40000), ep(2, 80));
        let f = tcp_frame(
            &a,
            &b,
            Some(100),
            IpFields { ttl: 64, ident: 7 },
            TcpFields {
                seq: 1,
                ack: 0,
                flags: tcp::flags::SYN,
                window: 64240,
            },
            &[2, 4, 5, 0xb4],
            b"",
        );
        let h = parse(&f, &ParseConfig::default()).expect("parses");
        assert!(matches!(
            h.l4,
            L4::Tcp {
                sport: 40000,
                dport: 80,
                ..
            }
        ));
        let ip = Ipv4Packet::new_checked(&f[18..]).expect("ip");
        assert!(ip.verify_checksum());
        let seg = TcpPacket::new_checked(ip.payload()).expect("tcp");
        assert_eq!(seg.header_len(), 24);
        assert!(seg.verify_checksum(&IpAddr::V4(a.ip), &IpAddr::V4(b.ip)));
    }

    #[test]
    fn large_udp_is_fragmented_with_correct_offsets() {
        let (a, b) = (ep(1, 53), ep(2, 5353));
        let payload: Vec<u8> = (0..3500u32).map(|i| i as u8).collect();
        let frames = udp_frames(&a, &b, None, IpFields { ttl: 60, ident: 9 }, &payload);
        assert_eq!(frames.len(), udp_frame_count(payload.len()));
        assert_eq!(frames.len(), 3);
        let mut whole = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&f[14..]).expect("ip");
            assert!(ip.verify_checksum());
            assert_eq!(usize::from(ip.frag_offset()), whole.len());
            assert_eq!(ip.more_frags(), i + 1 < frames.len());
            whole.extend_from_slice(ip.payload());
        }
        let u = UdpPacket::new_checked(&whole[..]).expect("udp");
        assert!(u.verify_checksum(&IpAddr::V4(a.ip), &IpAddr::V4(b.ip)));
        assert_eq!(u.payload(), &payload[..]);
    }
}
