#!/usr/bin/env bash
# Cost of signature verification (BENCHMARKS.md, "Signed packs"): `uc-verify PACK` against
# `uc-verify PACK --public-key PUB.pem` on the same pack in the same run, alternating, best of RUNS.
# The pack is about SIZE_MB of data: one F32 tensor kept verbatim (so that verification is almost
# all hashing, the case where a second hashing pass would show most) and one 1024 x 1024 tensor
# quantized at 4 bits. The signing key is made here with openssl (P-256). Also times `uc sign`.
# Usage: scripts/bench-sign.sh [SIZE_MB] [RUNS]   (default 1024 MB, 3 runs; needs 2 x SIZE_MB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-3}
cargo build --locked --release -q -p uc-cli --bin uc -p uc-verify --bin uc-verify
bin=${CARGO_TARGET_DIR:-target}/release
dir=${UC_BENCH_DIR:-.cache/bench/sign}
mkdir -p "$dir"
python3 - "$dir/src" "$size_mb" <<'PY'
import array, json, os, random, struct, sys
out, mb = sys.argv[1], int(sys.argv[2])
random.seed(1)
pattern = array.array('f', [random.gauss(0, 0.02) for _ in range(1 << 16)])
n_big = mb * (1 << 20) // 4
reps, rest = divmod(n_big, len(pattern))
big = (pattern * reps).tobytes() + pattern[:rest].tobytes()
small = (pattern * 16).tobytes()  # 1024 x 1024
header = {"__metadata__": {"format": "pt"},
          "layers.0.mlp.w.weight": {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, len(small)]},
          "layers.0.norm.weight": {"dtype": "F32", "shape": [n_big], "data_offsets": [len(small), len(small) + len(big)]}}
h = json.dumps(header).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h))); f.write(h); f.write(small); f.write(big)
json.dump({"hidden_size": 1024, "model_type": "uc-bench"}, open(os.path.join(out, 'config.json'), 'w'))
PY
"$bin/uc" compress "$dir/src" --output-dir "$dir/pack" --bits 4 --fresh >/dev/null
rm -rf "$dir/src"
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$dir/key.pem"
openssl pkey -in "$dir/key.pem" -pubout -out "$dir/pub.pem"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
best_sign=999999; best_plain=999999; best_signed=999999
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
cat "$dir"/pack/* >/dev/null # warm the page cache
for _ in $(seq "$runs"); do
  best_sign=$(min "$best_sign" "$(t "$bin/uc" sign "$dir/pack" --key "$dir/key.pem")")
  best_plain=$(min "$best_plain" "$(t "$bin/uc-verify" --quiet "$dir/pack")")
  best_signed=$(min "$best_signed" "$(t "$bin/uc-verify" --quiet "$dir/pack" --public-key "$dir/pub.pem")")
done
bytes=$(du -cb "$dir"/pack/* | tail -n1 | cut -f1)
printf '{"pack_bytes":%s,"runs":%s,"uc_sign_s":%.3f,"verify_s":%.3f,"verify_signed_s":%.3f,"ratio":%.4f,"verify_gbps":%.3f}\n' \
  "$bytes" "$runs" "$best_sign" "$best_plain" "$best_signed" "$(echo "$best_signed / $best_plain" | bc -l)" \
  "$(echo "$bytes / $best_plain / 1000000000" | bc -l)"
