//! Digests and error measures of reconstructions (spec ): `recon_sha256` of a record's
//! `W_base`, the streaming reconstruction with the overlay merged, and `rel_l2`.

use sha2::{Digest, Sha256};
use uc_decode::Record;

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the decoded `W_base` of a parsed record, as little-endian f32 bytes.
pub fn recon_sha256(rec: &Record<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut bytes = [0u8; 4 * uc_decode::BLOCK];
    for block in rec.blocks() {
        for (c, v) in bytes.chunks_exact_mut(4).zip(block.as_slice()) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        h.update(&bytes[..4 * block.len]);
    }
    h.finalize().into()
}

/// SHA-256 of decoded values as little-endian f32 bytes: `recon_sha256` of a `W_base` decoded
/// elsewhere (e.g. on a GPU, `uc-verify --device wgpu`).
pub fn recon_sha256_of(values: &[f32]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut bytes = Vec::with_capacity(4 * 16384);
    for chunk in values.chunks(16384) {
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        h.update(&bytes);
    }
    h.finalize().into()
}

/// Accumulates the error of a reconstruction against reference values: `rel_l2` =
/// `sqrt(sum((w - w_hat)^2) / sum(w^2))` and the largest `|w - w_hat|`, in f64, in element order
///
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    /// Sum of squared differences.
    pub sum_sq_diff: f64,
    /// Sum of squared reference values.
    pub sum_sq_ref: f64,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Number of values compared.
    pub count: u64,
    /// A reference or reconstructed value was NaN or infinite.
    pub non_finite: bool,
}

impl ErrorStats {
    /// Adds one pair.
    pub fn push(&mut self, reference: f32, reconstructed: f32) {
        if !reference.is_finite() || !reconstructed.is_finite() {
            self.non_finite = true;
        }
        let d = f64::from(reference) - f64::from(reconstructed);
        self.sum_sq_diff += d * d;
        self.sum_sq_ref += f64::from(reference) * f64::from(reference);
        if d.abs() > self.max_abs {
            self.max_abs = d.abs();
        }
        self.count += 1;
    }

    /// The relative L2 error; `None` when it is undefined (non-finite values, or an all-zero
    /// reference with a non-zero reconstruction). 0 when both are all zero.
    pub fn rel_l2(&self) -> Option<f64> {
        if self.non_finite {
            return None;
        }
        rel_l2(self.sum_sq_diff, self.sum_sq_ref)
    }
}

/// The relative L2 error `sqrt(err2 / norm2)` from `err2 = Σ(w − ŵ)²` and `norm2 = Σw²`:
/// the one definition the encoder, the verifier and the evaluation use. `None` where it is
/// undefined: a non-finite result, or an all-zero reference with a non-zero error; 0 when both are
/// zero.
pub fn rel_l2(err2: f64, norm2: f64) -> Option<f64> {
    if norm2 == 0.0 {
        return (err2 == 0.0).then_some(0.0);
    }
    let r = (err2 / norm2).sqrt();
    r.is_finite().then_some(r)
}

/// Streams the reconstruction a runtime uses (uc-decode's [`Record::merged_blocks`]: `W_base`
/// plus `U·V` in the reference order of ). Calls `f(first_index, values)` for consecutive
/// chunks of at most 64 values in row-major order until it returns `false`. Memory: one block.
pub fn for_each_reconstructed(rec: &Record<'_>, mut f: impl FnMut(u64, &[f32]) -> bool) -> Result<(), String> {
    for block in rec.merged_blocks() {
        if !f(block.index * uc_decode::BLOCK as u64, block.as_slice()) {
            break;
        }
    }
    Ok(())
}
