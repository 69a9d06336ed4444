"""`uc serve` through the official `openai` client (PyPI) on the SmolLM2 pack: models, completions
and chat completions, whole and streamed, against `uc run`; bad requests raised as the client's
typed errors with the server still serving; a client that leaves mid-stream stops its
generation; concurrent clients; SIGTERM stops the server with status 0.
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


@pytest.fixture(scope="module")
def server():
    pack = os.environ.get("UC_TEST_SMOLLM2_PACK")
    if not pack:
        pytest.skip("UC_TEST_SMOLLM2_PACK is not set (scripts/test.sh sets it)")
    proc = subprocess.Popen(
        [str(bin_dir() / "uc"), "serve", pack, "--port", "0", "--max-tokens", "48", "--max-prompt-tokens", "256"],
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
    reader = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)
    reader.start()
    client = openai.OpenAI(base_url=f"http://{addr}/v1", api_key="unused", max_retries=0, timeout=120)
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
    _, client, log, _ = server
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
