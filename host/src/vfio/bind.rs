//! Handing a function to vfio-pci, and back to the host.
//!
//! The kernel's own sequence: write `vfio-pci` to the function's `driver_override` (so no
//! other driver takes it), unbind it from its current driver, and ask the bus to probe it
//! again (`bus/pci/drivers_probe`), which binds it to the overridden driver.

use serde::Serialize;

use super::{GroupMember, PciAddress, Sysfs, VFIO_PCI, VfioError};

/// What a bind or unbind did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BindOutcome {
    /// The function.
    pub address: PciAddress,
    /// Its driver before.
    pub previous_driver: Option<String>,
    /// Its driver now.
    pub driver: Option<String>,
    /// Whether anything was written (false when it was already as asked).
    pub changed: bool,
}

/// Binds a shadownet NIC to vfio-pci.
///
/// Refuses, changing nothing, when the function is not a shadownet NIC, vfio-pci is not
/// loaded, the IOMMU is off, or another member of its IOMMU group is bound to a host driver
/// (the error names each). Fails with [`VfioError::NotClaimed`] when vfio-pci does not take
/// the function.
pub fn bind_vfio(sysfs: &Sysfs, address: PciAddress) -> Result<BindOutcome, VfioError> {
    let f = sysfs.function(address)?;
    if !f.ours {
        return Err(VfioError::NotShadownet {
            address,
            vendor: f.vendor,
            device: f.device,
        });
    }
    if f.driver.as_deref() == Some(VFIO_PCI) {
        return Ok(BindOutcome {
            address,
            previous_driver: f.driver.clone(),
            driver: f.driver,
            changed: false,
        });
    }
    let vfio_dir = sysfs.driver_dir(VFIO_PCI);
    if !vfio_dir.exists() {
        return Err(VfioError::DriverNotLoaded {
            driver: VFIO_PCI.to_string(),
            path: vfio_dir,
        });
    }
    let group = f.iommu_group.ok_or_else(|| VfioError::NoIommuGroup {
        address,
        path: sysfs.device_dir(address).join("iommu_group"),
    })?;
    check_group(sysfs, address, group, &f.group_peers)?;

    let dir = sysfs.device_dir(address);
    sysfs.write_attr(&dir.join("driver_override"), VFIO_PCI)?;
    if f.driver.is_some() {
        sysfs.write_attr(&dir.join("driver/unbind"), &address.to_string())?;
    }
    sysfs.write_attr(
        &sysfs.root().join("bus/pci/drivers_probe"),
        &address.to_string(),
    )?;
    let now = sysfs.function(address)?.driver;
    tracing::info!(%address, previous = ?f.driver, now = ?now, "bind to vfio-pci");
    if now.as_deref() != Some(VFIO_PCI) {
        return Err(VfioError::NotClaimed {
            address,
            driver: now,
        });
    }
    Ok(BindOutcome {
        address,
        previous_driver: f.driver,
        driver: now,
        changed: true,
    })
}

/// Gives a function back to the host: clears its `driver_override`, unbinds it from its
/// driver and lets the bus probe it, so its own host driver (if any is loaded) takes it.
pub fn unbind(sysfs: &Sysfs, address: PciAddress) -> Result<BindOutcome, VfioError> {
    let f = sysfs.function(address)?;
    let dir = sysfs.device_dir(address);
    let override_path = dir.join("driver_override");
    let overridden = std::fs::read_to_string(&override_path)
        .map(|s| {
            let s = s.trim();
            !s.is_empty() && s != "(null)"
        })
        .unwrap_or(false);
    if f.driver.is_none() && !overridden {
        return Ok(BindOutcome {
            address,
            previous_driver: None,
            driver: None,
            changed: false,
        });
    }
    // The kernel clears driver_override on a write of a newline.
    sysfs.write_attr(&override_path, "\n")?;
    if f.driver.is_some() {
        sysfs.write_attr(&dir.join("driver/unbind"), &address.to_string())?;
    }
    sysfs.write_attr(
        &sysfs.root().join("bus/pci/drivers_probe"),
        &address.to_string(),
    )?;
    let now = sysfs.function(address)?.driver;
    tracing::info!(%address, previous = ?f.driver, now = ?now, "unbind");
    Ok(BindOutcome {
        address,
        previous_driver: f.driver,
        driver: now,
        changed: true,
    })
}

/// Fails, naming them, when members of the group other than `address` are bound to host
/// drivers.
pub(crate) fn check_group(
    sysfs: &Sysfs,
    address: PciAddress,
    group: u32,
    peers: &[PciAddress],
) -> Result<(), VfioError> {
    let mut members = Vec::new();
    for &peer in peers {
        let p = sysfs.function(peer)?;
        if !p.allows_vfio_group() {
            members.push(GroupMember {
                address: peer,
                driver: p.driver.unwrap_or_default(),
            });
        }
    }
    if members.is_empty() {
        Ok(())
    } else {
        Err(VfioError::GroupNotViable {
            address,
            group,
            members,
        })
    }
}
