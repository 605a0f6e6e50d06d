//! A first-in first-out queue of small `Copy` records for the scheduler's hot path.
//!
//! `VecDeque` keeps its head as a physical index and wraps it on every access (a compare and
//! a conditional subtract, plus the capacity load); with a dozen queue operations per frame
//! that was a third of the scheduler's instructions. Here the capacity is a power of two and
//! head and tail are free-running counters, so an access is an `and` with a mask.

/// A FIFO queue in a power-of-two ring.
#[derive(Clone, Debug)]
pub(crate) struct Fifo<T> {
    /// The ring; its length is 0 or a power of two.
    buf: Vec<T>,
    /// `buf.len() - 1` (wrapping): the slot of counter `c` is `c & mask`.
    mask: usize,
    /// Counter of the first record (its slot is `head & mask`).
    head: usize,
    /// Counter one past the last record.
    tail: usize,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            buf: Vec::new(),
            mask: usize::MAX,
            head: 0,
            tail: 0,
        }
    }
}

impl<T: Copy + Default> Fifo<T> {
    /// Number of records.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    /// Whether there are none.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// The first record.
    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        if self.is_empty() {
            None
        } else {
            self.buf.get(self.head & self.mask)
        }
    }

    /// The last record.
    #[cfg(test)]
    pub(crate) fn back(&self) -> Option<&T> {
        if self.is_empty() {
            None
        } else {
            self.buf.get(self.tail.wrapping_sub(1) & self.mask)
        }
    }

    /// The record `i` places from the front.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i < self.len() {
            self.buf.get(self.head.wrapping_add(i) & self.mask)
        } else {
            None
        }
    }

    /// The record `i` places from the front, to change it in place.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i < self.len() {
            let at = self.head.wrapping_add(i) & self.mask;
            self.buf.get_mut(at)
        } else {
            None
        }
    }

    /// Removes and returns the first record if `pred` holds for it: one look at the front
    /// instead of two for a `front` then a `pop_front`.
    #[inline]
    pub(crate) fn pop_front_if(&mut self, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        let first = *self.front()?;
        if !pred(&first) {
            return None;
        }
        self.head = self.head.wrapping_add(1);
        Some(first)
    }

    /// Removes the first record, which the caller has just looked at with `front`.
    #[inline]
    pub(crate) fn drop_front(&mut self) {
        debug_assert!(!self.is_empty());
        self.head = self.head.wrapping_add(1);
    }

    /// Appends a record.
    #[inline]
    pub(crate) fn push_back(&mut self, record: T) {
        if self.len() == self.buf.len() {
            self.grow();
        }
        let at = self.tail & self.mask;
        self.buf[at] = record;
        self.tail = self.tail.wrapping_add(1);
    }

    /// The records, first to last.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        let (head, mask) = (self.head, self.mask);
        (0..self.len()).map(move |i| &self.buf[head.wrapping_add(i) & mask])
    }

    #[cold]
    fn grow(&mut self) {
        let capacity = (self.buf.len() * 2).max(8);
        let mut buf = Vec::with_capacity(capacity);
        buf.extend(self.iter().copied());
        let len = buf.len();
        buf.resize(capacity, T::default());
        self.buf = buf;
        self.mask = capacity - 1;
        self.head = 0;
        self.tail = len;
    }
}

