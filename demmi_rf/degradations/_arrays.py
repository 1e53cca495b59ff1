"""Array helpers shared by the atoms: the float32 work buffer and the single final quantisation."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

_UINT8 = np.dtype(np.uint8)


def work_buffer(image: np.ndarray, inplace: bool = False) -> np.ndarray:
    """A float32 array on the 0-255 scale that an atom may modify.

    uint8 (or any non-float32) input is converted (a new array); a float32 input is copied unless
    ``inplace`` (then the caller's buffer is reused and overwritten).
    """
    image = np.asarray(image)
    if image.dtype != np.float32:
        if image.dtype.kind not in "uif" or image.dtype == np.bool_:
            raise TypeError(f"expected a numeric image array, got dtype {image.dtype}")
        return image.astype(np.float32)
    if inplace and image.flags.c_contiguous and image.flags.writeable:
        return image
    return np.array(image, dtype=np.float32, order="C", copy=True)


def filter_float32(image: np.ndarray, inplace: bool, blur: Callable[..., np.ndarray]) -> np.ndarray:
    """Run a linear filter ``blur(src, out=None)`` of a blur atom on a float32 view of ``image``.

    A non-float32 input is converted once and filtered into that new buffer; a float32 input is filtered into
    itself when ``inplace`` and it is C-contiguous and writable, otherwise into a new array (the caller's image is
    left untouched). The defocus and motion atoms share this, so their buffer rules are one rule.
    """
    image = np.asarray(image)
    if image.dtype != np.float32:
        if image.dtype.kind not in "uif" or image.dtype == np.bool_:
            raise TypeError(f"expected a numeric image array, got dtype {image.dtype}")
        src = image.astype(np.float32)
        return blur(src, out=src)
    if inplace and image.flags.c_contiguous and image.flags.writeable:
        return blur(image, out=image)
    return blur(image)


#: numpy's ``clip`` ufunc itself (what ``np.clip`` calls after its Python-level argument handling, about 2 µs a
#: call): the same function, so the same values; ``np.clip`` where a numpy build does not expose it there
_CLIP: Callable[..., Any] = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", None) or np.clip
if not isinstance(_CLIP, np.ufunc):  # pragma: no cover - another numpy layout
    _CLIP = np.clip


def quantize(work: np.ndarray) -> np.ndarray:
    r"""float32 0-255 -> uint8: clip to [0, 255] then round half to even (``np.rint``), once, at the end.

    .. math:: y = \operatorname{rint}(\min(\max(x, 0), 255))

    Clipping before the cast is what prevents the float -> uint8 wrap-around (``-1 -> 255``) of a bare
    ``astype``; rounding instead of truncation keeps the mean unbiased (truncation shifts it by -0.5).
    ``work`` is modified in place.
    """
    _CLIP(work, 0.0, 255.0, out=work)
    np.rint(work, out=work)
    return work.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _opencv_rounds_like_rint() -> bool:
    """Whether ``cv2.convertScaleAbs`` (alpha 1, beta 0) of float32 values in [0, 255] gives ``rint`` (half to even)
    on its vectorised and its scalar path, probed once per process on every half-integer, its float32 neighbours,
    the integers and their neighbours, and random values: when not, :func:`quantize_into_uint8` uses numpy."""
    import cv2  # noqa: PLC0415 - OpenCV is imported on first use

    k = np.arange(0, 256, dtype=np.float32)
    half = np.concatenate([k, k[:-1] + np.float32(0.5)])
    probe = np.concatenate([half, np.nextafter(half, np.float32(0)), np.nextafter(half, np.float32(256)),
                            np.random.default_rng(0).random(4096, dtype=np.float32) * np.float32(255),
                            np.array([0.0, 255.0, 1e-45, 254.99998], np.float32)])
    probe = np.clip(probe, 0.0, 255.0).astype(np.float32)
    want = np.rint(probe).astype(np.uint8)
    row = cv2.convertScaleAbs(probe.reshape(1, -1)).reshape(-1)
    wide = np.zeros((probe.size, 2), np.float32)
    wide[:, 0] = probe
    column = cv2.convertScaleAbs(wide[:, :1]).reshape(-1)
    return bool(np.array_equal(row, want) and np.array_equal(column, want))


def quantize_into_uint8(work: np.ndarray) -> np.ndarray:
    r""":func:`quantize` of a finite float32 ``work`` (modified in place): clip to [0, 255], then rint and the cast
    in one OpenCV conversion (``cv2.convertScaleAbs``: saturate_cast of the value, round half to even, identical to
    rint on [0, 255] where the probe :func:`_opencv_rounds_like_rint` confirms it, else numpy's rint + cast).
    Two passes instead of three; NaN is not allowed (numpy's cast of NaN is undefined)."""
    _CLIP(work, 0.0, 255.0, out=work)
    if work.size and _opencv_rounds_like_rint():
        import cv2  # noqa: PLC0415

        flat = work.reshape(work.shape[0], -1) if work.ndim >= 2 else work.reshape(1, -1)
        return cv2.convertScaleAbs(flat).reshape(work.shape)
    np.rint(work, out=work)
    return work.astype(np.uint8)


def out_array(out: np.ndarray | None, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The ``out=`` argument of the array functions here: ``out`` itself when it is a C-contiguous array of
    ``shape`` and ``dtype`` (else ``ValueError`` naming what is expected), or a new array when it is None."""
    shape = tuple(shape)
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}")
    return out


@functools.lru_cache(maxsize=1)
def _byte_translate() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """``f(src, table, dst)``: dst = table[src] for contiguous uint8 arrays of one size, by stringzilla's
    byte translation (SIMD table look-up; the dependency albumentations' tone curves use), or None when
    stringzilla is missing or does not give the gather's bytes on a probe (checked once per process): then
    :func:`lut_uint8` uses ``cv2.LUT``. A table look-up is exact, so both give the same bytes."""
    try:
        import stringzilla as sz  # noqa: PLC0415 - optional speed-up, cv2.LUT otherwise
    except ImportError:
        return None

    def with_out(src: np.ndarray, table: np.ndarray, dst: np.ndarray) -> None:
        sz.translate(memoryview(src.reshape(-1)), memoryview(table), out=memoryview(dst.reshape(-1)))

    def in_place(src: np.ndarray, table: np.ndarray, dst: np.ndarray) -> None:  # stringzilla without out=
        flat = dst.reshape(-1)
        flat[...] = src.reshape(-1)
        sz.translate(memoryview(flat), memoryview(table), inplace=True)

    src = np.arange(1023, dtype=np.uint64).astype(np.uint8)[::-1].copy()
    table = ((np.arange(256) * 167 + 11) % 256).astype(np.uint8)
    for translate in (with_out, in_place):
        dst = np.zeros_like(src)
        try:
            translate(src, table, dst)
        except (TypeError, ValueError, BufferError, AttributeError):
            continue
        if np.array_equal(dst, table[src]):
            return translate
    return None


def lut_uint8(image: np.ndarray, table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``table[image]`` for a uint8 ``image`` of any shape and a 256-entry ``table`` (uint8 or float32): a pure
    gather, so the values are the table's bits exactly; an array of the image's shape and the table's dtype
    (``out``, C-contiguous of that shape and dtype, when given). A uint8 table goes through stringzilla's byte
    translation when it is installed (:func:`_byte_translate`, about 3 times faster than ``cv2.LUT`` on a
    640x480 image), else and for float32 tables through ``cv2.LUT`` on a 2-D view; same bytes either way."""
    if image.dtype != np.uint8:
        raise TypeError(f"lut_uint8 needs a uint8 image, got {image.dtype}")
    table = np.ascontiguousarray(table)
    if table.shape != (256,):
        raise ValueError(f"lut_uint8 needs a 256-entry table, got shape {table.shape}")
    out = out_array(out, image.shape, table.dtype)
    if image.size == 0:
        return out
    return _gather(np.ascontiguousarray(image), table, out)


def _gather(x: np.ndarray, table: np.ndarray | bytes, out: np.ndarray) -> np.ndarray:
    """:func:`lut_uint8`'s look-up, arguments already checked: ``out[...] = table[x]`` for a non-empty C-contiguous
    uint8 ``x``, a C-contiguous 256-entry ``table`` (or 256 bytes, uint8 codes) and a C-contiguous ``out`` of x's
    shape and table's dtype."""
    if type(table) is bytes:  # quantised codes from the kernel (:func:`table_lookup_uint8`)
        translate = _byte_translate()
        if translate is None:
            table = np.frombuffer(table, np.uint8)
    else:
        translate = _byte_translate() if table.dtype is _UINT8 or table.dtype == np.uint8 else None
    if translate is not None:
        translate(x, table, out)
        return out
    import cv2

    rows = x.reshape(x.shape[0], -1) if x.ndim >= 2 else x.reshape(1, -1)
    dst = out.reshape(rows.shape)
    if cv2.LUT(rows, table, dst=dst) is not dst:  # pragma: no cover - OpenCV reallocated
        dst[...] = cv2.LUT(rows, table)
    return out


def table_lookup_uint8(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``quantize(table)[image]`` for a uint8 ``image`` and a float32 256-entry ``table`` of an atom's map on the
    levels 0..255 (``table`` is modified: clipped and rounded in place): the uint8 fast path of a pointwise atom,
    one pass over the image. A new uint8 array of the image's shape."""
    if image.dtype != np.uint8 or table.shape != (256,) or table.dtype != np.float32:
        raise TypeError(f"table_lookup_uint8 needs a uint8 image and a float32 table of 256 entries, got "
                        f"{image.dtype} and {table.dtype} {table.shape}")
    kernel = _table_kernel()
    codes = kernel(table) if kernel is not None else None  # bytes, or None (no kernel, or a NaN: numpy decides)
    if codes is None:
        codes = quantize(table)
    out = np.empty(image.shape, np.uint8)
    if image.size == 0:
        return out
    return _gather(image if image.flags.c_contiguous else np.ascontiguousarray(image), codes, out)


@functools.lru_cache(maxsize=1)
def _table_kernel() -> Callable[[np.ndarray], bytes | None] | None:
    """The compiled kernel's ``quantize_table`` (:func:`quantize` of a 256-entry float32 table in one call, as
    bytes), or None: when the kernel is missing, when ``DEMMI_RF_NUMPY_ZIGGURAT=1``, or when it does not give
    :func:`quantize`'s bytes on a probe (checked once per process) of every half-integer from -2 to 257, their
    float32 neighbours, the integers, signed zeros, huge values and infinities, and random values."""
    from ..kernel import compiled_routine  # noqa: PLC0415 - the kernel module imports nothing from here

    routine = compiled_routine("quantize_table")
    if routine is None:
        return None
    k = np.arange(-2, 258, dtype=np.float32)
    half = np.concatenate([k, k + np.float32(0.5)])
    probe = np.concatenate([half, np.nextafter(half, np.float32(-np.inf)), np.nextafter(half, np.float32(np.inf)),
                            np.array([0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, np.inf, -np.inf], np.float32),
                            np.random.default_rng(0).normal(128, 150, 4096).astype(np.float32)])
    for start in range(0, probe.size, 256):
        chunk = probe[start:start + 256]
        if routine(chunk) != quantize(chunk.copy()).tobytes():
            return None
    nan = np.zeros(256, np.float32)
    nan[7] = np.nan
    return routine if routine(nan) is None else None


def pointwise_uint8(apply: Callable[..., np.ndarray], image: np.ndarray, **params: object) -> np.ndarray:
    """``quantize(apply(float32(image), **params))`` for an atom whose ``apply`` is a deterministic per-element
    function of the value (the same float32 operations on every element, no neighbours, no draws): ``apply`` runs
    once on the 256 levels 0..255 and the quantised table is looked up (:func:`lut_uint8`). Each element's
    operations are those of the full-image call, so the bytes are the same."""
    return table_lookup_uint8(image, apply(_LEVELS.copy(), None, inplace=True, **params))


#: the 256 levels 0..255 as float32 (read-only: :func:`pointwise_uint8` maps a copy)
_LEVELS = np.arange(256, dtype=np.float32)
_LEVELS.setflags(write=False)


_local = threading.local()


def scratch(key: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A per-thread C-contiguous buffer of ``shape`` and ``dtype`` named ``key``, reused across calls (so that an
    atom's temporaries do not fault in fresh pages per image). Valid until the same thread asks for ``key``
    again: never return it to a caller that keeps it."""
    n = math.prod(shape)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buf = buffers.get(key)
    if buf is None or buf.size < n or buf.dtype != dtype:
        buf = buffers[key] = np.empty(n, dtype)
    return buf[:n].reshape(shape)
