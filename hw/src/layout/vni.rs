//! Virtual network (table `VNI`, exact match). Key in `KEY`: bytes 0..4 VNI (u32 LE), 4..8
//! reserved. Value in `VALUE`:
//!
//! | bytes | field                                                                    |
//! |-------|--------------------------------------------------------------------------|
//! | 0..4  | flags, u32 LE: 0x1 shadow network, 0x2 map miss takes the standard path  |
//! |       | (to the PF) instead of a drop, 0x4 ACL default deny toward VMs, 0x8 ACL  |
//! |       | default deny from VMs                                                    |
//! | 4..8  | production VNI this network shadows (shadow networks only), u32 LE       |
//!
//! A shadow network's traffic can only reach destinations marked shadow in the map: the NIC
//! drops anything else (`SHADOW_ISOLATION`), so nothing from a shadow reaches production.

use super::{LayoutError, check_reserved, check_vni, get_u32, put_u32};

/// Bytes of the key words.
pub const KEY_LEN: usize = 8;
/// Bytes of the value words.
pub const VALUE_LEN: usize = 8;

const FLAG_SHADOW: u32 = 0x1;
const FLAG_MISS_TO_HOST: u32 = 0x2;
const FLAG_DENY_TO_VM: u32 = 0x4;
const FLAG_DENY_FROM_VM: u32 = 0x8;
const FLAGS_DEFINED: u32 = 0xF;

/// Key of the VNI table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VniKey {
    /// The VNI.
    pub vni: u32,
}

impl VniKey {
    /// Parses the key words.
    pub fn parse(b: &[u8; KEY_LEN]) -> Result<VniKey, LayoutError> {
        check_reserved(b, 4..8)?;
        Ok(VniKey {
            vni: check_vni(get_u32(b, 0))?,
        })
    }

    /// Writes the key words.
    pub fn emit(&self, b: &mut [u8; KEY_LEN]) {
        *b = [0; KEY_LEN];
        put_u32(b, 0, self.vni);
    }
}

/// The exact-table key words of a VNI, as [`VniKey::emit`] lays them out.
#[inline]
pub fn key_words(vni: u32) -> crate::table::exact::Key {
    [vni, 0, 0, 0, 0, 0]
}

impl VniEntry {
    /// Reads a stored value (the exact-table value words; validated when written).
    #[inline]
    pub fn read(w: &crate::table::exact::Value) -> VniEntry {
        let flags = w[0];
        let shadow = flags & FLAG_SHADOW != 0;
        VniEntry {
            shadow,
            miss_to_host: flags & FLAG_MISS_TO_HOST != 0,
            default_deny_to_vm: flags & FLAG_DENY_TO_VM != 0,
            default_deny_from_vm: flags & FLAG_DENY_FROM_VM != 0,
            production_vni: shadow.then_some(w[1]),
        }
    }
}

/// Settings of one virtual network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VniEntry {
    /// This network is a shadow: its traffic stays inside shadow destinations.
    pub shadow: bool,
    /// A destination missing from the map takes the standard path (PF) instead of a drop.
    pub miss_to_host: bool,
    /// Packets toward VMs that match no ACL rule are dropped (else allowed).
    pub default_deny_to_vm: bool,
    /// Packets from VMs that match no ACL rule are dropped (else allowed).
    pub default_deny_from_vm: bool,
    /// For a shadow: the production VNI it shadows.
    pub production_vni: Option<u32>,
}

impl VniEntry {
    /// Parses the value words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<VniEntry, LayoutError> {
        let flags = get_u32(b, 0);
        if flags & !FLAGS_DEFINED != 0 {
            return Err(LayoutError::BadEnum {
                field: "vni flags",
                value: flags,
            });
        }
        let shadow = flags & FLAG_SHADOW != 0;
        let production = check_vni(get_u32(b, 4))?;
        let production_vni = match (shadow, production) {
            (true, v) => Some(v),
            (false, 0) => None,
            (false, _) => return Err(LayoutError::ReservedNotZero { offset: 4 }),
        };
        Ok(VniEntry {
            shadow,
            miss_to_host: flags & FLAG_MISS_TO_HOST != 0,
            default_deny_to_vm: flags & FLAG_DENY_TO_VM != 0,
            default_deny_from_vm: flags & FLAG_DENY_FROM_VM != 0,
            production_vni,
        })
    }

    /// Writes the value words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        let mut flags = 0;
        for (on, bit) in [
            (self.shadow, FLAG_SHADOW),
            (self.miss_to_host, FLAG_MISS_TO_HOST),
            (self.default_deny_to_vm, FLAG_DENY_TO_VM),
            (self.default_deny_from_vm, FLAG_DENY_FROM_VM),
        ] {
            if on {
                flags |= bit;
            }
        }
        put_u32(b, 0, flags);
        put_u32(b, 4, self.production_vni.unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let e = VniEntry {
            shadow: true,
            miss_to_host: false,
            default_deny_to_vm: true,
            default_deny_from_vm: false,
            production_vni: Some(5001),
        };
        let mut b = [0u8; VALUE_LEN];
        e.emit(&mut b);
        assert_eq!(b, [0x5, 0, 0, 0, 0x89, 0x13, 0, 0]);
        assert_eq!(VniEntry::parse(&b), Ok(e));
        assert_eq!(VniEntry::read(&[0x5, 5001, 0, 0, 0, 0, 0, 0]), e);
        let k = VniKey { vni: 9 };
        let mut kb = [0u8; KEY_LEN];
        k.emit(&mut kb);
        assert_eq!(kb, [9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(VniKey::parse(&kb), Ok(k));
        b[0] = 0x15;
        assert!(matches!(
            VniEntry::parse(&b),
            Err(LayoutError::BadEnum { .. })
        ));
    }
}
