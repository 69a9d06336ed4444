"""``ucpack.torch``: load a pack's tensors as torch tensors (mirrors ``safetensors.torch``)."""

from __future__ import annotations

from typing import Any, Dict

from ._api import PathLike, load_file as _load_file

__all__ = ["load_file"]


def load_file(filename: PathLike, device: str = "cpu") -> Dict[str, Any]:
    """Every tensor of a pack's safetensors file (or of every file of a pack directory) as a
    ``torch.Tensor``: records decoded to float32 with their overlays merged, verbatim tensors as
    stored; moved to ``device`` when it is not ``"cpu"``."""
    out = _load_file(filename, "pt")
    if device != "cpu":
        out = {k: v.to(device) for k, v in out.items()}
    return out
