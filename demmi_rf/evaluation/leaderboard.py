"""One table across methods from several results files (``demmi leaderboard``).

Results are only comparable when they score the same images with the same metrics in the same way, so
:func:`check_compatible` refuses to mix files that differ in any of: the dataset content hash (other pixels,
samples, splits or recipe; see :mod:`demmi_rf.store.identity`), the metric profile, the reference (clean vs
degraded), the split, the settings scored, or the metric list; and two files of the same method name. Files
scored by different toolkit versions are allowed, with a note under the table; so are different card hashes of
one content hash (the same pixels in shards written by another HDF5 build).

Rows are methods (in the order given, or sorted by one metric in its better direction), columns the metrics of
the profile with ↑/↓ for their direction; values are the ``mean`` row of each results file (the mean over
settings), or one setting's row with ``setting=``.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DemmiError
from .results import ResultsRecord, csv_cell, parse_results
from .table import MEAN_ROW, format_value

Results = ResultsRecord | Mapping[str, Any]

_FIELDS = (
    (("dataset", "content_hash"), "dataset content hash"),
    (("profile",), "metric profile"),
    (("reference",), "reference"),
    (("split",), "split"),
    (("settings",), "settings scored"),
    (("metrics",), "metric list"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def md_cell(text: object) -> str:
    """``text`` safe inside one Markdown table cell: control characters (newlines included) become one space,
    ``\\`` and ``|`` are backslash-escaped, ``& < >`` become HTML entities (no row, column or tag injection)."""
    out = _CONTROL.sub(" ", str(text)).replace("\\", "\\\\").replace("|", "\\|")
    return html.escape(out, quote=False)


def check_table_path(out: str | Path, inputs: Sequence[str | Path]) -> Path:
    """``out`` as a Path, or :class:`DemmiError` when writing the table there would replace one of the results
    files ``inputs`` or a per-sample CSV next to one, or land inside a DeMMI-RF dataset folder."""
    from .results import _dataset_folder  # noqa: PLC0415

    target = Path(out)
    real = target.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if real in (src, src.with_suffix(".csv")):
            raise DemmiError(f"--out {target}: is one of the results files read ({item}) or its per-sample CSV; "
                             "write the table to another file")
    for folder in real.parents:
        if _dataset_folder(folder):
            raise DemmiError(f"--out {target}: inside the DeMMI-RF dataset folder {folder}; write the table elsewhere")
    if target.is_dir():
        raise DemmiError(f"--out {target}: is a folder")
    return target


def as_records(results: Sequence[Results], labels: Sequence[str]) -> list[ResultsRecord]:
    """Each result as a checked :class:`~demmi_rf.evaluation.results.ResultsRecord` (dicts are parsed with their
    label as the file name: :func:`~demmi_rf.evaluation.results.parse_results`)."""
    if len(results) != len(labels):
        raise ValueError(f"{len(results)} results but {len(labels)} labels")
    return [r if isinstance(r, ResultsRecord) else parse_results(r, label) for r, label in zip(results, labels)]


def _get(record: ResultsRecord, path: tuple[str, ...]) -> Any:
    v: Any = record
    for p in path:
        v = getattr(v, p)
    return list(v) if isinstance(v, tuple) else v


def _show(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    return str(v)


def check_compatible(results: Sequence[Results], labels: Sequence[str]) -> None:
    """Raise :class:`DemmiError` naming the files and the differing field when ``results`` cannot share one
    table (module docstring); a malformed result is refused first (:func:`as_records`)."""
    if not results:
        raise DemmiError("no results files given")
    _check_compatible(as_records(results, labels), labels)


def _check_compatible(records: Sequence[ResultsRecord], labels: Sequence[str]) -> None:
    first, first_label = records[0], labels[0]
    for path, what in _FIELDS:
        ref = _get(first, path)
        for r, label in zip(records[1:], labels[1:]):
            v = _get(r, path)
            if v != ref:
                if path == ("dataset", "content_hash"):
                    raise DemmiError(
                        f"cannot mix results of different datasets: {first_label} has content hash {ref} "
                        f"(dataset {first.dataset.name!r}), {label} has content hash {v} (dataset "
                        f"{r.dataset.name!r}); score every method on the same dataset (same sources, "
                        "recipe and seed)")
                raise DemmiError(f"cannot mix results with different {what}: {first_label} has {_show(ref)}, "
                                 f"{label} has {_show(v)}")
    seen: dict[str, str] = {}
    for r, label in zip(records, labels):
        if r.method in seen:
            raise DemmiError(f"method {r.method!r} appears twice: {seen[r.method]} and {label}")
        seen[r.method] = label


def _rows(records: Sequence[ResultsRecord], labels: Sequence[str], setting: str,
          sort: str | None) -> list[tuple[ResultsRecord, str, Mapping[str, float]]]:
    rows = [(r, label, r.row(setting)) for r, label in zip(records, labels)]
    if sort is not None:
        keys = records[0].metrics
        if sort not in keys:
            raise DemmiError(f"cannot sort by {sort!r}: the metrics are {', '.join(keys)}")
        higher = records[0].higher_is_better.get(sort, True)

        def key(item: tuple[ResultsRecord, str, Mapping[str, float]]) -> tuple[int, float]:
            v = item[2][sort]
            return (1, 0.0) if math.isnan(v) else (0, -v if higher else v)

        rows.sort(key=key)
    return rows


def _method_cell(r: ResultsRecord) -> str:
    s = r.samples
    return r.method if s.complete else f"{r.method} ({s.scored}/{s.expected} samples)"


def leaderboard_records(results: Sequence[Results], labels: Sequence[str], setting: str = MEAN_ROW,
                        sort: str | None = None) -> list[dict[str, Any]]:
    """The table's rows as records, in the table's order (``demmi leaderboard --json``): ``method``, ``file``,
    ``scored``, ``expected``, ``complete`` and ``values`` (metric -> float; NaN when undefined). Same checks
    as :func:`render_leaderboard`."""
    check_compatible(results, labels)
    records = as_records(results, labels)
    keys = list(records[0].metrics)
    return [{"method": r.method, "file": label, "scored": r.samples.scored, "expected": r.samples.expected,
             "complete": r.samples.complete, "values": {k: float(vals[k]) for k in keys}}
            for r, label, vals in _rows(records, labels, setting, sort)]


def render_leaderboard(results: Sequence[Results], labels: Sequence[str], fmt: str = "md",
                       setting: str = MEAN_ROW, sort: str | None = None) -> str:
    """The table as Markdown (``md``, with a caption line) or CSV (``csv``, full-precision values).

    ``results`` are :class:`~demmi_rf.evaluation.results.ResultsRecord` or results dicts (checked the same way).
    Text from the files is escaped for the format: :func:`md_cell` in Markdown, :func:`csv_cell` in CSV."""
    check_compatible(results, labels)
    records = as_records(results, labels)
    first = records[0]
    keys = list(first.metrics)
    rows = _rows(records, labels, setting, sort)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", "dataset", "content_hash", "profile", "reference", "split", "setting", "scored",
                    "expected", *(csv_cell(k) for k in keys)])
        for r, _, vals in rows:
            texts = [r.method, r.dataset.name, r.dataset.content_hash, r.profile, r.reference, r.split, setting]
            w.writerow([*(csv_cell("" if t is None else t) for t in texts), r.samples.scored, r.samples.expected,
                        *(repr(vals[k]) for k in keys)])
        return buf.getvalue()
    if fmt != "md":
        raise DemmiError(f"unknown leaderboard format {fmt!r}; choose md or csv")
    n_settings = len(first.settings)
    what = f"mean over {n_settings} settings" if setting == MEAN_ROW else f"setting {md_cell(setting)}"
    caption = (f"Dataset {md_cell(first.dataset.name)} (content {first.dataset.content_hash[:12]}), split "
               f"{md_cell(first.split)}, profile {md_cell(first.profile)}, reference {md_cell(first.reference)}; "
               f"{what}.")
    arrows = first.higher_is_better
    header = ["method", *(f"{md_cell(k)} {'↑' if arrows.get(k, True) else '↓'}" for k in keys)]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * len(keys)]
    for r, _, vals in rows:
        lines.append("| " + " | ".join([md_cell(_method_cell(r)), *(format_value(vals[k]) for k in keys)]) + " |")
    versions = sorted({r.toolkit_version for r in records})
    if len(versions) > 1:
        lines += ["", f"Note: scored with different toolkit versions ({md_cell(', '.join(versions))})."]
    return "\n".join(lines) + "\n"
