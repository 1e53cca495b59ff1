"""``demmi export``: copies of a built dataset for other loaders (``docs/publishing.md``).

Three formats, each holding, per sample, the degraded VIS and IR, the clean VIS and IR (the ground truth) and
the manifest's fields; pixels are the exact uint8 arrays of :meth:`Dataset.read` (PNG is lossless):

* ``png`` — folders in the layout fusion repositories read (``vi/`` and ``ir/`` folders of equally named
  PNGs, as in MSRS, RoadScene and TG-ECNet's test sets)::

      OUT/<split>/<setting>/vi/<safe pair id>.png     degraded VIS (clean VIS where the setting leaves it)
      OUT/<split>/<setting>/ir/<safe pair id>.png     degraded IR
      OUT/<split>/gt/vi/<safe pair id>.png            clean VIS (once per pair)
      OUT/<split>/gt/ir/<safe pair id>.png            clean IR
      OUT/index.csv                                   sample_id, split, setting, pair_id, vi, ir, vi_gt, ir_gt

  ``<safe pair id>`` is the pair id with ``/`` written ``__`` (``msrs__00004N``), so a fused image saved as
  ``<safe pair id>.png`` in a folder per setting is renamed ``<safe pair id>@<setting>.png`` for ``demmi eval``.
* ``webdataset`` — POSIX tar shards ``OUT/<split>-NNNNN.tar`` for streaming (``webdataset.WebDataset``); sample
  ``k`` of a split is the files ``<key>.vis.png``, ``<key>.ir.png``, ``<key>.vis_clean.png``,
  ``<key>.ir_clean.png`` and ``<key>.json`` (every manifest field) with ``key`` = ``<split>-<k:08d>`` (sample
  ids contain ``/``, ``@`` and possibly dots, which WebDataset's key rule cannot carry; the id is in the JSON).
  Members are written in a fixed order with mtime 0, uid/gid 0 and no user names: the same dataset gives the
  same bytes.
* ``hf`` — a Hugging Face ``datasets`` folder: ``OUT/data/<split>-NNNNN-of-MMMMM.parquet`` (one row per sample,
  the manifest's fields as typed columns, ``atoms`` a list of strings, and the four images as
  ``{bytes, path}`` PNG structs typed ``Image`` in the schema's ``huggingface`` metadata) and ``OUT/README.md``
  (the dataset card with a ``configs`` block), so ``datasets.load_dataset(OUT)`` or
  ``load_dataset("parquet", data_files=...)`` gives ``PIL`` images and the fields. Needs ``pyarrow``.

Every export is written into a hidden temporary folder next to ``OUT`` and renamed at the end: ``OUT`` is
either absent or complete. An existing ``OUT`` is refused. Names that become paths (splits, settings, pair
ids) are checked, so a crafted manifest cannot write outside ``OUT``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import secrets
import shutil
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, DemmiError
from ..ids import safe_name
from ..store.layout import ARRAYS

FORMATS = ("png", "webdataset", "hf")
INDEX = "index.csv"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
_PNG_FOLDERS = {"vis": "vi", "ir": "ir"}


class ExportError(DemmiError):
    """An export cannot be written (existing output, unwritable folder, unsafe name in the manifest)."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: format, output folder, samples, files and bytes."""

    format: str
    out: Path
    samples: int
    files: int
    bytes: int


def png_bytes(array: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless PNG of a uint8 HxW (gray, mode L) or HxWx3 (RGB) array, written by Pillow without
    timestamps or other ancillary chunks (same array, same bytes)."""
    from PIL import Image  # noqa: PLC0415

    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"expected uint8 HxW or HxWx3, got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(a, mode="RGB" if a.ndim == 3 else "L").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _check_name(value: str, what: str, root: Path) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise DatasetError(f"{root}: manifest {what} {value!r} cannot be used as a file name")
    return value


def _plain(value: Any) -> Any:
    """A manifest value as plain JSON (numpy scalars unwrapped, NaN as None, tuples as lists)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def sample_fields(row: Any) -> dict[str, Any]:
    """Every manifest field of a row as plain JSON values, ``atoms`` as a list of strings."""
    return {str(k): _plain(v) for k, v in row.items()}


def _rows(ds: Any, split: str | None, settings: Sequence[str] | None) -> Any:
    rows = ds.samples(split=split, settings=settings)
    for sp in rows["split"].unique():
        _check_name(sp, "split", ds.root)
    for s in rows["setting"].unique():
        _check_name(s, "setting", ds.root)
    for p in rows["pair_id"].unique():
        _check_name(safe_name(p), "pair id", ds.root)
    return rows


class _Staging:
    """A hidden temporary folder next to ``out``, renamed to ``out`` on success and removed on failure."""

    def __init__(self, out: Path):
        self.out = out
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")

    def __enter__(self) -> Path:
        if self.out.exists():
            raise ExportError(f"{self.out} already exists; choose a new output folder (or delete it)")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir()
        except OSError as exc:
            raise ExportError(f"cannot create {self.out}: {exc.strerror or exc}") from exc
        return self.tmp

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            try:
                os.replace(self.tmp, self.out)
                return
            except OSError as err:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise ExportError(f"cannot move the export into {self.out}: {err.strerror or err}") from err
        shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, DemmiError):
            raise ExportError(f"cannot write the export {self.out}: {exc.strerror or exc}") from exc


