"""The optional compiled kernel (``demmi_rf/_zigfast.c``) and the one switch that turns it off.

The kernel is built at install when a C compiler is available (``pyproject.toml``, ``-ffp-contract=off``). Each of
its routines has a numpy twin that gives the same bits; the module using a routine probes it against that twin
once per process and falls back to numpy when they differ. ``DEMMI_RF_NUMPY_ZIGGURAT=1`` makes every routine
unavailable, so the numpy paths run (what the portability tests force).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: set to anything but "" or "0": no compiled routine is used (every numpy path runs)
NUMPY_ONLY_ENV = "DEMMI_RF_NUMPY_ZIGGURAT"


def compiled_module() -> ModuleType | None:
    """``demmi_rf._zigfast``, or None when it was not built or :data:`NUMPY_ONLY_ENV` is set."""
    if os.environ.get(NUMPY_ONLY_ENV, "") not in ("", "0"):
        return None
    try:
        from . import _zigfast
    except ImportError:
        return None
    return _zigfast


def compiled_routine(name: str) -> Callable[..., Any] | None:
    """The kernel's routine ``name``, or None (no kernel, numpy forced, or a kernel built without it)."""
    module = compiled_module()
    return None if module is None else getattr(module, name, None)
