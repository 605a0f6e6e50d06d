//! Maintenance of an exact-match table: a bucketed cuckoo hash (geometry and hash in
//! `shadownet_hw::table::exact`).
//!
//! Inserting a key whose two buckets are full searches breadth-first for the shortest chain of
//! displacements ending in a free slot (at most `MAX_DISPLACEMENTS` moves, `SEARCH_BUDGET`
//! visited slots), then
//! performs the moves from the free end backwards: each move writes the entry into its new
//! slot before the old slot is reused, so every key stays findable throughout (for a moment a
//! key may be found twice, never zero times).
//!
//! Replacing the value of a present key never rewrites the value a lookup may be reading: the
//! new entry goes into a free slot of one of the key's two buckets and is published by its tag,
//! then the old slot's tag is cleared — a lookup in between finds one complete entry, old or
//! new. Only when both buckets are full is the value rewritten in place, under the slot's
//! version word (`Slot::reserved[0]`, odd while the write is in progress): table-memory readers
//! that see an odd version, or a different version after reading the value, read again.
//!
//! A [`TagObserver`] attached to the table ([`ExactTable::observed`]) is told of every tag
//! written into a slot and of every clear, so that a structure kept beside the table over its
//! stored keys' tags (the simulator's key filter) follows the table without reading it again.

use shadownet_hw::table::exact::{
    Key, MAX_DISPLACEMENTS, Memory, SEARCH_BUDGET, Slot, Value, WAYS, alternate, buckets, hash, tag,
};

/// Exact-table memory, writable: what the embedded cores see.
pub struct ExactTable<'a> {
    buckets_log2: u32,
    tags: &'a mut [u32],
    slots: &'a mut [Slot],
    /// Buckets read by the last insert (for the cycle accounting).
    reads: usize,
    /// Told of every tag published and of clears ([`ExactTable::observed`]).
    observer: Option<&'a mut dyn TagObserver>,
}

/// What follows the tags an [`ExactTable`] stores, told as they are written: every nonzero
/// tag the table writes into a slot goes through [`TagObserver::published`] (a new key, a
/// replacement placed beside the old entry, an entry moved to make room), so the tags
/// published since the observer last looked at table memory, with what it found there,
/// include every stored key's tag. Removals are not told: a removed key's tag is simply one
/// the observer may still count.
pub trait TagObserver {
    /// `tag` (nonzero) was written into a slot of table memory.
    fn published(&mut self, tag: u32);
    /// Every slot of table memory was emptied.
    fn cleared(&mut self);
}

/// Result of an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// Slot now holding the key.
    pub slot: usize,
    /// The key was present and its value was replaced.
    pub replaced: bool,
    /// Entries moved to make room.
    pub displaced: usize,
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactError {
    /// No chain of at most `MAX_DISPLACEMENTS` moves, found within `SEARCH_BUDGET` slots,
    /// frees a slot for the key.
    Full,
    /// The key is not in the table.
    NotFound,
    /// The memory does not have `2^buckets_log2 * WAYS` tags and slots.
    BadGeometry,
}

/// A node of the displacement search: a slot and the node it was reached from.
#[derive(Clone, Copy)]
struct Node {
    slot: u32,
    parent: u32,
}

const ROOT: u32 = u32::MAX;

const EMPTY: Slot = Slot {
    key: [0; 6],
    reserved: [0; 2],
    value: [0; 8],
};

