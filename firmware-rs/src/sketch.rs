//! The heavy-hitter sketch: which flows carry most of the traffic, in fixed memory.
//!
//! A count-min sketch ([`DEPTH`] rows of [`WIDTH`] counters, packets and bytes) estimates
//! every flow's volume from above; a small top-K table ([`TOP_K`] entries, space-saving
//! style) keeps the flows with the largest estimates. A flow enters the table when its
//! estimate exceeds the smallest tracked one, replacing it, and is counted exactly from
//! then on. Since a tracked flow's count never exceeds its estimate, a flow whose estimate
//! is below the table's minimum cannot be in it: most packets (the mice) cost only the
//! count-min update and one comparison, never the table scan.
//!
//! Error: for a sketch of `N` packets, each estimate exceeds the true count by at most
//! `e / WIDTH * N` with probability at least `1 - exp(-DEPTH)` (Cormode and Muthukrishnan);
//! with `WIDTH` 1024 and `DEPTH` 4, under 0.27 % of `N` with probability 98 %.

use crate::cost;

/// Rows of the count-min sketch.
pub const DEPTH: usize = 4;
/// Counters per row (a power of two).
pub const WIDTH: usize = 1024;
/// Flows the top-K table keeps.
pub const TOP_K: usize = 16;

const WIDTH_BITS: u32 = WIDTH.trailing_zeros();
const _: () = assert!(WIDTH.is_power_of_two());

/// Odd multipliers of the rows' multiply-shift hashes (fixed: the firmware has no entropy,
/// and the flow hash it is fed is already mixed).
const SEEDS: [u64; DEPTH] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
];

/// One packet the data path saw: its flow and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSample {
    /// Flow hash of the packet's (inner) headers.
    pub flow: u32,
    /// Frame length in bytes.
    pub len: u32,
}

/// A tracked flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeavyHitter {
    /// Flow hash.
    pub flow: u32,
    /// Estimated packets (an upper bound of the true count).
    pub packets: u64,
    /// Estimated bytes (an upper bound of the true count).
    pub bytes: u64,
}

/// Count-min sketch plus top-K table.
#[derive(Clone, Debug)]
pub struct Sketch {
    packets: [[u32; WIDTH]; DEPTH],
    bytes: [[u64; WIDTH]; DEPTH],
    top: [HeavyHitter; TOP_K],
    /// Entries of `top` in use.
    used: usize,
    /// The smallest packet count in `top` once it is full (0 before).
    floor: u64,
    /// Packets seen since the last clear.
    total: u64,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            packets: [[0; WIDTH]; DEPTH],
            bytes: [[0; WIDTH]; DEPTH],
            top: [HeavyHitter::default(); TOP_K],
            used: 0,
            floor: 0,
            total: 0,
        }
    }
}

#[inline]
fn column(row: usize, flow: u32) -> usize {
    ((flow as u64 ^ 0x5bd1_e995).wrapping_mul(SEEDS[row]) >> (64 - WIDTH_BITS)) as usize
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Packets counted since the last [`Sketch::clear`].
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Forgets everything (the start of a new interval).
    pub fn clear(&mut self) {
        for row in self.packets.iter_mut() {
            row.fill(0);
        }
        for row in self.bytes.iter_mut() {
            row.fill(0);
        }
        self.used = 0;
        self.floor = 0;
        self.total = 0;
    }

    /// The estimate of `flow`: (packets, bytes), each the minimum over the rows.
    pub fn estimate(&self, flow: u32) -> (u64, u64) {
        let mut p = u64::MAX;
        let mut b = u64::MAX;
        for row in 0..DEPTH {
            let c = column(row, flow);
            p = p.min(self.packets[row][c] as u64);
            b = b.min(self.bytes[row][c]);
        }
        (p, b)
    }

    /// Counts one packet; returns the cycles it cost the core.
    pub fn update(&mut self, s: FlowSample) -> u32 {
        self.total += 1;
        let mut est_p = u32::MAX;
        let mut est_b = u64::MAX;
        for row in 0..DEPTH {
            let c = column(row, s.flow);
            let p = &mut self.packets[row][c];
            // Saturating: an interval longer than 2^32 packets keeps the estimate at the top.
            *p = p.saturating_add(1);
            est_p = est_p.min(*p);
            let b = &mut self.bytes[row][c];
            *b = b.saturating_add(s.len as u64);
            est_b = est_b.min(*b);
        }
        let mut cycles = cost::SKETCH_UPDATE + cost::SKETCH_ROW * DEPTH as u32;
        let est_p = est_p as u64;
        if self.used == TOP_K && est_p <= self.floor {
            return cycles;
        }
        cycles += cost::SKETCH_TOPK * self.used as u32;
        if let Some(e) = self.top[..self.used].iter_mut().find(|e| e.flow == s.flow) {
            e.packets += 1;
            e.bytes += s.len as u64;
        } else if self.used < TOP_K {
            self.top[self.used] = HeavyHitter {
                flow: s.flow,
                packets: est_p,
                bytes: est_b,
            };
            self.used += 1;
        } else if let Some(min) = self.top.iter_mut().min_by_key(|e| e.packets) {
            // Space-saving: the new flow takes the smallest entry's place, with its
            // count-min estimate (which bounds everything it may have sent before).
            *min = HeavyHitter {
                flow: s.flow,
                packets: est_p,
                bytes: est_b,
            };
        }
        if self.used == TOP_K {
            self.floor = self.top.iter().map(|e| e.packets).min().unwrap_or(0);
            cycles += cost::SKETCH_TOPK * TOP_K as u32;
        }
        cycles
    }

    /// The tracked flows, largest first, into `out`; returns how many.
    pub fn top(&self, out: &mut [HeavyHitter; TOP_K]) -> usize {
        *out = self.top;
        let n = self.used;
        // Insertion sort: K is tiny and the firmware has no allocator.
        for i in 1..n {
            let mut j = i;
            while j > 0 && out[j - 1].packets < out[j].packets {
                out.swap(j - 1, j);
                j -= 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (xorshift) so the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn estimates_bound_the_truth_from_above_within_the_error() {
        let mut s = Sketch::new();
        let mut rng = Rng(7);
        let mut truth = [0u64; 5000];
        for _ in 0..200_000 {
            let f = (rng.next() % 5000) as usize;
            truth[f] += 1;
            s.update(FlowSample {
                flow: (f as u32).wrapping_mul(2_654_435_761),
                len: 64,
            });
        }
        let bound = (core::f64::consts::E / WIDTH as f64 * 200_000.0) as u64;
        let mut over = 0;
        for (f, &t) in truth.iter().enumerate() {
            let (p, b) = s.estimate((f as u32).wrapping_mul(2_654_435_761));
            assert!(p >= t && b >= t * 64, "never below the truth");
            if p - t > bound {
                over += 1;
            }
        }
        // At most exp(-DEPTH) ≈ 1.8 % of flows may exceed the bound.
        assert!(over < 5000 / 50, "{over} flows over the bound");
    }

    #[test]
    fn clear_forgets_everything() {
        let mut s = Sketch::new();
        s.update(FlowSample { flow: 1, len: 100 });
        s.clear();
        assert_eq!(s.estimate(1), (0, 0));
        assert_eq!(s.total(), 0);
        let mut out = [HeavyHitter::default(); TOP_K];
        assert_eq!(s.top(&mut out), 0);
    }
}
