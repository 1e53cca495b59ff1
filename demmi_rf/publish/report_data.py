"""What the web report shows, read and checked: results files grouped by metric profile, and severity curves.

* :func:`load_results` reads ``demmi eval`` results files and groups them by (profile, reference, split) into
  :class:`ProfileGroup` records; inside a group the files must be comparable
  (:func:`demmi_rf.evaluation.check_compatible`: same dataset content hash, settings, metrics; no method twice),
  and across groups they must share one dataset content hash (one site shows one dataset).
* :func:`severity_curves` finds, among the settings scored, families of settings that differ only in the level
  of one atom named ``<family><level>`` (v1: ``noise15``, ``noise25``, ``noise50``): each :class:`Curve` is the
  family's level (x; 0 for the setting without that atom, when scored) against a metric, e.g. ``clean ->
  noise15 -> noise25 -> noise50`` and ``haze -> noise15+haze -> ...``. Severity recipes that name their levels
  the same way get curves without any change here; so do severity settings ``<atom>.s<k>`` (``demmi-rf-c``:
  ``clean -> haze.s1 -> ... -> haze.s5``, family ``haze``; the robustness protocol's curves,
  :mod:`demmi_rf.evaluation.robustness`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DemmiError
from ..evaluation import ResultsRecord, check_compatible
from ..evaluation import load_results as load_results_file
from ..store.checksums import file_sha256

_LEVELLED = re.compile(r"^([a-z_]+?)(\d+)$")


@dataclass(frozen=True)
class MethodResults:
    """One results file: the method, where it came from, and its table (setting or ``mean`` -> metric -> value)."""

    method: str
    file: str
    sha256: str
    toolkit_version: str
    provenance: dict[str, str]
    scored: int
    expected: int
    table: dict[str, dict[str, float]]

    @property
    def complete(self) -> bool:
        return self.scored == self.expected


@dataclass(frozen=True)
class ProfileGroup:
    """Comparable results of several methods under one metric profile, reference and split."""

    profile: str
    reference: str
    split: str
    metrics: tuple[str, ...]
    higher_is_better: dict[str, bool]
    settings: tuple[str, ...]
    methods: tuple[MethodResults, ...]

    @property
    def slug(self) -> str:
        """A file-name-safe id (``tang-clean-test``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.profile}-{self.reference}-{self.split}")


@dataclass(frozen=True)
class ReportResults:
    """Every group, and the dataset they were all scored on."""

    content_hash: str
    dataset_name: str
    recipe_hash: str
    groups: tuple[ProfileGroup, ...]


@dataclass(frozen=True)
class Curve:
    """A severity family: ``settings[i]`` is the family's atom at level ``levels[i]`` on top of ``base``."""

    family: str
    base: str
    levels: tuple[float, ...]
    settings: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"{self.family} level" + ("" if self.base == "clean" else f" on {self.base}")


def _method(path: Path, record: ResultsRecord) -> MethodResults:
    return MethodResults(
        method=record.method, file=path.name, sha256=file_sha256(path),
        toolkit_version=record.toolkit_version, provenance=dict(record.provenance),
        scored=record.samples.scored, expected=record.samples.expected,
        table={row.setting: dict(row.values) for row in record.table})


def load_results(paths: Sequence[str | Path]) -> ReportResults:
    """Read, check and group results files (module docstring); :class:`DemmiError` naming the file and the
    problem (unreadable, not comparable, another dataset). Each file is checked once, into a
    :class:`~demmi_rf.evaluation.ResultsRecord` (:func:`demmi_rf.evaluation.load_results`)."""
    if not paths:
        raise DemmiError("no results files given (--results)")
    loaded = [(Path(p), load_results_file(p)) for p in paths]
    first_path, first = loaded[0]
    for path, record in loaded[1:]:
        if record.dataset.content_hash != first.dataset.content_hash:
            raise DemmiError(
                f"cannot report results of different datasets: {first_path} has content hash "
                f"{first.dataset.content_hash}, {path} has {record.dataset.content_hash}")
    grouped: dict[tuple[str, str, str], list[tuple[Path, ResultsRecord]]] = {}
    for path, record in loaded:
        grouped.setdefault((record.profile, record.reference, record.split), []).append((path, record))
    groups = []
    for (profile, reference, split), items in grouped.items():
        check_compatible([r for _, r in items], [str(p) for p, _ in items])
        head = items[0][1]
        groups.append(ProfileGroup(
            profile=profile, reference=reference, split=split, metrics=head.metrics,
            higher_is_better=dict(head.higher_is_better), settings=head.settings,
            methods=tuple(_method(p, r) for p, r in items)))
    ds = first.dataset
    return ReportResults(content_hash=ds.content_hash, dataset_name=ds.name or "?", recipe_hash=ds.recipe_hash or "?",
                         groups=tuple(groups))


def _canonical(atoms: Sequence[str]) -> str:
    if not atoms:
        return "clean"
    try:
        from ..settings import parse_setting  # noqa: PLC0415

        return parse_setting("+".join(atoms)).name
    except (ImportError, ValueError):
        return "+".join(atoms)


def severity_curves(settings: Sequence[str]) -> list[Curve]:
    """The severity families among ``settings`` (module docstring), in order of first appearance."""
    from ..settings import split_level  # noqa: PLC0415 - lazily, like _canonical's parser

    present = set(settings)
    families: dict[tuple[str, str], dict[float, str]] = {}
    for setting in settings:
        atoms = [] if setting == "clean" else setting.split("+")
        for atom in atoms:
            family, level = split_level(atom)  # haze.s3 -> (haze, 3): the settings' own parser
            if level is None or level < 1:
                m = _LEVELLED.match(atom)  # noise25 -> (noise, 25)
                if not m:
                    continue
                family, level = m.group(1), int(m.group(2))
            base = _canonical([a for a in atoms if a != atom])
            families.setdefault((family, base), {})[float(level)] = setting
    curves = []
    for (family, base), by_level in families.items():
        if len(by_level) < 2:
            continue
        points = dict(by_level)
        if base in present:
            points.setdefault(0.0, base)
        levels = tuple(sorted(points))
        curves.append(Curve(family, base, levels, tuple(points[lv] for lv in levels)))
    return curves


def finite_or_none(v: float) -> float | None:
    """``v`` or None when NaN (for charts and sort keys)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
