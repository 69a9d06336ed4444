"""ucpack.numpy.load_file of a pack against safetensors.numpy.load_file of the same weights
unpacked to f32 (`uc unpack --merge-overlay`), side by side in one run, files in the page cache.

Usage: python bench/load_bench.py PACK_DIR UNPACKED_DIR [--runs N] [--json]
Prints the best of N runs of each, the f32 GB/s produced and the ratio (goal: >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import safetensors.numpy

import ucpack
import ucpack.numpy


def best(f, runs: int) -> float:
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        out = f()
        t.append(time.perf_counter() - s)
        del out
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pack")
    ap.add_argument("unpacked")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    pack_file = os.path.join(a.pack, "model.safetensors")
    f32_file = os.path.join(a.unpacked, "model.safetensors")
    ref = safetensors.numpy.load_file(f32_file)
    got = ucpack.numpy.load_file(pack_file)
    assert sorted(ref) == sorted(got)
    assert all(ref[k].tobytes() == got[k].tobytes() for k in ref), "the pack does not decode to the unpacked weights"
    nbytes = sum(v.nbytes for v in ref.values())
    del ref, got
    for _ in range(2):  # warm the page cache
        safetensors.numpy.load_file(f32_file)
        ucpack.numpy.load_file(pack_file)
    t_st = best(lambda: safetensors.numpy.load_file(f32_file), a.runs)
    t_uc = best(lambda: ucpack.numpy.load_file(pack_file), a.runs)
    r = {
        "f32_bytes": nbytes,
        "pack_bytes": os.path.getsize(pack_file),
        "safetensors_s": round(t_st, 4),
        "ucpack_s": round(t_uc, 4),
        "safetensors_gbps": round(nbytes / t_st / 1e9, 3),
        "ucpack_gbps": round(nbytes / t_uc / 1e9, 3),
        "ratio": round(t_st / t_uc, 3),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "ucpack": ucpack.__version__,
        "safetensors": getattr(safetensors, "__version__", "?"),
    }
    if a.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k:18} {v}")


if __name__ == "__main__":
    main()
