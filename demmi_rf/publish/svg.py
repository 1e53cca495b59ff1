"""Hand-written SVG charts for the web report: grouped bars and line curves (no plotting library).

Axis ticks follow the usual "nice numbers" rule (Heckbert, *Nice numbers for graph labels*, Graphics Gems,
1990): for a range ``r`` and about ``n`` ticks, the step is ``10^floor(log10(r/n))`` times the first of 1, 2, 5, 10
that makes the step at least ``r/n``; the axis runs from ``floor(lo/step)*step`` to ``ceil(hi/step)*step``.
Values that are NaN or infinite are not drawn (a bar's tooltip says ``nan``). Every text is escaped; every
chart has a ``<title>`` and ``role="img"`` for screen readers, and each bar or point a ``<title>`` tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

#: colour-blind-safe qualitative palette (Okabe & Ito, 2008), then Tol's muted colours for methods 9-16
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255")


def colour(index: int) -> str:
    """The palette colour of series ``index`` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` evenly spaced round tick values covering ``[lo, hi]`` (module docstring)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start, stop = math.floor(lo / step), math.ceil(hi / step)
    return [round(k * step, 12) for k in range(start, stop + 1)]


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v != 0 and (abs(v) < 0.01 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.4g}"


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _y_axis(parts: list[str], ticks: list[float], y_of, x0: float, x1: float) -> None:
    for t in ticks:
        y = y_of(t)
        parts.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{x0 - 4:.1f}" y="{y + 3:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>')


def bar_chart(title: str, groups: Sequence[str], series: Sequence[str], values: Sequence[Sequence[float]], *,
              higher_is_better: bool | None = None, width: int = 900, height: int = 300) -> str:
    """Grouped bars: ``values[s][g]`` is series ``s`` (a method) in group ``g`` (a setting)."""
    left, right, top, bottom = 56, 80, 28, 100
    plot_w, plot_h = width - left - right, height - top - bottom
    data = _finite([v for row in values for v in row])
    lo, hi = (min(data + [0.0]), max(data + [0.0])) if data else (0.0, 1.0)
    ticks = nice_ticks(lo, hi)
    t0, t1 = ticks[0], ticks[-1]

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - t0) / (t1 - t0))

    arrow = "" if higher_is_better is None else (" (higher is better)" if higher_is_better else
                                                 " (lower is better)")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" class="chart"><title>{escape(title + arrow)}</title>',
             f'<text x="{left}" y="16" class="ctitle">{escape(title)}{escape(arrow)}</text>']
    _y_axis(parts, ticks, y_of, left, left + plot_w)
    n_g, n_s = max(1, len(groups)), max(1, len(series))
    group_w = plot_w / n_g
    bar_w = max(1.0, group_w * 0.8 / n_s)
    zero = y_of(min(max(0.0, t0), t1))
    for g, name in enumerate(groups):
        gx = left + g * group_w + group_w * 0.1
        for s, method in enumerate(series):
            v = values[s][g]
            tip = f"{method}, {name}: {_fmt(v) if v is not None else 'nan'}"
            if v is None or not math.isfinite(v):
                continue
            y = y_of(v)
            y_top, h = min(y, zero), abs(zero - y)
            parts.append(f'<rect x="{gx + s * bar_w:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{colour(s)}"><title>{escape(tip)}</title></rect>')
        cx = left + g * group_w + group_w / 2
        parts.append(f'<text transform="translate({cx:.1f},{top + plot_h + 8}) rotate(40)" class="tick">'
                     f'{escape(name)}</text>')
    parts.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{left + plot_w}" y2="{zero:.1f}" class="axis"/>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, xs: Sequence[float], series: Sequence[str], values: Sequence[Sequence[float]], *,
               x_label: str = "", x_names: Sequence[str] | None = None, higher_is_better: bool | None = None,
               width: int = 300, height: int = 200) -> str:
    """Lines: ``values[s][i]`` is series ``s`` at ``xs[i]`` (a severity); ``x_names`` label the points."""
    left, right, top, bottom = 52, 10, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    data = _finite([v for row in values for v in row])
    lo, hi = (min(data), max(data)) if data else (0.0, 1.0)
    ticks = nice_ticks(lo, hi, 4)
    t0, t1 = ticks[0], ticks[-1]
    x_lo, x_hi = min(xs), max(xs)
    x_span = (x_hi - x_lo) or 1.0

    def x_of(x: float) -> float:
        return left + plot_w * (x - x_lo) / x_span

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - t0) / (t1 - t0))

    arrow = "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" class="chart"><title>{escape(title)}</title>',
             f'<text x="{left}" y="14" class="ctitle">{escape(title)}{arrow}</text>']
    _y_axis(parts, ticks, y_of, left, left + plot_w)
    for i, x in enumerate(xs):
        label = x_names[i] if x_names else _fmt(x)
        parts.append(f'<text x="{x_of(x):.1f}" y="{top + plot_h + 13}" text-anchor="middle" class="tick">'
                     f'{escape(label)}</text>')
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" text-anchor="middle" class="tick">'
                     f'{escape(x_label)}</text>')
    for s, method in enumerate(series):
        points = [(x_of(x), y_of(v), x, v) for x, v in zip(xs, values[s]) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour(s)}" stroke-width="1.6"/>')
        for px, py, x, v in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.6" fill="{colour(s)}"><title>'
                         f'{escape(f"{method} at {_fmt(x)}: {_fmt(v)}")}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[str]) -> str:
    """An HTML legend (swatch + name per series) matching the charts' colours."""
    items = "".join(f'<li><span class="swatch" style="background:{colour(i)}"></span>{escape(name)}</li>'
                    for i, name in enumerate(series))
    return f'<ul class="legend">{items}</ul>'
