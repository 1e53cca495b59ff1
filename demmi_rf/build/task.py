"""The unit of work of a build: one shard (:func:`run_shard`), run by any executor.

For each pair of the shard, in pair-id order: decode it (a :class:`~demmi_rf.errors.PairError` skips the
pair and records why), synthesise every selected setting in memory through :func:`demmi_rf.degrade` (so a
pair is written whole or not at all), then store the clean arrays once and, per sample, only the modality its
setting changed. The shard is written under a temporary name and renamed when complete
(:class:`~demmi_rf.store.ShardWriter`).

A re-run first looks at the shard's final file: if it exists, carries the planned key, skipped no pair and
every array matches its recorded sha256, the stored result is returned and nothing is rebuilt. (A shard that
skipped a pair is rebuilt, so that a fixed source file is picked up.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import DemmiError, PairError, ShardError
from ..ids import sample_id
from ..rng import seed_material
from ..software import library_versions
from ..sources import PairRecord, read_pair
from ..store.checksums import array_sha256, file_sha256
from ..store.layout import pair_array_path, sample_array_path, sample_group_path
from ..store.manifest import jsonable
from ..store.shard import ShardWriter, open_shard, read_array, read_result
from .errors import BuildError
from .plan import ShardTask

# Test hook: seconds to sleep after each pair is written (lets the reliability tests kill a build mid-shard).
PAUSE_ENV = "DEMMI_BUILD_TEST_PAUSE"


@contextlib.contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """Run OpenCV single-threaded (one worker = one core), restoring the previous setting afterwards."""
    try:
        import cv2  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _relative(path: Path, roots: tuple[str, ...]) -> str:
    for root in roots:
        with contextlib.suppress(ValueError):
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    return str(path)


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Reuse the shard if it is complete and valid, else build it. Returns the shard's result: ``rows``
    (manifest rows), ``skipped`` (pairs not built and why), ``file``, ``split``, ``index``, ``plan_key``,
    ``bytes``, ``sha256``, ``reused``, ``seconds``, ``toolkit_version``, ``software`` (library versions of the
    process that ran it)."""
    start = time.perf_counter()
    final = Path(task.out_dir) / task.file
    result = existing_result(task) if final.exists() else None
    reused = result is not None
    if result is None:
        with contextlib.suppress(FileNotFoundError):
            final.unlink()  # present but invalid: rebuilt below
        with single_threaded_opencv():
            result = _build(task, final)
    try:
        size, sha = final.stat().st_size, file_sha256(final)
    except OSError as exc:
        raise BuildError(f"shard {final}: cannot be read back after writing: {exc}") from exc
    return {**result, "bytes": size, "sha256": sha, "reused": reused,
            "seconds": round(time.perf_counter() - start, 3), "toolkit_version": __version__,
            "software": library_versions()}


def existing_result(task: ShardTask) -> dict[str, Any] | None:
    """The stored result of the shard's final file when it is complete and valid for this plan, else None."""
    final = Path(task.out_dir) / task.file
    try:
        h5 = open_shard(final, label=task.file)
    except ShardError:
        return None
    try:
        if h5.attrs.get("plan_key") != task.plan_key:
            return None
        result = read_result(h5, task.file)
        if result.get("skipped"):
            return None  # retry pairs that failed to read: the user may have fixed them
        hashes: dict[str, str] = {}
        for row in result["rows"]:
            for name in ("vis", "ir", "vis_clean", "ir_clean"):
                path = row[f"{name}_path"]
                if path not in hashes:
                    hashes[path] = array_sha256(read_array(h5, path, task.file))
                if hashes[path] != row[f"sha256_{name}"]:
                    return None
        return result
    except (ShardError, KeyError, TypeError):
        return None
    finally:
        h5.close()


