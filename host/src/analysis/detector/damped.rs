//! Damped incremental statistics, the AfterImage windows of Kitsune (Mirsky et al., NDSS 2018).
//!
//! Every observation `x` at time `t` carries the weight `2^(-λ (now - t))`: a statistic with
//! decay factor λ (per second) forgets half of its past every `1/λ` seconds. The sums are kept
//! incrementally (decay everything, then add the new observation), so an update costs O(1)
//! whatever the rate; [`Window::mean`] and friends are what a batch computation over the
//! whole weighted history would give (the tests check that).

use super::fastmath::exp2_neg;

/// The decay factors (per second) of the windows, from the shortest window to the longest.
pub const LAMBDAS: [f64; 5] = [5.0, 3.0, 1.0, 0.1, 0.01];

/// Number of windows.
pub const NL: usize = LAMBDAS.len();

/// `2^(-λ dt)` for every λ of [`LAMBDAS`]; `dt` in seconds, never negative.
#[inline]
pub fn decays(dt: f64) -> [f64; NL] {
    decays_of(&LAMBDAS, dt)
}

/// `2^(-λ dt)` for every λ of `lambdas`; `dt` in seconds, never negative.
///
/// One `exp2` serves λ = 1, 3 and 5 (`2^(-5dt)` and `2^(-3dt)` are powers of `2^(-dt)`);
/// every other λ costs its own. The `exp2` is [`exp2_neg`] (relative error below `2e-8`,
/// so below `1e-7` for the powers).
#[inline]
pub fn decays_of<const N: usize>(lambdas: &[f64; N], dt: f64) -> [f64; N] {
    if dt <= 0.0 {
        return [1.0; N];
    }
    let d1 = exp2_neg(-dt);
    let d2 = d1 * d1;
    let d3 = d2 * d1;
    lambdas.map(|l| {
        if l == 1.0 {
            d1
        } else if l == 3.0 {
            d3
        } else if l == 5.0 {
            d3 * d2
        } else {
            exp2_neg(-l * dt)
        }
    })
}

/// One damped window: decayed weight, linear sum and squared sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Decayed number of observations (`Σ wᵢ`).
    pub w: f64,
    /// Decayed linear sum (`Σ wᵢ xᵢ`).
    pub ls: f64,
    /// Decayed squared sum (`Σ wᵢ xᵢ²`).
    pub ss: f64,
}

impl Window {
    /// Weighted mean; 0 without observations.
    #[inline]
    pub fn mean(&self) -> f64 {
        if self.w > 0.0 { self.ls / self.w } else { 0.0 }
    }

    /// Weighted population variance; 0 without observations.
    #[inline]
    pub fn var(&self) -> f64 {
        if self.w > 0.0 {
            let m = self.ls / self.w;
            (self.ss / self.w - m * m).abs()
        } else {
            0.0
        }
    }

    /// Weighted standard deviation.
    #[inline]
    pub fn std(&self) -> f64 {
        self.var().sqrt()
    }
}

/// Damped statistics of one stream of values (for example packet sizes of one host) in `N`
/// windows, one per decay factor of the `lambdas` the caller passes to every update (the
/// same ones each time; [`LAMBDAS`] by default). A table keeps only the windows its
/// features read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DampedStats<const N: usize = NL> {
    /// One window per λ.
    pub win: [Window; N],
    last_ns: u64,
}

impl<const N: usize> Default for DampedStats<N> {
    fn default() -> Self {
        DampedStats {
            win: [Window::default(); N],
            last_ns: 0,
        }
    }
}

impl<const N: usize> DampedStats<N> {
    /// Decays to `ts_ns` (a timestamp before the last one is treated as the same instant, so
    /// reordered packets never inflate the sums) and adds `x`. Returns the decay factors
    /// used, for callers that keep related sums in step.
    #[inline]
    pub fn update(&mut self, ts_ns: u64, x: f64, lambdas: &[f64; N]) -> [f64; N] {
        let d = self.decay_to(ts_ns, lambdas);
        for win in &mut self.win {
            win.w += 1.0;
            win.ls += x;
            win.ss += x * x;
        }
        d
    }

