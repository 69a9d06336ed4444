//! Error-feedback rounding of GSQ codes against a layer's input statistics (GPTQ, Frantar et al.
//! 2022, in the OBQ form): with the scales and the grid fixed, the codes of a weight matrix
//! `W [rows, cols]` (`y = W x`) are chosen one input column at a time, and each column's rounding
//! error is pushed onto the columns not yet rounded through the inverse of
//! `H = E[x xᵀ] + damp · mean(diag H) · I`, so that `‖(W − Ŵ) X‖` rather than `‖W − Ŵ‖` is made
//! small.
//!
//! Every row is independent given `H⁻¹` (the update of row `i` only touches row `i`), so rows run in
//! parallel and the result does not depend on the thread count; inside a row the order is fixed.
//! Codes are chosen by the same midpoint rule as [`crate::gsq`] (the smallest `j` with
//! `w <= s · mid[j]`, one binary32 multiply), on the updated weight.

use crate::gsq::GsqParts;
use rayon::prelude::*;

/// Relative damping added to the diagonal of `H` (GPTQ's default).
pub const DAMP: f64 = 0.01;

/// Lower Cholesky factor of the symmetric `n × n` matrix `a` (row-major), or `None` when it is not
/// positive definite (in binary64).
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// The upper-triangular `U` with `H⁻¹ = Uᵀ U`, row-major (GPTQ's `Hinv`): from `L = chol(H)`,
/// `L⁻¹`, `H⁻¹ = L⁻ᵀ L⁻¹`, and `U = chol(H⁻¹)ᵀ`.
fn inverse_upper_factor(h: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(h, n)?;
    // L⁻¹ (lower triangular), column by column by forward substitution.
    let mut li = vec![0f64; n * n];
    for c in 0..n {
        li[c * n + c] = 1.0 / l[c * n + c];
        for r in c + 1..n {
            let mut s = 0f64;
            for k in c..r {
                s += l[r * n + k] * li[k * n + c];
            }
            li[r * n + c] = -s / l[r * n + r];
        }
    }
    // H⁻¹ = L⁻ᵀ L⁻¹: entry (i, j) = Σ_{k ≥ max(i, j)} L⁻¹[k, i] · L⁻¹[k, j].
    let mut hi = vec![0f64; n * n];
    hi.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, v) in row.iter_mut().enumerate().skip(i) {
            let mut s = 0f64;
            for k in j..n {
                s += li[k * n + i] * li[k * n + j];
            }
            *v = s;
        }
    });
    for i in 0..n {
        for j in 0..i {
            hi[i * n + j] = hi[j * n + i];
        }
    }
    let m = cholesky(&hi, n)?;
    let mut u = vec![0f64; n * n];
    for i in 0..n {
        for j in i..n {
            u[i * n + j] = m[j * n + i];
        }
    }
    Some(u)
}

