//! Calibrated encoding, `uc compress --calibration`: activation-aware overlay initialisation and
//! streaming per-layer distillation.
//!
//! The bits and overlay rank of every tensor are chosen data-free as without calibration (same
//! allocator, same budget); calibration changes what the overlay factors hold. Layer by layer:
//!
//! 1. Load layer `i` of the teacher (the source weights), one layer in memory.
//! 2. Run the teacher layer on the teacher's hidden states `X_T` (the target `Y_T`) and on the
//!    student's hidden states `X_S`, collecting the input Gram matrix `C = XᵀX / n` of every linear
//!    map from the latter.
//! 3. Quantize each linear map with GSQ (`W_base`, exactly as a decoder reconstructs it) and
//!    initialise its overlay from the activation-aware SVD of the residual `R = W − W_base`: with
//!    `C + δI = L Lᵀ` (Cholesky, `δ` = 1e-4 · mean diagonal), the best rank-`r` approximation of
//!    `R L` is `U V'`, and `U · (V' L⁻¹)` minimises `‖(R − U V) X‖` over rank-`r` products.
//! 4. Distil: `--distill-steps` steps of Adam on the factors of all the layer's linear maps at once,
//!    minimising the mean squared difference between the student layer's output on `X_S` and `Y_T`
//!    (full batch, cosine-decayed step size relative to each factor's RMS). The last layer of a
//!    causal language model is distilled on the logits instead: the mean over the calibration
//!    tokens of `KL(p_T ‖ p_S)`, where `p_T` and `p_S` are the softmax of the output head (the
//!    teacher's final norm and head, verbatim) applied to `Y_T` and to the student layer's
//!    output, computed in chunks of tokens. The factors are then rounded to bfloat16 as the
//!    record stores them; if the rounded trained factors do worse than the rounded initial ones
//!    on the same loss, the initial ones are kept.
//! 5. Write the layer's records, journal them and the new `(X_S, X_T)`, free the layer, go on.
//!
//! Tensors outside the transformer layers (a pooler, an untied output head when not skipped) are
//! encoded data-free. The embeddings are kept verbatim by default and are used as the teacher's.
//! Everything runs on the CPU in f32 with candle; results are journaled per layer, so an
//! interrupted run resumes at the first unfinished layer.

use crate::arch::{Arch, model_err};
use crate::nn::{Get, Weights, log_softmax_last};
use crate::text::{load_tokenizer, read_text, windows};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use uc_encode::calibrate::{CalibJob, CalibOptions, CalibReport, Calibrator, LayerReport, Objective};
use uc_encode::compress::seed_for;
use uc_encode::error::{CompressError, io};
use uc_encode::gsq::{GsqOptions, Importance, SubScales, quantize_parts_weighted};
use uc_encode::journal::{Encoded, journal_record, journaled_record, read_json, write_atomic, write_json};
use uc_encode::source::SourceModel;
use uc_encode::svd::low_rank;
use uc_encode::tensor::{Candidate, assemble};
#[cfg(test)]
use uc_format::num::f32_to_f16_bits;
use uc_format::num::{bf16_to_f32, f32_to_bf16_bits};

/// A candle error during the run: a numeric step failed (the journal is kept for the rerun).
fn cerr(dir: &Path, what: &str) -> impl Fn(candle_core::Error) -> CompressError + use<> {
    let dir = dir.to_path_buf();
    let what = what.to_string();
    move |e| CompressError::Numerics {
        path: dir.clone(),
        msg: format!("{what}: {e}"),
    }
}

/// A quantized map of the student: `W_base = (s0 ⊙ (1 + δ)) · grid[code]` per 64-weight block.
struct Quant {
    /// `grid[code]`, `[blocks, 64]`.
    g: Tensor,
    /// Block scales, `[blocks, 1]`.
    s0: Tensor,
    /// Trainable relative scale change (None when the tensor has a partial last block).
    delta: Option<Var>,
    rows: usize,
    cols: usize,
}

/// Logits per chunk of the logit stage: bounds its memory (about a dozen tensors of this many
/// f32 values live at once) whatever the number of calibration tokens and the vocabulary size.
const KL_CHUNK_LOGITS: usize = 1 << 22;

/// What a layer is distilled on.
enum Stage<'a> {
    /// Mean squared difference of the layer output and the teacher's `yt`.
    Mse { yt: &'a Tensor },
    /// Mean over tokens of `KL(p_T ‖ p_S)`, the next-token distributions through the teacher's
    /// final norm and head of `yt` (teacher) and of the student layer's output.
    Kl {
        head: &'a Weights,
        cfg: &'a crate::llama::Config,
        yt: &'a Tensor,
        /// Logits per chunk ([`KL_CHUNK_LOGITS`]).
        chunk_logits: usize,
    },
}

