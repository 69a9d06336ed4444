//! Bit allocation: choose one (bits, rank) candidate per tensor so that the whole model meets a
//! bits-per-weight budget with the least total error.
//!
//! Objective: minimise `Σ_t n_t · err2_t / ‖W_t‖²`, the size-weighted sum of squared relative
//! errors (each tensor's relative error counts in proportion to its number of weights, so large and
//! small-magnitude tensors are treated alike), subject to `Σ_t cost_bits_t ≤ bpw · Σ_t n_t`, where
//! cost counts every stored bit of the record. Method: Lagrangian relaxation (bisection on the
//! multiplier) followed by greedy upgrades by best error reduction per bit. Deterministic: ties go
//! to the cheaper candidate, then to the earlier one.

use crate::tensor::Candidate;
use core::fmt;

/// The candidates of one tensor.
#[derive(Debug, Clone)]
pub struct TensorCandidates {
    /// Number of weights.
    pub n: u64,
    /// `‖W‖²`.
    pub norm2: f64,
    /// The choices (non-empty).
    pub candidates: Vec<Candidate>,
}

/// The budget cannot be met.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetError {
    /// Requested bits per weight.
    pub requested: f64,
    /// Smallest achievable with the allowed bit widths and ranks.
    pub minimum: f64,
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a budget of {:.3} bits per weight cannot be met: the smallest allowed encoding of these tensors \
             takes {:.3} (raise --bpw to at least that, or keep more tensors verbatim with --skip)",
            self.requested, self.minimum
        )
    }
}

impl std::error::Error for BudgetError {}

fn weight(t: &TensorCandidates) -> f64 {
    if t.norm2 > 0.0 { t.n as f64 / t.norm2 } else { 0.0 }
}

/// Index of the best candidate for multiplier `lambda`.
fn best(t: &TensorCandidates, lambda: f64) -> usize {
    let w = weight(t);
    let mut bi = 0;
    for (i, c) in t.candidates.iter().enumerate().skip(1) {
        let b = &t.candidates[bi];
        let (vc, vb) = (
            w * c.err2 + lambda * c.cost_bits as f64,
            w * b.err2 + lambda * b.cost_bits as f64,
        );
        if vc < vb || (vc == vb && c.cost_bits < b.cost_bits) {
            bi = i;
        }
    }
    bi
}

/// Chooses one candidate index per tensor within `bpw` bits per weight over all tensors.
pub fn allocate(tensors: &[TensorCandidates], bpw: f64) -> Result<Vec<usize>, BudgetError> {
    let total_n: u64 = tensors.iter().map(|t| t.n).sum();
    let budget = bpw * total_n as f64;
    let cheapest: Vec<usize> = tensors
        .iter()
        .map(|t| {
            (0..t.candidates.len())
                .min_by(|&a, &b| {
                    let (ca, cb) = (&t.candidates[a], &t.candidates[b]);
                    ca.cost_bits
                        .cmp(&cb.cost_bits)
                        .then(ca.err2.total_cmp(&cb.err2))
                        .then(a.cmp(&b))
                })
                .unwrap_or(0)
        })
        .collect();
    let cost = |choice: &[usize]| -> f64 {
        tensors
            .iter()
            .zip(choice)
            .map(|(t, &i)| t.candidates[i].cost_bits as f64)
            .sum()
    };
    let min_cost = cost(&cheapest);
    if min_cost > budget {
        return Err(BudgetError {
            requested: bpw,
            minimum: min_cost / total_n.max(1) as f64,
        });
    }
    let pick = |lambda: f64| -> Vec<usize> { tensors.iter().map(|t| best(t, lambda)).collect() };
    // Bisection on log(lambda): the smallest multiplier whose choice fits.
    let mut choice = pick(0.0);
    if cost(&choice) > budget {
        let (mut lo, mut hi) = (-80f64, 80f64);
        let mut fit = cheapest.clone();
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            let c = pick(mid.exp2());
            if cost(&c) <= budget {
                fit = c;
                hi = mid;
            } else {
                lo = mid;
            }
        }
        choice = fit;
    }
    // Greedy upgrades with the remaining budget: best weighted error reduction per added bit.
    loop {
        let left = budget - cost(&choice);
        let mut best_move: Option<(usize, usize, f64)> = None;
        for (ti, t) in tensors.iter().enumerate() {
            let cur = &t.candidates[choice[ti]];
            let w = weight(t);
            for (ci, c) in t.candidates.iter().enumerate() {
                let dc = c.cost_bits as f64 - cur.cost_bits as f64;
                let de = w * (cur.err2 - c.err2);
                if de <= 0.0 || dc > left {
                    continue;
                }
                let gain = if dc <= 0.0 { f64::INFINITY } else { de / dc };
                if best_move.is_none_or(|(_, _, g)| gain > g) {
                    best_move = Some((ti, ci, gain));
                }
            }
        }
        match best_move {
            Some((ti, ci, _)) => choice[ti] = ci,
            None => break,
        }
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bits: u8, cost: u64, err2: f64) -> Candidate {
        Candidate {
            bits,
            rank: 0,
            cost_bits: cost,
            err2,
        }
    }

    fn tensor(n: u64, norm2: f64, errs: &[f64]) -> TensorCandidates {
        TensorCandidates {
            n,
            norm2,
            candidates: errs
                .iter()
                .enumerate()
                .map(|(i, &e)| cand(2 + i as u8, n * (2 + i as u64), e))
                .collect(),
        }
    }

    #[test]
    fn meets_the_budget_and_spends_it_where_it_helps() {
        // Tensor 0 gains a lot from more bits, tensor 1 little.
        let ts = vec![
            tensor(1000, 1.0, &[0.5, 0.1, 0.01, 0.001]),
            tensor(1000, 1.0, &[0.02, 0.019, 0.018, 0.017]),
        ];
        let c = allocate(&ts, 3.5).unwrap();
        let cost: u64 = ts.iter().zip(&c).map(|(t, &i)| t.candidates[i].cost_bits).sum();
        assert!(cost as f64 <= 3.5 * 2000.0);
        assert!(ts[0].candidates[c[0]].bits > ts[1].candidates[c[1]].bits, "{c:?}");
        // Exhaustive check: no feasible pair is better.
        let obj = |a: usize, b: usize| 1000.0 * ts[0].candidates[a].err2 + 1000.0 * ts[1].candidates[b].err2;
        for a in 0..4 {
            for b in 0..4 {
                let cst = ts[0].candidates[a].cost_bits + ts[1].candidates[b].cost_bits;
                if cst as f64 <= 7000.0 {
                    assert!(obj(c[0], c[1]) <= obj(a, b) + 1e-12, "{a},{b} beats {c:?}");
                }
            }
        }
    }

    #[test]
    fn impossible_budget_is_a_clear_error() {
        let ts = vec![tensor(100, 1.0, &[0.5, 0.1])];
        let e = allocate(&ts, 1.0).unwrap_err();
        assert_eq!(e.minimum, 2.0);
        assert!(e.to_string().contains("cannot be met"));
    }

    #[test]
    fn generous_budget_takes_the_best() {
        let ts = vec![tensor(100, 2.0, &[0.5, 0.1, 0.05])];
        assert_eq!(allocate(&ts, 10.0).unwrap(), vec![2]);
    }
}
