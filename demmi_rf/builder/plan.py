"""Planning a build: pairs -> splits -> shards.

* Split (spec section 5): a pair keeps its source's official split (``PairRecord.split``); a pair without
  one goes to ``test`` when ``stable_unit("split", pair_id) < test_fraction`` and to ``train`` otherwise.
  The draw depends on the pair id only - not on the seed, the settings or the other pairs - so changing the
  seed never moves a pair between splits and adding pairs never moves the existing ones.
* Shards: the pairs of a split, sorted by pair id, cut into consecutive runs of ``pairs_per_shard``; shard
  ``k`` of split ``s`` is ``shards/<s>-<k:05d>.h5`` and holds every selected setting of its pairs.
* Each shard has a *plan key*: the sha256 of its recipe hash, storage settings, file name and pair ids
  (:func:`plan_key`, computed by the driver, which pairs files by name only). The worker that runs the shard
  extends it with the content of the sources, the sha256 of both files' bytes of every pair
  (:func:`shard_key`), and stores that key in the shard: a finished shard whose stored key equals this key
  (and which passes every other check of :func:`demmi_rf.builder.task.existing_result`) is reused by a re-run;
  any other is rebuilt. Editing a source image therefore rebuilds the shards that hold it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..recipe import Recipe
from ..rng import stable_unit
from ..sources import PairRecord
from ..sources.images import DEFAULT_MAX_PIXELS
from ..store.checksums import bytes_sha256
from ..store.layout import SHARD_FORMAT_VERSION, STORAGE, shard_file

SPLITS = ("test", "train")


def assign_split(record: PairRecord, test_fraction: float) -> str:
    """The pair's split: official when the source has one, else ``stable_unit("split", pair_id)``."""
    if record.split in SPLITS:
        return record.split
    return "test" if stable_unit("split", record.pair_id) < test_fraction else "train"


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to build one shard (plain, picklable data)."""

    out_dir: str
    file: str
    split: str
    index: int
    pairs: tuple[PairRecord, ...]
    recipe: dict[str, Any]
    recipe_hash: str
    plan_key: str
    storage: dict[str, Any] = field(default_factory=lambda: dict(STORAGE))
    ir16: str = "error"
    source_roots: tuple[str, ...] = ()
    #: images declaring more pixels are refused from their header, before decoding
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: the build lock's token (set by the driver once it holds the lock); a worker writes a shard only while
    #: that build holds the lock (:func:`demmi_rf.builder.outdir.check_lock_held`). Empty: not checked.
    lock_token: str = ""

    @property
    def n_samples(self) -> int:
        """Samples this shard holds when no pair is skipped."""
        return len(self.pairs) * len(self.recipe["settings"])


def plan_key(recipe_hash: str, storage: dict[str, Any], file: str, pair_ids: list[str]) -> str:
    """sha256 identifying a shard's intended content (see module docstring)."""
    doc = {"format_version": SHARD_FORMAT_VERSION, "recipe_hash": recipe_hash, "storage": storage,
           "file": file, "pairs": pair_ids}
    return bytes_sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def shard_key(planned: str, sources: Sequence[tuple[str, str | None, str | None]]) -> str:
    """The key stored in a shard: sha256 of the canonical JSON ``{"plan_key": planned, "sources": [[pair id,
    sha256 of the IR file, sha256 of the VIS file], ...]}`` (pairs in shard order; null for a file that cannot
    be read)."""
    doc = {"plan_key": planned, "sources": [list(s) for s in sources]}
    return bytes_sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def plan_shards(pairs: list[PairRecord], recipe: Recipe, out_dir: str, *, storage: dict[str, Any] | None = None,
                ir16: str = "error", source_roots: tuple[str, ...] = ()) -> list[ShardTask]:
    """The shards of a build, in (split, index) order."""
    storage = dict(storage or STORAGE)
    by_split: dict[str, list[PairRecord]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for rec in sorted(pairs, key=lambda r: r.pair_id):
        if rec.pair_id in seen:
            raise ValueError(f"pair id {rec.pair_id!r} found twice ({rec.ir_path}); pair ids must be unique")
        seen.add(rec.pair_id)
        by_split[assign_split(rec, recipe.test_fraction)].append(rec)
    tasks = []
    size = recipe.pairs_per_shard
    for split in SPLITS:
        members = by_split[split]
        for index, start in enumerate(range(0, len(members), size)):
            chunk = tuple(members[start : start + size])
            file = shard_file(split, index)
            key = plan_key(recipe.hash, storage, file, [r.pair_id for r in chunk])
            tasks.append(ShardTask(out_dir=str(out_dir), file=file, split=split, index=index, pairs=chunk,
                                   recipe=recipe.to_json(), recipe_hash=recipe.hash, plan_key=key,
                                   storage=storage, ir16=ir16, source_roots=tuple(source_roots)))
    return tasks
