"""Edge-preservation metrics of Xydeas & Petrovic: Q_abf, and Kumar's modified fusion-artifact measure N_abf."""

from __future__ import annotations

import numpy as np

from ._common import require_min_size, triple
from ._elementary import atan, exp
from ._filters import correlate2d_valid, pad
from ._strips import strip_sums

# MATLAB conv2 kernels of analysis_Qabf.m: h3 (x response) and h1 (y response). conv2 flips the kernel; the flip
# negates both responses, which changes neither the magnitude nor atan(y / x), but we flip to stay exact.
_H1 = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_H3 = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _qabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation on a zero-padded strip ('valid' = conv2(..., 'same') of the unpadded)."""
    sx = correlate2d_valid(x, _H3[::-1, ::-1])  # conv2(x, h3, 'same')
    sy = correlate2d_valid(x, _H1[::-1, ::-1])  # conv2(x, h1, 'same')
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = atan(sy / sx)
    a[zero] = np.pi / 2
    return g, a


def _qabf_preservation(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.minimum(g_s, g_f) / np.maximum(g_s, g_f)
    eq = g_s == g_f
    rel[eq] = g_f[eq]
    ang = 1.0 - np.abs(a_s - a_f) / (np.pi / 2)
    q_g = tg / (1.0 + exp(kg * (rel - dg)))
    q_a = ta / (1.0 + exp(ka * (ang - da)))
    return q_g * q_a


QABF_CONVENTIONS = ("tang", "vifb", "cddfuse")


def qabf(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """Q_abf (Xydeas & Petrovic, Electronics Letters 2000): edge information transferred from the sources to F.

    Sobel responses ``sx = conv2(X, [-1 0 1; -2 0 2; -1 0 1], 'same')`` and ``sy`` with the transposed kernel,
    **zero padding**; strength ``g = sqrt(sx^2 + sy^2)``, orientation ``a = atan(sy / sx)`` (``pi/2`` where
    ``sx = 0``). Per source S: ``G = g_F / g_S`` if ``g_S > g_F``, ``g_S / g_F`` if ``g_S < g_F``, and -- quirk of
    every public copy -- ``g_F`` itself if ``g_S == g_F``; ``A = 1 - |a_S - a_F| / (pi/2)``;
    ``Q^SF = Tg / (1 + exp(kg (G - Dg))) * Ta / (1 + exp(ka (A - Da)))`` with Tg .9994, kg -15, Dg .5, Ta .9879,
    ka -22, Da .8. ``Q_abf = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B)``.

    Input: uint8 gray. Conventions differ only in the scale, which matters only through the ``g_S == g_F`` quirk:
    ``tang`` (``analysis_Qabf.m``) and ``cddfuse`` (``Evaluator.Qabf``, float32) run on 0-255; ``vifb``
    (``metricsQabf.m``) multiplies the already 0-255 doubles by 255 (``255*im2double(double(X))``), i.e. runs on
    0-65025 (quirk; changes the value by ~1e-11 relative on real images).
    """
    f, a, b = triple(fused, ir, vis)
    if convention in ("tang", "cddfuse"):
        scale = 1.0
    elif convention == "vifb":
        scale = 255.0
    else:
        raise ValueError(f"unknown Qabf convention {convention!r}; expected one of {QABF_CONVENTIONS}")
    padded = [pad(x, 1, "zero") for x in (f, a, b)]  # 8-bit; the strips convert to float64
    num, den = strip_sums(lambda f, a, b: _qabf_strip(f, a, b, scale), padded, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(num) / den)


def _qabf_strip(f: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float) -> tuple[float, float]:
    f, a, b = (x.astype(np.float64) * scale if scale != 1.0 else x.astype(np.float64) for x in (f, a, b))
    g_a, a_a = _qabf_edges(a)
    g_b, a_b = _qabf_edges(b)
    g_f, a_f = _qabf_edges(f)
    q_af = _qabf_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_preservation(g_b, a_b, g_f, a_f)
    return float(np.sum(q_af * g_a + q_bf * g_b)), float(np.sum(g_a + g_b))


# sobel_fn.m (Kumar): correlation with these kernels on a mirror-extended image.
_KV = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
_KH = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]) / 8.0


def _nabf_sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kumar's Sobel/8 responses on a mirror-padded strip."""
    gv = correlate2d_valid(x, _KV)
    gh = correlate2d_valid(x, _KH)
    return gv, gh, np.sqrt(gh * gh + gv * gv)


