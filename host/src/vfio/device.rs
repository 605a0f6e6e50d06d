//! A shadownet NIC opened through VFIO: BAR0 mapped with memmap2 from the device fd, the
//! driver's [`Device`] on top.

use std::{
    ops::Range,
    path::PathBuf,
    ptr::NonNull,
    sync::{Arc, Mutex},
};

use memmap2::{MmapOptions, MmapRaw};
use shadownet_hw::{BAR_SIZE, RegisterView, pci};

use super::{
    DmaRegion, IovaAllocator, KernelVfio, MsixVectors, PciAddress, PciFunction, ResetOutcome,
    Sysfs, VFIO_PCI, VfioError, VfioHandle, VfioOps, bind::check_group, dma::SharedIova,
};
use crate::driver::{Device, DmaBuffer, DriverError};

/// Where and how devices are opened: the sysfs tree, the VFIO device directory and the
/// ioctl layer. [`VfioEnv::system`] is the machine's; tests build one over fakes.
#[derive(Clone)]
pub struct VfioEnv {
    /// The sysfs tree.
    pub sysfs: Sysfs,
    /// The VFIO device directory (`/dev/vfio`).
    pub dev_vfio: PathBuf,
    /// The ioctl layer.
    pub ops: Arc<dyn VfioOps>,
    /// IOVAs handed to DMA buffers. The default, 4 GiB to 1 TiB, stays clear of the x86
    /// interrupt window below 4 GiB and within the 40-bit address width every IOMMU has.
    pub iova_window: Range<u64>,
}

impl VfioEnv {
    /// The machine's sysfs (`/sys`), `/dev/vfio` and the kernel's VFIO.
    pub fn system() -> VfioEnv {
        VfioEnv {
            sysfs: Sysfs::system(),
            dev_vfio: PathBuf::from("/dev/vfio"),
            ops: Arc::new(KernelVfio),
            iova_window: 1 << 32..1 << 40,
        }
    }
}

/// How a reset was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetMethod {
    /// `VFIO_DEVICE_RESET`.
    Vfio,
    /// A function-level reset through the sysfs `reset` attribute.
    SysfsReset,
}

/// A shadownet NIC opened through VFIO.
pub struct VfioDevice {
    function: PciFunction,
    sysfs: Sysfs,
    handle: Arc<dyn VfioHandle>,
    bar: MmapRaw,
    iova: SharedIova,
}

impl std::fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioDevice")
            .field("address", &self.function.address)
            .field("bar0_len", &self.bar.len())
            .finish()
    }
}

impl VfioDevice {
    /// Opens the shadownet NIC at `address` on this machine.
    pub fn open(address: PciAddress) -> Result<VfioDevice, VfioError> {
        VfioDevice::open_in(&VfioEnv::system(), address)
    }

    /// Opens the shadownet NIC at `address` in `env`.
    ///
    /// Checks, in order, each with an error that names what is missing: the function exists
    /// and is a shadownet NIC; it has an IOMMU group (the IOMMU is on); it is bound to
    /// vfio-pci; `/dev/vfio/vfio` exists (vfio is loaded); every other member of the group
    /// is bound to vfio-pci, pci-stub or nothing; `/dev/vfio/GROUP` exists. Then opens it
    /// through VFIO and maps BAR0 whole.
    pub fn open_in(env: &VfioEnv, address: PciAddress) -> Result<VfioDevice, VfioError> {
        let sysfs = &env.sysfs;
        let function = sysfs.function(address)?;
        if !function.ours {
            return Err(VfioError::NotShadownet {
                address,
                vendor: function.vendor,
                device: function.device,
            });
        }
        let group = function
            .iommu_group
            .ok_or_else(|| VfioError::NoIommuGroup {
                address,
                path: sysfs.device_dir(address).join("iommu_group"),
            })?;
        if function.driver.as_deref() != Some(VFIO_PCI) {
            return Err(VfioError::NotBoundToVfio {
                address,
                driver: function.driver.clone(),
            });
        }
        let container = env.dev_vfio.join("vfio");
        if !container.exists() {
            return Err(VfioError::MissingNode {
                path: container,
                hint: "the VFIO driver is not loaded: run `modprobe vfio-pci` (and boot with \
                       intel_iommu=on or amd_iommu=on so the IOMMU is on)"
                    .to_string(),
            });
        }
        check_group(sysfs, address, group, &function.group_peers)?;
        let group_node = env.dev_vfio.join(group.to_string());
        if !group_node.exists() {
            return Err(VfioError::MissingNode {
                path: group_node,
                hint: format!(
                    "{address} is bound to vfio-pci but the node of its IOMMU group {group} is \
                     missing: check that /dev is a devtmpfs (or udev is running) and the kernel \
                     log (dmesg) for vfio errors"
                ),
            });
        }

        let handle = env.ops.open(address, &sysfs.device_dir(address), group)?;
        let bar = map_bar0(address, handle.as_ref())?;
        tracing::info!(%address, group, bar0 = bar.len(), "opened through VFIO");
        Ok(VfioDevice {
            function,
            sysfs: sysfs.clone(),
            handle,
            bar,
            iova: Arc::new(Mutex::new(IovaAllocator::new(env.iova_window.clone()))),
        })
    }

