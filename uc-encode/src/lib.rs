//! # uc-encode: writing uc pack v0.3 records
//!
//! This crate holds the encoder. Today it provides the per-tensor core of the method, grid scalar
//! quantization ([`gsq`]): per-64-block absmax scales stored as binary16, a 1-D k-means grid of
//! `2^bits` values learned over the block-normalised weights, and nearest-grid codes; and the pack
//! writer ([`pack::PackWriter`]): safetensors files with 64-byte aligned records, shards and index,
//! and the manifest `ultracompress.json`, written atomically; the `uc compress` pipeline
//! ([`compress`]: analyse, allocate bits and overlay rank within a bpw budget, encode, write,
//! verify; streaming and resumable); and `uc unpack` / `uc inspect` ([`unpack`]). The `uc` binary
//! is `src/bin/uc.rs`.
#![deny(unsafe_code)] // allowed only in `device`, which loads the CUDA driver at run time
#![warn(missing_docs)]

pub mod calib;
pub mod compress;
pub mod device;
pub mod error;
pub mod gsq;
pub mod model;
pub mod plan;
pub mod source;
pub mod svd;
pub mod tensor;
pub mod unpack;
mod write;

pub use gsq::{EncodeError, GsqOptions, GsqParts, QuantizedTensor, quantize, quantize_parts};
pub use tensor::{Candidate, EncodedTensor, TensorOptions, candidates, encode_tensor};
