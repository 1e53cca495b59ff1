"""The results file (JSON) and the per-sample rows (CSV) of ``demmi eval``.

Results file (``format: "demmi-results"``, ``format_version: 1``), keys in this order:

* ``method``, ``profile``, ``reference`` (``clean`` or ``degraded``), ``split``;
* ``dataset``: ``name``, ``content_hash`` (the identity of the dataset: recipe hash, sample ids, splits and
  every array's sha256, see :mod:`demmi_rf.store.identity`), ``card_hash`` (sha256 of the card's bytes:
  provenance only, since it also depends on the HDF5 file bytes), ``recipe_hash``, ``spec_version``,
  ``toolkit_version`` (the one that built it);
* ``toolkit_version``: the DeMMI-RF version that scored it;
* ``metrics``: metric keys in the profile's order; ``higher_is_better``: key -> bool;
* ``settings``: the settings scored, in recipe order;
* ``table``: one object per setting (``setting``, ``n`` samples scored, ``values``: key -> mean) then the
  ``mean`` row (``n`` = settings averaged): the Table-1 shape (see :mod:`.table`);
* ``samples``: ``expected``, ``scored``, ``complete``, ``missing`` (ids), ``invalid`` (id + problem), ``extra``
  (file names);
* ``nan``: every (sample, metric) whose value is undefined, with the reason;
* ``per_sample``: ``file`` (the CSV's name, next to the JSON) and its ``sha256``;
* ``provenance``: versions of Python, numpy, scipy, OpenCV and Pillow. Informative only: with
  ``dataset.card_hash`` it is left out of comparisons (:func:`comparable`), so results regenerated elsewhere
  (another HDF5 build writes other shard bytes for the same pixels) compare equal when every number is equal.

There are no timestamps or host names, so scoring the same images twice gives the same bytes. Floats are written
with Python's shortest round-trip repr (so reading them back gives the same doubles); NaN is ``null`` and an
infinite value the string ``"inf"``/``"-inf"`` (JSON has neither).

Per-sample CSV: ``sample_id, pair_id, setting, height, width, fused_channels, <metrics...>, nan_reasons``,
one row per scored sample in manifest order; values are written as repr (``nan``, ``inf`` spelled so).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DemmiError
from ..software import library_versions
from .table import MEAN_ROW

FORMAT = "demmi-results"
FORMAT_VERSION = 1
REQUIRED = ("format", "method", "profile", "reference", "split", "dataset", "metrics", "settings", "table", "samples")
#: fields left out of :func:`comparable`: top-level keys, and ``(key, subkey)`` pairs
EXCLUDED_FROM_COMPARISON = ("provenance", ("dataset", "card_hash"))
CSV_FIXED = ("sample_id", "pair_id", "setting", "height", "width", "fused_channels")


def encode_float(v: float) -> float | str | None:
    """JSON form of a float: itself, ``None`` for NaN, ``"inf"``/``"-inf"`` for infinities."""
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def decode_float(v: Any) -> float:
    """Inverse of :func:`encode_float`."""
    if v is None:
        return float("nan")
    if isinstance(v, str):
        return float(v)
    return float(v)


#: first characters that make a spreadsheet read a CSV cell as a formula (OWASP "CSV injection")
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: object) -> str:
    """A text cell neutralised against formula injection (OWASP): a cell starting with ``= + - @``, tab or carriage
    return gets a leading ``'``. Only text cells go through it; numbers are written by ``repr``. The toolkit's own
    ids and names never start with these characters, so its files are unchanged by it."""
    out = str(text)
    return "'" + out if out.startswith(CSV_FORMULA_START) else out


def provenance() -> dict[str, str]:
    """Library versions of this process (informative; excluded from comparisons)."""
    return library_versions()


def csv_bytes(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> bytes:
    """The per-sample CSV of ``rows`` (each with the fixed columns, ``values`` and ``reasons``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_FIXED, *keys, "nan_reasons"])
    for r in rows:
        reasons = "; ".join(f"{k}: {why}" for k, why in r["reasons"].items())
        fixed = [r[c] if isinstance(r[c], int) else csv_cell(r[c]) for c in CSV_FIXED]
        writer.writerow([*fixed, *(repr(float(r["values"][k])) for k in keys), csv_cell(reasons)])
    return buf.getvalue().encode("utf-8")


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a per-sample CSV back: fixed columns as strings/ints, metric values as floats. DemmiError naming the
    file, the line and the column for a missing column or a value that does not parse."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            absent = [c for c in (*CSV_FIXED, "nan_reasons") if c not in fields]
            if absent:
                raise DemmiError(f"{path}: not a per-sample CSV (lacks column(s) {', '.join(absent)})")
            keys = [f for f in fields if f not in CSV_FIXED and f != "nan_reasons"]
            out = []
            for r in reader:
                column = ""
                try:
                    row: dict[str, Any] = {c: r[c] for c in CSV_FIXED}
                    for column in ("height", "width", "fused_channels"):
                        row[column] = int(row[column])
                    row["values"] = {}
                    for column in keys:
                        row["values"][column] = float(r[column])
                except (TypeError, ValueError):
                    raise DemmiError(f"{path}: line {reader.line_num}, column {column}: "
                                     f"{str(r.get(column))[:40]!r} is not a number") from None
                row["nan_reasons"] = r["nan_reasons"]
                out.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DemmiError(f"{path}: cannot read the per-sample CSV ({exc})") from exc
    return out


