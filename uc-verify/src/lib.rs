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
pub mod pack;

pub use checks::CheckName;
pub use pack::{
    Check, PackError, PackOptions, PackReport, Progress, SignatureOptions, SignatureReport, TensorReport, verify_pack,
};

use uc_decode::Record;
use uc_pack::{hex, recon_sha256};

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

/// A decoder of `W_base` other than the CPU block stream (e.g. a GPU), for the `recon_sha256`
/// checks: returns all `n` values, or a message saying why it could not.
pub type DecodeFn<'a> = dyn Fn(&Record<'_>) -> Result<Vec<f32>, String> + Sync + 'a;

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
    use sha2::{Digest, Sha256};

    #[test]
    fn digest_covers_every_decoded_value() {
        let w: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let record = uc_pack::testkit::record(&w, &[3, 100], 3);
        let report = verify_record(&record).unwrap();
        let rec = Record::parse(&record).unwrap();
        let mut out = vec![0f32; 300];
        rec.decode_into(&mut out).unwrap();
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(report.recon_sha256, hex(&Sha256::digest(&bytes)));
        assert_eq!(report.shape, vec![3, 100]);
        // A corrupted record is rejected with its error class.
        let mut bad = record.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(verify_record(&bad).unwrap_err().kind, uc_format::ErrorKind::CrcMismatch);
    }
}
