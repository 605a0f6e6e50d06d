//! Exact-table memory (tags and slots, hardware format) with the firmware's maintenance.

use shadownet_firmware::{
    command::ExactAccess,
    tables::exact::{ExactTable, TagObserver},
};

use super::memory::TableMemory;
use shadownet_hw::table::{
    TableId, TableKind,
    exact::{self, Key, Memory, Slot, Value, WAYS},
};

/// Bits of an exact table's key filter ([`ExactStore::with_filter`]): 64 KiB, so that a
/// table of a few thousand keys lets about one miss in a hundred through.
const FILTER_BITS: usize = 1 << 19;
const FILTER_WORDS: usize = FILTER_BITS / 64;

/// Stale bits (set for keys no longer stored) a filter may carry, beyond its stored keys'
/// count, before it is built again ([`KeyFilter::worn`]): 1/512 of its bits, so a small
/// table's filter lets at most 0.2 % more misses through than a fresh one would.
const MIN_STALE_BITS: u32 = (FILTER_BITS / 512) as u32;

/// A filter over a table's stored keys' tags: bit `tag % FILTER_BITS` is set for every
/// stored key's tag, so a clear bit proves a key absent (see [`ExactStore::with_filter`]).
struct KeyFilter {
    words: [u64; FILTER_WORDS],
    /// Bits set: the stored keys' bits and stale ones (of removed keys).
    set: u32,
    /// Times the filter was built from table memory.
    rebuilds: u64,
}

impl KeyFilter {
    fn new() -> Box<KeyFilter> {
        Box::new(KeyFilter {
            words: [0; FILTER_WORDS],
            set: 0,
            rebuilds: 0,
        })
    }

    /// Sets `tag`'s bit, counting it if it was clear.
    #[inline]
    fn add(&mut self, tag: u32) {
        let i = tag as usize % FILTER_BITS;
        let (word, bit) = (&mut self.words[i / 64], 1u64 << (i % 64));
        self.set += u32::from(*word & bit == 0);
        *word |= bit;
    }

    /// Whether enough of the filter's bits are stale to build it again, for a table holding
    /// `occupancy` keys. A removal leaves its key's bit set (it may be another stored key's
    /// too), so stale bits only accumulate; their number is at least `set - occupancy` (the
    /// stored keys set at most one bit each) and, in a filter this sparse (a few thousand
    /// keys in 2^19 bits: few share a bit), about that. A fresh filter lets through a share
    /// `occupancy / FILTER_BITS` of misses, and each stale bit another `1 / FILTER_BITS`:
    /// once there are more stale bits than stored keys (or [`MIN_STALE_BITS`] for a small
    /// table) the filter lets through more than twice the misses a fresh one would, and it
    /// is built again. A rebuild reads all of tag memory (about 0.34 M instructions for the
    /// shadow map) and needs at least that many removals since the last one, so it costs a
    /// few hundred instructions per removal at most, where rebuilding on every change cost
    /// a rebuild per write.
    #[inline]
    fn worn(&self, occupancy: u32) -> bool {
        self.set.saturating_sub(occupancy) > occupancy.max(MIN_STALE_BITS)
    }
}

/// How table writes keep the filter a superset of the stored keys' bits: the firmware's
/// table code tells of every tag it writes into a slot (a new key, a replacement beside the
/// old entry, an entry moved between its buckets — the last two keep the key's tag, whose
/// bit is already set) and of clears.
impl TagObserver for KeyFilter {
    #[inline]
    fn published(&mut self, tag: u32) {
        self.add(tag);
    }

    fn cleared(&mut self) {
        self.words.fill(0);
        self.set = 0;
    }
}

/// Memory of one exact table.
pub struct ExactStore {
    table: TableId,
    buckets_log2: u32,
    tags: TableMemory<u32>,
    slots: TableMemory<Slot>,
    occupancy: u32,
    /// A filter over the stored keys' tags ([`ExactStore::with_filter`]); `None` for a
    /// table without one.
    filter: Option<Box<KeyFilter>>,
}

