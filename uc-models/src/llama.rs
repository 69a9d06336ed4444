//! The Llama family decoder (Llama, SmolLM2, Mistral, Qwen2 with q/k/v biases, Qwen3 with q/k
//! norms) in Hugging Face layout: RMSNorm, rotary embedding (`rotate_half` convention), grouped-query
//! causal attention, SwiGLU MLP, tied or separate output head.

use crate::nn::{Get, Tap, linear, softmax_last};
use candle_core::{D, DType, Device, Tensor};
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
        if !v["rope_scaling"].is_null() {
            return Err(bad(
                path,
                format!(
                    "config.json: rope_scaling {} is not supported (plain RoPE only)",
                    v["rope_scaling"]
                ),
            ));
        }
        if let Some(act) = v["hidden_act"].as_str()
            && act != "silu"
        {
            return Err(bad(
                path,
                format!("config.json: hidden_act {act:?} is not supported (silu)"),
            ));
        }
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

    /// The tensors [`Config::head`] reads, given which tensors the model `has`: the final norm and
    /// the output matrix (the embedding when the head is tied or absent).
    pub fn head_names(&self, has: impl Fn(&str) -> bool) -> [&'static str; 2] {
        let out = if has("lm_head.weight") && !self.tie {
            "lm_head.weight"
        } else {
            "model.embed_tokens.weight"
        };
        ["model.norm.weight", out]
    }

    /// Final norm and output head: logits `[batch, seq, vocab]`.
    pub fn head(&self, w: &dyn Get, x: &Tensor) -> candle_core::Result<Tensor> {
        let [norm, out] = self.head_names(|n| w.has(n));
        let xn = self.rms_norm(x, &w.get(norm)?)?;
        linear(&xn, &w.get(out)?, None)
    }

    /// For a batch of token windows `ids` `[batch, seq]`: the sum over every predicted token (all
    /// but the first of each window) of its negative log-likelihood in nats, the number of tokens
    /// that are the model's top-1 choice, and the top-1 choices themselves (batch-major).
    pub fn nll(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<(f64, usize, Vec<u32>)> {
        let logits = self.next_token_logits(w, ids)?;
        nll_of_logits(&logits, ids)
    }

    /// The logits of the next token at every position but the last, `[b·(t − 1), vocab]`.
    pub fn next_token_logits(&self, w: &dyn Get, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let mut x = self.embed(w, ids)?;
        for i in 0..self.num_layers {
            x = self.layer(w, i, &x, None)?;
        }
        self.head(w, &x.narrow(1, 0, t - 1)?)?
            .reshape((b * (t - 1), self.vocab))
    }
}

/// From next-token logits `[b·(t − 1), vocab]` of the windows `ids` `[b, t]`: the summed negative
/// log-likelihood of the text's next tokens (nats), the number of positions whose top-1 token is
/// the text's, and the top-1 tokens.
pub fn nll_of_logits(logits: &Tensor, ids: &Tensor) -> candle_core::Result<(f64, usize, Vec<u32>)> {
    let (_, t) = ids.dims2()?;
    let targets = ids.narrow(1, 1, t - 1)?.flatten_all()?.to_dtype(DType::U32)?;
    let lse = logits.log_sum_exp(D::Minus1)?;
    let picked = logits.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = (lse - picked)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    let top: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let tv: Vec<u32> = targets.to_vec1::<u32>()?;
    let hits = top.iter().zip(&tv).filter(|(a, b)| a == b).count();
    Ok((nll, hits, top))
}

