r"""Paired random crops, flips and 90-degree rotations, and BT.601 gray, on numpy arrays (no torch).

Every array of one item (degraded and clean, VIS and IR) gets the *same* crop window and the *same* dihedral
transform; this module only draws and applies them, the caller passes every array through.

Dihedral transform ``k`` in ``0..7`` (the eight symmetries of the square):

.. math::  T_k(a) = F^{\lfloor k/4 \rfloor}\big(\operatorname{rot90}^{k \bmod 4}(a)\big)

with ``rot90`` counter-clockwise in the (row, column) plane (``numpy.rot90``) and ``F`` a left-right flip.
``k = 0`` is the identity. (TG-ECNet draws its mode from 1..7 and never keeps the identity; we draw all eight
uniformly, the usual choice.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..color import RGB2GRAY_WEIGHTS, rgb2gray

Window = tuple[int, int, int, int]  # (y0, x0, height, width)

# MATLAB rgb2gray weights: first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]) (ITU-R BT.601)
BT601 = RGB2GRAY_WEIGHTS


def crop_size(crop: int | Sequence[int] | None) -> tuple[int, int] | None:
    """Normalise a crop argument (``128`` or ``(h, w)``) to ``(h, w)``; ``None`` stays ``None``."""
    if crop is None:
        return None
    if isinstance(crop, (int, np.integer)) and not isinstance(crop, bool):
        size = (int(crop), int(crop))
    elif isinstance(crop, Sequence) and len(crop) == 2 and all(isinstance(c, (int, np.integer)) for c in crop):
        size = (int(crop[0]), int(crop[1]))
    else:
        raise ValueError(f"crop must be an int or a (height, width) pair of ints, got {crop!r}")
    if min(size) < 1:
        raise ValueError(f"crop sides must be >= 1, got {crop!r}")
    return size


def crop_window(rng: np.random.Generator, height: int, width: int, crop: tuple[int, int]) -> Window:
    """A uniformly random ``crop``-sized window inside an ``height x width`` image.

    ``y0 ~ U{0..H-h}`` then ``x0 ~ U{0..W-w}`` (two draws from ``rng``, in that order).
    Raises ``ValueError`` when the image is smaller than the crop.
    """
    ch, cw = crop
    if ch > height or cw > width:
        raise ValueError(f"crop {ch}x{cw} does not fit in a {height}x{width} image")
    y0 = int(rng.integers(0, height - ch + 1))
    x0 = int(rng.integers(0, width - cw + 1))
    return (y0, x0, ch, cw)


def draw_dihedral(rng: np.random.Generator) -> int:
    """One of the eight dihedral transforms, uniformly (one draw from ``rng``)."""
    return int(rng.integers(0, 8))


def draw_choices(
    rng: np.random.Generator, height: int, width: int, crop: tuple[int, int] | None, augment: bool
) -> tuple[Window | None, int]:
    """The random choices of one item: ``(window or None, k)``.

    Draw order: the dihedral index ``k`` (only if ``augment``), then the window (only if ``crop``). When ``k``
    is odd (a 90-degree turn) the window is drawn with the crop's sides swapped, so that after the transform
    every output is exactly ``crop``-shaped.
    """
    k = draw_dihedral(rng) if augment else 0
    window = None
    if crop is not None:
        ch, cw = crop if k % 2 == 0 else (crop[1], crop[0])
        window = crop_window(rng, height, width, (ch, cw))
    return window, k


def apply_dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """:math:`T_k` of an ``H x W`` or ``H x W x C`` array (a view; the channel axis is untouched)."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    out = np.rot90(array, k % 4, axes=(0, 1))
    if k >= 4:
        out = out[:, ::-1]
    return out


def crop_array(array: np.ndarray, window: Window) -> np.ndarray:
    """The ``window = (y0, x0, h, w)`` region of an array (a view)."""
    y0, x0, h, w = window
    return array[y0 : y0 + h, x0 : x0 + w]


def rgb_to_gray_bt601(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 ``H x W x 3`` RGB array: ``round(0.2989 R + 0.5870 G + 0.1140 B)``.

    Exact MATLAB weights (:data:`BT601`), computed in float64, rounded half up (values are non-negative, so
    this is MATLAB's round-half-away-from-zero) to uint8. A 2-D array is returned unchanged. The toolkit's one
    conversion, :func:`demmi_rf.color.rgb2gray` (the evaluation's), so training and scoring see the same gray.
    """
    return rgb2gray(rgb)