    /// Decays the sums to `ts_ns` without adding anything.
    #[inline]
    pub fn decay_to(&mut self, ts_ns: u64, lambdas: &[f64; N]) -> [f64; N] {
        let dt = ts_ns.saturating_sub(self.last_ns) as f64 * 1e-9;
        let d = if self.last_ns == 0 {
            [1.0; N]
        } else {
            decays_of(lambdas, dt)
        };
        self.apply(d, ts_ns);
        d
    }

    /// Multiplies the sums by the factors `d` that take them to `ts_ns` (computed by a caller
    /// whose own clock is in step with this one).
    #[inline]
    fn apply(&mut self, d: [f64; N], ts_ns: u64) {
        for (win, f) in self.win.iter_mut().zip(d) {
            win.w *= f;
            win.ls *= f;
            win.ss *= f;
        }
        self.last_ns = self.last_ns.max(ts_ns);
    }

    /// Timestamp of the last update.
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }
}

/// A damped counter with one decay factor: a rate estimate that needs no window.
///
/// After a steady rate `r` per second its value settles at `r / (λ ln 2)`; [`Self::rate`]
/// undoes that factor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DampedCounter {
    value: f64,
    last_ns: u64,
}

impl DampedCounter {
    /// Adds `x` at `ts_ns` with decay `lambda`.
    #[inline]
    pub fn add(&mut self, ts_ns: u64, lambda: f64, x: f64) {
        self.value = self.value_at(ts_ns, lambda) + x;
        self.last_ns = self.last_ns.max(ts_ns);
    }

    /// The decayed sum at `ts_ns`.
    #[inline]
    pub fn value_at(&self, ts_ns: u64, lambda: f64) -> f64 {
        let dt = ts_ns.saturating_sub(self.last_ns) as f64 * 1e-9;
        if dt <= 0.0 {
            self.value
        } else {
            self.value * exp2_neg(-lambda * dt)
        }
    }

    /// The steady-state rate per second the decayed sum corresponds to.
    #[inline]
    pub fn rate(&self, ts_ns: u64, lambda: f64) -> f64 {
        self.value_at(ts_ns, lambda) * lambda * core::f64::consts::LN_2
    }
}

/// Damped 2D statistics of the two directions of a conversation (Kitsune's `incStatCov`):
/// each direction's 1D windows plus, per λ, the decayed sum of residual products that gives
/// the covariance and correlation between the directions' packet sizes.
///
/// When a value arrives on one direction, its residual (value minus that direction's mean)
/// is multiplied by the other direction's last residual; the products and their count decay
/// like the 1D sums. `N` windows, one per λ of the `lambdas` every update is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DampedCov<const N: usize = NL> {
    /// The 1D statistics of direction 0 and direction 1.
    pub dir: [DampedStats<N>; 2],
    sr: [f64; N],
    w3: [f64; N],
    last_res: [[f64; N]; 2],
    last_ns: u64,
}

impl<const N: usize> Default for DampedCov<N> {
    fn default() -> Self {
        DampedCov {
            dir: [DampedStats::default(); 2],
            sr: [0.0; N],
            w3: [0.0; N],
            last_res: [[0.0; N]; 2],
            last_ns: 0,
        }
    }
}

