"""The dataset's **content hash**: the identity of what a benchmark measures.

The card hash (sha256 of ``dataset.json``'s bytes) changes whenever any shard's file bytes change, and HDF5
file bytes depend on the h5py / HDF5 / zlib build, so identical pixels built on another machine can get another
card hash. The content hash depends only on the recipe and the pixels:

    content_hash = sha256(content_text(manifest, recipe_hash, spec_version))

where ``content_text`` is UTF-8 text of lines, each ending in ``\\n``::

    demmi-rf-content 1
    spec_version <spec version>
    recipe_hash <recipe hash>
    <one line per sample, sorted by sample_id (Unicode code points)>

and each sample line is the compact JSON array (``json.dumps(..., separators=(",", ":"),
ensure_ascii=False)``)::

    [sample_id, split, height, width, vis_channels, sha256_vis, sha256_ir, sha256_vis_clean, sha256_ir_clean]

(strings, then three integers, then the four manifest array sha256 columns: ``sha256(C-order uint8 bytes)`` of
the sample's VIS, IR, clean VIS and clean IR; the geometry is included because an array sha256 has no header).

It does **not** depend on HDF5 bytes, compression, chunking, shard boundaries or file names, manifest row
order, the worker count, the executor or the toolkit version. It does depend on everything in the recipe
hash (seed, settings, parameter ranges, test fraction, and also ``pairs_per_shard``, which is part of the
recipe: two builds that differ only there have different recipe hashes, hence different content hashes) and
on the source pairs built (through the sample ids and the clean arrays).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from ..errors import DatasetError

CONTENT_FORMAT = "demmi-rf-content 1"
#: manifest columns that enter the content hash, in line order
CONTENT_COLUMNS = ("sample_id", "split", "height", "width", "vis_channels",
                   "sha256_vis", "sha256_ir", "sha256_vis_clean", "sha256_ir_clean")
_INT_COLUMNS = frozenset({"height", "width", "vis_channels"})
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\\"]')  # the characters json.dumps(ensure_ascii=False) escapes


def _sample_lines(frame: pd.DataFrame) -> list[str]:
    """One compact JSON array per sample (as ``json.dumps(fields, separators=(",", ":"), ensure_ascii=False)``
    writes it), sorted by sample id (ids are unique). Built column-wise (no per-row pandas access, one escape
    check per column): about the cost of parsing the manifest CSV itself."""
    encoded = []
    for c in CONTENT_COLUMNS:
        values = frame[c].tolist()
        if c in _INT_COLUMNS:
            encoded.append([str(int(v)) for v in values])
        else:
            strings = [str(v) for v in values]
            if _NEEDS_ESCAPE.search("".join(strings)):
                encoded.append([json.dumps(v, ensure_ascii=False) for v in strings])
            else:  # what json.dumps(v, ensure_ascii=False) writes for a string with nothing to escape
                encoded.append(['"' + v + '"' for v in strings])
    ids = [str(v) for v in frame["sample_id"].tolist()]
    lines = ["[" + ",".join(fields) + "]" for fields in zip(*encoded)]
    return [lines[i] for i in sorted(range(len(ids)), key=ids.__getitem__)]


#: samples encoded at a time by :func:`content_parts` (bounds its memory beyond the manifest itself)
CONTENT_BLOCK = 1 << 13


def content_parts(manifest: pd.DataFrame, recipe_hash: str, spec_version: str | int) -> Iterator[bytes]:
    """:func:`content_text` in consecutive pieces: the head lines, then the sample lines, sorted, encoded
    :data:`CONTENT_BLOCK` samples at a time (only the sort order is held for every sample, not every line)."""
    missing = [c for c in CONTENT_COLUMNS if c not in manifest.columns]
    if missing:
        raise DatasetError(f"manifest lacks column(s) {', '.join(missing)} needed for the content hash")
    ids = manifest["sample_id"]
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise DatasetError(f"manifest lists sample {dup!r} more than once")
    head = [CONTENT_FORMAT, f"spec_version {spec_version}", f"recipe_hash {recipe_hash}"]
    yield ("\n".join(head) + "\n").encode("utf-8")
    keys = [str(v) for v in ids.tolist()]
    order = sorted(range(len(keys)), key=keys.__getitem__)  # code-point order, as _sample_lines sorts
    del keys
    columns = manifest[list(CONTENT_COLUMNS)]  # a frame of the nine columns (no copy of the others)
    for start in range(0, len(order), CONTENT_BLOCK):
        block = columns.iloc[order[start:start + CONTENT_BLOCK]]
        yield "".join(line + "\n" for line in _sample_lines(block)).encode("utf-8")


def content_text(manifest: pd.DataFrame, recipe_hash: str, spec_version: str | int) -> bytes:
    """The canonical text hashed by :func:`content_hash` (module docstring), as UTF-8 bytes."""
    return b"".join(content_parts(manifest, recipe_hash, spec_version))


def content_hash(manifest: pd.DataFrame, recipe_hash: str, spec_version: str | int) -> str:
    """sha256 (hex) of :func:`content_text`: the identity of a dataset's pixels, splits and recipe,
    independent of how the arrays are stored (module docstring). Hashed piece by piece
    (:func:`content_parts`), so the text is never held whole."""
    sha = hashlib.sha256()
    for part in content_parts(manifest, recipe_hash, spec_version):
        sha.update(part)
    return sha.hexdigest()


def card_content_hash(manifest: pd.DataFrame, card: Mapping[str, Any]) -> str:
    """:func:`content_hash` of a manifest with the ``recipe_hash`` and ``spec_version`` of its card."""
    return content_hash(manifest, str(card["recipe_hash"]), str(card.get("spec_version", "")))
