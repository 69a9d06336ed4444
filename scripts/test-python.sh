#!/usr/bin/env bash
# The Python package's tests (python/, issue #17), run by scripts/test.sh: builds and installs the
# package with `pip install ./python` (maturin and PyO3 from PyPI and crates.io, an abi3 wheel)
# into a fresh venv, then runs its pytest suite against the release binaries, the conformance
# vectors, MiniLM (scripts/fetch-models.sh) and a SmolLM2 pack made here.
#
# torch and transformers (ucpack.torch, ucpack.transformers and their tests): PyPI's only Linux
# torch wheel depends on NVIDIA's CUDA wheels, 2.8 GB to download and 5.7 GB installed. They are
# installed when UC_PY_TORCH=1, or with UC_PY_TORCH=auto (the default) when the disk has at least
# 12 GB free; otherwise this script says plainly that those tests did not run.
# Usage: scripts/test-python.sh    Env: UC_PY_TORCH=auto|1|0, UC_PY_VENV (default .cache/py-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$(realpath -m "${UC_PY_VENV:-.cache/py-venv}")
# Only a venv this script made (its marker file) is ever removed: UC_PY_VENV may name anything.
marker=.ucpack-test-venv
if [ -e "$venv" ] && [ ! -f "$venv/$marker" ]; then
  echo "error: $venv exists and was not made by $0; remove it or set UC_PY_VENV" >&2
  exit 2
fi
rm -rf "$venv"
python3 -m venv "$venv"
touch "$venv/$marker"
py="$venv/bin/python"
pip=("$py" -m pip install --quiet --disable-pip-version-check --no-cache-dir)
"${pip[@]}" "numpy>=1.21" "pytest>=7" "safetensors>=0.4" "openai>=1.0"
want_torch=${UC_PY_TORCH:-auto}
if [ "$want_torch" = auto ]; then
  free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
  if [ "$free_kb" -ge $((12 * 1024 * 1024)) ]; then want_torch=1; else want_torch=0; fi
fi
if [ "$want_torch" = 1 ]; then
  "${pip[@]}" "torch>=2.0" "transformers>=4.40" tokenizers
fi
# The wheel, built from this checkout (CARGO_TARGET_DIR shares the release build's dependencies).
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target} "${pip[@]}" ./python

bin=${CARGO_TARGET_DIR:-$root/target}/release
uc=$bin/uc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
smol_gguf=$(bash scripts/fetch-models.sh smollm2)
$uc import-gguf "$smol_gguf" --output-dir "$work/smollm2-f32" >/dev/null
$uc compress "$work/smollm2-f32" --output-dir "$work/smollm2" --bits 4 --rank 0 >/dev/null
mapfile -t texts < <(bash scripts/fetch-text.sh)
# Outside python/, so that the installed package is imported, not the source folder.
cd "$work"
UC_BIN_DIR="$bin" UC_TEST_SMOLLM2_PACK="$work/smollm2" UC_TEST_MINILM="$root/$(cd "$root" && bash scripts/fetch-models.sh minilm)" \
  UC_TEST_TEXT="${texts[0]}" "$py" -m pytest -q -p no:cacheprovider -rs "$root/python/tests"
if [ "$want_torch" = 1 ]; then
  rm -rf "${venv:?}" # 5.7 GB, made here (its marker)
else
  echo "NOTE: ucpack.torch / ucpack.transformers tests NOT RUN: torch is not installed (UC_PY_TORCH=${UC_PY_TORCH:-auto}: off, or under 12 GB of free disk for PyPI's CUDA torch)"
fi