def _tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# --- png ---------------------------------------------------------------------------------------------------
def _export_png(ds: Any, rows: Any, out: Path, advance: Callable[[int], None]) -> None:
    index = [("sample_id", "split", "setting", "pair_id", "vi", "ir", "vi_gt", "ir_gt")]
    written_gt: set[tuple[str, str]] = set()
    for row in rows.itertuples(index=False):
        name = safe_name(row.pair_id) + ".png"
        arrays = ds.read(row.sample_id)
        rel = {}
        for array in ("vis", "ir"):
            rel[array] = f"{row.split}/{row.setting}/{_PNG_FOLDERS[array]}/{name}"
            rel[array + "_clean"] = f"{row.split}/gt/{_PNG_FOLDERS[array]}/{name}"
        if (row.split, row.pair_id) not in written_gt:
            written_gt.add((row.split, row.pair_id))
            todo = ARRAYS
        else:
            todo = ("vis", "ir")
        for array in todo:
            path = out / rel[array]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(arrays[array]))
        index.append((row.sample_id, row.split, row.setting, row.pair_id, rel["vis"], rel["ir"], rel["vis_clean"],
                      rel["ir_clean"]))
        advance(1)
    with open(out / INDEX, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(index)


# --- webdataset ----------------------------------------------------------------------------------------------
def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _export_webdataset(ds: Any, rows: Any, out: Path, advance: Callable[[int], None], shard_samples: int) -> None:
    for split in sorted(rows["split"].unique()):
        part = rows[rows["split"] == split].reset_index(drop=True)
        records = list(part.iterrows())
        for shard_index, chunk in enumerate(_chunks(records, shard_samples)):
            with tarfile.open(out / f"{split}-{shard_index:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
                for k, row in chunk:
                    key = f"{split}-{k:08d}"
                    arrays = ds.read(row["sample_id"])
                    for array in ARRAYS:
                        _tar_add(tar, f"{key}.{array}.png", png_bytes(arrays[array]))
                    fields = json.dumps(sample_fields(row), sort_keys=True, ensure_ascii=False)
                    _tar_add(tar, f"{key}.json", fields.encode("utf-8"))
                    advance(1)


# --- hugging face ----------------------------------------------------------------------------------------------
def _hf_features(frame: Any) -> dict[str, Any]:
    """The ``datasets`` feature description of the exported columns (manifest fields, then the images)."""
    import pandas as pd  # noqa: PLC0415

    features: dict[str, Any] = {}
    for column in frame.columns:
        series = frame[column]
        if column == "atoms":
            features[column] = {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"}
        elif pd.api.types.is_bool_dtype(series):
            features[column] = {"dtype": "bool", "_type": "Value"}
        elif pd.api.types.is_integer_dtype(series):
            features[column] = {"dtype": "int64", "_type": "Value"}
        elif pd.api.types.is_float_dtype(series):
            features[column] = {"dtype": "float64", "_type": "Value"}
        else:
            features[column] = {"dtype": "string", "_type": "Value"}
    for array in ARRAYS:
        features[array] = {"_type": "Image"}
    return features


def _hf_table(pa: Any, frame: Any, images: dict[str, list[dict[str, Any]]], features: dict[str, Any]) -> Any:
    import pandas as pd  # noqa: PLC0415

    columns, fields = [], []
    for column in frame.columns:
        spec = features[column]
        values = frame[column]
        if spec.get("_type") == "List":
            arr = pa.array([list(v) for v in values], type=pa.list_(pa.string()))
        elif spec["dtype"] == "bool":
            arr = pa.array(values.astype(bool).tolist(), type=pa.bool_())
        elif spec["dtype"] == "int64":
            arr = pa.array(values.astype("int64").tolist(), type=pa.int64())
        elif spec["dtype"] == "float64":
            arr = pa.array([None if pd.isna(v) else float(v) for v in values], type=pa.float64())
        else:
            arr = pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())
        columns.append(arr)
        fields.append(pa.field(str(column), arr.type))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for array in ARRAYS:
        columns.append(pa.array(images[array], type=image_type))
        fields.append(pa.field(array, image_type))
    meta = {b"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True).encode("utf-8")}
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=meta))


def _export_hf(ds: Any, rows: Any, out: Path, advance: Callable[[int], None], shard_samples: int) -> None:
    from ..optional import require  # noqa: PLC0415
    from .card_readme import readme_text  # noqa: PLC0415

    pa = require("pyarrow", feature="demmi export --format hf")
    pq = require("pyarrow.parquet", feature="demmi export --format hf")
    features = _hf_features(rows)
    (out / "data").mkdir()
    splits = sorted(rows["split"].unique())
    for split in splits:
        part = rows[rows["split"] == split].reset_index(drop=True)
        n_files = max(1, math.ceil(len(part) / shard_samples))
        for i in range(n_files):
            chunk = part.iloc[i * shard_samples:(i + 1) * shard_samples].reset_index(drop=True)
            images: dict[str, list[dict[str, Any]]] = {a: [] for a in ARRAYS}
            for sid in chunk["sample_id"]:
                arrays = ds.read(sid)
                for a in ARRAYS:
                    images[a].append({"bytes": png_bytes(arrays[a]), "path": f"{safe_name(sid)}.{a}.png"})
                advance(1)
            table = _hf_table(pa, chunk, images, features)
            pq.write_table(table, out / "data" / f"{split}-{i:05d}-of-{n_files:05d}.parquet", row_group_size=32,
                           compression="snappy")
    configs = ["configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        configs += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    text = readme_text(ds.card, ds.card_hash)
    # the card's front matter gets the configs block, so the Hub and load_dataset(OUT) find the splits
    head, sep, rest = text.partition("\n---\n")
    (out / "README.md").write_text(head + "\n" + "\n".join(configs) + sep + rest, encoding="utf-8")


def export_dataset(root: str | Path, out: str | Path, fmt: str, *, split: str | None = None,
                   settings: Iterable[str] | None = None, shard_samples: int = 256,
                   progress: str | bool | None = "off") -> ExportReport:
    """Export the dataset in ``root`` to ``out`` in format ``fmt`` (``png``, ``webdataset`` or ``hf``), for
    ``split`` (None: all) and ``settings`` (None: all); ``shard_samples`` samples per tar or Parquet file.
    Raises :class:`ExportError` / :class:`~demmi_rf.errors.DatasetError` naming the problem; ``out`` is
    written completely or not at all."""
    from ..progress import progress as make_progress  # noqa: PLC0415
    from ..store import open_dataset  # noqa: PLC0415

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if int(shard_samples) < 1:
        raise ExportError(f"samples per shard must be at least 1, not {shard_samples}")
    if fmt == "hf":
        from ..optional import require  # noqa: PLC0415

        require("pyarrow.parquet", feature="demmi export --format hf")
    out = Path(out).absolute()
    with open_dataset(root) as ds:
        rows = _rows(ds, split, list(settings) if settings is not None else None)
        if out == ds.root or ds.root in out.parents:
            raise ExportError(f"{out}: the export cannot go inside the dataset folder {ds.root}")
        with make_progress(len(rows), f"export {fmt}", unit="samples", mode=progress) as bar, _Staging(out) as tmp:
            if fmt == "png":
                _export_png(ds, rows, tmp, bar.advance)
            elif fmt == "webdataset":
                _export_webdataset(ds, rows, tmp, bar.advance, int(shard_samples))
            else:
                _export_hf(ds, rows, tmp, bar.advance, int(shard_samples))
    files, size = _tree_size(out)
    return ExportReport(format=fmt, out=out, samples=len(rows), files=files, bytes=size)
