r"""IR stripe with column gains and a per-pixel Gaussian term: the EMS / DRMF form (atom ``stripe_gain``).

.. math::

    y(r, c) = x(r, c) + g_c\, x(r, c) + o_c + \sigma_p\, n(r, c), \qquad
    o_c \sim \mathcal{N}(0, s_o^2),\ g_c \sim \mathcal{N}(0, s_g^2) \text{ per column},\
    n(r, c) \sim \mathcal{N}(0, 1) \text{ per pixel}

on the 0-255 scale: the column fixed-pattern noise of an uncooled microbolometer (offset o_c and gain g_c of
each read-out column, constant down the rows) plus the pixel's temporal noise. EMS
(``XunpengYi/EMS``, ``main_ir_strikp_noise.py``) and DRMF (``Linfeng-Tang/DRMF``, ``utils/noise_tiaowen.py``)
add a per-pixel Gaussian N(0, σ_p²) (EMS: σ_p ~ U(3, 5); DRMF: U(25, 30)) to tiled column offsets
(EMS: s_o ~ U(3, 8); DRMF: U(20, 25)); the gain term is the offset + gain model of DestripeCycleGAN
(``utils.py``: y = x + A₁ + A₂x, b ~ U(0.02, 0.12) on [0, 1]) and Kuang et al. (IEEE Photonics J. 2017). The
v1 atom ``stripe`` is the offset(+gain) part alone; this one is of the same family (at most one of them in a
setting; the cascade's destriper serves both). Nothing is clipped or cast (DRMF's ``prepare_data.py`` casts to
``uint8`` with wrap-around, EMS relies on ``imwrite`` saturating).

**Exactness.** In float32 and in this order: t = x·g_c (one multiply per pixel, g_c broadcast down the
rows), y = x + o_c, y = y + t, then y = y + σ_p·n (:meth:`demmi_rf.rng.Stream.normal` with ``add_to``: the
toolkit's ziggurat on the raw words). Every step is one correctly rounded IEEE operation: the same bits on any
CPU. On uint8 (the atom alone in its chain, :func:`apply_uint8`) the same operations run in place on a reused
float32 buffer and the result is clipped and rounded by :func:`._arrays.quantize_into_uint8` (the composition's
rounding in two passes): the same bytes.

Randomness: s_o, s_g, σ_p (one ``uniform`` draw each for a range), then W normals (offsets), W normals (gains,
only when s_g > 0), H·W normals (pixels, only when σ_p > 0).

Registered atom (:mod:`.registry`): ``stripe_gain`` (family ``stripe``, IR, stage ``STAGE_SENSOR`` = 30),
parameters ``offset_std``, ``gain_std``, ``pixel_std`` (uniform, ≥ 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges, stripe
from ._arrays import quantize_into_uint8, scratch
from .registry import STAGE_SENSOR, UNIFORM, AtomSpec, Param, as_stream, register_atom

PARAMS = (
    Param("offset_std", UNIFORM, lo=0.0, hi=255.0, default=[3.0, 8.0], doc="s_o: std of the column offsets o_c"),
    Param("gain_std", UNIFORM, lo=0.0, hi=1.0, default=[0.02, 0.06], doc="s_g: std of the column gains g_c"),
    Param("pixel_std", UNIFORM, lo=0.0, hi=255.0, default=[3.0, 5.0], doc="σ_p: std of the per-pixel term"),
)

#: five severity levels, mildest first
SEVERITY = (
    {"offset_std": [1.0, 3.0], "gain_std": [0.0, 0.01], "pixel_std": [1.0, 2.0]},
    {"offset_std": [3.0, 5.0], "gain_std": [0.01, 0.02], "pixel_std": [2.0, 3.0]},
    {"offset_std": [5.0, 8.0], "gain_std": [0.02, 0.04], "pixel_std": [3.0, 5.0]},
    {"offset_std": [8.0, 14.0], "gain_std": [0.04, 0.07], "pixel_std": [5.0, 10.0]},
    {"offset_std": [14.0, 25.0], "gain_std": [0.07, 0.12], "pixel_std": [10.0, 30.0]},
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "stripe_gain") -> dict:
    """s_o, s_g, σ_p in that order."""
    return {p.name: _ranges.draw_param(rng, ranges, p, atom) for p in PARAMS}


def _check(offset_std: float, gain_std: float, pixel_std: float) -> None:
    if not (offset_std >= 0 and gain_std >= 0 and pixel_std >= 0):
        raise ValueError(f"stripe_gain standard deviations must be >= 0, got {offset_std!r}, {gain_std!r}, "
                         f"{pixel_std!r}")


def apply(image: np.ndarray, rng: Stream, *, offset_std: float, gain_std: float, pixel_std: float,
          inplace: bool = False) -> np.ndarray:
    """``x + g_c x + o_c + σ_p n`` in float32 (no clipping); the order of the module docstring."""
    _check(offset_std, gain_std, pixel_std)
    stream = as_stream(rng)
    out = stripe.apply(image, stream, s=offset_std, gain_std=gain_std, inplace=inplace)  # v1's column model
    if pixel_std > 0:
        stream.normal(out.shape, pixel_std, add_to=out)
    return out


def apply_uint8(image: np.ndarray, rng: Stream, *, offset_std: float, gain_std: float, pixel_std: float
                ) -> np.ndarray:
    """``quantize(apply(float32(image)))`` for a uint8 image, with the same draws and float32 operations: apply runs
    in place on a reused per-thread float32 buffer (no fresh pages per image) and the result is rounded by
    :func:`._arrays.quantize_into_uint8` (clip, then one rounding conversion): the same bytes."""
    _check(offset_std, gain_std, pixel_std)
    x = np.asarray(image)
    if x.dtype != np.uint8:
        raise TypeError(f"apply_uint8 needs a uint8 image, got {x.dtype}")
    work = scratch("stripe_gain.work", x.shape)
    np.copyto(work, x)  # float32(x): exact
    apply(work, rng, offset_std=offset_std, gain_std=gain_std, pixel_std=pixel_std, inplace=True)
    return quantize_into_uint8(work)


SPEC = register_atom(AtomSpec(
    name="stripe_gain", label_index=13,
    family="stripe", modality="ir", stage=STAGE_SENSOR, params=PARAMS, draw=draw,
    apply=apply, summary="IR column offsets and gains plus a per-pixel Gaussian term (EMS / DRMF form)",
    label="stripe_gain o={offset_std:.1f} g={gain_std:.3f} p={pixel_std:.1f}", severity=SEVERITY,
    apply_uint8=apply_uint8,
))
