"""``demmi materialize``: turn a virtual dataset into a materialized one (every array stored in the shards).

The source is opened and checked like any dataset (card, manifest sha256, content hash). Into a new folder
``out`` (refused when it exists and is not empty; never in place, so the source stays valid until the copy is
complete and can be deleted afterwards), each shard is re-written in the order a materialized build writes it:
root attributes, then per pair its attributes and clean arrays, then per sample its attributes and the degraded
arrays, synthesised by the virtual store (so each is checked against the manifest's sha256 before it is written),
then ``/meta/result``. The manifest is copied byte for byte (a virtual manifest already names every array's path
and sha256), so the content hash is unchanged; the card is the source's with ``storage.array_format`` removed
and the new shards' sizes and sha256; ``dataset.json`` is written last.

Each shard's plan key is recomputed for the materialized storage from the recipe hash, file name, pair ids and the
source files' sha256 recorded in the pair attributes (:func:`demmi_rf.builder.plan.shard_key`), so a later
``demmi build`` of the same recipe into ``out`` reuses the shards instead of rebuilding them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError, ShardError
from .arrays import FORMAT_KEY, VirtualArrayStore, build_storage, refs_from_manifest
from .atomic import write_bytes_atomic
from .card import card_bytes, card_hash
from .checksums import file_sha256
from .layout import CARD, MANIFEST, RECIPE, SHARD_DIR
from .safe import shard_path
from .shard import ShardWriter, attr_text, read_result


@dataclass(frozen=True)
class MaterializeReport:
    """What :func:`materialize` wrote: the folder, its card hash, content hash, shard and array counts."""

    out: Path
    card_hash: str
    content_hash: str
    shards: int
    arrays_synthesised: int
    bytes: int


def materialize(src: str | Path, out: str | Path, on_shard: Callable[[str], None] | None = None) -> MaterializeReport:
    """Write the materialized form of the virtual dataset ``src`` into the new folder ``out`` (module docstring).

    :class:`DatasetError` when ``src`` is not a valid virtual dataset or ``out`` exists and is not empty (or is
    ``src``); :class:`ShardError` naming the shard and sample when a degraded array cannot be synthesised or
    differs from the manifest's sha256 (nothing is then left that looks like a complete dataset: no card)."""
    from .reader import open_dataset  # noqa: PLC0415

    src, out = Path(src).absolute(), Path(out).absolute()
    with open_dataset(src, cache_bytes=0) as ds:
        store = ds.array_store
        if not isinstance(store, VirtualArrayStore):
            raise DatasetError(f"{src}: already materialized (array format {ds.array_format!r}); nothing to do")
        if out == src or src in out.parents:
            raise DatasetError(f"{out}: the output folder must lie outside the source dataset {src}")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise DatasetError(f"{out}: exists and is not an empty folder; choose a new output folder")
        (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        card = json.loads(ds.record.raw.decode("utf-8"))
        storage = {k: v for k, v in card.get("storage", {}).items() if k != FORMAT_KEY}
        if storage != build_storage(False):
            raise DatasetError(f"{src}: storage settings {storage} are not this toolkit's; cannot materialize")
        refs = refs_from_manifest(ds.manifest)
        by_shard: dict[str, list[str]] = {}
        for sid, ref in refs.items():
            by_shard.setdefault(ref.shard, []).append(sid)
        shards, synthesised = [], 0
        for entry in card["shards"]:
            rel = entry["file"]
            count, size, sha = _materialize_shard(ds, store, rel, out, storage, refs, set(by_shard.get(rel, [])))
            synthesised += count
            shards.append({**entry, "bytes": size, "sha256": sha})
            if on_shard:
                on_shard(rel)
        card["storage"] = storage
        card["shards"] = shards
        card["bytes"] = sum(s["bytes"] for s in shards) + int(card["manifest"]["bytes"])
        content = ds.content_hash
        manifest = ds.manifest.iloc[:0]
        for name in (MANIFEST, RECIPE):
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
    from ..publish.card_files import write_card_files  # noqa: PLC0415

    write_card_files(out, card, manifest)
    data = card_bytes(card)
    write_bytes_atomic(out / CARD, data)
    return MaterializeReport(out=out, card_hash=card_hash(data), content_hash=content, shards=len(shards),
                             arrays_synthesised=synthesised, bytes=card["bytes"])


def _materialize_shard(ds: Any, store: VirtualArrayStore, rel: str, out: Path, storage: dict[str, Any],
                       refs: dict[str, Any], members: set[str]) -> tuple[int, int, str]:
    from ..builder.plan import plan_key, shard_key  # noqa: PLC0415 - the build package imports the store

    h5 = store.clean.shard(rel)
    result = read_result(h5, rel, require_hash=True)
    rows = result.get("rows")
    if not isinstance(rows, list) or {str(r.get("sample_id")) for r in rows} != members:
        raise ShardError(f"shard {rel}: /meta/result rows differ from the manifest's samples of this shard")
    pairs: list[str] = [str(p) for p in result.get("pairs", [])]
    sources = []
    for pid in pairs:
        group = h5.get(f"/pairs/{pid}")  # a skipped pair has no group
        sources.append((pid, attr_text(group, "ir_sha256"), attr_text(group, "vis_sha256")) if group is not None
                       else (pid, None, None))
    key = shard_key(plan_key(str(result.get("recipe_hash")), storage, rel, pairs), sources)
    result = {**result, "plan_key": key}
    root_attrs = {name: _plain(h5.attrs[name]) for name in ("recipe_hash", "split", "index", "toolkit_version")
                  if name in h5.attrs}
    root_attrs["plan_key"] = key
    final = shard_path(out, rel)
    count = 0
    with ShardWriter(final, root_attrs, storage=storage) as writer:
        done_pairs: set[str] = set()
        for row in rows:
            ref = refs[str(row["sample_id"])]
            if ref.pair_id not in done_pairs:
                done_pairs.add(ref.pair_id)
                writer.set_group_attrs(f"/pairs/{ref.pair_id}", _group_attrs(h5, f"/pairs/{ref.pair_id}"))
                for name in ("vis_clean", "ir_clean"):
                    _write(writer, ref, name, store.clean.read(ref, name))
            writer.set_group_attrs(f"/samples/{ref.sample_id}", _group_attrs(h5, f"/samples/{ref.sample_id}"))
            if ref.changes_vis or ref.changes_ir:
                images = store.synthesised(ref)  # both modalities at once, checked against the manifest
                for name in ("vis", "ir"):
                    if ref.degraded(name):
                        _write(writer, ref, name, images[name])
                        count += 1
        writer.commit(result)
    return count, final.stat().st_size, file_sha256(final)


def _write(writer: ShardWriter, ref: Any, name: str, array: Any) -> None:
    if writer.write_array(ref.paths[name], array) != ref.sha256[name]:
        raise ShardError(f"shard {ref.shard}, sample {ref.sample_id}, array {ref.paths[name]}: differs from the "
                         "manifest's sha256")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _group_attrs(h5: Any, path: str) -> dict[str, Any]:
    """A group's attributes as the shard writer was given them (``params`` JSON decoded, scalars plain)."""
    out = {}
    for key, value in h5[path].attrs.items():
        value = _plain(value)
        if key == "params" and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


__all__ = ["MaterializeReport", "materialize"]
