//! Release frames: how a shadow's analysis node hands a redirected frame back to the NIC.
//!
//! In redirect mode the NIC sends a production frame to the shadow instead of to production,
//! as Geneve with the shadow's VNI and a shadow option whose flags have
//! [`SHADOW_FLAG_REDIRECTED`]. When the analysis accepts the
//! frame it sends back a *release*: the same inner frame, as Geneve from the address the
//! redirect was sent to, to the NIC that sent it, with the **production** VNI and a shadow
//! option carrying the redirect's session, direction, sequence number and original length
//! and the flag [`SHADOW_FLAG_RELEASED`] (REDIRECTED cleared). The NIC delivers the inner
//! frame on the production path without redirecting it again (hw/docs/mirror.md, "Releasing
//! a redirected frame").
//!
//! [`release_frame`] builds that frame from the redirected one, in one pass and without
//! allocating, so that an analysis node (or the host's verdict gate) needs nothing but the
//! bytes it received and the production VNI.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    EncapError, EthernetAddress, ParseConfig, ParseError,
    encap::{EncapParams, TunnelHeader, emit_encap},
    ethernet::ethertype,
    geneve::{SHADOW_FLAG_REDIRECTED, SHADOW_FLAG_RELEASED, SHADOW_FLAG_TRUNCATED},
    parse::{L3, TunnelKind, parse},
};

/// Outer TTL / hop limit of a release, as of every tunnel the NIC originates.
const RELEASE_TTL: u8 = 64;

/// Why a frame cannot be turned into a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseError {
    /// The frame does not parse.
    Parse(ParseError),
    /// The frame is not Geneve over IP to the configured Geneve port.
    NotGeneve,
    /// The Geneve payload is not Ethernet.
    NotEthernet,
    /// The frame carries no shadow option, or one without the REDIRECTED flag: only a
    /// redirected frame can be released.
    NotRedirected,
    /// The redirected frame was truncated, so it is not the whole production frame.
    Truncated,
    /// Building the release failed (production VNI over 24 bits, output buffer too small).
    Encap(EncapError),
}

impl core::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReleaseError::Parse(e) => write!(f, "the redirected frame does not parse: {e}"),
            ReleaseError::NotGeneve => f.write_str("not a Geneve frame"),
            ReleaseError::NotEthernet => f.write_str("the Geneve payload is not Ethernet"),
            ReleaseError::NotRedirected => {
                f.write_str("no shadow option with the REDIRECTED flag: not a redirected frame")
            }
            ReleaseError::Truncated => f.write_str("the redirected frame is truncated"),
            ReleaseError::Encap(e) => write!(f, "building the release: {e}"),
        }
    }
}

impl core::error::Error for ReleaseError {}

fn ip_of(l3: L3, bytes: &[u8; 16]) -> Option<IpAddr> {
    match l3 {
        L3::Ipv4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[12], bytes[13], bytes[14], bytes[15],
        ))),
        L3::Ipv6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    }
}

