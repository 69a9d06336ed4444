//! Grid scalar quantization (GSQ) of one tensor into a uc record.
//!
//! 1. Scales: for each block of 64 weights (row-major), start from `s = f16(absmax)` rounded to
//!    nearest even (spec ), clamped to the largest finite binary16.
//! 2. Grid: 1-D k-means (Lloyd) with `2^bits` centroids over the weights normalised by their
//!    *stored* scale, `x = w / f32(s)`, each weighted by `f32(s)²` so that the objective is the
//!    squared error of the reconstruction `s · grid[code]` itself (a block with twice the scale
//!    counts four times as much). The data are sorted once; each Lloyd step then costs
//!    `O(K log N)` using prefix sums (f64, fixed order), so the result is deterministic and
//!    independent of thread count. Initialisation: centroids at the `(j + ½)/K` quantiles of the
//!    cube root of the (weighted) density, the high-resolution optimum (Panter–Dite), which Lloyd
//!    otherwise approaches only slowly at 5 bits and more.
//! 3. Scale refinement ([`GsqOptions::scale_rounds`] rounds): for every block, with the grid fixed,
//!    the stored scale becomes the binary16 value with the lowest squared block error among the
//!    current scale, `absmax · (1 / max|grid|)` times 17 multipliers from 0.6 to 1.4, and two
//!    least-squares steps `s = Σ w·g / Σ g²` from the best of those (codes reassigned each time);
//!    then the grid is refitted (Lloyd from the previous grid) to the new scales. Each block is
//!    decided from its own 64 weights in a fixed order, so the result does not depend on threads.
//! 4. Codes: nearest grid value, ties to the lower index, decided as in DESIGN §6 by comparing the
//!    weight with `f32(s) * midpoint` (one rounded multiply, no division) so that a GPU can
//!    reproduce it bit for bit. The scale search evaluates every candidate with exactly this rule
//!    and the decoder's product, so the error it minimises is the error of the record.

use core::fmt;
use rayon::prelude::*;
use uc_format::num::{f16_to_f32, f32_to_f16_bits};
use uc_format::{OverlayDtype, RecordParams, write_record_with_subscales};

/// Options of [`quantize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsqOptions {
    /// Code width, 1..=8.
    pub bits: u8,
    /// Lloyd iterations at most (stops earlier when the assignment no longer changes).
    pub max_iters: u32,
    /// At most this many normalised values (taken at evenly spaced indices) train the grid.
    pub max_train: usize,
    /// Rounds of per-block scale refinement, each followed by a grid refit (0: the absmax scales
    /// are kept).
    pub scale_rounds: u32,
    /// Two-level scales (spec section 13), or `None` for v0.3 blocks of 64 weights with one
    /// binary16 scale each.
    pub subscales: Option<SubScales>,
}

/// The shape of two-level scales (spec section 13): a binary16 scale per 256 weights times a
/// `bits`-bit sub-scale per sub-block of `block` weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SubScales {
    /// Sub-block size `S`: 16 or 32.
    pub block: u32,
    /// Sub-scale width `q` in bits: 1..=8.
    pub bits: u8,
}

impl SubScales {
    /// The default of `uc compress`: 6-bit sub-scales per 16 weights (0.4375 bits per weight of
    /// scales), the choice of the quality table in BENCHMARKS.md.
    pub const DEFAULT: SubScales = SubScales { block: 16, bits: 6 };

    /// The largest sub-scale, `2^bits - 1`.
    pub fn max(self) -> f32 {
        f32::from(((1u16 << self.bits) - 1) as u8)
    }

    /// Record parameters with these two-level scales.
    pub fn params(
        self,
        bits: u8,
        dims: &[u64],
        rank: u32,
        dtype: OverlayDtype,
    ) -> Result<RecordParams, uc_format::Error> {
        RecordParams::with_subscales_bits(bits, dims, rank, dtype, self.block, self.bits)
    }
}

/// Record parameters for `subscales` (v0.3 when `None`).
pub fn record_params(
    bits: u8,
    dims: &[u64],
    rank: u32,
    dtype: OverlayDtype,
    subscales: Option<SubScales>,
) -> Result<RecordParams, uc_format::Error> {
    match subscales {
        None => RecordParams::new(bits, dims, rank, dtype),
        Some(s) => s.params(bits, dims, rank, dtype),
    }
}

impl GsqOptions {
    /// Defaults for `bits`: 100 Lloyd iterations, up to 2^22 training values, 1 scale round (a
    /// second one gains well under 1% of rel_l2 for as much time again).
    pub fn new(bits: u8) -> Self {
        GsqOptions {
            bits,
            max_iters: 100,
            max_train: 1 << 22,
            scale_rounds: 1,
            subscales: None,
        }
    }

    /// The same with two-level scales (`None`: v0.3 scales).
    pub fn with_subscales(mut self, subscales: Option<SubScales>) -> Self {
        self.subscales = subscales;
        self
    }

