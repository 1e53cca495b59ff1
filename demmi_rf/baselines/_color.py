"""Colour handling shared by the fusion baselines: fuse the luminance, keep the VIS chroma.

Every baseline fuses a *gray* VIS luminance ``Y`` with the IR image. When the VIS image is RGB, the fused
luminance ``F`` is put back into colour by keeping the VIS chroma of the YCbCr transform (ITU-R BT.601):
with ``Cb ∝ B − Y`` and ``Cr ∝ R − Y`` unchanged, the inverse transform gives, for every channel,

    out_c = VIS_c + (F − Y),    c ∈ {R, G, B}

which is then clipped to [0, 255] and rounded (half away from zero) to uint8. ``Y`` uses the BT.601 weights of
MATLAB ``rgb2gray`` (the evaluation's own conversion, :data:`demmi_rf.metrics.color.RGB2GRAY_WEIGHTS`), so the
gray image the evaluation reads back equals ``F`` up to that rounding, except where clipping a channel at 0 or 255
changed it. A gray VIS image gives a gray fused image.
"""

from __future__ import annotations

import numpy as np

from ..metrics.color import RGB2GRAY_WEIGHTS


def check_pair(vis: np.ndarray, ir: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``vis`` (HxW or HxWx3) and ``ir`` (HxW) are uint8 of the same size."""
    for name, a in (("vis", vis), ("ir", ir)):
        if a.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8, got {a.dtype}")
    if ir.ndim != 2:
        raise ValueError(f"ir: expected a 2-D gray image, got shape {ir.shape}")
    if not (vis.ndim == 2 or (vis.ndim == 3 and vis.shape[2] == 3)):
        raise ValueError(f"vis: expected HxW or HxWx3, got shape {vis.shape}")
    if vis.shape[:2] != ir.shape:
        raise ValueError(f"vis {vis.shape[:2]} and ir {ir.shape} differ in size")


def luminance(vis: np.ndarray) -> np.ndarray:
    """Float64 luminance of a uint8 VIS image: ``Y = 0.298936 R + 0.587043 G + 0.114021 B`` (BT.601, MATLAB
    ``rgb2gray`` weights, not rounded); a gray image is returned as float64."""
    f = np.asarray(vis, dtype=np.float64)
    if f.ndim == 2:
        return f
    wr, wg, wb = RGB2GRAY_WEIGHTS
    return f[..., 0] * wr + f[..., 1] * wg + f[..., 2] * wb


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round half away from zero (MATLAB's double -> uint8) to uint8."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def recolour(fused_y: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Uint8 fused image from a float fused luminance and the VIS image whose chroma it keeps.

    Gray VIS: ``round(clip(F))``. RGB VIS: ``round(clip(VIS_c + F − Y))`` per channel (module docstring).
    """
    if vis.ndim == 2:
        return to_uint8(fused_y)
    delta = fused_y - luminance(vis)
    return to_uint8(vis.astype(np.float64) + delta[..., None])
