//! # uc-models
//!
//! Model forward passes with candle (CPU): the Llama family (SmolLM2; Qwen2/3 and Mistral configs
//! load as well) and BERT (MiniLM), tokenizers, GGUF import, perplexity and embedding evaluation,
//! and the calibration data they consume.
//!
//! Weights reach a forward pass through [`Get`], so that the calibrated encoder can substitute a
//! student's weight (`W_base + U·V` with trainable factors) for a teacher's without copying the
//! model. Every forward pass works on a batch of equal-length sequences (no padding).

#![forbid(unsafe_code)]

pub mod arch;
pub mod bert;
pub mod calib;
pub mod embed;
pub mod eval;
pub mod gguf;
pub mod gguf_scan;
pub mod llama;
pub mod nn;
pub mod run;
pub mod text;

pub use arch::{Arch, is_pack, load_weights, model_err};
pub use nn::{Get, Tap, Weights};
