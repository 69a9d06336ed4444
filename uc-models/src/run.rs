//! Generation straight from a uc pack: the Llama family's decoder one token at a time with a
//! key/value cache, every linear map reading its uc record in place through
//! [`uc_decode::Record::dot_rows`] (the reconstruction never exists as a whole; the resident
//! weights are the pack's bytes), the embedding row by row from its record, the output head (tied
//! or not) by the same row dot products.
//!
//! The same code runs an unpacked model (f32, f16 or bf16 safetensors): its matrices take
//! [`uc_decode::dot::dot_f32`], which sums in the order `dot_rows` defines, so a pack and its
//! `uc unpack` output (without overlays) give the same logits bit for bit, and therefore the same
//! tokens for the same prompt, options and seed, on any thread count (rows are independent; each
//! row's sum has one fixed order).
//!
//! With the cargo feature `wgpu`, [`Llama::to_gpu`] (and [`crate::embed::Bert::to_gpu`]) moves
//! every record to a GPU, where uc-decode-wgpu's matrix-vector kernel computes `W_base·x + U·(V·x)`
//! from the packed record. That kernel sums in its own order, so its logits are within
//! [`uc_decode_wgpu::matvec_error_bound`] of the CPU's, not equal to them; tokens can differ.
//!
//! A pack is verified before its first token (structure, every record, every tensor's
//! `recon_sha256`: what `uc-verify` checks), and the bytes used are the bytes verified: each
//! file is read into memory once and its SHA-256 compared with the digest the verifier computed.

use crate::arch::model_err;
use crate::llama::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use uc_decode::Record;
use uc_decode::dot::dot_f32;
use uc_encode::error::{CompressError, bad};
use uc_pack::safetensors::{Header, TensorInfo};

/// A model's safetensors files, read into memory once (a memory map would need `unsafe`, which
/// this crate forbids; inference touches every page anyway).
pub struct Files {
    files: Vec<(PathBuf, Vec<u8>, Header)>,
    index: HashMap<String, (usize, usize)>,
    /// The pack's fingerprint when the directory is a verified pack.
    pub fingerprint: Option<String>,
    /// The manifest's `model_id`, when there is one.
    pub model_id: Option<String>,
}

