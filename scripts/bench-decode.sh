#!/usr/bin/env bash
# Runs the single-threaded decode benchmark for every code width and prints a Markdown table
# (README "Benchmarks"). Usage: scripts/bench-decode.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16777216}
RUNS=${2:-9}
cargo build --locked --release -q -p uc-decode --example decode_bench
bin=target/release/examples/decode_bench
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "Machine: $cpu, $(nproc) cores; N = $N weights (f32 out = $((N * 4 / 1048576)) MiB), best of $RUNS runs, one thread."
echo
echo "| bits | path | decode GB/s | Gweights/s | memcpy GB/s | ratio | portable ratio | scalar ratio |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
for b in 1 2 3 4 5 6 7 8; do
  a=$($bin --bits "$b" --n "$N" --runs "$RUNS" --json)
  p=$($bin --bits "$b" --n "$N" --runs "$RUNS" --json --path portable)
  s=$($bin --bits "$b" --n "$N" --runs 3 --json --path scalar)
  python3 - "$a" "$p" "$s" <<'PY'
import json, sys
a, p, s = (json.loads(x) for x in sys.argv[1:4])
print(f"| {a['bits']} | {a['path']} | {a['decode_gbps']:.2f} | {a['decode_gbps']/4:.2f} | {a['memcpy_gbps']:.2f} | {a['ratio']:.2f} | {p['ratio']:.2f} | {s['ratio']:.2f} |")
PY
done
