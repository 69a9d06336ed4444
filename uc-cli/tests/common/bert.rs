//! A tiny BERT (sentence-transformers MiniLM's layout) written here: hidden 64, 2 layers, 4
//! heads, FFN 128, 32 positions, a 64-entry WordPiece vocabulary, fixed-seed weights, and its
//! `tokenizer.json` built with the tokenizers crate (BERT normalizer and pre-tokenizer,
//! `[CLS] … [SEP]` around a sequence).

use super::{Rng, Scratch, float_tensor, matrix, vector, write_safetensors};
use serde_json::json;
use std::path::{Path, PathBuf};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use uc_pack::safetensors::Dtype;

pub const HIDDEN: usize = 64;
pub const POSITIONS: usize = 32;

/// The vocabulary: special tokens, then words and a few `##` pieces (64 in all).
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map(String::from).to_vec();
    for w in "the a cat dog sat on mat and ran to house of we hold these truths be self evident that all men are \
              created equal they endowed by their creator with certain rights life liberty pursuit happiness"
        .split_whitespace()
    {
        v.push(w.to_string());
    }
    for p in ["s", "ed", "ing", "ly", "er", "est", "y", ".", ",", "!"] {
        v.push(if p.chars().all(char::is_alphabetic) {
            format!("##{p}")
        } else {
            p.to_string()
        });
    }
    while v.len() < 64 {
        v.push(format!("##x{}", v.len()));
    }
    v
}

fn write_tokenizer(path: &Path) {
    // vocab.txt, one token a line (as MiniLM ships it), read back by the crate.
    let txt = path.with_file_name("vocab.txt");
    std::fs::write(&txt, vocabulary().join("\n") + "\n").unwrap();
    let wp = WordPiece::from_file(txt.to_str().unwrap())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::default())).unwrap();
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
            .build()
            .unwrap(),
    ));
    tok.save(path, false).unwrap();
}

/// The tiny BERT as a Hugging Face directory `<scratch>/bert`.
pub fn tiny_bert(s: &Scratch) -> PathBuf {
    let dir = s.join("bert");
    let mut r = Rng(0x51ed_270b_a1f3_9c4d);
    let h = HIDDEN as u64;
    let bias = |r: &mut Rng, name: &str, n: u64| {
        float_tensor(name, Dtype::F32, &[n], (0..n).map(|_| 0.05 * r.unit()).collect())
    };
    let mut t = vec![
        matrix(&mut r, "embeddings.word_embeddings.weight", Dtype::F32, 64, h),
        matrix(
            &mut r,
            "embeddings.position_embeddings.weight",
            Dtype::F32,
            POSITIONS as u64,
            h,
        ),
        matrix(&mut r, "embeddings.token_type_embeddings.weight", Dtype::F32, 2, h),
        vector(&mut r, "embeddings.LayerNorm.weight", h),
        bias(&mut r, "embeddings.LayerNorm.bias", h),
    ];
    for i in 0..2 {
        let p = format!("encoder.layer.{i}.");
        for (n, o, inn) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", 2 * h, h),
            ("output.dense", h, 2 * h),
        ] {
            // Scaled up from `matrix`'s 0.02 so that the layers do more than pass the residual on.
            let mut m = matrix(&mut r, &format!("{p}{n}.weight"), Dtype::F32, o, inn);
            m = float_tensor(
                &m.name,
                Dtype::F32,
                &m.shape,
                m.values.iter().map(|x| 10.0 * x).collect(),
            );
            t.push(m);
            t.push(bias(&mut r, &format!("{p}{n}.bias"), o));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push(vector(&mut r, &format!("{p}{n}.weight"), h));
            t.push(bias(&mut r, &format!("{p}{n}.bias"), h));
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    write_safetensors(&dir.join("model.safetensors"), &t);
    let config = json!({
        "model_type": "bert", "architectures": ["BertModel"], "hidden_size": HIDDEN,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 2 * HIDDEN,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2, "vocab_size": 64,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_tokenizer(&dir.join("tokenizer.json"));
    std::fs::write(dir.join("LICENSE"), b"test license\n").unwrap();
    dir
}
