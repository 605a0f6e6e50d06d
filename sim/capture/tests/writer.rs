//! PcapWriter: exact bytes, round trip through CaptureReader, and tshark reading it.

use std::path::PathBuf;
use std::process::Command;

use shadownet_capture::{CaptureError, CaptureFormat, CaptureReader, Frame, PcapWriter};

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("writer");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// (timestamp, frame, orig_len for write_truncated or None for write)
fn sample() -> Vec<(u64, Vec<u8>, Option<u32>)> {
    vec![
        (1_700_000_000_123_456_789, frame(60, 1), None),
        (1_700_000_000_999_999_999, frame(1514, 2), None), // longer than the snaplen below
        (1_700_000_001_000_000_000, frame(100, 3), Some(9000)),
        (0, frame(14, 4), None),
        (4_294_967_295_999_999_999, frame(64, 5), Some(10)), // orig_len below frame length
    ]
}

fn write_sample(path: &std::path::Path, snaplen: u32) {
    let mut w = PcapWriter::create(path, snaplen).expect("create");
    for (ts, f, orig) in sample() {
        match orig {
            None => w.write(ts, &f).expect("write"),
            Some(o) => w.write_truncated(ts, &f, o).expect("write_truncated"),
        }
    }
    assert_eq!(w.records_written(), 5);
    assert_eq!(w.path(), path);
    w.finish().expect("finish");
}

#[test]
fn header_bytes_are_ns_little_endian_ethernet() {
    let path = tmp("header.pcap");
    let mut w = PcapWriter::create(&path, 1500).expect("create");
    w.write(1_000_000_002_500_000_001, &[0xAB; 20])
        .expect("write");
    w.finish().expect("finish");
    let bytes = std::fs::read(&path).expect("read");
    let mut want = Vec::new();
    want.extend_from_slice(&0xA1B2_3C4Du32.to_le_bytes());
    want.extend_from_slice(&2u16.to_le_bytes());
    want.extend_from_slice(&4u16.to_le_bytes());
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(&1500u32.to_le_bytes());
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&1_000_000_002u32.to_le_bytes());
    want.extend_from_slice(&500_000_001u32.to_le_bytes());
    want.extend_from_slice(&20u32.to_le_bytes());
    want.extend_from_slice(&20u32.to_le_bytes());
    want.extend_from_slice(&[0xAB; 20]);
    assert_eq!(bytes, want);
}

#[test]
fn round_trip_and_determinism() {
    let (a, b) = (tmp("rt-a.pcap"), tmp("rt-b.pcap"));
    write_sample(&a, 1000);
    write_sample(&b, 1000);
    assert_eq!(
        std::fs::read(&a).expect("a"),
        std::fs::read(&b).expect("b"),
        "same calls, same bytes"
    );

    let r = CaptureReader::open(&a).expect("open");
    assert_eq!(
        r.format(),
        CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: true,
            version_major: 2,
            version_minor: 4
        }
    );
    let recs: Vec<_> = r.map(|x| x.expect("record")).collect();
    assert_eq!(recs.len(), 5);
    for (rec, (ts, f, orig)) in recs.iter().zip(sample()) {
        assert_eq!(rec.timestamp_ns, ts);
        assert_eq!(rec.link_type, 1);
        let stored = &f[..f.len().min(1000)];
        assert_eq!(rec.frame, Frame::Ethernet(stored.to_vec()));
        let want_orig = orig.unwrap_or(f.len() as u32).max(f.len() as u32);
        assert_eq!(rec.orig_len, want_orig);
    }
}

#[test]
fn writer_errors_name_the_file() {
    let path = tmp("zero-snaplen.pcap");
    assert!(matches!(
        PcapWriter::create(&path, 0),
        Err(CaptureError::InvalidSnaplen { snaplen: 0, .. })
    ));

    let path = tmp("late.pcap");
    let mut w = PcapWriter::create(&path, 100).expect("create");
    match w.write(4_294_967_296_000_000_000, &[0; 10]) {
        Err(
            e @ CaptureError::TimestampOutOfRange {
                record_index: 0, ..
            },
        ) => {
            assert!(e.to_string().contains("late.pcap"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    w.finish().expect("finish");

    let path = tmp("no-such-dir/x.pcap");
    assert!(matches!(
        PcapWriter::create(&path, 100),
        Err(CaptureError::Create { .. })
    ));
}

/// tshark must read what we write. Skips (with a note) when tshark is absent,
/// unless SHADOWNET_REQUIRE_TOOLS=1, in which case it fails.
#[test]
fn tshark_reads_our_output() {
    let required = std::env::var("SHADOWNET_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let path = tmp("tshark.pcap");
    write_sample(&path, 1000);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.time_epoch",
        ])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!(
                "note: tshark not found, skipping (set SHADOWNET_REQUIRE_TOOLS=1 to make this fail)"
            );
            return;
        }
        Err(e) => panic!("tshark could not be run: {e} (SHADOWNET_REQUIRE_TOOLS={required})"),
    };
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let got: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let want: Vec<[String; 3]> = sample()
        .iter()
        .map(|(ts, f, orig)| {
            let len = orig.unwrap_or(f.len() as u32).max(f.len() as u32);
            let cap = f.len().min(1000);
            [
                len.to_string(),
                cap.to_string(),
                format!("{}.{:09}", ts / 1_000_000_000, ts % 1_000_000_000),
            ]
        })
        .collect();
    assert_eq!(got.len(), want.len(), "tshark output:\n{text}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "tshark output:\n{text}");
    }
}
