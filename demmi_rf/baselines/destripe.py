"""Column destriping of the IR ``stripe`` atom (fixed-pattern column offsets).

Model (benchmark spec section 2): ``y(r, c) = x(r, c) + o_c``, one offset per column, constant down the rows.
A column offset is a horizontal high frequency that is the same on every row, so it is estimated from the
horizontal high-pass residual averaged down each column (the "column mean" / moment-matching family of
destriping, e.g. Gadallah, Csillag & Smith, "Destriping multisensor imagery with moment matching", Int. J.
Remote Sensing 21(12), 2000):

    R = y − S_w(y)        S_w: 1-D horizontal mean over w = 2k+1 columns (reflect-101 borders)
    ô_c = median_r R(r, c) (the per-column median of the residual; ``statistic="mean"`` gives the plain
                           column mean)
    x̂ = y − ô_c           clipped and rounded to uint8

``S_w`` averages ``w`` columns, so the true offset pattern survives in ``R`` up to its own local mean, which is
~0 for independent offsets; scene structure that is not constant down the column averages out over the rows.
What the estimate cannot see is that local mean itself: a smooth offset pattern of about ``s / sqrt(w)`` stays.
Scene structure that *is* constant down a column (a pole spanning the image height) is indistinguishable from a
stripe and gets flattened; a narrow window (default ``k = 3``, 7 columns) and the median (robust to objects that
fill part of a column) limit that. Both were chosen on the project's real IR images with simulated stripes
(``s ~ U(3, 8)``): the median with ``k = 3`` cut the mean squared error about sixfold and made no image worse,
while the mean with ``k ≥ 4`` doubled the error on an image with full-height poles.
"""

from __future__ import annotations

import cv2
import numpy as np

HALF_WIDTH = 3
STATISTICS = ("median", "mean")


def column_offsets(img: np.ndarray, half_width: int = HALF_WIDTH, statistic: str = "median") -> np.ndarray:
    """Estimated per-column offsets ``ô_c`` (float64, length W) of a 2-D image."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    f = np.asarray(img, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"column_offsets expects a 2-D image, got shape {f.shape}")
    w = 2 * half_width + 1
    smooth = cv2.blur(f, (w, 1), borderType=cv2.BORDER_REFLECT_101)
    residual = f - smooth
    return np.median(residual, axis=0) if statistic == "median" else residual.mean(axis=0)


def destripe_columns(img: np.ndarray, half_width: int = HALF_WIDTH, statistic: str = "median") -> np.ndarray:
    """Remove column offsets from a uint8 2-D (IR) image: ``x̂ = y − ô_c``; returns uint8."""
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"destripe_columns expects a 2-D uint8 image, got {img.dtype} {img.shape}")
    out = img.astype(np.float64) - column_offsets(img, half_width, statistic)[None, :]
    return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)
