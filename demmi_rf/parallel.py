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
from collections.abc import Iterator, Sequence


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
