"""The degradation atoms (benchmark spec section 2) and their registry.

Every atom is one self-describing :class:`AtomSpec` registered where it is defined (:mod:`.registry`; the v1
atoms in :mod:`.noise`, :mod:`.haze`, :mod:`.defocus`, :mod:`.stripe`). A spec carries the two pure functions:

* ``draw(stream, image, ranges, atom=...) -> dict`` draws the per-sample scalar parameters from the recipe's
  ranges (``[degradations.<atom>]`` table) and returns them as plain JSON values (the ``params`` record);
* ``apply(image, stream, **params) -> ndarray`` applies the model to a float32 image on the 0-255 scale
  (no clipping, no rounding) and draws any per-pixel / per-column randomness from ``stream``,

where ``stream`` is a :class:`demmi_rf.rng.Stream`: the narrow random stream (uniform, below, normal on the raw
words), so an atom cannot reach numpy's version-dependent samplers.

Composition (application order, one stream per modality, clip-and-round once) lives in :mod:`.compose`;
the same specs drive :func:`demmi_rf.degrade`, :mod:`demmi_rf.albu`, ``demmi preview``, recipe validation, the
model's label vector and the cascade baseline. Third-party atoms: :func:`register_atom` or an entry point in the
group ``demmi_rf.atoms`` (``docs/degradations.md``, "Adding an atom").

Importing this package registers the v1 atoms only. The atoms beyond v1 register when :mod:`.extended` (or one
of their modules) is imported, so that a v1 user's list of valid atoms and the model's label vector do not grow
unasked.
"""

from __future__ import annotations

from ..errors import SettingError, did_you_mean
from . import defocus, haze, noise, stripe  # noqa: F401 - importing them registers the v1 atoms
from .registry import (
    ATOMS,
    CHOICE,
    CLEAN,
    ENTRY_POINT_GROUP,
    FIXED,
    INTEGER,
    MODALITIES,
    STAGE_OPTICS,
    STAGE_PROCESSING,
    STAGE_SCENE,
    STAGE_SENSOR,
    UNIFORM,
    AtomSpec,
    Param,
    Registry,
    as_stream,
    canonical_key,
    check_ranges,
    codec_libraries,
    default_ranges,
    label_order,
    range_problems,
    register_atom,
    unregister_atom,
)

#: the former name of :class:`AtomSpec` (kept for callers of toolkit 0.1)
Atom = AtomSpec

__all__ = [
    "Atom", "AtomSpec", "Param", "Registry", "ATOMS", "FIXED", "UNIFORM", "CHOICE", "INTEGER", "CLEAN", "MODALITIES",
    "ENTRY_POINT_GROUP", "STAGE_SCENE", "STAGE_OPTICS", "STAGE_SENSOR", "STAGE_PROCESSING",
    "names", "get", "atoms", "register_atom", "unregister_atom", "canonical_key", "label_order",
    "range_problems", "check_ranges", "default_ranges", "codec_libraries", "as_stream",
]


def names() -> tuple[str, ...]:
    """Every atom name, in canonical order (v1: ``noise15, noise25, noise50, defocus, haze, stripe``)."""
    return tuple(s.name for s in ATOMS.specs())


def atoms() -> tuple[AtomSpec, ...]:
    """Every :class:`AtomSpec`, in canonical order."""
    return ATOMS.specs()


def get(name: str) -> AtomSpec:
    """The :class:`AtomSpec` called ``name``; :class:`~demmi_rf.errors.SettingError` listing the valid names."""
    try:
        return ATOMS.get(name)
    except (KeyError, TypeError):
        known = ATOMS.available()
        raise SettingError(
            f"unknown degradation atom {name!r}{did_you_mean(str(name), known)}; valid atoms: {', '.join(known)} "
            f"(and the setting {CLEAN!r})"
        ) from None
