//! Mirror filter rule (table `MIRROR_FILTER`, indexed by slot): match words in `KEY`
//! ([`super::rule`], scope = vport of the local VM), action in `VALUE`:
//!
//! | bytes  | field                                                         |
//! |--------|---------------------------------------------------------------|
//! | 0..2   | priority, u16 LE (higher wins; ties: lower slot)              |
//! | 2      | verdict: 1 mirror, 2 do not mirror                            |
//! | 3      | reserved (0)                                                  |
//! | 4..8   | rule id, u32 LE                                               |
//! | 8..10  | mirror session, u16 LE                                        |
//! | 10..12 | truncate the copy to this many bytes of the frame (0: whole)  |
//! | 12..16 | sample: copy one in N matching packets (N ≥ 1), u32 LE        |

use super::{LayoutError, check_reserved, get_u16, get_u32, put_u16, put_u32, rule::RuleMatch};

/// Bytes of the action words.
pub const VALUE_LEN: usize = 16;

/// Shortest truncation: an Ethernet header.
pub const MIN_TRUNCATE: u16 = 14;

mod field {
    pub const PRIORITY: usize = 0;
    pub const VERDICT: usize = 2;
    pub const RULE_ID: usize = 4;
    pub const SESSION: usize = 8;
    pub const TRUNCATE: usize = 10;
    pub const SAMPLE: usize = 12;
}

/// What a mirror filter does to the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MirrorVerdict {
    /// Send a copy to the session.
    Mirror,
    /// Send no copy (an exception inside a broader mirror rule).
    DoNotMirror,
}

/// The action part of a mirror filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MirrorAction {
    /// Priority: the matching rule with the highest priority decides.
    pub priority: u16,
    /// Mirror or not.
    pub verdict: MirrorVerdict,
    /// Identifier reported in traces.
    pub rule_id: u32,
    /// Mirror session the copies go to.
    pub session: u16,
    /// Truncate copies to this many bytes of the original frame; `None`: whole frame.
    pub truncate: Option<u16>,
    /// Copy one in this many matching packets (1: every packet).
    pub sample_one_in: u32,
}

impl MirrorAction {
    /// Parses the action words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<MirrorAction, LayoutError> {
        let verdict = match b[field::VERDICT] {
            1 => MirrorVerdict::Mirror,
            2 => MirrorVerdict::DoNotMirror,
            v => {
                return Err(LayoutError::BadEnum {
                    field: "mirror verdict",
                    value: v as u32,
                });
            }
        };
        check_reserved(b, 3..4)?;
        let session = get_u16(b, field::SESSION);
        if session as usize >= crate::NUM_SESSIONS {
            return Err(LayoutError::SessionOutOfRange(session));
        }
        let truncate = match get_u16(b, field::TRUNCATE) {
            0 => None,
            n if n < MIN_TRUNCATE => return Err(LayoutError::TruncateTooShort(n)),
            n => Some(n),
        };
        let sample_one_in = get_u32(b, field::SAMPLE);
        if sample_one_in == 0 {
            return Err(LayoutError::SampleZero);
        }
        Ok(MirrorAction {
            priority: get_u16(b, field::PRIORITY),
            verdict,
            rule_id: get_u32(b, field::RULE_ID),
            session,
            truncate,
            sample_one_in,
        })
    }

    /// Writes the action words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        put_u16(b, field::PRIORITY, self.priority);
        b[field::VERDICT] = match self.verdict {
            MirrorVerdict::Mirror => 1,
            MirrorVerdict::DoNotMirror => 2,
        };
        put_u32(b, field::RULE_ID, self.rule_id);
        put_u16(b, field::SESSION, self.session);
        put_u16(b, field::TRUNCATE, self.truncate.unwrap_or(0));
        put_u32(b, field::SAMPLE, self.sample_one_in);
    }
}

/// A whole mirror filter rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MirrorFilter {
    /// What it matches (scope = vport).
    pub matches: RuleMatch,
    /// What it does.
    pub action: MirrorAction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let a = MirrorAction {
            priority: 7,
            verdict: MirrorVerdict::Mirror,
            rule_id: 9,
            session: 3,
            truncate: Some(128),
            sample_one_in: 10,
        };
        let mut b = [0u8; VALUE_LEN];
        a.emit(&mut b);
        assert_eq!(b, [7, 0, 1, 0, 9, 0, 0, 0, 3, 0, 128, 0, 10, 0, 0, 0]);
        assert_eq!(MirrorAction::parse(&b), Ok(a));
    }

    #[test]
    fn rejects_bad_values() {
        let base = MirrorAction {
            priority: 0,
            verdict: MirrorVerdict::Mirror,
            rule_id: 0,
            session: 0,
            truncate: None,
            sample_one_in: 1,
        };
        let mut b = [0u8; VALUE_LEN];
        MirrorAction {
            sample_one_in: 0,
            ..base
        }
        .emit(&mut b);
        assert_eq!(MirrorAction::parse(&b), Err(LayoutError::SampleZero));
        MirrorAction {
            truncate: Some(13),
            ..base
        }
        .emit(&mut b);
        assert_eq!(
            MirrorAction::parse(&b),
            Err(LayoutError::TruncateTooShort(13))
        );
        MirrorAction {
            session: 64,
            ..base
        }
        .emit(&mut b);
        assert_eq!(
            MirrorAction::parse(&b),
            Err(LayoutError::SessionOutOfRange(64))
        );
    }
}