    /// Elements that share one effective scale: 64, or the sub-block size.
    fn unit(&self) -> usize {
        self.subscales.map_or(64, |s| s.block as usize)
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
    /// The compute device failed (a driver error, device memory); the message says which.
    Device(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NonFinite { index } => write!(f, "weight {index} is NaN or infinite"),
            EncodeError::ShapeMismatch { expected, got } => {
                write!(f, "tensor has {got} values but its shape has {expected}")
            }
            EncodeError::Format(e) => write!(f, "{e}"),
            EncodeError::Device(m) => write!(f, "compute device: {m}"),
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
    /// Lloyd iterations run (all grid fits together).
    pub iters: u32,
}

/// Largest finite binary16, as binary32.
const F16_MAX: f32 = 65504.0;

/// Elements per chunk of the chunked `W_base` computations; the chunk of
/// [`crate::tensor::sum_sq`] too, so that [`GsqParts::residual_sq`] sums in its order.
pub const W_BASE_CHUNK: usize = 1 << 16;

/// The parts of a GSQ quantization, before they are written into a record.
#[derive(Debug, Clone)]
pub struct GsqParts {
    /// Grid, sorted ascending, `2^bits` values.
    pub grid: Vec<f32>,
    /// One binary16 scale per block (64 elements, or 256 with two-level scales).
    pub scales: Vec<u16>,
    /// Two-level scales: one sub-scale per sub-block (`< 2^bits` of [`GsqParts::layout`]); empty
    /// without.
    pub subscales: Vec<u8>,
    /// The two-level scales' shape, or `None` for a v0.3 record.
    pub layout: Option<SubScales>,
    /// One code per element.
    pub codes: Vec<u8>,
    /// Lloyd iterations run (all grid fits together).
    pub iters: u32,
}

impl GsqParts {
    /// `W_base` by spec R-7.1 (R-13.4 with two-level scales) through the decoder's
    /// [`uc_decode::w_base_value`] / [`uc_decode::w_base_value_subscaled`] (the same bits every
    /// conforming decoder returns).
    pub fn w_base(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.codes.len()];
        out.par_chunks_mut(W_BASE_CHUNK)
            .enumerate()
            .for_each(|(k, o)| self.w_base_into(k * W_BASE_CHUNK, o));
        out
    }

    /// `W_base` of the elements `[start, start + out.len())`, as [`GsqParts::w_base`] gives them:
    /// for the callers that need `W − W_base` or its energy without holding a second copy of a
    /// large tensor (a 49152 × 576 embedding is 113 MB in f32).
    pub fn w_base_into(&self, start: usize, out: &mut [f32]) {
        let shift = self.unit().trailing_zeros();
        let codes = &self.codes[start..start + out.len()];
        for (k, (o, &c)) in out.iter_mut().zip(codes).enumerate() {
            let i = start + k;
            let t = i >> shift;
            let g = self.grid[usize::from(c)];
            *o = if self.layout.is_none() {
                uc_decode::w_base_value(self.scales[t], g)
            } else {
                uc_decode::w_base_value_subscaled(self.scales[i >> 8], self.subscales[t], g)
            };
        }
    }

    /// The residual `data − W_base` (one binary32 subtraction per element), computed in chunks
    /// without materialising `W_base`.
    pub fn residual(&self, data: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(W_BASE_CHUNK)
            .zip(data.par_chunks(W_BASE_CHUNK))
            .enumerate()
            .for_each(|(k, (o, d))| {
                self.w_base_into(k * W_BASE_CHUNK, o);
                for (o, &w) in o.iter_mut().zip(d) {
                    *o = w - *o;
                }
            });
        out
    }

    /// `‖data − W_base‖²`, bit-identical to [`crate::tensor::sum_sq`] of [`GsqParts::residual`]
    /// (the same chunks of [`W_BASE_CHUNK`] elements, each summed in order in f64, the chunk sums
    /// added left to right), holding one chunk of `W_base` per thread instead of two whole copies.
    pub fn residual_sq(&self, data: &[f32]) -> f64 {
        data.par_chunks(W_BASE_CHUNK)
            .enumerate()
            .map(|(k, d)| {
                let mut wb = vec![0f32; d.len()];
                self.w_base_into(k * W_BASE_CHUNK, &mut wb);
                d.iter()
                    .zip(&wb)
                    .map(|(&a, &b)| {
                        let r = a - b;
                        f64::from(r) * f64::from(r)
                    })
                    .sum::<f64>()
            })
            .collect::<Vec<_>>()
            .iter()
            .sum()
    }

    /// Elements that share one effective scale: 64 (v0.3), or the sub-block size.
    pub fn unit(&self) -> usize {
        self.layout.map_or(64, |s| s.block as usize)
    }

    /// The effective scale of each unit (R-7.1, R-13.4; exact binary32 values).
    pub fn effective_scales(&self) -> Vec<f32> {
        match self.layout {
            None => Scales::v03(self.scales.clone()).eff,
            Some(s) => Scales::two_level(self.scales.clone(), self.subscales.clone(), s.block as usize).eff,
        }
    }

    /// Replaces the scales by the representable ones nearest to `eff` (one wanted effective scale
    /// per unit, non-negative): binary16 values rounded to nearest even for v0.3; for two-level
    /// scales, per 256-element block the binary16 scale that lets the largest wanted scale fit
    /// and the nearest sub-scales. Codes and grid are kept.
    pub fn set_effective_scales(&mut self, eff: &[f32]) {
        let s = represent_scales(self.layout, eff);
        self.scales = s.f16;
        self.subscales = s.sub;
    }

    /// The record of these parts for shape `dims`, with the overlay factors `u` `[rows, rank]` and
    /// `v` `[rank, cols]` as 16-bit patterns of `dtype` (empty for rank 0).
    pub fn record(
        &self,
        bits: u8,
        dims: &[u64],
        rank: u32,
        dtype: OverlayDtype,
        u: &[u16],
        v: &[u16],
    ) -> Result<Vec<u8>, EncodeError> {
        let params = self.params(bits, dims, rank, dtype)?;
        let mut record = vec![0u8; params.layout()?.record_len as usize];
        write_record_with_subscales(
            &params,
            &self.grid,
            &self.scales,
            &self.subscales,
            &self.codes,
            u,
            v,
            &mut record,
        )?;
        Ok(record)
    }

    /// The record parameters of these parts for shape `dims` and an overlay of `rank` in `dtype`.
    pub fn params(&self, bits: u8, dims: &[u64], rank: u32, dtype: OverlayDtype) -> Result<RecordParams, EncodeError> {
        Ok(record_params(bits, dims, rank, dtype, self.layout)?)
    }
}

/// The scales of one GSQ state: binary16 block scales, the sub-scales of two-level scales, and
/// the effective scale (R-7.1 / R-13.4, exact) of each unit of elements that shares one.
#[derive(Debug, Clone)]
struct Scales {
    f16: Vec<u16>,
    sub: Vec<u8>,
    /// Per unit (64 elements, or one sub-block).
    eff: Vec<f32>,
}

impl Scales {
    fn v03(f16: Vec<u16>) -> Self {
        let eff = f16.iter().map(|&h| f16_to_f32(h)).collect();
        Scales {
            f16,
            sub: Vec::new(),
            eff,
        }
    }

