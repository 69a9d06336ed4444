//! Sentence embeddings straight from a uc pack: the BERT encoder (sentence-transformers MiniLM's
//! layout, the one [`crate::bert`] runs through candle) over a model's [`Files`], every linear map
//! reading its uc record in place ([`Weight::matmul`]: each row tile decoded once for all the
//! sequence's tokens), the embedding tables row by row from their records.
//!
//! One sequence at a time, without padding: mean pooling over its tokens, then L2 normalisation
//! (what sentence-transformers computes for an unpadded input). As for generation, a pack and its
//! `uc unpack` output (without overlays) give the same embedding bit for bit on any thread count.

use crate::arch::model_err;
use crate::bert::Config;
use crate::run::{Files, Weight};
use rayon::prelude::*;
use std::path::Path;
use uc_decode::dot::dot_f32;
use uc_encode::error::{CompressError, bad};

/// A linear map and its bias.
struct Linear<'a> {
    w: Weight<'a>,
    b: Vec<f32>,
}

impl Linear<'_> {
    /// `Y = X·Wᵀ + b` for `X` of whole rows.
    fn apply(&self, x: &[f32], y: &mut [f32]) -> Result<(), String> {
        self.w.matmul(x, y)?;
        for row in y.chunks_exact_mut(self.b.len()) {
            row.iter_mut().zip(&self.b).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }
}

/// A LayerNorm's gain and bias.
struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer<'a> {
    q: Linear<'a>,
    k: Linear<'a>,
    v: Linear<'a>,
    o: Linear<'a>,
    attn_norm: Norm,
    inter: Linear<'a>,
    out: Linear<'a>,
    out_norm: Norm,
}

/// A BERT encoder over a model's [`Files`].
pub struct Bert<'a> {
    /// The configuration.
    pub cfg: Config,
    /// Longest input in tokens: the model's positions, or sentence-transformers'
    /// `max_seq_length` (`sentence_bert_config.json`) when it is smaller.
    pub max_tokens: usize,
    /// Whether the embedding is L2-normalised: a `Normalize` module in `modules.json`, or no
    /// `modules.json` at all (a plain BERT directory).
    pub normalize: bool,
    word: Weight<'a>,
    position: Weight<'a>,
    token_type: Weight<'a>,
    embed_norm: Norm,
    layers: Vec<Layer<'a>>,
}

