//! `shadowctl image build | inspect | verify | keygen` and `shadowctl flash`, run as a user
//! runs them.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn shadowctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("shadowctl runs")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = shadowctl(args, dir);
    assert!(
        out.status.success(),
        "shadowctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str], dir: &Path) -> String {
    let out = shadowctl(args, dir);
    assert!(!out.status.success(), "shadowctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shadowctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn build_inspect_verify_in_both_formats_and_signed() {
    let d = scratch("image");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
    std::fs::write(d.join("fw.bin"), &payload).expect("write payload");
    ok(&["image", "keygen", "--out", "k.key"], &d);
    assert!(d.join("k.key.pub").exists());
    ok(
        &[
            "image",
            "build",
            "--input",
            "fw.bin",
            "--target",
            "riscv32imac",
            "--build-id",
            "41",
            "--sign-key",
            "k.key",
            "--out",
            "fw.img",
        ],
        &d,
    );
    ok(
        &[
            "image",
            "build",
            "--input",
            "fw.bin",
            "--target",
            "host",
            "--build-id",
            "42",
            "--out",
            "fw.hex",
            "--format",
            "ihex",
        ],
        &d,
    );
    let hex = std::fs::read_to_string(d.join("fw.hex")).expect("hex written");
    assert!(hex.starts_with(":02000004") && hex.ends_with(":00000001FF\n"));

    let json = ok(&["image", "inspect", "fw.img", "--json"], &d);
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect --json is JSON");
    assert_eq!(v["build_id"], 41);
    assert_eq!(v["target"], "riscv32imac");
    assert_eq!(v["payload_len"], 5000);
    assert_eq!(v["signed"], true);
    assert!(v["payload_problem"].is_null());
    let text = ok(&["image", "inspect", "fw.hex"], &d);
    assert!(
        text.contains("build id      42") && text.contains("verifies"),
        "{text}"
    );

    let out = ok(&["image", "verify", "fw.img", "--key", "k.key.pub"], &d);
    assert!(out.contains("signature verifies"), "{out}");
    ok(&["image", "verify", "fw.hex"], &d);

    // Another key: named as such.
    ok(&["image", "keygen", "--out", "other.key"], &d);
    let err = fails(&["image", "verify", "fw.img", "--key", "other.key.pub"], &d);
    assert!(err.contains("signed by key"), "{err}");
    // A flipped payload byte.
    let mut img = std::fs::read(d.join("fw.img")).expect("read");
    img[300] ^= 0x40;
    std::fs::write(d.join("bad.img"), &img).expect("write");
    let err = fails(&["image", "verify", "bad.img"], &d);
    assert!(err.contains("bad.img: payload CRC32 mismatch"), "{err}");
    let out = ok(&["image", "inspect", "bad.img"], &d);
    assert!(out.contains("DOES NOT VERIFY"), "{out}");
    // A damaged HEX checksum names the line.
    let mut lines: Vec<String> = hex.lines().map(String::from).collect();
    let l = &mut lines[4];
    let c = l.pop().expect("non-empty");
    l.push(if c == 'A' { 'B' } else { 'A' });
    std::fs::write(d.join("bad.hex"), lines.join("\n") + "\n").expect("write");
    let err = fails(&["image", "verify", "bad.hex"], &d);
    assert!(err.contains("bad.hex: line 5: checksum"), "{err}");
    // Not an image at all.
    let err = fails(&["image", "verify", "fw.bin"], &d);
    assert!(err.contains("not a shadownet image"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn flash_persists_across_invocations_and_alternates_slots() {
    let d = scratch("flash");
    std::fs::write(d.join("a.bin"), vec![0xA5u8; 3000]).expect("write");
    std::fs::write(d.join("b.bin"), vec![0x5Au8; 7000]).expect("write");
    ok(
        &[
            "image",
            "build",
            "--input",
            "a.bin",
            "--target",
            "host",
            "--build-id",
            "1",
            "--out",
            "a.img",
        ],
        &d,
    );
    ok(
        &[
            "image",
            "build",
            "--input",
            "b.bin",
            "--target",
            "host",
            "--build-id",
            "2",
            "--out",
            "b.hex",
            "--format",
            "ihex",
        ],
        &d,
    );

    let out = ok(
        &[
            "flash",
            "--image",
            "a.img",
            "--state",
            "nic.flash",
            "--json",
        ],
        &d,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (v["slot"].as_str(), v["booted_build_id"].as_u64()),
        (Some("A"), Some(1))
    );
    assert!(v["previous_build_id"].is_null());

    let out = ok(&["flash", "--image", "b.hex", "--state", "nic.flash"], &d);
    assert!(
        out.contains("into slot B") && out.contains("ran build 1"),
        "{out}"
    );
    assert!(out.contains("boots slot B build 2"), "{out}");

    // The running slot is refused, and nothing changes.
    let before = std::fs::read(d.join("nic.flash")).expect("state");
    let err = fails(
        &[
            "flash",
            "--image",
            "a.img",
            "--state",
            "nic.flash",
            "--slot",
            "b",
        ],
        &d,
    );
    assert!(err.contains("slot B holds the running image"), "{err}");
    assert_eq!(std::fs::read(d.join("nic.flash")).expect("state"), before);

    // Back to A: the third update goes into the slot not running.
    let out = ok(
        &[
            "flash",
            "--image",
            "a.img",
            "--state",
            "nic.flash",
            "--json",
        ],
        &d,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (
            v["slot"].as_str(),
            v["record_seq"].as_u64(),
            v["record_copy"].as_u64()
        ),
        (Some("A"), Some(3), Some(0))
    );
    let _ = std::fs::remove_dir_all(&d);
}
