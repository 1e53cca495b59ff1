"""``demmi verify``: check a dataset against its own checksums.

1. the card parses and every field has its type (:func:`~demmi_rf.store.card.load_card`); its ``recipe_hash`` is
   the hash of its own ``recipe`` body; the manifest matches the card's sha256, row count and ``counts``; the
   content hash recomputed from the manifest (:mod:`.identity`) equals the card's ``content_hash`` (when the
   card records one);
2. every shard listed in the card has a valid path that resolves inside the dataset folder, exists with the
   recorded size and sha256, and passes the store's gate (:func:`demmi_rf.store.safe.open_shard`: no links,
   no external or virtual storage, no unknown filters); no unknown file lies in ``shards/``;
3. (full mode) every array of every manifest row is uint8 with the manifest's height, width and channels,
   decodes, and has the manifest's sha256 (clean arrays shared by a pair are hashed once; a mismatch is
   reported for every sample that uses the array). In a virtual dataset (card ``storage.array_format =
   "virtual"``, :mod:`.arrays`) every degraded array is re-synthesised from the stored clean pair and its drawn
   parameters and sha256 are checked against the manifest.

Memory does not grow with the dataset: the manifest is read in chunks of
:data:`~demmi_rf.store.manifest.CHUNK_ROWS` rows (:class:`_ManifestScan`: the content hash, duplicate ids and
distinct pairs through sorted runs on temporary disk, each shard's rows spilled and checked one shard at a time).

Every problem names its shard and, where it applies, sample and array. What this proves and what it cannot is
written in ``docs/dataset-layout.md`` ("Threat model and guarantees").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DatasetError, ShardError
from .arrays import VirtualArrayStore, open_array_store, refs_from_manifest
from .atomic import is_temp_name
from .card import Card, load_card, recipe_hash_problem
from .checksums import array_sha256, file_sha256
from .identity import CONTENT_FORMAT, _sample_lines
from .layout import ARRAYS, CARD, MANIFEST, SHARD_DIR
from .manifest import iter_manifest
from .runs import SortedRuns, create_new
from .safe import array_shape, inside, open_shard, read_array, shard_path
from .shard import shard_metadata_problems


@dataclass(frozen=True)
class Problem:
    """One mismatch or defect, located by shard / sample / array where it applies."""

    message: str
    shard: str | None = None
    sample: str | None = None
    array: str | None = None

    def __str__(self) -> str:
        where = [x for x in (self.shard, f"sample {self.sample}" if self.sample else None,
                             f"array {self.array}" if self.array else None) if x]
        return (": ".join(where) + ": " if where else "") + self.message


@dataclass
class VerifyReport:
    root: Path
    quick: bool
    problems: list[Problem] = field(default_factory=list)
    shards_checked: int = 0
    arrays_checked: int = 0
    samples: int = 0
    content_hash: str | None = None  # recomputed from the manifest (None when the manifest is unreadable)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(root: str | Path, quick: bool = False,
                   on_shard: Callable[[str], None] | None = None) -> VerifyReport:
    """Check shards (and, unless ``quick``, every array) of the dataset at ``root``."""
    root = Path(root)
    report = VerifyReport(root=root, quick=quick)
    add = report.problems.append
    try:
        record = load_card(root)
    except DatasetError as exc:
        add(Problem(str(exc)))
        return report
    card = json.loads(record.raw.decode("utf-8"))
    problem = recipe_hash_problem(record)
    if problem:
        add(Problem(problem))

    scan = None
    try:
        mpath = inside(root, MANIFEST)
    except DatasetError as exc:
        add(Problem(str(exc)))
        mpath = None
    if mpath is not None and not mpath.is_file():
        add(Problem(f"{MANIFEST} is missing"))
    with contextlib.ExitStack() as stack:
        if mpath is not None and mpath.is_file():
            if file_sha256(mpath) != record.manifest.sha256:
                add(Problem(f"{MANIFEST}: sha256 differs from the card (edited or corrupted)"))
            try:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demmi-verify-")))
            except OSError as exc:
                raise DatasetError(f"cannot verify {root}: no room for temporary files in "
                                   f"{tempfile.gettempdir()}: {exc}") from exc
            scan = stack.enter_context(_ManifestScan(tmp, record.settings, keep_rows=not quick))
            try:
                scan.read(mpath)
            except DatasetError as exc:
                add(Problem(str(exc)))
                scan = None
            except OSError as exc:
                raise DatasetError(f"cannot verify {root}: temporary files in {tmp}: {exc}") from exc
        if scan is not None:
            _verify_scan(scan, record, card, report)
        _verify_shards(root, record, card, scan, report, quick, on_shard)
    return report


def _verify_scan(scan: _ManifestScan, record: Card, card: dict, report: VerifyReport) -> None:
    """The manifest's row count, counts and content hash against the card (``scan`` has read the manifest)."""
    add = report.problems.append
    report.samples = scan.rows
    if record.manifest.rows is not None and record.manifest.rows != scan.rows:
        add(Problem(f"{MANIFEST}: {scan.rows} rows, the card records {record.manifest.rows}"))
    try:
        report.content_hash = scan.content_hash(str(card["recipe_hash"]), str(card.get("spec_version", "")))
    except DatasetError as exc:
        add(Problem(str(exc)))
        scan.broken = True
        return
    _verify_counts(scan, record, report)
    recorded = card.get("content_hash")
    if recorded is not None and recorded != report.content_hash:
        add(Problem(f"{CARD}: content_hash {recorded} differs from the one computed from {MANIFEST}, "
                    f"{report.content_hash}"))


