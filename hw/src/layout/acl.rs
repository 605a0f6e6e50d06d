//! ACL rule (table `ACL`, indexed by slot): match words in `KEY` ([`super::rule`], scope =
//! VNI), action in `VALUE`:
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..2   | priority, u16 LE (higher wins; ties: lower slot) |
//! | 2      | verdict: 1 allow, 2 deny, 3 police      |
//! | 3      | reserved (0)                            |
//! | 4..8   | rule id, u32 LE (reported in traces)    |
//! | 8..12  | police: packets per second, u32 LE (≥ 1); otherwise reserved (0) |
//! | 12..16 | police: burst, packets, u32 LE (≥ 1); otherwise reserved (0) |
//!
//! A police rule forwards the packets it matches while its token bucket has a token (the
//! bucket holds `burst` tokens and gains `rate` a second) and drops the others as
//! `ACL_POLICED`: a rate limit where a block would hit the innocent too (a flood from spoofed
//! or many sources toward one destination).

use super::{LayoutError, check_reserved, get_u16, get_u32, put_u16, put_u32, rule::RuleMatch};

/// Bytes of the action words.
pub const VALUE_LEN: usize = 16;

mod field {
    pub const PRIORITY: usize = 0;
    pub const VERDICT: usize = 2;
    pub const RULE_ID: usize = 4;
    pub const RATE: usize = 8;
    pub const BURST: usize = 12;
}

/// What an ACL rule does to the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Drop, counted as `ACL_DENY`.
    Deny,
    /// Forward while the rule's token bucket has a token; drop the rest as `ACL_POLICED`.
    Police {
        /// Tokens gained per second (packets per second let through once the burst is spent).
        rate_pps: u32,
        /// Tokens the bucket holds when full (packets let through back to back).
        burst: u32,
    },
}

/// The action part of an ACL rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclAction {
    /// Priority: the matching rule with the highest priority decides.
    pub priority: u16,
    /// Allow or deny.
    pub verdict: Verdict,
    /// Identifier reported in traces and used by the control plane.
    pub rule_id: u32,
}

impl AclAction {
    /// Parses the action words.
    pub fn parse(b: &[u8; VALUE_LEN]) -> Result<AclAction, LayoutError> {
        let verdict = match b[field::VERDICT] {
            1 => Verdict::Allow,
            2 => Verdict::Deny,
            3 => {
                let rate_pps = get_u32(b, field::RATE);
                let burst = get_u32(b, field::BURST);
                if rate_pps == 0 {
                    return Err(LayoutError::PoliceZero("rate"));
                }
                if burst == 0 {
                    return Err(LayoutError::PoliceZero("burst"));
                }
                Verdict::Police { rate_pps, burst }
            }
            v => {
                return Err(LayoutError::BadEnum {
                    field: "acl verdict",
                    value: v as u32,
                });
            }
        };
        check_reserved(b, 3..4)?;
        if !matches!(verdict, Verdict::Police { .. }) {
            check_reserved(b, 8..16)?;
        }
        Ok(AclAction {
            priority: get_u16(b, field::PRIORITY),
            verdict,
            rule_id: get_u32(b, field::RULE_ID),
        })
    }

    /// Writes the action words.
    pub fn emit(&self, b: &mut [u8; VALUE_LEN]) {
        *b = [0; VALUE_LEN];
        put_u16(b, field::PRIORITY, self.priority);
        b[field::VERDICT] = match self.verdict {
            Verdict::Allow => 1,
            Verdict::Deny => 2,
            Verdict::Police { rate_pps, burst } => {
                put_u32(b, field::RATE, rate_pps);
                put_u32(b, field::BURST, burst);
                3
            }
        };
        put_u32(b, field::RULE_ID, self.rule_id);
    }
}

/// A whole ACL rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// What it matches (scope = VNI).
    pub matches: RuleMatch,
    /// What it does.
    pub action: AclAction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_offsets_and_round_trips() {
        let a = AclAction {
            priority: 0x0102,
            verdict: Verdict::Deny,
            rule_id: 0xA0B0C0D0,
        };
        let mut b = [0u8; VALUE_LEN];
        a.emit(&mut b);
        assert_eq!(
            b,
            [2, 1, 2, 0, 0xD0, 0xC0, 0xB0, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(AclAction::parse(&b), Ok(a));
        b[2] = 4;
        assert!(matches!(
            AclAction::parse(&b),
            Err(LayoutError::BadEnum { .. })
        ));
        b[2] = 1;
        b[9] = 1;
        assert_eq!(
            AclAction::parse(&b),
            Err(LayoutError::ReservedNotZero { offset: 9 })
        );
    }

    #[test]
    fn police_carries_rate_and_burst() {
        let a = AclAction {
            priority: 7,
            verdict: Verdict::Police {
                rate_pps: 1000,
                burst: 64,
            },
            rule_id: 9,
        };
        let mut b = [0u8; VALUE_LEN];
        a.emit(&mut b);
        assert_eq!(b, [7, 0, 3, 0, 9, 0, 0, 0, 0xE8, 3, 0, 0, 64, 0, 0, 0]);
        assert_eq!(AclAction::parse(&b), Ok(a));
        let mut zero_rate = b;
        zero_rate[8..12].fill(0);
        assert_eq!(
            AclAction::parse(&zero_rate),
            Err(LayoutError::PoliceZero("rate"))
        );
        let mut zero_burst = b;
        zero_burst[12..16].fill(0);
        assert_eq!(
            AclAction::parse(&zero_burst),
            Err(LayoutError::PoliceZero("burst"))
        );
    }
}
