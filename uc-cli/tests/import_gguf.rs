//! `uc import-gguf`: tiny Llama GGUF files written here with candle's GGUF writer (2 layers, hidden
//! 64, 4 heads, 2 KV heads, FFN 128, a 300-token byte-level vocabulary with a few merges; F32 and
//! Q8_0 tensors) are imported and the Hugging Face directory is checked: names, shapes, values
//! (q/k un-permuted), config.json, tokenizer.json through the `tokenizers` crate, and the errors
//! for broken inputs through the library and the CLI.

use candle_core::quantized::gguf_file::{self, Value as G};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use uc_encode::error::CompressError;
use uc_models::gguf::{ImportOptions, import_gguf};

const UC: &str = env!("CARGO_BIN_EXE_uc");
const HIDDEN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;
const FFN: usize = 128;
const LAYERS: usize = 2;
const VOCAB: usize = 300;

/// A fresh directory under cargo's test scratch area, removed when the test passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uc-gguf-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Names in the directory (to check that nothing, not even a temporary, was left behind).
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch directory kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// GPT-2's byte → printable character map (`bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map[b as usize] = char::from_u32(c).unwrap();
    }
    map
}

const MERGES: [&str; 7] = ["h e", "Ġ t", "Ġt he", "1 2", "c a", "ca t", "Ġ cat"];

/// Tokens: 3 control tokens, the 256 byte characters, the merge results, fillers up to VOCAB.
fn vocabulary() -> Vec<String> {
    let mut t: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    t.extend(byte_chars().iter().map(|c| c.to_string()));
    t.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    let mut i = 0;
    while t.len() < VOCAB {
        t.push(format!("<filler{i}>"));
        i += 1;
    }
    t
}

