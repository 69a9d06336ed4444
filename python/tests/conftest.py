"""Fixtures of the ucpack test suite.

The suite needs the `uc` and `uc-verify` release binaries (UC_BIN_DIR, default ../target/release,
built by scripts/test.sh) for the cross-checks against the command-line tools, and the
conformance vectors of the repository. Real-model tests use the packs and models named by
UC_TEST_MINILM (the MiniLM model directory, scripts/fetch-models.sh minilm) and
UC_TEST_SMOLLM2_PACK (a SmolLM2 pack); scripts/test.sh sets both.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
VECTORS = REPO / "conformance" / "vectors"


def bin_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("UC_BIN_DIR", REPO / "target" / "release"))


def run_uc(*args: str, tool: str = "uc") -> str:
    exe = bin_dir() / tool
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build it with cargo build --release -p uc-cli -p uc-verify")
    return subprocess.run([str(exe), *args], check=True, capture_output=True, text=True).stdout


def write_model(dir: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """A small two-layer model directory (config.json + model.safetensors) of random f32 weights
    with a few outlier columns, and a norm that stays verbatim."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    dir.mkdir(parents=True, exist_ok=True)
    t = {}
    for i in range(2):
        w = rng.standard_normal((96, 128)).astype(np.float32) * 0.05
        w[:, 3] *= 8.0
        t[f"layers.{i}.proj.weight"] = w
        t[f"layers.{i}.norm.weight"] = np.ones(128, dtype=np.float32)
    t["layers.1.gate.weight"] = (rng.standard_normal((256, 128)) * 0.02).astype(np.float32)
    save_file(t, str(dir / "model.safetensors"))
    (dir / "config.json").write_text(json.dumps({"model_type": "synthetic", "hidden_size": 128}))
    return dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_model(tmp_path_factory.mktemp("src") / "model")


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory, model_dir: pathlib.Path) -> pathlib.Path:
    """A v0.4 pack with overlays (bits 3, rank 8), written by ucpack.compress."""
    import ucpack

    out = tmp_path_factory.mktemp("packs") / "p4"
    ucpack.compress(model_dir, out, bits=3, rank=8, threads=2)
    return out


def wrap_record(record: bytes, path: pathlib.Path, name: str = "t") -> pathlib.Path:
    """A record (or any bytes) as the one U8 tensor of a safetensors file."""
    from safetensors.numpy import save_file

    save_file({name: np.frombuffer(record, dtype=np.uint8).copy()}, str(path))
    return path


def vectors(kind: str):
    """(metadata, record bytes) of every conformance vector of a kind (positive, negative)."""
    for meta_path in sorted((VECTORS / kind).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        yield meta, (VECTORS / kind / meta["record"]).read_bytes()


def damaged_copy(pack: pathlib.Path, dst: pathlib.Path, from_end: int, mask: int) -> pathlib.Path:
    """A copy of a pack with one bit pattern flipped in its safetensors file."""
    import shutil

    shutil.copytree(pack, dst)
    f = dst / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-from_end] ^= mask
    f.write_bytes(bytes(data))
    return dst
