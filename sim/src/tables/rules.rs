//! Priority wildcard rule tables (ACL, mirror filters): TCAM semantics, software classifier.
//!
//! In hardware every valid slot is compared in one cycle and the highest-priority match wins
//! (ties: lowest slot). The model gets the same answer by compiling the rules, after any
//! change, into one list per scope (VNI or vport) sorted by priority and slot, with the rules
//! that match every scope merged in, and taking the first rule of the packet's list that
//! matches.

use std::{collections::HashMap, hash::BuildHasherDefault};

/// Hashes the u32 scope keys (VNIs, vports) of the classifier with one multiplication: the
/// keys are not attacker-chosen in a way that matters here (the host programs them), and
/// SipHash would cost more than the rest of a lookup.
#[derive(Default)]
struct ScopeHasher(u64);

impl std::hash::Hasher for ScopeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01B3);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (v as u64 ^ 0x9E37_79B9).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ScopeMap<V> = HashMap<u32, V, BuildHasherDefault<ScopeHasher>>;

use shadownet_hw::{
    layout::{
        LayoutError, Prefix,
        acl::{self, AclAction},
        ip_to_bytes,
        mirror_filter::{self, MirrorAction},
        rule::{Direction, DirectionMatch, Family, RuleMatch},
    },
    table::TableId,
};

use super::Window;

/// The action part of a rule table's entries.
pub trait RuleAction: Copy + std::fmt::Debug {
    /// Bytes of the action words.
    const LEN: usize;
    /// The rule's priority (higher wins).
    fn priority(&self) -> u16;
    /// Parses the action words.
    fn parse(bytes: &[u8; 16]) -> Result<Self, LayoutError>;
}

impl RuleAction for AclAction {
    const LEN: usize = acl::VALUE_LEN;
    fn priority(&self) -> u16 {
        self.priority
    }
    fn parse(bytes: &[u8; 16]) -> Result<Self, LayoutError> {
        AclAction::parse(bytes)
    }
}

impl RuleAction for MirrorAction {
    const LEN: usize = mirror_filter::VALUE_LEN;
    fn priority(&self) -> u16 {
        self.priority
    }
    fn parse(bytes: &[u8; 16]) -> Result<Self, LayoutError> {
        MirrorAction::parse(bytes)
    }
}

/// The fields of a packet a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketKey {
    /// Source address (wire form) as a big-endian integer.
    pub src: u128,
    /// Destination address (wire form) as a big-endian integer.
    pub dst: u128,
    /// IP protocol.
    pub protocol: u8,
    /// Source and destination ports, when the packet carries them.
    pub ports: Option<(u16, u16)>,
    /// The packet is IPv4.
    pub ipv4: bool,
    /// Direction relative to the VM.
    pub direction: Direction,
    /// A TCP connection attempt (SYN set, ACK clear).
    pub syn: bool,
}

impl PacketKey {
    /// Builds the key from wire-form addresses; `syn` says the packet is a TCP connection
    /// attempt.
    pub fn new(
        src: &[u8; 16],
        dst: &[u8; 16],
        protocol: u8,
        ports: Option<(u16, u16)>,
        direction: Direction,
        syn: bool,
    ) -> PacketKey {
        PacketKey {
            src: u128::from_be_bytes(*src),
            dst: u128::from_be_bytes(*dst),
            protocol,
            ports,
            ipv4: shadownet_hw::layout::is_v4_mapped(src),
            direction,
            syn,
        }
    }
}

/// A police rule's token bucket, kept as time: `credit_ps` is the picoseconds of refill the
/// bucket holds (one token is `1e12 / rate` ps of it), so refilling is one subtraction and
/// nothing is lost to rounding between packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    credit_ps: u64,
    /// When the credit was last brought up to date; `None` for a full bucket never used.
    last_ps: Option<u64>,
}

impl Bucket {
    const FULL: Bucket = Bucket {
        credit_ps: u64::MAX,
        last_ps: None,
    };

