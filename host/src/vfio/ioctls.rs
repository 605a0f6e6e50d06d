//! Every VFIO ioctl of the crate, behind two small traits so a fake
//! ([`super::fake::FakeVfio`]) can stand in for the kernel in tests.
//!
//! The kernel side ([`KernelVfio`]) goes through rust-vmm's `vfio-ioctls` (container, group,
//! device, region and IRQ info, MSI-X, DMA map/unmap) and `vfio-bindings`. Two ioctls are
//! issued here directly because `vfio-ioctls` hides their outcome: `VFIO_DEVICE_GET_INFO`
//! (whether the device supports `VFIO_DEVICE_RESET`; the crate keeps the flags private)
//! and `VFIO_DEVICE_RESET` (the crate's `reset()` discards the result).

use std::{
    os::fd::{AsRawFd, BorrowedFd},
    path::Path,
    sync::Arc,
};

use memmap2::MmapRaw;
use vfio_bindings::bindings::vfio::{
    VFIO_BASE, VFIO_DEVICE_FLAGS_RESET, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, VFIO_TYPE, vfio_device_info,
};
use vfio_ioctls::{VfioContainer, VfioRegionInfoCap};
use vmm_sys_util::{eventfd::EventFd, ioctl::ioctl_with_mut_ref};

use super::{PciAddress, VfioError};

/// A VFIO region as the device describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Offset of the region in the device fd (what `mmap` takes).
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// The region can be mapped.
    pub mmap: bool,
    /// The region can be read.
    pub read: bool,
    /// The region can be written.
    pub write: bool,
    /// When only parts of the region can be mapped: those parts (offset, size).
    pub sparse: Option<Vec<(u64, u64)>>,
}

/// What a reset through VFIO did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The device was reset (`VFIO_DEVICE_RESET`).
    Done,
    /// The device offers no reset through VFIO.
    Unsupported,
}

/// Opens devices through VFIO.
pub trait VfioOps: Send + Sync {
    /// Opens the container and the function's group, attaches the group to the container
    /// (type-1 IOMMU), and gets the device fd. `sysfs_dir` is the function's sysfs
    /// directory, `group` its IOMMU group.
    fn open(
        &self,
        address: PciAddress,
        sysfs_dir: &Path,
        group: u32,
    ) -> Result<Arc<dyn VfioHandle>, VfioError>;
}

/// An open VFIO device and its container.
pub trait VfioHandle: Send + Sync {
    /// Region `index` (VFIO's PCI region indexes: 0-5 are BARs).
    fn region(&self, index: u32) -> Result<RegionInfo, VfioError>;
    /// The device fd, for mapping regions with memmap2.
    fn device_fd(&self) -> BorrowedFd<'_>;
    /// Maps `mem` for the device at `iova` (read and write).
    ///
    /// Safe because the memory is an [`MmapRaw`], which hands out raw pointers only, never
    /// references: the device writing into it at any time breaks no aliasing rule. The
    /// caller keeps `mem` mapped until [`VfioHandle::dma_unmap`] succeeds.
    fn dma_map(&self, iova: u64, mem: &MmapRaw) -> Result<(), VfioError>;
    /// Removes the mapping made at `iova` of `size` bytes.
    fn dma_unmap(&self, iova: u64, size: u64) -> Result<(), VfioError>;
    /// Number of MSI-X vectors.
    fn msix_count(&self) -> u32;
    /// Routes MSI-X vector `i` to `fds[i]`.
    fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), VfioError>;
    /// Disables MSI-X.
    fn disable_msix(&self) -> Result<(), VfioError>;
    /// Resets the function through VFIO if it can.
    fn reset(&self) -> Result<ResetOutcome, VfioError>;
}

/// The kernel's VFIO (`/dev/vfio`), through `vfio-ioctls`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelVfio;

struct KernelHandle {
    address: PciAddress,
    container: Arc<VfioContainer>,
    device: vfio_ioctls::VfioDevice,
    flags: u32,
}

fn ioctl_err(
    device: PciAddress,
    op: &'static str,
) -> impl FnOnce(vfio_ioctls::VfioError) -> VfioError {
    move |e| VfioError::Ioctl {
        device,
        op,
        source: Box::new(e),
    }
}

fn open_err(address: PciAddress, group: u32, e: vfio_ioctls::VfioError) -> VfioError {
    use vfio_ioctls::VfioError as E;
    match e {
        E::OpenContainer(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            VfioError::Access {
                path: "/dev/vfio/vfio".into(),
            }
        }
        E::OpenGroup(io, _) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            VfioError::Access {
                path: Path::new("/dev/vfio").join(group.to_string()),
            }
        }
        E::GroupViable => VfioError::KernelGroupNotViable { address, group },
        other => ioctl_err(address, "opening the device through VFIO")(other),
    }
}

/// Request numbers of the ioctls issued here directly (`<linux/vfio.h>`).
mod nr {
    use super::{VFIO_BASE, VFIO_TYPE};
    use vmm_sys_util::ioctl_io_nr;

    ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
    ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);
}

