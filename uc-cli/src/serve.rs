//! `uc serve`: an OpenAI-compatible HTTP API in front of a pack (axum on hyper and tokio).
//!
//! A Llama-family pack serves completions and chat; a BERT pack (MiniLM) serves `/v1/embeddings`.
//! Requests are served concurrently, generations (and embedding requests) one at a time in arrival
//! order (a FIFO queue of bounded length): the model's matrix-vector products already use every
//! core, so a second generation in parallel would only slow both. Each generation runs on a
//! blocking thread and streams its tokens back over a channel; a client that goes away (a dropped
//! stream) stops it.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenizers::Tokenizer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use uc_encode::error::CompressError;
use uc_models::embed::Bert;
use uc_models::run::{Files, Generation, Llama, Sampling, TextStream};

#[derive(clap::Args)]
pub struct Opts {
    /// The pack to serve (or a Hugging Face model directory: the same code runs it, unverified).
    pub model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Longest prompt, in tokens (the model's own limit applies as well).
    #[arg(long, default_value_t = 2048)]
    pub max_prompt_tokens: usize,
    /// Largest `max_tokens` a request may ask for; also the default when a request gives none
    /// (then at most what the model's positions leave after the prompt).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Requests that may wait for the model at once; more are answered 503.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Seconds a request may take, waiting included; then it is answered 504 (a stream ends).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Worker threads of the model [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the linear layers' products run: cpu, or wgpu (a GPU through Vulkan; needs a build
    /// with `--features wgpu`). The GPU's kernel sums in its own order: its tokens can differ
    /// from the CPU's.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::unpack::DeviceArg,
}

/// What the server runs.
enum Engine {
    /// Completions and chat.
    Generate(&'static Llama<'static>),
    /// Sentence embeddings.
    Embed(&'static Bert<'static>),
}

struct Served {
    engine: Engine,
    tok: Tokenizer,
    id: String,
    fingerprint: Option<String>,
    eos: Vec<u32>,
    chat: Option<crate::chat::ChatTemplate>,
    gate: Arc<Semaphore>,
    waiting: AtomicUsize,
    o: Opts,
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
}

impl ApiError {
    fn bad(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param,
        }
    }
    fn status(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
        }
    }
    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": null}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// What one request asks for, validated.
struct Job {
    model: &'static Llama<'static>,
    prompt: Vec<u32>,
    max_tokens: usize,
    sampling: Sampling,
    stream: bool,
    chat: bool,
}

pub fn run(o: Opts, out: &mut String) -> Result<(), CompressError> {
    if let Some(t) = o.threads {
        crate::output::set_threads(t)?;
    }
    // The model borrows the files' bytes and lives as long as the server process: leaking them
    // gives both the 'static lifetime the request handlers need.
    let gpu = crate::run::open_device(o.device)?;
    let files: &'static Files = Box::leak(Box::new(Files::open(&o.model)?));
    let engine = if model_type(&o.model).as_deref() == Some("bert") {
        let mut m = Bert::load(&o.model, files)?;
        crate::run::place_bert(&mut m, &gpu)?;
        Engine::Embed(Box::leak(Box::new(m)))
    } else {
        let mut m = Llama::load(&o.model, files)?;
        crate::run::place_llama(&mut m, &gpu)?;
        Engine::Generate(Box::leak(Box::new(m)))
    };
    let device = crate::run::device_name(&gpu);
    let tok = uc_models::text::load_tokenizer(&o.model)?;
    let id = files.model_id.clone().unwrap_or_else(|| {
        o.model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let served = Arc::new(Served {
        engine,
        tok,
        id,
        fingerprint: files.fingerprint.clone(),
        eos: crate::run::eos_ids(&o.model),
        // A template this server cannot parse leaves chat unavailable, not the server.
        chat: crate::chat::ChatTemplate::load(&o.model).unwrap_or_else(|e| {
            eprintln!("uc serve: warning: {e}; /v1/chat/completions is unavailable");
            None
        }),
        gate: Arc::new(Semaphore::new(1)),
        waiting: AtomicUsize::new(0),
        o,
    });
    let addr = format!("{}:{}", served.o.host, served.o.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CompressError::Internal {
            msg: format!("cannot start the async runtime: {e}"),
        })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| CompressError::Usage(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| CompressError::Usage(format!("{addr}: {e}")))?;
        eprintln!(
            "uc serve: model {} ({}, {}, {device}), listening on http://{local}",
            uc_pack::text::esc(&served.id),
            match served.engine {
                Engine::Generate(_) => "completions and chat",
                Engine::Embed(_) => "embeddings",
            },
            served
                .fingerprint
                .as_deref()
                .map(|f| format!("verified, fingerprint {f}"))
                .unwrap_or_else(|| "not a pack: not verified".into())
        );
        let app = Router::new()
            .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
            .route("/v1/models", get(models))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(served);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| CompressError::Internal {
                msg: format!("the server failed: {e}"),
            })
    })?;
    eprintln!("uc serve: shut down");
    let _ = out;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM: the server then stops accepting and finishes what it serves.
