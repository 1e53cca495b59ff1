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
import io
import math
from collections.abc import Sequence
from typing import Any

from ..errors import DemmiError
from .results import table_values
from .table import MEAN_ROW, format_value

_FIELDS = (
    (("dataset", "content_hash"), "dataset content hash"),
    (("profile",), "metric profile"),
    (("reference",), "reference"),
    (("split",), "split"),
    (("settings",), "settings scored"),
    (("metrics",), "metric list"),
)


def _get(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = results
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
    return v


def _show(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    return str(v)


def check_compatible(results: Sequence[dict[str, Any]], labels: Sequence[str]) -> None:
    """Raise :class:`DemmiError` naming the files and the differing field when ``results`` cannot share one
    table (module docstring)."""
    if not results:
        raise DemmiError("no results files given")
    first, first_label = results[0], labels[0]
    for path, what in _FIELDS:
        ref = _get(first, path)
        for r, label in zip(results[1:], labels[1:]):
            v = _get(r, path)
            if v != ref:
                if path == ("dataset", "content_hash"):
                    raise DemmiError(
                        f"cannot mix results of different datasets: {first_label} has content hash {ref} "
                        f"(dataset {first['dataset'].get('name')!r}), {label} has content hash {v} (dataset "
                        f"{r['dataset'].get('name')!r}); score every method on the same dataset (same sources, "
                        "recipe and seed)")
                raise DemmiError(f"cannot mix results with different {what}: {first_label} has {_show(ref)}, "
                                 f"{label} has {_show(v)}")
    seen: dict[str, str] = {}
    for r, label in zip(results, labels):
        m = r["method"]
        if m in seen:
            raise DemmiError(f"method {m!r} appears twice: {seen[m]} and {label}")
        seen[m] = label


def _rows(results: Sequence[dict[str, Any]], setting: str, sort: str | None) -> list[tuple[dict, dict]]:
    rows = [(r, table_values(r, setting)) for r in results]
    if sort is not None:
        keys = results[0]["metrics"]
        if sort not in keys:
            raise DemmiError(f"cannot sort by {sort!r}: the metrics are {', '.join(keys)}")
        higher = results[0]["higher_is_better"].get(sort, True)

        def key(item: tuple[dict, dict]) -> tuple[int, float]:
            v = item[1][sort]
            return (1, 0.0) if math.isnan(v) else (0, -v if higher else v)

        rows.sort(key=key)
    return rows


def _method_cell(r: dict[str, Any]) -> str:
    s = r["samples"]
    return r["method"] if s.get("complete", True) else f"{r['method']} ({s['scored']}/{s['expected']} samples)"


def render_leaderboard(results: Sequence[dict[str, Any]], labels: Sequence[str], fmt: str = "md",
                       setting: str = MEAN_ROW, sort: str | None = None) -> str:
    """The table as Markdown (``md``, with a caption line) or CSV (``csv``, full-precision values)."""
    check_compatible(results, labels)
    first = results[0]
    keys = list(first["metrics"])
    rows = _rows(results, setting, sort)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", "dataset", "content_hash", "profile", "reference", "split", "setting", "scored",
                    "expected", *keys])
        for r, vals in rows:
            w.writerow([r["method"], r["dataset"].get("name"), r["dataset"]["content_hash"], r["profile"],
                        r["reference"], r["split"], setting, r["samples"]["scored"], r["samples"]["expected"],
                        *(repr(vals[k]) for k in keys)])
        return buf.getvalue()
    if fmt != "md":
        raise DemmiError(f"unknown leaderboard format {fmt!r}; choose md or csv")
    n_settings = len(first["settings"])
    what = f"mean over {n_settings} settings" if setting == MEAN_ROW else f"setting {setting}"
    caption = (f"Dataset {first['dataset'].get('name')} (content {first['dataset']['content_hash'][:12]}), split "
               f"{first['split']}, profile {first['profile']}, reference {first['reference']}; {what}.")
    arrows = first.get("higher_is_better", {})
    header = ["method", *(f"{k} {'↑' if arrows.get(k, True) else '↓'}" for k in keys)]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * len(keys)]
    for r, vals in rows:
        lines.append("| " + " | ".join([_method_cell(r), *(format_value(vals[k]) for k in keys)]) + " |")
    versions = sorted({r.get("toolkit_version", "?") for r in results})
    if len(versions) > 1:
        lines += ["", f"Note: scored with different toolkit versions ({', '.join(versions)})."]
    return "\n".join(lines) + "\n"
