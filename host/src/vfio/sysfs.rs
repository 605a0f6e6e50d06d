//! PCI functions as sysfs shows them, under an injectable root (`/sys`, or a fake tree in
//! tests).
//!
//! Layout read (as the kernel lays it out):
//! `bus/pci/devices/ADDR/{vendor,device,class,numa_node,resource,driver_override,reset}`,
//! the links `ADDR/driver -> .../bus/pci/drivers/NAME` and
//! `ADDR/iommu_group -> .../kernel/iommu_groups/N`, and `kernel/iommu_groups/N/devices/*`.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;
use shadownet_hw::pci;

use super::{PciAddress, VfioError};

/// Called after each attribute write, with the attribute's path and the value written.
/// Only fakes set one: on a real sysfs the kernel acts on the write itself.
pub type WriteHook = Arc<dyn Fn(&Path, &str) -> io::Result<()> + Send + Sync>;

/// A sysfs tree.
#[derive(Clone)]
pub struct Sysfs {
    root: PathBuf,
    hook: Option<WriteHook>,
}

impl fmt::Debug for Sysfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysfs")
            .field("root", &self.root)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::system()
    }
}

/// A PCI function as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciFunction {
    /// Its address.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code (class, subclass, programming interface).
    pub class: u32,
    /// The driver bound to it.
    pub driver: Option<String>,
    /// Its IOMMU group; `None` when the IOMMU is off.
    pub iommu_group: Option<u32>,
    /// The other functions of its IOMMU group.
    pub group_peers: Vec<PciAddress>,
    /// Its NUMA node; `None` when the platform does not say.
    pub numa_node: Option<u32>,
    /// Size of BAR0; `None` when BAR0 is not implemented.
    pub bar0_size: Option<u64>,
    /// Whether it is a shadownet NIC (matched on [`shadownet_hw::pci`]'s ids).
    pub ours: bool,
}

impl PciFunction {
    /// Whether it is a PCI-to-PCI bridge (class 06:04). The kernel lets a group containing a
    /// bridge go to user space whatever drives the bridge.
    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == 0x0604
    }

    /// Whether its driver lets its IOMMU group be given to user space: vfio-pci, pci-stub,
    /// no driver, or any driver of a bridge (the kernel's own rule).
    pub fn allows_vfio_group(&self) -> bool {
        self.is_bridge()
            || match self.driver.as_deref() {
                None => true,
                Some(d) => d == super::VFIO_PCI || d == "pci-stub",
            }
    }
}

impl Sysfs {
    /// The machine's sysfs at `/sys`.
    pub fn system() -> Sysfs {
        Sysfs::at("/sys")
    }