impl<const N: usize> DampedCov<N> {
    /// Adds `x` on direction `d` (0 or 1; anything else counts as 1) at `ts_ns`.
    #[inline]
    pub fn update(&mut self, ts_ns: u64, d: usize, x: f64, lambdas: &[f64; N]) {
        let d = d.min(1);
        let other = 1 - d;
        let dt = ts_ns.saturating_sub(self.last_ns) as f64 * 1e-9;
        let f = if self.last_ns == 0 {
            [1.0; N]
        } else {
            decays_of(lambdas, dt)
        };
        self.last_ns = self.last_ns.max(ts_ns);
        // Both directions are only ever touched here, so their clocks equal this one and
        // one set of decay factors serves all three (three `exp2` per packet instead of nine).
        self.dir[d].apply(f, ts_ns);
        let win = &mut self.dir[d].win;
        for w in win.iter_mut() {
            w.w += 1.0;
            w.ls += x;
            w.ss += x * x;
        }
        self.dir[other].apply(f, ts_ns);
        for (i, &f) in f.iter().enumerate() {
            let r = x - self.dir[d].win[i].mean();
            self.sr[i] = self.sr[i] * f + r * self.last_res[other][i];
            self.w3[i] = self.w3[i] * f + 1.0;
            self.last_res[d][i] = r;
        }
    }

    /// Approximate covariance between the directions in window `i`.
    #[inline]
    pub fn cov(&self, i: usize) -> f64 {
        match self.w3.get(i) {
            Some(&w) if w > 0.0 => self.sr[i] / w,
            _ => 0.0,
        }
    }

