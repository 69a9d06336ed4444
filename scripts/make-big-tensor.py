#!/usr/bin/env python3
"""Writes a one-tensor Hugging Face directory for memory and speed measurements of uc unpack and
uc-verify (BENCHMARKS.md, "Readers at scale"): model.safetensors with one F32 matrix of Gaussian
values (sigma 0.02, a 65 536-value pattern repeated) and a config.json with its hidden size.

Usage: python3 scripts/make-big-tensor.py DIR [ROWS] [COLS]   (default 4096 x 8192)
"""
import array
import json
import os
import random
import struct
import sys

out = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
cols = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
n = rows * cols
random.seed(1)
pattern = array.array('f', [random.gauss(0, 0.02) for _ in range(1 << 16)])
reps, rest = divmod(n, len(pattern))
data = (pattern * reps).tobytes() + pattern[:rest].tobytes()
header = {"__metadata__": {"format": "pt"},
          "layers.0.mlp.w.weight": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, len(data)]}}
h = json.dumps(header).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)))
    f.write(h)
    f.write(data)
with open(os.path.join(out, 'config.json'), 'w') as f:
    json.dump({"hidden_size": rows, "model_type": "test"}, f)