    fn two_level(f16: Vec<u16>, sub: Vec<u8>, unit: usize) -> Self {
        let per = 256 / unit;
        let eff = sub
            .iter()
            .enumerate()
            .map(|(t, &a)| f16_to_f32(f16[t / per]) * f32::from(a))
            .collect();
        Scales { f16, sub, eff }
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
    quantize_parts_weighted(data, opts, None)
}

/// Per-column importance of a `[rows, cols]` weight: element `i` counts `w[i mod cols]` times in
/// every squared error GSQ minimises (the grid's k-means and the scale search), so that the error
/// approximates `‖(W − Ŵ) X‖²` through the diagonal of the layer's input second moment
/// `E[x xᵀ]`, as llama.cpp's importance matrix and any4's activation-weighted k-means do. The
/// codes stay the nearest grid values (the weight of an element does not change which grid value
/// is nearest to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// One non-negative finite weight per column.
    pub w: Vec<f32>,
}

impl Importance {
    /// From the diagonal `diag` of `E[x xᵀ]` (one entry per input feature): each entry over their
    /// mean, plus `floor` (relative to the mean) so that a feature the calibration text never
    /// excited still counts a little; `None` when the diagonal is empty, not finite or all zero.
    pub fn from_second_moments(diag: &[f64], floor: f64) -> Option<Self> {
        let n = diag.len();
        if n == 0 || diag.iter().any(|d| !d.is_finite() || *d < 0.0) {
            return None;
        }
        let mean = diag.iter().sum::<f64>() / n as f64;
        if mean.is_nan() || mean <= 0.0 {
            return None;
        }
        Some(Importance {
            w: diag.iter().map(|d| (d / mean + floor) as f32).collect(),
        })
    }

    /// The weights of the `len` elements that start at flat index `start`, into `out`.
    fn fill(&self, start: usize, out: &mut [f32]) {
        let cols = self.w.len();
        let mut c = start % cols;
        for o in out.iter_mut() {
            *o = self.w[c];
            c += 1;
            if c == cols {
                c = 0;
            }
        }
    }
}

/// [`quantize_parts`] with the squared errors weighted by `imp` (see [`Importance`]); `None` is
/// exactly [`quantize_parts`].
pub fn quantize_parts_weighted(data: &[f32], opts: &GsqOptions, imp: Option<&Importance>) -> GsqParts {
    let imp = imp.filter(|i| !i.w.is_empty());
    let Ok(parts) = quantize_parts_on(&mut CpuKernels { data, imp }, data.len(), opts);
    parts
}

/// Where [`quantize_parts_weighted`] runs for `uc compress --device`: the CPU ([`CpuEngine`]) or
/// a device (uc-cuda's CUDA engine). Every engine returns the parts of the CPU, bit for bit, or an
/// error; none falls back to another device.
pub trait GsqEngine: Send + Sync + fmt::Debug {
    /// The device, as `uc compress` reports it (e.g. `cpu`, `cuda:0 (NVIDIA H100 80GB HBM3)`).
    fn device(&self) -> String;
    /// [`quantize_parts_weighted`] of `data` on this engine's device.
    fn quantize(&self, data: &[f32], opts: &GsqOptions, imp: Option<&Importance>) -> Result<GsqParts, EncodeError>;
    /// [`crate::svd::low_rank`] of the residual `r` (`[m, n]`) on this engine's device; the CPU's
    /// unless the engine runs it elsewhere.
    fn low_rank(
        &self,
        r: &[f32],
        m: usize,
        n: usize,
        rank: usize,
        seed: u64,
    ) -> Result<crate::svd::LowRank, EncodeError> {
        Ok(crate::svd::low_rank(r, m, n, rank, seed))
    }
}

/// The CPU [`GsqEngine`]: [`quantize_parts_weighted`] itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuEngine;

impl GsqEngine for CpuEngine {
    fn device(&self) -> String {
        "cpu".into()
    }

    fn quantize(&self, data: &[f32], opts: &GsqOptions, imp: Option<&Importance>) -> Result<GsqParts, EncodeError> {
        Ok(quantize_parts_weighted(data, opts, imp))
    }
}

/// The data-parallel steps of GSQ over one tensor (its weights and importance are the
/// implementation's): block maxima, the grid fit's training keys, the scale search and the code
/// assignment. [`quantize_parts_on`] runs them and does the rest (the sort of the keys, the
/// Lloyd iterations over their f64 prefix sums, the representation of the scales) on the host,
/// for every implementation alike, so that a device that implements these steps exactly gives the
/// bytes of the CPU. [`CpuKernels`] is the reference; `uc-cuda` implements them as CUDA kernels
/// (and as the same kernels' host build, which its tests compare with this one byte for byte).
pub trait GsqKernels {
    /// Why a step failed (a device error); [`core::convert::Infallible`] on the CPU.
    type Error;
    /// The largest magnitude of each unit of `unit` elements (the last one may be short).
    fn absmax(&mut self, unit: usize) -> Result<Vec<f32>, Self::Error>;
    /// The `m` training keys of the grid fit for the effective scales `eff` (see
    /// [`train_key`]): key `t` is element `t · n / m`'s.
    fn train_keys(&mut self, eff: &[f32], unit: usize, m: usize) -> Result<Vec<u64>, Self::Error>;
    /// v0.3 scale search: one binary16 scale per 64-element block, from the current `scales`.
    fn refine_v03(&mut self, absmax: &[f32], scales: &[u16], search: &ScaleSearch) -> Result<Vec<u16>, Self::Error>;
    /// Two-level scale search: binary16 block scales and sub-scales.
    fn refine_two_level(
        &mut self,
        absmax: &[f32],
        sub: SubScales,
        search: &ScaleSearch,
    ) -> Result<(Vec<u16>, Vec<u8>), Self::Error>;
    /// The nearest grid index of every element (see [`assign_codes`]), `mids` the grid's
    /// binary32 midpoints.
    fn assign(&mut self, eff: &[f32], unit: usize, mids: &[f32]) -> Result<Vec<u8>, Self::Error>;
}

/// What the scale search of one grid needs, computed once on the host and handed to every
/// [`GsqKernels`] implementation: the grid, its binary32 midpoints, the code finder's table
/// ([`ScaleSearch::BINS`] start indices over the normalised value, see `CodeFinder`) and the
/// grid's largest magnitude with its reciprocal.
#[derive(Debug, Clone)]
pub struct ScaleSearch {
    /// The grid, ascending.
    pub grid: Vec<f32>,
    /// `0.5 · grid[j] + 0.5 · grid[j + 1]` in binary32.
    pub mids: Vec<f32>,
    /// `table[b]`: the code of the normalised value at the lower edge of bin `b`.
    pub table: Vec<u16>,
    /// The lower edge of bin 0.
    pub lo: f32,
    /// Bins per unit of normalised value.
    pub inv_width: f32,
    /// `max |grid|`.
    pub gmax: f32,
    /// `1 / gmax`, or 0 when `gmax` is 0.
    pub inv_gmax: f32,
}

impl ScaleSearch {
    /// Bins of the code finder's table.
    pub const BINS: usize = CodeFinder::BINS;

