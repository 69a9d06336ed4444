"""`uc serve` through the official `openai` client (PyPI) on a generated tiny Llama pack and on the
SmolLM2 pack: models, completions
and chat completions, whole and streamed, against `uc run`; bad requests raised as the client's
typed errors with the server still serving; a client that leaves mid-stream stops its
generation; concurrent clients; SIGTERM stops the server with status 0. On MiniLM:
`/v1/embeddings` of the source directory against transformers' forward pass, and of a 4-bit
pack against the source.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import bin_dir, run_uc

openai = pytest.importorskip("openai")  # scripts/test-python.sh installs it


def _start(model: str, *extra: str):
    proc = subprocess.Popen(
        [str(bin_dir() / "uc"), "serve", model, "--port", "0", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    log: list[str] = []
    addr = None
    for line in proc.stderr:
        log.append(line)
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].strip()
            break
    assert addr, "".join(log)
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    client = openai.OpenAI(base_url=f"http://{addr}/v1", api_key="unused", max_retries=0, timeout=120)
    return proc, client, log


def _tiny_llama(dir, tokenizer_dir: str) -> str:
    """A tiny random Llama (hidden 64, 2 layers, GQA 4/2, tied embeddings) with SmolLM2's
    tokenizer and chat template, compressed to a 4-bit pack: the generated Llama pack the
    openai client runs against besides SmolLM2."""
    import shutil

    import numpy as np
    from safetensors.numpy import save_file

    src = dir / "tiny-llama"
    src.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, f), src / f)
    smol = json.loads(open(os.path.join(tokenizer_dir, "config.json")).read())
    vocab, h, ffn = smol["vocab_size"], 64, 128
    rng = np.random.default_rng(7)
    w = lambda *shape: (rng.standard_normal(shape) * 0.1).astype(np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": w(vocab, h), "model.norm.weight": np.ones(h, np.float32)}
    for i in range(2):
        p = f"model.layers.{i}."
        t |= {
            p + "input_layernorm.weight": np.ones(h, np.float32),
            p + "post_attention_layernorm.weight": np.ones(h, np.float32),
            p + "self_attn.q_proj.weight": w(h, h),
            p + "self_attn.k_proj.weight": w(h // 2, h),
            p + "self_attn.v_proj.weight": w(h // 2, h),
            p + "self_attn.o_proj.weight": w(h, h),
            p + "mlp.gate_proj.weight": w(ffn, h),
            p + "mlp.up_proj.weight": w(ffn, h),
            p + "mlp.down_proj.weight": w(h, ffn),
        }
    save_file(t, str(src / "model.safetensors"))
    cfg = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": h,
        "intermediate_size": ffn, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": vocab,
        "tie_word_embeddings": True, "max_position_embeddings": 512,
        "bos_token_id": smol.get("bos_token_id"), "eos_token_id": smol.get("eos_token_id"),
    }
    (src / "config.json").write_text(json.dumps(cfg))
    pack = dir / "tiny-llama-pack"
    run_uc("compress", str(src), "--output-dir", str(pack), "--bits", "4", "--rank", "0")
    return str(pack)


@pytest.fixture(scope="module", params=["tiny-llama", "smollm2"])
def server(request, tmp_path_factory):
    smol = os.environ.get("UC_TEST_SMOLLM2_PACK")
    if not smol:
        pytest.skip("UC_TEST_SMOLLM2_PACK is not set (scripts/test.sh sets it)")
    if request.param == "tiny-llama":
        pytest.importorskip("safetensors")
        pack = _tiny_llama(tmp_path_factory.mktemp("tiny"), smol)
    else:
        pack = smol
    proc, client, log = _start(pack, "--max-tokens", "48", "--max-prompt-tokens", "256")
    yield pack, client, log, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


def test_models_completions_and_chat_match_uc_run(server) -> None:
    pack, client, _, _ = server
    models = client.models.list().data
    assert len(models) == 1
    model = models[0].id
    extra = models[0].model_extra
    run = json.loads(run_uc("run", pack, "--prompt", "The Jargon File is", "--max-tokens", "8", "--json"))
    assert extra["verified"] is True and extra["fingerprint"] == run["fingerprint"]

    c = client.completions.create(model=model, prompt="The Jargon File is", max_tokens=8, temperature=0)
    assert c.choices[0].text == run["text"]
    assert c.choices[0].finish_reason == "length"
    assert c.usage.completion_tokens == 8 and c.usage.prompt_tokens == run["prompt_tokens"]
    streamed = "".join(
        ch.choices[0].text
        for ch in client.completions.create(
            model=model, prompt="The Jargon File is", max_tokens=8, temperature=0, stream=True
        )
    )
    assert streamed == run["text"]

    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    chat = client.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0)
    text = chat.choices[0].message.content
    assert chat.choices[0].message.role == "assistant" and text
    assert chat.choices[0].finish_reason in ("length", "stop")
    deltas = [
        ch.choices[0].delta.content or ""
        for ch in client.chat.completions.create(
            model=model, messages=msgs, max_tokens=12, temperature=0, stream=True
        )
    ]
    assert "".join(deltas) == text
    # Seeded sampling repeats.
    a = client.completions.create(model=model, prompt="Hello", max_tokens=6, temperature=1.0, seed=5)
    b = client.completions.create(model=model, prompt="Hello", max_tokens=6, temperature=1.0, seed=5)
    assert a.choices[0].text == b.choices[0].text


def test_bad_requests_raise_typed_errors_and_the_server_keeps_serving(server) -> None:
    _, client, _, _ = server
    model = client.models.list().data[0].id
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt="x", max_tokens=-1)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt="word " * 400, max_tokens=2)
    assert e.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[], max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=model, input="x")
    c = client.completions.create(model=model, prompt="Hi", max_tokens=2, temperature=0)
    assert c.usage.completion_tokens == 2


def test_a_client_leaving_mid_stream_stops_its_generation(server) -> None:
    pack, client, log, _ = server
    if "tiny-llama" in pack:
        pytest.skip("the tiny model writes its whole stream before the disconnect reaches the server")
    model = client.models.list().data[0].id
    stream = client.completions.create(model=model, prompt="Once upon a time", max_tokens=48, stream=True)
    next(iter(stream))
    stream.close()
    for _ in range(600):
        if any("the client went away" in line for line in log):
            break
        time.sleep(0.1)
    assert any("the client went away" in line for line in log), "".join(log)
    c = client.completions.create(model=model, prompt="Hi", max_tokens=2, temperature=0)
    assert c.usage.completion_tokens == 2


def test_concurrent_clients_then_sigterm(server) -> None:
    _, client, log, proc = server
    model = client.models.list().data[0].id
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(3):
                r = client.completions.create(model=model, prompt="Hi", max_tokens=2, seed=k * 10 + i)
                assert r.usage.completion_tokens == 2
        except BaseException as e:  # collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    time.sleep(0.2)
    assert any("shut down" in line for line in log), "".join(log)


def test_embeddings_of_minilm_match_transformers_and_the_pack_stays_near(tmp_path) -> None:
    """The source directory served gives transformers' sentence embeddings (mean pooling, L2
    norm) to float32 rounding; a 4-bit pack of it gives embeddings near them; the openai
    client's default base64 encoding carries the same values as floats."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    import numpy as np

    src = os.environ.get("UC_TEST_MINILM")
    if not src:
        pytest.skip("UC_TEST_MINILM is not set (scripts/test.sh sets it)")
    sentences = [
        "A hacker is a person who enjoys exploring the details of programmable systems.",
        "The cat sat on the mat.",
        "Kludge: a clever programming trick intended to solve a particular nasty case.",
    ]
    tok = tokenizers.Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    ref_model = transformers.AutoModel.from_pretrained(src).eval()
    want = []
    with torch.no_grad():
        for t in sentences:
            ids = torch.tensor([tok.encode(t).ids])
            h = ref_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)[0]
            want.append((h / h.norm()).numpy())
    n_tokens = sum(len(tok.encode(t).ids) for t in sentences)

    proc, client, log = _start(src)
    try:
        model = client.models.list().data[0].id
        r = client.embeddings.create(model=model, input=sentences)  # base64 on the wire
        got = [np.array(d.embedding, dtype=np.float32) for d in r.data]
        assert [d.index for d in r.data] == [0, 1, 2]
        assert r.usage.prompt_tokens == n_tokens
        for g, w in zip(got, want):
            assert g.shape == (384,)
            assert np.max(np.abs(g - w)) < 1e-4, np.max(np.abs(g - w))
        f = client.embeddings.create(model=model, input=sentences[1], encoding_format="float")
        assert np.array_equal(np.array(f.data[0].embedding, dtype=np.float32), got[1])
        with pytest.raises(openai.BadRequestError) as e:
            client.embeddings.create(model=model, input="word " * 600)
        assert e.value.body["param"] == "input"
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=model, prompt="x", max_tokens=2)
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0

    pack = tmp_path / "minilm-4bit"
    run_uc("compress", src, "--output-dir", str(pack), "--bits", "4", "--rank", "0")
    proc, client, log = _start(str(pack))
    try:
        models = client.models.list().data
        assert models[0].model_extra["verified"] is True
        r = client.embeddings.create(model=models[0].id, input=sentences)
        for d, w in zip(r.data, want):
            g = np.array(d.embedding, dtype=np.float32)
            cos = float(g @ w)
            assert 0.9 < cos < 0.99999, cos
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
