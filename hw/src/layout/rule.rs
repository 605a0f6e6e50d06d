//! Match words of a priority wildcard rule (ACL and mirror filter), 48 bytes in `KEY`.
//!
//! | bytes  | field                                                                  |
//! |--------|------------------------------------------------------------------------|
//! | 0..16  | source prefix address (wire form)                                      |
//! | 16..32 | destination prefix address (wire form)                                 |
//! | 32..36 | scope: VNI (ACL) or vport (mirror filter), u32 LE                      |
//! | 36     | source prefix length on the 128-bit form (0 = any)                     |
//! | 37     | destination prefix length on the 128-bit form (0 = any)                |
//! | 38     | IP protocol                                                            |
//! | 39     | flags: 0x01 scope any, 0x02 protocol any, 0x04 toward the VM,          |
//! |        | 0x08 from the VM, 0x30 family (0x00 any, 0x10 IPv4, 0x20 IPv6),        |
//! |        | 0x40 TCP connection attempts only (SYN set, ACK clear; protocol 6)     |
//! | 40..44 | source port range lo, hi (u16 LE each)                                 |
//! | 44..48 | destination port range lo, hi (u16 LE each)                            |
//!
//! A rule matches an IP packet when every field matches. Port ranges other than "any" match
//! only packets whose ports the parser reads (TCP and UDP, unfragmented or first fragments).
//! Non-IP frames match no rule.

use super::{
    LayoutError, PortRange, Prefix, check_vni, get_16, get_u16, get_u32, ip_to_bytes, put_u16,
    put_u32,
};

mod field {
    use core::ops::Range;
    pub const SRC: Range<usize> = 0..16;
    pub const DST: Range<usize> = 16..32;
    pub const SCOPE: usize = 32;
    pub const SRC_LEN: usize = 36;
    pub const DST_LEN: usize = 37;
    pub const PROTO: usize = 38;
    pub const FLAGS: usize = 39;
    pub const SPORT_LO: usize = 40;
    pub const SPORT_HI: usize = 42;
    pub const DPORT_LO: usize = 44;
    pub const DPORT_HI: usize = 46;
}

/// Bytes of the match words.
pub const LEN: usize = 48;

const FLAG_SCOPE_ANY: u8 = 0x01;
const FLAG_PROTO_ANY: u8 = 0x02;
const FLAG_TO_VM: u8 = 0x04;
const FLAG_FROM_VM: u8 = 0x08;
const FAMILY_MASK: u8 = 0x30;
const FAMILY_V4: u8 = 0x10;
const FAMILY_V6: u8 = 0x20;
const FLAG_TCP_SYN: u8 = 0x40;
const FLAGS_DEFINED: u8 = 0x7F;

/// Direction of a packet relative to the VM whose port it crosses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Toward the VM: delivered to its VF (the VM's ingress).
    ToVm,
    /// From the VM: received on its VF (the VM's egress).
    FromVm,
}

impl Direction {
    /// The code carried in the Geneve shadow metadata option (1 toward, 2 from the VM).
    pub const fn code(self) -> u8 {
        match self {
            Direction::ToVm => 1,
            Direction::FromVm => 2,
        }
    }

    /// Name used in configuration and traces.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::ToVm => "to_vm",
            Direction::FromVm => "from_vm",
        }
    }
}

/// Which directions a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectionMatch {
    /// Toward the VM only.
    ToVm,
    /// From the VM only.
    FromVm,
    /// Both directions.
    Both,
}

impl DirectionMatch {
    /// Whether a packet in `dir` is covered.
    pub fn matches(self, dir: Direction) -> bool {
        matches!(
            (self, dir),
            (DirectionMatch::Both, _)
                | (DirectionMatch::ToVm, Direction::ToVm)
                | (DirectionMatch::FromVm, Direction::FromVm)
        )
    }
}

/// Address family a rule is limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 and IPv6.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// The match part of a priority wildcard rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleMatch {
    /// VNI (ACL) or vport (mirror filter); `None` matches every scope.
    pub scope: Option<u32>,
    /// Directions covered.
    pub direction: DirectionMatch,
    /// Address family; implied by the prefixes when they are given.
    pub family: Family,
    /// IP protocol; `None` matches every protocol.
    pub protocol: Option<u8>,
    /// Source prefix; `None` matches every source.
    pub src: Option<Prefix>,
    /// Destination prefix; `None` matches every destination.
    pub dst: Option<Prefix>,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
    /// Only TCP segments with SYN set and ACK clear (connection attempts); needs protocol 6.
    pub tcp_syn: bool,
}

