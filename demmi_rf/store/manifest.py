"""The manifest: one row per sample (benchmark spec section 6), stored as ``manifest.csv``.

Columns (in this order; documented in ``docs/dataset-layout.md``):

* identity: ``sample_id, split, pair_id, source, stem, setting, atoms, changes_vis, changes_ir``
* geometry: ``height, width, vis_channels``
* storage: ``shard`` (relative path of the shard file) and the HDF5 paths ``vis_path, ir_path,
  vis_clean_path, ir_clean_path`` (``vis_path`` is the clean array's path when the setting leaves VIS
  unchanged; same for IR)
* checksums: ``sha256_vis, sha256_ir, sha256_vis_clean, sha256_ir_clean`` (see :mod:`.checksums`)
* randomness: ``seed`` and ``seed_material_vis``, ``seed_material_ir`` (the exact strings hashed by
  :func:`demmi_rf.rng.seed_material`; empty for a modality the setting leaves unchanged)
* parameters: ``params`` (JSON of every drawn parameter) and one flattened column per parameter,
  ``<atom>.<name>`` (e.g. ``haze.beta``), empty where the setting lacks that atom
* provenance: ``ir_file, vis_file`` (source image paths relative to the source root) and
  ``ir_file_sha256, vis_file_sha256`` (sha256 of those files' bytes as the build read them; optional when
  reading: manifests written before they existed lack them)

``atoms`` is a JSON list in the CSV (``[]`` for ``clean``) and a tuple in :func:`read_manifest`'s frame.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DatasetError

STRING_COLUMNS = (
    "sample_id", "split", "pair_id", "source", "stem", "setting", "atoms",
    "shard", "vis_path", "ir_path", "vis_clean_path", "ir_clean_path",
    "sha256_vis", "sha256_ir", "sha256_vis_clean", "sha256_ir_clean",
    "seed_material_vis", "seed_material_ir", "params", "ir_file", "vis_file",
)
#: columns written after :data:`BASE_COLUMNS` (before the parameter columns) and not required when reading
SOURCE_HASH_COLUMNS = ("ir_file_sha256", "vis_file_sha256")
INT_COLUMNS = ("height", "width", "vis_channels", "seed")
BOOL_COLUMNS = ("changes_vis", "changes_ir")
BASE_COLUMNS = (
    "sample_id", "split", "pair_id", "source", "stem", "setting", "atoms", "changes_vis", "changes_ir",
    "height", "width", "vis_channels",
    "shard", "vis_path", "ir_path", "vis_clean_path", "ir_clean_path",
    "sha256_vis", "sha256_ir", "sha256_vis_clean", "sha256_ir_clean",
    "seed", "seed_material_vis", "seed_material_ir", "params", "ir_file", "vis_file",
)


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"haze": {"beta": 1.3}}`` -> ``{"haze.beta": 1.3}``; lists become JSON strings."""
    out: dict[str, Any] = {}
    for key in sorted(params):
        value = params[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value), separators=(",", ":"))
        else:
            out[name] = value
    return out


def jsonable(value: Any) -> Any:
    """numpy scalars and tuples -> plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def rows_to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The manifest frame (CSV form: ``atoms`` and ``params`` as JSON strings) from sample rows."""
    records = []
    param_cols: set[str] = set()
    for row in rows:
        rec = {c: row.get(c, "") for c in (*BASE_COLUMNS, *SOURCE_HASH_COLUMNS)}
        params = jsonable(row.get("params") or {})
        rec["atoms"] = json.dumps(list(row.get("atoms", ())), separators=(",", ":"))
        rec["params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
        flat = flatten_params(params)
        param_cols.update(flat)
        rec.update(flat)
        records.append(rec)
    columns = [*BASE_COLUMNS, *SOURCE_HASH_COLUMNS, *sorted(param_cols)]
    return pd.DataFrame.from_records(records, columns=columns)


def manifest_bytes(frame: pd.DataFrame) -> bytes:
    """The exact CSV bytes of a manifest frame (UTF-8, ``\\n`` line ends, floats in round-trip form)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` with the documented column types; :class:`DatasetError` naming the file when it
    is missing, not CSV or lacks a required column."""
    path = Path(path)
    kwargs = _csv_options(path)
    try:
        frame = _typed(pd.read_csv(path, **kwargs))
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{path}: manifest rows do not parse: {exc}") from exc
    if frame["sample_id"].duplicated().any():
        dup = frame.loc[frame["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise DatasetError(f"{path}: sample id {dup!r} appears more than once")
    return frame


#: rows per chunk of :func:`iter_manifest`
CHUNK_ROWS = 1 << 11


def iter_manifest(path: str | Path, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """:func:`read_manifest` in consecutive chunks of at most ``chunk_rows`` (default :data:`CHUNK_ROWS`) rows,
    each a frame with the same column types and a RangeIndex continuing from the previous chunk, so a caller holds
    one chunk at a time.
    Raises :class:`DatasetError` as :func:`read_manifest` does, when the bad rows are reached; sample ids are
    *not* checked for duplicates across chunks (the caller does, e.g. while merging sorted ids: ``demmi
    verify``). A parameter column's type may differ between chunks (an all-empty chunk reads as float)."""
    path = Path(path)
    kwargs = _csv_options(path)
    try:
        reader = pd.read_csv(path, chunksize=max(1, int(chunk_rows or CHUNK_ROWS)), **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{path}: manifest rows do not parse: {exc}") from exc
    with reader:
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
                raise DatasetError(f"{path}: manifest rows do not parse: {exc}") from exc
            try:
                yield _typed(chunk)
            except DatasetError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise DatasetError(f"{path}: manifest rows do not parse: {exc}") from exc


def _csv_options(path: Path) -> dict[str, Any]:
    """``pd.read_csv`` options of a manifest (the documented column types), after checking its header;
    :class:`DatasetError` when the file is missing, not CSV or lacks a required column."""
    if not path.is_file():
        raise DatasetError(f"{path}: manifest is missing")
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
        raise DatasetError(f"{path}: not a readable CSV manifest: {exc}") from exc
    missing = [c for c in BASE_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    extra = [c for c in header if c not in BASE_COLUMNS and c not in SOURCE_HASH_COLUMNS]
    dtypes: dict[str, Any] = {c: str for c in (*STRING_COLUMNS, *SOURCE_HASH_COLUMNS)}
    dtypes.update({c: "int64" for c in INT_COLUMNS})
    return dict(dtype=dtypes, keep_default_na=False, na_values={c: [""] for c in extra}, true_values=["True"],
                false_values=["False"])


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The boolean columns as bool and ``atoms`` as tuples (raises on values that do not convert)."""
    for c in BOOL_COLUMNS:
        frame[c] = frame[c].astype(bool)
    frame["atoms"] = [tuple(json.loads(a)) for a in frame["atoms"]]
    return frame