    /// A sysfs tree at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs {
            root: root.into(),
            hook: None,
        }
    }

    /// The same tree with a hook run after each attribute write (see [`WriteHook`]).
    pub fn with_write_hook(mut self, hook: WriteHook) -> Sysfs {
        self.hook = Some(hook);
        self
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bus/pci/devices`.
    pub fn devices_dir(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// The directory of one function.
    pub fn device_dir(&self, address: PciAddress) -> PathBuf {
        self.devices_dir().join(address.to_string())
    }

    /// The directory of a PCI driver (exists when the driver is loaded).
    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(driver)
    }

    /// Every PCI function, in address order.
    pub fn scan(&self) -> Result<Vec<PciFunction>, VfioError> {
        let dir = self.devices_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VfioError::NoPciBus { path: dir });
            }
            Err(source) => return Err(VfioError::Sysfs { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| VfioError::Sysfs {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(address) = name.to_str().and_then(|n| n.parse::<PciAddress>().ok()) else {
                tracing::debug!(entry = ?name, "not a PCI address, skipped");
                continue;
            };
            out.push(self.function(address)?);
        }
        out.sort_by_key(|f| f.address);
        Ok(out)
    }

    /// One function.
    pub fn function(&self, address: PciAddress) -> Result<PciFunction, VfioError> {
        let dir = self.device_dir(address);
        if !dir.exists() {
            if !self.devices_dir().exists() {
                return Err(VfioError::NoPciBus {
                    path: self.devices_dir(),
                });
            }
            return Err(VfioError::NoSuchDevice { address, path: dir });
        }
        let vendor = hex_attr(&dir.join("vendor"), "a hexadecimal 16-bit vendor id")?;
        let device = hex_attr(&dir.join("device"), "a hexadecimal 16-bit device id")?;
        let class = hex_attr(&dir.join("class"), "a hexadecimal class code")?;
        let (vendor, device) = (
            u16::try_from(vendor).map_err(|_| bad(&dir.join("vendor"), vendor, "a 16-bit id"))?,
            u16::try_from(device).map_err(|_| bad(&dir.join("device"), device, "a 16-bit id"))?,
        );
        let class =
            u32::try_from(class).map_err(|_| bad(&dir.join("class"), class, "a 24-bit class"))?;
        let driver = link_name(&dir.join("driver"))?;
        let iommu_group = match link_name(&dir.join("iommu_group"))? {
            None => None,
            Some(g) => Some(g.parse::<u32>().map_err(|_| VfioError::BadAttribute {
                path: dir.join("iommu_group"),
                value: g,
                expected: "a link to an IOMMU group number",
            })?),
        };
        let group_peers = match iommu_group {
            None => Vec::new(),
            Some(g) => self
                .group_members(g)?
                .into_iter()
                .filter(|a| *a != address)
                .collect(),
        };
        let numa_node = match read_attr(&dir.join("numa_node"))? {
            None => None,
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| VfioError::BadAttribute {
                    path: dir.join("numa_node"),
                    value: v.clone(),
                    expected: "a NUMA node number",
                })?;
                u32::try_from(n).ok()
            }
        };
        let bar0_size = match read_attr(&dir.join("resource"))? {
            None => None,
            Some(text) => bar0_size(&dir.join("resource"), &text)?,
        };
        Ok(PciFunction {
            address,
            vendor,
            device,
            class,
            driver,
            iommu_group,
            group_peers,
            numa_node,
            bar0_size,
            ours: pci::is_shadownet(vendor, device),
        })
    }

    /// The functions of IOMMU group `group`, in address order.
    pub fn group_members(&self, group: u32) -> Result<Vec<PciAddress>, VfioError> {
        let dir = self
            .root
            .join("kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let entries = fs::read_dir(&dir).map_err(|source| VfioError::Sysfs {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| VfioError::Sysfs {
                path: dir.clone(),
                source,
            })?;
            // Groups may hold non-PCI devices too; only PCI functions matter here.
            if let Some(a) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<PciAddress>().ok())
            {
                out.push(a);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes `value` to an attribute, as `echo -n value > path` would.
    pub(crate) fn write_attr(&self, path: &Path, value: &str) -> Result<(), VfioError> {
        tracing::debug!(path = %path.display(), value, "sysfs write");
        let err = |source| VfioError::Sysfs {
            path: path.to_path_buf(),
            source,
        };
        // Sysfs attributes exist already; never create one (a typo must fail, not create a
        // file in a fake tree or an error-prone no-op).
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(err)?;
        io::Write::write_all(&mut f, value.as_bytes()).map_err(err)?;
        drop(f);
        if let Some(hook) = &self.hook {
            hook(path, value).map_err(err)?;
        }
        Ok(())
    }
}

fn bad(path: &Path, value: u64, expected: &'static str) -> VfioError {
    VfioError::BadAttribute {
        path: path.to_path_buf(),
        value: format!("{value:#x}"),
        expected,
    }
}

/// An attribute's trimmed text; `None` when it does not exist.
fn read_attr(path: &Path) -> Result<Option<String>, VfioError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VfioError::Sysfs {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn hex_attr(path: &Path, expected: &'static str) -> Result<u64, VfioError> {
    let text = read_attr(path)?.ok_or_else(|| VfioError::Sysfs {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "attribute missing"),
    })?;
    parse_hex(&text).ok_or(VfioError::BadAttribute {
        path: path.to_path_buf(),
        value: text,
        expected,
    })
}

fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

/// The last component of a link's target; `None` when the link does not exist.
fn link_name(path: &Path) -> Result<Option<String>, VfioError> {
    match fs::read_link(path) {
        Ok(target) => Ok(target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VfioError::Sysfs {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// BAR0's size from the first line of `resource` (`start end flags`, in hexadecimal).
fn bar0_size(path: &Path, text: &str) -> Result<Option<u64>, VfioError> {
    let line = text.lines().next().unwrap_or_default();
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(parse_hex)
        .collect::<Option<Vec<_>>>()
        .filter(|f| f.len() == 3)
        .ok_or_else(|| VfioError::BadAttribute {
            path: path.to_path_buf(),
            value: line.to_string(),
            expected: "'start end flags' in hexadecimal",
        })?;
    let (start, end) = (fields[0], fields[1]);
    Ok((end > start).then(|| end - start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar0_size_from_resource() {
        let p = Path::new("resource");
        assert_eq!(
            bar0_size(
                p,
                "0x0000004000000000 0x000000400001ffff 0x0000000000140204\n0x0 0x0 0x0\n"
            )
            .expect("valid"),
            Some(0x2_0000)
        );
        assert_eq!(
            bar0_size(
                p,
                "0x0000000000000000 0x0000000000000000 0x0000000000000000"
            )
            .expect("valid"),
            None
        );
        let err = bar0_size(p, "garbage").expect_err("invalid").to_string();
        assert!(err.contains("start end flags"), "{err}");
    }

    #[test]
    fn system_sysfs_lists_without_error_when_present() {
        // On any Linux machine with a PCI bus, the real tree must parse; where there is none
        // the error must say so.
        match Sysfs::system().scan() {
            Ok(list) => {
                for f in &list {
                    assert_eq!(f.ours, pci::is_shadownet(f.vendor, f.device));
                }
            }
            Err(e) => assert!(matches!(e, VfioError::NoPciBus { .. }), "{e}"),
        }
    }
}
