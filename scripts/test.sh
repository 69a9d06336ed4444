#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Needs: stable Rust with rustfmt and clippy,
# the thumbv7em-none-eabihf target, the 1.85.0 toolchain (MSRV) and a Vulkan driver (Mesa's
# lavapipe, Debian package mesa-vulkan-drivers, when there is no GPU), and for the fuzz smoke a
# nightly toolchain and cargo-fuzz (UC_FUZZ_SECONDS per target, default 60); `.ci/run` installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
MSRV=1.85.0

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "no_std build of the decoder for a Cortex-M4F (thumbv7em-none-eabihf: no OS, no allocator)"
cargo build --locked -p uc-format -p uc-decode --no-default-features --target thumbv7em-none-eabihf --release
cargo build --locked -p uc-decode --no-default-features --features capi --target thumbv7em-none-eabihf --release

step "MSRV $MSRV: the workspace compiles"
if ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
  echo "error: toolchain $MSRV is not installed; run: rustup toolchain install $MSRV --profile minimal" >&2
  exit 1
fi
# uc-decode-wgpu needs Rust 1.87 (wgpu 30's MSRV); it is built by every other step.
cargo "+$MSRV" check --workspace --all-targets --locked --exclude uc-decode-wgpu

step "tests"
cargo test --workspace --locked
step "tests of the decoder without the std feature (no runtime CPU detection)"
cargo test --locked -p uc-decode --no-default-features --tests

step "GPU decoder (wgpu; Mesa lavapipe without a GPU): bit-exact against the CPU, a GPU adapter is required"
UC_REQUIRE_GPU=1 cargo test --locked -p uc-decode-wgpu
step "uc unpack / uc-verify with their optional wgpu feature (--device wgpu)"
cargo clippy --locked -p uc-encode -p uc-verify --features uc-encode/wgpu,uc-verify/wgpu --all-targets -- -D warnings
cargo run --locked -q -p uc-verify --features wgpu -- --quiet --device wgpu conformance/vectors/packs/tiny
line=$(cargo run --locked -q -p uc-decode-wgpu --example gpu_bench -- --bits 4 --n 262144 --runs 3 --json)
echo "$line"
case "$line" in
  '{"bits":4,"n":262144,"adapter":'*'"decode_gbps":'*'"copy_gbps":'*'"ratio":'*) ;;
  *) echo "error: gpu_bench did not print the expected JSON line" >&2; exit 1 ;;
esac

step "conformance: the C program linked against the C ABI passes every vector through the runner"
ucdec=$(bash conformance/c/build.sh | tail -n 1)
if ! out=$(cargo run --locked -q -p conformance -- run --decoder "$ucdec"); then
  echo "$out" | grep -v '^PASS' >&2
  exit 1
fi
echo "$out" | tail -n 1

step "decode benchmark smoke (prints its JSON line; speed is not judged here)"
line=$(cargo run --locked --release -q -p uc-decode --example decode_bench -- --bits 4 --n 262144 --runs 3 --json)
echo "$line"
case "$line" in
  '{"bits":4,"n":262144,'*'"decode_gbps":'*'"memcpy_gbps":'*'"ratio":'*) ;;
  *) echo "error: decode_bench did not print the expected JSON line" >&2; exit 1 ;;
esac

step "fuzz smoke: every cargo-fuzz target for ${UC_FUZZ_SECONDS:-60} s from the conformance seeds (fuzz/smoke.sh)"
bash fuzz/smoke.sh "${UC_FUZZ_SECONDS:-60}"

step "all checks passed"
