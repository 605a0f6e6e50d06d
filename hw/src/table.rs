//! Tables: ids, kinds, capacities, and the geometry and hash of exact-match table memory.
//!
//! Indexed tables (VPORT, ACL, MIRROR_FILTER) are arrays of slots the host addresses by
//! `TBL_CMD.INDEX`; ACL and MIRROR_FILTER are TCAM-like: every valid slot is compared and the
//! matching rule with the highest priority wins (ties: lowest slot).
//!
//! Exact tables (VNI, MAP, SHADOW_MAP) are bucketed cuckoo hash tables: `2^buckets_log2`
//! buckets of [`exact::WAYS`] slots. A key may live in one of two buckets chosen by
//! [`exact::hash`]; the pipeline reads both buckets in parallel (one table-memory latency,
//! two reads: the probe count is bounded at 2), and compares a per-slot tag before the full
//! key. Inserting may displace entries to their other bucket: a breadth-first search over at
//! most [`exact::SEARCH_BUDGET`] slots for a chain of at most [`exact::MAX_DISPLACEMENTS`]
//! moves ending in a free slot; when there is none the device answers `FULL`.

/// A table of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TableId {
    /// VF port bindings (indexed by port).
    Vport = 0,
    /// Virtual networks (exact, key VNI).
    Vni = 1,
    /// ACL rules (indexed, priority wildcard).
    Acl = 2,
    /// Overlay to substrate map (exact, key VNI + overlay address).
    Map = 3,
    /// Mirror filter rules (indexed, priority wildcard).
    MirrorFilter = 4,
    /// Production to shadow map (exact, key session + VNI + address).
    ShadowMap = 5,
}

/// How a table is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// Slots addressed by index.
    Indexed {
        /// Number of slots.
        slots: u32,
    },
    /// Bucketed cuckoo hash on the key.
    Exact {
        /// log2 of the number of buckets.
        buckets_log2: u32,
    },
}

impl TableId {
    /// Every table, in id order.
    pub const ALL: [TableId; 6] = [
        TableId::Vport,
        TableId::Vni,
        TableId::Acl,
        TableId::Map,
        TableId::MirrorFilter,
        TableId::ShadowMap,
    ];

    /// The table with this id.
    pub fn from_u8(id: u8) -> Option<TableId> {
        TableId::ALL.get(id as usize).copied()
    }

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            TableId::Vport => "vport",
            TableId::Vni => "vni",
            TableId::Acl => "acl",
            TableId::Map => "map",
            TableId::MirrorFilter => "mirror_filter",
            TableId::ShadowMap => "shadow_map",
        }
    }

    /// How the table is addressed, and its size.
    pub const fn kind(self) -> TableKind {
        match self {
            TableId::Vport => TableKind::Indexed {
                slots: crate::NUM_VPORTS as u32,
            },
            TableId::Vni => TableKind::Exact { buckets_log2: 9 },
            TableId::Acl => TableKind::Indexed { slots: 8192 },
            TableId::Map => TableKind::Exact { buckets_log2: 18 },
            TableId::MirrorFilter => TableKind::Indexed { slots: 4096 },
            TableId::ShadowMap => TableKind::Exact { buckets_log2: 14 },
        }
    }

    /// Number of slots (`TBL_CMD.CAPACITY[id]`).
    pub const fn capacity(self) -> u32 {
        match self.kind() {
            TableKind::Indexed { slots } => slots,
            TableKind::Exact { buckets_log2 } => (1 << buckets_log2) * exact::WAYS as u32,
        }
    }

    /// Bytes of the KEY window the table uses (match words for rule tables).
    pub const fn key_len(self) -> usize {
        use crate::layout::{map, rule, shadow_map, vni};
        match self {
            TableId::Vport => 0,
            TableId::Vni => vni::KEY_LEN,
            TableId::Acl | TableId::MirrorFilter => rule::LEN,
            TableId::Map => map::KEY_LEN,
            TableId::ShadowMap => shadow_map::KEY_LEN,
        }
    }

    /// Bytes of the VALUE window the table uses.
    pub const fn value_len(self) -> usize {
        use crate::layout::{acl, map, mirror_filter, shadow_map, vni, vport};
        match self {
            TableId::Vport => vport::VALUE_LEN,
            TableId::Vni => vni::VALUE_LEN,
            TableId::Acl => acl::VALUE_LEN,
            TableId::Map => map::VALUE_LEN,
            TableId::MirrorFilter => mirror_filter::VALUE_LEN,
            TableId::ShadowMap => shadow_map::VALUE_LEN,
        }
    }
}

