"""ucpack against the Rust tools and the conformance vectors: bit-exact decoding, record parts,
verification, compression, typed errors on hostile input."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest

import ucpack
import ucpack.numpy
from conftest import VECTORS, damaged_copy, run_uc, vectors, wrap_record


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def manifest(pack: pathlib.Path) -> dict:
    return json.loads((pack / "ultracompress.json").read_text())


def test_decoded_base_matches_manifest_digest(pack: pathlib.Path) -> None:
    m = manifest(pack)
    records = 0
    with ucpack.safe_open(pack / "model.safetensors") as f:
        for name in f.keys():
            if f.is_record(name):
                base = f.get_tensor(name, merge_overlay=False)
                assert base.dtype == np.float32 and base.shape == tuple(m["tensors"][name]["shape"])
                assert sha256(base) == m["tensors"][name]["recon_sha256"], name
                records += 1
    assert records == 3


def test_load_file_equals_uc_unpack(pack: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from safetensors.numpy import load_file

    run_uc("unpack", str(pack), "--output-dir", str(tmp_path / "f32"), "--merge-overlay")
    run_uc("unpack", str(pack), "--output-dir", str(tmp_path / "base"))
    want = load_file(str(tmp_path / "f32" / "model.safetensors"))
    base = load_file(str(tmp_path / "base" / "model.safetensors"))
    got = ucpack.numpy.load_file(pack / "model.safetensors")
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].tobytes() == v.tobytes(), k  # bit for bit, overlays merged
    with ucpack.safe_open(pack / "model.safetensors") as f:
        for k, v in base.items():
            assert f.get_tensor(k, merge_overlay=False).tobytes() == v.tobytes(), k
    # A pack directory loads like its file.
    assert sorted(ucpack.numpy.load_file(pack)) == sorted(want)


@pytest.mark.parametrize("sub_block", [0, 16, 32])
def test_record_parts_reconstruct_w_base(model_dir: pathlib.Path, tmp_path: pathlib.Path, sub_block: int) -> None:
    """W_base rebuilt in numpy from get_record's parts (R-7.1 / R-13.4: one binary32 rounding)
    equals the decoder's, bit for bit."""
    out = tmp_path / "p"
    ucpack.compress(model_dir, out, bits=5, rank=0, sub_block=sub_block, threads=1)
    with ucpack.safe_open(out / "model.safetensors") as f:
        name = "layers.0.proj.weight"
        r = f.get_record(name)
        assert r.bits == 5 and r.shape == (96, 128) and r.sub_block == sub_block
        assert r.version_minor == (4 if sub_block else 3)
        codes = r.unpack_codes()
        assert codes.shape == (r.numel,) and codes.max() < 32
        i = np.arange(r.numel)
        scale = r.scales.astype(np.float32)[i // r.block_size]
        if sub_block:
            scale = scale * r.unpack_sub_scales().astype(np.float32)[i // sub_block]  # exact
        w = (scale * r.grid[codes]).astype(np.float32)
        assert w.tobytes() == f.get_tensor(name, merge_overlay=False).reshape(-1).tobytes()
        assert r.overlay_u is None and r.overlay_v is None


def test_overlay_parts(pack: pathlib.Path) -> None:
    with ucpack.safe_open(pack / "model.safetensors") as f:
        name = "layers.0.proj.weight"
        r = f.get_record(name)
        assert r.overlay_rank == 8 and r.overlay_u.shape == (96, 8) and r.overlay_v.shape == (8, 128)
        merged = f.get_tensor(name).astype(np.float64)
        base = f.get_tensor(name, merge_overlay=False).astype(np.float64)
        # merges in binary32; the f64 product differs from it by rounding only.
        np.testing.assert_allclose(merged - base, r.overlay_u.astype(np.float64) @ r.overlay_v, atol=1e-6)


def test_every_positive_vector_decodes_bit_exactly(tmp_path: pathlib.Path) -> None:
    merged_seen = seen = 0
    for meta, rec in vectors("positive"):
        seen += 1
        path = wrap_record(rec, tmp_path / f"{meta['name']}.safetensors")
        with ucpack.safe_open(path) as f:
            got = f.get_tensor("t", merge_overlay=False)
            merged = f.get_tensor("t")
        want = (VECTORS / "positive" / meta["w_base"]["file"]).read_bytes()
        assert got.reshape(-1).tobytes() == want, meta["name"]
        if meta["merged"]:
            # R-8.5's merge is exact too: the reference's merged values, bit for bit.
            want = (VECTORS / "positive" / meta["merged"]["file"]).read_bytes()
            assert merged.reshape(-1).tobytes() == want, meta["name"]
            merged_seen += 1
    assert seen > 20 and merged_seen > 0


def test_every_negative_vector_raises_format_error(tmp_path: pathlib.Path) -> None:
    raised = 0
    for meta, rec in vectors("negative"):
        if meta.get("every_prefix"):
            for cut in range(len(rec)):
                path = wrap_record(rec[:cut], tmp_path / f"{meta['name']}_{cut}.safetensors")
                with ucpack.safe_open(path) as f:
                    if cut < 8:
                        assert f.get_tensor("t").tobytes() == rec[:cut]
                        continue
                    with pytest.raises(ucpack.FormatError) as e:
                        f.get_tensor("t")
                    assert (e.value.error_class, e.value.offset) == ("truncated", cut)
            continue
        path = wrap_record(rec, tmp_path / f"{meta['name']}.safetensors")
        with ucpack.safe_open(path) as f:
            if not rec.startswith(b"\x89UCR\r\n\x1a\n"):
                # Without the magic the bytes are not a record: a plain U8 tensor, as stored.
                assert f.get_tensor("t").tobytes() == rec, meta["name"]
                continue
            assert f.is_record("t")
            for call in (lambda: f.get_tensor("t"), lambda: f.get_record("t")):
                with pytest.raises(ucpack.FormatError) as e:
                    call()
                assert e.value.error_class == meta["error"], meta["name"]
                assert e.value.offset == meta["offset"], meta["name"]
                assert e.value.tensor == "t" and e.value.file == str(path)
                assert e.value.file_offset > e.value.offset
                assert isinstance(e.value, ValueError)
            raised += 1
    assert raised > 100


def test_verify_receipt_matches_uc_verify(pack: pathlib.Path) -> None:
    receipt = ucpack.verify(pack)
    assert receipt.verified and bool(receipt) and receipt.failures == []
    cli = json.loads(run_uc("--json", "-", str(pack), tool="uc-verify"))
    assert receipt.fingerprint == cli["pack"]["fingerprint"]
    assert [c["check"] for c in receipt.checks] == [c["check"] for c in cli["checks"]]
    assert json.loads(receipt.to_json())["verified"] is True


def test_verify_reports_a_damaged_pack_without_raising(pack: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = damaged_copy(pack, tmp_path / "bad", 100, 0x40)
    receipt = ucpack.verify(bad)
    assert not receipt.verified and receipt.failures
    assert any(c["check"].startswith(("file.", "tensor.", "safetensors.")) for c in receipt.failures), receipt.failures


def test_verify_of_a_missing_pack_is_an_os_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OSError):
        ucpack.verify(tmp_path / "nowhere")


def test_truncated_and_missing_files(pack: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = (pack / "model.safetensors").read_bytes()
    for cut in (0, 5, 8, 100, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.safetensors"
        p.write_bytes(data[:cut])
        with pytest.raises(ucpack.FormatError) as e:
            ucpack.safe_open(p)
        assert e.value.file == str(p)
    with pytest.raises(FileNotFoundError):
        ucpack.safe_open(tmp_path / "missing.safetensors")
    with pytest.raises(OSError):
        ucpack.safe_open(tmp_path)
    with pytest.raises(KeyError):
        ucpack.safe_open(pack / "model.safetensors").get_tensor("no.such.tensor")
    with pytest.raises(ValueError):
        ucpack.safe_open(pack / "model.safetensors", framework="jax")


def test_hostile_header_length(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "huge.safetensors"
    p.write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    with pytest.raises(ucpack.FormatError) as e:
        ucpack.safe_open(p)
    assert e.value.error_class == "header_too_large"


def test_compress_is_deterministic_and_keeps_foreign_directories(model_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    s = ucpack.compress(model_dir, a, bpw=4.0, threads=1)
    assert s["verification_checks_passed"] > 0 and abs(s["bpw_records"] - 4.0) < 0.5
    ucpack.compress(model_dir, b, bpw=4.0, threads=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    # --fresh never deletes what uc did not write.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ucpack.PackError):
        ucpack.compress(model_dir, mine, bits=4, fresh=True)
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(ValueError):
        ucpack.compress(model_dir, tmp_path / "c", importance="activations")
    with pytest.raises(ValueError):
        ucpack.compress(model_dir, tmp_path / "c", sub_block=8)
    with pytest.raises(FileNotFoundError):
        ucpack.compress(tmp_path / "no-model", tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_verbatim_tensors_keep_their_dtype(tmp_path: pathlib.Path) -> None:
    from safetensors.numpy import save_file

    t = {"i": np.arange(6, dtype=np.int64).reshape(2, 3), "h": np.linspace(-1, 1, 5).astype(np.float16)}
    save_file(t, str(tmp_path / "v.safetensors"), metadata={"k": "v"})
    with ucpack.safe_open(tmp_path / "v.safetensors") as f:
        assert f.metadata() == {"k": "v"}
        assert not f.is_record("i")
        for k, v in t.items():
            got = f.get_tensor(k)
            assert got.dtype == v.dtype and np.array_equal(got, v)


def test_get_tensor_touches_only_that_tensor() -> None:
    """Resident memory grows by about the decoded tensor, not by the pack (SmolLM2)."""
    pack = os.environ.get("UC_TEST_SMOLLM2_PACK")
    if not pack:
        pytest.skip("UC_TEST_SMOLLM2_PACK is not set (scripts/test.sh sets it)")

    def rss() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    path = pathlib.Path(pack) / "model.safetensors"
    name = "model.layers.7.mlp.down_proj.weight"
    size = os.path.getsize(path)
    before = rss()
    with ucpack.safe_open(path) as f:
        r = f.get_record(name)
        w = f.get_tensor(name)
        grown = rss() - before
    f32 = w.nbytes
    assert w.shape == (576, 1536)
    # The tensor's f32, its record's pages (read twice: parts and decode), allocator slack.
    assert grown <= f32 + 2 * r.record_len + (4 << 20), (grown, f32, r.record_len, size)
    assert grown < size / 4, (grown, size)


def test_the_gil_is_released_during_native_work(tmp_path: pathlib.Path) -> None:
    """Another Python thread runs *during* one compression, one verification and one decode
    (each a single native call): with the GIL held, the main thread's ticks inside the call
    would be a few thousand a second instead of about a million."""
    from conftest import write_model

    src = write_model(tmp_path / "m", seed=3)
    big = np.random.default_rng(1).standard_normal((65536, 128)).astype(np.float32)
    from safetensors.numpy import save_file

    from safetensors.numpy import load_file

    save_file({**load_file(str(src / "model.safetensors")), "big.weight": big}, str(src / "model.safetensors"))
    pack = tmp_path / "p"

    # The native calls themselves (ucpack._ucpack), so that the span holds no Python bytecode
    # at which a thread switch could happen anyway.
    from ucpack import _ucpack

    args = {k: None for k in ("bpw", "sub_block", "sub_bits", "embed_bits", "seed", "skip", "license",
                              "calibration", "calib_tokens", "calib_ctx", "distill_steps", "sign_key",
                              "distill_lr", "method_version", "sign_certificate_chain")}
    args.update(bits=4, rank=0, threads=1, fresh=False, exact_analysis=False, importance="auto", rounding="nearest")
    calls = {
        "compress": lambda: _ucpack.compress(str(src), str(pack), args),
        "verify": lambda: _ucpack.verify(str(pack), None),
        "decode": lambda: f.read("big.weight", True),
    }
    f = None

    def opened():
        nonlocal f
        f = _ucpack.File(str(pack / "model.safetensors"))
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        _check_ticks_inside(calls, before={"decode": opened})
    finally:
        sys.setswitchinterval(old)


def _check_ticks_inside(calls: dict, before: dict = {}) -> None:
    import threading
    import time

    for what, call in calls.items():
        if what in before:
            before[what]()
        span = {}

        def work() -> None:
            span["start"] = time.perf_counter()
            call()
            span["end"] = time.perf_counter()

        t = threading.Thread(target=work)
        ticks = []
        t.start()
        while t.is_alive():
            ticks.append(time.perf_counter())
        t.join()
        lo, hi = span["start"] + 0.002, span["end"] - 0.002
        inside = sum(1 for x in ticks if lo < x < hi)
        assert hi - lo > 0.002, (what, span)
        # A free main thread ticks about a million times a second here; one that waits for a GIL
        # held by the call gets a few thousand (measured with sorted() of 2M ints: 1.8k/s).
        rate = inside / (hi - lo)
        print(f"{what}: {hi - lo:.4f} s, {rate:.0f} ticks/s")
        assert rate > 100_000, (what, rate)


def test_negative_vectors_inside_a_pack(pack: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """A pack whose weights file holds a conformance negative: verify reports the record's
    failure (no exception), loading raises FormatError with the vector's class and offset."""
    tried = 0
    for meta, rec in vectors("negative"):
        if not rec.startswith(b"\x89UCR\r\n\x1a\n") or meta.get("every_prefix"):
            continue
        bad = tmp_path / meta["name"]
        shutil.copytree(pack, bad)
        wrap_record(rec, bad / "model.safetensors", name="layers.0.proj.weight")
        receipt = ucpack.verify(bad)
        assert not receipt.verified, meta["name"]
        assert any(c["check"] == "tensor.record" and c["tensor"] == "layers.0.proj.weight" for c in receipt.failures), meta["name"]
        with pytest.raises(ucpack.FormatError) as e:
            ucpack.numpy.load_file(bad)
        assert (e.value.error_class, e.value.offset) == (meta["error"], meta["offset"]), meta["name"]
        tried += 1
    assert tried > 100


def test_compress_signs_with_a_key(model_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import subprocess

    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(tmp_path / "pub.pem")], check=True)
    out = tmp_path / "signed"
    s = ucpack.compress(model_dir, out, bits=4, rank=0, sign_key=key, method_version="gsq-test")
    assert (out / "model.sig").is_file() and s["verification_checks_passed"] > 0
    assert manifest(out)["method_version"] == "gsq-test"
    run_uc(str(out), "--public-key", str(tmp_path / "pub.pem"), tool="uc-verify")  # exits 0: signature valid
    with pytest.raises(ucpack.PackError, match="no-key.pem"):  # the key is read before any work
        ucpack.compress(model_dir, tmp_path / "x", sign_key=tmp_path / "no-key.pem")
    assert not (tmp_path / "x").exists()
