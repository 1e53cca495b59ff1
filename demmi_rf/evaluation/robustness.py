r"""The robustness protocol (issue 14; ``docs/benchmark.md``, "Robustness protocol"): metric-against-severity
curves and relative corruption errors in the spirit of ImageNet-C's mCE (Hendrycks & Dietterich, *Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations*, ICLR 2019, section 3, "relative mCE").

Input: the results files of several methods on one severity recipe (``demmi-rf-c``: ``clean`` and settings
``<atom>.s<k>``, one atom at level k), checked as the leaderboard checks them (same dataset content hash, metric
profile, reference, split, settings and metric list; :func:`.leaderboard.check_compatible`). Settings with more
than one atom or without a level (the paper's mixtures) take no part.

For a method m, a metric x with direction :math:`\sigma_x = +1` when higher is better and :math:`-1` when lower
is better, and an atom a scored at levels :math:`K_a` (1..5 on ``demmi-rf-c``):

.. math::

    D^m_{a,k}(x) = \sigma_x \,\big(x^m_{\text{clean}} - x^m_{a,k}\big)
    \qquad\text{(the degradation: > 0 when level k is worse than clean, in the metric's units)}

.. math::

    \mathrm{rCE}^m_a(x) = 100 \cdot \frac{\sum_{k \in K_a} D^m_{a,k}(x)}{\sum_{k \in K_a} D^{\text{ref}}_{a,k}(x)},
    \qquad
    \mathrm{mrCE}^m(x) = \frac{1}{|A_x|} \sum_{a \in A_x} \mathrm{rCE}^m_a(x)

where ref is the reference method (``average`` by default, ImageNet-C's AlexNet), and :math:`A_x` the atoms whose
reference denominator is a finite number > 0 (the reference loses quality on them): on another atom the
normalisation is undefined, its rCE is NaN and it is left out of the mean, whose atom count ``n_atoms`` is
reported beside it. 100 means "degrades as much as the reference", below 100 more robust; the reference scores
100 on every atom of :math:`A_x`. Also reported, without normalisation, the mean degradation
:math:`\mathrm{mD}^m(x) = \frac{1}{|A|}\sum_a \frac{1}{|K_a|}\sum_k D^m_{a,k}(x)` over every atom (in the metric's
units; NaN when a value is), and per atom the curve :math:`k \mapsto x^m_{a,k}` with :math:`k = 0` the clean value.

Pure functions over :class:`~.results.ResultsRecord`; the I/O is in ``cli/robustness.py``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import DemmiError
from ..settings import CLEAN, split_level
from .leaderboard import Results, as_records, check_compatible, md_cell
from .results import ResultsRecord, csv_cell, encode_float
from .table import format_value

__all__ = [
    "DEFAULT_REFERENCE", "AtomCurve", "AtomScore", "MethodRobustness", "RobustnessReport", "degradation",
    "relative_ce", "severity_levels", "robustness", "render_robustness",
]

#: the reference method of the normalisation (ImageNet-C normalises by AlexNet)
DEFAULT_REFERENCE = "average"


def degradation(clean: float, value: float, higher_is_better: bool) -> float:
    r""":math:`D = \sigma (x_{\text{clean}} - x)`: how much worse ``value`` is than ``clean`` (> 0: worse), with
    :math:`\sigma = +1` for a higher-is-better metric and :math:`-1` for a lower-is-better one."""
    return (clean - value) if higher_is_better else (value - clean)


def relative_ce(values: Sequence[float], clean: float, ref_values: Sequence[float], ref_clean: float,
                higher_is_better: bool) -> float:
    r"""One atom's relative corruption error, in percent (module docstring):
    :math:`100 \sum_k D_k / \sum_k D^{\text{ref}}_k` with ``values[i]`` and ``ref_values[i]`` the method's and the
    reference's metric at the same severity levels. NaN when the reference's summed degradation is not a finite
    number > 0 (the normalisation is undefined) or a value is NaN."""
    if len(values) != len(ref_values) or not values:
        raise ValueError(f"relative_ce needs as many values as reference values (> 0), got {len(values)} and "
                         f"{len(ref_values)}")
    num = math.fsum(degradation(clean, v, higher_is_better) for v in values)
    den = math.fsum(degradation(ref_clean, v, higher_is_better) for v in ref_values)
    if not (math.isfinite(den) and den > 0) or math.isnan(num):
        return math.nan
    return 100.0 * num / den


@dataclass(frozen=True)
class AtomCurve:
    """A method's metric against severity for one atom: ``levels[0] == 0`` is clean, then the levels scored."""

    atom: str
    metric: str
    levels: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class AtomScore:
    """Per atom and metric: the mean degradation over its levels (metric units) and the rCE (%, NaN when the
    reference does not degrade)."""

    atom: str
    metric: str
    mean_degradation: float
    rce: float


