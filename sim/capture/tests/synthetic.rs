//! Hand-made capture files: every magic, byte orders, resolutions, FCS bits,
//! multi-interface pcapng, damage and non-capture input.

use std::path::PathBuf;

use shadownet_capture::{
    CaptureError, CaptureFormat, CaptureReader, CaptureRecord, Frame, SYNTH_DST_MAC, SYNTH_SRC_MAC,
};

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write tmp file");
    path
}

fn read_all(name: &str, bytes: &[u8]) -> (CaptureFormat, Vec<Result<CaptureRecord, CaptureError>>) {
    let path = tmp(name, bytes);
    let r = CaptureReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    (r.format(), r.collect())
}

fn ok(items: Vec<Result<CaptureRecord, CaptureError>>) -> Vec<CaptureRecord> {
    items
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn ethernet(rec: &CaptureRecord) -> &[u8] {
    match &rec.frame {
        Frame::Ethernet(f) => f,
        other => panic!("record {} not Ethernet: {other:?}", rec.index),
    }
}

fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

/// A classic pcap file. `records`: (seconds, fraction, caplen field, len field, data).
fn pcap(
    be: bool,
    nanos: bool,
    version: (u16, u16),
    link_field: u32,
    records: &[(u32, u32, u32, u32, &[u8])],
) -> Vec<u8> {
    let magic: u32 = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(magic, be));
    v.extend_from_slice(&u16b(version.0, be));
    v.extend_from_slice(&u16b(version.1, be));
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&u32b(65535, be));
    v.extend_from_slice(&u32b(link_field, be));
    for (s, f, cap, len, data) in records {
        v.extend_from_slice(&u32b(*s, be));
        v.extend_from_slice(&u32b(*f, be));
        v.extend_from_slice(&u32b(*cap, be));
        v.extend_from_slice(&u32b(*len, be));
        v.extend_from_slice(data);
    }
    v
}

fn eth_frame(n: usize) -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x00]);
    f.extend((0..n.saturating_sub(14)).map(|i| i as u8));
    f.truncate(n);
    f
}

#[test]
fn all_four_pcap_magics() {
    let frame = eth_frame(60);
    for be in [false, true] {
        for nanos in [false, true] {
            let frac = if nanos { 123_456_789 } else { 123_456 };
            let bytes = pcap(
                be,
                nanos,
                (2, 4),
                1,
                &[
                    (1_700_000_000, frac, 60, 60, &frame),
                    (1_700_000_001, 0, 60, 60, &frame),
                ],
            );
            let name = format!("magic-{be}-{nanos}.cap");
            let (format, items) = read_all(&name, &bytes);
            assert_eq!(
                format,
                CaptureFormat::Pcap {
                    big_endian: be,
                    nanosecond: nanos,
                    version_major: 2,
                    version_minor: 4
                }
            );
            let recs = ok(items);
            assert_eq!(recs.len(), 2);
            let want_ns = if nanos { 123_456_789 } else { 123_456_000 };
            assert_eq!(
                recs[0].timestamp_ns,
                1_700_000_000 * 1_000_000_000 + want_ns
            );
            assert_eq!(recs[1].timestamp_ns, 1_700_000_001 * 1_000_000_000);
            assert_eq!(ethernet(&recs[0]), &frame[..]);
            assert_eq!((recs[0].index, recs[1].index), (0, 1));
            assert_eq!((recs[0].orig_len, recs[0].link_type), (60, 1));
        }
    }
}

#[test]
fn cut_short_frames_keep_orig_len() {
    let frame = eth_frame(40);
    let (_, items) = read_all(
        "cut.pcap",
        &pcap(false, false, (2, 4), 1, &[(1, 0, 40, 1514, &frame)]),
    );
    let recs = ok(items);
    assert_eq!(ethernet(&recs[0]), &frame[..]);
    assert_eq!(recs[0].orig_len, 1514);
}

#[test]
fn sub_second_field_overflow_carries_into_seconds() {
    let frame = eth_frame(20);
    let bytes = pcap(
        false,
        true,
        (2, 4),
        1,
        &[(10, 1_500_000_000, 20, 20, &frame)],
    );
    let recs = ok(read_all("ns-overflow.pcap", &bytes).1);
    assert_eq!(recs[0].timestamp_ns, 11_500_000_000);
}

