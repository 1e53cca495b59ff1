"""Degradation settings: sets of atoms written with ``+`` (benchmark spec section 3).

* The canonical name lists the atoms in the order ``noise*, defocus, haze, stripe`` (``noise50+haze+stripe``);
  ``clean`` is the empty set. In general: VIS atoms before IR atoms, each modality's in descending ``stage``
  (the name reads like a function composition, outermost first), ties by name
  (:func:`demmi_rf.degradations.canonical_key`).
* At most one atom of a family per setting (one noise level); an atom appears at most once; ``clean`` cannot be
  combined.
* Application order is physical, independent of how the name is written: ascending ``stage`` of the atoms'
  specs, on VIS **haze -> defocus -> noise** (scene, optics, sensor); ``stripe`` acts on IR alone.

* **Severity levels** (issue 14, ImageNet-C's convention): an atom followed by ``.s<k>`` (``haze.s3``,
  ``noise50.s5+stripe.s2``) draws its parameters from level k of the atom's ladder (``AtomSpec.severity``, mildest
  first, levels 1..5 for every shipped atom) laid over the recipe's table of that atom
  (:meth:`Setting.atom_ranges`). The level is part of the canonical name (hence of the generator key and the
  sample id), not of the atom: ``haze.s3`` is labelled, restored and validated as ``haze``. The suffix is
  ``.s<k>`` rather than ``@k`` because ``@`` separates a sample id's pair from its setting
  (``msrs/00004N@haze.s3``) and stems may themselves contain ``@``; no atom name contains ``.``, so a token
  never reads two ways.

This is the one setting parser of the toolkit: the recipe, the store reader, the Dataset and the label vector
all call :func:`parse_setting` (or :func:`setting_atoms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .degradations import ATOMS, CLEAN, MODALITIES, AtomSpec, canonical_key, get
from .errors import RecipeError, SettingError, did_you_mean

Atom = AtomSpec  # the type of a setting's chain elements

__all__ = ["Setting", "parse_setting", "setting_atoms", "valid_names", "split_level", "CLEAN", "LEVEL_MARK"]

#: separates an atom from its severity level in a setting name: ``haze.s3``
LEVEL_MARK = ".s"


def valid_names() -> str:
    """Human-readable list of the valid names, used in every error message."""
    # every atom a setting may name (registered or shipped and loaded on first use), whatever this process has
    # loaded so far, so the message is the same in every process
    return (f"{CLEAN!r} or atoms joined by '+' from: {', '.join(ATOMS.available())} "
            f"(an atom may carry a severity level: 'haze{LEVEL_MARK}3')")


@dataclass(frozen=True)
class Setting:
    """A parsed, canonical setting; build it with :func:`parse_setting`.

    ``atoms`` are the plain atom names in canonical order; ``levels[i]`` is the severity level of ``atoms[i]``
    (0 = the recipe's own ranges, k >= 1 = level k of the atom's ladder). ``Setting(("haze.s3",))`` and
    ``Setting(("haze",), (3,))`` are the same setting."""

    atoms: tuple[str, ...]
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        pairs = _canonical(self.atoms, where=repr(self.atoms), levels=self.levels)
        object.__setattr__(self, "atoms", tuple(a for a, _ in pairs))
        object.__setattr__(self, "levels", tuple(k for _, k in pairs))

    @property
    def name(self) -> str:
        """Canonical name: atoms (with their ``.s<k>`` level) joined by ``+`` in canonical order, or ``clean``."""
        if not self.atoms:
            return CLEAN
        return "+".join(a + (f"{LEVEL_MARK}{k}" if k else "") for a, k in zip(self.atoms, self.levels))

    def level(self, atom: str) -> int:
        """The severity level of ``atom`` in this setting (0 = the recipe's ranges); KeyError when absent."""
        try:
            return self.levels[self.atoms.index(atom)]
        except ValueError:
            raise KeyError(atom) from None

    @property
    def has_levels(self) -> bool:
        """Whether any atom carries a severity level."""
        return any(self.levels)

    def atom_ranges(self, atom: str, table: Mapping[str, Any]) -> dict[str, Any]:
        """The ranges ``atom`` draws from in this setting: the recipe's ``[degradations.<atom>]`` table
        (``table[atom]``), with level k's entries of the atom's ladder laid over it when the atom carries
        ``.s<k>``. :class:`~demmi_rf.errors.RecipeError` when ``table`` has no entry for the atom."""
        try:
            base = table[atom]
        except (KeyError, TypeError):
            have = ", ".join(map(str, table)) if isinstance(table, Mapping) else "none"
            raise RecipeError(f"no parameter ranges for atom {atom!r} (expected a [degradations.{atom}] table; "
                              f"have: {have or 'none'})") from None
        if not isinstance(base, Mapping):
            raise RecipeError(f"degradations.{atom}: expected a table of parameter ranges, got {base!r}")
        k = self.level(atom)
        if not k:
            return dict(base)
        return {**base, **get(atom).severity[k - 1]}

    def ranges(self, table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """:meth:`atom_ranges` of every atom of the setting: ``{atom: ranges}`` (what the cascade assumes)."""
        return {a: self.atom_ranges(a, table) for a in self.atoms}

    @property
    def is_clean(self) -> bool:
        return not self.atoms

    def chain(self, modality: str) -> tuple[Atom, ...]:
        """The atoms acting on ``modality`` (``"vis"`` or ``"ir"``) in application order (cached per registry
        generation: a register / unregister of any atom recomputes it)."""
        key = (self.atoms, modality)
        hit = cached(_CHAINS, key)
        if hit is not None:
            return hit
        if modality not in MODALITIES:
            raise ValueError(f"modality must be 'vis' or 'ir', got {modality!r}")
        chain = tuple(sorted((get(a) for a in self.atoms if get(a).modality == modality),
                             key=lambda a: (a.stage, a.name)))
        remember(_CHAINS, key, chain)
        return chain

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


#: bounded caches (at most :data:`_CACHE_MAX` entries each; cleared when full): setting string -> (registry
#: generation, Setting), and (atoms, modality) -> (registry generation, chain). An entry is used only while
#: :attr:`~demmi_rf.degradations.registry.Registry.generation` is unchanged, so registering or unregistering
#: any atom (a plugin, a test) re-parses: the cache never answers differently from a fresh parse.
_CACHE_MAX = 4096
_PARSED: dict[str, tuple[int, Setting]] = {}
_CHAINS: dict[tuple[tuple[str, ...], str], tuple[int, tuple[Atom, ...]]] = {}


def cached(cache: dict, key: Any) -> Any:
    """The value :func:`remember` stored in ``cache`` under ``key``, or None when there is none or the atom registry
    changed since (its :attr:`~demmi_rf.degradations.registry.Registry.generation`)."""
    hit = cache.get(key)
    return hit[1] if hit is not None and hit[0] == ATOMS.generation else None


def remember(cache: dict, key: Any, value: Any) -> None:
    """Store ``value`` under ``key`` with the registry's current generation (read after computing the value, which
    may have loaded atoms lazily); ``cache`` is cleared when it holds :data:`_CACHE_MAX` entries."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = (ATOMS.generation, value)


def split_level(token: str) -> tuple[str, int | None]:
    """``"haze.s3"`` -> ``("haze", 3)``; ``"haze"`` -> ``("haze", None)``; a malformed level (``haze.s0``,
    ``haze.sx``, ``haze.s03``, more than 3 digits) -> ``(atom part, -1)`` so that the caller can name the problem."""
    atom, mark, level = token.rpartition(LEVEL_MARK)
    if not mark:
        return token, None
    if not level.isdigit() or not level.isascii() or level.startswith("0") or len(level) > 3:
        return atom, -1
    return atom, int(level)


def _canonical(atoms: Iterable[str], where: str, levels: Iterable[int] = ()) -> tuple[tuple[str, int], ...]:
    found: list[Atom] = []
    found_levels: dict[str, int] = {}
    atoms = tuple(atoms)
    levels = tuple(levels)
    if levels and len(levels) != len(atoms):
        raise SettingError(f"setting {where}: {len(levels)} severity levels for {len(atoms)} atoms")
    for i, raw in enumerate(atoms):
        if not isinstance(raw, str):
            raise SettingError(f"setting {where}: atom {raw!r} is not a string; valid: {valid_names()}")
        token = raw.strip()
        token, level = split_level(token)
        if levels:
            given = levels[i]
            if isinstance(given, bool) or not isinstance(given, int) or given < 0:
                raise SettingError(f"setting {where}: severity level {given!r} of {token!r} is not an integer >= 0")
            if level is not None and given:
                raise SettingError(f"setting {where}: atom {raw!r} carries a level and another one is given")
            level = level if level is not None else given
        if token == CLEAN and level not in (None, 0):
            raise SettingError(f"setting {where}: {CLEAN!r} has no severity level; write {CLEAN!r}")
        if level == -1:
            raise SettingError(f"setting {where}: {raw.strip()!r} has a malformed severity level (write "
                               f"'{token}{LEVEL_MARK}<k>' with k = 1, 2, ...)")
        if token == CLEAN:
            raise SettingError(
                f"setting {where}: {CLEAN!r} cannot be combined with other atoms; valid: {valid_names()}"
            )
        if not token:
            raise SettingError(f"setting {where}: empty atom name; valid: {valid_names()}")
        try:
            atom = get(token)
        except SettingError:
            hint = did_you_mean(token, [CLEAN, *ATOMS.available()])
            raise SettingError(f"setting {where}: unknown atom {token!r}{hint}; valid: {valid_names()}") from None
        if atom in found:
            raise SettingError(f"setting {where}: atom {token!r} given twice; valid: {valid_names()}")
        if level:
            if not atom.severity:
                raise SettingError(f"setting {where}: atom {token!r} has no severity ladder, so "
                                   f"'{token}{LEVEL_MARK}{level}' means nothing")
            if level > len(atom.severity):
                raise SettingError(f"setting {where}: atom {token!r} has severity levels 1-{len(atom.severity)}, "
                                   f"not {level}")
        found.append(atom)
        found_levels[atom.name] = level or 0
    families: dict[str, list[str]] = {}
    for a in found:
        families.setdefault(a.family, []).append(a.name)
    for family, members in families.items():
        if len(members) > 1:
            raise SettingError(
                f"setting {where}: at most one {family} level per setting, got {' and '.join(members)}; "
                f"valid: {valid_names()}"
            )
    return tuple((a.name, found_levels[a.name]) for a in sorted(found, key=canonical_key))


def _from_pairs(pairs: tuple[tuple[str, int], ...]) -> Setting:
    return Setting(tuple(a for a, _ in pairs), tuple(k for _, k in pairs))


def _parse_text(setting: str) -> Setting:
    text = setting.strip()
    if not text:
        raise SettingError(f"empty setting {setting!r}; valid: {valid_names()}")
    if text == CLEAN:
        return Setting(())
    return _from_pairs(_canonical(text.split("+"), where=repr(setting)))


def parse_setting(setting: str | Setting | Iterable[str]) -> Setting:
    """Parse ``"noise50+haze+stripe"`` (any atom order, spaces around ``+`` allowed; an atom may carry a
    severity level, ``haze.s3``), ``"clean"``, a
    :class:`Setting` (returned as is) or an iterable of atom names into a canonical :class:`Setting`.

    Raises :class:`~demmi_rf.errors.SettingError` (a ``ValueError``) for an empty setting, an unknown atom,
    two noise levels, a repeated atom, ``clean`` combined with atoms, or a severity level the atom's ladder
    does not have; the message lists the valid names. Parsed strings are cached (bounded; invalidated by any
    register / unregister of an atom), so a repeated setting costs a dictionary look-up.
    """
    if isinstance(setting, Setting):
        return setting
    if type(setting) is str:  # a str subclass may redefine strip/split: never cached
        hit = cached(_PARSED, setting)
        if hit is not None:
            return hit
        parsed = _parse_text(setting)
        remember(_PARSED, setting, parsed)
        return parsed
    if isinstance(setting, str):
        return _parse_text(setting)
    if isinstance(setting, Iterable):
        atoms = tuple(setting)
        if not atoms:
            raise SettingError(f"empty setting (no atoms); use {CLEAN!r} for the degradation-free setting")
        if atoms == (CLEAN,):
            return Setting(())
        return _from_pairs(_canonical(atoms, where=repr("+".join(map(str, atoms)))))
    raise SettingError(f"a setting must be a string or a Setting, got {type(setting).__name__}")


def setting_atoms(setting: str | Setting | Iterable[str]) -> tuple[str, ...]:
    """The atoms of a setting in canonical order, without their severity levels (``"clean"`` -> ``()``;
    ``"haze.s3+noise50"`` -> ``("noise50", "haze")``); :class:`~demmi_rf.errors.SettingError` as
    :func:`parse_setting`."""
    return parse_setting(setting).atoms
