//! Research simulation (no format change): GSQ with a per-sub-block *offset*, the affine form of
//! the k-quants, in uc's two-level scale representation.
//!
//! Reconstruction, in binary32 with round-to-nearest-even at each step:
//!
//! ```text
//! W[i] = RNE( RNE(e_t * grid[code(i)]) - m_t )
//! e_t  = f32(d_j)    * sc_t     (binary16 per 256 weights x q-bit unsigned per S weights; exact)
//! m_t  = f32(dmin_j) * mo_t     (binary16 per 256 weights x q_m-bit unsigned per S weights; exact)
//! ```
//!
//! Grid: `Uniform` = the integers 0..2^b-1 (Q4_K-like `d*q - m`), or `Learned` = weighted 1-D
//! k-means (weights e_t^2) over `(w + m_t) / e_t` of a first uniform pass, then every scale and
//! offset searched again against the learned grid.
//!
//! Per sub-block: continuous (e, m) from min/max, then alternating least squares (codes
//! reassigned to the nearest grid value each time); per 256 block the least binary16 d (dmin) that
//! lets the largest wanted e (m) fit in q (q_m) bits; per sub-block the integer (sc, mo) pair with
//! the lowest exact squared error among the 3x3 neighbourhood of the rounded continuous optimum,
//! then two least-squares steps from the best codes (strict improvements only). Codes are the
//! nearest reconstruction value (exact check of the neighbours of the guessed index).
//!
//! Stored bits (counted as a record would): 256-byte header, 4 * 2^b grid bytes, codes
//! ceil(n*b/8) bytes, 2 binary16 per 256 weights, ceil(nsub*q/8) + ceil(nsub*q_m/8) bytes.

use rayon::prelude::*;
use uc_format::num::{f16_to_f32, f32_to_f16_bits};

const F16_MAX: f32 = 65504.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layout {
    pub b: u8,
    pub s: usize,
    pub q: u8,
    pub qm: u8,
}

impl Layout {
    pub fn name(&self) -> String {
        format!("b{}s{}q{}m{}", self.b, self.s, self.q, self.qm)
    }
    /// Nominal bits per weight (no header or grid).
    pub fn nominal_bpw(&self) -> f64 {
        f64::from(self.b) + 32.0 / 256.0 + f64::from(self.q + self.qm) / self.s as f64
    }
    pub fn cost_bits(&self, n: usize) -> u64 {
        let nblk = n.div_ceil(256) as u64;
        let nsub = n.div_ceil(self.s) as u64;
        let bytes = 256
            + 4 * (1u64 << self.b)
            + (n as u64 * u64::from(self.b)).div_ceil(8)
            + nblk * 4
            + (nsub * u64::from(self.q)).div_ceil(8)
            + (nsub * u64::from(self.qm)).div_ceil(8);
        bytes * 8
    }
}

/// Continuous per-sub-block fit: (e, m) with w ~ e*g - m, m >= 0, e >= 0.
fn nearest_idx(grid: &[f32], mids: &[f32], x: f32, uniform: bool) -> usize {
    if uniform {
        let k = grid.len() as f32 - 1.0;
        x.round().clamp(0.0, k) as usize
    } else {
        mids.partition_point(|&m| x > m)
    }
}

/// Exact code and reconstruction for weight w at (e, m).
#[inline]
fn code_of(w: f32, e: f32, m: f32, inv_e: f32, grid: &[f32], mids: &[f32], uniform: bool) -> (usize, f32) {
    if e == 0.0 {
        return (0, (e * grid[0]) - m);
    }
    let c0 = nearest_idx(grid, mids, (w + m) * inv_e, uniform);
    let mut best = c0;
    let mut br = (e * grid[c0]) - m;
    let mut bd = (w - br).abs();
    let lo = c0.saturating_sub(1);
    let hi = (c0 + 1).min(grid.len() - 1);
    for c in lo..=hi {
        if c == c0 {
            continue;
        }
        let r = (e * grid[c]) - m;
        let d = (w - r).abs();
        if d < bd || (d == bd && c < best) {
            best = c;
            br = r;
            bd = d;
        }
    }
    (best, br)
}

fn sub_error(w: &[f32], e: f32, m: f32, grid: &[f32], mids: &[f32], uniform: bool, codes: &mut [u8]) -> f64 {
    let inv_e = if e > 0.0 { 1.0 / e } else { 0.0 };
    let mut err = 0f64;
    for (k, &x) in w.iter().enumerate() {
        let (c, r) = code_of(x, e, m, inv_e, grid, mids, uniform);
        codes[k] = c as u8;
        let d = f64::from(x) - f64::from(r);
        err += d * d;
    }
    err
}

