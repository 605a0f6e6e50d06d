//! VF port binding (table `VPORT`, indexed by port number), in `VALUE`:
//!
//! | bytes  | field                                  |
//! |--------|----------------------------------------|
//! | 0..4   | VNI of the VM's network, u32 LE        |
//! | 4..10  | MAC address of the VM                  |
//! | 10..12 | flags, u16 LE: 0x0001 enabled          |
//! | 12..16 | reserved (0)                           |
//!
//! A frame received on a VF whose slot is empty or not enabled is dropped (`VPORT_DISABLED`).

use super::{
    LayoutError, Mac, check_reserved, check_vni, get_mac, get_u16, get_u32, put_u16, put_u32,
};

/// Bytes of the value words.
pub const VALUE_LEN: usize = 16;

mod field {
    pub const VNI: usize = 0;
    pub const MAC: core::ops::Range<usize> = 4..10;
    pub const FLAGS: usize = 10;
}

const FLAG_ENABLED: u16 = 0x0001;

/// Binding of a VF port to a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VportEntry {
    /// VNI of the VM's virtual network.
    pub vni: u32,
    /// The VM's MAC address.
    pub mac: Mac,
    /// Whether the port forwards traffic.
    pub enabled: bool,
}

impl VportEntry {
    /// Parses the value words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<VportEntry, LayoutError> {
        let flags = get_u16(b, field::FLAGS);
        if flags & !FLAG_ENABLED != 0 {
            return Err(LayoutError::BadEnum {
                field: "vport flags",
                value: flags as u32,
            });
        }
        check_reserved(b, 12..16)?;
        Ok(VportEntry {
            vni: check_vni(get_u32(b, field::VNI))?,
            mac: get_mac(b, field::MAC.start),
            enabled: flags & FLAG_ENABLED != 0,
        })
    }

    /// Writes the value words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        put_u32(b, field::VNI, self.vni);
        b[field::MAC].copy_from_slice(&self.mac.0);
        put_u16(b, field::FLAGS, if self.enabled { FLAG_ENABLED } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let e = VportEntry {
            vni: 0x123456,
            mac: Mac([2, 0, 0, 0, 0, 9]),
            enabled: true,
        };
        let mut b = [0u8; VALUE_LEN];
        e.emit(&mut b);
        assert_eq!(b, [0x56, 0x34, 0x12, 0, 2, 0, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0]);
        assert_eq!(VportEntry::parse(&b), Ok(e));
        b[3] = 1;
        assert_eq!(
            VportEntry::parse(&b),
            Err(LayoutError::VniOutOfRange(0x0112_3456))
        );
    }
}