impl Files {
    /// Reads a uc pack, verified first, or a Hugging Face directory (`model.safetensors` or a
    /// sharded index).
    pub fn open(dir: &Path) -> Result<Files, CompressError> {
        let report = if crate::is_pack(dir) {
            Some(uc_encode::unpack::verify_before_reading(dir)?)
        } else {
            None
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for name in uc_encode::unpack::pack_files(dir)? {
            let path = dir.join(&name);
            let ioe = |e: std::io::Error| CompressError::Io {
                path: path.clone(),
                source: e,
            };
            // A regular file only (a FIFO never blocks the open), its header parsed first so that
            // a file that is not safetensors is refused before it is read whole; then the whole
            // file through the same handle, no more than the length the header was checked
            // against.
            let (mut f, len) = uc_pack::fs::open_regular(&path)?;
            let header = uc_pack::safetensors::read_header(&mut f, len)
                .map_err(ioe)?
                .map_err(|e| bad(&path, e.to_string()))?;
            let cap = usize::try_from(len).map_err(|_| bad(&path, "too large for this machine"))?;
            let mut bytes = Vec::with_capacity(cap);
            f.seek(SeekFrom::Start(0)).map_err(ioe)?;
            (&mut f).take(len).read_to_end(&mut bytes).map_err(ioe)?;
            if bytes.len() != cap {
                return Err(bad(
                    &path,
                    format!("changed while it was read ({} of {len} bytes)", bytes.len()),
                ));
            }
            if let Some(r) = &report {
                let digest = uc_pack::hex(&Sha256::digest(&bytes));
                let want = r.files.iter().find(|f| f.name == name).map(|f| f.sha256.as_str());
                if want != Some(digest.as_str()) {
                    return Err(CompressError::Verification(format!(
                        "{}: changed after it was verified (SHA-256 {digest}, verified {})",
                        path.display(),
                        want.unwrap_or("nothing")
                    )));
                }
            }
            for (k, t) in header.tensors.iter().enumerate() {
                if !t.is_padding() {
                    index.insert(t.name.clone(), (files.len(), k));
                }
            }
            files.push((path, bytes, header));
        }
        let model_id = std::fs::read(dir.join("ultracompress.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["model_id"].as_str().map(str::to_string));
        Ok(Files {
            files,
            index,
            fingerprint: report.map(|r| r.fingerprint),
            model_id,
        })
    }

    fn find(&self, name: &str) -> Option<(&Path, &[u8], &TensorInfo)> {
        let &(f, k) = self.index.get(name)?;
        let (path, bytes, h) = &self.files[f];
        let t = &h.tensors[k];
        let off = h.file_offset(t) as usize;
        Some((path, &bytes[off..off + t.len() as usize], t))
    }

    /// Whether the model has a tensor called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The weight matrix `name`: its record in place, or its values as f32.
    pub fn weight(&self, name: &str) -> Result<Weight<'_>, CompressError> {
        let (path, bytes, t) = self
            .find(name)
            .ok_or_else(|| bad(self.dir(), format!("no tensor {name}")))?;
        if uc_encode::unpack::is_record(t.dtype, bytes) {
            let rec = Record::parse(bytes).map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
            let (rows, cols) = (rec.rows() as usize, rec.cols() as usize);
            let r = rec.overlay_rank() as usize;
            let (mut u, mut v) = (vec![0f32; rows * r], vec![0f32; r * cols]);
            rec.overlay_u_into(&mut u)
                .and_then(|()| rec.overlay_v_into(&mut v))
                .map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
            return Ok(Weight::Packed {
                rec: Box::new(rec),
                u,
                v,
                #[cfg(feature = "wgpu")]
                gpu: None,
            });
        }
        let w = floats(path, name, t, bytes)?;
        let rows = *t.shape.first().unwrap_or(&1) as usize;
        let cols = w.len().checked_div(rows).unwrap_or(0);
        Ok(Weight::Dense { w, rows, cols })
    }

    /// The vector `name` (a norm's gain, a bias) as f32; a record is decoded.
    pub fn vector(&self, name: &str) -> Result<Vec<f32>, CompressError> {
        match self.weight(name)? {
            Weight::Dense { w, .. } => Ok(w),
            p @ Weight::Packed { .. } => {
                let mut out = vec![0f32; p.rows() * p.cols()];
                for i in 0..p.rows() {
                    p.row(i, &mut out[i * p.cols()..(i + 1) * p.cols()]);
                }
                Ok(out)
            }
        }
    }

    fn dir(&self) -> &Path {
        self.files.first().and_then(|f| f.0.parent()).unwrap_or(Path::new("."))
    }
}

/// A tensor's values as f32 (f32, f16 or bf16 storage).
fn floats(path: &Path, name: &str, t: &TensorInfo, b: &[u8]) -> Result<Vec<f32>, CompressError> {
    uc_encode::source::float_values(t.dtype, b).ok_or_else(|| {
        bad(
            path,
            format!("tensor {name}: dtype {:?} is neither a uc record nor a float", t.dtype),
        )
    })
}

/// `y += U·(V·x)` for an overlay of rank `r` (nothing for `r = 0`): `V·x` by [`dot_f32`], then
/// each row of `U` against it summed in index order. [`Weight::matvec`] and [`Weight::matmul`]
/// share it, so that both give the same bits.
fn add_overlay(r: usize, u: &[f32], v: &[f32], x: &[f32], y: &mut [f32]) {
    if r == 0 {
        return;
    }
    let t: Vec<f32> = v.chunks_exact(x.len()).map(|vk| dot_f32(vk, x)).collect();
    for (yi, ui) in y.iter_mut().zip(u.chunks_exact(r)) {
        let mut acc = 0f32;
        for (a, b) in ui.iter().zip(&t) {
            acc += a * b;
        }
        *yi += acc;
    }
}

/// A weight matrix `[rows, cols]`.
pub enum Weight<'a> {
    /// A uc record read in place, with its overlay factors `U` `[rows, r]` and `V` `[r, cols]`
    /// as f32 (empty for `r = 0`).
    Packed {
        /// The record (boxed: with its 1 KiB grid table it is far larger than the other variant).
        rec: Box<Record<'a>>,
        /// `U`, row-major.
        u: Vec<f32>,
        /// `V`, row-major.
        v: Vec<f32>,
        /// The record on a GPU, when [`Weight::to_gpu`] put it there: products then run there.
        #[cfg(feature = "wgpu")]
        gpu: Option<Box<(Gpu, uc_decode_wgpu::GpuRecord)>>,
    },
    /// Values as f32, row-major.
    Dense {
        /// The values.
        w: Vec<f32>,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

/// Rows per parallel task of a matrix-vector product.
const ROWS_PER_TASK: usize = 32;

/// A GPU that runs the products of the records put on it (`--device wgpu`).
#[cfg(feature = "wgpu")]
pub type Gpu = std::sync::Arc<uc_decode_wgpu::GpuDecoder>;

/// Opens the default GPU adapter (wgpu's Vulkan backend; Mesa's lavapipe where there is no GPU).
#[cfg(feature = "wgpu")]
pub fn open_gpu() -> Result<Gpu, CompressError> {
    uc_decode_wgpu::GpuDecoder::new_default()
        .map(std::sync::Arc::new)
        .map_err(|e| uc_encode::error::opt("device", format!("wgpu: {e}")))
}

/// The GPU adapter's name and backend, for logs.
#[cfg(feature = "wgpu")]
pub fn gpu_name(gpu: &Gpu) -> String {
    gpu.adapter_info()
        .map(|a| format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type))
        .unwrap_or_else(|| "a caller's device".into())
}

/// A failed upload of `what`'s records (`--device` error: exit 2).
#[cfg(feature = "wgpu")]
pub(crate) fn gpu_err(what: &str, e: String) -> CompressError {
    uc_encode::error::opt("device", format!("wgpu: {what}: {e}"))
}

/// `n` records moved, or the error for a model without any.
#[cfg(feature = "wgpu")]
pub(crate) fn gpu_count(n: usize) -> Result<usize, CompressError> {
    if n == 0 {
        return Err(uc_encode::error::opt(
            "device",
            "wgpu: the model has no uc records (an unpacked model's f32 matrices run on the CPU; \
             the GPU path runs packs)",
        ));
    }
    Ok(n)
}

impl Weight<'_> {
    /// Rows (output features).
    pub fn rows(&self) -> usize {
        match self {
            Weight::Packed { rec, .. } => rec.rows() as usize,
            Weight::Dense { rows, .. } => *rows,
        }
    }

    /// Columns (input features).
    pub fn cols(&self) -> usize {
        match self {
            Weight::Packed { rec, .. } => rec.cols() as usize,
            Weight::Dense { cols, .. } => *cols,
        }
    }

    /// Puts a record on `gpu` (its grid, scales, codes and overlay; the host keeps its bytes for
    /// row lookups), so that [`Weight::matvec`] and [`Weight::matmul`] run there. Returns whether
    /// there was a record to move (f32 matrices stay on the CPU).
    #[cfg(feature = "wgpu")]
    pub fn to_gpu(&mut self, gpu: &Gpu) -> Result<bool, String> {
        match self {
            Weight::Packed { rec, gpu: slot, .. } => {
                let g = gpu.upload(rec).map_err(|e| e.to_string())?;
                *slot = Some(Box::new((gpu.clone(), g)));
                Ok(true)
            }
            Weight::Dense { .. } => Ok(false),
        }
    }

    /// `y = W·x`: the rows' dot products (`dot_rows`, or `dot_f32` on f32 rows, the same order),
    /// then with an overlay `y += U·(V·x)`, each sum in index order. Rows are spread over the
    /// rayon pool; the result does not depend on the thread count. A record on a GPU computes it
    /// there (within the kernel's error bound; the error is the device's, e.g. a lost device).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<(), String> {
        debug_assert_eq!((x.len(), y.len()), (self.cols(), self.rows()));
        match self {
            #[cfg(feature = "wgpu")]
            Weight::Packed { gpu: Some(g), .. } => {
                let out =
                    g.0.matvec(&g.1, x, true)
                        .map_err(|e| format!("GPU matrix-vector product: {e}"))?;
                y.copy_from_slice(&out);
            }
            Weight::Packed { rec, u, v, .. } => {
                y.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(c, ys)| {
                    let r0 = (c * ROWS_PER_TASK) as u64;
                    rec.dot_rows(r0..r0 + ys.len() as u64, x, ys)
                        .expect("lengths checked by the model");
                });
                add_overlay(rec.overlay_rank() as usize, u, v, x, y);
            }
            Weight::Dense { w, cols, .. } => {
                y.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(c, ys)| {
                    for (k, yi) in ys.iter_mut().enumerate() {
                        let i = c * ROWS_PER_TASK + k;
                        *yi = dot_f32(&w[i * cols..(i + 1) * cols], x);
                    }
                });
            }
        }
        Ok(())
    }

    /// `Y = X·Wᵀ` for `X` of `T` rows of `cols` (row-major) into `Y` (`T` rows of `rows`): row
    /// `t` of `Y` is [`Weight::matvec`] of row `t` of `X`, bit for bit (the same row sums, the same
    /// overlay order); each tile of [`ROWS_PER_TASK`] weight rows is decoded once for all `T`. A
    /// record on a GPU runs one matrix-vector product per row of `X` there.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) -> Result<(), String> {
        let (rows, cols) = (self.rows(), self.cols());
        let t = x.len() / cols.max(1);
        debug_assert_eq!((x.len(), y.len()), (t * cols, t * rows));
        #[cfg(feature = "wgpu")]
        if let Weight::Packed { gpu: Some(_), .. } = self {
            for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
                self.matvec(xt, yt)?;
            }
            return Ok(());
        }
        if t == 1 {
            return self.matvec(x, y);
        }
        // Rows-major results first (disjoint per task), then transposed into `y`.
        let mut yt = vec![0f32; rows * t];
        yt.par_chunks_mut(ROWS_PER_TASK * t).enumerate().for_each(|(c, out)| {
            let r0 = c * ROWS_PER_TASK;
            let nr = out.len() / t;
            let mut buf = Vec::new();
            let tile: &[f32] = match self {
                Weight::Packed { rec, .. } => {
                    buf.resize(nr * cols, 0f32);
                    rec.decode_rows_into(r0 as u64..(r0 + nr) as u64, &mut buf)
                        .expect("lengths checked by the model");
                    &buf
                }
                Weight::Dense { w, .. } => &w[r0 * cols..(r0 + nr) * cols],
            };
            for (row, o) in tile.chunks_exact(cols).zip(out.chunks_exact_mut(t)) {
                for (xt, ot) in x.chunks_exact(cols).zip(o.iter_mut()) {
                    *ot = dot_f32(row, xt);
                }
            }
        });
        for (ti, yrow) in y.chunks_exact_mut(rows).enumerate() {
            for (r, yv) in yrow.iter_mut().enumerate() {
                *yv = yt[r * t + ti];
            }
        }
        if let Weight::Packed { rec, u, v, .. } = self {
            for (xt, yrow) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
                add_overlay(rec.overlay_rank() as usize, u, v, xt, yrow);
            }
        }
        Ok(())
    }

    /// Row `i` as f32 (an embedding lookup): for a record, its decoded row with the overlay merged
    /// in the order of spec R-8.5 (what `uc unpack --merge-overlay` writes).
    pub fn row(&self, i: usize, out: &mut [f32]) {
        match self {
            Weight::Packed { rec, u, v, .. } => {
                rec.decode_rows_into(i as u64..i as u64 + 1, out)
                    .expect("lengths checked by the model");
                let r = rec.overlay_rank() as usize;
                if r > 0 {
                    let cols = out.len();
                    for (j, o) in out.iter_mut().enumerate() {
                        let mut acc = 0f32;
                        for k in 0..r {
                            acc += u[i * r + k] * v[k * cols + j];
                        }
                        *o += acc;
                    }
                }
            }
            Weight::Dense { w, cols, .. } => out.copy_from_slice(&w[i * cols..(i + 1) * cols]),
        }
    }
}

