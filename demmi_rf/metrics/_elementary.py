r"""Elementary functions for the metrics with the same bits on every CPU code path.

numpy picks the implementation of ``exp``, ``log``, ``log2``, ``log10``, ``arctan``, ``tan`` and ``power`` by
CPU at run time (AVX-512 builds call SVML-style vector routines, others the C library), OpenCV's ``cv2.exp`` /
``cv2.log`` have SIMD and scalar paths (``cv2.setUseOptimized`` switches them), and C libraries differ between
builds: all of them agree only to the last bit or two. The functions here use IEEE-754 basic operations
(``+ - * /``, ``rint``, comparisons, exact integer and bit-pattern operations) and table lookups, one numpy
element-wise call at a time, in a fixed order: each output is the same function of its input's bits on any
machine, whatever numpy's SIMD dispatch or OpenCV's code path (numpy never contracts two calls into a fused
multiply-add). The tables are computed once from exact decimal arithmetic (``decimal``, 40 digits), not from a
C library. Accuracy, measured against numpy's (libm) functions on wide random samples
(``tests/test_metrics_portability.py``): ``exp``, ``log``, ``atan`` within 1 ulp, ``log2``, ``log10``, ``tan``
within 3 ulp, ``power`` within 16 ulp (2e-15 relative; ``x`` in [0.01, 1], ``y`` in [0, 1]: the metrics'
scores and weights).

* :func:`exp` (table of 2^(j/64), Tang's method):
  ``e^z = 2^m 2^(j/64) e^r``, ``k = rint(64 z / ln 2) = 64 m + j``, ``r = (z - k L1) - k L2`` with
  ``L1 + L2 = ln 2 / 64`` (``k L1`` exact), ``|r| <= ln 2 / 128``, ``e^r - 1`` by its Taylor polynomial of
  degree 5 (truncation below 4e-17). ``2^m`` is built from its bit pattern in two halves, so results below
  the normal range come out subnormal or 0 and results above it ``inf``.
* :func:`log` (table of ln(i/128)): ``v = 2^e m`` with ``m`` in ``(sqrt(1/2), sqrt 2]`` read from the bit
  pattern, ``c = rint(128 m) / 128`` (exact), ``u = (m - c) / c`` (``m - c`` exact, ``|u| <= 0.0056``),
  ``ln v = (e ln 2 + ln c) + log1p(u)`` with the degree-7 Taylor polynomial of ``log1p`` (truncation below
  2e-19); ``ln 1 = 0`` exactly and arguments near 1 keep their relative accuracy (``c = 1``, ``u = m - 1``
  exact). ``log2`` and ``log10`` multiply by 1/ln 2 and 1/ln 10.
* :func:`atan`: fdlibm's ``s_atan.c`` (Sun Microsystems, 1993): ``|x|`` reduced at 7/16, 11/16, 19/16 and 39/16
  to ``t = (|x| - c) / (1 + c |x|)``, c in {0, 1/2, 1, 3/2}, or ``t = -1/|x|``; ``atan x = atan c + t - t s(t^2)``
  with its degree-11 odd polynomial and ``atan c`` as a sum of two doubles; ``atan(+-inf) = +-pi/2``.
* :func:`tan` for ``|x| < pi/2``: ``tan x = sin y / cos y`` with ``y = |x|``, or ``cos y / sin y`` with
  ``y = pi/2 - |x|`` (computed as ``(pi/2)_hi - |x| + (pi/2)_lo``, the first difference exact) when
  ``|x| > pi/4``; ``sin`` and ``cos`` by their Taylor polynomials to degree 19 and 20 on ``|y| <= pi/4``.
* :func:`power` for ``x >= 0``: ``exp(y log x)`` (0 for ``x = 0``, ``y > 0``).
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction
from math import factorial

import numpy as np


def _decimal_constants() -> dict[str, object]:
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        ln10 = Decimal(10).ln()
        exp_table = tuple(float((Decimal(j) / 64 * ln2).exp()) for j in range(64))
        log_table = tuple(float((Decimal(i) / 128).ln()) for i in range(90, 183))
        step = ln2 / 64
        l1 = int(step * 2**40) / 2**40  # 34 significant bits: k * L1 is exact for |k| < 2^19
        return {
            "ln2": ln2, "inv_ln2": float(1 / ln2), "inv_ln10": float(1 / ln10), "exp_table": exp_table,
            "log_table": log_table, "l1": float(l1), "l2": float(step - Decimal(l1)), "k_scale": float(64 / ln2),
        }


_C = _decimal_constants()
_EXP_TABLE = np.array(_C["exp_table"], dtype=np.float64)
_EXP_K = _C["k_scale"]
_EXP_L1 = _C["l1"]
_EXP_L2 = _C["l2"]
_EXP_POLY = tuple(float(Fraction(1, factorial(n))) for n in range(5, 0, -1))  # 1/5! .. 1/1!
_LOG_TABLE = np.array(_C["log_table"], dtype=np.float64)  # ln(i/128), i = 90..182
_LOG_POLY = tuple(float(Fraction((-1) ** (n + 1), n)) for n in range(7, 0, -1))  # 1/7, -1/6, .., 1
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: e * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = _C["inv_ln2"]
_INV_LN10 = _C["inv_ln10"]
_SQRT2 = 1.4142135623730951
_MANTISSA = np.int64((1 << 52) - 1)
_ONE_BITS = np.int64(1023 << 52)
_TINY = 2.2250738585072014e-308  # smallest normal double

# fdlibm s_atan.c
_ATAN_C = np.array([0.0, 0.5, 1.0, 1.5, 1.0])
_ATAN_HI = np.array([0.0, 4.63647609000806093515e-01, 7.85398163397448278999e-01, 9.82793723247329054082e-01,
                     1.57079632679489655800e+00])
_ATAN_LO = np.array([0.0, 2.26987774529616870924e-17, 3.06161699786838301793e-17, 1.39033110312309984516e-17,
                     6.12323399573676603587e-17])
_AT = (3.33333333333329318027e-01, -1.99999999998764832476e-01, 1.42857142725034663711e-01,
       -1.11111104054623557880e-01, 9.09088713343650656196e-02, -7.69187620504482999495e-02,
       6.66107313738753120669e-02, -5.83357013379057348645e-02, 4.97687799461593236017e-02,
       -3.65315727442169155270e-02, 1.62858201153657823623e-02)

_PIO2_HI = 1.57079632679489655800e+00  # fdlibm: pi/2 = _PIO2_HI + _PIO2_LO
_PIO2_LO = 6.12323399573676603587e-17
_PIO4 = 0.7853981633974483
_SIN_POLY = tuple(float(Fraction((-1) ** n, factorial(2 * n + 1))) for n in range(9, 0, -1))  # y^19 .. y^3
_COS_POLY = tuple(float(Fraction((-1) ** n, factorial(2 * n))) for n in range(10, 0, -1))  # y^20 .. y^2


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _elementwise(fn):
    """Apply ``fn`` (written for 1-D float64 arrays) to any array-like, keeping its shape (0-d included)."""
    def wrapped(x: np.ndarray) -> np.ndarray:
        a = _f64(x)
        return fn(np.ascontiguousarray(a).reshape(-1)).reshape(a.shape)

    wrapped.__name__, wrapped.__qualname__, wrapped.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return wrapped


@_elementwise
def exp(x: np.ndarray) -> np.ndarray:
    """``e^x`` element-wise (float64; a new array). ``-inf -> 0``, ``inf -> inf``, NaN stays NaN."""
    normal = bool(x.size) and bool(x.min() >= -708.0) and bool(x.max() <= 709.0)  # NaN: not normal
    z = x if normal else np.clip(x, -746.0, 710.0)  # beyond these the result is 0 or inf anyway
    k = z * _EXP_K
    np.rint(k, out=k)
    r = z - k * _EXP_L1
    r -= k * _EXP_L2
    q = np.full_like(r, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        q *= r
        q += c
    q *= r  # e^r - 1
    with np.errstate(invalid="ignore"):  # NaN input: any index, the NaN propagates through q
        ki = k.astype(np.int64)
    t = _EXP_TABLE[ki & 63]
    q *= t
    q += t  # 2^(j/64) e^r
    m = ki >> 6  # floor(k / 64)
    if normal:  # a normal result: 2^m is a normal double, the scaling is exact
        q *= ((m + 1023) << 52).view(np.float64)
        return q
    m1 = m >> 1  # two exact halves, so that 2^m may be subnormal, 0 or inf
    with np.errstate(over="ignore", under="ignore"):
        q *= ((m1 + 1023) << 52).view(np.float64)
        q *= ((m - m1 + 1023) << 52).view(np.float64)
    return q


@_elementwise
def log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm element-wise (float64; a new array). ``log 0 = -inf``, ``log inf = inf``, NaN for
    negative or NaN input."""
    v = x
    if v.size and not (v.min() >= _TINY and v.max() <= np.finfo(np.float64).max):  # NaN fails both
        return _log_special(v)
    bits = v.view(np.int64)
    e = (bits >> 52) - 1023
    m = ((bits & _MANTISSA) | _ONE_BITS).view(np.float64)  # [1, 2)
    big = m > _SQRT2
    m = np.where(big, m * 0.5, m)  # exact
    e += big
    c = m * 128.0
    np.rint(c, out=c)
    idx = c.astype(np.intp) - 90
    c *= 1.0 / 128.0  # exact
    u = m - c  # exact (Sterbenz)
    u /= c
    p = np.full_like(u, _LOG_POLY[0])
    for a in _LOG_POLY[1:]:
        p *= u
        p += a
    p *= u  # log1p(u)
    ef = e.astype(np.float64)
    hi = ef * _LN2_HI
    hi += _LOG_TABLE[idx]
    p += ef * _LN2_LO
    p += hi
    return p


