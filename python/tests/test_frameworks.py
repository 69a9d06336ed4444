"""ucpack.torch and ucpack.transformers (need torch and transformers; the MiniLM test also needs
UC_TEST_MINILM and UC_TEST_TEXT, which scripts/test.sh sets)."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

import ucpack
import ucpack.numpy
from conftest import damaged_copy, run_uc

torch = pytest.importorskip("torch")
import ucpack.torch  # noqa: E402


def test_torch_load_file_equals_numpy(pack: pathlib.Path) -> None:
    a = ucpack.numpy.load_file(pack)
    b = ucpack.torch.load_file(pack)
    assert sorted(a) == sorted(b)
    for k in a:
        assert b[k].dtype == torch.float32
        assert b[k].numpy().tobytes() == a[k].tobytes(), k
    with ucpack.safe_open(pack / "model.safetensors", framework="pt") as f:
        t = f.get_tensor("layers.0.proj.weight")
        assert isinstance(t, torch.Tensor) and tuple(t.shape) == (96, 128)


def test_bf16_verbatim_tensor(tmp_path: pathlib.Path) -> None:
    from safetensors.torch import save_file

    t = torch.linspace(-3, 3, 7).to(torch.bfloat16)
    save_file({"b": t}, str(tmp_path / "b.safetensors"))
    with ucpack.safe_open(tmp_path / "b.safetensors", framework="pt") as f:
        assert f.get_tensor("b").dtype == torch.bfloat16 and torch.equal(f.get_tensor("b"), t)
    with ucpack.safe_open(tmp_path / "b.safetensors", framework="np") as f:
        assert np.array_equal(f.get_tensor("b"), t.float().numpy())  # widened exactly


def _embeddings(model, windows):
    with torch.no_grad():
        ids = torch.tensor(windows, dtype=torch.long)
        h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        m = h.mean(1)
        return m / m.norm(dim=-1, keepdim=True)


def test_minilm_from_pack_matches_uc_eval(tmp_path: pathlib.Path) -> None:
    """MiniLM built by from_pack gives the sentence embeddings uc eval computes for the pack:
    the same cosines against the source on the same windows."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    src, text = os.environ.get("UC_TEST_MINILM"), os.environ.get("UC_TEST_TEXT")
    if not src or not text:
        pytest.skip("UC_TEST_MINILM / UC_TEST_TEXT are not set (scripts/test.sh sets them)")
    from ucpack.transformers import from_pack

    pack = tmp_path / "minilm"
    ucpack.compress(src, pack, bits=4, rank=8)
    ctx, max_tokens = 128, 1024
    uc = json.loads(
        run_uc("eval", "compare", src, str(pack), "--text", text, "--ctx", str(ctx), "--max-tokens", str(max_tokens), "--json")
    )
    # The windows of uc eval (uc-models text::windows): the text's tokens without special
    # tokens, ctx - 2 at a time, between [CLS] and [SEP].
    tok = tokenizers.Tokenizer.from_file(str(pathlib.Path(src) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    ids = tok.encode(pathlib.Path(text).read_text(), add_special_tokens=False).ids
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    n = min(len(ids) // (ctx - 2), max_tokens // ctx)
    windows = [[cls, *ids[i * (ctx - 2) : (i + 1) * (ctx - 2)], sep] for i in range(n)]
    assert n == uc["windows"]

    model = from_pack(pack, transformers.AutoModel)
    source = transformers.AutoModel.from_pretrained(src).eval()
    cos = (_embeddings(source, windows) * _embeddings(model, windows)).sum(-1).double()
    assert abs(cos.mean().item() - uc["mean_cosine"]) < 2e-5, (cos.mean().item(), uc["mean_cosine"])
    assert abs(cos.min().item() - uc["min_cosine"]) < 2e-5, (cos.min().item(), uc["min_cosine"])
    assert cos.mean().item() < 0.9999  # the pack is not the source

    # The same weights as `uc unpack --merge-overlay`, bit for bit.
    run_uc("unpack", str(pack), "--output-dir", str(tmp_path / "f32"), "--merge-overlay")
    unpacked = transformers.AutoModel.from_pretrained(str(tmp_path / "f32")).eval()
    for (k, a), (k2, b) in zip(model.state_dict().items(), unpacked.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_from_pack_refuses_a_damaged_pack(pack: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("transformers")
    from ucpack.transformers import from_pack

    bad = damaged_copy(pack, tmp_path / "bad", 64, 1)
    with pytest.raises(ucpack.PackError) as e:
        from_pack(bad)
    assert e.value.receipt is not None and not e.value.receipt.verified


def test_smollm2_from_pack_equals_the_unpacked_model(tmp_path: pathlib.Path) -> None:
    """A causal LM with a tied embedding (one record used both ways): from_pack gives the logits
    of the same model unpacked by `uc unpack --merge-overlay`, bit for bit."""
    transformers = pytest.importorskip("transformers")
    pack = os.environ.get("UC_TEST_SMOLLM2_PACK")
    if not pack:
        pytest.skip("UC_TEST_SMOLLM2_PACK is not set (scripts/test.sh sets it)")
    from ucpack.transformers import from_pack

    model = from_pack(pack, transformers.AutoModelForCausalLM)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    run_uc("unpack", pack, "--output-dir", str(tmp_path / "f32"), "--merge-overlay")
    unpacked = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "f32")).eval()
    ids = torch.tensor([[1, 504, 3145, 282, 253, 1789, 30, 216]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, unpacked(ids).logits)
