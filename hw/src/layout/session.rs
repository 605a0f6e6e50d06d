//! Mirror session (block `MIRROR`, 48 bytes in `STAGE[0..12]`, committed by `CMD.COMMIT`).
//!
//! | bytes  | field                                                                      |
//! |--------|----------------------------------------------------------------------------|
//! | 0..4   | flags, u32 LE: 0x1 enabled, 0x2 Geneve (else VXLAN), 0x4 redirect mode     |
//! | 4..8   | shadow VNI used when the shadow map has no node for the destination        |
//! | 8..24  | collector: substrate address of the analysis node (wire form)              |
//! | 24..30 | collector substrate MAC (next hop)                                         |
//! | 30..32 | reserved (0)                                                               |
//! | 32..36 | policer rate in Mbit/s, u32 LE (0: no policer; the mirror queue still      |
//! |        | bounds the copies)                                                         |
//! | 36..40 | policer burst in bytes, u32 LE (≥ [`MIN_BURST`] when the rate is not 0)    |
//! | 40..48 | reserved (0)                                                               |

use core::net::IpAddr;

use super::{
    LayoutError, Mac, check_reserved, check_vni, get_16, get_mac, get_u32, ip_from_bytes,
    ip_to_bytes, put_u32,
};

/// Bytes of a session in the STAGE/FETCHED registers.
pub const LEN: usize = 48;
/// Words of a session.
pub const WORDS: usize = LEN / 4;

/// Smallest policer burst: one encapsulated 1500-byte frame must fit.
pub const MIN_BURST: u32 = 1600;

const FLAG_ENABLED: u32 = 0x1;
const FLAG_GENEVE: u32 = 0x2;
const FLAG_REDIRECT: u32 = 0x4;

/// Tunnel format of the copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// VXLAN (UDP 4789): the VNI only.
    Vxlan,
    /// Geneve (UDP 6081) with the shadow metadata option: session, direction, sequence.
    Geneve,
}

/// What happens to the production packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A copy goes to the shadow; production is never delayed.
    Mirror,
    /// The packet goes to the shadow's analysis node instead of production; production
    /// receives it only after the verdict.
    Redirect,
}

/// A mirror session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MirrorSession {
    /// Whether copies are made.
    pub enabled: bool,
    /// Tunnel format.
    pub encap: Encap,
    /// Mirror or redirect.
    pub mode: Mode,
    /// Shadow VNI for copies whose destination has no shadow node.
    pub shadow_vni: u32,
    /// Substrate address of the analysis node.
    pub collector_ip: IpAddr,
    /// Substrate MAC toward the analysis node.
    pub collector_mac: Mac,
    /// Policer rate in Mbit/s; 0: no policer.
    pub policer_mbps: u32,
    /// Policer burst in bytes.
    pub policer_burst: u32,
}

impl MirrorSession {
    /// A disabled session (the reset state).
    pub const DISABLED: MirrorSession = MirrorSession {
        enabled: false,
        encap: Encap::Vxlan,
        mode: Mode::Mirror,
        shadow_vni: 0,
        collector_ip: super::UNSPECIFIED,
        collector_mac: Mac([0; 6]),
        policer_mbps: 0,
        policer_burst: 0,
    };

    /// Parses the session words.
    pub fn parse(b: &[u8; LEN]) -> Result<MirrorSession, LayoutError> {
        let flags = get_u32(b, 0);
        if flags & !(FLAG_ENABLED | FLAG_GENEVE | FLAG_REDIRECT) != 0 {
            return Err(LayoutError::BadEnum {
                field: "session flags",
                value: flags,
            });
        }
        check_reserved(b, 30..32)?;
        check_reserved(b, 40..48)?;
        let policer_mbps = get_u32(b, 32);
        let policer_burst = get_u32(b, 36);
        if policer_mbps != 0 && policer_burst < MIN_BURST {
            return Err(LayoutError::BurstTooSmall(policer_burst));
        }
        Ok(MirrorSession {
            enabled: flags & FLAG_ENABLED != 0,
            encap: if flags & FLAG_GENEVE != 0 {
                Encap::Geneve
            } else {
                Encap::Vxlan
            },
            mode: if flags & FLAG_REDIRECT != 0 {
                Mode::Redirect
            } else {
                Mode::Mirror
            },
            shadow_vni: check_vni(get_u32(b, 4))?,
            collector_ip: ip_from_bytes(get_16(b, 8)),
            collector_mac: get_mac(b, 24),
            policer_mbps,
            policer_burst,
        })
    }

    /// Writes the session words.
    pub fn emit(&self, b: &mut [u8; LEN]) {
        *b = [0; LEN];
        let mut flags = 0;
        if self.enabled {
            flags |= FLAG_ENABLED;
        }
        if self.encap == Encap::Geneve {
            flags |= FLAG_GENEVE;
        }
        if self.mode == Mode::Redirect {
            flags |= FLAG_REDIRECT;
        }
        put_u32(b, 0, flags);
        put_u32(b, 4, self.shadow_vni);
        b[8..24].copy_from_slice(&ip_to_bytes(self.collector_ip));
        b[24..30].copy_from_slice(&self.collector_mac.0);
        put_u32(b, 32, self.policer_mbps);
        put_u32(b, 36, self.policer_burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let s = MirrorSession {
            enabled: true,
            encap: Encap::Geneve,
            mode: Mode::Mirror,
            shadow_vni: 9001,
            collector_ip: "10.0.0.50".parse().expect("literal"),
            collector_mac: Mac([2, 0, 0, 0, 0, 0x50]),
            policer_mbps: 10_000,
            policer_burst: 65_536,
        };
        let mut b = [0u8; LEN];
        s.emit(&mut b);
        assert_eq!(&b[0..8], &[3, 0, 0, 0, 0x29, 0x23, 0, 0]);
        assert_eq!(&b[20..24], &[10, 0, 0, 50]);
        assert_eq!(&b[24..30], &[2, 0, 0, 0, 0, 0x50]);
        assert_eq!(&b[32..40], &[0x10, 0x27, 0, 0, 0, 0, 1, 0]);
        assert_eq!(MirrorSession::parse(&b), Ok(s));
        let mut small = s;
        small.policer_burst = 100;
        small.emit(&mut b);
        assert_eq!(
            MirrorSession::parse(&b),
            Err(LayoutError::BurstTooSmall(100))
        );
        let reset = [0u8; LEN];
        assert_eq!(MirrorSession::parse(&reset), Ok(MirrorSession::DISABLED));
        let mut disabled = [0xAAu8; LEN];
        MirrorSession::DISABLED.emit(&mut disabled);
        assert_eq!(disabled, reset);
    }
}
