"""RGB to gray conversion of the evaluation protocol (benchmark spec section 7): MATLAB ``rgb2gray``.

The toolkit's one RGB-to-gray conversion: the metrics (:mod:`demmi_rf.metrics.color` re-exports it), the
Dataset's one-channel VIS (:func:`demmi_rf.torch.augment.rgb_to_gray_bt601`) and the baselines use it. A
top-level module that imports numpy only, so that the Dataset does not load the metrics package.
"""

from __future__ import annotations

import numpy as np

#: ITU-R BT.601 luma weights exactly as MATLAB's ``rgb2gray`` uses them (they sum to 0.999999999999999).
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """Gray image of an 8-bit RGB image, as MATLAB ``rgb2gray`` on uint8.

    ``Y = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B`` computed in float64, then rounded
    half away from zero to uint8 (MATLAB's double -> uint8 conversion). A 2-D input is returned unchanged.
    PIL's ``convert("L")`` (integer weights 299/587/114) agrees on almost every pixel; OpenCV's
    ``COLOR_RGB2GRAY`` (0.299/0.587/0.114) may differ by one level on a few pixels.
    """
    a = np.asarray(rgb)
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb2gray expects an HxWx3 RGB image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"rgb2gray expects uint8 data, got {a.dtype}")
    wr, wg, wb = RGB2GRAY_WEIGHTS
    out = np.empty(a.shape[:2], dtype=np.uint8)
    rows = max(1, 32768 // max(a.shape[1], 1))  # row blocks keep the float64 temporaries small
    for r0 in range(0, a.shape[0], rows):
        f = a[r0 : r0 + rows].astype(np.float64)
        y = f[..., 0] * wr + f[..., 1] * wg + f[..., 2] * wb
        out[r0 : r0 + rows] = np.floor(y + 0.5).clip(0, 255)
    return out
