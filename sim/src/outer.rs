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

/// What a prepared outer header is for: every input of [`ipv4_header`] but the per-frame
/// ones (the inner length, the entropy port, the shadow metadata's values) and the TTL,
/// which is the NIC's constant.
#[derive(Clone, Copy, Debug, Eq)]
pub(crate) struct Key {
    pub(crate) dst_mac: [u8; 6],
    pub(crate) src_mac: [u8; 6],
    pub(crate) src: [u8; 4],
    pub(crate) dst: [u8; 4],
    pub(crate) udp_dst_port: u16,
    pub(crate) vni: u32,
    /// 0: VXLAN, 1: Geneve without options, 2: Geneve with the shadow option.
    pub(crate) kind: u8,
}

impl PartialEq for Key {
    /// Field by field, inlined: the derived comparison stayed a call in the copy's path.
    #[inline(always)]
    fn eq(&self, o: &Key) -> bool {
        self.dst == o.dst
            && self.dst_mac == o.dst_mac
            && self.vni == o.vni
            && self.src == o.src
            && self.src_mac == o.src_mac
            && self.udp_dst_port == o.udp_dst_port
            && self.kind == o.kind
    }
}

impl Key {
    /// The tunnel kind of `tunnel` as [`Key::kind`], its VNI and its shadow metadata.
    #[inline(always)]
    pub(crate) fn tunnel(tunnel: &TunnelHeader) -> (u8, u32, Option<&ShadowMetadata>) {
        match tunnel {
            TunnelHeader::Vxlan { vni } => (0, *vni, None),
            TunnelHeader::Geneve { vni, shadow: None } => (1, *vni, None),
            TunnelHeader::Geneve {
                vni,
                shadow: Some(m),
            } => (2, *vni, Some(m)),
        }
    }
}

/// An outer header prepared once for a destination, tunnel and source ([`Key`]): the fixed
/// layout of [`ipv4_header`] with the per-frame fields left to [`Prepared::write`] — the
/// IPv4 total length and checksum, the UDP source port and length, the shadow option's data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prepared {
    key: Key,
    h: [u8; MAX_LEN],
    len: usize,
    /// Ones'-complement sum, not folded, of the IPv4 header's words but the total length
    /// and the checksum.
    sum: u32,
}

impl Prepared {
    /// The header for `key` with TTL `ttl`; `None` outside the fixed layout (a VNI over 24
    /// bits).
    pub(crate) fn new(key: Key, ttl: u8) -> Option<Prepared> {
        let vni = key.vni;
        let tunnel = match key.kind {
            0 => TunnelHeader::Vxlan { vni },
            1 => TunnelHeader::Geneve { vni, shadow: None },
            _ => TunnelHeader::Geneve {
                vni,
                shadow: Some(ShadowMetadata {
                    session: 0,
                    direction: 0,
                    flags: 0,
                    sequence: 0,
                    original_len: 0,
                }),
            },
        };
        let mut h = [0u8; MAX_LEN];
        let len = ipv4_header(
            &mut h,
            key.dst_mac,
            key.src_mac,
            key.src,
            key.dst,
            0,
            key.udp_dst_port,
            ttl,
            &tunnel,
            0,
        )?;
        for at in [16, 24, 38] {
            h[at] = 0;
            h[at + 1] = 0;
        }
        let sum = (14..34)
            .step_by(2)
            .map(|i| u32::from(u16::from_be_bytes([h[i], h[i + 1]])))
            .sum();
        Some(Prepared { key, h, len, sum })
    }

    /// What it was prepared for.
    #[inline(always)]
    pub(crate) fn key(&self) -> &Key {
        &self.key
    }

