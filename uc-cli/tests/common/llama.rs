//! The tiny random Llama of the `uc` integration tests: a GGUF file (candle's writer; 2 layers,
//! hidden 64, 4 heads, 2 KV heads, FFN 128, a 300-token byte-level BPE vocabulary, tied
//! embeddings, fixed-seed weights) imported with `uc import-gguf`, and a text typed in here (the
//! second paragraph of the US Declaration of Independence, public domain). Shared by the test
//! binaries that include it with `#[path]`; they provide `Scratch`, `uc`, `ok` and `p`.
#![allow(dead_code)] // each test binary uses a part

use super::{Scratch, ok, p, uc};
use candle_core::quantized::gguf_file::{self, Value as G};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = HIDDEN / HEADS;
pub const FFN: usize = 128;
pub const LAYERS: usize = 2;
pub const VOCAB: usize = 300;

/// The calibration and evaluation text.
pub const TEXT: &str = "We hold these truths to be self-evident, that all men are created equal, that they are \
endowed by their Creator with certain unalienable Rights, that among these are Life, Liberty and the pursuit of \
Happiness. That to secure these rights, Governments are instituted among Men, deriving their just powers from the \
consent of the governed, That whenever any Form of Government becomes destructive of these ends, it is the Right of \
the People to alter or to abolish it, and to institute new Government, laying its foundation on such principles and \
organizing its powers in such form, as to them shall seem most likely to effect their Safety and Happiness. \
Prudence, indeed, will dictate that Governments long established should not be changed for light and transient \
causes; and accordingly all experience hath shewn, that mankind are more disposed to suffer, while evils are \
sufferable, than to right themselves by abolishing the forms to which they are accustomed. But when a long train of \
abuses and usurpations, pursuing invariably the same Object evinces a design to reduce them under absolute \
Despotism, it is their right, it is their duty, to throw off such Government, and to provide new Guards for their \
future security.--Such has been the patient sufferance of these Colonies; and such is now the necessity which \
constrains them to alter their former Systems of Government.\n";

/// GPT-2's byte → printable character map (`bytes_to_unicode`).
pub fn byte_chars() -> Vec<char> {
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

pub const MERGES: [&str; 7] = ["h e", "Ġ t", "Ġt he", "1 2", "c a", "ca t", "Ġ cat"];

/// Tokens: 3 control tokens, the 256 byte characters, the merge results, fillers up to VOCAB.
pub fn vocabulary() -> Vec<String> {
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

/// Deterministic pseudo-random values in about [-1, 1) (xorshift64).
pub fn uniform(n: usize, seed: u64) -> Vec<f32> {
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

/// Writes the tiny Llama GGUF (every tensor F32).
///
/// Scales: embeddings uniform in [-1, 1] (tied: logits of a few units, a peaked next-token
/// distribution whose perplexity reacts to weight errors), linear maps uniform in [-0.2, 0.2]
/// (about 1/√64, so each layer changes the residual stream as much as the embedding contributes),
/// norm gains 1 ± 0.1.
pub fn write_gguf(path: &Path) {
    let tokens = vocabulary();
    let meta: Vec<(String, G)> = vec![
        ("general.architecture".into(), G::String("llama".into())),
        ("general.name".into(), G::String("tiny-llama".into())),
        ("llama.block_count".into(), G::U32(LAYERS as u32)),
        ("llama.context_length".into(), G::U32(256)),
        ("llama.embedding_length".into(), G::U32(HIDDEN as u32)),
        ("llama.feed_forward_length".into(), G::U32(FFN as u32)),
        ("llama.attention.head_count".into(), G::U32(HEADS as u32)),
        ("llama.attention.head_count_kv".into(), G::U32(KV_HEADS as u32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), G::F32(1e-5)),
        ("llama.rope.freq_base".into(), G::F32(10_000.0)),
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
        ("tokenizer.ggml.add_bos_token".into(), G::Bool(false)),
    ];
    // (GGUF name, HF-order shape, value scale, value offset)
    let mut specs: Vec<(String, Vec<usize>, f32, f32)> = vec![
        ("token_embd.weight".into(), vec![VOCAB, HIDDEN], 1.0, 0.0),
        ("output_norm.weight".into(), vec![HIDDEN], 0.1, 1.0),
    ];
    for l in 0..LAYERS {
        for (k, shape) in [
            ("attn_q", vec![HIDDEN, HIDDEN]),
            ("attn_k", vec![KV_HEADS * HEAD_DIM, HIDDEN]),
            ("attn_v", vec![KV_HEADS * HEAD_DIM, HIDDEN]),
            ("attn_output", vec![HIDDEN, HIDDEN]),
            ("ffn_gate", vec![FFN, HIDDEN]),
            ("ffn_up", vec![FFN, HIDDEN]),
            ("ffn_down", vec![HIDDEN, FFN]),
        ] {
            specs.push((format!("blk.{l}.{k}.weight"), shape, 0.2, 0.0));
        }
        for k in ["attn_norm", "ffn_norm"] {
            specs.push((format!("blk.{l}.{k}.weight"), vec![HIDDEN], 0.1, 1.0));
        }
    }
    let qtensors: Vec<(String, QTensor)> = specs
        .iter()
        .enumerate()
        .map(|(i, (name, shape, scale, offset))| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = uniform(n, 1000 + i as u64).iter().map(|x| x * scale + offset).collect();
            let t = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap();
            (name.clone(), QTensor::quantize(&t, GgmlDType::F32).unwrap())
        })
        .collect();
    let meta_refs: Vec<(&str, &G)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, q)| (k.as_str(), q)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs).unwrap();
}

/// The tiny model as a Hugging Face directory (`<scratch>/tiny`) and the text (`<scratch>/text.txt`).
pub fn tiny_model(s: &Scratch) -> (PathBuf, PathBuf) {
    let gguf = s.join("tiny.gguf");
    write_gguf(&gguf);
    let dir = s.join("tiny");
    ok(uc(&["import-gguf", p(&gguf), "--output-dir", p(&dir)]));
    std::fs::remove_file(&gguf).unwrap();
    let text = s.join("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    (dir, text)
}

/// The tiny model (`<scratch>/tiny`, the text `<scratch>/text.txt`) compressed to a 4-bit rank-0
/// pack `<scratch>/pack`, plus `extra` options: (source, text, pack).
pub fn tiny_pack(s: &Scratch, extra: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let (src, text) = tiny_model(s);
    let pack = s.join("pack");
    let mut args = vec![
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ];
    args.extend_from_slice(extra);
    ok(uc(&args));
    (src, text, pack)
}