def _verify_shards(root: Path, record: Card, card: dict, scan: _ManifestScan | None, report: VerifyReport,
                   quick: bool, on_shard: Callable[[str], None] | None) -> None:
    """The shard files against the card, then (full mode) every array of every manifest row, one shard's rows
    in memory at a time."""
    add = report.problems.append
    manifest_ok = scan is not None and not scan.broken
    listed = {}
    usable = set()  # shards whose path, size, sha256 and structure passed: their arrays are read in full mode
    for shard in record.shards:
        rel = shard.file
        listed[rel] = shard
        try:
            path = shard_path(root, rel)
        except ShardError as exc:
            add(Problem(str(exc), shard=rel))
            continue
        if not path.is_file():
            add(Problem("shard file is missing", shard=rel))
            continue
        size = path.stat().st_size
        if shard.bytes is not None and size != shard.bytes:
            add(Problem(f"size {size} bytes, the card records {shard.bytes} (truncated or replaced)", shard=rel))
        if file_sha256(path) != shard.sha256:
            add(Problem("sha256 differs from the card (corrupted or replaced)", shard=rel))
        try:
            open_shard(rel, root=root).close()
            usable.add(rel)
        except ShardError as exc:
            add(Problem(_short(_unprefixed(exc, rel)), shard=rel))
        report.shards_checked += 1
        if on_shard and quick:
            on_shard(rel)
    shard_dir = root / SHARD_DIR
    if shard_dir.is_dir():
        for path in sorted(shard_dir.iterdir()):
            rel = f"{SHARD_DIR}/{path.name}"
            if rel not in listed:
                what = "leftover temporary file of an interrupted build" if is_temp_name(path.name) else \
                    "file not listed in the card"
                add(Problem(what, shard=rel))
    if manifest_ok:
        for rel in sorted(set(scan.shards) - set(listed)):
            add(Problem("manifest rows point to a shard the card does not list", shard=rel))

    if quick or not manifest_ok:
        return
    try:
        synth = _virtual_store(root, card)
    except DatasetError as exc:
        add(Problem(str(exc)))
        return
    for rel in sorted(scan.shards):
        if rel in usable:
            _verify_arrays(root, rel, scan.shard_rows(rel), report, synth)
        if on_shard:
            on_shard(rel)


#: the manifest columns kept per shard for the full check (what :func:`_verify_arrays` reads)
_ROW_COLUMNS = ("sample_id", "shard", "setting", "pair_id", "height", "width", "vis_channels", "seed", "params",
                "changes_vis", "changes_ir", *(f"{a}_path" for a in ARRAYS), *(f"sha256_{a}" for a in ARRAYS))