def results_bytes(results: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a results file (two-space indent, key order kept, UTF-8, final newline)."""
    return (json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


_JSON_HEAD = b'{\n  "format": "demmi-results"'
_CSV_HEAD = ",".join(CSV_FIXED).encode("ascii") + b","
_DATASET_MARKERS = ("dataset.json", "recipe.json", "manifest.csv")


def _written_by_eval(path: Path, head: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(head)) == head
    except OSError:
        return False


def _dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like a DeMMI-RF dataset (or a build's output folder)."""
    try:
        return (folder / "dataset.json").is_file() or (
            (folder / "shards").is_dir() and any((folder / m).is_file() for m in _DATASET_MARKERS))
    except OSError:
        return False


def check_results_paths(out: str | Path, per_sample_file: str | None = None,
                        inputs: Sequence[str | Path] = ()) -> tuple[Path, Path]:
    """``(results JSON path, per-sample CSV path)`` for ``out``, or :class:`DemmiError` when writing them could
    destroy something: the JSON and the CSV are the same file (``--out x.csv``); either lies inside (or is) one
    of ``inputs`` (the dataset and the fused folder) or inside any DeMMI-RF dataset folder (its ``manifest.csv``,
    card, shards); either exists and was not written by ``demmi eval`` (a results file or a per-sample CSV), or
    is a folder. ``per_sample_file`` defaults to ``out`` with ``.csv``."""
    json_path = Path(out)
    csv_path = json_path.with_name(per_sample_file or json_path.with_suffix(".csv").name)
    if json_path.resolve() == csv_path.resolve():
        raise DemmiError(f"--out {json_path}: the results file and its per-sample CSV would be the same file; give "
                         "--out a .json name")
    for target, head, what in ((json_path, _JSON_HEAD, "results file"), (csv_path, _CSV_HEAD, "per-sample CSV")):
        real = target.resolve()
        for item in inputs:
            src = Path(item).resolve()
            if real == src or src in real.parents:
                raise DemmiError(f"--out {json_path}: would write the {what} {target} inside the input {item}; "
                                 "write results outside the dataset and fused folders")
        for folder in real.parents:
            if _dataset_folder(folder):
                raise DemmiError(f"--out {json_path}: would write the {what} {target} inside the DeMMI-RF dataset "
                                 f"folder {folder}; write results outside dataset folders")
        if target.is_dir():
            raise DemmiError(f"--out {json_path}: {target} is a folder")
        if target.exists() and not _written_by_eval(target, head):
            raise DemmiError(f"--out {json_path}: {target} exists and is not a {what} written by 'demmi eval'; "
                             "refusing to overwrite it (remove it or choose another --out)")
    return json_path, csv_path


def write_results(path: str | Path, results: dict[str, Any], csv_data: bytes,
                  inputs: Sequence[str | Path] = ()) -> tuple[Path, Path]:
    """Write the CSV (named in ``results['per_sample']['file']``, next to ``path``) and the JSON, each
    atomically; returns both paths. The CSV's sha256 is filled in ``results['per_sample']['sha256']``.
    The paths are checked first by :func:`check_results_paths` (with ``inputs``, the dataset and fused folders)."""
    from ..store.atomic import write_bytes_atomic  # noqa: PLC0415

    json_path, csv_path = check_results_paths(path, results["per_sample"]["file"], inputs)
    results["per_sample"]["sha256"] = hashlib.sha256(csv_data).hexdigest()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(csv_path, csv_data)
    write_bytes_atomic(json_path, results_bytes(results))
    return json_path, csv_path


#: largest results file read (bytes): a results file holds ids and means, never pixels
MAX_RESULTS_BYTES = 256 * 2**20
#: deepest nesting of arrays/objects accepted in a results file (the format nests 4 levels)
MAX_RESULTS_DEPTH = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A method name: 1 to 64 characters, ASCII letters, digits, space and ``. _ + - ( )``, starting with a letter or a
#: digit and not ending with a space (no ``|``, newline or leading ``= + - @``: it goes into Markdown and CSV tables).
METHOD_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._+()-]{0,62}[A-Za-z0-9._+()-])?")


