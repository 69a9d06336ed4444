#!/usr/bin/env bash
# Decode speed side by side with the k-quants (BENCHMARKS.md, "Decode speed"): for each tier, uc's
# decode_bench (v0.3 records and v0.4 two-level records, auto path) and the peers' dequantization to
# f32 of the nearest k-quant, one thread, each against a memcpy measured in the same process, the
# runs of one tier back to back. Peers: candle's k_quants (always; a Rust port of ggml's
# dequantize_row_*) and, when GGML_DIR names a checkout of github.com/ggml-org/ggml, ggml's own C
# (src/ggml-quants.c, compiled here with gcc -O3 -mavx2 -mfma -mf16c; not part of this repository).
# Usage: [GGML_DIR=...] scripts/bench-decode-peer.sh [N] [RUNS]     (N a multiple of 256)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4194304}
RUNS=${2:-11}
cargo build --locked --release -q -p uc-decode --example decode_bench -p uc-models --example kquant_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples
ggml=""
if [ -n "${GGML_DIR:-}" ]; then
  out=$(mktemp -d)
  rev=$(git -C "$GGML_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
  gcc -O3 -mavx2 -mfma -mf16c -DGGML_REV="\"$rev\"" -I"$GGML_DIR/include" -I"$GGML_DIR/src" -I"$GGML_DIR/src/ggml-cpu" \
    scripts/peer/ggml_dequant_bench.c scripts/peer/ggml_stubs.c "$GGML_DIR/src/ggml-quants.c" -lm -o "$out/ggml_dequant_bench"
  ggml="$out/ggml_dequant_bench"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "Machine: $cpu, $(nproc) cores; N = $N weights, best of $RUNS runs, one thread; GB/s of f32 written."
echo
echo "| uc bits | uc v0.3 | uc v0.4 S=16 q=6 | peer | candle | ggml | memcpy | uc v0.4 / best peer |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|"
for pair in 3:q3k 4:q4k 5:q5k 6:q6k 8:q8_0; do
  b=${pair%%:*}; t=${pair#*:}
  u3=$($bin/decode_bench --bits "$b" --n "$N" --runs "$RUNS" --json)
  u4=$($bin/decode_bench --bits "$b" --n "$N" --runs "$RUNS" --json --sub-block 16)
  c=$($bin/kquant_bench --type "$t" --n "$N" --runs "$RUNS")
  g='{}'
  if [ -n "$ggml" ]; then g=$("$ggml" "$t" "$N" "$RUNS"); fi
  python3 - "$u3" "$u4" "$c" "$g" "$t" <<'PY'
import json, sys
u3, u4, c, g = (json.loads(x) for x in sys.argv[1:5])
t = sys.argv[5]
gg = g.get("decode_gbps")
best = max(c["decode_gbps"], gg or 0)
print(f"| {u3['bits']} | {u3['decode_gbps']:.2f} | {u4['decode_gbps']:.2f} | {t.upper().replace('K', '_K')} | "
      f"{c['decode_gbps']:.2f} | {'%.2f' % gg if gg else '—'} | {u3['memcpy_gbps']:.2f} | {u4['decode_gbps'] / best:.2f} |")
PY
done