class _ManifestScan:
    """One pass over ``manifest.csv`` in chunks (:func:`~demmi_rf.store.manifest.iter_manifest`), keeping in memory
    only what does not grow with the samples (the counts per split and setting, the shard names) and spilling the
    rest to files in ``tmp``: the content hash's sample lines and the (split, pair) keys as sorted runs
    (:class:`~demmi_rf.store.runs.SortedRuns`, merged at the end: the content hash, duplicate sample ids, distinct
    pairs), and, with ``keep_rows``, each shard's rows (pickled, per chunk) for the full check, read back one
    shard at a time. Memory: one chunk, one shard's rows, the merge buffers."""

    def __init__(self, tmp: Path, settings: tuple[str, ...], keep_rows: bool) -> None:
        self.settings = settings
        self.rows = 0
        self.broken = False  # duplicate sample ids: no further check relies on the rows
        self.shards: dict[str, list[tuple[int, int]]] = {}
        self.by_split: dict[str, dict[str, Any]] = {}
        self.count_problem: str | None = None
        self._content = SortedRuns(tmp / "content")
        self._pairs = SortedRuns(tmp / "pairs")
        self._spill = create_new(tmp / "rows") if keep_rows else None

    def read(self, path: Path) -> None:
        for chunk in iter_manifest(path):
            self.rows += len(chunk)
            ids = [str(v) for v in chunk["sample_id"].tolist()]
            self._content.add_run(zip(sorted(ids), _sample_lines(chunk)))
            self._count(chunk)
            for rel, rows in chunk.groupby("shard", sort=False):
                pieces = self.shards.setdefault(str(rel), [])
                if self._spill is not None:
                    blob = pickle.dumps(rows[list(_ROW_COLUMNS)], protocol=pickle.HIGHEST_PROTOCOL)
                    pieces.append((self._spill.seek(0, os.SEEK_END), len(blob)))
                    self._spill.write(blob)
        if self._spill is not None:
            self._spill.flush()

    def _count(self, chunk: Any) -> None:
        """Samples per split and setting as :func:`~demmi_rf.store.card.count_samples` counts them; the (split,
        pair) keys go to a sorted run (distinct pairs are counted while merging)."""
        if self.count_problem is not None:
            return
        try:
            keys = set()
            for split, setting, pair in zip(chunk["split"], chunk["setting"], chunk["pair_id"]):
                entry = self.by_split.setdefault(split, {"samples": 0, "pairs": 0,
                                                         "settings": {s: 0 for s in self.settings}})
                entry["samples"] += 1
                entry["settings"][setting] = entry["settings"].get(setting, 0) + 1
                keys.add(f"{split}\x1f{pair}")
            self._pairs.add_run((k, "") for k in sorted(keys))
        except Exception as exc:  # noqa: BLE001 - a manifest that parsed but whose values do not count
            self.count_problem = f"{MANIFEST}: sample counts cannot be computed: {exc}"

    def counts(self) -> dict[str, Any]:
        """The counts :func:`~demmi_rf.store.card.count_samples` gives for the whole manifest."""
        last = None
        for key, _ in self._pairs.merged():
            if key != last:
                self.by_split[key.split("\x1f", 1)[0]]["pairs"] += 1
            last = key
        return {"samples": sum(s["samples"] for s in self.by_split.values()),
                "pairs": sum(s["pairs"] for s in self.by_split.values()),
                "by_split": dict(sorted(self.by_split.items()))}

    def content_hash(self, recipe_hash: str, spec_version: str) -> str:
        """:func:`~demmi_rf.store.identity.content_hash` of the whole manifest, from the merged sample lines;
        :class:`DatasetError` for a sample id listed twice."""
        sha = hashlib.sha256()
        sha.update(("\n".join([CONTENT_FORMAT, f"spec_version {spec_version}", f"recipe_hash {recipe_hash}"])
                    + "\n").encode("utf-8"))
        last = None
        for sample_id, line in self._content.merged():
            if sample_id == last:
                raise DatasetError(f"{MANIFEST}: sample id {sample_id!r} appears more than once")
            last = sample_id
            sha.update(line.encode("utf-8") + b"\n")
        return sha.hexdigest()

    def shard_rows(self, rel: str) -> Any:
        """The rows of shard ``rel``, in manifest order (``keep_rows`` only)."""
        assert self._spill is not None
        frames = [pickle.loads(os.pread(self._spill.fileno(), n, start)) for start, n in self.shards[rel]]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def __enter__(self) -> _ManifestScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self._content.close()
        self._pairs.close()
        if self._spill is not None:
            self._spill.close()