def check_method_name(method: object, where: str = "method") -> str:
    """``method`` when it is a valid method name (:data:`METHOD_NAME`), else :class:`DemmiError` naming ``where``."""
    if not isinstance(method, str) or not METHOD_NAME.fullmatch(method):
        raise DemmiError(f"{where}: {str(method)[:80]!r} is not a valid method name: use 1 to 64 ASCII letters, "
                         "digits, spaces and . _ + - ( ), starting with a letter or digit")
    return method


def can_be_infinite(metric: str) -> bool:
    """Whether a metric's value may legitimately be infinite: only the PSNR family (``PSNR = inf`` when the fused
    image equals both sources). Every other metric is finite or undefined (NaN) by construction."""
    return metric.upper().startswith("PSNR")


@dataclass(frozen=True)
class ResultsDataset:
    """``dataset`` of a results file: the scored dataset's identity (``content_hash``) and provenance."""

    name: str | None
    content_hash: str
    card_hash: str | None
    recipe_hash: str | None
    spec_version: str | None
    toolkit_version: str | None


@dataclass(frozen=True)
class ResultsRow:
    """One row of the table: a setting (or ``mean``), ``n``, and metric -> value (NaN when undefined)."""

    setting: str
    n: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class ResultsSamples:
    """``samples`` of a results file."""

    expected: int
    scored: int
    complete: bool
    missing: tuple[str, ...]
    invalid: tuple[tuple[str, str], ...]
    extra: tuple[str, ...]


@dataclass(frozen=True)
class ResultsRecord:
    """A results file, parsed and type-checked by :func:`parse_results` (``source`` names the file)."""

    source: str
    method: str
    profile: str
    reference: str
    split: str
    dataset: ResultsDataset
    toolkit_version: str
    metrics: tuple[str, ...]
    higher_is_better: Mapping[str, bool]
    settings: tuple[str, ...]
    table: tuple[ResultsRow, ...]
    samples: ResultsSamples
    #: library versions of the scoring process (informative; left out of comparisons)
    provenance: Mapping[str, str] = field(default_factory=dict)

    def row(self, setting: str) -> Mapping[str, float]:
        """Metric values of one table row (a setting or ``mean``); DemmiError when absent."""
        for r in self.table:
            if r.setting == setting:
                return r.values
        names = ", ".join(r.setting for r in self.table)
        raise DemmiError(f"results of {self.method!r} ({self.source}) have no row {setting!r} (rows: {names})")


class _Checker:
    """Type checks of one results file; every error names the file and the field (``table[2].values.CC``)."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, problem: str) -> DemmiError:
        return DemmiError(f"{self.where}: field {field} {problem}")

    def obj(self, v: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(field, f"must be an object, not {_kind(v)}")
        return v

    def arr(self, v: Any, field: str) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(field, f"must be an array, not {_kind(v)}")
        return v

    def text(self, v: Any, field: str, optional: bool = False, limit: int = 4096) -> str:
        if v is None and optional:
            return v
        if not isinstance(v, str):
            raise self.fail(field, f"must be a string, not {_kind(v)}")
        if len(v) > limit:
            raise self.fail(field, f"is {len(v)} characters long (at most {limit})")
        return v

    def count(self, v: Any, field: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(field, f"must be a non-negative integer, not {_kind(v)}")
        if v < 0:
            raise self.fail(field, f"must be a non-negative integer, not {v}")
        return v

    def flag(self, v: Any, field: str) -> bool:
        if not isinstance(v, bool):
            raise self.fail(field, f"must be true or false, not {_kind(v)}")
        return v

    def value(self, v: Any, field: str, metric: str) -> float:
        """A metric value: a finite number, ``null`` (undefined), or ``"inf"``/``"-inf"`` for a PSNR metric."""
        if v is None:
            return float("nan")
        if isinstance(v, str) and v in ("inf", "-inf"):
            if can_be_infinite(metric):
                return float(v)
            raise self.fail(field, f"is {v!r}, but {metric} cannot be infinite (only PSNR metrics can)")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(field, f"must be a number or null, not {_kind(v)}")
        f = float(v)
        if not math.isfinite(f):
            raise self.fail(field, f"is {f}, not a finite number")
        return f


def _kind(v: Any) -> str:
    """A short description of a JSON value's type, with a glimpse of it."""
    name = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)
    shown = repr(v) if not isinstance(v, (dict, list)) else ""
    return f"{name} {shown[:40]}".rstrip()


