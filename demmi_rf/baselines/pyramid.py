"""Laplacian-pyramid fusion (Burt & Adelson 1983; fusion rule as in Burt & Kolczynski 1993).

Reference: P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image code", IEEE Trans.
Communications 31(4), 1983. The Gaussian pyramid is ``G_0 = X``, ``G_{k+1} = ↓2(w ∗ G_k)`` with the 5-tap
binomial kernel ``w = [1 4 6 4 1]/16`` in each direction (OpenCV ``pyrDown``, reflect-101 borders); the Laplacian
levels are ``L_k = G_k − ↑2(G_{k+1})`` (``pyrUp``: zero insertion then ``4w``), and the top level is ``L_n = G_n``.
Reconstruction ``G_k = L_k + ↑2(G_{k+1})`` is exact in floating point (up to rounding of the float64 arithmetic).

Fusion of two images A (VIS luminance) and B (IR):

* detail levels ``k < n``: choose-max-absolute, ``L^F_k = L^A_k`` where ``|L^A_k| ≥ |L^B_k|`` else ``L^B_k``
  (ties go to A);
* base level ``k = n``: the average ``(L^A_n + L^B_n) / 2``.

The number of levels follows the image size: ``n = clamp(floor(log2(min(H, W) / 8)), 0, 8)``, so the coarsest
level keeps at least 8 pixels on its short side (e.g. 5 levels at 480x640, 4 at 211x541); ``n = 0`` (images under
16 pixels) degenerates to plain averaging.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ._color import check_pair, luminance, recolour

MIN_TOP = 8
MAX_LEVELS = 8


def n_levels(height: int, width: int) -> int:
    """Number of downsampling steps for an image of ``height x width`` (module docstring)."""
    short = min(height, width)
    if short < 2 * MIN_TOP:
        return 0
    return int(min(MAX_LEVELS, math.floor(math.log2(short / MIN_TOP))))


def laplacian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid ``[L_0, ..., L_levels]`` of a 2-D image (float64), ``L_levels`` the Gaussian top."""
    g = np.asarray(img, dtype=np.float64)
    pyr: list[np.ndarray] = []
    for _ in range(levels):
        down = cv2.pyrDown(g)
        up = cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0]))
        pyr.append(g - up)
        g = down
    pyr.append(g)
    return pyr


def reconstruct(pyr: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`: ``G_k = L_k + ↑2(G_{k+1})`` from the top down."""
    g = pyr[-1]
    for lap in reversed(pyr[:-1]):
        g = lap + cv2.pyrUp(g, dstsize=(lap.shape[1], lap.shape[0]))
    return g


def fuse_laplacian_gray(a: np.ndarray, b: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Float64 Laplacian-pyramid fusion of two 2-D images of equal size (max-abs details, averaged base)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two 2-D images of equal size, got {a.shape} and {b.shape}")
    n = n_levels(*a.shape) if levels is None else int(levels)
    pa, pb = laplacian_pyramid(a, n), laplacian_pyramid(b, n)
    fused = [np.where(np.abs(la) >= np.abs(lb), la, lb) for la, lb in zip(pa[:-1], pb[:-1])]
    fused.append((pa[-1] + pb[-1]) / 2.0)
    return reconstruct(fused)


def fuse_laplacian(vis: np.ndarray, ir: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Laplacian-pyramid fusion of the VIS luminance and the IR image, VIS chroma kept; uint8 of VIS shape."""
    check_pair(vis, ir)
    return recolour(fuse_laplacian_gray(luminance(vis), ir, levels), vis)
