//! Grid scalar quantization (GSQ) of one tensor into a uc record.
//!
//! 1. Scales: for each block of 64 weights (row-major), `s = f16(absmax)` rounded to nearest even
//!    (spec ), clamped to the largest finite binary16.
//! 2. Grid: 1-D k-means (Lloyd) with `2^bits` centroids over the weights normalised by their
//!    *stored* scale, `x = w / f32(s)`. The data are sorted once; each Lloyd step then costs
//!    `O(K log N)` using prefix sums (f64, fixed order), so the result is deterministic and
//!    independent of thread count. Initialisation: centroids at evenly spaced ranks.
//! 3. Codes: nearest grid value, ties to the lower index, decided as in DESIGN §6 by comparing the
//!    weight with `f32(s) * midpoint` (one rounded multiply, no division) so that a GPU can
//!    reproduce it bit for bit.

use core::fmt;
use rayon::prelude::*;
use uc_format::num::{f16_to_f32, f32_to_f16_bits};
use uc_format::{OverlayDtype, RecordParams, write_record};

/// Options of [`quantize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsqOptions {
    /// Code width, 1..=8.
    pub bits: u8,
    /// Lloyd iterations at most (stops earlier when the assignment no longer changes).
    pub max_iters: u32,
    /// At most this many normalised values (taken at evenly spaced indices) train the grid.
    pub max_train: usize,
}

impl GsqOptions {
    /// Defaults for `bits`: 100 Lloyd iterations, up to 2^22 training values.
    pub fn new(bits: u8) -> Self {
        GsqOptions {
            bits,
            max_iters: 100,
            max_train: 1 << 22,
        }
    }
}

