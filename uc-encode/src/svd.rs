//! Deterministic randomized truncated SVD of a residual matrix, for the low-rank overlay.
//!
//! Halko–Martinsson–Tropp: `Y = R Ω` with a seeded Gaussian `Ω` (`n × k`, `k = r + 8`), one power
//! iteration `Y = R (Rᵀ Q)` with re-orthonormalisation, `B = Qᵀ R`, then the small eigenproblem of
//! `B Bᵀ` (cyclic Jacobi). All arithmetic is f64 with every sum taken in a fixed order, and work is
//! split over threads by output rows only, so the result is bit-identical for any thread count.

use rayon::prelude::*;

/// A rank-`r` factorisation `R ≈ U V` with `U` `[m, r]` and `V` `[r, n]`, row-major f32, the
/// singular values split evenly (`U = Q_r √Σ`, `V = √Σ Pᵀ`), and the singular values themselves.
#[derive(Debug, Clone)]
pub struct LowRank {
    /// Rank actually computed (≤ the requested rank, ≤ min(m, n)).
    pub rank: usize,
    /// `[m, rank]` row-major.
    pub u: Vec<f32>,
    /// `[rank, n]` row-major.
    pub v: Vec<f32>,
    /// Estimated singular values, descending.
    pub sigma: Vec<f64>,
}

struct Gauss(u64);

impl Gauss {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f64 {
        let (a, b) = (self.unit(), self.unit());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// `Y = R X`: `R` `[m, n]` (f32), `X` `[n, k]` (f64) → `[m, k]`.
fn r_times(r: &[f32], m: usize, n: usize, x: &[f64], k: usize) -> Vec<f64> {
    let mut y = vec![0f64; m * k];
    y.par_chunks_mut(k).enumerate().for_each(|(i, yi)| {
        let row = &r[i * n..(i + 1) * n];
        for (j, &rij) in row.iter().enumerate() {
            let rij = f64::from(rij);
            let xj = &x[j * k..(j + 1) * k];
            for (a, &b) in yi.iter_mut().zip(xj) {
                *a += rij * b;
            }
        }
    });
    y
}

/// `Z = Rᵀ Q`: `R` `[m, n]`, `Q` `[m, k]` → `[n, k]`. Rows of `Z` are split over threads in
/// fixed blocks of columns of `R`; each sums over `i` in order.
fn rt_times(r: &[f32], m: usize, n: usize, q: &[f64], k: usize) -> Vec<f64> {
    const CB: usize = 64;
    let mut z = vec![0f64; n * k];
    z.par_chunks_mut(CB * k).enumerate().for_each(|(cb, zc)| {
        let j0 = cb * CB;
        let jn = zc.len() / k;
        for i in 0..m {
            let qi = &q[i * k..(i + 1) * k];
            let row = &r[i * n + j0..i * n + j0 + jn];
            for (jj, &rij) in row.iter().enumerate() {
                let rij = f64::from(rij);
                for (a, &b) in zc[jj * k..(jj + 1) * k].iter_mut().zip(qi) {
                    *a += rij * b;
                }
            }
        }
    });
    z
}

/// Orthonormalises the `k` columns of `a` (`[rows, k]` row-major) in place by modified
/// Gram–Schmidt, twice. Columns that vanish become zero. Returns the number of non-zero columns.
fn orthonormalize(a: &mut [f64], rows: usize, k: usize) -> usize {
    let mut live = 0;
    for pass in 0..2 {
        live = 0;
        for c in 0..k {
            for p in 0..c {
                let dot: f64 = (0..rows).map(|i| a[i * k + p] * a[i * k + c]).sum();
                for i in 0..rows {
                    a[i * k + c] -= dot * a[i * k + p];
                }
            }
            let norm: f64 = (0..rows).map(|i| a[i * k + c] * a[i * k + c]).sum::<f64>().sqrt();
            if norm > 1e-300 && (pass == 0 || norm > 1e-8) {
                for i in 0..rows {
                    a[i * k + c] /= norm;
                }
                live += 1;
            } else {
                for i in 0..rows {
                    a[i * k + c] = 0.0;
                }
            }
        }
    }
    live
}

/// Eigen-decomposition of a symmetric `k × k` matrix by cyclic Jacobi: returns eigenvalues and
/// eigenvectors (columns of the returned row-major matrix), sorted by descending eigenvalue.
fn sym_eigen(mut a: Vec<f64>, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * k + j].powi(2))
            .sum();
        let diag: f64 = (0..k).map(|i| a[i * k + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for i in 0..k {
                    let (aip, aiq) = (a[i * k + p], a[i * k + q]);
                    a[i * k + p] = c * aip - s * aiq;
                    a[i * k + q] = s * aip + c * aiq;
                }
                for j in 0..k {
                    let (apj, aqj) = (a[p * k + j], a[q * k + j]);
                    a[p * k + j] = c * apj - s * aqj;
                    a[q * k + j] = s * apj + c * aqj;
                }
                for i in 0..k {
                    let (vip, viq) = (v[i * k + p], v[i * k + q]);
                    v[i * k + p] = c * vip - s * viq;
                    v[i * k + q] = s * vip + c * viq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| a[y * k + y].total_cmp(&a[x * k + x]).then(x.cmp(&y)));
    let vals = order.iter().map(|&i| a[i * k + i]).collect();
    let mut vecs = vec![0f64; k * k];
    for (new, &old) in order.iter().enumerate() {
        for i in 0..k {
            vecs[i * k + new] = v[i * k + old];
        }
    }
    (vals, vecs)
}

/// The two large products of the randomized SVD, over one `[m, n]` residual that the
/// implementation holds: [`CpuSvd`] is the reference; `uc-cuda` runs them as CUDA kernels (each
/// output element one sum in the same fixed order, so the bits are the CPU's). The rest of
/// [`low_rank_on`] (Gram–Schmidt, the small eigenproblem, the factors) runs on the host.
pub trait SvdKernels {
    /// Why a product failed; [`core::convert::Infallible`] on the CPU.
    type Error;
    /// `Y = R X`: `X` `[n, k]` → `[m, k]`, each `y[i][t]` summed over `j` in order.
    fn r_times(&mut self, x: &[f64], k: usize) -> Result<Vec<f64>, Self::Error>;
    /// `Z = Rᵀ Q`: `Q` `[m, k]` → `[n, k]`, each `z[j][t]` summed over `i` in order.
    fn rt_times(&mut self, q: &[f64], k: usize) -> Result<Vec<f64>, Self::Error>;
}

/// The reference [`SvdKernels`] on the CPU's cores.
#[derive(Debug, Clone, Copy)]
pub struct CpuSvd<'a> {
    /// The residual, `[m, n]` row-major.
    pub r: &'a [f32],
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
}

impl SvdKernels for CpuSvd<'_> {
    type Error = core::convert::Infallible;

