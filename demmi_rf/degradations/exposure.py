r"""VIS over-exposure: the illumination of a Retinex model raised by a gain and a gamma (atom ``overexposure``).

.. math::

    y = f_{k,\gamma}(x) = 255\, k \left(\frac{x}{255}\right)^{\gamma}, \qquad k > 1,\ \gamma < 1

on the 0-255 scale, per pixel and channel. In Retinex terms (Land & McCann 1971; the decomposition
I = R ∘ L of Wei et al., *Deep Retinex Decomposition*, BMVC 2018) the image is reflectance times
illumination and the illumination is rescaled to k·L^γ with the image itself standing in for L (a global
tone curve: the synthesis of Lv et al., *Attention guided low-light image enhancement*, IJCV 2021,
y = β(αx)^γ, with α folded into k). Over-exposure is k > 1 (an exposure gain of log₂ k stops) with γ < 1
(shadows lifted); the sensor's saturation is the composition's single clip to [0, 255] at the end, so
highlights burn out to 255 exactly as a saturated sensor does, and nothing is clipped here. ControlFusion
(Tang et al., NeurIPS 2025) lists over-exposure in its DDL-12 set with no public script; the low-light
counterpart is :mod:`.lowlight` (k < 1, γ > 1, the same curve).

**Exactness.** f is tabulated at the 256 integer levels v = 0..255 in float64 from IEEE basic operations
only (:func:`demmi_rf.portable_math.exp_f64` / :func:`~demmi_rf.portable_math.log_f64`; f(0) = 0) and rounded
to float32: T[v]. An input between levels is interpolated linearly, in float32, in this order:

.. math:: i = \min(\max(\lfloor x \rfloor, 0), 254), \quad t = x - i, \quad y = T[i] + D[i]\, t,
          \quad D[i] = T[i+1] - T[i]

(beyond [0, 255] the end segments extend linearly). On integer inputs (the clean image) t = 0 and y = T[x]
exactly: then a table look-up (``cv2.LUT``, a pure gather) gives the same bits faster. Every step is a
correctly rounded IEEE operation, so the result is the same on every CPU; a libm ``pow`` is never called.

Registered atom (:mod:`.registry`): ``overexposure`` (family ``illumination``, VIS, stage ``STAGE_SENSOR − 2``
= 28: after the optics, before the sensor noise), parameters ``gain`` and ``gamma`` (uniform).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from ..portable_math import _exp_f64, log_f64
from ..rng import Stream
from . import _ranges
from ._arrays import table_lookup_uint8, work_buffer
from .registry import STAGE_SENSOR, UNIFORM, AtomSpec, Param, register_atom

#: the stage of the illumination family (``lowlight``, ``overexposure``): after the optics, before the noise
STAGE_ILLUMINATION = STAGE_SENSOR - 2

PARAMS = (
    Param("gain", UNIFORM, lo=1.0, hi=16.0, default=[1.3, 2.0], doc="k: exposure gain (> 1 brightens)"),
    Param("gamma", UNIFORM, lo=0.05, hi=1.0, default=[0.6, 0.9], doc="γ: tone exponent (< 1 lifts shadows)"),
)

#: five severity levels, mildest first
SEVERITY = (
    {"gain": [1.1, 1.3], "gamma": [0.9, 1.0]},
    {"gain": [1.3, 1.6], "gamma": [0.8, 0.9]},
    {"gain": [1.6, 2.0], "gamma": [0.7, 0.8]},
    {"gain": [2.0, 2.5], "gamma": [0.6, 0.7]},
    {"gain": [2.5, 3.2], "gamma": [0.5, 0.6]},
)


@lru_cache(maxsize=1)
def _log_levels() -> np.ndarray:
    """ln(v/255) for v = 1..255 (float64, :func:`~demmi_rf.portable_math.log_f64`): the same for every curve."""
    logs = log_f64(np.arange(1, 256, dtype=np.float64) / 255.0)
    logs.setflags(write=False)
    return logs


def _curve(gain: float, gamma: float) -> np.ndarray:
    """T as a new writeable float32 array: f(0) = 0, f(v) = (255·k)·exp(γ·ln(v/255)) for v = 1..255 in float64
    (each product one IEEE multiplication, the exp :func:`~demmi_rf.portable_math._exp_f64`), rounded to float32."""
    z = np.multiply(_log_levels(), gamma)  # ascending, z[0] = γ ln(1/255) the smallest, z[-1] = 0
    if not z[0] >= -708.0:  # the domain of exp_f64, checked on the one value that can leave it
        raise ValueError("exp_f64 is defined on [-708, 709] (the float64 normal range of the result)")
    f = np.empty(256, np.float64)
    f[0] = 0.0
    np.multiply(_exp_f64(z), 255.0 * gain, out=f[1:])
    return f.astype(np.float32)


@lru_cache(maxsize=256)
def _tables(gain: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    t = _curve(gain, gamma)
    d = np.empty(256, np.float32)
    np.subtract(t[1:], t[:-1], out=d[:-1])
    d[-1] = d[-2]
    t.setflags(write=False)
    d.setflags(write=False)
    return t, d


def tone_table(gain: float, gamma: float) -> np.ndarray:
    """T[v] = fl32(255·k·(v/255)^γ), v = 0..255 (read-only, cached)."""
    _check_curve(gain, gamma)
    return _tables(float(gain), float(gamma))[0]


def _check_curve(gain: float, gamma: float) -> None:
    if not (0 <= gain < math.inf and 0 < gamma < math.inf):  # also False for NaN
        raise ValueError(f"the tone curve needs gain >= 0 and gamma > 0, got gain={gain!r}, gamma={gamma!r}")


def tone_curve(image: np.ndarray, gain: float, gamma: float, inplace: bool = False) -> np.ndarray:
    """``255·k·(x/255)^γ`` on a float32 image by the table and the linear interpolation of the module
    docstring (a new array unless ``inplace``)."""
    import cv2

    table = tone_table(gain, gamma)
    diff = _tables(float(gain), float(gamma))[1]
    out = work_buffer(image, inplace)
    if out.size == 0:
        return out
    flat = out.reshape(-1)
    with np.errstate(invalid="ignore"):  # a value out of [0, 255] or between levels fails the check below
        levels = flat.astype(np.uint8)
    if np.array_equal(levels, flat):  # integer levels: t = 0, y = T[x] exactly
        dst = flat.reshape(-1, 1)
        if cv2.LUT(levels.reshape(-1, 1), table, dst=dst) is not dst:  # pragma: no cover - OpenCV reallocated
            flat[...] = cv2.LUT(levels, table).reshape(-1)
        return out
    i = np.floor(flat)
    np.fmin(i, np.float32(254.0), out=i)  # fmin/fmax: a NaN input gives a valid index and stays NaN in y
    np.fmax(i, np.float32(0.0), out=i)
    flat -= i  # t = x - i (exact for x in [0, 256))
    idx = i.astype(np.intp)
    flat *= diff[idx]
    flat += table[idx]
    return out


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "overexposure") -> dict:
    """k then γ (one ``uniform`` draw each for a range)."""
    gain = _ranges.draw_param(rng, ranges, PARAMS[0], atom)
    gamma = _ranges.draw_param(rng, ranges, PARAMS[1], atom)
    return {"gain": gain, "gamma": gamma}


def apply(image: np.ndarray, rng: Stream | None = None, *, gain: float, gamma: float,
          inplace: bool = False) -> np.ndarray:
    """``255·k·(x/255)^γ`` in float32 (:func:`tone_curve`), no clipping. Draws nothing."""
    return tone_curve(image, gain, gamma, inplace=inplace)


def apply_uint8(image: np.ndarray, rng: Stream | None = None, *, gain: float, gamma: float) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image: rint(clip(T)) looked up (on integer levels the curve is the
    table T exactly: ``pointwise_uint8(apply, ...)`` would compute T[0..255] = T, so the table is used directly,
    computed afresh: a drawn (k, γ) rarely repeats, so the interpolation table is neither built nor cached).
    Draws nothing."""
    _check_curve(gain, gamma)
    return table_lookup_uint8(image, _curve(float(gain), float(gamma)))


SPEC = register_atom(AtomSpec(
    name="overexposure", label_index=7,
    family="illumination", modality="vis", stage=STAGE_ILLUMINATION, params=PARAMS,
    draw=draw, apply=apply, summary="over-exposure: Retinex illumination gain k > 1 with gamma < 1",
    label="overexp k={gain:.2f} g={gamma:.2f}", severity=SEVERITY, random_apply=False, apply_uint8=apply_uint8,
))
