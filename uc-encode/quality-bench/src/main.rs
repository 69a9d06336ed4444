//! Quality benchmark: uc GSQ records against ggml k-quants (candle-core's implementation), on the
//! linear weights of a real model (MiniLM) and on synthetic Gaussian / Student-t matrices.
//!
//! Every error is measured on the reconstruction a decoder returns: uc records are validated and
//! decoded with uc-format / uc-decode (overlay merged in the spec's reference order), k-quants are
//! dequantized by candle. Sizes are what is stored: uc record bytes (header, grid, scales, codes,
//! overlay, padding), k-quant block bytes.
//!
//! See README.md beside Cargo.toml for the command line.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use uc_decode::Record;
use uc_encode::{SubScales, TensorOptions, candidates, encode_tensor};

mod affine;

/// Seed of the randomized SVD (the same for candidate evaluation and the final encode).
const SVD_SEED: u64 = 0;
const UC_BITS: std::ops::RangeInclusive<u8> = 2..=8;
const BUDGET_RANKS: [u32; 5] = [0, 8, 16, 32, 64];

struct Tensor2 {
    name: String,
    dims: Vec<u64>,
    data: Vec<f32>,
    norm2: f64,
}

struct InputSet {
    name: String,
    description: String,
    tensors: Vec<Tensor2>,
    notes: Vec<String>,
}

/// One tensor's result under one method.
struct TensorResult {
    stored_bits: u64,
    err2: f64,
    /// Free-form per-tensor detail (e.g. the (bits, rank) chosen).
    detail: String,
}

/// One row of a table.
struct MethodRow {
    group: String,
    method: String,
    results: Vec<TensorResult>,
    seconds: f64,
    notes: Vec<String>,
}

struct Stats {
    n: u64,
    stored_bits: u64,
    bpw: f64,
    mean_rel: f64,
    weighted_rel: f64,
    worst_rel: f64,
    worst_idx: usize,
}

impl MethodRow {
    fn stats(&self, set: &InputSet) -> Stats {
        let n: u64 = set.tensors.iter().map(|t| t.data.len() as u64).sum();
        let stored_bits: u64 = self.results.iter().map(|r| r.stored_bits).sum();
        let rels: Vec<f64> = self
            .results
            .iter()
            .zip(&set.tensors)
            .map(|(r, t)| rel(r.err2, t.norm2))
            .collect();
        let (worst_idx, worst_rel) = rels
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |a, (i, r)| if r > a.1 { (i, r) } else { a });
        let e: f64 = self.results.iter().map(|r| r.err2).sum();
        let d: f64 = set.tensors.iter().map(|t| t.norm2).sum();
        Stats {
            n,
            stored_bits,
            bpw: stored_bits as f64 / n as f64,
            mean_rel: rels.iter().sum::<f64>() / rels.len() as f64,
            weighted_rel: (e / d).sqrt(),
            worst_rel,
            worst_idx,
        }
    }
}

fn rel(err2: f64, norm2: f64) -> f64 {
    if norm2 > 0.0 {
        (err2 / norm2).sqrt()
    } else {
        err2.sqrt()
    }
}

fn sum_sq(v: &[f32]) -> f64 {
    v.par_chunks(1 << 16)
        .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

fn err2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.par_chunks(1 << 16)
        .zip(b.par_chunks(1 << 16))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
                .sum::<f64>()
        })
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// splitmix64: a small, well-mixed, seedable generator (deterministic on every platform).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller, cosine branch).
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.unit(), self.unit());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
    /// Student-t with 4 degrees of freedom: Z / sqrt(χ²₄ / 4), χ²₄ = −2 ln(U₁U₂).
    fn student_t4(&mut self) -> f64 {
        let z = self.normal();
        let chi2 = -2.0 * (self.unit() * self.unit()).ln();
        z / (chi2 / 4.0).sqrt()
    }
}

