//! Exact number conversions of the spec and the operand range checks.
//! Integer bit operations only, so that every implementation, including GPUs that flush
//! subnormal inputs, obtains the same binary32 values.

/// Smallest biased binary32 exponent that a non-zero grid value may have (2^-64).
pub const GRID_MIN_EXP: u32 = 127 - 64;
/// Largest binary32 magnitude a grid value may have is exactly 2^64 (biased exponent 191, mantissa 0).
pub const GRID_MAX_EXP: u32 = 127 + 64;

/// Converts IEEE binary16 bits to the binary32 value with exactly the same value.
/// Subnormal binary16 values become normal binary32 values. Inf and NaN map to Inf and NaN
/// (quiet NaN payload kept), though validation never lets them reach the decoder.
#[inline]
pub const fn f16_bits_to_f32_bits(h: u16) -> u32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h as u32) >> 10) & 0x1f;
    let mant = (h as u32) & 0x3ff;
    if exp == 0 {
        if mant == 0 {
            return sign;
        }
        // Subnormal: value = mant * 2^-24. Normalise so that bit 10 is the implicit one.
        let shift = mant.leading_zeros() - 21; // bring the top set bit to bit 10
        let m = (mant << shift) & 0x3ff;
        let e = 127 - 14 - shift; // biased binary32 exponent
        sign | (e << 23) | (m << 13)
    } else if exp == 31 {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (mant << 13)
    }
}

/// [`f16_bits_to_f32_bits`] as an `f32`.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    f32::from_bits(f16_bits_to_f32_bits(h))
}

/// Converts bfloat16 bits to binary32 exactly: the 16 bits become the high half.
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Rounds a binary32 value to the nearest binary16, ties to even (IEEE 754 convertFormat).
/// Used by encoders to store block scales; values above the binary16 range become infinity,
/// which validation then rejects, so callers clamp first.
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = (b >> 23) & 0xff;
    let mant = b & 0x7f_ffff;
    if exp == 0xff {
        // Inf or NaN (keep a quiet NaN).
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp as i32 - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Result is subnormal or zero in binary16: value / 2^-24, rounded to an integer.
        if e < -10 {
            return sign; // below half the smallest subnormal
        }
        let m = mant | 0x80_0000; // 24-bit significand
        let shift = (14 - e) as u32; // 14..=24
        let q = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        let q = if rem > half || (rem == half && (q & 1) == 1) {
            q + 1
        } else {
            q
        };
        return sign | q as u16; // q may carry into the exponent field: that is correct
    }
    let q = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    let q = if rem > 0x1000 || (rem == 0x1000 && (q & 1) == 1) {
        q + 1
    } else {
        q
    };
    sign | q as u16 // a carry into exponent 31 yields infinity, as IEEE requires
}

