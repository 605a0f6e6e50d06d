//! External tools the tests use (tshark). With `SHADOWNET_REQUIRE_TOOLS=1` — which the
//! README's test command sets — a missing tool fails the test; without it the test says why
//! it is skipped.

use std::{path::Path, process::Command};

/// Whether `tool` runs.
pub fn available(tool: &str) -> bool {
    available_with(tool, "--version")
}

/// Whether `tool probe_arg` runs and succeeds (suricata and rsyslogd take `-V`/`-v`, not
/// `--version`).
pub fn available_with(tool: &str, probe_arg: &str) -> bool {
    Command::new(tool)
        .arg(probe_arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the test may use `tool`: true if it runs; panics if it is missing and tools are
/// required; false (with a note) otherwise.
pub fn require(tool: &str) -> bool {
    require_with(tool, "--version")
}

/// [`require`] for tools probed with another argument than `--version`.
pub fn require_with(tool: &str, probe_arg: &str) -> bool {
    if available_with(tool, probe_arg) {
        return true;
    }
    if std::env::var("SHADOWNET_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "{tool} is required (SHADOWNET_REQUIRE_TOOLS=1) but does not run; install it (tools/test.sh does)"
        );
    }
    eprintln!(
        "note: {tool} not found; skipping (set SHADOWNET_REQUIRE_TOOLS=1 to make this a failure)"
    );
    false
}

/// tshark's decode of every frame of a capture, as JSON (one object per frame), with raw
/// bytes of each layer (`-x`).
pub fn tshark_json(pcap: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-T", "json", "-x", "--no-duplicate-keys"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running tshark on {}: {e}", pcap.display()));
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tshark output for {} is not JSON: {e}", pcap.display()));
    match v {
        serde_json::Value::Array(frames) => frames,
        other => panic!("tshark output is not an array: {other}"),
    }
}
