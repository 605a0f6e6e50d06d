//! The NIC's PCI identity: what the host matches on when it looks for shadownet NICs.
//!
//! **Provisional.** shadownet has no PCI-SIG vendor id yet. Until one is assigned the
//! prototypes (FPGA bitstreams, and the simulator when it poses as a PCI function) use
//! vendor `0x1234`, which the PCI-SIG has never assigned to a company and which is the
//! customary vendor id of prototypes and emulated devices (QEMU's own display device uses it),
//! with a device id of our own. Both numbers will change when a vendor id is assigned; the
//! host matches on these constants only, so the change is made here and nowhere else.
//!
//! BAR0 carries the register map ([`crate::BAR_SIZE`] bytes, the SVD's `ID.BAR_SIZE`).
//! The MSI-X table and PBA are placed in BAR2, never in BAR0, so that VFIO lets the host map
//! BAR0 whole (VFIO refuses to map the pages holding the MSI-X table).

/// PCI vendor id (provisional, see the module documentation).
pub const VENDOR_ID: u16 = 0x1234;

/// PCI device id of the physical function (provisional). "SH" in ASCII.
pub const DEVICE_ID: u16 = 0x5348;

/// PCI class code (class, subclass, programming interface): network controller, Ethernet.
pub const CLASS: u32 = 0x02_00_00;

/// Size of BAR0 in bytes: the register map.
pub const BAR0_SIZE: u64 = crate::BAR_SIZE as u64;

/// The BAR that holds the MSI-X table and PBA.
pub const MSIX_BAR: u8 = 2;

/// Number of MSI-X vectors the function offers.
pub const MSIX_VECTORS: u16 = 16;

// PCI BARs are naturally aligned powers of two, and a BAR must be at least a page to be mapped.
const _: () = assert!(BAR0_SIZE.is_power_of_two() && BAR0_SIZE >= 4096);
// The MSI-X table must not sit in BAR0 (see the module documentation).
const _: () = assert!(MSIX_BAR != 0 && MSIX_BAR < 6);

/// Whether a function with these ids is a shadownet NIC.
pub const fn is_shadownet(vendor: u16, device: u16) -> bool {
    vendor == VENDOR_ID && device == DEVICE_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar0_is_the_svd_bar_size() {
        use crate::regs::generic::Resettable;
        assert_eq!(
            BAR0_SIZE,
            <crate::regs::id::bar_size::BarSizeSpec as Resettable>::RESET_VALUE as u64
        );
    }

    #[test]
    fn ids_match_only_ours() {
        assert!(is_shadownet(0x1234, 0x5348));
        assert!(!is_shadownet(0x1234, 0x1111));
        assert!(!is_shadownet(0x8086, 0x5348));
        assert_eq!(CLASS >> 16, 0x02, "network controller");
    }
}
