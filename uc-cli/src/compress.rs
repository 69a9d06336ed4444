//! `uc compress`: a local Hugging Face model directory into a uc pack; `--list-devices`.

use crate::outln;
use crate::output::human;
use serde_json::json;
use std::path::PathBuf;
use uc_encode::calibrate::CalibOptions;
use uc_encode::compress::{CompressOptions, CompressSummary, compress};
use uc_encode::error::CompressError;

/// Options of `uc compress`.
#[derive(clap::Args)]
pub struct Opts {
    /// Source model directory (config.json + model.safetensors or sharded safetensors).
    #[arg(required_unless_present = "list_devices")]
    pub source: Option<PathBuf>,
    /// List the compute devices this build can see (CPU, CUDA devices through the driver) and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Bits-per-weight budget over all quantized weights (everything stored counts).
    #[arg(long, default_value_t = uc_encode::policy::DEFAULT_BPW)]
    pub bpw: f64,
    /// Use this code width (1..=8) for every tensor instead of letting the budget choose.
    #[arg(long)]
    pub bits: Option<u8>,
    /// Use this overlay rank for every tensor (0 = no overlay) instead of letting the budget choose.
    #[arg(long)]
    pub rank: Option<u32>,
    /// Scales: 16 or 32 writes v0.4 records with two-level scales (a binary16 scale per 256
    /// weights times a --sub-bits integer per 16 or 32 weights, spec section 13), which v0.3
    /// decoders refuse; 0 writes v0.3 records (one binary16 scale per 64 weights).
    #[arg(long, default_value_t = 16, value_parser = parse_sub_block)]
    pub sub_block: u32,
    /// Code width of the embeddings and the output head (1..=8), quantized outside the --bpw
    /// budget as llama.cpp's _M mixes keep them at Q6_K; 0 keeps them verbatim. A tied embedding
    /// is one record, used both ways.
    #[arg(long, default_value_t = uc_encode::policy::DEFAULT_OUTER_BITS, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub embed_bits: u8,
    /// Width of a two-level sub-scale in bits (1..=8; with --sub-block 16, 6 bits cost 0.4375
    /// bits per weight of scales in all).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub sub_bits: u8,
    /// Output directory [default: ./models/<source-name>-uc<bpw>].
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Compute device: cpu, or cuda:N (GSQ's kernels on that GPU, compiled by NVRTC at start;
    /// the pack is the same bytes as on the CPU). A device that cannot be used is an error
    /// (exit 2) that says what is missing, never a silent fallback.
    #[arg(long, default_value = "cpu", value_parser = crate::device::Device::parse)]
    pub device: crate::device::Device,
    /// Worker threads [default: all cores]. Output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// How the budget's allocator estimates each (bits, rank) choice's error before choosing:
    /// sampled (the whole tensor at the width nearest --bpw, GSQ of a seeded sample of about one
    /// row in 8 at every other width; measured 1.1 to 1.3 times the time of a fixed --bits) or
    /// exact (every width on the whole tensor; measured 3.3 to 4 times a fixed --bits). Sizes are
    /// exact either way, so the budget holds either way. Not used with both --bits and --rank.
    #[arg(long, value_enum, default_value_t = AnalysisArg::Sampled)]
    pub analysis: AnalysisArg,
    /// Seed of the randomized parts (SVD sketches, the sampled analysis's rows).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Method version recorded in the manifest.
    #[arg(long, default_value = uc_encode::policy::DEFAULT_METHOD_VERSION)]
    pub method_version: String,
    /// License identifier recorded in the manifest (SPDX).
    #[arg(long)]
    pub license: Option<String>,
    /// Keep tensors whose names match this glob verbatim (repeatable; `*` and `?`).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// When the pack is written, run `uc bench` on it (prompt and generation tokens/s on one
    /// thread and on all, peak memory; embedded tokens/s for BERT): its report follows the
    /// summary (with --json, the summary's member "bench").
    #[arg(long)]
    pub bench_on_finish: bool,
    /// Text for --bench-on-finish's quality check: perplexity, and `uc eval compare`'s figures
    /// against the source (PPL ratio, mean KL, top-1 agreement; for BERT the embedding cosine).
    #[arg(long, requires = "bench_on_finish")]
    pub bench_text: Option<PathBuf>,
    /// Replace an existing output directory and discard an unfinished run's journal.
    #[arg(long)]
    pub fresh: bool,
    /// Sign the pack with this private key (PEM: PKCS#8 or SEC1; ECDSA P-256 or Ed25519): an
    /// OpenSSF Model Signing v1.0 bundle `model.sig` over every file, written before the pack is
    /// installed so that both appear together (`uc-verify PACK --public-key PUB.pem` checks it).
    #[arg(long, value_name = "KEY.pem")]
    pub sign_key: Option<PathBuf>,
    /// With --sign-key: the signing certificate (first) and its chain, PEM; the certificate method
    /// instead of the key method.
    #[arg(long, value_name = "CERT.pem", num_args = 1.., requires = "sign_key")]
    pub sign_certificate_chain: Vec<PathBuf>,
    /// Calibrate on this text (.txt, or .jsonl with a "text" member per line): overlays are
    /// initialised from an activation-aware SVD and distilled layer by layer against the source
    /// model (on each layer's output; a causal LM's last layer on the KL of its logits)
    /// (llama-family and BERT models; needs tokenizer.json). Its SHA-256 goes into the manifest.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Calibration tokens (whole windows of --calib-ctx).
    #[arg(long, default_value_t = CalibOptions::DEFAULT_TOKENS)]
    pub calib_tokens: usize,
    /// Calibration window length in tokens.
    #[arg(long, default_value_t = CalibOptions::DEFAULT_CTX)]
    pub calib_ctx: usize,
    /// Distillation steps per layer (0: activation-aware initialisation only).
    #[arg(long, default_value_t = CalibOptions::DEFAULT_STEPS)]
    pub distill_steps: usize,
    /// How calibration chooses the codes: nearest (the nearest grid value, as without
    /// calibration) or gptq (error feedback against each layer's input statistics, GPTQ; with
    /// the default 2048 calibration tokens or fewer it fits the calibration text and measured
    /// worse on held-out text, see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = Rounding::Nearest)]
    pub rounding: Rounding,
    /// How each weight's error is weighed when the grid is fitted and the scales searched:
    /// activations (by the mean square of its input feature on the calibration tokens, the
    /// diagonal of the layer's input statistics, as llama.cpp's importance matrix; needs
    /// --calibration), norms (data-free: by the square of that feature's weight in the RMSNorm
    /// that feeds the layer, for the Llama family's q/k/v/gate/up projections; measured worse at 3
    /// bits and neutral at 4 on SmolLM2, see BENCHMARKS.md), none (every weight alike), or auto
    /// (activations with --calibration, else none).
    #[arg(long, value_enum, default_value_t = ImportanceArg::Auto)]
    pub importance: ImportanceArg,
    /// Distillation step size (Adam), relative to each overlay factor's RMS.
    #[arg(long, default_value_t = CalibOptions::DEFAULT_LR)]
    pub distill_lr: f64,
}

/// `--importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportanceArg {
    /// Activations with --calibration, none without.
    Auto,
    /// Weighted by the input features' mean squares on the calibration tokens.
    Activations,
    /// Weighted by the squares of the input normalisation's weights (data-free).
    Norms,
    /// Unweighted.
    None,
}

