#!/usr/bin/env bash
# Issue #19's quality table and ablation in one command, beside the k-quants of the same tensors:
#   1. weight error (weighted rel_l2) per tier on MiniLM's real weights and on the Gaussian and
#      Student-t matrices (uc-encode/quality-bench: uc at each k-quant's stored bits, tensor by
#      tensor, against candle's port of ggml's quantizers);
#   2. MiniLM (embedding cosine) and SmolLM2-135M (PPL_r, mean next-token KL, top-1 agreement) at
#      the k-quant tiers Q2_K..Q6_K and at uc-only budgets of 2.5, 3, 3.5, 4, 5 and 6 bpw,
#      data-free and calibrated, with compress time, peak RSS and whole-model size
#      (scripts/bench-ppl.sh);
#   3. the ablation of what each adopted feature bought: v0.3 scales against two-level scales
#      (data-free, Q4_K's size), calibration without importance weights (Q3_K and Q4_K sizes;
#      MiniLM at Q4_K), GPTQ rounding (Q3_K), importance from the input norms (data-free, Q3_K, Q4_K).
# Every run's result is kept in the output folder and a rerun skips what is there, so an
# interrupted run resumes where it stopped (the cheap parts run first). Raw results of earlier runs
# are committed under docs/bench-results/: copy one into the output folder to resume from it.
# Everything is local: the models come from PyPI packages (scripts/fetch-models.sh), the text from
# Debian's jargon-text (scripts/fetch-text.sh).
# Cost on 2 cores, measured 2026-12: about 15 minutes of weight error, 40 of MiniLM, 65 of
# SmolLM2 data-free, 14 per calibrated SmolLM2 run (11 tiers and 3 ablations: about 3.3 hours).
# UC_QUALITY_CALIB=0 skips the calibrated runs, UC_QUALITY_ABLATION=0 the ablation;
# UC_QUALITY_TIERS overrides the tier list.
# Usage: scripts/bench-quality.sh    Output: $UC_QUALITY_OUT/quality.md (default .cache/bench/quality)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${UC_QUALITY_OUT:-.cache/bench/quality}
tiers=${UC_QUALITY_TIERS:-2 b2.5 b3 3 b3.5 b4 4 b5 5 b6 6}
calib=${UC_QUALITY_CALIB:-1}
ablation=${UC_QUALITY_ABLATION:-1}
mkdir -p "$out"
report="$out/quality.md"
minilm=$(bash scripts/fetch-models.sh minilm)
qb=(cargo run --locked --release -q --manifest-path uc-encode/quality-bench/Cargo.toml --)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
log="$out/progress.log"
step() { echo "[$(date -u +%T)] $*" | tee -a "$log" >&2; }

# 1. Weight error: each part's Markdown is kept, so a rerun skips it.
weights() { # name, quality-bench args...
  local name=$1 f="$out/weights-$1.md"
  shift
  [ -s "$f" ] && return
  step "weight error: $name"
  "${qb[@]}" "$@" >"$f.tmp"
  mv "$f.tmp" "$f"
}
weights minilm --model "$minilm" --sets minilm --ranks 0 --sub-blocks 0,16q6,16q5,32q6,32q8
weights synthetic --sets gaussian,student-t --ranks 0 --sub-blocks 0,16q5,16q6

# 2 and 3. bench-ppl.sh runs what its cache lacks; its table is printed once, at the end.
ppl() { # model, methods, tiers
  step "bench-ppl: $1, $2, tiers $3"
  UC_BENCH_OUT="$out" UC_BENCH_TIERS="$3" UC_BENCH_METHODS="$2" bash scripts/bench-ppl.sh "$1" >>"$log"
}
ppl minilm free "$tiers"
[ "$calib" = 0 ] || ppl minilm calib "$tiers"
ppl smollm2 free "$tiers"
if [ "$ablation" != 0 ]; then
  ppl smollm2 free-v03 4
  ppl smollm2 free-norms "3 4"
fi
[ "$calib" = 0 ] || ppl smollm2 calib "$tiers"
if [ "$ablation" != 0 ] && [ "$calib" != 0 ]; then
  ppl minilm calib-noimp 4
  ppl smollm2 calib-noimp "3 4"
  ppl smollm2 calib-gptq 3
fi

{
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "# Quality per bit, $(date -u +%F), $cpu, $(nproc) cores (scripts/bench-quality.sh)"
  echo
  echo "## Weight error (weighted rel_l2), uc at each k-quant's stored bits"
  echo
  cat "$out/weights-minilm.md"
  echo
  cat "$out/weights-synthetic.md"
  echo
  echo "## Perplexity, KL, embedding cosine, whole-model size (ablation rows included)"
  # Everything is cached by now: this only prints the tables.
  UC_BENCH_OUT="$out" UC_BENCH_TIERS="$tiers" UC_BENCH_METHODS=free bash scripts/bench-ppl.sh smollm2 minilm
} >"$report.tmp"
mv "$report.tmp" "$report"
cat "$report"
echo "wrote $report" >&2