/// Rounds a finite binary32 value to the nearest bfloat16, ties to even (the 16 high bits of the
/// rounded value). NaN stays NaN (quiet); values beyond the bfloat16 range become infinity.
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if (b & 0x7fff_ffff) > 0x7f80_0000 {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// True when `bits` is a grid value allowed by: finite and either ±0 or with magnitude
/// in [2^-64, 2^64].
#[inline]
pub const fn grid_value_ok(bits: u32) -> bool {
    let mag = bits & 0x7fff_ffff;
    if mag == 0 {
        return true;
    }
    let exp = mag >> 23;
    exp >= GRID_MIN_EXP && (exp < GRID_MAX_EXP || mag == GRID_MAX_EXP << 23)
}

/// True when binary16 `bits` is a scale allowed by: sign bit clear, not Inf or NaN.
#[inline]
pub const fn scale_value_ok(bits: u16) -> bool {
    bits & 0x8000 == 0 && (bits & 0x7c00) != 0x7c00
}

/// True when an overlay factor's bits are finite, for the given overlay dtype.
#[inline]
pub const fn overlay_value_ok(bits: u16, bf16: bool) -> bool {
    if bf16 {
        (bits & 0x7f80) != 0x7f80
    } else {
        (bits & 0x7c00) != 0x7c00
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact_for_every_finite_value() {
        for h in 0u16..=0xffff {
            if (h & 0x7c00) == 0x7c00 {
                continue;
            }
            let f = f16_to_f32(h);
            // Reference value computed independently: sign * mant * 2^(exp-25) via f64.
            let exp = ((h >> 10) & 0x1f) as i32;
            let mant = (h & 0x3ff) as f64;
            let v = if exp == 0 {
                mant * 2f64.powi(-24)
            } else {
                (1024.0 + mant) * 2f64.powi(exp - 25)
            };
            let v = if h & 0x8000 != 0 { -v } else { v };
            assert_eq!(f as f64, v, "h={h:#06x}");
            assert_eq!(f.is_sign_negative(), h & 0x8000 != 0);
            // Round trip back to f16 is the identity.
            assert_eq!(f32_to_f16_bits(f), h, "round trip h={h:#06x}");
        }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: ties to even gives 1.
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9: rounds up to even.
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00); // rounds to infinity
        assert_eq!(f32_to_f16_bits(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0x0000); // tie to even (0)
        assert_eq!(f32_to_f16_bits(3.0 * 2f32.powi(-26)), 0x0001); // above half
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
        // Largest subnormal rounding up into the smallest normal.
        assert_eq!(f32_to_f16_bits(2f32.powi(-14) - 2f32.powi(-26)), 0x0400);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even gives 1.
        assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(-0.0), 0x8000);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
        assert!(f32::from_bits(u32::from(f32_to_bf16_bits(f32::NAN)) << 16).is_nan());
        for h in [0x0001u16, 0x3f81, 0xc2f7, 0x7f7f] {
            assert_eq!(f32_to_bf16_bits(bf16_to_f32(h)), h);
        }
    }

    #[test]
    fn grid_bounds() {
        assert!(grid_value_ok(0));
        assert!(grid_value_ok(0x8000_0000));
        assert!(grid_value_ok(2f32.powi(-64).to_bits()));
        assert!(!grid_value_ok((2f32.powi(-64) * 0.99).to_bits()));
        assert!(grid_value_ok(2f32.powi(64).to_bits()));
        assert!(grid_value_ok((-(2f32.powi(64))).to_bits()));
        assert!(!grid_value_ok((2f32.powi(64) * 1.0000001).to_bits()));
        assert!(!grid_value_ok(f32::INFINITY.to_bits()));
        assert!(!grid_value_ok(f32::NAN.to_bits()));
        assert!(!grid_value_ok(f32::from_bits(1).to_bits())); // f32 subnormal
    }

    #[test]
    fn scale_and_overlay_bounds() {
        assert!(scale_value_ok(0x0000));
        assert!(scale_value_ok(0x0001));
        assert!(scale_value_ok(0x7bff));
        assert!(!scale_value_ok(0x8000)); // -0
        assert!(!scale_value_ok(0xbc00)); // -1
        assert!(!scale_value_ok(0x7c00)); // inf
        assert!(!scale_value_ok(0x7e00)); // nan
        assert!(overlay_value_ok(0xfbff, false));
        assert!(!overlay_value_ok(0xfc00, false));
        assert!(overlay_value_ok(0xff7f, true));
        assert!(!overlay_value_ok(0x7f80, true));
        assert!(!overlay_value_ok(0xffc1, true));
    }

    #[test]
    fn every_product_of_valid_operands_is_zero_or_normal() {
        // Extremes of x .
        let scales = [2f32.powi(-24), 65504.0];
        let grids = [2f32.powi(-64), 2f32.powi(64), -(2f32.powi(-64)), -(2f32.powi(64))];
        for s in scales {
            for g in grids {
                assert!((s * g).is_normal(), "{s} * {g}");
            }
        }
        let minus_one = core::hint::black_box(-1.0f32);
        assert_eq!((0.0f32 * minus_one).to_bits(), 0x8000_0000);
    }
}