/// A key looked up ahead of the pipeline, for a batch of frames: its hash, then (once the
/// tags of its buckets are likely cached) the slot holding it. Tables do not change while a
/// batch is received, so the answer is the one the pipeline would get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefetched {
    key: Key,
    hash: u64,
    /// `None` until resolved; then the slot holding the key, or `Some(None)` for a miss.
    slot: Option<Option<usize>>,
}

impl Prefetched {
    /// Starts a look-up of `key`.
    #[inline]
    pub fn new(key: Key) -> Prefetched {
        Prefetched {
            key,
            hash: exact::hash(&key),
            slot: None,
        }
    }

    /// The key looked up.
    #[inline]
    pub fn key(&self) -> &Key {
        &self.key
    }
}

impl ExactStore {
    /// Empty memory of the table's contract size. The kernel zero-fills it lazily, so an
    /// unused multi-million-slot table costs address space, not time.
    pub fn new(table: TableId) -> ExactStore {
        let TableKind::Exact { buckets_log2 } = table.kind() else {
            panic!("{table} is not an exact table");
        };
        let n = (1usize << buckets_log2) * WAYS;
        ExactStore {
            table,
            buckets_log2,
            tags: TableMemory::zeroed(n)
                .unwrap_or_else(|e| panic!("mapping {n} tags for table {table}: {e}")),
            slots: TableMemory::zeroed(n)
                .unwrap_or_else(|e| panic!("mapping {n} slots for table {table}: {e}")),
            occupancy: 0,
            filter: None,
        }
    }

    /// [`ExactStore::new`] with a filter of 2^19 bits (64 KiB) over the stored keys'
    /// tags: a look-up whose tag's bit is clear is a miss without reading table memory (see
    /// [`ExactView::may_hold`]). For a sparse table that is mostly missed (the shadow map:
    /// most destinations have no shadow node).
    ///
    /// The filter is a superset of the stored keys' bits at every moment, kept so by the
    /// writes themselves: every access to table memory ([`ExactStore::access`], the only
    /// one that writes) carries the filter as the firmware table code's [`TagObserver`],
    /// which sets the bit of every tag written into a slot — a new key's; a replacement or
    /// an entry moved between its two buckets keeps its tag, whose bit is set already — and
    /// empties the filter with the table. A removal leaves its key's bit set: a stale bit
    /// only lets a miss through to table memory. Stale bits are dropped by building the
    /// filter again from the tags, lazily ([`ExactStore::refresh_filter`], before a batch)
    /// once there are more of them than stored keys (and at least 1,024): then over half
    /// its bits are stale and it lets through more than twice the misses a fresh one would
    /// (`KeyFilter::worn` says why that threshold).
    pub fn with_filter(table: TableId) -> ExactStore {
        let mut store = ExactStore::new(table);
        store.filter = Some(KeyFilter::new());
        store
    }

    /// Builds the filter again from the tags if removals have left it with more stale bits
    /// than stored keys (`KeyFilter::worn`). Not needed for correctness: a filter is a
    /// superset of the stored keys' bits at every moment.
    #[inline]
    pub fn refresh_filter(&mut self) {
        if self.filter.as_ref().is_some_and(|f| f.worn(self.occupancy)) {
            self.rebuild_filter();
        }
    }

    /// Times the filter was built from the tags ([`ExactStore::refresh_filter`]): 0 for a
    /// table without one.
    pub fn filter_rebuilds(&self) -> u64 {
        self.filter.as_ref().map_or(0, |f| f.rebuilds)
    }

