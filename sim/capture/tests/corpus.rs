//! Every file of the shared capture corpus through the reader, checked against
//! MANIFEST.tsv: record counts, link types, format, cut-short frames, damage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shadownet_capture::{CaptureError, CaptureReader, Frame, link_type_name};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");

/// Link types whose frames this crate converts to Ethernet.
const CONVERTIBLE: [u32; 8] = [0, 1, 101, 108, 113, 228, 229, 276];

/// Frames of convertible link types that must stay unconverted: fuzzed raw-IP
/// records whose first byte is ASCII '0' (version nibble 3), and one 1-byte record.
const UNCONVERTED: [(&str, u64); 3] = [
    ("tcpdump-beep-oobr.pcap", 1),
    ("tcpdump-heap-overflow-1.pcap", 1),
    ("tcpdump-hoobr_rt6_print.pcap", 2),
];

struct Row {
    file: String,
    link_type: u32,
    link_name: String,
    packets: u64,
    note: String,
    format: String,
}

fn manifest() -> Vec<Row> {
    let text =
        std::fs::read_to_string(Path::new(CORPUS).join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header line").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let (c_file, c_lt, c_packets, c_note, c_format) = (
        col("file"),
        col("link_type"),
        col("packets"),
        col("note"),
        col("format"),
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // "1:ETHERNET" or "1:ETHERNET;hdr=0x30000001"
            let lt = f[c_lt].split(';').next().expect("link type");
            let (num, name) = lt.split_once(':').expect("number:name");
            Row {
                file: f[c_file].to_string(),
                link_type: num.parse().expect("link type number"),
                link_name: name.to_string(),
                packets: f[c_packets].parse().expect("packets"),
                note: f[c_note].to_string(),
                format: f[c_format].to_string(),
            }
        })
        .collect()
}