def parse_results(data: Any, where: str) -> ResultsRecord:
    """Check the types and consistency of a results document and return it as a :class:`ResultsRecord`.

    :class:`DemmiError` naming ``where`` and the field for: a missing field, a value of the wrong type (object,
    array, string, integer, boolean, number), a method name outside :data:`METHOD_NAME`, a metric value that is
    not a finite number or ``null`` (``"inf"`` only for PSNR metrics), a ``content_hash`` that is not 64 hex
    digits, metric keys or table rows that disagree with ``metrics`` and ``settings``, ``scored > expected``.
    """
    c = _Checker(where)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DemmiError(f"{where}: not a DeMMI-RF results file (no \"format\": \"{FORMAT}\")")
    version = data.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise DemmiError(f"{where}: results format version {version!r}, this toolkit reads {FORMAT_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DemmiError(f"{where}: results file lacks field(s) {', '.join(missing)}")
    ds = c.obj(data["dataset"], "dataset")
    if "content_hash" not in ds:
        raise DemmiError(f"{where}: results file lacks dataset.content_hash (scored by an older toolkit: re-run "
                         "'demmi eval')")
    content = c.text(ds["content_hash"], "dataset.content_hash")
    if not _HEX64.fullmatch(content):
        raise c.fail("dataset.content_hash", f"must be 64 lower-case hex digits, not {content[:80]!r}")
    dataset = ResultsDataset(
        name=c.text(ds.get("name"), "dataset.name", optional=True, limit=256),
        content_hash=content,
        **{k: c.text(ds.get(k), f"dataset.{k}", optional=True, limit=256)
           for k in ("card_hash", "recipe_hash", "spec_version", "toolkit_version")},
    )
    method = check_method_name(c.text(data["method"], "method"), f"{where}: field method")
    strings = {k: c.text(data[k], k, limit=256) for k in ("profile", "reference", "split")}
    toolkit = c.text(data.get("toolkit_version", "?"), "toolkit_version", limit=256)
    metrics = tuple(c.text(m, f"metrics[{i}]", limit=256) for i, m in enumerate(c.arr(data["metrics"], "metrics")))
    if not metrics or len(set(metrics)) != len(metrics):
        raise c.fail("metrics", "must list each metric once, at least one")
    hib_doc = c.obj(data.get("higher_is_better", {m: True for m in metrics}), "higher_is_better")
    if set(hib_doc) != set(metrics):
        raise c.fail("higher_is_better", f"must have one entry per metric ({', '.join(metrics)})")
    hib = {m: c.flag(hib_doc[m], f"higher_is_better.{m}") for m in metrics}
    settings = tuple(c.text(s, f"settings[{i}]", limit=256) for i, s in enumerate(c.arr(data["settings"], "settings")))
    if len(set(settings)) != len(settings):
        raise c.fail("settings", "lists a setting twice")
    rows = []
    for i, row in enumerate(c.arr(data["table"], "table")):
        row = c.obj(row, f"table[{i}]")
        for key in ("setting", "n", "values"):
            if key not in row:
                raise c.fail(f"table[{i}]", f"lacks {key!r}")
        values = c.obj(row["values"], f"table[{i}].values")
        if set(values) != set(metrics):
            raise c.fail(f"table[{i}].values", f"must have one value per metric ({', '.join(metrics)})")
        rows.append(ResultsRow(c.text(row["setting"], f"table[{i}].setting", limit=256),
                               c.count(row["n"], f"table[{i}].n"),
                               {m: c.value(values[m], f"table[{i}].values.{m}", m) for m in metrics}))
    if [r.setting for r in rows] != [*settings, MEAN_ROW]:
        raise c.fail("table", f"must have one row per setting in the order of settings, then {MEAN_ROW!r}")
    sm = c.obj(data["samples"], "samples")
    for key in ("expected", "scored"):
        if key not in sm:
            raise c.fail("samples", f"lacks {key!r}")
    invalid = []
    for i, item in enumerate(c.arr(sm.get("invalid", []), "samples.invalid")):
        item = c.obj(item, f"samples.invalid[{i}]")
        invalid.append((c.text(item.get("sample_id"), f"samples.invalid[{i}].sample_id"),
                        c.text(item.get("problem"), f"samples.invalid[{i}].problem")))
    samples = ResultsSamples(
        expected=c.count(sm["expected"], "samples.expected"), scored=c.count(sm["scored"], "samples.scored"),
        complete=c.flag(sm.get("complete", True), "samples.complete"),
        missing=tuple(c.text(x, f"samples.missing[{i}]") for i, x in enumerate(c.arr(sm.get("missing", []),
                                                                                      "samples.missing"))),
        invalid=tuple(invalid),
        extra=tuple(c.text(x, f"samples.extra[{i}]") for i, x in enumerate(c.arr(sm.get("extra", []),
                                                                                  "samples.extra"))),
    )
    if samples.scored > samples.expected:
        raise c.fail("samples.scored", f"is {samples.scored}, more than samples.expected ({samples.expected})")
    _check_optional(c, data)
    provenance = {str(k): str(v) for k, v in data.get("provenance", {}).items()}  # strings: checked just above
    return ResultsRecord(where, method, strings["profile"], strings["reference"], strings["split"], dataset, toolkit,
                         metrics, hib, settings, tuple(rows), samples, provenance)


def _check_optional(c: _Checker, data: Mapping[str, Any]) -> None:
    """Types of the optional fields: ``nan`` (objects of strings), ``per_sample`` (a plain ``.csv`` file name and a
    sha256), ``provenance`` (strings): consumers may display or follow them."""
    for i, item in enumerate(c.arr(data.get("nan", []), "nan")):
        item = c.obj(item, f"nan[{i}]")
        for key in ("sample_id", "metric", "reason"):
            c.text(item.get(key), f"nan[{i}].{key}")
    if "per_sample" in data:
        ps = c.obj(data["per_sample"], "per_sample")
        name = c.text(ps.get("file"), "per_sample.file", limit=255)
        if Path(name).name != name or name in ("", ".", "..") or "\\" in name or not name.endswith(".csv"):
            raise c.fail("per_sample.file", f"must be a plain .csv file name next to the results file, not {name!r}")
        digest = c.text(ps.get("sha256"), "per_sample.sha256")
        if not _HEX64.fullmatch(digest):
            raise c.fail("per_sample.sha256", f"must be 64 lower-case hex digits, not {digest[:80]!r}")
    for key, value in c.obj(data.get("provenance", {}), "provenance").items():
        c.text(value, f"provenance.{key[:40]}", limit=256)


def _load_json(path: str | Path) -> Any:
    from ..jsonsafe import loads  # noqa: PLC0415

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_RESULTS_BYTES + 1)
    except FileNotFoundError:
        raise DemmiError(f"{p}: results file does not exist") from None
    except OSError as exc:
        raise DemmiError(f"{p}: not a readable JSON results file ({exc})") from exc
    if len(raw) > MAX_RESULTS_BYTES:
        raise DemmiError(f"{p}: larger than {MAX_RESULTS_BYTES} bytes; not a results file")
    return loads(raw, f"{p}: not a readable JSON results file", DemmiError, max_depth=MAX_RESULTS_DEPTH)


