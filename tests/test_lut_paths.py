"""lut_uint8's two implementations (stringzilla's byte translation, cv2.LUT) give the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from demmi_rf import degrade
from demmi_rf.degradations import _arrays

from .conftest import compiled_or_skip, kernel_swapped_is_refused

SHAPES = [(1,), (7,), (3, 5), (32, 32), (31, 17, 3), (480, 640), (2, 3, 4, 5)]


def _both(monkeypatch, run):
    fast = run()
    with monkeypatch.context() as m:
        m.setattr(_arrays, "_byte_translate", lambda: None)  # what a machine without stringzilla runs
        slow = run()
    return fast, slow


def test_stringzilla_is_used_where_it_is_installed():
    pytest.importorskip("stringzilla")
    assert _arrays._byte_translate() is not None  # a regression would silently fall back to cv2.LUT


@pytest.mark.parametrize("shape", SHAPES)
def test_uint8_tables_give_the_gathers_bytes_on_both_paths(shape, monkeypatch):
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    table = rng.integers(0, 256, 256, dtype=np.uint8)

    def run():
        new = _arrays.lut_uint8(image, table)
        out = np.full(shape, 7, np.uint8)
        given = _arrays.lut_uint8(image, table, out=out)
        assert given is out
        return new, out

    (fast, fast_out), (slow, slow_out) = _both(monkeypatch, run)
    expected = table[image]
    for got in (fast, fast_out, slow, slow_out):
        assert got.dtype == np.uint8 and got.shape == image.shape and got.flags.writeable
        np.testing.assert_array_equal(got, expected)


def test_non_contiguous_images_and_float_tables(monkeypatch):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)[::2, 1::3]
    table8 = rng.integers(0, 256, 256, dtype=np.uint8)
    table32 = rng.standard_normal(256).astype(np.float32)

    def run():
        return _arrays.lut_uint8(image, table8), _arrays.lut_uint8(image, table32)

    (f8, f32), (s8, s32) = _both(monkeypatch, run)
    np.testing.assert_array_equal(f8, table8[image])
    np.testing.assert_array_equal(s8, table8[image])
    assert f32.tobytes() == s32.tobytes() == table32[image].tobytes()


def test_empty_images(monkeypatch):
    image = np.zeros((0, 4), np.uint8)
    table = np.arange(256, dtype=np.uint8)
    (fast, _), (slow, _) = _both(monkeypatch, lambda: (_arrays.lut_uint8(image, table), None))
    assert fast.shape == slow.shape == (0, 4)


@pytest.mark.parametrize("setting", ["overexposure", "lowcontrast", "lowlight", "overexposure.s5", "lowlight.s1"])
def test_the_tone_curve_atoms_give_the_same_bytes_on_both_paths(setting, monkeypatch):
    rng = np.random.default_rng(9)
    vis = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (24, 40), dtype=np.uint8)

    def run():
        d = degrade(vis, ir, setting, 4, pair_id="lut/1")
        return d.vis.tobytes(), d.ir.tobytes(), d.params

    fast, slow = _both(monkeypatch, run)
    assert fast == slow


def test_without_stringzilla_the_probe_falls_back_to_cv2(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "stringzilla", None)  # import stringzilla -> ImportError
    _arrays._byte_translate.cache_clear()
    try:
        assert _arrays._byte_translate() is None
        image = np.arange(300, dtype=np.uint16).astype(np.uint8).reshape(3, 100)
        np.testing.assert_array_equal(_arrays.lut_uint8(image, np.arange(256, dtype=np.uint8)[::-1].copy()),
                                      255 - image)
    finally:
        monkeypatch.undo()
        _arrays._byte_translate.cache_clear()


def _quantize_inputs() -> list[np.ndarray]:
    """256-entry float32 tables: half-integers and their neighbours, out-of-range values, signed zeros, infinities."""
    k = np.arange(-3, 259, dtype=np.float32)
    half = np.concatenate([k, k + np.float32(0.5)])
    values = np.concatenate([half, np.nextafter(half, np.float32(-np.inf)), np.nextafter(half, np.float32(np.inf)),
                             np.array([0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, np.inf, -np.inf], np.float32),
                             np.random.default_rng(8).uniform(-40, 300, 3000).astype(np.float32)])
    values = np.resize(values, (values.size + 255) // 256 * 256)
    return [values[i:i + 256].copy() for i in range(0, values.size, 256)]


def test_the_compiled_table_quantisation_is_quantize():
    kernel = compiled_or_skip(_arrays._table_kernel)
    for table in _quantize_inputs():
        assert kernel(table) == _arrays.quantize(table.copy()).tobytes()
    nan = np.full(256, 3.0, np.float32)
    nan[200] = np.nan
    assert kernel(nan) is None  # numpy's cast of NaN is undefined: the caller's numpy path decides


@pytest.mark.parametrize("use_kernel", [True, False])
def test_table_lookup_gives_the_same_bytes_with_and_without_the_kernel_and_stringzilla(use_kernel, monkeypatch):
    image = np.random.default_rng(2).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    if not use_kernel:
        monkeypatch.setattr(_arrays, "_table_kernel", lambda: None)
    for table in _quantize_inputs()[:6]:
        want = _arrays.quantize(table.copy())[image]
        fast, slow = _both(monkeypatch, lambda t=table: _arrays.table_lookup_uint8(image, t.copy()))
        assert np.array_equal(fast, want) and np.array_equal(slow, want)


def test_a_table_kernel_that_differs_is_not_used(monkeypatch):
    real = compiled_or_skip(_arrays._table_kernel)
    def off_by_one_at_ties(table):
        codes = bytearray(real(table) or b"")
        for i, v in enumerate(table):
            if v == np.float32(2.5):
                codes[i] = 3  # rounds half up, not half to even
        return bytes(codes)

    kernel_swapped_is_refused(monkeypatch, type("Off", (), {"quantize_table": staticmethod(off_by_one_at_ties)}),
                              _arrays._table_kernel)

    def nan_as_zero(table):
        return real(np.nan_to_num(table))

    kernel_swapped_is_refused(monkeypatch, type("Off", (), {"quantize_table": staticmethod(nan_as_zero)}),
                              _arrays._table_kernel)
