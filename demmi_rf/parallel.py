"""Worker processes: the one way every DeMMI-RF process pool starts its workers.

* The start method is ``forkserver`` on Linux (``spawn`` elsewhere), never plain ``fork``: a forked child of a
  process whose OpenCV thread pool or HDF5 library already ran can deadlock.
* ``forkserver`` preloads the modules the workers need, so each worker starts warm.
* Workers started by ``spawn``/``forkserver`` re-run the parent's ``__main__`` file; when there is no such
  file (``python -`` or ``python -c``), it is hidden while the pool runs, since workers only need the toolkit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
        min(workers, len(jobs)), initializer=initializer, initargs=initargs, mp_context=ctx
    ) as pool:
        for result in pool.map(fn, jobs, chunksize=1):
            out.append(result)
            advance(1)
    return out