    /// Correlation coefficient between the directions in window `i`, clamped to [-1, 1];
    /// 0 while either direction has no spread.
    #[inline]
    pub fn pcc(&self, i: usize) -> f64 {
        let s = self.dir[0].win[i].std() * self.dir[1].win[i].std();
        if s > 1e-12 {
            (self.cov(i) / s).clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }

    /// `sqrt(μ₀² + μ₁²)` in window `i` (Kitsune's magnitude).
    #[inline]
    pub fn magnitude(&self, i: usize) -> f64 {
        let a = self.dir[0].win[i].mean();
        let b = self.dir[1].win[i].mean();
        (a * a + b * b).sqrt()
    }

    /// `sqrt(σ₀² + σ₁²)` in window `i` (Kitsune's radius).
    #[inline]
    pub fn radius(&self, i: usize) -> f64 {
        (self.dir[0].win[i].var() + self.dir[1].win[i].var()).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agreement of the recurrence with a batch computation that uses the std `exp2`: the
    /// recurrence's factors come from [`exp2_neg`] (relative error below `1e-7` with the
    /// powers), and a sum carries the error of every factor applied since each term
    /// arrived, so over these short series the two agree to `1e-6`, not to rounding.
    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
    }

    /// Observations at irregular times, with a reordered one.
    fn series() -> Vec<(u64, f64)> {
        let mut v = Vec::new();
        let mut t = 1_000_000_000u64;
        for i in 0..400u64 {
            t += (i * 7_919 % 613) * 1_000_000 + 1;
            v.push((t, 40.0 + ((i * 31) % 1460) as f64));
        }
        v
    }

    #[test]
    fn stats_match_batch_weights() {
        let s = series();
        let mut d = DampedStats::default();
        for &(t, x) in &s {
            d.update(t, x, &LAMBDAS);
        }
        let now = s.last().map(|p| p.0).unwrap_or(0);
        for (i, lambda) in LAMBDAS.iter().enumerate() {
            let (mut w, mut ls, mut ss) = (0.0, 0.0, 0.0);
            for &(t, x) in &s {
                let wi = (-lambda * (now - t) as f64 * 1e-9).exp2();
                w += wi;
                ls += wi * x;
                ss += wi * x * x;
            }
            let win = d.win[i];
            assert!(near(win.w, w), "λ={lambda}: w {} vs {w}", win.w);
            assert!(near(win.ls, ls), "λ={lambda}: ls {} vs {ls}", win.ls);
            assert!(near(win.ss, ss), "λ={lambda}: ss");
            let mean = ls / w;
            assert!(near(win.mean(), mean));
            assert!((win.var() - (ss / w - mean * mean).abs()).abs() < 1e-6 * (1.0 + win.var()));
        }
    }

    #[test]
    fn decays_match_exp2() {
        for dt in [0.0, 1e-9, 1e-6, 0.013, 0.37, 1.0, 7.5, 300.0] {
            let d = decays(dt);
            for (i, l) in LAMBDAS.iter().enumerate() {
                let want = (-l * dt).exp2();
                // Relative error below 1e-7; both 0 where 2^(-λ dt) underflows.
                assert!(
                    (d[i] - want).abs() <= 1e-7 * want,
                    "dt {dt} λ {l}: {} vs {want}",
                    d[i]
                );
            }
        }
    }

    #[test]
    fn fewer_windows_keep_the_same_sums() {
        // A table that keeps only some windows gets exactly the sums the full set has in
        // those windows.
        const SOME: [f64; 3] = [5.0, 1.0, 0.1];
        let mut all = DampedCov::default();
        let mut some = DampedCov::<3>::default();
        for (k, &(t, x)) in series().iter().enumerate() {
            all.update(t, k % 3 % 2, x, &LAMBDAS);
            some.update(t, k % 3 % 2, x, &SOME);
        }
        for (j, i) in [0, 2, 3].into_iter().enumerate() {
            assert_eq!(some.dir[0].win[j], all.dir[0].win[i]);
            assert_eq!(some.dir[1].win[j], all.dir[1].win[i]);
            assert_eq!(some.cov(j), all.cov(i));
            assert_eq!(some.pcc(j), all.pcc(i));
        }
    }

    #[test]
    fn counter_rate_settles_at_the_true_rate() {
        let mut c = DampedCounter::default();
        // 1000 per second for 20 s with λ = 1.
        for i in 0..20_000u64 {
            c.add(1 + i * 1_000_000, 1.0, 1.0);
        }
        let r = c.rate(20_000_000_000, 1.0);
        assert!((r - 1000.0).abs() < 10.0, "rate {r}");
    }

    #[test]
    fn cov_matches_batch_recurrence_and_correlates() {
        // Batch: replay the definition over the full history with explicit weights.
        let s = series();
        let mut c = DampedCov::default();
        let mut hist: Vec<(u64, usize, f64)> = Vec::new();
        for (k, &(t, x)) in s.iter().enumerate() {
            let d = k % 2;
            // Direction 1 mirrors direction 0 (a response as big as its request), so the
            // two are strongly correlated.
            let x = if d == 1 {
                hist.last().map(|h| h.2).unwrap_or(x) * 1.5
            } else {
                x
            };
            c.update(t, d, x, &LAMBDAS);
            hist.push((t, d, x));
        }
        let now = hist.last().map(|h| h.0).unwrap_or(0);
        for (i, lambda) in LAMBDAS.iter().enumerate() {
            let wt = |t: u64| (-lambda * (now - t) as f64 * 1e-9).exp2();
            // Residuals as the recurrence defines them: against the direction's mean at the
            // time the value arrived.
            let mut sr = 0.0;
            let mut w3 = 0.0;
            let mut last = [0.0f64; 2];
            for (j, &(t, d, x)) in hist.iter().enumerate() {
                let (mut w, mut ls) = (0.0, 0.0);
                for &(t2, d2, x2) in &hist[..=j] {
                    if d2 == d {
                        let w2 = (-lambda * (t - t2) as f64 * 1e-9).exp2();
                        w += w2;
                        ls += w2 * x2;
                    }
                }
                let r = x - ls / w;
                sr += wt(t) * r * last[1 - d];
                w3 += wt(t);
                last[d] = r;
            }
            assert!(
                near(c.cov(i), sr / w3),
                "λ={lambda}: {} vs {}",
                c.cov(i),
                sr / w3
            );
        }
        // Over the slow windows the directions correlate positively.
        assert!(c.pcc(3) > 0.5, "pcc {}", c.pcc(3));
        assert!(c.magnitude(2) > c.dir[0].win[2].mean());
        assert!(c.radius(2) >= c.dir[0].win[2].std());
    }
}
