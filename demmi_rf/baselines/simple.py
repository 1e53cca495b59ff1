"""Pixel-wise fusion rules: ``average`` and ``max``.

Both act on the VIS luminance ``Y`` (BT.601) and the IR image ``I`` and keep the VIS chroma (see
:mod:`._color`). They are the two trivial baselines of the fusion literature (e.g. the "average" and "maximum"
rules surveyed by Li, Kang & Hu, *Image fusion with guided filtering*, IEEE TIP 2013, and VIFB, Zhang et al. 2020).
"""

from __future__ import annotations

import numpy as np

from ._color import check_pair, luminance, recolour


def fuse_average(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``F = (Y + I) / 2`` per pixel, VIS chroma kept; uint8 of the VIS shape."""
    check_pair(vis, ir)
    return recolour((luminance(vis) + ir.astype(np.float64)) / 2.0, vis)


def fuse_max(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``F = max(Y, I)`` per pixel (brightest source wins), VIS chroma kept; uint8 of the VIS shape."""
    check_pair(vis, ir)
    return recolour(np.maximum(luminance(vis), ir.astype(np.float64)), vis)
