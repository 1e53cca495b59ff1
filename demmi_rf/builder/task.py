"""The unit of work of a build: one shard (:func:`run_shard`), run by any executor.

For each pair of the shard, in pair-id order: decode it (a :class:`~demmi_rf.errors.PairError` skips the
pair and records why), synthesise every selected setting in memory through :func:`demmi_rf.degrade` (so a
pair is written whole or not at all), then store the clean arrays once and, per sample, only the modality its
setting changed. The shard is written under a temporary name and renamed when complete
(:class:`~demmi_rf.store.ShardWriter`).

A re-run first looks at the shard's final file: if it exists, carries the key of this plan and of the source
files' current bytes (:func:`~demmi_rf.builder.plan.shard_key`), skipped no pair, its ``/meta/result`` matches
its integrity hash and every field, drawn parameter and array that a reuse hands on checks out
(:func:`existing_result`), the stored result is returned and nothing is rebuilt. (A shard that skipped a pair
is rebuilt, so that a fixed source file is picked up.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, ziggurat
from ..degradations import codec_libraries
from ..errors import DemmiError, PairError, ShardError
from ..ids import sample_id
from ..rng import seed_material
from ..software import library_versions
from ..sources import PairRecord, read_pair
from ..store.arrays import is_virtual
from ..store.checksums import array_sha256, file_sha256
from ..store.layout import pair_array_path, sample_array_path, sample_group_path
from ..store.manifest import jsonable
from ..store.safe import read_array
from ..store.shard import ShardWriter, attr_text, open_shard, os_error_of, read_result
from .errors import BuildError, os_problem
from .outdir import check_lock_held
from .plan import ShardTask, shard_key

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


def source_digests(task: ShardTask) -> list[tuple[str, str | None, str | None]]:
    """``(pair id, sha256 of the IR file, sha256 of the VIS file)`` per pair of the shard, from the files'
    bytes as they are now (None for a file that cannot be read: that pair will be skipped)."""
    return [(r.pair_id, _file_digest(r.ir_path), _file_digest(r.vis_path)) for r in task.pairs]


def _file_digest(path: Path) -> str | None:
    """sha256 of a regular file's bytes; None when it cannot be read or is not a regular file (a FIFO put in
    place of an image after the scan would otherwise block the worker)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        while block := os.read(fd, 1 << 20):
            h.update(block)
        return h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Reuse the shard if it is complete and valid, else build it. Returns the shard's result: ``rows``
    (manifest rows), ``skipped`` (pairs not built and why), ``file``, ``split``, ``index``, ``plan_key``,
    ``bytes``, ``sha256``, ``reused``, ``seconds``, ``toolkit_version``, ``software`` (library versions of the
    process that ran it), ``normal_sampler``, ``codecs`` (the codec libraries of the recipe's codec-dependent
    atoms in that process)."""
    start = time.perf_counter()
    check_lock_held(task.out_dir, task.lock_token, f"shard {task.file}")
    final = Path(task.out_dir) / task.file
    sources = source_digests(task)
    key = shard_key(task.plan_key, sources)
    # only a regular file under the final name can be reused (a symbolic link or anything else is replaced)
    result = existing_result(task, sources=sources) if _regular(final) else None
    reused = result is not None
    if result is None:
        try:
            with contextlib.suppress(FileNotFoundError):
                final.unlink()  # present but invalid (or a link: the link itself goes): rebuilt below
        except OSError as exc:
            raise BuildError(f"cannot replace shard {final}: {os_problem(exc)}") from exc
        with single_threaded_opencv():
            result = _build(task, final, key, sources)
    try:
        size, sha = final.stat().st_size, file_sha256(final)
    except OSError as exc:
        raise BuildError(f"shard {final}: cannot be read back after writing: {exc}") from exc
    return {**result, "bytes": size, "sha256": sha, "reused": reused,
            "seconds": round(time.perf_counter() - start, 3), "toolkit_version": __version__,
            "software": library_versions(), "normal_sampler": ziggurat.backend(), "codecs": _codecs(task)}


def _codecs(task: ShardTask) -> dict[str, str]:
    """``{atom: codec library}`` for the recipe's codec-dependent atoms (``jpeg``: OpenCV's libjpeg-turbo), as the
    process that ran the shard has them: their bytes are reproducible only with the same codec build."""
    from ..settings import parse_setting  # noqa: PLC0415

    atoms = sorted({a for s in task.recipe["settings"] for a in parse_setting(s).atoms})
    return codec_libraries(atoms)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def existing_result(task: ShardTask, sources: list[tuple[str, str | None, str | None]] | None = None
                    ) -> dict[str, Any] | None:
    """The stored result of the shard's final file when it is complete and valid for this plan and these
    sources, else None (:func:`reuse_problem` says why)."""
    result, _ = _examine(task, sources)
    return result


def reuse_problem(task: ShardTask, sources: list[tuple[str, str | None, str | None]] | None = None) -> str | None:
    """Why the shard's final file cannot be reused (None when it can)."""
    return _examine(task, sources)[1]


