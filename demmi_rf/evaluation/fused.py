"""Finding and reading a method's fused images (benchmark spec section 7).

A fused folder holds one ``<safe sample id>.png`` per sample (``/`` in the id written ``__``: the fused image of
``msrs/00004N@noise50+haze`` is ``msrs__00004N@noise50+haze.png``), 8-bit gray (PNG mode ``L``) or 8-bit RGB,
of the sample's height and width. :func:`scan_fused` sorts a folder against the samples to score into

* ``found``   – a readable PNG of the right size and mode, per sample id;
* ``missing`` – expected samples with no file;
* ``invalid`` – files of expected samples that cannot be scored (wrong size, alpha channel, 16-bit, palette,
  not a PNG, unreadable), each with the problem;
* ``extra``   – every other entry of the folder (unknown ids, other extensions, sub-folders).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DemmiError
from ..ids import from_safe_name, safe_name
from ..sources.images import DEFAULT_MAX_PIXELS

SUFFIX = ".png"
_MODE_PROBLEMS = {
    "RGBA": "has an alpha channel (RGBA); save gray or RGB",
    "LA": "has an alpha channel (LA); save gray or RGB",
    "P": "is a palette image; save gray or RGB",
    "1": "is a 1-bit image; save 8-bit gray or RGB",
    "I": "is a 32-bit integer image; save 8-bit gray or RGB",
    "I;16": "is 16-bit; save 8-bit gray or RGB",
    "F": "is a floating-point image; save 8-bit gray or RGB",
}


@dataclass(frozen=True)
class FusedScan:
    """The content of a fused folder sorted against the expected samples (module docstring)."""

    folder: Path
    found: dict[str, Path] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    invalid: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every expected sample has a usable image."""
        return not self.missing and not self.invalid

    def summary(self) -> str:
        """One line: counts of found, missing, invalid and extra entries."""
        return (f"{self.folder}: {len(self.found)} fused image(s) found, {len(self.missing)} missing, "
                f"{len(self.invalid)} unusable, {len(self.extra)} extra file(s)")


def fused_path(folder: str | Path, sample_id: str) -> Path:
    """``<folder>/<safe sample id>.png``."""
    return Path(folder) / (safe_name(sample_id) + SUFFIX)


def _check_header(path: Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """The problem with the image at ``path`` (``None`` when usable); reads the header only."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as im:
            fmt, mode, (w, h) = im.format, im.mode, im.size
    except Image.DecompressionBombError as exc:
        return f"declares more pixels than Pillow opens ({exc}); refused before decoding"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        return f"not a readable image ({exc})"
    except Exception as exc:  # noqa: BLE001 - a crafted header may trip any plugin: never a traceback
        return f"not a readable image ({type(exc).__name__}: {exc})"
    if w * h > max_pixels:
        return (f"is {h}x{w} (HxW) = {w * h} pixels, more than the limit of {max_pixels}; refused before decoding "
                "(raise it with --max-pixels if the dataset's samples are that large)")
    if fmt != "PNG":
        return f"is a {fmt} file named .png; save PNG"
    if mode not in ("L", "RGB"):
        return _MODE_PROBLEMS.get(mode, f"has PIL mode {mode}; save 8-bit gray or RGB")
    if (h, w) != tuple(size):
        return f"is {h}x{w} (HxW) but the sample is {size[0]}x{size[1]}"
    return None


def scan_fused(folder: str | Path, expected: Mapping[str, tuple[int, int]],
               max_pixels: int = DEFAULT_MAX_PIXELS) -> FusedScan:
    """Sort the entries of ``folder`` against ``expected`` (sample id -> (height, width)); see the module doc.
    Every header is checked before anything is decoded: more than ``max_pixels`` pixels is unusable.

    Raises :class:`~demmi_rf.errors.DemmiError` when ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DemmiError(f"{root}: fused-image folder does not exist or is not a folder")
    found: dict[str, Path] = {}
    invalid: dict[str, str] = {}
    extra: list[str] = []
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DemmiError(f"{root}: cannot list the fused-image folder ({exc.strerror or exc})") from None
    for entry in entries:
        name = entry.name
        sample = from_safe_name(name[: -len(SUFFIX)]) if name.endswith(SUFFIX) else None
        if sample is None or sample not in expected:
            extra.append(name + ("/" if entry.is_dir() else ""))
            continue
        if not entry.is_file():
            invalid[sample] = f"{name} is not a regular file"
            continue
        problem = _check_header(entry, expected[sample], max_pixels)
        if problem is None:
            found[sample] = entry
        else:
            invalid[sample] = f"{name} {problem}"
    missing = tuple(s for s in expected if s not in found and s not in invalid)
    return FusedScan(root, found, missing, invalid, tuple(extra))


def read_fused(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a fused PNG: uint8 HxW (gray) or HxWx3 (RGB). DemmiError naming the file when it cannot, or when
    its header declares more than ``max_pixels`` pixels (checked before decoding)."""
    from PIL import Image  # noqa: PLC0415

    p = Path(path)
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise DemmiError(f"{p}: is {h}x{w} (HxW) = {w * h} pixels, more than the limit of {max_pixels}; "
                                 "refused before decoding")
            im.load()
            if im.mode not in ("L", "RGB"):
                raise DemmiError(f"{p}: {_MODE_PROBLEMS.get(im.mode, 'is not 8-bit gray or RGB')}")
            return np.asarray(im).copy()
    except DemmiError:
        raise
    except Image.DecompressionBombError as exc:
        raise DemmiError(f"{p}: declares more pixels than Pillow opens ({exc}); refused before decoding") from None
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise DemmiError(f"{p}: cannot decode the fused image ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - a crafted file may trip any decoder path: never a traceback
        raise DemmiError(f"{p}: cannot decode the fused image ({type(exc).__name__}: {exc})") from exc
