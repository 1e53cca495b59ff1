"""The multi-hot degradation-atom vector of a setting.

Order (TG-ECNet's label order, LeeX54946/TG-ECNet stage-1 data loader, see
``docs/reference/tgecnet-public-code.md``): ``noise15=0, noise25=1, noise50=2, haze=3, defocus=4, stripe=5``.
``clean`` is the all-zeros vector; a mixture sets one entry per atom, e.g. ``noise50+haze+stripe`` ->
``[0, 0, 1, 1, 0, 1]``. Note that this order differs from the canonical *name* order of a setting
(``noise*, defocus, haze, stripe``, benchmark spec section 3): haze comes before defocus here.

Pure numpy (no torch), so it can be used anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import SettingError

ATOM_ORDER: tuple[str, ...] = ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")
"""Index of each atom in the multi-hot vector (TG-ECNet's label order)."""

_INDEX = {name: i for i, name in enumerate(ATOM_ORDER)}


def setting_atoms(setting: str) -> tuple[str, ...]:
    """The atoms of a setting name (``"clean"`` -> ``()``; ``"noise50+haze"`` -> ``("noise50", "haze")``)."""
    setting = setting.strip()
    if setting == "clean":
        return ()
    atoms = tuple(a.strip() for a in setting.split("+"))
    unknown = [a for a in atoms if a not in _INDEX]
    if unknown or not atoms:
        raise SettingError(
            f"setting {setting!r}: unknown atom(s) {', '.join(map(repr, unknown))}; "
            f"known atoms: {', '.join(ATOM_ORDER)}"
        )
    return atoms


def atoms_vector(atoms: str | Iterable[str]) -> np.ndarray:
    """Multi-hot float32 vector of length 6 in :data:`ATOM_ORDER`.

    ``atoms`` is a setting name (``"noise50+haze"``, ``"clean"``) or an iterable of atom names.
    """
    names = setting_atoms(atoms) if isinstance(atoms, str) else tuple(atoms)
    out = np.zeros(len(ATOM_ORDER), dtype=np.float32)
    for name in names:
        if name not in _INDEX:
            raise SettingError(f"unknown atom {name!r}; known atoms: {', '.join(ATOM_ORDER)}")
        out[_INDEX[name]] = 1.0
    return out
