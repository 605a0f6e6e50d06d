//! Fakes of sysfs and of the VFIO ioctl layer, so the backend runs in tests on machines
//! without the device, the IOMMU or `/dev/vfio`.
//!
//! [`FakeSysfs`] builds a sysfs tree in a directory and emulates what the kernel does on the
//! writes [`super::bind`] makes (driver_override, unbind, drivers_probe). [`FakeVfio`] is a
//! [`VfioOps`] whose devices have BAR0 backed by a file the test provides (a plain file to
//! inspect, or the simulator's shared BAR file so the driver talks to the NIC model through
//! the VFIO code path); it keeps the DMA mappings, MSI-X eventfds and resets for the test to
//! check, and refuses what the kernel refuses (overlapping or unaligned DMA mappings,
//! unmapping what was not mapped).

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File},
    io,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::fs::symlink,
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use memmap2::MmapRaw;
use shadownet_hw::pci;
use vmm_sys_util::eventfd::EventFd;

use super::{
    PciAddress, RegionInfo, ResetOutcome, Sysfs, VfioError, VfioHandle, VfioOps, dma::PAGE,
    sysfs::WriteHook,
};

/// A PCI function to put in a [`FakeSysfs`].
#[derive(Clone, Debug)]
pub struct FakeFunction {
    /// Address.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code.
    pub class: u32,
    /// Driver bound.
    pub driver: Option<String>,
    /// IOMMU group (`None`: the IOMMU is off).
    pub iommu_group: Option<u32>,
    /// NUMA node (-1: unknown).
    pub numa_node: i32,
    /// BAR0 size (0: no BAR0).
    pub bar0_size: u64,
    /// Whether it has a sysfs `reset` attribute.
    pub reset: bool,
}

impl FakeFunction {
    /// A shadownet NIC, bound to nothing, without an IOMMU group.
    pub fn shadownet(address: PciAddress) -> FakeFunction {
        FakeFunction {
            address,
            vendor: pci::VENDOR_ID,
            device: pci::DEVICE_ID,
            class: pci::CLASS,
            driver: None,
            iommu_group: None,
            numa_node: 0,
            bar0_size: pci::BAR0_SIZE,
            reset: true,
        }
    }

    /// Another vendor's function.
    pub fn other(address: PciAddress, vendor: u16, device: u16, class: u32) -> FakeFunction {
        FakeFunction {
            vendor,
            device,
            class,
            bar0_size: 0x1000,
            numa_node: -1,
            ..FakeFunction::shadownet(address)
        }
    }

    /// Bound to `driver`.
    pub fn driver(mut self, driver: &str) -> FakeFunction {
        self.driver = Some(driver.to_string());
        self
    }

    /// In IOMMU group `group`.
    pub fn group(mut self, group: u32) -> FakeFunction {
        self.iommu_group = Some(group);
        self
    }
}

/// A fake sysfs tree in a directory.
#[derive(Clone, Debug)]
pub struct FakeSysfs {
    root: PathBuf,
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)
}

