//! Fixed-capacity state tables: a hash map that never grows past its capacity. When full,
//! entries idle longer than the timeout go first; if that frees too little, the least
//! recently seen eighth goes too, so an insert costs amortised O(1) even under a flood of
//! new keys (spoofed sources, scans).
//!
//! The map is open addressing with linear probing over at least twice as many slots as
//! entries, each slot holding its hash, key and value inline: a lookup that hits its home
//! slot touches one place in memory (a `HashMap` touches its control bytes and then the
//! bucket), and [`BoundedMap::prefetch`] can ask for that place ahead of time.

use std::hash::{Hash, Hasher};

use super::sketch::mix64;

/// A fast non-cryptographic hasher for integer keys. Keys are addresses and ports the
/// detector derives from traffic; collisions only cost time, and the capacity bound keeps
/// that time bounded.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// The hash a [`BoundedMap`] files `key` under.
#[inline]
pub fn hash_key<K: Hash>(key: &K) -> u64 {
    let mut h = FastHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// Asks the CPU to start loading the cache line at `p` (a hint: it never faults and has no
/// effect on what the program computes).
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is part of the
        // target's baseline). A prefetch reads nothing the program sees and never faults,
        // whatever the address, so no pointer validity is required.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the whole 2 MiB pages inside `len` bytes from `p` with huge
/// pages (Linux transparent huge pages; a hint that changes nothing the program computes).
///
/// A table of tens of megabytes in 4 KiB pages needs a page walk for nearly every lookup,
/// and the walk misses the cache too; with 2 MiB pages the TLB covers far more of it. Call
/// it before the memory is first touched: the pages are then faulted in huge.
#[allow(unsafe_code)]
pub fn advise_huge_pages(p: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (p as usize).next_multiple_of(HUGE);
        let end = (p as usize).saturating_add(len) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the `len` bytes at `p` (rounded inwards to
            // whole huge pages), which the caller's allocation owns. MADV_HUGEPAGE only
            // changes how the kernel backs those pages: it never changes their contents,
            // their mapping or their validity, so no reference to them is affected. Failure
            // (a kernel without transparent huge pages) leaves the memory as it was.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE)
            };
            if rc != 0 {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "no huge pages for a detector table"
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

/// Most cache lines [`BoundedMap::prefetch`] asks for per slot: a core tracks only about a
/// dozen outstanding misses, and several tables are prefetched per packet.
pub const PREFETCH_LINES: usize = 16;

/// What a table entry must tell the eviction policy.
pub trait Stamped {
    /// When the entry was last touched.
    fn last_seen_ns(&self) -> u64;
}

/// A slot starts on a cache line and lays out the key, its hash and then the value in
/// declaration order, so that the fields a value declares first share the first lines
/// with the key: a lookup that reads only those touches only those lines.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Slot<K, V> {
    key: K,
    hash: u64,
    val: V,
}

/// A hash map of at most `capacity` entries with stale-by-time eviction.
///
/// Each entry has a hot part `V`, inline in its slot, and an optional cold part `C` in a
/// parallel array at the same index, for state that few packets touch (the registers of
/// a distinct counter, say): the cold part is neither prefetched nor written when an entry
/// is made, so it costs memory traffic only to the packets that use it. A new entry's cold
/// part holds whatever an earlier entry of that slot left there (or `C::default()`): the
/// hot part must say whether it is valid.
#[derive(Debug)]
pub struct BoundedMap<K, V, C = ()> {
    slots: Vec<Option<Slot<K, V>>>,
    cold: Vec<C>,
    mask: usize,
    len: usize,
    capacity: usize,
    idle_ns: u64,
    evicted: u64,
}

impl<K: Hash + Eq + Copy, V: Stamped, C: Default + Clone> BoundedMap<K, V, C> {
    /// A table for at most `capacity` (at least 8) entries, where entries idle for
    /// `idle_ns` are the first to go.
    pub fn new(capacity: usize, idle_ns: u64) -> Self {
        let capacity = capacity.max(8);
        // At most half full: probe sequences stay short and one always ends in an empty slot.
        let n = (2 * capacity).next_power_of_two();
        let mut slots: Vec<Option<Slot<K, V>>> = Vec::with_capacity(n);
        advise_huge_pages(
            slots.as_ptr().cast(),
            n * std::mem::size_of::<Option<Slot<K, V>>>(),
        );
        slots.resize_with(n, || None);
        let mut cold: Vec<C> = Vec::with_capacity(n);
        advise_huge_pages(cold.as_ptr().cast(), n * std::mem::size_of::<C>());
        cold.resize(n, C::default());
        BoundedMap {
            slots,
            cold,
            mask: n - 1,
            len: 0,
            capacity,
            idle_ns,
            evicted: 0,
        }
    }

    /// Bytes of one slot (key, hash and hot part, rounded up to whole cache lines).
    pub const SLOT_BYTES: usize = std::mem::size_of::<Option<Slot<K, V>>>();

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Starts loading the home slot of the key hashed to `hash` (see [`hash_key`]) into the
    /// cache, so that a lookup a few packets later finds it there.
    ///
    /// Every cache line of the slot's hot part is asked for (an entry spans several, and
    /// the update touches most of them), at most [`PREFETCH_LINES`]; the cold part is not.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(s) = self.slots.get(hash as usize & self.mask) {
            let p = (s as *const Option<Slot<K, V>>).cast::<u8>();
            for off in (0..Self::SLOT_BYTES).step_by(64).take(PREFETCH_LINES) {
                prefetch(p.wrapping_add(off));
            }
        }
    }

    /// The slot holding `key` (`Ok`), or the empty slot where it would go (`Err`).
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Result<usize, usize> {
        let mut i = hash as usize & self.mask;
        loop {
            match &self.slots[i] {
                None => return Err(i),
                Some(s) if s.hash == hash && s.key == *key => return Ok(i),
                Some(_) => i = (i + 1) & self.mask,
            }
        }
    }

    /// The entry for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.get_hashed(hash_key(key), key)
    }

    /// The entry for `key`, whose [`hash_key`] the caller computed already.
    #[inline]
    pub fn get_hashed(&self, hash: u64, key: &K) -> Option<&V> {
        let i = self.find(hash, key).ok()?;
        self.slots[i].as_ref().map(|s| &s.val)
    }

    /// The entry for `key`, mutable.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(hash_key(key), key).ok()?;
        self.slots[i].as_mut().map(|s| &mut s.val)
    }

    /// The entry for `key`, created with `make` if absent (after making room; every entry
    /// evicted for it is handed to `on_evict`). The flag says whether it was created.
    #[inline]
    pub fn entry_or_insert(
        &mut self,
        key: K,
        now_ns: u64,
        make: impl FnOnce() -> V,
        on_evict: impl FnMut(K, V),
    ) -> (&mut V, bool) {
        self.entry_or_insert_hashed(hash_key(&key), key, now_ns, make, on_evict)
    }

    /// [`BoundedMap::entry_or_insert`] for a key whose [`hash_key`] the caller computed
    /// already (to prefetch its slot, say). `hash` must be `hash_key(&key)`.
    #[inline]
    pub fn entry_or_insert_hashed(
        &mut self,
        hash: u64,
        key: K,
        now_ns: u64,
        make: impl FnOnce() -> V,
        on_evict: impl FnMut(K, V),
    ) -> (&mut V, bool) {
        let (v, _, created) = self.entry_with_cold(hash, key, now_ns, make, on_evict);
        (v, created)
    }

    /// [`BoundedMap::entry_or_insert_hashed`] that also hands out the entry's cold part
    /// (left as the slot's last entry had it when the entry is new; see [`BoundedMap`]).
    #[inline]
    pub fn entry_with_cold(
        &mut self,
        hash: u64,
        key: K,
        now_ns: u64,
        make: impl FnOnce() -> V,
        on_evict: impl FnMut(K, V),
    ) -> (&mut V, &mut C, bool) {
        debug_assert_eq!(hash, hash_key(&key));
        let (i, created) = match self.find(hash, &key) {
            Ok(i) => (i, false),
            Err(mut i) => {
                if self.len >= self.capacity {
                    self.make_room(now_ns, on_evict);
                    i = match self.find(hash, &key) {
                        Ok(i) | Err(i) => i,
                    };
                }
                self.len += 1;
                (i, true)
            }
        };
        // A found slot is full and `make` is not called; otherwise the slot is empty.
        let s = self.slots[i].get_or_insert_with(|| Slot {
            key,
            hash,
            val: make(),
        });
        // `cold` has one element per slot (both are `n` long), so `i` is in range.
        (&mut s.val, &mut self.cold[i], created)
    }

    /// Empties slot `i` and moves later members of its probe run back so that every key
    /// stays reachable from its home slot (deletion without tombstones).
    fn remove_at(&mut self, mut i: usize) -> Option<Slot<K, V>> {
        let out = self.slots[i].take()?;
        self.len -= 1;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let home = match &self.slots[j] {
                None => break,
                Some(s) => s.hash as usize & self.mask,
            };
            // The entry at j may stay if its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots[i] = self.slots[j].take();
                self.cold.swap(i, j);
                i = j;
            }
        }
        Some(out)
    }

    /// Evicts every entry `evict` picks, handing each to `on_evict`.
    fn evict_where(&mut self, mut evict: impl FnMut(&V) -> bool, on_evict: &mut impl FnMut(K, V)) {
        let mut i = 0;
        while i < self.slots.len() {
            let hit = self.slots[i].as_ref().is_some_and(|s| evict(&s.val));
            if hit {
                // A later entry may have moved into slot i: look at it again.
                if let Some(s) = self.remove_at(i) {
                    on_evict(s.key, s.val);
                }
            } else {
                i += 1;
            }
        }
    }

    fn make_room(&mut self, now_ns: u64, mut on_evict: impl FnMut(K, V)) {
        let before = self.len;
        let cutoff = now_ns.saturating_sub(self.idle_ns);
        self.evict_where(|v| v.last_seen_ns() < cutoff, &mut on_evict);
        if self.len > self.capacity - self.capacity / 8 {
            // Not enough was idle: drop the least recently seen eighth.
            let mut stamps: Vec<u64> = self
                .slots
                .iter()
                .flatten()
                .map(|s| s.val.last_seen_ns())
                .collect();
            let nth = (self.capacity / 8).min(stamps.len().saturating_sub(1));
            stamps.select_nth_unstable(nth);
            let bound = stamps[nth];
            let mut budget = nth.max(1);
            self.evict_where(
                |v| {
                    if budget > 0 && v.last_seen_ns() <= bound {
                        budget -= 1;
                        true
                    } else {
                        false
                    }
                },
                &mut on_evict,
            );
        }
        self.evicted += (before - self.len) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(u64);
    impl Stamped for E {
        fn last_seen_ns(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn never_exceeds_capacity_and_keeps_recent_entries() {
        let mut m: BoundedMap<u32, E> = BoundedMap::new(1000, 1_000_000);
        let mut evicted = 0;
        for i in 0..100_000u32 {
            let t = u64::from(i) * 10;
            let (e, _) = m.entry_or_insert(i, t, || E(t), |_, _| evicted += 1);
            e.0 = t;
            // A long-lived entry that keeps being touched survives the churn.
            let (e, _) = m.entry_or_insert(u32::MAX, t, || E(t), |_, _| evicted += 1);
            e.0 = t;
            assert!(m.len() <= 1000);
        }
        assert!(m.get(&u32::MAX).is_some());
        assert!(m.get(&99_999).is_some());
        assert_eq!(evicted as u64, m.evicted());
        assert_eq!(m.evicted() + m.len() as u64, 100_001);
    }

    #[test]
    fn every_key_stays_reachable_through_evictions() {
        // A tiny table with many collisions: evictions shift probe runs back, and every key
        // still held must be found, every key evicted must be gone.
        let mut m: BoundedMap<u32, E> = BoundedMap::new(16, 50);
        let mut held = std::collections::BTreeSet::new();
        for i in 0..2_000u32 {
            let t = u64::from(i);
            m.entry_or_insert(
                i * 7,
                t,
                || E(t),
                |k, _| {
                    held.remove(&k);
                },
            );
            held.insert(i * 7);
            assert_eq!(m.len(), held.len());
            for k in &held {
                assert!(m.get(k).is_some(), "key {k} lost at step {i}");
            }
        }
        assert!(m.get(&0).is_none());
    }

    #[test]
    fn idle_entries_go_first() {
        let mut m: BoundedMap<u32, E> = BoundedMap::new(8, 100);
        for i in 0..8 {
            m.entry_or_insert(i, 0, || E(if i < 4 { 0 } else { 1_000 }), |_, _| {});
        }
        let mut gone = Vec::new();
        m.entry_or_insert(100, 1_000, || E(1_000), |k, _| gone.push(k));
        gone.sort();
        assert_eq!(gone, vec![0, 1, 2, 3]);
    }
}
