//! A small seeded random source and the distributions the generator draws from.
//!
//! Hand-written rather than taken from `rand`: the generator promises byte-identical output
//! for a seed across releases, and `rand`'s algorithms and distribution sampling are allowed
//! to change between its versions.

/// SplitMix64 step: seeds xoshiro and derives independent streams from (seed, stream id).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna): fast, statistically sound, 256 bits of state.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A stream for `(seed, stream)`; different streams are independent for practical purposes.
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        let mut x = splitmix64(seed ^ splitmix64(stream.wrapping_add(0x5bd1_e995)));
        let mut s = [0u64; 4];
        for w in &mut s {
            x = splitmix64(x);
            *w = x;
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe under a logarithm.
    fn open01(&mut self) -> f64 {
        1.0 - self.f64()
    }

    /// Uniform integer in [lo, hi] (inclusive); `lo` when `hi < lo`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        // Multiply-shift: bias below 2^-32 for the spans used here.
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// Uniform index below `n` (`n` ≥ 1).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.range(0, n.saturating_sub(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        -mean * self.open01().ln()
    }

    /// Weibull with shape `k` scaled to `mean`; shape below 1 is heavy-tailed and bursty.
    pub(crate) fn weibull(&mut self, k: f64, mean: f64) -> f64 {
        let scale = mean / gamma_1_plus_inv(k);
        scale * (-self.open01().ln()).powf(1.0 / k)
    }

    pub(crate) fn normal(&mut self) -> f64 {
        // Box-Muller; one of the pair is enough here.
        let u1 = self.open01();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-standard deviation.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Pareto with shape `alpha` truncated to [lo, hi] (inverse CDF of the bounded Pareto).
    pub(crate) fn bounded_pareto(&mut self, alpha: f64, lo: f64, hi: f64) -> f64 {
        let u = self.f64();
        let r = (lo / hi).powf(alpha);
        lo / (1.0 - u * (1.0 - r)).powf(1.0 / alpha)
    }

    /// 1 + the number of failures before a success of probability `p`, at most `max`.
    pub(crate) fn geometric(&mut self, p: f64, max: u32) -> u32 {
        let mut n = 1;
        while n < max && !self.chance(p) {
            n += 1;
        }
        n
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Γ(1 + 1/k) by the Lanczos approximation (g = 7, n = 9), accurate to ~1e-13.
fn gamma_1_plus_inv(k: f64) -> f64 {
    gamma(1.0 + 1.0 / k)
}

fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x))
    } else {
        let x = x - 1.0;
        let mut a = C[0];
        let t = x + G + 0.5;
        for (i, c) in C.iter().enumerate().skip(1) {
            a += c / (x + i as f64);
        }
        (std::f64::consts::TAU).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
    }
}

/// Popularity by Zipf's law over `n` items: a few are chosen very often, most rarely.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n.max(1));
        for i in 1..=n.max(1) {
            acc += 1.0 / (i as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(8, 1).next_u64());
    }

    #[test]
    fn distribution_means() {
        let mut r = Rng::new(1, 0);
        let n = 200_000;
        let w: f64 = (0..n).map(|_| r.weibull(0.6, 2.0)).sum::<f64>() / n as f64;
        assert!((w - 2.0).abs() < 0.06, "weibull mean {w}");
        let e: f64 = (0..n).map(|_| r.exp(3.0)).sum::<f64>() / n as f64;
        assert!((e - 3.0).abs() < 0.05, "exp mean {e}");
        let p: Vec<f64> = (0..n).map(|_| r.bounded_pareto(1.2, 100.0, 1e6)).collect();
        assert!(p.iter().all(|&x| (100.0..=1e6).contains(&x)));
        let z = Zipf::new(100, 1.0);
        let hits = (0..n).filter(|_| z.sample(&mut r) == 0).count() as f64 / n as f64;
        // 1 / H(100) = 0.1928
        assert!((hits - 0.1928).abs() < 0.01, "zipf head {hits}");
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
    }
}
