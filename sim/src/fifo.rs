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
    #[inline]
    pub(crate) fn back(&self) -> Option<&T> {
        if self.is_empty() {
            None
        } else {
            self.buf.get(self.tail.wrapping_sub(1) & self.mask)
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

#[cfg(test)]
mod tests {
    use super::Fifo;
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
}
