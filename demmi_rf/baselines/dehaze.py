"""Dark-channel-prior dehazing (He, Sun & Tang, CVPR 2009 / IEEE TPAMI 2011), with guided-filter refinement.

Haze model: ``I(x) = J(x)·t(x) + A·(1 − t(x))``. On a [0, 1] scale:

1. dark channel ``D(x) = min_{y ∈ Ω(x)} min_c I_c(y)`` over a 15x15 patch ``Ω`` (erosion of the channel minimum);
2. atmospheric light ``A``: among the brightest 0.1 % pixels of ``D``, the input colour of the pixel with the
   highest intensity (sum over channels) — He et al.'s rule;
3. transmission ``t̃(x) = 1 − ω·min_{Ω(x)} min_c (I_c(y) / A_c)`` with ``ω = 0.95`` (keeps a trace of haze);
4. refinement: ``t`` = guided filter of ``t̃`` with the gray input as guide (He, Sun & Tang, "Guided image
   filtering", ECCV 2010 / TPAMI 2013: radius 60, ε = 1e-3), in place of the paper's soft matting;
5. recovery ``J(x) = (I(x) − A) / max(t(x), t0) + A`` with ``t0 = 0.1``.

Gray images are handled as one channel. The prior assumes haze-free patches hold a dark pixel; it is known to
fail on night scenes and large bright regions (sky, white walls).

``airlight="mean"`` replaces step 2 for the benchmark's own haze model (spec section 2: ``A = mean(J)`` over all
pixels and channels, a mid-gray airlight rather than the bright sky He's rule looks for): ``A = mean(I)``, which
is unbiased under that model when ``t`` and ``J`` are uncorrelated, since ``mean(I) = A + cov(J, t)``. He's rule
on that haze picks a bright lamp or sky pixel and over-corrects (errors grew 1.5-25x on the real pairs).
"""

from __future__ import annotations

import cv2
import numpy as np

PATCH = 15
OMEGA = 0.95
T0 = 0.1
TOP_FRACTION = 0.001
GUIDE_RADIUS = 60
GUIDE_EPS = 1e-3


def _min_filter(x: np.ndarray, size: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    return cv2.erode(x, kernel, borderType=cv2.BORDER_REPLICATE)


def dark_channel(img01: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """``min_{Ω(x)} min_c I_c`` of a float image in [0, 1] (HxW or HxWxC), patch ``patch x patch``."""
    m = img01 if img01.ndim == 2 else img01.min(axis=2)
    return _min_filter(np.ascontiguousarray(m, dtype=np.float64), patch)


def atmospheric_light(img01: np.ndarray, dark: np.ndarray, top: float = TOP_FRACTION) -> np.ndarray:
    """He et al.'s ``A``: the brightest input pixel (sum of channels) among the top ``top`` fraction of the
    dark channel (at least one pixel); returns one value per channel (shape (C,), or (1,) for gray)."""
    flat_dark = dark.ravel()
    n = max(1, int(round(flat_dark.size * top)))
    idx = np.argpartition(flat_dark, flat_dark.size - n)[-n:]
    pixels = img01.reshape(flat_dark.size, -1)[idx]
    brightest = pixels[np.argmax(pixels.sum(axis=1))]
    return np.asarray(brightest, dtype=np.float64)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS) -> np.ndarray:
    """Gray guided filter (He et al. 2010): ``q = mean(a)·I + mean(b)`` with ``a = cov(I, p) / (var(I) + ε)``,
    ``b = mean(p) − a·mean(I)``, all means over ``(2r+1)²`` boxes (reflect-101 borders)."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_64F, size, borderType=cv2.BORDER_REFLECT_101)

    mi, mp = box(guide), box(src)
    cov = box(guide * src) - mi * mp
    var = box(guide * guide) - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    return box(a) * guide + box(b)


def dehaze_dcp(img: np.ndarray, patch: int = PATCH, omega: float = OMEGA, t0: float = T0,
               refine: bool = True, airlight: str = "he") -> np.ndarray:
    """Dark-channel-prior dehazing of a uint8 RGB (HxWx3) or gray image; returns uint8 of the same shape.

    ``airlight``: ``"he"`` (He et al.'s brightest-dark-channel rule) or ``"mean"`` (the mean of the input, for
    the benchmark's ``A = mean(J)`` haze; module docstring)."""
    if img.dtype != np.uint8:
        raise ValueError(f"dehaze_dcp expects uint8, got {img.dtype}")
    x = img.astype(np.float64) / 255.0
    dark = dark_channel(x, patch)
    if airlight == "he":
        a = atmospheric_light(x, dark)
    elif airlight == "mean":
        a = np.full(x.shape[2] if x.ndim == 3 else 1, x.mean())
    else:
        raise ValueError(f"airlight must be 'he' or 'mean', got {airlight!r}")
    a = np.maximum(a, 1e-3)
    normalised = x / a if x.ndim == 3 else x / a[0]
    t = 1.0 - omega * dark_channel(normalised, patch)
    if refine:
        guide = x if x.ndim == 2 else x.mean(axis=2)
        t = guided_filter(np.ascontiguousarray(guide), t)
    t = np.maximum(t, t0)
    if x.ndim == 3:
        j = (x - a) / t[..., None] + a
    else:
        j = (x - a[0]) / t + a[0]
    return np.floor(np.clip(j * 255.0, 0.0, 255.0) + 0.5).astype(np.uint8)
