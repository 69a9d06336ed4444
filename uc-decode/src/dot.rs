//! Row dot products against the reconstruction, for inference straight from a record
//! (`y = Ŵ·x` of a linear layer whose weight `Ŵ` is `[rows, cols]`).
//!
//! The result is defined exactly, so that every path returns the same bits and a runtime gets the
//! same logits on every machine: `W_base[r, c]` is the decoded value of R-7.1 (one rounded multiply,
//! bit for bit what [`Record::decode_into`] writes), and the dot product of row `r` with `x` is
//! computed in [`LANES`] binary32 partial sums, each starting at `+0.0`: for `c` in increasing
//! order, `lane[c % LANES] = lane[c % LANES] + W_base[r, c] * x[c]`, the product and the sum each
//! rounded to nearest even (no fused multiply-add); then the lanes are folded in halves,
//! `lane[j] = lane[j] + lane[j + h]` for `j < h`, with `h` = 16, 8, 4, 2, 1, and the result is
//! `lane[0]`. Its error against the exact sum is at most about `(cols / 32 + 6) · 2⁻²⁴ · Σ|W x|`,
//! a bound the tests check against an f64 reference.
//!
//! The kernels decode a row a chunk at a time into a stack buffer that stays in L1 (the
//! reconstruction itself never reaches memory) and accumulate the chunk into the lanes. The
//! overlay is not included: a caller with `r > 0` adds `U·(V·x)`, which costs `r·(rows + cols)`
//! multiplies instead of the merged matrix's `rows·cols`.

use crate::{DecodeError, Path, Record, kernels};
use core::ops::Range;

/// Number of partial sums of a row's dot product (see the module documentation).
pub const LANES: usize = 32;

/// Elements decoded at a time into the stack buffer: a multiple of [`LANES`] and of the 256-element
/// blocks of two-level scales, small enough to stay in L1 (1 KiB).
const CHUNK: usize = 256;

/// `lane[j] += w[j] * x[j]` over one chunk (any length; element `k` goes to lane `k % LANES`,
/// which equals `c % LANES` because chunks start at multiples of [`LANES`] within the row).
#[inline(always)]
fn accumulate(lanes: &mut [f32; LANES], w: &[f32], x: &[f32]) {
    let mut wc = w.chunks_exact(LANES);
    let mut xc = x.chunks_exact(LANES);
    for (wb, xb) in (&mut wc).zip(&mut xc) {
        for j in 0..LANES {
            lanes[j] += wb[j] * xb[j];
        }
    }
    for (j, (a, b)) in wc.remainder().iter().zip(xc.remainder()).enumerate() {
        lanes[j] += a * b;
    }
}

/// The fold of the module documentation.
#[inline(always)]
pub(crate) fn fold(mut lanes: [f32; LANES]) -> f32 {
    let mut h = LANES / 2;
    while h > 0 {
        for j in 0..h {
            lanes[j] += lanes[j + h];
        }
        h /= 2;
    }
    lanes[0]
}

/// The dot product of `w` and `x` (equal lengths) in the order of the module documentation: what
/// [`Record::dot_rows`] returns for a row whose reconstruction is `w`, bit for bit. A runtime that
/// holds some weights unpacked uses it to get the same results from them.
pub fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    #[cfg(target_arch = "x86_64")]
    if kernels::avx2_available() {
        #[allow(unsafe_code)]
        // SAFETY: AVX2 availability was checked just above.
        unsafe {
            avx2::acc(&mut lanes, w, x)
        };
        return fold(lanes);
    }
    accumulate(&mut lanes, w, x);
    fold(lanes)
}

/// The dot products of rows `rows` with `x` through `decode` (a decode path of the crate), chunk by
/// chunk; the ranges were checked by the caller.
#[inline(always)]
fn rows_with(
    rec: &Record<'_>,
    rows: Range<u64>,
    x: &[f32],
    y: &mut [f32],
    decode: impl Fn(&Record<'_>, u64, &mut [f32]),
    acc: impl Fn(&mut [f32; LANES], &[f32], &[f32]),
) {
    let cols = x.len();
    let mut buf = [0f32; CHUNK];
    for (r, out) in rows.zip(y.iter_mut()) {
        let first = r * cols as u64;
        let mut lanes = [0f32; LANES];
        for c0 in (0..cols).step_by(CHUNK) {
            let take = CHUNK.min(cols - c0);
            decode(rec, first + c0 as u64, &mut buf[..take]);
            acc(&mut lanes, &buf[..take], &x[c0..c0 + take]);
        }
        *out = fold(lanes);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    //! SAFETY (module-wide): the one function here is `#[target_feature(enable = "avx2")]` and is
    //! only called after `avx2_available()` returned true; it does no memory access of its own
    //! beyond safe slice indexing. The feature lets the compiler keep the 32 lanes in four 8-lane
    //! registers; every operation is still a separately rounded binary32 multiply or add.
    use super::{LANES, accumulate};

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn acc(lanes: &mut [f32; LANES], w: &[f32], x: &[f32]) {
        accumulate(lanes, w, x)
    }
}

impl Record<'_> {
    /// `y[k] = Σ_c W_base[rows.start + k, c] · x[c]` for every row in `rows` (along dim 0), in the
    /// summation order of the [module documentation](crate::dot), with the fastest path; `x` must
    /// hold [`Record::cols`] values and `y` one value per row. The overlay is not included.
    pub fn dot_rows(&self, rows: Range<u64>, x: &[f32], y: &mut [f32]) -> Result<(), DecodeError> {
        self.dot_rows_with(Path::Auto, rows, x, y)
    }

    /// [`Record::dot_rows`] through a chosen path; every path returns the same bits.
    pub fn dot_rows_with(&self, path: Path, rows: Range<u64>, x: &[f32], y: &mut [f32]) -> Result<(), DecodeError> {
        if rows.start > rows.end || rows.end > self.layout.rows {
            return Err(DecodeError::OutOfRange {
                start: rows.start,
                end: rows.end,
                len: self.layout.rows,
            });
        }
        if x.len() as u64 != self.layout.cols {
            return Err(DecodeError::OutputLength {
                expected: self.layout.cols,
                got: x.len(),
            });
        }
        if y.len() as u64 != rows.end - rows.start {
            return Err(DecodeError::OutputLength {
                expected: rows.end - rows.start,
                got: y.len(),
            });
        }
        match path.resolve(self.bits()) {
            Path::Scalar => rows_with(self, rows, x, y, kernels::decode_scalar, accumulate),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 if kernels::dot_rows_fused(self, rows.start, x, y) => {}
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 if kernels::avx2_available() => {
                #[allow(unsafe_code)]
                fn acc(lanes: &mut [f32; LANES], w: &[f32], x: &[f32]) {
                    // SAFETY: AVX2 availability was checked by the match guard.
                    unsafe { avx2::acc(lanes, w, x) }
                }
                rows_with(self, rows, x, y, |r, s, o| kernels::decode_blocks(r, s, o, true), acc)
            }
            _ => rows_with(
                self,
                rows,
                x,
                y,
                |r, s, o| kernels::decode_blocks(r, s, o, false),
                accumulate,
            ),
        }
        Ok(())
    }
}
