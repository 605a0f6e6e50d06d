//! Suricata's EVE timestamp (`2026-11-21T10:00:00.123456+0000`: microseconds, an offset
//! without a colon) and the RFC 3339 form syslog (RFC 5424) and ECS want.

use super::EveError;

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's
/// `civil_from_days`), so no calendar crate is needed for UTC formatting.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Unix time in nanoseconds as an EVE timestamp in UTC, to the microsecond (Suricata's
/// resolution): `2026-11-21T10:00:00.123456+0000`.
pub fn format_timestamp(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Checks an EVE timestamp (`YYYY-MM-DDTHH:MM:SS.fraction±HHMM`, the schema's pattern) and
/// returns its parts: everything up to the seconds, the fraction digits, and the offset sign
/// and digits.
fn split(ts: &str) -> Result<(&str, &str, &str), EveError> {
    let bad = || EveError::Timestamp(ts.to_owned());
    let b = ts.as_bytes();
    if b.len() < 19 + 2 + 5 || !b.is_ascii() {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.';
    let off = b.len() - 5;
    if !shape || !matches!(b[off], b'+' | b'-') || !digits(off + 1..b.len()) || off <= 20 {
        return Err(bad());
    }
    if !digits(20..off) {
        return Err(bad());
    }
    Ok((&ts[..19], &ts[20..off], &ts[off..]))
}

/// An EVE timestamp in RFC 3339 form, as RFC 5424 and ECS want it: at most six fraction
/// digits (RFC 5424's limit; Suricata writes six) and a `+HH:MM` offset (`Z` for UTC).
pub fn to_rfc3339(eve_ts: &str) -> Result<String, EveError> {
    let (base, frac, off) = split(eve_ts)?;
    let frac = &frac[..frac.len().min(6)];
    let off = if off == "+0000" || off == "-0000" {
        "Z".to_owned()
    } else {
        format!("{}:{}", &off[..3], &off[3..])
    };
    Ok(format!("{base}.{frac}{off}"))
}

/// Checks that `ts` has the EVE timestamp shape.
pub fn check(ts: &str) -> Result<(), EveError> {
    split(ts).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // date -u -d @1795255200 -> Sat Nov 21 10:00:00 UTC 2026
        assert_eq!(
            format_timestamp(1_795_255_200_123_456_789),
            "2026-11-21T10:00:00.123456+0000"
        );
        // A leap day: 2024-02-29T23:59:59 = 1709251199.
        assert_eq!(
            format_timestamp(1_709_251_199_000_001_000),
            "2024-02-29T23:59:59.000001+0000"
        );
    }

    #[test]
    fn rfc3339_keeps_the_offset() {
        assert_eq!(
            to_rfc3339("2026-11-21T10:00:00.123456+0000").unwrap(),
            "2026-11-21T10:00:00.123456Z"
        );
        assert_eq!(
            to_rfc3339("2019-03-04T11:22:33.1234567-0130").unwrap(),
            "2019-03-04T11:22:33.123456-01:30"
        );
        for bad in [
            "",
            "2026-11-21 10:00:00.1+0000",
            "2026-11-21T10:00:00+0000",
            "2026-11-21T10:00:00.x+0000",
            "2026-11-21T10:00:00.1+00:00",
        ] {
            assert!(to_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }
}
