//! Inline `exp2` and `log2` for the per-packet path, with stated error bounds.
//!
//! The standard library's `exp2`, `ln_1p` and `log2` are calls into the C library that
//! handle every corner of IEEE 754 to the last bit; per packet the detector needs a few
//! decay factors and a few log-scaled features, whose inputs it knows to be finite and
//! whose consumers (damped sums, z-scores against a learnt baseline, thresholds) do not
//! notice an error of 1e-8. These versions are a polynomial and a few bit operations,
//! inlined, with no call and no table (one well-predicted range check).
//!
//! The target is baseline x86-64 (no SSE4.1 `roundsd`), where `f64::round` is a call too,
//! so rounding to an integer uses the add-and-subtract `1.5 · 2^52` trick instead.

/// `1.5 · 2^52`: adding then subtracting it rounds an `f64` of magnitude below `2^51` to
/// the nearest integer (ties to even) in the FPU's default rounding mode.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `2^x` for finite `x ≤ 0` (the decay factors `2^(-λ dt)`), relative error below `2e-8`.
///
/// `x` is split into the nearest integer `n` and `f = x - n` in `[-0.5, 0.5]`; `2^f` is the
/// degree-7 Taylor polynomial of `e^(f ln 2)` (remainder at most
/// `e^0.347 · 0.347^8 / 8! < 1.1e-8` relative to `2^f ≥ 0.707`) and `2^n` goes straight
/// into the exponent bits. Below `-1022` (a subnormal result) it returns 0; positive `x`
/// is not used by the detector and is clamped to 0 (result 1). NaN gives 0.
#[inline]
pub fn exp2_neg(x: f64) -> f64 {
    if x.is_nan() || x < -1022.0 {
        return 0.0;
    }
    let x = x.min(0.0);
    let n = (x + ROUND_MAGIC) - ROUND_MAGIC;
    let y = (x - n) * core::f64::consts::LN_2;
    // Horner form of Σ y^k / k!, k = 0..=7.
    let p = 1.0
        + y * (1.0
            + y * (1.0 / 2.0
                + y * (1.0 / 6.0
                    + y * (1.0 / 24.0
                        + y * (1.0 / 120.0 + y * (1.0 / 720.0 + y * (1.0 / 5040.0)))))));
    // n is an integer in [-1022, 0], so the biased exponent is in [1, 1023].
    let scale = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    p * scale
}

/// `log2(x)` for finite `x > 0` in the normal range, absolute error below `2e-9`.
///
/// `x = m · 2^e` with `m` in `[√½, √2)`; `log2 m = 2 atanh(s) / ln 2` with
/// `s = (m - 1) / (m + 1)`, `|s| ≤ 0.1716`, summed to `s⁹/9` (remainder below
/// `2 s¹¹ / (11 (1 - s²)) < 8e-10` in natural-log units, `1.2e-9` in log2 units). Zero,
/// negative, subnormal and non-finite inputs are not used by the detector; they give
/// a finite but meaningless value (never a panic).
#[inline]
pub fn log2_pos(x: f64) -> f64 {
    let bits = x.to_bits();
    // Exponent relative to [√½, √2): subtracting the bits of √½ moves the boundary.
    const SQRT_HALF_BITS: u64 = 0x3FE6_A09E_667F_3BCD;
    let k = (bits.wrapping_sub(SQRT_HALF_BITS) as i64) >> 52;
    let m = f64::from_bits(bits.wrapping_sub((k as u64) << 52));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let ln_m =
        2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
    k as f64 + ln_m * core::f64::consts::LOG2_E
}

/// `log2(1 + x)` for `x ≥ 0` (negative `x` counts as 0), absolute error below `3e-9`.
///
/// [`log2_pos`] of `1 + x`; forming `1 + x` rounds away at most half an ulp of 1, which
/// adds below `2e-16` to the error.
#[inline]
pub fn log2_1p(x: f64) -> f64 {
    log2_pos(1.0 + x.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exp2_exact_at_integers_and_edges() {
        for n in 0..=1022 {
            let x = -f64::from(n);
            assert_eq!(exp2_neg(x), x.exp2(), "2^{x}");
        }
        assert_eq!(exp2_neg(0.0), 1.0);
        assert_eq!(exp2_neg(-1023.0), 0.0);
        assert_eq!(exp2_neg(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp2_neg(f64::NAN), 0.0);
        assert_eq!(exp2_neg(3.0), 1.0);
    }

    #[test]
    fn log2_exact_at_powers_of_two() {
        for e in -1022..=1023 {
            let x = f64::from(e).exp2();
            assert!((log2_pos(x) - f64::from(e)).abs() < 1e-12, "log2 2^{e}");
        }
        assert_eq!(log2_1p(0.0), 0.0);
        assert_eq!(log2_1p(-5.0), 0.0);
    }

    /// The input ranges the detector uses: `λ dt` from nanoseconds times λ = 0.01 up to
    /// hours times λ = 5; log features of rates and counts from 0 to 1e12; ratios from 1e-6
    /// to 1e9.
    fn check_exp2(x: f64) {
        let want = x.exp2();
        let got = exp2_neg(x);
        if want < f64::MIN_POSITIVE {
            assert!(got <= f64::MIN_POSITIVE, "2^{x}: {got}");
        } else {
            let rel = ((got - want) / want).abs();
            assert!(rel < 2e-8, "2^{x}: {got} vs {want} (relative {rel:e})");
        }
    }

    #[test]
    fn exp2_dense_sweep() {
        // Every 1/4096 over [-40, 0] covers all the fractional parts many times.
        for i in 0..=40 * 4096 {
            check_exp2(-f64::from(i) / 4096.0);
        }
    }

    #[test]
    fn log2_dense_sweep() {
        // Mantissas across two octaves, around the √½ / √2 boundaries too.
        for i in 0..=1 << 16 {
            let x = 0.5 + f64::from(i) / f64::from(1 << 15) * 1.5;
            let err = (log2_pos(x) - x.log2()).abs();
            assert!(err < 2e-9, "log2 {x}: error {err:e}");
        }
    }

    proptest! {
        #[test]
        fn exp2_bounded_relative_error(x in -2000.0f64..=0.0) {
            check_exp2(x);
        }

        #[test]
        fn exp2_small_arguments(x in -1e-3f64..=0.0) {
            check_exp2(x);
        }

        #[test]
        fn log2_1p_bounded_absolute_error(x in 0.0f64..1e12) {
            let want = x.ln_1p() * core::f64::consts::LOG2_E;
            let err = (log2_1p(x) - want).abs();
            prop_assert!(err < 3e-9, "log2(1 + {}) error {:e}", x, err);
        }

        #[test]
        fn log2_1p_small_arguments(x in 0.0f64..1e-3) {
            let want = x.ln_1p() * core::f64::consts::LOG2_E;
            let err = (log2_1p(x) - want).abs();
            prop_assert!(err < 3e-9, "log2(1 + {}) error {:e}", x, err);
        }

        #[test]
        fn log2_bounded_absolute_error(x in 1e-6f64..1e9) {
            let err = (log2_pos(x) - x.log2()).abs();
            prop_assert!(err < 2e-9, "log2 {} error {:e}", x, err);
        }
    }
}
