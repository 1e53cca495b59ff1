"""The optional compiled kernels (``demmi_rf/_zigfast.c``, ``demmi_rf/_jpegfast.c``) and the one switch that turns
them off.

The kernels are built at install when a C compiler is available (``pyproject.toml``). Each of their routines has a
twin that gives the same bits (numpy, or OpenCV's codec for ``_jpegfast``); the module using a routine probes it
against that twin once per process and falls back to the twin when they differ. ``DEMMI_RF_NUMPY_ZIGGURAT=1`` makes
every routine unavailable, so the twins run (what the portability tests force).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: set to anything but "" or "0": no compiled routine is used (every numpy path runs)
NUMPY_ONLY_ENV = "DEMMI_RF_NUMPY_ZIGGURAT"


def compiled_module(name: str = "_zigfast") -> ModuleType | None:
    """``demmi_rf.<name>`` (``_zigfast``: the sampler, seeding and table routines; ``_jpegfast``: the jpeg atom's
    round trip), or None when it was not built or :data:`NUMPY_ONLY_ENV` is set."""
    if os.environ.get(NUMPY_ONLY_ENV, "") not in ("", "0"):
        return None
    if name not in ("_zigfast", "_jpegfast"):
        raise ValueError(f"no compiled module {name!r}")
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None


def compiled_routine(name: str) -> Callable[..., Any] | None:
    """The kernel's routine ``name``, or None (no kernel, numpy forced, or a kernel built without it)."""
    module = compiled_module()
    return None if module is None else getattr(module, name, None)