impl core::fmt::Display for TableId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Geometry and hash of exact-match table memory, shared by the pipeline (lookups) and the
/// table maintenance (inserts, deletes) so that both agree on where a key may live.
pub mod exact {
    /// Slots per bucket.
    pub const WAYS: usize = 8;
    /// Words of key an exact table stores (the longest key is 24 bytes).
    pub const KEY_WORDS: usize = 6;
    /// Words of value an exact table stores (the longest value is 32 bytes).
    pub const VALUE_WORDS: usize = 8;
    /// Longest chain of displacements an insert may make: a key whose placement needs more
    /// moves is answered `FULL`.
    pub const MAX_DISPLACEMENTS: usize = 8;
    /// Slots an insert may examine while searching for that chain.
    pub const SEARCH_BUDGET: usize = 500;

    /// The key words an exact table hashes and compares.
    pub type Key = [u32; KEY_WORDS];
    /// The value words an exact table stores.
    pub type Value = [u32; VALUE_WORDS];

    /// 64-bit hash of a key (a multiply-xorshift mix: two multipliers per word in hardware).
    #[inline]
    pub fn hash(key: &Key) -> u64 {
        hash_finish(key.iter().fold(HASH_START, |h, &w| hash_word(h, w)))
    }

    /// The state [`hash`] starts from. A key's leading words that many look-ups share (a
    /// network's VNI, the IPv4-mapped prefix) can be folded in once with [`hash_word`] and
    /// the state kept: [`hash_finish`] of the state after every word is [`hash`] of the key.
    pub const HASH_START: u64 = 0x5348_4E43_0000_0001;

    /// [`hash`]'s state after one more key word.
    #[inline(always)]
    pub const fn hash_word(h: u64, w: u32) -> u64 {
        let h = (h ^ w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }

    /// [`hash`] of a key from its state after the key's last word.
    #[inline(always)]
    pub const fn hash_finish(h: u64) -> u64 {
        let h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 32)
    }

    /// The two buckets a key with hash `h` may live in; always distinct.
    #[inline]
    pub fn buckets(h: u64, buckets_log2: u32) -> (u32, u32) {
        let mask = (1u32 << buckets_log2) - 1;
        let b0 = (h as u32) & mask;
        let mut b1 = ((h >> 32) as u32 ^ 0x5BD1_E995) & mask;
        if b1 == b0 {
            b1 ^= 1;
        }
        (b0, b1)
    }

    /// The tag stored in a slot for a key with hash `h`: never 0 (0 marks an empty slot).
    #[inline]
    pub fn tag(h: u64) -> u32 {
        ((h >> 16) as u32) | 0x8000_0000
    }

    /// The other bucket of a key that lives in `bucket` (for displacement).
    #[inline]
    pub fn alternate(h: u64, buckets_log2: u32, bucket: u32) -> u32 {
        let (b0, b1) = buckets(h, buckets_log2);
        if bucket == b0 { b1 } else { b0 }
    }

    /// One slot of exact-table memory: a cache line holding the key and the value, so a hit
    /// costs one tag read per candidate bucket and one slot read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(64))]
    pub struct Slot {
        /// Key words.
        pub key: Key,
        /// Reserved (zero), pads the value to its own half-line.
        pub reserved: [u32; 2],
        /// Value words.
        pub value: Value,
    }

