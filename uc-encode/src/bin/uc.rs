//! `uc`: compress Hugging Face models into uc packs, inspect and unpack them, import GGUF files.
//!
//! Exit codes: 0 success, 1 the written or read pack failed verification, 2 usage or I/O error
//! (including bad input models), 130 interrupted.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use uc_encode::calib::CalibOptions;
use uc_encode::compress::{CompressOptions, CompressSummary, compress};
use uc_encode::error::CompressError;
use uc_encode::model::eval::{Comparison, EvalOptions, KQuant, PplReport, compare, perplexity};
use uc_encode::model::gguf::{ImportOptions, ImportSummary, import_gguf};
use uc_encode::unpack::{DecodeDevice, OutDtype, UnpackOptions, inspect, unpack};

/// Appends one line of output (everything goes to stdout at once at the end: see `write_stdout`).
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

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Bf16,
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
    Compress {
        /// Source model directory (config.json + model.safetensors or sharded safetensors).
        #[arg(required_unless_present = "list_devices")]
        source: Option<PathBuf>,
        /// List the compute devices this build can see (CPU, CUDA devices through the driver) and exit.
        #[arg(long)]
        list_devices: bool,
        /// Bits-per-weight budget over all quantized weights (everything stored counts).
        #[arg(long, default_value_t = 5.0)]
        bpw: f64,
        /// Use this code width (1..=8) for every tensor instead of letting the budget choose.
        #[arg(long)]
        bits: Option<u8>,
        /// Use this overlay rank for every tensor (0 = no overlay) instead of letting the budget choose.
        #[arg(long)]
        rank: Option<u32>,
        /// Output directory [default: ./models/<source-name>-uc<bpw>].
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Compute device: cpu, or cuda:N (probed; this build has no CUDA encoder yet, so it
        /// says what it found and exits with 2).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Worker threads [default: all cores]. Output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Seed of the randomized parts (SVD sketches).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Method version recorded in the manifest.
        #[arg(long, default_value = "gsq-1")]
        method_version: String,
        /// License identifier recorded in the manifest (SPDX).
        #[arg(long)]
        license: Option<String>,
        /// Keep tensors whose names match this glob verbatim (repeatable; `*` and `?`).
        #[arg(long)]
        skip: Vec<String>,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Replace an existing output directory and discard an unfinished run's journal.
        #[arg(long)]
        fresh: bool,
        /// Calibrate on this text (.txt, or .jsonl with a "text" member per line): overlays are
        /// initialised from an activation-aware SVD and distilled layer by layer against the source
        /// model (on each layer's output; a causal LM's last layer on the KL of its logits)
        /// (llama-family and BERT models; needs tokenizer.json). Its SHA-256 goes into the manifest.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Calibration tokens (whole windows of --calib-ctx).
        #[arg(long, default_value_t = 2048)]
        calib_tokens: usize,
        /// Calibration window length in tokens.
        #[arg(long, default_value_t = 256)]
        calib_ctx: usize,
        /// Distillation steps per layer (0: activation-aware initialisation only).
        #[arg(long, default_value_t = 200)]
        distill_steps: usize,
        /// Distillation step size (Adam), relative to each overlay factor's RMS.
        #[arg(long, default_value_t = 0.01)]
        distill_lr: f64,
    },
    /// Decode a pack into a standard safetensors model any runtime can load.
    Unpack {
        /// Pack directory.
        pack: PathBuf,
        /// Output directory.
        #[arg(long)]
        output_dir: PathBuf,
        /// dtype of decoded tensors.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DtypeArg,
        /// Add the low-rank overlay U·V to the decoded weights (reference order of spec ).
        #[arg(long)]
        merge_overlay: bool,
        /// Decoder device: cpu, or wgpu (a GPU; needs a build with `--features wgpu`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Replace an existing output directory.
        #[arg(long)]
        fresh: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate models on real text: perplexity, or a pack (or a k-quant) against its source.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
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
    ImportGguf {
        /// The .gguf file (general.architecture "llama", tokenizer.ggml.model "gpt2").
        file: PathBuf,
        /// Output directory (must not exist unless --fresh).
        #[arg(long)]
        output_dir: PathBuf,
        /// Replace an existing output directory.
        #[arg(long)]
        fresh: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List a pack's tensors (shape, bits, rank, bytes, rel_l2) and its manifest summary.
    Inspect {
        /// Pack directory.
        pack: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Options shared by the `uc eval` commands.
#[derive(clap::Args, Clone)]
struct EvalArgs {
    /// Text to evaluate on (.txt, or .jsonl with a "text" member per line), e.g. the held-out
    /// slice written by scripts/fetch-text.sh.
    #[arg(long)]
    text: PathBuf,
    /// Window length in tokens (non-overlapping windows; BERT windows include [CLS] and [SEP]).
    #[arg(long, default_value_t = 256)]
    ctx: usize,
    /// Use at most this many tokens of the text (whole windows).
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Apply this ggml k-quant (q3k, q4k, q5k, q6k, q8_0; candle's port of ggml's reference
    /// quantizer) to the tensors `uc compress` would quantize, as a peer at known bpw.
    #[arg(long)]
    kquant: Option<String>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum EvalCmd {
    /// Perplexity of a causal language model (model directory or uc pack) on a text.
    ///
    /// Packs are decoded through uc-decode (recon_sha256 checked, overlays merged). Prints the
    /// perplexity, the mean negative log-likelihood per token and the top-1 accuracy.
    Ppl {
        /// Model directory or pack.
        model: PathBuf,
        #[command(flatten)]
        args: EvalArgs,
    },
    /// Compare a pack (or, with --kquant and no pack, a k-quant of the source) with its source.
    ///
    /// Language models: PPL_r = PPL(pack) / PPL(source) and top-1 agreement of the next-token
    /// choices on the same windows. BERT (MiniLM): cosine similarity of the sentence embeddings
    /// (mean pooling, normalised) of every window.
    Compare {
        /// Source model directory.
        source: PathBuf,
        /// Pack (or model directory) to compare; omit it with --kquant to evaluate a k-quant of the source.
        candidate: Option<PathBuf>,
        #[command(flatten)]
        args: EvalArgs,
    },
}

fn eval_setup(args: &EvalArgs) -> Result<(EvalOptions, Option<KQuant>), CompressError> {
    if let Some(t) = args.threads {
        set_threads(t)?;
    }
    let kquant = args
        .kquant
        .as_deref()
        .map(KQuant::parse)
        .transpose()
        .map_err(CompressError::Usage)?;
    if args.batch == 0 || args.max_tokens == 0 {
        return Err(CompressError::Usage(
            "--batch and --max-tokens must be at least 1".into(),
        ));
    }
    Ok((
        EvalOptions {
            text: args.text.clone(),
            ctx: args.ctx,
            max_tokens: args.max_tokens,
            batch: args.batch,
        },
        kquant,
    ))
}

fn set_threads(t: usize) -> Result<(), CompressError> {
    if t == 0 {
        return Err(CompressError::Usage("--threads must be at least 1".into()));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build_global()
        .map_err(|e| CompressError::Usage(format!("--threads: {e}")))
}

fn ppl_json(r: &PplReport) -> serde_json::Value {
    json!({"model": r.model.display().to_string(), "windows": r.windows, "tokens": r.tokens, "nll": r.nll,
        "ppl": r.ppl, "top1_accuracy": r.top1_accuracy, "text_sha256": r.text_sha256, "seconds": r.seconds})
}

/// The progress bar of the running command (indicatif, on stderr, terminals only).
static BAR: std::sync::Mutex<Option<(String, ProgressBar)>> = std::sync::Mutex::new(None);

/// Progress callback: one bar per phase (analyse, encode), a message for the final write.
fn progress_bar(phase: &str, done: usize, total: usize, name: &str) {
    let Ok(mut slot) = BAR.lock() else { return };
    if slot.as_ref().is_none_or(|(p, _)| p != phase) {
        if let Some((_, old)) = slot.take() {
            old.finish();
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase.to_string());
        *slot = Some((phase.to_string(), bar));
    }
    if let Some((_, bar)) = slot.as_ref() {
        if phase == "write" {
            bar.set_message("writing and verifying the pack");
        } else {
            bar.set_position(done as u64);
            bar.set_message(name.to_string());
        }
    }
}

fn finish_progress() {
    if let Ok(mut slot) = BAR.lock()
        && let Some((_, bar)) = slot.take()
    {
        bar.finish_and_clear();
    }
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

fn summary_json(s: &CompressSummary) -> serde_json::Value {
    json!({
        "output_dir": s.output_dir.display().to_string(),
        "tensors_quantized": s.tensors.iter().filter(|t| t.bits.is_some()).count(),
        "tensors_verbatim": s.tensors.iter().filter(|t| t.bits.is_none()).count(),
        "quantized_params": s.quantized_params,
        "total_params": s.total_params,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "ratio": s.bytes_in as f64 / s.bytes_out.max(1) as f64,
        "bpw": s.bpw,
        "bpw_records": s.bpw_records,
        "mean_rel_l2": s.mean_rel_l2,
        "worst_rel_l2": s.worst_rel_l2.as_ref().map(|(n, v)| json!({"tensor": n, "rel_l2": v})),
        "resumed_steps": s.resumed,
        "seconds": s.seconds,
        "peak_rss_bytes": s.peak_rss,
        "verification_checks_passed": s.checks_passed,
        "calibration": s.calibration.as_ref().map(|c| json!({
            "text_sha256": c.text_sha256, "tokens": c.tokens,
            "layers": c.layers.iter().map(|l| json!({"layer": l.layer, "objective": l.objective.name(), "loss_base": l.loss_base, "loss_svd": l.loss_svd,
                "loss_init": l.loss_init, "loss_final": l.loss_final, "distilled": l.distilled})).collect::<Vec<_>>(),
        })),
        "tensors": s.tensors.iter().map(|t| json!({
            "name": t.name, "shape": t.shape, "bits": t.bits, "rank": t.rank, "bytes": t.bytes, "rel_l2": t.rel_l2,
        })).collect::<Vec<_>>(),
    })
}

fn summary_text(s: &CompressSummary, out: &mut String) {
    let q = s.tensors.iter().filter(|t| t.bits.is_some()).count();
    outln!(out, "pack        {}", s.output_dir.display());
    outln!(out, "tensors     {} quantized, {} verbatim", q, s.tensors.len() - q);
    outln!(
        out,
        "parameters  {} quantized of {}",
        s.quantized_params,
        s.total_params
    );
    outln!(
        out,
        "bytes       {} in, {} out, ratio {:.2}x",
        human(s.bytes_in),
        human(s.bytes_out),
        s.bytes_in as f64 / s.bytes_out.max(1) as f64
    );
    outln!(
        out,
        "bpw         {:.4} (codes+scales+grid+overlay), {:.4} with record headers",
        s.bpw,
        s.bpw_records
    );
    match &s.worst_rel_l2 {
        Some((n, v)) => outln!(out, "rel_l2      mean {:.5}, worst {:.5} ({n})", s.mean_rel_l2, v),
        None => outln!(out, "rel_l2      -"),
    }
    outln!(
        out,
        "time        {:.1} s{}",
        s.seconds,
        if s.resumed > 0 {
            format!(" ({} steps resumed from the journal)", s.resumed)
        } else {
            String::new()
        }
    );
    if let Some(m) = s.peak_rss {
        outln!(out, "peak memory {}", human(m));
    }
    outln!(out, "verified    {} checks passed (uc-verify)", s.checks_passed);
    if let Some(c) = &s.calibration {
        outln!(out, "calibration {} tokens, text sha256 {}", c.tokens, c.text_sha256);
        outln!(
            out,
            "  layer loss vs the teacher:  {:>4} {:>5} {:>12} {:>12} {:>12} {:>12}",
            "loss",
            "layer",
            "no overlay",
            "plain SVD",
            "act.-aware",
            "written"
        );
        for l in &c.layers {
            outln!(
                out,
                "                              {:>4} {:>5} {:>12.4e} {:>12.4e} {:>12.4e} {:>12.4e}{}",
                l.objective.name(),
                l.layer,
                l.loss_base,
                l.loss_svd,
                l.loss_init,
                l.loss_final,
                if l.distilled {
                    ""
                } else {
                    " (distillation did not help: initial kept)"
                }
            );
        }
    }
    outln!(
        out,
        "\n{:<56} {:>14} {:>4} {:>4} {:>11} {:>9}",
        "tensor",
        "shape",
        "bits",
        "rank",
        "bytes",
        "rel_l2"
    );
    for t in &s.tensors {
        let shape = format!("{:?}", t.shape);
        let bits = t.bits.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
        let rel = t.rel_l2.map(|r| format!("{r:.5}")).unwrap_or_else(|| "verbatim".into());
        outln!(
            out,
            "{:<56} {:>14} {:>4} {:>4} {:>11} {:>9}",
            t.name,
            shape,
            bits,
            t.rank,
            t.bytes,
            rel
        );
    }
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

/// `uc compress --list-devices`: the CPU and what the CUDA driver reports.
fn print_devices(out: &mut String, json: bool) {
    use uc_encode::device::{CudaProbe, driver_version_string, probe_cuda};
    let threads = rayon::current_num_threads();
    let features = uc_pack::env::cpu_features();
    let probe = probe_cuda();
    if json {
        let cuda = match &probe {
            CudaProbe::NoDriver(why) => {
                json!({"driver": null, "error": format!("no CUDA driver found: {why}"), "devices": []})
            }
            CudaProbe::DriverError(why) => json!({"driver": null, "error": why, "devices": []}),
            CudaProbe::Found {
                driver_version,
                devices,
            } => json!({
                "driver": driver_version_string(*driver_version),
                "error": null,
                "devices": devices.iter().map(|d| json!({"device": format!("cuda:{}", d.ordinal), "name": d.name,
                    "total_mem_bytes": d.total_mem, "encoder": false})).collect::<Vec<_>>(),
            }),
        };
        outln!(
            out,
            "{}",
            json!({"cpu": {"device": "cpu", "arch": std::env::consts::ARCH, "threads": threads,
                "cpu_features": features, "encoder": true}, "cuda": cuda})
        );
        return;
    }
    outln!(
        out,
        "cpu       {}, {threads} threads, features: {}  (encoder: yes)",
        std::env::consts::ARCH,
        features.join(" ")
    );
    match probe {
        CudaProbe::NoDriver(why) => outln!(out, "cuda      no CUDA driver found ({why})"),
        CudaProbe::DriverError(why) => outln!(out, "cuda      the CUDA driver failed: {why}"),
        CudaProbe::Found {
            driver_version,
            devices,
        } => {
            outln!(
                out,
                "cuda      driver {}, {} device(s)",
                driver_version_string(driver_version),
                devices.len()
            );
            for d in devices {
                outln!(
                    out,
                    "cuda:{:<4} {}, {}  (encoder: not in this build)",
                    d.ordinal,
                    d.name,
                    human(d.total_mem)
                );
            }
        }
    }
}

fn run(cli: Cli, out: &mut String) -> Result<(), CompressError> {
    match cli.cmd {
        Cmd::Compress {
            source,
            list_devices,
            bpw,
            bits,
            rank,
            output_dir,
            device,
            threads,
            seed,
            method_version,
            license,
            skip,
            json,
            fresh,
            calibration,
            calib_tokens,
            calib_ctx,
            distill_steps,
            distill_lr,
        } => {
            if list_devices {
                print_devices(out, json);
                return Ok(());
            }
            let device = uc_encode::device::Device::parse(&device).map_err(CompressError::Usage)?;
            uc_encode::device::check_encoder_device(device).map_err(CompressError::Usage)?;
            let Some(source) = source else {
                return Err(CompressError::Usage("SOURCE_DIR is required".into()));
            };
            if let Some(t) = threads {
                set_threads(t)?;
            }
            let output_dir = output_dir.unwrap_or_else(|| {
                let name = source
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "model".into());
                PathBuf::from("models").join(format!("{name}-uc{bpw}"))
            });
            let opts = CompressOptions {
                source,
                output_dir,
                bpw,
                bits,
                rank,
                seed,
                method_version,
                license,
                skip,
                fresh,
                created_at: None,
                calibration: calibration.map(|text| CalibOptions {
                    text,
                    tokens: calib_tokens,
                    ctx: calib_ctx,
                    steps: distill_steps,
                    lr: distill_lr,
                }),
                progress: if std::io::stderr().is_terminal() {
                    Some(progress_bar)
                } else {
                    None
                },
            };
            let s = compress(&opts);
            finish_progress();
            let s = s?;
            if json {
                outln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&summary_json(&s)).unwrap_or_default()
                );
            } else {
                summary_text(&s, out);
            }
            Ok(())
        }
        Cmd::Unpack {
            pack,
            output_dir,
            dtype,
            merge_overlay,
            device,
            fresh,
            json,
        } => {
            let device = DecodeDevice::parse(&device).map_err(CompressError::Usage)?;
            let dtype = match dtype {
                DtypeArg::F32 => OutDtype::F32,
                DtypeArg::F16 => OutDtype::F16,
                DtypeArg::Bf16 => OutDtype::Bf16,
            };
            let s = unpack(&UnpackOptions {
                pack,
                output_dir: output_dir.clone(),
                dtype,
                merge_overlay,
                overwrite: fresh,
                device,
            })?;
            if json {
                let v = json!({"output_dir": output_dir.display().to_string(), "decoded": s.decoded, "copied": s.copied,
                    "digests_checked": s.digests_checked, "bytes_out": s.bytes_out});
                outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                outln!(
                    out,
                    "unpacked {} records ({} recon_sha256 checked) and copied {} tensors into {} ({})",
                    s.decoded,
                    s.digests_checked,
                    s.copied,
                    output_dir.display(),
                    human(s.bytes_out)
                );
            }
            Ok(())
        }
        Cmd::Eval {
            cmd: EvalCmd::Ppl { model, args },
        } => {
            let (opts, kquant) = eval_setup(&args)?;
            let r = perplexity(&model, kquant, &opts)?;
            if args.json {
                let mut v = ppl_json(&r);
                v["kquant"] = json!(kquant.map(|k| k.name()));
                v["ctx"] = json!(opts.ctx);
                outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let k = kquant
                    .map(|k| format!(" under {} ({:.4} bpw)", k.name(), k.bpw()))
                    .unwrap_or_default();
                outln!(out, "model       {}{k}", r.model.display());
                outln!(out, "text        {} (sha256 {})", opts.text.display(), r.text_sha256);
                outln!(
                    out,
                    "windows     {} of {} tokens, {} tokens scored",
                    r.windows,
                    opts.ctx,
                    r.tokens
                );
                outln!(out, "perplexity  {:.4} (nll {:.5} nats/token)", r.ppl, r.nll);
                outln!(out, "top-1       {:.4}", r.top1_accuracy);
                outln!(out, "time        {:.1} s", r.seconds);
            }
            Ok(())
        }
        Cmd::Eval {
            cmd:
                EvalCmd::Compare {
                    source,
                    candidate,
                    args,
                },
        } => {
            let (opts, kquant) = eval_setup(&args)?;
            if candidate.is_none() && kquant.is_none() {
                return Err(CompressError::Usage(
                    "give a pack to compare with the source, or --kquant to evaluate a k-quant of the source".into(),
                ));
            }
            let c = compare(&source, candidate.as_deref(), kquant, &opts)?;
            let cand_name = candidate
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| source.display().to_string());
            let k = kquant
                .map(|k| format!(" under {} ({:.4} bpw)", k.name(), k.bpw()))
                .unwrap_or_default();
            match c {
                Comparison::Ppl(p) => {
                    if args.json {
                        let v = json!({"metric": "perplexity", "source": ppl_json(&p.source), "candidate": ppl_json(&p.candidate),
                            "kquant": kquant.map(|k| k.name()), "kquant_bpw": kquant.map(|k| k.bpw()), "ctx": opts.ctx,
                            "ppl_ratio": p.ppl_ratio, "top1_agreement": p.top1_agreement});
                        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        outln!(out, "source      {}  PPL {:.4}", source.display(), p.source.ppl);
                        outln!(out, "candidate   {cand_name}{k}  PPL {:.4}", p.candidate.ppl);
                        outln!(
                            out,
                            "text        {} (sha256 {})",
                            opts.text.display(),
                            p.source.text_sha256
                        );
                        outln!(
                            out,
                            "tokens      {} scored in {} windows of {}",
                            p.source.tokens,
                            p.source.windows,
                            opts.ctx
                        );
                        outln!(out, "PPL_r       {:.5}", p.ppl_ratio);
                        outln!(out, "top-1 agree {:.4}", p.top1_agreement);
                        outln!(
                            out,
                            "time        {:.1} s + {:.1} s",
                            p.source.seconds,
                            p.candidate.seconds
                        );
                    }
                }
                Comparison::Embed(e) => {
                    if args.json {
                        let v = json!({"metric": "embedding_cosine", "source": source.display().to_string(), "candidate": cand_name,
                            "kquant": kquant.map(|k| k.name()), "kquant_bpw": kquant.map(|k| k.bpw()), "ctx": opts.ctx,
                            "windows": e.windows, "mean_cosine": e.mean_cosine, "min_cosine": e.min_cosine,
                            "text_sha256": e.text_sha256, "seconds": e.seconds});
                        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        outln!(out, "source      {}", source.display());
                        outln!(out, "candidate   {cand_name}{k}");
                        outln!(out, "text        {} (sha256 {})", opts.text.display(), e.text_sha256);
                        outln!(out, "windows     {} of {} tokens", e.windows, opts.ctx);
                        outln!(out, "cosine      mean {:.6}, min {:.6}", e.mean_cosine, e.min_cosine);
                        outln!(out, "time        {:.1} s", e.seconds);
                    }
                }
            }
            Ok(())
        }
        Cmd::ImportGguf {
            file,
            output_dir,
            fresh,
            json,
        } => {
            let s = import_gguf(&ImportOptions {
                source: file,
                output_dir,
                fresh,
                progress: if std::io::stderr().is_terminal() {
                    Some(progress_bar)
                } else {
                    None
                },
            });
            finish_progress();
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
        Cmd::Inspect { pack, json } => {
            let (rows, man) = inspect(&pack)?;
            if json {
                let v = json!({
                    "tensors": rows.iter().map(|r| json!({"name": r.name, "file": r.file, "dtype": r.dtype, "shape": r.shape,
                        "bits": r.bits, "rank": r.rank, "bytes": r.bytes, "rel_l2": r.rel_l2})).collect::<Vec<_>>(),
                    "manifest": man,
                });
                outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            if let Some(m) = &man {
                for k in [
                    "model_id",
                    "base_model",
                    "method",
                    "method_version",
                    "format_version",
                    "bpw",
                    "size_bytes",
                    "license",
                    "created_at",
                    "tooling_version",
                ] {
                    if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                        outln!(
                            out,
                            "{k:<16} {}",
                            v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
                        );
                    }
                }
                outln!(out, "");
            } else {
                outln!(out, "(no ultracompress.json manifest)\n");
            }
            outln!(
                out,
                "{:<56} {:>6} {:>14} {:>4} {:>4} {:>11} {:>9}",
                "tensor",
                "dtype",
                "shape",
                "bits",
                "rank",
                "bytes",
                "rel_l2"
            );
            for r in &rows {
                outln!(
                    out,
                    "{:<56} {:>6} {:>14} {:>4} {:>4} {:>11} {:>9}",
                    r.name,
                    r.dtype,
                    format!("{:?}", r.shape),
                    r.bits.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
                    r.rank,
                    r.bytes,
                    r.rel_l2.map(|v| format!("{v:.5}")).unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
    }
}

/// Writes the command's output to stdout in one piece. A reader that closed its end early (`uc
/// inspect pack | head`) is not an error: the output is simply not wanted any more.
fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    let result = run(cli, &mut out).and_then(|()| {
        write_stdout(&out).map_err(|e| CompressError::Io {
            path: PathBuf::from("<stdout>"),
            source: e,
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uc: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
