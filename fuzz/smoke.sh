#!/usr/bin/env bash
# CI smoke test of the fuzz targets: seeds the corpora from the conformance vectors, builds every
# target (cargo-fuzz: nightly, libFuzzer, AddressSanitizer, debug assertions) from the committed
# fuzz/Cargo.lock, and runs each target for SECONDS (default 60). Exits 1 when any target finds a
# crash, leak, timeout or out-of-memory (the reproducer is in fuzz/artifacts/<target>/), 2 when the
# tools are missing. Installs nothing: `.ci/run` installs the nightly toolchain and cargo-fuzz.
#
# Usage: bash fuzz/smoke.sh [SECONDS]
set -euo pipefail
secs=${1:-60}
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
fuzz="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "error: the nightly toolchain is not installed; run: rustup toolchain install nightly --profile minimal" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

bash "$fuzz/seed-corpus.sh"
# cargo-fuzz has no --locked: check first that fuzz/Cargo.lock is complete and current, so that the
# build below uses exactly the committed versions (update it with `cargo +nightly fuzz build`).
cargo +nightly fetch --locked --manifest-path "$fuzz/Cargo.toml" --quiet
t0=$SECONDS
nice -n 19 cargo +nightly fuzz build
echo "fuzz smoke: built every target in $((SECONDS - t0)) s"

declare -A dict=(
  [record_parse]=record.dict [record_structured]=record.dict [differential]=record.dict
  [pack_read]=safetensors.dict [gguf_read]=gguf.dict [encode_roundtrip]= [sign_bundle]=
)
targets=(record_parse record_structured differential pack_read gguf_read encode_roundtrip sign_bundle)
logs="$fuzz/target/smoke-logs"
mkdir -p "$logs"
failed=()
for t in "${targets[@]}"; do
  args=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
  [ -n "${dict[$t]}" ] && args+=(-dict="$fuzz/dict/${dict[$t]}")
  [ "$t" = encode_roundtrip ] && args+=(-max_len=16384)
  t1=$SECONDS
  if nice -n 19 cargo +nightly fuzz run "$t" -- "${args[@]}" >"$logs/$t.log" 2>&1; then
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -n 1 || true)
    echo "fuzz smoke: $t ok in $((SECONDS - t1)) s: ${done_line:-no DONE line}"
  else
    echo "fuzz smoke: $t FAILED after $((SECONDS - t1)) s; log $logs/$t.log, reproducer in fuzz/artifacts/$t/" >&2
    grep -E -A 12 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "$logs/$t.log" | head -n 40 >&2 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets x ${secs} s, no crash"
