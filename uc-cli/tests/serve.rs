//! `uc serve` through the built binary on the tiny random Llama of `common/llama.rs`, with a
//! plain HTTP/1.1 client written here (requests with `Connection: close`, chunked bodies
//! decoded): every endpoint, streaming against the whole completion and against `uc run`, bad
//! requests answered in OpenAI's error shape with the server still serving, a client that leaves
//! mid-stream, a bounded load, the request timeout, and graceful shutdown on SIGTERM.

#[path = "common/bert.rs"]
mod bert;
mod common;
#[path = "common/llama.rs"]
mod llama;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// A running `uc serve`, its address and everything it wrote on stderr so far.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(model: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["serve", p(model), "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = uc_cmd(&args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let addr = loop {
            let line = lines.next().expect("uc serve exited before listening").unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(a) = line.split("listening on http://").nth(1) {
                break a.trim().to_string();
            }
        };
        let l = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                l.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, addr, log }
    }

    /// `(status, body)` of one request (the body de-chunked).
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, rest) = raw.split_once("\r\n\r\n").expect("a response head");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        (status, if chunked { dechunk(rest) } else { rest.to_string() })
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, b) = self.request("POST", path, &body.to_string());
        (status, serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")))
    }

    fn healthy(&self) -> bool {
        self.request("GET", "/health", "").0 == 200
    }

    fn rss_kb(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the server's stderr shows `needle` within 10 s (the reader thread may still be
    /// copying the last lines after the process exited).
    fn logged(&self, needle: &str) -> bool {
        for _ in 0..200 {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The `data:` payloads of a server-sent-event body.
fn events(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect()
}

#[test]
fn completions_streaming_models_and_bad_requests() {
    let s = Scratch::new("serve");
    let (_, _, pack) = llama::tiny_pack(&s, &[]);
    let srv = Server::start(
        &pack,
        &["--max-prompt-tokens", "16", "--max-body", "2000", "--max-tokens", "200"],
    );
    assert!(srv.healthy());
    let (st, models) = srv.request("GET", "/v1/models", "");
    assert_eq!(st, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    let id = models["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(models["data"][0]["verified"], true);

    // The whole completion is what `uc run` generates with the same options.
    let run = json_of(&ok(uc(&[
        "run",
        p(&pack),
        "--prompt",
        "the cat",
        "--max-tokens",
        "10",
        "--json",
    ])));
    assert_eq!(models["data"][0]["fingerprint"], run["fingerprint"]);
    let req = json!({"model": id, "prompt": "the cat", "max_tokens": 10, "temperature": 0});
    let (st, c) = srv.post("/v1/completions", &req);
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["object"], "text_completion");
    assert_eq!(c["choices"][0]["text"], run["text"]);
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["usage"]["completion_tokens"], 10);
    assert_eq!(c["usage"]["prompt_tokens"], run["prompt_tokens"]);

    // Streaming: the deltas add up to the same text, then a finish chunk and [DONE].
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let (st, body) = srv.request("POST", "/v1/completions", &sreq.to_string());
    assert_eq!(st, 200);
    let ev = events(&body);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, run["text"].as_str().unwrap());
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");

    // Seeded sampling gives the same completion twice.
    let sampled = json!({"prompt": "the cat", "max_tokens": 8, "temperature": 1.5, "seed": 42});
    assert_eq!(
        srv.post("/v1/completions", &sampled).1["choices"],
        srv.post("/v1/completions", &sampled).1["choices"]
    );

    // Bad requests: the status, OpenAI's error shape, and the server still serving.
    let long = "the cat ".repeat(40);
    let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(3000));
    for (method, path, body, want, param) in [
        ("POST", "/v1/completions", "{not json".to_string(), 400, Value::Null),
        ("POST", "/v1/completions", "[1, 2]".to_string(), 400, Value::Null),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": "x", "model": "gpt-4"}).to_string(),
            404,
            json!("model"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": long}).to_string(),
            400,
            json!("prompt"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": -1}).to_string(),
            400,
            json!("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 201}).to_string(),
            400,
            json!("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": "x", "temperature": 3}).to_string(),
            400,
            json!("temperature"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": 7}).to_string(),
            400,
            json!("prompt"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": "x", "stop": ["."]}).to_string(),
            400,
            json!("stop"),
        ),
        ("POST", "/v1/completions", big, 413, Value::Null),
        (
            "POST",
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}).to_string(),
            400,
            json!("messages"),
        ),
        // A generation model has no embeddings.
        (
            "POST",
            "/v1/embeddings",
            json!({"input": "x"}).to_string(),
            400,
            Value::Null,
        ),
        ("GET", "/v1/completions", String::new(), 405, Value::Null),
        ("GET", "/nope", String::new(), 404, Value::Null),
    ] {
        let (st, b) = srv.request(method, path, &body);
        assert_eq!(st, want, "{method} {path} {body:.80}: {b}");
        let e: Value = serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}"));
        assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
        assert!(e["error"]["type"].is_string(), "{b}");
        assert_eq!(e["error"]["param"], param, "{b}");
        assert!(srv.healthy());
    }

    // A client that leaves mid-stream: the next request is served, with the same result. (That the
    // generation stops is checked on SmolLM2 in python/tests/test_serve.py: the tiny model writes
    // its whole stream before the disconnect reaches the server.)
    {
        let mut c = TcpStream::connect(&srv.addr).unwrap();
        let body = json!({"prompt": "the cat", "max_tokens": 200, "stream": true}).to_string();
        write!(
            c,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut first = [0u8; 64];
        c.read_exact(&mut first).unwrap();
    }
    let (st, c) = srv.post("/v1/completions", &req);
    assert_eq!((st, &c["choices"][0]["text"]), (200, &run["text"]));
    // SIGTERM: a graceful stop with status 0.
    let mut srv = srv;
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &srv.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", srv.log());
    assert!(srv.logged("shut down"), "{}", srv.log());
}

#[test]
fn sixteen_clients_of_twenty_requests_without_errors_or_memory_growth_and_the_timeout() {
    let s = Scratch::new("serve-load");
    let (_, _, pack) = llama::tiny_pack(&s, &[]);
    let srv = Arc::new(Server::start(&pack, &[]));
    let round = |srv: &Arc<Server>| {
        let handles: Vec<_> = (0..16)
            .map(|k| {
                let srv = srv.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let stream = (k + i) % 2 == 0;
                        let body = json!({"prompt": "the cat", "max_tokens": 4, "seed": k * 100 + i, "stream": stream});
                        let (st, b) = srv.request("POST", "/v1/completions", &body.to_string());
                        assert_eq!(st, 200, "{b}");
                        if stream {
                            assert!(b.contains("data: [DONE]"), "{b}");
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    };
    round(&srv);
    let after_one = srv.rss_kb();
    round(&srv);
    let after_two = srv.rss_kb();
    assert!(
        after_two <= after_one + after_one / 10 + 4096,
        "RSS grew from {after_one} kB to {after_two} kB"
    );
    assert!(srv.healthy());
    drop(srv);

    // --timeout 0: every generation is past its deadline at once: 504, and still serving.
    let srv = Server::start(&pack, &["--timeout", "0"]);
    let (st, e) = srv.post("/v1/completions", &json!({"prompt": "the cat"}));
    assert_eq!(st, 504, "{e}");
    assert_eq!(e["error"]["type"], "server_error");
    assert!(srv.healthy());
}

#[test]
fn embeddings_from_a_bert_pack_equal_its_unpacked_model_and_bad_inputs_are_refused() {
    let s = Scratch::new("serve-bert");
    let src = bert::tiny_bert(&s);
    let (pack, unpacked) = (s.join("pack"), s.join("unpacked"));
    ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ]));
    ok(uc(&["unpack", p(&pack), "--output-dir", p(&unpacked)]));
    let srv = Server::start(&pack, &["--max-prompt-tokens", "20"]);
    assert!(srv.log().contains("embeddings"), "{}", srv.log());
    let (st, models) = srv.request("GET", "/v1/models", "");
    assert_eq!(st, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["verified"], true);
    let id = models["data"][0]["id"].as_str().unwrap().to_string();

    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let one = |srv: &Server, input: Value| -> (Value, Vec<Vec<f32>>) {
        let (st, e) = srv.post("/v1/embeddings", &json!({"model": id, "input": input}));
        assert_eq!(st, 200, "{e}");
        assert_eq!(e["object"], "list");
        let data = e["data"].as_array().unwrap();
        for (i, d) in data.iter().enumerate() {
            assert_eq!(
                (&d["object"], d["index"].as_u64()),
                (&json!("embedding"), Some(i as u64))
            );
        }
        let v = data.iter().map(|d| floats(&d["embedding"])).collect();
        (e, v)
    };
    let (e, a) = one(&srv, json!("the cat sat on the mat."));
    assert_eq!(a[0].len(), bert::HIDDEN);
    let norm: f32 = a[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    // [CLS] the cat sat on the mat . [SEP]
    assert_eq!(e["usage"]["prompt_tokens"], 9, "{e}");
    assert_eq!(e["usage"]["total_tokens"], 9);
    // A batch: in order, each as if alone; token ids are accepted too.
    let (e, b) = one(
        &srv,
        json!(["the dog ran", "the cat sat on the mat.", "we hold these truths"]),
    );
    assert_eq!(b.len(), 3);
    assert_eq!(b[1], a[0]);
    assert_ne!(b[0], b[1]);
    assert_eq!(e["usage"]["prompt_tokens"], 5 + 9 + 6);
    let (_, c) = one(&srv, json!([2, 4, 6, 10, 11, 4, 12, 62 - 10, 3]));
    let (_, d) = one(&srv, json!([[2, 4, 6, 10, 11, 4, 12, 62 - 10, 3], [2, 5, 3]]));
    assert_eq!(c[0], d[0]);
    // base64: the same binary32 values, little-endian.
    let (st, e) = srv.post(
        "/v1/embeddings",
        &json!({"input": "the cat sat on the mat.", "encoding_format": "base64"}),
    );
    assert_eq!(st, 200, "{e}");
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(e["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let dec: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(dec, a[0]);

    // The unpacked model through the same code gives the same bits; the source is near them.
    let srv2 = Server::start(&unpacked, &[]);
    let (st, e2) = srv2.post("/v1/embeddings", &json!({"input": ["the cat sat on the mat."]}));
    assert_eq!(st, 200, "{e2}");
    assert_eq!(floats(&e2["data"][0]["embedding"]), a[0]);
    drop(srv2);
    let srv3 = Server::start(&src, &[]);
    assert!(srv3.log().contains("not verified"), "{}", srv3.log());
    let (st, e3) = srv3.post("/v1/embeddings", &json!({"input": "the cat sat on the mat."}));
    assert_eq!(st, 200, "{e3}");
    let f = floats(&e3["data"][0]["embedding"]);
    let cos: f32 = f.iter().zip(&a[0]).map(|(x, y)| x * y).sum();
    assert!(cos > 0.9 && f != a[0], "cosine to the source {cos}");
    drop(srv3);

    let long = "the cat ".repeat(10);
    for (path, body, want, param) in [
        ("/v1/embeddings", json!({}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": []}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": [[]]}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": [1, "a"]}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": [-1]}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": 7}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": long}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": [[2, 64, 3]]}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": ""}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": ["a", ""]}), 400, json!("input")),
        ("/v1/embeddings", json!({"input": vec![5; 3000]}), 400, json!("input")),
        (
            "/v1/embeddings",
            json!({"input": "x", "encoding_format": "hex"}),
            400,
            json!("encoding_format"),
        ),
        (
            "/v1/embeddings",
            json!({"input": "x", "dimensions": 8}),
            400,
            json!("dimensions"),
        ),
        (
            "/v1/embeddings",
            json!({"input": "x", "model": "other"}),
            404,
            json!("model"),
        ),
        // An embedding model generates nothing.
        ("/v1/completions", json!({"prompt": "the cat"}), 400, Value::Null),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            400,
            Value::Null,
        ),
    ] {
        let (st, e) = srv.post(path, &body);
        assert_eq!(st, want, "{path} {body}: {e}");
        assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        assert_eq!(e["error"]["param"], param, "{e}");
        assert!(srv.healthy());
    }
    let (_, e) = srv.post("/v1/completions", &json!({"prompt": "the cat"}));
    assert!(
        e["error"]["message"].as_str().unwrap().contains("/v1/embeddings"),
        "{e}"
    );
}

#[test]
fn chat_renders_the_models_jinja_template_the_same_in_run_and_serve() {
    let s = Scratch::new("chat");
    let (src, _) = llama::tiny_model(&s);
    let template = "{% for m in messages %}{% if m['role'] == 'assistant' and loop.last %}\
                    {{ raise_exception('the last message must not be the assistant') }}{% endif %}\
                    {{ m['role'] | upper + ': ' + m['content'].strip() + '\n' }}{% endfor %}\
                    {% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
    std::fs::write(
        src.join("tokenizer_config.json"),
        json!({"chat_template": template}).to_string(),
    )
    .unwrap();
    let pack = s.join("pack");
    ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ]));
    let run = |extra: &[&str]| {
        let mut a = vec!["run", p(&pack), "--prompt", " the cat ", "--max-tokens", "6", "--json"];
        a.extend_from_slice(extra);
        json_of(&ok(uc(&a)))
    };
    let chat = run(&["--chat", "--system", "be brief"]);
    // The template's text, tokenized without the tokenizer's own special tokens.
    let plain = run(&[]);
    let rendered = json_of(&ok(uc(&[
        "run",
        p(&pack),
        "--prompt",
        "SYSTEM: be brief\nUSER: the cat\nASSISTANT:",
        "--max-tokens",
        "6",
        "--json",
    ])));
    assert_ne!(chat["prompt_tokens"], plain["prompt_tokens"]);
    assert!(
        chat["prompt_tokens"] == rendered["prompt_tokens"]
            || chat["prompt_tokens"].as_u64().unwrap() + 1 == rendered["prompt_tokens"].as_u64().unwrap(),
        "{chat} {rendered}"
    );
    let srv = Server::start(&pack, &[]);
    let msgs = json!([{"role": "system", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": " the cat "}]}]);
    let (st, c) = srv.post(
        "/v1/chat/completions",
        &json!({"messages": msgs, "max_tokens": 6, "temperature": 0}),
    );
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["choices"][0]["message"]["content"], chat["text"]);
    assert_eq!(c["usage"]["prompt_tokens"], chat["prompt_tokens"]);
    // The template's raise_exception is the client's 400.
    let (st, e) = srv.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
    );
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must not be the assistant"),
        "{e}"
    );
    assert_eq!(e["error"]["param"], "messages");
    // --chat on a model without a template, and --system without --chat.
    let s2 = Scratch::new("chat-bare");
    let (_, _, bare) = llama::tiny_pack(&s2, &[]);
    let e = fails(uc(&["run", p(&bare), "--prompt", "x", "--chat"]));
    assert!(e.contains("no chat_template"), "{e}");
    let o = uc(&["run", p(&pack), "--prompt", "x", "--system", "y"]);
    assert_eq!(o.status.code(), Some(2));
}
