//! `uc`: compress Hugging Face models into uc packs, inspect and unpack them, import GGUF files.
//!
//! Exit codes: 0 success, 1 the written or read pack failed verification, 2 usage or I/O error
//! (including bad input models), 130 interrupted.

#![deny(unsafe_code)] // allowed only in `device`, which loads the CUDA driver at run time

mod bench;
mod chat;
mod compress;
mod device;
mod eval;
mod import_gguf;
mod inspect;
mod output;
mod run;
mod serve;
mod sign;
mod unpack;

use output::write_stdout;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use uc_encode::error::CompressError;

/// Appends one line of output (everything goes to stdout at once at the end: see `write_stdout`).
#[macro_export]
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

#[derive(Parser)]
#[command(
    name = "uc",
    version,
    about = "UltraCompress: open, verifiable compressed LLM weights (uc pack v0.3)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compress a local Hugging Face model directory into a uc pack.
    ///
    /// Quantizes every 2-D F32/F16/BF16 weight (embeddings, lm_head and norms stay verbatim; see
    /// --skip) with grid scalar quantization and an optional low-rank overlay, choosing bits and
    /// rank per tensor to minimise the size-weighted relative squared error within --bpw. Holds one
    /// tensor in memory; resumable: rerun the same command after an interruption. Writes the pack
    /// into the work directory beside the output, verifies it with the uc-verify checks, then moves
    /// it into place atomically.
    Compress(compress::Opts),
    /// Decode a pack into a standard safetensors model any runtime can load.
    Unpack(unpack::Opts),
    /// Evaluate models on real text: perplexity, or a pack (or a k-quant) against its source.
    Eval {
        #[command(subcommand)]
        cmd: eval::EvalCmd,
    },
    /// Convert a Llama-architecture GGUF file (llama.cpp) into a Hugging Face model directory.
    ///
    /// Writes model.safetensors (every tensor dequantized to F32), config.json (LlamaForCausalLM,
    /// with a `uc_import` member naming the GGUF file and its SHA-256), tokenizer.json (byte-level
    /// BPE from the GGUF vocabulary and merges) and tokenizer_config.json; `uc compress` reads the
    /// directory as its source. The weights are the dequantized values of the GGUF's quantized
    /// tensors (e.g. Q4_1), not the original model's: a pack compressed from them, and any teacher
    /// built from them, inherit the GGUF's quantization error. q_proj and k_proj rows are returned
    /// from llama.cpp's RoPE order to the Hugging Face order. Reads one tensor at a time; the
    /// directory appears atomically.
    ImportGguf(import_gguf::Opts),
    /// List a pack's tensors (shape, bits, rank, bytes, rel_l2) and its manifest summary.
    Inspect(inspect::Opts),
    /// Sign a pack: an OpenSSF Model Signing (OMS) v1.0 bundle over every file, manifest included.
    ///
    /// Verifies the pack first (every uc-verify check) and signs only a pack that verifies. The
    /// bundle is the one `model_signing` (sigstore/model-transparency) writes and reads: a Sigstore
    /// bundle holding a DSSE envelope around an in-toto statement that lists each file's SHA-256.
    /// Key method by default; the certificate method with --certificate-chain. Deterministic:
    /// signing the same pack with the same key gives the same bytes (Ed25519; RFC 6979 for ECDSA).
    /// Check it with `uc-verify PACK --public-key PUB.pem` (or `--certificate-chain ROOT.pem`).
    Sign(sign::Opts),
    /// Generate text with a Llama-family model straight from its pack.
    ///
    /// Verifies the pack first (every uc-verify check, recon_sha256 of every tensor included) and
    /// uses the bytes it verified. The linear maps read their records in place (fused row dot
    /// products: no f32 copy of the weights; resident memory is about the pack's size plus the
    /// key/value cache), the prompt all at once (each row tile decoded once for all its tokens),
    /// then one token at a time with a key/value cache. A
    /// Hugging Face directory runs through the same code, and a pack gives exactly the logits of
    /// its `uc unpack` output (without overlays), so the same prompt, options and seed give the
    /// same tokens. Streams the text to stdout and the speeds to stderr; --json for one object.
    Run(run::Opts),
    /// Serve a pack over an OpenAI-compatible HTTP API.
    ///
    /// /v1/completions and /v1/chat/completions (ChatML templates; streaming by server-sent events
    /// or whole), /v1/models (the served id and the pack's fingerprint), /health. Verifies the pack
    /// before it listens, as `uc run` does, and runs it the same way. Requests are served
    /// concurrently and generate one at a time in arrival order (a queue of --max-queue); errors
    /// come in OpenAI's JSON shape with 4xx/5xx statuses; limits on the body size, prompt length,
    /// max_tokens and the time of a request; SIGINT or SIGTERM stops it gracefully.
    Serve(serve::Opts),
    /// Measure a pack: prompt and generation tokens/s on one thread and on all, peak resident
    /// memory, and with --text its perplexity (a short quality check).
    ///
    /// Runs `uc run`'s engine (records read in place); checks that the greedy tokens are the same
    /// on every thread count. Give the unpacked model's directory for its figures beside the pack's.
    Bench(bench::Opts),
}

