"""``evaluate_fused``: score a folder of fused images against a built dataset and assemble the results."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DemmiError
from ..sources.images import DEFAULT_MAX_PIXELS
from .fused import FusedScan, scan_fused
from .results import (
    FORMAT,
    FORMAT_VERSION,
    check_method_name,
    check_results_paths,
    csv_bytes,
    encode_float,
    provenance,
)
from .score import REFERENCES, score_samples
from .table import TableRow, setting_table

#: how many ids an error message lists before "and N more"
_LIST = 5


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate_fused`: the results dict (JSON-ready), the per-sample rows, the CSV
    bytes, the table rows and the folder scan."""

    results: dict[str, Any]
    rows: list[dict[str, Any]]
    csv: bytes
    table: list[TableRow]
    scan: FusedScan


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    head = ", ".join(items[:_LIST])
    return head + (f" and {len(items) - _LIST} more" if len(items) > _LIST else "")


def problems_message(scan: FusedScan, extra: bool = True) -> str:
    """Human-readable lines about missing, unusable and (when ``extra``) extra entries of a fused folder
    ('' when there are none)."""
    lines = []
    if scan.missing:
        lines.append(f"{len(scan.missing)} fused image(s) missing: {_listing(scan.missing)}")
    if scan.invalid:
        lines.append(f"{len(scan.invalid)} fused image(s) unusable: "
                     + _listing(f"{why}" for why in scan.invalid.values()))
    if scan.extra and extra:
        lines.append(f"{len(scan.extra)} extra file(s) ignored (no such sample in the split): {_listing(scan.extra)}")
    return "\n".join(lines)


def evaluate_fused(dataset: str | Path, fused: str | Path, method: str, split: str = "test",
                   profile: str = "tang", reference: str = "clean", settings: Iterable[str] | None = None,
                   allow_missing: bool = False, workers: int = 1, per_sample_file: str = "results.csv",
                   progress: Callable[[int], None] | None = None,
                   on_scan: Callable[[FusedScan], None] | None = None, out: str | Path | None = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Evaluation:
    """Score the fused images in ``fused`` for every sample of ``split`` (and ``settings``) of ``dataset``.

    Missing or unusable images (wrong size, alpha, 16-bit...) raise :class:`DemmiError` listing them unless
    ``allow_missing``; they are then left out and recorded. Extra files are recorded and ignored.
    ``on_scan(scan)`` is called once the folder is sorted (before any scoring), e.g. to size a progress bar.
    ``method`` must be a valid method name (:data:`~demmi_rf.evaluation.results.METHOD_NAME`). With ``out`` (the
    results file that will be written), :func:`~demmi_rf.evaluation.results.check_results_paths` refuses, before
    any work, an ``out`` that would overwrite an input or land in a dataset folder. Fused images declaring more
    than ``max_pixels`` pixels are refused from their header (they cannot match a sample anyway).
    """
    from ..metrics import get_profile  # noqa: PLC0415
    from ..store import open_dataset  # noqa: PLC0415

    if not method or not method.strip():
        raise DemmiError("a method name is required (--method)")
    check_method_name(method, "--method")
    if out is not None:
        check_results_paths(out, per_sample_file, inputs=(dataset, fused))
    if reference not in REFERENCES:
        raise DemmiError(f"unknown reference {reference!r}; choose from {', '.join(REFERENCES)}")
    try:
        prof = get_profile(profile)
    except ValueError as exc:
        raise DemmiError(str(exc)) from exc
    with open_dataset(dataset) as ds:
        rows = ds.samples(split=split, settings=list(settings) if settings is not None else None)
        present = set(rows["setting"])
        order = [s for s in ds.settings if s in present]
        card, card_hash, content_hash, root = ds.card, ds.card_hash, ds.content_hash, str(ds.root)
    if rows.empty:
        raise DemmiError(f"{dataset}: split {split!r} has no samples to score")
    meta = {sid: (pid, st, int(h), int(w)) for sid, pid, st, h, w in
            zip(rows["sample_id"], rows["pair_id"], rows["setting"], rows["height"], rows["width"])}
    scan = scan_fused(fused, {sid: (m[2], m[3]) for sid, m in meta.items()}, max_pixels=max_pixels)
    if on_scan is not None:
        on_scan(scan)
    if not scan.found:
        raise DemmiError(f"{scan.folder}: no usable fused image for split {split!r}\n" + problems_message(scan))
    if not scan.complete and not allow_missing:
        raise DemmiError(problems_message(scan) + "\nrefusing to score an incomplete submission; pass "
                         "--allow-missing to score the images present (the results then record what is missing)")
    jobs = [(sid, str(scan.found[sid])) for sid in meta if sid in scan.found]
    scores = score_samples(root, jobs, prof.name, reference, workers=workers, progress=progress,
                           max_pixels=max_pixels)
    keys = list(prof.keys)
    sample_rows = []
    nan_list = []
    for s in scores:
        pid, setting, h, w = meta[s.sample_id]
        sample_rows.append({"sample_id": s.sample_id, "pair_id": pid, "setting": setting, "height": h, "width": w,
                            "fused_channels": s.fused_channels, "values": s.values, "reasons": s.reasons})
        nan_list.extend({"sample_id": s.sample_id, "metric": k, "reason": why} for k, why in s.reasons.items())
    table = setting_table([(r["setting"], r["values"]) for r in sample_rows], order, keys)
    data = csv_bytes(sample_rows, keys)
    results: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "profile": prof.name,
        "reference": reference,
        "split": split,
        "dataset": {
            "name": card.get("name"),
            "content_hash": content_hash,
            "card_hash": card_hash,
            "recipe_hash": card.get("recipe_hash"),
            "spec_version": card.get("spec_version"),
            "toolkit_version": card.get("toolkit_version"),
        },
        "toolkit_version": __version__,
        "metrics": keys,
        "higher_is_better": {m.key: m.higher_is_better for m in prof.metrics},
        "settings": order,
        "table": [{"setting": r.setting, "n": r.n, "values": {k: encode_float(v) for k, v in r.values.items()}}
                  for r in table],
        "samples": {
            "expected": len(meta),
            "scored": len(scores),
            "complete": scan.complete,
            "missing": list(scan.missing),
            "invalid": [{"sample_id": sid, "problem": why} for sid, why in scan.invalid.items()],
            "extra": list(scan.extra),
        },
        "nan": nan_list,
        "per_sample": {"file": per_sample_file, "sha256": ""},
        "provenance": provenance(),
    }
    return Evaluation(results, sample_rows, data, table, scan)