impl Stage<'_> {
    fn objective(&self) -> Objective {
        match self {
            Stage::Mse { .. } => Objective::Mse,
            Stage::Kl { .. } => Objective::Kl,
        }
    }

    /// The loss of the student output `y`.
    fn value(&self, y: &Tensor) -> candle_core::Result<f64> {
        match self {
            Stage::Mse { yt } => (y - *yt)?.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>(),
            Stage::Kl { .. } => Ok(self.kl_chunks(y, false)?.0),
        }
    }

    /// The gradients of the loss of `y` (computed by the caller from trainable variables) with
    /// respect to those variables. The logit stage is computed in chunks of tokens: the gradient
    /// `G = ∂KL/∂y` is accumulated chunk by chunk through the head alone, then carried through the
    /// layer by one backward pass of `Σ y ⊙ G` (the chain rule, exactly), so the `[tokens, vocab]`
    /// logits never exist at once.
    fn grads(&self, y: &Tensor) -> candle_core::Result<candle_core::backprop::GradStore> {
        match self {
            Stage::Mse { yt } => (y - *yt)?.sqr()?.mean_all()?.backward(),
            Stage::Kl { .. } => {
                let g = Tensor::cat(&self.kl_chunks(y, true)?.1, 0)?;
                (y * g.reshape(y.shape())?.detach())?.sum_all()?.backward()
            }
        }
    }

    /// The mean KL over all tokens of `y`, and (when `grad`) its gradient with respect to `y`, one
    /// `[chunk, hidden]` piece per chunk of tokens. Chunks are summed in token order.
    fn kl_chunks(&self, y: &Tensor, grad: bool) -> candle_core::Result<(f64, Vec<Tensor>)> {
        let Stage::Kl {
            head,
            cfg,
            yt,
            chunk_logits,
        } = self
        else {
            return Err(candle_core::Error::Msg("not the logit stage".into()));
        };
        let h = y.dim(candle_core::D::Minus1)?;
        let ys = y.detach().reshape(((), h))?;
        let yt = yt.reshape(((), h))?;
        let n = ys.dim(0)?;
        let chunk = (chunk_logits / cfg.vocab.max(1)).clamp(1, n.max(1));
        let (mut total, mut gs) = (0f64, Vec::new());
        let mut at = 0;
        while at < n {
            let len = chunk.min(n - at);
            let lt = log_softmax_last(&cfg.head(*head, &yt.narrow(0, at, len)?)?)?;
            let pt = lt.exp()?;
            let v = Var::from_tensor(&ys.narrow(0, at, len)?)?;
            let ls = log_softmax_last(&cfg.head(*head, v.as_tensor())?)?;
            let kl = ((pt * (lt - ls)?)?.sum_all()? / n as f64)?;
            total += kl.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if grad {
                let g = kl.backward()?;
                gs.push(match g.get(v.as_tensor()) {
                    Some(t) => t.clone(),
                    None => v.as_tensor().zeros_like()?,
                });
            }
            at += len;
        }
        Ok((total, gs))
    }
}

impl Quant {
    fn base(&self) -> candle_core::Result<Tensor> {
        let s = match &self.delta {
            Some(d) => self.s0.broadcast_mul(&(d.as_tensor() + 1.0)?)?,
            None => self.s0.clone(),
        };
        self.g.broadcast_mul(&s)?.reshape((self.rows, self.cols))
    }
}

/// The layer's weights as the student sees them: `W_base + U·V` for quantized maps, the teacher's
/// weight for everything else.
struct Student<'a> {
    teacher: &'a Weights,
    base: HashMap<String, Quant>,
    factors: HashMap<String, (Var, Var)>,
}

impl Get for Student<'_> {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        match (self.base.get(name), self.factors.get(name)) {
            (Some(q), Some((u, v))) => q.base()? + u.as_tensor().matmul(v.as_tensor())?,
            (Some(q), None) => q.base(),
            _ => self.teacher.get(name),
        }
    }
    fn has(&self, name: &str) -> bool {
        self.base.contains_key(name) || self.teacher.has(name)
    }
}

/// Rounds a tensor to bfloat16 values (kept as f32).
fn round_bf16(t: &Tensor) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let r: Vec<f32> = v.iter().map(|&x| bf16_to_f32(f32_to_bf16_bits(x))).collect();
    Tensor::from_vec(r, t.dims(), &Device::Cpu)
}

fn bf16_bits(t: &Tensor) -> candle_core::Result<Vec<u16>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|&x| f32_to_bf16_bits(x))
        .collect())
}

/// Cholesky factor `L` (lower, row-major) of the symmetric positive definite `a` `[n, n]`, f64.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    Some(l)
}

/// Activation-aware rank-`rank` factors of the residual `r` `[rows, cols]` for inputs with Gram
/// matrix `c` `[cols, cols]`: `(U [rows, rank], V [rank, cols])`, f32. None when `C` is unusable.
fn aware_factors(
    r: &[f32],
    rows: usize,
    cols: usize,
    c: &[f64],
    rank: usize,
    seed: u64,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let mean_diag = (0..cols).map(|j| c[j * cols + j]).sum::<f64>() / cols as f64;
    if mean_diag.is_nan() || mean_diag <= 0.0 {
        return None;
    }
    let mut a = c.to_vec();
    for j in 0..cols {
        a[j * cols + j] += 1e-4 * mean_diag;
    }
    let l = cholesky(&a, cols)?;
    // M = R L, rows of R times the lower-triangular L (f64 accumulation, fixed order).
    let mut m = vec![0f32; rows * cols];
    for i in 0..rows {
        let ri = &r[i * cols..(i + 1) * cols];
        let mi = &mut m[i * cols..(i + 1) * cols];
        for (j, mij) in mi.iter_mut().enumerate() {
            let mut s = 0f64;
            for (k, &rik) in ri.iter().enumerate().skip(j) {
                s += f64::from(rik) * l[k * cols + j];
            }
            *mij = s as f32;
        }
    }
    let lr = low_rank(&m, rows, cols, rank, seed);
    if lr.rank == 0 {
        return None;
    }
    // V = V' L⁻¹: each row x solves x L = v', i.e. Lᵀ xᵀ = v'ᵀ (back substitution).
    let mut v = vec![0f32; lr.rank * cols];
    for t in 0..lr.rank {
        let vp = &lr.v[t * cols..(t + 1) * cols];
        let mut x = vec![0f64; cols];
        for j in (0..cols).rev() {
            let mut s = f64::from(vp[j]);
            for k in j + 1..cols {
                s -= x[k] * l[k * cols + j];
            }
            x[j] = s / l[j * cols + j];
        }
        for j in 0..cols {
            v[t * cols + j] = x[j] as f32;
        }
    }
    let mut u = lr.u;
    if lr.rank < rank {
        // Pad with zero columns so the shapes match the allocated rank.
        let mut up = vec![0f32; rows * rank];
        for i in 0..rows {
            up[i * rank..i * rank + lr.rank].copy_from_slice(&u[i * lr.rank..(i + 1) * lr.rank]);
        }
        u = up;
        v.resize(rank * cols, 0.0);
    }
    Some((u, v))
}