impl FakeSysfs {
    /// Creates the skeleton (`bus/pci/{devices,drivers,drivers_probe}`,
    /// `kernel/iommu_groups`) under `root`.
    pub fn create(root: &Path) -> io::Result<FakeSysfs> {
        fs::create_dir_all(root.join("bus/pci/devices"))?;
        fs::create_dir_all(root.join("bus/pci/drivers"))?;
        fs::create_dir_all(root.join("kernel/iommu_groups"))?;
        write(&root.join("bus/pci/drivers_probe"), "")?;
        Ok(FakeSysfs {
            root: root.to_path_buf(),
        })
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes driver `name` loaded.
    pub fn load_driver(&self, name: &str) -> io::Result<()> {
        let dir = self.root.join("bus/pci/drivers").join(name);
        fs::create_dir_all(&dir)?;
        for attr in ["bind", "unbind", "new_id"] {
            if !dir.join(attr).exists() {
                write(&dir.join(attr), "")?;
            }
        }
        Ok(())
    }

    /// Adds a function (loading its driver if needed).
    pub fn add(&self, f: &FakeFunction) -> io::Result<()> {
        let name = f.address.to_string();
        let dir = self.root.join("bus/pci/devices").join(&name);
        fs::create_dir_all(&dir)?;
        write(&dir.join("vendor"), &format!("{:#06x}\n", f.vendor))?;
        write(&dir.join("device"), &format!("{:#06x}\n", f.device))?;
        write(&dir.join("class"), &format!("{:#08x}\n", f.class))?;
        write(&dir.join("numa_node"), &format!("{}\n", f.numa_node))?;
        write(&dir.join("driver_override"), "(null)\n")?;
        if f.reset {
            write(&dir.join("reset"), "")?;
        }
        // Six BARs and the expansion ROM, as the kernel lists them.
        let base: u64 = 0x40_0000_0000 + (u64::from(f.address.bus) << 24);
        let mut resource = if f.bar0_size > 0 {
            format!(
                "{base:#018x} {:#018x} 0x0000000000140204\n",
                base + f.bar0_size - 1
            )
        } else {
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".to_string()
        };
        for _ in 0..6 {
            resource.push_str("0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
        }
        write(&dir.join("resource"), &resource)?;
        if let Some(d) = &f.driver {
            self.load_driver(d)?;
            symlink(format!("../../drivers/{d}"), dir.join("driver"))?;
        }
        if let Some(g) = f.iommu_group {
            let gdir = self
                .root
                .join("kernel/iommu_groups")
                .join(g.to_string())
                .join("devices");
            fs::create_dir_all(&gdir)?;
            symlink(
                format!("../../../../kernel/iommu_groups/{g}"),
                dir.join("iommu_group"),
            )?;
            symlink(
                format!("../../../../bus/pci/devices/{name}"),
                gdir.join(&name),
            )?;
        }
        Ok(())
    }

    /// Creates `dev/vfio/vfio` and `dev/vfio/N` for each group under the root and returns the
    /// `dev/vfio` directory, to stand for `/dev/vfio` in a [`super::VfioEnv`].
    pub fn dev_vfio(&self, groups: &[u32]) -> io::Result<PathBuf> {
        let dir = self.root.join("dev/vfio");
        fs::create_dir_all(&dir)?;
        write(&dir.join("vfio"), "")?;
        for g in groups {
            write(&dir.join(g.to_string()), "")?;
        }
        Ok(dir)
    }

    /// The tree as a [`Sysfs`] whose writes the fake kernel acts on.
    pub fn sysfs(&self) -> Sysfs {
        let root = self.root.clone();
        let hook: WriteHook = Arc::new(move |path, value| emulate(&root, path, value));
        Sysfs::at(&self.root).with_write_hook(hook)
    }
}

fn enodev(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what)
}

/// What the kernel does after a write to a PCI sysfs attribute.
fn emulate(root: &Path, path: &Path, value: &str) -> io::Result<()> {
    let devices = root.join("bus/pci/devices");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name {
        "unbind" => {
            // `path` is DRIVER_DIR/unbind (possibly through a device's driver link).
            let driver_dir = fs::canonicalize(path.parent().unwrap_or(root))?;
            let link = devices.join(value.trim()).join("driver");
            let bound = fs::canonicalize(&link).ok();
            if bound.as_deref() != Some(driver_dir.as_path()) {
                return Err(enodev(format!(
                    "{} is not bound to this driver",
                    value.trim()
                )));
            }
            fs::remove_file(link)
        }
        "drivers_probe" => {
            let dir = devices.join(value.trim());
            if !dir.exists() {
                return Err(enodev(format!("no device {}", value.trim())));
            }
            if dir.join("driver").exists() {
                return Ok(());
            }
            let wanted = fs::read_to_string(dir.join("driver_override"))?;
            let wanted = wanted.trim();
            if wanted.is_empty() || wanted == "(null)" {
                // No host driver of the fake knows the device: it stays unbound.
                return Ok(());
            }
            if root.join("bus/pci/drivers").join(wanted).exists() {
                symlink(format!("../../drivers/{wanted}"), dir.join("driver"))?;
            }
            Ok(())
        }
        "driver_override" if value.trim().is_empty() => fs::write(path, "(null)\n"),
        _ => Ok(()),
    }
}

/// A fake device behind [`FakeVfio`].
#[derive(Debug)]
pub struct FakeDevice {
    /// The file that backs the device fd; BAR0 is at `bar0_offset` in it.
    pub fd: File,
    /// Offset of BAR0 in `fd` (a multiple of the page size).
    pub bar0_offset: u64,
    /// Size VFIO reports for BAR0.
    pub bar0_size: u64,
    /// Whether BAR0 can be mapped.
    pub bar0_mmap: bool,
    /// Sparse-mmap areas of BAR0, if VFIO reports only parts mappable.
    pub bar0_sparse: Option<Vec<(u64, u64)>>,
    /// MSI-X vectors.
    pub msix: u32,
    /// Whether VFIO offers VFIO_DEVICE_RESET.
    pub vfio_reset: bool,
}

impl FakeDevice {
    /// A device whose BAR0 is `fd` from offset 0, `bar0_size` bytes, mappable, with
    /// [`pci::MSIX_VECTORS`] vectors and VFIO reset.
    pub fn new(fd: File, bar0_size: u64) -> FakeDevice {
        FakeDevice {
            fd,
            bar0_offset: 0,
            bar0_size,
            bar0_mmap: true,
            bar0_sparse: None,
            msix: u32::from(pci::MSIX_VECTORS),
            vfio_reset: true,
        }
    }
}

#[derive(Debug, Default)]
struct DeviceState {
    opens: u32,
    groups: Vec<u32>,
    dma: BTreeMap<u64, u64>,
    msix: Vec<EventFd>,
    resets: u32,
}

struct FakeEntry {
    device: FakeDevice,
    state: Mutex<DeviceState>,
}

/// A fake of the kernel's VFIO.
#[derive(Clone, Default)]
pub struct FakeVfio {
    devices: Arc<Mutex<HashMap<PciAddress, Arc<FakeEntry>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fake_err(device: PciAddress, op: &'static str, msg: String) -> VfioError {
    VfioError::Ioctl {
        device,
        op,
        source: msg.into(),
    }
}

impl FakeVfio {
    /// An empty fake.
    pub fn new() -> FakeVfio {
        FakeVfio::default()
    }

