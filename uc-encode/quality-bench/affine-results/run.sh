#!/usr/bin/env bash
# The affine sub-block offset simulation of BENCHMARKS.md ("Affine offsets, simulated"), from the
# repository root after `cargo build --release --manifest-path uc-encode/quality-bench/Cargo.toml`
# and `uc import-gguf "$(bash scripts/fetch-models.sh smollm2)" --output-dir .cache/models/smollm2-f32`.
# Not a format feature: quality-bench computes W = RNE(RNE(e_t*grid[c]) - m_t) itself.
set -euo pipefail
B=${CARGO_TARGET_DIR:-target}/release/uc-quality-bench
L=b2s16q4m3,b2s16q5m2,b2s32q6m8,b2s32q8m6,b3s32q4m4,b3s32q4m5,b3s32q5m3,b3s32q5m4,b3s32q6m2,b3s32q6m3,b4s32q4m6,b4s32q5m5,b4s32q5m6,b4s32q6m4,b4s32q6m5,b4s32q8m2,b4s32q8m3,b4s32q8m8,b5s32q4m6,b5s32q5m5,b5s32q5m6,b5s32q6m4,b5s32q6m5,b5s32q8m2,b5s32q8m3,b5s32q8m8,b6s16q4m2,b6s32q4m8,b6s32q5m8,b6s32q6m6,b6s32q8m4,b6s32q8m5
M=$(bash scripts/fetch-models.sh minilm)
out=${1:-.cache/bench/affine}
mkdir -p "$out"
$B --affine --affine-learned --sets smollm2 --smol-model .cache/models/smollm2-f32/model.safetensors --smol-layers 0,10,20 \
  --sub-blocks 0,16q5,16q6,32q6,32q8 --affine-layouts $L --json "$out/smol.json" >"$out/smol.md"
$B --affine --affine-learned --model "$M" --sets minilm --sub-blocks 0,16q5,16q6,32q6,32q8 --affine-layouts $L \
  --json "$out/minilm.json" >"$out/minilm.md"
$B --affine --sets gaussian,student-t --sub-blocks 0,16q5,16q6 --affine-layouts $L --json "$out/syn.json" >"$out/syn.md"
