"""VIF: pixel-domain multi-scale visual information fidelity (VIF-P, Sheikh & Bovik), summed over the sources."""

from __future__ import annotations

import numpy as np

from ._common import triple
from ._filters import correlate_valid_sep, fspecial_gaussian_1d, sum_log1p
from ._strips import strip_sums

_SIGMA_NSQ = 2.0
_EPS = 1e-10
_SCALES = 4


def _kernel(scale: int) -> np.ndarray:
    n = 2 ** (_SCALES - scale + 1) + 1  # 17, 9, 5, 3
    return fspecial_gaussian_1d(n, n / 5.0)


def vif_min_size_ok(h: int, w: int) -> bool:
    """True when all four VIF scales keep a non-empty 'valid' statistics map for an ``h x w`` image."""
    for side in (h, w):
        s = side
        for scale in range(1, _SCALES + 1):
            n = 2 ** (_SCALES - scale + 1) + 1
            if scale > 1:
                s = s - n + 1
                if s < 1:
                    return False
                s = (s + 1) // 2
            if s - n + 1 < 1:
                return False
    return True


def _reduce(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``filter2(k k', x, 'valid')`` subsampled ``(1:2:end, 1:2:end)``, computed strip by strip."""
    n = len(k)
    out_h, out_w = x.shape[0] - n + 1, x.shape[1] - n + 1
    out = np.empty(((out_h + 1) // 2, (out_w + 1) // 2))
    rows = 2 * max(8, 20_000 // max(x.shape[1], 1))
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        out[r0 // 2 : (r1 + 1) // 2] = correlate_valid_sep(x[r0 : r1 + n - 1], k)[::2, ::2]
    return out


def _pyramid(x: np.ndarray) -> list[np.ndarray]:
    """The image at each VIF scale: scale s > 1 is ``filter2(win_s, previous, 'valid')(1:2:end, 1:2:end)``."""
    levels = [x]
    for scale in range(2, _SCALES + 1):
        levels.append(_reduce(levels[-1], _kernel(scale)))
    return levels


def _vifp_map_terms(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray) -> tuple[float, float]:
    """LIVE clamps, then ``sum ln(1 + g^2 s1 / (sv^2 + sigma_n^2))`` and ``sum ln(1 + s1 / sigma_n^2)``."""
    s1 = np.maximum(s1, 0.0)
    s2 = np.maximum(s2, 0.0)
    g = s12 / (s1 + _EPS)
    sv = s2 - g * s12
    low1 = s1 < _EPS
    g[low1] = 0.0
    sv[low1] = s2[low1]
    s1[low1] = 0.0
    low2 = s2 < _EPS
    g[low2] = 0.0
    sv[low2] = 0.0
    neg = g < 0
    sv[neg] = s2[neg]
    g[neg] = 0.0
    sv[sv <= _EPS] = _EPS
    return sum_log1p(g * g * s1 / (sv + _SIGMA_NSQ)), sum_log1p(s1 * (1.0 / _SIGMA_NSQ))


def _vif_strip(a: np.ndarray, b: np.ndarray, f: np.ndarray, k: np.ndarray) -> tuple[float, float, float, float]:
    """(num_A, den_A, num_B, den_B) of one scale over a strip (natural-log units)."""
    a, b, f = (x.astype(np.float64, copy=False) for x in (a, b, f))
    mu_f = correlate_valid_sep(f, k)
    s_f = correlate_valid_sep(f * f, k) - mu_f * mu_f
    out: list[float] = []
    for r in (a, b):
        mu_r = correlate_valid_sep(r, k)
        s_r = correlate_valid_sep(r * r, k) - mu_r * mu_r
        s_rf = correlate_valid_sep(r * f, k) - mu_r * mu_f
        out.extend(_vifp_map_terms(s_r, s_f.copy(), s_rf))
    return out[0], out[1], out[2], out[3]


def vif(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """VIF = VIFP(IR, F) + VIFP(VIS, F), ``VIFP`` = LIVE's ``vifp_mscale`` (Sheikh & Bovik, IEEE TIP 2006).

    Four scales s = 1..4 with a Gaussian window ``fspecial('gaussian', N, N/5)``, ``N = 2^(5-s) + 1``; from
    scale 2 on, both images are filtered ('valid') and subsampled by 2 before the statistics. Per scale, local
    means, variances and covariance with ``filter2(..., 'valid')`` (no padding); ``g = s12 / s1``,
    ``sv^2 = s2 - g s12`` with the LIVE clamps (eps 1e-10); ``VIFP = sum log10(1 + g^2 s1 / (sv^2 + 2)) /
    sum log10(1 + s1 / 2)`` summed over the scales (sigma_n^2 = 2, so the input must be on the 0-255 scale).

    Input: uint8 gray. Needs an image large enough for the 4 'valid' scales (see :func:`vif_min_size_ok`; about
    41x41). Conventions: ``tang`` (``vifp_mscale.m``): a source with no variance gives 0/0 = NaN; ``cddfuse``
    (``Evaluator.VIFF``): quirk, such a NaN term is replaced by 1.0.
    """
    if convention not in ("tang", "cddfuse"):
        raise ValueError(f"unknown VIF convention {convention!r}; expected 'tang' or 'cddfuse'")
    f, a, b = triple(fused, ir, vis)
    if not vif_min_size_ok(*f.shape):
        h, w = f.shape
        raise ValueError(f"VIF needs an image large enough for its 4 'valid' scales (about 41x41), got {h}x{w}")
    pyramids = [_pyramid(x) for x in (a, b, f)]  # scale 1 stays 8-bit: the strips convert to float64
    sums = np.zeros(4)
    for i in range(_SCALES):
        k = _kernel(i + 1)
        sums += strip_sums(lambda x, y, z, k=k: _vif_strip(x, y, z, k), [p[i] for p in pyramids], len(k) - 1)
    total = 0.0
    for num, den in ((sums[0], sums[1]), (sums[2], sums[3])):
        v = float(num / den) if den != 0 else float("nan")  # 0/0 for a source without any variance
        if convention == "cddfuse" and np.isnan(v):
            v = 1.0
        total += v
    return total
