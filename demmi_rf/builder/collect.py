"""The end of a build in bounded memory: the manifest, content hash, counts and source digest, streamed.

Each shard's result reaches the driver with its manifest rows (one dict per sample). Holding every row until the
end costs the driver about 10 KB per sample (the rows, then a records copy, a DataFrame, the CSV text and its
bytes): about 2.5 GB for LLVIP-full under v1. :class:`ManifestCollector` instead

1. **spills** each shard's rows to a temporary file next to the manifest as the result arrives (:meth:`add`;
   the result then keeps only its row count), remembering per column only what decides the column's pandas
   type (the Python types seen, the smallest and largest integer, whether a row lacks the column);
   The spill file is read back through the descriptor that wrote it (``pread``), never reopened by name.
2. at the end (:meth:`finish`), reads the shards back **in plan order**, one at a time, and writes the CSV one
   shard at a time, every column cast to the type the whole column would have had, so the bytes are those of
   :func:`demmi_rf.store.manifest.manifest_bytes` of the full frame; the sha256 and size are computed while
   writing;
3. hashes the content (:func:`demmi_rf.store.identity.content_hash`) incrementally: every shard's sample lines
   are sorted and written as a *run*; runs are merged (:class:`demmi_rf.store.runs.SortedRuns`: fan-in
   :data:`~demmi_rf.store.runs.FAN_IN`, several passes when there are more runs) into the one sorted stream that
   is hashed; the source digest (:func:`demmi_rf.builder.driver.sources_digest`) likewise;
4. counts samples and pairs per split and setting as :func:`demmi_rf.store.card.count_samples` does (a pair
   belongs to one shard, so distinct pairs add up over shards).

The driver's memory then depends on the number of pairs and shards (the plan, the per-shard results), not on
the number of samples times the row size. The output is byte-identical to the in-memory path
(``tests/test_build_scale.py`` compares them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..store.atomic import temp_path
from ..store.identity import CONTENT_FORMAT, _sample_lines
from ..store.manifest import BASE_COLUMNS, SOURCE_HASH_COLUMNS, flatten_params, jsonable
from ..store.runs import SortedRuns as _Runs
from ..store.runs import create_new as _create
from .errors import BuildError, os_problem

_SOURCE_KEYS = ("pair_id", "ir_file", "ir_file_sha256", "vis_file", "vis_file_sha256")


def manifest_record(row: dict[str, Any]) -> dict[str, Any]:
    """One manifest record (CSV form) of a sample row, as :func:`demmi_rf.store.manifest.rows_to_frame` makes it."""
    rec = {c: row.get(c, "") for c in (*BASE_COLUMNS, *SOURCE_HASH_COLUMNS)}
    params = jsonable(row.get("params") or {})
    rec["atoms"] = json.dumps(list(row.get("atoms", ())), separators=(",", ":"))
    rec["params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    rec.update(flatten_params(params))
    return rec


class _ColumnKind:
    """What decides a column's pandas type: one example value per Python type (integers: the smallest and
    largest), and whether some row lacks the column."""

    __slots__ = ("examples", "lo", "hi", "seen")

    def __init__(self) -> None:
        self.examples: dict[type, Any] = {}
        self.lo: Any = None
        self.hi: Any = None
        self.seen = 0

    def add(self, value: Any) -> None:
        self.seen += 1
        kind = type(value)
        if kind not in self.examples:
            self.examples[kind] = value
        if isinstance(value, int) and not isinstance(value, bool):
            self.lo = value if self.lo is None or value < self.lo else self.lo
            self.hi = value if self.hi is None or value > self.hi else self.hi

    def dtype(self, name: str, missing: bool) -> Any:
        """The dtype ``DataFrame.from_records`` gives the whole column (inferred from the examples)."""
        values = list(self.examples.values())
        values += [v for v in (self.lo, self.hi) if v is not None]
        records = [{name: v} for v in values] + ([{}] if missing else [])
        return pd.DataFrame.from_records(records, columns=[name])[name].dtype


@dataclass(frozen=True)
class Collected:
    """What :meth:`ManifestCollector.finish` computed: the manifest written to ``manifest_tmp`` (not yet under its
    final name), its sha256, size and rows; the content hash, counts, per-source pair counts, source digest,
    and an empty frame with the manifest's columns and types (for :func:`demmi_rf.publish.croissant.column_types`)."""

    manifest_tmp: Path
    manifest_sha256: str
    manifest_bytes: int
    rows: int
    content_hash: str
    counts: dict[str, Any]
    per_source: dict[str, int]
    sources_digest: str
    columns: pd.DataFrame


