"""The jpeg atom's compiled round trip (``demmi_rf/_jpegfast.c``) against OpenCV's codec and the numpy reference.

The kernel computes the pixels of libjpeg-turbo's lossy stages without the entropy coding; ``jpeg.compress`` uses
it only after a probe shows it gives OpenCV's bytes. Here both of its block coders (portable C and AVX2) and the
step-by-step numpy reference (``tests/jpeg_reference.py``) are compared with OpenCV's ``imencode`` + ``imdecode`` on
hundreds of images of every size class and quality.
"""

from __future__ import annotations

import numpy as np
import pytest

from demmi_rf import kernel
from demmi_rf.degradations import jpeg

from . import jpeg_reference
from .conftest import compiled_or_skip


def _module():
    return compiled_or_skip(lambda: kernel.compiled_module("_jpegfast"))


def _paths(module) -> list[int]:
    return [1, 2] if module.accelerated() else [1]


def _images(seed: int, count: int, vis: np.ndarray):
    """``count`` images of 16 to 89 rows and columns: random noise, crops of a real picture, two-level edges, flat
    colour, gray noise and gray crops, each with a random quality in [1, 100]."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(16, 90, 2))
        q = int(rng.integers(1, 101))
        kind = i % 6
        if kind == 0:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 1:
            y0, x0 = (int(v) for v in rng.integers(0, (vis.shape[0] - h, vis.shape[1] - w)))
            img = np.ascontiguousarray(vis[y0:y0 + h, x0:x0 + w])
        elif kind == 2:
            img = (rng.integers(0, 2, (h, w, 3)) * 255).astype(np.uint8)
        elif kind == 3:
            img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
        elif kind == 4:
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        else:
            img = np.ascontiguousarray(vis[:h, :w, 1])
        yield img, q


def _kernel(module, img: np.ndarray, q: int, path: int) -> np.ndarray:
    out = np.empty_like(img)
    module.roundtrip(img, out, img.shape[0], img.shape[1], 1 if img.ndim == 2 else 3, q, path)
    return out


def test_both_block_coders_give_opencvs_bytes_on_every_size_class_and_quality(msrs_pair):
    module = _module()
    vis = msrs_pair[0]
    for img, q in _images(1, 360, vis):
        want = jpeg._opencv_round_trip(img, q)
        for path in _paths(module):
            assert np.array_equal(_kernel(module, img, q, path), want), (img.shape, q, path)


def test_the_whole_sample_at_every_quality(msrs_pair):
    module = _module()
    vis, ir = msrs_pair
    for q in range(1, 101):
        for img in (vis, ir):
            want = jpeg._opencv_round_trip(img, q)
            paths = _paths(module) if q % 11 == 0 else _paths(module)[-1:]  # the portable coder on every 11th
            for path in paths:
                assert np.array_equal(_kernel(module, img, q, path), want), (img.shape, q, path)


def test_the_numpy_reference_gives_opencvs_bytes(msrs_pair):
    """The step-by-step statement of the computation (``tests/jpeg_reference.py``) is the same function."""
    for img, q in _images(2, 120, msrs_pair[0]):
        if img.ndim == 3:
            assert np.array_equal(jpeg_reference.roundtrip(img, q), jpeg._opencv_round_trip(img, q)), (img.shape, q)


def test_the_reciprocal_quantiser_is_the_rounded_division():
    """libjpeg-turbo's 16-bit reciprocal (the AVX2 coder's quantiser): (|t| + c)·f >> s, computed modulo 2^32, equals
    (|t| + d/2) // d for every divisor d = 8q (q = 1..255) and every |t| < 2^15 (the islow DCT's range)."""
    t = np.arange(0, 1 << 15, dtype=np.int64)
    for q in range(1, 256):
        d = 8 * q
        b = d.bit_length() - 1
        r = 16 + b
        f, rem = divmod(1 << r, d)
        c = d // 2
        if rem == 0:
            f, r = f >> 1, r - 1
        elif rem <= d // 2:
            c += 1
        else:
            f += 1
        assert f < 1 << 16
        assert np.array_equal((((t + c) * f) & 0xFFFFFFFF) >> r, (t + d // 2) // d), q


def test_bad_arguments_are_refused_with_the_rule():
    module = _module()
    img = np.zeros((16, 16, 3), np.uint8)
    out = np.empty_like(img)
    for args in [(img, out, 16, 16, 2, 50), (img, out, 15, 16, 3, 50), (img, out, 16, 16, 3, 0),
                 (img, out, 16, 16, 3, 101), (img, np.empty((16, 16), np.uint8), 16, 16, 3, 50),
                 (img, out, 16, 16, 3, 50, 3)]:
        with pytest.raises(ValueError, match="roundtrip"):
            module.roundtrip(*args)
    with pytest.raises(TypeError):
        module.roundtrip(img, bytes(out.size), 16, 16, 3, 50)  # a read-only destination
    with pytest.raises(ValueError, match="no compiled module"):
        kernel.compiled_module("_other")


def test_compress_uses_the_kernel_from_16_pixels_and_opencv_below(monkeypatch):
    real = compiled_or_skip(jpeg._round_trip_kernel)
    calls = []
    monkeypatch.setattr(jpeg, "_round_trip_kernel", lambda: lambda *a: (calls.append(a[2:4]), real(*a))[1])
    rng = np.random.default_rng(3)
    for shape in [(16, 16, 3), (15, 40, 3), (40, 15), (16, 16, 1), (64, 48)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        got = jpeg.compress(img, 30)
        want = jpeg._opencv_round_trip(img[:, :, 0] if img.ndim == 3 and shape[2] == 1 else img, 30)
        assert got.shape == img.shape and np.array_equal(got.reshape(want.shape), want), shape
    assert calls == [(16, 16), (16, 16), (64, 48)]


def test_a_kernel_that_differs_from_opencv_or_lacks_avx2_is_not_used(monkeypatch):
    module = _module()

    class Off:
        @staticmethod
        def accelerated():
            return True

        @staticmethod
        def roundtrip(src, dst, h, w, channels, q, path=0):
            module.roundtrip(src, dst, h, w, channels, q, path)
            dst.reshape(-1)[-1] ^= 1  # the last byte off by one

    class Slow(Off):
        @staticmethod
        def accelerated():
            return False

        roundtrip = staticmethod(module.roundtrip)

    for fake in (Off, Slow):
        monkeypatch.setattr(kernel, "compiled_module", lambda name="_zigfast", fake=fake: fake)
        jpeg._round_trip_kernel.cache_clear()
        try:
            assert jpeg._round_trip_kernel() is None
        finally:
            monkeypatch.undo()
            jpeg._round_trip_kernel.cache_clear()
    monkeypatch.setenv(kernel.NUMPY_ONLY_ENV, "1")
    assert kernel.compiled_module("_jpegfast") is None


def test_threads_share_the_kernel_safely(msrs_pair):
    """The kernel releases the GIL and allocates its planes per call: eight threads compressing at once get what
    one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    compiled_or_skip(jpeg._round_trip_kernel)
    vis = msrs_pair[0]
    want = {q: jpeg.compress(vis, q) for q in (7, 30, 55, 90)}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: (q, jpeg.compress(vis, q)), [q for q in want for _ in range(6)]))
    assert all(np.array_equal(y, want[q]) for q, y in got)