/// Deterministic pseudo-random weights in about [-1, 1).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// llama.cpp's permutation, written independently of the library from the numpy definition
/// `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
fn llama_cpp_permute(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let half = rows / n_head / 2;
    let mut out = Vec::with_capacity(w.len());
    for h in 0..n_head {
        for j in 0..half {
            for i in 0..2 {
                let src = h * 2 * half + i * half + j;
                out.extend_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// How a test GGUF differs from the default one.
#[derive(Default)]
struct Variant {
    architecture: Option<&'static str>,
    drop_metadata: Option<&'static str>,
    extra_tensor: bool,
    with_output: bool,
    add_bos: bool,
}

/// The Hugging Face tensors of the tiny model and the GGUF type each is stored as.
struct Model {
    /// HF name → (HF row-major shape, values as HF expects them after import).
    hf: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// HF name → GGUF storage type.
    types: BTreeMap<String, GgmlDType>,
}

/// A tensor of the test file: GGUF name, HF name, HF shape, GGUF type, rows permuted with this many
/// heads (q and k).
type Spec = (String, String, Vec<usize>, GgmlDType, Option<usize>);

fn write_gguf(path: &Path, v: &Variant) -> Model {
    let tokens = vocabulary();
    let mut meta: Vec<(String, G)> = vec![
        (
            "general.architecture".into(),
            G::String(v.architecture.unwrap_or("llama").into()),
        ),
        ("general.name".into(), G::String("tiny-llama".into())),
        ("llama.block_count".into(), G::U32(LAYERS as u32)),
        ("llama.context_length".into(), G::U32(256)),
        ("llama.embedding_length".into(), G::U32(HIDDEN as u32)),
        ("llama.feed_forward_length".into(), G::U32(FFN as u32)),
        ("llama.attention.head_count".into(), G::U32(HEADS as u32)),
        ("llama.attention.head_count_kv".into(), G::U32(KV_HEADS as u32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), G::F32(1e-5)),
        ("llama.rope.freq_base".into(), G::F32(100_000.0)),
        ("llama.rope.dimension_count".into(), G::U32(HEAD_DIM as u32)),
        ("llama.vocab_size".into(), G::U32(VOCAB as u32)),
        ("tokenizer.ggml.model".into(), G::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), G::String("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            G::Array(tokens.iter().map(|t| G::String(t.clone())).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            G::Array((0..tokens.len()).map(|i| G::I32(if i < 3 { 3 } else { 1 })).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            G::Array(MERGES.iter().map(|m| G::String((*m).into())).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), G::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), G::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), G::U32(0)),
        ("tokenizer.ggml.padding_token_id".into(), G::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), G::Bool(v.add_bos)),
        (
            "tokenizer.chat_template".into(),
            G::String("{% for m in messages %}{{ m['content'] }}{% endfor %}".into()),
        ),
    ];
    if let Some(k) = v.drop_metadata {
        meta.retain(|(n, _)| n != k);
    }

    let mut model = Model {
        hf: BTreeMap::new(),
        types: BTreeMap::new(),
    };
    // (gguf name, hf name, shape, GGUF type, rows permuted with this many heads)
    let mut specs: Vec<Spec> = vec![
        (
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
            vec![VOCAB, HIDDEN],
            GgmlDType::Q8_0,
            None,
        ),
        (
            "output_norm.weight".into(),
            "model.norm.weight".into(),
            vec![HIDDEN],
            GgmlDType::F32,
            None,
        ),
    ];
    if v.with_output {
        specs.push((
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![VOCAB, HIDDEN],
            GgmlDType::F32,
            None,
        ));
    }
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let layer = [
            (
                "attn_q",
                format!("{p}.self_attn.q_proj.weight"),
                vec![HIDDEN, HIDDEN],
                Some(HEADS),
            ),
            (
                "attn_k",
                format!("{p}.self_attn.k_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, HIDDEN],
                Some(KV_HEADS),
            ),
            (
                "attn_v",
                format!("{p}.self_attn.v_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, HIDDEN],
                None,
            ),
            (
                "attn_output",
                format!("{p}.self_attn.o_proj.weight"),
                vec![HIDDEN, HIDDEN],
                None,
            ),
            ("ffn_gate", format!("{p}.mlp.gate_proj.weight"), vec![FFN, HIDDEN], None),
            ("ffn_up", format!("{p}.mlp.up_proj.weight"), vec![FFN, HIDDEN], None),
            ("ffn_down", format!("{p}.mlp.down_proj.weight"), vec![HIDDEN, FFN], None),
            ("attn_norm", format!("{p}.input_layernorm.weight"), vec![HIDDEN], None),
            (
                "ffn_norm",
                format!("{p}.post_attention_layernorm.weight"),
                vec![HIDDEN],
                None,
            ),
        ];
        for (k, hf, shape, heads) in layer {
            // Layer 1's v_proj and q_proj are quantized (q_proj: un-permuting a quantized tensor).
            let ty = if l == 1 && (k == "attn_v" || k == "attn_q") {
                GgmlDType::Q8_0
            } else {
                GgmlDType::F32
            };
            specs.push((format!("blk.{l}.{k}.weight"), hf, shape, ty, heads));
        }
    }
    if v.extra_tensor {
        specs.push((
            "rope_freqs.weight".into(),
            "-".into(),
            vec![HEAD_DIM / 2],
            GgmlDType::F32,
            None,
        ));
    }

    let mut qtensors = Vec::new();
    for (i, (gguf, hf, shape, ty, heads)) in specs.iter().enumerate() {
        let n: usize = shape.iter().product();
        let hf_values = weights(n, i as u64 + 1);
        // What the GGUF stores: the HF weights in llama.cpp's row order.
        let stored = match heads {
            Some(h) => llama_cpp_permute(&hf_values, shape[0], shape[1], *h),
            None => hf_values.clone(),
        };
        let t = Tensor::from_vec(stored, shape.as_slice(), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, *ty).unwrap();
        // The values the import must produce: the stored values as dequantized, un-permuted.
        let deq = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let expected = match heads {
            Some(h) => {
                // Invert the test's own permutation by applying it to the index vector.
                let idx: Vec<f32> = (0..shape[0]).map(|r| r as f32).collect();
                let perm = llama_cpp_permute(&idx, shape[0], 1, *h);
                let mut out = vec![0f32; n];
                for (gg_row, hf_row) in perm.iter().enumerate() {
                    let hf_row = *hf_row as usize;
                    out[hf_row * shape[1]..(hf_row + 1) * shape[1]]
                        .copy_from_slice(&deq[gg_row * shape[1]..(gg_row + 1) * shape[1]]);
                }
                out
            }
            None => deq,
        };
        if *ty == GgmlDType::F32 {
            assert_eq!(expected, hf_values, "{gguf}: F32 round trip");
        } else {
            let err = expected
                .iter()
                .zip(&hf_values)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 0.01, "{gguf}: Q8_0 error {err}");
        }
        model.hf.insert(hf.clone(), (shape.clone(), expected));
        model.types.insert(hf.clone(), *ty);
        qtensors.push((gguf.clone(), q));
    }
    let meta_refs: Vec<(&str, &G)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, q)| (k.as_str(), q)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs).unwrap();
    model
}

fn opts(src: &Path, out: &Path) -> ImportOptions {
    ImportOptions {
        source: src.to_path_buf(),
        output_dir: out.to_path_buf(),
        fresh: false,
        progress: None,
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn sha256_hex(p: &Path) -> String {
    use sha2::Digest;
    uc_pack::hex(&sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn imports_names_shapes_values_and_config() {
    let s = Scratch::new("basic");
    let src = s.join("tiny.gguf");
    let model = write_gguf(&src, &Variant::default());
    let out = s.join("tiny-f32");
    let sum = import_gguf(&opts(&src, &out)).unwrap();
    assert_eq!(sum.tensors.len(), model.hf.len());
    assert!(sum.tie_word_embeddings);
    assert_eq!(sum.tensor_types.get("Q8_0"), Some(&3));
    assert_eq!(sum.tensor_types.get("F32"), Some(&(model.hf.len() - 3)));
    assert_eq!(
        sum.parameters,
        model
            .hf
            .values()
            .map(|(s, _)| s.iter().product::<usize>() as u64)
            .sum::<u64>()
    );
    assert!(sum.warnings.is_empty(), "{:?}", sum.warnings);
    assert_eq!(s.entries(), ["tiny-f32", "tiny.gguf"], "no temporary directory left");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );

    // The safetensors header: F32 tensors, data laid out in sorted name order.
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(hlen % 8, 0);
    let header: Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let mut offsets: Vec<(u64, &str)> = Vec::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(t["dtype"], "F32", "{name}");
        offsets.push((t["data_offsets"][0].as_u64().unwrap(), name.as_str()));
    }
    offsets.sort();
    let names: Vec<&str> = offsets.iter().map(|(_, n)| *n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(bytes.len() as u64, sum.safetensors_bytes);

    // Values: F32 tensors exactly, Q8_0 ones as candle dequantizes them, q/k un-permuted.
    let loaded = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(
        loaded.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        model.hf.keys().cloned().collect()
    );
    for (name, (shape, want)) in &model.hf {
        let t = &loaded[name];
        assert_eq!(t.dims(), shape.as_slice(), "{name}");
        let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(got == *want, "{name}: values differ");
    }
    let by_name: HashMap<_, _> = sum.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let q0 = by_name["model.layers.0.self_attn.q_proj.weight"];
    assert_eq!(q0.gguf_name, "blk.0.attn_q.weight");
    assert!(q0.unpermuted);
    assert!(by_name["model.layers.1.self_attn.k_proj.weight"].unpermuted);
    assert!(!by_name["model.layers.1.self_attn.v_proj.weight"].unpermuted);
    assert_eq!(by_name["model.layers.1.self_attn.v_proj.weight"].gguf_dtype, "Q8_0");

    // config.json
    let c = read_json(&out.join("config.json"));
    assert_eq!(c["architectures"][0], "LlamaForCausalLM");
    assert_eq!(c["model_type"], "llama");
    assert_eq!(c["hidden_size"], HIDDEN);
    assert_eq!(c["intermediate_size"], FFN);
    assert_eq!(c["num_hidden_layers"], LAYERS);
    assert_eq!(c["num_attention_heads"], HEADS);
    assert_eq!(c["num_key_value_heads"], KV_HEADS);
    assert_eq!(c["head_dim"], HEAD_DIM);
    assert_eq!(c["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(c["rope_theta"].as_f64(), Some(100_000.0));
    assert_eq!(c["max_position_embeddings"], 256);
    assert_eq!(c["vocab_size"], VOCAB);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(c["bos_token_id"], 1);
    assert_eq!(c["eos_token_id"], 2);
    assert_eq!(c["torch_dtype"], "float32");
    assert_eq!(c["uc_import"]["source_file"], "tiny.gguf");
    assert_eq!(c["uc_import"]["source_sha256"], sha256_hex(&src));
    assert_eq!(c["uc_import"]["source_sha256"], sum.source_sha256.as_str());
    assert_eq!(
        c["uc_import"]["note"],
        "weights are the dequantized Q8_0 values of the GGUF file, not the original model's"
    );
    let tc = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(tc["bos_token"], "<|im_start|>");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(tc["model_max_length"], 256);
    assert!(tc["chat_template"].as_str().unwrap().contains("messages"));

    // `uc compress` reads the directory as a source.
    let src_model = uc_encode::source::SourceModel::open(&out).unwrap();
    assert_eq!(src_model.tensors.len(), model.hf.len());
    assert_eq!(src_model.hidden_size(), Some(HIDDEN as u64));
}

#[test]
fn tokenizer_json_loads_and_encodes() {
    let s = Scratch::new("tok");
    let src = s.join("tiny.gguf");
    write_gguf(&src, &Variant::default());
    let out = s.join("hf");
    import_gguf(&opts(&src, &out)).unwrap();
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(tok.get_vocab_size(true), VOCAB);
    let vocab = vocabulary();
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap() as u32;
    let enc = |text: &str| tok.encode(text, true).unwrap();

    // Merges in rank order; digits split one by one (the merge "1 2" never applies); a trailing
    // space is its own piece.
    let e = enc("the cat 12");
    assert_eq!(e.get_tokens(), ["t", "he", "Ġcat", "Ġ", "1", "2"]);
    assert_eq!(e.get_ids(), ["t", "he", "Ġcat", "Ġ", "1", "2"].map(id));
    assert_eq!(enc(" the").get_tokens(), ["Ġthe"]);
    // Control tokens are special added tokens, matched before BPE; no BOS is added.
    let e = enc("<|im_start|>the<|im_end|>");
    assert_eq!(e.get_ids(), [1, id("t"), id("he"), 2]);
    // Non-ASCII text goes through the byte-level alphabet and decodes back.
    let text = "the caté 12, <|endoftext|>";
    let e = enc(text);
    assert_eq!(e.get_ids()[e.get_ids().len() - 1], 0);
    assert_eq!(tok.decode(e.get_ids(), false).unwrap(), text);
    assert_eq!(tok.decode(e.get_ids(), true).unwrap(), "the caté 12, ");
}

#[test]
fn add_bos_token_and_untied_head() {
    let s = Scratch::new("bos");
    let src = s.join("tiny.gguf");
    let model = write_gguf(
        &src,
        &Variant {
            add_bos: true,
            with_output: true,
            ..Variant::default()
        },
    );
    let out = s.join("hf");
    let sum = import_gguf(&opts(&src, &out)).unwrap();
    assert!(!sum.tie_word_embeddings);
    assert!(model.hf.contains_key("lm_head.weight"));
    let c = read_json(&out.join("config.json"));
    assert_eq!(c["tie_word_embeddings"], false);
    assert_eq!(
        c["uc_import"]["note"],
        "weights are the dequantized Q8_0 values of the GGUF file, not the original model's"
    );
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let vocab = vocabulary();
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap() as u32;
    assert_eq!(tok.encode(" the", true).unwrap().get_ids(), [1, id("Ġthe")]);
    assert_eq!(tok.encode(" the", false).unwrap().get_ids(), [id("Ġthe")]);
    assert_eq!(read_json(&out.join("tokenizer_config.json"))["add_bos_token"], true);
}

#[test]
fn existing_output_needs_fresh_and_a_foreign_directory_is_never_replaced() {
    let s = Scratch::new("fresh");
    let src = s.join("tiny.gguf");
    write_gguf(&src, &Variant::default());
    // A directory import-gguf did not write: refused with and without --fresh, left as it was.
    let foreign = s.join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("old.txt"), "old").unwrap();
    for fresh in [false, true] {
        let e = import_gguf(&ImportOptions {
            fresh,
            ..opts(&src, &foreign)
        })
        .unwrap_err();
        assert!(
            matches!(e, CompressError::Output(uc_pack::fs::OutputError::NotOurs { .. })),
            "{e}"
        );
        assert_eq!(std::fs::read(foreign.join("old.txt")).unwrap(), b"old");
    }
    // A previous import: refused without --fresh, replaced with it.
    let out = s.join("hf");
    import_gguf(&opts(&src, &out)).unwrap();
    std::fs::write(out.join("old.txt"), "old").unwrap();
    let e = import_gguf(&opts(&src, &out)).unwrap_err();
    assert!(
        matches!(e, CompressError::Output(uc_pack::fs::OutputError::Exists(_))),
        "{e}"
    );
    assert!(out.join("old.txt").exists());
    import_gguf(&ImportOptions {
        fresh: true,
        ..opts(&src, &out)
    })
    .unwrap();
    assert!(!out.join("old.txt").exists());
    assert!(out.join("model.safetensors").exists());
    assert_eq!(s.entries(), ["hf", "mine", "tiny.gguf"]);
}

/// Imports `src` into a fresh output, expects a `BadSource` error naming the file whose message
/// contains `needle`, and checks that nothing was created.
fn expect_bad(s: &Scratch, src: &Path, needle: &str) {
    let before = s.entries();
    let out = s.join("out");
    let e = import_gguf(&opts(src, &out)).unwrap_err();
    match &e {
        CompressError::BadSource { path, msg } => {
            assert_eq!(path, src);
            assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
        }
        other => panic!("expected BadSource, got {other:?}"),
    }
    assert!(e.to_string().contains(&src.display().to_string()));
    assert_eq!(s.entries(), before, "no output or temporary directory left");
}

#[test]
fn rejects_broken_inputs() {
    let s = Scratch::new("bad");
    let good = s.join("good.gguf");
    write_gguf(&good, &Variant::default());
    let bytes = std::fs::read(&good).unwrap();

    let not_gguf = s.join("not.gguf");
    std::fs::write(&not_gguf, b"this is not a GGUF file at all, just some text\n").unwrap();
    expect_bad(&s, &not_gguf, "not a valid GGUF file");

    let empty = s.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    expect_bad(&s, &empty, "not a valid GGUF file");

    // Cut inside the metadata (the vocabulary) and inside the tensor data.
    let cut_header = s.join("cut-header.gguf");
    std::fs::write(&cut_header, &bytes[..2000]).unwrap();
    expect_bad(&s, &cut_header, "not a valid GGUF file");
    let cut_data = s.join("cut-data.gguf");
    std::fs::write(&cut_data, &bytes[..bytes.len() - 5000]).unwrap();
    expect_bad(&s, &cut_data, "does not fit");
    // Every other length of the first 300 bytes and a sample of later ones: an error, never a panic.
    let cut = s.join("cut.gguf");
    for len in (0..300).chain((300..bytes.len()).step_by(997)) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let out = s.join("out");
        assert!(import_gguf(&opts(&cut, &out)).is_err(), "length {len}");
        assert!(!out.exists());
    }
    std::fs::remove_file(&cut).unwrap();

    let arch = s.join("arch.gguf");
    write_gguf(
        &arch,
        &Variant {
            architecture: Some("qwen2"),
            ..Variant::default()
        },
    );
    expect_bad(&s, &arch, "general.architecture is \"qwen2\"");

    let no_layers = s.join("no-layers.gguf");
    write_gguf(
        &no_layers,
        &Variant {
            drop_metadata: Some("llama.block_count"),
            ..Variant::default()
        },
    );
    expect_bad(&s, &no_layers, "llama.block_count is missing");

    let no_merges = s.join("no-merges.gguf");
    write_gguf(
        &no_merges,
        &Variant {
            drop_metadata: Some("tokenizer.ggml.merges"),
            ..Variant::default()
        },
    );
    expect_bad(&s, &no_merges, "tokenizer.ggml.merges is missing");

    let extra = s.join("extra.gguf");
    write_gguf(
        &extra,
        &Variant {
            extra_tensor: true,
            ..Variant::default()
        },
    );
    expect_bad(&s, &extra, "tensor rope_freqs.weight");
}

#[test]
fn cli_import_json_and_errors() {
    let s = Scratch::new("cli");
    let src = s.join("tiny.gguf");
    let model = write_gguf(&src, &Variant::default());
    let out = s.join("hf");
    let run = |args: &[&Path]| {
        let mut c = Command::new(UC);
        c.arg("import-gguf").args(args).stdin(Stdio::null());
        c
    };
    let o = run(&[&src, Path::new("--output-dir"), &out, Path::new("--json")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tensor_count"], model.hf.len());
    assert_eq!(v["tie_word_embeddings"], true);
    assert_eq!(v["source_sha256"], sha256_hex(&src));
    assert_eq!(v["tensors"].as_array().unwrap().len(), model.hf.len());
    assert!(out.join("tokenizer.json").exists());

    // Existing output: exit 2 without --fresh; the text summary with --fresh.
    let o = run(&[&src, Path::new("--output-dir"), &out]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fresh"));
    let o = run(&[&src, Path::new("--output-dir"), &out, Path::new("--fresh")])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("parameters"), "{text}");
    assert!(text.contains("embeddings tied"), "{text}");

    // A non-GGUF file and a truncated one: exit 2, the file named, no output directory.
    let bad = s.join("bad.gguf");
    for content in [b"not a gguf".to_vec(), std::fs::read(&src).unwrap()[..4000].to_vec()] {
        std::fs::write(&bad, content).unwrap();
        let out2 = s.join("hf2");
        let o = run(&[&bad, Path::new("--output-dir"), &out2]).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("uc: error: "), "{err}");
        assert!(err.contains("bad.gguf"), "{err}");
        assert!(!out2.exists());
    }
    assert_eq!(s.entries(), ["bad.gguf", "hf", "tiny.gguf"]);

    let help = Command::new(UC).args(["import-gguf", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("dequantized"), "{help}");
}

/// The tokenizer imported from the real SmolLM2-135M-Instruct GGUF (`uc import-gguf` into
/// `.cache/models/smollm2-f32`, see the README), when that directory exists; skipped otherwise.
#[test]
fn smollm2_tokenizer_on_english_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/smollm2-f32");
    let Ok(tok) = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")) else {
        eprintln!("skipped: no {} (uc import-gguf it first)", dir.display());
        return;
    };
    let text = "The hacker's dictionary, 1983.";
    let e = tok.encode(text, true).unwrap();
    eprintln!("{:?} -> {:?} {:?}", text, e.get_tokens(), e.get_ids());
    // As SmolLM2's own tokenizer: digits one by one, no BOS added.
    assert_eq!(
        e.get_tokens(),
        ["The", "Ġhacker", "'s", "Ġdictionary", ",", "Ġ", "1", "9", "8", "3", "."]
    );
    assert_eq!(e.get_ids(), [504, 35352, 506, 9125, 28, 216, 33, 41, 40, 35, 30]);
    assert_eq!(tok.decode(e.get_ids(), false).unwrap(), text);
    let chat = tok.encode("<|im_start|>user\nHi<|im_end|>", true).unwrap();
    assert_eq!(chat.get_ids().first(), Some(&1));
    assert_eq!(chat.get_ids().last(), Some(&2));
}

/// A previous import survives a replacing run that is killed before its install (the hook aborts
/// the process as kill -9 would) or that fails on a broken file; the next run cleans up after the
/// killed one.
#[test]
fn a_killed_or_failed_import_keeps_the_previous_output() {
    let s = Scratch::new("killed");
    let src = s.join("tiny.gguf");
    write_gguf(&src, &Variant::default());
    let out = s.join("hf");
    let run = |args: &[&Path]| {
        let mut c = Command::new(UC);
        c.arg("import-gguf")
            .args(args)
            .stdin(Stdio::null())
            .env_remove("UC_TEST_FS_ABORT");
        c
    };
    import_gguf(&opts(&src, &out)).unwrap();
    let before: Vec<(String, Vec<u8>)> = ["model.safetensors", "config.json", "tokenizer.json"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(out.join(n)).unwrap()))
        .collect();
    let o = run(&[&src, Path::new("--output-dir"), &out, Path::new("--fresh")])
        .env("UC_TEST_FS_ABORT", "staged")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the hook did not abort the run");
    for (n, b) in &before {
        assert_eq!(&std::fs::read(out.join(n)).unwrap(), b, "{n} changed");
    }
    // A broken file with --fresh: refused, the previous import untouched, nothing left beside it.
    let bad = s.join("bad.gguf");
    let whole = std::fs::read(&src).unwrap();
    std::fs::write(&bad, &whole[..whole.len() / 2]).unwrap();
    let o = run(&[&bad, Path::new("--output-dir"), &out, Path::new("--fresh")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    for (n, b) in &before {
        assert_eq!(&std::fs::read(out.join(n)).unwrap(), b, "{n} changed");
    }
    // The next good run replaces it and removes the killed run's temporary directory.
    let o = run(&[&src, Path::new("--output-dir"), &out, Path::new("--fresh")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.entries(), ["bad.gguf", "hf", "tiny.gguf"]);
}