/// One ring of records read by `N` independent cursors, each a FIFO of its own: a record is
/// written once and each reader pops it when its own condition holds (the scheduler's
/// production frames are waited on, avoided by copies and released, each at a different
/// time). A record's place is reused once every cursor has passed it. The same
/// power-of-two ring and free-running counters as [`Fifo`].
#[derive(Clone, Debug)]
pub(crate) struct Ring<T, const N: usize> {
    /// The ring; its length is 0 or a power of two.
    buf: Vec<T>,
    /// `buf.len() - 1` (wrapping).
    mask: usize,
    /// Counter of each cursor's first record.
    heads: [usize; N],
    /// Counter one past the last record.
    tail: usize,
    /// A counter at or before every cursor's head: a lower bound, not updated when cursors
    /// move, so that a push compares with it instead of taking the minimum over the
    /// cursors; only a ring that looks full recomputes it.
    oldest: usize,
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Ring {
            buf: Vec::new(),
            mask: usize::MAX,
            heads: [0; N],
            tail: 0,
            oldest: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    /// Whether cursor `k` has no record.
    #[inline]
    pub(crate) fn is_empty(&self, k: usize) -> bool {
        self.heads[k] == self.tail
    }

    /// Cursor `k`'s first record.
    #[inline]
    pub(crate) fn front(&self, k: usize) -> Option<&T> {
        if self.is_empty(k) {
            None
        } else {
            self.buf.get(self.heads[k] & self.mask)
        }
    }

    /// Cursor `k`'s last record (the ring's last, when `k` has any).
    #[inline]
    pub(crate) fn back(&self, k: usize) -> Option<&T> {
        if self.is_empty(k) {
            None
        } else {
            self.buf.get(self.tail.wrapping_sub(1) & self.mask)
        }
    }

    /// Moves cursor `k` past its first record if `pred` holds for it.
    #[inline]
    pub(crate) fn pop_front_if(&mut self, k: usize, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        let first = *self.front(k)?;
        if !pred(&first) {
            return None;
        }
        self.heads[k] = self.heads[k].wrapping_add(1);
        Some(first)
    }

    /// Moves cursor `k` past its first record, which the caller has just looked at.
    #[cfg(test)]
    pub(crate) fn drop_front(&mut self, k: usize) {
        debug_assert!(!self.is_empty(k));
        self.heads[k] = self.heads[k].wrapping_add(1);
    }

    /// Records still held for some cursor.
    #[inline]
    fn held(&self) -> usize {
        self.heads
            .iter()
            .map(|&h| self.tail.wrapping_sub(h))
            .max()
            .unwrap_or(0)
    }

    /// Appends a record for every cursor.
    #[inline]
    pub(crate) fn push_back(&mut self, record: T) {
        if self.tail.wrapping_sub(self.oldest) == self.buf.len() {
            self.make_room();
        }
        let at = self.tail & self.mask;
        self.buf[at] = record;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Cursor `k` read into a [`Cursor`] of its own: a loop that pops from it while it
    /// writes elsewhere keeps the cursor in registers instead of reloading the ring's fields
    /// after every store. [`Ring::set_head`] moves the ring's cursor to where it ended.
    #[inline(always)]
    pub(crate) fn cursor(&self, k: usize) -> Cursor<'_, T> {
        Cursor {
            buf: &self.buf,
            head: self.heads[k],
            tail: self.tail,
        }
    }

    /// Moves cursor `k` to `head`, where a [`Cursor`] taken from it by [`Ring::cursor`]
    /// ended (no record has been pushed since: it is at or before the ring's last).
    #[inline(always)]
    pub(crate) fn set_head(&mut self, k: usize, head: usize) {
        debug_assert!(head.wrapping_sub(self.heads[k]) <= self.tail.wrapping_sub(self.heads[k]));
        self.heads[k] = head;
    }

    /// Cursor `k`'s records, first to last.
    #[cfg(test)]
    pub(crate) fn iter(&self, k: usize) -> impl Iterator<Item = &T> {
        let (head, mask) = (self.heads[k], self.mask);
        let len = self.tail.wrapping_sub(head);
        (0..len).map(move |i| &self.buf[head.wrapping_add(i) & mask])
    }

    /// The ring looks full by the lower bound: recomputes it, and grows when it is full.
    #[cold]
    fn make_room(&mut self) {
        self.oldest = self.tail.wrapping_sub(self.held());
        if self.tail.wrapping_sub(self.oldest) == self.buf.len() {
            self.grow();
        }
    }

    #[cold]
    fn grow(&mut self) {
        let held = self.held();
        let oldest = self.tail.wrapping_sub(held);
        let capacity = (self.buf.len() * 2).max(8);
        let mut buf = Vec::with_capacity(capacity);
        buf.extend((0..held).map(|i| self.buf[oldest.wrapping_add(i) & self.mask]));
        buf.resize(capacity, T::default());
        self.buf = buf;
        self.mask = capacity - 1;
        for h in &mut self.heads {
            *h = h.wrapping_sub(oldest);
        }
        self.tail = held;
        self.oldest = 0;
    }
}

/// One cursor of a [`Ring`] in locals (see [`Ring::cursor`]).
pub(crate) struct Cursor<'a, T> {
    /// The ring's buffer: the mask is its length less one, so that the compiler sees the
    /// masked index in bounds whenever the buffer is not empty, a test it can hoist.
    buf: &'a [T],
    head: usize,
    tail: usize,
}

