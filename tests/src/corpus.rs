//! The shared capture corpus's manifest (`../shared/corpus/MANIFEST.tsv`): one row per file
//! with its link type, packet count and notes.

use std::path::PathBuf;

use crate::corpus_dir;

/// One row of the manifest.
#[derive(Clone, Debug)]
pub struct Entry {
    /// File name inside the corpus.
    pub file: String,
    /// Link type number (FCS bits of the header field masked off).
    pub link_type: u32,
    /// The link type as the manifest writes it (`1:ETHERNET`, `101:RAW;hdr=0x30000065`).
    pub link_type_text: String,
    /// Packet records.
    pub packets: u64,
    /// The manifest's note.
    pub note: String,
    /// pcap or pcapng, endianness, version.
    pub format: String,
}

impl Entry {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        corpus_dir().join(&self.file)
    }

    /// Whether the note says the file has damaged records.
    pub fn damaged(&self) -> bool {
        self.note.contains("file-level damage")
    }
}

/// Link types the capture reader converts to Ethernet (others are counted as
/// `unsupported_link_type`): Ethernet, BSD/OpenBSD loopback, raw IP, Linux cooked v1/v2.
pub fn convertible(link_type: u32) -> bool {
    matches!(link_type, 0 | 1 | 101 | 108 | 113 | 228 | 229 | 276)
}

/// Every row of the manifest.
pub fn manifest() -> Vec<Entry> {
    let path = corpus_dir().join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("MANIFEST.tsv has no column {name}"))
    };
    let (file, lt, packets, note, format) = (
        col("file"),
        col("link_type"),
        col("packets"),
        col("note"),
        col("format"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let lt_text = f[lt].to_string();
            let number = lt_text
                .split(':')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("bad link type {lt_text} in {l}"));
            Entry {
                file: f[file].to_string(),
                link_type: number,
                link_type_text: lt_text,
                packets: f[packets]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad packet count in {l}")),
                note: f[note].to_string(),
                format: f[format].to_string(),
            }
        })
        .collect()
}
