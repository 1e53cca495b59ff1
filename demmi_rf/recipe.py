"""Versioned benchmark recipes: plain TOML/JSON data, validated, hashed.

A recipe names the settings to build, the parameter ranges of every atom, the seed, the test fraction and the
shard size. Shipped recipes live in the repository's ``manifests/`` folder (installed as the package
``demmi_manifests``) and are found by name; any ``.toml`` or ``.json`` file can be given by path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .degradations.registry import range_problems
from .errors import RecipeError, did_you_mean
from .settings import parse_setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_RECIPE = "demmi-rf-v1"
# keys a recipe may hold besides the required ones: a free-text description, and ``base`` (name and hash of
# the recipe this one was derived from by :meth:`Recipe.with_overrides`).
_OPTIONAL = {"description": str, "base": dict}
_REQUIRED = {
    "name": str,
    "spec_version": str,
    "seed": int,
    "test_fraction": float,
    "pairs_per_shard": int,
    "settings": list,
    "degradations": dict,
}
#: the largest seed a recipe may hold: seeds are stored as signed 64-bit integers (the manifest's ``seed``
#: column, HDF5 attributes), so a larger one is refused up front rather than written and then unreadable
MAX_SEED = 2**63 - 1
#: deepest nesting of tables/lists a recipe may have (v1 needs 3: root -> degradations -> atom -> range)
MAX_DEPTH = 8
#: largest recipe file read (the v1 recipe is about 2 KiB)
MAX_RECIPE_BYTES = 1 << 20


def shipped_recipes() -> dict[str, Path]:
    """Name -> path of every recipe shipped with the toolkit."""
    root = resources.files("demmi_manifests")
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        name = entry.name
        if name.endswith((".toml", ".json")) and not name.startswith("_"):
            out[name.rsplit(".", 1)[0]] = Path(str(entry))
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``data`` is the full plain-data table; ``path`` where it was read from."""

    data: dict[str, Any]
    path: str = ""
    _hash: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def spec_version(self) -> str:
        return self.data["spec_version"]

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def test_fraction(self) -> float:
        return float(self.data["test_fraction"])

    @property
    def pairs_per_shard(self) -> int:
        return int(self.data["pairs_per_shard"])

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(self.data["settings"])

    @property
    def degradations(self) -> dict[str, dict[str, Any]]:
        """Parameter ranges per atom (a deep copy: callers cannot change the recipe)."""
        return copy.deepcopy(self.data["degradations"])

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of :attr:`data` (sorted keys, no whitespace)."""
        return recipe_hash(self.data)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    def with_overrides(self, *, seed: int | None = None, settings: Iterable[str] | None = None) -> Recipe:
        """A derived recipe with another ``seed`` and/or other ``settings`` (:func:`narrow_settings`: any of
        this recipe's settings, and ad-hoc settings and mixtures made of its atoms, ``haze+stripe``,
        ``haze.s3``).

        ``settings`` are canonicalised (``haze+noise50`` -> ``noise50+haze``) and ordered (the recipe's own in
        its order, then the ad-hoc ones by name), so the order the user typed them in never changes the result.
        When anything changes, the derived recipe
        records ``base = {name, hash}`` of this one; its own hash therefore differs.
        """
        data = copy.deepcopy(self.data)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
                raise RecipeError(f"{self.path or self.name}: seed must be a non-negative integer <= 2**63 - 1, "
                                  f"got {seed!r}")
            data["seed"] = int(seed)
        if settings is not None:
            data["settings"] = narrow_settings(self, settings)
        if data == self.data:
            return self
        data.setdefault("base", {"name": self.name, "hash": self.hash})
        return validate_recipe(data, where=self.path or self.name)


def recipe_hash(data: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON form of a recipe table."""
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode("ascii")).hexdigest()