impl RuleMatch {
    /// A rule that matches every IP packet in both directions.
    pub const ANY: RuleMatch = RuleMatch {
        scope: None,
        direction: DirectionMatch::Both,
        family: Family::Any,
        protocol: None,
        src: None,
        dst: None,
        sport: PortRange::ANY,
        dport: PortRange::ANY,
        tcp_syn: false,
    };

    /// The family the rule really applies to, taking the prefixes into account; `Err` when
    /// the prefixes and the family contradict each other (no packet could match).
    pub fn effective_family(&self) -> Result<Family, LayoutError> {
        let mut family = self.family;
        for prefix in [self.src, self.dst].into_iter().flatten() {
            let f = if prefix.addr().is_ipv4() {
                Family::V4
            } else {
                Family::V6
            };
            family = match (family, f) {
                (Family::Any, f) => f,
                (a, b) if a == b => a,
                _ => return Err(LayoutError::FamilyMismatch),
            };
        }
        Ok(family)
    }

    /// Checks the rule can be stored.
    pub fn validate(&self) -> Result<(), LayoutError> {
        self.effective_family()?;
        if self.tcp_syn && self.protocol != Some(6) {
            return Err(LayoutError::SynNeedsTcp);
        }
        Ok(())
    }

    /// Parses the match words.
    pub fn parse(b: &[u8; LEN], scope_is_vni: bool) -> Result<RuleMatch, LayoutError> {
        let flags = b[field::FLAGS];
        if flags & !FLAGS_DEFINED != 0 {
            return Err(LayoutError::BadEnum {
                field: "rule flags",
                value: flags as u32,
            });
        }
        let scope = if flags & FLAG_SCOPE_ANY != 0 {
            if get_u32(b, field::SCOPE) != 0 {
                return Err(LayoutError::ReservedNotZero {
                    offset: field::SCOPE,
                });
            }
            None
        } else {
            let v = get_u32(b, field::SCOPE);
            if scope_is_vni {
                check_vni(v)?;
            } else if v as usize >= crate::NUM_VPORTS {
                return Err(LayoutError::VportOutOfRange(v.min(u16::MAX as u32) as u16));
            }
            Some(v)
        };
        let direction = match flags & (FLAG_TO_VM | FLAG_FROM_VM) {
            FLAG_TO_VM => DirectionMatch::ToVm,
            FLAG_FROM_VM => DirectionMatch::FromVm,
            x if x == FLAG_TO_VM | FLAG_FROM_VM => DirectionMatch::Both,
            _ => {
                return Err(LayoutError::BadEnum {
                    field: "direction",
                    value: 0,
                });
            }
        };
        let family = match flags & FAMILY_MASK {
            0 => Family::Any,
            FAMILY_V4 => Family::V4,
            FAMILY_V6 => Family::V6,
            x => {
                return Err(LayoutError::BadEnum {
                    field: "family",
                    value: x as u32,
                });
            }
        };
        let protocol = if flags & FLAG_PROTO_ANY != 0 {
            if b[field::PROTO] != 0 {
                return Err(LayoutError::ReservedNotZero {
                    offset: field::PROTO,
                });
            }
            None
        } else {
            Some(b[field::PROTO])
        };
        let prefix = |addr: core::ops::Range<usize>, len_at: usize| {
            let len = b[len_at];
            let bytes = get_16(b, addr.start);
            if len == 0 {
                if bytes != [0; 16] {
                    return Err(LayoutError::HostBitsSet);
                }
                Ok(None)
            } else {
                Prefix::from_wire(bytes, len).map(Some)
            }
        };
        let rule = RuleMatch {
            scope,
            direction,
            family,
            protocol,
            src: prefix(field::SRC, field::SRC_LEN)?,
            dst: prefix(field::DST, field::DST_LEN)?,
            sport: PortRange::new(get_u16(b, field::SPORT_LO), get_u16(b, field::SPORT_HI))?,
            dport: PortRange::new(get_u16(b, field::DPORT_LO), get_u16(b, field::DPORT_HI))?,
            tcp_syn: flags & FLAG_TCP_SYN != 0,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Writes the match words.
    pub fn emit(&self, b: &mut [u8; LEN]) {
        *b = [0; LEN];
        let mut flags = 0u8;
        match self.scope {
            Some(v) => put_u32(b, field::SCOPE, v),
            None => flags |= FLAG_SCOPE_ANY,
        }
        flags |= match self.direction {
            DirectionMatch::ToVm => FLAG_TO_VM,
            DirectionMatch::FromVm => FLAG_FROM_VM,
            DirectionMatch::Both => FLAG_TO_VM | FLAG_FROM_VM,
        };
        flags |= match self.family {
            Family::Any => 0,
            Family::V4 => FAMILY_V4,
            Family::V6 => FAMILY_V6,
        };
        match self.protocol {
            Some(p) => b[field::PROTO] = p,
            None => flags |= FLAG_PROTO_ANY,
        }
        if let Some(p) = self.src {
            b[field::SRC].copy_from_slice(&ip_to_bytes(p.addr()));
            b[field::SRC_LEN] = p.wire_len();
        }
        if let Some(p) = self.dst {
            b[field::DST].copy_from_slice(&ip_to_bytes(p.addr()));
            b[field::DST_LEN] = p.wire_len();
        }
        if self.tcp_syn {
            flags |= FLAG_TCP_SYN;
        }
        b[field::FLAGS] = flags;
        put_u16(b, field::SPORT_LO, self.sport.lo);
        put_u16(b, field::SPORT_HI, self.sport.hi);
        put_u16(b, field::DPORT_LO, self.dport.lo);
        put_u16(b, field::DPORT_HI, self.dport.hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RuleMatch {
        RuleMatch {
            scope: Some(5001),
            direction: DirectionMatch::ToVm,
            family: Family::Any,
            protocol: Some(6),
            src: Some("10.0.0.0/8".parse().expect("valid")),
            dst: Some("192.168.1.0/24".parse().expect("valid")),
            sport: PortRange::ANY,
            dport: PortRange::new(80, 443).expect("valid"),
            tcp_syn: false,
        }
    }

    #[test]
    fn pins_offsets() {
        let mut b = [0u8; LEN];
        sample().emit(&mut b);
        assert_eq!(&b[0..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(&b[12..16], &[10, 0, 0, 0]);
        assert_eq!(&b[28..32], &[192, 168, 1, 0]);
        assert_eq!(&b[32..36], &5001u32.to_le_bytes());
        assert_eq!(b[36], 104);
        assert_eq!(b[37], 120);
        assert_eq!(b[38], 6);
        assert_eq!(b[39], FLAG_TO_VM);
        assert_eq!(&b[40..44], &[0, 0, 0xFF, 0xFF]);
        assert_eq!(&b[44..48], &[80, 0, 0xBB, 0x01]);
    }

    #[test]
    fn round_trips() {
        let mut b = [0u8; LEN];
        let syn = RuleMatch {
            tcp_syn: true,
            ..sample()
        };
        for rule in [sample(), RuleMatch::ANY, syn] {
            rule.emit(&mut b);
            assert_eq!(RuleMatch::parse(&b, true), Ok(rule));
        }
        syn.emit(&mut b);
        assert_eq!(b[39], FLAG_TO_VM | FLAG_TCP_SYN);
    }

    #[test]
    fn connection_attempts_need_tcp() {
        let mut b = [0u8; LEN];
        RuleMatch {
            tcp_syn: true,
            ..sample()
        }
        .emit(&mut b);
        b[38] = 17;
        assert_eq!(RuleMatch::parse(&b, true), Err(LayoutError::SynNeedsTcp));
        let udp = RuleMatch {
            protocol: Some(17),
            tcp_syn: true,
            ..sample()
        };
        assert_eq!(udp.validate(), Err(LayoutError::SynNeedsTcp));
    }

    #[test]
    fn rejects_what_can_never_match_or_is_malformed() {
        let mut b = [0u8; LEN];
        sample().emit(&mut b);
        let mut bad = b;
        bad[39] &= !(FLAG_TO_VM | FLAG_FROM_VM);
        assert!(matches!(
            RuleMatch::parse(&bad, true),
            Err(LayoutError::BadEnum {
                field: "direction",
                ..
            })
        ));
        let mut bad = b;
        bad[44..46].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(
            RuleMatch::parse(&bad, true),
            Err(LayoutError::PortRangeReversed { lo: 500, hi: 443 })
        );
        let mut bad = b;
        bad[15] = 1; // host bit inside 10.0.0.0/8
        assert_eq!(RuleMatch::parse(&bad, true), Err(LayoutError::HostBitsSet));
        let mut bad = b;
        bad[32..36].copy_from_slice(&0x0100_0000u32.to_le_bytes());
        assert_eq!(
            RuleMatch::parse(&bad, true),
            Err(LayoutError::VniOutOfRange(0x0100_0000))
        );
        let mixed = RuleMatch {
            dst: Some("2001:db8::/32".parse().expect("valid")),
            ..sample()
        };
        assert_eq!(mixed.validate(), Err(LayoutError::FamilyMismatch));
        let mut bad = b;
        bad[39] |= 0x80;
        assert!(matches!(
            RuleMatch::parse(&bad, true),
            Err(LayoutError::BadEnum { .. })
        ));
        let vport_rule = RuleMatch {
            scope: Some(64),
            ..RuleMatch::ANY
        };
        vport_rule.emit(&mut b);
        assert_eq!(
            RuleMatch::parse(&b, false),
            Err(LayoutError::VportOutOfRange(64))
        );
    }
}