def _log_special(v: np.ndarray) -> np.ndarray:
    out = np.full(v.shape, np.nan)
    normal = (v >= _TINY) & (v <= np.finfo(np.float64).max)
    out[normal] = log(v[normal])
    sub = (v > 0) & (v < _TINY)
    out[sub] = log(v[sub] * 2.0**54) - 54.0 * _LN2_HI - 54.0 * _LN2_LO
    out[v == 0] = -np.inf
    out[v == np.inf] = np.inf
    return out


def log2(x: np.ndarray) -> np.ndarray:
    """``log(x) / ln 2`` element-wise (see :func:`log`)."""
    return log(x) * _INV_LN2


def log10(x: np.ndarray) -> np.ndarray:
    """``log(x) / ln 10`` element-wise (see :func:`log`)."""
    return log(x) * _INV_LN10


def power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x^y = exp(y log x)`` element-wise for ``x >= 0`` (``0^y = 0`` for ``y > 0``)."""
    with np.errstate(invalid="ignore"):
        return exp(_f64(y) * log(x))


@_elementwise
def atan(x: np.ndarray) -> np.ndarray:
    """``arctan x`` element-wise in ``[-pi/2, pi/2]`` (fdlibm's algorithm; ``atan(+-inf) = +-pi/2``)."""
    t = np.abs(x)
    idx = (t >= 0.4375).astype(np.intp)
    idx += t >= 0.6875
    idx += t >= 1.1875
    idx += t >= 2.4375
    c = _ATAN_C[idx]
    far = idx == 4
    num = np.where(far, -1.0, t - c)  # t - c is exact in its interval (Sterbenz)
    den = c * t
    den += 1.0
    np.copyto(den, t, where=far)
    u = num / den
    z = u * u
    w = z * z
    s1 = np.full_like(w, _AT[10])
    for a in (_AT[8], _AT[6], _AT[4], _AT[2], _AT[0]):
        s1 *= w
        s1 += a
    s1 *= z
    s2 = np.full_like(w, _AT[9])
    for a in (_AT[7], _AT[5], _AT[3], _AT[1]):
        s2 *= w
        s2 += a
    s2 *= w
    s1 += s2
    s1 *= u
    s1 -= _ATAN_LO[idx]
    s1 -= u
    r = _ATAN_HI[idx] - s1  # atan(c)_hi - ((u s - atan(c)_lo) - u)
    return np.copysign(r, x, out=r)


@_elementwise
def tan(x: np.ndarray) -> np.ndarray:
    """``tan x`` element-wise for ``|x| < pi/2`` (NaN outside)."""
    a = np.abs(x)
    big = a > _PIO4
    y = np.where(big, (_PIO2_HI - a) + _PIO2_LO, a)  # _PIO2_HI - a is exact for a in [pi/4, pi/2]
    z = y * y
    s = np.full_like(z, _SIN_POLY[0])
    for c in _SIN_POLY[1:]:
        s *= z
        s += c
    s *= z
    s *= y
    s += y  # sin y
    co = np.full_like(z, _COS_POLY[0])
    for c in _COS_POLY[1:]:
        co *= z
        co += c
    co *= z
    co += 1.0  # cos y
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(big, co / s, s / co)
    r[~(a < _PIO2_HI)] = np.nan
    return np.copysign(r, x, out=r)