    fn take(&mut self, rate_pps: u32, burst: u32, now_ps: u64) -> bool {
        let token = 1_000_000_000_000 / u64::from(rate_pps.max(1));
        let full = token.saturating_mul(u64::from(burst.max(1)));
        let refill = self.last_ps.map_or(u64::MAX, |t| now_ps.saturating_sub(t));
        self.credit_ps = self.credit_ps.saturating_add(refill).min(full);
        self.last_ps = Some(self.last_ps.map_or(now_ps, |t| t.max(now_ps)));
        if self.credit_ps >= token {
            self.credit_ps -= token;
            true
        } else {
            false
        }
    }
}

/// A rule compiled for matching.
#[derive(Clone, Copy, Debug)]
pub struct CompiledRule<A> {
    /// Slot of the rule.
    pub slot: u32,
    /// Its action.
    pub action: A,
    src: u128,
    src_mask: u128,
    dst: u128,
    dst_mask: u128,
    protocol: Option<u8>,
    to_vm: bool,
    from_vm: bool,
    v4: bool,
    v6: bool,
    sport: (u16, u16),
    dport: (u16, u16),
    needs_ports: bool,
    syn_only: bool,
    /// Matches every IPv4 TCP or UDP packet of a direction (indexed by
    /// [`direction_index`]), whatever its addresses, ports and flags.
    every_v4: [bool; 2],
}

/// Index of a direction in [`CompiledRule`]'s per-direction flags.
#[inline(always)]
fn direction_index(d: Direction) -> usize {
    match d {
        Direction::ToVm => 0,
        Direction::FromVm => 1,
    }
}