    /// The search data of `grid` (ascending).
    pub fn new(grid: &[f32]) -> Self {
        let mids = midpoints(grid);
        let (table, lo, inv_width) = CodeFinder::table(&mids);
        let gmax = grid.iter().fold(0f32, |m, g| m.max(g.abs()));
        let inv_gmax = if gmax > 0.0 { 1.0 / gmax } else { 0.0 };
        ScaleSearch {
            grid: grid.to_vec(),
            mids,
            table,
            lo,
            inv_width,
            gmax,
            inv_gmax,
        }
    }
}

/// The grid's binary32 midpoints `0.5 · g[j] + 0.5 · g[j + 1]`.
fn midpoints(grid: &[f32]) -> Vec<f32> {
    grid.windows(2).map(|p| 0.5 * p[0] + 0.5 * p[1]).collect()
}

/// The reference [`GsqKernels`]: rayon over the CPU's cores.
#[derive(Debug, Clone, Copy)]
pub struct CpuKernels<'a> {
    /// The tensor's weights.
    pub data: &'a [f32],
    /// Per-column importance, if any (non-empty).
    pub imp: Option<&'a Importance>,
}

impl GsqKernels for CpuKernels<'_> {
    type Error = core::convert::Infallible;

    fn absmax(&mut self, unit: usize) -> Result<Vec<f32>, Self::Error> {
        Ok(self
            .data
            .par_chunks(unit)
            .map(|b| b.iter().fold(0f32, |m, w| m.max(w.abs())))
            .collect())
    }

    fn train_keys(&mut self, eff: &[f32], unit: usize, m: usize) -> Result<Vec<u64>, Self::Error> {
        let (data, imp, n) = (self.data, self.imp, self.data.len());
        Ok((0..m)
            .into_par_iter()
            .map(|t| train_key(data, eff, unit, imp, (t as u128 * n as u128 / m as u128) as usize))
            .collect())
    }

    fn refine_v03(&mut self, absmax: &[f32], scales: &[u16], search: &ScaleSearch) -> Result<Vec<u16>, Self::Error> {
        Ok(refine_scales(self.data, absmax, scales, search, self.imp))
    }

    fn refine_two_level(
        &mut self,
        absmax: &[f32],
        sub: SubScales,
        search: &ScaleSearch,
    ) -> Result<(Vec<u16>, Vec<u8>), Self::Error> {
        let s = refine_two_level(self.data, absmax, search, sub, self.imp);
        Ok((s.f16, s.sub))
    }

    fn assign(&mut self, eff: &[f32], unit: usize, mids: &[f32]) -> Result<Vec<u8>, Self::Error> {
        Ok(assign_codes(self.data, eff, unit, mids))
    }
}

/// GSQ of an `n`-element tensor through `k`'s data-parallel steps (see [`GsqKernels`]): the bytes
/// of [`quantize_parts_weighted`] whenever `k` computes its steps exactly.
pub fn quantize_parts_on<K: GsqKernels>(k: &mut K, n: usize, opts: &GsqOptions) -> Result<GsqParts, K::Error> {
    let unit = opts.unit();
    let absmax = k.absmax(unit)?;
    let mut scales = match opts.subscales {
        None => Scales::v03(absmax.iter().map(|a| f32_to_f16_bits(a.min(F16_MAX))).collect()),
        // Before a grid exists, the grid's largest magnitude is taken as 1.
        Some(sub) => two_level_start(&absmax, 1.0, sub),
    };
    let m = n.min(opts.max_train.max(1));
    let keys = k.train_keys(&scales.eff, unit, m)?;
    let (mut grid, mut iters) = fit_grid(keys, opts, None);
    for _ in 0..opts.scale_rounds {
        let search = ScaleSearch::new(&grid);
        scales = match opts.subscales {
            None => Scales::v03(k.refine_v03(&absmax, &scales.f16, &search)?),
            Some(sub) => {
                let (f16, s) = k.refine_two_level(&absmax, sub, &search)?;
                Scales::two_level(f16, s, sub.block as usize)
            }
        };
        let keys = k.train_keys(&scales.eff, unit, m)?;
        let (g, it) = fit_grid(keys, opts, Some(&grid));
        grid = g;
        iters += it;
    }
    let codes = k.assign(&scales.eff, unit, &midpoints(&grid))?;
    Ok(GsqParts {
        grid,
        scales: scales.f16,
        subscales: scales.sub,
        layout: opts.subscales,
        codes,
        iters,
    })
}

/// The training key of element `i` for the grid fit: its normalised value `x = w / s` (0 where
/// the unit's effective scale `s` is 0) and its weight `s²` (times its column's importance, when
/// given; one rounded binary32 product each), packed in one u64 whose integer order is the order
/// of `f32::total_cmp` on the value, then on the weight (non-negative, so its bits order it).
pub fn train_key(data: &[f32], eff: &[f32], unit: usize, imp: Option<&Importance>, i: usize) -> u64 {
    let s = eff[i / unit];
    let x = normalised(data, eff, unit, i).to_bits();
    let x = if x & 0x8000_0000 != 0 { !x } else { x | 0x8000_0000 };
    let w = match imp {
        None => s * s,
        Some(imp) => s * s * imp.w[i % imp.w.len()],
    };
    (u64::from(x) << 32) | u64::from(w.to_bits())
}