#[test]
fn fcs_bits_in_link_type_field() {
    // F bit (26) set, FCS length 2 × 16 bits = 4 bytes.
    let field = 1 | 0x0400_0000 | (2 << 28);
    let wire = eth_frame(64); // last 4 bytes are the "FCS"
    let bytes = pcap(
        false,
        false,
        (2, 4),
        field,
        &[
            (1, 0, 64, 64, &wire),       // whole frame with FCS
            (2, 0, 40, 64, &wire[..40]), // cut before the FCS
            (3, 0, 62, 64, &wire[..62]), // cut inside the FCS
        ],
    );
    let recs = ok(read_all("fcs.pcap", &bytes).1);
    assert_eq!(recs[0].link_type, 1);
    assert_eq!(ethernet(&recs[0]), &wire[..60]);
    assert_eq!(recs[0].orig_len, 60);
    assert_eq!(ethernet(&recs[1]), &wire[..40]);
    assert_eq!(recs[1].orig_len, 60);
    assert_eq!(ethernet(&recs[2]), &wire[..60]);
    assert_eq!(recs[2].orig_len, 60);

    // Upper bits without the F bit (as in several tcpdump test files): mask, don't strip.
    let bytes = pcap(true, false, (2, 4), 0x3000_0001, &[(1, 0, 64, 64, &wire)]);
    let recs = ok(read_all("fcs-no-f.pcap", &bytes).1);
    assert_eq!(recs[0].link_type, 1);
    assert_eq!(ethernet(&recs[0]), &wire[..]);
    assert_eq!(recs[0].orig_len, 64);
}

#[test]
fn raw_ip_null_and_cooked_link_types_convert() {
    let ip4 = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let null_be: Vec<u8> = [&[0, 0, 0, 2][..], &ip4].concat();
    let bytes = pcap(false, false, (2, 4), 0, &[(1, 0, 24, 24, &null_be)]);
    let recs = ok(read_all("null.pcap", &bytes).1);
    let f = ethernet(&recs[0]);
    assert_eq!(&f[..6], &SYNTH_DST_MAC);
    assert_eq!(&f[6..12], &SYNTH_SRC_MAC);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    assert_eq!(&f[14..], &ip4);
    assert_eq!(
        recs[0].orig_len, 34,
        "4-byte loopback header became 14 bytes"
    );

    let bytes = pcap(false, false, (2, 4), 101, &[(1, 0, 20, 1000, &ip4)]);
    let recs = ok(read_all("raw.pcap", &bytes).1);
    assert_eq!(&ethernet(&recs[0])[14..], &ip4);
    assert_eq!(recs[0].orig_len, 1014);

    let mut sll = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xDD];
    sll.extend_from_slice(&[0x60, 0, 0, 0]);
    let bytes = pcap(false, false, (2, 4), 113, &[(1, 0, 20, 20, &sll)]);
    let recs = ok(read_all("sll.pcap", &bytes).1);
    assert_eq!(&ethernet(&recs[0])[12..], &[0x86, 0xDD, 0x60, 0, 0, 0]);
    assert_eq!(recs[0].orig_len, 18);

    let bytes = pcap(false, false, (2, 4), 105, &[(1, 0, 3, 3, &[1, 2, 3])]);
    let recs = ok(read_all("wifi.pcap", &bytes).1);
    assert_eq!(
        recs[0].frame,
        Frame::Unsupported {
            link_type: 105,
            reason: "link type is not convertible to Ethernet",
            len: 3
        }
    );
}

#[test]
fn pre_2_3_files_have_swapped_length_fields() {
    let frame = eth_frame(40);
    // Version 2.1: first field is the wire length, second the captured length.
    let bytes = pcap(
        true,
        false,
        (2, 1),
        1,
        &[(1, 0, 100, 40, &frame), (2, 0, 40, 40, &frame)],
    );
    let (format, items) = read_all("v21.pcap", &bytes);
    assert_eq!(format.to_string(), "pcap-be-v2.1");
    let recs = ok(items);
    assert_eq!(recs.len(), 2);
    assert_eq!((ethernet(&recs[0]).len(), recs[0].orig_len), (40, 100));
}