    /// Puts a device at `address`.
    pub fn add_device(&self, address: PciAddress, device: FakeDevice) {
        lock(&self.devices).insert(
            address,
            Arc::new(FakeEntry {
                device,
                state: Mutex::new(DeviceState::default()),
            }),
        );
    }

    fn entry(&self, address: PciAddress) -> Option<Arc<FakeEntry>> {
        lock(&self.devices).get(&address).cloned()
    }

    fn with<R>(&self, address: PciAddress, f: impl FnOnce(&DeviceState) -> R) -> Option<R> {
        self.entry(address).map(|e| f(&lock(&e.state)))
    }

    /// How often the device was opened, and the groups it was opened through.
    pub fn opens(&self, address: PciAddress) -> (u32, Vec<u32>) {
        self.with(address, |s| (s.opens, s.groups.clone()))
            .unwrap_or_default()
    }

    /// Current DMA mappings (iova, size), in IOVA order.
    pub fn dma_mappings(&self, address: PciAddress) -> Vec<(u64, u64)> {
        self.with(address, |s| s.dma.iter().map(|(&a, &l)| (a, l)).collect())
            .unwrap_or_default()
    }

    /// MSI-X vectors wired to eventfds.
    pub fn msix_enabled(&self, address: PciAddress) -> usize {
        self.with(address, |s| s.msix.len()).unwrap_or(0)
    }

