"""Exceptions of ucpack.

Every error the package raises on bad input is one of these or an ``OSError`` subclass
(``FileNotFoundError``, ``PermissionError``, ...) naming the file; a hostile file never crashes the
interpreter.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["UcPackError", "FormatError", "PackError"]


class UcPackError(Exception):
    """Base class of the errors ucpack raises about the content of files and packs."""


class FormatError(UcPackError, ValueError):
    """A record or a safetensors header that the format refuses.

    Attributes:
        error_class: the spec's error class (``bad_magic``, ``crc_mismatch``, ``truncated``, ...;
            for a safetensors header, the strict reader's class such as ``header_too_large``).
        clause: the spec clause the input broke (``R-9.1`` style).
        offset: byte offset from the start of the record (for a header error, of the file).
        file_offset: the same byte, as an offset in the file.
        file: the file's path.
        tensor: the tensor concerned, when one is.
    """

    def __init__(
        self,
        message: str,
        error_class: str,
        clause: str,
        offset: int,
        file_offset: int,
        file: str,
        tensor: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.clause = clause
        self.offset = offset
        self.file_offset = file_offset
        self.file = file
        self.tensor = tensor


class PackError(UcPackError):
    """A pack-level problem: a pack that fails verification, digests that disagree with the
    manifest, a model the encoder cannot compress.

    Attributes:
        path: the pack or file concerned, when one is.
        receipt: the verification receipt, when the error comes from a failed verification.
    """

    def __init__(self, message: str, path: Optional[str] = None, receipt: object = None) -> None:
        super().__init__(message)
        self.path = path
        self.receipt = receipt
