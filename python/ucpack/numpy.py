"""``ucpack.numpy``: load a pack's tensors as numpy arrays (mirrors ``safetensors.numpy``)."""

from __future__ import annotations

from typing import Dict

import numpy as np

from ._api import PathLike, load_file as _load_file

__all__ = ["load_file"]


def load_file(filename: PathLike) -> Dict[str, np.ndarray]:
    """Every tensor of a pack's safetensors file (or of every file of a pack directory): records
    decoded to float32 with their overlays merged, verbatim tensors as stored (BF16 widened to
    float32, exactly)."""
    return _load_file(filename, "np")
