"""Optional dependencies: import one, or fail with a one-line install hint instead of a traceback.

Each optional package belongs to one extra of ``pyproject.toml`` (``torch``, ``albu``, ``dask``); a command that
needs it calls :func:`require` *before* it starts any work, so a missing package is reported at once and never
after hours of training.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DemmiError

# importable module -> (distribution name on PyPI, extra of demmi-rf that installs it)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "safetensors": ("safetensors", "torch"),
    "albumentations": ("albumentations", "albu"),
    "dask": ("dask", "dask"),
    "distributed": ("distributed", "dask"),
    "pyarrow": ("pyarrow", "publish"),
}


class MissingDependencyError(DemmiError, ImportError):
    """An optional package that the requested feature needs is not installed."""


def install_hint(module: str) -> str:
    """The one-line message naming the package and the extra that installs it."""
    dist, extra = EXTRA_OF.get(module.split(".")[0], (module.split(".")[0], "all"))
    return (f"this feature needs the optional package {dist!r}, which is not installed: "
            f"pip install 'demmi-rf[{extra}]'")


def require(module: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with :func:`install_hint`'s message."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{feature}: " if feature else ""
        raise MissingDependencyError(what + install_hint(module)) from exc
