//! Overlay to substrate map (table `MAP`, exact match on VNI + overlay address).
//!
//! Key in `KEY` (24 bytes): 0..4 VNI (u32 LE), 4..20 overlay address (wire form), 20..24
//! reserved. Value in `VALUE` (32 bytes):
//!
//! | bytes  | field                                                                 |
//! |--------|-----------------------------------------------------------------------|
//! | 0..16  | substrate address of the host the VM runs on (wire form)              |
//! | 16..22 | substrate MAC (next hop on the fabric)                                |
//! | 22..24 | flags, u16 LE: 0x1 local (the VM is on this NIC: deliver to `vport`), |
//! |        | 0x2 shadow (the address belongs to a shadow network)                  |
//! | 24..26 | vport of the local VM, u16 LE                                         |
//! | 26..32 | reserved (0)                                                          |

use core::net::IpAddr;

use super::{
    LayoutError, Mac, check_reserved, check_vni, get_16, get_mac, get_u16, get_u32, ip_from_bytes,
    ip_to_bytes, put_u16, put_u32,
};

/// Bytes of the key words.
pub const KEY_LEN: usize = 24;
/// Bytes of the value words.
pub const VALUE_LEN: usize = 32;

const FLAG_LOCAL: u16 = 0x1;
const FLAG_SHADOW: u16 = 0x2;

/// Key of the map: a VM's overlay address in its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapKey {
    /// The network.
    pub vni: u32,
    /// The overlay address.
    pub ip: IpAddr,
}

impl MapKey {
    /// Parses the key words.
    pub fn parse(b: &[u8; KEY_LEN]) -> Result<MapKey, LayoutError> {
        check_reserved(b, 20..24)?;
        Ok(MapKey {
            vni: check_vni(get_u32(b, 0))?,
            ip: ip_from_bytes(get_16(b, 4)),
        })
    }

    /// Writes the key words.
    pub fn emit(&self, b: &mut [u8; KEY_LEN]) {
        *b = [0; KEY_LEN];
        put_u32(b, 0, self.vni);
        b[4..20].copy_from_slice(&ip_to_bytes(self.ip));
    }
}

/// The exact-table key words of (VNI, overlay address in wire form), as [`MapKey::emit`]
/// lays them out; the pipeline builds keys from parsed headers with this.
#[inline]
pub fn key_words(vni: u32, ip: &[u8; 16]) -> crate::table::exact::Key {
    let w = |i: usize| u32::from_le_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
    [vni, w(0), w(4), w(8), w(12), 0]
}

/// Where an overlay address lives on the substrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapValue {
    /// Substrate address of the host the VM runs on.
    pub substrate_ip: IpAddr,
    /// Substrate MAC of the next hop toward that host.
    pub substrate_mac: Mac,
    /// The VM runs behind this NIC, on `vport`.
    pub local_vport: Option<u16>,
    /// The address belongs to a shadow network.
    pub shadow: bool,
}

/// A map value as the pipeline reads it from table memory: no validation (entries are
/// validated when written) and the address in wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapWords {
    /// Substrate address (wire form).
    pub substrate_ip: [u8; 16],
    /// Substrate MAC.
    pub substrate_mac: [u8; 6],
    /// The VM is behind this NIC, on this vport.
    pub local_vport: Option<u16>,
    /// The address belongs to a shadow network.
    pub shadow: bool,
}

impl MapWords {
    /// Reads a stored value (the exact-table value words).
    #[inline]
    pub fn read(w: &crate::table::exact::Value) -> MapWords {
        let b = |i: usize| w[i].to_le_bytes();
        let (w0, w1, w2, w3, w4, w5, w6) = (b(0), b(1), b(2), b(3), b(4), b(5), b(6));
        let flags = u16::from_le_bytes([w5[2], w5[3]]);
        MapWords {
            substrate_ip: [
                w0[0], w0[1], w0[2], w0[3], w1[0], w1[1], w1[2], w1[3], w2[0], w2[1], w2[2], w2[3],
                w3[0], w3[1], w3[2], w3[3],
            ],
            substrate_mac: [w4[0], w4[1], w4[2], w4[3], w5[0], w5[1]],
            local_vport: (flags & FLAG_LOCAL != 0).then(|| u16::from_le_bytes([w6[0], w6[1]])),
            shadow: flags & FLAG_SHADOW != 0,
        }
    }
}

impl MapValue {
    /// Parses the value words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<MapValue, LayoutError> {
        let flags = get_u16(b, 22);
        if flags & !(FLAG_LOCAL | FLAG_SHADOW) != 0 {
            return Err(LayoutError::BadEnum {
                field: "map flags",
                value: flags as u32,
            });
        }
        let vport = get_u16(b, 24);
        let local_vport = if flags & FLAG_LOCAL != 0 {
            if vport as usize >= crate::NUM_VPORTS {
                return Err(LayoutError::VportOutOfRange(vport));
            }
            Some(vport)
        } else {
            check_reserved(b, 24..26)?;
            None
        };
        check_reserved(b, 26..32)?;
        Ok(MapValue {
            substrate_ip: ip_from_bytes(get_16(b, 0)),
            substrate_mac: get_mac(b, 16),
            local_vport,
            shadow: flags & FLAG_SHADOW != 0,
        })
    }

    /// Writes the value words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        b[0..16].copy_from_slice(&ip_to_bytes(self.substrate_ip));
        b[16..22].copy_from_slice(&self.substrate_mac.0);
        let mut flags = 0;
        if let Some(v) = self.local_vport {
            flags |= FLAG_LOCAL;
            put_u16(b, 24, v);
        }
        if self.shadow {
            flags |= FLAG_SHADOW;
        }
        put_u16(b, 22, flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let k = MapKey {
            vni: 0x010203,
            ip: "192.168.1.7".parse().expect("literal"),
        };
        let mut kb = [0u8; KEY_LEN];
        k.emit(&mut kb);
        assert_eq!(&kb[0..4], &[3, 2, 1, 0]);
        assert_eq!(&kb[14..20], &[0xFF, 0xFF, 192, 168, 1, 7]);
        assert_eq!(MapKey::parse(&kb), Ok(k));
        let words: [u32; 6] = crate::layout::bytes_to_words(&kb);
        assert_eq!(key_words(k.vni, &ip_to_bytes(k.ip)), words);

        let v = MapValue {
            substrate_ip: "10.0.0.2".parse().expect("literal"),
            substrate_mac: Mac([2, 0, 0, 0, 0, 2]),
            local_vport: Some(5),
            shadow: true,
        };
        let mut vb = [0u8; VALUE_LEN];
        v.emit(&mut vb);
        assert_eq!(&vb[12..16], &[10, 0, 0, 2]);
        assert_eq!(&vb[16..22], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&vb[22..26], &[3, 0, 5, 0]);
        assert_eq!(MapValue::parse(&vb), Ok(v));
        let words: [u32; 8] = crate::layout::bytes_to_words(&vb);
        let raw = MapWords::read(&words);
        assert_eq!(raw.substrate_ip, ip_to_bytes(v.substrate_ip));
        assert_eq!(raw.substrate_mac, v.substrate_mac.0);
        assert_eq!(raw.local_vport, v.local_vport);
        assert_eq!(raw.shadow, v.shadow);

        let remote = MapValue {
            local_vport: None,
            shadow: false,
            ..v
        };
        remote.emit(&mut vb);
        vb[24] = 1; // a vport on a remote entry is meaningless
        assert_eq!(
            MapValue::parse(&vb),
            Err(LayoutError::ReservedNotZero { offset: 24 })
        );
    }
}
