//! The simulated NIC's BAR0: a shared-memory mapping that the device model watches.
//!
//! The host maps the same memory and drives it through `shadownet_hw::RegisterView`, exactly
//! as it drives a VFIO region on hardware; the model reads what the host wrote and fills in
//! what the host reads through `shadownet_hw::DeviceView`. The mapping is either anonymous
//! (host and model in one process) or a file, so another process (a register dump, a driver
//! under test) can map the same BAR.

use std::{fs::OpenOptions, path::Path, ptr::NonNull};

use memmap2::{MmapOptions, MmapRaw};
use shadownet_hw::{BAR_SIZE, DeviceView, RegisterView};

/// Error creating the BAR mapping.
#[derive(Debug, thiserror::Error)]
pub enum BarError {
    /// The mapping could not be made.
    #[error("mapping the simulated BAR{}: {source}", path.as_deref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    Map {
        /// File backing the BAR, if any.
        path: Option<std::path::PathBuf>,
        /// The OS error.
        source: std::io::Error,
    },
    /// The memory cannot carry the register map.
    #[error("simulated BAR: {0}")]
    View(shadownet_hw::ViewError),
}

/// BAR0 memory shared between the host driver and the device model.
pub struct SharedBar {
    map: MmapRaw,
    path: Option<std::path::PathBuf>,
}

impl SharedBar {
    /// An anonymous shared mapping (host and model in one process), zero-filled.
    pub fn anonymous() -> Result<SharedBar, BarError> {
        let map = MmapOptions::new()
            .len(BAR_SIZE)
            .map_anon()
            .map_err(|source| BarError::Map { path: None, source })?;
        SharedBar::checked(MmapRaw::from(map), None)
    }

    /// A mapping of `path`, created or resized to the BAR's size, so other processes can map
    /// the same BAR (for instance `/dev/shm/shadownic0`).
    pub fn file(path: &Path) -> Result<SharedBar, BarError> {
        let err = |source| BarError::Map {
            path: Some(path.to_path_buf()),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        file.set_len(BAR_SIZE as u64).map_err(err)?;
        let map = MmapOptions::new()
            .len(BAR_SIZE)
            .map_raw(&file)
            .map_err(err)?;
        SharedBar::checked(map, Some(path.to_path_buf()))
    }

    /// The file backing the BAR, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn checked(map: MmapRaw, path: Option<std::path::PathBuf>) -> Result<SharedBar, BarError> {
        let bar = SharedBar { map, path };
        bar.try_device_view().map_err(BarError::View)?;
        bar.try_host_view().map_err(BarError::View)?;
        Ok(bar)
    }

    fn base(&self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("a successful mmap is never at address 0")
    }

    /// The registers as the host sees them.
    pub fn host_view(&self) -> RegisterView<'_> {
        self.try_host_view()
            .expect("the mapping was checked to carry the register map when it was made")
    }

    /// The registers as the device model sees them.
    pub fn device_view(&self) -> DeviceView<'_> {
        self.try_device_view()
            .expect("the mapping was checked to carry the register map when it was made")
    }

    fn try_host_view(&self) -> Result<RegisterView<'_>, shadownet_hw::ViewError> {
        // SAFETY: the mapping is BAR_SIZE bytes, page aligned, and lives as long as `self`;
        // it is only reached through register views (volatile accesses), never as a slice.
        unsafe { RegisterView::new(self.base(), self.map.len()) }
    }

    fn try_device_view(&self) -> Result<DeviceView<'_>, shadownet_hw::ViewError> {
        // SAFETY: as for `try_host_view`.
        unsafe { DeviceView::new(self.base(), self.map.len()) }
    }
}
