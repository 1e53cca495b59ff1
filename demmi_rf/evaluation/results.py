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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DemmiError
from ..software import library_versions

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
        writer.writerow([*(r[c] for c in CSV_FIXED), *(repr(float(r["values"][k])) for k in keys), reasons])
    return buf.getvalue().encode("utf-8")


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a per-sample CSV back: fixed columns as strings/ints, metric values as floats."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        keys = [f for f in fields if f not in CSV_FIXED and f != "nan_reasons"]
        out = []
        for r in reader:
            row: dict[str, Any] = {c: r[c] for c in CSV_FIXED}
            for c in ("height", "width", "fused_channels"):
                row[c] = int(row[c])
            row["values"] = {k: float(r[k]) for k in keys}
            row["nan_reasons"] = r["nan_reasons"]
            out.append(row)
    return out


def results_bytes(results: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a results file (two-space indent, key order kept, UTF-8, final newline)."""
    return (json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_results(path: str | Path, results: dict[str, Any], csv_data: bytes) -> tuple[Path, Path]:
    """Write the CSV (named in ``results['per_sample']['file']``, next to ``path``) and the JSON, each
    atomically; returns both paths. The CSV's sha256 is filled in ``results['per_sample']['sha256']``."""
    from ..store.atomic import write_bytes_atomic  # noqa: PLC0415

    json_path = Path(path)
    csv_path = json_path.with_name(results["per_sample"]["file"])
    results["per_sample"]["sha256"] = hashlib.sha256(csv_data).hexdigest()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(csv_path, csv_data)
    write_bytes_atomic(json_path, results_bytes(results))
    return json_path, csv_path


def read_results(path: str | Path) -> dict[str, Any]:
    """Load and check a results file; :class:`DemmiError` naming the file and what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemmiError(f"{p}: results file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemmiError(f"{p}: not a readable JSON results file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DemmiError(f"{p}: not a DeMMI-RF results file (no \"format\": \"{FORMAT}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise DemmiError(f"{p}: results format version {data.get('format_version')!r}, this toolkit reads "
                         f"{FORMAT_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DemmiError(f"{p}: results file lacks field(s) {', '.join(missing)}")
    if not isinstance(data["dataset"], dict) or "content_hash" not in data["dataset"]:
        raise DemmiError(f"{p}: results file lacks dataset.content_hash (scored by an older toolkit: re-run "
                         "'demmi eval')")
    return data


def comparable(results: Mapping[str, Any]) -> dict[str, Any]:
    """The results without the fields that may differ between identical evaluations (``provenance`` and
    ``dataset.card_hash``: :data:`EXCLUDED_FROM_COMPARISON`)."""
    out = {k: v for k, v in results.items() if k not in EXCLUDED_FROM_COMPARISON}
    for item in EXCLUDED_FROM_COMPARISON:
        if isinstance(item, tuple) and isinstance(out.get(item[0]), Mapping):
            out[item[0]] = {k: v for k, v in out[item[0]].items() if k != item[1]}
    return out


def table_values(results: Mapping[str, Any], setting: str) -> dict[str, float]:
    """The decoded values of one table row (a setting or ``mean``); DemmiError when absent."""
    for row in results["table"]:
        if row["setting"] == setting:
            return {k: decode_float(v) for k, v in row["values"].items()}
    names = ", ".join(r["setting"] for r in results["table"])
    raise DemmiError(f"results of {results.get('method')!r} have no row {setting!r} (rows: {names})")
