"""The output folder of a build: exclusive lock, recipe check, clean-up of stale files.

* ``recipe.json`` holds the effective recipe and is written before any shard. A build into a folder whose
  ``recipe.json`` (or, failing that, ``dataset.json``) records another recipe hash is refused, naming the
  differing fields (seed, settings...). A non-empty folder that is not a DeMMI-RF build is refused too.
* ``.build.lock`` is held (``flock``) for the whole build, so two builds never write into one folder.
* Before running, the previous card is removed (its absence marks an unfinished build) and so are temporary
  files of interrupted builds and shard files that are not part of the current plan.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..recipe import Recipe
from ..store.atomic import is_temp_name, write_bytes_atomic
from ..store.layout import BUILD_LOG, CARD, LOCK, MANIFEST, RECIPE, SHARD_DIR
from .errors import BuildError

_OURS = {CARD, MANIFEST, RECIPE, BUILD_LOG, LOCK, SHARD_DIR}
_SHARD_NAME = re.compile(r"^(train|test)-\d{5}\.h5$")


def recipe_bytes(recipe: Recipe) -> bytes:
    return (json.dumps(recipe.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = []
    for k in keys:
        if k in ("seed", "name", "test_fraction", "pairs_per_shard"):
            parts.append(f"{k} {old.get(k)!r} -> {new.get(k)!r}")
        elif k == "settings":
            parts.append(f"settings [{', '.join(old.get(k) or [])}] -> [{', '.join(new.get(k) or [])}]")
        else:
            parts.append(k)
    return "; ".join(parts) or "content"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Create ``out`` if needed and hold its build lock; :class:`BuildError` for an unwritable folder or a
    build already running there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BuildError(f"cannot write to the output folder {out}: {exc.strerror or exc}") from exc
    try:
        try:
            import fcntl  # noqa: PLC0415

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        except OSError as exc:
            raise BuildError(f"another build is running into {out} (its {LOCK} is locked)") from exc
        yield
    finally:
        os.close(fd)


def check_foreign(out: Path) -> None:
    """Refuse an existing, non-empty folder that holds no DeMMI-RF build (checked before anything is written
    into it)."""
    if not out.is_dir() or (out / RECIPE).is_file() or (out / CARD).is_file():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OURS)
    if foreign:
        raise BuildError(f"{out} is not empty and holds no DeMMI-RF build ({', '.join(foreign[:5])}...); "
                         "choose an empty or new --out folder")


def check_recipe(out: Path, recipe: Recipe) -> None:
    """Refuse a folder that holds another recipe's build (or foreign files); record ``recipe.json``."""
    marker = out / RECIPE
    old: dict[str, Any] | None = None
    if marker.is_file():
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BuildError(f"{marker}: unreadable ({exc}); delete the folder or choose another --out") from exc
    elif (out / CARD).is_file():
        with contextlib.suppress(OSError, ValueError):
            old = json.loads((out / CARD).read_text(encoding="utf-8")).get("recipe")
    else:
        check_foreign(out)
    if old is not None:
        from ..recipe import recipe_hash  # noqa: PLC0415

        if recipe_hash(old) != recipe.hash:
            raise BuildError(
                f"{out} holds a build of another recipe ({old.get('name')!r}, hash {recipe_hash(old)[:12]}; "
                f"differs in: {_differences(old, recipe.to_json())}). Build into another --out folder, or "
                "delete this one to rebuild it."
            )
    try:
        if not marker.is_file():
            write_bytes_atomic(marker, recipe_bytes(recipe))
    except OSError as exc:
        raise BuildError(f"cannot write {marker}: {exc.strerror or exc}") from exc


def prepare(out: Path, planned_files: set[str]) -> list[str]:
    """Remove the old card, temporary files and shards outside the plan; returns what was removed."""
    removed = []
    try:
        for name in (CARD,):
            path = out / name
            if path.exists():
                path.unlink()
                removed.append(name)
        shard_dir = out / SHARD_DIR
        shard_dir.mkdir(exist_ok=True)
        for path in sorted(shard_dir.iterdir()):
            rel = f"{SHARD_DIR}/{path.name}"
            if is_temp_name(path.name) or (_SHARD_NAME.match(path.name) and rel not in planned_files):
                path.unlink()
                removed.append(rel)
    except OSError as exc:
        raise BuildError(f"cannot prepare the output folder {out}: {exc.strerror or exc}") from exc
    return removed


def remove_temp_files(out: Path) -> list[str]:
    """Remove temporary shard files left in ``out/shards`` by a worker that died during this build.

    Called once every shard of the build has finished: a worker killed mid-write (a lost dask worker whose
    shard was rescheduled elsewhere) leaves its half-written temporary file behind, and the build holds the lock,
    so nothing else is writing there.
    """
    removed = []
    shard_dir = out / SHARD_DIR
    try:
        for path in sorted(shard_dir.iterdir()):
            if is_temp_name(path.name):
                path.unlink(missing_ok=True)
                removed.append(f"{SHARD_DIR}/{path.name}")
    except OSError as exc:
        raise BuildError(f"cannot clean the output folder {out}: {exc.strerror or exc}") from exc
    return removed
