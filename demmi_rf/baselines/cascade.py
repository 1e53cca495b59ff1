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
from .deblur import defocus_psf, richardson_lucy
from .dehaze import dehaze_dcp
from .denoise import nlm_denoise
from .destripe import destripe_columns
from .pyramid import fuse_laplacian

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
        values = (ranges or spec.default_ranges).get("sigma", 0.0)
        values = values if isinstance(values, (list, tuple)) else [values]
        sigma = float(sum(values) / len(values))
    return nlm_denoise(image, sigma)


def _deblur(image: np.ndarray, spec: AtomSpec, ranges: Mapping[str, Any] | None) -> np.ndarray:
    return richardson_lucy(image, defocus_psf(assumed_radius({"defocus": ranges} if ranges else None)))


register_restorer("noise", _denoise)
register_restorer("defocus", _deblur)
register_restorer("haze", lambda image, spec, ranges: dehaze_dcp(image, omega=DEHAZE_OMEGA, airlight="mean"))
register_restorer("stripe", lambda image, spec, ranges: destripe_columns(image))


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
    """Undo the VIS atoms of ``atoms`` in reverse synthesis order: denoise -> deblur -> dehaze (uint8 in/out)."""
    return _restore(vis, tuple(atoms), "vis", ranges)


def restore_ir(ir: np.ndarray, atoms: tuple[str, ...], ranges: Mapping[str, Any] | None = None) -> np.ndarray:
    """Undo the IR atoms of ``atoms`` (``stripe`` -> column destriping; uint8 in/out)."""
    return _restore(ir, tuple(atoms), "ir", ranges)


def cascade(vis: np.ndarray, ir: np.ndarray, atoms: tuple[str, ...],
            ranges: Mapping[str, Any] | None = None) -> np.ndarray:
    """Restore each modality according to its known atoms, then fuse with the Laplacian pyramid (uint8)."""
    atoms = tuple(atoms)
    _check(atoms)
    return fuse_laplacian(restore_vis(vis, atoms, ranges), restore_ir(ir, atoms, ranges))
