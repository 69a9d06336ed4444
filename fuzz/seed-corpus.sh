#!/usr/bin/env bash
# Seeds the fuzz corpora from the conformance vectors (idempotent; existing corpus files are kept):
#   record_parse, record_structured, differential  <- conformance/vectors/{positive,negative}/*.ucr
#   pack_read  <- conformance/vectors/packs/tiny: le32(len(model.safetensors)) ++ model.safetensors
#                 ++ ultracompress.json  (the input format of fuzz_targets/pack_read.rs), plus the
#                 same with an empty manifest and with the manifest alone
#   encode_roundtrip  <- nothing (its input is an `arbitrary` struct; libFuzzer starts from empty)
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
tiny="$vectors/packs/tiny"
out="$fuzz/corpus/pack_read"
mkdir -p "$out"
st_len=$(wc -c < "$tiny/model.safetensors")
{ le32 "$st_len"; cat "$tiny/model.safetensors" "$tiny/ultracompress.json"; } > "$out/seed-tiny-pack"
{ le32 "$st_len"; cat "$tiny/model.safetensors"; } > "$out/seed-tiny-safetensors"
{ le32 0; cat "$tiny/ultracompress.json"; } > "$out/seed-tiny-manifest"
echo "seeded: $(for t in record_parse record_structured differential pack_read encode_roundtrip; do
  printf '%s=%s ' "$t" "$(ls "$fuzz/corpus/$t" | wc -l)"; done)"