/// What a scope's rules answer for every IPv4 TCP/UDP packet of one direction, as far as it
/// can be told without the packet ([`Classifier::answer_v4`]).
#[derive(Clone, Copy, Debug)]
pub enum RuleAnswer<'a, A> {
    /// The scope has no rules: no packet matches.
    NoRule,
    /// The scope's first rule matches every such packet: it wins for all of them.
    Always(&'a CompiledRule<A>),
    /// It depends on the packet: the scope's rules, to be walked in order.
    Walk(&'a [CompiledRule<A>]),
}

fn prefix_bits(p: Option<Prefix>) -> (u128, u128) {
    match p {
        None => (0, 0),
        Some(p) => {
            let len = p.wire_len() as u32;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            (u128::from_be_bytes(ip_to_bytes(p.addr())), mask)
        }
    }
}

impl<A: RuleAction> CompiledRule<A> {
    fn new(slot: u32, m: &RuleMatch, action: A) -> CompiledRule<A> {
        let (src, src_mask) = prefix_bits(m.src);
        let (dst, dst_mask) = prefix_bits(m.dst);
        // Validated at write: the family is consistent.
        let family = m.effective_family().unwrap_or(m.family);
        let mut rule = CompiledRule {
            slot,
            action,
            src,
            src_mask,
            dst,
            dst_mask,
            protocol: m.protocol,
            to_vm: m.direction != DirectionMatch::FromVm,
            from_vm: m.direction != DirectionMatch::ToVm,
            v4: family != Family::V6,
            v6: family != Family::V4,
            sport: (m.sport.lo, m.sport.hi),
            dport: (m.dport.lo, m.dport.hi),
            needs_ports: !(m.sport.is_any() && m.dport.is_any()),
            syn_only: m.tcp_syn,
            every_v4: [false; 2],
        };
        // Every IPv4 TCP/UDP packet (which always carries ports) of a direction matches when
        // nothing but the direction restricts the rule: no address bits (a zero-length
        // prefix whose address has bits set matches nothing), no protocol, no SYN
        // condition, full port ranges.
        let any_v4 = rule.src == 0
            && rule.src_mask == 0
            && rule.dst == 0
            && rule.dst_mask == 0
            && rule.protocol.is_none()
            && rule.v4
            && !rule.syn_only
            && rule.sport == (0, u16::MAX)
            && rule.dport == (0, u16::MAX);
        rule.every_v4 = [any_v4 && rule.to_vm, any_v4 && rule.from_vm];
        rule
    }

    /// Whether the rule matches the packet.
    #[inline]
    pub fn matches(&self, k: &PacketKey) -> bool {
        if k.src & self.src_mask != self.src || k.dst & self.dst_mask != self.dst {
            return false;
        }
        if let Some(p) = self.protocol
            && p != k.protocol
        {
            return false;
        }
        let dir_ok = match k.direction {
            Direction::ToVm => self.to_vm,
            Direction::FromVm => self.from_vm,
        };
        let family_ok = if k.ipv4 { self.v4 } else { self.v6 };
        if !(dir_ok && family_ok) || (self.syn_only && !k.syn) {
            return false;
        }
        if self.needs_ports {
            let Some((sp, dp)) = k.ports else {
                return false;
            };
            return self.sport.0 <= sp
                && sp <= self.sport.1
                && self.dport.0 <= dp
                && dp <= self.dport.1;
        }
        true
    }
}

/// Scopes below this (every vport, small VNIs) have their lists in an array indexed by scope
/// rather than in the hash map: no hashing on the way to a VM's rules.
const DENSE_SCOPES: u32 = 4096;

/// Rules compiled into per-scope lists.
pub struct Classifier<A> {
    /// Lists of scopes below [`DENSE_SCOPES`] with rules of their own, by scope.
    dense: Vec<Option<Vec<CompiledRule<A>>>>,
    /// Lists of the other scopes with rules of their own.
    by_scope: ScopeMap<Vec<CompiledRule<A>>>,
    /// The rules of every scope: the list of a scope without rules of its own.
    any_scope: Vec<CompiledRule<A>>,
}

impl<A: RuleAction> Classifier<A> {
    /// The winning rule for a packet in `scope`.
    #[inline]
    pub fn lookup(&self, scope: u32, key: &PacketKey) -> Option<&CompiledRule<A>> {
        self.lookup_with(scope, || *key)
    }

    /// [`Classifier::lookup`] with the packet's key built by `key` only when `scope` has
    /// rules to compare it with (a table without rules for the scope costs no key).
    #[inline(always)]
    pub fn lookup_with(
        &self,
        scope: u32,
        key: impl FnOnce() -> PacketKey,
    ) -> Option<&CompiledRule<A>> {
        let list = self.rules_of(scope);
        if list.is_empty() {
            return None;
        }
        let key = key();
        list.iter().find(|r| r.matches(&key))
    }

    /// What `scope`'s rules answer for IPv4 TCP/UDP packets of direction `dir`: no rule, one
    /// rule for all of them, or rules to walk per packet (the same winner as
    /// [`Classifier::lookup`] in every case; a test compares them).
    #[inline]
    pub fn answer_v4(&self, scope: u32, dir: Direction) -> RuleAnswer<'_, A> {
        let list = self.rules_of(scope);
        match list.first() {
            None => RuleAnswer::NoRule,
            Some(r) if r.every_v4[direction_index(dir)] => RuleAnswer::Always(r),
            Some(_) => RuleAnswer::Walk(list),
        }
    }

    #[inline]
    fn rules_of(&self, scope: u32) -> &[CompiledRule<A>] {
        let own = match self.dense.get(scope as usize) {
            Some(list) => list.as_ref(),
            None if scope < DENSE_SCOPES || self.by_scope.is_empty() => None,
            None => self.by_scope.get(&scope),
        };
        own.unwrap_or(&self.any_scope)
    }
}

#[derive(Clone, Copy, Debug)]
struct RuleSlot<A> {
    matches: RuleMatch,
    action: A,
    key: Window,
    value: Window,
}

/// A rule table: slots, their decoded rules and the compiled classifier.
pub struct RuleTable<A> {
    table: TableId,
    slots: Vec<Option<RuleSlot<A>>>,
    /// Per-slot count of packets the rule matched, for 1-in-N sampling; reset when the slot
    /// is written.
    matched: Vec<u64>,
    /// Per-slot token bucket of police rules; refilled to full when the slot is written.
    buckets: Vec<Bucket>,
    occupancy: u32,
    classifier: Option<Classifier<A>>,
}

impl<A: RuleAction> RuleTable<A> {
    /// An empty table of the contract's size.
    pub fn new(table: TableId) -> RuleTable<A> {
        let n = table.capacity() as usize;
        RuleTable {
            table,
            slots: vec![None; n],
            matched: vec![0; n],
            buckets: vec![Bucket::FULL; n],
            occupancy: 0,
            classifier: None,
        }
    }

