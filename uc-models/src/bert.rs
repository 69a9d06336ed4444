//! BERT encoder in Hugging Face layout (`embeddings.*`, `encoder.layer.N.*`), as used by
//! sentence-transformers MiniLM: post-LayerNorm layers, GELU (erf) MLP, and sentence embeddings by
//! mean pooling followed by L2 normalisation.

use crate::nn::{Get, Tap, linear, softmax_last};
use candle_core::{D, Tensor};
use serde_json::Value;
use std::path::Path;
use uc_encode::error::{CompressError, bad};

/// What the forward pass needs from `config.json`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub num_layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Position table length.
    pub max_positions: usize,
}

impl Config {
    /// Parses `config.json`.
    pub fn from_json(path: &Path, v: &Value) -> Result<Config, CompressError> {
        let get = |k: &str| {
            v[k].as_u64()
                .filter(|&n| n > 0 && n <= 1 << 24)
                .map(|n| n as usize)
                .ok_or_else(|| bad(path, format!("config.json: {k} missing or not a positive integer")))
        };
        let hidden = get("hidden_size")?;
        let heads = get("num_attention_heads")?;
        if hidden % heads != 0 {
            return Err(bad(
                path,
                format!("config.json: hidden_size {hidden} is not a multiple of {heads} heads"),
            ));
        }
        if let Some(act) = v["hidden_act"].as_str()
            && act != "gelu"
        {
            return Err(bad(
                path,
                format!("config.json: hidden_act {act:?} is not supported (gelu)"),
            ));
        }
        Ok(Config {
            hidden,
            num_layers: get("num_hidden_layers")?,
            heads,
            eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-12),
            max_positions: get("max_position_embeddings")?,
        })
    }

    fn layer_norm(&self, x: &Tensor, g: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        let mu = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mu)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(g)?
            .broadcast_add(b)
    }

    /// Word + position + token-type (0) embeddings, normalised: `[batch, seq, hidden]`.
    pub fn embed(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.max_positions {
            return Err(candle_core::Error::Msg(format!(
                "sequence of {t} tokens is longer than the {} positions of the model",
                self.max_positions
            )));
        }
        let we = w.get("embeddings.word_embeddings.weight")?;
        let x = we.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, self.hidden))?;
        let pos = w.get("embeddings.position_embeddings.weight")?.narrow(0, 0, t)?;
        let tt = w.get("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1)?;
        let x = x.broadcast_add(&pos)?.broadcast_add(&tt)?;
        self.layer_norm(
            &x,
            &w.get("embeddings.LayerNorm.weight")?,
            &w.get("embeddings.LayerNorm.bias")?,
        )
    }

    /// Encoder layer `i` (no padding inside the batch).
    pub fn layer(&self, w: &dyn Get, i: usize, x: &Tensor, mut tap: Tap<'_>) -> candle_core::Result<Tensor> {
        let p = format!("encoder.layer.{i}.");
        let (b, t, h) = x.dims3()?;
        let mut lin = |name: &str, input: &Tensor| -> candle_core::Result<Tensor> {
            let wn = format!("{p}{name}.weight");
            if let Some(f) = tap.as_mut() {
                f(&wn, input);
            }
            linear(input, &w.get(&wn)?, Some(&w.get(&format!("{p}{name}.bias"))?))
        };
        let (nh, hd) = (self.heads, h / self.heads);
        let split =
            |z: Tensor| -> candle_core::Result<Tensor> { z.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous() };
        let q = split(lin("attention.self.query", x)?)?;
        let k = split(lin("attention.self.key", x)?)?;
        let v = split(lin("attention.self.value", x)?)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let att = softmax_last(&scores)?;
        let ctx = att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        let a = (lin("attention.output.dense", &ctx)? + x)?;
        let a = self.layer_norm(
            &a,
            &w.get(&format!("{p}attention.output.LayerNorm.weight"))?,
            &w.get(&format!("{p}attention.output.LayerNorm.bias"))?,
        )?;
        let m = lin("intermediate.dense", &a)?.gelu_erf()?;
        let o = (lin("output.dense", &m)? + a)?;
        self.layer_norm(
            &o,
            &w.get(&format!("{p}output.LayerNorm.weight"))?,
            &w.get(&format!("{p}output.LayerNorm.bias"))?,
        )
    }

    /// Sentence embeddings `[batch, hidden]`: all layers, mean over tokens, L2-normalised.
    pub fn sentence_embedding(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.embed(w, ids)?;
        for i in 0..self.num_layers {
            x = self.layer(w, i, &x, None)?;
        }
        let m = x.mean(1)?;
        let n = m.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        m.broadcast_div(&n)
    }
}
