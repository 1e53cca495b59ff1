"""Shared by the metric functions: input checks, row blocks, exact 8-bit histograms, entropy of counts."""

from __future__ import annotations

import numpy as np

from ._elementary import log2


def gray_u8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``img`` is a 2-D uint8 array (a gray 8-bit image) and return it."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 gray data (0-255), got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D gray image, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty image")
    return a


def triple(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a (fused, ir, vis) triple of equal-shape 2-D uint8 images."""
    f, a, b = gray_u8(fused, "fused"), gray_u8(ir, "ir"), gray_u8(vis, "vis")
    if not (f.shape == a.shape == b.shape):
        raise ValueError(f"shape mismatch: fused {f.shape}, ir {a.shape}, vis {b.shape}")
    return f, a, b


def require_min_size(img: np.ndarray, min_h: int, min_w: int, what: str) -> None:
    """Raise ValueError when ``img`` is smaller than ``min_h x min_w`` (a metric's window does not fit)."""
    h, w = img.shape[:2]
    if h < min_h or w < min_w:
        raise ValueError(f"{what} needs an image of at least {min_h}x{min_w} pixels, got {h}x{w}")


_BLOCK_PIXELS = 32768


def row_blocks(h: int, w: int) -> list[tuple[int, int]]:
    """Row ranges ``[r0, r1)`` of about 32k pixels: whole-image reductions run block by block so that their
    temporaries stay small (no full-size float64 or intp copies of the image)."""
    rows = max(1, _BLOCK_PIXELS // max(w, 1))
    return [(r0, min(h, r0 + rows)) for r0 in range(0, h, rows)]


def hist256(img: np.ndarray) -> np.ndarray:
    """256-bin histogram (counts) of a uint8 image (MATLAB ``imhist`` with 256 bins)."""
    counts = np.zeros(256, dtype=np.int64)
    for r0, r1 in row_blocks(*img.shape[:2]):
        counts += np.bincount(img[r0:r1].ravel(), minlength=256)
    return counts.astype(np.float64)


def joint_hist256(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Joint 256 x 256 histogram (counts, flattened ``x * 256 + y``) of two equal-shape uint8 images."""
    counts = np.zeros(256 * 256, dtype=np.int64)
    for r0, r1 in row_blocks(*x.shape[:2]):
        code = x[r0:r1].astype(np.intp) * 256
        code += y[r0:r1]
        counts += np.bincount(code.ravel(), minlength=256 * 256)
    return counts.astype(np.float64)


def entropy_of_counts(counts: np.ndarray, log=log2) -> float:
    """``-sum p log p`` over the non-zero cells of a count table (``p = counts / sum(counts)``)."""
    c = counts[counts > 0]
    p = c / c.sum()
    return float(-np.sum(p * log(p)))
