r"""IR low contrast: a linear gain and offset (atom ``lowcontrast``).

.. math:: y = \alpha\, x + \beta, \qquad 0 < \alpha \le 1

on the 0-255 scale: the dynamic range shrinks by α and shifts by β, the flat, washed-out look of a thermal
image of a scene at nearly uniform temperature or behind a warm window. This is ControlFusion's
``genDateset/ir_lowcontrast.py`` (Tang et al., NeurIPS 2025): ``cv2.convertScaleAbs(x, alpha=0.5, beta=90)``,
i.e. saturate(|α x + β|) written to uint8, with "a larger β, a lower contrast"; and the linear model of
albumentations ``RandomBrightnessContrast``. Here nothing is clipped, taken absolute or cast (|·| is the
identity for α ≥ 0, β ≥ 0, x ≥ 0; the composition clips and rounds once). With β = (1 − α)·m the grey level
m stays fixed; the recipe draws α and β independently, as ControlFusion sets them.

**Exactness.** y = (x · fl32(α)) + fl32(β): one float32 multiplication then one addition (two numpy ufunc
calls: never fused into an FMA), the same bits on any CPU.

Randomness: α then β (one ``uniform`` draw each for a range); nothing per pixel.

Registered atom (:mod:`.registry`): ``lowcontrast`` (family ``ir_contrast``, IR, stage ``STAGE_OPTICS`` = 20:
before the sensor's stripe and noise), parameters ``alpha`` (in [0, 1]) and ``beta`` (in [-255, 255]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import pointwise_uint8, work_buffer
from .registry import STAGE_OPTICS, UNIFORM, AtomSpec, Param, register_atom

PARAMS = (
    Param("alpha", UNIFORM, lo=0.0, hi=1.0, default=[0.4, 0.6], doc="α: contrast gain (< 1 flattens)"),
    Param("beta", UNIFORM, lo=-255.0, hi=255.0, default=[60.0, 100.0], doc="β: offset on the 0-255 scale"),
)

#: five severity levels, mildest first (β ≈ (1 − α)·128 keeps mid-grey roughly in place)
SEVERITY = (
    {"alpha": [0.8, 0.9], "beta": [13.0, 26.0]},
    {"alpha": [0.65, 0.8], "beta": [26.0, 45.0]},
    {"alpha": [0.5, 0.65], "beta": [45.0, 64.0]},
    {"alpha": [0.35, 0.5], "beta": [64.0, 83.0]},
    {"alpha": [0.2, 0.35], "beta": [83.0, 102.0]},
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "lowcontrast") -> dict:
    """α then β."""
    return {p.name: _ranges.draw_param(rng, ranges, p, atom) for p in PARAMS}


def apply(image: np.ndarray, rng: Stream | None = None, *, alpha: float, beta: float,
          inplace: bool = False) -> np.ndarray:
    """``x·α + β`` in float32 (no clipping). Draws nothing."""
    out = work_buffer(image, inplace)
    np.multiply(out, np.float32(alpha), out=out)
    np.add(out, np.float32(beta), out=out)
    return out


def apply_uint8(image: np.ndarray, rng: Stream | None = None, *, alpha: float, beta: float) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image: the map on the 256 levels, quantised, then a table look-up
    (:func:`._arrays.pointwise_uint8`; the same bytes, one pass over the image). Draws nothing."""
    return pointwise_uint8(apply, image, alpha=alpha, beta=beta)


SPEC = register_atom(AtomSpec(
    name="lowcontrast", label_index=11,
    family="ir_contrast", modality="ir", stage=STAGE_OPTICS, params=PARAMS, draw=draw,
    apply=apply, summary="IR low contrast: linear gain alpha < 1 and offset beta",
    label="lowcontrast a={alpha:.2f} b={beta:.0f}", severity=SEVERITY, random_apply=False, apply_uint8=apply_uint8,
))