/// `Σ over positions of KL(p ‖ q)` in nats, where `p` and `q` are the softmax of the rows of
/// `teacher` and `student` (`[positions, vocab]` logits), computed in chunks of positions so that
/// the intermediates stay small; summed in f64.
pub fn kl_sum(teacher: &Tensor, student: &Tensor) -> candle_core::Result<f64> {
    let n = teacher.dim(0)?;
    let mut total = 0f64;
    let mut start = 0;
    while start < n {
        let k = 64.min(n - start);
        let lp = crate::nn::log_softmax_last(&teacher.narrow(0, start, k)?)?;
        let lq = crate::nn::log_softmax_last(&student.narrow(0, start, k)?)?;
        let kl = (lp.exp()? * (&lp - &lq)?)?;
        total += kl.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        start += k;
    }
    Ok(total)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nn::Weights;

    /// A tiny random Llama (2 layers, 4 query and 2 key/value heads, vocabulary 11, tied head).
    pub(crate) fn tiny() -> (Config, Weights) {
        let cfg = Config {
            hidden: 16,
            num_layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            eps: 1e-5,
            rope_theta: 10000.0,
            vocab: 11,
            tie: true,
        };
        let mut seed = 3u64;
        let mut rnd = |n: usize, s: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * s
                })
                .collect()
        };
        let mut w = Weights::default();
        let mut put = |name: String, shape: &[usize], v: Vec<f32>| {
            w.map.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
        };
        put("model.embed_tokens.weight".into(), &[11, 16], rnd(176, 1.0));
        put("model.norm.weight".into(), &[16], vec![1.0; 16]);
        for i in 0..2 {
            let p = format!("model.layers.{i}.");
            for (n, o, inn) in [
                ("self_attn.q_proj", 16, 16),
                ("self_attn.k_proj", 8, 16),
                ("self_attn.v_proj", 8, 16),
                ("self_attn.o_proj", 16, 16),
                ("mlp.gate_proj", 24, 16),
                ("mlp.up_proj", 24, 16),
                ("mlp.down_proj", 16, 24),
            ] {
                put(format!("{p}{n}.weight"), &[o, inn], rnd(o * inn, 0.5));
            }
            put(format!("{p}input_layernorm.weight"), &[16], vec![1.0; 16]);
            put(format!("{p}post_attention_layernorm.weight"), &[16], vec![1.0; 16]);
        }
        (cfg, w)
    }

    /// The logits at every position of `ids`, `[len, vocab]` flattened, by the candle forward pass.
    pub(crate) fn logits(cfg: &Config, w: &Weights, ids: &[u32]) -> Vec<f32> {
        let t = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
        let mut x = cfg.embed(w, &t).unwrap();
        for i in 0..cfg.num_layers {
            x = cfg.layer(w, i, &x, None).unwrap();
        }
        cfg.head(w, &x).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn attention_is_causal_and_position_aware() {
        let (cfg, w) = tiny();
        let a = logits(&cfg, &w, &[1, 2, 3, 4, 5]);
        let b = logits(&cfg, &w, &[1, 2, 3, 9, 0]);
        // Positions 0..3 see only tokens 0..3, which agree.
        assert_eq!(a[..3 * 11], b[..3 * 11]);
        assert_ne!(a[3 * 11..], b[3 * 11..]);
        // The same token at another position gets another output (RoPE is applied).
        let c = logits(&cfg, &w, &[7, 7]);
        assert_ne!(c[..11], c[11..]);
    }

    #[test]
    fn rope_rotates_without_changing_norms() {
        let (cfg, _) = tiny();
        let (cos, sin) = cfg.rope(3).unwrap();
        let x = Tensor::from_vec(
            (0..12).map(|k| k as f32 - 5.0).collect::<Vec<_>>(),
            (1, 1, 3, 4),
            &Device::Cpu,
        )
        .unwrap();
        let y = Config::apply_rope(&x, &cos, &sin).unwrap();
        let nx: Vec<f32> = x
            .sqr()
            .unwrap()
            .sum(3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ny: Vec<f32> = y
            .sqr()
            .unwrap()
            .sum(3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in nx.iter().zip(&ny) {
            assert!((a - b).abs() < 1e-4 * a.max(1.0));
        }
        // Position 0 is not rotated.
        let y0: Vec<f32> = y.narrow(2, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(y0, vec![-5.0, -4.0, -3.0, -2.0]);
    }
}
