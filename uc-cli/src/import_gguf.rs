//! `uc import-gguf`: a Llama GGUF file (llama.cpp) as a Hugging Face directory.

use crate::outln;
use crate::output::human;
use serde_json::json;
use std::path::PathBuf;
use uc_encode::error::CompressError;
use uc_models::gguf::{ImportOptions, ImportSummary, import_gguf};

/// Options of `uc import-gguf`.
#[derive(clap::Args)]
pub struct Opts {
    /// The .gguf file (general.architecture "llama", tokenizer.ggml.model "gpt2").
    pub file: PathBuf,
    /// Output directory (must not exist unless --fresh).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    pub fresh: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `uc import-gguf`.
pub fn run(opts: Opts, out: &mut String) -> Result<(), CompressError> {
    let Opts {
        file,
        output_dir,
        fresh,
        json,
    } = opts;
    let s = import_gguf(&ImportOptions {
        source: file,
        output_dir,
        fresh,
        progress: crate::output::progress_if_terminal(),
    });
    crate::output::finish_progress();
    let s = s?;
    if json {
        outln!(
            out,
            "{}",
            serde_json::to_string_pretty(&import_json(&s)).unwrap_or_default()
        );
    } else {
        import_text(&s, out);
    }
    Ok(())
}

fn import_json(s: &ImportSummary) -> serde_json::Value {
    json!({
        "output_dir": s.output_dir.display().to_string(),
        "source": s.source.display().to_string(),
        "source_bytes": s.source_bytes,
        "source_sha256": s.source_sha256,
        "tensor_count": s.tensors.len(),
        "tensor_types": s.tensor_types,
        "parameters": s.parameters,
        "safetensors_bytes": s.safetensors_bytes,
        "bytes_out": s.bytes_out,
        "vocab_tokens": s.vocab_tokens,
        "tie_word_embeddings": s.tie_word_embeddings,
        "seconds": s.seconds,
        "warnings": s.warnings,
        "tensors": s.tensors.iter().map(|t| json!({
            "name": t.name, "gguf_name": t.gguf_name, "gguf_dtype": t.gguf_dtype, "shape": t.shape,
            "unpermuted": t.unpermuted,
        })).collect::<Vec<_>>(),
    })
}

fn import_text(s: &ImportSummary, out: &mut String) {
    let types: Vec<String> = s.tensor_types.iter().map(|(t, n)| format!("{n} {t}")).collect();
    outln!(out, "directory   {}", s.output_dir.display());
    outln!(
        out,
        "source      {} ({}, sha256 {})",
        s.source.display(),
        human(s.source_bytes),
        s.source_sha256
    );
    outln!(
        out,
        "tensors     {} ({}), written as F32{}",
        s.tensors.len(),
        types.join(", "),
        if s.tie_word_embeddings {
            "; embeddings tied (no output.weight)"
        } else {
            ""
        }
    );
    outln!(out, "parameters  {}", s.parameters);
    outln!(
        out,
        "bytes       {} out (model.safetensors {}), {} tokens in tokenizer.json",
        human(s.bytes_out),
        human(s.safetensors_bytes),
        s.vocab_tokens
    );
    outln!(out, "time        {:.1} s", s.seconds);
    for w in &s.warnings {
        outln!(out, "warning     {w}");
    }
}
