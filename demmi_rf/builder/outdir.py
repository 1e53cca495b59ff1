"""The output folder of a build: exclusive lock, recipe check, clean-up of stale files.

* ``recipe.json`` holds the effective recipe and is written before any shard. A build into a folder whose
  ``recipe.json`` (or, failing that, ``dataset.json``) records another recipe hash is refused, naming the
  differing fields (seed, settings...). A non-empty folder that is not a DeMMI-RF build is refused too.
* ``.build.lock`` exists only while a build runs: the build creates it, holds an exclusive ``flock`` on it for
  the whole build (so two builds never write into one folder: the second one stops at once, saying another
  build is running) and removes it at the end, whatever the outcome. It holds the driver's process id and a
  random token; the shard tasks carry the token and a worker writes a shard only while a build with that
  token holds the lock (:func:`check_lock_held`), so a worker orphaned by a killed driver never writes.
  A lock file left by a killed build (``kill -9`` cannot run the clean-up) means nothing: no process holds
  its lock, and the next build takes it over.
* Before running, the previous card is removed (its absence marks an unfinished build) and so are temporary
  files of interrupted builds and shard files that are not part of the current plan.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..recipe import Recipe
from ..store.atomic import TMP_SUFFIX, is_temp_name, write_bytes_atomic
from ..store.layout import BUILD_LOG, CARD, LOCK, MANIFEST, RECIPE, SHARD_DIR
from .errors import BuildError, BuildLockedError, os_problem

_OURS = {CARD, MANIFEST, RECIPE, BUILD_LOG, LOCK, SHARD_DIR}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
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


def _flock(fd: int, shared: bool = False) -> bool:
    """Try to take the lock (non-blocking): True when taken, False when another process holds it."""
    import fcntl  # noqa: PLC0415 - POSIX only

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = path.read_text(encoding="ascii", errors="replace").split()[0]
        if pid.isdigit():
            return f" (process {pid})"
    return ""


@contextlib.contextmanager
def locked(out: Path) -> Iterator[str]:
    """Create ``out`` if needed, take its build lock and yield the build's token; remove the lock file at the
    end. :class:`BuildError` for an unwritable folder, :class:`BuildLockedError` when a build is running there.

    The lock file is removed while it is still locked, and a lock taken on a file that is no longer the one at
    ``out/.build.lock`` (removed or replaced in between) is dropped and taken again, so removing it never lets
    two builds in at once.
    """
    lock = out / LOCK
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot write to the output folder {out}: {os_problem(exc)}") from exc
    try:
        import fcntl  # noqa: F401, PLC0415
    except ImportError:  # pragma: no cover - Windows: no lock
        yield ""
        return
    for _ in range(100):
        try:  # never through a symbolic link: a crafted folder's .build.lock -> ~/.bashrc would be truncated
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or lock.is_symlink():
                raise BuildError(f"{lock} is a symbolic link: refused (remove it; a build creates its own lock "
                                 "file)") from exc
            raise BuildError(f"cannot write to the output folder {out}: {os_problem(exc)}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BuildError(f"{lock} is not a regular file: refused (remove it)")
        try:
            taken = _flock(fd)
        except OSError as exc:
            os.close(fd)
            raise BuildError(f"cannot lock {lock}: {os_problem(exc)}") from exc
        if not taken:
            os.close(fd)
            raise BuildLockedError(f"another build is running into {out}{_holder(lock)}: wait for it to finish "
                                   f"(or stop it), then re-run; {LOCK} is locked")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed (a build just finished) or replaced: lock the current one
    else:  # pragma: no cover - 100 builds finishing in a row under our feet
        raise BuildLockedError(f"cannot take the lock {lock}: other builds keep replacing it")
    token = secrets.token_hex(16)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {token}\n".encode("ascii"))
        except OSError as exc:
            raise BuildError(f"cannot write {lock}: {os_problem(exc)}") from exc
        yield token
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # still locked: a build waiting on this file retries on the new one
        os.close(fd)


def check_lock_held(out_dir: str | Path, token: str, what: str) -> None:
    """:class:`BuildError` unless the build whose lock token is ``token`` still holds ``out_dir``'s lock (a
    worker calls this before writing, so that a worker whose driver was killed never writes). No-op for an
    empty token (a task run outside :func:`demmi_rf.builder.build_dataset`)."""
    if not token:
        return
    lock = Path(out_dir) / LOCK
    gone = BuildError(f"{what}: the build that started this worker no longer holds {lock} (its driver was "
                      "stopped); nothing written")
    try:
        fd = os.open(lock, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise gone from None
    except OSError:
        return  # cannot tell (e.g. a file system without this file's permissions): do not stop the build
    try:
        content = os.read(fd, 256).decode("ascii", "replace").split()
        if len(content) != 2 or content[1] != token:
            raise gone
        try:
            free = _flock(fd, shared=True)  # taken only when nobody holds the build's exclusive lock
        except (OSError, ImportError):
            return  # e.g. no locks on this file system: the token alone decides
        if free:
            raise gone
    finally:
        os.close(fd)


def _ours(name: str) -> bool:
    """A name a build writes into its folder (temporary files of our atomic writes included)."""
    if name in _OURS:
        return True
    if is_temp_name(name):  # .<name>.<pid>-<token>.tmp
        inner = name[1 : -len(TMP_SUFFIX)].rsplit(".", 1)[0]
        return inner in _OURS
    return False


def check_foreign(out: Path, *, locked_here: bool = False) -> None:
    """Refuse an existing, non-empty folder that holds no DeMMI-RF build. Checked once before anything is
    written into it (then a folder with a build lock is left to the check made under the lock: another build
    may be starting there) and again under the lock (``locked_here``)."""
    if not out.is_dir() or (out / RECIPE).is_file() or (out / CARD).is_file():
        return
    if not locked_here and (out / LOCK).exists():
        return
    try:
        names = [p.name for p in out.iterdir()]
    except OSError as exc:
        raise BuildError(f"cannot list the output folder {out}: {os_problem(exc)}") from exc
    foreign = sorted(n for n in names if not _ours(n))
    if foreign:
        raise BuildError(f"{out} is not empty and holds no DeMMI-RF build ({', '.join(foreign[:5])}...); "
                         "choose an empty or new --out folder")


def check_recipe(out: Path, recipe: Recipe) -> None:
    """Refuse a folder that holds another recipe's build (or foreign files); record ``recipe.json``."""
    marker = out / RECIPE
    old: dict[str, Any] | None = None
    for name in (RECIPE, CARD, MANIFEST):  # read or replaced below: never through a link out of the folder
        if (out / name).is_symlink():
            raise BuildError(f"{out / name} is a symbolic link: refused (a build writes its own {name}); "
                             "delete it or choose another --out")
    if marker.is_file():
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError(f"a JSON {type(old).__name__}, not an object")
        except (OSError, ValueError, RecursionError) as exc:
            raise BuildError(f"{marker}: unreadable ({exc}); delete the folder or choose another --out") from exc
    elif (out / CARD).is_file():
        with contextlib.suppress(OSError, ValueError, RecursionError, AttributeError):
            old = json.loads((out / CARD).read_text(encoding="utf-8")).get("recipe")
        if not isinstance(old, dict):
            old = None
    else:
        check_foreign(out, locked_here=True)
    if old is not None:
        from ..recipe import recipe_hash  # noqa: PLC0415

        try:
            old_hash = recipe_hash(old)
        except (TypeError, ValueError, RecursionError) as exc:
            raise BuildError(f"{marker}: unreadable ({exc}); delete the folder or choose another --out") from exc
        if old_hash != recipe.hash:
            raise BuildError(
                f"{out} holds a build of another recipe ({old.get('name')!r}, hash {old_hash[:12]}; "
                f"differs in: {_differences(old, recipe.to_json())}). Build into another --out folder, or "
                "delete this one to rebuild it."
            )
    try:
        if not marker.is_file():
            write_bytes_atomic(marker, recipe_bytes(recipe))
    except OSError as exc:
        raise BuildError(f"cannot write {marker}: {os_problem(exc)}") from exc


def prepare(out: Path, planned_files: set[str]) -> list[str]:
    """Remove the old card, temporary files and shards outside the plan; returns what was removed."""
    removed = []
    try:
        for name in (CARD,):
            path = out / name
            if path.exists():
                path.unlink()
                removed.append(name)
        for path in sorted(out.iterdir()):  # temporary files of an interrupted manifest/card/recipe write
            if is_temp_name(path.name) and _ours(path.name) and path.is_file():
                path.unlink()
                removed.append(path.name)
        shard_dir = out / SHARD_DIR
        shard_dir.mkdir(exist_ok=True)
        for path in sorted(shard_dir.iterdir()):
            rel = f"{SHARD_DIR}/{path.name}"
            if is_temp_name(path.name) or (_SHARD_NAME.match(path.name) and rel not in planned_files):
                path.unlink()
                removed.append(rel)
    except OSError as exc:
        raise BuildError(f"cannot prepare the output folder {out}: {os_problem(exc)}") from exc
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
