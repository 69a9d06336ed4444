//! `uc eval`: perplexity of a model directory or pack on a text, the comparison of a pack (or a
//! k-quant of the same weights) with its source, and for BERT the cosine similarity of sentence
//! embeddings.

use crate::arch::{Arch, load_weights, model_err};
use crate::nn::{Get, Weights};
use crate::text::{load_tokenizer, read_text, windows};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;
use uc_encode::error::CompressError;
use uc_encode::policy::{DEFAULT_SKIP, MIN_QUANTIZED_WEIGHTS, glob_match};

/// What to evaluate and on which text.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The text (`.txt` or `.jsonl`).
    pub text: PathBuf,
    /// Window length in tokens.
    pub ctx: usize,
    /// At most this many tokens of the text (whole windows).
    pub max_tokens: usize,
    /// Windows per forward pass.
    pub batch: usize,
}

/// A k-quant of ggml (candle's port) applied to the same tensors `uc compress` quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KQuant {
    /// Q2_K (2.625 bpw).
    Q2K,
    /// Q3_K (3.4375 bpw).
    Q3K,
    /// Q4_K (4.5 bpw).
    Q4K,
    /// Q5_K (5.5 bpw).
    Q5K,
    /// Q6_K (6.5625 bpw).
    Q6K,
    /// Q8_0 (8.5 bpw).
    Q8_0,
}

impl KQuant {
    /// Parses `q3k`, `q4_k`, `Q5_K`, `q8_0`, ….
    pub fn parse(s: &str) -> Result<KQuant, String> {
        match s.to_ascii_lowercase().replace('_', "").as_str() {
            "q2k" => Ok(KQuant::Q2K),
            "q3k" => Ok(KQuant::Q3K),
            "q4k" => Ok(KQuant::Q4K),
            "q5k" => Ok(KQuant::Q5K),
            "q6k" => Ok(KQuant::Q6K),
            "q80" => Ok(KQuant::Q8_0),
            _ => Err(format!("unknown k-quant {s:?} (q2k, q3k, q4k, q5k, q6k, q8_0)")),
        }
    }
    fn dtype(self) -> GgmlDType {
        match self {
            KQuant::Q2K => GgmlDType::Q2K,
            KQuant::Q3K => GgmlDType::Q3K,
            KQuant::Q4K => GgmlDType::Q4K,
            KQuant::Q5K => GgmlDType::Q5K,
            KQuant::Q6K => GgmlDType::Q6K,
            KQuant::Q8_0 => GgmlDType::Q8_0,
        }
    }
    /// Name as ggml writes it.
    pub fn name(self) -> &'static str {
        match self {
            KQuant::Q2K => "Q2_K",
            KQuant::Q3K => "Q3_K",
            KQuant::Q4K => "Q4_K",
            KQuant::Q5K => "Q5_K",
            KQuant::Q6K => "Q6_K",
            KQuant::Q8_0 => "Q8_0",
        }
    }
    /// Bits per weight of the format, everything stored (block scales and mins included).
    pub fn bpw(self) -> f64 {
        let d = self.dtype();
        d.type_size() as f64 * 8.0 / d.block_size() as f64
    }
}

/// Replaces every tensor that `uc compress` would quantize by default (2-D, at least
/// [`MIN_QUANTIZED_WEIGHTS`] weights, name matching no default skip pattern) with its k-quant,
/// dequantized: the outer tensors (embeddings, head, [`uc_encode::policy::OUTER`]) with Q6_K (or `k`
/// where it is finer) as
/// llama.cpp's `_M` mixes quantize the output head, the others with `k`. The tensor is quantized flattened into rows of the k-quant's block size (256 for the
/// K types), so that row lengths that are not a multiple of 256 (576 in SmolLM2) are still
/// quantized with that type instead of llama.cpp's fallback to a legacy type. Returns the number of
/// tensors and weights replaced.
pub fn apply_kquant(dir: &Path, w: &mut Weights, k: KQuant) -> Result<(usize, u64), CompressError> {
    let mut names: Vec<String> = w
        .map
        .iter()
        .filter(|(n, t)| {
            t.rank() == 2
                && t.elem_count() as u64 >= MIN_QUANTIZED_WEIGHTS
                && !DEFAULT_SKIP.iter().any(|p| glob_match(p, n))
        })
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    let mut weights = 0u64;
    for n in &names {
        let t = &w.map[n];
        let shape = t.dims().to_vec();
        let count = t.elem_count();
        // Outer tensors at Q6_K, or at the tier's type where that is finer (Q8_0).
        let dtype = if uc_encode::policy::is_outer(n) && k.bpw() < KQuant::Q6K.bpw() {
            GgmlDType::Q6K
        } else {
            k.dtype()
        };
        let bs = dtype.block_size();
        if !count.is_multiple_of(bs) {
            return Err(model_err(
                dir,
                format!("tensor {n}: {count} weights are not a multiple of {bs}"),
            ));
        }
        let err = |e: candle_core::Error| model_err(dir, format!("tensor {n}: {}: {e}", k.name()));
        let flat = t.reshape((count / bs, bs)).map_err(err)?;
        let q = QTensor::quantize(&flat, dtype).map_err(err)?;
        let back = q.dequantize(&Device::Cpu).map_err(err)?.reshape(shape).map_err(err)?;
        w.map.insert(n.clone(), back);
        weights += count as u64;
    }
    Ok((names.len(), weights))
}