    /// Its length: [`VXLAN_LEN`] or [`MAX_LEN`].
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes the header into the start of `out` for a frame of `inner_len` bytes whose
    /// IPv4 total length (`len() - 14 + inner_len`) the caller checked fits 16 bits; the
    /// same bytes as [`ipv4_header`].
    #[inline(always)]
    pub(crate) fn write(
        &self,
        out: &mut [u8],
        inner_len: usize,
        udp_src_port: u16,
        shadow: Option<&ShadowMetadata>,
    ) {
        put(out, &self.h, self.len);
        write_lengths(out, self.len, inner_len, self.sum, udp_src_port);
        if let Some(m) = shadow
            && self.len == MAX_LEN
        {
            out[54..66].copy_from_slice(&m.to_data());
        }
    }
}

/// A Geneve header with the shadow option prepared for one destination and one session's
/// copies in one direction ([`ShadowCopy::new`]): the option's session and direction are in
/// it, so that per frame only the lengths, the checksum, the entropy port, the sequence
/// number and the original length are written ([`ShadowCopy::write`]). The option's flags
/// are zero: for copies neither truncated nor redirected. The lengths and the checksum
/// depend only on the frame's length here (the destination is fixed): the header keeps those
/// of the last length written, so that frames of one length reuse them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShadowCopy {
    h: [u8; MAX_LEN],
    sum: u32,
    /// The inner length whose IPv4 total length, checksum and UDP length `h` holds
    /// (`usize::MAX`: none yet).
    filled: usize,
}

impl ShadowCopy {
    /// `p` (a Geneve header with the shadow option, else `None`) with the option's session
    /// and direction filled in.
    pub(crate) fn new(p: &Prepared, session: u16, direction: u8) -> Option<ShadowCopy> {
        if p.len != MAX_LEN || p.key.kind != 2 {
            return None;
        }
        let mut h = p.h;
        let data = ShadowMetadata {
            session,
            direction,
            flags: 0,
            sequence: 0,
            original_len: 0,
        }
        .to_data();
        h[54..66].copy_from_slice(&data);
        Some(ShadowCopy {
            h,
            sum: p.sum,
            filled: usize::MAX,
        })
    }

    /// Writes the header into the start of `out` for a frame of `inner_len` bytes, the
    /// copy's `sequence` number of a frame of `original_len` bytes; the caller checked that
    /// the IPv4 total length (`MAX_LEN - 14 + inner_len`) fits 16 bits. The same bytes as
    /// [`Prepared::write`] with the shadow metadata of this session and direction, flags 0.
    #[inline(always)]
    pub(crate) fn write(
        &mut self,
        out: &mut [u8],
        inner_len: usize,
        udp_src_port: u16,
        sequence: u32,
        original_len: u16,
    ) {
        if self.filled != inner_len {
            write_lengths(&mut self.h, MAX_LEN, inner_len, self.sum, 0);
            self.filled = inner_len;
        }
        let out = &mut out[..MAX_LEN];
        out.copy_from_slice(&self.h);
        out[34..36].copy_from_slice(&udp_src_port.to_be_bytes());
        out[58..62].copy_from_slice(&sequence.to_be_bytes());
        out[62..64].copy_from_slice(&original_len.to_be_bytes());
    }
}

/// A VXLAN header over IPv4 prepared for a source and a network, the destination left to
/// each frame ([`Vxlan::write`]): the production frames of one VF port all carry the port's
/// VNI from the NIC's address, so everything but the destination's MAC and address, the
/// lengths, the checksum and the entropy port is the same for all of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vxlan {
    /// The header with zeros in the per-frame fields.
    h: [u8; VXLAN_LEN],
    /// Ones'-complement sum, not folded, of the IPv4 header's words but the total length,
    /// the checksum and the destination address.
    sum: u32,
}

impl Vxlan {
    /// The header from `src_mac`/`src` to UDP port `udp_dst_port` in network `vni` with TTL
    /// `ttl`; `None` outside the fixed layout (a VNI over 24 bits).
    pub(crate) fn new(
        src_mac: [u8; 6],
        src: [u8; 4],
        udp_dst_port: u16,
        vni: u32,
        ttl: u8,
    ) -> Option<Vxlan> {
        let p = Prepared::new(
            Key {
                dst_mac: [0; 6],
                src_mac,
                src,
                dst: [0; 4],
                udp_dst_port,
                vni,
                kind: 0,
            },
            ttl,
        )?;
        let mut h = [0u8; VXLAN_LEN];
        h.copy_from_slice(&p.h[..VXLAN_LEN]);
        Some(Vxlan { h, sum: p.sum })
    }

