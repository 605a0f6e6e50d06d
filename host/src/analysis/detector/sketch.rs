//! Fixed-size sketches: HyperLogLog distinct counters, a decayed count-min sketch with a
//! heavy-hitter list, and a Bloom filter. All allocate once and never grow.

/// 64-bit mixer (the splitmix64 finaliser): a good enough hash of keys that are already
/// integers, and much cheaper than SipHash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a 128-bit key (addresses are kept as IPv4-mapped IPv6 `u128`).
#[inline]
pub fn hash128(x: u128, seed: u64) -> u64 {
    mix64((x as u64) ^ mix64((x >> 64) as u64 ^ seed))
}

/// Registers of [`Hll`]: 64 give a standard error of about 13%, enough to tell tens of
/// distinct values from thousands, in 64 bytes per counter.
pub const HLL_REGISTERS: usize = 64;
const HLL_BITS: u32 = 6;

/// HyperLogLog distinct counter (Flajolet et al. 2007) with 64 registers, keeping the
/// harmonic sum and the number of empty registers up to date on every insert so that an
/// estimate costs O(1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hll {
    reg: [u8; HLL_REGISTERS],
    inv_sum: f32,
    zeros: u8,
}

impl Default for Hll {
    fn default() -> Self {
        Hll {
            reg: [0; HLL_REGISTERS],
            inv_sum: HLL_REGISTERS as f32,
            zeros: HLL_REGISTERS as u8,
        }
    }
}

/// `2^-r` exactly, straight into the exponent bits (a register's rank is at most 59, so
/// the result is a normal `f32`); `exp2` would be a library call for the same value.
#[inline]
fn pow2_neg(r: u8) -> f32 {
    f32::from_bits((127 - u32::from(r.min(126))) << 23)
}

/// Adds an already hashed item to the registers `reg` with their harmonic sum `inv_sum`
/// and count of empty registers `zeros`. Returns whether a register changed.
#[inline]
fn insert_into(reg: &mut [u8; HLL_REGISTERS], inv_sum: &mut f32, zeros: &mut u8, h: u64) -> bool {
    let idx = (h >> (64 - HLL_BITS)) as usize;
    // Rank of the first one bit in the remaining 58 bits (1-based), capped.
    let rest = (h << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rank = (rest.leading_zeros() + 1) as u8;
    let Some(r) = reg.get_mut(idx) else {
        return false;
    };
    if rank > *r {
        if *r == 0 {
            *zeros -= 1;
        }
        *inv_sum += pow2_neg(rank) - pow2_neg(*r);
        *r = rank;
        true
    } else {
        false
    }
}

/// The HyperLogLog estimate from the harmonic sum and the number of empty registers, with
/// the small-range (linear counting) correction.
#[inline]
fn estimate_of(inv_sum: f32, zeros: u8) -> f32 {
    let m = HLL_REGISTERS as f32;
    let alpha = 0.709; // α₆₄
    let raw = alpha * m * m / inv_sum;
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / f32::from(zeros)).ln()
    } else {
        raw
    }
}

impl Hll {
    /// Adds an already hashed item. Returns whether a register changed (a probably new item).
    #[inline]
    pub fn insert_hash(&mut self, h: u64) -> bool {
        insert_into(&mut self.reg, &mut self.inv_sum, &mut self.zeros, h)
    }

    /// Estimated number of distinct items, with the small-range (linear counting) correction.
    #[inline]
    pub fn estimate(&self) -> f32 {
        estimate_of(self.inv_sum, self.zeros)
    }
}

/// The registers of a [`WindowedHll`], kept apart from its summary: they change only when
/// an item is added (a flow's first packet), while the estimate, which most packets read,
/// lives in the summary. See [`WindowedHll`] for when they are valid.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(align(64))]
pub struct HllRegisters([u8; HLL_REGISTERS]);

impl Default for HllRegisters {
    fn default() -> Self {
        HllRegisters([0; HLL_REGISTERS])
    }
}

