//! # conformance: vectors for uc pack v0.3 and a runner for any decoder
//!
//! * [`vectors`] defines every vector in code (records assembled independently of our writer).
//! * [`files`] writes them to `conformance/vectors/` (`gen-vectors`) and loads them back, checking
//!   their SHA-256 digests.
//! * [`runner`] feeds each vector to an external decoder program through the protocol documented
//!   in `conformance/README.md` and compares its output bit for bit.

pub mod files;
pub mod packs;
pub mod runner;
pub mod vectors;

pub use vectors::{Expect, Vector};

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// f32 values from little-endian bytes (a trailing partial value is dropped).
pub fn f32_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Directory of the committed vectors.
pub fn default_vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}
