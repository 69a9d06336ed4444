#!/usr/bin/env bash
# Issue #16's GPU check, in two halves, because the GPU machine has the CUDA driver but neither a
# Rust toolchain nor NVRTC, and nothing outside it can be reached from it:
#
#   scripts/gpu-check.sh --build    here: release binaries (stripped), the kernels' PTX for
#       compute_80 and compute_90 (NVRTC 12.4 from PyPI's nvidia-cuda-nvrtc-cu12, in a venv),
#       into .cache/gpu-check (carried to the device machine; it must stay under 64 MiB).
#   scripts/gpu-check.sh            there, from .cache/gpu-check, in under 8 minutes on an
#       H100/H200:
#       1. CUDA vs CPU byte identity: the `identity` example (every step's output and every record
#          of the edge-case tensors at 1..8 bits, every layout, with and without importance, and
#          of a generated Llama-shaped model's tensors), then `uc compress --device cuda:0` against
#          `--device cpu` on that model: every file of the two packs identical.
#       2. A Llama-7B-shaped model generated there (bf16, seeded) compressed on cuda:0 at 4 bits
#          without overlay: seconds, weights per second against the CPU's on two of its layers,
#          peak device memory (nvidia-smi).
#       3. The wgpu decoder on the NVIDIA adapter through Vulkan, if the machine exposes one:
#          uc-verify --device wgpu on the conformance packs (decoded bit-exactly, every recon
#          digest), and the decode benchmark against the device's copy bandwidth.
#   scripts/gpu-check.sh --dry-run  the CPU parts (CI, no GPU): step 1 and 2 on the CPU side with
#       a small model, and `--device cuda:0` must fail with exit 2 and say why.
#
# Results: JSON lines and logs in $OUT (the device tool's output folder) or .cache/gpu-check/out.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.cache/gpu-check
mode=${1:-run}

if [ "$mode" = --build ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --locked --release -p uc-cli --features wgpu --bin uc
  cargo build --locked --release -p uc-verify --features wgpu --bin uc-verify
  cargo build --locked --release -p uc-cuda --features cuda --example identity
  cargo build --locked --release -p uc-encode --example gen_llama
  cargo build --locked --release -p uc-decode-wgpu --example gpu_bench
  # NVRTC of CUDA 12.4 writes PTX ISA 8.4, which every driver from 550 (CUDA 12.4) on loads; a
  # newer NVRTC's PTX would need as new a driver on the GPU machine, whose version is not known here.
  venv=.cache/cuda-venv-12.4
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12==12.4.127
  nvrtc=$("$venv/bin/python" -c 'import nvidia.cuda_nvrtc as m; print(m.__path__[0])')/lib
  rm -rf "$kit" && mkdir -p "$kit/bin"
  r=$CARGO_TARGET_DIR/release
  for b in uc uc-verify examples/identity examples/gen_llama examples/gpu_bench; do
    strip -o "$kit/bin/$(basename $b)" "$r/$b"
  done
  for a in compute_80 compute_90; do
    LD_LIBRARY_PATH=$nvrtc cargo run --locked --release -q -p uc-cuda --features cuda --example ptx -- "$a" "$kit/gsq-$a.ptx"
  done
  du -sh "$kit"
  size=$(du -sb "$kit" | cut -f1)
  if [ "$size" -ge $((60 << 20)) ]; then echo "error: $kit is $size bytes, over the carry limit" >&2; exit 1; fi
  echo "built $kit; on the GPU machine: bash scripts/gpu-check.sh (carry .cache/gpu-check)"
  exit 0
fi

dry=0
[ "$mode" = --dry-run ] && dry=1
if [ $dry = 1 ]; then
  # CI: the binaries of this checkout's target directory.
  bin=${CARGO_TARGET_DIR:-target}/release
  ex=$bin/examples
  cargo build --locked --release -q -p uc-cli --bin uc
  cargo build --locked --release -q -p uc-cuda --features cuda --example identity
  cargo build --locked --release -q -p uc-encode --example gen_llama
else
  bin=$kit/bin
  ex=$kit/bin
  [ -x "$bin/uc" ] || { echo "error: $bin/uc missing: run scripts/gpu-check.sh --build first and carry $kit" >&2; exit 2; }
  # Precompiled kernels: the device's capability picks compute_90 (sm_90) or compute_80.
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d '.')
  if [ "${cap:-0}" -ge 90 ]; then export UC_CUDA_PTX=$PWD/$kit/gsq-compute_90.ptx; else export UC_CUDA_PTX=$PWD/$kit/gsq-compute_80.ptx; fi
fi
out=${OUT:-$kit/out}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/uc-gpu-check-XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "$*" | tee -a "$out/gpu-check.log"; }
# The first "key":value of a JSON line (top-level keys of uc's summaries come before "tensors").
field() { grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2 | tr -d " "; }

