r"""VIS sensor noise: additive white Gaussian noise (atoms ``noise15``, ``noise25``, ``noise50``).

.. math:: y = x + \sigma\, n, \qquad n \sim \mathcal{N}(0, 1) \text{ i.i.d. per pixel and channel}

on the 0-255 scale, σ fixed per atom (15, 25, 50: the TG-ECNet paper's levels; benchmark spec section 2).
This is the AWGN model of the denoising literature (e.g. Zhang et al., *DnCNN*, IEEE TIP 2017; BasicSR
``add_gaussian_noise``). Unlike imagecorruptions ``gaussian_noise`` (σ on [0,1], truncating ``np.uint8`` cast)
or EMS (Gaussian then Poisson), nothing here clips or rounds: the composition rounds once at the end.

Randomness: one ``rng.standard_normal(image.shape, dtype=float32)`` draw, scaled by σ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _ranges
from ._arrays import work_buffer


def draw(rng: np.random.Generator, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "noise") -> dict:
    """``{"sigma": σ}`` from the recipe (``sigma = 15.0``; ``[a, b]`` would draw σ ~ U(a, b))."""
    return {"sigma": _ranges.uniform(rng, ranges, "sigma", atom, lo=0.0)}


def apply(image: np.ndarray, rng: np.random.Generator, *, sigma: float, inplace: bool = False) -> np.ndarray:
    """``image + sigma * N(0, 1)`` in float32 (no clipping). Draws ``image.size`` standard normals."""
    out = work_buffer(image, inplace)
    n = rng.standard_normal(out.shape, dtype=np.float32)
    n *= np.float32(sigma)
    out += n
    return out