def _examine(task: ShardTask, sources) -> tuple[dict[str, Any] | None, str | None]:
    """Everything a reused shard hands on is checked: the stored key (plan and source files), the integrity
    hash of ``/meta/result``, every field of every row against what this task would write, the drawn
    parameters against the copy in each sample's attributes, and every array against its sha256 and
    geometry. Any doubt (including an exception of any kind while reading) means: rebuild."""
    final = Path(task.out_dir) / task.file
    sources = source_digests(task) if sources is None else sources
    try:
        h5 = open_shard(final, label=task.file)
    except ShardError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a damaged file may raise anything: rebuild it
        return None, f"cannot be opened: {type(exc).__name__}: {exc}"
    try:
        problem = _reuse_check(h5, task, sources)
        if isinstance(problem, str):
            return None, problem
        return problem, None
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        h5.close()


def _reuse_check(h5, task: ShardTask, sources) -> dict[str, Any] | str:
    from ..settings import parse_setting  # noqa: PLC0415

    key = shard_key(task.plan_key, sources)
    if attr_text(h5, "plan_key") != key:
        return "planned for another recipe, storage, pair list or source content"
    if any(ir is None or vis is None for _, ir, vis in sources):
        return "a source file cannot be read"
    result = read_result(h5, task.file, require_hash=True)
    expected_head = {"file": task.file, "split": task.split, "index": task.index, "plan_key": key,
                     "recipe_hash": task.recipe_hash, "pairs": [r.pair_id for r in task.pairs], "skipped": []}
    for name, value in expected_head.items():
        if result.get(name) != value:
            return f"/meta/result field {name!r} differs from the plan"
    if set(result) != {*expected_head, "rows"}:
        return "/meta/result has unexpected fields"
    seed = int(task.recipe["seed"])
    settings = [parse_setting(s) for s in task.recipe["settings"]]
    digests = {pid: (ir, vis) for pid, ir, vis in sources}
    virtual = is_virtual(task.storage)
    rows = result["rows"]
    if not isinstance(rows, list) or len(rows) != len(task.pairs) * len(settings):
        return "/meta/result does not hold one row per pair and setting"
    hashes: dict[str, tuple[str, tuple[int, ...]]] = {}
    k = 0
    for record in task.pairs:
        expected_pair = _pair_attrs(task, record, digests[record.pair_id])
        if _group_attrs(h5, f"/pairs/{record.pair_id}") != expected_pair:
            return f"pair {record.pair_id}: attributes differ from the plan"
        for setting in settings:
            row = rows[k]
            k += 1
            if not isinstance(row, dict):
                return "a row of /meta/result is not an object"
            identity = _row_identity(task, record, setting, seed, digests[record.pair_id])
            if set(row) != set(identity) | _ROW_DATA:
                return f"sample {identity['sample_id']}: row fields differ from what a build writes"
            for name, value in identity.items():
                if row[name] != value:
                    return f"sample {identity['sample_id']}: {name} differs from the plan"
            sample_attrs = _group_attrs(h5, sample_group_path(identity["sample_id"]))
            expected_attrs = {"sample_id": identity["sample_id"], "setting": setting.name,
                              "params": row["params"], "seed_material_vis": identity["seed_material_vis"],
                              "seed_material_ir": identity["seed_material_ir"]}
            if sample_attrs != expected_attrs:
                return f"sample {identity['sample_id']}: drawn parameters or attributes differ from /meta/result"
            for name in ("vis", "ir", "vis_clean", "ir_clean"):
                path = row[f"{name}_path"]
                if virtual and name in ("vis", "ir") and path == sample_array_path(identity["sample_id"], name):
                    continue  # not stored in a virtual shard: its sha256 is covered by result_sha256
                if path not in hashes:
                    array = read_array(h5, path, task.file)
                    hashes[path] = (array_sha256(array), array.shape)
                sha, shape = hashes[path]
                if sha != row[f"sha256_{name}"]:
                    return f"sample {identity['sample_id']}: array {path} differs from its sha256"
                channels = 1 if len(shape) == 2 else shape[2]
                if name.startswith("ir") and len(shape) != 2:
                    return f"sample {identity['sample_id']}: IR array {path} is not single-channel"
                if (row["height"], row["width"]) != tuple(shape[:2]) or \
                        (name.startswith("vis") and row["vis_channels"] != channels):
                    return f"sample {identity['sample_id']}: geometry differs from array {path}"
    return result


