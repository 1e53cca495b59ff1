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
* Decompression bombs: an image whose header declares more than ``max_pixels`` pixels (default
  :data:`DEFAULT_MAX_PIXELS` = 4096 x 4096 = 16 777 216: room for LLVIP's 1280x1024, 4K UHD 3840x2160 and DCI 4K
  4096x2160) is refused from its header, before any pixel is decoded (:class:`~demmi_rf.errors.ImageTooLargeError`).
  A 0.6 MB PNG can declare 25000 x 25000 pixels; building it costs about 40 bytes per pixel per worker.
* Colour modes: gray, RGB, RGBA/LA, palette and 16-bit gray are read as described above; CMYK is converted to RGB
  by Pillow's naive formula (no ICC profile); YCbCr (TIFF) is converted to RGB with the JFIF/BT.601 full-range
  equations when the file declares the TIFF default coefficients and reference range, refused otherwise; CIE
  L*a*b* and every other mode are refused (read as RGB they would give wrong colours silently).
* The ``ir16`` conversions apply to 16-bit unsigned integer images only; 32-bit integer and floating-point images
  are refused whatever ``ir16`` says (``floor(x / 256)`` of a float or 32-bit range is meaningless).
* EXIF orientation tags are ignored: pixels are used as stored. Registration is defined between the stored pixel
  grids of the IR and VIS files (IR formats rarely carry the tag; applying it to one side only would break the
  pair). Pillow ignores the tag as well; ``cv2.imread`` applies it unless told not to.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import (
    BitDepthError,
    ChannelError,
    DemmiError,
    ImageTooLargeError,
    ImageTooSmallError,
    UnreadableImageError,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_SIDE = 32
Ir16 = Literal["error", "shift", "minmax"]
IR16_CHOICES = ("error", "shift", "minmax")

#: Default decoding limit in pixels (height x width) of one image: 4096 x 4096 (module docstring).
DEFAULT_MAX_PIXELS = 4096 * 4096
#: JFIF (BT.601 full range) YCbCr: the TIFF defaults of YCbCrCoefficients (529) and ReferenceBlackWhite (532)
_YCBCR_COEFFS = (0.299, 0.587, 0.114)
_YCBCR_REFERENCE = (0.0, 255.0, 128.0, 255.0, 128.0, 255.0)
#: Pillow modes read as they are (the others are converted or refused in :func:`_decode`)
_DIRECT_MODES = ("1", "L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def check_max_pixels(max_pixels: int) -> int:
    """``max_pixels`` as an int, or ``ValueError`` when it is not a positive integer."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)


def _honour_limit(max_pixels: int) -> None:
    """Pillow refuses images over twice ``PIL.Image.MAX_IMAGE_PIXELS`` inside ``open()``; a limit raised above it
    on purpose (``max_pixels``) raises Pillow's, for this process (never lowers it)."""
    max_pixels = check_max_pixels(max_pixels)
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def image_size(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` declared by an image file's header (nothing is decoded). ``max_pixels`` above
    Pillow's own limit raises that limit, as the readers do.

    Raises :class:`~demmi_rf.errors.UnreadableImageError` naming the file when it is not a readable image, and
    :class:`~demmi_rf.errors.ImageTooLargeError` when Pillow refuses to open it (over twice
    ``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    path = Path(path)
    _honour_limit(max_pixels)
    try:
        with _open_image(path) as im:
            return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc, DEFAULT_MAX_PIXELS) from None


def _bomb_error(path: Path, exc: Exception, max_pixels: int) -> ImageTooLargeError:
    """The :class:`ImageTooLargeError` of an image that Pillow itself refused to open (more than twice
    ``PIL.Image.MAX_IMAGE_PIXELS``)."""
    return ImageTooLargeError(
        path, f"declares more pixels than Pillow opens ({exc}); more than the limit of {max_pixels}; refused before "
        "decoding (a small file can declare a huge image). If the image is genuine, raise the limit (--max-pixels, "
        "or max_pixels=)")


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise UnreadableImageError(path, "file does not exist") from None
    except PermissionError:
        raise UnreadableImageError(path, "permission denied (cannot read the file)") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(path, "not an image (its content matches no known image format)") from None
    except Image.DecompressionBombError:
        raise
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise UnreadableImageError(path, f"cannot decode the image, truncated or corrupt ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a crafted header may trip any plugin: never a traceback
        raise UnreadableImageError(path, f"cannot read the image header ({type(exc).__name__}: {exc})") from None


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            path, f"is {w}x{h} px = {w * h} pixels, more than the limit of {max_pixels} "
            f"(about {max_pixels / 1e6:.1f} megapixels); refused before decoding (a small file can declare a huge "
            "image). If the image is genuine, raise the limit (--max-pixels, or max_pixels=)"
        )


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


def _decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int, str]:
    """Check the header against ``max_pixels``, then decode fully; return (array, declared bits per sample,
    Pillow mode after the conversions of the module docstring)."""
    _honour_limit(max_pixels)
    try:
        with _open_image(path) as im:
            _check_pixels(path, im.size, max_pixels)
            bits = _declared_bits(im, path)
            mode = im.mode
            if mode not in _DIRECT_MODES and mode not in ("P", "CMYK", "RGBX"):
                _check_convertible(im, path)
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            elif mode in ("CMYK", "YCbCr", "RGBX"):
                im = im.convert("RGB")
                mode = "RGB"
            arr = np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc, max_pixels) from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise UnreadableImageError(path, f"cannot decode the image, truncated or corrupt ({exc})") from None
    except MemoryError:
        raise UnreadableImageError(path, "not enough memory to decode the image") from None
    except DemmiError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crafted file may trip any decoder path: never a traceback
        raise UnreadableImageError(path, f"cannot decode the image ({type(exc).__name__}: {exc})") from None
    return arr, bits, mode


def _check_convertible(im: Image.Image, path: Path) -> None:
    """Refuse the colour modes that cannot be converted to RGB correctly (module docstring)."""
    if im.mode == "YCbCr" and im.format == "TIFF":
        coeffs = im.tag_v2.get(529, _YCBCR_COEFFS)
        ref = im.tag_v2.get(532, _YCBCR_REFERENCE)
        if (np.allclose(tuple(map(float, coeffs)), _YCBCR_COEFFS, atol=1e-4)
                and np.allclose(tuple(map(float, ref)), _YCBCR_REFERENCE)):
            return
        raise ChannelError(path, f"is a YCbCr image with coefficients {tuple(coeffs)} and reference range "
                           f"{tuple(ref)}, not the JFIF ones this toolkit converts; save it as RGB")
    if im.mode == "YCbCr":
        return
    what = {"LAB": "a CIE L*a*b* image", "HSV": "an HSV image"}.get(im.mode, f"a {im.mode} image")
    raise ChannelError(path, f"is {what}; reading it as RGB would give wrong colours. Save it as RGB or gray")


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
    """Map a 16-bit unsigned single-channel image to uint8 by the documented conversion ``how``: ``shift``
    ``y = floor(x / 256)``; ``minmax`` ``y = round(255 (x - min) / (max - min))`` (0 for a constant image).

    ``ValueError`` for an array that is not integer-valued within ``[0, 65535]`` (a 32-bit or float image):
    neither formula is meaningful there, and ``shift`` would silently wrap or zero it.
    """
    if arr.dtype.kind not in "ui":
        raise ValueError(f"the 16-bit conversions apply to integer images, not {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
        raise ValueError(f"values span [{int(arr.min())}, {int(arr.max())}], outside the 16-bit range [0, 65535]")
    if how == "shift":
        return (arr.astype(np.uint32) >> 8).astype(np.uint8)
    if how == "minmax":
        x = arr.astype(np.float64)
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            return np.zeros(arr.shape, np.uint8)
        return np.rint((x - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    raise ValueError(f"unknown 16-bit conversion {how!r}; choose one of {IR16_CHOICES}")


def read_ir(path: str | os.PathLike[str], ir16: Ir16 = "error", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an IR image as uint8 HxW, validated (see module doc); more than ``max_pixels`` pixels is refused
    from the header (:class:`~demmi_rf.errors.ImageTooLargeError`)."""
    path = Path(path)
    arr, bits, mode = _decode(path, max_pixels)
    if bits > 8 or arr.dtype not in (np.uint8,):
        if arr.ndim != 2:
            raise BitDepthError(path, f"is {bits}-bit with {arr.shape[2]} channels; IR must be 8-bit gray")
        if arr.dtype.kind == "f" or mode == "F":
            raise BitDepthError(
                path, f"is a {bits}-bit floating-point IR image; DeMMI-RF stores 8-bit IR and converts only 16-bit "
                "integer IR (--ir16); convert it to 8 bits yourself (the right scaling depends on the camera)"
            )
        if bits > 16:
            raise BitDepthError(
                path, f"is a {bits}-bit integer IR image; DeMMI-RF stores 8-bit IR and converts only 16-bit IR "
                "(--ir16); convert it to 8 bits yourself (the right scaling depends on the camera)"
            )
        if ir16 == "error":
            raise BitDepthError(
                path, f"is a {bits}-bit IR image; DeMMI-RF stores 8-bit IR. Convert it, or ask for a "
                "documented conversion (--ir16 shift|minmax)"
            )
        try:
            arr = convert_ir16(arr, ir16)
        except ValueError as exc:
            raise BitDepthError(path, f"cannot convert this {bits}-bit IR image with --ir16 {ir16}: {exc}") from None
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


def read_vis(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a VIS image as uint8 HxWx3 (RGB) or HxW (gray), validated (see module doc); more than ``max_pixels``
    pixels is refused from the header (:class:`~demmi_rf.errors.ImageTooLargeError`)."""
    path = Path(path)
    arr, bits, mode = _decode(path, max_pixels)
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