/// The representable scales nearest to the wanted effective scales `eff` (one per unit; negative
/// or NaN values count as 0), and the effective scales they give: see
/// [`GsqParts::set_effective_scales`].
pub fn represent_scales(layout: Option<SubScales>, eff: &[f32]) -> ScalesOut {
    let clean: Vec<f32> = eff
        .iter()
        .map(|&x| if x > 0.0 { x.min(F16_MAX * 255.0) } else { 0.0 })
        .collect();
    let s = match layout {
        None => Scales::v03(clean.iter().map(|&x| f32_to_f16_bits(x.min(F16_MAX))).collect()),
        Some(sub) => two_level_start(&clean, 1.0, sub),
    };
    ScalesOut {
        f16: s.f16,
        sub: s.sub,
        eff: s.eff,
    }
}

/// The result of [`represent_scales`].
#[derive(Debug, Clone)]
pub struct ScalesOut {
    /// Binary16 block scales.
    pub f16: Vec<u16>,
    /// Sub-scales (empty for v0.3).
    pub sub: Vec<u8>,
    /// The effective scale of each unit.
    pub eff: Vec<f32>,
}

/// Binary16 block scale of a 256-element block whose largest sub-block wants the scale
/// `want_max`: the least binary16 value `d` with `sub_max · d ≥ want_max` (so that every
/// sub-scale fits), within binary16's range; 0 for an all-zero block.
fn block_scale_for(want_max: f32, sub_max: f32) -> u16 {
    if want_max <= 0.0 {
        return 0;
    }
    let target = (want_max / sub_max).min(F16_MAX);
    let mut h = f32_to_f16_bits(target).max(1);
    while f16_to_f32(h) * sub_max < want_max && f16_to_f32(h) < F16_MAX {
        h += 1;
    }
    h
}

/// Nearest sub-scale to the scale `want` under block scale `d` (0..=sub_max).
fn sub_for(want: f32, d: f32, sub_max: f32) -> u8 {
    if d <= 0.0 {
        return 0;
    }
    (want / d).round().clamp(0.0, sub_max) as u8
}

/// Two-level scales from each sub-block's absmax: sub-block `t` wants `absmax[t] / gmax`.
fn two_level_start(absmax: &[f32], gmax: f32, sub: SubScales) -> Scales {
    let unit = sub.block as usize;
    let sub_max = sub.max();
    let per = 256 / unit;
    let inv = if gmax > 0.0 { 1.0 / gmax } else { 0.0 };
    let f16: Vec<u16> = absmax
        .chunks(per)
        .map(|c| block_scale_for(c.iter().fold(0f32, |m, &a| m.max(a * inv)), sub_max))
        .collect();
    let sub = absmax
        .iter()
        .enumerate()
        .map(|(t, &a)| sub_for(a * inv, f16_to_f32(f16[t / per]), sub_max))
        .collect();
    Scales::two_level(f16, sub, unit)
}

/// Quantizes `data` (row-major, shape `dims`) into a record without overlay (v0.3, or v0.4 with
/// `opts.subscales`).
pub fn quantize(data: &[f32], dims: &[u64], opts: &GsqOptions) -> Result<QuantizedTensor, EncodeError> {
    let params = record_params(opts.bits, dims, 0, OverlayDtype::None, opts.subscales)?;
    let layout = params.layout()?;
    check_input(data, layout.n)?;
    let parts = quantize_parts(data, opts);
    let record = parts.record(opts.bits, dims, 0, OverlayDtype::None, &[], &[])?;
    Ok(QuantizedTensor {
        record,
        grid: parts.grid,
        iters: parts.iters,
    })
}

/// Weight normalised by its unit's effective scale (0 where the scale is 0).
fn normalised(data: &[f32], eff: &[f32], unit: usize, i: usize) -> f32 {
    let s = eff[i / unit];
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

/// Weighted 1-D k-means over the training `keys` (see [`train_key`]: a deterministic subsample
/// of the normalised weights, each with weight `s²` of its unit's effective scale `s`, times its
/// column's importance when given). Starts from `warm` (a previous grid) when given, else from the
/// cube-root-density quantiles. Keys that compare equal are identical, so the sorted sequence,
/// and the prefix sums over it, depend on neither the sort nor the thread count.
fn fit_grid(mut keys: Vec<u64>, opts: &GsqOptions, warm: Option<&[f32]>) -> (Vec<f32>, u32) {
    let k = 1usize << opts.bits;
    let m = keys.len();
    keys.par_sort_unstable();
    let mut xw: Vec<(f32, f32)> = keys
        .par_iter()
        .map(|&k| {
            let x = (k >> 32) as u32;
            let x = if x & 0x8000_0000 != 0 { x & 0x7fff_ffff } else { !x };
            (f32::from_bits(x), f32::from_bits(k as u32))
        })
        .collect();
    drop(keys);
    if xw.iter().all(|p| p.1 == 0.0) {
        // All scales zero (an all-zero tensor): nothing to weight by; fit the values as they are.
        xw.iter_mut().for_each(|p| p.1 = 1.0);
    }
    let xs: Vec<f32> = xw.iter().map(|p| p.0).collect();
    let mut pw = Vec::with_capacity(m + 1);
    let mut pwx = Vec::with_capacity(m + 1);
    let (mut aw, mut awx) = (0f64, 0f64);
    pw.push(0f64);
    pwx.push(0f64);
    for &(x, w) in &xw {
        aw += f64::from(w);
        awx += f64::from(w) * f64::from(x);
        pw.push(aw);
        pwx.push(awx);
    }
    let mut c: Vec<f64> = match warm {
        Some(g) if g.len() == k => g.iter().map(|&v| f64::from(v)).collect(),
        _ => cube_root_init(&xw, k),
    };
    c.sort_by(f64::total_cmp);
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
            let w = pw[hi] - pw[lo];
            if hi > lo && w > 0.0 {
                c[j] = (pwx[hi] - pwx[lo]) / w;
            }
        }
        // Keep the centroids sorted (empty clusters keep their old value, which can break order).
        c.sort_by(f64::total_cmp);
    }
    let mut grid: Vec<f32> = c.into_iter().map(to_grid_value).collect();
    grid.sort_by(f32::total_cmp);
    (grid, iters)
}