class ManifestCollector:
    """Collects the shards' manifest rows on disk next to ``manifest`` (the final manifest path) and writes
    the manifest and its hashes at the end (module docstring). Use as a context manager: the temporary files
    are removed on exit (a crash leaves hidden ``.manifest.csv.*.tmp`` files, which the next build removes)."""

    def __init__(self, manifest: Path, settings: Sequence[str]) -> None:
        self.manifest = Path(manifest)
        self.settings = tuple(settings)
        self._spill_path = temp_path(self.manifest)
        self._spill: BinaryIO | None = None  # opened at the first add(): the folder is prepared by then
        self._where: dict[str, tuple[int, int]] = {}
        self._kinds: dict[str, _ColumnKind] = {}
        self._rows = 0
        self._closers: list[Any] = [self]
        self._manifest_tmp: Path | None = None

    # ---- while the shards run -----------------------------------------------------------------------------
    def add(self, result: dict[str, Any]) -> None:
        """Spill ``result["rows"]`` (a shard's result) and replace them by their number (``result["n_rows"]``);
        ``result["pairs"]`` (the shard's planned pairs) is replaced by its length too (``result["n_pairs"]``).
        :class:`~demmi_rf.builder.errors.BuildError` when the spill file cannot be written (disk full...)."""
        try:
            self._add(result)
        except OSError as exc:
            raise BuildError(f"cannot write the manifest rows into {self.manifest.parent}: "
                             f"{os_problem(exc)}") from exc

    def _add(self, result: dict[str, Any]) -> None:
        rows = result.pop("rows")
        if self._spill is None:
            self._spill = _create(self._spill_path)
        records = [manifest_record(r) for r in rows]
        for rec in records:
            for name, value in rec.items():
                kind = self._kinds.get(name)
                if kind is None:
                    kind = self._kinds[name] = _ColumnKind()
                kind.add(value)
        blob = pickle.dumps((records, [{k: r.get(k, "") for k in ("split", "setting", "pair_id", "source",
                                                                    *_SOURCE_KEYS)} for r in rows]),
                            protocol=pickle.HIGHEST_PROTOCOL)
        start = self._spill.seek(0, os.SEEK_END)
        self._spill.write(blob)
        self._where[result["file"]] = (start, len(blob))
        self._rows += len(rows)
        result["n_rows"] = len(rows)
        result["n_pairs"] = len(result.pop("pairs", ()))

    def _load(self, file: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert self._spill is not None
        start, length = self._where[file]
        return pickle.loads(os.pread(self._spill.fileno(), length, start))

    # ---- at the end ---------------------------------------------------------------------------------------
    def finish(self, files: Sequence[str], recipe_hash: str, spec_version: str | int) -> Collected:
        """Write the manifest of the shards ``files`` (in this order) to a temporary file and compute the rest
        (the content hash with ``recipe_hash`` and ``spec_version``). :class:`~demmi_rf.builder.errors.BuildError`
        when a temporary file cannot be written."""
        try:
            return self._finish(files, recipe_hash, spec_version)
        except OSError as exc:
            raise BuildError(f"cannot write the manifest into {self.manifest.parent}: {os_problem(exc)}") from exc

    def _finish(self, files: Sequence[str], recipe_hash: str, spec_version: str | int) -> Collected:
        if self._spill is not None:
            self._spill.flush()
        params = sorted(c for c in self._kinds if c not in BASE_COLUMNS and c not in SOURCE_HASH_COLUMNS)
        columns = [*BASE_COLUMNS, *SOURCE_HASH_COLUMNS, *params]
        dtypes = {c: (self._kinds[c].dtype(c, self._kinds[c].seen < self._rows) if c in self._kinds else
                      pd.DataFrame.from_records([], columns=[c])[c].dtype) for c in columns}
        content = _Runs(temp_path(self.manifest))
        sources = _Runs(temp_path(self.manifest))
        self._closers += [content, sources]
        out_tmp = self._manifest_tmp = temp_path(self.manifest)
        sha, size = hashlib.sha256(), 0
        by_split: dict[str, dict[str, Any]] = {}
        per_source: dict[str, int] = {}
        try:
            with _create(out_tmp, "wb") as fh:
                def write(frame: pd.DataFrame, header: bool) -> None:
                    nonlocal size
                    data = frame.to_csv(index=False, lineterminator="\n", header=header).encode("utf-8")
                    sha.update(data)
                    fh.write(data)
                    size += len(data)

                header = True
                for file in files:  # one shard's rows in memory at a time
                    if file not in self._where:
                        continue
                    records, keys = self._load(file)
                    frame = _frame(records, columns, dtypes)
                    ids = sorted(str(v) for v in frame["sample_id"].tolist())
                    content.add_run(zip(ids, _sample_lines(frame)))
                    sources.add_run((line, "") for line in sorted({
                        "\t".join(str(k.get(c, "")) for c in _SOURCE_KEYS) + "\n" for k in keys}))
                    _count(keys, self.settings, by_split, per_source)
                    if records or header:
                        write(frame, header)
                        header = False
                if header:  # no shard at all: the header line alone
                    write(_frame([], columns, dtypes), True)
                fh.flush()
                os.fsync(fh.fileno())
            head = [CONTENT_FORMAT, f"spec_version {spec_version}", f"recipe_hash {recipe_hash}"]
            content_sha = _content_hash(content, ("\n".join(head) + "\n").encode("utf-8"))
            digest = hashlib.sha256()
            last = None
            for line, _ in sources.merged():
                if line != last:
                    digest.update(line.encode("utf-8"))
                last = line
        except BaseException:
            with contextlib.suppress(OSError):
                out_tmp.unlink()
            raise
        counts = {
            "samples": sum(s["samples"] for s in by_split.values()),
            "pairs": sum(s["pairs"] for s in by_split.values()),
            "by_split": dict(sorted(by_split.items())),
        }
        empty = pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in columns}, columns=columns)
        return Collected(manifest_tmp=out_tmp, manifest_sha256=sha.hexdigest(), manifest_bytes=size,
                         rows=self._rows, content_hash=content_sha, counts=counts, per_source=per_source,
                         sources_digest=digest.hexdigest(), columns=empty)

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            with contextlib.suppress(OSError):
                self._spill_path.unlink()

    def __enter__(self) -> ManifestCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        for closer in self._closers:
            closer.close()
        if self._manifest_tmp is not None:  # gone once committed under its final name
            with contextlib.suppress(OSError):
                self._manifest_tmp.unlink()