/// The number before `marker` in `text`, e.g. `number_before("2 pkt(s) caplen<len", " pkt(s) caplen<len")`.
fn number_before(text: &str, marker: &str) -> Option<u64> {
    let end = text.find(marker)?;
    let digits: String = text[..end]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// The number after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

#[derive(Default)]
struct Tally {
    files: u64,
    records: u64,
    ethernet: u64,
    unsupported: BTreeMap<&'static str, u64>,
}

#[test]
fn every_corpus_file_reads_as_the_manifest_says() {
    let rows = manifest();
    assert!(!rows.is_empty(), "manifest rows");

    let on_disk: BTreeSet<String> = std::fs::read_dir(CORPUS)
        .expect("corpus dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "MANIFEST.tsv" && n != "README.md")
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|r| r.file.clone()).collect();
    assert_eq!(on_disk, listed, "corpus files and manifest rows differ");

    let mut by_link: BTreeMap<u32, Tally> = BTreeMap::new();
    let mut total_records = 0u64;
    let mut damaged_files = Vec::new();
    let mut cut_short = 0u64;
    let mut failures = Vec::new();

    for row in &rows {
        let path: PathBuf = Path::new(CORPUS).join(&row.file);
        let reader = CaptureReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reader.format().to_string(),
            row.format,
            "{}: format",
            row.file
        );
        assert_eq!(reader.path(), path.as_path());

        let mut good = 0u64;
        let mut damage = None;
        let mut truncated = 0u64;
        let mut unconverted = 0u64;
        let tally = by_link.entry(row.link_type).or_default();
        tally.files += 1;
        for item in reader {
            match item {
                Ok(rec) => {
                    assert!(damage.is_none(), "{}: record after an error", row.file);
                    assert_eq!(rec.index, good, "{}: index", row.file);
                    assert_eq!(rec.link_type, row.link_type, "{}: link type", row.file);
                    assert_eq!(
                        link_type_name(rec.link_type),
                        row.link_name,
                        "{}: link name",
                        row.file
                    );
                    let len = match &rec.frame {
                        Frame::Ethernet(f) => {
                            tally.ethernet += 1;
                            f.len()
                        }
                        Frame::Unsupported {
                            link_type,
                            reason,
                            len,
                        } => {
                            assert_eq!(*link_type, rec.link_type);
                            *tally.unsupported.entry(reason).or_default() += 1;
                            if CONVERTIBLE.contains(link_type) {
                                assert_eq!(
                                    *reason, "raw frame is neither IPv4 nor IPv6",
                                    "{}",
                                    row.file
                                );
                                unconverted += 1;
                            }
                            *len
                        }
                    };
                    assert!(
                        len as u64 <= u64::from(rec.orig_len),
                        "{}: frame longer than orig_len",
                        row.file
                    );
                    if (len as u64) < u64::from(rec.orig_len) {
                        truncated += 1;
                    }
                    if rec.link_type == 1 {
                        assert!(
                            matches!(rec.frame, Frame::Ethernet(_)),
                            "{}: Ethernet link type",
                            row.file
                        );
                    }
                    if !CONVERTIBLE.contains(&rec.link_type) {
                        assert!(
                            matches!(
                                rec.frame,
                                Frame::Unsupported {
                                    reason: "link type is not convertible to Ethernet",
                                    ..
                                }
                            ),
                            "{}: non-convertible link type",
                            row.file
                        );
                    }
                    good += 1;
                }
                Err(e) => {
                    assert!(damage.is_none(), "{}: second error {e}", row.file);
                    damage = Some(e);
                }
            }
        }
        let expected_unconverted = UNCONVERTED
            .iter()
            .find(|(f, _)| *f == row.file)
            .map_or(0, |(_, n)| *n);
        assert_eq!(
            unconverted, expected_unconverted,
            "{}: unconverted frames",
            row.file
        );
        tally.records += good;
        total_records += good;
        cut_short += truncated;

        assert_eq!(good, row.packets, "{}: good records", row.file);
        let expected_cut = number_before(&row.note, " pkt(s) caplen<len").unwrap_or(0);
        if truncated != expected_cut {
            failures.push(format!(
                "{}: {truncated} cut-short frames, manifest says {expected_cut}",
                row.file
            ));
        }
        match (row.note.contains("file-level damage"), damage) {
            (false, None) => {}
            (
                true,
                Some(CaptureError::Damaged {
                    path: p,
                    record_index,
                    offset,
                    reason,
                }),
            ) => {
                assert_eq!(p, path);
                assert_eq!(
                    record_index, row.packets,
                    "{}: damaged record index",
                    row.file
                );
                let at = number_after(&row.note, "caplen ").and_then(|_| {
                    let tail =
                        &row.note[row.note.find("implausible caplen").expect("damage kind")..];
                    number_after(tail, " at ")
                });
                assert_eq!(Some(offset), at, "{}: damage offset", row.file);
                let caplen =
                    number_after(&row.note, "implausible caplen ").expect("caplen in note");
                assert!(
                    reason.contains(&format!("implausible caplen {caplen}")),
                    "{reason}"
                );
                damaged_files.push(format!(
                    "{} (after {good} records, at byte {offset})",
                    row.file
                ));
            }
            (want, got) => panic!("{}: damage expected={want}, got {got:?}", row.file),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every link type we convert occurs in the corpus and converts (LOOP and SLL2 are rare).
    for lt in CONVERTIBLE {
        if lt == 108 {
            continue; // no LOOP capture in the corpus; covered by unit tests
        }
        let t = by_link
            .get(&lt)
            .unwrap_or_else(|| panic!("no link type {lt} in the corpus"));
        assert!(t.ethernet > 0, "link type {lt} never converted");
    }

    println!(
        "corpus: {} files, {total_records} records, {cut_short} cut short of their wire length",
        rows.len()
    );
    println!(
        "{:>5} {:<24} {:>5} {:>7} {:>8} {:>11}",
        "lt", "name", "files", "records", "ethernet", "unsupported"
    );
    let mut unsupported_total = 0;
    for (lt, t) in &by_link {
        let u: u64 = t.unsupported.values().sum();
        unsupported_total += u;
        println!(
            "{lt:>5} {:<24} {:>5} {:>7} {:>8} {:>11}",
            link_type_name(*lt),
            t.files,
            t.records,
            t.ethernet,
            u
        );
    }
    println!("unsupported frames: {unsupported_total}");
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for t in by_link.values() {
        for (r, n) in &t.unsupported {
            *reasons.entry(r).or_default() += n;
        }
    }
    for (r, n) in reasons {
        println!("  {n:>6}  {r}");
    }
    println!("damaged files: {}", damaged_files.join("; "));
}

/// The allocation-light path and the iterator agree on every record of every file.
#[test]
fn next_into_matches_iterator_on_corpus() {
    for row in manifest() {
        let path = Path::new(CORPUS).join(&row.file);
        let mut a = CaptureReader::open(&path).expect("open");
        let b = CaptureReader::open(&path).expect("open");
        let mut buf = Vec::with_capacity(16);
        for item in b {
            let meta = a.next_into(&mut buf).expect("same number of items");
            match (item, meta) {
                (Ok(rec), Ok(meta)) => {
                    assert_eq!(
                        (rec.index, rec.timestamp_ns, rec.orig_len, rec.link_type),
                        (meta.index, meta.timestamp_ns, meta.orig_len, meta.link_type)
                    );
                    assert_eq!(meta.is_ethernet, meta.unsupported_reason.is_none());
                    match rec.frame {
                        Frame::Ethernet(f) => {
                            assert!(meta.is_ethernet);
                            assert_eq!(f, buf);
                        }
                        Frame::Unsupported { reason, len, .. } => {
                            assert_eq!(meta.unsupported_reason, Some(reason));
                            assert_eq!(len, buf.len());
                        }
                    }
                }
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                (x, y) => panic!("{}: iterator {x:?} vs next_into {y:?}", row.file),
            }
        }
        assert!(
            a.next_into(&mut buf).is_none(),
            "{}: next_into has more",
            row.file
        );
        assert!(a.next_into(&mut buf).is_none(), "fused");
    }
}