struct Layer<'a> {
    attn_norm: Vec<f32>,
    mlp_norm: Vec<f32>,
    q: Weight<'a>,
    k: Weight<'a>,
    v: Weight<'a>,
    o: Weight<'a>,
    gate: Weight<'a>,
    up: Weight<'a>,
    down: Weight<'a>,
    q_bias: Option<Vec<f32>>,
    k_bias: Option<Vec<f32>>,
    v_bias: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
}

/// A Llama-family model over a model's [`Files`].
pub struct Llama<'a> {
    /// The configuration.
    pub cfg: Config,
    /// Positions the model was trained for (`max_position_embeddings`, 2048 if absent): the
    /// key/value cache never grows past it.
    pub max_positions: usize,
    embed: Weight<'a>,
    /// `None`: the head is the embedding (tied).
    head: Option<Weight<'a>>,
    norm: Vec<f32>,
    layers: Vec<Layer<'a>>,
    inv_freq: Vec<f32>,
}

impl<'a> Llama<'a> {
    /// Assembles the model from `config.json` in `dir` and the tensors of `files`, checking every
    /// shape against the configuration.
    pub fn load(dir: &Path, files: &'a Files) -> Result<Llama<'a>, CompressError> {
        let cpath = dir.join("config.json");
        let v: serde_json::Value =
            serde_json::from_slice(&uc_pack::fs::read_capped(&cpath, 1 << 20).map_err(|e| bad(&cpath, e.to_string()))?)
                .map_err(|e| bad(&cpath, format!("invalid JSON: {e}")))?;
        let arch = v["model_type"].as_str().unwrap_or("");
        if !matches!(arch, "llama" | "mistral" | "qwen2" | "qwen3") {
            return Err(model_err(
                dir,
                format!("uc run generates with Llama-family models (llama, mistral, qwen2, qwen3), not {arch:?}"),
            ));
        }
        let cfg = Config::from_json(&cpath, &v)?;
        let max_positions = v["max_position_embeddings"].as_u64().unwrap_or(2048).clamp(1, 1 << 20) as usize;
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let shaped = |name: &str, rows: usize, cols: usize| -> Result<Weight<'a>, CompressError> {
            let w = files.weight(name)?;
            if (w.rows(), w.cols()) != (rows, cols) {
                return Err(model_err(
                    dir,
                    format!(
                        "tensor {name} is {}x{}, the configuration needs {rows}x{cols}",
                        w.rows(),
                        w.cols()
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
        let optional = |name: &str, n: usize| -> Result<Option<Vec<f32>>, CompressError> {
            if files.has(name) {
                vector(name, n).map(Some)
            } else {
                Ok(None)
            }
        };
        let embed = shaped("model.embed_tokens.weight", cfg.vocab, h)?;
        let head = if files.has("lm_head.weight") && !cfg.tie {
            Some(shaped("lm_head.weight", cfg.vocab, h)?)
        } else {
            None
        };
        let ffn = files.weight("model.layers.0.mlp.gate_proj.weight")?.rows();
        let (qd, kvd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("model.layers.{i}.");
            layers.push(Layer {
                attn_norm: vector(&format!("{p}input_layernorm.weight"), h)?,
                mlp_norm: vector(&format!("{p}post_attention_layernorm.weight"), h)?,
                q: shaped(&format!("{p}self_attn.q_proj.weight"), qd, h)?,
                k: shaped(&format!("{p}self_attn.k_proj.weight"), kvd, h)?,
                v: shaped(&format!("{p}self_attn.v_proj.weight"), kvd, h)?,
                o: shaped(&format!("{p}self_attn.o_proj.weight"), h, qd)?,
                gate: shaped(&format!("{p}mlp.gate_proj.weight"), ffn, h)?,
                up: shaped(&format!("{p}mlp.up_proj.weight"), ffn, h)?,
                down: shaped(&format!("{p}mlp.down_proj.weight"), h, ffn)?,
                q_bias: optional(&format!("{p}self_attn.q_proj.bias"), qd)?,
                k_bias: optional(&format!("{p}self_attn.k_proj.bias"), kvd)?,
                v_bias: optional(&format!("{p}self_attn.v_proj.bias"), kvd)?,
                q_norm: optional(&format!("{p}self_attn.q_norm.weight"), hd)?,
                k_norm: optional(&format!("{p}self_attn.k_norm.weight"), hd)?,
            });
        }
        let half = hd / 2;
        let inv_freq = (0..half)
            .map(|i| (1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64)) as f32)
            .collect();
        Ok(Llama {
            norm: vector("model.norm.weight", h)?,
            cfg,
            max_positions,
            embed,
            head,
            layers,
            inv_freq,
        })
    }

    /// Moves every record the products read (the layers' seven matrices, the output head or the
    /// tied embedding) to `gpu`; the embedding's row lookups stay on the CPU. Returns the records
    /// moved; refuses a model with none (an unpacked model's f32 matrices stay on the CPU).
    #[cfg(feature = "wgpu")]
    pub fn to_gpu(&mut self, gpu: &Gpu) -> Result<usize, CompressError> {
        let mut n = 0;
        for (i, l) in self.layers.iter_mut().enumerate() {
            for w in [
                &mut l.q,
                &mut l.k,
                &mut l.v,
                &mut l.o,
                &mut l.gate,
                &mut l.up,
                &mut l.down,
            ] {
                n += usize::from(w.to_gpu(gpu).map_err(|e| gpu_err(&format!("layer {i}"), e))?);
            }
        }
        let (name, head) = match &mut self.head {
            Some(h) => ("lm_head.weight", h),
            None => ("model.embed_tokens.weight", &mut self.embed),
        };
        n += usize::from(head.to_gpu(gpu).map_err(|e| gpu_err(name, e))?);
        gpu_count(n)
    }

    /// A new sequence (empty key/value cache).
    pub fn session(&self) -> Session<'_, 'a> {
        Session {
            m: self,
            keys: vec![Vec::new(); self.layers.len()],
            values: vec![Vec::new(); self.layers.len()],
            pos: 0,
        }
    }

    fn rms_norm(&self, x: &[f32], g: &[f32], out: &mut [f32]) {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        let d = (ms + self.cfg.eps as f32).sqrt();
        for ((o, v), w) in out.iter_mut().zip(x).zip(g) {
            *o = v / d * w;
        }
    }

    /// Rotary embedding of one head vector at position `pos` (`rotate_half` convention).
    fn rope(&self, x: &mut [f32], pos: usize) {
        let half = x.len() / 2;
        for i in 0..half {
            let a = pos as f32 * self.inv_freq[i];
            let (s, c) = a.sin_cos();
            let (x1, x2) = (x[i], x[i + half]);
            x[i] = x1 * c - x2 * s;
            x[i + half] = x2 * c + x1 * s;
        }
    }
}

/// One sequence's key/value cache and position.
pub struct Session<'m, 'a> {
    m: &'m Llama<'a>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    pos: usize,
}

impl Session<'_, '_> {
    /// Tokens consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Feeds `token` at the next position and returns the next token's logits (`vocab` values).
    pub fn step(&mut self, token: u32) -> Result<Vec<f32>, String> {
        self.forward(&[token])
    }

    /// Feeds `tokens` at the next positions (a prompt, all at once) and returns the logits that
    /// follow the last. Every token's arithmetic is that of [`Session::step`] (the same row sums
    /// in the same order, the same attention loop), so feeding a prompt at once or token by
    /// token gives the same bits; at once, each row tile of every weight is decoded once for all
    /// tokens instead of once per token.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, String> {
        let m = self.m;
        let c = &m.cfg;
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(format!("token {t} is outside the vocabulary of {}", c.vocab));
        }
        let n = tokens.len();
        if n == 0 {
            return Err("no tokens to feed".into());
        }
        if self.pos + n > m.max_positions {
            return Err(format!(
                "the sequence reached the model's {} positions",
                m.max_positions
            ));
        }
        let (h, hd) = (c.hidden, c.head_dim);
        let (nh, nkv) = (c.heads, c.kv_heads);
        let mut x = vec![0f32; n * h];
        for (t, xt) in tokens.iter().zip(x.chunks_exact_mut(h)) {
            m.embed.row(*t as usize, xt);
        }
        let mut xn = vec![0f32; n * h];
        let (mut q, mut k, mut v) = (
            vec![0f32; n * nh * hd],
            vec![0f32; n * nkv * hd],
            vec![0f32; n * nkv * hd],
        );
        let mut ctx = vec![0f32; n * nh * hd];
        let mut o = vec![0f32; n * h];
        let scale = 1.0 / (hd as f32).sqrt();
        let norm_all = |x: &[f32], g: &[f32], out: &mut [f32]| {
            for (xt, ot) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
                m.rms_norm(xt, g, ot);
            }
        };
        for (li, l) in m.layers.iter().enumerate() {
            norm_all(&x, &l.attn_norm, &mut xn);
            l.q.matmul(&xn, &mut q)?;
            l.k.matmul(&xn, &mut k)?;
            l.v.matmul(&xn, &mut v)?;
            for (t, b) in [(&mut q, &l.q_bias), (&mut k, &l.k_bias), (&mut v, &l.v_bias)] {
                if let Some(b) = b {
                    for row in t.chunks_exact_mut(b.len()) {
                        row.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    }
                }
            }
            for (t, g) in [(&mut q, &l.q_norm), (&mut k, &l.k_norm)] {
                if let Some(g) = g {
                    for head in t.chunks_exact_mut(hd) {
                        let src = head.to_vec();
                        m.rms_norm(&src, g, head);
                    }
                }
            }
            for (i, qt) in q.chunks_exact_mut(nh * hd).enumerate() {
                qt.chunks_exact_mut(hd).for_each(|hq| m.rope(hq, self.pos + i));
            }
            for (i, kt) in k.chunks_exact_mut(nkv * hd).enumerate() {
                kt.chunks_exact_mut(hd).for_each(|hk| m.rope(hk, self.pos + i));
            }
            self.keys[li].extend_from_slice(&k);
            self.values[li].extend_from_slice(&v);
            let (keys, values) = (&self.keys[li], &self.values[li]);
            let groups = nh / nkv;
            let pos = self.pos;
            // One task per (token, head): token i attends to positions 0..=pos + i.
            ctx.par_chunks_mut(hd).enumerate().for_each(|(th, out)| {
                let (i, head) = (th / nh, th % nh);
                let len = pos + i + 1;
                let kvh = head / groups;
                let qh = &q[th * hd..(th + 1) * hd];
                let mut s: Vec<f32> = (0..len)
                    .map(|j| dot_f32(qh, &keys[(j * nkv + kvh) * hd..(j * nkv + kvh + 1) * hd]) * scale)
                    .collect();
                let mx = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for e in s.iter_mut() {
                    *e = (*e - mx).exp();
                    sum += *e;
                }
                out.fill(0.0);
                for (j, e) in s.iter().enumerate() {
                    let p = e / sum;
                    let vj = &values[(j * nkv + kvh) * hd..(j * nkv + kvh + 1) * hd];
                    out.iter_mut().zip(vj).for_each(|(a, b)| *a += p * b);
                }
            });
            l.o.matmul(&ctx, &mut o)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            norm_all(&x, &l.mlp_norm, &mut xn);
            let ffn = l.gate.rows();
            let (mut g, mut u) = (vec![0f32; n * ffn], vec![0f32; n * ffn]);
            l.gate.matmul(&xn, &mut g)?;
            l.up.matmul(&xn, &mut u)?;
            for (a, b) in g.iter_mut().zip(&u) {
                *a = *a / (1.0 + (-*a).exp()) * b;
            }
            l.down.matmul(&g, &mut o)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        let last = &x[(n - 1) * h..];
        let mut xl = vec![0f32; h];
        m.rms_norm(last, &m.norm, &mut xl);
        let mut logits = vec![0f32; c.vocab];
        m.head.as_ref().unwrap_or(&m.embed).matvec(&xl, &mut logits)?;
        self.pos += n;
        Ok(logits)
    }
}

/// A generation in progress: the prompt fed at once, then one sampled token at a time until
/// `max_tokens` tokens or an end-of-sequence token (`uc run`, `uc serve` and `uc bench` share
/// it, so that the same prompt, options and seed give them the same tokens).
pub struct Generation<'m, 'a> {
    session: Session<'m, 'a>,
    sampler: Sampler,
    logits: Vec<f32>,
    eos: Vec<u32>,
    max_tokens: usize,
    /// The tokens generated so far.
    pub tokens: Vec<u32>,
    /// Whether it ended at an end-of-sequence token (otherwise at `max_tokens`, once
    /// [`Generation::next_token`] returned `None`).
    pub at_eos: bool,
}

impl<'m, 'a> Generation<'m, 'a> {
    /// Feeds `prompt` (the slow part of a short generation) and gets ready to sample.
    pub fn start(
        model: &'m Llama<'a>,
        prompt: &[u32],
        sampling: Sampling,
        eos: &[u32],
        max_tokens: usize,
    ) -> Result<Generation<'m, 'a>, String> {
        let mut session = model.session();
        let logits = session.forward(prompt)?;
        Ok(Generation {
            session,
            sampler: Sampler::new(sampling),
            logits,
            eos: eos.to_vec(),
            max_tokens,
            tokens: Vec::new(),
            at_eos: false,
        })
    }

    /// The next token, or `None` at the end. The model steps on the token only when another
    /// one may follow.
    pub fn next_token(&mut self) -> Result<Option<u32>, String> {
        if self.at_eos || self.tokens.len() >= self.max_tokens {
            return Ok(None);
        }
        let next = self.sampler.next(&self.logits);
        if self.eos.contains(&next) {
            self.at_eos = true;
            return Ok(None);
        }
        self.tokens.push(next);
        if self.tokens.len() < self.max_tokens {
            self.logits = self.session.step(next)?;
        }
        Ok(Some(next))
    }
}

/// Text of a growing token sequence, handed out as it becomes complete: the whole continuation
/// is decoded each time and what is new is returned, unless it ends inside a character (a
/// character may span tokens).
#[derive(Default)]
pub struct TextStream {
    shown: String,
}

impl TextStream {
    /// The new text of `ids` (the whole sequence so far) since the last call, if any.
    pub fn update(&mut self, tok: &tokenizers::Tokenizer, ids: &[u32]) -> Option<String> {
        let text = tok.decode(ids, true).unwrap_or_default();
        let new = text.strip_prefix(self.shown.as_str())?;
        if new.is_empty() || new.ends_with('\u{fffd}') {
            return None;
        }
        let new = new.to_string();
        self.shown = text;
        Some(new)
    }

    /// At the end: the whole text of `ids`, and what was not handed out yet.
    pub fn finish(&mut self, tok: &tokenizers::Tokenizer, ids: &[u32]) -> (String, String) {
        let text = tok.decode(ids, true).unwrap_or_default();
        let rest = text.strip_prefix(self.shown.as_str()).unwrap_or("").to_string();
        self.shown.clone_from(&text);
        (text, rest)
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the first highest logit); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    /// Seed of the sampler's ChaCha8 stream.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A seeded sampler: the same logits, options and seed give the same tokens on every machine
/// (ChaCha8 is a fixed algorithm; probabilities are computed in f64 in index order).
pub struct Sampler {
    opts: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler with its stream at the start.
    pub fn new(opts: Sampling) -> Sampler {
        Sampler {
            opts,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
        }
    }

    /// The next token.
    pub fn next(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            let mut best = 0;
            for (i, &l) in logits.iter().enumerate() {
                if l > logits[best] {
                    best = i;
                }
            }
            best as u32
        };
        let o = self.opts;
        if o.temperature <= 0.0 {
            return argmax();
        }
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        // Most likely first; ties by index, so that the order is total and deterministic.
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if o.top_k > 0 {
            idx.truncate(o.top_k);
        }
        let t = f64::from(o.temperature);
        let mx = f64::from(logits[idx[0]]);
        let mut p: Vec<f64> = idx.iter().map(|&i| ((f64::from(logits[i]) - mx) / t).exp()).collect();
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= total);
        if o.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = p
                .iter()
                .position(|&v| {
                    acc += v;
                    acc >= f64::from(o.top_p)
                })
                .map_or(p.len(), |k| k + 1);
            p.truncate(keep);
            idx.truncate(keep);
        }
        let total: f64 = p.iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        for (k, &v) in p.iter().enumerate() {
            if u < v {
                return idx[k] as u32;
            }
            u -= v;
        }
        idx[p.len() - 1] as u32
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::llama::tests::{logits, tiny};
    use crate::nn::Weights;
    use uc_pack::PackWriter;
    use uc_pack::safetensors::Dtype;

    /// Writes `w` as a pack: 2-D tensors as 4-bit records (`packed`) or as the f32 values those
    /// records decode to (the unpacked model), vectors verbatim; with the tiny model's config.json.
    fn write(dir: &Path, cfg: &Config, w: &Weights, packed: Option<bool>) {
        let mut names: Vec<&String> = w.map.keys().collect();
        names.sort();
        let mut pw = PackWriter::new(dir).unwrap();
        for name in names {
            let t = &w.map[name];
            let shape: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            match packed {
                Some(as_record) if shape.len() == 2 => {
                    let rec = uc_pack::testkit::record(&v, &shape, 4);
                    if as_record {
                        pw.add_record(name, &rec, None).unwrap();
                    } else {
                        let r = Record::parse(&rec).unwrap();
                        let mut d = vec![0f32; v.len()];
                        r.decode_into(&mut d).unwrap();
                        pw.add_verbatim(name, Dtype::F32, &shape, &le(&d)).unwrap();
                    }
                }
                _ => pw.add_verbatim(name, Dtype::F32, &shape, &le(&v)).unwrap(),
            }
        }
        let config = serde_json::json!({
            "model_type": "llama", "hidden_size": cfg.hidden, "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads,
            "rms_norm_eps": cfg.eps, "rope_theta": cfg.rope_theta, "vocab_size": cfg.vocab,
            "tie_word_embeddings": cfg.tie, "max_position_embeddings": 8,
        });
        let cpath = dir.with_extension("config.json");
        std::fs::write(&cpath, config.to_string()).unwrap();
        pw.copy_file("config.json", &cpath).unwrap();
        pw.set_created_at("2026-01-01T00:00:00Z").unwrap();
        pw.finish().unwrap();
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("uc-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn run_all(dir: &Path, ids: &[u32]) -> Vec<Vec<f32>> {
        let files = Files::open(dir).unwrap();
        assert!(files.fingerprint.is_some(), "a pack is verified and fingerprinted");
        let m = Llama::load(dir, &files).unwrap();
        let mut s = m.session();
        ids.iter().map(|&t| s.step(t).unwrap()).collect()
    }

    /// The default GPU adapter, or `None` (the test is skipped) where there is none and
    /// `UC_REQUIRE_GPU` is unset; CI sets it and runs on Mesa's lavapipe.
    #[cfg(feature = "wgpu")]
    pub(crate) fn gpu_or_skip() -> Option<Gpu> {
        match open_gpu() {
            Ok(g) => Some(g),
            Err(e) if std::env::var_os("UC_REQUIRE_GPU").is_none() => {
                eprintln!("skipped, no GPU adapter: {e}");
                None
            }
            Err(e) => panic!("UC_REQUIRE_GPU is set and there is no GPU adapter: {e}"),
        }
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn a_pack_on_a_gpu_gives_the_cpu_logits_within_the_kernel_bound_and_the_same_bits_twice() {
        let Some(gpu) = gpu_or_skip() else { return };
        let (cfg, w) = tiny();
        let d = scratch("gpu");
        let (packed, unpacked) = (d.join("packed"), d.join("unpacked"));
        write(&packed, &cfg, &w, Some(true));
        write(&unpacked, &cfg, &w, Some(false));
        let ids = [3u32, 1, 4, 1, 5, 9, 2];
        let cpu = run_all(&packed, &ids);
        let files = Files::open(&packed).unwrap();
        let mut m = Llama::load(&packed, &files).unwrap();
        assert_eq!(m.to_gpu(&gpu).unwrap(), 7 * cfg.num_layers + 1, "every record moved");
        let steps = |m: &Llama| -> Vec<Vec<f32>> {
            let mut s = m.session();
            ids.iter().map(|&t| s.step(t).unwrap()).collect()
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let on_gpu = steps(&m);
        for (p, (g, c)) in on_gpu.iter().zip(&cpu).enumerate() {
            let scale = c.iter().fold(1f32, |a, b| a.max(b.abs()));
            let worst = g.iter().zip(c).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(
                worst <= 1e-4 * scale,
                "position {p}: {worst} against logits up to {scale}"
            );
        }
        // The same device gives the same bits again, and a prompt fed at once gives the bits of
        // feeding it token by token (one matrix-vector product per token on the GPU).
        assert_eq!(on_gpu.concat(), steps(&m).concat());
        let mut s = m.session();
        assert_eq!(bits(&s.forward(&ids).unwrap()), bits(on_gpu.last().unwrap()));
        // An unpacked model has no record to move: refused, the CPU path stays whole.
        let files = Files::open(&unpacked).unwrap();
        let mut m = Llama::load(&unpacked, &files).unwrap();
        let err = m.to_gpu(&gpu).unwrap_err().to_string();
        assert!(err.contains("no uc records"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_cached_decoder_matches_the_candle_forward_pass() {
        let (cfg, w) = tiny();
        let d = scratch("candle");
        let dir = d.join("dense");
        write(&dir, &cfg, &w, None);
        let ids = [1u32, 2, 3, 4, 5, 9, 0];
        let want = logits(&cfg, &w, &ids);
        let got = run_all(&dir, &ids);
        for (p, g) in got.iter().enumerate() {
            for (k, (a, b)) in g.iter().zip(&want[p * cfg.vocab..(p + 1) * cfg.vocab]).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "position {p} token {k}: {a} vs {b}"
                );
            }
        }
        // The cache is bounded by max_position_embeddings (8).
        let files = Files::open(&dir).unwrap();
        let m = Llama::load(&dir, &files).unwrap();
        let mut s = m.session();
        for t in 0..8 {
            s.step(t % 11).unwrap();
        }
        assert!(s.step(1).unwrap_err().contains("8 positions"));
        assert!(s.step(11).unwrap_err().contains("outside the vocabulary"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_prompt_fed_at_once_gives_the_bits_of_feeding_it_token_by_token() {
        let (cfg, w) = tiny();
        let d = scratch("prefill");
        for packed in [Some(true), None] {
            let dir = d.join(format!("{packed:?}"));
            write(&dir, &cfg, &w, packed);
            let files = Files::open(&dir).unwrap();
            let m = Llama::load(&dir, &files).unwrap();
            let ids = [1u32, 2, 3, 4, 5, 9, 0];
            let mut a = m.session();
            let mut one = Vec::new();
            for &t in &ids {
                one = a.step(t).unwrap();
            }
            let mut b = m.session();
            let mut at_once = b.forward(&ids[..4]).unwrap();
            assert_ne!(at_once, one);
            at_once = b.forward(&ids[4..]).unwrap();
            assert_eq!(b.position(), ids.len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            assert_eq!(bits(&at_once), bits(&one), "{packed:?}");
            // The next step after either is the same too.
            assert_eq!(bits(&a.step(7).unwrap()), bits(&b.step(7).unwrap()));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pack_and_its_decoded_weights_give_the_same_logits_on_any_thread_count() {
        let (cfg, w) = tiny();
        let d = scratch("same");
        let (packed, unpacked) = (d.join("packed"), d.join("unpacked"));
        write(&packed, &cfg, &w, Some(true));
        write(&unpacked, &cfg, &w, Some(false));
        let ids = [3u32, 1, 4, 1, 5, 9, 2];
        let bits = |v: Vec<Vec<f32>>| v.concat().iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let a = bits(run_all(&packed, &ids));
        assert_eq!(a, bits(run_all(&unpacked, &ids)));
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(a, bits(one.install(|| run_all(&packed, &ids))));
        // A pack that changes after verification is refused: flip a byte of a record's codes.
        let f = packed.join("model.safetensors");
        let files = Files::open(&packed).unwrap();
        drop(files);
        let mut b = std::fs::read(&f).unwrap();
        let at = b.len() - 1;
        b[at] ^= 1;
        std::fs::write(&f, &b).unwrap();
        let err = Files::open(&packed)
            .err()
            .expect("a corrupted pack is refused")
            .to_string();
        assert!(err.contains("not a valid uc pack"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_overlay_is_added_alike_by_matvec_and_matmul_and_near_the_merged_product() {
        let (rows, cols, r, t) = (40usize, 70usize, 3usize, 3usize);
        let w = uc_pack::testkit::weights(rows * cols, 9);
        let bf = |n: usize, k: usize| -> Vec<u16> {
            (0..n)
                .map(|i| uc_format::num::f32_to_bf16_bits(((i * k % 11) as f32 - 5.0) * 0.02))
                .collect()
        };
        let (ub, vb) = (bf(rows * r, 3), bf(r * cols, 7));
        let bytes = uc_pack::testkit::record_with(&w, &[rows as u64, cols as u64], 4, Some((r as u32, &ub, &vb)));
        let rec = Record::parse(&bytes).unwrap();
        let (mut u, mut v) = (vec![0f32; rows * r], vec![0f32; r * cols]);
        rec.overlay_u_into(&mut u).unwrap();
        rec.overlay_v_into(&mut v).unwrap();
        let mut base = vec![0f32; rows * cols];
        rec.decode_into(&mut base).unwrap();
        let wt = Weight::Packed {
            rec: Box::new(rec),
            u: u.clone(),
            v: v.clone(),
            #[cfg(feature = "wgpu")]
            gpu: None,
        };
        let x: Vec<f32> = (0..t * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let mut y = vec![0f32; t * rows];
        wt.matmul(&x, &mut y).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for k in 0..t {
            let xk = &x[k * cols..(k + 1) * cols];
            let mut yk = vec![0f32; rows];
            wt.matvec(xk, &mut yk).unwrap();
            assert_eq!(bits(&yk), bits(&y[k * rows..(k + 1) * rows]), "token {k}");
            let mut moved = false;
            for i in 0..rows {
                let (mut want, mut base_only) = (0f64, 0f64);
                for j in 0..cols {
                    let uv: f64 = (0..r)
                        .map(|q| f64::from(u[i * r + q]) * f64::from(v[q * cols + j]))
                        .sum();
                    want += (f64::from(base[i * cols + j]) + uv) * f64::from(xk[j]);
                    base_only += f64::from(base[i * cols + j]) * f64::from(xk[j]);
                }
                let got = f64::from(yk[i]);
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{k},{i}: {got} vs {want}"
                );
                moved |= (got - base_only).abs() > 1e-3;
            }
            assert!(moved, "the overlay changes the product");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_file_that_is_not_safetensors_is_refused_without_blocking() {
        let d = scratch("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(d.join("model.safetensors"))
                .status()
                .unwrap()
                .success()
        );
        let err = Files::open(&d).err().expect("a FIFO is refused").to_string();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_file(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.safetensors"), [0xffu8; 64]).unwrap();
        assert!(Files::open(&d).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_sampling_is_seeded() {
        let logits = [0.5f32, 2.0, 2.0, -1.0];
        assert_eq!(Sampler::new(Sampling::default()).next(&logits), 1);
        let opts = Sampling {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            seed: 7,
        };
        let draw = |o: Sampling| {
            let mut s = Sampler::new(o);
            (0..200).map(|_| s.next(&logits)).collect::<Vec<u32>>()
        };
        let a = draw(opts);
        assert_eq!(a, draw(opts), "same seed, same tokens");
        assert_ne!(a, draw(Sampling { seed: 8, ..opts }), "another seed, another stream");
        assert!(!a.contains(&3), "top-k 3 never draws the least likely token");
        assert!(a.contains(&0) && a.contains(&1) && a.contains(&2));
        // top-p 0.5: the two tokens of logit 2.0 hold 0.82 of the mass; the first reaches 0.41,
        // so the nucleus is tokens 1 and 2.
        let b = draw(Sampling { top_p: 0.5, ..opts });
        assert!(b.iter().all(|&t| t == 1 || t == 2) && b.contains(&1) && b.contains(&2));
    }
}
