"""``evaluate``: score one fused image against its IR and VIS sources under a metric profile."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

import numpy as np

from ._strips import warm_allocator
from .color import rgb2gray
from .profiles import DEFAULT_PROFILE, MetricSpec, Profile, get_profile


def _check_image(x: np.ndarray, name: str, allow_rgb: bool) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise ValueError(f"{name}: expected a uint8 image (0-255), got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (allow_rgb and a.ndim == 3 and a.shape[2] == 3)):
        want = "HxW gray or HxWx3 RGB" if allow_rgb else "HxW gray"
        raise ValueError(f"{name}: expected an {want} image, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: empty image, shape {a.shape}")
    return a


def check_inputs(
    fused: np.ndarray, ir: np.ndarray, vis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate an evaluation triple: uint8, IR ``HxW``, fused and VIS ``HxW`` or ``HxWx3``, same ``H x W``.

    ``HxWx1`` arrays are accepted as gray. Raises ValueError naming the offending image and shape.
    """
    f = _check_image(fused, "fused", True)
    a = _check_image(ir, "ir", False)
    b = _check_image(vis, "vis", True)
    if not (f.shape[:2] == a.shape[:2] == b.shape[:2]):
        raise ValueError(
            f"shape mismatch: fused {f.shape}, ir {a.shape}, vis {b.shape} (height and width must agree)"
        )
    return f, a, b


def _select(prof: Profile, metrics: Iterable[str] | None) -> list[MetricSpec]:
    if metrics is None:
        return list(prof.metrics)
    if isinstance(metrics, str):
        metrics = [metrics]
    return [prof.metric(k) for k in metrics]


def _per_channel(spec: MetricSpec, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    if spec.rgb_compute is not None:
        return spec.rgb_compute(f, a, b)
    vals = []
    for k in range(f.shape[2]):
        bk = b if b.ndim == 2 else np.ascontiguousarray(b[..., k])
        vals.append(spec.compute(np.ascontiguousarray(f[..., k]), a, bk))
    return float(np.mean(vals))


def evaluate(
    fused: np.ndarray,
    ir: np.ndarray,
    vis: np.ndarray,
    profile: str = DEFAULT_PROFILE,
    *,
    metrics: Iterable[str] | None = None,
    reasons: MutableMapping[str, str] | None = None,
) -> dict[str, float]:
    """Score ``fused`` against the clean sources ``ir`` and ``vis`` with the metrics of ``profile``.

    Inputs are uint8 arrays of one height and width: ``ir`` gray ``HxW``; ``fused`` and ``vis`` gray or RGB
    ``HxWx3``. RGB images are converted to gray with MATLAB ``rgb2gray`` (BT.601, benchmark spec section 7),
    except in the ``vifb_rgb`` profile, which evaluates an RGB fused image per channel as VIFB's code does.

    Returns ``{metric key: value}`` in the profile's order (see :func:`profiles` / ``get_profile(name).keys``),
    or only the keys listed in ``metrics``. A metric whose window does not fit the image, or whose value is
    undefined (e.g. a correlation with a constant image), is ``nan``; when ``reasons`` is a dict it is cleared
    and filled with ``{key: why}`` for every NaN value. PSNR is ``inf`` when the fused image equals both sources.

    Raises ValueError for an unknown profile or metric key, a non-uint8 array, a wrong number of channels, or
    images whose shapes differ.
    """
    warm_allocator()
    prof = get_profile(profile)
    specs = _select(prof, metrics)
    f, a, b = check_inputs(fused, ir, vis)
    h, w = a.shape
    per_channel = prof.rgb_per_channel and f.ndim == 3
    if not per_channel:
        f, b = rgb2gray(f), rgb2gray(b)
    if reasons is not None:
        reasons.clear()
    out: dict[str, float] = {}
    for spec in specs:
        why = spec.size_check(h, w)
        if why is not None:
            value = float("nan")
        else:
            with np.errstate(all="ignore"):
                value = float(_per_channel(spec, f, a, b) if per_channel else spec.compute(f, a, b))
            why = spec.nan_reason if np.isnan(value) else None
        out[spec.key] = value
        if why is not None and reasons is not None:
            reasons[spec.key] = why
    return out
