//! Fixed-capacity state tables: a hash map that never grows past its capacity. When full,
//! entries idle longer than the timeout go first; if that frees too little, the least
//! recently seen eighth goes too, so an insert costs amortised O(1) even under a flood of
//! new keys (spoofed sources, scans).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

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

/// What a table entry must tell the eviction policy.
pub trait Stamped {
    /// When the entry was last touched.
    fn last_seen_ns(&self) -> u64;
}

/// A hash map of at most `capacity` entries with stale-by-time eviction.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, V, BuildHasherDefault<FastHasher>>,
    capacity: usize,
    idle_ns: u64,
    evicted: u64,
}

impl<K: Hash + Eq + Copy, V: Stamped> BoundedMap<K, V> {
    /// A table for at most `capacity` (at least 8) entries, where entries idle for
    /// `idle_ns` are the first to go.
    pub fn new(capacity: usize, idle_ns: u64) -> Self {
        let capacity = capacity.max(8);
        BoundedMap {
            map: HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            capacity,
            idle_ns,
            evicted: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The entry for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry for `key`, mutable.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
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
        let mut created = false;
        if !self.map.contains_key(&key) {
            if self.map.len() >= self.capacity {
                self.make_room(now_ns, on_evict);
            }
            created = true;
        }
        (self.map.entry(key).or_insert_with(make), created)
    }

    fn make_room(&mut self, now_ns: u64, mut on_evict: impl FnMut(K, V)) {
        let before = self.map.len();
        let cutoff = now_ns.saturating_sub(self.idle_ns);
        for (k, v) in self.map.extract_if(|_, v| v.last_seen_ns() < cutoff) {
            on_evict(k, v);
        }
        if self.map.len() > self.capacity - self.capacity / 8 {
            // Not enough was idle: drop the least recently seen eighth.
            let mut stamps: Vec<u64> = self.map.values().map(Stamped::last_seen_ns).collect();
            let nth = self.capacity / 8;
            stamps.select_nth_unstable(nth);
            let bound = stamps[nth];
            let mut budget = nth.max(1);
            for (k, v) in self.map.extract_if(|_, v| {
                if budget > 0 && v.last_seen_ns() <= bound {
                    budget -= 1;
                    true
                } else {
                    false
                }
            }) {
                on_evict(k, v);
            }
        }
        self.evicted += (before - self.map.len()) as u64;
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
