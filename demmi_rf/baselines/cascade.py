"""``cascade``: classical restoration chosen by the sample's known atoms, then Laplacian-pyramid fusion.

The cascade is told *which* atoms degraded the sample (the setting name, public in the manifest) and the
recipe's parameter *ranges* (public in the dataset card), never the drawn per-sample parameters (radius, β,
focal point, column offsets), which would make it an oracle. It undoes the synthesis chain in reverse order:

* VIS (synthesis haze -> defocus -> noise, so restoration noise -> defocus -> haze):

  1. ``noise15|25|50``: non-local means with ``h`` set from σ = 15/25/50, which is part of the atom's name
     (:mod:`.denoise`);
  2. ``defocus``: Richardson-Lucy deconvolution (10 iterations) with the spec's disk PSF of the *mean radius of
     the recipe's range* (4.5 px for v1's {3, 4, 5, 6}; :mod:`.deblur`). On the real pairs this beat Wiener
     filtering for every radius 3-6 when the true radius is unknown;
  3. ``haze``: dark-channel-prior dehazing with the airlight estimated as the input mean (the benchmark's
     ``A = mean(J)`` model) and ``ω = 0.5`` (:mod:`.dehaze`);

* IR: ``stripe``: column destriping (:mod:`.destripe`);

and, for the atoms beyond v1 (issue 14), each from the *means of the recipe's ranges* of its parameters (the
level's ranges for a severity setting ``<atom>.s<k>``; :func:`range_mean`):

* ``lowlight``, ``overexposure`` (family ``illumination``): the inverse tone curve
  ``x̂ = 255·(y/(255·k̄))^(1/γ̄)`` (:mod:`.tone`); for ``lowlight``, whose spec has shot and read noise, NLM
  first with ``σ = sqrt(ā·u_mid + b̄²)``, the noise std at the mid-grey level ``u_mid = 255·k̄·(128/255)^γ̄``
  (the inversion expands the shadows, and their noise with them);
* ``motion``: Richardson-Lucy with the atom's line kernel of the mean length rounded to an integer and the
  angle estimated from the image (least directional-derivative energy, clamped into the recipe's angle range
  when that is narrower than a half turn; :mod:`.deblur`);
* ``rain``: a thresholded opening across the streaks, its width from the mean coverage ρ̄·L̄, threshold
  ``s̄/2``, a row segment when the mean angle is within 45° of the vertical (:mod:`.derain`);
* ``jpeg``: bilateral filtering with a range σ from the mean quality (:mod:`.deblock`);
* IR ``lowcontrast`` (family ``ir_contrast``): the contrast stretch ``x̂ = (y − β̄)/ᾱ`` (:mod:`.tone`);
* IR ``ir_noise``: NLM with σ = the mean of the σ range (the ``noise`` restorer);
* IR ``stripe_gain`` (family ``stripe``): column destriping, then NLM with σ = the mean of its per-pixel
  term's range (an atom of the family without that parameter, v1's ``stripe``, is destriped only);

then :func:`.pyramid.fuse_laplacian` of the restored pair (VIS chroma kept). A clean sample is fused as is.

**Dispatch from the atom registry.** The order is derived from the atoms' specs: each modality's atoms are undone
in descending ``stage`` (the reverse of :meth:`demmi_rf.settings.Setting.chain`), each by the *restorer* of its
``family``: ``fn(image, spec, ranges) -> image`` (uint8 in and out; ``ranges`` the recipe's table of that atom,
or None). The v1 families are registered here; a third-party atom's family can be added with
:func:`register_restorer`. An atom whose family has none is refused with a clear ``ValueError`` (the cascade
would otherwise silently fuse a degraded image and report it as restored).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..degradations import AtomSpec
from ..degradations import get as get_atom
from ..errors import SettingError
from .deblock import deblock
from .deblur import blur_direction, defocus_psf, motion_psf, richardson_lucy
from .dehaze import dehaze_dcp
from .denoise import nlm_denoise
from .derain import opening_width, remove_streaks
from .destripe import destripe_columns
from .pyramid import fuse_laplacian
from .tone import invert_linear, invert_tone

#: σ of each noise atom (benchmark spec section 2: fixed by the atom, not drawn)
NOISE_SIGMA = {"noise15": 15.0, "noise25": 25.0, "noise50": 50.0}
#: the defocus radius assumed when the recipe's range is not given (mean of v1's {3, 4, 5, 6})
DEFAULT_RADIUS = 4.5
DEHAZE_OMEGA = 0.5

Restorer = Callable[[np.ndarray, AtomSpec, "Mapping[str, Any] | None"], np.ndarray]
_RESTORERS: dict[str, Restorer] = {}


def register_restorer(family: str, fn: Restorer, *, replace: bool = False) -> Restorer:
    """Make the cascade undo every atom of ``family`` with ``fn(image, spec, ranges) -> image`` (uint8 in and
    out; ``ranges`` is the recipe's table of that atom, or None). A family already served is refused unless
    ``replace``. Returns ``fn``."""
    if not isinstance(family, str) or not family or not callable(fn):
        raise ValueError("register_restorer(family, fn) needs a family name and a callable")
    if family in _RESTORERS and not replace:
        raise ValueError(f"the cascade already has a restorer for the family {family!r} (pass replace=True)")
    _RESTORERS[family] = fn
    return fn


def unregister_restorer(family: str) -> None:
    """Remove the restorer of ``family`` (tests, plugin reloads)."""
    _RESTORERS.pop(family, None)


def restorer(atom: str) -> Restorer | None:
    """The restorer the cascade uses for ``atom`` (by its family), or None (unknown atom or no restorer)."""
    try:
        return _RESTORERS.get(get_atom(atom).family)
    except SettingError:
        return None


def known_atoms() -> tuple[str, ...]:
    """The registered atoms the cascade can undo (those whose family has a restorer), canonical order."""
    from ..degradations import atoms  # noqa: PLC0415 - the same registry, listed at call time

    return tuple(a.name for a in atoms() if a.family in _RESTORERS)


def __getattr__(name: str) -> Any:
    if name == "KNOWN_ATOMS":  # the former constant, now derived from the registry at each access
        return known_atoms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def assumed_radius(ranges: Mapping[str, Any] | None) -> float:
    """The defocus radius the cascade deconvolves with: the mean of the recipe's ``degradations.defocus.radius``
    (a list of integer choices or a ``[low, high]`` float range; both have that mean), else 4.5."""
    if not ranges or "defocus" not in ranges or "radius" not in ranges["defocus"]:
        return DEFAULT_RADIUS
    values = [float(v) for v in ranges["defocus"]["radius"]]
    return float(sum(values) / len(values))


def _denoise(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    sigma = NOISE_SIGMA.get(spec.name)
    if sigma is None:  # a noise atom other than v1's: the mean of its sigma range
        sigma = range_mean(ranges, spec, "sigma")
    return nlm_denoise(image, sigma)


def _deblur(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    return richardson_lucy(image, defocus_psf(assumed_radius({"defocus": ranges} if ranges else None)))


def range_mean(ranges: Mapping[str, Any] | None, spec: AtomSpec, param: str) -> float:
    """The mean of the range of ``param`` the cascade may assume for atom ``spec``: from ``ranges`` (the recipe's
    table of the atom, a severity level laid over it) when it has ``param``, else from the spec's defaults. A
    list (integer choices, or a uniform ``[low, high]``) gives its mean, a number itself. ``ValueError`` naming
    the atom and the parameter when there is none or it is not a list of finite numbers."""
    table = ranges if ranges and param in ranges else spec.default_ranges
    if param not in table:
        raise ValueError(f"cascade: atom {spec.name!r} has no range for {param!r} in the recipe or its defaults")
    raw = table[param]
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    try:
        floats = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        floats = []
    if not floats or len(floats) != len(values) or not all(np.isfinite(floats)):
        raise ValueError(f"cascade: atom {spec.name!r}: the range of {param!r} must be a number or a list of "
                         f"finite numbers, got {raw!r}")
    return float(sum(floats) / len(floats))


def _param_names(spec: AtomSpec) -> set[str]:
    return {p.name for p in spec.params}


def _illumination(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    gain, gamma = range_mean(ranges, spec, "gain"), range_mean(ranges, spec, "gamma")
    if {"shot", "read"} <= _param_names(spec):  # low light brings sensor noise: denoise before expanding it
        if not (gain > 0 and gamma > 0):
            raise ValueError(f"cascade: atom {spec.name!r} needs gain > 0 and gamma > 0, got {gain}, {gamma}")
        mid = 255.0 * gain * (128.0 / 255.0) ** gamma
        sigma = float(np.sqrt(max(range_mean(ranges, spec, "shot") * mid + range_mean(ranges, spec, "read") ** 2,
                                  0.0)))
        image = nlm_denoise(image, sigma)
    return invert_tone(image, gain, gamma)


def _angle_in_range(angle: int, ranges: Mapping[str, Any] | None, spec: AtomSpec) -> int:
    """``angle`` (degrees mod 180) moved into the recipe's angle range when that spans less than a half turn."""
    table = ranges if ranges and "angle" in ranges else spec.default_ranges
    raw = table.get("angle")
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        return angle
    lo, hi = float(raw[0]), float(raw[1])
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo >= 180.0:
        return angle
    shifted = lo + (angle - lo) % 180.0  # the same line, in [lo, lo + 180)
    if shifted <= hi:
        return int(np.floor(shifted + 0.5))
    # outside: the nearer end, on the half-turn circle
    return int(np.floor((hi if shifted - hi <= lo + 180.0 - shifted else lo) + 0.5))


def _motion(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    length = int(np.floor(range_mean(ranges, spec, "length") + 0.5))
    if length < 1:
        raise ValueError(f"cascade: atom {spec.name!r}: the mean blur length must be >= 1, got {length}")
    return richardson_lucy(image, motion_psf(length, _angle_in_range(blur_direction(image), ranges, spec)))


def _rain(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    width = opening_width(range_mean(ranges, spec, "density"), range_mean(ranges, spec, "length"))
    tilt = range_mean(ranges, spec, "angle") % 180.0
    return remove_streaks(image, width, range_mean(ranges, spec, "intensity") / 2.0, vertical=45.0 <= tilt <= 135.0)


def _destripe(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    out = destripe_columns(image)
    if "pixel_std" in _param_names(spec):  # stripe_gain's per-pixel Gaussian term (v1's stripe has none)
        out = nlm_denoise(out, range_mean(ranges, spec, "pixel_std"))
    return out


register_restorer("noise", _denoise)
register_restorer("defocus", _deblur)
register_restorer("haze", lambda image, spec, ranges: dehaze_dcp(image, omega=DEHAZE_OMEGA, airlight="mean"))
register_restorer("stripe", _destripe)
register_restorer("illumination", _illumination)
register_restorer("motion", _motion)
register_restorer("rain", _rain)
register_restorer("jpeg", lambda image, spec, ranges: deblock(image, range_mean(ranges, spec, "quality")))
register_restorer("ir_contrast", lambda image, spec, ranges: invert_linear(
    image, range_mean(ranges, spec, "alpha"), range_mean(ranges, spec, "beta")))
register_restorer("ir_noise", _denoise)


def _check(atoms: tuple[str, ...]) -> None:
    missing = [a for a in atoms if restorer(a) is None]
    if missing:
        raise ValueError(
            f"cascade has no restoration for atom(s) {', '.join(map(repr, missing))}; known: "
            + ", ".join(known_atoms())
            + " (register one for the atom's family with demmi_rf.baselines.cascade.register_restorer)"
        )


def _restore(image: np.ndarray, atoms: tuple[str, ...], modality: str,
             ranges: Mapping[str, Any] | None) -> np.ndarray:
    """Undo the ``modality`` atoms of ``atoms`` in reverse application order (descending stage)."""
    _check(atoms)
    specs = sorted((get_atom(a) for a in atoms if get_atom(a).modality == modality),
                   key=lambda s: (s.stage, s.name), reverse=True)
    out = image
    for spec in specs:
        table = ranges.get(spec.name) if ranges else None
        out = _RESTORERS[spec.family](out, spec, table)
    return out


def restore_vis(vis: np.ndarray, atoms: tuple[str, ...], ranges: Mapping[str, Any] | None = None) -> np.ndarray:
    """Undo the VIS atoms of ``atoms`` in reverse synthesis order (v1: denoise -> deblur -> dehaze; uint8
    in/out)."""
    return _restore(vis, tuple(atoms), "vis", ranges)


def restore_ir(ir: np.ndarray, atoms: tuple[str, ...], ranges: Mapping[str, Any] | None = None) -> np.ndarray:
    """Undo the IR atoms of ``atoms`` in reverse synthesis order (e.g. ``stripe`` -> column destriping; uint8
    in/out)."""
    return _restore(ir, tuple(atoms), "ir", ranges)


def cascade(vis: np.ndarray, ir: np.ndarray, atoms: tuple[str, ...],
            ranges: Mapping[str, Any] | None = None) -> np.ndarray:
    """Restore each modality according to its known atoms, then fuse with the Laplacian pyramid (uint8)."""
    atoms = tuple(atoms)
    _check(atoms)
    return fuse_laplacian(restore_vis(vis, atoms, ranges), restore_ir(ir, atoms, ranges))
