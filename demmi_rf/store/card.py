"""The dataset card ``dataset.json`` (benchmark spec section 6).

Fields (documented in ``docs/dataset-layout.md``): ``format``, ``format_version``, ``name``,
``spec_version``, ``toolkit_version``, ``recipe`` (the full effective recipe) and ``recipe_hash``,
``storage``, ``counts`` (per split and setting), ``shards`` (file, split, size, sha256...), ``manifest``
(file, sha256, rows), ``content_hash`` (:mod:`.identity`: sha256 of the recipe hash and every sample's id,
split and array sha256s, independent of the HDF5 bytes), ``sources`` (name, pairs, citation, licence note),
``skipped`` (pairs not built, with reasons).

The card holds no timestamps or host names, so an identical build gives an identical card. Its hash
(:func:`card_hash`) is the sha256 of the exact bytes of ``dataset.json``, which :func:`card_bytes` writes
canonically (sorted keys, two-space indent, UTF-8, final newline). The card hash changes with the shards'
file bytes (which depend on the HDF5/zlib build); the content hash does not, and is the dataset's identity for
comparing results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError, RecipeError
from ..jsonsafe import loads
from .checksums import bytes_sha256
from .layout import CARD, DATASET_FORMAT, DATASET_FORMAT_VERSION, MANIFEST
from .safe import inside, shard_name_problem

REQUIRED = ("format", "name", "recipe", "recipe_hash", "shards", "manifest", "counts")
#: largest card read (a card of 100 000 shards is about 25 MB)
MAX_CARD_BYTES = 256 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def card_bytes(card: dict[str, Any]) -> bytes:
    """Canonical bytes of a card."""
    return (json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def card_hash(data: bytes) -> str:
    """sha256 of the card file's bytes."""
    return bytes_sha256(data)


# ---- the typed card ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardEntry:
    """One shard as the card lists it (``file`` is checked: ``shards/<name>.h5``, relative, no ``..``)."""

    file: str
    split: str
    sha256: str
    bytes: int | None = None
    index: int | None = None
    pairs: int | None = None
    samples: int | None = None


@dataclass(frozen=True)
class ManifestEntry:
    """The card's ``manifest`` entry."""

    file: str
    sha256: str
    rows: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class SplitCounts:
    """Samples, pairs and samples per setting of one split."""

    samples: int
    pairs: int
    settings: Mapping[str, int]


@dataclass(frozen=True)
class Counts:
    """The card's ``counts``: totals and per split."""

    samples: int
    pairs: int
    by_split: Mapping[str, SplitCounts]


@dataclass(frozen=True)
class Card:
    """A validated dataset card (:func:`load_card`). ``data`` is the parsed JSON (read-only view of every field,
    including ones this record does not type, such as ``sources``, ``software``, ``skipped``); ``raw`` its
    bytes; ``path`` the file."""

    path: Path
    format_version: int
    name: str
    spec_version: str
    toolkit_version: str
    recipe: Mapping[str, Any]
    recipe_hash: str
    content_hash: str | None
    counts: Counts
    shards: tuple[ShardEntry, ...]
    manifest: ManifestEntry
    storage: Mapping[str, Any]
    data: Mapping[str, Any] = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def settings(self) -> tuple[str, ...]:
        """The recipe's settings, in recipe order."""
        return tuple(self.recipe["settings"])

    def shard(self, rel: str) -> ShardEntry | None:
        """The entry of shard file ``rel``, or None."""
        return next((s for s in self.shards if s.file == rel), None)