@dataclass(frozen=True)
class MethodRobustness:
    """One method's curves and scores; ``mrce[x]`` averages ``n_atoms[x]`` atoms, ``mean_degradation[x]`` all."""

    method: str
    source: str
    curves: tuple[AtomCurve, ...]
    atoms: tuple[AtomScore, ...]
    mrce: Mapping[str, float]
    n_atoms: Mapping[str, int]
    mean_degradation: Mapping[str, float]


@dataclass(frozen=True)
class RobustnessReport:
    """The protocol's result for several methods on one dataset (the first file's identity)."""

    dataset: str | None
    content_hash: str
    profile: str
    reference: str
    split: str
    reference_method: str
    metrics: tuple[str, ...]
    higher_is_better: Mapping[str, bool]
    atoms: tuple[str, ...]
    levels: Mapping[str, tuple[int, ...]]
    ignored: tuple[str, ...]
    methods: tuple[MethodRobustness, ...]


def severity_levels(settings: Sequence[str]) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """``{atom: levels in ascending order}`` of the single-atom severity settings (``haze.s3``) among
    ``settings``, in order of first appearance, and the settings that take no part (mixtures, settings without a
    level; ``clean`` is neither). Text only: the atoms need not be installed."""
    levels: dict[str, set[int]] = {}
    ignored = []
    for s in settings:
        if s == CLEAN:
            continue
        atom, level = split_level(s)
        if "+" in s or level is None or level < 1:
            ignored.append(s)
            continue
        levels.setdefault(atom, set()).add(level)
    return {a: tuple(sorted(ks)) for a, ks in levels.items()}, tuple(ignored)


def robustness(results: Sequence[Results], labels: Sequence[str],
               reference: str = DEFAULT_REFERENCE) -> RobustnessReport:
    """The robustness protocol (module docstring) over the results of several methods, one of which is the
    ``reference``. :class:`~demmi_rf.errors.DemmiError` when the files cannot share a table (other datasets by
    content hash, profiles, references, splits, settings or metrics; a method twice), when the reference method
    is missing, or when the settings hold no ``clean`` row or no severity setting."""
    check_compatible(results, labels)
    records = as_records(results, labels)
    first = records[0]
    by_method = {r.method: r for r in records}
    if reference not in by_method:
        raise DemmiError(f"the reference method {reference!r} is not among the results "
                         f"({', '.join(by_method)}); add its results file or choose another with --reference")
    if CLEAN not in first.settings:
        raise DemmiError(f"{labels[0]}: no {CLEAN!r} setting was scored; the protocol measures degradation "
                         "relative to clean (score a severity recipe such as demmi-rf-c with its clean setting)")
    levels, ignored = severity_levels(first.settings)
    if not levels:
        raise DemmiError(f"{labels[0]}: no severity setting (<atom>.s<k>) was scored; settings: "
                         f"{', '.join(first.settings)} (build a severity recipe such as demmi-rf-c)")
    ref = by_method[reference]
    methods = tuple(_method(r, label, ref, levels) for r, label in zip(records, labels))
    return RobustnessReport(
        dataset=first.dataset.name, content_hash=first.dataset.content_hash, profile=first.profile,
        reference=first.reference, split=first.split, reference_method=reference, metrics=first.metrics,
        higher_is_better=dict(first.higher_is_better), atoms=tuple(levels), levels=levels, ignored=ignored,
        methods=methods)


