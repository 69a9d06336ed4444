//! # uc-verify: audit of uc records
//!
//! [`verify_record`] validates a record completely (spec ), decodes every element with the
//! reference-equivalent fast path and computes `recon_sha256`, the SHA-256 of the decoded `W_base`
//! as little-endian binary32 — the digest a pack manifest records per tensor, so that an auditor can
//! prove that the bits a runtime reconstructs are the bits the encoder produced. Decoding streams
//! block by block: memory use does not depend on the tensor size.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