#: row fields that come from the synthesis (checked against the arrays and attributes, not recomputed)
_ROW_DATA = frozenset({"height", "width", "vis_channels", "params", "sha256_vis", "sha256_ir",
                       "sha256_vis_clean", "sha256_ir_clean"})


def _group_attrs(h5, path: str) -> dict[str, Any]:
    """A group's attributes as plain values (JSON text of non-scalars decoded, as the writer stored them)."""
    import json  # noqa: PLC0415

    out = {}
    for key, value in h5[path].attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if key == "params":
            value = json.loads(value)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        out[key] = value
    return out


def _pair_attrs(task: ShardTask, record: PairRecord, digest: tuple[str | None, str | None]) -> dict[str, Any]:
    return {"pair_id": record.pair_id, "source": record.source, "stem": record.stem,
            "ir_file": _relative(record.ir_path, task.source_roots),
            "vis_file": _relative(record.vis_path, task.source_roots),
            "ir_sha256": digest[0], "vis_sha256": digest[1]}


def _row_identity(task: ShardTask, record: PairRecord, setting, seed: int,
                  digest: tuple[str | None, str | None]) -> dict[str, Any]:
    """Every field of a manifest row that follows from the plan alone (not from the synthesis)."""
    pid = record.pair_id
    sid = sample_id(pid, setting.name)
    vis_clean_path, ir_clean_path = pair_array_path(pid, "vis"), pair_array_path(pid, "ir")
    row: dict[str, Any] = {
        "sample_id": sid, "split": task.split, "pair_id": pid, "source": record.source,
        "stem": record.stem, "setting": setting.name, "atoms": list(setting.atoms),
        "changes_vis": bool(setting.changes_vis), "changes_ir": bool(setting.changes_ir),
        "shard": task.file, "vis_clean_path": vis_clean_path, "ir_clean_path": ir_clean_path, "seed": seed,
        "ir_file": _relative(record.ir_path, task.source_roots),
        "vis_file": _relative(record.vis_path, task.source_roots),
        "ir_file_sha256": digest[0], "vis_file_sha256": digest[1],
    }
    for modality, changes, clean_path in (("vis", setting.changes_vis, vis_clean_path),
                                          ("ir", setting.changes_ir, ir_clean_path)):
        row[f"seed_material_{modality}"] = seed_material(seed, pid, setting.name, modality) if changes else ""
        row[f"{modality}_path"] = sample_array_path(sid, modality) if changes else clean_path
    return row