/// Why a tensor could not be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeError {
    /// A weight is NaN or infinite.
    NonFinite {
        /// Flat index of the first such weight.
        index: usize,
    },
    /// `data.len()` is not the product of `dims`.
    ShapeMismatch {
        /// Product of the dims.
        expected: u64,
        /// Length of the data.
        got: usize,
    },
    /// The record would break a rule of the format (bits, dims, limits).
    Format(uc_format::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NonFinite { index } => write!(f, "weight {index} is NaN or infinite"),
            EncodeError::ShapeMismatch { expected, got } => {
                write!(f, "tensor has {got} values but its shape has {expected}")
            }
            EncodeError::Format(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<uc_format::Error> for EncodeError {
    fn from(e: uc_format::Error) -> Self {
        EncodeError::Format(e)
    }
}

/// A quantized tensor: the record bytes and what was learned.
#[derive(Debug, Clone)]
pub struct QuantizedTensor {
    /// The complete uc record.
    pub record: Vec<u8>,
    /// The grid, sorted ascending.
    pub grid: Vec<f32>,
    /// Lloyd iterations run.
    pub iters: u32,
}

/// Largest finite binary16, as binary32.
const F16_MAX: f32 = 65504.0;

/// The parts of a GSQ quantization, before they are written into a record.
#[derive(Debug, Clone)]
pub struct GsqParts {
    /// Grid, sorted ascending, `2^bits` values.
    pub grid: Vec<f32>,
    /// One binary16 scale per block.
    pub scales: Vec<u16>,
    /// One code per element.
    pub codes: Vec<u8>,
    /// Lloyd iterations run.
    pub iters: u32,
}

impl GsqParts {
    /// `W_base` by spec R-7.1 (the same bits every conforming decoder returns).
    pub fn w_base(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.codes.len()];
        out.par_chunks_mut(64)
            .zip(self.codes.par_chunks(64))
            .enumerate()
            .for_each(|(b, (o, c))| {
                let s = f16_to_f32(self.scales[b]);
                for (o, &c) in o.iter_mut().zip(c) {
                    *o = s * self.grid[usize::from(c)];
                }
            });
        out
    }
}

/// Checks the input of a quantizer: finite values, length matching the shape.
pub(crate) fn check_input(data: &[f32], n: u64) -> Result<(), EncodeError> {
    if n != data.len() as u64 {
        return Err(EncodeError::ShapeMismatch {
            expected: n,
            got: data.len(),
        });
    }
    if let Some(index) = data.iter().position(|w| !w.is_finite()) {
        return Err(EncodeError::NonFinite { index });
    }
    Ok(())
}

/// GSQ of `data` (any shape; blocks of 64 over the flat order): scales, grid and codes.
/// The caller has checked the input with [`check_input`] (finite values).
pub fn quantize_parts(data: &[f32], opts: &GsqOptions) -> GsqParts {
    let scales: Vec<u16> = data
        .par_chunks(64)
        .map(|b| {
            let absmax = b.iter().fold(0f32, |m, w| m.max(w.abs()));
            f32_to_f16_bits(absmax.min(F16_MAX))
        })
        .collect();
    let (grid, iters) = fit_grid(data, &scales, opts);
    let codes = assign_codes(data, &scales, &grid);
    GsqParts {
        grid,
        scales,
        codes,
        iters,
    }
}

/// Quantizes `data` (row-major, shape `dims`) into a v0.3 record without overlay.
pub fn quantize(data: &[f32], dims: &[u64], opts: &GsqOptions) -> Result<QuantizedTensor, EncodeError> {
    let params = RecordParams::new(opts.bits, dims, 0, OverlayDtype::None)?;
    let layout = params.layout()?;
    check_input(data, layout.n)?;
    let parts = quantize_parts(data, opts);
    let mut record = vec![0u8; layout.record_len as usize];
    write_record(&params, &parts.grid, &parts.scales, &parts.codes, &[], &[], &mut record)?;
    Ok(QuantizedTensor {
        record,
        grid: parts.grid,
        iters: parts.iters,
    })
}

/// Weight normalised by its block's stored scale (0 where the scale is 0).
fn normalised(data: &[f32], scales: &[u16], i: usize) -> f32 {
    let s = f16_to_f32(scales[i / 64]);
    if s == 0.0 { 0.0 } else { data[i] / s }
}

/// Rounds a centroid to a valid grid value (spec ): tiny magnitudes become +0, huge ones clamp.
fn to_grid_value(c: f64) -> f32 {
    let v = c as f32;
    let lim = 2f32.powi(64);
    if v.abs() < 2f32.powi(-64) {
        0.0
    } else {
        v.clamp(-lim, lim)
    }
}

/// 1-D k-means over (a deterministic subsample of) the normalised weights.
fn fit_grid(data: &[f32], scales: &[u16], opts: &GsqOptions) -> (Vec<f32>, u32) {
    let k = 1usize << opts.bits;
    let n = data.len();
    let m = n.min(opts.max_train.max(1));
    let mut xs: Vec<f32> = (0..m)
        .map(|t| normalised(data, scales, (t as u128 * n as u128 / m as u128) as usize))
        .collect();
    xs.sort_by(f32::total_cmp);
    let mut prefix = Vec::with_capacity(m + 1);
    prefix.push(0f64);
    let mut acc = 0f64;
    for &x in &xs {
        acc += f64::from(x);
        prefix.push(acc);
    }
    // Initial centroids at evenly spaced ranks (the (j + 0.5) / k quantiles).
    let mut c: Vec<f64> = (0..k)
        .map(|j| f64::from(xs[((2 * j + 1) * m / (2 * k)).min(m - 1)]))
        .collect();
    let mut bounds = vec![0usize; k + 1];
    let mut iters = 0;
    for _ in 0..opts.max_iters {
        iters += 1;
        // Cluster j takes the sorted values in [bounds[j], bounds[j+1]); boundaries at midpoints.
        let mut nb = vec![0usize; k + 1];
        nb[k] = m;
        for j in 1..k {
            let mid = 0.5 * (c[j - 1] + c[j]);
            nb[j] = xs.partition_point(|&x| f64::from(x) <= mid).max(nb[j - 1]);
        }
        if nb == bounds {
            break;
        }
        bounds = nb;
        for j in 0..k {
            let (lo, hi) = (bounds[j], bounds[j + 1]);
            if hi > lo {
                c[j] = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            }
        }
        // Keep the centroids sorted (empty clusters keep their old value, which can break order).
        c.sort_by(f64::total_cmp);
    }
    let mut grid: Vec<f32> = c.into_iter().map(to_grid_value).collect();
    grid.sort_by(f32::total_cmp);
    (grid, iters)
}

/// Nearest grid index for every weight, ties to the lower index, without division: with the grid
/// sorted and `mid[j] = (grid[j] + grid[j+1]) / 2` (binary32), weight `w` in a block of scale `s`
/// gets the smallest `j` with `w <= s * mid[j]`, or the last index.
fn assign_codes(data: &[f32], scales: &[u16], grid: &[f32]) -> Vec<u8> {
    let mids: Vec<f32> = grid.windows(2).map(|p| 0.5 * p[0] + 0.5 * p[1]).collect();
    let mut codes = vec![0u8; data.len()];
    // Fixed chunks of 64 blocks per task; each element's code depends only on its own inputs.
    codes
        .par_chunks_mut(64 * 64)
        .zip(data.par_chunks(64 * 64))
        .enumerate()
        .for_each(|(chunk, (cc, dc))| {
            let mut thresholds = vec![0f32; mids.len()];
            for (j, (cb, wb)) in cc.chunks_mut(64).zip(dc.chunks(64)).enumerate() {
                let s = f16_to_f32(scales[chunk * 64 + j]);
                for (t, &mid) in thresholds.iter_mut().zip(&mids) {
                    *t = s * mid;
                }
                for (w, code) in wb.iter().zip(cb.iter_mut()) {
                    *code = thresholds.partition_point(|&t| *w > t) as u8;
                }
            }
        });
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_decode::Record;

    fn gaussian_like(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| ((0..4).map(|_| u()).sum::<f64>() - 2.0) as f32 * 0.05)
            .collect()
    }

    fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let den: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        (num / den).sqrt()
    }

    #[test]
    fn error_falls_as_bits_rise_and_decode_matches_codes() {
        let w = gaussian_like(64 * 97 + 5, 7);
        let mut last = f64::INFINITY;
        for bits in 1..=8 {
            let q = quantize(&w, &[97, 64], &GsqOptions::new(bits));
            // 97 x 64 is not the length; the shape must match exactly.
            assert!(matches!(q, Err(EncodeError::ShapeMismatch { .. })));
            let q = quantize(&w, &[w.len() as u64], &GsqOptions::new(bits)).unwrap();
            let rec = Record::parse(&q.record).unwrap();
            let mut out = vec![0f32; w.len()];
            rec.decode_into(&mut out).unwrap();
            for (i, o) in out.iter().enumerate() {
                let s = rec.scale(i as u64 / 64).unwrap();
                let g = rec.grid()[usize::from(rec.code(i as u64).unwrap())];
                assert_eq!(o.to_bits(), (s * g).to_bits());
            }
            let e = rel_l2(&w, &out);
            assert!(e < last, "bits {bits}: rel_l2 {e} not below {last}");
            last = e;
        }
        assert!(last < 0.01, "8-bit rel_l2 {last}");
    }

    #[test]
    fn codes_are_nearest_grid_values() {
        let w = gaussian_like(1000, 3);
        let q = quantize(&w, &[10, 100], &GsqOptions::new(3)).unwrap();
        let rec = Record::parse(&q.record).unwrap();
        for (i, &x) in w.iter().enumerate() {
            let s = rec.scale(i as u64 / 64).unwrap();
            let c = usize::from(rec.code(i as u64).unwrap());
            let err = |j: usize| (f64::from(x) - f64::from(s) * f64::from(rec.grid()[j])).abs();
            for j in 0..rec.grid().len() {
                // Midpoint decisions are made in binary32, so allow one rounding of slack.
                assert!(err(c) <= err(j) + 1e-6 * f64::from(s), "i {i}: code {c} vs {j}");
            }
        }
    }

    #[test]
    fn deterministic_and_rejects_bad_input() {
        let w = gaussian_like(5000, 11);
        let a = quantize(&w, &[50, 100], &GsqOptions::new(4)).unwrap();
        let b = quantize(&w, &[50, 100], &GsqOptions::new(4)).unwrap();
        assert_eq!(a.record, b.record);
        let mut bad = w.clone();
        bad[17] = f32::NAN;
        assert_eq!(
            quantize(&bad, &[5000], &GsqOptions::new(4)).unwrap_err(),
            EncodeError::NonFinite { index: 17 }
        );
        assert!(matches!(
            quantize(&w, &[5000], &GsqOptions::new(9)),
            Err(EncodeError::Format(_))
        ));
    }

    #[test]
    fn zero_blocks_and_huge_values_encode() {
        let mut w = vec![0f32; 200];
        w[150] = 1.0e6; // above binary16 range: the scale clamps to 65504
        w[151] = -3.0;
        let q = quantize(&w, &[200], &GsqOptions::new(2)).unwrap();
        let rec = Record::parse(&q.record).unwrap();
        let mut out = vec![0f32; 200];
        rec.decode_into(&mut out).unwrap();
        assert!(out[..128].iter().all(|v| *v == 0.0));
        assert!(out[150] > 5.0e5, "{}", out[150]);
    }
}