async fn shutdown() {
    let int = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return int.await.unwrap_or(()),
        };
        tokio::select! {
            _ = int => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    int.await.unwrap_or(());
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::status(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route {method} {uri}"),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::status(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {uri}"),
    )
}

async fn models(State(s): State<Arc<Served>>) -> axum::Json<Value> {
    axum::Json(json!({"object": "list", "data": [{
        "id": s.id, "object": "model", "created": 0, "owned_by": "uc",
        "fingerprint": s.fingerprint, "verified": s.fingerprint.is_some(),
    }]}))
}

/// `model_type` from the directory's `config.json`, when it has one.
fn model_type(dir: &Path) -> Option<String> {
    uc_pack::fs::read_capped(&dir.join("config.json"), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["model_type"].as_str().map(str::to_string))
}

impl Served {
    /// The generation model, or the error a generation request gets from an embedding server.
    fn llama(&self) -> Result<&'static Llama<'static>, ApiError> {
        match self.engine {
            Engine::Generate(m) => Ok(m),
            Engine::Embed(_) => Err(ApiError::bad(
                "this server runs an embedding model (BERT): use /v1/embeddings",
                None,
            )),
        }
    }

    /// Refuses a request for another model than the one served.
    fn check_model(&self, v: &Value) -> Result<(), ApiError> {
        match &v["model"] {
            Value::Null => Ok(()),
            Value::String(m) if *m == self.id => Ok(()),
            m => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                message: format!("model {m} is not served here (this server serves {:?})", self.id),
                param: Some("model"),
            }),
        }
    }

    /// A place in the FIFO queue, then the model: 503 when `--max-queue` requests wait already,
    /// 504 when the deadline passes first.
    async fn admit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.o.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                format!("{} requests are waiting already; try again later", self.o.max_queue),
            ));
        }
        let permit = tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            self.gate.clone().acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match permit {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ApiError::status(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "the request waited past the server's --timeout",
            )),
        }
    }
}

/// Most inputs in one embeddings request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

/// Most tokens of all inputs of one embeddings request (OpenAI's limit).
const MAX_REQUEST_TOKENS: usize = 300_000;