    fn r_times(&mut self, x: &[f64], k: usize) -> Result<Vec<f64>, Self::Error> {
        Ok(r_times(self.r, self.m, self.n, x, k))
    }

    fn rt_times(&mut self, q: &[f64], k: usize) -> Result<Vec<f64>, Self::Error> {
        Ok(rt_times(self.r, self.m, self.n, q, k))
    }
}

/// Rank-`rank` approximation of `r` (`[m, n]` row-major). Deterministic in `seed`.
pub fn low_rank(r: &[f32], m: usize, n: usize, rank: usize, seed: u64) -> LowRank {
    let Ok(lr) = low_rank_on(&mut CpuSvd { r, m, n }, m, n, rank, seed);
    lr
}

/// [`low_rank`] of the `[m, n]` residual that `kr` holds, its two large products on `kr`.
pub fn low_rank_on<K: SvdKernels>(kr: &mut K, m: usize, n: usize, rank: usize, seed: u64) -> Result<LowRank, K::Error> {
    let rank = rank.min(m).min(n);
    if rank == 0 {
        return Ok(LowRank {
            rank: 0,
            u: Vec::new(),
            v: Vec::new(),
            sigma: Vec::new(),
        });
    }
    let k = (rank + 8).min(m).min(n);
    let mut g = Gauss(seed ^ 0x9e37_79b9_7f4a_7c15 | 1);
    let omega: Vec<f64> = (0..n * k).map(|_| g.next()).collect();
    let mut q = kr.r_times(&omega, k)?;
    orthonormalize(&mut q, m, k);
    // One power iteration sharpens the spectrum estimate for slowly decaying residual spectra.
    let mut z = kr.rt_times(&q, k)?;
    orthonormalize(&mut z, n, k);
    q = kr.r_times(&z, k)?;
    orthonormalize(&mut q, m, k);
    // Bᵀ = Rᵀ Q ([n, k]); G = B Bᵀ = (Bᵀ)ᵀ Bᵀ ([k, k]).
    let bt = kr.rt_times(&q, k)?;
    let mut gram = vec![0f64; k * k];
    for a in 0..k {
        for b in a..k {
            let s: f64 = (0..n).map(|j| bt[j * k + a] * bt[j * k + b]).sum();
            gram[a * k + b] = s;
            gram[b * k + a] = s;
        }
    }
    let (vals, w) = sym_eigen(gram, k);
    let sigma: Vec<f64> = vals.iter().map(|&l| l.max(0.0).sqrt()).collect();
    // Left vectors: Q W; right vectors: Bᵀ W / σ. U = Q W √σ, V = (Bᵀ W / √σ)ᵀ.
    let mut u = vec![0f32; m * rank];
    let mut v = vec![0f32; rank * n];
    for t in 0..rank {
        let s = sigma[t];
        if s <= 0.0 {
            continue;
        }
        let rs = s.sqrt();
        for i in 0..m {
            let x: f64 = (0..k).map(|c| q[i * k + c] * w[c * k + t]).sum();
            u[i * rank + t] = (x * rs) as f32;
        }
        for j in 0..n {
            let x: f64 = (0..k).map(|c| bt[j * k + c] * w[c * k + t]).sum();
            v[t * n + j] = (x / rs) as f32;
        }
    }
    Ok(LowRank {
        rank,
        u,
        v,
        sigma: sigma[..rank].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(u: &[f32], v: &[f32], m: usize, r: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for t in 0..r {
                for j in 0..n {
                    out[i * n + j] += f64::from(u[i * r + t]) * f64::from(v[t * n + j]);
                }
            }
        }
        out
    }

    #[test]
    fn recovers_an_exact_low_rank_matrix() {
        let (m, n, r) = (60, 90, 5);
        let mut g = Gauss(42);
        let a: Vec<f32> = (0..m * r).map(|_| g.next() as f32).collect();
        let b: Vec<f32> = (0..r * n).map(|_| g.next() as f32).collect();
        let x: Vec<f32> = matmul(&a, &b, m, r, n).iter().map(|&v| v as f32).collect();
        let lr = low_rank(&x, m, n, r, 7);
        let y = matmul(&lr.u, &lr.v, m, r, n);
        let err: f64 = x.iter().zip(&y).map(|(a, b)| (f64::from(*a) - b).powi(2)).sum();
        let norm: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
        assert!((err / norm).sqrt() < 1e-5, "rel err {}", (err / norm).sqrt());
        // Frobenius norm = sqrt(sum sigma^2) for an exact rank-r matrix.
        let s2: f64 = lr.sigma.iter().map(|s| s * s).sum();
        assert!((s2 / norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let (m, n) = (130, 70);
        let mut g = Gauss(3);
        let x: Vec<f32> = (0..m * n).map(|_| g.next() as f32).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| low_rank(&x, m, n, 12, 99))
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(
            a.u.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.u.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            a.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // The top singular values of a random matrix: rank-12 error is below the full norm.
        let y = matmul(&a.u, &a.v, m, 12, n);
        let err: f64 = x.iter().zip(&y).map(|(p, q)| (f64::from(*p) - q).powi(2)).sum();
        let norm: f64 = x.iter().map(|p| f64::from(*p).powi(2)).sum();
        let s2: f64 = a.sigma.iter().map(|s| s * s).sum();
        assert!(err < norm);
        assert!(
            ((norm - s2) - err).abs() / norm < 0.02,
            "err {err} vs norm - s2 {}",
            norm - s2
        );
    }
}
