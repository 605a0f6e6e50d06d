//! The flash through the driver and the FLASH registers of the simulated NIC: updates into
//! A/B slots, refusals, wear, and power cuts at random instants of an update.

use shadownet_host::driver::{FlashError, FlashPhase, Nic, sim::SimDevice};
use shadownet_hw::{
    flash::{FlashGeometry, Slot},
    image::{self, ImageHeader, Target},
    timing::Timing,
};
use shadownet_sim::{
    NicModel,
    bar::SharedBar,
    flash::{Flash, FlashTiming},
};

/// Small enough that 1,000 updates run in seconds: 34 sectors of 1 KiB, 16 KiB slots.
const GEOMETRY: FlashGeometry = FlashGeometry {
    sector_size: 1024,
    sector_count: 34,
    slot_size: 16 * 1024,
};
const TIMING: FlashTiming = FlashTiming {
    erase_cycles: 2_000,
    program_cycles_per_word: 10,
    read_cycles_per_word: 1,
    poll_cycles: 100,
};

fn power_on(flash: Flash) -> Nic<SimDevice> {
    let bar = SharedBar::anonymous().expect("anonymous BAR");
    let model = NicModel::with_flash(Timing::DEFAULT, bar, flash).expect("model powers on");
    Nic::open(SimDevice::new(model)).expect("driver opens the NIC")
}

fn flash_of(nic: &Nic<SimDevice>) -> Flash {
    nic.device().model().flash().flash().copy_in_memory()
}

fn make_image(build_id: u32, len: usize, seed: Option<&[u8; 32]>) -> Vec<u8> {
    let payload: Vec<u8> = (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(build_id) as u8
        })
        .collect();
    let mut h = ImageHeader::for_payload(
        &payload,
        Target::Riscv32imac,
        build_id,
        0x2000_0000,
        0x2000_0000,
    )
    .expect("small payload");
    if let Some(s) = seed {
        h.sign(s);
    }
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// A device running image `v1` from slot A.
fn base() -> (Flash, Vec<u8>) {
    let v1 = make_image(1, 11_000, None);
    let mut nic = power_on(Flash::in_memory(GEOMETRY, TIMING).expect("geometry"));
    let up = nic
        .flash_update(&v1, None, None, &mut |_| {})
        .expect("first update");
    assert_eq!(up.slot, Slot::A);
    (flash_of(&nic), v1)
}

#[test]
fn update_writes_the_inactive_slot_and_the_device_boots_it() {
    let (flash, _) = base();
    let nic = power_on(flash);
    let st = nic.flash_boot_status().expect("status");
    assert_eq!(
        (st.active, st.build_id, st.outcome),
        (Some(Slot::A), 1, "record")
    );
    let mut nic = nic;
    let v2 = make_image(2, 9_000, None);
    let mut phases = Vec::new();
    let up = nic
        .flash_update(&v2, None, None, &mut |p| phases.push(p.phase))
        .expect("update");
    assert_eq!(up.slot, Slot::B, "auto picks the slot not running");
    assert_eq!(up.record.seq, 2);
    assert_eq!(up.record_copy, 1, "the copy not holding the newest record");
    for p in [
        FlashPhase::Erase,
        FlashPhase::Program,
        FlashPhase::Verify,
        FlashPhase::Activate,
    ] {
        assert!(phases.contains(&p), "{p:?} reported");
    }
    let preview = nic.flash_boot_preview().expect("preview");
    assert_eq!(preview.booted.map(|b| b.slot), Some(Slot::B));
    // Power cycle: the boot ROM picks B.
    let nic = power_on(flash_of(&nic));
    let st = nic.flash_boot_status().expect("status");
    assert_eq!(
        (st.active, st.build_id, st.record_seq, st.records),
        (Some(Slot::B), 2, 2, 0b11)
    );
    // Wear: the boot-record sectors were erased once each, B's first sector once.
    assert_eq!(nic.flash_wear(0).expect("wear"), 1);
    assert_eq!(nic.flash_wear(1).expect("wear"), 1);
    assert_eq!(
        nic.flash_wear(GEOMETRY.sector_of(GEOMETRY.slot_addr(Slot::B)))
            .expect("wear"),
        1
    );
    assert_eq!(nic.flash_wear(33).expect("wear"), 0, "untouched sector");
    assert_eq!(nic.flash_wear_max().expect("wear max").0, 1);
}

