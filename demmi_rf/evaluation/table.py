"""Aggregation of per-sample scores into the Table-1 shape, and its text rendering.

Per setting ``s`` and metric ``m``: ``T[s, m] = mean over the scored samples of s`` of their value, NaN values
left out (a NaN is a metric undefined for that image, recorded with its reason). The final row, ``mean``, is the
mean over settings of ``T[s, m]`` (each setting weighs the same, whatever its sample count), settings whose
value is NaN left out. Sums use ``math.fsum`` (exactly rounded), so a table does not depend on the order the
samples were scored in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MEAN_ROW = "mean"


@dataclass(frozen=True)
class TableRow:
    """One row: ``setting`` (or ``mean``), ``n`` (samples scored, or settings averaged for ``mean``), values."""

    setting: str
    n: int
    values: dict[str, float]


def robust_mean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values (``math.fsum``); NaN when there are none; ±inf propagates."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    if not vals:
        return float("nan")
    if any(math.isinf(v) for v in vals):
        return sum(vals) / len(vals)
    return math.fsum(vals) / len(vals)


def setting_table(scores: Sequence[tuple[str, Mapping[str, float]]], settings: Sequence[str],
                  keys: Sequence[str]) -> list[TableRow]:
    """Rows for ``settings`` (in that order) from ``(setting, {metric: value})`` per scored sample, then the
    ``mean`` row over settings."""
    by_setting: dict[str, list[Mapping[str, float]]] = {s: [] for s in settings}
    for setting, values in scores:
        if setting not in by_setting:
            raise ValueError(f"score for setting {setting!r}, which is not in the table's settings")
        by_setting[setting].append(values)
    rows = [TableRow(s, len(v), {k: robust_mean(x[k] for x in v) for k in keys}) for s, v in by_setting.items()]
    mean = {k: robust_mean(r.values[k] for r in rows) for k in keys}
    n_settings = sum(1 for r in rows if r.n > 0)
    return [*rows, TableRow(MEAN_ROW, n_settings, mean)]


def format_value(v: float | None) -> str:
    """Display form: 4 decimals, scientific notation below 0.01, ``nan``/``inf`` spelled out."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.3e}"
    return f"{v:.4f}"


def render_text(rows: Sequence[TableRow], keys: Sequence[str], arrows: Mapping[str, bool] | None = None) -> str:
    """Aligned plain-text table: settings as rows, metrics as columns, the ``mean`` row last (after a rule).
    ``arrows`` (metric -> higher is better) adds ↑/↓ to the headers."""
    def head(k: str) -> str:
        return k if arrows is None else f"{k}{'↑' if arrows.get(k, True) else '↓'}"

    header = ["setting", "n", *(head(k) for k in keys)]
    body = [[r.setting, str(r.n), *(format_value(r.values[k]) for k in keys)] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for cells in body:
        if cells[0] == MEAN_ROW:
            out.append(line(["-" * w for w in widths]))
        out.append(line(cells))
    return "\n".join(out)