    /// Writes the header into the start of `out` for a frame of `inner_len` bytes to
    /// `dst_mac`/`dst` with UDP source port `udp_src_port`; the caller checked that the IPv4
    /// total length (`VXLAN_LEN - 14 + inner_len`) fits 16 bits. The same bytes as
    /// [`ipv4_header`].
    #[inline(always)]
    pub(crate) fn write(
        &self,
        out: &mut [u8],
        dst_mac: [u8; 6],
        dst: [u8; 4],
        inner_len: usize,
        udp_src_port: u16,
    ) {
        let out = &mut out[..VXLAN_LEN];
        out.copy_from_slice(&self.h);
        out[0..6].copy_from_slice(&dst_mac);
        out[30..34].copy_from_slice(&dst);
        let sum = self.sum
            + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
            + u32::from(u16::from_be_bytes([dst[2], dst[3]]));
        write_lengths(out, VXLAN_LEN, inner_len, sum, udp_src_port);
    }
}

/// Writes the per-frame fields of an outer IPv4/UDP header of `header_len` bytes (from the
/// Ethernet header on) over a frame of `inner_len` bytes: the IPv4 total length and the
/// checksum completing `sum` (the other header words' ones'-complement sum, not folded), the
/// UDP source port and length.
#[inline(always)]
fn write_lengths(out: &mut [u8], header_len: usize, inner_len: usize, sum: u32, udp_src_port: u16) {
    let udp_len = (header_len - 14 - 20 + inner_len) as u16;
    let ip_len = udp_len + 20;
    let mut sum = sum + u32::from(ip_len);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    out[16..18].copy_from_slice(&ip_len.to_be_bytes());
    out[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    out[34..36].copy_from_slice(&udp_src_port.to_be_bytes());
    out[38..40].copy_from_slice(&udp_len.to_be_bytes());
}

/// Outer headers prepared per mirror session: a session's copies mostly go to one shadow
/// node, so its last header is nearly always the next one. An entry is used only for the
/// exact [`Key`] it was prepared for, so a reprogrammed shadow-map entry, session or port
/// address simply misses and is prepared again: nothing needs invalidating.
pub(crate) struct Cache {
    sessions: Vec<Option<Prepared>>,
    /// Counts the headers prepared: while it stands still, every slot holds what it held.
    generation: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            sessions: vec![None; shadownet_hw::NUM_SESSIONS],
            generation: 0,
        }
    }
}

impl Cache {
    /// The prepared header for `key` in `session`'s slot, prepared on a miss; `None` for a
    /// session number out of range or a key outside the fixed layout.
    #[inline(always)]
    pub(crate) fn get(&mut self, session: u16, key: &Key, ttl: u8) -> Option<&Prepared> {
        let slot = self.sessions.get_mut(session as usize)?;
        if slot.as_ref().is_none_or(|p| p.key() != key) {
            *slot = Prepared::new(*key, ttl);
            self.generation += 1;
        }
        slot.as_ref()
    }