/// Least squares of w on [g_c, -1]: (e, m), with m clamped at 0.
fn ls_em(w: &[f32], codes: &[u8], grid: &[f32]) -> Option<(f32, f32)> {
    let n = w.len() as f64;
    let (mut sg, mut sgg, mut sw, mut swg) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &c) in w.iter().zip(codes) {
        let g = f64::from(grid[usize::from(c)]);
        let x = f64::from(x);
        sg += g;
        sgg += g * g;
        sw += x;
        swg += x * g;
    }
    let det = n * sgg - sg * sg;
    let (mut e, mut m);
    if det > 0.0 {
        e = (n * swg - sg * sw) / det;
        m = -(sw - e * sg) / n;
    } else {
        return None;
    }
    if m < 0.0 {
        m = 0.0;
        if sgg <= 0.0 {
            return None;
        }
        e = swg / sgg;
    }
    (e > 0.0 && e.is_finite() && m.is_finite()).then_some((e as f32, m as f32))
}

/// Continuous (unquantized) e, m per sub-block.
fn continuous(w: &[f32], grid: &[f32], mids: &[f32], uniform: bool) -> (f32, f32) {
    let lo = w.iter().fold(f32::INFINITY, |a, &x| a.min(x));
    let hi = w.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    let (gmin, gmax) = (grid[0], grid[grid.len() - 1]);
    let mut codes = [0u8; 32];
    let codes = &mut codes[..w.len()];
    // Candidate starts: min/max, and the range shrunk a little (the ends are rarely worth a level).
    let mut best = (0f32, (-lo).max(0.0));
    let mut best_err = sub_error(w, best.0, best.1, grid, mids, uniform, codes);
    if hi <= lo || gmax <= gmin {
        return best;
    }
    for shrink in [1.0f32, 0.9, 0.8] {
        let lo_s = if lo < 0.0 { lo * shrink } else { lo };
        let hi_s = hi * shrink;
        let mut e = (hi_s - lo_s).max(hi - lo) / (gmax - gmin);
        if shrink != 1.0 {
            e = (hi_s - lo_s) / (gmax - gmin);
        }
        let mut m = (e * gmin - lo_s).max(0.0);
        if e <= 0.0 {
            continue;
        }
        for _ in 0..4 {
            let err = sub_error(w, e, m, grid, mids, uniform, codes);
            if err < best_err {
                best_err = err;
                best = (e, m);
            }
            match ls_em(w, codes, grid) {
                Some((e2, m2)) if (e2, m2) != (e, m) => {
                    e = e2;
                    m = m2;
                }
                _ => break,
            }
        }
        let err = sub_error(w, e, m, grid, mids, uniform, codes);
        if err < best_err {
            best_err = err;
            best = (e, m);
        }
    }
    best
}

/// Least binary16 d with d * qmax >= want (0 when want <= 0).
fn block_scale_for(want: f32, qmax: f32) -> u16 {
    if want <= 0.0 {
        return 0;
    }
    let target = (want / qmax).min(F16_MAX);
    let mut h = f32_to_f16_bits(target).max(1);
    while f16_to_f32(h) * qmax < want && f16_to_f32(h) < F16_MAX {
        h += 1;
    }
    h
}

/// Continuous fits of one (b, S, grid): one (e, m) per sub-block.
pub fn continuous_fits(data: &[f32], s: usize, grid: &[f32], uniform: bool) -> Vec<(f32, f32)> {
    let mids: Vec<f32> = grid.windows(2).map(|p| 0.5 * p[0] + 0.5 * p[1]).collect();
    data.par_chunks(s)
        .map(|w| continuous(w, grid, &mids, uniform))
        .collect()
}

/// Result of quantizing a tensor at one layout.
pub struct Quantized {
    pub err2: f64,
    /// Per sub-block (e_t, m_t) exact values, for the learned grid fit.
    pub em: Vec<(f32, f32)>,
}