fn run(cli: Cli, out: &mut String) -> Result<(), CompressError> {
    match cli.cmd {
        Cmd::Compress(o) => compress::run(o, out),
        Cmd::Unpack(o) => unpack::run(o, out),
        Cmd::Eval { cmd } => eval::run(cmd, out),
        Cmd::ImportGguf(o) => import_gguf::run(o, out),
        Cmd::Inspect(o) => inspect::run(o, out),
        Cmd::Sign(o) => sign::run(o, out),
        Cmd::Run(o) => run::run(o, out),
        Cmd::Serve(o) => serve::run(o, out),
        Cmd::Bench(o) => bench::run(o, out),
    }
}

/// The command-line flag of a library option field (library errors name fields, not flags).
fn flag(option: &'static str) -> String {
    let f = match option {
        "calibration.tokens" => "calib-tokens",
        "calibration.ctx" => "calib-ctx",
        "calibration.lr" => "distill-lr",
        "calibration.steps" => "distill-steps",
        "output_dir" => "output-dir",
        "created_at" => return "SOURCE_DATE_EPOCH".into(),
        "source" => return "SOURCE".into(),
        other => other,
    };
    format!("--{}", f.replace('_', "-"))
}

/// The exit status of a failed command: 1 when a pack failed verification (the one written, or one
/// read), 2 for a usage, input or I/O problem.
fn exit_code(e: &CompressError) -> u8 {
    match e {
        CompressError::Verification(_) => 1,
        _ => 2,
    }
}

/// The error as the user reads it: option fields shown as flags, and what to do next where the
/// answer is a flag of this command line.
fn message(e: &CompressError) -> String {
    use uc_pack::fs::OutputError;
    let base = e.display_with(&flag);
    match e {
        CompressError::Output(OutputError::Exists(_)) => {
            format!("{base}; pass --fresh to replace it (or choose another --output-dir)")
        }
        CompressError::OtherJob { .. } => {
            format!("{base}; rerun that command to resume it, or pass --fresh to discard it")
        }
        CompressError::Journal { .. } => format!("{base}; rerun with --fresh to discard it"),
        CompressError::UnsupportedDtype { .. } => format!("{base} (--skip)"),
        _ => base,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    // What a command reported before it failed (e.g. `uc compress --bench-on-finish`'s summary
    // of the written pack when its bench fails) is printed before the error.
    let result = run(cli, &mut out)
        .inspect_err(|_| {
            if !out.is_empty() {
                let _ = write_stdout(&out);
            }
        })
        .and_then(|()| {
            write_stdout(&out).map_err(|e| CompressError::Io {
                path: PathBuf::from("<stdout>"),
                source: e,
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uc: error: {}", uc_pack::text::esc(&message(&e)));
            ExitCode::from(exit_code(&e))
        }
    }
}
