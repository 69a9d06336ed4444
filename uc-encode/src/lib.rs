//! # uc-encode: writing uc pack v0.3 records
//!
//! This crate holds the encoder. Today it provides the per-tensor core of the method, grid scalar
//! quantization ([`gsq`]): per-64-block absmax scales stored as binary16, a 1-D k-means grid of
//! `2^bits` values learned over the block-normalised weights, and nearest-grid codes. The pack
//! writer and the `uc` CLI (`uc compress`) are tracked in their own issues and not built yet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod gsq;
pub mod svd;
pub mod tensor;

pub use gsq::{EncodeError, GsqOptions, GsqParts, QuantizedTensor, quantize, quantize_parts};
pub use tensor::{Candidate, EncodedTensor, TensorOptions, candidates, encode_tensor};