def _build(task: ShardTask, final: Path) -> dict[str, Any]:
    from .. import degrade  # noqa: PLC0415 - heavy (OpenCV); imported in the worker
    from ..settings import parse_setting  # noqa: PLC0415

    settings = [parse_setting(s) for s in task.recipe["settings"]]
    seed = int(task.recipe["seed"])
    ranges = task.recipe["degradations"]
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    attrs = {"plan_key": task.plan_key, "recipe_hash": task.recipe_hash, "split": task.split,
             "index": task.index, "toolkit_version": __version__}
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with ShardWriter(final, attrs, storage=task.storage) as writer:
            for record in task.pairs:
                try:
                    loaded = read_pair(record, ir16=task.ir16)
                except PairError as exc:
                    skipped.append({"pair_id": record.pair_id, "path": str(exc.path), "kind": exc.kind,
                                    "message": str(exc), "shard": task.file})
                    continue
                outputs = []
                for setting in settings:
                    try:
                        out = degrade(loaded.vis, loaded.ir, setting.name, seed, pair_id=record.pair_id,
                                      ranges=ranges)
                    except DemmiError as exc:
                        raise BuildError(f"pair {record.pair_id}, setting {setting.name}: {exc}") from exc
                    outputs.append((setting, out))
                rows.extend(_write_pair(writer, task, record, loaded.vis, loaded.ir, outputs, seed))
                if pause:
                    time.sleep(pause)
            result = {"file": task.file, "split": task.split, "index": task.index, "plan_key": task.plan_key,
                      "recipe_hash": task.recipe_hash, "pairs": [r.pair_id for r in task.pairs],
                      "rows": rows, "skipped": skipped}
            writer.commit(result)
    except OSError as exc:
        raise BuildError(_os_message(final, exc)) from exc
    return result


def _os_message(final: Path, exc: OSError) -> str:
    code = exc.errno if exc.errno is not None else _errno_in(exc)
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
           errno.EPERM: "operation not permitted"}.get(code)
    head = f"cannot write shard {final}"
    return f"{head}: {why} ({exc})" if why else f"{head}: {exc}"


def _errno_in(exc: BaseException) -> int | None:
    """h5py wraps errors: look for an errno in the text (``errno = 28``) or in the cause chain."""
    text = str(exc)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
        if f"errno = {code}," in text or os.strerror(code) in text:
            return code
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "errno", None) if cause is not None else None


def _write_pair(writer: ShardWriter, task: ShardTask, record: PairRecord, vis, ir, outputs,
                seed: int) -> list[dict[str, Any]]:
    pid = record.pair_id
    vis_clean_path, ir_clean_path = pair_array_path(pid, "vis"), pair_array_path(pid, "ir")
    ir_file, vis_file = _relative(record.ir_path, task.source_roots), _relative(record.vis_path, task.source_roots)
    writer.set_group_attrs(f"/pairs/{pid}", {"pair_id": pid, "source": record.source, "stem": record.stem,
                                              "ir_file": ir_file, "vis_file": vis_file})
    sha_vis_clean = writer.write_array(vis_clean_path, vis)
    sha_ir_clean = writer.write_array(ir_clean_path, ir)
    rows = []
    for setting, out in outputs:
        sid = sample_id(pid, setting.name)
        params = jsonable(dict(out.params))
        row: dict[str, Any] = {
            "sample_id": sid, "split": task.split, "pair_id": pid, "source": record.source,
            "stem": record.stem, "setting": setting.name, "atoms": list(setting.atoms),
            "changes_vis": bool(setting.changes_vis), "changes_ir": bool(setting.changes_ir),
            "height": int(ir.shape[0]), "width": int(ir.shape[1]),
            "vis_channels": 1 if vis.ndim == 2 else int(vis.shape[2]),
            "shard": task.file, "vis_clean_path": vis_clean_path, "ir_clean_path": ir_clean_path,
            "sha256_vis_clean": sha_vis_clean, "sha256_ir_clean": sha_ir_clean,
            "seed": seed, "params": params, "ir_file": ir_file, "vis_file": vis_file,
        }
        materials = {m: seed_material(seed, pid, setting.name, m) if changes else ""
                     for m, changes in (("vis", setting.changes_vis), ("ir", setting.changes_ir))}
        writer.set_group_attrs(sample_group_path(sid), {
            "sample_id": sid, "setting": setting.name, "params": params,
            "seed_material_vis": materials["vis"], "seed_material_ir": materials["ir"],
        })
        for modality, changes, array, clean_path, clean_sha in (
            ("vis", setting.changes_vis, out.vis, vis_clean_path, sha_vis_clean),
            ("ir", setting.changes_ir, out.ir, ir_clean_path, sha_ir_clean),
        ):
            row[f"seed_material_{modality}"] = materials[modality]
            if changes:
                path = sample_array_path(sid, modality)
                row[f"{modality}_path"] = path
                row[f"sha256_{modality}"] = writer.write_array(path, array)
            else:
                clean = vis if modality == "vis" else ir
                if array is not clean and not np.array_equal(array, clean):
                    raise BuildError(f"pair {pid}, setting {setting.name}: degrade() changed {modality}, which "
                                     "this setting leaves clean")
                row[f"{modality}_path"] = clean_path
                row[f"sha256_{modality}"] = clean_sha
        rows.append(row)
    return rows