log "== gpu-check $(date -u +%FT%TZ) dry_run=$dry"
if [ $dry = 0 ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee -a "$out/gpu-check.log"
fi

# Step 1: byte identity.
tiny=(--hidden 256 --intermediate 704 --vocab 1000 --dtype f32)
"$ex/gen_llama" --out "$work/llama-tiny" --layers 2 "${tiny[@]}" | tee -a "$out/gpu-check.log"
if [ $dry = 0 ]; then
  "$ex/identity" "$work/llama-tiny" | tee "$out/identity.json" | tee -a "$out/gpu-check.log"
  grep -q '"identical":true' "$out/identity.json"
fi
common=(--bpw 4.5 --rank 0 --fresh --json)
SOURCE_DATE_EPOCH=0 "$bin/uc" compress "$work/llama-tiny" --output-dir "$work/cpu/pack" --device cpu "${common[@]}" > "$out/tiny-cpu.json"
if [ $dry = 1 ]; then
  set +e
  "$bin/uc" compress "$work/llama-tiny" --output-dir "$work/cuda/pack" --device cuda:0 "${common[@]}" 2> "$work/err"
  rc=$?
  set -e
  [ $rc = 2 ] || { echo "error: --device cuda:0 without a GPU exited $rc" >&2; cat "$work/err" >&2; exit 1; }
  [ ! -e "$work/cuda/pack" ] || { echo "error: a failed --device cuda:0 left $work/cuda/pack" >&2; exit 1; }
  log "dry run: --device cuda:0 refused with exit 2: $(head -c 300 "$work/err")"
else
  SOURCE_DATE_EPOCH=0 "$bin/uc" compress "$work/llama-tiny" --output-dir "$work/cuda/pack" --device cuda:0 "${common[@]}" > "$out/tiny-cuda.json"
  for f in "$work"/cpu/pack/*; do
    cmp "$f" "$work/cuda/pack/$(basename "$f")" || { log "FAIL: $(basename "$f") differs between cpu and cuda:0"; exit 1; }
  done
  [ "$(ls "$work/cpu/pack" | wc -l)" = "$(ls "$work/cuda/pack" | wc -l)" ]
  log "step 1: uc compress --device cuda:0 wrote the CPU's bytes ($(ls "$work/cpu/pack" | wc -l) files)"
fi

# Step 2: a 7B-shaped model (gen_llama's default widths, 32 layers); two of its layers for the CPU figure (a small model in the dry run).
fast=(--bits 4 --rank 0 --fresh --json)
two=(--layers 2 --dtype bf16)
[ $dry = 1 ] && two=(--layers 4 "${tiny[@]}")
"$ex/gen_llama" --out "$work/llama7b-2l" "${two[@]}" | tee -a "$out/gpu-check.log"
"$bin/uc" compress "$work/llama7b-2l" --output-dir "$work/p2" --device cpu "${fast[@]}" > "$out/7b-2layers-cpu.json"
cpu_s=$(field seconds < "$out/7b-2layers-cpu.json")
cpu_w=$(field quantized_params < "$out/7b-2layers-cpu.json")
log "step 2 (CPU, $(nproc) cores): ${two[*]}, $cpu_w weights in $cpu_s s: $(awk -v w="$cpu_w" -v s="$cpu_s" 'BEGIN { printf "%.3g", w / s }') weights/s"
rm -rf "$work/p2"
if [ $dry = 0 ]; then
  rm -rf "$work/llama7b-2l"
  t0=$(date +%s.%N)
  "$ex/gen_llama" --out "$work/llama7b" --layers 32 --dtype bf16 --shard-gb 4 | tee -a "$out/gpu-check.log"
  log "generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/mem" &
  smi=$!
  t0=$(date +%s.%N)
  "$bin/uc" compress "$work/llama7b" --output-dir "$work/p7" --device cuda:0 "${fast[@]}" > "$out/7b-cuda.json"
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  kill $smi || true
  g_s=$(field seconds < "$out/7b-cuda.json")
  g_w=$(field quantized_params < "$out/7b-cuda.json")
  peak=$(sort -n "$work/mem" | tail -n1)
  log "step 2 (cuda:0): Llama-7B shape, $g_w weights in $g_s s ($wall s wall, verification included): $(awk -v w="$g_w" -v s="$g_s" 'BEGIN { printf "%.3g", w / s }') weights/s, $(awk -v a="$g_w" -v b="$g_s" -v c="$cpu_w" -v d="$cpu_s" 'BEGIN { printf "%.1f", (a / b) / (c / d) }')x the CPU; peak device memory ${peak} MiB"
  rm -rf "$work/p7" "$work/llama7b"

  # Step 3: wgpu on the NVIDIA adapter, if Vulkan exposes it.
  if "$bin/uc-verify" --quiet --device wgpu conformance/vectors/packs/tiny > "$work/v" 2>&1; then
    log "step 3: uc-verify --device wgpu passed on conformance/vectors/packs/tiny"
    for sub in "" "--sub-block 16 --sub-bits 6"; do
      # shellcheck disable=SC2086 # $sub is two options or none
      "$ex/gpu_bench" --bits 4 --n 67108864 --runs 7 --json $sub | tee -a "$out/gpu-check.log"
    done
  else
    log "step 3: no wgpu adapter usable here: $(head -c 300 "$work/v")"
  fi
fi
log "== gpu-check done"