/// Initial centroids at the `(j + ½)/k` quantiles of `p(x)^(1/3)`, where `p` is the weighted
/// histogram (2048 bins) of the sorted values: the point density that minimises the squared error
/// at high resolution. Positions are interpolated linearly inside a bin.
fn cube_root_init(xw: &[(f32, f32)], k: usize) -> Vec<f64> {
    const BINS: usize = 2048;
    let lo = f64::from(xw[0].0);
    let hi = f64::from(xw[xw.len() - 1].0);
    if hi <= lo {
        return vec![lo; k];
    }
    let width = (hi - lo) / BINS as f64;
    let mut mass = vec![0f64; BINS];
    for &(x, w) in xw {
        let b = ((f64::from(x) - lo) / width) as usize;
        mass[b.min(BINS - 1)] += f64::from(w);
    }
    let dens: Vec<f64> = mass.iter().map(|v| v.cbrt()).collect();
    let total: f64 = dens.iter().sum();
    let mut out = Vec::with_capacity(k);
    let (mut acc, mut b) = (0f64, 0usize);
    for j in 0..k {
        let target = (j as f64 + 0.5) / k as f64 * total;
        while b < BINS - 1 && acc + dens[b] < target {
            acc += dens[b];
            b += 1;
        }
        let frac = if dens[b] > 0.0 {
            ((target - acc) / dens[b]).clamp(0.0, 1.0)
        } else {
            0.5
        };
        out.push(lo + (b as f64 + frac) * width);
    }
    out
}

/// Multipliers of `absmax / max|grid|` tried for every block by [`refine_scales`].
const SCALE_MULTS: [f32; 17] = [
    0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4,
];

/// Least-squares steps taken from the best multiplier by [`refine_scales`].
const LS_STEPS: usize = 2;

/// The least-squares scale `Σ a·w·g / Σ a·g²` of weights `w` with codes `codes` on `grid` and
/// element weights `a` (`wt`, or all 1; f64 in a fixed order), or `None` when it is not positive.
fn ls_scale(w: &[f32], wt: Option<&[f32]>, codes: &[u8], grid: &[f32]) -> Option<f32> {
    let (mut num, mut den) = (0f64, 0f64);
    for (k, (&x, &c)) in w.iter().zip(codes).enumerate() {
        let g = f64::from(grid[usize::from(c)]);
        let a = wt.map_or(1.0, |t| f64::from(t[k]));
        num += a * f64::from(x) * g;
        den += a * g * g;
    }
    (den > 0.0 && num > 0.0).then(|| (num / den) as f32)
}

/// Finds codes by the rule of [`assign_codes`] (smallest `j` with `w <= s * mid[j]`) fast: a
/// table over the normalised value gives a starting index, then a walk over the exact thresholds
/// `s * mid[j]` (computed as in `assign_codes`) settles it, so the result is always exact.
struct CodeFinder<'a> {
    mids: &'a [f32],
    /// `table[b]`: the code of the normalised value at the lower edge of bin `b`.
    table: &'a [u16],
    lo: f32,
    inv_width: f32,
}

impl<'a> CodeFinder<'a> {
    const BINS: usize = 4096;

    /// The table of `mids` and its bins' lower edge and width: (table, lo, 1 / width).
    fn table(mids: &[f32]) -> (Vec<u16>, f32, f32) {
        let (lo, hi) = match (mids.first(), mids.last()) {
            (Some(&a), Some(&b)) if b > a => (a, b),
            _ => (0.0, 1.0),
        };
        let width = (hi - lo) / Self::BINS as f32;
        let table = (0..Self::BINS)
            .map(|b| {
                let edge = lo + b as f32 * width;
                mids.partition_point(|&m| edge > m) as u16
            })
            .collect();
        (table, lo, 1.0 / width)
    }

    /// The finder of a scale search's grid.
    fn of(search: &'a ScaleSearch) -> Self {
        CodeFinder {
            mids: &search.mids,
            table: &search.table,
            lo: search.lo,
            inv_width: search.inv_width,
        }
    }

    /// Code of `x` in a block of scale `s` (`inv_s` ≈ 1 / s, only used to guess).
    #[inline]
    fn code(&self, x: f32, s: f32, inv_s: f32) -> usize {
        let guess = ((x * inv_s - self.lo) * self.inv_width).max(0.0) as usize;
        let mut c = usize::from(self.table[guess.min(Self::BINS - 1)]);
        while c < self.mids.len() && x > s * self.mids[c] {
            c += 1;
        }
        // Inputs are finite (checked by the caller), so `<=` is the negation of `>`.
        while c > 0 && x <= s * self.mids[c - 1] {
            c -= 1;
        }
        c
    }

    /// Squared error (each element's times `wt`, when given) of one block at scale `s` against
    /// the decoder's reconstruction `s * grid[code]`, with the codes left in `codes`; stops early (returning at least `limit`)
    /// once the partial error reaches `limit`.
    fn block_error(&self, w: &[f32], wt: Option<&[f32]>, s: f32, grid: &[f32], codes: &mut [u8], limit: f64) -> f64 {
        let inv_s = if s > 0.0 { 1.0 / s } else { 0.0 };
        let mut e = 0f64;
        for (k0, (chunk, cc)) in w.chunks(16).zip(codes.chunks_mut(16)).enumerate() {
            for (k, (&x, code)) in chunk.iter().zip(cc.iter_mut()).enumerate() {
                let c = self.code(x, s, inv_s);
                *code = c as u8;
                let d = f64::from(x) - f64::from(s * grid[c]);
                e += match wt {
                    None => d * d,
                    Some(t) => f64::from(t[16 * k0 + k]) * d * d,
                };
            }
            if e >= limit {
                return e;
            }
        }
        e
    }
}

