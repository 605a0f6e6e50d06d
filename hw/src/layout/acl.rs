//! ACL rule (table `ACL`, indexed by slot): match words in `KEY` ([`super::rule`], scope =
//! VNI), action in `VALUE`:
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..2   | priority, u16 LE (higher wins; ties: lower slot) |
//! | 2      | verdict: 1 allow, 2 deny                |
//! | 3      | reserved (0)                            |
//! | 4..8   | rule id, u32 LE (reported in traces)    |
//! | 8..16  | reserved (0)                            |

use super::{LayoutError, check_reserved, get_u16, get_u32, put_u16, put_u32, rule::RuleMatch};

/// Bytes of the action words.
pub const VALUE_LEN: usize = 16;

mod field {
    pub const PRIORITY: usize = 0;
    pub const VERDICT: usize = 2;
    pub const RULE_ID: usize = 4;
}

/// What an ACL rule does to the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Drop, counted as `ACL_DENY`.
    Deny,
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
            v => {
                return Err(LayoutError::BadEnum {
                    field: "acl verdict",
                    value: v as u32,
                });
            }
        };
        check_reserved(b, 3..4)?;
        check_reserved(b, 8..16)?;
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
        b[2] = 3;
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
}