/// Perplexity of one model.
#[derive(Debug, Clone)]
pub struct PplReport {
    /// The model directory or pack.
    pub model: PathBuf,
    /// Windows evaluated.
    pub windows: usize,
    /// Tokens scored (every token of a window but the first).
    pub tokens: usize,
    /// Mean negative log-likelihood per token, nats.
    pub nll: f64,
    /// `exp(nll)`.
    pub ppl: f64,
    /// Top-1 accuracy on the text's next tokens.
    pub top1_accuracy: f64,
    /// SHA-256 of the text file.
    pub text_sha256: String,
    /// Seconds of the forward passes.
    pub seconds: f64,
}

#[derive(Default)]
struct Scored {
    nll: f64,
    hits: usize,
    tokens: usize,
    top: Vec<u32>,
}

impl Scored {
    /// Adds one batch: `nll_of_logits`'s result for windows of `ids` `[b, t]` (b·(t − 1) positions).
    fn add(&mut self, (nll, hits, top): (f64, usize, Vec<u32>), ids: &Tensor) -> candle_core::Result<()> {
        let (b, t) = ids.dims2()?;
        self.nll += nll;
        self.hits += hits;
        self.tokens += b * (t - 1);
        self.top.extend(top);
        Ok(())
    }
}

fn score(dir: &Path, arch: &Arch, w: &dyn Get, wins: &[Vec<u32>], batch: usize) -> Result<Scored, CompressError> {
    let Arch::Llama(cfg) = arch else {
        return Err(model_err(
            dir,
            "perplexity needs a causal language model (llama family); for BERT use `uc eval compare`",
        ));
    };
    let mut s = Scored::default();
    for chunk in wins.chunks(batch.max(1)) {
        let t = chunk[0].len();
        let flat: Vec<u32> = chunk.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (chunk.len(), t), &Device::Cpu).map_err(|e| model_err(dir, e.to_string()))?;
        cfg.nll(w, &ids)
            .and_then(|r| s.add(r, &ids))
            .map_err(|e| model_err(dir, format!("forward pass: {e}")))?;
    }
    Ok(s)
}

/// A model to evaluate: a directory or pack, optionally with a k-quant applied to its weights.
pub fn load_model(dir: &Path, kquant: Option<KQuant>) -> Result<(Arch, Weights), CompressError> {
    let arch = Arch::load(dir)?;
    let mut w = load_weights(dir)?;
    if let Some(k) = kquant {
        apply_kquant(dir, &mut w, k)?;
    }
    Ok((arch, w))
}

/// `uc eval ppl`.
pub fn perplexity(dir: &Path, kquant: Option<KQuant>, opts: &EvalOptions) -> Result<PplReport, CompressError> {
    let text = read_text(&opts.text)?;
    let (arch, w) = load_model(dir, kquant)?;
    let tok = load_tokenizer(dir)?;
    let wins = windows(
        dir,
        &arch,
        &tok,
        &text.text,
        opts.ctx,
        opts.max_tokens,
        &opts.text.display().to_string(),
    )?;
    let start = Instant::now();
    let s = score(dir, &arch, &w, &wins, opts.batch)?;
    Ok(report(dir, &wins, &s, &text.sha256, start))
}

