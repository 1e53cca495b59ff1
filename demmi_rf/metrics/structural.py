"""Structural similarity: SSIM (per-profile conventions) and MEF-MS-SSIM (tang's MS_SSIM)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import triple
from ._elementary import atan, exp, log, power, tan
from ._filters import box_sum_valid, correlate_valid_sep, fspecial_gaussian_1d, pad
from ._strips import strip_sums

_G11 = fspecial_gaussian_1d(11, 1.5)


def _ssim_matlab_strip(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Sums of the MATLAB ``ssim`` maps of (f, a) and (f, b) over one strip of replicate-padded images."""
    f, a, b = (x.astype(np.float64) for x in (f, a, b))
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    mf = correlate_valid_sep(f, _G11)
    mf2 = mf * mf
    sf = correlate_valid_sep(f * f, _G11) - mf2
    out = []
    for y in (a, b):
        my = correlate_valid_sep(y, _G11)
        mfy = mf * my
        my2 = my * my
        sy = correlate_valid_sep(y * y, _G11) - my2
        sfy = correlate_valid_sep(f * y, _G11) - mfy
        num = (2 * mfy + c1) * (2 * sfy + c2)
        num /= (mf2 + my2 + c1) * (sf + sy + c2)
        out.append(float(np.sum(num)))
    return out[0], out[1]