/// Sets its flag when dropped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `/v1/embeddings`: `input` a string, an array of strings, an array of token ids or an array of
/// such arrays; `encoding_format` `float` (default) or `base64` (little-endian binary32, what
/// the openai client asks for); `dimensions`, when given, must be the model's.
async fn embeddings(State(s): State<Arc<Served>>, body: Body) -> Response {
    let r = async {
        let t0 = Instant::now();
        let v = body_json(&s, body).await?;
        let Engine::Embed(model) = s.engine else {
            return Err(ApiError::bad(
                "this server runs a generation model (Llama family); /v1/embeddings needs a BERT pack",
                None,
            ));
        };
        s.check_model(&v)?;
        let base64 = match &v["encoding_format"] {
            Value::Null => false,
            Value::String(f) if f == "float" => false,
            Value::String(f) if f == "base64" => true,
            _ => {
                return Err(ApiError::bad(
                    "encoding_format must be \"float\" or \"base64\"",
                    Some("encoding_format"),
                ));
            }
        };
        let hidden = model.cfg.hidden;
        if !v["dimensions"].is_null() && v["dimensions"].as_u64() != Some(hidden as u64) {
            return Err(ApiError::bad(
                format!("this model's embeddings have {hidden} dimensions; others cannot be asked for"),
                Some("dimensions"),
            ));
        }
        let input_err = || {
            ApiError::bad(
                "input must be a non-empty string, an array of them, an array of token ids, or an array of such arrays",
                Some("input"),
            )
        };
        let ids = |a: &[Value]| -> Option<Vec<u32>> {
            a.iter()
                .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
                .collect()
        };
        // Tokenizing up to a megabyte of text is blocking work: off the async workers' queue.
        let texts: Vec<Vec<u32>> = match &v["input"] {
            Value::String(t) if !t.is_empty() => vec![tokio::task::block_in_place(|| tokenize(&s, t))?],
            // One sequence of token ids (taken as given: no [CLS]/[SEP] added).
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => vec![ids(a).ok_or_else(input_err)?],
            Value::Array(a) if !a.is_empty() && a.len() <= MAX_INPUTS => {
                if a.iter().all(|t| t.as_str().is_some_and(|t| !t.is_empty())) {
                    tokio::task::block_in_place(|| {
                        a.iter()
                            .map(|t| tokenize(&s, t.as_str().unwrap_or_default()))
                            .collect::<Result<_, _>>()
                    })?
                } else {
                    a.iter()
                        .map(|x| x.as_array().filter(|x| !x.is_empty()).and_then(|x| ids(x)))
                        .collect::<Option<_>>()
                        .ok_or_else(input_err)?
                }
            }
            _ => return Err(input_err()),
        };
        let limit = s.o.max_prompt_tokens.min(model.max_tokens);
        for (i, t) in texts.iter().enumerate() {
            if t.is_empty() {
                return Err(input_err());
            }
            if t.len() > limit {
                return Err(ApiError::bad(
                    format!(
                        "input {i} has {} tokens; at most {limit} are accepted (--max-prompt-tokens {}, the model's {})",
                        t.len(),
                        s.o.max_prompt_tokens,
                        model.max_tokens
                    ),
                    Some("input"),
                ));
            }
            if let Some(bad) = t.iter().find(|&&x| x as usize >= model.vocab()) {
                return Err(ApiError::bad(
                    format!("input {i}: token {bad} is outside the vocabulary of {}", model.vocab()),
                    Some("input"),
                ));
            }
        }
        let tokens: usize = texts.iter().map(Vec::len).sum();
        if tokens > MAX_REQUEST_TOKENS {
            return Err(ApiError::bad(
                format!(
                    "the inputs have {tokens} tokens in all; at most {MAX_REQUEST_TOKENS} are accepted per request"
                ),
                Some("input"),
            ));
        }
        let deadline = t0 + Duration::from_secs(s.o.timeout);
        let permit = s.admit(deadline).await?;
        eprintln!("uc serve: embeddings of {} inputs, {tokens} tokens", texts.len());
        // Set when this handler's future is dropped (the client went away): the worker stops
        // between inputs and frees the model for the next request.
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _guard = SetOnDrop(gone.clone());
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut out = Vec::with_capacity(texts.len());
            for (i, t) in texts.iter().enumerate() {
                if gone.load(Ordering::SeqCst) {
                    eprintln!(
                        "uc serve: the client went away after {i} of {} embeddings; stopped",
                        texts.len()
                    );
                    return Err(ApiError::status(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "the client went away",
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(ApiError::status(
                        StatusCode::GATEWAY_TIMEOUT,
                        "server_error",
                        "the request ran past the server's --timeout",
                    ));
                }
                out.push(
                    model
                        .embed(t)
                        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e))?,
                );
            }
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string()))??;
        let data: Vec<Value> = done
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let embedding = if base64 {
                    use base64::Engine as _;
                    let bytes: Vec<u8> = e.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(e)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        Ok(axum::Json(json!({"object": "list", "data": data, "model": s.id,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
        .into_response())
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// One input text's tokens, special tokens included (`[CLS] … [SEP]`).
fn tokenize(s: &Served, text: &str) -> Result<Vec<u32>, ApiError> {
    Ok(s.tok
        .encode(text, true)
        .map_err(|e| ApiError::bad(format!("cannot tokenize the input: {e}"), Some("input")))?
        .get_ids()
        .to_vec())
}

/// The request body as JSON, within the size limit.
async fn body_json(s: &Served, body: Body) -> Result<Value, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, s.o.max_body).await.map_err(|_| {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than {} bytes", s.o.max_body),
        )
    })?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}"), None))?;
    if !v.is_object() {
        return Err(ApiError::bad("the body must be a JSON object", None));
    }
    Ok(v)
}

fn number(v: &Value, key: &'static str, default: f64, range: (f64, f64)) -> Result<f64, ApiError> {
    match &v[key] {
        Value::Null => Ok(default),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x >= range.0 && x <= range.1 {
                Ok(x)
            } else {
                Err(ApiError::bad(
                    format!("{key} must be between {} and {}", range.0, range.1),
                    Some(key),
                ))
            }
        }
        _ => Err(ApiError::bad(format!("{key} must be a number"), Some(key))),
    }
}

fn integer(v: &Value, key: &'static str, default: u64, max: u64) -> Result<u64, ApiError> {
    match &v[key] {
        Value::Null => Ok(default),
        Value::Number(n) => match n.as_u64() {
            Some(x) if x <= max => Ok(x),
            _ => Err(ApiError::bad(
                format!("{key} must be an integer from 0 to {max}"),
                Some(key),
            )),
        },
        _ => Err(ApiError::bad(format!("{key} must be an integer"), Some(key))),
    }
}