    /// Raises MSI-X vector `vector` as the device would: signals the eventfd VFIO was given.
    pub fn fire_msix(&self, address: PciAddress, vector: usize) -> io::Result<()> {
        self.with(address, |s| match s.msix.get(vector) {
            Some(fd) => fd.write(1),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MSI-X vector {vector} is not wired"),
            )),
        })
        .unwrap_or_else(|| Err(enodev(format!("no fake device {address}"))))
    }

    /// VFIO resets done.
    pub fn resets(&self, address: PciAddress) -> u32 {
        self.with(address, |s| s.resets).unwrap_or(0)
    }
}

impl VfioOps for FakeVfio {
    fn open(
        &self,
        address: PciAddress,
        _sysfs_dir: &Path,
        group: u32,
    ) -> Result<Arc<dyn VfioHandle>, VfioError> {
        let entry = self.entry(address).ok_or_else(|| {
            fake_err(
                address,
                "VFIO_GROUP_GET_DEVICE_FD",
                "no such device in the group".to_string(),
            )
        })?;
        {
            let mut s = lock(&entry.state);
            s.opens += 1;
            s.groups.push(group);
        }
        Ok(Arc::new(FakeHandle { address, entry }))
    }
}

struct FakeHandle {
    address: PciAddress,
    entry: Arc<FakeEntry>,
}

impl VfioHandle for FakeHandle {
    fn region(&self, index: u32) -> Result<RegionInfo, VfioError> {
        let d = &self.entry.device;
        if index != 0 {
            return Err(VfioError::Region {
                device: self.address,
                index,
                reason: "the fake device has BAR0 only".to_string(),
            });
        }
        Ok(RegionInfo {
            offset: d.bar0_offset,
            size: d.bar0_size,
            mmap: d.bar0_mmap,
            read: true,
            write: true,
            sparse: d.bar0_sparse.clone(),
        })
    }

    fn device_fd(&self) -> BorrowedFd<'_> {
        self.entry.device.fd.as_fd()
    }

    fn dma_map(&self, iova: u64, mem: &MmapRaw) -> Result<(), VfioError> {
        let size = mem.len() as u64;
        let op = "VFIO_IOMMU_MAP_DMA";
        if !iova.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) || size == 0 {
            return Err(fake_err(
                self.address,
                op,
                format!("EINVAL: iova {iova:#x} size {size:#x} not page aligned"),
            ));
        }
        let mut s = lock(&self.entry.state);
        let overlaps = s
            .dma
            .range(..iova + size)
            .next_back()
            .is_some_and(|(&a, &l)| a + l > iova);
        if overlaps {
            return Err(fake_err(
                self.address,
                op,
                format!("EEXIST: {iova:#x}+{size:#x} overlaps a mapping"),
            ));
        }
        s.dma.insert(iova, size);
        Ok(())
    }

    fn dma_unmap(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut s = lock(&self.entry.state);
        match s.dma.get(&iova) {
            Some(&l) if l == size => {
                s.dma.remove(&iova);
                Ok(())
            }
            _ => Err(fake_err(
                self.address,
                "VFIO_IOMMU_UNMAP_DMA",
                format!("EINVAL: no mapping {iova:#x}+{size:#x}"),
            )),
        }
    }

    fn msix_count(&self) -> u32 {
        self.entry.device.msix
    }

    fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), VfioError> {
        let op = "VFIO_DEVICE_SET_IRQS (MSI-X enable)";
        if fds.len() > self.entry.device.msix as usize {
            return Err(fake_err(
                self.address,
                op,
                "EINVAL: too many vectors".to_string(),
            ));
        }
        let clones = fds
            .iter()
            .map(|fd| fd.try_clone())
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| fake_err(self.address, op, e.to_string()))?;
        lock(&self.entry.state).msix = clones;
        Ok(())
    }

    fn disable_msix(&self) -> Result<(), VfioError> {
        lock(&self.entry.state).msix.clear();
        Ok(())
    }

    fn reset(&self) -> Result<ResetOutcome, VfioError> {
        if !self.entry.device.vfio_reset {
            return Ok(ResetOutcome::Unsupported);
        }
        lock(&self.entry.state).resets += 1;
        Ok(ResetOutcome::Done)
    }
}
