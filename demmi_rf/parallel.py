"""Worker processes: the one way every DeMMI-RF process pool starts its workers.

* The start method is ``forkserver`` on Linux (``spawn`` elsewhere), never plain ``fork``: a forked child of a
  process whose OpenCV thread pool or HDF5 library already ran can deadlock.
* ``forkserver`` preloads the modules the workers need, so each worker starts warm.
* Workers started by ``spawn``/``forkserver`` re-run the parent's ``__main__`` file; when there is no such
  file (``python -`` or ``python -c``), it is hidden while the pool runs, since workers only need the toolkit.
* Workers die with the process that started them (:func:`die_with_parent`, run first in every worker): a
  driver killed with ``kill -9`` cannot shut its pool down, and its workers would otherwise run on for minutes.
  On Linux the kernel sends the worker ``SIGKILL`` when its parent (the forkserver, which itself exits when
  the driver's end of its pipe closes) dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a watchdog thread also
  checks twice a second that the driver is alive and kills the worker otherwise.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """The default worker count of every parallel command: the CPUs this process may use (its affinity mask
    where the system has one, else the CPU count), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, n)


_PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped by its parent, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X", b"x")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


def _kill_self() -> None:
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def die_with_parent(driver_pid: int) -> None:
    """Make this worker process die when the driver ``driver_pid`` does (see module docstring). Idempotent."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes  # noqa: PLC0415

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not _alive(driver_pid):  # died before the line above took effect
        _kill_self()
    if getattr(die_with_parent, "_watching", None) == driver_pid:
        return

    def watch() -> None:
        while _alive(driver_pid):
            threading.Event().wait(WATCH_SECONDS)
        _kill_self()

    threading.Thread(target=watch, name="demmi-driver-watchdog", daemon=True).start()
    die_with_parent._watching = driver_pid  # type: ignore[attr-defined]


def guarded_initializer(driver_pid: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Pool initializer: :func:`die_with_parent`, then the pool's own ``initializer(*initargs)``."""
    die_with_parent(driver_pid)
    if initializer is not None:
        initializer(*initargs)


def process_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for worker pools (see module doc); ``preload``: modules to import once."""
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver" and preload:
        ctx.set_forkserver_preload(list(preload))
    return ctx


@contextlib.contextmanager
def main_module_not_reimported() -> Iterator[None]:
    """Hide ``__main__.__file__`` while workers start when it names no real file (stdin or ``-c`` scripts)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None or os.path.exists(path):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def map_in_workers(
    fn: Callable[[T], R],
    jobs: Sequence[T],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    serial_initargs: tuple,
    release: Callable[[], None],
    preload: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> list[R]:
    """``[fn(job) for job in jobs]`` in order, with per-process state set up by ``initializer``.

    One worker runs everything in this process (``initializer(*serial_initargs)``, then ``release()``);
    more start a pool (:func:`process_context`) whose workers each run ``initializer(*initargs)``.
    ``progress(1)`` is called per finished job.
    """
    advance = progress or (lambda n=1: None)
    out: list[R] = []
    if workers <= 1 or len(jobs) <= 1:
        initializer(*serial_initargs)
        try:
            for job in jobs:
                out.append(fn(job))
                advance(1)
        finally:
            release()
        return out
    ctx = process_context(preload)
    with main_module_not_reimported(), ProcessPoolExecutor(
        min(workers, len(jobs)), initializer=guarded_initializer, initargs=(os.getpid(), initializer, initargs),
        mp_context=ctx,
    ) as pool:
        for result in pool.map(fn, jobs, chunksize=1):
            out.append(result)
            advance(1)
    return out
