r"""VIS sensor noise: additive white Gaussian noise (atoms ``noise15``, ``noise25``, ``noise50``).

.. math:: y = x + \sigma\, n, \qquad n \sim \mathcal{N}(0, 1) \text{ i.i.d. per pixel and channel}

on the 0-255 scale, σ fixed per atom (15, 25, 50: the TG-ECNet paper's levels; benchmark spec section 2).
This is the AWGN model of the denoising literature (e.g. Zhang et al., *DnCNN*, IEEE TIP 2017; BasicSR
``add_gaussian_noise``). Unlike imagecorruptions ``gaussian_noise`` (σ on [0,1], truncating ``np.uint8`` cast)
or EMS (Gaussian then Poisson), nothing here clips or rounds: the composition rounds once at the end.

Randomness: ``image.size`` normals from :func:`demmi_rf.ziggurat.add_normal` (the toolkit's normal sampler on
the generator's raw stream), σ folded into its table and added in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import ziggurat
from . import _ranges
from ._arrays import work_buffer


def draw(rng: np.random.Generator, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "noise") -> dict:
    """``{"sigma": σ}`` from the recipe (``sigma = 15.0``; ``[a, b]`` would draw σ ~ U(a, b))."""
    return {"sigma": _ranges.uniform(rng, ranges, "sigma", atom, lo=0.0)}


def apply(image: np.ndarray, rng: np.random.Generator, *, sigma: float, inplace: bool = False) -> np.ndarray:
    """``image + sigma * N(0, 1)`` in float32 (no clipping). Draws ``image.size`` standard normals."""
    out = work_buffer(image, inplace)
    return ziggurat.add_normal(rng, out, sigma)