/// A distinct counter over a tumbling window: the estimate is the larger of the current
/// window's and the previous window's, so it never drops to zero right after a rotation.
///
/// This is the summary of a [`Hll`] whose registers ([`HllRegisters`]) the caller keeps
/// elsewhere and passes to [`WindowedHll::insert_hash`]: the harmonic sum, the number of
/// empty registers and the current estimate (kept up to date on every change, so reading
/// it costs no logarithm). While the summary has every register empty the registers
/// themselves are not read and may hold anything (an earlier owner's counts): the first
/// insert clears them. So a fresh summary can take over registers without clearing them,
/// and a rotation does not touch them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowedHll {
    start_ns: u64,
    inv_sum: f32,
    /// The current window's estimate (what [`Hll::estimate`] would say of the registers).
    est: f32,
    prev_est: f32,
    zeros: u8,
}

impl Default for WindowedHll {
    fn default() -> Self {
        let empty = Hll::default();
        WindowedHll {
            start_ns: 0,
            inv_sum: empty.inv_sum,
            est: empty.estimate(),
            prev_est: 0.0,
            zeros: empty.zeros,
        }
    }
}

impl WindowedHll {
    /// Rotates the window if `window_ns` has passed since it started.
    #[inline]
    fn roll(&mut self, ts_ns: u64, window_ns: u64) {
        let age = ts_ns.saturating_sub(self.start_ns);
        if age >= window_ns {
            let prev_est = if age < 2 * window_ns { self.est } else { 0.0 };
            *self = WindowedHll {
                start_ns: ts_ns,
                prev_est,
                ..WindowedHll::default()
            };
        }
    }

    /// Adds an already hashed item at `ts_ns` to the counter whose registers are `regs`.
    #[inline]
    pub fn insert_hash(&mut self, regs: &mut HllRegisters, ts_ns: u64, window_ns: u64, h: u64) {
        self.roll(ts_ns, window_ns);
        if usize::from(self.zeros) == HLL_REGISTERS {
            // Empty: the registers may be stale (see the type's docs).
            regs.0 = [0; HLL_REGISTERS];
        }
        if insert_into(&mut regs.0, &mut self.inv_sum, &mut self.zeros, h) {
            self.est = estimate_of(self.inv_sum, self.zeros);
        }
    }

    /// Distinct items in the current (or, if larger, the previous) window as of `ts_ns`.
    #[inline]
    pub fn estimate(&self, ts_ns: u64, window_ns: u64) -> f32 {
        let age = ts_ns.saturating_sub(self.start_ns);
        if age >= 2 * window_ns {
            0.0
        } else if age >= window_ns {
            self.est
        } else {
            self.est.max(self.prev_est)
        }
    }
}

/// Count-min sketch (Cormode and Muthukrishnan) whose counters decay with `2^(-λ t)`, so a
/// cell estimates a damped count (and, through [`DecayedCountMin::rate`], a rate). Decay is
/// applied to all cells at fixed ticks, which costs `depth × width` multiplications per tick
/// instead of an `exp2` per update.
#[derive(Debug, Clone)]
pub struct DecayedCountMin {
    cells: Vec<f32>,
    width: usize,
    depth: usize,
    lambda: f64,
    tick_ns: u64,
    last_tick_ns: u64,
    tick_factor: f32,
    top: Vec<(u128, f32)>,
    top_k: usize,
}

impl DecayedCountMin {
    /// A sketch of `depth` rows of `width` counters (width rounded up to a power of two),
    /// decayed every `tick_ns` with factor λ per second, tracking the `top_k` heaviest keys.
    pub fn new(width: usize, depth: usize, lambda: f64, tick_ns: u64, top_k: usize) -> Self {
        let width = width.max(16).next_power_of_two();
        let depth = depth.clamp(1, 8);
        let tick_ns = tick_ns.max(1);
        DecayedCountMin {
            cells: vec![0.0; width * depth],
            width,
            depth,
            lambda,
            tick_ns,
            last_tick_ns: 0,
            tick_factor: (-lambda * tick_ns as f64 * 1e-9).exp2() as f32,
            top: Vec::with_capacity(top_k),
            top_k,
        }
    }

    fn advance(&mut self, ts_ns: u64) {
        if self.last_tick_ns == 0 {
            self.last_tick_ns = ts_ns;
            return;
        }
        let ticks = ts_ns.saturating_sub(self.last_tick_ns) / self.tick_ns;
        if ticks == 0 {
            return;
        }
        let f = if ticks == 1 {
            self.tick_factor
        } else {
            (-self.lambda * (ticks * self.tick_ns) as f64 * 1e-9).exp2() as f32
        };
        for c in &mut self.cells {
            *c *= f;
        }
        for t in &mut self.top {
            t.1 *= f;
        }
        self.last_tick_ns += ticks * self.tick_ns;
    }

