//! Text for evaluation and calibration: reading `.txt` or `.jsonl` files, tokenizing them with the
//! model's own `tokenizer.json`, and cutting the tokens into fixed-length windows.

use crate::arch::{Arch, model_err};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokenizers::Tokenizer;
use uc_encode::error::{CompressError, bad};

/// Largest text file read (bytes): evaluation and calibration slices are far smaller.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// A text file and its SHA-256.
#[derive(Debug, Clone)]
pub struct Text {
    /// The text (for `.jsonl`, every line's `"text"` member, separated by blank lines).
    pub text: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// Reads a `.txt` (UTF-8) or `.jsonl` (one JSON object with a string member `text` per line) file.
pub fn read_text(path: &Path) -> Result<Text, CompressError> {
    // A regular file of bounded size only: a FIFO would block, /dev/zero never end.
    let bytes = uc_pack::fs::read_capped(path, MAX_TEXT_BYTES)?;
    let sha256 = uc_pack::hex(&Sha256::digest(&bytes));
    let s = String::from_utf8(bytes).map_err(|e| {
        bad(
            path,
            format!("not UTF-8 at byte offset {}", e.utf8_error().valid_up_to()),
        )
    })?;
    let is_jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let text = if is_jsonl {
        let mut parts = Vec::new();
        for (n, line) in s.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(path, format!("line {}: invalid JSON: {e}", n + 1)))?;
            let t = v["text"]
                .as_str()
                .ok_or_else(|| bad(path, format!("line {}: no string member \"text\"", n + 1)))?;
            parts.push(t.to_string());
        }
        parts.join("\n\n")
    } else {
        s
    };
    if text.trim().is_empty() {
        return Err(bad(path, "no text"));
    }
    Ok(Text { text, sha256 })
}

/// Loads `tokenizer.json` from a model directory or pack.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer, CompressError> {
    let p = dir.join("tokenizer.json");
    if !p.is_file() {
        return Err(bad(
            dir,
            "no tokenizer.json: a tokenizer is needed to evaluate or calibrate",
        ));
    }
    let mut tok = Tokenizer::from_file(&p).map_err(|e| bad(&p, format!("cannot load the tokenizer: {e}")))?;
    // The text is cut into windows here: the file's own truncation (128 tokens for MiniLM) and
    // padding settings would cut or pad the whole text instead.
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| bad(&p, format!("cannot disable truncation: {e}")))?;
    Ok(tok)
}

/// Tokenizes `text` and cuts it into windows of `ctx` tokens, at most `max_tokens` tokens in all
/// (whole windows only). For BERT each window is `[CLS] … [SEP]` around `ctx − 2` text tokens.
pub fn windows(
    dir: &Path,
    arch: &Arch,
    tok: &Tokenizer,
    text: &str,
    ctx: usize,
    max_tokens: usize,
    text_name: &str,
) -> Result<Vec<Vec<u32>>, CompressError> {
    if ctx < 4 {
        return Err(CompressError::Usage(format!(
            "the window length must be at least 4 tokens, got {ctx}"
        )));
    }
    let enc = tok
        .encode(text, false)
        .map_err(|e| model_err(dir, format!("tokenizer failed: {e}")))?;
    let ids = enc.get_ids();
    let mut out = Vec::new();
    match arch {
        Arch::Llama(_) => {
            for w in ids.chunks_exact(ctx).take(max_tokens / ctx) {
                out.push(w.to_vec());
            }
        }
        Arch::Bert(_) => {
            let (cls, sep) = match (tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")) {
                (Some(c), Some(s)) => (c, s),
                _ => return Err(bad(dir, "tokenizer.json has no [CLS] / [SEP] tokens")),
            };
            for w in ids.chunks_exact(ctx - 2).take(max_tokens / ctx) {
                let mut v = Vec::with_capacity(ctx);
                v.push(cls);
                v.extend_from_slice(w);
                v.push(sep);
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        return Err(CompressError::Usage(format!(
            "{}: the text gives {} tokens, fewer than one window of {ctx} tokens within the {max_tokens}-token limit",
            text_name,
            ids.len()
        )));
    }
    Ok(out)
}
