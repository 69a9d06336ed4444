"""ucpack: load, verify and write uc packs (compressed LLM weights) from Python.

The API follows ``safetensors``::

    import ucpack.numpy
    weights = ucpack.numpy.load_file("pack/model.safetensors")   # dict of decoded arrays

    with ucpack.safe_open("pack/model.safetensors", framework="np") as f:
        w = f.get_tensor("encoder.layer.0.attention.self.query.weight")  # decodes that tensor only

    receipt = ucpack.verify("pack")          # uc-verify: verdict, checks, fingerprint
    ucpack.compress("model_dir", "pack", bpw=4.5)

Records are decoded by the project's Rust decoder (``uc-decode``), bit-exact with every other
decoder of the format; verbatim tensors are returned as stored. Decoding, verification and
compression release the GIL.
"""

from __future__ import annotations

from . import _ucpack
from ._api import RecordView, Receipt, compress, safe_open, verify
from .errors import FormatError, PackError, UcPackError

__version__: str = _ucpack.__version__

__all__ = [
    "safe_open",
    "verify",
    "compress",
    "Receipt",
    "RecordView",
    "FormatError",
    "PackError",
    "UcPackError",
    "__version__",
]