impl<'a> Bert<'a> {
    /// Assembles the encoder from `config.json` in `dir` and the tensors of `files`, checking
    /// every shape against the configuration.
    pub fn load(dir: &Path, files: &'a Files) -> Result<Bert<'a>, CompressError> {
        let cpath = dir.join("config.json");
        let v: serde_json::Value =
            serde_json::from_slice(&uc_pack::fs::read_capped(&cpath, 1 << 20).map_err(|e| bad(&cpath, e.to_string()))?)
                .map_err(|e| bad(&cpath, format!("invalid JSON: {e}")))?;
        let arch = v["model_type"].as_str().unwrap_or("");
        if arch != "bert" {
            return Err(model_err(
                dir,
                format!("sentence embeddings run BERT models (model_type bert), not {arch:?}"),
            ));
        }
        let cfg = Config::from_json(&cpath, &v)?;
        let (max_tokens, normalize) = sentence_transformers(dir, cfg.max_positions)?;
        let h = cfg.hidden;
        let shaped = |name: &str, rows: Option<usize>, cols: usize| -> Result<Weight<'a>, CompressError> {
            let w = files.weight(name)?;
            if rows.is_some_and(|r| r != w.rows()) || w.cols() != cols || w.rows() == 0 {
                return Err(model_err(
                    dir,
                    format!(
                        "tensor {name} is {}x{}, the configuration needs {}x{cols}",
                        w.rows(),
                        w.cols(),
                        rows.map_or("N".to_string(), |r| r.to_string())
                    ),
                ));
            }
            Ok(w)
        };
        let vector = |name: &str, n: usize| -> Result<Vec<f32>, CompressError> {
            let x = files.vector(name)?;
            if x.len() != n {
                return Err(model_err(
                    dir,
                    format!("tensor {name} has {} values, the configuration needs {n}", x.len()),
                ));
            }
            Ok(x)
        };
        let norm = |p: &str| -> Result<Norm, CompressError> {
            Ok(Norm {
                g: vector(&format!("{p}.weight"), h)?,
                b: vector(&format!("{p}.bias"), h)?,
            })
        };
        let linear = |p: &str, rows: Option<usize>, cols: usize| -> Result<Linear<'a>, CompressError> {
            let w = shaped(&format!("{p}.weight"), rows, cols)?;
            let b = vector(&format!("{p}.bias"), w.rows())?;
            Ok(Linear { w, b })
        };
        let position = shaped("embeddings.position_embeddings.weight", None, h)?;
        if position.rows() < cfg.max_positions {
            return Err(model_err(
                dir,
                format!(
                    "embeddings.position_embeddings.weight has {} rows, max_position_embeddings is {}",
                    position.rows(),
                    cfg.max_positions
                ),
            ));
        }
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("encoder.layer.{i}.");
            let inter = linear(&format!("{p}intermediate.dense"), None, h)?;
            let ffn = inter.w.rows();
            layers.push(Layer {
                q: linear(&format!("{p}attention.self.query"), Some(h), h)?,
                k: linear(&format!("{p}attention.self.key"), Some(h), h)?,
                v: linear(&format!("{p}attention.self.value"), Some(h), h)?,
                o: linear(&format!("{p}attention.output.dense"), Some(h), h)?,
                attn_norm: norm(&format!("{p}attention.output.LayerNorm"))?,
                inter,
                out: linear(&format!("{p}output.dense"), Some(h), ffn)?,
                out_norm: norm(&format!("{p}output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word: shaped("embeddings.word_embeddings.weight", None, h)?,
            position,
            token_type: shaped("embeddings.token_type_embeddings.weight", None, h)?,
            embed_norm: norm("embeddings.LayerNorm")?,
            layers,
            cfg,
            max_tokens,
            normalize,
        })
    }

    /// Rows of the word-embedding table (the vocabulary).
    pub fn vocab(&self) -> usize {
        self.word.rows()
    }

    /// LayerNorm of every row of `x` in place (the order of [`Config`]'s candle version: the
    /// mean, the centred values, their mean square, then `xc / sqrt(var + eps) · g + b`).
    fn layer_norm(&self, x: &mut [f32], n: &Norm) {
        let h = self.cfg.hidden;
        let eps = self.cfg.eps as f32;
        for row in x.chunks_exact_mut(h) {
            let mu = row.iter().sum::<f32>() / h as f32;
            row.iter_mut().for_each(|v| *v -= mu);
            let var = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
            let d = (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&n.g).zip(&n.b) {
                *v = *v / d * g + b;
            }
        }
    }

    /// Moves the layers' records to `gpu` (their products run there; the embeddings' row
    /// lookups stay on the CPU). Returns the records moved; refuses a model with none.
    #[cfg(feature = "wgpu")]
    pub fn to_gpu(&mut self, gpu: &crate::run::Gpu) -> Result<usize, CompressError> {
        let mut n = 0;
        for (i, l) in self.layers.iter_mut().enumerate() {
            for w in [
                &mut l.q.w,
                &mut l.k.w,
                &mut l.v.w,
                &mut l.o.w,
                &mut l.inter.w,
                &mut l.out.w,
            ] {
                n += usize::from(
                    w.to_gpu(gpu)
                        .map_err(|e| crate::run::gpu_err(&format!("layer {i}"), e))?,
                );
            }
        }
        crate::run::gpu_count(n)
    }

    /// The sentence embedding of one tokenized sequence (special tokens included): `hidden`
    /// values of unit L2 norm.
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>, String> {
        let c = &self.cfg;
        let n = tokens.len();
        if n == 0 {
            return Err("no tokens to embed".into());
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= self.vocab()) {
            return Err(format!("token {t} is outside the vocabulary of {}", self.vocab()));
        }
        if n > c.max_positions {
            return Err(format!(
                "the sequence has {n} tokens, more than the model's {} positions",
                c.max_positions
            ));
        }
        let h = c.hidden;
        let (nh, hd) = (c.heads, h / c.heads);
        let mut x = vec![0f32; n * h];
        let (mut p, mut tt) = (vec![0f32; h], vec![0f32; h]);
        self.token_type.row(0, &mut tt);
        for (i, (t, xt)) in tokens.iter().zip(x.chunks_exact_mut(h)).enumerate() {
            self.word.row(*t as usize, xt);
            self.position.row(i, &mut p);
            for ((a, b), c) in xt.iter_mut().zip(&p).zip(&tt) {
                *a = *a + b + c;
            }
        }
        self.layer_norm(&mut x, &self.embed_norm);
        let (mut q, mut k, mut v) = (vec![0f32; n * h], vec![0f32; n * h], vec![0f32; n * h]);
        let (mut ctx, mut a) = (vec![0f32; n * h], vec![0f32; n * h]);
        let scale = 1.0 / (hd as f32).sqrt();
        for l in &self.layers {
            l.q.apply(&x, &mut q)?;
            l.k.apply(&x, &mut k)?;
            l.v.apply(&x, &mut v)?;
            // One task per (token, head); every token attends to every token (no padding).
            ctx.par_chunks_mut(hd).enumerate().for_each(|(th, out)| {
                let (i, head) = (th / nh, th % nh);
                let qh = &q[(i * nh + head) * hd..(i * nh + head + 1) * hd];
                let mut s: Vec<f32> = (0..n)
                    .map(|j| dot_f32(qh, &k[(j * nh + head) * hd..(j * nh + head + 1) * hd]) * scale)
                    .collect();
                let mx = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for e in s.iter_mut() {
                    *e = (*e - mx).exp();
                    sum += *e;
                }
                out.fill(0.0);
                for (j, e) in s.iter().enumerate() {
                    let pj = e / sum;
                    let vj = &v[(j * nh + head) * hd..(j * nh + head + 1) * hd];
                    out.iter_mut().zip(vj).for_each(|(a, b)| *a += pj * b);
                }
            });
            l.o.apply(&ctx, &mut a)?;
            a.iter_mut().zip(&x).for_each(|(a, b)| *a += b);
            self.layer_norm(&mut a, &l.attn_norm);
            let mut m = vec![0f32; n * l.inter.w.rows()];
            l.inter.apply(&a, &mut m)?;
            // GELU with erf, in candle's formula (the reference forward pass).
            for g in m.iter_mut() {
                *g = (candle_core::cpu::erf::erf_f32(*g * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * *g;
            }
            l.out.apply(&m, &mut x)?;
            x.iter_mut().zip(&a).for_each(|(o, a)| *o += a);
            self.layer_norm(&mut x, &l.out_norm);
        }
        let mut e = vec![0f32; h];
        for xt in x.chunks_exact(h) {
            e.iter_mut().zip(xt).for_each(|(a, b)| *a += b);
        }
        e.iter_mut().for_each(|v| *v /= n as f32);
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        if self.normalize && norm > 0.0 {
            e.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(e)
    }
}

/// Reads a JSON file of the model directory (at most 1 MiB), `None` when it is absent.
fn json_file(dir: &Path, rel: &str) -> Result<Option<serde_json::Value>, CompressError> {
    let p = dir.join(rel);
    if !p.exists() {
        return Ok(None);
    }
    let b = uc_pack::fs::read_capped(&p, 1 << 20)?;
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| bad(&p, format!("invalid JSON: {e}")))
}

/// sentence-transformers' configuration around the encoder: the longest input (`max_seq_length`,
/// within `positions`) and whether the embedding is normalised. Only mean pooling is built: a
/// pooling module configured otherwise (CLS, max, mean-sqrt-len) is refused, not approximated.
fn sentence_transformers(dir: &Path, positions: usize) -> Result<(usize, bool), CompressError> {
    let max_tokens = json_file(dir, "sentence_bert_config.json")?
        .and_then(|v| v["max_seq_length"].as_u64())
        .map_or(positions, |m| positions.min(m.max(1) as usize));
    let Some(modules) = json_file(dir, "modules.json")? else {
        return Ok((max_tokens, true));
    };
    let modules = modules.as_array().cloned().unwrap_or_default();
    let kind = |m: &serde_json::Value, k: &str| m["type"].as_str().is_some_and(|t| t.ends_with(k));
    for m in modules.iter().filter(|m| kind(m, ".Pooling")) {
        let rel = format!("{}/config.json", m["path"].as_str().unwrap_or(""));
        let Some(c) = json_file(dir, &rel)? else { continue };
        let on = |k: &str| c[k].as_bool() == Some(true);
        let others = [
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        ];
        if !on("pooling_mode_mean_tokens") || others.iter().any(|k| on(k)) {
            return Err(model_err(
                dir,
                format!("{rel}: only mean pooling (pooling_mode_mean_tokens alone) is built"),
            ));
        }
    }
    if let Some(m) = modules
        .iter()
        .find(|m| !(kind(m, ".Transformer") || kind(m, ".Pooling") || kind(m, ".Normalize")))
    {
        return Err(model_err(
            dir,
            format!(
                "modules.json: the module {} is not built (Transformer, Pooling, Normalize are)",
                m["type"]
            ),
        ));
    }
    Ok((max_tokens, modules.iter().any(|m| kind(m, ".Normalize"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Weights;
    use candle_core::{Device, Tensor};
    use uc_decode::Record;
    use uc_pack::PackWriter;
    use uc_pack::safetensors::Dtype;

    /// A two-layer BERT: hidden 16, 4 heads, FFN 32, 13 tokens, 8 positions.
    fn tiny() -> (Config, Weights) {
        let cfg = Config {
            hidden: 16,
            num_layers: 2,
            heads: 4,
            eps: 1e-12,
            max_positions: 8,
        };
        let mut seed = 5u64;
        let mut rnd = |n: usize, s: f32, at: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    at + (((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * s
                })
                .collect()
        };
        let mut w = Weights::default();
        let mut put = |name: String, shape: &[usize], v: Vec<f32>| {
            w.map.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
        };
        put(
            "embeddings.word_embeddings.weight".into(),
            &[13, 16],
            rnd(208, 1.0, 0.0),
        );
        put(
            "embeddings.position_embeddings.weight".into(),
            &[8, 16],
            rnd(128, 0.5, 0.0),
        );
        put(
            "embeddings.token_type_embeddings.weight".into(),
            &[2, 16],
            rnd(32, 0.5, 0.0),
        );
        put("embeddings.LayerNorm.weight".into(), &[16], rnd(16, 0.2, 1.0));
        put("embeddings.LayerNorm.bias".into(), &[16], rnd(16, 0.2, 0.0));
        for i in 0..2 {
            let p = format!("encoder.layer.{i}.");
            for (n, o, inn) in [
                ("attention.self.query", 16, 16),
                ("attention.self.key", 16, 16),
                ("attention.self.value", 16, 16),
                ("attention.output.dense", 16, 16),
                ("intermediate.dense", 32, 16),
                ("output.dense", 16, 32),
            ] {
                put(format!("{p}{n}.weight"), &[o, inn], rnd(o * inn, 0.8, 0.0));
                put(format!("{p}{n}.bias"), &[o], rnd(o, 0.2, 0.0));
            }
            for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
                put(format!("{p}{n}.weight"), &[16], rnd(16, 0.2, 1.0));
                put(format!("{p}{n}.bias"), &[16], rnd(16, 0.2, 0.0));
            }
        }
        (cfg, w)
    }

    /// Writes `w` as a pack: matrices as 4-bit records (`Some(true)`) or as the f32 values those
    /// records decode to (`Some(false)`), or all verbatim (`None`); vectors verbatim.
    fn write(dir: &Path, cfg: &Config, w: &Weights, packed: Option<bool>) {
        let mut names: Vec<&String> = w.map.keys().collect();
        names.sort();
        let mut pw = PackWriter::new(dir).unwrap();
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for name in names {
            let t = &w.map[name];
            let shape: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            match packed {
                Some(as_record) if shape.len() == 2 => {
                    let rec = uc_pack::testkit::record(&v, &shape, 4);
                    if as_record {
                        pw.add_record(name, &rec, None).unwrap();
                    } else {
                        let mut d = vec![0f32; v.len()];
                        Record::parse(&rec).unwrap().decode_into(&mut d).unwrap();
                        pw.add_verbatim(name, Dtype::F32, &shape, &le(&d)).unwrap();
                    }
                }
                _ => pw.add_verbatim(name, Dtype::F32, &shape, &le(&v)).unwrap(),
            }
        }
        let config = serde_json::json!({
            "model_type": "bert", "hidden_size": cfg.hidden, "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.heads, "layer_norm_eps": cfg.eps, "hidden_act": "gelu",
            "max_position_embeddings": cfg.max_positions, "vocab_size": 13,
        });
        let cpath = dir.with_extension("config.json");
        std::fs::write(&cpath, config.to_string()).unwrap();
        pw.copy_file("config.json", &cpath).unwrap();
        pw.set_created_at("2026-01-01T00:00:00Z").unwrap();
        pw.finish().unwrap();
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("uc-embed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn embed(dir: &Path, ids: &[u32]) -> Vec<f32> {
        let files = Files::open(dir).unwrap();
        Bert::load(dir, &files).unwrap().embed(ids).unwrap()
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn a_bert_pack_on_a_gpu_gives_the_cpu_embedding_within_the_kernel_bound() {
        let Some(gpu) = crate::run::tests::gpu_or_skip() else {
            return;
        };
        let (cfg, w) = tiny();
        let d = scratch("gpu");
        let dir = d.join("packed");
        write(&dir, &cfg, &w, Some(true));
        let ids = [1u32, 5, 7, 2, 9, 3];
        let cpu = embed(&dir, &ids);
        let files = Files::open(&dir).unwrap();
        let mut m = Bert::load(&dir, &files).unwrap();
        assert_eq!(m.to_gpu(&gpu).unwrap(), 6 * cfg.num_layers);
        let g = m.embed(&ids).unwrap();
        let worst = g.iter().zip(&cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{worst}");
        assert_eq!(g, m.embed(&ids).unwrap(), "the same bits twice");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_embedding_matches_the_candle_forward_pass() {
        let (cfg, w) = tiny();
        let d = scratch("candle");
        let dir = d.join("dense");
        write(&dir, &cfg, &w, None);
        for ids in [&[2u32, 5, 7, 1, 3][..], &[0], &[12, 11, 10, 9, 8, 7, 6, 5]] {
            let t = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
            let want: Vec<f32> = cfg
                .sentence_embedding(&w, &t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = embed(&dir, ids);
            assert_eq!(got.len(), 16);
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5, "{ids:?} value {k}: {a} vs {b}");
            }
        }
        // Positions and the vocabulary bound the input.
        let files = Files::open(&dir).unwrap();
        let m = Bert::load(&dir, &files).unwrap();
        assert!(m.embed(&[1; 9]).unwrap_err().contains("8 positions"));
        assert!(m.embed(&[13]).unwrap_err().contains("outside the vocabulary"));
        assert!(m.embed(&[]).is_err());
        // A Llama directory is not a BERT model.
        let err = crate::run::Llama::load(&dir, &files).err().unwrap().to_string();
        assert!(err.contains("\"bert\""), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn sentence_transformers_modules_set_pooling_normalisation_and_length() {
        let (cfg, w) = tiny();
        let d = scratch("st");
        let dir = d.join("dense");
        write(&dir, &cfg, &w, None);
        // The pack's files are verified; an HF directory of the same tensors takes extra files.
        let hf = d.join("hf");
        std::fs::create_dir_all(hf.join("1_Pooling")).unwrap();
        for f in ["model.safetensors", "config.json"] {
            std::fs::copy(dir.join(f), hf.join(f)).unwrap();
        }
        let ids = [2u32, 5, 7, 1, 3];
        let files = Files::open(&hf).unwrap();
        let plain = Bert::load(&hf, &files).unwrap();
        assert!(plain.normalize && plain.max_tokens == 8);
        let e = plain.embed(&ids).unwrap();
        let st = |normalize: bool| {
            let mut m = vec![
                serde_json::json!({"type": "sentence_transformers.models.Transformer", "path": ""}),
                serde_json::json!({"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}),
            ];
            if normalize {
                m.push(serde_json::json!({"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"}));
            }
            std::fs::write(hf.join("modules.json"), serde_json::Value::from(m).to_string()).unwrap();
        };
        let pooling = |cls: bool| {
            let c = serde_json::json!({"pooling_mode_mean_tokens": !cls, "pooling_mode_cls_token": cls});
            std::fs::write(hf.join("1_Pooling/config.json"), c.to_string()).unwrap();
        };
        st(true);
        pooling(false);
        std::fs::write(hf.join("sentence_bert_config.json"), r#"{"max_seq_length": 6}"#).unwrap();
        let m = Bert::load(&hf, &files).unwrap();
        assert!(m.normalize && m.max_tokens == 6);
        assert_eq!(m.embed(&ids).unwrap(), e);
        st(false);
        let m = Bert::load(&hf, &files).unwrap();
        let raw = m.embed(&ids).unwrap();
        let n = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() > 1e-3, "not normalised: {n}");
        for (a, b) in raw.iter().zip(&e) {
            assert!((a / n - b).abs() < 1e-5);
        }
        pooling(true);
        let err = Bert::load(&hf, &files).err().unwrap().to_string();
        assert!(err.contains("only mean pooling"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pack_and_its_decoded_weights_give_the_same_embedding_on_any_thread_count() {
        let (cfg, w) = tiny();
        let d = scratch("same");
        let (packed, unpacked) = (d.join("packed"), d.join("unpacked"));
        write(&packed, &cfg, &w, Some(true));
        write(&unpacked, &cfg, &w, Some(false));
        let ids = [2u32, 9, 4, 1, 5, 3];
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let a = bits(embed(&packed, &ids));
        assert_eq!(a, bits(embed(&unpacked, &ids)));
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(a, bits(one.install(|| embed(&packed, &ids))));
        // The 4-bit model is near the source, not equal to it.
        let dense = d.join("dense");
        write(&dense, &cfg, &w, None);
        let (x, y) = (embed(&packed, &ids), embed(&dense, &ids));
        let cos: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9 && x != y, "cosine {cos}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