impl ImportanceArg {
    fn name(self) -> &'static str {
        match self {
            ImportanceArg::Auto => "auto",
            ImportanceArg::Activations => "activations",
            ImportanceArg::Norms => "norms",
            ImportanceArg::None => "none",
        }
    }
}

/// `--analysis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnalysisArg {
    /// Every allowed width on the whole tensor.
    Exact,
    /// The width nearest the budget on the whole tensor, the others on a row sample.
    Sampled,
}

/// `--rounding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rounding {
    /// Error-feedback rounding (GPTQ).
    Gptq,
    /// The nearest grid value.
    Nearest,
}

/// `--sub-block`: 0, 16 or 32.
fn parse_sub_block(s: &str) -> Result<u32, String> {
    match s {
        "0" => Ok(0),
        "16" => Ok(16),
        "32" => Ok(32),
        _ => Err(format!("expected 0, 16 or 32, got {s:?}")),
    }
}

/// Runs `uc compress`.
pub fn run(opts: Opts, out: &mut String) -> Result<(), CompressError> {
    let Opts {
        source,
        list_devices,
        bpw,
        bits,
        rank,
        sub_block,
        sub_bits,
        embed_bits,
        output_dir,
        device,
        threads,
        analysis,
        seed,
        method_version,
        license,
        skip,
        json,
        bench_on_finish,
        bench_text,
        fresh,
        sign_key,
        sign_certificate_chain,
        calibration,
        calib_tokens,
        calib_ctx,
        distill_steps,
        distill_lr,
        rounding,
        importance,
    } = opts;
    if list_devices {
        print_devices(out, json);
        return Ok(());
    }
    let Some(source) = source else {
        return Err(CompressError::Usage("SOURCE_DIR is required".into()));
    };
    let engine = crate::device::open_encoder(device).map_err(CompressError::Usage)?;
    if let Some(t) = threads {
        crate::output::set_threads(t)?;
    }
    use uc_encode::policy::ImportanceError;
    let importance = uc_encode::policy::Importance::resolve(importance.name(), calibration.is_some()).map_err(|e| {
        CompressError::Usage(match e {
            ImportanceError::NeedsCalibration => {
                "--importance activations needs --calibration (the activations are measured on its text)".into()
            }
            ImportanceError::DataFreeOnly => {
                "--importance norms is for data-free runs: with --calibration use activations or none".into()
            }
            ImportanceError::Unknown(n) => format!("--importance: unknown mode {n:?}"),
        })
    })?;
    // The key is read first: a missing or unusable key fails before any work.
    let sign = match &sign_key {
        Some(k) => Some(uc_encode::sign::SignSpec::load(k, &sign_certificate_chain)?),
        None => None,
    };
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
        outer_bits: (embed_bits != 0).then_some(embed_bits),
        subscales: (sub_block != 0).then_some(uc_encode::SubScales {
            block: sub_block,
            bits: sub_bits,
        }),
        norm_importance: importance == uc_encode::policy::Importance::Norms,
        analysis: match analysis {
            AnalysisArg::Exact => uc_encode::compress::Analysis::Exact,
            AnalysisArg::Sampled => uc_encode::compress::Analysis::Sampled,
        },
        seed,
        method_version,
        license,
        skip,
        fresh,
        created_at: None,
        calibration: calibration.map(|text| {
            std::sync::Arc::new(uc_models::calib::CandleCalibrator::new(CalibOptions {
                text,
                tokens: calib_tokens,
                ctx: calib_ctx,
                steps: distill_steps,
                lr: distill_lr,
                gptq: rounding == Rounding::Gptq,
                importance: importance == uc_encode::policy::Importance::Activations,
            })) as std::sync::Arc<dyn uc_encode::calibrate::Calibrator>
        }),
        progress: crate::output::progress_if_terminal(),
        sign,
        engine,
    };
    let s = compress(&opts);
    crate::output::finish_progress();
    let s = s?;
    // The bench runs on the installed pack, after the summary's figures are final; its failure
    // is reported as this command's, after the summary (the pack stays: it is complete and
    // verified).
    let mut bench_err = None;
    let bench = if bench_on_finish {
        let mut b = String::new();
        let r = crate::bench::run(
            crate::bench::Opts {
                model: s.output_dir.clone(),
                prompt_tokens: 64,
                gen_tokens: 32,
                source: bench_text.is_some().then(|| opts.source.clone()),
                text: bench_text,
                eval_tokens: 1024,
                ctx: 256,
                device: crate::unpack::DeviceArg::Cpu,
                json,
            },
            &mut b,
        );
        match r {
            Ok(()) => Some(b),
            Err(e) => {
                bench_err = Some(e);
                None
            }
        }
    } else {
        None
    };
    if json {
        let mut v = serde_json::to_value(summary_json(&s)).unwrap_or_default();
        if let Some(b) = &bench {
            v["bench"] = serde_json::from_str(b).unwrap_or(serde_json::Value::Null);
        }
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        summary_text(&s, out);
        if let Some(b) = bench {
            outln!(out, "");
            outln!(out, "bench (uc bench {}):", uc_pack::text::esc_path(&s.output_dir));
            out.push_str(&b);
        }
    }
    match bench_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The `--json` summary (serde derive; members in key order).