def load_recipe(name_or_path: str | Path = DEFAULT_RECIPE) -> Recipe:
    """Load and validate a shipped recipe by name (``demmi-rf-v1``) or a recipe file by path."""
    text_path = Path(str(name_or_path))
    shipped = shipped_recipes()
    if str(name_or_path) in shipped:
        path = shipped[str(name_or_path)]
    elif text_path.suffix in (".toml", ".json") or text_path.exists():
        path = text_path
    else:
        raise RecipeError(
            f"unknown recipe {str(name_or_path)!r}{did_you_mean(str(name_or_path), shipped)}: not a shipped recipe "
            f"({', '.join(shipped) or 'none'}) "
            "and not a .toml/.json file"
        )
    if not path.exists():
        raise RecipeError(f"{path}: recipe file does not exist")
    if not path.is_file():  # a folder, a FIFO (reading it would block), a device
        raise RecipeError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: over {MAX_RECIPE_BYTES // (1 << 20)} MiB, too large to be a recipe")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix == ".toml" else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    except RecursionError as exc:  # e.g. 100000 nested '[': the parsers recurse per level
        raise RecipeError(f"{path}: nested too deeply to be a recipe (at most {MAX_DEPTH} levels)") from exc
    return validate_recipe(data, where=str(path))


def _shape_problems(data: Any) -> list[str]:
    """Nesting deeper than :data:`MAX_DEPTH` and non-finite numbers (``inf``, ``nan``: TOML and Python's JSON
    accept them) and integers beyond 64 bits, each named by its field path. Walks iteratively, so any depth
    is reported, never recursed."""
    problems: list[str] = []
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(f"{where or 'the recipe'} is nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where} must be a finite number, got {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63 \
                and where != "seed":  # the seed has its own, clearer check
            problems.append(f"{where}: {value} is outside the signed 64-bit integer range (TOML's own limit)")
    return sorted(problems)


def validate_recipe(data: dict[str, Any], where: str = "<recipe>") -> Recipe:
    """Check types and values of a recipe table; raise :class:`RecipeError` naming every problem."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe must be a table/object, got {type(data).__name__}")
    shape = _shape_problems(data)
    if shape:  # checked first: the checks below (and hashing) must not meet inf, nan or absurd nesting
        raise RecipeError(f"{where}: invalid recipe: " + "; ".join(shape[:10])
                          + (f"; ... and {len(shape) - 10} more" if len(shape) > 10 else ""))
    problems: list[str] = []
    for key, typ in _REQUIRED.items():
        if key not in data:
            problems.append(f"missing key {key!r}")
        elif typ is float and isinstance(data[key], int) and not isinstance(data[key], bool):
            continue
        elif not isinstance(data[key], typ) or isinstance(data[key], bool):
            problems.append(f"{key!r} must be {typ.__name__}, got {type(data[key]).__name__}")
    type_ok = not problems
    for key in sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL)):
        problems.append(f"unknown key {key!r} (allowed: {', '.join([*_REQUIRED, *_OPTIONAL])})")
    for key, typ in _OPTIONAL.items():
        if key in data and not isinstance(data[key], typ):
            problems.append(f"{key!r} must be {typ.__name__}, got {type(data[key]).__name__}")
    base = data.get("base")
    if isinstance(base, dict) and (set(base) != {"name", "hash"} or not all(isinstance(v, str) for v in base.values())):
        problems.append("'base' must be a table of two strings, name and hash")
    if type_ok:
        if not 0 <= data["seed"] <= MAX_SEED:
            problems.append(f"'seed' must be in [0, 2**63 - 1] (signed 64-bit), got {data['seed']}")
        if not 0 <= data["test_fraction"] <= 1:
            problems.append("'test_fraction' must be in [0, 1]")
        if data["pairs_per_shard"] < 1:
            problems.append("'pairs_per_shard' must be >= 1")
        if not data["settings"]:
            problems.append("'settings' is empty")
        problems.extend(_check_settings(data["settings"]))
        problems.extend(_check_degradations(data["degradations"], data["settings"]))
    if problems:
        raise RecipeError(f"{where}: invalid recipe: " + "; ".join(problems))
    return Recipe(data=copy.deepcopy(data), path=where)


def _check_settings(settings: list[Any]) -> list[str]:
    """Problems with the settings list (each parsed by :func:`demmi_rf.settings.parse_setting`)."""
    problems = []
    for s in settings:
        if not isinstance(s, str):
            problems.append(f"setting {s!r} is not a string")
    seen = set()
    for s in settings:
        if not isinstance(s, str):
            continue
        try:
            canon = parse_setting(s).name
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if canon != s:
            problems.append(f"setting {s!r} is not in canonical form (write {canon!r})")
        if canon in seen:
            problems.append(f"setting {canon!r} listed twice")
        seen.add(canon)
    return problems


def _used_atoms(settings: list[Any]) -> list[str]:
    """The atoms of the settings that parse (the others are reported by :func:`_check_settings`)."""
    used: set[str] = set()
    for s in settings:
        if isinstance(s, str):
            try:
                used.update(parse_setting(s).atoms)
            except ValueError:
                continue
    return sorted(used)


def _check_degradations(table: dict[str, Any], settings: list[Any]) -> list[str]:
    """Problems with the per-atom parameter ranges, from each registered atom's parameter schema (nothing is
    drawn: :func:`demmi_rf.degradations.range_problems`): unknown atoms and parameters, missing parameters,
    values of the wrong shape, reversed ranges, values outside the valid interval, and atoms used by a setting
    without an entry."""
    return range_problems(table, _used_atoms(settings))


def canonical_setting(name: str) -> str:
    """The canonical name of a setting (``haze+noise50`` -> ``noise50+haze``); :class:`RecipeError` when it
    does not parse."""
    name = name.strip()
    try:
        return parse_setting(name).name
    except ValueError as exc:
        raise RecipeError(str(exc) if repr(name) in str(exc) else f"setting {name!r}: {exc}") from exc


def parse_settings_option(text: str) -> list[str]:
    """``"haze,stripe,noise50+haze"`` -> canonical setting names (the ``--degradations`` option)."""
    items = [t for t in (part.strip() for part in text.split(",")) if t]
    if not items:
        raise RecipeError(f"--degradations {text!r}: give at least one setting, e.g. 'haze,noise50+haze'")
    return [canonical_setting(t) for t in items]


def narrow_settings(recipe: Recipe, wanted: Iterable[str]) -> list[str]:
    """``wanted`` (canonicalised): the recipe's settings among them in the recipe's order, then the ad-hoc
    ones (settings and mixtures the recipe does not list, severity levels included: ``haze+stripe``,
    ``noise50.s4+haze.s2``) sorted by name. An ad-hoc setting may use only atoms the recipe has a
    ``[degradations.<atom>]`` table for (:class:`RecipeError` naming the missing atoms otherwise)."""
    chosen = {canonical_setting(w) for w in wanted}
    if not chosen:
        raise RecipeError("no setting selected: give at least one of " + ", ".join(recipe.settings))
    tables = recipe.data["degradations"]
    extra = sorted(chosen - set(recipe.settings))
    problems = []
    for name in extra:
        missing = [a for a in parse_setting(name).atoms if a not in tables]
        if missing:
            problems.append(f"{name}{did_you_mean(name, recipe.settings)} uses atom(s) {', '.join(missing)}")
    if problems:
        raise RecipeError(
            f"setting(s) {'; '.join(problems)} without a [degradations.<atom>] table in recipe {recipe.name!r} "
            f"(its atoms: {', '.join(sorted(tables))}; its settings: {', '.join(recipe.settings)}); write a "
            "recipe file with those atoms' ranges to build them"
        )
    return [s for s in recipe.settings if s in chosen] + extra