def _name(atom: str, k: int) -> str:
    return f"{atom}.s{k}"


def _method(r: ResultsRecord, label: str, ref: ResultsRecord,
            levels: Mapping[str, tuple[int, ...]]) -> MethodRobustness:
    curves, scores = [], []
    mrce, n_atoms, mean_d = {}, {}, {}
    for x in r.metrics:
        hib = bool(r.higher_is_better.get(x, True))
        clean, ref_clean = r.row(CLEAN)[x], ref.row(CLEAN)[x]
        rces, ds = [], []
        for atom, ks in levels.items():
            vals = [r.row(_name(atom, k))[x] for k in ks]
            ref_vals = [ref.row(_name(atom, k))[x] for k in ks]
            curves.append(AtomCurve(atom, x, (0, *ks), (clean, *vals)))
            d = math.fsum(degradation(clean, v, hib) for v in vals) / len(vals)
            rce = relative_ce(vals, clean, ref_vals, ref_clean, hib)
            scores.append(AtomScore(atom, x, d, rce))
            ds.append(d)
            if not math.isnan(rce):
                rces.append(rce)
        mrce[x] = math.fsum(rces) / len(rces) if rces else math.nan
        n_atoms[x] = len(rces)
        mean_d[x] = math.fsum(ds) / len(ds)
    return MethodRobustness(method=r.method, source=label, curves=tuple(curves), atoms=tuple(scores), mrce=mrce,
                            n_atoms=n_atoms, mean_degradation=mean_d)


