r"""IR stripe (column fixed-pattern) noise (atom ``stripe``).

.. math::

    y(r, c) = x(r, c) + o_c + g_c\, x(r, c), \qquad o_c \sim \mathcal{N}(0, s^2), \quad
    g_c \sim \mathcal{N}(0, s_g^2)

one offset o_c (and gain g_c) per column, constant down the rows: the non-uniformity of uncooled
microbolometer read-out columns (the column offset + gain model, e.g. Kuang et al., *Single infrared image
stripe noise removal using deep convolutional networks*, IEEE Photonics J. 2017; DestripeCycleGAN
``utils.py``; EMS ``main_ir_strikp_noise.py`` for the offset-only form that DeMMI-RF follows).
Per sample s ~ U(3, 8) on the 0-255 scale; ``gain_std`` s_g is 0 in v1, and then no gains are drawn.
Unlike EMS and DRMF nothing is clipped or cast here (DRMF's ``uint8`` wrap-around): the composition rounds
once at the end.

Randomness: s (one uniform draw), then W normals for the offsets, then W for the gains when s_g > 0, from
:func:`demmi_rf.ziggurat.normal` (the toolkit's normal sampler on the generator's raw stream).
Works on H x W (and H x W x C, same offset for every channel of a column).

Registered atom (:mod:`.registry`): ``stripe`` (family ``stripe``, IR, stage :data:`~.registry.STAGE_SENSOR`,
label index 5), parameters ``offset_std`` (uniform, ≥ 0) and ``gain_std`` (fixed, ≥ 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import scratch, work_buffer
from .registry import FIXED, STAGE_SENSOR, UNIFORM, AtomSpec, Param, as_stream, register_atom

PARAMS = (
    Param("offset_std", UNIFORM, lo=0.0, default=[3.0, 8.0], doc="s: std of the column offsets o_c (0-255 scale)"),
    Param("gain_std", FIXED, lo=0.0, default=0.0, doc="s_g: std of the multiplicative column gains g_c"),
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "stripe") -> dict:
    """``{"s": s ~ U(offset_std), "gain_std": s_g}`` (s_g fixed by the recipe)."""
    s = _ranges.draw_param(rng, ranges, PARAMS[0], atom)
    gain_std = _ranges.draw_param(rng, ranges, PARAMS[1], atom)
    return {"s": s, "gain_std": gain_std}


def apply(
    image: np.ndarray, rng: Stream, *, s: float, gain_std: float = 0.0, inplace: bool = False
) -> np.ndarray:
    """``x + o_c (+ g_c x)`` in float32; offsets (and gains if ``gain_std > 0``) drawn from ``rng``."""
    stream = as_stream(rng)
    out = work_buffer(image, inplace)
    w = out.shape[1]
    offsets = stream.normal(w, s)
    shape = (1, w) + (1,) * (out.ndim - 2)
    if gain_std > 0:
        gains = stream.normal(w, gain_std)
        gx = np.multiply(out, gains.reshape(shape), out=scratch("stripe.gx", out.shape))  # x·g_c, reused buffer
        out += offsets.reshape(shape)
        out += gx
    else:
        out += offsets.reshape(shape)
    return out


#: five severity levels, mildest first (issue 14): the column-offset std s ~ U(level range), the same ladder as
#: ``stripe_gain``'s offsets; v1's U(3, 8) spans levels 2-3, DRMF's column std U(20, 25) lies in level 5.
#: ``gain_std`` comes from the recipe (0 in v1).
SEVERITY = ({"offset_std": [1.0, 3.0]}, {"offset_std": [3.0, 5.0]}, {"offset_std": [5.0, 8.0]},
            {"offset_std": [8.0, 14.0]}, {"offset_std": [14.0, 25.0]})

SPEC = register_atom(AtomSpec(
    name="stripe", family="stripe", modality="ir", stage=STAGE_SENSOR, params=PARAMS, draw=draw, apply=apply,
    summary="column-wise fixed-pattern (stripe) offsets", label="stripe s={s:.1f}", label_index=5,
    severity=SEVERITY,
))