def _build(task: ShardTask, final: Path, key: str, sources) -> dict[str, Any]:
    from .. import degrade  # noqa: PLC0415 - heavy (OpenCV); imported in the worker
    from ..settings import parse_setting  # noqa: PLC0415

    settings = [parse_setting(s) for s in task.recipe["settings"]]
    seed = int(task.recipe["seed"])
    ranges = task.recipe["degradations"]
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    digests = {pid: (ir, vis) for pid, ir, vis in sources}
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    attrs = {"plan_key": key, "recipe_hash": task.recipe_hash, "split": task.split,
             "index": task.index, "toolkit_version": __version__}
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with ShardWriter(final, attrs, storage=task.storage) as writer:
            for record in task.pairs:
                unreadable = [p for p, d in zip((record.ir_path, record.vis_path), digests[record.pair_id])
                              if d is None]
                if unreadable:  # not decoded: it may be a FIFO or a device put there after the scan
                    skipped.append({"pair_id": record.pair_id, "path": str(unreadable[0]), "kind": "unreadable",
                                    "message": f"{unreadable[0]}: cannot be read as a regular file",
                                    "shard": task.file})
                    continue
                try:
                    loaded = read_pair(record, ir16=task.ir16, max_pixels=task.max_pixels)
                except PairError as exc:
                    skipped.append({"pair_id": record.pair_id, "path": str(exc.path), "kind": exc.kind,
                                    "message": str(exc), "shard": task.file})
                    continue
                _check_unchanged(record, digests[record.pair_id])
                outputs = []
                for setting in settings:
                    try:
                        out = degrade(loaded.vis, loaded.ir, setting.name, seed, pair_id=record.pair_id,
                                      ranges=ranges)
                    except DemmiError as exc:
                        raise BuildError(f"pair {record.pair_id}, setting {setting.name}: {exc}") from exc
                    outputs.append((setting, out))
                rows.extend(_write_pair(writer, task, record, loaded.vis, loaded.ir, outputs, seed,
                                        digests[record.pair_id]))
                if pause:
                    time.sleep(pause)
            result = {"file": task.file, "split": task.split, "index": task.index, "plan_key": key,
                      "recipe_hash": task.recipe_hash, "pairs": [r.pair_id for r in task.pairs],
                      "rows": rows, "skipped": skipped}
            check_lock_held(task.out_dir, task.lock_token, f"shard {task.file}")  # never write without it
            writer.commit(result)
    except OSError as exc:
        raise BuildError(_os_message(final, exc)) from exc
    return result


def _check_unchanged(record: PairRecord, digest: tuple[str | None, str | None]) -> None:
    """The files just decoded are the ones whose sha256 the shard key records (not edited in between)."""
    for path, before in ((record.ir_path, digest[0]), (record.vis_path, digest[1])):
        now = _file_digest(path)
        if now != before:
            raise BuildError(f"source {path} changed while the build read it; re-run the same command")


def _os_message(final: Path, exc: OSError) -> str:
    err = os_error_of(exc) or exc
    head = f"cannot write shard {final}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{head}: {os_problem(err)}; free some space and re-run the same command to resume"
    if err.errno is not None:
        return f"{head}: {os_problem(err)}"
    return f"{head}: {exc}"


def _write_pair(writer: ShardWriter, task: ShardTask, record: PairRecord, vis, ir, outputs, seed: int,
                digest: tuple[str | None, str | None]) -> list[dict[str, Any]]:
    pid = record.pair_id
    vis_clean_path, ir_clean_path = pair_array_path(pid, "vis"), pair_array_path(pid, "ir")
    writer.set_group_attrs(f"/pairs/{pid}", _pair_attrs(task, record, digest))
    sha_vis_clean = writer.write_array(vis_clean_path, vis)
    sha_ir_clean = writer.write_array(ir_clean_path, ir)
    rows = []
    for setting, out in outputs:
        row = _row_identity(task, record, setting, seed, digest)
        sid = row["sample_id"]
        params = jsonable(dict(out.params))
        row.update({"height": int(ir.shape[0]), "width": int(ir.shape[1]),
                    "vis_channels": 1 if vis.ndim == 2 else int(vis.shape[2]), "params": params,
                    "sha256_vis_clean": sha_vis_clean, "sha256_ir_clean": sha_ir_clean})
        writer.set_group_attrs(sample_group_path(sid), {
            "sample_id": sid, "setting": setting.name, "params": params,
            "seed_material_vis": row["seed_material_vis"], "seed_material_ir": row["seed_material_ir"],
        })
        for modality, changes, array, clean_sha in (
            ("vis", setting.changes_vis, out.vis, sha_vis_clean),
            ("ir", setting.changes_ir, out.ir, sha_ir_clean),
        ):
            if changes and is_virtual(task.storage):  # virtual build: recorded (sha256, parameters), not stored
                row[f"sha256_{modality}"] = array_sha256(array)
            elif changes:
                row[f"sha256_{modality}"] = writer.write_array(row[f"{modality}_path"], array)
            else:
                clean = vis if modality == "vis" else ir
                if array is not clean and not np.array_equal(array, clean):
                    raise BuildError(f"pair {pid}, setting {setting.name}: degrade() changed {modality}, which "
                                     "this setting leaves clean")
                row[f"sha256_{modality}"] = clean_sha
        rows.append(row)
    return rows
