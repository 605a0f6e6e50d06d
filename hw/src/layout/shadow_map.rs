//! Production to shadow map (table `SHADOW_MAP`, exact match on session + VNI + address).
//!
//! It names, for a mirror session, the shadow node that stands in for each production
//! address: a copy of a packet toward production address A is re-encapsulated toward A's shadow
//! node. Key in `KEY` (24 bytes): 0..2 session (u16 LE), 2..4 reserved, 4..8 production VNI,
//! 8..24 production overlay address (wire form). Value in `VALUE` (32 bytes):
//!
//! | bytes  | field                                               |
//! |--------|-----------------------------------------------------|
//! | 0..16  | substrate address of the shadow node's host         |
//! | 16..22 | substrate MAC (next hop toward it)                  |
//! | 22..24 | reserved (0)                                        |
//! | 24..28 | shadow VNI, u32 LE                                  |
//! | 28..32 | reserved (0)                                        |

use core::net::IpAddr;

use super::{
    LayoutError, Mac, check_reserved, check_vni, get_16, get_mac, get_u16, get_u32, ip_from_bytes,
    ip_to_bytes, put_u16, put_u32,
};

/// Bytes of the key words.
pub const KEY_LEN: usize = 24;
/// Bytes of the value words.
pub const VALUE_LEN: usize = 32;

/// Key: a production address as seen by one mirror session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShadowMapKey {
    /// Mirror session.
    pub session: u16,
    /// Production VNI.
    pub vni: u32,
    /// Production overlay address.
    pub ip: IpAddr,
}

impl ShadowMapKey {
    /// Parses the key words.
    pub fn parse(b: &[u8; KEY_LEN]) -> Result<ShadowMapKey, LayoutError> {
        check_reserved(b, 2..4)?;
        let session = get_u16(b, 0);
        if session as usize >= crate::NUM_SESSIONS {
            return Err(LayoutError::SessionOutOfRange(session));
        }
        Ok(ShadowMapKey {
            session,
            vni: check_vni(get_u32(b, 4))?,
            ip: ip_from_bytes(get_16(b, 8)),
        })
    }

    /// Writes the key words.
    pub fn emit(&self, b: &mut [u8; KEY_LEN]) {
        *b = [0; KEY_LEN];
        put_u16(b, 0, self.session);
        put_u32(b, 4, self.vni);
        b[8..24].copy_from_slice(&ip_to_bytes(self.ip));
    }
}

/// The exact-table key words of (session, production VNI, address in wire form), as
/// [`ShadowMapKey::emit`] lays them out.
#[inline]
pub fn key_words(session: u16, vni: u32, ip: &[u8; 16]) -> crate::table::exact::Key {
    let w = |i: usize| u32::from_le_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
    [session as u32, vni, w(0), w(4), w(8), w(12)]
}

/// A shadow-map value as the pipeline reads it from table memory (validated when written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowMapWords {
    /// Substrate address of the shadow node's host (wire form).
    pub substrate_ip: [u8; 16],
    /// Substrate MAC toward it.
    pub substrate_mac: [u8; 6],
    /// Shadow VNI.
    pub shadow_vni: u32,
}

impl ShadowMapWords {
    /// Reads a stored value (the exact-table value words).
    #[inline]
    pub fn read(w: &crate::table::exact::Value) -> ShadowMapWords {
        let b = |i: usize| w[i].to_le_bytes();
        let (w0, w1, w2, w3, w4, w5) = (b(0), b(1), b(2), b(3), b(4), b(5));
        ShadowMapWords {
            substrate_ip: [
                w0[0], w0[1], w0[2], w0[3], w1[0], w1[1], w1[2], w1[3], w2[0], w2[1], w2[2], w2[3],
                w3[0], w3[1], w3[2], w3[3],
            ],
            substrate_mac: [w4[0], w4[1], w4[2], w4[3], w5[0], w5[1]],
            shadow_vni: w[6],
        }
    }
}

/// The shadow node standing in for a production address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShadowMapValue {
    /// Substrate address of the shadow node's host.
    pub substrate_ip: IpAddr,
    /// Substrate MAC of the next hop toward it.
    pub substrate_mac: Mac,
    /// VNI of the shadow network.
    pub shadow_vni: u32,
}

impl ShadowMapValue {
    /// Parses the value words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<ShadowMapValue, LayoutError> {
        check_reserved(b, 22..24)?;
        check_reserved(b, 28..32)?;
        Ok(ShadowMapValue {
            substrate_ip: ip_from_bytes(get_16(b, 0)),
            substrate_mac: get_mac(b, 16),
            shadow_vni: check_vni(get_u32(b, 24))?,
        })
    }

    /// Writes the value words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        b[0..16].copy_from_slice(&ip_to_bytes(self.substrate_ip));
        b[16..22].copy_from_slice(&self.substrate_mac.0);
        put_u32(b, 24, self.shadow_vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let k = ShadowMapKey {
            session: 2,
            vni: 5001,
            ip: "2001:db8::5".parse().expect("literal"),
        };
        let mut kb = [0u8; KEY_LEN];
        k.emit(&mut kb);
        assert_eq!(&kb[0..8], &[2, 0, 0, 0, 0x89, 0x13, 0, 0]);
        assert_eq!(&kb[8..10], &[0x20, 0x01]);
        assert_eq!(ShadowMapKey::parse(&kb), Ok(k));
        let words: [u32; 6] = crate::layout::bytes_to_words(&kb);
        assert_eq!(key_words(k.session, k.vni, &ip_to_bytes(k.ip)), words);
        let v = ShadowMapValue {
            substrate_ip: "10.0.0.9".parse().expect("literal"),
            substrate_mac: Mac([2, 0, 0, 0, 0, 9]),
            shadow_vni: 9001,
        };
        let mut vb = [0u8; VALUE_LEN];
        v.emit(&mut vb);
        assert_eq!(&vb[24..28], &[0x29, 0x23, 0, 0]);
        assert_eq!(ShadowMapValue::parse(&vb), Ok(v));
        let words: [u32; 8] = crate::layout::bytes_to_words(&vb);
        let raw = ShadowMapWords::read(&words);
        assert_eq!(raw.substrate_ip, ip_to_bytes(v.substrate_ip));
        assert_eq!(raw.substrate_mac, v.substrate_mac.0);
        assert_eq!(raw.shadow_vni, 9001);
        kb[0] = 64;
        assert_eq!(
            ShadowMapKey::parse(&kb),
            Err(LayoutError::SessionOutOfRange(64))
        );
    }
}
