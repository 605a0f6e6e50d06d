//! Intel HEX, the text form vendor flashing tools take: data records (type 00) of up to 16
//! bytes, extended linear address records (04) for addresses past 64 KiB, a start linear
//! address record (05) for the entry point, and the end-of-file record (01).

/// Why a HEX file cannot be read; `line` is 1-based.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IhexError {
    /// A line that is not a record.
    #[error("line {line}: {what}")]
    Malformed {
        /// The line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A record whose checksum does not match.
    #[error(
        "line {line}: checksum {stated:#04x} does not match the record (expected {computed:#04x})"
    )]
    Checksum {
        /// The line.
        line: usize,
        /// Checksum on the line.
        stated: u8,
        /// Checksum of the record's bytes.
        computed: u8,
    },
    /// No end-of-file record.
    #[error("no end-of-file record (:00000001FF): the file is truncated")]
    NoEnd,
    /// Data records that leave a gap or overlap.
    #[error(
        "line {line}: data at {addr:#010x} is not contiguous with the data before it (expected {expected:#010x})"
    )]
    NotContiguous {
        /// The line.
        line: usize,
        /// Address of the record.
        addr: u32,
        /// Address expected.
        expected: u32,
    },
}

fn record(out: &mut String, kind: u8, addr: u16, data: &[u8]) {
    let mut sum = data.len() as u8;
    sum = sum
        .wrapping_add((addr >> 8) as u8)
        .wrapping_add(addr as u8)
        .wrapping_add(kind);
    out.push_str(&format!(":{:02X}{:04X}{:02X}", data.len(), addr, kind));
    for b in data {
        out.push_str(&format!("{b:02X}"));
        sum = sum.wrapping_add(*b);
    }
    out.push_str(&format!("{:02X}\n", sum.wrapping_neg()));
}

/// `bytes` placed at `base`, as Intel HEX, with `entry` as the start linear address.
pub fn write(bytes: &[u8], base: u32, entry: Option<u32>) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    let mut upper: Option<u16> = None;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let addr = base.wrapping_add(offset as u32);
        let hi = (addr >> 16) as u16;
        if upper != Some(hi) {
            record(&mut out, 0x04, 0, &hi.to_be_bytes());
            upper = Some(hi);
        }
        // A record never crosses a 64 KiB boundary.
        let room = 0x1_0000 - (addr & 0xFFFF) as usize;
        let n = (bytes.len() - offset).min(16).min(room);
        record(&mut out, 0x00, addr as u16, &bytes[offset..offset + n]);
        offset += n;
    }
    if let Some(e) = entry {
        record(&mut out, 0x05, 0, &e.to_be_bytes());
    }
    record(&mut out, 0x01, 0, &[]);
    out
}

/// Parsed HEX: the bytes from the lowest address on, and the start address if given.
#[derive(Debug, PartialEq, Eq)]
pub struct Hex {
    /// Address of the first byte.
    pub base: u32,
    /// The bytes, contiguous.
    pub bytes: Vec<u8>,
    /// Start linear address (record 05).
    pub entry: Option<u32>,
}

/// Reads Intel HEX whose data records are contiguous and ascending (as [`write()`] makes them
/// and as images are); every record's checksum is checked.
pub fn read(text: &str) -> Result<Hex, IhexError> {
    let mut upper = 0u32;
    let mut base: Option<u32> = None;
    let mut bytes = Vec::new();
    let mut entry = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let bad = |what: &str| IhexError::Malformed {
            line,
            what: what.to_string(),
        };
        let Some(hex) = l.strip_prefix(':') else {
            return Err(bad("does not start with ':'"));
        };
        if hex.len() % 2 != 0 || hex.len() < 10 {
            return Err(bad("not a whole record"));
        }
        let mut rec = Vec::with_capacity(hex.len() / 2);
        for k in (0..hex.len()).step_by(2) {
            let b = u8::from_str_radix(&hex[k..k + 2], 16)
                .map_err(|_| bad(&format!("'{}' is not a hex byte", &hex[k..k + 2])))?;
            rec.push(b);
        }
        let n = rec[0] as usize;
        if rec.len() != n + 5 {
            return Err(bad(&format!(
                "byte count {n} does not match the record's {} data bytes",
                rec.len() - 5
            )));
        }
        let stated = rec[n + 4];
        let computed = rec[..n + 4]
            .iter()
            .fold(0u8, |s, b| s.wrapping_add(*b))
            .wrapping_neg();
        if stated != computed {
            return Err(IhexError::Checksum {
                line,
                stated,
                computed,
            });
        }
        let addr16 = u16::from_be_bytes([rec[1], rec[2]]);
        let data = &rec[4..4 + n];
        match rec[3] {
            0x00 => {
                let addr = upper | u32::from(addr16);
                let start = *base.get_or_insert(addr);
                let expected = start.wrapping_add(bytes.len() as u32);
                if addr != expected {
                    return Err(IhexError::NotContiguous {
                        line,
                        addr,
                        expected,
                    });
                }
                bytes.extend_from_slice(data);
            }
            0x01 => {
                return Ok(Hex {
                    base: base.unwrap_or(0),
                    bytes,
                    entry,
                });
            }
            0x02 if n == 2 => upper = u32::from(u16::from_be_bytes([data[0], data[1]])) << 4,
            0x04 if n == 2 => upper = u32::from(u16::from_be_bytes([data[0], data[1]])) << 16,
            0x03 if n == 4 => {}
            0x05 if n == 4 => {
                entry = Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]))
            }
            t => return Err(bad(&format!("record type {t:02X} with {n} data bytes"))),
        }
    }
    Err(IhexError::NoEnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_64k_boundaries() {
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let text = write(&bytes, 0x0000_FFF8, Some(0x2000_0000));
        assert!(text.starts_with(":020000040000FA\n"));
        assert!(text.ends_with(":00000001FF\n"));
        let back = read(&text).expect("own output parses");
        assert_eq!(back.base, 0xFFF8);
        assert_eq!(back.entry, Some(0x2000_0000));
        assert_eq!(back.bytes, bytes);
    }

    #[test]
    fn known_record() {
        // The classic example record from the Intel HEX specification.
        let text = ":10010000214601360121470136007EFE09D2190140\n:00000001FF\n";
        let h = read(text).expect("parses");
        assert_eq!(h.base, 0x100);
        assert_eq!(&h.bytes[..4], &[0x21, 0x46, 0x01, 0x36]);
        assert_eq!(
            write(&h.bytes, 0x100, None).lines().nth(1),
            Some(text.lines().next().unwrap_or(""))
        );
    }

    #[test]
    fn errors_name_the_line() {
        let good = write(&[1, 2, 3, 4, 5], 0, None);
        let mut lines: Vec<String> = good.lines().map(String::from).collect();
        // Line 2 is the data record: damage its checksum.
        let l = &mut lines[1];
        let last = l.pop().expect("non-empty");
        l.push(if last == '0' { '1' } else { '0' });
        let text = lines.join("\n");
        assert!(matches!(
            read(&text),
            Err(IhexError::Checksum { line: 2, .. })
        ));
        let msg = read(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("line 2: checksum"), "{msg}");
        assert_eq!(
            read(":00000001FF\nxyz"),
            Ok(Hex {
                base: 0,
                bytes: vec![],
                entry: None
            })
        );
        assert!(matches!(
            read("garbage\n"),
            Err(IhexError::Malformed { line: 1, .. })
        ));
        assert_eq!(
            read(&good.replace(":00000001FF\n", "")),
            Err(IhexError::NoEnd)
        );
    }
}