impl<'a, T> Cursor<'a, T> {
    /// The first record.
    #[inline(always)]
    pub(crate) fn front(&self) -> Option<&'a T> {
        if self.head == self.tail {
            None
        } else {
            self.buf.get(self.head & self.buf.len().wrapping_sub(1))
        }
    }

    /// The records, first to last.
    #[inline(always)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a T> + use<'a, T> {
        let (buf, head) = (self.buf, self.head);
        let mask = buf.len().wrapping_sub(1);
        (0..self.tail.wrapping_sub(head)).map(move |i| &buf[head.wrapping_add(i) & mask])
    }

    /// Moves past the first record, which the caller has just looked at.
    #[inline(always)]
    pub(crate) fn drop_front(&mut self) {
        debug_assert!(self.head != self.tail);
        self.head = self.head.wrapping_add(1);
    }

    /// Where the cursor is, for [`Ring::set_head`].
    #[inline(always)]
    pub(crate) fn head(&self) -> usize {
        self.head
    }
}

#[cfg(test)]
mod tests {
    use super::{Fifo, Ring};
    use std::collections::VecDeque;

    #[test]
    fn behaves_like_a_vecdeque() {
        let mut fifo = Fifo::<u64>::default();
        let mut reference = VecDeque::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of pushes and pops, so the ring fills, wraps and grows.
            if x % 7 < 4 {
                fifo.push_back(step);
                reference.push_back(step);
            } else if x % 7 == 4 {
                assert_eq!(fifo.pop_front_if(|_| true), reference.pop_front());
            } else if x % 7 == 5 {
                let odd = |v: &u64| v % 2 == 1;
                let expected = reference.front().copied().filter(odd);
                if expected.is_some() {
                    reference.pop_front();
                }
                assert_eq!(fifo.pop_front_if(odd), expected);
            } else if fifo.front().is_some() {
                fifo.drop_front();
                reference.pop_front();
            }
            assert_eq!(fifo.len(), reference.len());
            assert_eq!(fifo.front(), reference.front());
            assert_eq!(fifo.back(), reference.back());
            if step % 997 == 0 {
                assert!(fifo.iter().eq(reference.iter()));
            }
        }
        while fifo.pop_front_if(|_| true).is_some() {}
        assert!(fifo.is_empty() && fifo.front().is_none() && fifo.back().is_none());
    }

    #[test]
    fn counters_may_wrap() {
        let mut fifo = Fifo::<u32> {
            head: usize::MAX - 3,
            tail: usize::MAX - 3,
            ..Fifo::default()
        };
        for i in 0..20 {
            fifo.push_back(i);
        }
        assert!(fifo.iter().copied().eq(0..20));
        for i in 0..20 {
            assert_eq!(fifo.pop_front_if(|_| true), Some(i));
        }
        assert!(fifo.is_empty());
    }

    #[test]
    fn ring_cursors_behave_like_vecdeques() {
        let mut ring = Ring::<u64, 3>::default();
        let mut reference: [VecDeque<u64>; 3] = Default::default();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x >> 32) as usize % 3;
            if x % 5 < 2 {
                ring.push_back(step);
                for r in &mut reference {
                    r.push_back(step);
                }
            } else if x % 5 == 2 {
                assert_eq!(ring.pop_front_if(k, |_| true), reference[k].pop_front());
            } else if x % 5 == 3 {
                let even = |v: &u64| v.is_multiple_of(2);
                let expected = reference[k].front().copied().filter(even);
                if expected.is_some() {
                    reference[k].pop_front();
                }
                assert_eq!(ring.pop_front_if(k, even), expected);
            } else if ring.front(k).is_some() {
                ring.drop_front(k);
                reference[k].pop_front();
            }
            for (k, r) in reference.iter().enumerate() {
                assert_eq!(ring.front(k), r.front());
                assert_eq!(ring.back(k), r.back());
                assert_eq!(ring.is_empty(k), r.is_empty());
            }
            if step % 997 == 0 {
                for (k, r) in reference.iter().enumerate() {
                    assert!(ring.iter(k).eq(r.iter()));
                }
            }
        }
    }
}