    /// Exact-table memory as the pipeline reads it: one tag per slot (0 = empty) and the
    /// slots, `2^buckets_log2 * WAYS` of each, bucket b holding slots `b*WAYS..(b+1)*WAYS`.
    #[derive(Clone, Copy)]
    pub struct Memory<'a> {
        /// log2 of the number of buckets.
        pub buckets_log2: u32,
        /// Tags.
        pub tags: &'a [u32],
        /// Slots.
        pub slots: &'a [Slot],
    }

    impl Memory<'_> {
        /// The slot holding `key`, if any: the two candidate buckets, tag first, then key.
        #[inline]
        pub fn find(&self, key: &Key) -> Option<usize> {
            let h = hash(key);
            self.find_hashed(key, h)
        }

        /// [`Memory::find`] with the hash already computed.
        #[inline]
        pub fn find_hashed(&self, key: &Key, h: u64) -> Option<usize> {
            let (b0, b1) = buckets(h, self.buckets_log2);
            let t = tag(h);
            for b in [b0, b1] {
                let first = b as usize * WAYS;
                let tags = self.tags.get(first..first + WAYS)?;
                for (way, &slot_tag) in tags.iter().enumerate() {
                    if slot_tag == t && self.slots.get(first + way).is_some_and(|s| &s.key == key) {
                        return Some(first + way);
                    }
                }
            }
            None
        }
    }

    /// Reads the tags of both candidate buckets of a key with hash `h` in `tags` (memory of
    /// `2^buckets_log2` buckets) and returns a value that depends on them, without looking
    /// further: issued for many keys in a row, the reads overlap, so a later
    /// [`Memory::find_hashed`] finds them in cache. Returns 0 when the memory is smaller than
    /// its geometry says.
    #[inline]
    pub fn touch_tags(tags: &[u32], buckets_log2: u32, h: u64) -> u32 {
        let (b0, b1) = buckets(h, buckets_log2);
        let t0 = tags.get(b0 as usize * WAYS).copied().unwrap_or(0);
        let t1 = tags.get(b1 as usize * WAYS).copied().unwrap_or(0);
        t0 ^ t1
    }

    /// Copies a key window (up to 64 bytes as words) into exact-table key words.
    pub fn key_from_window(window: &[u32]) -> Key {
        let mut key = [0u32; KEY_WORDS];
        for (k, w) in key.iter_mut().zip(window) {
            *k = *w;
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{KEY_BYTES, VALUE_BYTES};

    #[test]
    fn capacities_meet_the_contract() {
        assert!(TableId::Map.capacity() >= 1_000_000);
        assert!(TableId::Acl.capacity() >= 4096);
        assert_eq!(TableId::Map.capacity(), 2_097_152);
        for t in TableId::ALL {
            assert!(t.key_len() <= KEY_BYTES);
            assert!(t.value_len() <= VALUE_BYTES);
            assert_eq!(t.key_len() % 4, 0);
            assert_eq!(t.value_len() % 4, 0);
            if let TableKind::Exact { .. } = t.kind() {
                assert!(t.key_len() <= exact::KEY_WORDS * 4);
                assert!(t.value_len() <= exact::VALUE_WORDS * 4);
            }
            assert_eq!(TableId::from_u8(t as u8), Some(t));
        }
        assert_eq!(TableId::from_u8(6), None);
        assert_eq!(core::mem::size_of::<exact::Slot>(), 64);
    }

    #[test]
    fn hash_is_pinned_and_spreads() {
        // Pinned so that a change to the hash (which would strand every stored entry on a
        // device with firmware of the other version) is a deliberate contract change.
        assert_eq!(exact::hash(&[0; 6]), 0x4537_7cfe_1848_5a76);
        let log2 = 10;
        let mut counts = [0u32; 1 << 10];
        for i in 0..100_000u32 {
            let h = exact::hash(&[i, 5001, 0, 0, 0, 0]);
            let (b0, b1) = exact::buckets(h, log2);
            assert_ne!(b0, b1);
            assert_eq!(exact::alternate(h, log2, b0), b1);
            assert_eq!(exact::alternate(h, log2, b1), b0);
            assert_ne!(exact::tag(h), 0);
            counts[b0 as usize] += 1;
        }
        let expected = 100_000 / 1024;
        let worst = counts
            .iter()
            .map(|&c| c.abs_diff(expected))
            .max()
            .unwrap_or(0);
        assert!(
            worst < expected / 2,
            "bucket spread is poor: {worst} off {expected}"
        );
    }
}
