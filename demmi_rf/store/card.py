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
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .checksums import bytes_sha256
from .layout import CARD, DATASET_FORMAT, DATASET_FORMAT_VERSION

REQUIRED = ("format", "name", "recipe", "recipe_hash", "shards", "manifest", "counts")


def card_bytes(card: dict[str, Any]) -> bytes:
    """Canonical bytes of a card."""
    return (json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def card_hash(data: bytes) -> str:
    """sha256 of the card file's bytes."""
    return bytes_sha256(data)


def read_card(root: str | Path) -> tuple[dict[str, Any], bytes]:
    """``(card, raw bytes)`` of ``<root>/dataset.json``; :class:`DatasetError` when missing or invalid."""
    path = Path(root) / CARD
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: not a directory")
    if not path.is_file():
        raise DatasetError(f"{path}: dataset card is missing (not a DeMMI-RF dataset, or its build did not "
                           "finish: re-run the same 'demmi build' command to complete it)")
    raw = path.read_bytes()
    try:
        card = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise DatasetError(f"{path}: the card must be a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise DatasetError(f"{path}: card lacks field(s) {', '.join(missing)}")
    if card["format"] != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a DeMMI-RF dataset card (format {card['format']!r})")
    if int(card.get("format_version", 0)) > DATASET_FORMAT_VERSION:
        raise DatasetError(f"{path}: card format version {card['format_version']} is newer than this toolkit "
                           f"reads ({DATASET_FORMAT_VERSION}); upgrade demmi-rf")
    return card, raw


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