/// Writes into `out` the release of `redirected`, a redirected frame as the NIC sent it (the
/// outer Ethernet/IP/UDP/Geneve headers included), for the production network
/// `production_vni`; returns the release's length. `config` names the Geneve port the NIC
/// uses. The outer addresses are the redirect's reversed (the release comes from the address
/// the redirect went to and goes to the NIC that sent it); the UDP ports are kept; the inner
/// frame is copied unchanged.
pub fn release_frame(
    redirected: &[u8],
    config: &ParseConfig,
    production_vni: u32,
    out: &mut [u8],
) -> Result<usize, ReleaseError> {
    let h = parse(redirected, config).map_err(ReleaseError::Parse)?;
    let t = h
        .tunnel
        .filter(|t| t.kind == TunnelKind::Geneve)
        .ok_or(ReleaseError::NotGeneve)?;
    if t.geneve_protocol != ethertype::TEB {
        return Err(ReleaseError::NotEthernet);
    }
    let meta = t
        .shadow
        .filter(|m| m.flags & SHADOW_FLAG_REDIRECTED != 0)
        .ok_or(ReleaseError::NotRedirected)?;
    if meta.flags & SHADOW_FLAG_TRUNCATED != 0 {
        return Err(ReleaseError::Truncated);
    }
    let (src_ip, dst_ip) = match (ip_of(h.l3, &h.dst), ip_of(h.l3, &h.src)) {
        (Some(s), Some(d)) => (s, d),
        _ => return Err(ReleaseError::NotGeneve),
    };
    let (sport, dport) = h.ports().ok_or(ReleaseError::NotGeneve)?;
    let inner = h.inner_frame(redirected).ok_or(ReleaseError::NotGeneve)?;
    let mut shadow = meta;
    shadow.flags = (meta.flags & !SHADOW_FLAG_REDIRECTED) | SHADOW_FLAG_RELEASED;
    let params = EncapParams {
        src_mac: EthernetAddress(h.eth_dst.0),
        dst_mac: EthernetAddress(h.eth_src.0),
        src_ip,
        dst_ip,
        udp_src_port: sport,
        udp_dst_port: dport,
        ttl: RELEASE_TTL,
        tunnel: TunnelHeader::Geneve {
            vni: production_vni,
            shadow: Some(shadow),
        },
    };
    emit_encap(&params, inner, out).map_err(ReleaseError::Encap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ShadowMetadata, geneve::SHADOW_DIRECTION_FROM_VM};

    fn redirected(flags: u8) -> ([u8; 256], usize, [u8; 60]) {
        let mut inner = [0u8; 60];
        inner[12] = 0x08;
        inner[14] = 0x45;
        inner[17] = 46;
        inner[22] = 64;
        inner[23] = 17;
        inner[26..30].copy_from_slice(&[192, 168, 10, 11]);
        inner[30..34].copy_from_slice(&[192, 168, 10, 21]);
        inner[38..40].copy_from_slice(&26u16.to_be_bytes());
        let params = EncapParams {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 3]),
            src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            udp_src_port: 50_000,
            udp_dst_port: 6081,
            ttl: 64,
            tunnel: TunnelHeader::Geneve {
                vni: 9001,
                shadow: Some(ShadowMetadata {
                    session: 1,
                    direction: SHADOW_DIRECTION_FROM_VM,
                    flags,
                    sequence: 7,
                    original_len: 60,
                }),
            },
        };
        let mut out = [0u8; 256];
        let n = emit_encap(&params, &inner, &mut out).unwrap();
        (out, n, inner)
    }

    #[test]
    fn a_release_reverses_the_redirect_and_keeps_the_inner_frame() {
        let (frame, n, inner) = redirected(SHADOW_FLAG_REDIRECTED);
        let mut out = [0u8; 256];
        let m = release_frame(&frame[..n], &ParseConfig::default(), 5001, &mut out).unwrap();
        assert_eq!(m, n);
        let h = parse(&out[..m], &ParseConfig::default()).unwrap();
        assert_eq!(h.src_ip(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))));
        assert_eq!(h.dst_ip(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(h.eth_src.0, [2, 0, 0, 0, 0, 3]);
        assert_eq!(h.eth_dst.0, [2, 0, 0, 0, 0, 1]);
        assert_eq!(h.ports(), Some((50_000, 6081)));
        let t = h.tunnel.unwrap();
        assert_eq!(t.vni, 5001);
        let meta = t.shadow.unwrap();
        assert_eq!(meta.flags, SHADOW_FLAG_RELEASED);
        assert_eq!(
            (
                meta.session,
                meta.direction,
                meta.sequence,
                meta.original_len
            ),
            (1, SHADOW_DIRECTION_FROM_VM, 7, 60)
        );
        assert_eq!(h.inner_frame(&out[..m]), Some(&inner[..]));
    }

    #[test]
    fn only_whole_redirected_geneve_frames_are_released() {
        let mut out = [0u8; 256];
        let cfg = ParseConfig::default();
        let (copy, n, _) = redirected(0);
        assert_eq!(
            release_frame(&copy[..n], &cfg, 5001, &mut out),
            Err(ReleaseError::NotRedirected)
        );
        let (cut, n, _) = redirected(SHADOW_FLAG_REDIRECTED | SHADOW_FLAG_TRUNCATED);
        assert_eq!(
            release_frame(&cut[..n], &cfg, 5001, &mut out),
            Err(ReleaseError::Truncated)
        );
        let (frame, n, inner) = redirected(SHADOW_FLAG_REDIRECTED);
        assert_eq!(
            release_frame(&inner, &cfg, 5001, &mut out),
            Err(ReleaseError::NotGeneve)
        );
        assert_eq!(
            release_frame(&frame[..n], &cfg, 1 << 24, &mut out),
            Err(ReleaseError::Encap(EncapError::VniOutOfRange))
        );
        assert_eq!(
            release_frame(&frame[..n], &cfg, 5001, &mut out[..40]),
            Err(ReleaseError::Encap(EncapError::BufferTooSmall))
        );
        assert!(matches!(
            release_frame(&frame[..10], &cfg, 5001, &mut out),
            Err(ReleaseError::Parse(_))
        ));
    }
}
