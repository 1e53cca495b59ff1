r"""VIS low light: the illumination of a Retinex model dimmed by a gain and a gamma, with the sensor noise that
low light brings (atom ``lowlight``).

.. math::

    u = f_{k,\gamma}(x) = 255\, k \left(\frac{x}{255}\right)^{\gamma}\ (k < 1,\ \gamma > 1), \qquad
    y = u + \sqrt{\max(a\,u + b^2,\ 0)}\; n, \quad n \sim \mathcal{N}(0, 1) \text{ i.i.d. per pixel and channel}

on the 0-255 scale. The tone curve f is the Retinex illumination rescaling of :mod:`.exposure` (I = R ∘ L,
L → k·L^γ with the image standing in for L; Lv et al., *Attention guided low-light image enhancement*, IJCV
2021, y = β(αx)^γ; Wei et al., *Deep Retinex Decomposition*, BMVC 2018), here darkening. The noise is the
Poisson-Gaussian sensor model of Foi et al. (*Practical Poissonian-Gaussian noise modeling and fitting for
single-image raw data*, IEEE TIP 2008) in its Gaussian approximation: a signal-dependent shot-noise variance
a·u (a in grey levels: the variance per unit of signal) plus the read-noise variance b². With a = b = 0 no
normals are drawn and y = u. Unlike the ControlFusion / EMS noise scripts (``poisson(x/255·v)/v·255`` after a
``uint8`` truncation, global ``np.random``), nothing is clipped, truncated or drawn from a global state here.

**Exactness.** u is computed by :func:`.exposure.tone_curve` (a float64 table from IEEE basic operations,
float32 interpolation; no libm ``pow``); then, in float32 and in this order: v = u·a, v = v + fl32(b²),
v = max(v, 0), s = √v (correctly rounded), n from the stream (:meth:`demmi_rf.rng.Stream.normal`, the
toolkit's ziggurat on the raw words), n = n·s, y = u + n.

Randomness: k, γ, a, b (one ``uniform`` draw each for a range), then H·W·C standard normals when a > 0 or
b > 0.

Registered atom (:mod:`.registry`): ``lowlight`` (family ``illumination`` with ``overexposure``: at most one of
them in a setting; VIS, stage 28), parameters ``gain``, ``gamma``, ``shot`` (a), ``read`` (b), all uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import lut_uint8, quantize, scratch
from .exposure import STAGE_ILLUMINATION, tone_curve, tone_table
from .registry import UNIFORM, AtomSpec, Param, as_stream, register_atom

PARAMS = (
    Param("gain", UNIFORM, lo=0.0, hi=1.0, default=[0.4, 0.7], doc="k: illumination gain (< 1 darkens)"),
    Param("gamma", UNIFORM, lo=1.0, hi=10.0, default=[1.8, 2.6], doc="γ: tone exponent (> 1 deepens shadows)"),
    Param("shot", UNIFORM, lo=0.0, hi=100.0, default=[0.3, 1.0],
          doc="a: shot-noise variance per grey level of signal (0-255 scale)"),
    Param("read", UNIFORM, lo=0.0, hi=100.0, default=[1.0, 3.0], doc="b: read-noise standard deviation"),
)

#: five severity levels, mildest first
SEVERITY = (
    {"gain": [0.8, 0.9], "gamma": [1.2, 1.4], "shot": [0.0, 0.2], "read": [0.0, 1.0]},
    {"gain": [0.7, 0.8], "gamma": [1.4, 1.7], "shot": [0.2, 0.4], "read": [1.0, 1.5]},
    {"gain": [0.55, 0.7], "gamma": [1.7, 2.1], "shot": [0.4, 0.7], "read": [1.5, 2.0]},
    {"gain": [0.4, 0.55], "gamma": [2.1, 2.6], "shot": [0.7, 1.0], "read": [2.0, 3.0]},
    {"gain": [0.25, 0.4], "gamma": [2.6, 3.2], "shot": [1.0, 1.5], "read": [3.0, 4.0]},
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "lowlight") -> dict:
    """k, γ, a, b in that order (one ``uniform`` draw each for a range)."""
    return {p.name: _ranges.draw_param(rng, ranges, p, atom) for p in PARAMS}


def apply(image: np.ndarray, rng: Stream, *, gain: float, gamma: float, shot: float = 0.0, read: float = 0.0,
          inplace: bool = False) -> np.ndarray:
    """Tone curve, then the Poisson-Gaussian noise of the module docstring (float32, no clipping)."""
    if not (shot >= 0 and read >= 0):
        raise ValueError(f"lowlight noise parameters must be >= 0, got shot={shot!r}, read={read!r}")
    out = tone_curve(image, gain, gamma, inplace=inplace)
    if shot == 0 and read == 0:
        return out
    var = np.multiply(out, np.float32(shot))
    var += np.float32(read * read)
    np.maximum(var, np.float32(0.0), out=var)
    np.sqrt(var, out=var)
    n = as_stream(rng).normal(out.shape, 1.0)
    n *= var
    out += n
    return out


def apply_uint8(image: np.ndarray, rng: Stream, *, gain: float, gamma: float, shot: float = 0.0,
                read: float = 0.0) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image, with the same draws: on integer levels u = T[x] and the
    standard deviation √max(u·a + b², 0) are functions of the level alone, so both are computed on the 256
    levels with :func:`apply`'s float32 operations and looked up; then the same normals, n·s, u + n·s."""
    if not (shot >= 0 and read >= 0):
        raise ValueError(f"lowlight noise parameters must be >= 0, got shot={shot!r}, read={read!r}")
    table = tone_table(gain, gamma)
    if shot == 0 and read == 0:
        return lut_uint8(image, quantize(table.copy()))
    sd = np.multiply(table, np.float32(shot))
    sd += np.float32(read * read)
    np.maximum(sd, np.float32(0.0), out=sd)
    np.sqrt(sd, out=sd)
    out = lut_uint8(image, table, out=scratch("lowlight.u", image.shape))  # u = T[x]
    n = as_stream(rng).normal(out.shape, 1.0)
    n *= lut_uint8(image, sd, out=scratch("lowlight.s", image.shape))  # n·s, s = S[x]
    out += n
    return quantize(out)  # a new uint8 array: the buffers are free again


SPEC = register_atom(AtomSpec(
    name="lowlight", label_index=6,
    family="illumination", modality="vis", stage=STAGE_ILLUMINATION, params=PARAMS,
    draw=draw, apply=apply, summary="low light: Retinex illumination gain k < 1, gamma > 1, shot + read noise",
    label="lowlight k={gain:.2f} g={gamma:.2f} a={shot:.2f} b={read:.1f}", severity=SEVERITY,
    apply_uint8=apply_uint8,
))
