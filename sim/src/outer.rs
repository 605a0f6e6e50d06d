//! Outer headers of the tunnels the NIC originates over an IPv4 substrate, written in a fixed
//! layout and copied into the frame at one of two fixed lengths.
//!
//! [`shadownet_wire::emit_encap_headers`] is the reference: it handles both families and
//! checks its arguments, field by field through the wire views. Every frame the model sends
//! to the substrate goes through here instead, as the hardware would: a fixed layout with
//! only the addresses, lengths, the IPv4 checksum, the entropy port and the tunnel fields
//! filled in. The bytes are the reference's (the tests below compare them over random
//! parameters); anything outside the fixed layout (IPv6, a VNI over 24 bits, a datagram over
//! 64 KiB) is left to the reference.

use shadownet_wire::{ShadowMetadata, TunnelHeader, geneve};

/// Ethernet + IPv4 + UDP + Geneve with the shadow option: the longest IPv4 outer header.
pub(crate) const MAX_LEN: usize = 14 + 20 + 8 + geneve::HEADER_LEN + ShadowMetadata::OPTION_LEN;

/// Ethernet + IPv4 + UDP + VXLAN.
pub(crate) const VXLAN_LEN: usize = 14 + 20 + 8 + 8;

/// Copies the `len` bytes of outer headers [`ipv4_header`] wrote into the start of `out`:
/// one of two fixed lengths, so that the copy is a few moves rather than a call.
#[inline(always)]
pub(crate) fn put(out: &mut [u8], h: &[u8; MAX_LEN], len: usize) {
    if len == VXLAN_LEN {
        out[..VXLAN_LEN].copy_from_slice(&h[..VXLAN_LEN]);
    } else {
        out[..MAX_LEN].copy_from_slice(h);
    }
}

