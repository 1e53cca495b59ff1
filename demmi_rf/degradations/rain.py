r"""VIS rain streaks: an additive layer of straight streaks (atom ``rain``).

.. math::

    y = x + s\, S, \qquad S(p) = \sum_{j=0}^{L-1} M(p + c_j), \qquad
    M(p) = [\,u(p) < \rho\,],\ u(p) \sim U[0, 1) \text{ i.i.d. per pixel}

on the 0-255 scale, the same S for every channel (white rain). M marks the pixels where a drop starts
(density ρ: the expected fraction of such pixels), c_j are the L cells of the digital line of
:mod:`.motion` (length L, angle θ, the drop's motion during the exposure), so every drop becomes a streak of
L pixels of brightness s (overlapping streaks add up). This is the additive rain model O = B + S of Yang et
al., *Deep joint rain detection and removal from a single image* (CVPR 2017; the Rain100L/H synthesis) with
the streak layer built like the ControlFusion generator ``genDateset/vis_rain.py`` (sparse noise blurred
along a line) and albumentations ``RandomRain`` (H/3 drop lines drawn with ``cv2.polylines`` at positions from
numpy's ``Generator.integers``, the rain layer blurred 7×7 in uint8, the image then dimmed by 0.7), but with the
streak brightness a parameter: ControlFusion min-max normalises its streak layer, so the brightness depends on
the image's own noise draw.

**Exactness.** u are (w >> 11)·2⁻⁵³ of H·W raw words (:meth:`demmi_rf.rng.Stream.uniforms`, row-major),
compared in float64 with ρ: exact. S is a sum of 0/1 values (exact integers, summed in uint8 for L < 256, then
converted to float32) computed by :func:`.motion.line_sum` (reflect-101 borders, cells in order); then
t = S·fl32(s) and y = x + t per channel: two correctly rounded float32 operations, the same bits on any CPU.

Randomness: ρ, L, θ, s (in that order; ``uniform`` for ρ, θ and s, ``below`` for L), then H·W uniforms.

Registered atom (:mod:`.registry`): ``rain`` (family ``rain``, VIS, stage ``STAGE_SCENE + 2`` = 12: after haze,
before the optics), parameters ``density``, ``length`` (integer choice), ``angle`` (degrees, rounded to an
integer; 90 is vertical) and ``intensity`` (s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import quantize, work_buffer
from .motion import line_cells, line_sum, round_angle
from .registry import CHOICE, STAGE_SCENE, UNIFORM, AtomSpec, Param, as_stream, register_atom

PARAMS = (
    Param("density", UNIFORM, lo=0.0, hi=1.0, default=[0.002, 0.006], doc="ρ: fraction of pixels starting a drop"),
    Param("length", CHOICE, lo=1, hi=201, default=[15, 20, 25, 30], doc="L: streak length in pixels"),
    Param("angle", UNIFORM, lo=-360.0, hi=360.0, default=[70.0, 110.0],
          doc="θ in degrees (90 = vertical), rounded to an integer degree"),
    Param("intensity", UNIFORM, lo=0.0, hi=255.0, default=[40.0, 80.0], doc="s: brightness added by a streak"),
)

#: five severity levels, mildest first
SEVERITY = (
    {"density": [0.0005, 0.001], "length": [10, 15], "intensity": [30.0, 40.0]},
    {"density": [0.001, 0.002], "length": [15, 20], "intensity": [40.0, 50.0]},
    {"density": [0.002, 0.004], "length": [20, 25], "intensity": [50.0, 60.0]},
    {"density": [0.004, 0.007], "length": [25, 30], "intensity": [60.0, 75.0]},
    {"density": [0.007, 0.012], "length": [30, 40], "intensity": [75.0, 90.0]},
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "rain") -> dict:
    """ρ, L, θ (rounded to an integer degree), s, in that order."""
    p = {q.name: _ranges.draw_param(rng, ranges, q, atom) for q in PARAMS}
    p["length"] = int(p["length"])
    p["angle"] = round_angle(p["angle"])
    return p


def _counts(shape: tuple[int, int], rng: Stream, density: float, length: int, angle: int) -> np.ndarray:
    """S as uint8 when L < 256 (counts <= L stay exact: OpenCV's saturating add never saturates), else float32."""
    h, w = shape
    cells = line_cells(length, angle)
    u = as_stream(rng).uniforms(h * w).reshape(h, w)
    mask = (u < float(density)).view(np.uint8)  # 0/1
    if len(cells) < 256:
        return line_sum(mask, cells, out=mask)
    return line_sum(mask.astype(np.float32), cells)


def streaks(shape: tuple[int, int], rng: Stream, density: float, length: int, angle: int) -> np.ndarray:
    """S: the float32 H x W streak count of the module docstring (draws H·W uniforms)."""
    return _counts(shape, rng, density, length, angle).astype(np.float32, copy=False)


def apply(image: np.ndarray, rng: Stream, *, density: float, length: int, angle: int, intensity: float,
          inplace: bool = False) -> np.ndarray:
    """``x + s·S`` in float32 (no clipping); S from H·W uniforms of ``rng``."""
    out = work_buffer(image, inplace)
    h, w = out.shape[:2]
    t = streaks((h, w), rng, density, length, angle)
    t *= np.float32(intensity)
    if out.ndim == 2:
        out += t
    else:
        import cv2

        out += cv2.merge([t] * out.shape[2]).reshape(out.shape)  # broadcasting add is slow on the last axis
    return out


def apply_uint8(image: np.ndarray, rng: Stream, *, density: float, length: int, angle: int,
                intensity: float) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image, with the same draws: where S = 0 the float path gives
    x + 0 = x, so only the streak pixels are computed, each as fl32(x + fl32(S·fl32(s))) then rounded (the
    values t of :func:`apply` per count S = 0..L, the same single addition)."""
    x = np.asarray(image)
    h, w = x.shape[:2]
    counts = _counts((h, w), rng, density, length, angle)
    if counts.dtype != np.uint8:  # L >= 256: the float path as it is
        out = x.astype(np.float32)
        t = counts
        t *= np.float32(intensity)
        out += t if out.ndim == 2 else t[:, :, None]
        return quantize(out)
    out = x.copy()
    where = np.flatnonzero(counts)
    if where.size:
        t = np.arange(length + 1, dtype=np.float32)
        t *= np.float32(intensity)  # t[k] = fl32(k·fl32(s)), the value apply adds on a count k
        add = t[counts.reshape(-1)[where]]
        flat = out.reshape(h * w, -1)  # one row per pixel, its channels along the row
        pixels = flat[where].astype(np.float32)
        pixels += add[:, None]
        flat[where] = quantize(pixels)
    return out


SPEC = register_atom(AtomSpec(
    name="rain", label_index=9,
    family="rain", modality="vis", stage=STAGE_SCENE + 2, params=PARAMS, draw=draw, apply=apply,
    summary="additive rain streaks (sparse drops blurred along a line)",
    label="rain p={density:.4f} L={length} a={angle} s={intensity:.0f}", severity=SEVERITY,
    apply_uint8=apply_uint8,
))
