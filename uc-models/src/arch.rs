//! The architectures this crate runs, read from `config.json`, and loading a model's weights.

use crate::nn::{Get, Tap, Weights};
use crate::{bert, llama};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::path::Path;
use uc_encode::error::{CompressError, bad};

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
        let bytes = uc_pack::fs::read_capped(&p, 64 << 20)?;
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
