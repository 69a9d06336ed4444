//! `uc run` through the built binary on the tiny random Llama of `common/llama.rs`: a pack and its
//! `uc unpack` output give the same tokens, on any thread count; seeded sampling is reproducible;
//! a corrupted pack, a non-Llama model and bad options are refused with the right exit status.

#[path = "common/bert.rs"]
mod bert;
mod common;
#[path = "common/llama.rs"]
mod llama;

use common::*;
use serde_json::Value;
use std::path::Path;

/// `uc run MODEL --prompt PROMPT --json` + `extra`, parsed.
fn run_json(model: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["run", p(model), "--prompt", "the cat", "--json"];
    args.extend_from_slice(extra);
    json_of(&ok(uc(&args)))
}

fn tokens(v: &Value) -> Vec<u64> {
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

#[test]
fn a_pack_generates_the_tokens_of_its_unpacked_model_on_any_thread_count() {
    let s = Scratch::new("run-same");
    let (src, _, pack) = llama::tiny_pack(&s, &[]);
    let unpacked = s.join("unpacked");
    ok(uc(&["unpack", p(&pack), "--output-dir", p(&unpacked)]));

    let a = run_json(&pack, &["--max-tokens", "12"]);
    assert_eq!(a["verified"], true);
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(a["generated_tokens"], 12);
    assert_eq!(a["stop"], "max_tokens");
    let want = tokens(&a);
    assert_eq!(tokens(&run_json(&unpacked, &["--max-tokens", "12"])), want);
    assert_eq!(run_json(&unpacked, &["--max-tokens", "12"])["verified"], false);
    assert_eq!(
        tokens(&run_json(&pack, &["--max-tokens", "12", "--threads", "1"])),
        want
    );
    // The source (f32, never quantized) takes another path through the weights.
    assert_eq!(run_json(&src, &["--max-tokens", "12"])["generated_tokens"], 12);

    // Sampling: the same seed gives the same tokens, on the pack and on its unpacked model. (The
    // tiny model's tied embedding makes the next token almost certain below a temperature of 10.)
    let sampled = |m: &Path, seed: &str| {
        tokens(&run_json(
            m,
            &[
                "--max-tokens",
                "16",
                "--temperature",
                "30",
                "--top-k",
                "50",
                "--top-p",
                "0.95",
                "--seed",
                seed,
            ],
        ))
    };
    let s1 = sampled(&pack, "1");
    assert_eq!(s1, sampled(&pack, "1"));
    assert_eq!(s1, sampled(&unpacked, "1"));
    let others: Vec<Vec<u64>> = ["2", "3", "4"].iter().map(|seed| sampled(&pack, seed)).collect();
    assert!(
        others.iter().any(|o| *o != s1),
        "seeds change the stream: {s1:?} {others:?}"
    );

    // Streaming prints the same text as the JSON, and the speeds on stderr.
    let o = uc(&["run", p(&pack), "--prompt", "the cat", "--max-tokens", "12"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{}\n", a["text"].as_str().unwrap())
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("verified, fingerprint") && err.contains("tokens/s"),
        "{err}"
    );
}

/// `--device wgpu`: on a build with the `wgpu` feature and a GPU adapter (CI: Mesa's lavapipe,
/// `UC_REQUIRE_GPU=1`), `uc run` and `uc bench` run the records there and name the adapter, the
/// same tokens twice; on a build without it, both refuse with exit 2 instead of running on the CPU.
#[test]
fn device_wgpu_runs_the_records_on_a_gpu_or_is_refused_by_a_build_without_one() {
    let s = Scratch::new("run-gpu");
    let (_, _, pack) = llama::tiny_pack(&s, &[]);
    let gpu = ["--max-tokens", "6", "--device", "wgpu"];
    if cfg!(feature = "wgpu") {
        let mut args = vec!["run", p(&pack), "--prompt", "the cat", "--json"];
        args.extend_from_slice(&gpu);
        let o = uc(&args);
        if !o.status.success() && std::env::var_os("UC_REQUIRE_GPU").is_none() && stderr(&o).contains("adapter") {
            eprintln!("skipped, no GPU adapter: {}", stderr(&o));
            return;
        }
        let a = json_of(&ok(o));
        assert!(a["device"].as_str().unwrap().starts_with("wgpu: "), "{a}");
        assert_eq!(a["verified"], true);
        assert_eq!(a["generated_tokens"], 6);
        assert_eq!(
            tokens(&a),
            tokens(&run_json(&pack, &gpu)),
            "the same device, the same tokens"
        );
        let cpu = run_json(&pack, &["--max-tokens", "6"]);
        assert_eq!(cpu["device"], "cpu");
        let b = json_of(&ok(uc(&[
            "bench",
            p(&pack),
            "--prompt-tokens",
            "8",
            "--gen-tokens",
            "4",
            "--device",
            "wgpu",
            "--json",
        ])));
        assert_eq!(b["device"], a["device"]);
        assert_eq!(b["same_tokens_on_every_thread_count"], true);
    } else {
        for cmd in [
            vec!["run", p(&pack), "--prompt", "the cat", "--device", "wgpu"],
            vec!["bench", p(&pack), "--device", "wgpu"],
            vec!["serve", p(&pack), "--port", "0", "--device", "wgpu"],
        ] {
            let o = uc(&cmd);
            assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("no GPU path"), "{cmd:?}: {}", stderr(&o));
        }
    }
}

#[test]
fn a_corrupted_pack_a_non_llama_model_and_bad_options_are_refused() {
    let s = Scratch::new("run-bad");
    let (_, _, pack) = llama::tiny_pack(&s, &[]);
    for (args, want) in [
        (vec!["--top-p", "0"], "--top-p"),
        (vec!["--temperature=-1"], "--temperature"),
        (vec!["--max-tokens", "100000"], "positions"),
        (vec!["--threads", "0"], "--threads"),
    ] {
        let mut a = vec!["run", p(&pack), "--prompt", "the cat"];
        a.extend(args);
        let o = uc(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(stderr(&o).contains(want), "{a:?}: {}", stderr(&o));
    }
    // Not a Llama-family model: the shared test model's config has no model_type.
    let other = s.join("other");
    small_model(&other);
    let e = fails(uc(&["run", p(&other), "--prompt", "x"]));
    assert!(e.contains("Llama-family"), "{e}");
    // One flipped bit in the weights: verification fails before the first token (exit 1).
    let f = pack.join("model.safetensors");
    let mut b = std::fs::read(&f).unwrap();
    let at = b.len() - 100;
    b[at] ^= 0x10;
    std::fs::write(&f, &b).unwrap();
    let o = uc(&["run", p(&pack), "--prompt", "the cat"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a valid uc pack"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn bench_reports_speeds_memory_and_perplexity() {
    let s = Scratch::new("bench");
    let (src, text, pack) = llama::tiny_pack(&s, &[]);
    let v = json_of(&ok(uc(&[
        "bench",
        p(&pack),
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "4",
        "--text",
        p(&text),
        "--ctx",
        "16",
        "--eval-tokens",
        "64",
        "--source",
        p(&src),
        "--json",
    ])));
    assert_eq!(v["verified"], true);
    assert_eq!(v["same_tokens_on_every_thread_count"], true);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs[0]["threads"], 1);
    assert!(
        runs.iter()
            .all(|r| r["generation_tokens_per_second"].as_f64().unwrap() > 0.0)
    );
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
    let ppl = v["perplexity"]["ppl"].as_f64().unwrap();
    // The same figure as `uc eval ppl` on the same windows.
    let e = json_of(&ok(uc(&[
        "eval",
        "ppl",
        p(&pack),
        "--text",
        p(&text),
        "--ctx",
        "16",
        "--max-tokens",
        "64",
        "--json",
    ])));
    assert_eq!(ppl, e["ppl"].as_f64().unwrap());
    // --source: the figures of `uc eval compare` on the same windows.
    let c = json_of(&ok(uc(&[
        "eval",
        "compare",
        p(&src),
        p(&pack),
        "--text",
        p(&text),
        "--ctx",
        "16",
        "--max-tokens",
        "64",
        "--json",
    ])));
    assert_eq!(v["comparison"]["ppl_ratio"], c["ppl_ratio"], "{c}");
    assert_eq!(v["comparison"]["mean_kl"], c["mean_kl"], "{c}");
    assert!(v["comparison"]["ppl_ratio"].as_f64().unwrap() != 1.0);
    let e = fails(uc(&["bench", p(&pack), "--prompt-tokens", "0"]));
    assert!(e.contains("--prompt-tokens"), "{e}");
    let e = fails(uc(&["bench", p(&pack), "--source", p(&src)]));
    assert!(e.contains("--source needs --text"), "{e}");
    // uc compress --bench-on-finish: the same report inside the summary.
    let pack2 = s.join("pack2");
    let v = json_of(&ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack2),
        "--bits",
        "4",
        "--rank",
        "0",
        "--bench-on-finish",
        "--bench-text",
        p(&text),
        "--json",
    ])));
    let b = &v["bench"];
    assert_eq!(b["verified"], true, "{v}");
    assert_eq!(b["same_tokens_on_every_thread_count"], true);
    assert_eq!(b["prompt_tokens"], 64);
    assert!(b["perplexity"]["ppl"].as_f64().unwrap() > 1.0);
    assert!(b["comparison"]["ppl_ratio"].as_f64().is_some(), "{b}");
    // A bench that fails (a text too short for one window): the summary of the written pack is
    // still printed, then the error (exit 2), and the pack stays.
    let short = s.join("short.txt");
    std::fs::write(&short, "the cat").unwrap();
    let pack3 = s.join("pack3");
    let o = uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack3),
        "--bits",
        "4",
        "--rank",
        "0",
        "--bench-on-finish",
        "--bench-text",
        p(&short),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["output_dir"].as_str().unwrap().ends_with("pack3"), "{summary}");
    assert!(summary.get("bench").is_none());
    assert!(stderr(&o).contains("uc: error: "), "{}", stderr(&o));
    assert!(pack3.join("ultracompress.json").is_file());
    // clap's own usage error (exit 2): --bench-text needs --bench-on-finish.
    let o = uc(&["compress", p(&src), "--output-dir", p(&pack2), "--bench-text", p(&text)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--bench-on-finish"), "{}", stderr(&o));
}

#[test]
fn bench_of_a_bert_pack_reports_embedded_tokens_and_the_cosine_to_its_source() {
    let s = Scratch::new("bench-bert");
    let src = bert::tiny_bert(&s);
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
    let text = s.join("text.txt");
    std::fs::write(&text, llama::TEXT).unwrap();
    let v = json_of(&ok(uc(&[
        "bench",
        p(&pack),
        "--prompt-tokens",
        "100",
        "--text",
        p(&text),
        "--source",
        p(&src),
        "--eval-tokens",
        "128",
        "--json",
    ])));
    assert_eq!(v["kind"], "embeddings");
    assert_eq!(v["verified"], true);
    // At most the model's positions.
    assert_eq!(v["tokens"], bert::POSITIONS);
    assert_eq!(v["same_embedding_on_every_thread_count"], true);
    assert!(v["runs"][0]["tokens_per_second"].as_f64().unwrap() > 0.0);
    let c = json_of(&ok(uc(&[
        "eval",
        "compare",
        p(&src),
        p(&pack),
        "--text",
        p(&text),
        "--ctx",
        "32",
        "--max-tokens",
        "128",
        "--json",
    ])));
    assert_eq!(v["comparison"]["mean_cosine"], c["mean_cosine"], "{c}");
    let cos = c["mean_cosine"].as_f64().unwrap();
    assert!(cos > 0.5 && cos < 1.0, "{c}");
    let plain = ok(uc(&["bench", p(&pack)]));
    assert!(
        plain.contains("tokens/s embedded") && plain.contains("the same bits"),
        "{plain}"
    );
}
