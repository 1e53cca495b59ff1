"""Versioned benchmark recipes: plain TOML/JSON data, validated, hashed.

A recipe names the settings to build, the parameter ranges of every atom, the seed, the test fraction and the
shard size. Shipped recipes live in the repository's ``manifests/`` folder (installed as the package
``demmi_manifests``) and are found by name; any ``.toml`` or ``.json`` file can be given by path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_RECIPE = "demmi-rf-v1"
_REQUIRED = {
    "name": str,
    "spec_version": str,
    "seed": int,
    "test_fraction": float,
    "pairs_per_shard": int,
    "settings": list,
    "degradations": dict,
}


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
            f"unknown recipe {str(name_or_path)!r}: not a shipped recipe ({', '.join(shipped) or 'none'}) "
            "and not a .toml/.json file"
        )
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file does not exist")
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix == ".toml" else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    return validate_recipe(data, where=str(path))


def validate_recipe(data: dict[str, Any], where: str = "<recipe>") -> Recipe:
    """Check types and values of a recipe table; raise :class:`RecipeError` naming every problem."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe must be a table/object, got {type(data).__name__}")
    problems: list[str] = []
    for key, typ in _REQUIRED.items():
        if key not in data:
            problems.append(f"missing key {key!r}")
        elif typ is float and isinstance(data[key], int) and not isinstance(data[key], bool):
            continue
        elif not isinstance(data[key], typ) or isinstance(data[key], bool):
            problems.append(f"{key!r} must be {typ.__name__}, got {type(data[key]).__name__}")
    if not problems:
        if data["seed"] < 0:
            problems.append("'seed' must be >= 0")
        if not 0.0 <= float(data["test_fraction"]) <= 1.0:
            problems.append("'test_fraction' must be in [0, 1]")
        if data["pairs_per_shard"] < 1:
            problems.append("'pairs_per_shard' must be >= 1")
        if not data["settings"]:
            problems.append("'settings' is empty")
        problems.extend(_check_settings(data["settings"]))
    if problems:
        raise RecipeError(f"{where}: invalid recipe: " + "; ".join(problems))
    return Recipe(data=copy.deepcopy(data), path=where)


def _check_settings(settings: list[Any]) -> list[str]:
    """Problems with the settings list (parsed by :mod:`demmi_rf.settings` when it is available)."""
    problems = []
    for s in settings:
        if not isinstance(s, str):
            problems.append(f"setting {s!r} is not a string")
    try:
        from .settings import parse_setting  # noqa: PLC0415
    except ImportError:  # pragma: no cover - during bootstrap only
        return problems
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
