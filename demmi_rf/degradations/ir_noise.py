r"""IR sensor noise: additive white Gaussian noise on the thermal image (atom ``ir_noise``).

.. math:: y = x + \sigma\, n, \qquad n \sim \mathcal{N}(0, 1) \text{ i.i.d. per pixel}

on the 0-255 scale, σ drawn per sample (the temporal noise of a microbolometer read-out: NETD-limited,
signal-independent). The VIS atoms ``noise15/25/50`` apply the same model at fixed σ; this one is the IR
counterpart of ControlFusion's ``genDateset/ir_noise.py`` (Gaussian N(0, 14²) on gray IR, followed there by
Poisson and salt-and-pepper with a truncating ``uint8`` cast and global ``np.random``) and of the Gaussian
part of EMS's degradations (σ 10). Nothing is clipped or rounded here.

**Exactness.** The normals are :meth:`demmi_rf.rng.Stream.normal` (the toolkit's ziggurat on the raw PCG64
words, σ folded into its table) added in place: the same bits as ``noise*`` on any CPU.

Randomness: σ (one ``uniform`` draw for a range), then H·W standard normals.

Registered atom (:mod:`.registry`): ``ir_noise`` (family ``ir_noise``, IR, stage ``STAGE_SENSOR + 5`` = 35,
after the column read-out pattern ``stripe``), parameter ``sigma`` (uniform, in [0, 255]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import work_buffer
from .registry import STAGE_SENSOR, UNIFORM, AtomSpec, Param, as_stream, register_atom

PARAMS = (
    Param("sigma", UNIFORM, lo=0.0, hi=255.0, default=[5.0, 20.0], doc="σ: noise standard deviation (0-255)"),
)

#: five severity levels, mildest first
SEVERITY = (
    {"sigma": [3.0, 6.0]},
    {"sigma": [6.0, 10.0]},
    {"sigma": [10.0, 15.0]},
    {"sigma": [15.0, 22.0]},
    {"sigma": [22.0, 30.0]},
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "ir_noise") -> dict:
    """σ (one ``uniform`` draw for a range)."""
    return {"sigma": _ranges.draw_param(rng, ranges, PARAMS[0], atom)}


def apply(image: np.ndarray, rng: Stream, *, sigma: float, inplace: bool = False) -> np.ndarray:
    """``x + σ·N(0, 1)`` in float32 (no clipping); ``image.size`` normals from ``rng``."""
    out = work_buffer(image, inplace)
    return as_stream(rng).normal(out.shape, sigma, add_to=out)


SPEC = register_atom(AtomSpec(
    name="ir_noise", label_index=12,
    family="ir_noise", modality="ir", stage=STAGE_SENSOR + 5, params=PARAMS, draw=draw,
    apply=apply, summary="IR additive white Gaussian noise", label="ir_noise s={sigma:.1f}", severity=SEVERITY,
))
