//! One tensor → one record: GSQ, then optionally a low-rank overlay fitted to the residual
//! `W − W_base` by randomized SVD and stored in bfloat16 (spec section 8).

use crate::gsq::{EncodeError, GsqOptions, GsqParts, SubScales, check_input, quantize_parts, record_params};
use crate::svd::low_rank;
use rayon::prelude::*;
use uc_format::num::{bf16_to_f32, f32_to_bf16_bits};
use uc_format::{OverlayDtype, RecordParams};

/// Options for one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorOptions {
    /// Code width, 1..=8.
    pub bits: u8,
    /// Overlay rank wanted (0 = none); capped at min(rows, cols), and 0 for 1-D tensors.
    pub rank: u32,
    /// Seed of the randomized SVD.
    pub seed: u64,
    /// Two-level scales (spec section 13), or `None` for v0.3 scales.
    pub subscales: Option<SubScales>,
}

/// A finished tensor.
#[derive(Debug, Clone)]
pub struct EncodedTensor {
    /// The record.
    pub record: Vec<u8>,
    /// Code width used.
    pub bits: u8,
    /// Overlay rank used.
    pub rank: u32,
    /// `‖W − Ŵ‖²` where `Ŵ = W_base + U·V` (the overlay as stored, in f64).
    pub err2: f64,
    /// `‖W‖²`.
    pub norm2: f64,
}

impl EncodedTensor {
    /// `‖W − Ŵ‖ / ‖W‖` by [`uc_pack::digest::rel_l2`]; NaN where that is undefined (an all-zero
    /// tensor reconstructed inexactly, which GSQ cannot produce: its scales are then 0), which the
    /// pack writer refuses rather than record.
    pub fn rel_l2(&self) -> f64 {
        uc_pack::digest::rel_l2(self.err2, self.norm2).unwrap_or(f64::NAN)
    }
}

/// Sum of squares in f64, in a fixed order (chunks reduced left to right).
pub fn sum_sq(v: &[f32]) -> f64 {
    v.par_chunks(1 << 16)
        .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

/// The record parameters without overlay, checking bits, shape and sub-scales.
fn shape_params(bits: u8, dims: &[u64], subscales: Option<SubScales>) -> Result<RecordParams, EncodeError> {
    Ok(record_params(bits, dims, 0, OverlayDtype::None, subscales)?)
}

fn rows_cols(dims: &[u64], n: usize) -> (usize, usize) {
    let rows = dims.first().copied().unwrap_or(1) as usize;
    (rows, n / rows.max(1))
}

/// Encodes one tensor (row-major `data` of shape `dims`).
pub fn encode_tensor(data: &[f32], dims: &[u64], opts: &TensorOptions) -> Result<EncodedTensor, EncodeError> {
    // Bits and shape first: the quantizer needs bits in 1..=8 and at least one element.
    let n = shape_params(opts.bits, dims, opts.subscales)?.layout()?.n;
    check_input(data, n)?;
    let (rows, cols) = rows_cols(dims, data.len());
    let rank = if dims.len() < 2 {
        0
    } else {
        (opts.rank as usize).min(rows).min(cols)
    };
    let parts = quantize_parts(data, &GsqOptions::new(opts.bits).with_subscales(opts.subscales));
    let (u, v) = if rank == 0 {
        (Vec::new(), Vec::new())
    } else {
        let w_base = parts.w_base();
        let resid: Vec<f32> = data.par_iter().zip(&w_base).map(|(a, b)| a - b).collect();
        let lr = low_rank(&resid, rows, cols, rank, opts.seed);
        let u: Vec<u16> = lr.u.iter().map(|&x| f32_to_bf16_bits(x)).collect();
        let v: Vec<u16> = lr.v.iter().map(|&x| f32_to_bf16_bits(x)).collect();
        (u, v)
    };
    assemble(data, dims, opts.bits, &parts, rank, &u, &v)
}

/// Writes the record of `data` (shape `dims`) from its GSQ `parts` and bf16 overlay factors `u`
/// `[rows, rank]`, `v` `[rank, cols]` (empty for rank 0), and measures `‖W − Ŵ‖²` with the
/// overlay as stored, accumulated in f64 in a fixed order.
pub fn assemble(
    data: &[f32],
    dims: &[u64],
    bits: u8,
    parts: &GsqParts,
    rank: usize,
    u: &[u16],
    v: &[u16],
) -> Result<EncodedTensor, EncodeError> {
    let (rows, cols) = rows_cols(dims, data.len());
    let w_base = parts.w_base();
    let norm2 = sum_sq(data);
    let mut resid: Vec<f32> = data.par_iter().zip(&w_base).map(|(a, b)| a - b).collect();
    let (dtype, err2) = if rank == 0 {
        (OverlayDtype::None, sum_sq(&resid))
    } else {
        // Error with the overlay as stored: resid - U_bf16 · V_bf16, accumulated in f64.
        let uf: Vec<f64> = u.iter().map(|&h| f64::from(bf16_to_f32(h))).collect();
        let vf: Vec<f64> = v.iter().map(|&h| f64::from(bf16_to_f32(h))).collect();
        let err2: f64 = resid
            .par_chunks_mut(cols)
            .enumerate()
            .map(|(i, row)| {
                let mut acc = vec![0f64; cols];
                for t in 0..rank {
                    let uit = uf[i * rank + t];
                    for (a, &b) in acc.iter_mut().zip(&vf[t * cols..(t + 1) * cols]) {
                        *a += uit * b;
                    }
                }
                row.iter()
                    .zip(&acc)
                    .map(|(&r, &a)| (f64::from(r) - a).powi(2))
                    .sum::<f64>()
            })
            .collect::<Vec<_>>()
            .iter()
            .sum();
        (OverlayDtype::Bf16, err2)
    };
    debug_assert_eq!(rows * rank, u.len());
    let record = parts.record(bits, dims, rank as u32, dtype, u, v)?;
    Ok(EncodedTensor {
        record,
        bits,
        rank: rank as u32,
        err2,
        norm2,
    })
}

/// One (bits, rank) choice for a tensor with its exact cost and its estimated error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Code width.
    pub bits: u8,
    /// Overlay rank.
    pub rank: u32,
    /// Record size in bits (header, grid, scales, codes, overlay and padding: everything stored).
    pub cost_bits: u64,
    /// Estimated `‖W − Ŵ‖²`: exact for rank 0; for rank r, `‖R‖² − Σ_{t<r} σ_t²` from the SVD of
    /// the residual (the bf16 rounding of the factors is not included).
    pub err2: f64,
}

