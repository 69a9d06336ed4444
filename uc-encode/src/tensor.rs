//! One tensor → one record: GSQ, then optionally a low-rank overlay fitted to the residual
//! `W − W_base` by randomized SVD and stored in bfloat16 (spec section 8).

use crate::gsq::{
    CpuEngine, EncodeError, GsqEngine, GsqOptions, GsqParts, Importance, SubScales, check_input, record_params,
};
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
    v.par_chunks(crate::gsq::W_BASE_CHUNK)
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
    encode_tensor_weighted(data, dims, opts, None)
}

/// [`encode_tensor`] with GSQ's errors weighted per input feature (see
/// [`crate::gsq::Importance`]; `imp.w` has one entry per column); `None` is [`encode_tensor`].
pub fn encode_tensor_weighted(
    data: &[f32],
    dims: &[u64],
    opts: &TensorOptions,
    imp: Option<&Importance>,
) -> Result<EncodedTensor, EncodeError> {
    encode_tensor_on(&CpuEngine, data, dims, opts, imp)
}

/// [`encode_tensor_weighted`] with GSQ on `engine` (the same bytes on every engine).
pub fn encode_tensor_on(
    engine: &dyn GsqEngine,
    data: &[f32],
    dims: &[u64],
    opts: &TensorOptions,
    imp: Option<&Importance>,
) -> Result<EncodedTensor, EncodeError> {
    // Bits and shape first: the quantizer needs bits in 1..=8 and at least one element.
    let n = shape_params(opts.bits, dims, opts.subscales)?.layout()?.n;
    check_input(data, n)?;
    let (rows, cols) = rows_cols(dims, data.len());
    let rank = if dims.len() < 2 {
        0
    } else {
        (opts.rank as usize).min(rows).min(cols)
    };
    let imp = imp.filter(|i| i.w.len() == cols && dims.len() == 2);
    let parts = engine.quantize(data, &GsqOptions::new(opts.bits).with_subscales(opts.subscales), imp)?;
    let (u, v) = if rank == 0 {
        (Vec::new(), Vec::new())
    } else {
        let resid = parts.residual(data);
        let lr = engine.low_rank(&resid, rows, cols, rank, opts.seed)?;
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
    let norm2 = sum_sq(data);
    let (dtype, err2) = if rank == 0 {
        (OverlayDtype::None, parts.residual_sq(data))
    } else {
        let mut resid = parts.residual(data);
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
    candidates_on(&CpuEngine, data, dims, bits, ranks, seed, subscales)
}

/// [`candidates`] with GSQ on `engine`.
pub fn candidates_on(
    engine: &dyn GsqEngine,
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
        let parts = engine.quantize(data, &GsqOptions::new(b).with_subscales(subscales), None)?;
        let e0 = parts.residual_sq(data);
        let sigma = if max_rank > 0 {
            engine
                .low_rank(&parts.residual(data), rows, cols, max_rank as usize, seed)?
                .sigma
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

/// The sampled analysis measures GSQ on about one row in this many ([`sample_rows`]).
pub const SAMPLE_ROW_FRACTION: usize = 8;
/// The fewest weights the sampled analysis measures a width on, so that a grid of up to 256 values
/// is fitted to enough data.
pub const MIN_SAMPLE_WEIGHTS: usize = 1 << 14;

/// The rows of a `[rows, cols]` tensor that the sampled analysis quantizes: about one in
/// [`SAMPLE_ROW_FRACTION`] (at least [`MIN_SAMPLE_WEIGHTS`] weights), drawn systematically from
/// the rows ordered by their energy `Σ w²` (largest first, ties by index) at an offset given by
/// `seed`, so that the few high-energy rows of a tensor with outlier channels are represented in
/// proportion (in expectation only: where one outlier row's large-scale blocks dominate the fit
/// of the grid, as in MiniLM's `output.dense`, a sample without that row fits a grid that suits the
/// other rows better than the whole tensor's does, and the error at 7 and 8 bits comes out as low
/// as half the real one, see BENCHMARKS.md); returned in ascending order. `None` when that would be more than half of the rows
/// (the tensor is small enough to analyse exactly).
pub fn sample_rows(data: &[f32], rows: usize, cols: usize, seed: u64) -> Option<Vec<usize>> {
    if rows == 0 || cols == 0 || data.len() != rows * cols {
        return None;
    }
    let k = rows
        .div_ceil(SAMPLE_ROW_FRACTION)
        .max(MIN_SAMPLE_WEIGHTS.div_ceil(cols));
    if 2 * k > rows {
        return None;
    }
    let energy: Vec<f64> = data
        .par_chunks(cols)
        .map(|r| r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
        .collect();
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| energy[b].total_cmp(&energy[a]).then(a.cmp(&b)));
    // Offset in [0, 1) from the seed's top 53 bits; position i of k takes the row at
    // floor((i + offset) * rows / k) of that order.
    let offset = (seed >> 11) as f64 / (1u64 << 53) as f64;
    let mut picked: Vec<usize> = (0..k)
        .map(|i| order[(((i as f64 + offset) * rows as f64 / k as f64) as usize).min(rows - 1)])
        .collect();
    picked.sort_unstable();
    picked.dedup();
    Some(picked)
}

/// The code width of `bits` whose rank-0 record, by its exact layout, is nearest to `bpw` bits per
/// weight (ties to the smaller width): the width that [`sampled_candidates`] measures on the whole
/// tensor. `None` when `bits` is empty.
pub fn reference_width(
    bits: &[u8],
    dims: &[u64],
    subscales: Option<SubScales>,
    bpw: f64,
) -> Result<Option<u8>, EncodeError> {
    let mut best: Option<(f64, u8)> = None;
    for &b in bits {
        let layout = shape_params(b, dims, subscales)?.layout()?;
        let d = (layout.record_len as f64 * 8.0 / layout.n.max(1) as f64 - bpw).abs();
        if best.is_none_or(|(bd, bb)| d < bd || (d == bd && b < bb)) {
            best = Some((d, b));
        }
    }
    Ok(best.map(|(_, b)| b))
}

/// [`candidates`] at the cost of about one GSQ and one SVD of the whole tensor plus one GSQ of a
/// row sample per width: the costs are exact (from the record layouts); the errors are estimated.
///
/// - At the width [`reference_width`] of `bpw` the tensor is quantized whole and its
///   residual's singular values give, as in [`candidates`], the error of every rank, and with it
///   the fraction `q_r = err2(reference, r) / err2(reference, 0)` of the residual that an overlay
///   of rank `r` leaves. (Measured on MiniLM and SmolLM2 weights, `q_r` varies by a few percent
///   across widths: the GSQ residual is close to noise whose spectrum scales with its energy. It
///   does not hold for a residual that keeps much of the weight's own low-rank structure, as at 2
///   bits on a nearly low-rank matrix.)
/// - Every width is also measured by GSQ on the rows of [`sample_rows`]; its rank-0 error is that
///   sample's error times `err2(reference, 0) / sample_err2(reference)` (which calibrates the
///   sample against the whole tensor), and its rank-`r` error that times `q_r`.
///
/// A tensor too small to sample (or with one allowed width) is analysed exactly by [`candidates`].
/// Deterministic in `seed` for any thread count.
pub fn sampled_candidates(
    data: &[f32],
    dims: &[u64],
    bits: &[u8],
    ranks: &[u32],
    seed: u64,
    subscales: Option<SubScales>,
    bpw: f64,
) -> Result<Vec<Candidate>, EncodeError> {
    sampled_candidates_on(&CpuEngine, data, dims, bits, ranks, seed, subscales, bpw)
}

/// [`sampled_candidates`] with GSQ on `engine`.
#[allow(clippy::too_many_arguments)] // the arguments of `sampled_candidates` and the engine
pub fn sampled_candidates_on(
    engine: &dyn GsqEngine,
    data: &[f32],
    dims: &[u64],
    bits: &[u8],
    ranks: &[u32],
    seed: u64,
    subscales: Option<SubScales>,
    bpw: f64,
) -> Result<Vec<Candidate>, EncodeError> {
    let Some(reference) = reference_width(bits, dims, subscales, bpw)? else {
        return candidates_on(engine, data, dims, bits, ranks, seed, subscales);
    };
    let n = shape_params(reference, dims, subscales)?.layout()?.n;
    check_input(data, n)?;
    let (rows, cols) = rows_cols(dims, data.len());
    let sample = if bits.len() > 1 && dims.len() == 2 {
        sample_rows(data, rows, cols, seed)
    } else {
        None
    };
    let Some(sample) = sample else {
        return candidates_on(engine, data, dims, bits, ranks, seed, subscales);
    };
    let max_rank = ranks
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .min(rows as u32)
        .min(cols as u32);
    // The whole tensor at the reference width.
    let parts = engine.quantize(data, &GsqOptions::new(reference).with_subscales(subscales), None)?;
    let e0_ref = parts.residual_sq(data);
    let sigma = if max_rank > 0 {
        engine
            .low_rank(&parts.residual(data), rows, cols, max_rank as usize, seed)?
            .sigma
    } else {
        Vec::new()
    };
    // The sample at every width (and at the reference width, to calibrate it).
    let mut s = Vec::with_capacity(sample.len() * cols);
    for &r in &sample {
        s.extend_from_slice(&data[r * cols..(r + 1) * cols]);
    }
    let sample_err = |b: u8| -> Result<f64, EncodeError> {
        Ok(engine
            .quantize(&s, &GsqOptions::new(b).with_subscales(subscales), None)?
            .residual_sq(&s))
    };
    let s_ref = sample_err(reference)?;
    // A sample that GSQ reproduces exactly says nothing about the scale: weigh it by its size.
    let calib = if s_ref > 0.0 {
        e0_ref / s_ref
    } else {
        data.len() as f64 / s.len() as f64
    };
    let mut out = Vec::new();
    for &b in bits {
        let e0 = if b == reference { e0_ref } else { sample_err(b)? * calib };
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
            let left = (e0_ref - captured).max(0.0);
            let err2 = if b == reference {
                left
            } else if e0_ref > 0.0 {
                e0 * (left / e0_ref)
            } else {
                e0
            };
            out.push(Candidate {
                bits: b,
                rank: r,
                cost_bits: layout.record_len * 8,
                err2,
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

    /// A tensor like a trained weight: mostly full-rank (noise) with a weak low-rank part, rows
    /// of unequal energy and a few outlier rows.
    fn uneven(m: usize, n: usize) -> Vec<f32> {
        let low = data(m, n);
        let mut s = 99u64;
        let mut w: Vec<f32> = low
            .iter()
            .map(|&x| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // A sum of four uniforms: roughly Gaussian, with tails.
                let g: f32 = (0..4).map(|k| ((s >> (16 * k)) & 0xffff) as f32 / 65536.0 - 0.5).sum();
                0.2 * x + g
            })
            .collect();
        for (i, row) in w.chunks_mut(n).enumerate() {
            let g = if i % 97 == 5 { 8.0 } else { 1.0 + (i % 7) as f32 * 0.25 };
            row.iter_mut().for_each(|x| *x *= g);
        }
        w
    }

    #[test]
    fn sample_rows_are_a_seeded_eighth_or_none() {
        let (m, n) = (1024, 128);
        let w = uneven(m, n);
        let a = sample_rows(&w, m, n, 1).unwrap();
        assert_eq!(a.len(), m / SAMPLE_ROW_FRACTION);
        assert!(a.windows(2).all(|p| p[0] < p[1]), "ascending, distinct");
        assert_eq!(sample_rows(&w, m, n, 1).unwrap(), a);
        let b = sample_rows(&w, m, n, 1 << 62).unwrap();
        assert_ne!(a, b, "the seed moves the sample");
        // Systematic over the energy order: the outlier rows (every 97th) are about an eighth of
        // the sample, as of the tensor, not left to chance.
        let outliers = |s: &[usize]| s.iter().filter(|&&i| i % 97 == 5).count();
        for s in [&a, &b] {
            assert!((1..=2).contains(&outliers(s)), "{}", outliers(s));
        }
        // At least MIN_SAMPLE_WEIGHTS weights; more than half the rows is no sample.
        assert_eq!(
            sample_rows(&w[..m * n / 4], m, n / 4, 1).unwrap().len(),
            MIN_SAMPLE_WEIGHTS.div_ceil(n / 4)
        );
        assert_eq!(sample_rows(&w[..200 * n], 200, n, 1), None);
        assert_eq!(sample_rows(&w, m, n + 1, 1), None, "shape mismatch");
    }

    #[test]
    fn reference_width_is_the_one_nearest_the_budget() {
        let dims = [1024u64, 1024];
        let sub = Some(SubScales::DEFAULT);
        let bits = [2, 3, 4, 5, 6, 7, 8];
        // Two-level scales cost 0.4375 bits per weight: 4 bits is about 4.44, 3 bits about 3.44.
        assert_eq!(reference_width(&bits, &dims, sub, 4.5).unwrap(), Some(4));
        assert_eq!(reference_width(&bits, &dims, sub, 3.4375).unwrap(), Some(3));
        assert_eq!(reference_width(&bits, &dims, sub, 1.0).unwrap(), Some(2));
        assert_eq!(reference_width(&bits, &dims, sub, 20.0).unwrap(), Some(8));
        assert_eq!(reference_width(&[], &dims, sub, 4.5).unwrap(), None);
        assert!(reference_width(&[9], &dims, sub, 4.5).is_err());
    }

    #[test]
    fn sampled_candidates_track_the_exact_ones_at_exact_cost() {
        let (m, n) = (1024, 128);
        let w = uneven(m, n);
        let dims = [m as u64, n as u64];
        let sub = Some(SubScales::DEFAULT);
        let (bits, ranks) = ([2u8, 3, 4, 5, 6], [0u32, 8, 16]);
        let exact = candidates(&w, &dims, &bits, &ranks, 3, sub).unwrap();
        let sampled = sampled_candidates(&w, &dims, &bits, &ranks, 3, sub, 4.5).unwrap();
        assert_eq!(exact.len(), sampled.len());
        for (e, s) in exact.iter().zip(&sampled) {
            assert_eq!((e.bits, e.rank, e.cost_bits), (s.bits, s.rank, s.cost_bits));
            if e.bits == 4 {
                // The reference width is measured on the whole tensor, as by `candidates`.
                assert_eq!(e.err2.to_bits(), s.err2.to_bits(), "{e:?} {s:?}");
            } else {
                let r = s.err2 / e.err2;
                assert!((0.8..1.25).contains(&r), "{e:?} vs {s:?}: {r}");
            }
        }
        // Fewer weights than a sample needs, or one width: the exact analysis.
        let small = &w[..200 * n];
        let d2 = [200u64, n as u64];
        assert_eq!(
            sampled_candidates(small, &d2, &bits, &ranks, 3, sub, 4.5).unwrap(),
            candidates(small, &d2, &bits, &ranks, 3, sub).unwrap()
        );
        assert_eq!(
            sampled_candidates(&w, &dims, &[3], &ranks, 3, sub, 4.5).unwrap(),
            candidates(&w, &dims, &[3], &ranks, 3, sub).unwrap()
        );
    }

    #[test]
    fn sampled_candidates_do_not_depend_on_the_thread_count() {
        let (m, n) = (1024, 96);
        let w = uneven(m, n);
        let dims = [m as u64, n as u64];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| sampled_candidates(&w, &dims, &[2, 3, 4, 8], &[0, 8], 11, None, 3.3).unwrap())
        };
        let bits = |c: Vec<Candidate>| -> Vec<(u8, u32, u64, u64)> {
            c.iter()
                .map(|c| (c.bits, c.rank, c.cost_bits, c.err2.to_bits()))
                .collect()
        };
        let one = bits(run(1));
        assert_eq!(one, bits(run(2)));
        assert_eq!(one, bits(run(3)));
    }

    #[test]
    fn sampled_candidates_refuse_bad_input_like_the_exact_ones() {
        let w = vec![0.5f32; 100];
        assert!(matches!(
            sampled_candidates(&w, &[10, 11], &[2, 4], &[0], 0, None, 3.0),
            Err(EncodeError::ShapeMismatch { .. })
        ));
        let mut w = uneven(1024, 64);
        w[777] = f32::NAN;
        assert!(matches!(
            sampled_candidates(&w, &[1024, 64], &[2, 4], &[0], 0, None, 3.0),
            Err(EncodeError::NonFinite { index: 777 })
        ));
        assert!(sampled_candidates(&w[..64], &[1, 64], &[2, 0], &[0], 0, None, 3.0).is_err());
    }
}