/// Writes into `h` (all zeros) the outer headers of a tunnel over IPv4 carrying
/// `inner_len` bytes and returns their length, [`VXLAN_LEN`] or [`MAX_LEN`]; returns `None`,
/// writing nothing, when the parameters are outside the fixed layout.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn ipv4_header(
    h: &mut [u8; MAX_LEN],
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    udp_src_port: u16,
    udp_dst_port: u16,
    ttl: u8,
    tunnel: &TunnelHeader,
    inner_len: usize,
) -> Option<usize> {
    let (vni, tunnel_len) = match tunnel {
        TunnelHeader::Vxlan { vni } => (*vni, 8),
        TunnelHeader::Geneve { vni, shadow: None } => (*vni, geneve::HEADER_LEN),
        TunnelHeader::Geneve {
            vni,
            shadow: Some(_),
        } => (*vni, geneve::HEADER_LEN + ShadowMetadata::OPTION_LEN),
    };
    let udp_len = 8 + tunnel_len + inner_len;
    let ip_len = 20 + udp_len;
    if vni > geneve::VNI_MAX || ip_len > u16::MAX as usize {
        return None;
    }
    h[0..6].copy_from_slice(&dst_mac);
    h[6..12].copy_from_slice(&src_mac);
    h[12] = 0x08;
    // IPv4: version 4, IHL 5, TOS 0, identification 0, DF, protocol UDP.
    h[14] = 0x45;
    h[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
    h[20] = 0x40;
    h[22] = ttl;
    h[23] = 17;
    h[26..30].copy_from_slice(&src);
    h[30..34].copy_from_slice(&dst);
    let word = |b: &[u8; 4]| {
        u32::from(u16::from_be_bytes([b[0], b[1]])) + u32::from(u16::from_be_bytes([b[2], b[3]]))
    };
    let mut sum =
        0x4500 + ip_len as u32 + 0x4000 + ((ttl as u32) << 8 | 17) + word(&src) + word(&dst);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    h[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    // UDP, checksum 0 (RFC 7348, RFC 8926 over IPv4).
    h[34..36].copy_from_slice(&udp_src_port.to_be_bytes());
    h[36..38].copy_from_slice(&udp_dst_port.to_be_bytes());
    h[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let vni_word = (vni << 8).to_be_bytes();
    match tunnel {
        TunnelHeader::Vxlan { .. } => {
            h[42] = 0x08;
            h[46..50].copy_from_slice(&vni_word);
        }
        TunnelHeader::Geneve { shadow, .. } => {
            if shadow.is_some() {
                h[42] = (ShadowMetadata::OPTION_LEN / 4) as u8;
            }
            h[44..46].copy_from_slice(&shadownet_wire::ethertype::TEB.to_be_bytes());
            h[46..50].copy_from_slice(&vni_word);
            if let Some(m) = shadow {
                h[50..52].copy_from_slice(&geneve::SHADOW_OPTION_CLASS.to_be_bytes());
                h[52] = geneve::SHADOW_OPTION_TYPE;
                h[53] = geneve::SHADOW_OPTION_LEN_WORDS;
                h[54..66].copy_from_slice(&m.to_data());
            }
        }
    }
    Some(14 + 20 + 8 + tunnel_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shadownet_wire::{
        EncapParams, EthernetAddress, MAX_ENCAP_OVERHEAD, emit_encap_headers, encap_overhead,
    };
    use std::net::{IpAddr, Ipv4Addr};

    fn tunnel() -> impl Strategy<Value = TunnelHeader> {
        prop_oneof![
            any::<u32>().prop_map(|v| TunnelHeader::Vxlan { vni: v >> 8 }),
            any::<u32>().prop_map(|v| TunnelHeader::Geneve {
                vni: v >> 8,
                shadow: None
            }),
            (any::<u32>(), any::<(u16, u8, u8, u32, u16)>()).prop_map(|(v, m)| {
                TunnelHeader::Geneve {
                    vni: v >> 8,
                    shadow: Some(ShadowMetadata {
                        session: m.0,
                        direction: m.1,
                        flags: m.2,
                        sequence: m.3,
                        original_len: m.4,
                    }),
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn the_fixed_layout_is_the_reference(
            macs in any::<([u8; 6], [u8; 6])>(),
            addrs in any::<([u8; 4], [u8; 4])>(),
            ports in any::<(u16, u16)>(),
            ttl in any::<u8>(),
            tunnel in tunnel(),
            inner_len in 0usize..9100,
        ) {
            let params = EncapParams {
                src_mac: EthernetAddress(macs.0),
                dst_mac: EthernetAddress(macs.1),
                src_ip: IpAddr::V4(Ipv4Addr::from(addrs.0)),
                dst_ip: IpAddr::V4(Ipv4Addr::from(addrs.1)),
                udp_src_port: ports.0,
                udp_dst_port: ports.1,
                ttl,
                tunnel,
            };
            let inner = vec![0u8; inner_len];
            let mut reference = [0u8; MAX_ENCAP_OVERHEAD];
            let n = emit_encap_headers(&params, &inner, &mut reference).expect("in range");
            prop_assert_eq!(n, encap_overhead(&params));
            let mut h = [0u8; MAX_LEN];
            let len = ipv4_header(
                &mut h, macs.1, macs.0, addrs.0, addrs.1, ports.0, ports.1, ttl, &tunnel,
                inner_len,
            );
            prop_assert_eq!(len, Some(n));
            let mut fast = vec![0xAA; n + 3];
            put(&mut fast, &h, n);
            prop_assert_eq!(&fast[..n], &reference[..n]);
        }
    }

    #[test]
    fn outside_the_layout_nothing_is_written() {
        let mut h = [0u8; MAX_LEN];
        let big_vni = TunnelHeader::Vxlan { vni: 1 << 24 };
        let vxlan = TunnelHeader::Vxlan { vni: 1 };
        assert_eq!(
            ipv4_header(&mut h, [1; 6], [1; 6], [1; 4], [1; 4], 1, 2, 64, &big_vni, 10),
            None
        );
        assert_eq!(
            ipv4_header(&mut h, [1; 6], [1; 6], [1; 4], [1; 4], 1, 2, 64, &vxlan, 65_500),
            None
        );
        assert_eq!(h, [0; MAX_LEN]);
    }
}
