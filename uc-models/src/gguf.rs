//! `uc import-gguf`: a Llama-architecture GGUF file (llama.cpp) as an ordinary Hugging Face model
//! directory that `uc compress` reads as its source.
//!
//! The directory holds `model.safetensors` (every tensor dequantized to F32, names sorted),
//! `config.json` (a `LlamaForCausalLM` config from the GGUF metadata, plus a `uc_import` member with
//! the source file's name and SHA-256), `tokenizer.json` (a byte-level BPE tokenizer built from the
//! GGUF vocabulary and merges) and `tokenizer_config.json`.
//!
//! The weights are the dequantized values of the GGUF's (possibly quantized) tensors, not the
//! original model's: a model compressed from them is measured against that teacher.
//!
//! llama.cpp's converter permutes the rows of `q_proj` and `k_proj` for its interleaved RoPE
//! ([`permute_rows`]); the import applies the inverse ([`unpermute_rows`]) so that the directory uses
//! the Hugging Face `rotate_half` RoPE like any other Llama checkpoint.
//!
//! Tensors are read, dequantized and written one at a time; the directory is built under a
//! temporary name beside the output and renamed into place, so it appears whole or not at all.

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use candle_core::{DType, Device};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use uc_encode::error::{CompressError, bad, io};

/// Progress callback: (phase, done, total, tensor name); the phase is `"import"`.
pub type Progress = fn(&str, usize, usize, &str);

/// What `uc import-gguf` does.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The `.gguf` file.
    pub source: PathBuf,
    /// The Hugging Face directory to create.
    pub output_dir: PathBuf,
    /// Replace an existing output directory.
    pub fresh: bool,
    /// Called after each tensor is written.
    pub progress: Option<Progress>,
}

/// One imported tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedTensor {
    /// Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// GGUF name (`blk.0.attn_q.weight`).
    pub gguf_name: String,
    /// The GGUF storage type (`Q4_1`, `Q8_0`, `F32`, …).
    pub gguf_dtype: String,
    /// Row-major shape as stored in `model.safetensors` (the reverse of the GGUF dimensions).
    pub shape: Vec<usize>,
    /// The rows were un-permuted from llama.cpp's RoPE order (`q_proj`, `k_proj`).
    pub unpermuted: bool,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The directory written.
    pub output_dir: PathBuf,
    /// The GGUF file read.
    pub source: PathBuf,
    /// Its size in bytes.
    pub source_bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub source_sha256: String,
    /// The tensors, sorted by Hugging Face name.
    pub tensors: Vec<ImportedTensor>,
    /// How many tensors of each GGUF storage type were dequantized.
    pub tensor_types: BTreeMap<String, usize>,
    /// Parameters (elements of all tensors).
    pub parameters: u64,
    /// Size of `model.safetensors`.
    pub safetensors_bytes: u64,
    /// Size of every file written.
    pub bytes_out: u64,
    /// Tokens in the vocabulary (`tokenizer.ggml.tokens`).
    pub vocab_tokens: usize,
    /// No `output.weight`: the head shares the embedding.
    pub tie_word_embeddings: bool,
    /// Things the user should know (an approximated pre-tokenizer, duplicate tokens).
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The Llama hyper-parameters of the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Hparams {
    n_layer: usize,
    hidden: usize,
    ffn: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    rms_eps: f32,
    rope_theta: f32,
    context: usize,
    vocab: usize,
}

/// What a GGUF tensor becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Embed,
    Output,
    OutputNorm,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    AttnNorm,
    FfnNorm,
}

