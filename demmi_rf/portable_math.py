r"""Elementary functions with the same bits on every CPU: ``exp`` and ``log`` from IEEE basic operations only.

numpy's ``np.exp`` / ``np.log`` pick a SIMD implementation by CPU (AVX2, AVX-512, NEON, scalar) and the C
library's ``exp`` / ``log`` differ between libm builds; these differ in the last bit, which flips the final
rounding of a few pixels between machines. Addition, multiplication, division, ``rint`` and the exact
exponent operations (``frexp``, building 2^k from its bit pattern) are correctly rounded everywhere, so the
functions here give the same bits on every IEEE-754 platform, whatever the SIMD dispatch.

* :func:`exp_f32` — float32, within 1 ulp (Cephes ``expf``), used by the haze transmission.
* :func:`exp_f64`, :func:`log_f64` — float64, within a few ulp, used by the slow path of the normal sampler
  (:mod:`demmi_rf.ziggurat`).

All three use the classic reduction of Cody & Waite (*Software Manual for the Elementary Functions*, 1980):

.. math:: e^{z} = 2^{k} e^{r},\quad k = \operatorname{rint}(z/\ln 2),\quad r = (z - k\,c_1) - k\,c_2,
          \quad |r| \le \tfrac{\ln 2}{2}

with ln 2 = c₁ + c₂ split so that k·c₁ is exact, and

.. math:: \ln v = e \ln 2 + \ln m,\quad v = m\,2^{e},\ m \in [\sqrt{1/2}, \sqrt 2),\quad
          \ln m = 2\operatorname{artanh} s = 2 \sum_{j \ge 0} \frac{s^{2j+1}}{2j+1},\quad s = \frac{m-1}{m+1}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction
from math import factorial

import numpy as np

from .kernel import compiled_routine

# ---- float32 exp: Cephes ``expf``, a degree-7 polynomial after the reduction --------------------------------
_LOG2E_F32 = np.float32(1.44269504088896341)
_LN2_HI_F32 = np.float32(0.693359375)  # 9 significant bits: k * _LN2_HI_F32 is exact
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_EXP_POLY_F32 = tuple(np.float32(c) for c in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
))


def exp_f32(z: np.ndarray) -> np.ndarray:
    """exp(z) for float32 ``z`` <= 0, within 1 ulp, from IEEE basic operations only (``z`` is overwritten).

    Arguments below -87 are clamped to -87 (exp(-87) ~ 1.6e-38, the bottom of the float32 normal range).
    """
    np.maximum(z, np.float32(-87.0), out=z)  # keeps 2^k a normal float32
    k = z * _LOG2E_F32
    np.rint(k, out=k)
    tmp = k * _LN2_HI_F32
    z -= tmp  # r = z - k ln2, exact for the high part
    np.multiply(k, _LN2_LO_F32, out=tmp)
    z -= tmp
    p = np.multiply(z, _EXP_POLY_F32[0], out=tmp)
    for c in _EXP_POLY_F32[1:]:
        p += c
        p *= z
    p *= z  # p = r^2 * poly(r)
    p += z
    p += np.float32(1.0)
    # times 2^k, built from its IEEE bit pattern (np.ldexp has no vector loop): exact, integer-only
    p *= ((k.astype(np.int32) + 127) << 23).view(np.float32)
    return p


# ---- float64 exp and log ------------------------------------------------------------------------------------
# fdlibm's split of ln 2: _LN2_HI has 32 trailing zero bits, so k * _LN2_HI is exact for |k| < 2^20
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_SQRT_HALF = 0.70710678118654757
# Taylor coefficients 1/n! (n = 0..14; |r| <= 0.347 makes the first omitted term < 2e-20) and the artanh series
# 1/(2j+1) (j = 0..12; |s| <= 0.172 makes the first omitted term < 3e-21), as correctly rounded doubles.
_EXP_TAYLOR = tuple(float(Fraction(1, factorial(n))) for n in range(15))
_ATANH_SERIES = tuple(float(Fraction(1, 2 * j + 1)) for j in range(13))


def exp_f64(z: np.ndarray) -> np.ndarray:
    """exp(z) for float64 ``z`` in [-708, 709] (a new array), within a few ulp, IEEE basic operations only."""
    z = np.asarray(z, dtype=np.float64)
    if z.size and not (np.all(z >= -708.0) and np.all(z <= 709.0)):
        raise ValueError("exp_f64 is defined on [-708, 709] (the float64 normal range of the result)")
    return _exp_f64(z)


def log_f64(v: np.ndarray) -> np.ndarray:
    """ln(v) for float64 ``v`` > 0 (a new array), within a few ulp, IEEE basic operations only."""
    v = np.asarray(v, dtype=np.float64)
    if v.size and not np.all(v > 0):
        raise ValueError("log_f64 is defined for v > 0")
    return _log_f64(v)


def _exp_f64(z: np.ndarray) -> np.ndarray:
    """:func:`exp_f64` without the argument check (float64 array in [-708, 709]): by the compiled kernel's
    ``exp_array`` (the same operations in the same order, in C) when it is built and gives these bits on a probe
    (:func:`_compiled_exp`), else with numpy (:func:`_exp_f64_numpy`)."""
    kernel = _compiled_exp()
    if kernel is not None and isinstance(z, np.ndarray) and z.dtype == np.float64:
        src = z if z.flags.c_contiguous else z.copy(order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        out = np.empty(src.shape, np.float64)
        kernel(src, math_constants(), out)
        return out
    return _exp_f64_numpy(z)


def _exp_f64_numpy(z: np.ndarray) -> np.ndarray:
    """:func:`_exp_f64` with numpy: Cody-Waite reduction, Taylor series by Horner, 2^k from its bit pattern."""
    k = np.rint(z * _LOG2E)
    r = (z - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_TAYLOR[-1])
    for c in _EXP_TAYLOR[-2::-1]:
        p *= r
        p += c
    return p * _pow2(k)


def _log_f64(v: np.ndarray) -> np.ndarray:
    """:func:`log_f64` without the argument check (float64 array > 0)."""
    m, e = np.frexp(v)  # exact: v = m 2^e, m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # exact
    e = (e - low).astype(np.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (f + 2.0)
    z = s * s
    p = np.full_like(z, _ATANH_SERIES[-1])
    for c in _ATANH_SERIES[-2::-1]:
        p *= z
        p += c
    return e * _LN2_HI + (2.0 * s * p + e * _LN2_LO)


def _pow2(k: np.ndarray) -> np.ndarray:
    """2^k for integral float64 ``k`` in [-1022, 1023], from its IEEE bit pattern (exact)."""
    return ((k.astype(np.int64) + 1023) << 52).view(np.float64)


@functools.lru_cache(maxsize=1)
def math_constants() -> np.ndarray:
    """The constants of :func:`_exp_f64` / :func:`_log_f64` as one read-only float64 array, in the layout of the
    compiled kernel's ``math_consts`` (``demmi_rf/_zigfast.c``): ln 2 high and low parts, log2 e, sqrt(1/2), the
    15 Taylor and the 13 artanh coefficients. The kernel takes its constants from here: one source of values."""
    out = np.array((_LN2_HI, _LN2_LO, _LOG2E, _SQRT_HALF, *_EXP_TAYLOR, *_ATANH_SERIES), dtype=np.float64)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=1)
def _compiled_exp() -> Callable[..., None] | None:
    """The kernel's ``exp_array(z, constants, out)``, or None: when the kernel is missing, when
    ``DEMMI_RF_NUMPY_ZIGGURAT=1`` (the numpy paths of every compiled routine), or when it does not give
    :func:`_exp_f64_numpy`'s bits on a probe over the whole domain (checked once per process)."""
    kernel = compiled_routine("exp_array")
    if kernel is None:
        return None
    rng = np.random.default_rng(20261130)
    probe = np.concatenate([np.linspace(-708.0, 709.0, 4099), rng.uniform(-8.0, 0.0, 4096),
                            [0.0, -0.0, 709.0, -708.0, 0.5 * np.log(2.0), -0.5 * np.log(2.0)]])
    out = np.empty_like(probe)
    kernel(probe, math_constants(), out)
    return kernel if out.tobytes() == _exp_f64_numpy(probe).tobytes() else None