# --- rendering ---------------------------------------------------------------------------------------------
def render_robustness(report: RobustnessReport, fmt: str = "md") -> str:
    """The report as Markdown (``md``: the mrCE table, per metric the rCE of every atom, then the curves), CSV
    (``csv``: one long table, full precision) or JSON (``json``: every number; NaN as null)."""
    if fmt == "md":
        return _md(report)
    if fmt == "csv":
        return _csv(report)
    if fmt == "json":
        return json.dumps(_json(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    raise DemmiError(f"unknown robustness format {fmt!r}; choose md, csv or json")


def _arrow(report: RobustnessReport, x: str) -> str:
    return "↑" if report.higher_is_better.get(x, True) else "↓"


def _md(rep: RobustnessReport) -> str:
    levels = sorted({k for ks in rep.levels.values() for k in ks})
    lines = [
        f"Robustness on dataset {md_cell(rep.dataset)} (content {rep.content_hash[:12]}), split {md_cell(rep.split)}, "
        f"profile {md_cell(rep.profile)}, reference {md_cell(rep.reference)}: {len(rep.atoms)} atoms at levels "
        f"{', '.join(map(str, levels))}; relative corruption error normalised by {md_cell(rep.reference_method)} "
        "(100 = degrades as much as it, lower = more robust; docs/benchmark.md, \"Robustness protocol\").",
        "", "## mrCE (%) per metric", "",
        "| method | " + " | ".join(f"{md_cell(x)} {_arrow(rep, x)}" for x in rep.metrics) + " |",
        "|---|" + "---:|" * len(rep.metrics),
    ]
    for m in rep.methods:
        cells = [_pct(m.mrce[x]) + ("" if m.n_atoms[x] == len(rep.atoms) else f" ({m.n_atoms[x]} atoms)")
                 for x in rep.metrics]
        lines.append("| " + " | ".join([md_cell(m.method), *cells]) + " |")
    lines += ["", "## Mean degradation from clean (metric units, > 0 = worse)", "",
              "| method | " + " | ".join(md_cell(x) for x in rep.metrics) + " |", "|---|" + "---:|" * len(rep.metrics)]
    for m in rep.methods:
        lines.append("| " + " | ".join([md_cell(m.method), *(format_value(m.mean_degradation[x])
                                                              for x in rep.metrics)]) + " |")
    for x in rep.metrics:
        lines += ["", f"## rCE (%) per atom: {md_cell(x)} {_arrow(rep, x)}", "",
                  "| method | " + " | ".join(md_cell(a) for a in rep.atoms) + " |", "|---|" + "---:|" * len(rep.atoms)]
        for m in rep.methods:
            by_atom = {s.atom: s for s in m.atoms if s.metric == x}
            lines.append("| " + " | ".join([md_cell(m.method), *(_pct(by_atom[a].rce) for a in rep.atoms)]) + " |")
    for a in rep.atoms:
        ks = (0, *rep.levels[a])
        lines += ["", f"## Curve: {md_cell(a)} (level 0 = clean)", "",
                  "| method | metric | " + " | ".join(map(str, ks)) + " |", "|---|---|" + "---:|" * len(ks)]
        for m in rep.methods:
            for c in m.curves:
                if c.atom == a:
                    lines.append("| " + " | ".join([md_cell(m.method), f"{md_cell(c.metric)} {_arrow(rep, c.metric)}",
                                                    *(format_value(v) for v in c.values)]) + " |")
    if rep.ignored:
        lines += ["", f"Not part of the protocol (mixtures or settings without a level): "
                      f"{md_cell(', '.join(rep.ignored))}."]
    return "\n".join(lines) + "\n"


def _pct(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.1f}"


def _csv(rep: RobustnessReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "reference_method", "content_hash", "profile", "kind", "atom", "metric",
                "higher_is_better", "level", "value", "n_atoms"])
    for m in rep.methods:
        head = [csv_cell(m.method), csv_cell(rep.reference_method), rep.content_hash, csv_cell(rep.profile)]
        for x in rep.metrics:
            hib = rep.higher_is_better.get(x, True)
            w.writerow([*head, "mrce", "", csv_cell(x), hib, "", repr(m.mrce[x]), m.n_atoms[x]])
            w.writerow([*head, "mean_degradation", "", csv_cell(x), hib, "", repr(m.mean_degradation[x]),
                        len(rep.atoms)])
        for s in m.atoms:
            hib = rep.higher_is_better.get(s.metric, True)
            w.writerow([*head, "rce", csv_cell(s.atom), csv_cell(s.metric), hib, "", repr(s.rce), ""])
            w.writerow([*head, "atom_degradation", csv_cell(s.atom), csv_cell(s.metric), hib, "",
                        repr(s.mean_degradation), ""])
        for c in m.curves:
            hib = rep.higher_is_better.get(c.metric, True)
            for k, v in zip(c.levels, c.values):
                w.writerow([*head, "curve", csv_cell(c.atom), csv_cell(c.metric), hib, k, repr(v), ""])
    return buf.getvalue()


def _json(rep: RobustnessReport) -> dict:
    f = encode_float
    return {
        "format": "demmi-robustness", "format_version": 1,
        "dataset": {"name": rep.dataset, "content_hash": rep.content_hash},
        "profile": rep.profile, "reference": rep.reference, "split": rep.split,
        "reference_method": rep.reference_method, "metrics": list(rep.metrics),
        "higher_is_better": dict(rep.higher_is_better),
        "levels": {a: list(ks) for a, ks in rep.levels.items()}, "ignored_settings": list(rep.ignored),
        "methods": [{
            "method": m.method, "file": m.source,
            "mrce": {x: f(m.mrce[x]) for x in rep.metrics}, "n_atoms": dict(m.n_atoms),
            "mean_degradation": {x: f(m.mean_degradation[x]) for x in rep.metrics},
            "atoms": {a: {s.metric: {"rce": f(s.rce), "mean_degradation": f(s.mean_degradation)}
                          for s in m.atoms if s.atom == a} for a in rep.atoms},
            "curves": {a: {c.metric: [f(v) for v in c.values] for c in m.curves if c.atom == a}
                       for a in rep.atoms},
        } for m in rep.methods],
    }
