"""DeMMI-RF: a reproducible degraded multi-modal (IR/VIS) image fusion benchmark toolkit.

``import demmi_rf`` loads numpy only; heavier parts (OpenCV, h5py, pandas, torch) are imported by the
sub-modules that need them. Torch is used only by :mod:`demmi_rf.torch` and :mod:`tgecnet_ref`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"
SPEC_VERSION = "1"
#: the version of the pixels: bumped whenever the same recipe and seed give other bytes (CHANGELOG.md lists the
#: content hash each gives); recorded in every dataset card as ``synthesis.version``
SYNTHESIS_VERSION = "3"

# public name -> module that defines it (imported lazily on first access)
_LAZY = {
    "degrade": "demmi_rf.degradations.compose",
    "DegradedPair": "demmi_rf.degradations.compose",
    "discover": "demmi_rf.sources",
    "read_pair": "demmi_rf.sources",
    "sample_root": "demmi_rf.samples",
}

__all__ = ["__version__", "SPEC_VERSION", "SYNTHESIS_VERSION", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'demmi_rf' has no attribute {name!r}")