def _nabf_angle(gv: np.ndarray, gh: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = atan(gv / gh)  # atan(+-inf) = +-pi/2 as in MATLAB
    a[(gv == 0) & (gh == 0)] = 0.0
    return a


def _nabf_preservation(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    nrg, kg, sg, nra, ka, sa = 0.9999, 19.0, 0.5, 0.9995, 22.0, 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where((g_s == 0) | (g_f == 0), 0.0, np.where(g_s > g_f, g_f / g_s, g_s / g_f))
    ang = np.abs(np.abs(a_s - a_f) - np.pi / 2) * 2.0 / np.pi
    q_g = nrg / (1.0 + exp(-kg * (rel - sg)))
    q_a = nra / (1.0 + exp(-ka * (ang - sa)))
    return np.sqrt(q_g * q_a)


def nabf(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """N_abf: fusion artifacts, Kumar's modification of Petrovic's measure (Kumar, SIViP 2013). Lower is better.

    Sobel/8 responses on a **mirror-extended** image (``d c b | a b c d | c b a``, ``per_extn_im_fn.m``),
    ``g = sqrt(gh^2 + gv^2)``, ``a = atan(gv / gh)`` (0 where both are 0). Per source S:
    ``G = min(g_S, g_F) / max(g_S, g_F)`` (0 where either is 0), ``A = ||a_S - a_F| - pi/2| 2/pi``,
    ``Q^SF = sqrt(Nrg / (1 + exp(-kg (G - .5))) * Nra / (1 + exp(-ka (A - .5))))`` with Nrg .9999, kg 19,
    Nra .9995, ka 22; weights ``w_S = g_S^1.5`` where ``g_S >= Td = 2``, else 0.001.
    ``N_abf = sum(AM ((1 - Q^AF) w_A + (1 - Q^BF) w_B)) / sum(w_A + w_B)`` with ``AM = 1`` where
    ``g_F > g_A`` and ``g_F > g_B``.

    Input: uint8 gray, evaluated on the 0-255 scale (the threshold Td = 2 and the 0.001 floor depend on it).
    Needs at least 2x2 pixels (mirror extension). ``convention``: only ``tang`` (``analysis_nabf.m``).
    """
    if convention != "tang":
        raise ValueError(f"unknown Nabf convention {convention!r}; expected 'tang'")
    f, a, b = triple(fused, ir, vis)
    require_min_size(f, 2, 2, "Nabf")
    padded = [pad(x, 1, "mirror") for x in (f, a, b)]  # 8-bit; the strips convert to float64
    num, den = strip_sums(_nabf_strip, padded, 2)
    return float(num / den)


def _nabf_strip(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    f, a, b = (x.astype(np.float64) for x in (f, a, b))
    gv_a, gh_a, g_a = _nabf_sobel(a)
    gv_b, gh_b, g_b = _nabf_sobel(b)
    gv_f, gh_f, g_f = _nabf_sobel(f)
    w_a = np.where(g_a >= 2.0, g_a * np.sqrt(g_a), 0.001)
    w_b = np.where(g_b >= 2.0, g_b * np.sqrt(g_b), 0.001)
    den = np.sum(w_a + w_b)
    # Only pixels where F's edge is stronger than both sources' (AM = 1) enter the numerator.
    am = (g_f > g_a) & (g_f > g_b)
    a_f = _nabf_angle(gv_f[am], gh_f[am])
    q_af = _nabf_preservation(g_a[am], _nabf_angle(gv_a[am], gh_a[am]), g_f[am], a_f)
    q_bf = _nabf_preservation(g_b[am], _nabf_angle(gv_b[am], gh_b[am]), g_f[am], a_f)
    num = np.sum((1.0 - q_af) * w_a[am] + (1.0 - q_bf) * w_b[am])
    return float(num), float(den)
