//! The ground-truth file that goes with a generated capture (`labels.csv`): one row per
//! frame, in capture order, written by `shadowctl traffic gen` and read back when the
//! capture is replayed (a recording replayed through a shadow's loop is then counted per
//! attack class instead of as `unlabelled`).
//!
//! ```text
//! frame,timestamp,label,attack_class,flow,benign_class
//! 1,1704067200.000131072,benign,,1,dns
//! 2,1704067200.004097330,attack,port_scan,2,
//! ```

use super::{AttackClass, BenignClass, Label, LabelledFrame};

/// The header line. `frame` is 1-based, as Wireshark numbers frames; `timestamp` is the
/// capture's timestamp (seconds since the epoch, nanosecond digits).
pub const LABELS_HEADER: &str = "frame,timestamp,label,attack_class,flow,benign_class";

/// Why a labels file was refused: the line (1-based, the header is line 1) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LabelsError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The row of frame `index` (1-based) of a capture whose frames are stamped `epoch_ns +
/// f.ts_ns`.
pub fn label_line(index: u64, epoch_ns: u64, f: &LabelledFrame) -> String {
    let ts = epoch_ns + f.ts_ns;
    let (label, class) = match f.label {
        Label::Benign => ("benign", ""),
        Label::Attack(c) => ("attack", c.name()),
    };
    format!(
        "{index},{}.{:09},{label},{class},{},{}",
        ts / 1_000_000_000,
        ts % 1_000_000_000,
        f.flow,
        f.benign_class.map_or("", BenignClass::name)
    )
}

/// Reads a labels file: the label of every frame, frame 1 first. Rows must number the
/// frames 1, 2, 3, ... in order (one per frame of the capture); `label` is `benign` or
/// `attack`, and an attack row names its `attack_class`. The other columns are not needed
/// to replay and are not checked beyond being there.
pub fn parse_labels(text: &str) -> Result<Vec<Label>, LabelsError> {
    let bad = |line: usize, reason: String| LabelsError { line, reason };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, h)) if h.trim_end_matches('\r') == LABELS_HEADER => {}
        Some((n, h)) => {
            return Err(bad(
                n,
                format!("header is {h:?}, expected {LABELS_HEADER:?}"),
            ));
        }
        None => return Err(bad(1, "empty file (no header line)".into())),
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != 6 {
            return Err(bad(
                n,
                format!("{} columns, expected 6 ({LABELS_HEADER})", cols.len()),
            ));
        }
        let want = out.len() as u64 + 1;
        match cols[0].parse::<u64>() {
            Ok(f) if f == want => {}
            Ok(f) => {
                return Err(bad(
                    n,
                    format!(
                        "frame {f} where frame {want} was expected (one row per frame, in order)"
                    ),
                ));
            }
            Err(_) => return Err(bad(n, format!("frame {:?} is not a number", cols[0]))),
        }
        let label = match (cols[2], cols[3]) {
            ("benign", "") => Label::Benign,
            ("benign", c) => {
                return Err(bad(n, format!("benign row with attack class {c:?}")));
            }
            ("attack", "") => return Err(bad(n, "attack row without an attack class".into())),
            ("attack", c) => Label::Attack(
                c.parse::<AttackClass>()
                    .map_err(|e| bad(n, e.to_string()))?,
            ),
            (l, _) => {
                return Err(bad(
                    n,
                    format!("label {l:?} is neither 'benign' nor 'attack'"),
                ));
            }
        };
        out.push(label);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::trafficgen::{Scenario, generate};

    #[test]
    fn generated_labels_read_back() {
        let s = Scenario {
            duration_s: 3.0,
            benign_pps: 100.0,
            attacks: vec![
                "port_scan:start=1,duration=1,rate=50"
                    .parse()
                    .expect("spec"),
                "syn_flood:start=0.5,duration=1,rate=80"
                    .parse()
                    .expect("spec"),
            ],
            ..Scenario::default()
        };
        let frames: Vec<LabelledFrame> = generate(&s).expect("scenario").collect();
        let mut text = format!("{LABELS_HEADER}\n");
        for (i, f) in frames.iter().enumerate() {
            text += &label_line(i as u64 + 1, 1_700_000_000_000_000_000, f);
            text.push('\n');
        }
        let labels = parse_labels(&text).expect("reads back");
        let want: Vec<Label> = frames.iter().map(|f| f.label).collect();
        assert_eq!(labels, want);
        assert!(labels.contains(&Label::Attack(AttackClass::PortScan)));
        assert!(labels.contains(&Label::Attack(AttackClass::SynFlood)));
        assert!(labels.contains(&Label::Benign));
        // CRLF line ends (a file edited on another system) read the same.
        assert_eq!(parse_labels(&text.replace('\n', "\r\n")), Ok(want));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let h = LABELS_HEADER;
        let cases = [
            ("", 1, "empty file"),
            ("frame,label\n", 1, "header is"),
            (
                &format!("{h}\n1,0.1,benign,,1,web\n3,0.2,benign,,1,web\n") as &str,
                3,
                "frame 3 where frame 2",
            ),
            (&format!("{h}\nx,0.1,benign,,1,web\n"), 2, "not a number"),
            (&format!("{h}\n1,0.1,benign,,1\n"), 2, "5 columns"),
            (
                &format!("{h}\n1,0.1,attack,,1,\n"),
                2,
                "without an attack class",
            ),
            (
                &format!("{h}\n1,0.1,attack,ddos,1,\n"),
                2,
                "unknown attack class `ddos`",
            ),
            (
                &format!("{h}\n1,0.1,benign,port_scan,1,\n"),
                2,
                "benign row with attack class",
            ),
            (
                &format!("{h}\n1,0.1,evil,,1,\n"),
                2,
                "neither 'benign' nor 'attack'",
            ),
        ];
        for (text, line, what) in cases {
            let e = parse_labels(text).expect_err(what);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }
}