/// Quantize at layout `l` with the given grid and continuous fits; returns the exact squared error.
pub fn quantize(data: &[f32], l: Layout, grid: &[f32], uniform: bool, cont: &[(f32, f32)]) -> Quantized {
    let mids: Vec<f32> = grid.windows(2).map(|p| 0.5 * p[0] + 0.5 * p[1]).collect();
    let s = l.s;
    let per = 256 / s;
    let qmax = ((1u32 << l.q) - 1) as f32;
    let mmax = ((1u32 << l.qm) - 1) as f32;
    let res: Vec<(f64, Vec<(f32, f32)>)> = data
        .par_chunks(256)
        .zip(cont.par_chunks(per))
        .map(|(wb, cb)| {
            let emax = cb.iter().fold(0f32, |a, p| a.max(p.0));
            let mxx = cb.iter().fold(0f32, |a, p| a.max(p.1));
            let d = f16_to_f32(block_scale_for(emax, qmax));
            let dm = f16_to_f32(block_scale_for(mxx, mmax));
            let mut err = 0f64;
            let mut em = Vec::with_capacity(cb.len());
            let mut codes = [0u8; 32];
            let mut bcodes = [0u8; 32];
            for (w, &(ce, cm)) in wb.chunks(s).zip(cb) {
                let codes = &mut codes[..w.len()];
                let bcodes = &mut bcodes[..w.len()];
                let rs = |x: f32, dd: f32, mx: f32| {
                    if dd > 0.0 {
                        (x / dd).round().clamp(0.0, mx) as i32
                    } else {
                        0
                    }
                };
                let (sc0, mo0) = (rs(ce, d, qmax), rs(cm, dm, mmax));
                let mut best = (sc0, mo0);
                let ev = |sc: i32, mo: i32, codes: &mut [u8]| {
                    sub_error(w, d * sc as f32, dm * mo as f32, grid, &mids, uniform, codes)
                };
                let mut best_err = ev(sc0, mo0, bcodes);
                for dsc in -1..=1 {
                    for dmo in -1..=1 {
                        let (sc, mo) = (sc0 + dsc, mo0 + dmo);
                        if (dsc, dmo) == (0, 0) || sc < 0 || mo < 0 || sc as f32 > qmax || mo as f32 > mmax {
                            continue;
                        }
                        let e = ev(sc, mo, codes);
                        if e < best_err {
                            best_err = e;
                            best = (sc, mo);
                            bcodes.copy_from_slice(codes);
                        }
                    }
                }
                for _ in 0..2 {
                    let Some((e, m)) = ls_em(w, bcodes, grid) else { break };
                    let cand = (rs(e, d, qmax), rs(m, dm, mmax));
                    if cand == best {
                        break;
                    }
                    let er = ev(cand.0, cand.1, codes);
                    if er < best_err {
                        best_err = er;
                        best = cand;
                        bcodes.copy_from_slice(codes);
                    } else {
                        break;
                    }
                }
                err += best_err;
                em.push((d * best.0 as f32, dm * best.1 as f32));
            }
            (err, em)
        })
        .collect();
    let err2 = res.iter().map(|r| r.0).sum();
    let em = res.into_iter().flat_map(|r| r.1).collect();
    Quantized { err2, em }
}

/// Weighted Lloyd (weights e^2) over x = (w + m)/e, starting from `init` (sorted), on a
/// subsample of at most 2^21 values.
pub fn learn_grid(data: &[f32], s: usize, em: &[(f32, f32)], init: &[f32]) -> Vec<f32> {
    let n = data.len();
    let mtr = n.min(1 << 21);
    let mut xw: Vec<(f32, f32)> = (0..mtr)
        .into_par_iter()
        .filter_map(|t| {
            let i = (t as u128 * n as u128 / mtr as u128) as usize;
            let (e, m) = em[i / s];
            (e > 0.0).then(|| ((data[i] + m) / e, e * e))
        })
        .collect();
    xw.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let xs: Vec<f32> = xw.iter().map(|p| p.0).collect();
    let mut pw = vec![0f64];
    let mut pwx = vec![0f64];
    let (mut a, mut b) = (0f64, 0f64);
    for &(x, w) in &xw {
        a += f64::from(w);
        b += f64::from(w) * f64::from(x);
        pw.push(a);
        pwx.push(b);
    }
    let k = init.len();
    let mut c: Vec<f64> = init.iter().map(|&v| f64::from(v)).collect();
    let m = xs.len();
    let mut bounds = vec![0usize; k + 1];
    for _ in 0..100 {
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
        c.sort_by(f64::total_cmp);
    }
    c.into_iter().map(|v| v as f32).collect()
}

/// Uniform grid 0..2^b-1.
pub fn uniform_grid(b: u8) -> Vec<f32> {
    (0..(1u32 << b)).map(|v| v as f32).collect()
}

/// Reconstruction error of a whole tensor for one layout, uniform grid, plus (optionally) a
/// learned-grid second pass. Returns (uniform err2, learned err2).
#[allow(dead_code)]
pub fn eval(data: &[f32], l: Layout, learned: bool) -> (f64, Option<f64>) {
    let g = uniform_grid(l.b);
    let cont = continuous_fits(data, l.s, &g, true);
    let qu = quantize(data, l, &g, true, &cont);
    if !learned {
        return (qu.err2, None);
    }
    let g2 = learn_grid(data, l.s, &qu.em, &g);
    let cont2 = continuous_fits(data, l.s, &g2, false);
    let ql = quantize(data, l, &g2, false, &cont2);
    (qu.err2, Some(ql.err2))
}
