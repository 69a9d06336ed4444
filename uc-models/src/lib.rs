//! # uc-models
//!
//! Model forward passes with candle (CPU): the Llama family (SmolLM2; Qwen2/3 and Mistral configs
//! load as well) and BERT (MiniLM), tokenizers, GGUF import, perplexity and embedding evaluation,
//! and the calibration data they consume.
//!
//! Weights reach a forward pass through [`Get`], so that the calibrated encoder can substitute a
//! student's weight (`W_base + U·V` with trainable factors) for a teacher's without copying the
//! model. Every forward pass works on a batch of equal-length sequences (no padding).

pub mod bert;
pub mod calib;
pub mod eval;
pub mod gguf;
pub mod llama;
pub mod text;

use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use uc_encode::error::{CompressError, bad};

/// Receives the input of every linear map of a layer: (weight name, input `[.., in]`).
pub type Tap<'a> = Option<&'a mut dyn FnMut(&str, &Tensor)>;

/// A source of named weights for a forward pass.
pub trait Get {
    /// The tensor called `name` (f32, on the CPU).
    fn get(&self, name: &str) -> candle_core::Result<Tensor>;
    /// Whether the model has a tensor called `name` (optional biases and norms).
    fn has(&self, name: &str) -> bool;
}

/// All weights of a model in memory, as f32.
#[derive(Debug, Default)]
pub struct Weights {
    /// Name → tensor.
    pub map: HashMap<String, Tensor>,
}

impl Get for Weights {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.map
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("the model has no tensor {name}")))
    }
    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Whether `dir` is a uc pack (it has a manifest `ultracompress.json`).
pub fn is_pack(dir: &Path) -> bool {
    dir.join("ultracompress.json").is_file()
}

/// Loads every floating-point tensor of a Hugging Face directory or of a uc pack (records decoded
/// through uc-decode, their overlays merged) as f32.
pub fn load_weights(dir: &Path) -> Result<Weights, CompressError> {
    let mut w = Weights::default();
    let mut put = |name: &str, shape: &[u64], v: Vec<f32>| -> Result<(), CompressError> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu).map_err(|e| model_err(dir, format!("tensor {name}: {e}")))?;
        w.map.insert(name.to_string(), t);
        Ok(())
    };
    if is_pack(dir) {
        uc_encode::unpack::read_pack_f32(dir, put)?;
    } else {
        let src = uc_encode::source::SourceModel::open(dir)?;
        for t in &src.tensors {
            if matches!(
                t.dtype,
                uc_pack::safetensors::Dtype::F32 | uc_pack::safetensors::Dtype::F16 | uc_pack::safetensors::Dtype::Bf16
            ) {
                let v = src.read_f32(t)?;
                put(&t.name, &t.shape, v)?;
            }
        }
    }
    Ok(w)
}

/// [`CompressError::Model`] for `path`.
pub fn model_err(path: &Path, msg: impl Into<String>) -> CompressError {
    CompressError::Model {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The architectures this module runs.
#[derive(Debug, Clone)]
pub enum Arch {
    /// Decoder-only Llama family (Llama, SmolLM2, Mistral, Qwen2, Qwen3).
    Llama(llama::Config),
    /// BERT encoder (MiniLM), sentence embedding by mean pooling.
    Bert(bert::Config),
}

impl Arch {
    /// Reads `config.json` of a model directory or pack.
    pub fn load(dir: &Path) -> Result<Arch, CompressError> {
        let p = dir.join("config.json");
        let bytes = std::fs::read(&p).map_err(|e| uc_encode::error::io(&p, e))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&p, format!("invalid JSON: {e}")))?;
        Arch::from_config(&p, &v)
    }

    /// Parses a `config.json` value.
    pub fn from_config(path: &Path, v: &Value) -> Result<Arch, CompressError> {
        let mt = v["model_type"].as_str().unwrap_or("");
        match mt {
            "llama" | "mistral" | "qwen2" | "qwen3" => Ok(Arch::Llama(llama::Config::from_json(path, v)?)),
            "bert" => Ok(Arch::Bert(bert::Config::from_json(path, v)?)),
            other => Err(bad(
                path,
                format!(
                    "model_type {other:?} is not supported by the forward passes (llama, mistral, qwen2, qwen3, bert)"
                ),
            )),
        }
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        match self {
            Arch::Llama(c) => c.num_layers,
            Arch::Bert(c) => c.num_layers,
        }
    }

    /// Whether the embedding stage reads the tensor `name`.
    pub fn is_embedding(&self, name: &str) -> bool {
        match self {
            Arch::Llama(_) => name == "model.embed_tokens.weight",
            Arch::Bert(_) => name.starts_with("embeddings.") && !name.ends_with("position_ids"),
        }
    }

    /// Name prefix of layer `i`'s tensors.
    pub fn layer_prefix(&self, i: usize) -> String {
        match self {
            Arch::Llama(_) => format!("model.layers.{i}."),
            Arch::Bert(_) => format!("encoder.layer.{i}."),
        }
    }

    /// Hidden states after the embedding stage, `[batch, seq, hidden]`.
    pub fn embed(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Arch::Llama(c) => c.embed(w, ids),
            Arch::Bert(c) => c.embed(w, ids),
        }
    }

    /// Layer `i` applied to hidden states `x`; `tap`, when given, receives the input of every
    /// linear map (weight name, input `[tokens, in]`).
    pub fn layer(&self, w: &dyn Get, i: usize, x: &Tensor, tap: Tap<'_>) -> candle_core::Result<Tensor> {
        match self {
            Arch::Llama(c) => c.layer(w, i, x, tap),
            Arch::Bert(c) => c.layer(w, i, x, tap),
        }
    }
}

/// `x · Wᵀ (+ b)` for `x` of shape `[..., in]` and `W` of shape `[out, in]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let inner = *dims.last().unwrap_or(&1);
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, inner))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    y.reshape(out)
}

/// Softmax over the last dimension (the shift by the maximum is detached: it cancels).
pub(crate) fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(candle_core::D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(candle_core::D::Minus1)?;
    e.broadcast_div(&s)
}

/// Log-softmax over the last dimension (the shift by the maximum is detached: it cancels).
pub(crate) fn log_softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(candle_core::D::Minus1)?.detach();
    let z = x.broadcast_sub(&m)?;
    let lse = z.exp()?.sum_keepdim(candle_core::D::Minus1)?.log()?;
    z.broadcast_sub(&lse)
}
