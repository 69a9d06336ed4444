//! The Llama family decoder (Llama, SmolLM2, Mistral, Qwen2 with q/k/v biases, Qwen3 with q/k
//! norms) in Hugging Face layout: RMSNorm, rotary embedding (`rotate_half` convention), grouped-query
//! causal attention, SwiGLU MLP, tied or separate output head.

use super::{Get, Tap, linear, softmax_last};
use crate::error::{CompressError, bad};
use candle_core::{D, DType, Device, Tensor};
use serde_json::Value;
use std::path::Path;

/// What the forward pass needs from `config.json`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub num_layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Per-head dimension.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Vocabulary size.
    pub vocab: usize,
    /// Output head tied to the embedding.
    pub tie: bool,
}

fn num(path: &Path, v: &Value, key: &str) -> Result<usize, CompressError> {
    v[key]
        .as_u64()
        .filter(|&n| n > 0 && n <= 1 << 24)
        .map(|n| n as usize)
        .ok_or_else(|| bad(path, format!("config.json: {key} missing or not a positive integer")))
}

impl Config {
    /// Parses `config.json`.
    pub fn from_json(path: &Path, v: &Value) -> Result<Config, CompressError> {
        let hidden = num(path, v, "hidden_size")?;
        let heads = num(path, v, "num_attention_heads")?;
        let kv_heads = if v["num_key_value_heads"].is_null() {
            heads
        } else {
            num(path, v, "num_key_value_heads")?
        };
        let head_dim = if v["head_dim"].is_u64() {
            num(path, v, "head_dim")?
        } else {
            hidden / heads
        };
        if heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(bad(
                path,
                format!("config.json: {heads} heads, {kv_heads} key/value heads and head_dim {head_dim} do not fit"),
            ));
        }
        Ok(Config {
            hidden,
            num_layers: num(path, v, "num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            rope_theta: v["rope_theta"].as_f64().unwrap_or(10000.0),
            vocab: num(path, v, "vocab_size")?,
            tie: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        })
    }

    /// Token embeddings, `[batch, seq, hidden]`.
    pub fn embed(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<Tensor> {
        let e = w.get("model.embed_tokens.weight")?;
        let (b, t) = ids.dims2()?;
        e.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, self.hidden))
    }

    /// The rotary tables `(cos, sin)`, each `[seq, head_dim]`.
    pub fn rope(&self, seq: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / self.rope_theta.powf(2.0 * i as f64 / self.head_dim as f64)) as f32)
            .collect();
        let mut cos = Vec::with_capacity(seq * self.head_dim);
        let mut sin = Vec::with_capacity(seq * self.head_dim);
        for p in 0..seq {
            for k in 0..self.head_dim {
                let a = p as f32 * inv[k % half];
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (seq, self.head_dim), &Device::Cpu)?,
            Tensor::from_vec(sin, (seq, self.head_dim), &Device::Cpu)?,
        ))
    }

    fn rms_norm(&self, x: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + self.eps)?.sqrt()?)?.broadcast_mul(g)
    }

    fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?
    }

    /// Decoder layer `i`: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.
    pub fn layer(&self, w: &dyn Get, i: usize, x: &Tensor, mut tap: Tap<'_>) -> candle_core::Result<Tensor> {
        let p = format!("model.layers.{i}.");
        let (b, t, _) = x.dims3()?;
        let mut lin = |name: &str, input: &Tensor| -> candle_core::Result<Tensor> {
            let wn = format!("{p}{name}.weight");
            if let Some(f) = tap.as_mut() {
                f(&wn, input);
            }
            let bn = format!("{p}{name}.bias");
            let bias = if w.has(&bn) { Some(w.get(&bn)?) } else { None };
            linear(input, &w.get(&wn)?, bias.as_ref())
        };
        let hn = self.rms_norm(x, &w.get(&format!("{p}input_layernorm.weight"))?)?;
        let q = lin("self_attn.q_proj", &hn)?;
        let k = lin("self_attn.k_proj", &hn)?;
        let v = lin("self_attn.v_proj", &hn)?;
        let (hd, nh, nkv) = (self.head_dim, self.heads, self.kv_heads);
        let mut q = q.reshape((b, t, nh, hd))?.transpose(1, 2)?;
        let mut k = k.reshape((b, t, nkv, hd))?.transpose(1, 2)?;
        let v = v.reshape((b, t, nkv, hd))?.transpose(1, 2)?;
        let qn = format!("{p}self_attn.q_norm.weight");
        if w.has(&qn) {
            q = self.rms_norm(&q, &w.get(&qn)?)?;
            k = self.rms_norm(&k, &w.get(&format!("{p}self_attn.k_norm.weight"))?)?;
        }
        let (cos, sin) = self.rope(t)?;
        let q = Self::apply_rope(&q.contiguous()?, &cos, &sin)?;
        let k = Self::apply_rope(&k.contiguous()?, &cos, &sin)?;
        let groups = nh / nkv;
        let expand = |z: Tensor| -> candle_core::Result<Tensor> {
            if groups == 1 {
                return z.contiguous();
            }
            z.unsqueeze(2)?
                .broadcast_as((b, nkv, groups, t, hd))?
                .contiguous()?
                .reshape((b, nh, t, hd))
        };
        let k = expand(k)?;
        let v = expand(v)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|r| (0..t).map(move |c| if c > r { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)?;
        let att = softmax_last(&scores.broadcast_add(&mask)?)?;
        let ctx = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, nh * hd))?;
        let h = (x + lin("self_attn.o_proj", &ctx)?)?;
        let hn = self.rms_norm(&h, &w.get(&format!("{p}post_attention_layernorm.weight"))?)?;
        let g = lin("mlp.gate_proj", &hn)?;
        let u = lin("mlp.up_proj", &hn)?;
        let m = (g.silu()? * u)?;
        h + lin("mlp.down_proj", &m)?
    }

    /// Final norm and output head: logits `[batch, seq, vocab]`.
    pub fn head(&self, w: &dyn Get, x: &Tensor) -> candle_core::Result<Tensor> {
        let xn = self.rms_norm(x, &w.get("model.norm.weight")?)?;
        let head = if w.has("lm_head.weight") && !self.tie {
            w.get("lm_head.weight")?
        } else {
            w.get("model.embed_tokens.weight")?
        };
        linear(&xn, &head, None)
    }

    /// For a batch of token windows `ids` `[batch, seq]`: the sum over every predicted token (all
    /// but the first of each window) of its negative log-likelihood in nats, the number of tokens
    /// that are the model's top-1 choice, and the top-1 choices themselves (batch-major).
    pub fn nll(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<(f64, usize, Vec<u32>)> {
        let (b, t) = ids.dims2()?;
        let mut x = self.embed(w, ids)?;
        for i in 0..self.num_layers {
            x = self.layer(w, i, &x, None)?;
        }
        let logits = self
            .head(w, &x.narrow(1, 0, t - 1)?)?
            .reshape((b * (t - 1), self.vocab))?;
        let targets = ids.narrow(1, 1, t - 1)?.flatten_all()?.to_dtype(DType::U32)?;
        let lse = logits.log_sum_exp(D::Minus1)?;
        let picked = logits.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
        let nll = (lse - picked)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        let top: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let tv: Vec<u32> = targets.to_vec1::<u32>()?;
        let hits = top.iter().zip(&tv).filter(|(a, b)| a == b).count();
        Ok((nll, hits, top))
    }
}
