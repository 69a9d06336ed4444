//! `uc bench`: speed of a pack (prompt and generation tokens/s on one thread and on all, resident
//! memory) through `uc run`'s engine, and a short quality check (perplexity on a text; with the
//! source model, `uc eval compare`'s PPL ratio, KL and top-1 agreement). A BERT pack is measured
//! in embedded tokens/s through `uc serve`'s embedding engine, its quality as the embedding cosine
//! against the source.

use crate::outln;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use uc_encode::error::CompressError;
use uc_models::embed::Bert;
use uc_models::eval::{Comparison, EvalOptions};
use uc_models::run::{Files, Generation, Llama, Sampling};

#[derive(clap::Args)]
pub struct Opts {
    /// The pack (or a Hugging Face model directory, for the same figures of the unpacked model).
    pub model: PathBuf,
    /// Prompt tokens processed per run, all at once (taken from --text, or from a built-in English
    /// paragraph).
    #[arg(long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// Tokens generated per run (greedy).
    #[arg(long, default_value_t = 32)]
    pub gen_tokens: usize,
    /// Text for the prompt and for the perplexity check (e.g. the slice written by
    /// scripts/fetch-text.sh); without it, no perplexity is measured.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Tokens of --text scored for the perplexity (windows of --ctx).
    #[arg(long, default_value_t = 1024)]
    pub eval_tokens: usize,
    /// Window length of the perplexity, in tokens (of the embedding comparison: at most the
    /// model's positions).
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,
    /// The model the pack was made from: adds `uc eval compare`'s figures on --text (PPL ratio,
    /// mean KL and top-1 agreement; for BERT, the embedding cosine). Needs --text.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Where the linear layers' products run: cpu, or wgpu (a GPU through Vulkan; needs a build
    /// with `--features wgpu`). The perplexity and --source figures are computed on the CPU.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::unpack::DeviceArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

const PARAGRAPH: &str = "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins \
with a single step. All that glitters is not gold, and not all those who wander are lost. The early bird \
catches the worm, but the second mouse gets the cheese. Knowledge speaks, but wisdom listens. ";

pub fn run(o: Opts, out: &mut String) -> Result<(), CompressError> {
    if o.prompt_tokens == 0 || o.gen_tokens == 0 {
        return Err(CompressError::Usage(
            "--prompt-tokens and --gen-tokens must be at least 1".into(),
        ));
    }
    if o.source.is_some() && o.text.is_none() {
        return Err(CompressError::Usage("--source needs --text".into()));
    }
    let t_load = Instant::now();
    let gpu = crate::run::open_device(o.device)?;
    let files = Files::open(&o.model)?;
    if uc_models::Arch::load(&o.model).is_ok_and(|a| matches!(a, uc_models::Arch::Bert(_))) {
        return bench_bert(&o, &files, &gpu, t_load, out);
    }
    let mut model = Llama::load(&o.model, &files)?;
    crate::run::place_llama(&mut model, &gpu)?;
    let tok = uc_models::text::load_tokenizer(&o.model)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let source = match &o.text {
        Some(t) => uc_models::text::read_text(t)?.text,
        None => PARAGRAPH.repeat(1 + o.prompt_tokens / 40),
    };
    let ids = tok
        .encode(source.as_str(), false)
        .map_err(|e| CompressError::Usage(format!("cannot tokenize the prompt text: {e}")))?
        .get_ids()
        .to_vec();
    if ids.len() < o.prompt_tokens {
        return Err(CompressError::Usage(format!(
            "the text has {} tokens, fewer than --prompt-tokens {}",
            ids.len(),
            o.prompt_tokens
        )));
    }
    if o.prompt_tokens + o.gen_tokens > model.max_positions {
        return Err(CompressError::Usage(format!(
            "--prompt-tokens + --gen-tokens exceed the model's {} positions",
            model.max_positions
        )));
    }
    let prompt = &ids[..o.prompt_tokens];
    let fail = |e: String| CompressError::Internal { msg: e };
    let all = crate::output::cpu_threads();
    let mut runs = Vec::new();
    let mut threads = vec![1];
    if all > 1 {
        threads.push(all);
    }
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| CompressError::Internal {
                msg: format!("thread pool: {e}"),
            })?;
        let (p_s, g_s, tokens) = pool.install(|| -> Result<(f64, f64, Vec<u32>), CompressError> {
            // Greedy, no end-of-sequence token: every run steps the model on --gen-tokens
            // tokens (a generation of N tokens steps on N - 1 of them, hence the one more).
            let t0 = Instant::now();
            let mut g = Generation::start(&model, prompt, Sampling::default(), &[], o.gen_tokens + 1).map_err(fail)?;
            let p_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            while g.next_token().map_err(fail)?.is_some() {}
            Ok((p_s, t1.elapsed().as_secs_f64(), g.tokens))
        })?;
        runs.push((t, o.prompt_tokens as f64 / p_s, o.gen_tokens as f64 / g_s, tokens));
    }
    // Greedy tokens do not depend on the thread count (the row sums have one order).
    let same = runs.windows(2).all(|w| w[0].3 == w[1].3);
    let rss = crate::run::peak_rss();
    let size = dir_size(&o.model);
    let ppl = match &o.text {
        Some(text) => {
            let opts = EvalOptions {
                text: text.clone(),
                ctx: o.ctx,
                max_tokens: o.eval_tokens,
                batch: 4,
            };
            Some(uc_models::eval::perplexity(&o.model, None, &opts)?)
        }
        None => None,
    };
    let cmp = compare(&o, o.ctx)?;
    if o.json {
        let v = json!({
            "model": o.model.display().to_string(),
            "fingerprint": files.fingerprint,
            "verified": files.fingerprint.is_some(),
            "device": crate::run::device_name(&gpu),
            "model_bytes": size,
            "load_seconds": load_s,
            "prompt_tokens": o.prompt_tokens,
            "gen_tokens": o.gen_tokens,
            "runs": runs.iter().map(|(t, p, g, _)| json!({"threads": t, "prompt_tokens_per_second": p,
                "generation_tokens_per_second": g})).collect::<Vec<_>>(),
            "same_tokens_on_every_thread_count": same,
            "peak_rss_bytes": rss,
            "perplexity": ppl.as_ref().map(|r| json!({"ppl": r.ppl, "tokens": r.tokens, "ctx": o.ctx,
                "text_sha256": r.text_sha256})),
            "comparison": cmp.as_ref().map(comparison_json),
        });
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        outln!(
            out,
            "model       {} ({}, {})",
            uc_pack::text::esc_path(&o.model),
            crate::output::human(size),
            files
                .fingerprint
                .as_deref()
                .map(|f| format!("verified, fingerprint {f}"))
                .unwrap_or_else(|| "not a pack: not verified".into())
        );
        outln!(out, "load        {load_s:.2} s (verification included)");
        outln!(out, "device      {}", crate::run::device_name(&gpu));
        for (t, p, g, _) in &runs {
            outln!(
                out,
                "threads {t:<3} prompt {p:8.2} tokens/s ({} tokens at once)   generation {g:8.2} tokens/s ({} tokens)",
                o.prompt_tokens,
                o.gen_tokens
            );
        }
        outln!(
            out,
            "tokens      {} on every thread count",
            if same { "the same" } else { "DIFFERENT" }
        );
        if let Some(r) = rss {
            outln!(
                out,
                "peak RSS    {} (before the perplexity check)",
                crate::output::human(r)
            );
        }
        if let Some(r) = &ppl {
            outln!(
                out,
                "perplexity  {:.4} on {} tokens (windows of {}; weights decoded to f32 for this check)",
                r.ppl,
                r.tokens,
                o.ctx
            );
        }
        if let Some(c) = &cmp {
            print_comparison(out, c, &o);
        }
    }
    if !same {
        return Err(CompressError::Internal {
            msg: "the greedy tokens differ between thread counts".into(),
        });
    }
    Ok(())
}

