//! # uc-encode: the uc pack encoder, as a library
//!
//! No model code, no command line: the `uc` binary is `uc-cli`, model forward passes and calibrated
//! encoding are `uc-models` (which plugs into the pipeline through [`calibrate::Calibrator`]).
//!
//! ## The method
//! - [`gsq`]: grid scalar quantization of one tensor: binary16 absmax scales per 64-weight block, a
//!   1-D k-means grid of `2^bits` values, nearest-grid codes ([`quantize`], [`quantize_parts`]).
//! - [`svd`]: the randomized truncated SVD of the residual that gives the low-rank overlay.
//! - [`tensor`]: one tensor encoded with (bits, rank), and every candidate's exact size and its
//!   measured or sampled error ([`encode_tensor`], [`candidates`], [`sampled_candidates`]).
//! - [`plan`]: the allocation of (bits, rank) per tensor within a bits-per-weight budget.
//! - [`policy`]: which tensors are quantized, and the allocator's default choices.
//!
//! ## The pipeline
//! - [`compress()`]: analyse → allocate → encode → write → verify → install, streaming one tensor
//!   at a time, resumable through the [`journal`], deterministic ([`CompressOptions`],
//!   [`CompressSummary`]).
//! - [`calibrate`]: the trait through which a calibrated encoder replaces the encode phase.
//! - [`source`]: the local Hugging Face model directory being read.
//! - [`unpack`]: the inverse (`uc unpack`, `uc inspect`) and reading a pack's weights as f32.
//! - [`error`]: one error type that says whose fault it is and whether the journal survives it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calibrate;
pub mod compress;
pub mod error;
pub mod gptq;
pub mod gsq;
pub mod journal;
mod options;
pub mod plan;
pub mod policy;
pub mod sign;
pub mod source;
pub mod svd;
pub mod tensor;
pub mod unpack;
mod write;

pub use compress::{CompressOptions, CompressSummary, TensorSummary, compress};
pub use error::CompressError;
pub use gsq::{EncodeError, GsqOptions, GsqParts, QuantizedTensor, SubScales, quantize, quantize_parts};
pub use tensor::{Candidate, EncodedTensor, TensorOptions, candidates, encode_tensor, sampled_candidates};