class _Fields:
    """Type checks of one JSON object, each naming the card file and the field's dotted path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, name: str, problem: str) -> DatasetError:
        return DatasetError(f"{self.path}: field {name} {problem}")

    def get(self, obj: Mapping[str, Any], key: str, prefix: str, kind: type | tuple[type, ...], what: str,
            required: bool = True, default: Any = None) -> Any:
        name = f"{prefix}{key}"
        if key not in obj:
            if required:
                raise self.fail(name, "is missing")
            return default
        value = obj[key]
        bad_bool = isinstance(value, bool) and kind in (int, (int, float))
        if bad_bool or not isinstance(value, kind):
            raise self.fail(name, f"must be {what}, got {_type_name(value)}")
        return value

    def count(self, obj: Mapping[str, Any], key: str, prefix: str, required: bool = True) -> int | None:
        value = self.get(obj, key, prefix, int, "a non-negative integer", required=required)
        if value is not None and value < 0:
            raise self.fail(f"{prefix}{key}", f"must be a non-negative integer, got {value}")
        return value

    def digest(self, obj: Mapping[str, Any], key: str, prefix: str, required: bool = True) -> str | None:
        value = self.get(obj, key, prefix, str, "a sha256 hex digest (64 lowercase hex digits)", required=required)
        if value is not None and not _SHA256.fullmatch(value):
            raise self.fail(f"{prefix}{key}", f"must be a sha256 hex digest (64 lowercase hex digits), "
                                             f"got {value[:80]!r}")
        return value


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class Frozen(Mapping):
    """A read-only, picklable mapping (the typed card's view of JSON objects)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None):
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Frozen({self._data!r})"

    def __reduce__(self):
        return (Frozen, (self._data,))


def _freeze(value: Any) -> Any:
    """A read-only view of parsed JSON (objects become :class:`Frozen` mappings, arrays tuples)."""
    if isinstance(value, dict):
        return Frozen({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def parse_card(card: Any, raw: bytes, path: Path) -> Card:
    """Validate a parsed card into a :class:`Card`; :class:`DatasetError` naming ``path`` and the field.

    Checked: every field this toolkit reads has its type (``format_version`` an integer no newer than this
    toolkit's, ``shards`` an array of objects with a valid ``file`` path, ``split``, ``sha256``..., ``manifest``
    an object with ``sha256``, ``counts`` with ``samples``, ``pairs`` and ``by_split``); the recipe is a valid
    recipe (:func:`demmi_rf.recipe.validate_recipe`); no shard is listed twice. Unknown fields are kept."""
    f = _Fields(path)
    if not isinstance(card, dict):
        raise DatasetError(f"{path}: the card must be a JSON object, got {_type_name(card)}")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise DatasetError(f"{path}: card lacks field(s) {', '.join(missing)}")
    fmt = f.get(card, "format", "", str, "a string")
    if fmt != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a DeMMI-RF dataset card (format {fmt[:80]!r})")
    version = f.get(card, "format_version", "", int, "an integer", required=False, default=1)
    if version > DATASET_FORMAT_VERSION:
        raise DatasetError(f"{path}: card format version {version} is newer than this toolkit "
                           f"reads ({DATASET_FORMAT_VERSION}); upgrade demmi-rf")
    if version < 1:
        raise DatasetError(f"{path}: field format_version must be >= 1, got {version}")
    name = f.get(card, "name", "", str, "a string")
    spec_version = f.get(card, "spec_version", "", str, "a string", required=False, default="")
    toolkit_version = f.get(card, "toolkit_version", "", str, "a string", required=False, default="")
    recipe = f.get(card, "recipe", "", dict, "an object")
    try:
        from ..recipe import validate_recipe  # noqa: PLC0415 - the recipe module pulls the settings parser

        validate_recipe(recipe, where=f"{path}: field recipe")
    except RecipeError as exc:
        raise DatasetError(str(exc)) from exc
    except (ValueError, TypeError, ArithmeticError) as exc:  # a crafted recipe the validator could not judge
        raise DatasetError(f"{path}: field recipe: invalid recipe ({type(exc).__name__}: {exc})") from exc
    recipe_hash = f.digest(card, "recipe_hash", "")
    content_hash = f.digest(card, "content_hash", "", required=False)
    storage = f.get(card, "storage", "", dict, "an object", required=False, default={})
    counts = _counts(f, f.get(card, "counts", "", dict, "an object"))
    manifest = f.get(card, "manifest", "", dict, "an object")
    manifest_entry = ManifestEntry(
        file=f.get(manifest, "file", "manifest.", str, "a string", required=False, default=MANIFEST),
        sha256=f.digest(manifest, "sha256", "manifest."),
        rows=f.count(manifest, "rows", "manifest.", required=False),
        bytes=f.count(manifest, "bytes", "manifest.", required=False))
    if manifest_entry.file != MANIFEST:
        raise f.fail("manifest.file", f"must be {MANIFEST!r}, got {manifest_entry.file[:80]!r}")
    shards = []
    seen: set[str] = set()
    for i, entry in enumerate(f.get(card, "shards", "", list, "an array")):
        prefix = f"shards[{i}]."
        if not isinstance(entry, dict):
            raise f.fail(f"shards[{i}]", f"must be an object, got {_type_name(entry)}")
        rel = f.get(entry, "file", prefix, str, "a string")
        problem = shard_name_problem(rel)
        if problem is not None:
            raise f.fail(f"{prefix}file", problem)
        if rel in seen:
            raise f.fail(f"{prefix}file", f"lists {rel} a second time")
        seen.add(rel)
        shards.append(ShardEntry(
            file=rel, split=f.get(entry, "split", prefix, str, "a string"), sha256=f.digest(entry, "sha256", prefix),
            bytes=f.count(entry, "bytes", prefix, required=False),
            index=f.count(entry, "index", prefix, required=False),
            pairs=f.count(entry, "pairs", prefix, required=False),
            samples=f.count(entry, "samples", prefix, required=False)))
    _check_display_fields(f, card)
    return Card(path=path, format_version=version, name=name, spec_version=spec_version,
                toolkit_version=toolkit_version, recipe=_freeze(recipe), recipe_hash=recipe_hash,
                content_hash=content_hash, counts=counts, shards=tuple(shards), manifest=manifest_entry,
                storage=_freeze(storage), data=_freeze(card), raw=raw)


def _counts(f: _Fields, counts: dict[str, Any]) -> Counts:
    by_split = {}
    for split, entry in f.get(counts, "by_split", "counts.", dict, "an object").items():
        prefix = f"counts.by_split.{split}."
        if not isinstance(entry, dict):
            raise f.fail(prefix[:-1], f"must be an object, got {_type_name(entry)}")
        settings = f.get(entry, "settings", prefix, dict, "an object")
        for setting in settings:
            f.count(settings, setting, f"{prefix}settings.")
        by_split[split] = SplitCounts(samples=f.count(entry, "samples", prefix), pairs=f.count(entry, "pairs", prefix),
                                      settings=Frozen(dict(settings)))
    return Counts(samples=f.count(counts, "samples", "counts."), pairs=f.count(counts, "pairs", "counts."),
                  by_split=Frozen(by_split))


def _check_display_fields(f: _Fields, card: dict[str, Any]) -> None:
    """Types of the fields ``demmi info`` prints (``bytes``, ``sources``, ``skipped``), when present."""
    f.count(card, "bytes", "", required=False)
    sources = f.get(card, "sources", "", dict, "an object", required=False)
    if sources is not None:
        for i, root in enumerate(f.get(sources, "roots", "sources.", list, "an array", required=False) or []):
            if not isinstance(root, str):
                raise f.fail(f"sources.roots[{i}]", f"must be a string, got {_type_name(root)}")
        for i, entry in enumerate(f.get(sources, "datasets", "sources.", list, "an array", required=False) or []):
            prefix = f"sources.datasets[{i}]."
            if not isinstance(entry, dict):
                raise f.fail(prefix[:-1], f"must be an object, got {_type_name(entry)}")
            f.get(entry, "source", prefix, str, "a string")
            f.count(entry, "pairs", prefix)
            for key in ("dataset", "citation", "licence"):
                f.get(entry, key, prefix, str, "a string", required=False)
    for i, entry in enumerate(f.get(card, "skipped", "", list, "an array", required=False) or []):
        prefix = f"skipped[{i}]."
        if not isinstance(entry, dict):
            raise f.fail(prefix[:-1], f"must be an object, got {_type_name(entry)}")
        f.get(entry, "message", prefix, str, "a string")
        for key in ("pair_id", "path", "kind", "shard"):
            f.get(entry, key, prefix, (str, type(None)), "a string or null", required=False)


def load_card(root: str | Path) -> Card:
    """The validated card of the dataset at ``root`` (:func:`parse_card`); :class:`DatasetError` naming the file
    and the problem when the folder or card is missing, the card is a symbolic link out of the folder, too
    large, not UTF-8 JSON, nested deeper than :data:`demmi_rf.jsonsafe.MAX_DEPTH`, or a field is invalid."""
    folder = Path(root)
    path = folder / CARD
    if not folder.is_dir():
        raise DatasetError(f"{root}: not a directory")
    if not path.is_file():
        raise DatasetError(f"{path}: dataset card is missing (not a DeMMI-RF dataset, or its build did not "
                           "finish: re-run the same 'demmi build' command to complete it)")
    inside(folder, CARD, label=str(path))
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise DatasetError(f"{path}: {size} bytes, larger than any card ({MAX_CARD_BYTES} bytes at most)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return parse_card(loads(raw, str(path), DatasetError), raw, path)


def read_card(root: str | Path) -> tuple[dict[str, Any], bytes]:
    """``(card, raw bytes)`` of ``<root>/dataset.json``, validated by :func:`load_card` (a plain dict, for
    callers that print or copy it); :class:`DatasetError` when missing or invalid."""
    card = load_card(root)
    return json.loads(card.raw.decode("utf-8")), card.raw


def recipe_hash_problem(card: Card) -> str | None:
    """Why the card's ``recipe_hash`` is not the hash of its own ``recipe`` body, or None when it is (a card
    edited and re-signed with another recipe but the old hash, or the reverse)."""
    from ..recipe import recipe_hash  # noqa: PLC0415

    computed = recipe_hash(_thaw(card.recipe))
    if computed != card.recipe_hash:
        return (f"{card.path}: recipe_hash {card.recipe_hash} is not the hash of the card's recipe ({computed}); "
                "the card was edited")
    return None


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def count_samples(rows: list[dict[str, Any]], settings: tuple[str, ...]) -> dict[str, Any]:
    """``{"samples": n, "pairs": n, "by_split": {split: {"samples", "pairs", "settings": {setting: n}}}}``
    with settings in recipe order."""
    by_split: dict[str, dict[str, Any]] = {}
    pairs: dict[str, set[str]] = {}
    for row in rows:
        split = by_split.setdefault(row["split"], {"samples": 0, "pairs": 0,
                                                   "settings": {s: 0 for s in settings}})
        split["samples"] += 1
        split["settings"][row["setting"]] = split["settings"].get(row["setting"], 0) + 1
        pairs.setdefault(row["split"], set()).add(row["pair_id"])
    for name, split in by_split.items():
        split["pairs"] = len(pairs[name])
    return {
        "samples": sum(s["samples"] for s in by_split.values()),
        "pairs": sum(s["pairs"] for s in by_split.values()),
        "by_split": dict(sorted(by_split.items())),
    }