/// Bytes of the regular files in `dir` (the pack's size on disk).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `uc eval compare` of the model against `--source` on `--text`, when both are given.
fn compare(o: &Opts, ctx: usize) -> Result<Option<Comparison>, CompressError> {
    let (Some(src), Some(text)) = (&o.source, &o.text) else {
        return Ok(None);
    };
    let opts = EvalOptions {
        text: text.clone(),
        ctx,
        max_tokens: o.eval_tokens,
        batch: 4,
    };
    uc_models::eval::compare(src, Some(&o.model), None, &opts).map(Some)
}

fn comparison_json(c: &Comparison) -> serde_json::Value {
    match c {
        Comparison::Ppl(p) => json!({"ppl_ratio": p.ppl_ratio, "mean_kl": p.mean_kl,
            "top1_agreement": p.top1_agreement, "source_ppl": p.source.ppl, "ppl": p.candidate.ppl,
            "tokens": p.source.tokens, "text_sha256": p.source.text_sha256}),
        Comparison::Embed(e) => json!({"mean_cosine": e.mean_cosine, "min_cosine": e.min_cosine,
            "windows": e.windows, "text_sha256": e.text_sha256}),
    }
}

fn print_comparison(out: &mut String, c: &Comparison, o: &Opts) {
    let src = o.source.as_deref().map(uc_pack::text::esc_path).unwrap_or_default();
    match c {
        Comparison::Ppl(p) => outln!(
            out,
            "vs source   PPL ratio {:.4}, mean KL {:.4} nats, top-1 agreement {:.4} on {} tokens ({src})",
            p.ppl_ratio,
            p.mean_kl,
            p.top1_agreement,
            p.source.tokens
        ),
        Comparison::Embed(e) => outln!(
            out,
            "vs source   embedding cosine mean {:.5}, min {:.5} over {} windows ({src})",
            e.mean_cosine,
            e.min_cosine,
            e.windows
        ),
    }
}

