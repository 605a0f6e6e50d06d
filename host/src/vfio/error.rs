//! Errors of the VFIO backend. Each names the device, file or node at fault and, where the
//! fix is on the machine's side, what to do.

use std::{fmt, io, path::PathBuf};

use super::PciAddress;

/// A member of an IOMMU group that keeps the group from being given to user space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// Its address.
    pub address: PciAddress,
    /// The host driver bound to it.
    pub driver: String,
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (bound to {})", self.address, self.driver)
    }
}

fn list(members: &[GroupMember]) -> String {
    members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What went wrong finding, binding or opening a device through VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The text is not a PCI address.
    #[error("{input:?} is not a PCI address: {reason}")]
    BadAddress {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The sysfs root has no PCI bus.
    #[error("no PCI bus in sysfs: {} does not exist (is sysfs mounted there?)", path.display())]
    NoPciBus {
        /// The directory looked for.
        path: PathBuf,
    },
    /// No function at that address.
    #[error("no PCI function {address}: {} does not exist (`shadowctl device list --all` shows the functions there are)", path.display())]
    NoSuchDevice {
        /// The address asked for.
        address: PciAddress,
        /// The sysfs directory looked for.
        path: PathBuf,
    },
    /// The function is not a shadownet NIC.
    #[error(
        "{address} is not a shadownet NIC: its ids are {vendor:04x}:{device:04x}, a shadownet NIC is {:04x}:{:04x}",
        shadownet_hw::pci::VENDOR_ID,
        shadownet_hw::pci::DEVICE_ID
    )]
    NotShadownet {
        /// The function.
        address: PciAddress,
        /// Its vendor id.
        vendor: u16,
        /// Its device id.
        device: u16,
    },
    /// The function has no IOMMU group: the IOMMU is off or absent.
    #[error(
        "{address} has no IOMMU group ({} is missing): the IOMMU is off or absent; enable it in firmware (VT-d / AMD-Vi) and boot with intel_iommu=on or amd_iommu=on",
        path.display()
    )]
    NoIommuGroup {
        /// The function.
        address: PciAddress,
        /// The `iommu_group` link looked for.
        path: PathBuf,
    },
    /// The function is not bound to vfio-pci.
    #[error(
        "{address} is {}, not to vfio-pci: run `shadowctl device bind {address}` first",
        match driver { Some(d) => format!("bound to {d}"), None => "bound to no driver".to_string() }
    )]
    NotBoundToVfio {
        /// The function.
        address: PciAddress,
        /// The driver it is bound to, if any.
        driver: Option<String>,
    },
    /// A VFIO device node is missing.
    #[error("{} does not exist: {hint}", path.display())]
    MissingNode {
        /// The node looked for.
        path: PathBuf,
        /// What makes it appear.
        hint: String,
    },
    /// A VFIO device node cannot be opened for lack of permission.
    #[error("{} cannot be opened: permission denied; run as root or give this user access to it (udev rule or chown)", path.display())]
    Access {
        /// The node.
        path: PathBuf,
    },
    /// A driver the operation needs is not loaded.
    #[error("the {driver} driver is not loaded ({} does not exist): run `modprobe {driver}`", path.display())]
    DriverNotLoaded {
        /// The driver.
        driver: String,
        /// Its sysfs directory.
        path: PathBuf,
    },
    /// Another member of the IOMMU group is bound to a host driver.
    #[error(
        "IOMMU group {group} of {address} is not wholly ours: {} must be unbound from {} first (every device of a group goes to user space together)",
        list(members),
        if members.len() == 1 { "its driver" } else { "their drivers" }
    )]
    GroupNotViable {
        /// The function asked for.
        address: PciAddress,
        /// Its IOMMU group.
        group: u32,
        /// The members held by host drivers.
        members: Vec<GroupMember>,
    },
    /// The kernel says the group is not viable although sysfs showed no host driver in it.
    #[error(
        "IOMMU group {group} of {address} is not viable (VFIO_GROUP_GET_STATUS): a member of the group is still held by a host driver"
    )]
    KernelGroupNotViable {
        /// The function.
        address: PciAddress,
        /// Its IOMMU group.
        group: u32,
    },
    /// vfio-pci did not take the function after a bind.
    #[error(
        "vfio-pci did not take {address}: after drivers_probe it is {} (see the kernel log: dmesg | tail)",
        match driver { Some(d) => format!("bound to {d}"), None => "bound to no driver".to_string() }
    )]
    NotClaimed {
        /// The function.
        address: PciAddress,
        /// The driver it is bound to now.
        driver: Option<String>,
    },
    /// A sysfs attribute could not be read or written.
    #[error("{}: {source}", path.display())]
    Sysfs {
        /// The attribute.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A sysfs attribute holds something unexpected.
    #[error("{}: {value:?} is not {expected}", path.display())]
    BadAttribute {
        /// The attribute.
        path: PathBuf,
        /// What it holds.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A VFIO ioctl failed.
    #[error("{device}: {op} failed: {source}")]
    Ioctl {
        /// The function.
        device: PciAddress,
        /// The operation.
        op: &'static str,
        /// The kernel's (or the fake's) error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A region cannot be mapped as the driver needs.
    #[error("{device}: region {index} cannot be mapped: {reason}")]
    Region {
        /// The function.
        device: PciAddress,
        /// The VFIO region index (0 = BAR0).
        index: u32,
        /// Why.
        reason: String,
    },
    /// A memory mapping failed.
    #[error("{device}: mapping {what}: {source}")]
    Map {
        /// The function.
        device: PciAddress,
        /// What was being mapped.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A DMA buffer of this size cannot be made.
    #[error("DMA buffer of {size} bytes: size must be above 0 and at most {max} bytes")]
    DmaSize {
        /// Size asked for.
        size: usize,
        /// Largest size accepted.
        max: u64,
    },
    /// The IOVA window has no free range large enough.
    #[error(
        "IOVA space exhausted: no free range of {requested:#x} bytes in {start:#x}..{end:#x} (largest free range {largest_free:#x} bytes); free DMA buffers or widen the window"
    )]
    IovaExhausted {
        /// Bytes asked for (page-rounded).
        requested: u64,
        /// Start of the window.
        start: u64,
        /// End of the window (exclusive).
        end: u64,
        /// Largest free range.
        largest_free: u64,
    },
    /// An access outside a DMA buffer.
    #[error("DMA buffer access at offset {offset:#x} of {len} bytes is outside its {size} bytes")]
    DmaBounds {
        /// Offset asked for.
        offset: usize,
        /// Length asked for.
        len: usize,
        /// Buffer size.
        size: usize,
    },
    /// More MSI-X vectors asked for than the function has.
    #[error("{device}: {requested} MSI-X vectors asked for, the function has {available}")]
    MsixVectors {
        /// The function.
        device: PciAddress,
        /// Vectors asked for.
        requested: u32,
        /// Vectors it has.
        available: u32,
    },
    /// An eventfd could not be made.
    #[error("creating an eventfd for MSI-X: {0}")]
    EventFd(io::Error),
    /// Neither VFIO nor sysfs can reset the function.
    #[error("{address} cannot be reset: VFIO reports no reset method and {} does not exist", path.display())]
    NoReset {
        /// The function.
        address: PciAddress,
        /// The sysfs `reset` attribute looked for.
        path: PathBuf,
    },
}