impl<'a> ExactTable<'a> {
    /// Wraps table memory of `2^buckets_log2` buckets.
    pub fn new(
        buckets_log2: u32,
        tags: &'a mut [u32],
        slots: &'a mut [Slot],
    ) -> Result<ExactTable<'a>, ExactError> {
        let n = (1usize << buckets_log2) * WAYS;
        if tags.len() != n || slots.len() != n {
            return Err(ExactError::BadGeometry);
        }
        Ok(ExactTable {
            buckets_log2,
            tags,
            slots,
            reads: 0,
            observer: None,
        })
    }

    /// The same table, telling `observer` of every tag it publishes and of clears.
    pub fn observed(self, observer: &'a mut dyn TagObserver) -> ExactTable<'a> {
        ExactTable {
            observer: Some(observer),
            ..self
        }
    }

    /// The read-only view the pipeline uses.
    pub fn memory(&self) -> Memory<'_> {
        Memory {
            buckets_log2: self.buckets_log2,
            tags: self.tags,
            slots: self.slots,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// Buckets of table memory the last insert read (its two candidate buckets, and one per
    /// slot the displacement search visited).
    pub fn buckets_read(&self) -> usize {
        self.reads
    }

    /// Inserts `key → value`, or replaces the value of a present key.
    pub fn insert(&mut self, key: &Key, value: &Value) -> Result<Inserted, ExactError> {
        let h = hash(key);
        self.reads = 2;
        let (b0, b1) = buckets(h, self.buckets_log2);
        if let Some(old) = self.memory().find_hashed(key, h) {
            return Ok(self.replace(old, [b0, b1], tag(h), key, value));
        }
        for b in [b0, b1] {
            if let Some(slot) = self.free_slot(b) {
                self.write(slot, tag(h), key, value);
                return Ok(Inserted {
                    slot,
                    replaced: false,
                    displaced: 0,
                });
            }
        }
        let (path, len) = self.search(b0, b1)?;
        // path[0] is the slot the new key takes; path[len-1] is the free slot at the end.
        // Move from the free end backwards so each entry is written before its old slot is
        // overwritten.
        for i in (1..len).rev() {
            let (to, from) = (path[i] as usize, path[i - 1] as usize);
            let moved = self.slots[from];
            let moved_tag = self.tags[from];
            self.write_slot(to, moved_tag, &moved);
        }
        let slot = path[0] as usize;
        self.write(slot, tag(h), key, value);
        Ok(Inserted {
            slot,
            replaced: false,
            displaced: len - 1,
        })
    }

    /// A new entry beside the old, published before the old is retired; in place (under the
    /// slot's version word) only when neither bucket has a free slot.
    fn replace(
        &mut self,
        old: usize,
        candidates: [u32; 2],
        t: u32,
        key: &Key,
        value: &Value,
    ) -> Inserted {
        let done = |slot| Inserted {
            slot,
            replaced: true,
            displaced: 0,
        };
        for b in candidates {
            if let Some(slot) = self.free_slot(b) {
                self.write(slot, t, key, value);
                self.tags[old] = 0;
                self.slots[old] = EMPTY;
                return done(slot);
            }
        }
        let s = &mut self.slots[old];
        let version = s.reserved[0];
        s.reserved[0] = version.wrapping_add(1) | 1;
        s.value = *value;
        s.reserved[0] = s.reserved[0].wrapping_add(1);
        done(old)
    }

    /// Removes `key`; returns the slot it occupied.
    pub fn remove(&mut self, key: &Key) -> Result<usize, ExactError> {
        let slot = self.memory().find(key).ok_or(ExactError::NotFound)?;
        // The tag goes first: from then on no lookup selects the slot.
        self.tags[slot] = 0;
        self.slots[slot] = EMPTY;
        Ok(slot)
    }

    /// Empties the table.
    pub fn clear(&mut self) {
        self.tags.fill(0);
        self.slots.fill(EMPTY);
        if let Some(o) = &mut self.observer {
            o.cleared();
        }
    }

    fn free_slot(&self, bucket: u32) -> Option<usize> {
        let first = bucket as usize * WAYS;
        self.tags[first..first + WAYS]
            .iter()
            .position(|&t| t == 0)
            .map(|w| first + w)
    }

    fn write(&mut self, slot: usize, t: u32, key: &Key, value: &Value) {
        let s = Slot {
            key: *key,
            reserved: [0; 2],
            value: *value,
        };
        self.write_slot(slot, t, &s);
    }

    /// Writes the slot, then publishes its tag (a lookup never sees a tag before its key).
    /// The only place a nonzero tag is written: the observer hears of every one.
    fn write_slot(&mut self, slot: usize, t: u32, s: &Slot) {
        self.tags[slot] = 0;
        self.slots[slot] = *s;
        self.tags[slot] = t;
        if let Some(o) = &mut self.observer {
            o.published(t);
        }
    }

    /// Breadth-first search from the full buckets b0 and b1 for the shortest displacement
    /// chain. Returns the chain of slots (first: where the new key goes; last: a free slot)
    /// and its length.
    fn search(&mut self, b0: u32, b1: u32) -> Result<([u32; MAX_DEPTH + 1], usize), ExactError> {
        let mut nodes = [Node {
            slot: 0,
            parent: ROOT,
        }; SEARCH_BUDGET];
        let mut len = 0usize;
        for b in [b0, b1] {
            for w in 0..WAYS {
                nodes[len] = Node {
                    slot: (b as usize * WAYS + w) as u32,
                    parent: ROOT,
                };
                len += 1;
            }
        }
        let mut head = 0usize;
        while head < len {
            self.reads += 1;
            let node = nodes[head];
            let occupant = &self.slots[node.slot as usize];
            let h = hash(&occupant.key);
            let bucket = (node.slot as usize / WAYS) as u32;
            let alt = alternate(h, self.buckets_log2, bucket);
            if let Some(free) = self.free_slot(alt) {
                return self.chain(&nodes, head, free as u32);
            }
            if depth(&nodes, head) < MAX_DEPTH {
                for w in 0..WAYS {
                    if len == SEARCH_BUDGET {
                        break;
                    }
                    let slot = (alt as usize * WAYS + w) as u32;
                    // A chain must not pass through the same slot twice: its moves would
                    // overwrite an entry before it had moved.
                    if on_chain(&nodes, head, slot) {
                        continue;
                    }
                    nodes[len] = Node {
                        slot,
                        parent: head as u32,
                    };
                    len += 1;
                }
            }
            head += 1;
        }
        Err(ExactError::Full)
    }

    fn chain(
        &self,
        nodes: &[Node],
        last: usize,
        free: u32,
    ) -> Result<([u32; MAX_DEPTH + 1], usize), ExactError> {
        let mut rev = [0u32; MAX_DEPTH + 1];
        let mut n = 0;
        rev[n] = free;
        n += 1;
        let mut at = last as u32;
        while at != ROOT {
            if n > MAX_DEPTH {
                return Err(ExactError::Full);
            }
            rev[n] = nodes[at as usize].slot;
            n += 1;
            at = nodes[at as usize].parent;
        }
        let mut path = [0u32; MAX_DEPTH + 1];
        for i in 0..n {
            path[i] = rev[n - 1 - i];
        }
        Ok((path, n))
    }
}

/// Longest displacement chain the search follows.
const MAX_DEPTH: usize = MAX_DISPLACEMENTS;

fn on_chain(nodes: &[Node], mut at: usize, slot: u32) -> bool {
    loop {
        if nodes[at].slot == slot {
            return true;
        }
        if nodes[at].parent == ROOT {
            return false;
        }
        at = nodes[at].parent as usize;
    }
}

fn depth(nodes: &[Node], mut at: usize) -> usize {
    let mut d = 0;
    while nodes[at].parent != ROOT {
        at = nodes[at].parent as usize;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{
        collections::{BTreeMap, BTreeSet},
        vec,
        vec::Vec,
    };

    fn memory(log2: u32) -> (Vec<u32>, Vec<Slot>) {
        let n = (1usize << log2) * WAYS;
        (
            vec![0; n],
            vec![
                Slot {
                    key: [0; 6],
                    reserved: [0; 2],
                    value: [0; 8]
                };
                n
            ],
        )
    }

    fn key(i: u32) -> Key {
        [i, 5001, 0xFFFF_0000, 0, 0, 0]
    }

    fn value(i: u32) -> Value {
        [i, !i, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn insert_find_replace_remove() {
        let (mut tags, mut slots) = memory(4);
        let mut t = ExactTable::new(4, &mut tags, &mut slots).expect("geometry");
        let a = t.insert(&key(1), &value(1)).expect("room");
        assert!(!a.replaced);
        assert_eq!(t.memory().find(&key(1)), Some(a.slot));
        let b = t.insert(&key(1), &value(2)).expect("room");
        assert!(b.replaced);
        // The new value went beside the old one; the old slot is empty again.
        assert_ne!(b.slot, a.slot);
        assert_eq!(t.memory().find(&key(1)), Some(b.slot));
        assert_eq!(t.memory().slots[b.slot].value, value(2));
        assert_eq!(t.memory().tags[a.slot], 0);
        assert_eq!(t.memory().tags.iter().filter(|&&x| x != 0).count(), 1);
        assert_eq!(t.remove(&key(1)), Ok(b.slot));
        assert_eq!(t.memory().find(&key(1)), None);
        assert_eq!(t.remove(&key(1)), Err(ExactError::NotFound));
    }

    #[test]
    fn fills_past_ninety_percent_with_displacement_and_stays_consistent() {
        let log2 = 8; // 256 buckets, 2048 slots
        let (mut tags, mut slots) = memory(log2);
        let mut t = ExactTable::new(log2, &mut tags, &mut slots).expect("geometry");
        let mut stored = 0u32;
        let mut displaced_any = false;
        for i in 0..2048u32 {
            match t.insert(&key(i), &value(i)) {
                Ok(ins) => {
                    stored += 1;
                    displaced_any |= ins.displaced > 0;
                }
                Err(ExactError::Full) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert!(displaced_any, "the fill never needed displacement");
        assert!(
            stored as usize * 100 / t.capacity() >= 90,
            "only {stored} of 2048 placed"
        );
        for i in 0..stored {
            let slot = t
                .memory()
                .find(&key(i))
                .expect("every stored key is findable");
            assert_eq!(t.memory().slots[slot].value, value(i));
        }
    }

    #[test]
    fn tiny_tables_with_cycles_fill_without_losing_keys() {
        for log2 in 1..=3 {
            let (mut tags, mut slots) = memory(log2);
            let mut t = ExactTable::new(log2, &mut tags, &mut slots).expect("geometry");
            let mut stored = std::vec::Vec::new();
            for i in 0..200u32 {
                if t.insert(&key(i), &value(i)).is_ok() {
                    stored.push(i);
                }
                for &k in &stored {
                    assert!(
                        t.memory().find(&key(k)).is_some(),
                        "lost key {k} at log2 {log2}"
                    );
                }
            }
            assert_eq!(stored.len(), t.capacity(), "a tiny table fills completely");
        }
    }

    #[test]
    fn rejects_wrong_geometry() {
        let (mut tags, mut slots) = memory(3);
        assert!(matches!(
            ExactTable::new(4, &mut tags, &mut slots),
            Err(ExactError::BadGeometry)
        ));
    }

    proptest::proptest! {
        #[test]
        fn matches_a_reference_map(ops in proptest::collection::vec((0u32..300, proptest::bool::ANY), 1..1500)) {
            let log2 = 5; // 256 slots: displacement and FULL both happen
            let (mut tags, mut slots) = memory(log2);
            let mut t = ExactTable::new(log2, &mut tags, &mut slots).expect("geometry");
            let mut reference = BTreeMap::new();
            for (k, insert) in ops {
                if insert {
                    match t.insert(&key(k), &value(k ^ 0x55)) {
                        Ok(_) => { reference.insert(k, value(k ^ 0x55)); }
                        Err(ExactError::Full) => proptest::prop_assert!(!reference.contains_key(&k)),
                        Err(e) => proptest::prop_assert!(false, "unexpected {:?}", e),
                    }
                } else {
                    let r = t.remove(&key(k));
                    proptest::prop_assert_eq!(r.is_ok(), reference.remove(&k).is_some());
                }
            }
            let occupied = t.memory().tags.iter().filter(|&&x| x != 0).count();
            proptest::prop_assert_eq!(occupied, reference.len());
            for (k, v) in &reference {
                let slot = t.memory().find(&key(*k));
                proptest::prop_assert!(slot.is_some());
                proptest::prop_assert_eq!(&t.memory().slots[slot.unwrap_or(0)].value, v);
            }
        }
    }

    /// Tags told since the last clear.
    #[derive(Default)]
    struct Seen(BTreeSet<u32>);

    impl TagObserver for Seen {
        fn published(&mut self, tag: u32) {
            assert_ne!(tag, 0, "an empty slot's tag is not published");
            self.0.insert(tag);
        }

        fn cleared(&mut self) {
            self.0.clear();
        }
    }

    proptest::proptest! {
        /// Every tag in table memory was told to the observer since the last clear, through
        /// inserts, replacements (beside the old entry and in place), displacements,
        /// removals and clears: each operation on a table wrapped afresh, as the
        /// simulator's accesses do.
        #[test]
        fn the_observer_hears_of_every_stored_tag(
            ops in proptest::collection::vec((0u32..300, 0u32..40), 1..1500)
        ) {
            let log2 = 5; // 256 slots: displacement and full buckets both happen
            let (mut tags, mut slots) = memory(log2);
            let mut seen = Seen::default();
            for (k, what) in ops {
                {
                    let mut t = ExactTable::new(log2, &mut tags, &mut slots)
                        .expect("geometry")
                        .observed(&mut seen);
                    match what {
                        0 => t.clear(),
                        1..=12 => {
                            let _ = t.remove(&key(k));
                        }
                        _ => {
                            let _ = t.insert(&key(k), &value(k ^ what));
                        }
                    }
                }
                for &tag in tags.iter().filter(|&&t| t != 0) {
                    proptest::prop_assert!(seen.0.contains(&tag), "tag {:#x} never told", tag);
                }
            }
        }
    }
}
