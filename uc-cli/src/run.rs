//! `uc run`: generate text with a Llama-family model straight from its pack.

use crate::outln;
use crate::unpack::DeviceArg;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use uc_encode::error::{CompressError, bad};
use uc_models::run::{Files, Generation, Llama, Sampling, TextStream};

#[derive(clap::Args)]
pub struct Opts {
    /// The pack (or a Hugging Face model directory: the same code runs the unpacked model).
    pub model: PathBuf,
    /// The prompt (with --chat: the user's message).
    #[arg(long)]
    pub prompt: String,
    /// Render the prompt as a user's chat message through the model's chat template
    /// (`chat_template` of tokenizer_config.json, Jinja), the assistant's answer to follow.
    #[arg(long)]
    pub chat: bool,
    /// With --chat: a system message before the user's.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Tokens to generate at most (generation also stops at the model's end-of-sequence token).
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 picks the most likely token (greedy, the default).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the K most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sample within the smallest set of most likely tokens whose probability reaches P.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler (ChaCha8): the same pack, prompt, options and seed give the same tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads [default: all cores]; the tokens do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the linear layers' products run: cpu, or wgpu (a GPU through Vulkan; needs a build
    /// with `--features wgpu`). The GPU's kernel sums in its own order, so its tokens can differ
    /// from the CPU's.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Print one JSON object (text, token ids, timings, the pack's fingerprint) instead of
    /// streaming the text.
    #[arg(long)]
    pub json: bool,
}

/// The GPU of `--device wgpu` (never exists in a build without the `wgpu` feature).
#[cfg(feature = "wgpu")]
pub type Gpu = uc_models::run::Gpu;
/// The GPU of `--device wgpu` (never exists in a build without the `wgpu` feature).
#[cfg(not(feature = "wgpu"))]
pub type Gpu = std::convert::Infallible;

/// Opens `--device`: `None` for the CPU, the default GPU adapter for wgpu; a build without the
/// `wgpu` feature says so (exit 2) instead of running on the CPU.
pub fn open_device(d: DeviceArg) -> Result<Option<Gpu>, CompressError> {
    match d {
        DeviceArg::Cpu => Ok(None),
        #[cfg(feature = "wgpu")]
        DeviceArg::Wgpu => uc_models::run::open_gpu().map(Some),
        #[cfg(not(feature = "wgpu"))]
        DeviceArg::Wgpu => Err(uc_encode::error::opt(
            "device",
            "wgpu: this build has no GPU path; rebuild with `cargo build --release -p uc-cli --features wgpu`",
        )),
    }
}

/// The device, for logs and `--json`: `cpu`, or `wgpu: <adapter>`.
pub fn device_name(gpu: &Option<Gpu>) -> String {
    match gpu {
        None => "cpu".into(),
        #[cfg(feature = "wgpu")]
        Some(g) => format!("wgpu: {}", uc_models::run::gpu_name(g)),
        #[cfg(not(feature = "wgpu"))]
        Some(never) => match *never {},
    }
}

/// Moves a Llama model's records to the GPU of `--device wgpu` (nothing for the CPU).
pub fn place_llama(model: &mut Llama<'_>, gpu: &Option<Gpu>) -> Result<(), CompressError> {
    match gpu {
        None => Ok(()),
        #[cfg(feature = "wgpu")]
        Some(g) => model.to_gpu(g).map(drop),
        #[cfg(not(feature = "wgpu"))]
        Some(never) => {
            let _ = model;
            match *never {}
        }
    }
}

/// Moves a BERT model's records to the GPU of `--device wgpu` (nothing for the CPU).
pub fn place_bert(model: &mut uc_models::embed::Bert<'_>, gpu: &Option<Gpu>) -> Result<(), CompressError> {
    match gpu {
        None => Ok(()),
        #[cfg(feature = "wgpu")]
        Some(g) => model.to_gpu(g).map(drop),
        #[cfg(not(feature = "wgpu"))]
        Some(never) => {
            let _ = model;
            match *never {}
        }
    }
}

/// The end-of-sequence token ids of `config.json` (`eos_token_id`: a number or a list).
pub fn eos_ids(dir: &Path) -> Vec<u32> {
    let v: serde_json::Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    match &v["eos_token_id"] {
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect(),
        x => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
    }
}

/// Peak resident memory of this process (`VmHWM`), in bytes, where Linux reports it.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Text for a terminal: control characters other than newline and tab become U+FFFD, so that
/// a model's output cannot drive the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