/// Per block, the binary16 scale with the lowest squared error for `grid` among the current
/// scale, `absmax / max|grid|` times [`SCALE_MULTS`], and [`LS_STEPS`] least-squares steps.
/// Strict improvements only: ties keep the earlier candidate, the current scale first.
fn refine_scales(
    data: &[f32],
    absmax: &[f32],
    scales: &[u16],
    search: &ScaleSearch,
    imp: Option<&Importance>,
) -> Vec<u16> {
    let finder = CodeFinder::of(search);
    let grid = &search.grid[..];
    // One division per grid (`inv_gmax`); the per-block candidates use multiplications only.
    let (gmax, inv_gmax) = (search.gmax, search.inv_gmax);
    data.par_chunks(64)
        .zip(absmax.par_iter().zip(scales.par_iter()))
        .enumerate()
        .map(|(j, (w, (&a, &cur)))| {
            if a == 0.0 || gmax == 0.0 {
                return cur;
            }
            let mut wt = [0f32; 64];
            let wt = imp.map(|imp| {
                imp.fill(64 * j, &mut wt[..w.len()]);
                &wt[..w.len()]
            });
            let mut codes = [0u8; 64];
            let codes = &mut codes[..w.len()];
            let mut best_codes = [0u8; 64];
            let best_codes = &mut best_codes[..w.len()];
            let mut best = cur;
            let mut best_err = finder.block_error(w, wt, f16_to_f32(cur), grid, best_codes, f64::INFINITY);
            let mut consider = |h: u16, best: &mut u16, best_err: &mut f64, best_codes: &mut [u8]| {
                if h == *best {
                    return;
                }
                let e = finder.block_error(w, wt, f16_to_f32(h), grid, codes, *best_err);
                if e < *best_err {
                    *best = h;
                    *best_err = e;
                    best_codes.copy_from_slice(codes);
                }
            };
            let base = a * inv_gmax;
            for m in SCALE_MULTS {
                let s = (base * m).min(F16_MAX);
                if s.is_finite() {
                    consider(f32_to_f16_bits(s), &mut best, &mut best_err, best_codes);
                }
            }
            for _ in 0..LS_STEPS {
                let Some(s) = ls_scale(w, wt, best_codes, grid) else {
                    break;
                };
                let s = s.min(F16_MAX);
                let before = best;
                consider(f32_to_f16_bits(s), &mut best, &mut best_err, best_codes);
                if best == before {
                    break;
                }
            }
            best
        })
        .collect()
}

/// Two-level scales for `grid` (spec section 13): per 256-element block the binary16 scale that
/// lets the largest sub-block reach `absmax / max|grid|` (see [`block_scale_for`]), then per
/// sub-block the sub-scale with the lowest squared error among the nearest ones to
/// `absmax / max|grid|` times [`SCALE_MULTS`] and [`LS_STEPS`] least-squares steps (strict
/// improvements only, in that order). Each block is decided from its own weights: the result does
/// not depend on threads.
fn refine_two_level(
    data: &[f32],
    absmax: &[f32],
    search: &ScaleSearch,
    sub: SubScales,
    imp: Option<&Importance>,
) -> Scales {
    let unit = sub.block as usize;
    let sub_max = sub.max();
    let finder = CodeFinder::of(search);
    let grid = &search.grid[..];
    let inv_gmax = search.inv_gmax;
    let per = 256 / unit;
    let blocks: Vec<(u16, Vec<u8>)> = data
        .par_chunks(256)
        .zip(absmax.par_chunks(per))
        .enumerate()
        .map(|(j, (wb, ab))| {
            let h = block_scale_for(ab.iter().fold(0f32, |m, &a| m.max(a * inv_gmax)), sub_max);
            let d = f16_to_f32(h);
            let subs = wb
                .chunks(unit)
                .zip(ab)
                .enumerate()
                .map(|(t, (w, &a))| {
                    let base = a * inv_gmax;
                    if base == 0.0 || d == 0.0 {
                        return 0u8;
                    }
                    let mut wt = [0f32; 32];
                    let wt = imp.map(|imp| {
                        imp.fill(256 * j + unit * t, &mut wt[..w.len()]);
                        &wt[..w.len()]
                    });
                    let mut codes = [0u8; 32];
                    let codes = &mut codes[..w.len()];
                    let mut best_codes = [0u8; 32];
                    let best_codes = &mut best_codes[..w.len()];
                    let mut best = sub_for(base, d, sub_max);
                    let mut best_err = finder.block_error(w, wt, d * f32::from(best), grid, best_codes, f64::INFINITY);
                    let mut consider = |c: u8, best: &mut u8, best_err: &mut f64, best_codes: &mut [u8]| {
                        if c == *best {
                            return;
                        }
                        let e = finder.block_error(w, wt, d * f32::from(c), grid, codes, *best_err);
                        if e < *best_err {
                            *best = c;
                            *best_err = e;
                            best_codes.copy_from_slice(codes);
                        }
                    };
                    for m in SCALE_MULTS {
                        consider(sub_for(base * m, d, sub_max), &mut best, &mut best_err, best_codes);
                    }
                    for _ in 0..LS_STEPS {
                        let Some(ls) = ls_scale(w, wt, best_codes, grid) else {
                            break;
                        };
                        let before = best;
                        consider(sub_for(ls, d, sub_max), &mut best, &mut best_err, best_codes);
                        if best == before {
                            break;
                        }
                    }
                    best
                })
                .collect();
            (h, subs)
        })
        .collect();
    let f16 = blocks.iter().map(|b| b.0).collect();
    let sub = blocks.into_iter().flat_map(|b| b.1).collect();
    Scales::two_level(f16, sub, unit)
}