    #[inline]
    fn index(&self, row: usize, key: u128) -> usize {
        let h = hash128(key, 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(row as u64 + 1));
        row * self.width + (h as usize & (self.width - 1))
    }

    /// Adds `x` to `key` at `ts_ns` (conservative update: only the minimal cells grow, which
    /// tightens the overestimate) and returns the new estimate.
    pub fn add(&mut self, ts_ns: u64, key: u128, x: f32) -> f32 {
        self.advance(ts_ns);
        let mut est = f32::INFINITY;
        for row in 0..self.depth {
            est = est.min(self.cells[self.index(row, key)]);
        }
        let target = est + x;
        for row in 0..self.depth {
            let i = self.index(row, key);
            if self.cells[i] < target {
                self.cells[i] = target;
            }
        }
        self.offer(key, target);
        target
    }

    /// The damped count of `key` as of the last update.
    pub fn estimate(&self, key: u128) -> f32 {
        (0..self.depth)
            .map(|row| self.cells[self.index(row, key)])
            .fold(f32::INFINITY, f32::min)
    }

    /// The rate per second a damped count corresponds to at steady state.
    pub fn rate(&self, count: f32) -> f32 {
        count * (self.lambda * core::f64::consts::LN_2) as f32
    }

    fn offer(&mut self, key: u128, est: f32) {
        if let Some(t) = self.top.iter_mut().find(|t| t.0 == key) {
            t.1 = est;
            return;
        }
        if self.top.len() < self.top_k {
            self.top.push((key, est));
            return;
        }
        if let Some(min) = self.top.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1))
            && min.1 < est
        {
            *min = (key, est);
        }
    }

    /// The heaviest keys with their damped counts, heaviest first.
    pub fn heavy_hitters(&self) -> Vec<(u128, f32)> {
        let mut v = self.top.clone();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// Bloom filter over 128-bit keys, with `k` probes from double hashing.
#[derive(Debug, Clone)]
pub struct Bloom {
    bits: Vec<u64>,
    mask: u64,
    k: u32,
}

impl Bloom {
    /// A filter of at least `bits` bits (rounded up to a power of two) and `k` probes.
    pub fn new(bits: usize, k: u32) -> Self {
        let bits = bits.max(64).next_power_of_two();
        Bloom {
            bits: vec![0; bits / 64],
            mask: bits as u64 - 1,
            k: k.clamp(1, 16),
        }
    }

    fn probes(&self, key: u128) -> impl Iterator<Item = u64> + use<> {
        let h1 = hash128(key, 0x51_7cc1_b727_220a);
        let h2 = hash128(key, 0x2545_f491_4f6c_dd1d) | 1;
        let mask = self.mask;
        (0..u64::from(self.k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: u128) {
        for b in self.probes(key) {
            if let Some(w) = self.bits.get_mut((b / 64) as usize) {
                *w |= 1 << (b % 64);
            }
        }
    }

    /// Whether `key` was (probably) added.
    pub fn contains(&self, key: u128) -> bool {
        self.probes(key).all(|b| {
            self.bits
                .get((b / 64) as usize)
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_neg_is_exact() {
        for r in 0..=64u8 {
            assert_eq!(pow2_neg(r), (-f32::from(r)).exp2(), "2^-{r}");
        }
    }

    #[test]
    fn hll_within_error_bounds() {
        for n in [1u64, 10, 50, 200, 1_000, 10_000, 100_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.insert_hash(mix64(i ^ 0xabcdef));
                // Duplicates change nothing.
                h.insert_hash(mix64(i ^ 0xabcdef));
            }
            let e = h.estimate() as f64;
            // 3 standard errors (13% each) plus a little for tiny counts.
            let tol = 0.39 * n as f64 + 2.0;
            assert!((e - n as f64).abs() <= tol, "n={n} estimate {e}");
        }
    }

    #[test]
    fn hll_incremental_sum_matches_registers() {
        let mut h = Hll::default();
        for i in 0..5_000u64 {
            h.insert_hash(mix64(i));
        }
        let sum: f32 = h.reg.iter().map(|&r| (-f32::from(r)).exp2()).sum();
        assert!((sum - h.inv_sum).abs() < 1e-3, "{sum} vs {}", h.inv_sum);
        assert_eq!(h.zeros as usize, h.reg.iter().filter(|&&r| r == 0).count());
    }

    #[test]
    fn windowed_hll_forgets_old_windows() {
        let w = 10_000_000_000;
        let mut h = WindowedHll::default();
        let mut regs = HllRegisters::default();
        for i in 0..500u64 {
            h.insert_hash(&mut regs, 1 + i * 1_000_000, w, mix64(i));
        }
        assert!(h.estimate(1_000_000_000, w) > 350.0);
        // In the next window the previous count is still reported, two windows later not.
        h.insert_hash(&mut regs, 12_000_000_000, w, mix64(1));
        assert!(h.estimate(12_000_000_000, w) > 350.0);
        assert_eq!(h.estimate(40_000_000_000, w), 0.0);
    }

    #[test]
    fn windowed_hll_ignores_stale_registers() {
        // Registers another counter left behind give the same counts as clean ones: a
        // new entry of a table takes over its slot's registers without clearing them.
        let w = 10_000_000_000;
        let mut stale = HllRegisters::default();
        let mut other = WindowedHll::default();
        for i in 0..3_000u64 {
            other.insert_hash(&mut stale, 1, w, mix64(i ^ 0x5555));
        }
        let (mut a, mut b) = (WindowedHll::default(), WindowedHll::default());
        let mut clean = HllRegisters::default();
        for i in 0..40u64 {
            let t = 1 + i * 700_000_000;
            a.insert_hash(&mut stale, t, w, mix64(i));
            b.insert_hash(&mut clean, t, w, mix64(i));
            assert_eq!(a, b);
            assert_eq!(stale, clean);
            assert_eq!(a.estimate(t, w), b.estimate(t, w));
        }
        // Within one window, the cached estimate is what a whole counter's registers give.
        let (mut c, mut regs, mut h) = (WindowedHll::default(), stale, Hll::default());
        for i in 0..200u64 {
            c.insert_hash(&mut regs, 5, w, mix64(i));
            h.insert_hash(mix64(i));
            assert_eq!(c.estimate(5, w), h.estimate());
        }
        assert_eq!(regs.0, h.reg);
    }

    #[test]
    fn count_min_never_underestimates_and_finds_heavy_hitters() {
        let mut cm = DecayedCountMin::new(256, 4, 0.0, 100_000_000, 4);
        let mut truth = std::collections::HashMap::new();
        for i in 0..20_000u64 {
            // Key 7 gets a third of all updates, the rest spread over 2000 keys.
            let key = if i % 3 == 0 {
                7u128
            } else {
                u128::from(mix64(i) % 2000) + 100
            };
            cm.add(1 + i, key, 1.0);
            *truth.entry(key).or_insert(0.0f32) += 1.0;
        }
        let total: f32 = truth.values().sum();
        for (&k, &c) in &truth {
            let e = cm.estimate(k);
            assert!(e >= c, "key {k}: {e} < {c}");
            // ε = e / width: the overestimate stays within ε·N with high probability.
            assert!(
                e - c <= total * std::f32::consts::E / 256.0,
                "key {k}: {e} vs {c}"
            );
        }
        assert_eq!(cm.heavy_hitters().first().map(|t| t.0), Some(7));
    }

    #[test]
    fn count_min_decays() {
        let mut cm = DecayedCountMin::new(64, 2, 1.0, 100_000_000, 2);
        cm.add(1_000_000_000, 5, 100.0);
        cm.add(3_000_000_000, 6, 1.0);
        let e = cm.estimate(5);
        assert!(
            (e - 25.0).abs() < 0.5,
            "two seconds at λ=1 quarter the count: {e}"
        );
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::new(1 << 16, 4);
        for i in 0..5_000u128 {
            b.insert(i * 977);
        }
        assert!((0..5_000u128).all(|i| b.contains(i * 977)));
        let fp = (0..10_000u128).filter(|i| b.contains(i * 977 + 1)).count();
        // Expected (1 - e^(-kn/m))^k ≈ 0.24%.
        assert!(fp < 100, "false positives {fp}");
    }
}