    /// Which table this is.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// Occupied slots.
    pub fn occupancy(&self) -> u32 {
        self.occupancy
    }

    /// Writes a slot; returns whether it replaced a rule.
    pub fn write(
        &mut self,
        slot: u32,
        matches: RuleMatch,
        action: A,
        key: &Window,
        value: &Window,
    ) -> bool {
        let i = slot as usize;
        let replaced = self.slots[i].is_some();
        self.slots[i] = Some(RuleSlot {
            matches,
            action,
            key: *key,
            value: *value,
        });
        self.matched[i] = 0;
        self.buckets[i] = Bucket::FULL;
        if !replaced {
            self.occupancy += 1;
        }
        self.classifier = None;
        replaced
    }

    /// Clears a slot; returns whether it held a rule.
    pub fn delete(&mut self, slot: u32) -> bool {
        let i = slot as usize;
        let existed = self.slots[i].take().is_some();
        if existed {
            self.occupancy -= 1;
            self.matched[i] = 0;
            self.buckets[i] = Bucket::FULL;
            self.classifier = None;
        }
        existed
    }

    /// Clears every slot.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.matched.iter_mut().for_each(|m| *m = 0);
        self.buckets.iter_mut().for_each(|b| *b = Bucket::FULL);
        self.occupancy = 0;
        self.classifier = None;
    }

    /// KEY and VALUE words of a slot, as written.
    pub fn words(&self, slot: u32) -> Option<(Window, Window)> {
        self.slots[slot as usize].map(|s| (s.key, s.value))
    }

    /// The classifier for the current rules, compiled if the rules changed since last time.
    #[inline]
    pub fn classifier(&mut self) -> &Classifier<A> {
        if self.classifier.is_none() {
            self.recompile();
        }
        self.classifier.as_ref().expect("compiled just above")
    }

    /// The classifier if it is compiled for the current rules (after
    /// [`RuleTable::classifier`], until the next change).
    #[inline(always)]
    pub fn compiled(&self) -> Option<&Classifier<A>> {
        self.classifier.as_ref()
    }

    #[cold]
    fn recompile(&mut self) {
        self.classifier = Some(self.compile());
    }

    /// Counts a match of the rule in `slot` and returns how many it has had before this one.
    pub fn count_match(&mut self, slot: u32) -> u64 {
        let m = &mut self.matched[slot as usize];
        let before = *m;
        *m += 1;
        before
    }

    /// Takes a token from the bucket of the police rule in `slot` (`rate_pps` tokens a
    /// second, `burst` at most) for a packet admitted at `now_ps`; whether there was one.
    pub fn police(&mut self, slot: u32, rate_pps: u32, burst: u32, now_ps: u64) -> bool {
        self.buckets[slot as usize].take(rate_pps, burst, now_ps)
    }

    fn compile(&self) -> Classifier<A> {
        let mut any_scope = Vec::new();
        let mut by_scope: ScopeMap<Vec<CompiledRule<A>>> = ScopeMap::default();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(s) = slot else { continue };
            let rule = CompiledRule::new(i as u32, &s.matches, s.action);
            match s.matches.scope {
                None => any_scope.push(rule),
                Some(scope) => by_scope.entry(scope).or_default().push(rule),
            }
        }
        let order = |a: &CompiledRule<A>, b: &CompiledRule<A>| {
            b.action
                .priority()
                .cmp(&a.action.priority())
                .then(a.slot.cmp(&b.slot))
        };
        any_scope.sort_by(order);
        for list in by_scope.values_mut() {
            list.extend_from_slice(&any_scope);
            list.sort_by(order);
        }
        let mut dense = Vec::new();
        by_scope.retain(|&scope, list| {
            if scope >= DENSE_SCOPES {
                return true;
            }
            let i = scope as usize;
            if dense.len() <= i {
                dense.resize_with(i + 1, || None);
            }
            dense[i] = Some(std::mem::take(list));
            false
        });
        Classifier {
            dense,
            by_scope,
            any_scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadownet_hw::layout::{PortRange, acl::Verdict};

    fn action(priority: u16, verdict: Verdict, rule_id: u32) -> AclAction {
        AclAction {
            priority,
            verdict,
            rule_id,
        }
    }

    fn key(
        src: &str,
        dst: &str,
        proto: u8,
        ports: Option<(u16, u16)>,
        dir: Direction,
    ) -> PacketKey {
        let b = |s: &str| ip_to_bytes(s.parse().expect("literal"));
        PacketKey::new(&b(src), &b(dst), proto, ports, dir, false)
    }

    #[test]
    fn highest_priority_then_lowest_slot_wins() {
        let mut t = RuleTable::<AclAction>::new(TableId::Acl);
        let w = [0; 16];
        let any = RuleMatch::ANY;
        let web = RuleMatch {
            scope: Some(5001),
            protocol: Some(6),
            dport: PortRange::single(80),
            dst: Some("192.168.1.0/24".parse().expect("valid")),
            ..RuleMatch::ANY
        };
        t.write(10, any, action(1, Verdict::Deny, 1), &w, &w);
        t.write(20, web, action(100, Verdict::Allow, 2), &w, &w);
        t.write(5, web, action(100, Verdict::Deny, 3), &w, &w);
        let c = t.classifier();
        let http = key(
            "10.0.0.1",
            "192.168.1.5",
            6,
            Some((40000, 80)),
            Direction::ToVm,
        );
        assert_eq!(c.lookup(5001, &http).map(|r| r.action.rule_id), Some(3));
        assert_eq!(c.lookup(7, &http).map(|r| r.action.rule_id), Some(1));
        let ssh = key(
            "10.0.0.1",
            "192.168.1.5",
            6,
            Some((40000, 22)),
            Direction::ToVm,
        );
        assert_eq!(c.lookup(5001, &ssh).map(|r| r.action.rule_id), Some(1));
        t.delete(5);
        let c = t.classifier();
        assert_eq!(c.lookup(5001, &http).map(|r| r.action.rule_id), Some(2));
    }

    #[test]
    fn small_and_large_scopes_find_their_own_rules() {
        let mut t = RuleTable::<AclAction>::new(TableId::Acl);
        let w = [0; 16];
        let scoped = |scope| RuleMatch {
            scope: Some(scope),
            ..RuleMatch::ANY
        };
        t.write(0, RuleMatch::ANY, action(1, Verdict::Allow, 1), &w, &w);
        let last_dense = DENSE_SCOPES - 1;
        for (slot, scope) in [(1, 3), (2, last_dense), (3, DENSE_SCOPES), (4, 5001)] {
            t.write(
                slot,
                scoped(scope),
                action(2, Verdict::Deny, slot + 1),
                &w,
                &w,
            );
        }
        let c = t.classifier();
        let k = key("10.0.0.1", "10.0.0.2", 6, Some((1, 2)), Direction::ToVm);
        let winner = |scope| c.lookup(scope, &k).map(|r| r.action.rule_id);
        assert_eq!(winner(3), Some(2));
        assert_eq!(winner(DENSE_SCOPES - 1), Some(3));
        assert_eq!(winner(DENSE_SCOPES), Some(4));
        assert_eq!(winner(5001), Some(5));
        for other in [0, 4, 100, DENSE_SCOPES + 1, 5000, u32::MAX] {
            assert_eq!(winner(other), Some(1), "scope {other}");
        }
    }

    #[test]
    fn fields_each_restrict_the_match() {
        let mut t = RuleTable::<AclAction>::new(TableId::Acl);
        let w = [0; 16];
        let rule = RuleMatch {
            scope: None,
            direction: DirectionMatch::FromVm,
            family: Family::Any,
            protocol: Some(17),
            src: Some("10.1.0.0/16".parse().expect("valid")),
            dst: None,
            sport: PortRange::ANY,
            dport: PortRange::new(53, 53).expect("valid"),
            tcp_syn: false,
        };
        t.write(0, rule, action(1, Verdict::Allow, 1), &w, &w);
        let c = t.classifier();
        let dns = key(
            "10.1.2.3",
            "8.8.8.8",
            17,
            Some((5555, 53)),
            Direction::FromVm,
        );
        assert!(c.lookup(1, &dns).is_some());
        for miss in [
            key("10.1.2.3", "8.8.8.8", 17, Some((5555, 53)), Direction::ToVm),
            key(
                "10.2.2.3",
                "8.8.8.8",
                17,
                Some((5555, 53)),
                Direction::FromVm,
            ),
            key(
                "10.1.2.3",
                "8.8.8.8",
                6,
                Some((5555, 53)),
                Direction::FromVm,
            ),
            key(
                "10.1.2.3",
                "8.8.8.8",
                17,
                Some((5555, 54)),
                Direction::FromVm,
            ),
            key("10.1.2.3", "8.8.8.8", 17, None, Direction::FromVm),
            key("::a01:203", "::1", 17, Some((5555, 53)), Direction::FromVm),
        ] {
            assert!(c.lookup(1, &miss).is_none(), "{miss:?} should not match");
        }
    }

    /// `answer_v4` agrees with `lookup` for IPv4 TCP/UDP packets of both directions: no rule
    /// means no match, one rule for all means that rule wins for every packet.
    #[test]
    fn the_v4_answer_is_the_lookup() {
        let w = [0; 16];
        let scoped = |scope| RuleMatch {
            scope: Some(scope),
            ..RuleMatch::ANY
        };
        let mut t = RuleTable::<AclAction>::new(TableId::Acl);
        // Scope 1: a match-all rule. Scope 2: a from-VM-only match-all below a TCP rule.
        // Scope 3: match-all but IPv6 only. Scope 4: a source prefix. Scope 5: full port
        // ranges written out. Scope 6: SYN only.
        t.write(0, scoped(1), action(1, Verdict::Allow, 1), &w, &w);
        let from_vm = RuleMatch {
            direction: DirectionMatch::FromVm,
            ..scoped(2)
        };
        t.write(1, from_vm, action(1, Verdict::Allow, 2), &w, &w);
        let tcp = RuleMatch {
            protocol: Some(6),
            ..scoped(2)
        };
        t.write(2, tcp, action(5, Verdict::Deny, 3), &w, &w);
        let v6 = RuleMatch {
            family: Family::V6,
            ..scoped(3)
        };
        t.write(3, v6, action(1, Verdict::Allow, 4), &w, &w);
        let prefix = RuleMatch {
            src: Some(Prefix::new("10.0.0.0".parse().expect("literal"), 8).expect("valid")),
            ..scoped(4)
        };
        t.write(4, prefix, action(1, Verdict::Allow, 5), &w, &w);
        let ports = RuleMatch {
            sport: PortRange::new(0, u16::MAX).expect("valid"),
            dport: PortRange::new(0, u16::MAX).expect("valid"),
            ..scoped(5)
        };
        t.write(5, ports, action(1, Verdict::Allow, 6), &w, &w);
        let syn = RuleMatch {
            protocol: Some(6),
            tcp_syn: true,
            ..scoped(6)
        };
        t.write(6, syn, action(1, Verdict::Allow, 7), &w, &w);
        let c = t.classifier();
        let mut always = 0;
        for scope in 0..8 {
            for dir in [Direction::ToVm, Direction::FromVm] {
                let answer = c.answer_v4(scope, dir);
                if matches!(answer, RuleAnswer::Always(_)) {
                    always += 1;
                }
                for proto in [6u8, 17] {
                    for syn in [false, true] {
                        for ports in [(1, 2), (40000, 443), (0, 65535)] {
                            let b = |s: &str| ip_to_bytes(s.parse().expect("literal"));
                            let k = PacketKey::new(
                                &b("10.1.2.3"),
                                &b("192.168.0.9"),
                                proto,
                                Some(ports),
                                dir,
                                syn && proto == 6,
                            );
                            let found = c.lookup(scope, &k).map(|r| r.slot);
                            match answer {
                                RuleAnswer::NoRule => assert_eq!(found, None),
                                RuleAnswer::Always(r) => assert_eq!(found, Some(r.slot)),
                                RuleAnswer::Walk(list) => assert_eq!(
                                    found,
                                    list.iter().find(|r| r.matches(&k)).map(|r| r.slot)
                                ),
                            }
                        }
                    }
                }
            }
        }
        // Scopes 1 and 5, both ways; scope 2's match-all is behind its TCP rule.
        assert_eq!(always, 4);
    }
}