#[test]
fn damaged_records_end_iteration_with_one_error() {
    let frame = eth_frame(60);
    let good = pcap(
        false,
        false,
        (2, 4),
        1,
        &[(1, 0, 60, 60, &frame), (2, 0, 60, 60, &frame)],
    );

    // Data cut off by the end of the file.
    let mut cut = good.clone();
    cut.truncate(cut.len() - 10);
    let (_, items) = read_all("cut-data.pcap", &cut);
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    match &items[1] {
        Err(CaptureError::Damaged {
            path,
            record_index: 1,
            offset,
            reason,
        }) => {
            assert!(path.ends_with("cut-data.pcap"));
            assert_eq!(*offset, 24 + 16 + 60);
            assert!(reason.contains("cut off"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // Record header cut off.
    let mut cut = good[..24 + 76].to_vec();
    cut.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    let (_, items) = read_all("cut-header.pcap", &cut);
    assert_eq!(items.len(), 2);
    assert!(matches!(
        items[1],
        Err(CaptureError::Damaged {
            record_index: 1,
            offset: 100,
            ..
        })
    ));

    // Implausible caplen.
    let bad = pcap(
        false,
        false,
        (2, 4),
        1,
        &[(1, 0, 60, 60, &frame), (2, 0, 0x0100_0000, 60, &frame)],
    );
    let (_, items) = read_all("huge-caplen.pcap", &bad);
    assert_eq!(items.len(), 2);
    match &items[1] {
        Err(
            e @ CaptureError::Damaged {
                record_index: 1,
                offset: 100,
                reason,
                ..
            },
        ) => {
            assert!(reason.contains("implausible caplen 16777216"), "{reason}");
            assert!(e.to_string().contains("huge-caplen.pcap"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_captures_and_short_files() {
    let path = tmp("text.pcap", b"hello, world\n");
    match CaptureReader::open(&path) {
        Err(CaptureError::NotACapture { path: p, magic }) => {
            assert_eq!(p, path);
            assert_eq!(&magic, b"hell");
        }
        other => panic!("{other:?}"),
    }
    let path = tmp("empty.pcap", b"");
    assert!(matches!(
        CaptureReader::open(&path),
        Err(CaptureError::Empty { .. })
    ));
    let path = tmp("two.pcap", b"\xd4\xc3");
    assert!(matches!(
        CaptureReader::open(&path),
        Err(CaptureError::TooShort { len: 2, .. })
    ));
    let path = tmp(
        "half-header.pcap",
        &pcap(false, false, (2, 4), 1, &[])[..10],
    );
    match CaptureReader::open(&path) {
        Err(e @ CaptureError::BadHeader { .. }) => {
            assert!(e.to_string().contains("half-header.pcap"))
        }
        other => panic!("{other:?}"),
    }
    let path = tmp("half-shb.pcapng", &pcapng_shb(false)[..20]);
    assert!(matches!(
        CaptureReader::open(&path),
        Err(CaptureError::BadHeader { .. })
    ));
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-file.pcap");
    assert!(matches!(
        CaptureReader::open(&missing),
        Err(CaptureError::Open { .. })
    ));
    // A header-only pcap is a valid capture with no records.
    let (_, items) = read_all("header-only.pcap", &pcap(false, false, (2, 4), 1, &[]));
    assert!(items.is_empty());
}

// ---- pcapng ----

fn block(be: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let total = 12 + body.len() as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(block_type, be));
    v.extend_from_slice(&u32b(total, be));
    v.extend_from_slice(&body);
    v.extend_from_slice(&u32b(total, be));
    v
}

fn pcapng_shb(be: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u32b(0x1A2B_3C4D, be));
    body.extend_from_slice(&u16b(1, be));
    body.extend_from_slice(&u16b(0, be));
    body.extend_from_slice(&[0xFF; 8]);
    // shb_userappl option, then end of options.
    body.extend_from_slice(&u16b(4, be));
    body.extend_from_slice(&u16b(5, be));
    body.extend_from_slice(b"test\0\0\0\0");
    body.extend_from_slice(&[0; 4]);
    block(be, 0x0A0D_0D0A, &body)
}

fn option(be: bool, code: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&u16b(code, be));
    v.extend_from_slice(&u16b(value.len() as u16, be));
    v.extend_from_slice(value);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

fn idb(be: bool, link_type: u16, snaplen: u32, options: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16b(link_type, be));
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&u32b(snaplen, be));
    for o in options {
        body.extend_from_slice(o);
    }
    if !options.is_empty() {
        body.extend_from_slice(&[0; 4]);
    }
    block(be, 1, &body)
}

fn epb(be: bool, if_id: u32, units: u64, data: &[u8], orig_len: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u32b(if_id, be));
    body.extend_from_slice(&u32b((units >> 32) as u32, be));
    body.extend_from_slice(&u32b(units as u32, be));
    body.extend_from_slice(&u32b(data.len() as u32, be));
    body.extend_from_slice(&u32b(orig_len, be));
    body.extend_from_slice(data);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    body.extend_from_slice(&option(be, 1, b"a comment"));
    body.extend_from_slice(&[0; 4]);
    block(be, 6, &body)
}

#[test]
fn pcapng_two_interfaces_with_different_link_types_and_resolutions() {
    let eth = eth_frame(60);
    let ip6 = [0x60, 0, 0, 0, 0, 0, 59, 64];
    for be in [false, true] {
        let mut f = pcapng_shb(be);
        // Interface 0: Ethernet, default microseconds.
        f.extend(idb(be, 1, 65535, &[option(be, 2, b"eth0")]));
        // Interface 1: raw IP, 2^-20 s units, 100 s offset.
        f.extend(idb(
            be,
            101,
            0,
            &[option(be, 9, &[0x80 | 20]), option(be, 14, &u64b(100, be))],
        ));
        // A name-resolution block and an unknown block are skipped.
        f.extend(block(be, 4, &[0, 0, 0, 0]));
        f.extend(block(be, 0x0BAD, &[1, 2, 3, 4, 5, 6, 7, 8]));
        f.extend(epb(be, 0, 1_700_000_000_123_456, &eth, 60));
        f.extend(epb(be, 1, 3 << 20 | 1 << 19, &ip6, 8));
        f.extend(epb(be, 0, 1_700_000_001_000_000, &eth[..30], 1514));
        let (format, items) = read_all(&format!("two-if-{be}.pcapng"), &f);
        assert_eq!(format, CaptureFormat::PcapNg { big_endian: be });
        let recs = ok(items);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].link_type, 1);
        assert_eq!(recs[0].timestamp_ns, 1_700_000_000_123_456_000);
        assert_eq!(ethernet(&recs[0]), &eth[..]);
        assert_eq!(recs[1].link_type, 101);
        assert_eq!(recs[1].timestamp_ns, 103_500_000_000);
        assert_eq!(
            &ethernet(&recs[1])[12..],
            &[&[0x86, 0xDD][..], &ip6].concat()[..]
        );
        assert_eq!(recs[1].orig_len, 22);
        assert_eq!(ethernet(&recs[2]), &eth[..30]);
        assert_eq!(recs[2].orig_len, 1514);
        assert_eq!(
            recs.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }
}

fn u64b(v: u64, be: bool) -> [u8; 8] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

#[test]
fn pcapng_sections_simple_and_obsolete_packet_blocks() {
    let eth = eth_frame(42);
    let mut f = pcapng_shb(false);
    f.extend(idb(false, 1, 64, &[option(false, 9, &[9])])); // nanoseconds, snaplen 64
    f.extend(epb(false, 0, 5_000_000_007, &eth, 42));
    // Simple packet block: no timestamp (keeps the previous one), length from orig_len/snaplen.
    let mut spb = 100u32.to_le_bytes().to_vec();
    spb.extend(eth_frame(64));
    f.extend(block(false, 3, &spb));
    // Obsolete packet block, interface 0.
    let mut pb = Vec::new();
    pb.extend_from_slice(&0u16.to_le_bytes());
    pb.extend_from_slice(&0u16.to_le_bytes());
    pb.extend_from_slice(&0u32.to_le_bytes());
    pb.extend_from_slice(&9u32.to_le_bytes());
    pb.extend_from_slice(&42u32.to_le_bytes());
    pb.extend_from_slice(&42u32.to_le_bytes());
    pb.extend_from_slice(&eth);
    f.extend(block(false, 2, &pb));
    // New big-endian section: interfaces start again.
    f.extend(pcapng_shb(true));
    f.extend(idb(true, 229, 0, &[]));
    f.extend(epb(true, 0, 2_000_000, &[0x60, 1, 2, 3], 4));
    let (_, items) = read_all("sections.pcapng", &f);
    let recs = ok(items);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0].timestamp_ns, 5_000_000_007);
    assert_eq!(recs[1].timestamp_ns, 5_000_000_007);
    assert_eq!((ethernet(&recs[1]).len(), recs[1].orig_len), (64, 100));
    assert_eq!(recs[2].timestamp_ns, 9);
    assert_eq!(ethernet(&recs[2]), &eth[..]);
    assert_eq!(recs[3].link_type, 229);
    assert_eq!(recs[3].timestamp_ns, 2_000_000_000);
}

#[test]
fn pcapng_if_fcslen_strips_fcs() {
    let wire = eth_frame(64);
    let mut f = pcapng_shb(false);
    f.extend(idb(false, 1, 0, &[option(false, 13, &[32])]));
    f.extend(epb(false, 0, 0, &wire, 64));
    let recs = ok(read_all("fcslen.pcapng", &f).1);
    assert_eq!(ethernet(&recs[0]), &wire[..60]);
    assert_eq!(recs[0].orig_len, 60);
}

#[test]
fn pcapng_without_packets_and_damaged_pcapng() {
    let mut f = pcapng_shb(false);
    f.extend(idb(false, 1, 0, &[]));
    let (_, items) = read_all("no-packets.pcapng", &f);
    assert!(items.is_empty());

    // Packet on an interface that was never described.
    let mut g = f.clone();
    g.extend(epb(false, 0, 0, &eth_frame(20), 20));
    g.extend(epb(false, 3, 0, &eth_frame(20), 20));
    let (_, items) = read_all("bad-if.pcapng", &g);
    assert_eq!(items.len(), 2);
    assert!(
        matches!(&items[1], Err(CaptureError::Damaged { record_index: 1, reason, .. }) if reason.contains("interface 3"))
    );

    // Last block cut off.
    let mut h = f.clone();
    let at = h.len() as u64;
    h.extend(epb(false, 0, 0, &eth_frame(60), 60));
    h.truncate(h.len() - 5);
    let (_, items) = read_all("cut.pcapng", &h);
    assert_eq!(items.len(), 1);
    assert!(
        matches!(&items[0], Err(CaptureError::Damaged { record_index: 0, offset, .. }) if *offset == at)
    );

    // Leading and trailing block lengths disagree.
    let mut k = f.clone();
    let mut b = epb(false, 0, 0, &eth_frame(20), 20);
    let n = b.len();
    b[n - 4] ^= 0x40;
    k.extend(b);
    let (_, items) = read_all("mismatch.pcapng", &k);
    assert!(
        matches!(&items[0], Err(CaptureError::Damaged { reason, .. }) if reason.contains("disagree"))
    );

    // Captured length larger than the block.
    let mut m = f.clone();
    let mut b = epb(false, 0, 0, &eth_frame(20), 20);
    b[20..24].copy_from_slice(&500u32.to_le_bytes());
    m.extend(b);
    let (_, items) = read_all("caplen-past-block.pcapng", &m);
    assert!(
        matches!(&items[0], Err(CaptureError::Damaged { reason, .. }) if reason.contains("exceeds"))
    );

    // Unknown byte-order magic in the first section: not a capture.
    let mut n = pcapng_shb(false);
    n[8..12].copy_from_slice(b"ABCD");
    let path = tmp("bad-bom.pcapng", &n);
    assert!(matches!(
        CaptureReader::open(&path),
        Err(CaptureError::NotACapture { .. })
    ));
}

#[test]
fn next_into_reuses_the_buffer() {
    let frame = eth_frame(100);
    let bytes = pcap(
        false,
        false,
        (2, 4),
        101,
        &[(1, 0, 4, 4, &[0x45, 0, 0, 0]), (2, 0, 3, 3, &[0x10, 0, 0])],
    );
    let path = tmp("next-into.pcap", &bytes);
    let mut r = CaptureReader::open(&path).expect("open");
    let mut buf = frame; // arbitrary previous contents
    let m = r.next_into(&mut buf).expect("record").expect("ok");
    assert!(m.is_ethernet);
    assert_eq!((m.captured_len, m.orig_len, buf.len()), (4, 18, 18));
    let m = r.next_into(&mut buf).expect("record").expect("ok");
    assert!(!m.is_ethernet);
    assert_eq!(
        m.unsupported_reason,
        Some("raw frame is neither IPv4 nor IPv6")
    );
    assert_eq!(
        buf,
        vec![0x10, 0, 0],
        "unsupported frames come back as captured"
    );
    assert!(r.next_into(&mut buf).is_none());
    assert_eq!(r.records_read(), 2);
}
