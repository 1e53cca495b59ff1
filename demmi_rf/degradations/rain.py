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
compared in float64 with ρ: exact; computed as the integer comparison w < ⌈ρ·2⁵³⌉·2¹¹ on the raw words, the
same mask (:func:`drop_threshold`). S is a sum of 0/1 values (exact integers, summed in uint8 for L < 256, then
converted to float32) computed by :func:`.motion.line_sum` (reflect-101 borders, cells in order); then
t = S·fl32(s) and y = x + t per channel: two correctly rounded float32 operations, the same bits on any CPU.

Randomness: ρ, L, θ, s (in that order; ``uniform`` for ρ, θ and s, ``below`` for L), then H·W uniforms.

Registered atom (:mod:`.registry`): ``rain`` (family ``rain``, VIS, stage ``STAGE_SCENE + 2`` = 12: after haze,
before the optics), parameters ``density``, ``length`` (integer choice), ``angle`` (degrees, rounded to an
integer; 90 is vertical) and ``intensity`` (s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import quantize, scratch, work_buffer
from .motion import _sum_shifted, line_cells, line_sum, round_angle
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


def drop_threshold(density: float) -> int:
    r"""The integer t with ``[u < ρ] = [w < t]`` for every raw word w, u = (w >> 11)·2⁻⁵³ (:meth:`Stream.uniforms`).

    u < ρ ⟺ k < ρ·2⁵³ with k = w >> 11 an integer (scaling by a power of two is exact in float64)
    ⟺ k < T, T = ⌈ρ·2⁵³⌉ ⟺ w < T·2¹¹ (w = k·2¹¹ + r, 0 ≤ r < 2¹¹). So t = T·2¹¹ for 0 < T < 2⁵³; t = 0 (no
    drop) for ρ ≤ 0 or NaN (u < NaN is false); t = 2⁶⁴ (every word: u ≤ 1 − 2⁻⁵³ < ρ) for T ≥ 2⁵³.
    ``tests/test_atoms_extended.py`` checks the equivalence on the words next to every threshold."""
    rho = float(density)
    if not rho > 0:
        return 0
    if rho >= 1.0:
        return 1 << 64
    big = math.ceil(rho * 2.0**53)
    return 1 << 64 if big >= 1 << 53 else big << 11


def _drops(stream: Stream, n: int, density: float) -> np.ndarray:
    """M as n bools, ``uniforms(n) < ρ`` computed on the raw words as ``w < t`` (:func:`drop_threshold`): the same
    mask and the same n words consumed, without the float conversion."""
    drops = np.empty(n, np.bool_)
    t = drop_threshold(density)
    if t == 0 or t == 1 << 64:
        stream.uniforms(n)  # the words are consumed all the same
        drops[...] = t != 0
        return drops
    return stream.raw_below(n, t, drops)  # the words Stream.uniforms(n) would draw


def _counts(shape: tuple[int, int], rng: Stream, density: float, length: int, angle: int) -> np.ndarray:
    """S as uint8 when L < 256 (counts <= L stay exact: OpenCV's saturating add never saturates), else float32."""
    h, w = shape
    cells = line_cells(length, angle)
    mask = _drops(as_stream(rng), h * w, density).view(np.uint8).reshape(h, w)  # 0/1
    if len(cells) < 256:
        return _count_sum(mask, cells)
    return line_sum(mask.astype(np.float32), cells)


def _count_sum(mask: np.ndarray, cells: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``Σ_j M[· + c_j]`` of the 0/1 uint8 mask with reflect-101 borders (:func:`.motion.line_sum`'s padding), in
    uint8 by whole-image saturating adds with shared pair sums (:func:`.motion._sum_shifted`): exact, the counts
    never exceed L < 256 (and integer sums do not depend on the order), so the same values as
    :func:`.motion.line_sum` on the mask."""
    import cv2

    if mask.size == 0 or len(cells) == 1:
        return line_sum(mask, cells)
    h, w = mask.shape
    px = max(abs(dx) for dx, _ in cells)
    py = max(abs(dy) for _, dy in cells)
    padded = cv2.copyMakeBorder(mask, py, py, px, px, cv2.BORDER_REFLECT_101)
    total = np.empty((h, w), np.uint8)
    _sum_shifted(padded, [(py + dy, px + dx) for dx, dy in cells], h, w, total)
    return total


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
    """``quantize(apply(image))`` for a uint8 image, with the same draws. apply adds t_k = fl32(k·fl32(s)) to a
    pixel of count k; on the 256 levels x that is y = min(255, x + r_k) for integers r_k unless x + t_k meets a
    rounding tie (:func:`_integer_steps` checks the whole table), so usually one saturating uint8 add of r_S;
    otherwise apply's float32 operations on blocks of rows that stay in cache (t = T[S] by a table, y = x + t,
    clip, rint)."""
    import cv2

    x = np.asarray(image)
    h, w = x.shape[:2]
    counts = _counts((h, w), rng, density, length, angle)
    if x.size == 0:
        return x.copy()
    if counts.dtype != np.uint8:  # L >= 256 (float32 counts): apply's arithmetic on the whole image
        work = x.astype(np.float32)
        counts *= np.float32(intensity)
        work += counts if work.ndim == 2 else counts[:, :, None]
        return quantize(work)
    table = np.zeros(256, np.float32)
    table[: length + 1] = np.arange(length + 1, dtype=np.float32)
    table[: length + 1] *= np.float32(intensity)  # t[k] = fl32(k·fl32(s)): apply's t on a count k
    c = 1 if x.ndim == 2 else x.shape[2]
    steps = _integer_steps(table[: length + 1])
    if steps is not None:  # y = min(255, x + r_k) exactly, for every level x and count k: one saturating add
        import cv2

        lut = np.zeros(256, np.uint8)
        lut[: length + 1] = steps
        amount = cv2.LUT(counts, lut)
        if c > 1:
            amount = cv2.merge([amount] * c)
        return cv2.add(np.ascontiguousarray(x), amount.reshape(x.shape))
    wc = w * c
    rows = max(1, _BLOCK_FLOATS // wc)
    src = np.ascontiguousarray(x).reshape(h, wc)
    out = np.empty((h, wc), np.uint8)
    xf = scratch("rain.x", (min(rows, h), wc))
    tf = scratch("rain.t", (min(rows, h), wc))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        k = counts[r0:r1]
        if c > 1:
            k = cv2.merge([k] * c)  # every channel of a pixel gets its count
        t = cv2.LUT(k.reshape(r1 - r0, wc), table, dst=tf[: r1 - r0])
        xb = xf[: r1 - r0]
        np.copyto(xb, src[r0:r1])
        np.add(xb, t, out=xb)
        np.clip(xb, 0.0, 255.0, out=xb)
        np.rint(xb, out=xb)
        np.copyto(out[r0:r1], xb, casting="unsafe")
    return out.reshape(x.shape)


def _integer_steps(t: np.ndarray) -> np.ndarray | None:
    """The uint8 r_k with quantize(fl32(x + t_k)) = min(255, x + r_k) for every level x = 0..255 and every k, when
    such r_k exist (they do unless some x + t_k lands on a rounding tie, e.g. t_k = 47.5, where half-to-even
    rounding depends on x), else None. Checked on the whole (k, x) table with :func:`apply`'s own float32 addition
    and the composition's rounding, so using them changes no byte."""
    levels = np.arange(256, dtype=np.float32)
    y = quantize(levels[None, :] + t[:, None])  # fl32(x + t_k), clip, rint, uint8
    r = y[:, 0].astype(np.int32)
    if np.array_equal(y, np.minimum(levels.astype(np.int32)[None, :] + r[:, None], 255)):
        return r.astype(np.uint8)
    return None


#: float32 elements per block of rows of :func:`apply_uint8` (256 KiB per buffer)
_BLOCK_FLOATS = 1 << 16


SPEC = register_atom(AtomSpec(
    name="rain", label_index=9,
    family="rain", modality="vis", stage=STAGE_SCENE + 2, params=PARAMS, draw=draw, apply=apply,
    summary="additive rain streaks (sparse drops blurred along a line)",
    label="rain p={density:.4f} L={length} a={angle} s={intensity:.0f}", severity=SEVERITY,
    apply_uint8=apply_uint8,
))