impl Role {
    const LAYER: [(&'static str, Role); 9] = [
        ("attn_q", Role::Q),
        ("attn_k", Role::K),
        ("attn_v", Role::V),
        ("attn_output", Role::O),
        ("ffn_gate", Role::Gate),
        ("ffn_up", Role::Up),
        ("ffn_down", Role::Down),
        ("attn_norm", Role::AttnNorm),
        ("ffn_norm", Role::FfnNorm),
    ];

    /// The Hugging Face name of this role in `layer`.
    fn hf_name(self, layer: usize) -> String {
        let l = format!("model.layers.{layer}");
        match self {
            Role::Embed => "model.embed_tokens.weight".into(),
            Role::Output => "lm_head.weight".into(),
            Role::OutputNorm => "model.norm.weight".into(),
            Role::Q => format!("{l}.self_attn.q_proj.weight"),
            Role::K => format!("{l}.self_attn.k_proj.weight"),
            Role::V => format!("{l}.self_attn.v_proj.weight"),
            Role::O => format!("{l}.self_attn.o_proj.weight"),
            Role::Gate => format!("{l}.mlp.gate_proj.weight"),
            Role::Up => format!("{l}.mlp.up_proj.weight"),
            Role::Down => format!("{l}.mlp.down_proj.weight"),
            Role::AttnNorm => format!("{l}.input_layernorm.weight"),
            Role::FfnNorm => format!("{l}.post_attention_layernorm.weight"),
        }
    }

    /// The row-major shape Hugging Face expects.
    fn shape(self, h: &Hparams) -> Vec<usize> {
        let q = h.n_head * h.head_dim;
        let kv = h.n_kv_head * h.head_dim;
        match self {
            Role::Embed | Role::Output => vec![h.vocab, h.hidden],
            Role::OutputNorm | Role::AttnNorm | Role::FfnNorm => vec![h.hidden],
            Role::Q => vec![q, h.hidden],
            Role::K | Role::V => vec![kv, h.hidden],
            Role::O => vec![h.hidden, q],
            Role::Gate | Role::Up => vec![h.ffn, h.hidden],
            Role::Down => vec![h.hidden, h.ffn],
        }
    }
}

/// Maps a GGUF tensor name to its role and layer (`None`: not a Llama tensor name).
fn role_of(name: &str) -> Option<(Role, usize)> {
    match name {
        "token_embd.weight" => return Some((Role::Embed, 0)),
        "output.weight" => return Some((Role::Output, 0)),
        "output_norm.weight" => return Some((Role::OutputNorm, 0)),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) || (layer.len() > 1 && layer.starts_with('0')) {
        return None;
    }
    let layer: usize = layer.parse().ok()?;
    let kind = rest.strip_suffix(".weight")?;
    Role::LAYER.iter().find(|(k, _)| *k == kind).map(|&(_, r)| (r, layer))
}

/// llama.cpp's row permutation of `q_proj` / `k_proj` (convert_hf_to_gguf.py `permute`): viewing
/// the `rows × cols` matrix as `[n_head, 2, rows / n_head / 2, cols]`, swap axes 1 and 2. Row
/// `h·d + i·d/2 + j` (head `h`, half `i`, pair `j`, head size `d`) moves to row `h·d + 2j + i`.
///
/// # Panics
/// When `w.len() != rows * cols` or `rows` is not a multiple of `2 * n_head`.
pub fn permute_rows(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    reorder_rows(w, rows, cols, n_head, false)
}

/// The inverse of [`permute_rows`]: views the matrix as `[n_head, rows / n_head / 2, 2, cols]` and
/// swaps axes 1 and 2, which returns the rows to the Hugging Face (`rotate_half`) order.
///
/// # Panics
/// When `w.len() != rows * cols` or `rows` is not a multiple of `2 * n_head`.
pub fn unpermute_rows(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    reorder_rows(w, rows, cols, n_head, true)
}

fn reorder_rows(w: &[f32], rows: usize, cols: usize, n_head: usize, inverse: bool) -> Vec<f32> {
    assert_eq!(w.len(), rows * cols, "matrix length");
    assert!(
        n_head > 0 && rows.is_multiple_of(2 * n_head),
        "rows not a multiple of 2·n_head"
    );
    let d = rows / n_head;
    let half = d / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                let hf = h * d + i * half + j;
                let gg = h * d + 2 * j + i;
                let (src, dst) = if inverse { (gg, hf) } else { (hf, gg) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// An unsigned integer metadata value (any integer type, non-negative).
fn meta_uint(v: &GgufValue) -> Option<u64> {
    match *v {
        GgufValue::U8(x) => Some(x.into()),
        GgufValue::U16(x) => Some(x.into()),
        GgufValue::U32(x) => Some(x.into()),
        GgufValue::U64(x) => Some(x),
        GgufValue::I8(x) => u64::try_from(x).ok(),
        GgufValue::I16(x) => u64::try_from(x).ok(),
        GgufValue::I32(x) => u64::try_from(x).ok(),
        GgufValue::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

/// A float metadata value as f32 (f64 values are narrowed).
fn meta_float(v: &GgufValue) -> Option<f32> {
    match *v {
        GgufValue::F32(x) => Some(x),
        GgufValue::F64(x) => Some(x as f32),
        _ => None,
    }
}

/// The GGUF metadata with the file's path for errors.
struct Meta<'a> {
    path: &'a Path,
    map: &'a HashMap<String, GgufValue>,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&GgufValue> {
        self.map.get(key)
    }

    fn uint_opt(&self, key: &str) -> Result<Option<usize>, CompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => meta_uint(v)
                .and_then(|x| usize::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| {
                    bad(
                        self.path,
                        format!("metadata {key}: expected an unsigned integer, found {v:?}"),
                    )
                }),
        }
    }

    fn uint(&self, key: &str) -> Result<usize, CompressError> {
        self.uint_opt(key)?
            .ok_or_else(|| bad(self.path, format!("metadata {key} is missing")))
    }

    fn float_opt(&self, key: &str) -> Result<Option<f32>, CompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => meta_float(v).filter(|x| x.is_finite()).map(Some).ok_or_else(|| {
                bad(
                    self.path,
                    format!("metadata {key}: expected a finite float, found {v:?}"),
                )
            }),
        }
    }

    fn string_opt(&self, key: &str) -> Result<Option<&str>, CompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(bad(
                self.path,
                format!("metadata {key}: expected a string, found {v:?}"),
            )),
        }
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>, CompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(bad(self.path, format!("metadata {key}: expected a bool, found {v:?}"))),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&[GgufValue]>, CompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Array(a)) => Ok(Some(a.as_slice())),
            Some(v) => Err(bad(
                self.path,
                format!("metadata {key}: expected an array, found {}", type_name(v)),
            )),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<&str>>, CompressError> {
        let Some(a) = self.array(key)? else { return Ok(None) };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                GgufValue::String(s) => Ok(s.as_str()),
                v => Err(bad(
                    self.path,
                    format!("metadata {key}[{i}]: expected a string, found {}", type_name(v)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn type_name(v: &GgufValue) -> String {
    format!("{:?}", v.value_type())
}

/// Reads and checks the Llama hyper-parameters.
fn hparams(m: &Meta<'_>, embed_rows: Option<usize>, n_tokens: usize) -> Result<Hparams, CompressError> {
    let arch = m
        .string_opt("general.architecture")?
        .ok_or_else(|| bad(m.path, "metadata general.architecture is missing"))?;
    if arch != "llama" {
        return Err(bad(
            m.path,
            format!("general.architecture is {arch:?}; only \"llama\" GGUF files can be imported"),
        ));
    }
    let n_layer = m.uint("llama.block_count")?;
    let hidden = m.uint("llama.embedding_length")?;
    let ffn = m.uint("llama.feed_forward_length")?;
    let n_head = m.uint("llama.attention.head_count")?;
    let n_kv_head = m.uint_opt("llama.attention.head_count_kv")?.unwrap_or(n_head);
    let context = m.uint("llama.context_length")?;
    let rms_eps = m
        .float_opt("llama.attention.layer_norm_rms_epsilon")?
        .ok_or_else(|| bad(m.path, "metadata llama.attention.layer_norm_rms_epsilon is missing"))?;
    let rope_theta = m.float_opt("llama.rope.freq_base")?.unwrap_or(10_000.0);
    let positive = |k: &str, v: usize| {
        if v == 0 || v > 1 << 24 {
            Err(bad(m.path, format!("metadata {k} = {v} is out of range")))
        } else {
            Ok(())
        }
    };
    positive("llama.block_count", n_layer)?;
    positive("llama.embedding_length", hidden)?;
    positive("llama.feed_forward_length", ffn)?;
    positive("llama.attention.head_count", n_head)?;
    positive("llama.attention.head_count_kv", n_kv_head)?;
    if n_head % n_kv_head != 0 {
        return Err(bad(
            m.path,
            format!("head_count {n_head} is not a multiple of head_count_kv {n_kv_head}"),
        ));
    }
    let head_dim = match m.uint_opt("llama.attention.key_length")? {
        Some(d) => d,
        None if hidden % n_head == 0 => hidden / n_head,
        None => {
            return Err(bad(
                m.path,
                format!("embedding_length {hidden} is not a multiple of head_count {n_head}"),
            ));
        }
    };
    positive("head dimension", head_dim)?;
    if head_dim % 2 != 0 {
        return Err(bad(m.path, format!("head dimension {head_dim} is odd")));
    }
    if let Some(v) = m.uint_opt("llama.attention.value_length")?
        && v != head_dim
    {
        return Err(bad(
            m.path,
            format!("attention.value_length {v} differs from key_length {head_dim}; not a Llama layout"),
        ));
    }
    if let Some(r) = m.uint_opt("llama.rope.dimension_count")?
        && r != head_dim
    {
        return Err(bad(
            m.path,
            format!(
                "rope.dimension_count {r} differs from the head dimension {head_dim} (partial RoPE is not supported)"
            ),
        ));
    }
    if m.get("llama.rope.scaling.type").is_some() || m.get("llama.rope.scaling.factor").is_some() {
        return Err(bad(m.path, "RoPE scaling (llama.rope.scaling.*) is not supported"));
    }
    if m.get("llama.expert_count").and_then(meta_uint).unwrap_or(0) > 0 {
        return Err(bad(m.path, "mixture-of-experts Llama models are not supported"));
    }
    let embed_rows = embed_rows.ok_or_else(|| bad(m.path, "tensor token_embd.weight is missing"))?;
    if let Some(v) = m.uint_opt("llama.vocab_size")?
        && v != embed_rows
    {
        return Err(bad(
            m.path,
            format!("llama.vocab_size {v} differs from the {embed_rows} rows of token_embd.weight"),
        ));
    }
    if n_tokens > embed_rows {
        return Err(bad(
            m.path,
            format!("{n_tokens} tokens but token_embd.weight has only {embed_rows} rows"),
        ));
    }
    Ok(Hparams {
        n_layer,
        hidden,
        ffn,
        n_head,
        n_kv_head,
        head_dim,
        rms_eps,
        rope_theta,
        context,
        vocab: embed_rows,
    })
}

/// A float as JSON with its shortest f32 decimal form (1e-5, not 9.999999747378752e-6).
fn json_f32(x: f32) -> Value {
    format!("{x}").parse::<f64>().map(Value::from).unwrap_or(Value::Null)
}

/// tokenizer.json and tokenizer_config.json built from the GGUF vocabulary, plus warnings.
fn tokenizer_files(m: &Meta<'_>, context: usize) -> Result<(Value, Value, Vec<String>), CompressError> {
    let mut warnings = Vec::new();
    let model = m
        .string_opt("tokenizer.ggml.model")?
        .ok_or_else(|| bad(m.path, "metadata tokenizer.ggml.model is missing"))?;
    if model != "gpt2" {
        return Err(bad(
            m.path,
            format!("tokenizer.ggml.model is {model:?}; only \"gpt2\" (byte-level BPE) tokenizers can be converted"),
        ));
    }
    let tokens = m
        .strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| bad(m.path, "metadata tokenizer.ggml.tokens is missing"))?;
    let types: Vec<u64> = match m.array("tokenizer.ggml.token_type")? {
        None => vec![1; tokens.len()],
        Some(a) => a
            .iter()
            .map(|v| meta_uint(v).ok_or_else(|| bad(m.path, "metadata tokenizer.ggml.token_type: expected integers")))
            .collect::<Result<_, _>>()?,
    };
    if types.len() != tokens.len() {
        return Err(bad(
            m.path,
            format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                types.len(),
                tokens.len()
            ),
        ));
    }
    let merges = m
        .strings("tokenizer.ggml.merges")?
        .ok_or_else(|| bad(m.path, "metadata tokenizer.ggml.merges is missing"))?;

    let mut vocab = Map::new();
    let mut duplicates = 0usize;
    for (id, t) in tokens.iter().enumerate() {
        if vocab.contains_key(*t) {
            duplicates += 1;
        } else {
            vocab.insert((*t).to_string(), json!(id));
        }
    }
    if duplicates > 0 {
        warnings.push(format!(
            "{duplicates} duplicate token strings in tokenizer.ggml.tokens: the first id of each is kept in the BPE vocabulary"
        ));
    }
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.split_once(' ')
                .map(|(a, b)| json!([a, b]))
                .ok_or_else(|| bad(m.path, format!("tokenizer.ggml.merges[{i}] {s:?} is not two tokens")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Control tokens (type 3) are special added tokens; user-defined ones (type 4) are added tokens
    // matched before the BPE model too, but not special.
    let added: Vec<Value> = types
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t == 3 || t == 4)
        .map(|(id, &t)| {
            json!({"id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": t == 3})
        })
        .collect();

    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre = m.string_opt("tokenizer.ggml.pre")?;
    let pre_tokenizer = match pre {
        Some("smollm") => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level,
        ]}),
        None | Some("gpt2") | Some("default") => byte_level.clone(),
        Some(other) => {
            warnings.push(format!(
                "tokenizer.ggml.pre {other:?} is not known here: text is pre-tokenized with the GPT-2 byte-level \
                 regex, which may split some text differently from the original tokenizer"
            ));
            byte_level.clone()
        }
    };

    let token_of = |key: &str| -> Result<Option<(usize, String)>, CompressError> {
        match m.uint_opt(key)? {
            None => Ok(None),
            Some(id) => tokens
                .get(id)
                .map(|t| Some((id, (*t).to_string())))
                .ok_or_else(|| bad(m.path, format!("metadata {key} = {id} is not a token id"))),
        }
    };
    let bos = token_of("tokenizer.ggml.bos_token_id")?;
    let eos = token_of("tokenizer.ggml.eos_token_id")?;
    let unk = token_of("tokenizer.ggml.unknown_token_id")?;
    let pad = token_of("tokenizer.ggml.padding_token_id")?;
    let add_bos = m.bool_opt("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
    let add_eos = m.bool_opt("tokenizer.ggml.add_eos_token")?.unwrap_or(false);

    let post_processor = if add_bos || add_eos {
        for (flag, tok, key) in [(add_bos, &bos, "bos"), (add_eos, &eos, "eos")] {
            if flag && tok.is_none() {
                return Err(bad(
                    m.path,
                    format!("tokenizer.ggml.add_{key}_token is true but tokenizer.ggml.{key}_token_id is missing"),
                ));
            }
        }
        let wanted: Vec<&(usize, String)> = [(add_bos, &bos), (add_eos, &eos)]
            .into_iter()
            .filter_map(|(flag, tok)| tok.as_ref().filter(|_| flag))
            .collect();
        // [bos] $A [eos], and for pairs [bos] $A [eos] [bos] $B [eos] (as transformers' Llama tokenizer).
        let part = |s: &str, type_id: u32| -> Vec<Value> {
            let mut v = Vec::new();
            if let (true, Some((_, t))) = (add_bos, &bos) {
                v.push(json!({"SpecialToken": {"id": t, "type_id": type_id}}));
            }
            v.push(json!({"Sequence": {"id": s, "type_id": type_id}}));
            if let (true, Some((_, t))) = (add_eos, &eos) {
                v.push(json!({"SpecialToken": {"id": t, "type_id": type_id}}));
            }
            v
        };
        let special: Map<String, Value> = wanted
            .iter()
            .map(|(id, t)| (t.clone(), json!({"id": t, "ids": [id], "tokens": [t]})))
            .collect();
        let pair = [part("A", 0), part("B", 1)].concat();
        json!({"type": "TemplateProcessing", "single": part("A", 0), "pair": pair, "special_tokens": special})
    } else {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true})
    };

    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": unk.as_ref().map(|(_, t)| t.clone()),
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges,
        },
    });

    let mut config = Map::new();
    config.insert("tokenizer_class".into(), json!("GPT2Tokenizer"));
    config.insert("add_bos_token".into(), json!(add_bos));
    config.insert("add_eos_token".into(), json!(add_eos));
    config.insert("add_prefix_space".into(), json!(false));
    config.insert("clean_up_tokenization_spaces".into(), json!(false));
    config.insert("model_max_length".into(), json!(context));
    for (key, tok) in [
        ("bos_token", &bos),
        ("eos_token", &eos),
        ("unk_token", &unk),
        ("pad_token", &pad),
    ] {
        if let Some((_, t)) = tok {
            config.insert(key.into(), json!(t));
        }
    }
    if let Some(t) = m.string_opt("tokenizer.chat_template")? {
        config.insert("chat_template".into(), json!(t));
    }
    Ok((tokenizer, Value::Object(config), warnings))
}

