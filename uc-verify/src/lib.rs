//! # uc-verify: audit of uc packs and records
//!
//! [`verify_pack`] proves, with no encoder code and without the source model, that a pack directory
//! is intact and that the bits a runtime will reconstruct are the bits the encoder produced: the
//! manifest conforms to its schema (spec section 12), every file has its listed size and SHA-256 and
//! no other file exists, every safetensors header is well formed, every record is valid (spec)
//! and decodes to its manifest `recon_sha256`, and the bit accounting matches. With a source model it
//! also measures the reconstruction error per tensor.
//!
//! [`verify_record`] validates one record completely, decodes every element with the
//! reference-equivalent fast path and computes `recon_sha256`, the SHA-256 of the decoded `W_base`
//! as little-endian binary32. Decoding streams block by block: memory use does not depend on the
//! tensor size.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
pub mod env;
mod jsonscan;
pub mod manifest;
pub mod pack;
pub mod safetensors;
pub mod time;

pub use checks::CheckName;
pub use pack::{Check, PackError, PackOptions, PackReport, Progress, TensorReport, verify_pack};

use sha2::{Digest, Sha256};
use uc_decode::Record;

/// What verification of one record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordReport {
    /// Tensor dimensions.
    pub shape: Vec<u64>,
    /// Code width.
    pub bits: u8,
    /// Overlay rank (0 = none).
    pub overlay_rank: u32,
    /// Number of elements.
    pub n: u64,
    /// Record length in bytes.
    pub record_len: u64,
    /// Stored (and checked) CRC-32.
    pub crc32: u32,
    /// SHA-256 of the decoded `W_base`, little-endian f32, lowercase hex.
    pub recon_sha256: String,
}

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

/// A decoder of `W_base` other than the CPU block stream (e.g. a GPU), for the `recon_sha256`
/// checks: returns all `n` values, or a message saying why it could not.
pub type DecodeFn<'a> = dyn Fn(&Record<'_>) -> Result<Vec<f32>, String> + Sync + 'a;

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
        if self.sum_sq_ref == 0.0 {
            return (self.sum_sq_diff == 0.0).then_some(0.0);
        }
        let r = (self.sum_sq_diff / self.sum_sq_ref).sqrt();
        r.is_finite().then_some(r)
    }
}

/// Streams the reconstruction a runtime uses: `W_base` plus, when the record has an
/// overlay, `U·V` merged in the reference order of. Calls `f(first_index, values)` for
/// consecutive chunks of at most 64 values in row-major order until it returns `false`. Memory:
/// one block, plus the overlay factors as f32 (`r * (rows + cols)` values) when there is an overlay.
/// Errors only when the overlay factors cannot be allocated.
pub fn for_each_reconstructed(rec: &Record<'_>, mut f: impl FnMut(u64, &[f32]) -> bool) -> Result<(), String> {
    let r = u64::from(rec.overlay_rank());
    let (rows, cols) = (rec.rows(), rec.cols());
    let (mut u, mut v) = (Vec::new(), Vec::new());
    if r > 0 {
        let (nu, nv) = (rows * r, r * cols);
        let alloc = |buf: &mut Vec<f32>, n: u64| -> Result<(), String> {
            let n = usize::try_from(n).map_err(|_| format!("overlay factor of {n} values does not fit in memory"))?;
            buf.try_reserve_exact(n)
                .map_err(|_| format!("cannot allocate {n} values for an overlay factor"))?;
            buf.resize(n, 0.0);
            Ok(())
        };
        alloc(&mut u, nu)?;
        alloc(&mut v, nv)?;
        rec.overlay_u_into(&mut u).map_err(|e| e.to_string())?;
        rec.overlay_v_into(&mut v).map_err(|e| e.to_string())?;
    }
    let ru = r as usize;
    let cu = cols as usize;
    for mut block in rec.blocks() {
        let start = block.index * uc_decode::BLOCK as u64;
        if r > 0 {
            for (t, w) in block.values[..block.len].iter_mut().enumerate() {
                let i = start + t as u64;
                let (row, col) = ((i / cols) as usize, (i % cols) as usize);
                let mut acc = 0f32;
                for k in 0..ru {
                    acc += u[row * ru + k] * v[k * cu + col];
                }
                *w += acc;
            }
        }
        if !f(start, block.as_slice()) {
            break;
        }
    }
    Ok(())
}

/// Validates and fully decodes one record.
pub fn verify_record(bytes: &[u8]) -> Result<RecordReport, uc_format::Error> {
    let rec = Record::parse(bytes)?;
    let l = rec.layout();
    Ok(RecordReport {
        shape: rec.shape().to_vec(),
        bits: rec.bits(),
        overlay_rank: rec.overlay_rank(),
        n: rec.len(),
        record_len: l.record_len,
        crc32: l.crc32,
        recon_sha256: hex(&recon_sha256(&rec)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_covers_every_decoded_value() {
        let w: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let q = uc_encode::quantize(&w, &[3, 100], &uc_encode::GsqOptions::new(3)).unwrap();
        let report = verify_record(&q.record).unwrap();
        let rec = Record::parse(&q.record).unwrap();
        let mut out = vec![0f32; 300];
        rec.decode_into(&mut out).unwrap();
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(report.recon_sha256, hex(&Sha256::digest(&bytes)));
        assert_eq!(report.shape, vec![3, 100]);
        // A corrupted record is rejected with its error class.
        let mut bad = q.record.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(verify_record(&bad).unwrap_err().kind, uc_format::ErrorKind::CrcMismatch);
    }
}