pub fn run(o: Opts, out: &mut String) -> Result<(), CompressError> {
    if let Some(t) = o.threads {
        crate::output::set_threads(t)?;
    }
    if !(o.temperature >= 0.0 && o.temperature.is_finite()) {
        return Err(CompressError::Usage(
            "--temperature must be a finite number >= 0".into(),
        ));
    }
    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
        return Err(CompressError::Usage("--top-p must be in (0, 1]".into()));
    }
    let t_load = Instant::now();
    let gpu = open_device(o.device)?;
    let files = Files::open(&o.model)?;
    let mut model = Llama::load(&o.model, &files)?;
    place_llama(&mut model, &gpu)?;
    let tok = uc_models::text::load_tokenizer(&o.model)?;
    let load_s = t_load.elapsed().as_secs_f64();
    // With --chat the template writes the special tokens (BOS among them) itself.
    let text = if o.chat {
        let cfg = o.model.join("tokenizer_config.json");
        let t = crate::chat::ChatTemplate::load(&o.model)?
            .ok_or_else(|| bad(&cfg, "--chat: the model has no chat_template in tokenizer_config.json"))?;
        let mut m = Vec::new();
        if let Some(s) = &o.system {
            m.push(crate::chat::Message {
                role: "system".into(),
                content: s.clone(),
            });
        }
        m.push(crate::chat::Message {
            role: "user".into(),
            content: o.prompt.clone(),
        });
        t.render(&m)
            .map_err(|e| bad(&cfg, format!("the chat template failed: {e}")))?
    } else {
        o.prompt.clone()
    };
    let prompt: Vec<u32> = tok
        .encode(text.as_str(), !o.chat)
        .map_err(|e| {
            bad(
                &o.model.join("tokenizer.json"),
                format!("cannot tokenize the prompt: {e}"),
            )
        })?
        .get_ids()
        .to_vec();
    if prompt.is_empty() {
        return Err(CompressError::Usage("the prompt has no tokens".into()));
    }
    if prompt.len() + o.max_tokens > model.max_positions {
        return Err(CompressError::Usage(format!(
            "{} prompt tokens + --max-tokens {} exceed the model's {} positions",
            prompt.len(),
            o.max_tokens,
            model.max_positions
        )));
    }
    let eos = eos_ids(&o.model);
    let fail = |e: String| CompressError::Internal { msg: e };
    let t_prompt = Instant::now();
    let sampling = Sampling {
        temperature: o.temperature,
        top_k: o.top_k,
        top_p: o.top_p,
        seed: o.seed,
    };
    let mut g = Generation::start(&model, &prompt, sampling, &eos, o.max_tokens).map_err(fail)?;
    let prompt_s = t_prompt.elapsed().as_secs_f64();
    let mut stream = TextStream::default();
    let mut stdout = std::io::stdout().lock();
    let t_gen = Instant::now();
    while g.next_token().map_err(fail)?.is_some() {
        if !o.json
            && let Some(new) = stream.update(&tok, &g.tokens)
        {
            let _ = stdout.write_all(printable(&new).as_bytes());
            let _ = stdout.flush();
        }
    }
    let gen_s = t_gen.elapsed().as_secs_f64();
    let stop = if g.at_eos { "eos" } else { "max_tokens" };
    let generated = &g.tokens;
    let (text, rest) = stream.finish(&tok, generated);
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let threads = rayon::current_num_threads();
    if o.json {
        let v = json!({
            "model": o.model.display().to_string(),
            "model_id": files.model_id,
            "fingerprint": files.fingerprint,
            "verified": files.fingerprint.is_some(),
            "prompt_tokens": prompt.len(),
            "generated_tokens": generated.len(),
            "tokens": generated,
            "text": text,
            "stop": stop,
            "sampling": {"temperature": o.temperature, "top_k": o.top_k, "top_p": o.top_p, "seed": o.seed},
            "load_seconds": load_s,
            "prompt_tokens_per_second": rate(prompt.len(), prompt_s),
            "generation_tokens_per_second": rate(generated.len(), gen_s),
            "threads": threads,
            "device": device_name(&gpu),
            "peak_rss_bytes": peak_rss(),
        });
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let _ = stdout.write_all(format!("{}\n", printable(&rest)).as_bytes());
        eprintln!(
            "uc run: {} ({}), prompt {} tokens at {:.1} tokens/s, generated {} at {:.1} tokens/s ({stop}), {threads} threads, {}, load {:.1} s{}",
            uc_pack::text::esc_path(&o.model),
            files
                .fingerprint
                .as_deref()
                .map(|f| format!("verified, fingerprint {f}"))
                .unwrap_or_else(|| "not a pack: not verified".into()),
            prompt.len(),
            rate(prompt.len(), prompt_s),
            generated.len(),
            rate(generated.len(), gen_s),
            device_name(&gpu),
            load_s,
            peak_rss()
                .map(|b| format!(", peak RSS {}", crate::output::human(b)))
                .unwrap_or_default()
        );
    }
    Ok(())
}
