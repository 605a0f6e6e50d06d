//! Runs pcap-file 2.0.0's own readers over the whole corpus next to ours and
//! prints where they disagree. This is the evidence for the places where this
//! crate parses by hand instead of using pcap-file (see src/reader.rs).
//!
//! Asserted: wherever pcap-file does return a classic-pcap record, its bytes and
//! lengths equal ours (a differential check of our record parser). Printed: every
//! kind of disagreement, with counts.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use shadownet_capture::CaptureReader;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");

/// What our reader sees in a file: (timestamp, captured length, delivered bytes)
/// per record, plus whether it ended in an error.
struct Ours {
    records: Vec<(u64, u32, Vec<u8>)>,
    error: bool,
}

fn ours(path: &Path) -> Ours {
    let mut r = CaptureReader::open(path).expect("corpus file opens");
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut error = false;
    while let Some(next) = r.next_into(&mut buf) {
        match next {
            Ok(m) => records.push((m.timestamp_ns, m.captured_len, buf.clone())),
            Err(_) => error = true,
        }
    }
    Ours { records, error }
}

fn corpus_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v
}

#[test]
fn pcap_file_2_0_0_versus_ours() {
    let mut issues: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut note = |kind: &str, file: &Path| {
        issues.entry(kind.to_string()).or_default().push(
            file.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    };
    let mut compared = 0u64;
    let (mut theirs_total, mut ours_total) = (0usize, 0usize);
    for path in corpus_files() {
        let ours = ours(&path);
        ours_total += ours.records.len();
        let file = File::open(&path).expect("open");
        let head = std::fs::read(&path).expect("read");
        if head.starts_with(&[0x0A, 0x0D, 0x0D, 0x0A]) {
            let mut r = match PcapNgReader::new(file) {
                Ok(r) => r,
                Err(e) => {
                    note(&format!("pcapng: reader refused the file: {e}"), &path);
                    continue;
                }
            };
            let mut n = 0usize;
            let mut ts_wrong = false;
            while let Some(b) = r.next_block() {
                match b {
                    Ok(Block::EnhancedPacket(epb)) => {
                        if let Some((ts, _, _)) = ours.records.get(n)
                            && epb.timestamp.as_nanos() != u128::from(*ts)
                        {
                            ts_wrong = true;
                        }
                        n += 1;
                    }
                    Ok(Block::SimplePacket(_)) | Ok(Block::Packet(_)) => n += 1,
                    Ok(_) => {}
                    Err(e) => {
                        note(&format!("pcapng: block error: {e}"), &path);
                        break;
                    }
                }
            }
            if ts_wrong {
                note(
                    "pcapng: EPB timestamp ignores if_tsresol (µs units read as ns)",
                    &path,
                );
            }
            theirs_total += n;
            if n != ours.records.len() {
                note("pcapng: different packet count", &path);
            }
            continue;
        }
        let mut r = match PcapReader::new(file) {
            Ok(r) => r,
            Err(e) => {
                note(&format!("pcap: reader refused the file: {e}"), &path);
                continue;
            }
        };
        let field = u32::from(r.header().datalink);
        if field > 0xFFFF {
            note(
                "pcap: link-type field with upper bits kept (DataLink::Unknown)",
                &path,
            );
        }
        let mut n = 0usize;
        while let Some(p) = r.next_packet() {
            match p {
                Ok(p) => {
                    if let Some((ts, caplen, bytes)) = ours.records.get(n) {
                        let what = format!("{} record {n}", path.display());
                        assert_eq!(p.data.len(), *caplen as usize, "{what}");
                        assert_eq!(p.timestamp.as_nanos(), u128::from(*ts), "{what}");
                        if field == 1 {
                            assert_eq!(&p.data[..], &bytes[..], "{what}");
                        }
                        compared += 1;
                    }
                    n += 1;
                }
                Err(e) => {
                    let msg = e.to_string();
                    let kind = if msg.contains("orig_len > snap_len") {
                        "pcap: record refused: orig_len > snaplen (valid, cut-short frames)"
                            .to_string()
                    } else if msg.contains("incl_len > snap_len") {
                        "pcap: record refused: caplen > snaplen (libpcap accepts)".to_string()
                    } else if msg.contains("incl_len > orig_len") {
                        "pcap: record refused: caplen > orig_len (libpcap accepts)".to_string()
                    } else if msg.contains("nanosecond") {
                        "pcap: record refused: sub-second field >= 1 s".to_string()
                    } else {
                        format!(
                            "pcap: error without position: {msg:?} (damaged={})",
                            ours.error
                        )
                    };
                    note(&kind, &path);
                    break;
                }
            }
        }
        theirs_total += n;
        if n < ours.records.len() {
            note("pcap: stops early (records lost after its error)", &path);
        }
    }
    println!(
        "records: ours {ours_total}, pcap-file {theirs_total}; compared with pcap-file: {compared}"
    );
    for (kind, files) in &issues {
        println!(
            "{kind}: {} file(s), e.g. {}",
            files.len(),
            files.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        compared > 10_000,
        "the differential check must cover most records"
    );
}
