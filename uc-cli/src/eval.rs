//! `uc eval`: perplexity, and a pack (or a k-quant) against its source.

use crate::outln;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use uc_encode::error::CompressError;
use uc_models::eval::{Comparison, EvalOptions, KQuant, PplReport, compare, perplexity};

/// Options shared by the `uc eval` commands.
#[derive(clap::Args, Clone)]
pub struct EvalArgs {
    /// Text to evaluate on (.txt, or .jsonl with a "text" member per line), e.g. the held-out
    /// slice written by scripts/fetch-text.sh.
    #[arg(long)]
    pub text: PathBuf,
    /// Window length in tokens (non-overlapping windows; BERT windows include [CLS] and [SEP]).
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,
    /// Use at most this many tokens of the text (whole windows).
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Apply this ggml k-quant (q3k, q4k, q5k, q6k, q8_0; candle's port of ggml's reference
    /// quantizer) to the tensors `uc compress` would quantize, as a peer at known bpw.
    #[arg(long)]
    pub kquant: Option<String>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum EvalCmd {
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

/// Runs `uc eval`.
pub fn run(cmd: EvalCmd, out: &mut String) -> Result<(), CompressError> {
    match cmd {
        EvalCmd::Ppl { model, args } => {
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
        EvalCmd::Compare {
            source,
            candidate,
            args,
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
                        "ppl_ratio": p.ppl_ratio, "top1_agreement": p.top1_agreement, "mean_kl": p.mean_kl});
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
                        outln!(out, "mean KL     {:.6} nats/token (source || candidate)", p.mean_kl);
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
    }
}

fn eval_setup(args: &EvalArgs) -> Result<(EvalOptions, Option<KQuant>), CompressError> {
    if let Some(t) = args.threads {
        crate::output::set_threads(t)?;
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

fn ppl_json(r: &PplReport) -> serde_json::Value {
    json!({"model": r.model.display().to_string(), "windows": r.windows, "tokens": r.tokens, "nll": r.nll,
        "ppl": r.ppl, "top1_accuracy": r.top1_accuracy, "text_sha256": r.text_sha256, "seconds": r.seconds})
}
