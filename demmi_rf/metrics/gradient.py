"""Gradient-based single-image metrics: SF (spatial frequency), AG (average gradient), EI (edge intensity)."""

from __future__ import annotations

import numpy as np

from ._common import gray_u8, require_min_size, row_blocks
from ._filters import correlate2d


def spatial_frequency(fused: np.ndarray, convention: str = "tang") -> float:
    """SF: ``sqrt(RF^2 + CF^2)`` from horizontal and vertical first differences.

    - ``tang`` / ``cddfuse``: ``RF^2 = mean((F[i, j+1] - F[i, j])^2)`` over the H(W-1) differences, ``CF^2``
      likewise over the (H-1)W vertical ones (``SF_evaluation.m``; ``Evaluator.SF``).
    - ``vifb`` (``metricsSpatial_frequency.m``): both sums divided by ``H W`` instead (quirk: slightly smaller).

    Input: uint8 gray, 0-255 scale. No padding (differences inside the image only); needs at least 2x2 pixels.
    Reference: Eskicioglu & Fisher, IEEE Trans. Commun. 1995.
    """
    f = gray_u8(fused, "fused")
    if convention not in ("tang", "vifb", "cddfuse"):
        raise ValueError(f"unknown SF convention {convention!r}; expected tang, vifb or cddfuse")
    require_min_size(f, 2, 2, "SF")
    h, w = f.shape
    row_sq = 0.0  # sums of squared integer differences: exact in float64, block by block
    col_sq = 0.0
    for r0, r1 in row_blocks(h, w):
        blk = f[r0 : min(h, r1 + 1)].astype(np.float64)  # one more row for the vertical differences
        dr = np.diff(blk[: r1 - r0], axis=1)
        row_sq += float(np.sum(dr * dr))
        if blk.shape[0] > 1:
            dc = np.diff(blk, axis=0)
            col_sq += float(np.sum(dc * dc))
    if convention == "vifb":
        return float(np.sqrt((row_sq + col_sq) / (h * w)))
    return float(np.sqrt(row_sq / (h * (w - 1)) + col_sq / ((h - 1) * w)))


def average_gradient(fused: np.ndarray, convention: str = "tang") -> float:
    """AG: mean local gradient magnitude ``s = sqrt((gx^2 + gy^2) / 2)``.

    Gradients as MATLAB ``gradient``: central differences ``(x[i+1] - x[i-1]) / 2`` inside, one-sided
    differences on the first/last row and column (``numpy.gradient`` with ``edge_order=1``).

    - ``tang`` / ``vifb`` (``AG_evaluation.m``, ``metricsAvg_gradient.m``): ``sum(s) / ((H-1)(W-1))``.
    - ``cddfuse`` (``Evaluator.AG``): ``mean(s)`` = ``sum(s) / (H W)``.

    Input: uint8 gray, 0-255 scale; needs at least 2x2 pixels. Reference: Cui et al., Opt. Commun. 2015.
    """
    f = gray_u8(fused, "fused")
    if convention not in ("tang", "vifb", "cddfuse"):
        raise ValueError(f"unknown AG convention {convention!r}; expected tang, vifb or cddfuse")
    require_min_size(f, 2, 2, "AG")
    h, w = f.shape
    total = 0.0
    for r0, r1 in row_blocks(h, w):
        lo, hi = max(0, r0 - 1), min(h, r1 + 1)  # one halo row each side: central differences across blocks
        gy, gx = np.gradient(f[lo:hi].astype(np.float64))
        s = np.sqrt((gx * gx + gy * gy) / 2.0)
        total += float(np.sum(s[r0 - lo : r1 - lo]))
    if convention == "cddfuse":
        return total / (h * w)
    return total / ((h - 1) * (w - 1))


_SOBEL = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])  # fspecial('sobel')


def edge_intensity(fused: np.ndarray) -> float:
    """EI (VIFB ``metricsEdge_intensity.m``): mean Sobel gradient magnitude ``sqrt(gx^2 + gy^2)``.

    ``gx = imfilter(F, fspecial('sobel'), 'replicate')``, ``gy`` with the transposed kernel (correlation,
    replicated border). Input: uint8 gray, 0-255 scale. Reference: Rajalingam & Priya, IJESI 2018.
    """
    x = gray_u8(fused, "fused").astype(np.float64)
    gx = correlate2d(x, _SOBEL, "replicate")
    gy = correlate2d(x, _SOBEL.T, "replicate")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))