    /// Its PCI address.
    pub fn address(&self) -> PciAddress {
        self.function.address
    }

    /// What sysfs said about it when it was opened.
    pub fn function(&self) -> &PciFunction {
        &self.function
    }

    /// Length of the BAR0 mapping.
    pub fn bar0_len(&self) -> usize {
        self.bar.len()
    }

    /// Allocates `size` bytes of DMA memory (rounded up to pages) mapped for the device.
    pub fn dma_alloc(&self, size: usize) -> Result<DmaRegion, VfioError> {
        DmaRegion::new(self.address(), size, self.handle.clone(), self.iova.clone())
    }

    /// Routes the first `count` MSI-X vectors to eventfds.
    pub fn enable_msix(&self, count: u32) -> Result<MsixVectors, VfioError> {
        MsixVectors::enable(self.address(), count, self.handle.clone())
    }

    /// Resets the function: `VFIO_DEVICE_RESET` when VFIO offers it, else a function-level
    /// reset through sysfs.
    pub fn reset(&self) -> Result<ResetMethod, VfioError> {
        match self.handle.reset()? {
            ResetOutcome::Done => Ok(ResetMethod::Vfio),
            ResetOutcome::Unsupported => {
                let path = self.sysfs.device_dir(self.address()).join("reset");
                if !path.exists() {
                    return Err(VfioError::NoReset {
                        address: self.address(),
                        path,
                    });
                }
                self.sysfs.write_attr(&path, "1")?;
                Ok(ResetMethod::SysfsReset)
            }
        }
    }
}

/// Maps BAR0 whole from the device fd.
fn map_bar0(address: PciAddress, handle: &dyn VfioHandle) -> Result<MmapRaw, VfioError> {
    let index = 0;
    let region = handle.region(index)?;
    let refuse = |reason: String| VfioError::Region {
        device: address,
        index,
        reason,
    };
    if !region.mmap || !region.read || !region.write {
        return Err(refuse(format!(
            "BAR0 must be readable, writable and mappable (read {}, write {}, mmap {})",
            region.read, region.write, region.mmap
        )));
    }
    if region.size < BAR_SIZE as u64 {
        return Err(refuse(format!(
            "BAR0 is {} bytes, the register map needs {} (is this the right bitstream?)",
            region.size,
            pci::BAR0_SIZE
        )));
    }
    if let Some(areas) = &region.sparse
        && !areas
            .iter()
            .any(|&(off, len)| off == 0 && len >= BAR_SIZE as u64)
    {
        return Err(refuse(format!(
            "only parts of BAR0 can be mapped ({areas:x?}): the MSI-X table must not sit in BAR0"
        )));
    }
    let fd = handle.device_fd();
    MmapOptions::new()
        .offset(region.offset)
        .len(BAR_SIZE)
        .map_raw(&fd)
        .map_err(|source| VfioError::Map {
            device: address,
            what: "BAR0",
            source,
        })
}

impl Device for VfioDevice {
    fn regs(&self) -> RegisterView<'_> {
        let base =
            NonNull::new(self.bar.as_mut_ptr()).expect("a successful mmap is never at address 0");
        // SAFETY: the mapping is BAR_SIZE bytes of BAR0 (checked when it was made), page
        // aligned, and lives as long as `self`; it is only reached through register views
        // (volatile accesses), never as a slice.
        unsafe { RegisterView::new(base, self.bar.len()) }
            .expect("BAR0 was mapped page aligned and BAR_SIZE long when the device was opened")
    }

    fn relax(&self) {
        // The hardware runs on its own: waiting is spinning.
        std::hint::spin_loop();
    }

    fn name(&self) -> String {
        self.function.address.to_string()
    }

    /// Host memory mapped for the device's IOMMU ([`VfioDevice::dma_alloc`]): the rings'
    /// memory on hardware. Unmapped when the buffer is dropped.
    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DriverError> {
        let region = self.dma_alloc(len).map_err(|source| DriverError::VfioDma {
            device: self.name(),
            source: Box::new(source),
        })?;
        Ok(Box::new(region))
    }
}

impl DmaBuffer for DmaRegion {
    fn iova(&self) -> u64 {
        DmaRegion::iova(self)
    }

    fn len(&self) -> usize {
        DmaRegion::len(self)
    }

    fn read_u32(&self, offset: usize) -> Option<u32> {
        DmaRegion::read_u32(self, offset).ok()
    }

    fn write_u32(&self, offset: usize, value: u32) -> Option<()> {
        DmaRegion::write_u32(self, offset, value).ok()
    }
}
