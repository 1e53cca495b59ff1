"""The multi-hot degradation-atom vector of a setting, derived from the atom registry.

Order: each atom's spec ``label_index`` (:func:`demmi_rf.degradations.label_order`). For v1 this is TG-ECNet's
label order (LeeX54946/TG-ECNet stage-1 data loader, see ``docs/reference/tgecnet-public-code.md``):
``noise15=0, noise25=1, noise50=2, haze=3, defocus=4, stripe=5``; atoms without a label index (third-party ones,
say) follow, in canonical order, so the first six entries never move. ``clean`` is the all-zeros vector; a
mixture sets one entry per atom, e.g. ``noise50+haze+stripe`` -> ``[0, 0, 1, 1, 0, 1]``. Note that this order
differs from the canonical *name* order of a setting (``noise*, defocus, haze, stripe``, benchmark spec section
3): haze comes before defocus here.

Pure numpy (no torch), so it can be used anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..degradations import atoms, label_order
from ..errors import SettingError
from ..settings import setting_atoms

__all__ = ["ATOM_ORDER", "atom_order", "atoms_vector", "dataset_label_order", "setting_atoms"]


def atom_order() -> tuple[str, ...]:
    """The atom of each position of the label vector, for the atoms registered now."""
    return label_order()


V1_LABELS = 6  # TG-ECNet's label vector: the six v1 atoms, label indices 0-5


def _v1_label_order() -> tuple[str, ...]:
    return tuple(s.name for s in sorted((s for s in atoms() if s.label_index is not None
                                         and s.label_index < V1_LABELS), key=lambda s: s.label_index))


ATOM_ORDER: tuple[str, ...] = _v1_label_order()
"""TG-ECNet's label order of the six v1 atoms (label indices 0-5), the first six entries of every label vector;
:func:`atom_order` gives the order of every atom registered in this process."""


def atoms_vector(atoms: str | Iterable[str], order: Iterable[str] | None = None) -> np.ndarray:
    """Multi-hot float32 vector in the given ``order`` (default: :func:`dataset_label_order` of these atoms: the
    six v1 entries, then any other atom named here), one entry per atom.

    ``atoms`` is a setting name (``"noise50+haze"``, ``"clean"``) or an iterable of atom names; a setting is
    parsed by the toolkit's one parser (:func:`demmi_rf.settings.setting_atoms`).
    """
    names = setting_atoms(atoms) if isinstance(atoms, str) else tuple(atoms)
    order = dataset_label_order(["+".join(names)] if names else []) if order is None else tuple(order)
    index = {name: i for i, name in enumerate(order)}
    out = np.zeros(len(order), dtype=np.float32)
    for name in names:
        if name not in index:
            raise SettingError(f"unknown atom {name!r}; known atoms: {', '.join(order)}")
        out[index[name]] = 1.0
    return out


def dataset_label_order(settings: Iterable[str]) -> tuple[str, ...]:
    """The label-vector order of a dataset holding ``settings``: TG-ECNet's six v1 atoms (label indices 0-5),
    then every other atom the settings use, in :func:`atom_order`.

    Fixed by the dataset alone, so the vector's length never depends on which other atoms a process happens to
    have registered (a v1 dataset always gives six entries; one with ``motion`` gives seven).
    """
    used = {name for s in settings for name in setting_atoms(s)}  # parsing loads a shipped atom on first use
    return ATOM_ORDER + tuple(name for name in atom_order() if name in used and name not in ATOM_ORDER)