/// `VFIO_DEVICE_GET_INFO`'s flags.
fn device_flags(address: PciAddress, device: &vfio_ioctls::VfioDevice) -> Result<u32, VfioError> {
    let mut info = vfio_device_info {
        argsz: std::mem::size_of::<vfio_device_info>() as u32,
        ..Default::default()
    };
    // SAFETY: `device` is an open VFIO device fd; the kernel writes at most `argsz` bytes
    // into `info`, which is a live, correctly sized `vfio_device_info`; the return value is
    // checked.
    let ret = unsafe { ioctl_with_mut_ref(device, nr::VFIO_DEVICE_GET_INFO(), &mut info) };
    if ret < 0 {
        return Err(VfioError::Ioctl {
            device: address,
            op: "VFIO_DEVICE_GET_INFO",
            source: Box::new(std::io::Error::last_os_error()),
        });
    }
    Ok(info.flags)
}

impl VfioOps for KernelVfio {
    fn open(
        &self,
        address: PciAddress,
        sysfs_dir: &Path,
        group: u32,
    ) -> Result<Arc<dyn VfioHandle>, VfioError> {
        let container =
            Arc::new(VfioContainer::new(None).map_err(|e| open_err(address, group, e))?);
        let device = vfio_ioctls::VfioDevice::new(sysfs_dir, container.clone(), false)
            .map_err(|e| open_err(address, group, e))?;
        let flags = device_flags(address, &device)?;
        tracing::debug!(%address, group, flags, "VFIO device open");
        Ok(Arc::new(KernelHandle {
            address,
            container,
            device,
            flags,
        }))
    }
}

impl VfioHandle for KernelHandle {
    fn region(&self, index: u32) -> Result<RegionInfo, VfioError> {
        let flags = self.device.get_region_flags(index);
        let size = self.device.get_region_size(index);
        if flags == 0 && size == 0 {
            return Err(VfioError::Region {
                device: self.address,
                index,
                reason: "the device has no such region".to_string(),
            });
        }
        let sparse = self
            .device
            .get_region_caps(index)
            .into_iter()
            .find_map(|cap| match cap {
                VfioRegionInfoCap::SparseMmap(s) => {
                    Some(s.areas.iter().map(|a| (a.offset, a.size)).collect())
                }
                _ => None,
            });
        Ok(RegionInfo {
            offset: self.device.get_region_offset(index),
            size,
            mmap: flags & VFIO_REGION_INFO_FLAG_MMAP != 0,
            read: flags & VFIO_REGION_INFO_FLAG_READ != 0,
            write: flags & VFIO_REGION_INFO_FLAG_WRITE != 0,
            sparse,
        })
    }

    fn device_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to `self.device`, which stays open at least as long as the
        // borrow of `self` the returned BorrowedFd is tied to.
        unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) }
    }

    fn dma_map(&self, iova: u64, mem: &MmapRaw) -> Result<(), VfioError> {
        // SAFETY: vfio-ioctls requires that, until the range is unmapped, the memory is only
        // reached through raw pointers (volatile/atomic accesses, system calls): `mem` is an
        // MmapRaw, which never hands out references, and DmaRegion (its only owner) reaches it
        // through raw pointers only and unmaps it from the IOMMU before dropping it.
        unsafe {
            self.container
                .vfio_dma_map(iova, mem.len(), mem.as_mut_ptr())
                .map_err(ioctl_err(self.address, "VFIO_IOMMU_MAP_DMA"))
        }
    }

    fn dma_unmap(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        let size = usize::try_from(size).map_err(|_| VfioError::Ioctl {
            device: self.address,
            op: "VFIO_IOMMU_UNMAP_DMA",
            source: "size does not fit in usize".into(),
        })?;
        self.container
            .vfio_dma_unmap(iova, size)
            .map_err(ioctl_err(self.address, "VFIO_IOMMU_UNMAP_DMA"))
    }

    fn msix_count(&self) -> u32 {
        self.device
            .get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX)
            .map_or(0, |i| i.count)
    }

    fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), VfioError> {
        self.device.enable_msix(fds.to_vec()).map_err(ioctl_err(
            self.address,
            "VFIO_DEVICE_SET_IRQS (MSI-X enable)",
        ))
    }

    fn disable_msix(&self) -> Result<(), VfioError> {
        self.device.disable_msix().map_err(ioctl_err(
            self.address,
            "VFIO_DEVICE_SET_IRQS (MSI-X disable)",
        ))
    }

    fn reset(&self) -> Result<ResetOutcome, VfioError> {
        if self.flags & VFIO_DEVICE_FLAGS_RESET == 0 {
            return Ok(ResetOutcome::Unsupported);
        }
        // SAFETY: `self.device` is an open VFIO device fd; VFIO_DEVICE_RESET takes no
        // argument; the return value is checked.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl(&self.device, nr::VFIO_DEVICE_RESET()) };
        if ret < 0 {
            return Err(VfioError::Ioctl {
                device: self.address,
                op: "VFIO_DEVICE_RESET",
                source: Box::new(std::io::Error::last_os_error()),
            });
        }
        Ok(ResetOutcome::Done)
    }
}
