#!/usr/bin/env bash
# Seeds the fuzz corpora from the conformance vectors (idempotent; existing corpus files are kept):
#   record_parse, record_structured, differential  <- conformance/vectors/{positive,negative}/*.ucr
#   pack_read  <- conformance/vectors/packs/tiny: le32(len(model.safetensors)) ++ model.safetensors
#                 ++ ultracompress.json  (the input format of fuzz_targets/pack_read.rs), plus the
#                 same with an empty manifest and with the manifest alone; the same three from
#                 packs/two_level (v0.4: records with two-level scales, "uc.format": "0.4")
#   gguf_read  <- two small GGUF v3 files written here (a header with llama metadata and one F32
#                 tensor; the same with a token array), no model weights
#   encode_roundtrip  <- nothing (its input is an `arbitrary` struct; libFuzzer starts from empty)
#   sign_bundle  <- conformance/vectors/packs/signed/model.sig behind a trust byte: 0x00 (the key
#                 method, the vector's public key) and 0x01 (certificate roots)
# Usage: bash fuzz/seed-corpus.sh   (from anywhere)
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
vectors="$fuzz/../conformance/vectors"
[ -d "$vectors/positive" ] || { echo "error: $vectors not found" >&2; exit 2; }

for t in record_parse record_structured differential; do
  mkdir -p "$fuzz/corpus/$t"
  cp -p "$vectors"/positive/*.ucr "$vectors"/negative/*.ucr "$fuzz/corpus/$t/"
done
mkdir -p "$fuzz/corpus/encode_roundtrip"

le32() { # prints a number as 4 little-endian bytes
  local n=$1
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"
}
out="$fuzz/corpus/pack_read"
mkdir -p "$out"
for p in tiny two_level; do
  pack="$vectors/packs/$p"
  st_len=$(wc -c < "$pack/model.safetensors")
  { le32 "$st_len"; cat "$pack/model.safetensors" "$pack/ultracompress.json"; } > "$out/seed-$p-pack"
  { le32 "$st_len"; cat "$pack/model.safetensors"; } > "$out/seed-$p-safetensors"
  { le32 0; cat "$pack/ultracompress.json"; } > "$out/seed-$p-manifest"
done
out="$fuzz/corpus/sign_bundle"
mkdir -p "$out"
{ printf '\x00'; cat "$vectors/packs/signed/model.sig"; } > "$out/seed-signed-key"
{ printf '\x01'; cat "$vectors/packs/signed/model.sig"; } > "$out/seed-signed-roots"
mkdir -p "$fuzz/corpus/gguf_read"
python3 - "$fuzz/corpus/gguf_read" <<'PY'
import struct, sys, os
def s(x): b = x.encode(); return struct.pack('<Q', len(b)) + b
def kv_str(k, v): return s(k) + struct.pack('<I', 8) + s(v)
def kv_u32(k, v): return s(k) + struct.pack('<I', 4) + struct.pack('<I', v)
def gguf(kvs, tensors, data):
    head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs) + b''.join(tensors)
    pad = (-len(head)) % 32
    return head + b'\0' * pad + data
t = s('token_embd.weight') + struct.pack('<I', 2) + struct.pack('<QQ', 4, 8) + struct.pack('<IQ', 0, 0)
kvs = [kv_str('general.architecture', 'llama'), kv_u32('general.alignment', 32),
       kv_u32('llama.block_count', 1), kv_u32('llama.embedding_length', 4)]
data = struct.pack('<32f', *[i / 32 for i in range(32)])
out = sys.argv[1]
open(os.path.join(out, 'seed-header'), 'wb').write(gguf(kvs, [t], data))
toks = s('tokenizer.ggml.tokens') + struct.pack('<IIQ', 9, 8, 3) + s('a') + s('b') + s('ab')
open(os.path.join(out, 'seed-tokens'), 'wb').write(gguf(kvs + [toks], [t], data))
PY
echo "seeded: $(for t in record_parse record_structured differential pack_read gguf_read encode_roundtrip sign_bundle; do
  printf '%s=%s ' "$t" "$(ls "$fuzz/corpus/$t" | wc -l)"; done)"
