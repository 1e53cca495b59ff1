r"""VIS sensor noise: additive white Gaussian noise (atoms ``noise15``, ``noise25``, ``noise50``).

.. math:: y = x + \sigma\, n, \qquad n \sim \mathcal{N}(0, 1) \text{ i.i.d. per pixel and channel}

on the 0-255 scale, σ fixed per atom (15, 25, 50: the TG-ECNet paper's levels; benchmark spec section 2).
This is the AWGN model of the denoising literature (e.g. Zhang et al., *DnCNN*, IEEE TIP 2017; BasicSR
``add_gaussian_noise``). Unlike imagecorruptions ``gaussian_noise`` (σ on [0,1], truncating ``np.uint8`` cast)
or EMS (Gaussian then Poisson), nothing here clips or rounds: the composition rounds once at the end.

Randomness: ``image.size`` normals from the stream (:meth:`demmi_rf.rng.Stream.normal` with ``add_to``: the
toolkit's normal sampler on the raw words), σ folded into its table and added in place.

Registered atoms (:mod:`.registry`): ``noise15``, ``noise25``, ``noise50`` (family ``noise``, VIS, stage
:data:`~.registry.STAGE_SENSOR`, label indices 0, 1, 2), parameter ``sigma`` (uniform, ≥ 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import work_buffer
from .registry import STAGE_SENSOR, UNIFORM, AtomSpec, Param, as_stream, register_atom

SIGMA = Param("sigma", UNIFORM, lo=0.0, doc="noise standard deviation σ on the 0-255 scale")


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "noise") -> dict:
    """``{"sigma": σ}`` from the recipe (``sigma = 15.0``; ``[a, b]`` would draw σ ~ U(a, b))."""
    return {"sigma": _ranges.draw_param(rng, ranges, SIGMA, atom)}


def apply(image: np.ndarray, rng: Stream, *, sigma: float, inplace: bool = False) -> np.ndarray:
    """``image + sigma * N(0, 1)`` in float32 (no clipping). Draws ``image.size`` standard normals."""
    out = work_buffer(image, inplace)
    return as_stream(rng).normal(out.shape, sigma, add_to=out)


#: five severity levels, mildest first (issue 14), shared by the three v1 noise atoms (one corruption at fixed
#: σ, as ImageNet-C's Gaussian noise): σ = 10, 15, 25, 35, 50 holds the paper's three σ at levels 2, 3 and 5, so
#: ``noise15.s3`` is σ 25 (the level, not the atom's name, sets σ; ``demmi-rf-c`` uses ``noise50.s<k>``)
SEVERITY = ({"sigma": 10.0}, {"sigma": 15.0}, {"sigma": 25.0}, {"sigma": 35.0}, {"sigma": 50.0})

for _index, _sigma in enumerate((15, 25, 50)):
    register_atom(AtomSpec(
        name=f"noise{_sigma}", family="noise", modality="vis", stage=STAGE_SENSOR,
        params=(Param("sigma", UNIFORM, lo=0.0, default=float(_sigma), doc=SIGMA.doc),),
        draw=draw, apply=apply, summary=f"additive white Gaussian noise, sigma = {_sigma}",
        label="sigma={sigma:g}", label_index=_index, severity=SEVERITY,
    ))