def load_results(path: str | Path) -> ResultsRecord:
    """Read and check a results file into a :class:`ResultsRecord` (:func:`parse_results`); DemmiError naming
    the file and the field for anything wrong, including nesting deeper than :data:`MAX_RESULTS_DEPTH`,
    non-finite numbers and repeated keys (:mod:`demmi_rf.jsonsafe`)."""
    return parse_results(_load_json(path), str(path))


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and check a results file (:func:`load_results`); return the document as a plain dict (the shape
    written by :func:`write_results`), for callers that compare or re-serialise it."""
    data = _load_json(path)
    parse_results(data, str(path))
    return data


def comparable(results: Mapping[str, Any]) -> dict[str, Any]:
    """The results without the fields that may differ between identical evaluations (``provenance`` and
    ``dataset.card_hash``: :data:`EXCLUDED_FROM_COMPARISON`)."""
    out = {k: v for k, v in results.items() if k not in EXCLUDED_FROM_COMPARISON}
    for item in EXCLUDED_FROM_COMPARISON:
        if isinstance(item, tuple) and isinstance(out.get(item[0]), Mapping):
            out[item[0]] = {k: v for k, v in out[item[0]].items() if k != item[1]}
    return out


def table_values(results: Mapping[str, Any] | ResultsRecord, setting: str) -> dict[str, float]:
    """The decoded values of one table row (a setting or ``mean``); DemmiError when absent."""
    record = results if isinstance(results, ResultsRecord) else parse_results(results, str(results.get("method")))
    return dict(record.row(setting))