/// Streams a file through SHA-256.
fn sha256_file(path: &Path) -> Result<(String, u64), CompressError> {
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((uc_pack::hex(&h.finalize()), n))
}

/// One tensor to write.
struct Planned {
    hf: String,
    gguf: String,
    role: Role,
    shape: Vec<usize>,
    gguf_dtype: String,
}

/// Writes `bytes` to `path` and syncs it; returns its length.
fn write_file(path: &Path, bytes: &[u8]) -> Result<u64, CompressError> {
    let mut f = File::create(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))?;
    Ok(bytes.len() as u64)
}

/// Converts a Llama-architecture GGUF file into a Hugging Face directory (see the module docs).
pub fn import_gguf(opts: &ImportOptions) -> Result<ImportSummary, CompressError> {
    let start = Instant::now();
    let path = opts.source.as_path();
    // The output may replace only an earlier import (never the source, an ancestor, `.` or a
    // directory this command did not write), and only when asked.
    uc_pack::fs::check_output(&opts.output_dir, uc_pack::fs::OutputKind::Imported, &[path], opts.fresh)?;
    if opts.output_dir.file_name().is_none() {
        return Err(uc_encode::error::opt(
            "output_dir",
            format!("{}: needs a final directory name", opts.output_dir.display()),
        ));
    }

    // Read and check everything before creating anything. Only a regular file (a FIFO would block).
    let (mut file, file_size) = uc_pack::fs::open_regular(path)?;
    // The strict, bounded pre-scan first: candle's reader trusts every count in the header.
    let scanned =
        crate::gguf_scan::scan(&mut file, file_size).map_err(|e| bad(path, format!("not a valid GGUF file: {e}")))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| bad(path, format!("not a readable GGUF file: {e}")))?;
    let meta = Meta {
        path,
        map: &content.metadata,
    };
    let n_tokens = meta.array("tokenizer.ggml.tokens")?.map_or(0, <[_]>::len);
    let embed_rows = content
        .tensor_infos
        .get("token_embd.weight")
        .and_then(|t| t.shape.dims().first().copied());
    let hp = hparams(&meta, embed_rows, n_tokens)?;
    // Each layer needs its tensors: a block count beyond the tensors present is refused before
    // anything is sized by it.
    if hp.n_layer as u64 > scanned.tensor_count {
        return Err(bad(
            path,
            format!(
                "llama.block_count is {} but the file has only {} tensors",
                hp.n_layer, scanned.tensor_count
            ),
        ));
    }
    let (tokenizer, tokenizer_config, mut warnings) = tokenizer_files(&meta, hp.context)?;
    let tokenizer_text = serde_json::to_string(&tokenizer).map_err(|e| bad(path, format!("tokenizer.json: {e}")))?;
    if let Err(e) = tokenizer_text.parse::<tokenizers::Tokenizer>() {
        return Err(bad(
            path,
            format!("the tokenizer built from the GGUF vocabulary does not load: {e}"),
        ));
    }

    let mut plan = Vec::new();
    let mut seen = BTreeMap::new();
    for (gguf, info) in &content.tensor_infos {
        let (role, layer) = role_of(gguf).ok_or_else(|| {
            bad(
                path,
                format!("tensor {gguf}: not a Llama tensor name this import knows"),
            )
        })?;
        if layer >= hp.n_layer {
            return Err(bad(
                path,
                format!("tensor {gguf}: layer {layer} but llama.block_count is {}", hp.n_layer),
            ));
        }
        let shape = role.shape(&hp);
        if info.shape.dims() != shape.as_slice() {
            return Err(CompressError::ShapeMismatch {
                tensor: gguf.clone(),
                msg: format!(
                    "{}: shape {:?} (row-major), the metadata implies {shape:?}",
                    path.display(),
                    info.shape.dims()
                ),
            });
        }
        // All dimensions are bounded by the checked metadata, so these products do not overflow
        // for any file that could fit on a disk; checked anyway.
        let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let dt = info.ggml_dtype;
        let bytes = elems
            .filter(|e| e % dt.block_size() as u64 == 0)
            .and_then(|e| (e / dt.block_size() as u64).checked_mul(dt.type_size() as u64));
        let end = bytes.and_then(|b| {
            content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|s| s.checked_add(b))
        });
        match end {
            Some(end) if end <= file_size => {}
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "tensor {gguf}: its {dt:?} data (offset {}) does not fit in the {file_size}-byte file (truncated?)",
                        info.offset
                    ),
                ));
            }
        }
        let hf = role.hf_name(layer);
        seen.insert(hf.clone(), gguf.clone());
        plan.push(Planned {
            hf,
            gguf: gguf.clone(),
            role,
            shape,
            gguf_dtype: format!("{dt:?}"),
        });
    }
    let mut required = vec![(Role::Embed, 0), (Role::OutputNorm, 0)];
    for l in 0..hp.n_layer {
        required.extend(Role::LAYER.iter().map(|&(_, r)| (r, l)));
    }
    for (r, l) in required {
        if !seen.contains_key(&r.hf_name(l)) {
            let gguf = match r {
                Role::Embed => "token_embd.weight".to_string(),
                Role::OutputNorm => "output_norm.weight".to_string(),
                _ => {
                    let k = Role::LAYER.iter().find(|(_, x)| *x == r).map_or("?", |(k, _)| k);
                    format!("blk.{l}.{k}.weight")
                }
            };
            return Err(bad(path, format!("tensor {gguf} is missing")));
        }
    }
    plan.sort_by(|a, b| a.hf.cmp(&b.hf));
    let tied = !seen.contains_key("lm_head.weight");

    let (source_sha256, source_bytes) = sha256_file(path)?;
    let mut tensor_types = BTreeMap::new();
    for p in &plan {
        *tensor_types.entry(p.gguf_dtype.clone()).or_insert(0usize) += 1;
    }
    // "Q4_1 and Q8_0" (the quantized types), or "F32" when nothing is quantized.
    let quantized: Vec<&str> = tensor_types
        .keys()
        .map(String::as_str)
        .filter(|t| !matches!(*t, "F32" | "F16" | "BF16"))
        .collect();
    let value_types = if quantized.is_empty() {
        tensor_types.keys().cloned().collect::<Vec<_>>().join("/")
    } else {
        quantized.join("/")
    };
    let source_file = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut uc_import = json!({
        "source_file": source_file,
        "source_sha256": source_sha256,
        "source_bytes": source_bytes,
        "tensor_types": tensor_types,
        "tool": format!("uc import-gguf {}", env!("CARGO_PKG_VERSION")),
        "note": format!("weights are the dequantized {value_types} values of the GGUF file, not the original model's"),
    });
    for (k, key) in [("model_name", "general.name"), ("license", "general.license")] {
        if let Some(v) = meta.string_opt(key).ok().flatten() {
            uc_import[k] = json!(v);
        }
    }
    let id = |key: &str| meta.uint_opt(key).ok().flatten();
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hp.hidden,
        "intermediate_size": hp.ffn,
        "num_hidden_layers": hp.n_layer,
        "num_attention_heads": hp.n_head,
        "num_key_value_heads": hp.n_kv_head,
        "head_dim": hp.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": json_f32(hp.rms_eps),
        "rope_theta": json_f32(hp.rope_theta),
        "rope_scaling": null,
        "max_position_embeddings": hp.context,
        "vocab_size": hp.vocab,
        "tie_word_embeddings": tied,
        "attention_bias": false,
        "mlp_bias": false,
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
        "torch_dtype": "float32",
        "uc_import": uc_import,
    });
    if let Some(p) = id("tokenizer.ggml.padding_token_id") {
        config["pad_token_id"] = json!(p);
    }

    uc_pack::fs::remove_stale_temps(&opts.output_dir);
    // Removed when dropped: no temporary directory outlives a failed run.
    let staged = uc_pack::fs::StagedDir::new(&opts.output_dir)?;
    let tmp = staged.path().to_path_buf();
    let result = (|| {
        let mut bytes_out = 0u64;
        // model.safetensors: the header first (all shapes are known), then each tensor in name order.
        let mut header = Map::new();
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let mut pos = 0u64;
        for p in &plan {
            let len = 4 * p.shape.iter().map(|&d| d as u64).product::<u64>();
            header.insert(
                p.hf.clone(),
                json!({"dtype": "F32", "shape": p.shape, "data_offsets": [pos, pos + len]}),
            );
            pos += len;
        }
        let mut text = Value::Object(header).to_string();
        while !text.len().is_multiple_of(8) {
            text.push(' ');
        }
        let st_path = tmp.join("model.safetensors");
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&st_path).map_err(|e| io(&st_path, e))?);
        w.write_all(&(text.len() as u64).to_le_bytes())
            .and_then(|()| w.write_all(text.as_bytes()))
            .map_err(|e| io(&st_path, e))?;
        let mut tensors = Vec::with_capacity(plan.len());
        let mut parameters = 0u64;
        let cpu = Device::Cpu;
        for (i, p) in plan.iter().enumerate() {
            let tensor_err = |e: candle_core::Error| bad(path, format!("tensor {}: {e}", p.gguf));
            let t = content
                .tensor(&mut reader, &p.gguf, &cpu)
                .and_then(|q| q.dequantize(&cpu))
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(tensor_err)?;
            if t.dims() != p.shape.as_slice() {
                return Err(CompressError::ShapeMismatch {
                    tensor: p.gguf.clone(),
                    msg: format!("dequantized to shape {:?}, expected {:?}", t.dims(), p.shape),
                });
            }
            let mut v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(tensor_err)?;
            drop(t);
            let unpermuted = matches!(p.role, Role::Q | Role::K);
            if unpermuted {
                let heads = if p.role == Role::Q { hp.n_head } else { hp.n_kv_head };
                v = unpermute_rows(&v, p.shape[0], p.shape[1], heads);
            }
            let mut buf = Vec::with_capacity(1 << 16);
            for chunk in v.chunks(1 << 14) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                w.write_all(&buf).map_err(|e| io(&st_path, e))?;
            }
            parameters += v.len() as u64;
            tensors.push(ImportedTensor {
                name: p.hf.clone(),
                gguf_name: p.gguf.clone(),
                gguf_dtype: p.gguf_dtype.clone(),
                shape: p.shape.clone(),
                unpermuted,
            });
            if let Some(cb) = opts.progress {
                cb("import", i + 1, plan.len(), &p.hf);
            }
        }
        let st_file = w.into_inner().map_err(|e| io(&st_path, e.into_error()))?;
        st_file.sync_all().map_err(|e| io(&st_path, e))?;
        let safetensors_bytes = st_file.metadata().map_err(|e| io(&st_path, e))?.len();
        bytes_out += safetensors_bytes;
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        bytes_out += write_file(&tmp.join("config.json"), pretty(&config).as_bytes())?;
        bytes_out += write_file(&tmp.join("tokenizer.json"), tokenizer_text.as_bytes())?;
        bytes_out += write_file(&tmp.join("tokenizer_config.json"), pretty(&tokenizer_config).as_bytes())?;
        Ok((tensors, parameters, safetensors_bytes, bytes_out))
    })();
    let (tensors, parameters, safetensors_bytes, bytes_out) = result?;
    // The previous output is kept until this one is in place.
    staged.install()?;
    if n_tokens < hp.vocab {
        warnings.push(format!(
            "the embedding has {} rows but the vocabulary only {n_tokens} tokens",
            hp.vocab
        ));
    }
    Ok(ImportSummary {
        output_dir: opts.output_dir.clone(),
        source: opts.source.clone(),
        source_bytes,
        source_sha256,
        tensors,
        tensor_types,
        parameters,
        safetensors_bytes,
        bytes_out,
        vocab_tokens: n_tokens,
        tie_word_embeddings: tied,
        warnings,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_permute() {
        // 4 heads of size 6 (24 rows), 5 columns, distinct values.
        let (rows, cols, heads) = (24, 5, 4);
        let w: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let p = permute_rows(&w, rows, cols, heads);
        assert_ne!(p, w);
        assert_eq!(unpermute_rows(&p, rows, cols, heads), w);
        assert_eq!(
            permute_rows(&unpermute_rows(&w, rows, cols, heads), rows, cols, heads),
            w
        );
        // Head 0, size 6: HF rows [0 1 2 | 3 4 5] interleave to [0 3 1 4 2 5].
        let first: Vec<f32> = (0..6).map(|r| p[r * cols] / cols as f32).collect();
        assert_eq!(first, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn permute_matches_the_numpy_definition() {
        // w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols), written out.
        let (rows, cols, heads) = (16, 3, 2);
        let (d, half) = (rows / heads, rows / heads / 2);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i * 7 % 31) as f32).collect();
        let mut want = vec![0f32; rows * cols];
        for h in 0..heads {
            for j in 0..half {
                for i in 0..2 {
                    let out_row = h * d + j * 2 + i; // index (h, j, i) of the swapped view
                    let in_row = h * d + i * half + j; // index (h, i, j) of the source view
                    for c in 0..cols {
                        want[out_row * cols + c] = w[in_row * cols + c];
                    }
                }
            }
        }
        assert_eq!(permute_rows(&w, rows, cols, heads), want);
    }

    #[test]
    fn names() {
        assert_eq!(role_of("blk.12.attn_q.weight"), Some((Role::Q, 12)));
        assert_eq!(role_of("blk.0.ffn_down.weight"), Some((Role::Down, 0)));
        assert_eq!(role_of("output.weight"), Some((Role::Output, 0)));
        assert_eq!(role_of("blk.01.attn_q.weight"), None);
        assert_eq!(role_of("blk.1.attn_q.bias"), None);
        assert_eq!(role_of("rope_freqs.weight"), None);
        assert_eq!(Role::Q.hf_name(3), "model.layers.3.self_attn.q_proj.weight");
        assert_eq!(
            Role::FfnNorm.hf_name(0),
            "model.layers.0.post_attention_layernorm.weight"
        );
    }

    #[test]
    fn shortest_float() {
        assert_eq!(json_f32(1e-5).as_f64(), Some(1e-5));
        assert_eq!(json_f32(1e-5).to_string(), "0.00001");
        assert_eq!(json_f32(100000.0).to_string(), "100000.0");
    }
}
