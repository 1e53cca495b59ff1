"""The registry of degradation atoms (benchmark spec section 2).

One module per atom family (:mod:`.noise`, :mod:`.haze`, :mod:`.defocus`, :mod:`.stripe`), each exposing the
same two pure functions:

* ``draw(rng, image, ranges) -> dict`` draws the per-sample scalar parameters from the recipe's ranges
  (``[degradations.<atom>]`` table) and returns them as plain JSON values (the ``params`` record);
* ``apply(image, rng, **params) -> ndarray`` applies the model to a float32 image on the 0-255 scale
  (no clipping, no rounding) and draws any per-pixel / per-column randomness from ``rng``.

Composition (application order, one generator per modality, clip-and-round once) lives in :mod:`.compose`;
the same two functions are used by :func:`demmi_rf.degrade`, :mod:`demmi_rf.albu` and ``demmi preview``.
Importing this package is cheap: the atom modules (and OpenCV) load on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import SettingError

__all__ = ["Atom", "names", "get", "atoms", "CLEAN", "MODALITIES"]

CLEAN = "clean"
MODALITIES = ("vis", "ir")


@dataclass(frozen=True)
class Atom:
    """Metadata of one atom and a handle on its implementation.

    ``order`` is the position in canonical setting names (``noise*, defocus, haze, stripe``); ``stage`` the
    position in the application chain of its modality (VIS: haze 0 -> defocus 1 -> noise 2; IR: stripe 0).
    """

    name: str
    family: str
    modality: str
    order: int
    stage: int
    summary: str

    @property
    def module(self) -> ModuleType:
        """The implementing module ``demmi_rf.degradations.<family>`` (imported on first use)."""
        return importlib.import_module(f"{__name__}.{self.family}")

    def draw(self, rng: np.random.Generator, image: np.ndarray, ranges: Mapping[str, Any], **kw: Any) -> dict:
        """Per-sample scalar parameters drawn from ``ranges`` (see the family module's ``draw``)."""
        return self.module.draw(rng, image, ranges, atom=self.name, **kw)

    def apply(self, image: np.ndarray, rng: np.random.Generator, **params: Any) -> np.ndarray:
        """The model applied to a float32 0-255 image (see the family module's ``apply``)."""
        return self.module.apply(image, rng, **params)

    def run(
        self, image: np.ndarray, rng: np.random.Generator, ranges: Mapping[str, Any], **kw: Any
    ) -> tuple[np.ndarray, dict]:
        """``draw`` then ``apply``: returns ``(float32 image, drawn params)``. ``kw`` (e.g. haze ``depth=``)
        goes to both; ``inplace=True`` lets ``apply`` reuse a float32 ``image`` buffer."""
        inplace = kw.pop("inplace", False)
        params = self.draw(rng, image, ranges, **kw)
        return self.apply(image, rng, inplace=inplace, **params, **kw), params


_ATOMS: dict[str, Atom] = {
    a.name: a
    for a in (
        Atom("noise15", "noise", "vis", 0, 2, "additive white Gaussian noise, sigma = 15"),
        Atom("noise25", "noise", "vis", 1, 2, "additive white Gaussian noise, sigma = 25"),
        Atom("noise50", "noise", "vis", 2, 2, "additive white Gaussian noise, sigma = 50"),
        Atom("defocus", "defocus", "vis", 3, 1, "disk defocus blur softened by a 3x3 Gaussian"),
        Atom("haze", "haze", "vis", 4, 0, "atmospheric scattering model with radial pseudo-depth"),
        Atom("stripe", "stripe", "ir", 5, 0, "column-wise fixed-pattern (stripe) offsets"),
    )
}


def names() -> tuple[str, ...]:
    """Every atom name, in canonical order: ``noise15, noise25, noise50, defocus, haze, stripe``."""
    return tuple(_ATOMS)


def atoms() -> tuple[Atom, ...]:
    """Every :class:`Atom`, in canonical order."""
    return tuple(_ATOMS.values())


def get(name: str) -> Atom:
    """The :class:`Atom` called ``name``; :class:`~demmi_rf.errors.SettingError` listing the valid names."""
    try:
        return _ATOMS[name]
    except (KeyError, TypeError):
        raise SettingError(
            f"unknown degradation atom {name!r}; valid atoms: {', '.join(_ATOMS)} (and the setting {CLEAN!r})"
        ) from None