def _frame(records: list[dict[str, Any]], columns: list[str], dtypes: dict[str, Any]) -> pd.DataFrame:
    """A chunk of the manifest frame, every column cast to the type the whole column has."""
    data = {}
    for c in columns:  # object columns first (no inference on a chunk: [3, NaN] would become 3.0), then cast
        values = np.empty(len(records), dtype=object)
        values[:] = [r.get(c, np.nan) for r in records]
        series = pd.Series(values, dtype=object, copy=False)
        data[c] = series if pd.api.types.is_object_dtype(dtypes[c]) else series.astype(dtypes[c])
    return pd.DataFrame(data, columns=columns)


def _count(keys: list[dict[str, Any]], settings: tuple[str, ...], by_split: dict[str, dict[str, Any]],
           per_source: dict[str, int]) -> None:
    """Add one shard's samples to the counts (:func:`demmi_rf.store.card.count_samples`) and its distinct pairs
    to ``per_source`` (a pair lies in one shard only)."""
    pairs: dict[str, set[str]] = {}
    sources: dict[str, set[str]] = {}
    for row in keys:
        split = by_split.setdefault(row["split"], {"samples": 0, "pairs": 0, "settings": {s: 0 for s in settings}})
        split["samples"] += 1
        split["settings"][row["setting"]] = split["settings"].get(row["setting"], 0) + 1
        pairs.setdefault(row["split"], set()).add(row["pair_id"])
        sources.setdefault(row["source"], set()).add(row["pair_id"])
    for name, ids in pairs.items():
        by_split[name]["pairs"] += len(ids)
    for name, ids in sources.items():
        per_source[name] = per_source.get(name, 0) + len(ids)


def _content_hash(runs: _Runs, head: bytes) -> str:
    """sha256 of :func:`demmi_rf.store.identity.content_text`: ``head`` then the merged sample lines."""
    sha = hashlib.sha256()
    sha.update(head)
    last = None
    for sample_id, line in runs.merged():
        if sample_id == last:
            raise DatasetError(f"manifest lists sample {sample_id!r} more than once")
        last = sample_id
        sha.update(line.encode("utf-8") + b"\n")
    return sha.hexdigest()
