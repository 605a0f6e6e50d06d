//! Decoding what leaves the NIC: the outer headers and tunnel of an encapsulated frame, read
//! with the parser stage (`shadownet_wire::parse`), and the inner frame it carries.

use std::net::IpAddr;

use shadownet_hw::Port;
use shadownet_wire::{L4, ParseConfig, ShadowMetadata, TunnelKind};

use crate::lab::Sent;

/// An encapsulated frame, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunneled {
    /// Outer source MAC.
    pub eth_src: [u8; 6],
    /// Outer destination MAC.
    pub eth_dst: [u8; 6],
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Outer UDP source port.
    pub udp_sport: u16,
    /// Outer UDP destination port.
    pub udp_dport: u16,
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// The tunnel's VNI.
    pub vni: u32,
    /// Geneve protocol type (0x6558 for VXLAN).
    pub protocol: u16,
    /// The shadow metadata option (Geneve only).
    pub shadow: Option<ShadowMetadata>,
    /// The inner frame.
    pub inner: Vec<u8>,
}

/// Takes an encapsulated frame apart; `None` if it is not IP/UDP/VXLAN-or-Geneve on the
/// IANA ports, or does not parse.
pub fn try_decode(bytes: &[u8]) -> Option<Tunneled> {
    let h = shadownet_wire::parse(bytes, &ParseConfig::default()).ok()?;
    let t = h.tunnel?;
    let L4::Udp { sport, dport } = h.l4 else {
        return None;
    };
    Some(Tunneled {
        eth_src: h.eth_src.0,
        eth_dst: h.eth_dst.0,
        src: h.src_ip()?,
        dst: h.dst_ip()?,
        udp_sport: sport,
        udp_dport: dport,
        kind: t.kind,
        vni: t.vni,
        protocol: t.geneve_protocol,
        shadow: t.shadow,
        inner: h.inner_frame(bytes)?.to_vec(),
    })
}

/// Takes a frame that left the NIC apart; panics (naming the frame) if it is not a tunnel.
pub fn decode(sent: &Sent) -> Tunneled {
    try_decode(&sent.bytes).unwrap_or_else(|| {
        panic!(
            "frame on {} (mirror: {}) is not a VXLAN/Geneve tunnel: {:02x?}",
            sent.port, sent.mirror, sent.bytes
        )
    })
}

/// The frames of `sent` that left on `port`.
pub fn on(sent: &[Sent], port: Port) -> Vec<&Sent> {
    sent.iter().filter(|s| s.port == port).collect()
}

/// The production frames of `sent` (primary queue).
pub fn production(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().filter(|s| !s.mirror).collect()
}

/// The mirror copies of `sent` (mirror queue).
pub fn copies(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().filter(|s| s.mirror).collect()
}

/// The one production frame of `sent`; panics if there is not exactly one.
pub fn one_production(sent: &[Sent]) -> &Sent {
    let p = production(sent);
    assert_eq!(
        p.len(),
        1,
        "expected exactly one production frame, got {}: {:?}",
        p.len(),
        summary(sent)
    );
    p[0]
}

/// The one mirror copy of `sent`; panics if there is not exactly one.
pub fn one_copy(sent: &[Sent]) -> &Sent {
    let c = copies(sent);
    assert_eq!(
        c.len(),
        1,
        "expected exactly one mirror copy, got {}: {:?}",
        c.len(),
        summary(sent)
    );
    c[0]
}

/// A short description of each frame (port, queue, session, length), for failure messages.
pub fn summary(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .map(|s| {
            format!(
                "{} {} session {:?} {} bytes",
                s.port,
                if s.mirror { "mirror" } else { "primary" },
                s.session,
                s.bytes.len()
            )
        })
        .collect()
}