    #[cold]
    #[inline(never)]
    fn rebuild_filter(&mut self) {
        if let Some(filter) = &mut self.filter {
            filter.cleared();
            filter.rebuilds += 1;
            // Every bucket, whatever the occupancy count says (the filter must hold every
            // stored tag); a sparse table's empty buckets cost one test each.
            for bucket in self.tags.as_slice().chunks_exact(WAYS) {
                if bucket.iter().fold(0, |any, &t| any | t) == 0 {
                    continue;
                }
                for &t in bucket {
                    if t != 0 {
                        filter.add(t);
                    }
                }
            }
        }
    }

    /// The read-only view the pipeline looks keys up in.
    #[inline]
    pub fn memory(&self) -> Memory<'_> {
        Memory {
            buckets_log2: self.buckets_log2,
            tags: self.tags.as_slice(),
            slots: self.slots.as_slice(),
        }
    }

    /// The value stored for `key`.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<&Value> {
        let memory = self.memory();
        memory.find(key).map(|i| &memory.slots[i].value)
    }

    /// The value stored for `key`, taken from `ahead` when it looked up the same key.
    #[inline(always)]
    pub fn get_prefetched(&self, key: &Key, ahead: Option<&Prefetched>) -> Option<&Value> {
        match ahead {
            // Only the slots are needed (each view of table memory costs a few checks).
            Some(Prefetched {
                key: k,
                slot: Some(slot),
                ..
            }) if k == key => slot.map(|i| &self.slots.as_slice()[i].value),
            Some(p) if p.key == *key => self
                .find_hashed(key, p.hash)
                .map(|i| &self.slots.as_slice()[i].value),
            _ => self
                .find_hashed(key, exact::hash(key))
                .map(|i| &self.slots.as_slice()[i].value),
        }
    }

    /// Reads the tags of both buckets `p`'s key may live in, so that they are on their way
    /// to the cache (see [`exact::touch_tags`]); returns a value that depends on them.
    #[inline]
    pub fn touch_tags(&self, p: &Prefetched) -> u32 {
        exact::touch_tags(self.tags.as_slice(), self.buckets_log2, p.hash)
    }

    /// Finds the slot of `p`'s key (its tags should be cached by then): the key's own line
    /// is read on the way, and [`ExactStore::get_prefetched`] needs no search.
    #[inline(always)]
    pub fn resolve(&self, p: &mut Prefetched) {
        p.slot = Some(self.find_hashed(&p.key, p.hash));
    }

    /// The table's memory as slices, taken once for many look-ups ([`ExactView`]): each
    /// view of table memory costs a few checks, which a batch pays once instead of per
    /// frame.
    #[inline(always)]
    pub fn view(&self) -> ExactView<'_> {
        ExactView {
            buckets_log2: self.buckets_log2,
            tags: self.tags.as_slice(),
            slots: self.slots.as_slice(),
            filter: self.filter.as_deref().map(|f| &f.words),
        }
    }

    /// [`Memory::find_hashed`] (the same search, way by way), inlined into the pipeline's
    /// look-ups: across the crate boundary it stayed a call.
    #[inline(always)]
    fn find_hashed(&self, key: &Key, h: u64) -> Option<usize> {
        let (b0, b1) = exact::buckets(h, self.buckets_log2);
        let t = exact::tag(h);
        let tags = self.tags.as_slice();
        let slots = self.slots.as_slice();
        for b in [b0, b1] {
            let first = b as usize * WAYS;
            let bucket = tags.get(first..first + WAYS)?;
            for (way, &slot_tag) in bucket.iter().enumerate() {
                if slot_tag == t && slots.get(first + way).is_some_and(|s| &s.key == key) {
                    return Some(first + way);
                }
            }
        }
        None
    }

    /// Slot holding `key`.
    pub fn find_slot(&self, key: &Key) -> Option<usize> {
        self.memory().find(key)
    }

    /// Whether a slot holds an entry.
    pub fn occupied(&self, slot: usize) -> bool {
        self.tags.as_slice().get(slot).is_some_and(|&t| t != 0)
    }

    /// A slot's contents.
    pub fn slot(&self, slot: usize) -> &Slot {
        &self.slots.as_slice()[slot]
    }

    /// Occupied slots.
    pub fn occupancy(&self) -> u32 {
        self.occupancy
    }

    /// The memory as the firmware maintains it, with the occupancy it keeps; the table's
    /// filter, if it has one, hears of every tag written ([`ExactStore::with_filter`]).
    pub fn access(&mut self) -> ExactAccess<'_> {
        let mut table = ExactTable::new(
            self.buckets_log2,
            self.tags.as_mut_slice(),
            self.slots.as_mut_slice(),
        )
        .unwrap_or_else(|e| panic!("{} memory has the wrong geometry: {e:?}", self.table));
        if let Some(filter) = self.filter.as_deref_mut() {
            table = table.observed(filter);
        }
        ExactAccess {
            table,
            occupancy: &mut self.occupancy,
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        if self.occupancy > 0 {
            self.access().table.clear();
        }
        self.occupancy = 0;
    }
}

