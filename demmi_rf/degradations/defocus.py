r"""VIS defocus blur: a disk (pillbox) point-spread function softened by a small Gaussian (atom ``defocus``).

.. math::

    y = K_r * x \ \text{per channel}, \qquad
    K_r = \frac{G_{\sigma} \star D_r}{\sum G_{\sigma} \star D_r}, \qquad
    D_r(u, v) = [u^2 + v^2 \le r^2]

with :math:`G_\sigma` the 3x3 Gaussian of σ = 0.5 (``alias_sigma``) and ``star`` the full 2-D convolution,
so K_r is (2r+3) x (2r+3), symmetric and sums to 1 (the image mean is preserved away from borders). Borders
are reflect-101 (``cv2.BORDER_REFLECT_101``: ``dcb|abcd|cba``). Per sample r ~ U{3, 4, 5, 6} (recipe
``[degradations.defocus]``). This is the defocus kernel of Hendrycks & Dietterich, *Benchmarking Neural
Network Robustness to Common Corruptions* (ICLR 2019; imagecorruptions ``defocus_blur``, albumentations
``Defocus``), here applied to float32 data with no intermediate clip, round or ``uint8`` cast.

Speed: ``cv2.filter2D`` switches to a DFT path for kernels of 130 or more cells, which is slower for these
sizes; larger kernels are therefore applied as two half-kernels (rows above and including the centre, rows
below it), both with the same reflect-101 border and anchors, and summed: the same convolution, computed
directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from . import _ranges
from ._arrays import work_buffer

_DIRECT_MAX_CELLS = 121  # cv2.filter2D computes kernels up to 11 x 11 directly (DFT from 130 cells on)


def draw(rng: np.random.Generator, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "defocus") -> dict:
    """One draw: r uniform among the recipe's radii; ``alias_sigma`` is fixed."""
    radius = _ranges.choice(rng, ranges, "radius", atom, lo=0, hi=64)
    alias = _ranges.fixed(ranges, "alias_sigma", atom, lo=0.0, hi=10.0)
    return {"radius": radius, "alias_sigma": alias}


@lru_cache(maxsize=64)
def _kernel(radius: int, alias_sigma: float) -> np.ndarray:
    r = int(radius)
    half = r + 1
    u = np.arange(-half, half + 1)
    disk = ((u[:, None] ** 2 + u[None, :] ** 2) <= r * r).astype(np.float64)
    disk /= disk.sum()
    if alias_sigma > 0:
        g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2.0 * alias_sigma**2))
        g /= g.sum()
    else:
        g = np.array([0.0, 1.0, 0.0])
    # full 3x3 convolution: the disk sits inside a one-pixel ring of zeros, so nothing is cut off
    padded = np.pad(disk, 1)
    k = np.zeros_like(disk)
    for i in range(3):
        for j in range(3):
            k += g[i] * g[j] * padded[i : i + disk.shape[0], j : j + disk.shape[1]]
    k /= k.sum()
    k32 = k.astype(np.float32)
    k32.setflags(write=False)
    return k32


def kernel(radius: int, alias_sigma: float = 0.5) -> np.ndarray:
    """K_r as float32, (2r+3) x (2r+3), normalised to sum 1 (read-only, cached)."""
    if int(radius) != radius or radius < 0:
        raise ValueError(f"defocus radius must be a non-negative integer, got {radius!r}")
    if alias_sigma < 0:
        raise ValueError(f"alias_sigma must be >= 0, got {alias_sigma!r}")
    return _kernel(int(radius), float(alias_sigma))


def convolve_reflect101(image: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Centred 2-D correlation of a float32 image (H x W or H x W x C) with an odd square kernel, border
    reflect-101 (for a symmetric kernel, correlation = convolution). Returns a new float32 array."""
    import cv2

    border = cv2.BORDER_REFLECT_101
    n = k.shape[0]
    c = n // 2
    if n * n <= _DIRECT_MAX_CELLS or (c + 1) * n > _DIRECT_MAX_CELLS:
        out = cv2.filter2D(image, cv2.CV_32F, k, borderType=border)
    else:
        top = np.ascontiguousarray(k[: c + 1])
        bottom = k[c:].copy()
        bottom[0] = 0.0  # the centre row belongs to the top half
        out = cv2.filter2D(image, cv2.CV_32F, top, anchor=(c, c), borderType=border)
        out += cv2.filter2D(image, cv2.CV_32F, bottom, anchor=(c, 0), borderType=border)
    return out.reshape(image.shape)


def apply(
    image: np.ndarray, rng: np.random.Generator | None = None, *, radius: int, alias_sigma: float,
    inplace: bool = False,
) -> np.ndarray:
    """``K_r * image`` in float32. Draws nothing (``rng`` is accepted for a uniform atom signature)."""
    src = work_buffer(image, inplace=True) if image.dtype != np.float32 else image
    return convolve_reflect101(np.ascontiguousarray(src), kernel(radius, alias_sigma))