#[derive(serde::Serialize)]
struct SummaryJson<'a> {
    bpw: f64,
    bpw_records: f64,
    bytes_in: u64,
    bytes_out: u64,
    calibration: Option<&'a uc_encode::calibrate::CalibReport>,
    device: &'a str,
    mean_rel_l2: f64,
    output_dir: String,
    peak_rss_bytes: Option<u64>,
    quantized_params: u64,
    ratio: f64,
    resumed_steps: usize,
    seconds: f64,
    signature: Option<&'a uc_encode::sign::SignSummary>,
    tensors: &'a [uc_encode::TensorSummary],
    tensors_quantized: usize,
    tensors_verbatim: usize,
    total_params: u64,
    verification_checks_passed: usize,
    worst_rel_l2: Option<Worst<'a>>,
}

#[derive(serde::Serialize)]
struct Worst<'a> {
    rel_l2: f64,
    tensor: &'a str,
}

fn summary_json(s: &CompressSummary) -> SummaryJson<'_> {
    let quantized = s.tensors.iter().filter(|t| t.bits.is_some()).count();
    SummaryJson {
        bpw: s.bpw,
        bpw_records: s.bpw_records,
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        calibration: s.calibration.as_ref(),
        device: &s.device,
        mean_rel_l2: s.mean_rel_l2,
        output_dir: s.output_dir.display().to_string(),
        peak_rss_bytes: s.peak_rss,
        quantized_params: s.quantized_params,
        ratio: s.bytes_in as f64 / s.bytes_out.max(1) as f64,
        resumed_steps: s.resumed,
        seconds: s.seconds,
        signature: s.signature.as_ref(),
        tensors: &s.tensors,
        tensors_quantized: quantized,
        tensors_verbatim: s.tensors.len() - quantized,
        total_params: s.total_params,
        verification_checks_passed: s.checks_passed,
        worst_rel_l2: s.worst_rel_l2.as_ref().map(|(n, v)| Worst { rel_l2: *v, tensor: n }),
    }
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
        "time        {:.1} s on {}{}",
        s.seconds,
        s.device,
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
    if let Some(g) = &s.signature {
        outln!(
            out,
            "signed      {} ({} method, {}, key id {}), {} files",
            g.signature.display(),
            g.method,
            g.algorithm,
            g.key_id,
            g.files
        );
    }
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

/// `uc compress --list-devices`: the CPU and what the CUDA driver reports.
fn print_devices(out: &mut String, json: bool) {
    use crate::device::{CudaProbe, driver_version_string, probe_cuda};
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
                    "total_mem_bytes": d.total_mem, "encoder": crate::device::CUDA_ENCODER})).collect::<Vec<_>>(),
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
                    "cuda:{:<4} {}, {}  (encoder: {})",
                    d.ordinal,
                    d.name,
                    human(d.total_mem),
                    if crate::device::CUDA_ENCODER {
                        "yes"
                    } else {
                        "not in this build"
                    }
                );
            }
        }
    }
}
