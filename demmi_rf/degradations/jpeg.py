r"""VIS JPEG compression: encode at quality q, decode (atom ``jpeg``).

.. math::

    y = \operatorname{dec}\big(\operatorname{enc}_q(\operatorname{rint}(\operatorname{clip}(x, 0, 255)))\big)

the baseline JPEG codec (ITU-T T.81): RGB → YCbCr (JFIF), 4:2:0 chroma subsampling, 8×8 integer DCT
(libjpeg's "islow"), quantisation by the IJG tables scaled to quality q, Huffman coding; decoded with the
same integer IDCT and libjpeg's "fancy" (triangular) chroma upsampling. A gray (H x W) image is coded as one
luminance channel. This is the ``jpeg_compression`` corruption of Hendrycks & Dietterich (ICLR 2019:
qualities 25, 18, 15, 10, 7) and albumentations ``ImageCompression``; per sample q is uniform among the
recipe's qualities (``[degradations.jpeg]``).

**The one atom that quantises.** A JPEG codec takes 8-bit samples, so the float32 input is clipped and
rounded half to even (the composition's own quantisation, :func:`._arrays.quantize`) before encoding; it is
the last stage of the VIS chain (``STAGE_PROCESSING``: the camera's or the web's encoder), its output is the
decoded uint8 image as float32, and the composition's final rounding leaves it unchanged.

**Colour order.** The codec is OpenCV's (``cv2.imencode`` / ``cv2.imdecode``), which expects BGR: the RGB
image is handed over as BGR and the result turned back (decoded straight to RGB with ``IMREAD_COLOR_RGB`` where
OpenCV has it, >= 4.10: libjpeg-turbo's RGB output holds the same values as its BGR output, swapped), so the
luma weights fall on the right channels (passing RGB straight in, a common slip, gives R the weight of B in Y
and changes the chroma errors).

**Portability.** OpenCV ships libjpeg-turbo; its integer DCT, colour conversion and fancy upsampling are
bit-exact between its SIMD and plain C code paths. Checked in the tests: the bytes equal those of Pillow's
separately built libjpeg-turbo run in a subprocess with its SIMD disabled (``JSIMD_FORCENONE=1``; OpenCV's
bundled copy ignores that variable) and OpenCV's optimisations off. They are *not* guaranteed across codec
libraries: IJG libjpeg 9, mozjpeg or a libjpeg-turbo configured for another DCT produce other bytes. The
atom is therefore marked codec-dependent in its spec (``AtomSpec.codec`` = :func:`codec`, so
``SPEC.codec_dependent`` is true and :func:`demmi_rf.degradations.codec_libraries` lists it) and in
``docs/degradations.md``; :func:`codec` names the library a build used.

**The compiled round trip.** The decoded pixels depend only on the codec's lossy stages; the entropy coding
(Huffman) is lossless. ``demmi_rf/_jpegfast.c`` computes exactly those stages as libjpeg-turbo does with its
defaults, in integer arithmetic: the colour conversion and 2x2 chroma sums with their rounding biases, the edge
replication, the islow forward DCT, quantisation rounded half away from zero, dequantisation, the islow inverse DCT
with libjpeg's range-limit table, fancy upsampling and the colour conversion back (each formula in that file;
``tests/jpeg_reference.py`` states them in numpy). :func:`compress` uses it for images of at least 16 × 16 when the
CPU has AVX2 (its portable C block coder is slower than OpenCV's codec, which then runs) and a probe once per
process shows it gives OpenCV's bytes on colour and gray images of odd and even sizes at qualities 1 to 100
(:func:`_round_trip_kernel`); ``tests/test_jpeg_kernel.py`` compares both of its block coders with OpenCV on
hundreds of images and on a whole sample at every quality. The bytes are OpenCV's either way; on 640x480 RGB it
takes about 1.0 ms against 1.3 ms for OpenCV's encode + decode (``docs/degradations.md`` section 7).

Registered atom (:mod:`.registry`): ``jpeg`` (family ``jpeg``, VIS, stage :data:`~.registry.STAGE_PROCESSING`
= 40), parameter ``quality`` (integer choice in [1, 100]).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import scratch
from .registry import CHOICE, STAGE_PROCESSING, AtomSpec, Param, register_atom

PARAMS = (
    Param("quality", CHOICE, lo=1, hi=100, default=[20, 30, 40, 50, 60], doc="q: JPEG quality (IJG scale)"),
)

#: five severity levels, mildest first (levels 4-5 cover ImageNet-C's qualities 18-7)
SEVERITY = (
    {"quality": [60, 70, 80]},
    {"quality": [40, 45, 50]},
    {"quality": [25, 30, 35]},
    {"quality": [15, 18, 20]},
    {"quality": [7, 10, 12]},
)


def codec() -> str:
    """The JPEG library OpenCV was built with, e.g. ``"build-libjpeg-turbo (ver 3.1.2-70)"``."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("JPEG:"):
            return line.split(":", 1)[1].strip()
    return "unknown"  # pragma: no cover - every OpenCV build reports its JPEG library


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "jpeg") -> dict:
    """q: one ``below`` draw among the recipe's qualities."""
    return {"quality": int(_ranges.draw_param(rng, ranges, PARAMS[0], atom))}


def compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode the uint8 RGB (H x W x 3) or gray (H x W) ``image`` at ``quality`` and decode it (uint8): by the
    compiled round trip where it is used (see the module docstring), else by OpenCV's codec; the same bytes."""
    if isinstance(quality, bool) or int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality!r}")
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"JPEG needs a uint8 H x W or H x W x 3 image, got {image.dtype} {image.shape}")
    squeeze = image.ndim == 3 and image.shape[2] == 1
    src = image[:, :, 0] if squeeze else image
    colour = src.ndim == 3
    kernel = _round_trip_kernel()
    if kernel is not None and min(src.shape[:2]) >= _KERNEL_MIN_SIDE:  # the same pixels without the entropy coding
        src = np.ascontiguousarray(src)
        out = np.empty(src.shape, np.uint8)
        kernel(src, out, src.shape[0], src.shape[1], 3 if colour else 1, int(quality))
    else:
        out = _opencv_round_trip(src, quality)
    return out[:, :, None] if squeeze else out


def _opencv_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """OpenCV's encode + decode of a uint8 RGB (H x W x 3) or gray (H x W) image (what :func:`compress` computes,
    and the compiled round trip's probe)."""
    import cv2

    colour = image.ndim == 3
    src = image
    if colour:  # a pure channel swap into a reused per-thread buffer (no fresh pages per call)
        src = cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=_bgr_buffer(image.shape))
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any non-empty uint8 image
        raise RuntimeError("the JPEG encoder failed")
    if not colour:
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if _rgb_decode_flag() is not None:  # libjpeg-turbo writes RGB, not BGR: the same values in our channel order
        return cv2.imdecode(buf, _rgb_decode_flag())
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # pragma: no cover - OpenCV < 4.10
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)  # pragma: no cover


#: the compiled round trip handles images of at least this many rows and columns (smaller ones go to OpenCV)
_KERNEL_MIN_SIDE = 16


@lru_cache(maxsize=1)
def _round_trip_kernel() -> Callable[..., None] | None:
    """The compiled round trip (``demmi_rf._jpegfast.roundtrip``: the pixels of libjpeg-turbo's lossy stages,
    without the entropy coding, which does not change them), or None: not built, ``DEMMI_RF_NUMPY_ZIGGURAT=1``,
    a CPU without AVX2 (its portable C path is slower than OpenCV's codec, so OpenCV runs), or a probe (once per
    process) where it differs from OpenCV's codec on colour and gray images of odd and even sizes, flat, random
    and two-level content, at qualities 1 to 100."""
    from ..kernel import compiled_module  # noqa: PLC0415 - imported only when a JPEG is made

    module = compiled_module("_jpegfast")
    if module is None or not module.accelerated():
        return None
    rng = np.random.default_rng(14)
    for h, w, q in [(16, 16, 1), (17, 35, 50), (40, 33, 95), (31, 48, 10), (24, 19, 100)]:
        for img in (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w), dtype=np.uint8),
                    (rng.integers(0, 2, (h, w, 3)) * 255).astype(np.uint8), np.full((h, w, 3), 77, np.uint8)):
            got = np.empty_like(img)
            module.roundtrip(img, got, h, w, 1 if img.ndim == 2 else 3, q)
            if not np.array_equal(got, _opencv_round_trip(img, q)):
                return None
    return module.roundtrip


_local = threading.local()


def _bgr_buffer(shape: tuple[int, ...]) -> np.ndarray:
    buf = getattr(_local, "bgr", None)
    if buf is None or buf.shape != shape:
        buf = _local.bgr = np.empty(shape, np.uint8)
    return buf


@lru_cache(maxsize=1)
def _rgb_decode_flag() -> int | None:
    import cv2

    return getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10: decode straight to RGB


def apply(image: np.ndarray, rng: Stream | None = None, *, quality: int, inplace: bool = False) -> np.ndarray:
    """The decoded JPEG of ``rint(clip(image))`` at ``quality``, as float32. Draws nothing."""
    x = np.asarray(image)
    if x.dtype.kind not in "uif" or x.dtype == np.bool_:
        raise TypeError(f"expected a numeric image array, got dtype {x.dtype}")
    if x.size == 0:
        return x.astype(np.float32)
    if x.dtype == np.float32:  # the composition's quantisation, in a reused buffer
        q = np.clip(x, 0.0, 255.0, out=scratch("jpeg.q", x.shape))
        np.rint(q, out=q)
        x = q.astype(np.uint8)
    elif x.dtype != np.uint8:
        q = np.clip(x, 0.0, 255.0).astype(np.float32)
        np.rint(q, out=q)
        x = q.astype(np.uint8)
    dec = compress(x, quality)
    out = np.asarray(image)
    if inplace and out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable:
        out[...] = dec
        return out
    return dec.astype(np.float32)


def apply_uint8(image: np.ndarray, rng: Stream | None = None, *, quality: int) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image: the decoded JPEG itself (:func:`apply` rounds a uint8-valued
    input to itself and returns integers in [0, 255], which the final rounding keeps). Draws nothing."""
    if image.size == 0:
        return image.copy()
    return compress(image, quality)


SPEC = register_atom(AtomSpec(
    name="jpeg", label_index=10,
    family="jpeg", modality="vis", stage=STAGE_PROCESSING, params=PARAMS, draw=draw, apply=apply,
    summary="JPEG compression (libjpeg-turbo via OpenCV, 4:2:0, islow DCT)", label="jpeg q={quality}",
    severity=SEVERITY, random_apply=False, codec=codec, apply_uint8=apply_uint8,
))
