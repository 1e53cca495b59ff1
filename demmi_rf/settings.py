"""Degradation settings: sets of atoms written with ``+`` (benchmark spec section 3).

* The canonical name lists the atoms in the order ``noise*, defocus, haze, stripe`` (``noise50+haze+stripe``);
  ``clean`` is the empty set. In general: VIS atoms before IR atoms, each modality's in descending ``stage``
  (the name reads like a function composition, outermost first), ties by name
  (:func:`demmi_rf.degradations.canonical_key`).
* At most one atom of a family per setting (one noise level); an atom appears at most once; ``clean`` cannot be
  combined.
* Application order is physical, independent of how the name is written: ascending ``stage`` of the atoms'
  specs, on VIS **haze -> defocus -> noise** (scene, optics, sensor); ``stripe`` acts on IR alone.

This is the one setting parser of the toolkit: the recipe, the store reader, the Dataset and the label vector
all call :func:`parse_setting` (or :func:`setting_atoms`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .degradations import CLEAN, MODALITIES, AtomSpec, canonical_key, get, names
from .errors import SettingError, did_you_mean

Atom = AtomSpec  # the type of a setting's chain elements

__all__ = ["Setting", "parse_setting", "setting_atoms", "valid_names", "CLEAN"]


def valid_names() -> str:
    """Human-readable list of the valid names, used in every error message."""
    return f"{CLEAN!r} or atoms joined by '+' from: {', '.join(names())}"


@dataclass(frozen=True)
class Setting:
    """A parsed, canonical setting. ``atoms`` are in canonical order; build it with :func:`parse_setting`."""

    atoms: tuple[str, ...]

    def __post_init__(self) -> None:
        canonical = _canonical(self.atoms, where=repr(self.atoms))
        if canonical != self.atoms:
            object.__setattr__(self, "atoms", canonical)

    @property
    def name(self) -> str:
        """Canonical name: atoms joined by ``+`` in canonical order, or ``clean``."""
        return "+".join(self.atoms) if self.atoms else CLEAN

    @property
    def is_clean(self) -> bool:
        return not self.atoms

    def chain(self, modality: str) -> tuple[Atom, ...]:
        """The atoms acting on ``modality`` (``"vis"`` or ``"ir"``) in application order."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be 'vis' or 'ir', got {modality!r}")
        return tuple(sorted((get(a) for a in self.atoms if get(a).modality == modality),
                            key=lambda a: (a.stage, a.name)))

    @property
    def vis_chain(self) -> tuple[Atom, ...]:
        """VIS atoms in application order (haze -> defocus -> noise)."""
        return self.chain("vis")

    @property
    def ir_chain(self) -> tuple[Atom, ...]:
        """IR atoms in application order (stripe)."""
        return self.chain("ir")

    @property
    def changes_vis(self) -> bool:
        return any(get(a).modality == "vis" for a in self.atoms)

    @property
    def changes_ir(self) -> bool:
        return any(get(a).modality == "ir" for a in self.atoms)

    def __str__(self) -> str:
        return self.name


def _canonical(atoms: Iterable[str], where: str) -> tuple[str, ...]:
    found: list[Atom] = []
    for raw in atoms:
        if not isinstance(raw, str):
            raise SettingError(f"setting {where}: atom {raw!r} is not a string; valid: {valid_names()}")
        token = raw.strip()
        if token == CLEAN:
            raise SettingError(
                f"setting {where}: {CLEAN!r} cannot be combined with other atoms; valid: {valid_names()}"
            )
        if not token:
            raise SettingError(f"setting {where}: empty atom name; valid: {valid_names()}")
        try:
            atom = get(token)
        except SettingError:
            raise SettingError(f"setting {where}: unknown atom {token!r}{did_you_mean(token, [CLEAN, *names()])}; "
                               f"valid: {valid_names()}") from None
        if atom in found:
            raise SettingError(f"setting {where}: atom {token!r} given twice; valid: {valid_names()}")
        found.append(atom)
    families: dict[str, list[str]] = {}
    for a in found:
        families.setdefault(a.family, []).append(a.name)
    for family, members in families.items():
        if len(members) > 1:
            raise SettingError(
                f"setting {where}: at most one {family} level per setting, got {' and '.join(members)}; "
                f"valid: {valid_names()}"
            )
    return tuple(a.name for a in sorted(found, key=canonical_key))


def parse_setting(setting: str | Setting | Iterable[str]) -> Setting:
    """Parse ``"noise50+haze+stripe"`` (any atom order, spaces around ``+`` allowed), ``"clean"``, a
    :class:`Setting` (returned as is) or an iterable of atom names into a canonical :class:`Setting`.

    Raises :class:`~demmi_rf.errors.SettingError` (a ``ValueError``) for an empty setting, an unknown atom,
    two noise levels, a repeated atom, or ``clean`` combined with atoms; the message lists the valid names.
    """
    if isinstance(setting, Setting):
        return setting
    if isinstance(setting, str):
        text = setting.strip()
        if not text:
            raise SettingError(f"empty setting {setting!r}; valid: {valid_names()}")
        if text == CLEAN:
            return Setting(())
        return Setting(_canonical(text.split("+"), where=repr(setting)))
    if isinstance(setting, Iterable):
        atoms = tuple(setting)
        if not atoms:
            raise SettingError(f"empty setting (no atoms); use {CLEAN!r} for the degradation-free setting")
        if atoms == (CLEAN,):
            return Setting(())
        return Setting(_canonical(atoms, where=repr("+".join(map(str, atoms)))))
    raise SettingError(f"a setting must be a string or a Setting, got {type(setting).__name__}")


def setting_atoms(setting: str | Setting | Iterable[str]) -> tuple[str, ...]:
    """The atoms of a setting in canonical order (``"clean"`` -> ``()``; ``"haze+noise50"`` ->
    ``("noise50", "haze")``); :class:`~demmi_rf.errors.SettingError` as :func:`parse_setting`."""
    return parse_setting(setting).atoms
