"""Checksums of pixel arrays and files.

* array sha256: ``sha256(np.ascontiguousarray(a, dtype=uint8).tobytes())`` - the hash of the C-contiguous
  (row-major) uint8 bytes, with no header; shape and dtype are recorded beside it in the manifest
  (``height``, ``width``, ``vis_channels``), so two arrays with the same bytes but another shape never pass.
* file sha256: the hash of the file's bytes, read in 1 MiB blocks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

_BLOCK = 1 << 20


def array_sha256(array: np.ndarray) -> str:
    """sha256 hex digest of the C-contiguous uint8 bytes of ``array``."""
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {array.dtype}")
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()
