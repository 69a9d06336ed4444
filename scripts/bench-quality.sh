#!/usr/bin/env bash
# Issue #19's quality table in one command, beside the k-quants of the same tensors:
#   1. weight error (weighted rel_l2) per tier on MiniLM's real weights and on the Gaussian and
#      Student-t matrices (uc-encode/quality-bench: uc at each k-quant's stored bits, tensor by
#      tensor, against candle's port of ggml's quantizers);
#   2. SmolLM2-135M (PPL_r, mean next-token KL, top-1 agreement) and MiniLM (embedding cosine) at
#      the k-quant tiers Q2_K..Q6_K and at uc-only budgets of 2.5, 3, 3.5, 4, 5 and 6 bpw,
#      data-free and calibrated, with compress time, peak RSS and whole-model size
#      (scripts/bench-ppl.sh, whose results are cached per run in the output folder: an
#      interrupted run resumes where it stopped).
# Everything is local: the models come from PyPI packages (scripts/fetch-models.sh), the text from
# Debian's jargon-text (scripts/fetch-text.sh).
# Cost on 2 cores: about 1 hour data-free; each calibrated SmolLM2 run adds about 15 minutes
# (UC_QUALITY_CALIB=0 skips the calibrated runs; UC_QUALITY_TIERS overrides the tier list).
# Usage: scripts/bench-quality.sh    Output: $UC_QUALITY_OUT/quality.md (default .cache/bench/quality)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${UC_QUALITY_OUT:-.cache/bench/quality}
tiers=${UC_QUALITY_TIERS:-2 b2.5 b3 3 b3.5 b4 4 b5 5 b6 6}
methods="free"
[ "${UC_QUALITY_CALIB:-1}" = 0 ] || methods="free calib"
mkdir -p "$out"
report="$out/quality.md"
minilm=$(bash scripts/fetch-models.sh minilm)
qb=(cargo run --locked --release -q --manifest-path uc-encode/quality-bench/Cargo.toml --)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
{
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "# Quality per bit, $(date -u +%F), $cpu, $(nproc) cores (scripts/bench-quality.sh)"
  echo
  echo "## Weight error (weighted rel_l2), uc at each k-quant's stored bits"
  echo
  "${qb[@]}" --model "$minilm" --sets minilm --ranks 0 --sub-blocks 0,16q6,16q5,32q6,32q8
  echo
  "${qb[@]}" --sets gaussian,student-t --ranks 0 --sub-blocks 0,16q5,16q6
  echo
  echo "## Perplexity, KL, embedding cosine, whole-model size"
  UC_BENCH_OUT="$out" UC_BENCH_TIERS="$tiers" UC_BENCH_METHODS="$methods" bash scripts/bench-ppl.sh smollm2 minilm
} | tee "$report.tmp"
mv "$report.tmp" "$report"
echo "wrote $report" >&2
