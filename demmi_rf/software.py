"""Versions of the software a process runs, recorded in dataset cards and results files.

Pixels are byte-identical for the same recipe, seed and toolkit version on an IEEE-754 platform
(``docs/spec-notes.md``); recording the versions lets anyone see what produced a dataset or a score.
"""

from __future__ import annotations

import platform


def library_versions() -> dict[str, str]:
    """``{"python": ..., "numpy": ..., "scipy": ..., "opencv": ..., "pillow": ..., "h5py": ...}`` of this process."""
    import cv2  # noqa: PLC0415
    import h5py  # noqa: PLC0415
    import numpy  # noqa: PLC0415
    import PIL  # noqa: PLC0415
    import scipy  # noqa: PLC0415

    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "opencv": cv2.__version__, "pillow": PIL.__version__, "h5py": h5py.__version__}