/// Passes over the sequence per thread count, for a BERT model.
const EMBED_PASSES: usize = 4;

/// `uc bench` of a BERT model: `--prompt-tokens` tokens of text (at most the model's positions)
/// embedded [`EMBED_PASSES`] times on one thread and on all, the embedding's bits compared across
/// thread counts, resident memory, and with --source the embedding cosine against it.
fn bench_bert(
    o: &Opts,
    files: &Files,
    gpu: &Option<crate::run::Gpu>,
    t_load: Instant,
    out: &mut String,
) -> Result<(), CompressError> {
    let mut model = Bert::load(&o.model, files)?;
    crate::run::place_bert(&mut model, gpu)?;
    let tok = uc_models::text::load_tokenizer(&o.model)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let n = o.prompt_tokens.min(model.max_tokens);
    let source = match &o.text {
        Some(t) => uc_models::text::read_text(t)?.text,
        None => PARAGRAPH.repeat(1 + n / 40),
    };
    let ids = tok
        .encode(source.as_str(), false)
        .map_err(|e| CompressError::Usage(format!("cannot tokenize the text: {e}")))?
        .get_ids()
        .to_vec();
    if ids.len() < n {
        return Err(CompressError::Usage(format!(
            "the text has {} tokens, fewer than the {n} to embed",
            ids.len()
        )));
    }
    let seq = &ids[..n];
    let all = crate::output::cpu_threads();
    let mut runs = Vec::new();
    for t in if all > 1 { vec![1, all] } else { vec![1] } {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| CompressError::Internal {
                msg: format!("thread pool: {e}"),
            })?;
        let (secs, e) = pool.install(|| -> Result<(f64, Vec<f32>), CompressError> {
            let t0 = Instant::now();
            let mut e = Vec::new();
            for _ in 0..EMBED_PASSES {
                e = model.embed(seq).map_err(|m| CompressError::Internal { msg: m })?;
            }
            Ok((t0.elapsed().as_secs_f64(), e))
        })?;
        let bits: Vec<u32> = e.iter().map(|x| x.to_bits()).collect();
        runs.push((t, (EMBED_PASSES * n) as f64 / secs, bits));
    }
    let same = runs.windows(2).all(|w| w[0].2 == w[1].2);
    let rss = crate::run::peak_rss();
    let size = dir_size(&o.model);
    let cmp = compare(o, o.ctx.min(model.cfg.max_positions))?;
    if o.json {
        let v = json!({
            "model": o.model.display().to_string(),
            "kind": "embeddings",
            "fingerprint": files.fingerprint,
            "verified": files.fingerprint.is_some(),
            "device": crate::run::device_name(gpu),
            "model_bytes": size,
            "load_seconds": load_s,
            "tokens": n,
            "runs": runs.iter().map(|(t, r, _)| json!({"threads": t, "tokens_per_second": r,
                "sequences_per_second": r / n as f64})).collect::<Vec<_>>(),
            "same_embedding_on_every_thread_count": same,
            "peak_rss_bytes": rss,
            "comparison": cmp.as_ref().map(comparison_json),
        });
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        outln!(
            out,
            "model       {} ({}, {}, embeddings)",
            uc_pack::text::esc_path(&o.model),
            crate::output::human(size),
            files
                .fingerprint
                .as_deref()
                .map(|f| format!("verified, fingerprint {f}"))
                .unwrap_or_else(|| "not a pack: not verified".into())
        );
        outln!(out, "load        {load_s:.2} s (verification included)");
        outln!(out, "device      {}", crate::run::device_name(gpu));
        for (t, r, _) in &runs {
            outln!(
                out,
                "threads {t:<3} {r:8.2} tokens/s embedded ({n} tokens a sequence, {:.2} sequences/s)",
                r / n as f64
            );
        }
        outln!(
            out,
            "embedding   {} on every thread count",
            if same { "the same bits" } else { "DIFFERENT" }
        );
        if let Some(r) = rss {
            outln!(out, "peak RSS    {}", crate::output::human(r));
        }
        if let Some(c) = &cmp {
            print_comparison(out, c, o);
        }
    }
    if !same {
        return Err(CompressError::Internal {
            msg: "the embedding differs between thread counts".into(),
        });
    }
    Ok(())
}