/// Nearest grid index for every weight, ties to the lower index, without division: with the grid
/// sorted and `mid[j] = (grid[j] + grid[j+1]) / 2` (binary32), weight `w` in a block of scale `s`
/// gets the smallest `j` with `w <= s * mid[j]`, or the last index.
fn assign_codes(data: &[f32], eff: &[f32], unit: usize, mids: &[f32]) -> Vec<u8> {
    let mut codes = vec![0u8; data.len()];
    // Fixed chunks of 64 units per task; each element's code depends only on its own inputs.
    codes
        .par_chunks_mut(64 * unit)
        .zip(data.par_chunks(64 * unit))
        .enumerate()
        .for_each(|(chunk, (cc, dc))| {
            let mut thresholds = vec![0f32; mids.len()];
            for (j, (cb, wb)) in cc.chunks_mut(unit).zip(dc.chunks(unit)).enumerate() {
                let s = eff[chunk * 64 + j];
                for (t, &mid) in thresholds.iter_mut().zip(mids) {
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
        let mut st = uc_pack::ErrorStats::default();
        a.iter().zip(b).for_each(|(x, y)| st.push(*x, *y));
        st.rel_l2().unwrap()
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
    fn chunked_residual_matches_the_whole_w_base() {
        // Longer than two chunks, with a partial last chunk and a partial last block.
        let w = gaussian_like(2 * W_BASE_CHUNK + 1000 + 17, 9);
        for sub in [None, Some(SubScales { block: 16, bits: 6 })] {
            let p = quantize_parts(&w, &GsqOptions::new(3).with_subscales(sub));
            let whole = p.w_base();
            let resid: Vec<f32> = w.iter().zip(&whole).map(|(a, b)| a - b).collect();
            let got = p.residual(&w);
            assert!(resid.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(p.residual_sq(&w).to_bits(), crate::tensor::sum_sq(&resid).to_bits());
            let mut part = vec![0f32; 333];
            p.w_base_into(W_BASE_CHUNK + 5, &mut part);
            assert!(
                part.iter()
                    .zip(&whole[W_BASE_CHUNK + 5..])
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }

    #[test]
    fn importance_weights_lower_the_weighted_error_and_keep_determinism() {
        let (rows, cols) = (96, 256);
        let w = gaussian_like(rows * cols, 21);
        // A few input features carry most of the energy, as in real activations.
        let diag: Vec<f64> = (0..cols)
            .map(|j| if j % 16 == 3 { 40.0 } else { 0.5 + (j % 7) as f64 * 0.1 })
            .collect();
        let imp = Importance::from_second_moments(&diag, 0.1).unwrap();
        let weighted_err = |p: &GsqParts| {
            w.iter()
                .zip(p.w_base())
                .enumerate()
                .map(|(i, (a, b))| f64::from(imp.w[i % cols]) * (f64::from(*a) - f64::from(b)).powi(2))
                .sum::<f64>()
        };
        for sub in [None, Some(SubScales { block: 16, bits: 6 })] {
            for bits in [2, 3, 4] {
                let o = GsqOptions::new(bits).with_subscales(sub);
                let plain = weighted_err(&quantize_parts(&w, &o));
                let aware = weighted_err(&quantize_parts_weighted(&w, &o, Some(&imp)));
                assert!(aware < plain * 0.97, "{sub:?} bits {bits}: {aware} not below {plain}");
            }
        }
        // All-equal importance is the unweighted quantizer, bit for bit.
        let ones = Importance { w: vec![1.0; cols] };
        let o = GsqOptions::new(4).with_subscales(Some(SubScales { block: 16, bits: 6 }));
        let a = quantize_parts(&w, &o);
        let b = quantize_parts_weighted(&w, &o, Some(&ones));
        assert_eq!(
            (a.grid, a.scales, a.subscales, a.codes),
            (b.grid, b.scales, b.subscales, b.codes)
        );
        // Independent of the thread count.
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let p = quantize_parts_weighted(&w, &o, Some(&imp));
                    p.record(4, &[rows as u64, cols as u64], 0, OverlayDtype::None, &[], &[])
                        .unwrap()
                })
        };
        let one = run(1);
        assert_eq!(one, run(3));
        // Degenerate statistics give no weights.
        assert!(Importance::from_second_moments(&[], 0.1).is_none());
        assert!(Importance::from_second_moments(&[0.0, 0.0], 0.1).is_none());
        assert!(Importance::from_second_moments(&[1.0, f64::NAN], 0.1).is_none());
        assert!(Importance::from_second_moments(&[1.0, -1.0], 0.1).is_none());
    }

    #[test]
    fn scale_refinement_lowers_error_and_is_thread_independent() {
        let w = gaussian_like(64 * 300 + 17, 5);
        let err = |rounds: u32, bits: u8| {
            let mut o = GsqOptions::new(bits);
            o.scale_rounds = rounds;
            let p = quantize_parts(&w, &o);
            w.iter()
                .zip(p.w_base())
                .map(|(a, b)| (f64::from(*a) - f64::from(b)).powi(2))
                .sum::<f64>()
        };
        for bits in [2, 4, 6] {
            let (plain, one, two) = (err(0, bits), err(1, bits), err(2, bits));
            assert!(one < plain, "bits {bits}: {one} not below {plain}");
            assert!(two <= one * 1.001, "bits {bits}: {two} vs {one}");
        }
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| quantize(&w, &[w.len() as u64], &GsqOptions::new(5)).unwrap().record)
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one, run(8));
    }

    #[test]
    fn code_finder_matches_the_midpoint_rule_exactly() {
        let w = gaussian_like(4000, 9);
        for bits in [1u8, 3, 8] {
            let p = quantize_parts(&w, &GsqOptions::new(bits));
            let search = ScaleSearch::new(&p.grid);
            let (mids, finder) = (&search.mids, CodeFinder::of(&search));
            for (i, &x) in w.iter().enumerate() {
                for s in [f16_to_f32(p.scales[i / 64]), 1e-7, 0.013, 3.0, 65504.0] {
                    let t: Vec<f32> = mids.iter().map(|m| s * m).collect();
                    let want = t.partition_point(|&t| x > t);
                    for probe in [x, s * mids[0], s * mids[mids.len() - 1], -x * 7.0] {
                        let want_p = t.partition_point(|&t| probe > t);
                        assert_eq!(finder.code(probe, s, 1.0 / s), want_p, "bits {bits} x {probe} s {s}");
                    }
                    assert_eq!(finder.code(x, s, 1.0 / s), want);
                }
            }
        }
    }

    #[test]
    fn constant_and_all_zero_tensors_encode() {
        for v in [0f32, 0.25, -3.0] {
            let w = vec![v; 130];
            let q = quantize(&w, &[130], &GsqOptions::new(3)).unwrap();
            let mut out = vec![1f32; 130];
            Record::parse(&q.record).unwrap().decode_into(&mut out).unwrap();
            assert!(out.iter().all(|o| (o - v).abs() <= 1e-3 * v.abs()), "{v}: {out:?}");
        }
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