fn synthetic(kind: &str, size: u64) -> InputSet {
    let n = (size * size) as usize;
    let data: Vec<f32> = match kind {
        "gaussian" => {
            let mut rng = Rng(0x5eed_0001);
            (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
        }
        _ => {
            // Var(t₄) = ν / (ν − 2) = 2: scale by 0.02 / √2 for std 0.02.
            let mut rng = Rng(0x5eed_0002);
            let s = 0.02 / 2f64.sqrt();
            (0..n).map(|_| (s * rng.student_t4()) as f32).collect()
        }
    };
    let norm2 = sum_sq(&data);
    let std = (norm2 / n as f64).sqrt();
    let (name, what) = if kind == "gaussian" {
        ("gaussian", "Gaussian, std 0.02")
    } else {
        ("student-t4", "Student-t, nu = 4, scaled to std 0.02")
    };
    InputSet {
        name: format!("{name}-{size}"),
        description: format!("synthetic {size}x{size} {what} (sample std {std:.5}), seeded splitmix64"),
        tensors: vec![Tensor2 {
            name: format!("{name}.{size}x{size}"),
            dims: vec![size, size],
            data,
            norm2,
        }],
        notes: Vec::new(),
    }
}

/// Reads the F32 2-D linear weights of a safetensors file (a tiny parser: 8-byte LE header
/// length, JSON header, raw little-endian data).
fn load_model(path: &Path) -> Result<InputSet, String> {
    load_model_filtered(path, "minilm", &|name: &str| {
        name.contains("attention") || name.contains("intermediate") || name.contains("output")
    })
}

fn load_model_filtered(path: &Path, set_name: &str, keep: &dyn Fn(&str) -> bool) -> Result<InputSet, String> {
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    if bytes.len() < 8 {
        return Err(format!("{}: too short for safetensors", file.display()));
    }
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(bytes.get(8..8 + hlen).ok_or("header past end of file")?)
        .map_err(|e| format!("{}: header: {e}", file.display()))?;
    let data_start = 8 + hlen;
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();
    let obj = header.as_object().ok_or("header is not an object")?;
    let mut names: Vec<&String> = obj.keys().filter(|k| *k != "__metadata__").collect();
    names.sort_by_key(|k| natural_key(k));
    for name in names {
        let info = &obj[name];
        let dtype = info["dtype"].as_str().unwrap_or("?");
        let shape: Vec<u64> = info["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        let linear = keep(name) && name.ends_with(".weight") && shape.len() == 2;
        if !linear || dtype != "F32" {
            skipped.push(format!("{name} {dtype} {shape:?}"));
            continue;
        }
        let off = info["data_offsets"].as_array().ok_or("no data_offsets")?;
        let (a, b) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        let raw = bytes
            .get(data_start + a..data_start + b)
            .ok_or_else(|| format!("{name}: data past end of file"))?;
        let data: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if data.len() as u64 != shape.iter().product::<u64>() {
            return Err(format!("{name}: {} values for shape {shape:?}", data.len()));
        }
        let norm2 = sum_sq(&data);
        tensors.push(Tensor2 {
            name: name.clone(),
            dims: shape,
            data,
            norm2,
        });
    }
    if tensors.is_empty() {
        return Err(format!("{}: no 2-D F32 linear weights found", file.display()));
    }
    let n: u64 = tensors.iter().map(|t| t.data.len() as u64).sum();
    let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tensors {
        *shapes.entry(format!("{}x{}", t.dims[0], t.dims[1])).or_default() += 1;
    }
    let shapes: Vec<String> = shapes.iter().map(|(s, c)| format!("{c} x [{s}]")).collect();
    Ok(InputSet {
        name: set_name.into(),
        description: format!(
            "{}: {} linear weights (names with attention|intermediate|output, .weight, 2-D, F32): {}; {} weights",
            file.display(),
            tensors.len(),
            shapes.join(", "),
            n
        ),
        tensors,
        notes: vec![format!(
            "excluded ({}): embeddings (word/position/token-type tables are lookups, usually kept at higher precision), \
             LayerNorm weights and biases (1-D), position_ids (I64), and anything not matching the filter: {}",
            skipped.len(),
            skipped.join("; ")
        )],
    })
}

/// Sort key that orders "layer.10" after "layer.9".
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for ch in s.chars() {
        if let Some(d) = ch.to_digit(10) {
            num = Some(num.unwrap_or(0) * 10 + u64::from(d));
        } else {
            if let Some(v) = num.take() {
                out.push((std::mem::take(&mut text), v));
            }
            text.push(ch);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

// ---------------------------------------------------------------------------------------------
// uc

/// Validates and decodes a record, merging the overlay in the reference order of spec
/// (`acc = 0; for k { acc = acc + U[i,k] * V[k,j] }` in binary32, then `W_base + acc`).
fn uc_reconstruct(record: &[u8]) -> Vec<f32> {
    uc_format::validate(record).expect("the encoder wrote an invalid record");
    let rec = Record::parse(record).expect("record parses");
    let mut out = vec![0f32; rec.len() as usize];
    rec.decode_into(&mut out).expect("decode");
    let r = rec.overlay_rank() as usize;
    if r > 0 {
        let (rows, cols) = (rec.rows() as usize, rec.cols() as usize);
        let mut u = vec![0f32; rows * r];
        let mut v = vec![0f32; r * cols];
        rec.overlay_u_into(&mut u).expect("overlay U");
        rec.overlay_v_into(&mut v).expect("overlay V");
        out.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
            let mut acc = vec![0f32; cols];
            for k in 0..r {
                let uik = u[i * r + k];
                for (a, &b) in acc.iter_mut().zip(&v[k * cols..(k + 1) * cols]) {
                    *a += uik * b;
                }
            }
            for (o, a) in row.iter_mut().zip(&acc) {
                *o += *a;
            }
        });
    }
    out
}

fn sub_name(s: Option<SubScales>) -> String {
    s.map_or(String::new(), |s| format!("s{}q{}", s.block, s.bits))
}

fn parse_sub(v: &str) -> Result<Option<SubScales>, String> {
    if v == "0" || v == "v03" {
        return Ok(None);
    }
    let (b, q) = v
        .split_once('q')
        .ok_or_else(|| format!("--sub-blocks: {v:?} is not 0 or <S>q<bits> (e.g. 16q6)"))?;
    Ok(Some(SubScales {
        block: b.parse().map_err(|e| format!("--sub-blocks {v:?}: {e}"))?,
        bits: q.parse().map_err(|e| format!("--sub-blocks {v:?}: {e}"))?,
    }))
}

fn uc_encode(t: &Tensor2, bits: u8, rank: u32, sub_block: Option<SubScales>) -> TensorResult {
    let enc = encode_tensor(
        &t.data,
        &t.dims,
        &TensorOptions {
            bits,
            rank,
            seed: SVD_SEED,
            subscales: sub_block,
        },
    )
    .unwrap_or_else(|e| panic!("{}: encode b{bits} r{rank}: {e}", t.name));
    let recon = uc_reconstruct(&enc.record);
    let e = err2(&t.data, &recon);
    // The encoder's own estimate must agree with the decoder's reconstruction.
    assert!(
        (e - enc.err2).abs() <= 1e-5 * t.norm2 + 1e-3 * e,
        "{}: b{bits} r{rank}: decoded err2 {e} vs encoder {}",
        t.name,
        enc.err2
    );
    TensorResult {
        stored_bits: enc.record.len() as u64 * 8,
        err2: e,
        detail: format!("b{}r{}{}", enc.bits, enc.rank, sub_name(sub_block)),
    }
}

fn uc_uniform(set: &InputSet, bits: u8, rank: u32, sub_block: Option<SubScales>) -> MethodRow {
    let t0 = Instant::now();
    let results = set
        .tensors
        .iter()
        .map(|t| uc_encode(t, bits, rank, sub_block))
        .collect();
    let sub = if sub_block.is_none() {
        String::new()
    } else {
        format!(" {}", sub_name(sub_block))
    };
    MethodRow {
        group: "uc uniform".into(),
        method: if rank == 0 {
            format!("uc b{bits}{sub}")
        } else {
            format!("uc b{bits}{sub} + r{rank} bf16")
        },
        results,
        seconds: t0.elapsed().as_secs_f64(),
        notes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// k-quants (candle-core)

#[derive(Clone, Copy, PartialEq)]
enum KMode {
    /// `QTensor::quantize`: candle's port of the ggml reference quantizers.
    Plain,
    /// `QTensor::quantize_imatrix` with an all-ones importance vector: the weighted search
    /// (make_qkx3_quants / make_qx_quants with weights) that llama.cpp runs with an imatrix.
    ImatrixOnes,
}

fn kquant_name(d: GgmlDType) -> &'static str {
    match d {
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8_0 => "Q8_0",
        _ => "?",
    }
}

fn kquant(set: &InputSet, dtype: GgmlDType, mode: KMode, notes_out: &mut Vec<String>) -> Result<MethodRow, String> {
    let dev = Device::Cpu;
    let bs = dtype.block_size();
    let t0 = Instant::now();
    let mut results = Vec::new();
    let mut flattened = Vec::new();
    for t in &set.tensors {
        let n = t.data.len();
        let last = *t.dims.last().unwrap() as usize;
        let shape: Vec<usize> = if last.is_multiple_of(bs) {
            t.dims.iter().map(|&d| d as usize).collect()
        } else if n.is_multiple_of(bs) {
            flattened.push(t.name.clone());
            vec![n / bs, bs]
        } else {
            return Err(format!(
                "{}: {n} weights is not a multiple of the {bs}-element block",
                t.name
            ));
        };
        let src = Tensor::from_slice(&t.data, shape.as_slice(), &dev).map_err(|e| e.to_string())?;
        let q = match mode {
            KMode::Plain => QTensor::quantize(&src, dtype),
            KMode::ImatrixOnes => QTensor::quantize_imatrix(&src, &vec![1f32; *shape.last().unwrap()], dtype),
        }
        .map_err(|e| format!("{}: quantize {dtype:?}: {e}", t.name))?;
        let stored_bits = q.storage_size_in_bytes() as u64 * 8;
        let expect = (n / bs * dtype.type_size() * 8) as u64;
        assert_eq!(stored_bits, expect, "{}: storage size", t.name);
        let deq = q
            .dequantize(&dev)
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.to_vec1::<f32>())
            .map_err(|e| format!("{}: dequantize: {e}", t.name))?;
        results.push(TensorResult {
            stored_bits,
            err2: err2(&t.data, &deq),
            detail: String::new(),
        });
    }
    let mut notes = Vec::new();
    if !flattened.is_empty() {
        let note = format!(
            "{}: last dim not a multiple of {bs}, quantized flattened to [n/{bs}, {bs}] ({} of {} tensors)",
            kquant_name(dtype),
            flattened.len(),
            set.tensors.len()
        );
        notes_out.push(note.clone());
        notes.push(note);
    }
    let suffix = match mode {
        KMode::Plain => "",
        KMode::ImatrixOnes => " (imatrix=1)",
    };
    Ok(MethodRow {
        group: format!("tier {}", kquant_name(dtype)),
        method: format!("{}{suffix}", kquant_name(dtype)),
        results,
        seconds: t0.elapsed().as_secs_f64(),
        notes,
    })
}

// ---------------------------------------------------------------------------------------------
// Output

fn fmt_row(set: &InputSet, r: &MethodRow) -> String {
    let s = r.stats(set);
    let worst = if set.tensors.len() > 1 {
        format!("{:.5} ({})", s.worst_rel, short_name(&set.tensors[s.worst_idx].name))
    } else {
        format!("{:.5}", s.worst_rel)
    };
    let choice = choice_summary(r);
    format!(
        "| {} | {}{} | {:.4} | {:.5} | {:.5} | {} | {:.2} |",
        r.group,
        r.method,
        if choice.is_empty() {
            String::new()
        } else {
            format!(" [{choice}]")
        },
        s.bpw,
        s.mean_rel,
        s.weighted_rel,
        worst,
        r.seconds
    )
}

fn short_name(n: &str) -> String {
    n.replace("encoder.layer.", "L").replace(".weight", "")
}

/// For budget rows: how often each (bits, rank) was chosen.
fn choice_summary(r: &MethodRow) -> String {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &r.results {
        if !t.detail.is_empty() && r.method.starts_with("uc @") {
            *m.entry(t.detail.as_str()).or_default() += 1;
        }
    }
    m.iter()
        .map(|(k, c)| {
            if r.results.len() > 1 {
                format!("{k} x{c}")
            } else {
                (*k).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_json(set: &InputSet, r: &MethodRow) -> Value {
    let s = r.stats(set);
    json!({
        "group": r.group,
        "method": r.method,
        "n": s.n,
        "stored_bits": s.stored_bits,
        "bpw": s.bpw,
        "mean_rel_l2": s.mean_rel,
        "weighted_rel_l2": s.weighted_rel,
        "worst_rel_l2": s.worst_rel,
        "worst_tensor": set.tensors[s.worst_idx].name,
        "seconds": r.seconds,
        "notes": r.notes,
        "per_tensor": r.results.iter().zip(&set.tensors).map(|(x, t)| json!({
            "name": t.name,
            "stored_bits": x.stored_bits,
            "bpw": x.stored_bits as f64 / t.data.len() as f64,
            "rel_l2": rel(x.err2, t.norm2),
            "choice": x.detail,
        })).collect::<Vec<_>>(),
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------------------------

struct Args {
    model: Option<PathBuf>,
    synthetic_size: u64,
    sets: Vec<String>,
    json: Option<PathBuf>,
    sub_blocks: Vec<Option<SubScales>>,
    ranks: Vec<u32>,
    affine: bool,
    affine_learned: bool,
    smol_model: Option<PathBuf>,
    smol_layers: Option<Vec<u32>>,
    affine_layouts: Option<Vec<affine::Layout>>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        synthetic_size: 4096,
        sets: vec!["minilm".into(), "gaussian".into(), "student-t".into()],
        json: None,
        sub_blocks: vec![
            None,
            Some(SubScales { block: 16, bits: 6 }),
            Some(SubScales { block: 32, bits: 6 }),
        ],
        ranks: BUDGET_RANKS.to_vec(),
        affine: false,
        affine_learned: false,
        smol_model: None,
        smol_layers: Some(vec![0, 10, 20]),
        affine_layouts: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--model" => a.model = Some(val()?.into()),
            "--synthetic-size" => {
                a.synthetic_size = val()?.parse().map_err(|e| format!("--synthetic-size: {e}"))?;
                if a.synthetic_size == 0 || !a.synthetic_size.is_multiple_of(16) {
                    return Err(
                        "--synthetic-size must be a positive multiple of 16 (k-quant blocks hold 256 weights)".into(),
                    );
                }
            }
            "--sets" => a.sets = val()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--json" => a.json = Some(val()?.into()),
            "--sub-blocks" => {
                a.sub_blocks = val()?
                    .split(',')
                    .map(|s| parse_sub(s.trim()))
                    .collect::<Result<_, _>>()?
            }
            "--ranks" => {
                a.ranks = val()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--ranks: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--affine" => a.affine = true,
            "--affine-learned" => a.affine_learned = true,
            "--affine-layouts" => {
                a.affine_layouts = Some(
                    val()?
                        .split(',')
                        .map(|x| {
                            parse_layout(x.trim()).ok_or_else(|| format!("--affine-layouts: bad {x:?} (b2s16q4m3)"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            "--smol-model" => a.smol_model = Some(val()?.into()),
            "--smol-layers" => {
                let v = val()?;
                a.smol_layers = if v == "all" {
                    None
                } else {
                    Some(
                        v.split(',')
                            .map(|x| x.trim().parse().map_err(|e| format!("--smol-layers: {e}")))
                            .collect::<Result<_, _>>()?,
                    )
                }
            }
            "-h" | "--help" => {
                return Err("usage: uc-quality-bench [--model DIR|FILE] [--synthetic-size N] \
                            [--sets minilm,gaussian,student-t] [--json FILE] [--sub-blocks 0,16q6,32q6] \
                            [--ranks 0,8,16,32,64]"
                    .into());
            }
            _ => return Err(format!("unknown argument {k:?} (see --help)")),
        }
    }
    for s in &a.sets {
        if !["minilm", "gaussian", "student-t", "smollm2"].contains(&s.as_str()) {
            return Err(format!("unknown set {s:?} (minilm, gaussian, student-t)"));
        }
    }
    if a.sets.iter().any(|s| s == "minilm") && a.model.is_none() {
        return Err(
            "the minilm set needs --model \"$(scripts/fetch-models.sh minilm)\" (or drop it with --sets)".into(),
        );
    }
    Ok(a)
}

const TIERS: [GgmlDType; 6] = [
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::Q8_0,
];

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("uc-quality-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if args.affine {
        return affine_main(&args);
    }
    let start = Instant::now();
    let threads = rayon::current_num_threads();
    let cpu = cpu_model();
    println!(
        "# uc quality benchmark: uc GSQ vs ggml k-quants (candle-core {})\n",
        CANDLE_VERSION
    );
    println!(
        "machine: {cpu}, {} hardware threads, rayon threads {threads} (candle k-quant quantization runs on one thread)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut sets_json = Vec::new();
    let mut verdict_json = Vec::new();
    for set_name in &args.sets {
        let set = match set_name.as_str() {
            "minilm" => match load_model(args.model.as_deref().unwrap()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("uc-quality-bench: {e}");
                    return ExitCode::from(2);
                }
            },
            "gaussian" => synthetic("gaussian", args.synthetic_size),
            _ => synthetic("student-t", args.synthetic_size),
        };
        let set_t0 = Instant::now();
        eprintln!("[{}] {}", set.name, set.description);
        let mut rows: Vec<MethodRow> = Vec::new();
        let mut notes = set.notes.clone();

        // uc uniform.
        for rank in [0u32, 16, 32].into_iter().filter(|r| args.ranks.contains(r)) {
            for &sub in &args.sub_blocks {
                if rank > 0 && sub.is_some() {
                    continue;
                }
                for bits in UC_BITS {
                    let r = uc_uniform(&set, bits, rank, sub);
                    eprintln!("  {} {:.1}s", r.method, r.seconds);
                    rows.push(r);
                }
            }
        }

        // Candidates for the budgeted uc, once per tensor.
        let t0 = Instant::now();
        let cands = uc_candidates(&set, &args.sub_blocks, &args.ranks);
        let cand_secs = t0.elapsed().as_secs_f64();
        eprintln!("  candidates {cand_secs:.1}s");
        notes.push(format!(
            "uc @ budget: per tensor, the candidate (bits 2..=8 x overlay rank {:?} x sub-block {:?}, 0 = v0.3 scales) with the lowest \
             estimated error whose record size <= the k-quant's stored bits for that tensor, then encoded and measured; \
             evaluating all candidates took {cand_secs:.2} s (not included in the per-tier times)",
            args.ranks, args.sub_blocks
        ));

        let mut tier_rows: Vec<(GgmlDType, usize, Option<usize>, usize)> = Vec::new();
        for dtype in TIERS {
            let plain = match kquant(&set, dtype, KMode::Plain, &mut notes) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("uc-quality-bench: {e}");
                    return ExitCode::from(1);
                }
            };
            eprintln!("  {} {:.1}s", plain.method, plain.seconds);
            let plain_idx = rows.len();
            rows.push(plain);
            let imat_idx = if dtype != GgmlDType::Q8_0 {
                let mut sink = Vec::new();
                let r = kquant(&set, dtype, KMode::ImatrixOnes, &mut sink).expect("imatrix quantize");
                eprintln!("  {} {:.1}s", r.method, r.seconds);
                rows.push(r);
                Some(rows.len() - 1)
            } else {
                None
            };
            // uc at the same budget, tensor by tensor.
            let t0 = Instant::now();
            let mut results = Vec::new();
            let mut over = 0;
            for (ti, t) in set.tensors.iter().enumerate() {
                let budget = rows[plain_idx].results[ti].stored_bits;
                let best = cands[ti]
                    .iter()
                    .filter(|c| c.1.cost_bits <= budget)
                    .min_by(|a, b| a.1.err2.total_cmp(&b.1.err2).then(a.1.cost_bits.cmp(&b.1.cost_bits)));
                let (sub, pick) = match best {
                    Some(c) => *c,
                    None => {
                        over += 1;
                        *cands[ti].iter().min_by_key(|c| c.1.cost_bits).unwrap()
                    }
                };
                results.push(uc_encode(t, pick.bits, pick.rank, sub));
            }
            let mut rnotes = Vec::new();
            if over > 0 {
                let n = format!(
                    "uc @ {}: no candidate fits the budget for {over} tensors; the cheapest was used (over budget)",
                    kquant_name(dtype)
                );
                notes.push(n.clone());
                rnotes.push(n);
            }
            let r = MethodRow {
                group: format!("tier {}", kquant_name(dtype)),
                method: format!("uc @ {} budget", kquant_name(dtype)),
                results,
                seconds: t0.elapsed().as_secs_f64(),
                notes: rnotes,
            };
            eprintln!("  {} {:.1}s", r.method, r.seconds);
            rows.push(r);
            tier_rows.push((dtype, plain_idx, imat_idx, rows.len() - 1));
        }
        let set_secs = set_t0.elapsed().as_secs_f64();

        // Table.
        println!("## {}\n\n{}\n", set.name, set.description);
        println!(
            "| group | method | bpw | mean rel_l2 | weighted rel_l2 | worst rel_l2 | time s |\n|---|---|---:|---:|---:|---:|---:|"
        );
        for r in &rows {
            println!("{}", fmt_row(&set, r));
        }
        println!();
        for n in &notes {
            println!("- {n}");
        }
        println!("- set wall time {set_secs:.1} s\n");

        // Claim check: uc at the k-quant's budget vs the k-quant, tiers 3..6 bits.
        println!(
            "Claim check ({}): uc at <= the k-quant's bits per tensor vs the k-quant (candle `quantize`; imatrix=1 variant in brackets)\n",
            set.name
        );
        println!(
            "| tier | k-quant bpw | uc bpw | k-quant mean / weighted | uc mean / weighted | uc lower? |\n|---|---:|---:|---:|---:|---|"
        );
        let mut verdicts = Vec::new();
        for &(dtype, pi, ii, ui) in &tier_rows {
            let (k, u) = (rows[pi].stats(&set), rows[ui].stats(&set));
            let im = ii.map(|i| rows[i].stats(&set));
            let in_claim = matches!(dtype, GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K);
            let lower = u.bpw <= k.bpw && u.mean_rel < k.mean_rel && u.weighted_rel < k.weighted_rel;
            let lower_im = im
                .as_ref()
                .map(|m| u.bpw <= m.bpw && u.mean_rel < m.mean_rel && u.weighted_rel < m.weighted_rel);
            let im_txt = im
                .as_ref()
                .map(|m| format!(" [{:.5} / {:.5}]", m.mean_rel, m.weighted_rel))
                .unwrap_or_default();
            let lower_txt = format!(
                "{}{}{}",
                if lower { "yes" } else { "NO" },
                match lower_im {
                    Some(true) => " [yes]",
                    Some(false) => " [NO]",
                    None => "",
                },
                if in_claim { "" } else { " (outside the 3-6 bit claim)" }
            );
            println!(
                "| {} | {:.4} | {:.4} | {:.5} / {:.5}{} | {:.5} / {:.5} | {} |",
                kquant_name(dtype),
                k.bpw,
                u.bpw,
                k.mean_rel,
                k.weighted_rel,
                im_txt,
                u.mean_rel,
                u.weighted_rel,
                lower_txt
            );
            verdicts.push(json!({
                "tier": kquant_name(dtype),
                "in_claim": in_claim,
                "kquant_bpw": k.bpw,
                "uc_bpw": u.bpw,
                "kquant_mean_rel_l2": k.mean_rel,
                "kquant_weighted_rel_l2": k.weighted_rel,
                "kquant_imatrix1_mean_rel_l2": im.as_ref().map(|m| m.mean_rel),
                "kquant_imatrix1_weighted_rel_l2": im.as_ref().map(|m| m.weighted_rel),
                "uc_mean_rel_l2": u.mean_rel,
                "uc_weighted_rel_l2": u.weighted_rel,
                "uc_lower": lower,
                "uc_lower_than_imatrix1": lower_im,
            }));
        }
        println!();
        verdict_json.push(json!({"set": set.name, "tiers": verdicts}));
        sets_json.push(json!({
            "name": set.name,
            "description": set.description,
            "tensors": set.tensors.iter().map(|t| json!({"name": t.name, "dims": t.dims})).collect::<Vec<_>>(),
            "notes": notes,
            "candidate_seconds": cand_secs,
            "seconds": set_secs,
            "rows": rows.iter().map(|r| row_json(&set, r)).collect::<Vec<_>>(),
        }));
    }
    let total = start.elapsed().as_secs_f64();
    println!("total wall time {total:.1} s");
    if let Some(path) = &args.json {
        let doc = json!({
            "benchmark": "uc-quality-bench",
            "candle_core": CANDLE_VERSION,
            "machine": {
                "cpu": cpu,
                "hardware_threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "rayon_threads": threads,
            },
            "args": std::env::args().skip(1).collect::<Vec<_>>(),
            "synthetic_size": args.synthetic_size,
            "sets": sets_json,
            "claim_check": verdict_json,
            "seconds": total,
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap() + "\n") {
            eprintln!("uc-quality-bench: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// The candle-core version locked in this package's Cargo.lock (see build.rs).
const CANDLE_VERSION: &str = env!("CANDLE_CORE_VERSION");

// ---------------------------------------------------------------------------------------------
// Affine simulation (research; see affine.rs)

const AFFINE_TIERS: [GgmlDType; 5] = [
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// Every tensor's uc candidates (bits 2..=8 × `ranks`) under each sub-block layout of `subs`,
/// with the layout they were evaluated under.
fn uc_candidates(
    set: &InputSet,
    subs: &[Option<SubScales>],
    ranks: &[u32],
) -> Vec<Vec<(Option<SubScales>, uc_encode::Candidate)>> {
    let bits: Vec<u8> = UC_BITS.collect();
    set.tensors
        .iter()
        .map(|t| {
            subs.iter()
                .flat_map(|&sub| {
                    candidates(&t.data, &t.dims, &bits, ranks, SVD_SEED, sub)
                        .expect("candidates")
                        .into_iter()
                        .map(move |c| (sub, c))
                })
                .collect()
        })
        .collect()
}

fn tier_bpw(d: GgmlDType) -> f64 {
    d.type_size() as f64 * 8.0 / d.block_size() as f64
}

/// Affine layouts worth evaluating: for each tier B and b in {floor(B)-1, floor(B)}, S in {16, 32},
/// the (q, q_m) in {4,5,6,8}^2 whose nominal bpw fits B (or B - 0.06, to leave room for header and
/// grid on small tensors) and that no other fitting pair dominates.
fn affine_layouts() -> Vec<affine::Layout> {
    let qs = [4u8, 5, 6, 8];
    let mut out = std::collections::BTreeSet::new();
    for d in AFFINE_TIERS {
        let bb = tier_bpw(d);
        for budget in [bb, bb - 0.06] {
            let fb = bb.floor() as u8;
            for b in [fb - 1, fb] {
                if !(2..=8).contains(&b) {
                    continue;
                }
                for s in [16usize, 32] {
                    let fit: Vec<affine::Layout> = qs
                        .iter()
                        .flat_map(|&q| qs.iter().map(move |&qm| affine::Layout { b, s, q, qm }))
                        .filter(|l| l.nominal_bpw() <= budget + 1e-9)
                        .collect();
                    for l in &fit {
                        let dominated = fit.iter().any(|o| o != l && o.q >= l.q && o.qm >= l.qm);
                        if !dominated {
                            out.insert(*l);
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// "b2s16q4m3" -> Layout.
fn parse_layout(v: &str) -> Option<affine::Layout> {
    let v = v.strip_prefix('b')?;
    let (b, r) = v.split_once('s')?;
    let (s, r) = r.split_once('q')?;
    let (q, m) = r.split_once('m')?;
    let l = affine::Layout {
        b: b.parse().ok()?,
        s: s.parse().ok()?,
        q: q.parse().ok()?,
        qm: m.parse().ok()?,
    };
    ((1..=8).contains(&l.b) && (l.s == 16 || l.s == 32) && (1..=8).contains(&l.q) && (1..=8).contains(&l.qm))
        .then_some(l)
}

fn load_set(args: &Args, set_name: &str) -> Result<InputSet, String> {
    match set_name {
        "minilm" => load_model(args.model.as_deref().ok_or("minilm needs --model")?),
        "smollm2" => {
            let p = args.smol_model.as_deref().ok_or("smollm2 needs --smol-model FILE")?;
            let layers = args.smol_layers.clone();
            let mut set = load_model_filtered(p, "smollm2", &move |name: &str| {
                let Some(rest) = name.strip_prefix("model.layers.") else {
                    return false;
                };
                let Some(l) = rest.split('.').next().and_then(|x| x.parse::<u32>().ok()) else {
                    return false;
                };
                layers.as_ref().is_none_or(|ls| ls.contains(&l))
            })?;
            set.notes.clear();
            Ok(set)
        }
        "gaussian" => Ok(synthetic("gaussian", args.synthetic_size)),
        _ => Ok(synthetic("student-t", args.synthetic_size)),
    }
}

fn affine_main(args: &Args) -> ExitCode {
    let start = Instant::now();
    let layouts = args.affine_layouts.clone().unwrap_or_else(affine_layouts);
    println!(
        "# affine GSQ simulation (candle-core {CANDLE_VERSION}), rayon threads {}\n",
        rayon::current_num_threads()
    );
    println!(
        "affine layouts evaluated ({}): {}\n",
        layouts.len(),
        layouts
            .iter()
            .map(|l| format!("{}({:.4})", l.name(), l.nominal_bpw()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut all_json = Vec::new();
    for set_name in &args.sets {
        let set = match load_set(args, set_name) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("uc-quality-bench: {e}");
                return ExitCode::from(2);
            }
        };
        eprintln!("[{}] {}", set.name, set.description);
        let d_total: f64 = set.tensors.iter().map(|t| t.norm2).sum();
        let n_total: u64 = set.tensors.iter().map(|t| t.data.len() as u64).sum();
        // k-quants.
        let mut notes = Vec::new();
        let mut kq: Vec<MethodRow> = Vec::new();
        let t0 = Instant::now();
        for d in AFFINE_TIERS {
            let r = kquant(&set, d, KMode::Plain, &mut notes).expect("k-quant");
            eprintln!("  {} {:.1}s", r.method, r.seconds);
            kq.push(r);
        }
        let kq_secs = t0.elapsed().as_secs_f64();
        // Current uc: rank-0 candidates (exact err2) for bits 2..8 x sub-block layouts.
        let t0 = Instant::now();
        let cands = uc_candidates(&set, &args.sub_blocks, &[0]);
        let uc_secs = t0.elapsed().as_secs_f64();
        eprintln!("  uc candidates {uc_secs:.1}s");
        // Affine: per tensor, per layout (uniform err2, learned err2).
        let t0 = Instant::now();
        let mut aff: Vec<Vec<(affine::Layout, u64, f64, Option<f64>)>> = Vec::new();
        for t in &set.tensors {
            let mut v = Vec::new();
            let mut last_bs: Option<(u8, usize)> = None;
            let mut cont = Vec::new();
            let g_u: Vec<Vec<f32>> = (0..=8).map(affine::uniform_grid).collect();
            for &l in &layouts {
                if last_bs != Some((l.b, l.s)) {
                    cont = affine::continuous_fits(&t.data, l.s, &g_u[l.b as usize], true);
                    last_bs = Some((l.b, l.s));
                }
                let qu = affine::quantize(&t.data, l, &g_u[l.b as usize], true, &cont);
                let learned = args.affine_learned.then(|| {
                    let g2 = affine::learn_grid(&t.data, l.s, &qu.em, &g_u[l.b as usize]);
                    let c2 = affine::continuous_fits(&t.data, l.s, &g2, false);
                    affine::quantize(&t.data, l, &g2, false, &c2).err2
                });
                v.push((l, l.cost_bits(t.data.len()), qu.err2, learned));
            }
            aff.push(v);
        }
        let aff_secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "  affine {aff_secs:.1}s ({} layouts{})",
            layouts.len(),
            if args.affine_learned { ", + learned grid" } else { "" }
        );

        println!("## {}\n\n{}\n", set.name, set.description);
        println!(
            "times: k-quants {kq_secs:.1} s (5 tiers, one thread), uc candidates {uc_secs:.1} s ({} sub layouts x 7 widths), affine {aff_secs:.1} s ({} layouts{})\n",
            args.sub_blocks.len(),
            layouts.len(),
            if args.affine_learned {
                ", uniform + learned grid each"
            } else {
                ", uniform grid"
            }
        );
        println!(
            "| tier | k-quant bpw / wrel | uc bpw / wrel | affine-U bpw / wrel | affine-L bpw / wrel | U/k | U/uc | L/k | L/uc | uc picks | affine-U picks | affine-L picks |"
        );
        println!("|---|---|---|---|---|---:|---:|---:|---:|---|---|---|");
        let mut tiers_json = Vec::new();
        for (di, d) in AFFINE_TIERS.iter().enumerate() {
            let (mut kb, mut ke) = (0u64, 0f64);
            let (mut ub, mut ue) = (0u64, 0f64);
            let (mut ab, mut ae) = (0u64, 0f64);
            let (mut lb, mut le) = (0u64, 0f64);
            let mut upicks: BTreeMap<String, usize> = BTreeMap::new();
            let mut apicks: BTreeMap<String, usize> = BTreeMap::new();
            let mut lpicks: BTreeMap<String, usize> = BTreeMap::new();
            for ti in 0..set.tensors.len() {
                let budget = kq[di].results[ti].stored_bits;
                kb += budget;
                ke += kq[di].results[ti].err2;
                let best = cands[ti]
                    .iter()
                    .filter(|c| c.1.cost_bits <= budget)
                    .min_by(|a, b| a.1.err2.total_cmp(&b.1.err2))
                    .unwrap_or_else(|| cands[ti].iter().min_by_key(|c| c.1.cost_bits).unwrap());
                ub += best.1.cost_bits;
                ue += best.1.err2;
                *upicks
                    .entry(format!("b{}{}", best.1.bits, sub_name(best.0)))
                    .or_default() += 1;
                // Affine-U: best uniform among fitting layouts; affine-L: best of uniform/learned.
                let fits: Vec<_> = aff[ti].iter().filter(|a| a.1 <= budget).collect();
                if let Some(a) = fits.iter().min_by(|x, y| x.2.total_cmp(&y.2)) {
                    ab += a.1;
                    ae += a.2;
                    *apicks.entry(a.0.name()).or_default() += 1;
                } else {
                    // No affine layout fits: fall back to the current uc pick (counted as such).
                    ab += best.1.cost_bits;
                    ae += best.1.err2;
                    *apicks.entry("(uc)".into()).or_default() += 1;
                }
                if args.affine_learned {
                    let bl = fits
                        .iter()
                        .flat_map(|a| [(a.0.name() + "U", a.1, a.2), (a.0.name() + "L", a.1, a.3.unwrap())])
                        .min_by(|x, y| x.2.total_cmp(&y.2));
                    if let Some((nm, c, e)) = bl {
                        lb += c;
                        le += e;
                        *lpicks.entry(nm).or_default() += 1;
                    } else {
                        lb += best.1.cost_bits;
                        le += best.1.err2;
                        *lpicks.entry("(uc)".into()).or_default() += 1;
                    }
                }
            }
            let w = |e: f64| (e / d_total).sqrt();
            let bpw = |b: u64| b as f64 / n_total as f64;
            let fmtp =
                |m: &BTreeMap<String, usize>| m.iter().map(|(k, c)| format!("{k}x{c}")).collect::<Vec<_>>().join(" ");
            let (kw, uw, aw, lw) = (w(ke), w(ue), w(ae), w(le));
            println!(
                "| {} ({:.4}) | {:.4} / {:.4} | {:.4} / {:.4} | {:.4} / {:.4} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
                kquant_name(*d),
                tier_bpw(*d),
                bpw(kb),
                kw,
                bpw(ub),
                uw,
                bpw(ab),
                aw,
                if args.affine_learned {
                    format!("{:.4} / {:.4}", bpw(lb), lw)
                } else {
                    "-".into()
                },
                aw / kw,
                aw / uw,
                if args.affine_learned {
                    format!("{:.3}", lw / kw)
                } else {
                    "-".into()
                },
                if args.affine_learned {
                    format!("{:.3}", lw / uw)
                } else {
                    "-".into()
                },
                fmtp(&upicks),
                fmtp(&apicks),
                fmtp(&lpicks)
            );
            tiers_json.push(json!({
                "tier": kquant_name(*d), "kquant_bpw": bpw(kb), "kquant_wrel": kw,
                "uc_bpw": bpw(ub), "uc_wrel": uw, "affine_u_bpw": bpw(ab), "affine_u_wrel": aw,
                "affine_l_bpw": bpw(lb), "affine_l_wrel": lw,
                "uc_picks": upicks, "affine_u_picks": apicks, "affine_l_picks": lpicks,
            }));
        }
        println!();
        for n in &notes {
            println!("- {n}");
        }
        // Per-layout summary (whole set, uniform / learned), for the record.
        println!("\nper layout over the set: layout nominal-bpw wrel-U [wrel-L]");
        for (li, l) in layouts.iter().enumerate() {
            let eu: f64 = aff.iter().map(|v| v[li].2).sum();
            let el: f64 = aff.iter().map(|v| v[li].3.unwrap_or(0.0)).sum();
            println!(
                "- {} {:.4} {:.5}{}",
                l.name(),
                l.nominal_bpw(),
                (eu / d_total).sqrt(),
                if args.affine_learned {
                    format!(" [{:.5}]", (el / d_total).sqrt())
                } else {
                    String::new()
                }
            );
        }
        println!();
        all_json.push(
            json!({"set": set.name, "description": set.description, "tiers": tiers_json,
            "seconds": {"kquant": kq_secs, "uc": uc_secs, "affine": aff_secs}}),
        );
    }
    println!("total wall time {:.1} s", start.elapsed().as_secs_f64());
    if let Some(p) = &args.json {
        let _ = std::fs::write(p, serde_json::to_string_pretty(&json!(all_json)).unwrap() + "\n");
    }
    ExitCode::SUCCESS
}
