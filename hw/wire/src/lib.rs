//! Zero-copy packet views, the NIC's parser stage, and tunnel encapsulation.
//!
//! This crate is part of the device contract: the cycle-accurate simulator runs [`parse()`] on
//! every received frame and [`emit_encap`] on every frame it sends into a tunnel, and the
//! host and firmware use the same views. Hence `no_std`, no `unsafe`, no allocation and no
//! panics on any input.
//!
//! # Layout
//!
//! Each protocol module follows smoltcp's `wire` style: a view over any `T: AsRef<[u8]>`
//! (`Packet`, `Frame`, `Tag` or `Header`) with `new_unchecked` / `new_checked` / `check_len`,
//! getters, setters when `T: AsMut<[u8]>`, and a `Repr` with `parse` / `emit` where a
//! high-level form is useful. Accessors of a view built with `new_unchecked` may panic on a
//! short buffer; those of a view that passed `new_checked` do not. The parser stage and
//! encapsulation only use views over buffers whose length they checked.
//!
//! | module | contents |
//! |---|---|
//! | [`ethernet`] | Ethernet II frame, [`EthernetAddress`], EtherType constants |
//! | [`vlan`] | 802.1Q / 802.1ad tag |
//! | [`arp`] | ARP packet |
//! | [`ipv4`] | IPv4 header, options iterator, protocol numbers |
//! | [`ipv6`] | IPv6 header, extension headers, options (jumbo payload) |
//! | [`tcp`], [`udp`], [`icmp`] | transport headers |
//! | [`vxlan`], [`geneve`] | tunnel headers; [`ShadowMetadata`], the shadow Geneve option |
//! | [`checksum`] | internet checksum and pseudo-headers |
//! | [`parse`](mod@parse) | the parser stage: [`parse()`], [`parse_into`], [`Headers`], [`ParseError`] |
//! | [`encap`] | [`emit_encap`], [`emit_encap_headers`], [`encap_overhead`], [`flow_entropy_port`] |
//! | [`release`] | [`release_frame`]: a redirected frame's release, sent back by the shadow |
//!
//! # Example
//!
//! ```
//! use shadownet_wire::{parse, ParseConfig, L4};
//!
//! // Ethernet / IPv4 / UDP to port 53 (a DNS query with its payload cut off).
//! let frame = [
//!     0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x5c, 0x08, 0x00,
//!     0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
//!     192, 168, 1, 100, 8, 8, 8, 8,
//!     0xcf, 0x84, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
//! ];
//! let h = parse(&frame, &ParseConfig::default()).unwrap();
//! assert_eq!(h.l4, L4::Udp { sport: 53124, dport: 53 });
//! assert_eq!(h.l4_offset, 34);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod arp;
pub mod checksum;
pub mod encap;
pub mod error;
pub mod ethernet;
pub mod geneve;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod parse;
pub mod release;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use encap::{
    EncapParams, MAX_ENCAP_OVERHEAD, TunnelHeader, emit_encap, emit_encap_headers, encap_overhead,
    flow_entropy_port,
};
pub use error::{EncapError, Error, Layer, ParseError};
pub use ethernet::{EthernetAddress, ethertype};
pub use geneve::{
    SHADOW_DIRECTION_FROM_VM, SHADOW_DIRECTION_TO_VM, SHADOW_FLAG_REDIRECTED, SHADOW_FLAG_RELEASED,
    SHADOW_FLAG_TRUNCATED, SHADOW_OPTION_CLASS, SHADOW_OPTION_LEN_WORDS, SHADOW_OPTION_TYPE,
    ShadowMetadata,
};
pub use ipv4::protocol as ip_protocol;
pub use parse::{
    Fragment, Headers, L3, L4, ParseConfig, Plain, Tunnel, TunnelKind, parse, parse_into,
    parse_plain,
};
pub use release::{ReleaseError, release_frame};

pub use arp::{Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{Frame as EthernetFrame, Repr as EthernetRepr};
pub use geneve::{Header as GeneveHeader, Repr as GeneveRepr};
pub use icmp::Packet as IcmpPacket;
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{Packet as Ipv6Packet, Repr as Ipv6Repr};
pub use tcp::{Packet as TcpPacket, Repr as TcpRepr};
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};
pub use vlan::{Repr as VlanRepr, Tag as VlanTag};
pub use vxlan::{Packet as VxlanPacket, Repr as VxlanRepr};
