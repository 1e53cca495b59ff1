"""Reading and validating one IR or VIS image file.

Rules (benchmark spec section 1):

* IR is 8-bit, 1 channel. IR stored as three *equal* channels is collapsed to one (lossless); three unequal
  channels is an error. 16-bit IR is an error unless a documented conversion is requested (``ir16``):
  ``"shift"`` keeps the high byte, ``y = floor(x / 256)``; ``"minmax"`` stretches the image's own range,
  ``y = round(255 * (x - min) / (max - min))`` (a constant image maps to 0).
* VIS is 8-bit RGB (3 channels) or gray (1 channel). VIS stored as three equal channels (TNO copies) is
  collapsed to gray, so that gray-only degradations stay gray. Palette images are expanded; an alpha channel
  is dropped only when it is fully opaque, otherwise it is an error (what should be behind a transparent
  pixel is unknown).
* Both sides at least 32 px (:data:`MIN_SIDE`) high and wide.
* Files are fully decoded with Pillow, which refuses truncated files (no silently grey-filled tails).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BitDepthError, ChannelError, ImageTooSmallError, UnreadableImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_SIDE = 32
Ir16 = Literal["error", "shift", "minmax"]
IR16_CHOICES = ("error", "shift", "minmax")

Image.MAX_IMAGE_PIXELS = 20000 * 20000  # large satellite-size frames are fine; only absurd sizes are refused


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file name carries one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk (always the first chunk)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        return None
    return head[24]


def _declared_bits(im: Image.Image, path: Path) -> int:
    """Bits per sample as stored in the file (Pillow silently reduces 16-bit RGB PNG to 8 bits)."""
    if im.format == "PNG":
        bits = _png_bit_depth(path)
        return 8 if bits is None or im.mode == "P" else bits
    if im.format == "TIFF":
        tag = im.tag_v2.get(258)  # BitsPerSample
        if isinstance(tag, tuple):
            return int(max(tag))
        return int(tag) if tag else 8
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return 16
    return 8


def _decode(path: Path) -> tuple[np.ndarray, int, str]:
    """Decode fully; return (array, declared bits per sample, Pillow mode)."""
    try:
        with Image.open(path) as im:
            bits = _declared_bits(im, path)
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            elif mode == "CMYK":
                im = im.convert("RGB")
                mode = "RGB"
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UnreadableImageError(path, "file does not exist") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(path, "not an image (its content matches no known image format)") from None
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(path, f"cannot decode the image, truncated or corrupt ({exc})") from None
    return arr, bits, mode


def _drop_opaque_alpha(arr: np.ndarray, path: Path) -> np.ndarray:
    alpha = arr[..., -1]
    if alpha.min() != 255:
        raise ChannelError(
            path, f"has an alpha channel with transparent pixels (min alpha {int(alpha.min())}); "
            "flatten it onto a background first"
        )
    return arr[..., :-1]


def _collapse_equal_channels(arr: np.ndarray) -> np.ndarray | None:
    """The single channel of an HxWx3 array whose channels are identical, else None."""
    c0 = arr[..., 0]
    if np.array_equal(c0, arr[..., 1]) and np.array_equal(c0, arr[..., 2]):
        return np.ascontiguousarray(c0)
    return None


def _check_size(arr: np.ndarray, path: Path) -> None:
    h, w = arr.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageTooSmallError(path, f"is {w}x{h} px; both sides must be at least {MIN_SIDE} px")


def convert_ir16(arr: np.ndarray, how: Ir16) -> np.ndarray:
    """Map a 16-bit single-channel image to uint8 by the documented conversion ``how`` (see module doc)."""
    x = arr.astype(np.float64)
    if how == "shift":
        return (arr.astype(np.uint32) >> 8).astype(np.uint8)
    if how == "minmax":
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            return np.zeros(arr.shape, np.uint8)
        return np.rint((x - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    raise ValueError(f"unknown 16-bit conversion {how!r}; choose one of {IR16_CHOICES}")


def read_ir(path: str | os.PathLike[str], ir16: Ir16 = "error") -> np.ndarray:
    """Read an IR image as uint8 HxW, validated (see module doc)."""
    path = Path(path)
    arr, bits, mode = _decode(path)
    if bits > 8 or arr.dtype not in (np.uint8,):
        if arr.ndim != 2:
            raise BitDepthError(path, f"is {bits}-bit with {arr.shape[2]} channels; IR must be 8-bit gray")
        if ir16 == "error":
            raise BitDepthError(
                path, f"is a {bits}-bit IR image; DeMMI-RF stores 8-bit IR. Convert it, or ask for a "
                "documented conversion (--ir16 shift|minmax)"
            )
        arr = convert_ir16(arr, ir16)
    if mode == "1":
        raise BitDepthError(path, "is a 1-bit (black and white) image; IR must be 8-bit gray")
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # LA / RGBA
            arr = _drop_opaque_alpha(arr, path)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        elif arr.ndim == 3:
            gray = _collapse_equal_channels(arr)
            if gray is None:
                raise ChannelError(
                    path, "IR image has 3 channels that differ; IR must be one channel (or 3 identical ones)"
                )
            arr = gray
    _check_size(arr, path)
    return np.ascontiguousarray(arr)


def read_vis(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a VIS image as uint8 HxWx3 (RGB) or HxW (gray), validated (see module doc)."""
    path = Path(path)
    arr, bits, mode = _decode(path)
    if bits > 8 or arr.dtype != np.uint8:
        raise BitDepthError(path, f"is a {bits}-bit image; VIS must be 8-bit RGB or gray")
    if mode == "1":
        raise BitDepthError(path, "is a 1-bit (black and white) image; VIS must be 8-bit RGB or gray")
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):
            arr = _drop_opaque_alpha(arr, path)
        if arr.shape[2] == 1:
            arr = arr[..., 0]
        elif arr.shape[2] == 3:
            gray = _collapse_equal_channels(arr)
            if gray is not None:
                arr = gray
        else:  # pragma: no cover - Pillow has no other 8-bit modes we accept
            raise ChannelError(path, f"has {arr.shape[2]} channels; VIS must be RGB or gray")
    _check_size(arr, path)
    return np.ascontiguousarray(arr)