/// One exact table's memory for a batch of look-ups (see [`ExactStore::view`]): the same
/// way-by-way search as [`Memory::find`], the hardware-format reference (a unit test
/// compares them).
#[derive(Clone, Copy)]
pub struct ExactView<'a> {
    buckets_log2: u32,
    tags: &'a [u32],
    slots: &'a [Slot],
    /// The table's key filter, when it has one (a superset of the stored keys' bits).
    filter: Option<&'a [u64; FILTER_WORDS]>,
}

impl ExactView<'_> {
    /// Whether a key with hash `h` may be stored: `false` only when the table's filter
    /// proves it is not (see [`ExactStore::with_filter`]; without one, `true`).
    #[inline(always)]
    pub fn may_hold(&self, h: u64) -> bool {
        let i = exact::tag(h) as usize % FILTER_BITS;
        self.filter.is_none_or(|f| f[i / 64] >> (i % 64) & 1 != 0)
    }

    /// Reads the tags of both buckets a key with hash `h` may live in (see
    /// [`exact::touch_tags`]); returns a value that depends on them.
    #[inline(always)]
    pub fn touch_tags(&self, h: u64) -> u32 {
        exact::touch_tags(self.tags, self.buckets_log2, h)
    }

    /// The slot holding `key`, whose hash is `h`.
    #[inline(always)]
    pub fn find(&self, key: &Key, h: u64) -> Option<usize> {
        self.search(key, h).map(|(i, _)| i)
    }

    /// The value stored for `key`, whose hash is `h`: [`ExactView::find`]'s slot, read
    /// where the search found it.
    #[inline(always)]
    pub fn find_value(&self, key: &Key, h: u64) -> Option<&Value> {
        self.search(key, h).map(|(_, s)| &s.value)
    }

    /// The slot holding `key`, whose hash is `h`, with its number.
    #[inline(always)]
    fn search(&self, key: &Key, h: u64) -> Option<(usize, &Slot)> {
        let (b0, b1) = exact::buckets(h, self.buckets_log2);
        let t = exact::tag(h);
        for b in [b0, b1] {
            let first = b as usize * WAYS;
            let bucket = self.tags.get(first..first + WAYS)?;
            // The bucket's slots checked in range once, not way by way.
            let slots = self.slots.get(first..first + WAYS)?;
            for (way, (&slot_tag, s)) in bucket.iter().zip(slots).enumerate() {
                if slot_tag == t && &s.key == key {
                    return Some((first + way, s));
                }
            }
        }
        None
    }

    /// The value in `slot` (one [`ExactView::find`] returned).
    #[inline(always)]
    pub fn value(&self, slot: usize) -> Option<&Value> {
        self.slots.get(slot).map(|s| &s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline's search finds the slot the hardware-format reference finds, for keys
    /// present (including ones displaced to their second bucket) and absent, in a table
    /// filled to where buckets hold several tags.
    #[test]
    fn the_search_is_the_reference() {
        let mut store = ExactStore::new(TableId::Vni);
        let key = |i: u32| -> Key { [i.wrapping_mul(0x9E37_79B9), i, 0, 0, 0, 0] };
        let mut inserted = 0u32;
        for i in 0..3_000u32 {
            if store.access().table.insert(&key(i), &[i; 8]).is_ok() {
                inserted += 1;
            }
        }
        assert!(inserted > 1_000, "only {inserted} keys went in");
        for i in 0..6_000u32 {
            let k = key(i);
            let reference = store.memory().find(&k);
            assert_eq!(store.find_hashed(&k, exact::hash(&k)), reference, "key {i}");
            assert_eq!(store.view().find(&k, exact::hash(&k)), reference, "key {i}");
            assert_eq!(
                store.view().find_value(&k, exact::hash(&k)),
                reference.map(|s| &store.slot(s).value),
                "key {i}"
            );
            let expected = reference.map(|s| &store.slot(s).value);
            let mut p = Prefetched::new(k);
            store.resolve(&mut p);
            assert_eq!(store.get_prefetched(&k, Some(&p)), expected);
            assert_eq!(store.get_prefetched(&k, None), expected);
            assert_eq!(store.get(&k), expected);
        }
    }

    /// The key filter never rules out a stored key — after inserts, deletes, re-inserts
    /// and a clear, without being built again — and rules out most absent ones; deletes
    /// leave stale bits until more of them than stored keys have it built again.
    #[test]
    fn the_filter_keeps_every_stored_key() {
        let mut store = ExactStore::with_filter(TableId::ShadowMap);
        let key = |i: u32| -> Key { [1, i.wrapping_mul(0x9E37_79B9), 0, 0, 0xffff_0000, i] };
        let check = |store: &ExactStore, present: &dyn Fn(u32) -> bool| {
            let view = store.view();
            let mut ruled_out = 0;
            for i in 0..20_000u32 {
                let h = exact::hash(&key(i));
                let found = view.find(&key(i), h).is_some();
                assert_eq!(found, present(i), "key {i}");
                if found {
                    assert!(view.may_hold(h), "stored key {i} ruled out");
                } else if !view.may_hold(h) {
                    ruled_out += 1;
                }
            }
            ruled_out
        };
        let insert = |store: &mut ExactStore, i: u32| {
            let mut a = store.access();
            if a.table.insert(&key(i), &[i; 8]).expect("room").replaced {
                return;
            }
            *a.occupancy += 1;
        };
        assert!(check(&store, &|_| false) > 19_000);
        for i in 0..4_000 {
            insert(&mut store, i);
        }
        assert!(check(&store, &|i| i < 4_000) > 15_000);
        for i in (0..4_000).step_by(2) {
            let mut a = store.access();
            a.table.remove(&key(i)).expect("stored");
            *a.occupancy -= 1;
        }
        // 2,000 stale bits, as many as stored keys: kept, and the deleted keys pass.
        store.refresh_filter();
        assert_eq!(store.filter_rebuilds(), 0);
        assert!(check(&store, &|i| i < 4_000 && i % 2 == 1) > 15_000);
        for i in (0..4_000).step_by(4) {
            insert(&mut store, i);
        }
        assert!(check(&store, &|i| i < 4_000 && i % 4 != 2) > 15_000);
        // Deleting the odd keys too: about 3,000 stale bits for 1,000 keys, built again.
        for i in (1..4_000).step_by(2) {
            let mut a = store.access();
            a.table.remove(&key(i)).expect("stored");
            *a.occupancy -= 1;
        }
        store.refresh_filter();
        assert_eq!(store.filter_rebuilds(), 1);
        let ruled_out = check(&store, &|i| i < 4_000 && i % 4 == 0);
        assert!(ruled_out > 18_900, "only {ruled_out} absent keys ruled out");
        store.clear();
        assert!(check(&store, &|_| false) > 19_990);
    }
}