/// Replaces the codes of `parts` (a GSQ of `data`, row-major `[rows, cols]`) by error-feedback
/// rounding against `gram` (`E[x xᵀ]`, `cols × cols`, row-major). Returns false, leaving `parts`
/// unchanged, when the shapes disagree or `H` is not positive definite even after damping.
pub fn requantize(data: &[f32], rows: usize, cols: usize, parts: &mut GsqParts, gram: &[f64]) -> bool {
    if rows.checked_mul(cols) != Some(data.len()) || gram.len() != cols * cols || parts.codes.len() != data.len() {
        return false;
    }
    let mean_diag = (0..cols).map(|j| gram[j * cols + j]).sum::<f64>() / cols as f64;
    if !(mean_diag.is_finite() && mean_diag > 0.0) {
        return false;
    }
    let mut h = gram.to_vec();
    for j in 0..cols {
        // Dead inputs (zero variance) get the damping alone, as in GPTQ.
        h[j * cols + j] += DAMP * mean_diag;
    }
    let Some(u) = inverse_upper_factor(&h, cols) else {
        return false;
    };
    let eff = parts.effective_scales();
    let unit = parts.unit();
    let grid = parts.grid.clone();
    let mids: Vec<f32> = grid.windows(2).map(|p| 0.5 * p[0] + 0.5 * p[1]).collect();
    parts
        .codes
        .par_chunks_mut(cols)
        .zip(data.par_chunks(cols))
        .enumerate()
        .for_each(|(i, (codes, w))| {
            let mut r: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
            for j in 0..cols {
                let s = eff[(i * cols + j) / unit];
                let x = r[j] as f32;
                let c = mids.partition_point(|&m| x > s * m);
                codes[j] = c as u8;
                let q = f64::from(s * grid[c]);
                let e = (r[j] - q) / u[j * cols + j];
                let uj = &u[j * cols..(j + 1) * cols];
                for (rk, &ujk) in r[j + 1..].iter_mut().zip(&uj[j + 1..]) {
                    *rk -= e * ujk;
                }
            }
        });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gsq::{GsqOptions, SubScales, quantize_parts};

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    /// ‖(W − Ŵ) Xᵀ‖² for inputs `x [m, cols]`.
    fn output_err(w: &[f32], wq: &[f32], x: &[f64], rows: usize, cols: usize) -> f64 {
        let m = x.len() / cols;
        let mut e = 0f64;
        for t in 0..m {
            for i in 0..rows {
                let mut s = 0f64;
                for j in 0..cols {
                    s += (f64::from(w[i * cols + j]) - f64::from(wq[i * cols + j])) * x[t * cols + j];
                }
                e += s * s;
            }
        }
        e
    }

    #[test]
    fn error_feedback_lowers_the_output_error_and_is_thread_independent() {
        let (rows, cols, m) = (48, 64, 512);
        let mut u = rng(3);
        let w: Vec<f32> = (0..rows * cols).map(|_| u() as f32).collect();
        // Correlated inputs with uneven variances: where GPTQ differs from rounding to nearest.
        let mut x = vec![0f64; m * cols];
        for t in 0..m {
            let common = u();
            for j in 0..cols {
                x[t * cols + j] = (0.3 + j as f64 / cols as f64) * u() + 0.8 * common;
            }
        }
        let mut gram = vec![0f64; cols * cols];
        for t in 0..m {
            for a in 0..cols {
                for b in 0..cols {
                    gram[a * cols + b] += x[t * cols + a] * x[t * cols + b] / m as f64;
                }
            }
        }
        for sub in [None, Some(SubScales { block: 16, bits: 6 })] {
            let opts = GsqOptions::new(3).with_subscales(sub);
            let plain = quantize_parts(&w, &opts);
            let mut fed = plain.clone();
            assert!(requantize(&w, rows, cols, &mut fed, &gram));
            let (e0, e1) = (
                output_err(&w, &plain.w_base(), &x, rows, cols),
                output_err(&w, &fed.w_base(), &x, rows, cols),
            );
            assert!(e1 < 0.8 * e0, "{sub:?}: GPTQ {e1} vs nearest {e0}");
            let run = |threads: usize| {
                let mut p = plain.clone();
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| requantize(&w, rows, cols, &mut p, &gram));
                p.codes
            };
            assert_eq!(run(1), fed.codes);
            assert_eq!(run(3), fed.codes);
        }
        // Bad shapes or an indefinite H leave the codes alone.
        let mut p = quantize_parts(&w, &GsqOptions::new(3));
        let before = p.codes.clone();
        assert!(!requantize(&w, rows, cols + 1, &mut p, &gram));
        assert!(!requantize(&w, rows, cols, &mut p, &vec![0f64; cols * cols]));
        let mut neg = gram.clone();
        neg[0] = -1e9;
        assert!(!requantize(&w, rows, cols, &mut p, &neg));
        assert_eq!(p.codes, before);
    }
}