/// Evaluates every (bits, rank) pair for one tensor: one GSQ per bit width and one SVD (at the
/// largest rank) per bit width; `subscales` as in [`TensorOptions`].
pub fn candidates(
    data: &[f32],
    dims: &[u64],
    bits: &[u8],
    ranks: &[u32],
    seed: u64,
    subscales: Option<SubScales>,
) -> Result<Vec<Candidate>, EncodeError> {
    let mut n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
    for &b in bits {
        // Every width and the shape first: the quantizer needs bits in 1..=8 and an element.
        n = shape_params(b, dims, subscales)?.layout()?.n;
    }
    check_input(data, n)?;
    let (rows, cols) = rows_cols(dims, data.len());
    let max_rank = if dims.len() < 2 {
        0
    } else {
        ranks
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .min(rows as u32)
            .min(cols as u32)
    };
    let mut out = Vec::new();
    for &b in bits {
        let parts = quantize_parts(data, &GsqOptions::new(b).with_subscales(subscales));
        let w_base = parts.w_base();
        let resid: Vec<f32> = data.par_iter().zip(&w_base).map(|(a, b)| a - b).collect();
        let e0 = sum_sq(&resid);
        let sigma = if max_rank > 0 {
            low_rank(&resid, rows, cols, max_rank as usize, seed).sigma
        } else {
            Vec::new()
        };
        let mut seen = Vec::new();
        for &r in ranks {
            let r = r.min(max_rank);
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            let dtype = if r == 0 { OverlayDtype::None } else { OverlayDtype::Bf16 };
            let layout = parts.params(b, dims, r, dtype)?.layout()?;
            let captured: f64 = sigma.iter().take(r as usize).map(|s| s * s).sum();
            out.push(Candidate {
                bits: b,
                rank: r,
                cost_bits: layout.record_len * 8,
                err2: (e0 - captured).max(0.0),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_decode::Record;

    fn data(m: usize, n: usize) -> Vec<f32> {
        // Low-rank structure plus noise: an overlay should help.
        let mut s = 12345u64;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let a: Vec<f32> = (0..m * 2).map(|_| u()).collect();
        let b: Vec<f32> = (0..2 * n).map(|_| u()).collect();
        (0..m * n)
            .map(|idx| {
                let (i, j) = (idx / n, idx % n);
                a[i * 2] * b[j] + a[i * 2 + 1] * b[n + j] + 0.05 * u()
            })
            .collect()
    }

    #[test]
    fn overlay_lowers_error_and_record_decodes_consistently() {
        let (m, n) = (96, 160);
        let w = data(m, n);
        let dims = [m as u64, n as u64];
        let base = encode_tensor(
            &w,
            &dims,
            &TensorOptions {
                bits: 3,
                rank: 0,
                seed: 1,
                subscales: None,
            },
        )
        .unwrap();
        let ov = encode_tensor(
            &w,
            &dims,
            &TensorOptions {
                bits: 3,
                rank: 8,
                seed: 1,
                subscales: None,
            },
        )
        .unwrap();
        assert!(
            ov.rel_l2() < base.rel_l2() * 0.9,
            "{} vs {}",
            ov.rel_l2(),
            base.rel_l2()
        );
        let rec = Record::parse(&ov.record).unwrap();
        assert_eq!(rec.overlay_rank(), 8);
        // The reported error matches the merged reconstruction of the record (to f32 rounding).
        let mut out = vec![0f32; m * n];
        rec.decode_into(&mut out).unwrap();
        rec.merge_overlay_into(&mut out).unwrap();
        let e: f64 = w
            .iter()
            .zip(&out)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        assert!((e - ov.err2).abs() <= 1e-6 * ov.norm2, "{e} vs {}", ov.err2);
        // Candidate estimates agree with the real encodings.
        let cands = candidates(&w, &dims, &[3], &[0, 8], 1, None).unwrap();
        assert_eq!(cands.len(), 2);
        assert_eq!(cands[0].cost_bits, base.record.len() as u64 * 8);
        assert_eq!(cands[0].err2, base.err2);
        assert_eq!(cands[1].cost_bits, ov.record.len() as u64 * 8);
        assert!(
            (cands[1].err2 - ov.err2).abs() < 0.05 * ov.err2 + 1e-9 * ov.norm2,
            "{} vs {}",
            cands[1].err2,
            ov.err2
        );
    }

    #[test]
    fn one_dimensional_tensors_get_no_overlay() {
        let w: Vec<f32> = (0..300).map(|i| (i as f32).sin()).collect();
        let t = encode_tensor(
            &w,
            &[300],
            &TensorOptions {
                bits: 4,
                rank: 16,
                seed: 0,
                subscales: None,
            },
        )
        .unwrap();
        assert_eq!(t.rank, 0);
        assert_eq!(Record::parse(&t.record).unwrap().overlay_rank(), 0);
    }
}
