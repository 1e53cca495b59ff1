r"""VIS haze: the atmospheric scattering model with a radial pseudo-depth (atom ``haze``).

.. math::

    I(p) = J(p)\,t(p) + A\,(1 - t(p)), \qquad
    t(p) = \operatorname{clamp}\big(e^{-\beta\, d(p)},\ t_{\min},\ 1\big), \qquad
    A = \operatorname{mean}(J) \text{ over all pixels and channels}

(Koschmieder's model as used by McCartney 1976 / He et al., *Dark Channel Prior*, CVPR 2009; TG-ECNet Eq. 8
for A.) The pseudo-depth is radial around a focal ("vanishing") point c:

.. math:: d(p) = 1 - \frac{\lVert p - c\rVert}{\max_{q \in \text{corners}} \lVert q - c\rVert} \in [0, 1]

so haze is densest at c (d = 1) and absent at the farthest corner (d = 0). Pixel p = (x, y) are the integer
pixel indices, corners are (0, 0), (W-1, 0), (0, H-1), (W-1, H-1). Per sample: β ~ U(1, 2),
c_x ~ U(0.3, 0.7)·W, c_y ~ U(0.2, 0.5)·H (recipe ``[degradations.haze]``). A user depth map replaces the
radial d: ``d = (depth - min) / (max - min)`` (near = 0, so far objects get the densest haze); a constant depth
map is an error. Because t ∈ [t_min, 1], every output pixel is a convex combination of J and A: haze never
brightens beyond the model (unlike EMS ``main_vis_haze.m``, whose d < 0 beyond 425 px gives t > 1).

Numerics: d and t are float32 (H x W), broadcast over channels; the arithmetic is ``A + (J - A)·t``. The
exponential is computed from IEEE basic operations (:func:`demmi_rf.portable_math.exp_f32`) so that t has the
same bits on every CPU (numpy's SIMD ``exp`` differs between instruction sets in the last bit).

Registered atom (:mod:`.registry`): ``haze`` (family ``haze``, VIS, stage :data:`~.registry.STAGE_SCENE`, label
index 3), parameters ``beta``, ``focal_x``, ``focal_y`` (uniform) and ``t_min`` (fixed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..portable_math import exp_f32
from ..rng import Stream
from . import _ranges
from ._arrays import work_buffer
from .registry import FIXED, STAGE_SCENE, UNIFORM, AtomSpec, Param, register_atom

PARAMS = (
    Param("beta", UNIFORM, lo=0.0, default=[1.0, 2.0], doc="β: scattering coefficient, t = exp(-β d)"),
    Param("focal_x", UNIFORM, lo=0.0, hi=1.0, default=[0.3, 0.7], doc="focal point x as a fraction of the width"),
    Param("focal_y", UNIFORM, lo=0.0, hi=1.0, default=[0.2, 0.5], doc="focal point y as a fraction of the height"),
    Param("t_min", FIXED, lo=0.0, hi=1.0, default=0.05, doc="transmission clamped to [t_min, 1]"),
)
_P = {p.name: p for p in PARAMS}


def draw(
    rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "haze",
    depth: np.ndarray | None = None,
) -> dict:
    """Draw β, then the focal point (x then y), in that order; record ``A = mean(J)`` and ``t_min``.

    The focal point is drawn even when ``depth`` is given (so that later atoms see the same stream), but it
    is then not recorded and not used.
    """
    h, w = image.shape[:2]
    t_min = _ranges.draw_param(rng, ranges, _P["t_min"], atom)
    beta = _ranges.draw_param(rng, ranges, _P["beta"], atom)
    fx = _ranges.draw_param(rng, ranges, _P["focal_x"], atom)
    fy = _ranges.draw_param(rng, ranges, _P["focal_y"], atom)
    params: dict[str, Any] = {"beta": beta}
    if depth is None:
        params.update(focal_x_px=fx * w, focal_y_px=fy * h, pseudo_depth="radial")
    else:
        params["pseudo_depth"] = "user"
    params.update(A=atmospheric_light(image), t_min=t_min)
    return params


def atmospheric_light(image: np.ndarray) -> float:
    """A = mean(J) over all pixels and channels: the float64 sum divided by the count.

    For the integer-valued J of the chain (haze comes first) the sum is exact, so A is the same on every
    platform; OpenCV's ``sumElems`` (up to 4 channels) is used for speed, numpy otherwise.
    """
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim in (2, 3) and channels <= 4 and image.size and image.dtype in (np.uint8, np.float32):
        import cv2

        total = sum(cv2.sumElems(image)[:channels])
        return float(total / image.size)
    return float(np.mean(image, dtype=np.float64))


def radial_depth(height: int, width: int, focal_x_px: float, focal_y_px: float) -> np.ndarray:
    """d(p) = 1 - ||p - c|| / max_corner ||q - c||, float32 H x W, in [0, 1] up to float rounding."""
    cx, cy = float(focal_x_px), float(focal_y_px)
    far = np.sqrt(max(cx**2, (width - 1 - cx) ** 2) + max(cy**2, (height - 1 - cy) ** 2))
    dx2 = np.square(np.arange(width, dtype=np.float64) - cx).astype(np.float32)
    dy2 = np.square(np.arange(height, dtype=np.float64) - cy).astype(np.float32)
    dist = dy2[:, None] + dx2[None, :]
    np.sqrt(dist, out=dist)
    if far > 0:
        dist *= np.float32(-1.0 / far)
    dist += np.float32(1.0)
    return dist


def depth_from_map(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A user depth map (H x W, any real dtype, larger = farther) normalised to d in [0, 1], near = 0."""
    depth = np.asarray(depth)
    if depth.shape != tuple(shape):
        raise ValueError(f"depth map has shape {depth.shape}, expected {tuple(shape)} (the image's H x W)")
    if depth.dtype.kind not in "uif" or depth.dtype == np.bool_:
        raise ValueError(f"depth map must be a real-valued array, got dtype {depth.dtype}")
    d = depth.astype(np.float64)
    if not np.isfinite(d).all():
        raise ValueError("depth map contains NaN or infinite values")
    lo, hi = float(d.min()), float(d.max())
    if hi <= lo:
        raise ValueError(f"depth map is constant ({lo}): cannot normalise it to [0, 1] (near = 0, far = 1)")
    return ((d - lo) / (hi - lo)).astype(np.float32)