fn report(dir: &Path, wins: &[Vec<u32>], s: &Scored, sha: &str, start: Instant) -> PplReport {
    let nll = s.nll / s.tokens.max(1) as f64;
    PplReport {
        model: dir.to_path_buf(),
        windows: wins.len(),
        tokens: s.tokens,
        nll,
        ppl: nll.exp(),
        top1_accuracy: s.hits as f64 / s.tokens.max(1) as f64,
        text_sha256: sha.to_string(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// `uc eval compare` for a language model.
#[derive(Debug, Clone)]
pub struct PplComparison {
    /// The source.
    pub source: PplReport,
    /// The pack (or k-quant).
    pub candidate: PplReport,
    /// `PPL(candidate) / PPL(source)`.
    pub ppl_ratio: f64,
    /// Fraction of positions where both models' top-1 next token agree.
    pub top1_agreement: f64,
    /// Mean over the scored positions of `KL(p_source ‖ p_candidate)` of the next-token
    /// distributions, in nats.
    pub mean_kl: f64,
}

/// `uc eval compare` for BERT: sentence-embedding similarity.
#[derive(Debug, Clone)]
pub struct EmbedComparison {
    /// Windows (pseudo-sentences) compared.
    pub windows: usize,
    /// Mean cosine similarity of the two models' embeddings.
    pub mean_cosine: f64,
    /// Smallest cosine similarity.
    pub min_cosine: f64,
    /// SHA-256 of the text file.
    pub text_sha256: String,
    /// Seconds of the forward passes.
    pub seconds: f64,
}

/// Result of `uc eval compare`.
#[derive(Debug, Clone)]
pub enum Comparison {
    /// Language model.
    Ppl(PplComparison),
    /// BERT sentence embeddings.
    Embed(EmbedComparison),
}

/// Compares `candidate` (a pack or model directory; with `kquant`, the source's own weights under
/// that k-quant when `candidate` is None) against `source` on the same token windows.
pub fn compare(
    source: &Path,
    candidate: Option<&Path>,
    kquant: Option<KQuant>,
    opts: &EvalOptions,
) -> Result<Comparison, CompressError> {
    let text = read_text(&opts.text)?;
    let arch = Arch::load(source)?;
    let tok = load_tokenizer(source)?;
    let wins = windows(
        source,
        &arch,
        &tok,
        &text.text,
        opts.ctx,
        opts.max_tokens,
        &opts.text.display().to_string(),
    )?;
    let teacher = load_weights(source)?;
    let cand_dir = candidate.unwrap_or(source);
    let mut student = if candidate.is_some() {
        load_weights(cand_dir)?
    } else {
        Weights::default()
    };
    if candidate.is_none() {
        for (n, t) in &teacher.map {
            student.map.insert(n.clone(), t.clone());
        }
    }
    if let Some(k) = kquant {
        apply_kquant(cand_dir, &mut student, k)?;
    }
    match &arch {
        Arch::Llama(cfg) => {
            // Both models on each batch of windows, so that the next-token distributions can be
            // compared (KL) without keeping either model's logits beyond the batch. The per-model
            // sums are those `uc eval ppl` computes, in the same order.
            let (mut a, mut b) = (Scored::default(), Scored::default());
            let (mut secs_a, mut secs_b, mut kl) = (0f64, 0f64, 0f64);
            for chunk in wins.chunks(opts.batch.max(1)) {
                let t = chunk[0].len();
                let flat: Vec<u32> = chunk.iter().flatten().copied().collect();
                let err = |dir: &Path| {
                    let dir = dir.to_path_buf();
                    move |e: candle_core::Error| model_err(&dir, format!("forward pass: {e}"))
                };
                let ids = Tensor::from_vec(flat, (chunk.len(), t), &Device::Cpu).map_err(err(source))?;
                let start = Instant::now();
                let la = cfg.next_token_logits(&teacher, &ids).map_err(err(source))?;
                crate::llama::nll_of_logits(&la, &ids)
                    .and_then(|r| a.add(r, &ids))
                    .map_err(err(source))?;
                secs_a += start.elapsed().as_secs_f64();
                let start = Instant::now();
                let lb = cfg.next_token_logits(&student, &ids).map_err(err(cand_dir))?;
                crate::llama::nll_of_logits(&lb, &ids)
                    .and_then(|r| b.add(r, &ids))
                    .map_err(err(cand_dir))?;
                secs_b += start.elapsed().as_secs_f64();
                kl += crate::llama::kl_sum(&la, &lb).map_err(err(cand_dir))?;
            }
            let now = Instant::now();
            let mut ra = report(source, &wins, &a, &text.sha256, now);
            let mut rb = report(cand_dir, &wins, &b, &text.sha256, now);
            (ra.seconds, rb.seconds) = (secs_a, secs_b);
            let agree = a.top.iter().zip(&b.top).filter(|(x, y)| x == y).count();
            Ok(Comparison::Ppl(PplComparison {
                ppl_ratio: rb.ppl / ra.ppl,
                top1_agreement: agree as f64 / a.top.len().max(1) as f64,
                mean_kl: kl / a.tokens.max(1) as f64,
                source: ra,
                candidate: rb,
            }))
        }
        Arch::Bert(cfg) => {
            let start = Instant::now();
            let (mut sum, mut min, mut n) = (0f64, f64::INFINITY, 0usize);
            for chunk in wins.chunks(opts.batch.max(1)) {
                let t = chunk[0].len();
                let flat: Vec<u32> = chunk.iter().flatten().copied().collect();
                let err = |e: candle_core::Error| model_err(source, format!("forward pass: {e}"));
                let cerr = |e: candle_core::Error| model_err(cand_dir, format!("forward pass: {e}"));
                let ids = Tensor::from_vec(flat, (chunk.len(), t), &Device::Cpu).map_err(err)?;
                let ea = cfg.sentence_embedding(&teacher, &ids).map_err(err)?;
                let eb = cfg.sentence_embedding(&student, &ids).map_err(cerr)?;
                let cos: Vec<f32> = (ea * eb)
                    .and_then(|p| p.sum(1))
                    .and_then(|c| c.to_vec1())
                    .map_err(err)?;
                for c in cos {
                    sum += f64::from(c);
                    min = min.min(f64::from(c));
                    n += 1;
                }
            }
            Ok(Comparison::Embed(EmbedComparison {
                windows: n,
                mean_cosine: sum / n.max(1) as f64,
                min_cosine: min,
                text_sha256: text.sha256,
                seconds: start.elapsed().as_secs_f64(),
            }))
        }
    }
}
