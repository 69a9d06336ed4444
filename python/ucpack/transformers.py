"""``ucpack.transformers``: build a ``transformers`` model straight from a uc pack.

Needs ``torch`` and ``transformers`` (``pip install 'ucpack[transformers]'``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from ._api import PathLike, verify
from .errors import PackError

__all__ = ["from_pack"]


def _tied_keys(model: Any) -> set:
    keys = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(keys, dict):  # transformers 5: {target: source}
        keys = list(keys.keys())
    out = set(keys)
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        out.add("lm_head.weight")
    return out


def from_pack(pack_dir: PathLike, cls: Optional[Any] = None, *, verify_pack: bool = True, **config_kwargs: Any) -> Any:
    """The model of a pack: its ``config.json`` (copied into the pack by ``uc compress``) read by
    ``AutoConfig``, the model class ``cls`` (default ``transformers.AutoModel``; an ``Auto*``
    class or a concrete one such as ``BertModel``) built from it, and the pack's weights loaded
    into it: records decoded with their overlays merged (R-8.5), verbatim tensors as stored. Tied
    weights (a tied embedding is one record) are tied again. The model is returned in eval mode.

    With ``verify_pack`` (the default) the pack is verified first (:func:`ucpack.verify`: every
    digest and every record) and a pack that fails raises :class:`ucpack.PackError` with the
    receipt. A pack whose tensors do not fit the model raises ``PackError`` naming them.
    """
    import transformers

    from . import torch as uctorch

    path = os.fspath(pack_dir)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise PackError(f"{path}: no config.json in the pack", path)
    if verify_pack:
        receipt = verify(path)
        if not receipt.verified:
            names = ", ".join(sorted({c.get("check", "?") for c in receipt.failures}))
            raise PackError(f"{path}: the pack fails verification ({names})", path, receipt)
    cls = cls or transformers.AutoModel
    config = transformers.AutoConfig.from_pretrained(path, **config_kwargs)
    model = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    state = uctorch.load_file(path)
    want = set(model.state_dict().keys())
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and not (set(state) & want):
        # A checkpoint saved from the bare model loaded into a model with a head, or the reverse.
        with_p = {f"{prefix}.{k}": v for k, v in state.items()}
        without_p = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
        state = max((with_p, without_p), key=lambda s: len(set(s) & want))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    missing = [k for k in missing if k not in _tied_keys(model)]
    # Checkpoints carry buffers the model recomputes (BERT's position_ids), as from_pretrained
    # ignores them.
    buffers = {n for n, _ in model.named_buffers()}
    ignore = list(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
    unexpected = [k for k in unexpected if k not in buffers and not any(re.search(p, k) for p in ignore)]
    if missing or unexpected:
        raise PackError(
            f"{path}: the pack's tensors do not fit {type(model).__name__}: "
            f"missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}",
            path,
        )
    model.eval()
    return model