def transmission(d: np.ndarray, beta: float, t_min: float) -> np.ndarray:
    """t = clamp(exp(-β d), t_min, 1), float32 (``d`` is overwritten; exp from
    :func:`~demmi_rf.portable_math.exp_f32`)."""
    d *= np.float32(-beta)
    t = exp_f32(d)
    np.clip(t, np.float32(t_min), np.float32(1.0), out=t)
    return t


def apply(
    image: np.ndarray, rng: Stream | None = None, *, beta: float, A: float, t_min: float,
    focal_x_px: float | None = None, focal_y_px: float | None = None, pseudo_depth: str = "radial",
    depth: np.ndarray | None = None, inplace: bool = False,
) -> np.ndarray:
    """``A + (J - A)·t`` in float32. Draws nothing (``rng`` is accepted for a uniform atom signature)."""
    out = work_buffer(image, inplace)
    h, w = out.shape[:2]
    if depth is not None:
        d = depth_from_map(depth, (h, w))
    else:
        if focal_x_px is None or focal_y_px is None:
            raise ValueError("haze needs focal_x_px and focal_y_px (radial pseudo-depth) or a depth map")
        d = radial_depth(h, w, focal_x_px, focal_y_px)
    if pseudo_depth not in ("radial", "user") or (pseudo_depth == "user") != (depth is not None):
        raise ValueError(f"pseudo_depth={pseudo_depth!r} does not match depth={'given' if depth is not None else None}")
    t = transmission(d, beta, t_min)
    if out.ndim == 3:  # an explicit per-channel copy of t: numpy's broadcasting multiply is 10x slower here
        import cv2

        t = cv2.merge([t] * out.shape[2]).reshape(out.shape)
    a = np.float32(A)
    out -= a
    out *= t
    out += a
    return out


#: five severity levels, mildest first (issue 14): β ranges on the radial depth d ∈ [0, 1], so the densest
#: transmission e^{-β} runs from 0.78-0.61 (level 1) to 0.14-0.05 (level 5, where t_min = 0.05 takes over);
#: v1's β ~ U(1, 2) spans levels 3-4. Focal point and t_min come from the recipe.
SEVERITY = ({"beta": [0.25, 0.5]}, {"beta": [0.5, 1.0]}, {"beta": [1.0, 1.5]}, {"beta": [1.5, 2.0]},
            {"beta": [2.0, 3.0]})

SPEC = register_atom(AtomSpec(
    name="haze", family="haze", modality="vis", stage=STAGE_SCENE, params=PARAMS, draw=draw, apply=apply,
    summary="atmospheric scattering model with radial pseudo-depth", label="haze b={beta:.2f} A={A:.0f}",
    label_index=3, random_apply=False, severity=SEVERITY,
))