#[test]
fn refusals_change_nothing() {
    let (flash, v1) = base();
    let mut nic = power_on(flash);
    let before = flash_of(&nic).contents().to_vec();
    // The running slot.
    assert!(matches!(
        nic.flash_update(&v1, Some(Slot::A), None, &mut |_| {}),
        Err(FlashError::ActiveSlot { slot: Slot::A })
    ));
    // A damaged image is refused before anything is written.
    let mut bad = make_image(3, 1000, None);
    bad[500] ^= 1;
    assert!(matches!(
        nic.flash_update(&bad, None, None, &mut |_| {}),
        Err(FlashError::Image(image::ImageError::PayloadCrc { .. }))
    ));
    // Too large for a slot.
    let big = make_image(4, 17 * 1024, None);
    assert!(matches!(
        nic.flash_update(&big, None, None, &mut |_| {}),
        Err(FlashError::TooLarge { .. })
    ));
    // Signed with another key than the one required.
    let signed = make_image(5, 100, Some(&[1; 32]));
    let other = image::public_key(&[2; 32]);
    assert!(matches!(
        nic.flash_update(&signed, None, Some(&other), &mut |_| {}),
        Err(FlashError::Image(image::ImageError::KeyMismatch { .. }))
    ));
    // Out-of-range requests.
    assert!(matches!(
        nic.flash_erase_sector(34),
        Err(FlashError::BadRange { .. })
    ));
    let mut buf = [0u8; 8];
    assert!(matches!(
        nic.flash_read(34 * 1024 - 4, &mut buf),
        Err(FlashError::BadRange { .. })
    ));
    assert_eq!(flash_of(&nic).contents(), &before[..], "nothing changed");
    // With the right key it goes through.
    let public = image::public_key(&[1; 32]);
    nic.flash_update(&signed, None, Some(&public), &mut |_| {})
        .expect("signed update");
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Cuts the power at `cut` (flash cycles since power-on) during an update to `v2`, powers
/// on again, and returns the build id the boot ROM booted (None: nothing bootable).
fn cut_and_boot(base: &Flash, v2: &[u8], cut: u64) -> (Option<u32>, bool) {
    let mut nic = power_on(base.copy_in_memory());
    nic.device().model().flash().flash_mut().power_cut_at(cut);
    let result = nic.flash_update(v2, None, None, &mut |_| {});
    let completed = match result {
        Ok(_) => true,
        Err(FlashError::DeviceGone { .. }) => false,
        Err(e) => panic!("cut at {cut}: unexpected error {e}"),
    };
    let after = flash_of(&nic);
    let nic = power_on(after);
    let booted = nic.device().model().flash().boot_choice().booted;
    let st = nic.flash_boot_status().expect("status after power-on");
    let id = booted.map(|b| {
        // The image booted verifies from the flash bytes themselves.
        let f = flash_of(&nic);
        let at = GEOMETRY.slot_addr(b.slot) as usize;
        let len = image::HEADER_LEN + b.header.payload_len as usize;
        let h = image::verify(&f.contents()[at..at + len], None).expect("booted image verifies");
        assert_eq!(st.build_id, h.build_id, "BOOT_BUILD_ID reports it");
        h.build_id
    });
    (id, completed)
}

#[test]
fn power_cut_at_1000_random_instants_always_boots_old_or_new() {
    let (base, _) = base();
    let v2 = make_image(2, 12_000, None);
    // A dry run measures the update: the image phase, then the boot-record phase.
    let mut nic = power_on(base.copy_in_memory());
    nic.flash_write_image(Slot::B, &v2, None, &mut |_| {})
        .expect("write");
    let record_start = nic.device().model().flash().flash().clock();
    nic.flash_activate(Slot::B).expect("activate");
    let total = nic.device().model().flash().flash().clock();
    assert!(record_start > 0 && total > record_start);

    let mut rng = XorShift(0x5EED_F1A5_0000_0001);
    let (mut old, mut new, mut completed) = (0, 0, 0);
    let mut instants: Vec<u64> = (0..1000).map(|_| rng.next() % (total + 1)).collect();
    // And every 7th instant of the boot-record update, where a torn record would hurt.
    instants.extend((record_start..=total).step_by(7));
    // And the last cycles, across the moment the new record becomes whole.
    instants.extend(total.saturating_sub(40)..=total);
    let random = 1000;
    for (i, &cut) in instants.iter().enumerate() {
        let (booted, done) = cut_and_boot(&base, &v2, cut);
        match booted {
            Some(1) => old += 1,
            Some(2) => new += 1,
            other => panic!("cut at cycle {cut} of {total}: booted {other:?}: neither old nor new"),
        }
        if done {
            completed += 1;
            assert_eq!(booted, Some(2), "a completed update boots the new image");
        }
        if i + 1 == random {
            eprintln!(
                "1000 random cuts over {total} cycles: {old} booted the old image, {new} the new"
            );
        }
    }
    eprintln!(
        "{} cuts in all ({} in the boot-record update from cycle {record_start}): old {old}, new {new}, completed {completed}",
        instants.len(),
        instants.len() - random
    );
    assert!(
        old > 0 && new > 0,
        "cuts landed both before and after the switch"
    );
}