/// Validates the options every generation request shares and tokenizes `text`.
fn job(s: &Served, v: &Value, text: &str, chat: bool) -> Result<Job, ApiError> {
    let model = s.llama()?;
    s.check_model(v)?;
    match &v["stop"] {
        Value::Null => {}
        Value::Array(a) if a.is_empty() => {}
        _ => return Err(ApiError::bad("stop sequences are not supported", Some("stop"))),
    }
    if !matches!(&v["n"], Value::Null) && v["n"].as_u64() != Some(1) {
        return Err(ApiError::bad("only n = 1 is supported", Some("n")));
    }
    let asked = match &v["max_tokens"] {
        Value::Null => None,
        _ => Some(integer(v, "max_tokens", 0, s.o.max_tokens as u64)? as usize),
    };
    let sampling = Sampling {
        temperature: number(v, "temperature", 1.0, (0.0, 2.0))? as f32,
        top_p: number(v, "top_p", 1.0, (f64::MIN_POSITIVE, 1.0))? as f32,
        top_k: integer(v, "top_k", 0, u64::from(u32::MAX))? as usize,
        seed: match &v["seed"] {
            Value::Null => 0,
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_i64().map(|x| x as u64))
                .ok_or_else(|| ApiError::bad("seed must be an integer", Some("seed")))?,
            _ => return Err(ApiError::bad("seed must be an integer", Some("seed"))),
        },
    };
    let stream = match &v["stream"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err(ApiError::bad("stream must be a boolean", Some("stream"))),
    };
    let prompt: Vec<u32> = tokio::task::block_in_place(|| s.tok.encode(text, !chat))
        .map_err(|e| ApiError::bad(format!("cannot tokenize the prompt: {e}"), Some("prompt")))?
        .get_ids()
        .to_vec();
    if prompt.is_empty() {
        return Err(ApiError::bad("the prompt has no tokens", Some("prompt")));
    }
    // Without max_tokens: as many as --max-tokens and the model's positions leave.
    let max_tokens = asked.unwrap_or_else(|| s.o.max_tokens.min(model.max_positions.saturating_sub(prompt.len())));
    if prompt.len() > s.o.max_prompt_tokens || prompt.len() + max_tokens > model.max_positions {
        return Err(ApiError::bad(
            format!(
                "the prompt has {} tokens; at most {} are accepted, and prompt + max_tokens ({max_tokens}) may not exceed the model's {} positions",
                prompt.len(),
                s.o.max_prompt_tokens,
                model.max_positions
            ),
            Some("prompt"),
        ));
    }
    Ok(Job {
        model,
        prompt,
        max_tokens,
        sampling,
        stream,
        chat,
    })
}

