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

Every problem names its shard and, where it applies, sample and array. What this proves and what it cannot is
written in ``docs/dataset-layout.md`` ("Threat model and guarantees").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError, ShardError
from .arrays import VirtualArrayStore, open_array_store, refs_from_manifest
from .atomic import is_temp_name
from .card import Card, count_samples, load_card, recipe_hash_problem
from .checksums import array_sha256, file_sha256
from .identity import card_content_hash
from .layout import ARRAYS, CARD, MANIFEST, SHARD_DIR
from .manifest import read_manifest
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

    manifest = None
    try:
        mpath = inside(root, MANIFEST)
    except DatasetError as exc:
        add(Problem(str(exc)))
        mpath = None
    if mpath is not None and not mpath.is_file():
        add(Problem(f"{MANIFEST} is missing"))
    elif mpath is not None:
        if file_sha256(mpath) != record.manifest.sha256:
            add(Problem(f"{MANIFEST}: sha256 differs from the card (edited or corrupted)"))
        try:
            manifest = read_manifest(mpath)
        except DatasetError as exc:
            add(Problem(str(exc)))
    if manifest is not None:
        report.samples = len(manifest)
        if record.manifest.rows is not None and record.manifest.rows != len(manifest):
            add(Problem(f"{MANIFEST}: {len(manifest)} rows, the card records {record.manifest.rows}"))
        _verify_counts(manifest, record, report)
        _verify_content_hash(manifest, card, report)

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
    if manifest is not None:
        for rel in sorted(set(manifest["shard"]) - set(listed)):
            add(Problem("manifest rows point to a shard the card does not list", shard=rel))

    if quick or manifest is None:
        return report
    try:
        synth = _virtual_store(root, card)
    except DatasetError as exc:
        add(Problem(str(exc)))
        return report
    for rel, rows in manifest.groupby("shard", sort=True):
        if rel in usable:
            _verify_arrays(root, rel, rows, report, synth)
        if on_shard:
            on_shard(rel)
    return report


def _verify_counts(manifest, record: Card, report: VerifyReport) -> None:
    """The card's ``counts`` must be what the manifest's rows give (:func:`~demmi_rf.store.card.count_samples`)."""
    try:
        # one small dict at a time (a list of per-row dicts costs ~0.4 KB per sample on a large manifest)
        rows = ({"split": sp, "setting": st, "pair_id": p}
                for sp, st, p in zip(manifest["split"], manifest["setting"], manifest["pair_id"]))
        expected = count_samples(rows, record.settings)
    except Exception as exc:  # noqa: BLE001 - a manifest that parsed but whose values do not count
        report.problems.append(Problem(f"{MANIFEST}: sample counts cannot be computed: {exc}"))
        return
    got = {"samples": record.counts.samples, "pairs": record.counts.pairs,
           "by_split": {name: {"samples": c.samples, "pairs": c.pairs, "settings": dict(c.settings)}
                        for name, c in record.counts.by_split.items()}}
    if got != expected:
        report.problems.append(Problem(f"{CARD}: counts differ from the samples listed in {MANIFEST} "
                                       f"({expected['samples']} samples, {expected['pairs']} pairs)"))


def _verify_content_hash(manifest, card: dict, report: VerifyReport) -> None:
    """Recompute the content hash (the arrays' sha256 in the manifest are checked against the pixels in full
    mode, so together they tie the content hash to the pixels)."""
    try:
        report.content_hash = card_content_hash(manifest, card)
    except DatasetError as exc:
        report.problems.append(Problem(f"content hash cannot be computed: {exc}"))
        return
    recorded = card.get("content_hash")
    if recorded is not None and recorded != report.content_hash:
        report.problems.append(Problem(f"{CARD}: content_hash {recorded} differs from the one computed from "
                                       f"{MANIFEST}, {report.content_hash}"))


def _virtual_store(root: Path, card: dict) -> VirtualArrayStore | None:
    """The synthesising store of a virtual dataset (None for a materialized one); :class:`DatasetError` for an
    array format this toolkit does not know."""
    store = open_array_store(root, card, max_open_shards=1, max_open_arrays=0, cache_bytes=0)
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