    /// How many headers have been prepared: a caller that saw `session`'s slot hold a key at
    /// one generation knows it still does while the generation is the same.
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// What `session`'s slot holds, without a key to check it against (see
    /// [`Cache::generation`]).
    #[inline(always)]
    pub(crate) fn slot(&self, session: u16) -> Option<&Prepared> {
        self.sessions.get(session as usize)?.as_ref()
    }
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
            // The prepared header, written for this frame, is the same again.
            let (kind, vni, shadow) = Key::tunnel(&tunnel);
            let key = Key {
                dst_mac: macs.1,
                src_mac: macs.0,
                src: addrs.0,
                dst: addrs.1,
                udp_dst_port: ports.1,
                vni,
                kind,
            };
            let prepared = Prepared::new(key, ttl).expect("in range");
            prop_assert_eq!(prepared.len(), n);
            let mut again = vec![0x55; n + 3];
            prepared.write(&mut again, inner_len, ports.0, shadow);
            prop_assert_eq!(&again[..n], &reference[..n]);
            // And a shadow copy's header with its session and direction prepared (flags
            // zero), against the prepared header written with the same metadata.
            if let Some(m) = shadow {
                let m0 = ShadowMetadata { flags: 0, ..*m };
                let mut c =
                    ShadowCopy::new(&prepared, m0.session, m0.direction).expect("shadow");
                let mut want = vec![0x55; n + 3];
                prepared.write(&mut want, inner_len, ports.0, Some(&m0));
                // Written fresh, again at the same length (the lengths kept), and after a
                // frame of another length.
                for first in [inner_len, inner_len, inner_len ^ 1, inner_len] {
                    let mut got = vec![0x55; n + 3];
                    if first != inner_len {
                        c.write(&mut got, first, 7, 1, 2);
                        got = vec![0x55; n + 3];
                    }
                    c.write(&mut got, inner_len, ports.0, m0.sequence, m0.original_len);
                    prop_assert_eq!(&got, &want);
                }
            } else {
                prop_assert!(ShadowCopy::new(&prepared, 1, 1).is_none());
            }
            // And a VXLAN header prepared without its destination, written for this one.
            if let TunnelHeader::Vxlan { vni } = tunnel {
                let v = Vxlan::new(macs.0, addrs.0, ports.1, vni, ttl).expect("in range");
                let mut again = vec![0x55; n + 3];
                v.write(&mut again, macs.1, addrs.1, inner_len, ports.0);
                prop_assert_eq!(&again[..n], &reference[..n]);
            }
        }
    }

    #[test]
    fn a_session_slot_is_prepared_again_for_another_key() {
        let key = Key {
            dst_mac: [2, 0, 0, 0, 0, 3],
            src_mac: [2, 0, 0, 0, 0, 1],
            src: [10, 255, 0, 1],
            dst: [10, 253, 0, 3],
            udp_dst_port: 6081,
            vni: 9001,
            kind: 2,
        };
        let mut cache = Cache::default();
        assert_eq!(cache.get(1, &key, 64).map(|p| *p.key()), Some(key));
        let moved = Key {
            dst: [10, 253, 0, 4],
            ..key
        };
        let p = cache.get(1, &moved, 64).expect("in layout");
        assert_eq!(p.key(), &moved);
        let mut out = [0u8; MAX_LEN];
        p.write(&mut out, 0, 1, None);
        assert_eq!(out[30..34], [10, 253, 0, 4]);
        assert!(
            cache
                .get(shadownet_hw::NUM_SESSIONS as u16, &key, 64)
                .is_none()
        );
        let too_wide = Key {
            vni: 1 << 24,
            ..key
        };
        assert!(cache.get(1, &too_wide, 64).is_none());
        // The slot holds the last key asked for, or nothing: never a stale header.
        assert_eq!(cache.get(1, &key, 64).map(|p| *p.key()), Some(key));
    }

    #[test]
    fn outside_the_layout_nothing_is_written() {
        let mut h = [0u8; MAX_LEN];
        let big_vni = TunnelHeader::Vxlan { vni: 1 << 24 };
        let vxlan = TunnelHeader::Vxlan { vni: 1 };
        assert_eq!(
            ipv4_header(
                &mut h, [1; 6], [1; 6], [1; 4], [1; 4], 1, 2, 64, &big_vni, 10
            ),
            None
        );
        assert_eq!(
            ipv4_header(
                &mut h, [1; 6], [1; 6], [1; 4], [1; 4], 1, 2, 64, &vxlan, 65_500
            ),
            None
        );
        assert_eq!(h, [0; MAX_LEN]);
    }
}