def _ssim_matlab_pair(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """MATLAB ``ssim(f, a)`` and ``ssim(f, b)`` defaults on doubles: L = 1, 11x11 Gaussian sigma 1.5, replicate.

    ``imgaussfilt(..., 'Padding', 'replicate')`` equals a 'valid' filter of the image replicate-padded by 5.
    """
    padded = [pad(x, 5, "replicate") for x in (f, a, b)]  # 8-bit; strips convert to float64
    sums = strip_sums(_ssim_matlab_strip, padded, 10)
    return float(sums[0] / f.size), float(sums[1] / f.size)


def _wang_maps_strip(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Sums of the textbook SSIM map and of its contrast-structure factor over one strip ('valid', L = 255)."""
    x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    ux = correlate_valid_sep(x, _G11)
    uy = correlate_valid_sep(y, _G11)
    uxx, uyy, uxy = ux * ux, uy * uy, ux * uy
    sx = correlate_valid_sep(x * x, _G11) - uxx
    sy = correlate_valid_sep(y * y, _G11) - uyy
    sxy = correlate_valid_sep(x * y, _G11) - uxy
    cs_map = (2 * sxy + c2) / (sx + sy + c2)
    ssim_map = (2 * uxy + c1) / (uxx + uyy + c1) * cs_map
    return float(np.sum(ssim_map)), float(np.sum(cs_map))


def _wang_means(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) of the textbook SSIM maps: L = 255, Gaussian 11/1.5, 'valid'."""
    h, w = x.shape
    sums = strip_sums(_wang_maps_strip, (x, y), 10)
    n = (h - 10) * (w - 10)
    return float(sums[0] / n), float(sums[1] / n)


def _ssim_wang_valid(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook SSIM (Wang et al. 2004): L = 255, 11x11 Gaussian sigma 1.5, 'valid' region (VIFB ``ssim``)."""
    return _wang_means(x, y)[0]


def _ssim_skimage_f32(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image 0.19 ``structural_similarity(x, y)`` on float32 images with its defaults, as CDDFuse calls it.

    Quirks reproduced: float32 arithmetic throughout (scikit-image >= 0.19 keeps float32), ``data_range``
    taken from the float dtype range (-1, 1), i.e. **2** on 0-255 data, a 7x7 uniform window (scipy
    ``uniform_filter``, 'reflect' border), sample covariance (49/48), mean over the map cropped by 3 pixels.
    """
    win = 7
    xf = x.astype(np.float32)
    yf = y.astype(np.float32)
    cov_norm = win * win / (win * win - 1.0)
    ux = ndimage.uniform_filter(xf, size=win)
    uy = ndimage.uniform_filter(yf, size=win)
    uxx = ndimage.uniform_filter(xf * xf, size=win)
    uyy = ndimage.uniform_filter(yf * yf, size=win)
    uxy = ndimage.uniform_filter(xf * yf, size=win)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    data_range = 2.0
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    a1, a2 = 2 * ux * uy + c1, 2 * vxy + c2
    b1, b2 = ux**2 + uy**2 + c1, vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


SSIM_CONVENTIONS = ("tang", "vifb", "cddfuse", "std")


def ssim(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """SSIM of the fused image against the two sources (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004).

    ``SSIM(x, y) = mean over the map of (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x + s_y + C2))``
    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. Conventions (input uint8 gray, used as 0-255 values):

    - ``tang``: ``(ssim(F, IR) + ssim(F, VIS)) / 2`` with MATLAB ``ssim`` defaults on 0-255 doubles -- quirk:
      L = 1 (the double class range), so C1 = 1e-4, C2 = 9e-4; 11x11 Gaussian sigma 1.5, **replicate** padding,
      mean over the whole map.
    - ``vifb`` (``metricsSsim.m``): **sum** ``ssim(VIS, F) + ssim(IR, F)`` of textbook SSIMs, L = 255, 11x11
      Gaussian sigma 1.5, 'valid' region only (no padding; needs >= 11x11).
    - ``cddfuse`` (``Evaluator.SSIM``): **sum** of scikit-image SSIMs on float32 images with defaults: 7x7
      uniform window ('reflect' border), sample covariance, data_range silently 2 (float range), mean over the
      map cropped by 3 pixels (needs >= 7x7). Computed in float32 like scikit-image.
    - ``std``: **average** of textbook SSIMs (L = 255, Gaussian 11/1.5, 'valid'), i.e. ``vifb / 2``;
      equals scikit-image ``structural_similarity(gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, data_range=255)``.
    """
    f, a, b = triple(fused, ir, vis)
    h, w = f.shape
    if convention == "tang":
        s_a, s_b = _ssim_matlab_pair(f, a, b)
        return (s_a + s_b) / 2.0
    if convention in ("vifb", "std"):
        if h < 11 or w < 11:
            raise ValueError(f"SSIM ({convention}) needs an image of at least 11x11 pixels, got {h}x{w}")
        total = _ssim_wang_valid(b, f) + _ssim_wang_valid(a, f)
        return total if convention == "vifb" else total / 2.0
    if convention == "cddfuse":
        if h < 7 or w < 7:
            raise ValueError(f"SSIM (cddfuse) needs an image of at least 7x7 pixels, got {h}x{w}")
        return _ssim_skimage_f32(f, a) + _ssim_skimage_f32(f, b)
    raise ValueError(f"unknown SSIM convention {convention!r}; expected one of {SSIM_CONVENTIONS}")


# --------------------------------------------------------------------------------------------------------------
# MEF-MS-SSIM (Ma, Zeng, Wang, IEEE TIP 2015), as tang's analysis_ms_ssim.m + mef_ssim.m, vectorised.

_MEF_WIN = 11
_MEF_LEVELS = 3
_MEF_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_MEF_C = (0.03 * 255.0) ** 2
_EPS = np.finfo(np.float64).eps
_R_P10 = float(atan(np.array([10.0]))[0] * 2.0 / np.pi)  # R at or above which tan(pi R / 2) >= 10 (p saturates)


def mef_min_side() -> int:
    """Smallest image side accepted by MEF-MS-SSIM: ``min(H, W) / 2^(levels-1) >= 11``, i.e. 44."""
    return _MEF_WIN * 2 ** (_MEF_LEVELS - 1)


def _half(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``(1:2:end, 1:2:end)``: 2x2 means, edge repeated."""
    h, w = x.shape
    if h % 2:
        x = np.vstack([x, x[-1:]])
    if w % 2:
        x = np.hstack([x, x[:, -1:]])
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * 0.25


def _mef_qmap_sum(x1: np.ndarray, x2: np.ndarray, f: np.ndarray) -> tuple[float]:
    """Sum of the ``mef_ssim({x1, x2}, f)`` quality map (11x11 'valid' blocks) over a strip, in closed form."""
    x1, x2, f = (x.astype(np.float64, copy=False) for x in (x1, x2, f))
    n = _MEF_WIN * _MEF_WIN
    x11, x22, x12 = x1 * x1, x2 * x2, x1 * x2
    # Box (11x11, 'valid') moments: n * var = (n * sum(x^2) - sum(x)^2) / n. Exact: the inputs are multiples of
    # 4^-(scale-1) <= 255, so every sum is a short dyadic fraction that float64 holds exactly.
    s1, s2 = box_sum_valid(x1, _MEF_WIN), box_sum_valid(x2, _MEF_WIN)
    nv11 = (n * box_sum_valid(x11, _MEF_WIN) - s1 * s1) / n  # ||x1 - mu1||^2 over the block
    nv22 = (n * box_sum_valid(x22, _MEF_WIN) - s2 * s2) / n
    nv12 = (n * box_sum_valid(x12, _MEF_WIN) - s1 * s2) / n
    norm1, norm2 = np.sqrt(nv11), np.sqrt(nv22)
    ed1, ed2 = norm1 + 0.001, norm2 + 0.001  # signal strengths
    # Structure consistency R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||, exponent p = min(tan(pi R / 2), 10).
    r = np.maximum(nv11 + nv22 + 2.0 * nv12, 0.0)
    np.sqrt(r, out=r)
    r += _EPS
    r /= norm1 + norm2 + _EPS
    r[r > 1] = 1 - _EPS
    r[r < 0] = _EPS
    p = np.full(r.shape, 10.0)
    low = r < _R_P10
    p[low] = np.minimum(tan(np.pi / 2 * r[low]), 10.0)
    # Weights w_k = (ed_k / 11)^p + eps, normalised; rBlock = sum_k w_k (x_k - mu_k) / ed_k = a1 (..) + a2 (..).
    w1 = exp(p * log(ed1 * (1.0 / _MEF_WIN))) + _EPS
    w2 = exp(p * log(ed2 * (1.0 / _MEF_WIN))) + _EPS
    wsum = w1 + w2
    a1 = w1 / wsum / ed1
    a2 = w2 / wsum / ed2
    rnorm = a1 * a1 * nv11 + a2 * a2 * nv22 + 2.0 * a1 * a2 * nv12
    np.sqrt(np.maximum(rnorm, 0.0, out=rnorm), out=rnorm)
    zero = rnorm == 0
    rnorm[zero] = 1.0
    c = np.maximum(ed1, ed2) / rnorm  # rBlock rescaled to norm max_k ed_k (left as is when rBlock = 0)
    c[zero] = 1.0
    k1, k2 = c * a1, c * a2  # desired structure r = k1 (x1 - mu1) + k2 (x2 - mu2)
    # Gaussian-weighted (co)variances over the same blocks: s_r^2 and s_rF expand into source moments.
    g1, g2, gf = (correlate_valid_sep(v, _G11) for v in (x1, x2, f))
    var_r = (correlate_valid_sep(x11, _G11) - g1 * g1) * (k1 * k1)
    var_r += (correlate_valid_sep(x22, _G11) - g2 * g2) * (k2 * k2)
    var_r += (correlate_valid_sep(x12, _G11) - g1 * g2) * (2.0 * k1 * k2)
    cov_rf = (correlate_valid_sep(x1 * f, _G11) - g1 * gf) * k1
    cov_rf += (correlate_valid_sep(x2 * f, _G11) - g2 * gf) * k2
    vff = correlate_valid_sep(f * f, _G11) - gf * gf
    q_map = (2.0 * cov_rf + _MEF_C) / (var_r + vff + _MEF_C)
    return (float(np.sum(q_map)),)


def _mef_ssim_scale(x1: np.ndarray, x2: np.ndarray, f: np.ndarray) -> float:
    """``mef_ssim({x1, x2}, f)`` at one scale: mean of the 'valid' quality map."""
    h, w = f.shape
    total = strip_sums(_mef_qmap_sum, (x1, x2, f), _MEF_WIN - 1)[0]
    return float(total / ((h - _MEF_WIN + 1) * (w - _MEF_WIN + 1)))


def mef_ms_ssim(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """MS_SSIM (tang): MEF-MS-SSIM of Ma, Zeng & Wang (IEEE TIP 2015) with {IR, VIS} as the source stack.

    Per 11x11 block (box statistics, 'valid' region): signal strengths ``ed_k = ||x_k - mu_k|| + 0.001``,
    structure consistency ``R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||``, ``p = min(tan(pi R / 2), 10)``,
    weights ``w_k ~ (ed_k / 11)^p``; the desired structure ``r = sum_k w_k (x_k - mu_k) / ed_k`` is rescaled to
    norm ``max_k ed_k``. Quality per block ``(2 s_rF + C) / (s_r^2 + s_F^2 + C)`` with Gaussian (11, sigma 1.5)
    weighted moments and ``C = (0.03 * 255)^2`` (structure term only); mean over the map. Three scales
    (2x2 mean downsampling, 'symmetric' border), combined as ``prod Q_l^w_l`` with weights
    [0.0448 0.2856 0.3001] normalised to unit sum.

    Input: uint8 gray, 0-255 scale. Needs ``min(H, W) >= 44`` (``min side / 4 >= 11``). Implemented in closed
    form (the block loops of ``mef_ssim.m`` reduce to box and Gaussian filters); the box statistics are exact
    sums, so perfectly flat blocks contribute exact zeros where MATLAB's ``filter2`` leaves ~1e-13 rounding
    noise.
    """
    f, a, b = triple(fused, ir, vis)
    h, w = f.shape
    if min(h, w) < mef_min_side():
        raise ValueError(f"MS_SSIM (MEF) needs min(H, W) >= {mef_min_side()} (3 scales of an 11x11 window), "
                         f"got {h}x{w}")
    x1, x2, fd = a, b, f  # 8-bit at scale 1 (the strips convert), float64 after the first downsampling
    scores = []
    for level in range(_MEF_LEVELS):
        if level > 0:
            x1, x2, fd = (_half(v.astype(np.float64, copy=False)) for v in (x1, x2, fd))
        scores.append(_mef_ssim_scale(x1, x2, fd))
    q = np.array(scores)
    if np.any(q < 0):
        return float("nan")  # MATLAB would return a complex number; we report NaN
    return float(np.prod(power(q, _MEF_WEIGHTS)))


# --------------------------------------------------------------------------------------------------------------
# Textbook multi-scale SSIM (Wang, Simoncelli, Bovik 2003) as pytorch_msssim.ms_ssim(data_range=255).

_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def ms_ssim_std_min_side() -> int:
    """pytorch_msssim asserts ``min(H, W) > (11 - 1) * 2^4``, i.e. at least 161 pixels."""
    return (11 - 1) * 2 ** (len(_MS_WEIGHTS) - 1) + 1


def _avg_pool_2x2(x: np.ndarray) -> np.ndarray:
    """torch ``avg_pool2d(kernel 2, padding = size % 2)``: an odd axis gets one zero row/column on each side,
    and the zeros count in the 4-pixel means (``count_include_pad``)."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    if ph or pw:
        x = np.pad(x, ((ph, ph), (pw, pw)))
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    x = x[: 2 * h2, : 2 * w2]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * 0.25


def _ms_ssim_wang(x: np.ndarray, y: np.ndarray) -> float:
    factors = []
    for level in range(len(_MS_WEIGHTS)):
        ssim_mean, cs_mean = _wang_means(x, y)
        if level < len(_MS_WEIGHTS) - 1:
            factors.append(max(cs_mean, 0.0))
            x, y = _avg_pool_2x2(x.astype(np.float64)), _avg_pool_2x2(y.astype(np.float64))
        else:
            factors.append(max(ssim_mean, 0.0))
    return float(np.prod(power(np.array(factors), _MS_WEIGHTS)))


def ms_ssim_std(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """Textbook MS-SSIM (Wang, Simoncelli & Bovik, Asilomar 2003), averaged over the two sources.

    As ``pytorch_msssim.ms_ssim(F, S, data_range=255)``: L = 255, 11x11 Gaussian sigma 1.5, 'valid' maps,
    five scales with weights [0.0448 0.2856 0.3001 0.2363 0.1333]; contrast-structure means at scales 1-4 and
    the full SSIM mean at scale 5 (each clipped at 0), combined as a weighted geometric product; 2x2 average
    pooling between scales (an odd side is zero-padded on both ends, the zeros counted in the means).
    ``MS_SSIM_std = (MS(F, IR) + MS(F, VIS)) / 2``. Input: uint8 gray; needs ``min(H, W) >= 161``.

    Computed in float64: pytorch_msssim runs in float32, whose rounding of ``E[x^2] - E[x]^2`` shifts its
    result by ~2e-6 relative on 256x256 images (the golden ``std`` values are such float32 results).
    """
    f, a, b = triple(fused, ir, vis)
    h, w = f.shape
    if min(h, w) < ms_ssim_std_min_side():
        raise ValueError(f"MS_SSIM (std) needs min(H, W) >= {ms_ssim_std_min_side()} (5 scales of an 11x11 "
                         f"window), got {h}x{w}")
    return (_ms_ssim_wang(f, a) + _ms_ssim_wang(f, b)) / 2.0
