//! `shadowctl flash`: an image written through the simulated NIC's FLASH block into the A/B
//! slots, activated only after it reads back and verifies. With a state file the flash
//! persists across invocations (and power cycles).

use std::path::{Path, PathBuf};

use serde::Serialize;
use shadownet_host::driver::{DriverError, FlashError, FlashProgress, Nic, sim::SimDevice};
use shadownet_hw::{
    flash::{FlashGeometry, Slot},
    timing::Timing,
};
use shadownet_sim::{
    ModelError, NicModel,
    bar::SharedBar,
    flash::{Flash, FlashStateError, FlashTiming},
};

use crate::image::{ImageToolError, read_image, read_key};

/// Why `shadowctl flash` failed.
#[derive(Debug, thiserror::Error)]
pub enum FlashToolError {
    /// The image or key file.
    #[error(transparent)]
    File(#[from] ImageToolError),
    /// The flash state file.
    #[error(transparent)]
    State(#[from] FlashStateError),
    /// The simulated NIC.
    #[error("simulated NIC: {0}")]
    Model(#[from] ModelError),
    /// Opening the NIC.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The update.
    #[error(transparent)]
    Flash(#[from] FlashError),
}

/// Which slot to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SlotArg {
    /// The slot the device does not run from.
    Auto,
    /// Slot A.
    A,
    /// Slot B.
    B,
}

/// What `shadowctl flash` did.
#[derive(Debug, Serialize)]
pub struct FlashReport {
    /// Slot written.
    pub slot: String,
    /// Build id written.
    pub build_id: u32,
    /// Boot record sequence number written.
    pub record_seq: u32,
    /// Boot-record copy written.
    pub record_copy: usize,
    /// What the device ran before the update (build id), if anything.
    pub previous_build_id: Option<u32>,
    /// After a power cycle: the slot booted.
    pub booted_slot: Option<String>,
    /// After a power cycle: the build id booted.
    pub booted_build_id: u32,
    /// Highest erase count of any sector.
    pub wear_max: u32,
    /// Flash cycles the update took.
    pub busy_cycles: u64,
}

fn open_flash(state: Option<&Path>, timing: FlashTiming) -> Result<Flash, FlashStateError> {
    match state {
        Some(p) => Flash::open(p, FlashGeometry::DEFAULT, timing),
        None => Flash::in_memory(FlashGeometry::DEFAULT, timing),
    }
}

fn power_on(flash: Flash) -> Result<Nic<SimDevice>, FlashToolError> {
    let model = NicModel::with_flash(
        Timing::DEFAULT,
        SharedBar::anonymous().map_err(ModelError::from)?,
        flash,
    )?;
    Ok(Nic::open(SimDevice::new(model))?)
}

/// Writes `image` (raw or Intel HEX) into the simulated NIC's flash; `state` keeps the flash
/// between runs; `key` is a public key the image's signature must verify with.
pub fn flash(
    image: &Path,
    slot: SlotArg,
    state: Option<&PathBuf>,
    key: Option<&PathBuf>,
    progress: &mut dyn FnMut(FlashProgress),
) -> Result<FlashReport, FlashToolError> {
    let bytes = read_image(image)?;
    let public = key.map(|k| read_key(k)).transpose()?;
    let timing = FlashTiming::DEFAULT;
    let mut nic = power_on(open_flash(state.map(|p| p.as_path()), timing)?)?;
    let before = nic.flash_boot_status()?;
    let slot = match slot {
        SlotArg::Auto => None,
        SlotArg::A => Some(Slot::A),
        SlotArg::B => Some(Slot::B),
    };
    let up = nic.flash_update(&bytes, slot, public.as_ref(), progress)?;
    let (_, busy_cycles) = nic.flash_wear_max()?;
    // Power cycle: what does the boot ROM pick now?
    let flash = nic.device().model().flash().flash().copy_in_memory();
    drop(nic);
    let nic = power_on(flash)?;
    let after = nic.flash_boot_status()?;
    let (wear_max, _) = nic.flash_wear_max()?;
    Ok(FlashReport {
        slot: up.slot.to_string(),
        build_id: up.header.build_id,
        record_seq: up.record.seq,
        record_copy: up.record_copy,
        previous_build_id: before.active.map(|_| before.build_id),
        booted_slot: after.active.map(|s| s.to_string()),
        booted_build_id: after.build_id,
        wear_max,
        busy_cycles,
    })
}

/// `shadowctl flash`: [`flash`] with a progress bar, and the report printed.
pub fn run(
    image: &Path,
    slot: SlotArg,
    state: Option<&PathBuf>,
    key: Option<&PathBuf>,
    json: bool,
) -> Result<FlashReport, FlashToolError> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<9} {bar:40} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = flash(image, slot, state, key, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{:?}", p.phase).to_lowercase());
    });
    bar.finish_and_clear();
    let report = report?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        println!(
            "flashed build {} into slot {} (boot record seq {}, copy {}){}",
            report.build_id,
            report.slot,
            report.record_seq,
            report.record_copy,
            match report.previous_build_id {
                Some(b) => format!("; the device ran build {b}"),
                None => String::new(),
            }
        );
        println!(
            "after a power cycle the device boots slot {} build {}; wear max {} erases; {} flash cycles",
            report.booted_slot.as_deref().unwrap_or("none"),
            report.booted_build_id,
            report.wear_max,
            report.busy_cycles
        );
    }
    Ok(report)
}