async fn completions(State(s): State<Arc<Served>>, body: Body) -> Response {
    let r = async {
        let v = body_json(&s, body).await?;
        let prompt = match &v["prompt"] {
            Value::String(p) => p.clone(),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
            _ => return Err(ApiError::bad("prompt must be a string", Some("prompt"))),
        };
        let j = job(&s, &v, &prompt, false)?;
        Ok(generate(s.clone(), j).await)
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(State(s): State<Arc<Served>>, body: Body) -> Response {
    let r = async {
        let v = body_json(&s, body).await?;
        s.llama()?;
        let Some(template) = &s.chat else {
            return Err(ApiError::bad(
                "the model's tokenizer_config.json has no chat_template",
                Some("messages"),
            ));
        };
        let msgs = v["messages"]
            .as_array()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::bad("messages must be a non-empty array", Some("messages")))?;
        let mut messages = Vec::with_capacity(msgs.len());
        for m in msgs {
            let role = m["role"]
                .as_str()
                .filter(|r| matches!(*r, "system" | "user" | "assistant"));
            // A string, or OpenAI's array of content parts (text parts only).
            let content = match &m["content"] {
                Value::String(c) => Some(c.clone()),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| (p["type"] == "text").then(|| p["text"].as_str()).flatten())
                    .collect::<Option<Vec<&str>>>()
                    .map(|t| t.concat()),
                _ => None,
            };
            let (Some(role), Some(content)) = (role, content) else {
                return Err(ApiError::bad(
                    "each message needs a role (system, user or assistant) and a content: a string or text parts",
                    Some("messages"),
                ));
            };
            messages.push(crate::chat::Message {
                role: role.to_string(),
                content,
            });
        }
        let text = tokio::task::block_in_place(|| template.render(&messages)).map_err(|e| {
            ApiError::bad(
                format!("the model's chat template refused the messages: {e}"),
                Some("messages"),
            )
        })?;
        let j = job(&s, &v, &text, true)?;
        Ok(generate(s.clone(), j).await)
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// What the generating thread sends back.
enum Step {
    /// New text.
    Text(String),
    /// The end: why, and the completion's token count.
    Done(&'static str, usize),
    /// The generation failed or ran past the deadline.
    Failed(ApiError),
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Queues the job, runs it on a blocking thread, and answers with the whole completion or a
/// server-sent-event stream of it.
async fn generate(s: Arc<Served>, j: Job) -> Response {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(s.o.timeout);
    let permit = match s.admit(deadline).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // A short channel: a generation runs at most a few tokens ahead of what the client has taken.
    let (tx, rx) = mpsc::channel::<Step>(2);
    let prompt_tokens = j.prompt.len();
    let worker = s.clone();
    let (stream, chat, max_tokens, sampling) = (j.stream, j.chat, j.max_tokens, j.sampling);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        run_job(&worker, j, deadline, &tx);
    });
    let id = format!("{}-{}", if chat { "chatcmpl" } else { "cmpl" }, now_s());
    let created = now_s();
    eprintln!(
        "uc serve: {} prompt {prompt_tokens} tokens, max_tokens {max_tokens}, temperature {}, seed {}, stream {stream}",
        if chat { "chat" } else { "completion" },
        sampling.temperature,
        sampling.seed
    );
    if stream {
        let (model, sid) = (s.id.clone(), id.clone());
        let events = ReceiverStream::new(rx).map(move |step| {
            let chunk = |delta: Value, finish: Value| {
                if chat {
                    json!({"id": sid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                } else {
                    json!({"id": sid, "object": "text_completion", "created": created, "model": model,
                           "choices": [{"index": 0, "text": delta["content"].as_str().unwrap_or(""), "finish_reason": finish, "logprobs": null}]})
                }
            };
            let data = match step {
                Step::Text(t) => chunk(json!({"role": "assistant", "content": t}), Value::Null),
                Step::Done(why, _) => chunk(json!({}), json!(why)),
                Step::Failed(e) => e.body(),
            };
            Ok::<Event, Infallible>(Event::default().data(data.to_string()))
        });
        let done = tokio_stream::once(Ok::<Event, Infallible>(Event::default().data("[DONE]")));
        return Sse::new(events.chain(done)).into_response();
    }
    let mut rx = rx;
    let mut text = String::new();
    while let Some(step) = rx.recv().await {
        match step {
            Step::Text(t) => text.push_str(&t),
            Step::Failed(e) => return e.into_response(),
            Step::Done(why, n) => {
                let usage =
                    json!({"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n});
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": why})
                } else {
                    json!({"index": 0, "text": text, "finish_reason": why, "logprobs": null})
                };
                let object = if chat { "chat.completion" } else { "text_completion" };
                return axum::Json(json!({"id": id, "object": object, "created": created, "model": s.id,
                                          "choices": [choice], "usage": usage}))
                .into_response();
            }
        }
    }
    ApiError::status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the generation stopped",
    )
    .into_response()
}

/// Generates on the calling (blocking) thread, sending text as it forms; returns early when the
/// receiver is gone (the client disconnected) or the deadline passes.
fn run_job(s: &Served, j: Job, deadline: Instant, tx: &mpsc::Sender<Step>) {
    let fail = |msg: String| {
        let _ = tx.blocking_send(Step::Failed(ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            msg,
        )));
    };
    let mut g = match Generation::start(j.model, &j.prompt, j.sampling, &s.eos, j.max_tokens) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let mut stream = TextStream::default();
    let gone = |n: usize| eprintln!("uc serve: the client went away after {n} tokens; generation stopped");
    loop {
        if Instant::now() >= deadline {
            let _ = tx.blocking_send(Step::Failed(ApiError::status(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "the generation ran past the server's --timeout",
            )));
            return;
        }
        if tx.is_closed() {
            return gone(g.tokens.len());
        }
        match g.next_token() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return fail(e),
        }
        if let Some(new) = stream.update(&s.tok, &g.tokens)
            && tx.blocking_send(Step::Text(new)).is_err()
        {
            return gone(g.tokens.len());
        }
    }
    let (_, rest) = stream.finish(&s.tok, &g.tokens);
    if !rest.is_empty() && tx.blocking_send(Step::Text(rest)).is_err() {
        return;
    }
    let why = if g.at_eos { "stop" } else { "length" };
    let _ = tx.blocking_send(Step::Done(why, g.tokens.len()));
}
