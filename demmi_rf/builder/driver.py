"""``demmi build``: plan, run the shards on an executor, then write the manifest and the card.

The driver never writes pixels itself: it discovers pairs, plans shards (:mod:`.plan`), prepares the output
folder (:mod:`.outdir`), runs :func:`.task.run_shard` for every shard on the chosen executor
(:mod:`.executors`) and, from the shards' results, writes ``manifest.csv``, ``dataset.json`` (the card,
last) and ``build.json`` (timings). Re-running the same command resumes: complete, valid shards are reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import SPEC_VERSION, SYNTHESIS_VERSION, __version__
from ..parallel import default_workers
from ..publish.card_files import write_card_files
from ..recipe import DEFAULT_RECIPE, Recipe, load_recipe
from ..samples import sample_root
from ..software import library_versions
from ..sources import discover
from ..sources.budget import check_build_memory
from ..sources.images import DEFAULT_MAX_PIXELS
from ..store.arrays import build_storage
from ..store.atomic import commit, write_bytes_atomic
from ..store.card import card_bytes, card_hash
from ..store.checksums import bytes_sha256
from ..store.citations import source_note
from ..store.layout import BUILD_LOG, CARD, DATASET_FORMAT, DATASET_FORMAT_VERSION, MANIFEST
from .collect import ManifestCollector
from .errors import BuildError, StrictBuildError, os_problem
from .executors import run_tasks
from .outdir import check_foreign, check_recipe, locked, prepare, remove_temp_files
from .plan import SPLITS, ShardTask, plan_shards
from .task import run_shard

EMBEDDED = "<embedded samples>"
# progress callback: ("plan", {"shards", "samples", "settings"}) once, then ("shard", result) per finished
# shard (result["pairs"] lists the shard's planned pairs, built or skipped)
Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class BuildReport:
    """What a build did. ``card`` is the written card, ``card_hash`` its sha256."""

    out: Path
    recipe: Recipe
    card: dict[str, Any]
    card_hash: str
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    executor: str = "local"
    workers: int = 1
    #: what ``--strict`` refuses: pairs skipped, splits that came out empty (one line each)
    warnings: list[str] = field(default_factory=list)
    strict: bool = False


def resolve_recipe(recipe: str | Path | Recipe = DEFAULT_RECIPE, *, settings: Iterable[str] | None = None,
                   seed: int | None = None) -> Recipe:
    """The effective recipe: a shipped name, a file or a :class:`Recipe`, narrowed and re-seeded."""
    base = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    return base.with_overrides(seed=seed, settings=settings)


def build_dataset(out: str | Path, sources: Sequence[str | Path] = (), *,
                  recipe: str | Path | Recipe = DEFAULT_RECIPE, settings: Iterable[str] | None = None,
                  seed: int | None = None, workers: int | None = None, executor: str = "local",
                  scheduler: str | None = None, ir16: str = "error",
                  progress: Progress | None = None, strict: bool = False,
                  max_pixels: int = DEFAULT_MAX_PIXELS, virtual: bool = False) -> BuildReport:
    """Build (or resume building) a dataset into ``out`` from ``sources`` (the embedded samples when empty).

    ``virtual``: store the clean pairs, the manifest (every drawn parameter and array sha256) and the card, not
    the degraded arrays; readers synthesise them on read (:mod:`demmi_rf.store.arrays`). Same manifest and
    content hash as the materialized build; the card records ``storage.array_format = "virtual"``.

    Raises :class:`~demmi_rf.builder.errors.BuildError` (or another DemmiError) with a message naming the
    folder, shard or pair at fault; a failed build leaves no shard that looks complete and no card.
    :class:`~demmi_rf.builder.errors.BuildLockedError` when another build is running into ``out``.

    A pair that cannot be read is skipped and reported (``BuildReport.warnings``, the card's ``skipped``), and
    so is a split that comes out empty. With ``strict``, either is an error instead
    (:class:`~demmi_rf.builder.errors.StrictBuildError`, raised after the shards are written and before the
    manifest and card, so the folder is not a complete dataset; a re-run without ``strict`` completes it).

    An image declaring more than ``max_pixels`` pixels is refused from its header (a skipped pair). With the
    local executor, the peak memory is estimated from the image headers before any work
    (:func:`demmi_rf.sources.budget.check_build_memory`): :class:`~demmi_rf.errors.MemoryBudgetError` with the
    numbers when it exceeds the memory available.
    """
    start = time.perf_counter()
    progress = progress or (lambda kind, data: None)
    workers = workers or default_workers()
    effective = resolve_recipe(recipe, settings=settings, seed=seed)
    out = Path(out).absolute()
    roots = [Path(s).absolute() for s in sources] if sources else [sample_root()]
    labels = [str(s) for s in sources] if sources else [EMBEDDED]
    for root in roots:
        if not root.exists():
            raise BuildError(f"source {root} does not exist")
    # pair files by name only: the workers decode every pair anyway (a pair that fails is skipped there and
    # recorded), so the driver never decodes a large source serially
    scan = discover(*roots, check="none", ir16=ir16)
    if not scan.pairs:
        problems = "; ".join(str(p) for p in scan.problems[:3])
        raise BuildError(f"no IR/VIS pairs found under {', '.join(labels)}" + (f" ({problems})" if problems else ""))
    tasks = plan_shards(scan.pairs, effective, str(out), ir16=ir16, source_roots=tuple(str(r) for r in roots),
                        storage=build_storage(virtual))
    tasks = [dataclasses.replace(t, max_pixels=max_pixels) for t in tasks]
    if executor == "local":  # a cluster's workers have their own memory
        check_build_memory(scan.pairs, len(effective.settings), min(workers, len(tasks)), max_pixels)

    check_foreign(out)
    with locked(out) as token, ManifestCollector(out / MANIFEST, effective.settings) as collector:
        check_recipe(out, effective)
        prepare(out, {t.file for t in tasks})
        tasks = [dataclasses.replace(t, lock_token=token) for t in tasks]
        progress("plan", {"shards": len(tasks), "samples": sum(t.n_samples for t in tasks),
                          "settings": len(effective.settings)})
        try:
            results = run_tasks(tasks, run_shard, executor=executor, workers=workers, scheduler=scheduler,
                                # the callback gets its own dict with the rows; the driver keeps the row count only
                                on_result=lambda r: (progress("shard", dict(r)), collector.add(r)))
        except BaseException:
            # a failed build leaves no temporary shard behind (a shard that failed while HDF5 created its file, a
            # worker killed mid-write); the finished shards stay for the resume
            with contextlib.suppress(BuildError):
                remove_temp_files(out)
            raise
        remove_temp_files(out)
        _check_versions(results)
        card, manifest, frame = _outputs(effective, tasks, results, scan, labels, collector)
        warnings = build_warnings(card, effective)
        if strict and warnings:
            raise StrictBuildError(f"--strict: {'; '.join(warnings)}. The shards are kept but no manifest or "
                                   f"card was written, so {out} is not a complete dataset: fix the sources and "
                                   "re-run (or re-run without --strict to accept this)")
        _write_outputs(out, card, manifest, frame)
        report = BuildReport(
            out=out, recipe=effective, card=card, card_hash=card_hash(card_bytes(card)),
            built=[r["file"] for r in results if not r["reused"]],
            reused=[r["file"] for r in results if r["reused"]],
            skipped=card["skipped"], seconds=time.perf_counter() - start, executor=executor,
            workers=workers, warnings=warnings, strict=strict,
        )
        _write_build_log(out, report, results)
    return report


def _check_versions(results: list[dict[str, Any]]) -> None:
    other = sorted({r["toolkit_version"] for r in results} - {__version__})
    if other:
        raise BuildError(f"workers run demmi-rf {', '.join(other)} but the driver runs {__version__}; install the "
                         "same version everywhere")


def _synthesis(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The card's ``synthesis`` record: the pixels' version (CHANGELOG.md), the implementation(s) of the normal
    sampler's common case the shard processes ran, and, when the recipe has codec-dependent atoms (``jpeg``), the
    codec library build(s) every such atom ran with (``{atom: [library, ...]}``; their bytes are reproducible only
    with the same build, ``docs/degradations.md``)."""
    record: dict[str, Any] = {"version": SYNTHESIS_VERSION,
                              "normal_sampler": sorted({str(r.get("normal_sampler", "?")) for r in results})}
    codecs: dict[str, set[str]] = {}
    for r in results:
        for atom, library in (r.get("codecs") or {}).items():
            codecs.setdefault(str(atom), set()).add(str(library))
    if codecs:
        record["codecs"] = {atom: sorted(libs) for atom, libs in sorted(codecs.items())}
    return record


def _distinct(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    keyed = {json.dumps(e, sort_keys=True): e for e in entries if e}
    return [keyed[k] for k in sorted(keyed)]


def build_warnings(card: dict[str, Any], recipe: Recipe) -> list[str]:
    """What ``--strict`` refuses, one line each: pairs (or files) skipped, and splits without a sample (the
    test split of a recipe with ``test_fraction = 0`` and the train split of one with ``test_fraction = 1``
    are empty by design when no source has an official split: not reported then)."""
    out = []
    skipped = card["skipped"]
    if skipped:
        ids = ", ".join(str(s.get("pair_id") or s.get("path")) for s in skipped[:5])
        out.append(f"{len(skipped)} pair(s)/file(s) skipped ({ids}{', ...' if len(skipped) > 5 else ''})")
    by_split = card["counts"]["by_split"]
    for split in SPLITS:
        if by_split.get(split, {}).get("samples", 0) == 0:
            by_design = (split == "test" and recipe.test_fraction == 0) or (split == "train" and
                                                                             recipe.test_fraction == 1)
            if not (by_design and card["counts"]["samples"] > 0):
                out.append(f"the {split} split is empty")
    return out


def _outputs(recipe: Recipe, tasks: list[ShardTask], results: list[dict[str, Any]], scan,
             labels: list[str], collector: ManifestCollector) -> tuple[dict[str, Any], Path, Any]:
    """The card, the manifest (written under a temporary name) and an empty frame with the manifest's columns
    and types, from the shards' results and their rows spilled by ``collector`` (:mod:`.collect`: memory
    bounded by one shard's rows, bytes as :func:`~demmi_rf.store.manifest.manifest_bytes` writes them)."""
    done = collector.finish([r["file"] for r in results], recipe.hash, SPEC_VERSION)
    skipped = [s for r in results for s in r["skipped"]]
    skipped += [{"pair_id": p.pair_id, "path": str(p.path), "kind": p.kind, "message": p.message,
                 "shard": None} for p in scan.problems]
    card = {
        "format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION,
        "name": recipe.name, "spec_version": SPEC_VERSION, "toolkit_version": __version__,
        "recipe": recipe.to_json(), "recipe_hash": recipe.hash,
        "storage": tasks[0].storage if tasks else {},
        "counts": done.counts,
        "content_hash": done.content_hash,
        # which pixels (CHANGELOG.md) and which implementation(s) of the normal sampler's common case the processes
        # that built or checked the shards ran (compiled kernel or numpy: the same bits, see docs/degradations.md)
        "synthesis": _synthesis(results),
        # library versions of the driver and of every process that ran a shard (distinct entries)
        "software": _distinct([library_versions(), *(r.get("software", {}) for r in results)]),
        "manifest": {"file": MANIFEST, "sha256": done.manifest_sha256, "rows": done.rows,
                     "bytes": done.manifest_bytes},
        "shards": [{"file": r["file"], "split": r["split"], "index": r["index"], "pairs": r["n_pairs"],
                    "samples": r["n_rows"], "bytes": r["bytes"], "sha256": r["sha256"]} for r in results],
        "sources": {"roots": labels,
                    "datasets": [{"source": s, "pairs": n, **source_note(s)}
                                 for s, n in sorted(done.per_source.items())],
                    "files_sha256": done.sources_digest},
        "skipped": sorted(skipped, key=lambda s: (str(s.get("pair_id")), s["path"])),
    }
    card["bytes"] = sum(s["bytes"] for s in card["shards"]) + done.manifest_bytes
    return card, done.manifest_tmp, done.columns


def _write_outputs(out: Path, card: dict[str, Any], manifest: Path, frame: Any) -> None:
    try:
        commit(manifest, out / MANIFEST)  # written (and hashed) by the collector under a temporary name
        write_card_files(out, card, frame)  # README.md + croissant.json (demmi_rf.publish), before the card
        write_bytes_atomic(out / CARD, card_bytes(card))
    except OSError as exc:
        raise BuildError(f"cannot write the manifest/card into {out}: {os_problem(exc)}") from exc


def sources_digest(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 naming the source files as the build read them: of the UTF-8 lines ``<pair id> TAB <ir_file>
    TAB <ir_file_sha256> TAB <vis_file> TAB <vis_file_sha256> LF``, one per pair built, sorted by pair id
    (the manifest holds the same paths and hashes per sample)."""
    lines = sorted({"\t".join(str(r.get(k, "")) for k in ("pair_id", "ir_file", "ir_file_sha256", "vis_file",
                                                           "vis_file_sha256")) + "\n" for r in rows})
    return bytes_sha256("".join(lines).encode("utf-8"))


def _write_build_log(out: Path, report: BuildReport, results: list[dict[str, Any]]) -> None:
    log = {"executor": report.executor, "workers": report.workers, "seconds": round(report.seconds, 3),
           "built": report.built, "reused": report.reused,
           "shard_seconds": {r["file"]: r["seconds"] for r in results}, "card_hash": report.card_hash,
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        write_bytes_atomic(out / BUILD_LOG, (json.dumps(log, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:  # the dataset itself is complete; the log is informational
        raise BuildError(f"cannot write {out / BUILD_LOG}: {os_problem(exc)}") from exc
