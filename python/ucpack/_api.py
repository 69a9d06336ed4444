"""The implementation behind ``ucpack``'s public names (see the package docstring)."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _ucpack
from .errors import PackError

PathLike = Union[str, "os.PathLike[str]"]

# safetensors dtype names → numpy dtypes (little-endian, as stored).
_NP_DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}

_FRAMEWORKS = {"np": "np", "numpy": "np", "pt": "pt", "torch": "pt"}


def _to_numpy(data: bytearray, dtype: str, shape: Sequence[int]) -> np.ndarray:
    """A zero-copy array over ``data`` (BF16 is widened to float32, exactly: numpy has no bfloat16)."""
    if dtype == "BF16":
        bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return bits.view("<f4").reshape(shape)
    try:
        dt = _NP_DTYPES[dtype]
    except KeyError:
        raise TypeError(f"numpy has no dtype for safetensors {dtype}; use framework='pt'") from None
    return np.frombuffer(data, dtype=dt).reshape(shape)


def _to_torch(data: bytearray, dtype: str, shape: Sequence[int]) -> Any:
    import torch

    dt = {
        "BOOL": torch.bool,
        "U8": torch.uint8,
        "I8": torch.int8,
        "I16": torch.int16,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I32": torch.int32,
        "F32": torch.float32,
        "F64": torch.float64,
        "I64": torch.int64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
        "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "U16": getattr(torch, "uint16", None),
        "U32": getattr(torch, "uint32", None),
        "U64": getattr(torch, "uint64", None),
    }.get(dtype)
    if dt is None:
        raise TypeError(f"this torch has no dtype for safetensors {dtype}")
    if len(data) == 0:
        return torch.empty(tuple(shape), dtype=dt)
    return torch.frombuffer(data, dtype=dt).reshape(tuple(shape))


@dataclass(frozen=True)
class RecordView:
    """A uc record's header fields and sections, read without decoding its weights.

    ``grid`` is the record's ``2^bits`` binary32 values, ``scales`` its binary16 scales (one per
    ``block_size`` weights), ``codes`` and ``sub_scales`` the packed bit streams as stored (spec
    section 6 and 13; :meth:`unpack_codes` unpacks the codes), ``overlay_u`` (rows × rank) and
    ``overlay_v`` (rank × cols) the low-rank overlay as float32 (``None`` without one), and
    ``sections`` the ``(offset, length)`` of the grid, scales, codes, overlay and sub-scales
    sections within the record, which starts at ``file_offset`` in the file.
    """

    name: str
    version_minor: int
    flags: int
    bits: int
    shape: Tuple[int, ...]
    block_size: int
    sub_block: int
    sub_bits: int
    overlay_rank: int
    overlay_dtype: str
    header_len: int
    record_len: int
    crc32: int
    file_offset: int
    sections: Tuple[Tuple[int, int], ...]
    grid: np.ndarray
    scales: np.ndarray
    codes: np.ndarray
    sub_scales: np.ndarray
    overlay: np.ndarray
    overlay_u: Optional[np.ndarray] = None
    overlay_v: Optional[np.ndarray] = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def unpack_codes(self) -> np.ndarray:
        """The ``numel`` codes as uint8 (bit ``u`` of code ``i`` is bit ``i·bits + u`` of the
        little-endian stream, R-6.1)."""
        return _unpack_bits(self.codes, self.bits, self.numel)

    def unpack_sub_scales(self) -> np.ndarray:
        """The sub-scales as uint8 (empty for a record without two-level scales)."""
        if self.sub_block == 0:
            return np.zeros(0, dtype=np.uint8)
        n = -(-self.numel // self.sub_block)
        return _unpack_bits(self.sub_scales, self.sub_bits, n)


def _unpack_bits(stream: np.ndarray, bits: int, n: int) -> np.ndarray:
    flat = np.unpackbits(stream, bitorder="little")[: n * bits].reshape(n, bits)
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    return (flat.astype(np.uint16) @ weights).astype(np.uint8)


class safe_open:
    """Opens a safetensors file of a uc pack (or any safetensors file) by memory map.

    ``get_tensor`` decodes only the tensor asked for; ``get_record`` exposes a record's parts
    without decoding. Usable as a context manager, like ``safetensors.safe_open``.

    Args:
        filename: the ``.safetensors`` file.
        framework: ``"np"`` (numpy arrays) or ``"pt"`` (torch tensors).
        device: ``"cpu"`` (the only device; tensors can be moved afterwards).
    """

    def __init__(self, filename: PathLike, framework: str = "np", device: str = "cpu") -> None:
        if framework not in _FRAMEWORKS:
            raise ValueError(f"framework must be 'np' or 'pt', got {framework!r}")
        if device != "cpu":
            raise ValueError(f"device must be 'cpu', got {device!r} (move the tensors afterwards)")
        self._framework = _FRAMEWORKS[framework]
        self._file: Optional[Any] = _ucpack.File(os.fspath(filename))

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the memory map (arrays already returned stay valid: they own their data)."""
        self._file = None

    def _f(self) -> Any:
        if self._file is None:
            raise ValueError("I/O operation on a closed file")
        return self._file

    def keys(self) -> List[str]:
        """Tensor names, in file order."""
        return self._f().keys()

    def metadata(self) -> Dict[str, str]:
        """The file's ``__metadata__`` (``uc.format`` and the like)."""
        return self._f().metadata()

    def is_record(self, name: str) -> bool:
        """True when the tensor is stored as a uc record (False: verbatim)."""
        return self._f().is_record(name)

    def get_shape(self, name: str) -> Tuple[int, ...]:
        """Shape of the tensor as ``get_tensor`` returns it."""
        return tuple(self._f().info(name)[2])

    def get_tensor(self, name: str, merge_overlay: bool = True) -> Any:
        """Decodes one tensor: a record to float32 (with its low-rank overlay merged as R-8.5
        defines, unless ``merge_overlay=False``, which gives ``W_base``, whose SHA-256 is the
        manifest's ``recon_sha256``), a verbatim tensor as stored."""
        data, dtype, shape = self._f().read(name, merge_overlay)
        if self._framework == "pt":
            return _to_torch(data, dtype, shape)
        return _to_numpy(data, dtype, shape)

    def get_record(self, name: str) -> RecordView:
        """A record's header and sections, without decoding (``ValueError`` for a verbatim tensor)."""
        d = self._f().record(name)
        u8 = lambda b: np.frombuffer(b, dtype=np.uint8)  # noqa: E731
        rank = d["overlay_rank"]
        shape = tuple(d["shape"])
        rows = shape[0] if shape else 1
        cols = int(np.prod(shape[1:], dtype=np.int64))  # 1 for a 1-D record
        return RecordView(
            name=name,
            version_minor=d["version_minor"],
            flags=d["flags"],
            bits=d["bits"],
            shape=shape,
            block_size=d["block_size"],
            sub_block=d["sub_block"],
            sub_bits=d["sub_bits"],
            overlay_rank=rank,
            overlay_dtype=d["overlay_dtype"],
            header_len=d["header_len"],
            record_len=d["record_len"],
            crc32=d["crc32"],
            file_offset=d["file_offset"],
            sections=tuple(tuple(s) for s in d["sections"]),
            grid=np.frombuffer(d["grid"], dtype="<f4"),
            scales=np.frombuffer(d["scales"], dtype="<f2"),
            codes=u8(d["codes"]),
            sub_scales=u8(d["sub_scales"]),
            overlay=u8(d["overlay"]),
            overlay_u=np.frombuffer(d["overlay_u"], dtype="<f4").reshape(rows, rank) if rank else None,
            overlay_v=np.frombuffer(d["overlay_v"], dtype="<f4").reshape(rank, cols) if rank else None,
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


def pack_files(path: PathLike) -> List[str]:
    """The safetensors files to load for ``path``: the file itself, or every ``.safetensors``
    file of a pack directory (its shards, in name order)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        files = sorted(f for f in os.listdir(p) if f.endswith(".safetensors"))
        if not files:
            raise PackError(f"{p}: no .safetensors file in this directory", p)
        return [os.path.join(p, f) for f in files]
    return [p]


def load_file(filename: PathLike, framework: str) -> Dict[str, Any]:
    """Every tensor of a file (or of every safetensors file of a pack directory), decoded."""
    out: Dict[str, Any] = {}
    for f in pack_files(filename):
        with safe_open(f, framework) as sf:
            for k in sf.keys():
                if k in out:
                    raise PackError(f"{f}: tensor {k!r} appears in more than one file", f)
                out[k] = sf.get_tensor(k)
    return out


@dataclass(frozen=True)
class Receipt:
    """The outcome of :func:`verify`: uc-verify's JSON receipt (R-12.10) and its main members.

    ``verified`` is True when every check passed; ``failures`` lists the checks that did not,
    each a dict with ``check`` (its name), ``ok``, ``message`` and, where it applies, ``file``, ``tensor``
    and ``offset``.
    """

    verified: bool
    fingerprint: str
    checks: List[Dict[str, Any]]
    tensors: List[Dict[str, Any]]
    raw: Dict[str, Any] = field(repr=False)

    @property
    def failures(self) -> List[Dict[str, Any]]:
        return [c for c in self.checks if not c.get("ok")]

    def to_json(self) -> str:
        """The receipt as uc-verify writes it with ``--json``."""
        return json.dumps(self.raw, indent=2)

    def __bool__(self) -> bool:
        return self.verified


def verify(pack_dir: PathLike, against: Optional[PathLike] = None) -> Receipt:
    """Verifies a pack with the uc-verify library: structure, every record's validity (R-9.1),
    every file's digest and every tensor's ``recon_sha256`` (and, with ``against``, the
    reconstruction error against the source model). A pack that fails returns a receipt whose
    ``failures`` say why; only a pack that cannot be read at all raises (``OSError``)."""
    raw = json.loads(
        _ucpack.verify(os.fspath(pack_dir), os.fspath(against) if against is not None else None)
    )
    return Receipt(
        verified=bool(raw.get("verified")),
        fingerprint=raw.get("pack", {}).get("fingerprint", ""),
        checks=list(raw.get("checks", [])),
        tensors=list(raw.get("tensors", [])),
        raw=raw,
    )


def compress(
    source: PathLike,
    output_dir: PathLike,
    *,
    bpw: Optional[float] = None,
    bits: Optional[int] = None,
    rank: Optional[int] = None,
    sub_block: Optional[int] = None,
    sub_bits: Optional[int] = None,
    embed_bits: Optional[int] = None,
    threads: Optional[int] = None,
    seed: Optional[int] = None,
    skip: Optional[Sequence[str]] = None,
    license: Optional[str] = None,
    fresh: bool = False,
    exact_analysis: bool = False,
    importance: str = "auto",
    calibration: Optional[PathLike] = None,
    calib_tokens: Optional[int] = None,
    calib_ctx: Optional[int] = None,
    distill_steps: Optional[int] = None,
    rounding: str = "nearest",
    distill_lr: Optional[float] = None,
    method_version: Optional[str] = None,
    sign_key: Optional[PathLike] = None,
    sign_certificate_chain: Optional[Sequence[PathLike]] = None,
) -> Dict[str, Any]:
    """Compresses a local Hugging Face model directory into a uc pack, exactly as
    ``uc compress SOURCE --output-dir OUTPUT_DIR`` with the same options does (``None`` means
    the CLI's default: ``bpw=5.0``, ``sub_block=16``, ``sub_bits=6``, ``embed_bits=6``, all cores,
    seed 0; with ``calibration``, 2048 tokens in windows of 256 and 200 distillation steps at step
    size 0.01; ``sign_key`` and ``sign_certificate_chain`` as ``--sign-key`` and
    ``--sign-certificate-chain``, ``exact_analysis`` as ``--analysis exact``). The
    pack is verified before it is installed; ``fresh=True`` replaces a previous pack that uc
    wrote there (never a directory it did not write). Returns the summary of ``uc compress
    --json``."""
    fs = lambda p: None if p is None else os.fspath(p)  # noqa: E731
    if not os.path.isdir(os.fspath(source)):
        raise FileNotFoundError(errno.ENOENT, "no such model directory", os.fspath(source))
    args = {
        "bpw": bpw,
        "bits": bits,
        "rank": rank,
        "sub_block": sub_block,
        "sub_bits": sub_bits,
        "embed_bits": embed_bits,
        "threads": threads,
        "seed": seed,
        "skip": list(skip) if skip is not None else None,
        "license": license,
        "fresh": fresh,
        "exact_analysis": exact_analysis,
        "importance": importance,
        "calibration": fs(calibration),
        "calib_tokens": calib_tokens,
        "calib_ctx": calib_ctx,
        "distill_steps": distill_steps,
        "rounding": rounding,
        "distill_lr": distill_lr,
        "method_version": method_version,
        "sign_key": fs(sign_key),
        "sign_certificate_chain": [os.fspath(p) for p in sign_certificate_chain] if sign_certificate_chain else None,
    }
    return json.loads(_ucpack.compress(os.fspath(source), os.fspath(output_dir), args))