def _verify_counts(scan: _ManifestScan, record: Card, report: VerifyReport) -> None:
    """The card's ``counts`` must be what the manifest's rows give (:func:`~demmi_rf.store.card.count_samples`)."""
    if scan.count_problem is not None:
        report.problems.append(Problem(scan.count_problem))
        return
    expected = scan.counts()
    got = {"samples": record.counts.samples, "pairs": record.counts.pairs,
           "by_split": {name: {"samples": c.samples, "pairs": c.pairs, "settings": dict(c.settings)}
                        for name, c in record.counts.by_split.items()}}
    if got != expected:
        report.problems.append(Problem(f"{CARD}: counts differ from the samples listed in {MANIFEST} "
                                       f"({expected['samples']} samples, {expected['pairs']} pairs)"))


def _virtual_store(root: Path, card: dict) -> VirtualArrayStore | None:
    """The synthesising store of a virtual dataset (None for a materialized one); :class:`DatasetError` for an
    array format this toolkit does not know."""
    # the cache holds only the clean pairs the syntheses decode (synthesise() never caches what it synthesises)
    store = open_array_store(root, card, max_open_shards=1, max_open_arrays=0, cache_bytes=64 << 20)
    return store if isinstance(store, VirtualArrayStore) else None


def _verify_synthesis(rel: str, rows, report: VerifyReport, synth: VirtualArrayStore) -> set[str]:
    """Virtual dataset: re-synthesise every sample's degraded arrays from the stored clean pair and check the
    drawn parameters and each array's sha256 against the manifest. Returns the sample ids checked here (their
    degraded arrays are not looked for in the shard)."""
    add = report.problems.append
    refs = refs_from_manifest(rows)
    for sid, ref in refs.items():
        if not (ref.changes_vis or ref.changes_ir):
            continue
        try:
            images = synth.synthesise(ref)
        except ShardError as exc:
            add(Problem(f"cannot be re-synthesised: {_short(_unprefixed(exc, rel))}", shard=rel, sample=sid))
            continue
        params = images.pop("params")
        try:
            expected = json.loads(ref.params)
        except ValueError:
            expected = None
        if params != expected:
            add(Problem("re-synthesised drawn parameters differ from the manifest's", shard=rel, sample=sid))
        for name, image in images.items():
            report.arrays_checked += 1
            if array_sha256(image) != ref.sha256[name]:
                add(Problem(f"re-synthesised array differs from the manifest's sha256 ({ref.paths[name]})",
                            shard=rel, sample=sid, array=name))
    return set(refs)


def _verify_arrays(root: Path, rel: str, rows, report: VerifyReport,
                   synth: VirtualArrayStore | None = None) -> None:
    add = report.problems.append
    synthesised = _verify_synthesis(rel, rows, report, synth) if synth is not None else set()
    try:
        h5 = open_shard(rel, root=root)
    except ShardError as exc:
        add(Problem(f"cannot be opened, {len(rows)} sample(s) not checked: {_unprefixed(exc, rel)}", shard=rel))
        return
    computed: dict[tuple[str, tuple[int, ...]], str | Exception] = {}
    try:
        for row in rows.itertuples(index=False):
            for name in ARRAYS:
                if row.sample_id in synthesised and getattr(row, f"changes_{name}", False):
                    continue  # a virtual dataset's degraded array: checked by re-synthesis above
                path = getattr(row, f"{name}_path")
                expected = getattr(row, f"sha256_{name}")
                shape = array_shape(row.height, row.width, row.vis_channels, name)
                key = (path, shape)
                if key not in computed:
                    try:
                        computed[key] = array_sha256(read_array(h5, path, rel, sample=row.sample_id, shape=shape))
                        report.arrays_checked += 1
                    except ShardError as exc:
                        computed[key] = exc
                got = computed[key]
                if isinstance(got, Exception):
                    add(Problem(f"unreadable ({path}): {_short(got)}", shard=rel, sample=row.sample_id,
                                array=name))
                elif got != expected:
                    add(Problem(f"sha256 differs from the manifest ({path})", shard=rel,
                                sample=row.sample_id, array=name))
        # the drawn parameters: /meta/result against its integrity hash, the samples' attributes, the manifest
        for message in shard_metadata_problems(h5, rel, dict(zip(rows["sample_id"], rows["params"]))):
            add(Problem(_unprefixed(message, rel), shard=rel))
    finally:
        h5.close()


def _unprefixed(exc: Exception, rel: str) -> str:
    """An error's message without its leading ``shard <rel>: `` (the problem names the shard already)."""
    text = str(exc)
    head = f"shard {rel}: "
    return text[len(head):] if text.startswith(head) else text


def _short(exc: Exception | str) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."
