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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import ziggurat
from . import _ranges
from ._arrays import work_buffer


def draw(rng: np.random.Generator, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "stripe") -> dict:
    """``{"s": s ~ U(offset_std), "gain_std": s_g}`` (s_g fixed by the recipe)."""
    s = _ranges.uniform(rng, ranges, "offset_std", atom, lo=0.0)
    gain_std = _ranges.fixed(ranges, "gain_std", atom, lo=0.0)
    return {"s": s, "gain_std": gain_std}


def apply(
    image: np.ndarray, rng: np.random.Generator, *, s: float, gain_std: float = 0.0, inplace: bool = False
) -> np.ndarray:
    """``x + o_c (+ g_c x)`` in float32; offsets (and gains if ``gain_std > 0``) drawn from ``rng``."""
    out = work_buffer(image, inplace)
    w = out.shape[1]
    offsets = ziggurat.normal(rng, w, s)
    shape = (1, w) + (1,) * (out.ndim - 2)
    if gain_std > 0:
        gains = ziggurat.normal(rng, w, gain_std)
        gx = out * gains.reshape(shape)
        out += offsets.reshape(shape)
        out += gx
    else:
        out += offsets.reshape(shape)
    return out