/// Layer state journal: `X_S` then `X_T`, f32 little-endian, after a 3 × u64 shape header.
fn state_bytes(xs: &Tensor, xt: &Tensor) -> candle_core::Result<Vec<u8>> {
    let (b, t, h) = xs.dims3()?;
    let mut out = Vec::with_capacity(24 + 8 * b * t * h);
    for d in [b, t, h] {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    for x in [xs, xt] {
        for v in x.flatten_all()?.to_vec1::<f32>()? {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

fn state_from(bytes: &[u8], want: (usize, usize, usize)) -> Option<(Tensor, Tensor)> {
    let (b, t, h) = want;
    let n = b * t * h;
    if bytes.len() != 24 + 8 * n {
        return None;
    }
    let dims: Vec<u64> = bytes[..24]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    if dims != [b as u64, t as u64, h as u64] {
        return None;
    }
    let vals: Vec<f32> = bytes[24..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let xs = Tensor::from_vec(vals[..n].to_vec(), (b, t, h), &Device::Cpu).ok()?;
    let xt = Tensor::from_vec(vals[n..].to_vec(), (b, t, h), &Device::Cpu).ok()?;
    Some((xs, xt))
}

// Losses are journaled by their bits, so a resumed run reports exactly the same numbers.
/// `calib-layer-NNNN.json`: one layer's report in the journal (losses as their f64 bits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerEntry {
    layer: usize,
    objective: String,
    loss_base: u64,
    loss_svd: u64,
    loss_init: u64,
    loss_final: u64,
    distilled: bool,
}

impl LayerEntry {
    fn of(r: &LayerReport) -> Self {
        LayerEntry {
            layer: r.layer,
            objective: r.objective.name().into(),
            loss_base: r.loss_base.to_bits(),
            loss_svd: r.loss_svd.to_bits(),
            loss_init: r.loss_init.to_bits(),
            loss_final: r.loss_final.to_bits(),
            distilled: r.distilled,
        }
    }

    fn report(&self, path: &Path) -> Result<LayerReport, CompressError> {
        Ok(LayerReport {
            layer: self.layer,
            objective: Objective::from_name(&self.objective).ok_or_else(|| CompressError::Journal {
                path: path.to_path_buf(),
                msg: format!("unknown objective {:?}", self.objective),
            })?,
            loss_base: f64::from_bits(self.loss_base),
            loss_svd: f64::from_bits(self.loss_svd),
            loss_init: f64::from_bits(self.loss_init),
            loss_final: f64::from_bits(self.loss_final),
            distilled: self.distilled,
        })
    }
}

/// Checks before any work that calibration can run on `src` with `opts`: a supported
/// architecture, a tokenizer, a text giving at least one window, the embedding and layer tensors.
/// Returns the text's SHA-256.
fn precheck(src: &SourceModel, opts: &CalibOptions) -> Result<String, CompressError> {
    let dir = &src.dir;
    let arch = Arch::load(dir)?;
    if let Arch::Bert(c) = &arch
        && opts.ctx > c.max_positions
    {
        return Err(uc_encode::error::opt(
            "calibration.ctx",
            format!("{} is longer than the model's {} positions", opts.ctx, c.max_positions),
        ));
    }
    let tok = load_tokenizer(dir)?;
    let text = read_text(&opts.text)?;
    windows(dir, &arch, &tok, &text.text, opts.ctx, opts.tokens, &text_label(opts))?;
    if !src.tensors.iter().any(|t| arch.is_embedding(&t.name)) {
        return Err(uc_encode::error::bad(
            dir,
            "calibration: no embedding tensor of the expected name (model.embed_tokens.weight, or embeddings.* for BERT)",
        ));
    }
    for i in 0..arch.num_layers() {
        let p = arch.layer_prefix(i);
        if !src.tensors.iter().any(|t| t.name.starts_with(&p)) {
            return Err(uc_encode::error::bad(
                dir,
                format!(
                    "calibration: config.json has {} layers but no tensor starts with {p}",
                    arch.num_layers()
                ),
            ));
        }
    }
    Ok(text.sha256)
}

fn text_label(opts: &CalibOptions) -> String {
    format!(
        "calibration text {} (--calib-tokens / --calib-ctx)",
        opts.text.display()
    )
}

/// The calibrated encoder of `uc compress --calibration` (see the module documentation): plugs into
/// uc-encode's pipeline as its [`Calibrator`].
#[derive(Debug, Clone)]
pub struct CandleCalibrator {
    opts: CalibOptions,
}

impl CandleCalibrator {
    /// A calibrator with these options.
    pub fn new(opts: CalibOptions) -> Self {
        CandleCalibrator { opts }
    }
}

impl Calibrator for CandleCalibrator {
    fn options(&self) -> &CalibOptions {
        &self.opts
    }

    fn precheck(&self, src: &SourceModel) -> Result<String, CompressError> {
        precheck(src, &self.opts)
    }

    fn encode(&self, job: CalibJob<'_>) -> Result<(Vec<(usize, Encoded)>, CalibReport), CompressError> {
        encode_calibrated(job, &self.opts)
    }
}

/// Environment variable of a test hook: `UC_TEST_FAIL_LAYER=<k>` makes calibrating layer `k` fail
/// with a numeric error (as a failed forward pass would), to prove that such a failure keeps the
/// journal and the rerun resumes. Unset, it has no effect.
#[doc(hidden)]
pub const FAIL_LAYER_VAR: &str = "UC_TEST_FAIL_LAYER";

/// Calibrated phase 3 of `uc compress`: encodes the quantized tensors `job.plan` (tensor index →
/// choice) layer by layer, journaling into `job.work`. Returns the records (in `plan`'s order of
/// tensor index) and the report. `job.encode_free` encodes a tensor data-free (for tensors
/// outside the layers).
fn encode_calibrated(
    job: CalibJob<'_>,
    opts: &CalibOptions,
) -> Result<(Vec<(usize, Encoded)>, CalibReport), CompressError> {
    let CalibJob {
        src,
        work,
        plan,
        seed,
        subscales,
        resumed,
        progress,
        encode_free,
    } = job;
    let fail_layer: Option<usize> = std::env::var(FAIL_LAYER_VAR).ok().and_then(|s| s.trim().parse().ok());
    let dir = &src.dir;
    let arch = Arch::load(dir)?;
    let text = read_text(&opts.text)?;
    let tok = load_tokenizer(dir)?;
    let wins = windows(dir, &arch, &tok, &text.text, opts.ctx, opts.tokens, &text_label(opts))?;
    let (nb, nt) = (wins.len(), wins[0].len());
    let ids = Tensor::from_vec(wins.concat(), (nb, nt), &Device::Cpu).map_err(cerr(dir, "calibration tokens"))?;
    let nl = arch.num_layers();
    let prefixes: Vec<String> = (0..nl).map(|i| arch.layer_prefix(i)).collect();
    let layer_of = |name: &str| prefixes.iter().position(|p| name.starts_with(p.as_str()));

    // Stage 0: embeddings with the teacher's (verbatim) weights.
    let mut outer = Weights::default();
    for t in src.tensors.iter().filter(|t| arch.is_embedding(&t.name)) {
        let v = src.read_f32(t)?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let x = Tensor::from_vec(v, shape, &Device::Cpu).map_err(cerr(dir, &t.name))?;
        outer.map.insert(t.name.clone(), x);
    }
    let x0 = arch.embed(&outer, &ids).map_err(cerr(dir, "embedding stage"))?;
    drop(outer);
    let hidden = x0.dim(2).map_err(cerr(dir, "embedding stage"))?;
    let (mut xs, mut xt) = (x0.clone(), x0);

    let mut records: Vec<(usize, Encoded)> = Vec::new();
    let mut report = CalibReport {
        text_sha256: text.sha256.clone(),
        tokens: nb * nt,
        layers: Vec::new(),
    };
    for (li, prefix) in prefixes.iter().enumerate() {
        progress(li, nl, prefix);
        let mine: Vec<(usize, Candidate)> = plan
            .iter()
            .filter(|(i, _)| src.tensors[*i].name.starts_with(prefix.as_str()))
            .cloned()
            .collect();
        // Resume: every record of the layer and the state after it are journaled.
        let state_path = work.join(format!("calib-layer-{li:04}.state"));
        let report_path = work.join(format!("calib-layer-{li:04}.json"));
        let mut done = Vec::with_capacity(mine.len());
        for (i, c) in &mine {
            match journaled_record(work, *i, c)? {
                Some(e) => done.push((*i, e)),
                None => break,
            }
        }
        let rep = read_json::<LayerEntry>(&report_path)?;
        if let (true, Ok(state), Some(rep)) = (done.len() == mine.len(), std::fs::read(&state_path), rep) {
            let rep = rep.report(&report_path)?;
            if let Some((a, b)) = state_from(&state, (nb, nt, hidden)) {
                xs = a;
                xt = b;
                *resumed += done.len() + 1;
                records.extend(done);
                report.layers.push(rep);
                continue;
            }
        }
        // The last layer of a causal LM is distilled on the logits, through the teacher's head.
        let head = match &arch {
            Arch::Llama(_) if li + 1 == nl => Some(head_weights(src, &arch)?),
            _ => None,
        };
        if fail_layer == Some(li) {
            return Err(CompressError::Numerics {
                path: dir.clone(),
                msg: format!("layer {li}: {FAIL_LAYER_VAR} (test hook)"),
            });
        }
        let (recs, rep, nxs, nxt) = calibrate_layer(
            src,
            &arch,
            li,
            prefix,
            &mine,
            (seed, subscales),
            opts,
            &xs,
            &xt,
            head.as_ref(),
        )?;
        drop(head);
        let mut encoded = Vec::with_capacity(recs.len());
        for ((i, c), enc) in mine.iter().zip(&recs) {
            encoded.push((*i, journal_record(work, *i, &src.tensors[*i].name, c, enc)?));
        }
        let bytes = state_bytes(&nxs, &nxt).map_err(cerr(dir, "layer state"))?;
        write_atomic(&state_path, &bytes)?;
        write_json(&report_path, &LayerEntry::of(&rep))?;
        records.extend(encoded);
        report.layers.push(rep);
        xs = nxs;
        xt = nxt;
    }
    progress(nl, nl, "");
    for (i, c) in plan {
        if layer_of(&src.tensors[*i].name).is_none() {
            records.push((*i, encode_free(*i, c, resumed)?));
        }
    }
    records.sort_by_key(|(i, _)| *i);
    if records.len() != plan.len() {
        return Err(io(work, std::io::Error::other("calibrated encoding lost a tensor")));
    }
    Ok((records, report))
}

type LayerResult = (Vec<uc_encode::tensor::EncodedTensor>, LayerReport, Tensor, Tensor);

/// The teacher's final norm and output head (the tied embedding when the head is tied or absent),
/// as the forward pass's `head` reads them.
fn head_weights(src: &SourceModel, arch: &Arch) -> Result<Weights, CompressError> {
    let dir = &src.dir;
    let Arch::Llama(c) = arch else {
        return Err(model_err(dir, "only causal language models have an output head"));
    };
    let mut w = Weights::default();
    for name in c.head_names(|n| src.tensors.iter().any(|t| t.name == n)) {
        let t = src.tensors.iter().find(|t| t.name == name).ok_or_else(|| {
            model_err(
                dir,
                format!("the model has no tensor {name} (needed for the logit stage)"),
            )
        })?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let x = Tensor::from_vec(src.read_f32(t)?, shape, &Device::Cpu).map_err(cerr(dir, name))?;
        w.map.insert(name.to_string(), x);
    }
    Ok(w)
}

/// The floor added to each input feature's relative mean square in the importance weights
/// (`Importance::from_second_moments`): a feature that the calibration tokens never excited still
/// counts a tenth of an average one, since held-out text may excite it.
const IMPORTANCE_FLOOR: f64 = 0.1;

#[allow(clippy::too_many_arguments)] // one layer's whole context; a struct would only rename it
fn calibrate_layer(
    src: &SourceModel,
    arch: &Arch,
    li: usize,
    prefix: &str,
    mine: &[(usize, Candidate)],
    (seed, subscales): (u64, Option<SubScales>),
    opts: &CalibOptions,
    xs: &Tensor,
    xt: &Tensor,
    head: Option<&Weights>,
) -> Result<LayerResult, CompressError> {
    let dir = &src.dir;
    let e = |what: &str| cerr(dir, &format!("layer {li}: {what}"));
    // 1. The teacher layer.
    let mut teacher = Weights::default();
    let mut data: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for t in src.tensors.iter().filter(|t| t.name.starts_with(prefix)) {
        if !matches!(
            t.dtype,
            uc_pack::safetensors::Dtype::F32 | uc_pack::safetensors::Dtype::F16 | uc_pack::safetensors::Dtype::Bf16
        ) {
            continue;
        }
        let v = src.read_f32(t)?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        teacher.map.insert(
            t.name.clone(),
            Tensor::from_vec(v.clone(), shape, &Device::Cpu).map_err(e(&t.name))?,
        );
        if mine.iter().any(|(i, _)| src.tensors[*i].name == t.name) {
            data.insert(t.name.clone(), v);
        }
    }
    // 2. Targets and input statistics.
    let yt = arch.layer(&teacher, li, xt, None).map_err(e("teacher forward"))?;
    // The layer's loss: MSE against `yt`, or (the logit stage) the mean KL of the logits.
    let stage = match (head, arch) {
        (Some(hw), Arch::Llama(c)) => Stage::Kl {
            head: hw,
            cfg: c,
            yt: &yt,
            chunk_logits: KL_CHUNK_LOGITS,
        },
        _ => Stage::Mse { yt: &yt },
    };
    let objective = stage.objective();
    let mut grams: HashMap<String, Vec<f64>> = HashMap::new();
    let mut gram_err: Option<candle_core::Error> = None;
    {
        let mut tap = |name: &str, x: &Tensor| {
            if !data.contains_key(name) || grams.contains_key(name) {
                return;
            }
            let r = (|| -> candle_core::Result<Vec<f64>> {
                let d = x.dim(candle_core::D::Minus1)?;
                let x2 = x.reshape(((), d))?;
                let n = x2.dim(0)? as f64;
                let g = x2.t()?.matmul(&x2)?.to_dtype(DType::F64)?;
                Ok(g.flatten_all()?.to_vec1::<f64>()?.iter().map(|v| v / n).collect())
            })();
            match r {
                Ok(g) => {
                    grams.insert(name.to_string(), g);
                }
                Err(err) => gram_err = Some(err),
            }
        };
        arch.layer(&teacher, li, xs, Some(&mut tap))
            .map_err(e("input statistics"))?;
    }
    if let Some(err) = gram_err {
        return Err(e("input statistics")(err));
    }
    // 3. GSQ and the initial overlays.
    let mut parts = Vec::with_capacity(mine.len());
    let mut student = Student {
        teacher: &teacher,
        base: HashMap::new(),
        factors: HashMap::new(),
    };
    let mut svd_factors: HashMap<String, (Tensor, Tensor)> = HashMap::new();
    for (i, c) in mine {
        let t = &src.tensors[*i];
        let w = &data[&t.name];
        let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
        let imp = grams.get(&t.name).filter(|_| opts.importance).and_then(|g| {
            Importance::from_second_moments(
                &(0..cols).map(|j| g[j * cols + j]).collect::<Vec<_>>(),
                IMPORTANCE_FLOOR,
            )
        });
        let mut p = quantize_parts_weighted(w, &GsqOptions::new(c.bits).with_subscales(subscales), imp.as_ref());
        if opts.gptq
            && let Some(g) = grams.get(&t.name)
        {
            // Where H is not positive definite even damped, the nearest codes stay.
            uc_encode::gptq::requantize(w, rows, cols, &mut p, g);
        }
        let base = p.w_base();
        let rank = (c.rank as usize).min(rows).min(cols);
        student
            .base
            .insert(t.name.clone(), quant_of(&p, rows, cols).map_err(e(&t.name))?);
        if rank > 0 {
            let resid: Vec<f32> = w.iter().zip(&base).map(|(a, b)| a - b).collect();
            let s = seed_for(seed, &t.name);
            let plain = low_rank(&resid, rows, cols, rank, s);
            let (pu, pv) = pad(plain.u, plain.v, plain.rank, rows, cols, rank);
            let pu = Tensor::from_vec(pu, (rows, rank), &Device::Cpu).map_err(e(&t.name))?;
            let pv = Tensor::from_vec(pv, (rank, cols), &Device::Cpu).map_err(e(&t.name))?;
            let (u, v) = match grams
                .get(&t.name)
                .and_then(|g| aware_factors(&resid, rows, cols, g, rank, s))
            {
                Some((u, v)) => (
                    Tensor::from_vec(u, (rows, rank), &Device::Cpu).map_err(e(&t.name))?,
                    Tensor::from_vec(v, (rank, cols), &Device::Cpu).map_err(e(&t.name))?,
                ),
                None => (pu.clone(), pv.clone()),
            };
            svd_factors.insert(
                t.name.clone(),
                (round_bf16(&pu).map_err(e("bf16"))?, round_bf16(&pv).map_err(e("bf16"))?),
            );
            let u = Var::from_tensor(&round_bf16(&u).map_err(e("bf16"))?).map_err(e("factor"))?;
            let v = Var::from_tensor(&round_bf16(&v).map_err(e("bf16"))?).map_err(e("factor"))?;
            student.factors.insert(t.name.clone(), (u, v));
        }
        parts.push((p, rank));
    }
    let loss_of = |st: &Student<'_>| -> candle_core::Result<f64> { stage.value(&arch.layer(st, li, xs, None)?) };
    // Reference losses: no overlay, data-free overlay, activation-aware overlay.
    let aware = std::mem::take(&mut student.factors);
    let loss_base = loss_of(&student).map_err(e("loss"))?;
    for (n, (u, v)) in &svd_factors {
        student.factors.insert(
            n.clone(),
            (
                Var::from_tensor(u).map_err(e("factor"))?,
                Var::from_tensor(v).map_err(e("factor"))?,
            ),
        );
    }
    let loss_svd = loss_of(&student).map_err(e("loss"))?;
    let svd_vars = std::mem::replace(&mut student.factors, aware);
    let loss_aware = loss_of(&student).map_err(e("loss"))?;
    // Start from the better of the two on the layer loss: the activation-aware overlay is optimal
    // for each linear map on its own inputs, not for the layer output as a whole.
    let loss_init = if loss_aware <= loss_svd {
        loss_aware
    } else {
        student.factors = svd_vars;
        loss_svd
    };
    // Deep copies: `Var::set` writes into the variables' storage, which a clone would share.
    let mut init: HashMap<String, (Tensor, Tensor)> = HashMap::new();
    for (n, (u, v)) in &student.factors {
        let err = e(&format!("{n}: factor"));
        init.insert(
            n.clone(),
            (u.as_tensor().copy().map_err(&err)?, v.as_tensor().copy().map_err(&err)?),
        );
    }

    // 4. Distillation (Adam, full batch, cosine-decayed step relative to each factor's RMS).
    let mut names: Vec<String> = student.factors.keys().cloned().collect();
    names.sort();
    let mut qnames: Vec<String> = student
        .base
        .iter()
        .filter(|(_, q)| q.delta.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    qnames.sort();
    let s0_init: HashMap<String, Tensor> = student.base.iter().map(|(n, q)| (n.clone(), q.s0.clone())).collect();
    let mut distilled = false;
    let mut loss_final = loss_init;
    if opts.steps > 0 && !(names.is_empty() && qnames.is_empty()) {
        let mut vars: Vec<Var> = names
            .iter()
            .flat_map(|n| {
                let (u, v) = &student.factors[n];
                [u.clone(), v.clone()]
            })
            .collect();
        let nf = vars.len();
        vars.extend(qnames.iter().filter_map(|n| student.base[n].delta.clone()));
        let scales: Vec<f64> = vars
            .iter()
            .enumerate()
            .map(|(k, v)| {
                if k >= nf {
                    // δ is already relative: a step of lr changes a block scale by about lr.
                    return 0.1;
                }
                v.as_tensor()
                    .sqr()
                    .and_then(|s| s.mean_all())
                    .and_then(|m| m.to_dtype(DType::F64))
                    .and_then(|m| m.to_scalar::<f64>())
                    .map(|m| m.sqrt())
                    .unwrap_or(0.0)
            })
            .collect();
        let mut m1: Vec<Tensor> = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()
            .map_err(e("adam"))?;
        let mut m2: Vec<Tensor> = m1.clone();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-12f64);
        for step in 0..opts.steps {
            let y = arch.layer(&student, li, xs, None).map_err(e("student forward"))?;
            let grads = stage.grads(&y).map_err(e("loss gradient"))?;
            let tstep = (step + 1) as i32;
            let decay = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / opts.steps as f64).cos());
            for (k, var) in vars.iter().enumerate() {
                let Some(g) = grads.get(var.as_tensor()) else { continue };
                let upd = (|| -> candle_core::Result<()> {
                    m1[k] = ((&m1[k] * b1)? + (g * (1.0 - b1))?)?;
                    m2[k] = ((&m2[k] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let mh = (&m1[k] / (1.0 - b1.powi(tstep)))?;
                    let vh = (&m2[k] / (1.0 - b2.powi(tstep)))?;
                    let stepsize = opts.lr * scales[k] * decay;
                    let delta = (mh / (vh.sqrt()? + eps)?)?;
                    var.set(&(var.as_tensor() - (delta * stepsize)?)?)
                })();
                upd.map_err(e("adam"))?;
            }
        }
        // Round to bf16 / f16 as stored, and keep the better of trained and initial.
        for n in &names {
            let (u, v) = &student.factors[n];
            u.set(&round_bf16(u.as_tensor()).map_err(e("bf16"))?)
                .map_err(e("bf16"))?;
            v.set(&round_bf16(v.as_tensor()).map_err(e("bf16"))?)
                .map_err(e("bf16"))?;
        }
        for n in &qnames {
            let q = student.base.get_mut(n).ok_or_else(|| model_err(dir, "lost a tensor"))?;
            q.s0 = round_scales(subscales, &q.base_scales().map_err(e("scales"))?).map_err(e("f16"))?;
            if let Some(d) = &q.delta {
                d.set(&d.as_tensor().zeros_like().map_err(e("scales"))?)
                    .map_err(e("scales"))?;
            }
        }
        let l = loss_of(&student).map_err(e("loss"))?;
        if l < loss_init {
            loss_final = l;
            distilled = true;
        } else {
            for n in &names {
                let (u, v) = &student.factors[n];
                u.set(&init[n].0).map_err(e("restore"))?;
                v.set(&init[n].1).map_err(e("restore"))?;
            }
            for n in &qnames {
                if let Some(q) = student.base.get_mut(n) {
                    q.s0 = s0_init[n].clone();
                }
            }
        }
    }
    // 5. Records and the next hidden states.
    let mut recs = Vec::with_capacity(mine.len());
    for ((i, c), (p, rank)) in mine.iter().zip(&parts) {
        let t = &src.tensors[*i];
        let mut p = p.clone();
        if let Some(q) = student.base.get(&t.name).filter(|q| q.delta.is_some()) {
            // s0 holds representable effective scales (round_scales), so this is exact.
            let eff =
                q.s0.flatten_all()
                    .and_then(|x| x.to_vec1::<f32>())
                    .map_err(e("scales"))?;
            p.set_effective_scales(&eff);
        }
        let p = &p;
        let (u, v) = match student.factors.get(&t.name) {
            Some((u, v)) => (
                bf16_bits(u.as_tensor()).map_err(e("bf16"))?,
                bf16_bits(v.as_tensor()).map_err(e("bf16"))?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let enc =
            assemble(&data[&t.name], &t.shape, c.bits, p, *rank, &u, &v).map_err(|err| CompressError::Encode {
                tensor: t.name.clone(),
                err,
            })?;
        recs.push(enc);
    }
    let nxs = arch
        .layer(&student, li, xs, None)
        .map_err(e("student forward"))?
        .detach();
    let rep = LayerReport {
        layer: li,
        objective,
        loss_base,
        loss_svd,
        loss_init,
        loss_final,
        distilled,
    };
    Ok((recs, rep, nxs, yt.detach()))
}

impl Quant {
    /// `s0 ⊙ (1 + δ)`, `[units, 1]` (a unit: 64 weights, or one sub-block of two-level scales).
    fn base_scales(&self) -> candle_core::Result<Tensor> {
        match &self.delta {
            Some(d) => self.s0.broadcast_mul(&(d.as_tensor() + 1.0)?),
            None => Ok(self.s0.clone()),
        }
    }
}

/// The student form of GSQ parts: one trainable scale per unit of weights sharing an effective
/// scale (64 weights, or a sub-block of two-level scales).
fn quant_of(p: &uc_encode::gsq::GsqParts, rows: usize, cols: usize) -> candle_core::Result<Quant> {
    let n = p.codes.len();
    let unit = p.unit();
    let g: Vec<f32> = p.codes.iter().map(|&c| p.grid[usize::from(c)]).collect();
    let s0: Vec<f32> = p.effective_scales();
    if !n.is_multiple_of(unit) {
        // A partial last unit: the scales stay as fitted (the [units, unit] view needs whole units).
        let full: Vec<f32> = p.w_base();
        return Ok(Quant {
            g: Tensor::from_vec(full, (n, 1), &Device::Cpu)?,
            s0: Tensor::ones((n, 1), DType::F32, &Device::Cpu)?,
            delta: None,
            rows,
            cols,
        });
    }
    let nb = n / unit;
    Ok(Quant {
        g: Tensor::from_vec(g, (nb, unit), &Device::Cpu)?,
        s0: Tensor::from_vec(s0, (nb, 1), &Device::Cpu)?,
        delta: Some(Var::zeros((nb, 1), DType::F32, &Device::Cpu)?),
        rows,
        cols,
    })
}

/// Effective scales rounded to what a record stores (binary16, finite and non-negative, spec
/// or two-level scales, R-13.4), per unit in flat order.
fn round_scales(subscales: Option<SubScales>, s: &Tensor) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = s.flatten_all()?.to_vec1()?;
    let r = uc_encode::gsq::represent_scales(subscales, &v).eff;
    Tensor::from_vec(r, s.dims(), &Device::Cpu)
}

/// Pads factors of rank `got` to `rank` with zeros.
fn pad(u: Vec<f32>, v: Vec<f32>, got: usize, rows: usize, cols: usize, rank: usize) -> (Vec<f32>, Vec<f32>) {
    if got == rank {
        return (u, v);
    }
    let mut up = vec![0f32; rows * rank];
    for i in 0..rows {
        up[i * rank..i * rank + got].copy_from_slice(&u[i * got..(i + 1) * got]);
    }
    let mut vp = v;
    vp.resize(rank * cols, 0.0);
    (up, vp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked logit stage gives the loss and the gradients of the KL computed on all tokens at
    /// once by autograd, whatever the chunk size.
    #[test]
    fn the_chunked_kl_stage_matches_the_whole_computation() {
        let cfg = crate::llama::Config {
            hidden: 8,
            num_layers: 1,
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            eps: 1e-5,
            rope_theta: 10000.0,
            vocab: 13,
            tie: true,
        };
        let mut seed = 7u64;
        let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| lcg(&mut seed)).collect() };
        let mut head = Weights::default();
        let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        head.map
            .insert("model.embed_tokens.weight".into(), t(rnd(13 * 8), &[13, 8]));
        head.map.insert("model.norm.weight".into(), t(rnd(8), &[8]));
        let yt = t(rnd(2 * 5 * 8), &[2, 5, 8]);
        // A trainable variable and a layer-like function of it, so gradients pass through `y`.
        let w = Var::from_tensor(&t(rnd(8 * 8), &[8, 8])).unwrap();
        let x = t(rnd(2 * 5 * 8), &[2, 5, 8]);
        let y = crate::nn::linear(&x, w.as_tensor(), None).unwrap();

        let lt = log_softmax_last(&cfg.head(&head, &yt).unwrap()).unwrap();
        let ls = log_softmax_last(&cfg.head(&head, &y).unwrap()).unwrap();
        let whole = ((lt.exp().unwrap() * (lt - ls).unwrap()).unwrap().sum_all().unwrap() / 10.0).unwrap();
        let whole_value = whole.to_scalar::<f32>().unwrap() as f64;
        let whole_grad = whole
            .backward()
            .unwrap()
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap();
        let whole_grad = whole_grad.to_vec1::<f32>().unwrap();
        assert!(whole_value > 0.0);
        for chunk_logits in [1, 13, 27, 13 * 4, 1 << 22] {
            let stage = Stage::Kl {
                head: &head,
                cfg: &cfg,
                yt: &yt,
                chunk_logits,
            };
            let v = stage.value(&y).unwrap();
            assert!(
                (v - whole_value).abs() <= 1e-6 * whole_value,
                "{chunk_logits}: {v} vs {whole_value}"
            );
            let g = stage.grads(&y).unwrap();
            let g = g
                .get(w.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in g.iter().zip(&whole_grad) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{chunk_logits}: {a} vs {b}");
            }
        }
    }

    /// The log-softmax of the logit stage: exact on small logits, stable on huge ones, and its
    /// gradient through the KL is `p_S − p_T` per token (the KL's well-known gradient).
    #[test]
    fn log_softmax_and_the_kl_gradient() {
        let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], &Device::Cpu).unwrap();
        let l = log_softmax_last(&x).unwrap().to_vec2::<f32>().unwrap();
        let z = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        for (k, v) in [1.0 - z, 2.0 - z, 3.0 - z].iter().enumerate() {
            assert!((l[0][k] as f64 - v).abs() < 1e-6, "{l:?}");
        }
        assert!((l[1][0] + std::f32::consts::LN_2).abs() < 1e-6, "{l:?}");
        assert!(l[1][2] < -1999.0 && l[1][2].is_finite(), "{l:?}");

        let t = Tensor::new(&[[0.5f32, -1.0, 2.0]], &Device::Cpu).unwrap();
        let lt = log_softmax_last(&t).unwrap();
        let pt = lt.exp().unwrap();
        let s = Var::new(&[[0.0f32, 1.0, -0.5]], &Device::Cpu).unwrap();
        let ls = log_softmax_last(s.as_tensor()).unwrap();
        let kl = (&pt * (&lt - &ls).unwrap()).unwrap().sum_all().unwrap();
        assert!(kl.to_scalar::<f32>().unwrap() > 0.0);
        let g = kl.backward().unwrap();
        let g = g.get(s.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let ps = ls.exp().unwrap().to_vec2::<f32>().unwrap();
        let pt = pt.to_vec2::<f32>().unwrap();
        for k in 0..3 {
            assert!((g[0][k] - (ps[0][k] - pt[0][k])).abs() < 1e-6, "{g:?}");
        }
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    #[test]
    fn cholesky_reproduces_the_matrix_and_rejects_indefinite_ones() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    /// `‖(R − U V) X‖²` through the Gram matrix: `Σ_i e_i C e_iᵀ` over the rows `e_i` of `R − U V`.
    fn weighted_err(r: &[f32], u: &[f32], v: &[f32], c: &[f64], rows: usize, cols: usize, rank: usize) -> f64 {
        let mut total = 0.0;
        for i in 0..rows {
            let e: Vec<f64> = (0..cols)
                .map(|j| {
                    f64::from(r[i * cols + j])
                        - (0..rank)
                            .map(|t| f64::from(u[i * rank + t]) * f64::from(v[t * cols + j]))
                            .sum::<f64>()
                })
                .collect();
            for a in 0..cols {
                for b in 0..cols {
                    total += e[a] * c[a * cols + b] * e[b];
                }
            }
        }
        total
    }

    #[test]
    fn activation_aware_factors_beat_the_plain_svd_on_the_weighted_error() {
        let (rows, cols, rank, n) = (24, 16, 3, 200);
        let mut seed = 7u64;
        let r: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
        // Inputs with very unequal channel energies (as LLM activations have).
        let x: Vec<f64> = (0..n * cols)
            .map(|k| f64::from(lcg(&mut seed)) * if k % cols < 3 { 20.0 } else { 1.0 })
            .collect();
        let mut c = vec![0f64; cols * cols];
        for s in 0..n {
            for a in 0..cols {
                for b in 0..cols {
                    c[a * cols + b] += x[s * cols + a] * x[s * cols + b] / n as f64;
                }
            }
        }
        let plain = low_rank(&r, rows, cols, rank, 1);
        let (u, v) = aware_factors(&r, rows, cols, &c, rank, 1).unwrap();
        let e_plain = weighted_err(&r, &plain.u, &plain.v, &c, rows, cols, rank);
        let e_aware = weighted_err(&r, &u, &v, &c, rows, cols, rank);
        let e_none = weighted_err(
            &r,
            &vec![0.0; rows * rank],
            &vec![0.0; rank * cols],
            &c,
            rows,
            cols,
            rank,
        );
        assert!(e_aware < e_plain * 0.9, "aware {e_aware} vs plain {e_plain}");
        assert!(e_plain < e_none);
    }

    #[test]
    fn f16_scale_rounding_never_yields_a_negative_zero_or_an_infinity() {
        let t = Tensor::from_vec(vec![-0.0f32, -1.0, 1e9, f32::NAN, 0.5], (5, 1), &Device::Cpu).unwrap();
        let r: Vec<f32> = round_scales(None, &t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let bits: Vec<u16> = r.iter().map(|&x| f32_to_f16_bits(x)).collect();
        assert_eq!(bits, vec![0, 0, f32_to_f16_bits(65504.0), 0, f32_to_f16_bits(0.5)]);
    }
}
