"""demmi_rf.ziggurat (the normal sampler) and the raw-stream draws of demmi_rf.rng."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import numpy as np
import pytest
from scipy import special, stats

from demmi_rf import rng as drng
from demmi_rf import ziggurat
from demmi_rf.ziggurat import normal, tables

from .conftest import compiled_or_skip, kernel_swapped_is_refused


# --- the tables -------------------------------------------------------------------------------------------
def test_layers_have_equal_area_and_the_published_right_edge():
    x, f, r, v = tables()
    assert x.size == f.size == 257 and x[1] == r == float(Decimal(ziggurat.R_STRING)) and x[256] == 0.0
    assert np.all(np.diff(x[1:]) < 0) and np.allclose(f, np.exp(-0.5 * x * x), rtol=1e-15, atol=0)
    # v = r f(r) + the tail integral, and every layer has area v
    assert v == pytest.approx(r * f[1] + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2)), rel=1e-13)
    assert x[0] * f[1] == pytest.approx(v, rel=1e-14)  # the base strip
    areas = x[1:255] * (f[2:256] - f[1:255])
    np.testing.assert_allclose(areas, v, rtol=1e-11)
    assert x[255] * (1.0 - f[255]) == pytest.approx(v, rel=1e-9)  # the top layer closes at x = 0


def test_tables_are_the_same_bits_everywhere():
    """Computed in decimal arithmetic (correctly rounded), so the float64 tables are pinned."""
    x, f, _, _ = tables()
    digest = hashlib.sha256(x.tobytes() + f.tobytes()).hexdigest()
    assert digest == "acaac9e89b6a9ac8fa914d5ba3e498670a3667e1fa30a97add493c347f7fdcdb"


def test_wedge_bounds_never_contradict_the_exact_test():
    x, f, _, _ = tables()
    lo, hi = ziggurat._wedge_bounds()
    assert lo[0] == 0 and np.isinf(hi[0]) and np.all(lo <= hi)
    g = np.random.default_rng(0)
    i = g.integers(1, 256, 2_000_000)
    u = g.uniform(x[i + 1] / x[i], 1.0)  # points of the wedge of layer i
    uni = g.uniform(0, 1, i.size)
    w = 1.0 - u
    xx = u * x[i]
    exact = f[i] + uni * (f[i + 1] - f[i]) < np.exp(-0.5 * xx * xx)
    accept, reject = uni < w * lo[i], uni > w * hi[i]
    assert exact[accept].all() and not exact[reject].any()
    assert (accept | reject).mean() > 0.85  # the bounds spare most evaluations of f


# --- the distribution -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    return normal(np.random.default_rng(20261126), 2_000_000).astype(np.float64)


def test_draws_are_standard_normal(draws):
    n = draws.size
    assert abs(draws.mean()) < 5 / np.sqrt(n)
    assert abs(draws.var() - 1.0) < 5 * np.sqrt(2 / n)
    assert stats.kstest(draws, "norm").pvalue > 1e-3
    assert abs(stats.skew(draws)) < 5 * np.sqrt(6 / n) and abs(stats.kurtosis(draws)) < 5 * np.sqrt(24 / n)


def test_every_layer_gets_its_probability_mass(draws):
    """Bins at the layer edges: a wrong wedge or tail branch moves mass between these bins."""
    x, _, r, _ = tables()
    edges = np.concatenate([-x[1:256], x[255:0:-1]])
    edges = np.unique(np.concatenate([edges, [-np.inf, np.inf]]))
    counts, _ = np.histogram(draws, bins=edges)
    expected = draws.size * np.diff(stats.norm.cdf(edges))
    assert counts.size == 2 * 255 + 1
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_the_tail_beyond_r_has_its_normal_frequency(draws):
    r = tables()[2]
    for t in (r, 4.0, 4.5):
        p = 2 * stats.norm.sf(t)
        k = np.count_nonzero(np.abs(draws) > t)
        assert abs(k - draws.size * p) < 5 * np.sqrt(draws.size * p * (1 - p)) + 1, t
    assert np.abs(draws).max() > r  # the tail branch ran



# --- the layer-interval mass test (power) ------------------------------------------------------------------
LAYER_DRAWS = 1 << 28  # 268,435,456 normals: about 6 s of CPU (kernel or numpy path) on the loaded dev VM
LAYER_CHUNK = 1 << 22
LAYER_Z_MAX = 5.5  # on each of 256 intervals: a family-wise false-alarm rate of 1e-5 (Sidak)


def _interval_classifier() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A table look-up that gives, for a float32 |z|, the index k of its layer interval of |z|
    ([0, x_255) -> 0, [x_255, x_254) -> 1, ..., [x_2, x_1 = r) -> 254, [r, inf) -> 255), as
    ``base[bits >> 12] + (bits >= edge[bits >> 12])`` on the float32 bit pattern (monotone for |z| >= 0):
    about 7 ns per value against 50 for ``np.searchsorted``. Edge k is the smallest float32 >= x_{255-k},
    which is where a float32 value crosses the float64 edge. Returns (base, edge, the 255 float32 edges)."""
    inner = tables()[0][255:0:-1]  # x_255 < ... < x_1
    up = inner.astype(np.float32)
    up = np.where(up.astype(np.float64) < inner, np.nextafter(up, np.float32(np.inf)), up)
    bits = up.view(np.uint32)
    cells = bits >> 12
    assert np.unique(cells).size == cells.size  # at most one edge per cell of 4096 float32 values
    starts = (np.arange((0x7F800000 >> 12) + 1, dtype=np.uint64) << np.uint64(12)).astype(np.uint32)
    base = np.searchsorted(bits, starts, side="left").astype(np.uint8)  # edges strictly below the cell
    edge = np.full(starts.size, 0xFFFFFFFF, np.uint32)
    edge[cells] = bits
    return base, edge, up


def _classify(z: np.ndarray, base: np.ndarray, edge: np.ndarray) -> np.ndarray:
    bits = np.abs(z).view(np.uint32)
    cell = bits >> 12
    return base[cell] + (bits >= edge[cell])


def layer_interval_counts(
    draws: int = LAYER_DRAWS, chunk: int = LAYER_CHUNK, seed: int = 20261130,
) -> tuple[np.ndarray, np.ndarray]:
    """(n_k, p_k): counts of the 256 layer intervals of |z| over N draws of ``normal(default_rng(seed), chunk)``
    and their exact probabilities p_k = erfc(L_k/√2) − erfc(U_k/√2) = 2(Φ(U_k) − Φ(L_k)) exactly (float64;
    counting the float32 values against the float32 edges moves an edge by under one float32 ulp: a relative
    mass change below 1e-6)."""
    base, edge, _ = _interval_classifier()
    g = np.random.default_rng(seed)
    counts = np.zeros(256, np.int64)
    for start in range(0, draws, chunk):
        z = normal(g, min(chunk, draws - start))
        counts += np.bincount(_classify(z, base, edge), minlength=256)
    inner = tables()[0][255:0:-1]
    lower, upper = np.concatenate([[0.0], inner]), np.concatenate([inner, [np.inf]])
    p = special.erfc(lower / np.sqrt(2)) - special.erfc(upper / np.sqrt(2))
    return counts, p


def test_the_interval_classifier_agrees_with_searchsorted_at_and_around_every_edge():
    base, edge, up = _interval_classifier()
    probe = np.concatenate([up, np.nextafter(up, np.float32(0)), np.nextafter(up, np.float32(9)),
                            np.float32([0.0, 1e-30, 0.5, 1.0, 3.0, 5.0, 9.0, 1e30, np.inf])])
    probe = np.concatenate([probe, -probe]).astype(np.float32)
    expected = np.searchsorted(up, np.abs(probe), side="right")
    np.testing.assert_array_equal(_classify(probe, base, edge), expected)
    z = normal(np.random.default_rng(0), 1_000_000)
    np.testing.assert_array_equal(_classify(z, base, edge), np.searchsorted(up, np.abs(z), side="right"))


@pytest.mark.slow
def test_every_layer_interval_has_its_exact_mass_to_the_power_of_2_to_the_28_draws():
    """2²⁸ draws counted by layer interval of |z| (not by a histogram of values) against the exact Φ differences.

    With |z_k| ≤ 5.5 on every interval, a relative mass error δ in interval k (mass p_k) is caught with about
    95 % probability when δ ≥ 7.1 / √(N p_k / (1 − p_k)): δ ≥ 1.0e-3 in the top interval [0, x_255)
    (p = 0.170, where toolkit 0.1.0's uint8 wrap put +1.55e-3: z ≈ +10 here), 1.1 % in the median interval
    (p = 0.0017) and 2.7 % in the tail beyond r (p = 2.6e-4); the χ² over the 256 intervals catches diffuse
    errors. (δ = 1e-3 in every interval would need ~10¹¹ draws: benchmarks/validate_normal.py runs 10⁹.)"""
    counts, p = layer_interval_counts()
    expected = LAYER_DRAWS * p
    z = (counts - expected) / np.sqrt(expected * (1 - p))
    chi2 = float(np.sum((counts - expected) ** 2 / expected))  # Pearson, 255 degrees of freedom
    assert np.abs(z).max() <= LAYER_Z_MAX, (int(np.argmax(np.abs(z))), float(np.abs(z).max()))
    assert stats.chi2.sf(chi2, 255) > 1e-5, chi2


# --- bits, shapes, the stream -----------------------------------------------------------------------------
def test_same_seed_same_bits_other_seed_other_bits():
    a = normal(np.random.default_rng(5), (48, 64, 3), 25.0)
    b = normal(np.random.default_rng(5), (48, 64, 3), 25.0)
    c = normal(np.random.default_rng(6), (48, 64, 3), 25.0)
    assert a.dtype == np.float32 and a.shape == (48, 64, 3)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


@pytest.mark.parametrize("shape", [0, 1, 7, (3, 5), (2, 0, 4)])
def test_small_odd_and_empty_shapes(shape):
    out = normal(np.random.default_rng(1), shape)
    expected_shape = (shape,) if isinstance(shape, int) else shape
    assert out.shape == expected_shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_the_block_size_changes_neither_the_bits_nor_the_stream_position(monkeypatch):
    def draw() -> tuple[bytes, int]:
        g = np.random.default_rng(11)
        z = normal(g, 100_003, 3.0)
        return z.tobytes(), int(g.bit_generator.random_raw())

    reference = draw()
    for block in (7, 1000, 1 << 20):
        monkeypatch.setattr(ziggurat, "BLOCK", block)
        assert draw() == reference, block


def test_the_draws_are_the_documented_function_of_the_raw_words():
    """The common case by hand from the raw words: odd int32 words, then layer bytes."""
    n = 10_000
    z = normal(np.random.default_rng(3), n, 2.0)
    raw = np.random.default_rng(3).bit_generator
    a = raw.random_raw(n // 2).view(np.int32) | 1
    i = raw.random_raw(n // 8).view(np.uint8)
    x = tables()[0]
    u = a.astype(np.float32)
    fast = np.abs(u) < (x[1:] / x[:-1] * 2.0**31).astype(np.float32)[i]
    by_hand = u * (x[:-1] * 2.0**-31 * 2.0).astype(np.float32)[i]
    assert 0.97 < fast.mean() < 0.995
    np.testing.assert_array_equal(z[fast], by_hand[fast])


def test_scale_only_scales():
    a = normal(np.random.default_rng(9), 50_000, 1.0).astype(np.float64)
    b = normal(np.random.default_rng(9), 50_000, 37.5).astype(np.float64)
    np.testing.assert_allclose(b, 37.5 * a, rtol=3e-7, atol=0)
    assert not normal(np.random.default_rng(9), 100, 0.0).any()


def test_add_normal_adds_exactly_the_normals_in_place():
    x = np.random.default_rng(0).uniform(0, 255, (120, 160, 3)).astype(np.float32)
    target = x.copy()
    out = ziggurat.add_normal(np.random.default_rng(4), target, 15.0)
    assert out is target
    expected = x + normal(np.random.default_rng(4), x.shape, 15.0)
    assert out.tobytes() == expected.tobytes()


def test_bad_arguments_are_refused():
    g = np.random.default_rng(0)
    for scale in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            normal(g, 10, scale)
    with pytest.raises(TypeError, match="float32"):
        ziggurat.add_normal(g, np.zeros(10, np.float64), 1.0)
    with pytest.raises(TypeError, match="float32"):
        ziggurat.add_normal(g, np.zeros((10, 10), np.float32)[:, ::2], 1.0)


# --- the compiled kernel and the numpy path ---------------------------------------------------------------
def test_the_kernel_is_built_wherever_a_c_compiler_is():
    import shutil
    import sysconfig

    cc = (sysconfig.get_config_var("CC") or "").split()
    if cc and shutil.which(cc[0]):
        assert ziggurat.backend() == "compiled"  # a packaging regression would silently fall back otherwise
    else:
        assert ziggurat.backend() == "numpy"


@pytest.mark.parametrize("shape", [1, 2, 7, 4099, (120, 160, 3), (480, 640, 3)])
@pytest.mark.parametrize("scale", [1.0, 15.0, 50.0, 0.0])
def test_kernel_and_numpy_path_give_the_same_bits_and_stream_position(shape, scale, monkeypatch):
    def run(seed: int) -> tuple[bytes, bytes, int]:
        g = np.random.default_rng(seed)
        base = np.random.default_rng(seed + 1).uniform(-10, 265, shape).astype(np.float32)
        added = ziggurat.add_normal(g, base, scale)
        written = normal(g, shape, scale)
        return added.tobytes(), written.tobytes(), int(g.bit_generator.random_raw())

    compiled = run(31)
    monkeypatch.setattr(ziggurat, "_kernel", lambda: None)
    assert ziggurat.backend() == "numpy"
    assert run(31) == compiled


class _CountingGenerator:
    """A PCG64 that records the count of every ``random_raw`` call (the kernel calls it as numpy does)."""

    def __init__(self, seed: int) -> None:
        self.gen, self.calls = np.random.PCG64(seed), []

    def random_raw(self, size: int) -> np.ndarray:
        self.calls.append(size)
        return self.gen.random_raw(size)


def _slow_both_ways(seed: int, n: int, scale: float, layers: tuple[int, ...] | None) -> list[tuple]:
    """The slow path of n words (all of them pending, whatever their case) by the kernel and by numpy, from
    the same generator state: (output bytes, random_raw call counts, the next raw word) for each."""
    words, drawn = ziggurat._draw_words(np.random.default_rng(seed).bit_generator, n)
    if layers is not None:
        drawn = np.random.default_rng(seed + 1).choice(np.array(layers, dtype=np.uint8), n)
    results = []
    for kernel in (True, False):
        gen = _CountingGenerator(seed + 2)
        out = np.empty(n, dtype=np.float32)
        if kernel:
            ziggurat._kernel().slow_path(gen, words, drawn, *ziggurat._slow_tables(), ziggurat._widths(scale),
                                         ziggurat._math_consts(), tables()[2], scale, out)
        else:
            ziggurat._slow_path_numpy(gen, words, drawn, scale, out, numpy_only=True)
        results.append((out.tobytes(), tuple(gen.calls), int(gen.gen.random_raw())))
    return results


@pytest.mark.skipif(ziggurat.backend() != "compiled", reason="the compiled kernel is not built here")
@pytest.mark.parametrize("layers", [None, (0,), (1,), (254,), (255,), (0, 1, 254, 255), (0, 128, 200)])
@pytest.mark.parametrize("scale", [1.0, 25.0, 0.0, 1e-3])
def test_the_kernels_slow_path_gives_the_numpy_bits_calls_and_stream_position(layers, scale):
    """Wedges (bounds and exact f), tails (several tries) and rejected wedges redrawn, on many words: the
    same float32 bits, the same random_raw calls with the same counts and the same generator position."""
    retried_tail = redrawn = False
    for seed in range(40):
        for n in (1, 2, 7, 64, 1000):
            kernel, numpy_path = _slow_both_ways(seed, n, scale, layers)
            assert kernel == numpy_path, (seed, n)
            calls = kernel[1]
            retried_tail |= layers == (0,) and len(calls) > 2  # uniforms, a tail try, then another one
            redrawn |= len(calls) > 1 and layers is not None and 0 not in layers
    if layers == (0,):
        assert retried_tail  # the comparison is not vacuous: tails were rejected and tried again
    elif layers is not None and 0 not in layers:
        assert redrawn  # and rejected wedges were redrawn


def test_a_kernel_whose_slow_path_differs_is_not_used(monkeypatch):
    """The once-per-process probe also compares the slow path: a kernel that is off by one ulp there falls
    back to numpy."""
    real = compiled_or_skip(ziggurat._kernel)

    class OffByOneUlp:
        fast_path = staticmethod(real.fast_path)

        @staticmethod
        def slow_path(*args):
            real.slow_path(*args)
            out = args[-1]
            out[0] = np.nextafter(out[0], np.float32(np.inf))

    kernel_swapped_is_refused(monkeypatch, OffByOneUlp, ziggurat._kernel)


def test_no_slow_position_skips_the_slow_path(monkeypatch):
    """Small draws often have no slow position: then the slow path is not entered at all (same bits)."""
    calls = []
    real = ziggurat._slow_path
    monkeypatch.setattr(ziggurat, "_slow_path", lambda *a: calls.append(1) or real(*a))
    seed = next(s for s in range(100) if _no_slow(s))
    normal(np.random.default_rng(seed), 8, 1.0)
    assert not calls
    normal(np.random.default_rng(0), 100_000, 1.0)
    assert calls


def _no_slow(seed: int) -> bool:
    a, i = ziggurat._draw_words(np.random.default_rng(seed).bit_generator, 8)
    return not ziggurat._fast_blocks_numpy(a, i, np.empty(8, np.float32), 1.0, False).size


def test_the_numpy_path_can_be_forced_and_gives_the_same_bits():
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np\n"
        "from demmi_rf import ziggurat\n"
        "z = ziggurat.normal(np.random.default_rng(8), (200, 300, 3), 25.0)\n"
        "print(ziggurat.backend(), hashlib.sha256(z.tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "DEMMI_RF_NUMPY_ZIGGURAT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    backend, digest = out.stdout.split()
    here = hashlib.sha256(normal(np.random.default_rng(8), (200, 300, 3), 25.0).tobytes()).hexdigest()
    assert backend == "numpy" and digest == here


# --- uniform and below ------------------------------------------------------------------------------------
def test_uniform_is_53_bits_of_the_next_raw_word():
    g, h, raw = np.random.default_rng(2), np.random.default_rng(2), np.random.default_rng(2).bit_generator
    for _ in range(100):
        w = int(raw.random_raw())
        u = drng.uniform(g)
        assert u == (w >> 11) / 2.0**53 and 0.0 <= u < 1.0
        assert u == h.random()  # the value numpy's Generator.random() gives


def test_below_is_lemires_method_on_the_low_32_bits():
    g, raw = np.random.default_rng(4), np.random.default_rng(4).bit_generator
    n = 3 * 2**30  # rejects a quarter of the words: the rejection branch runs
    threshold, rejected = (2**32 - n) % n, 0
    for _ in range(200):
        while True:
            m = (int(raw.random_raw()) & 0xFFFFFFFF) * n
            if m & 0xFFFFFFFF >= threshold:
                break
            rejected += 1
        assert drng.below(g, n) == m >> 32
    assert rejected > 10
    assert drng.below(np.random.default_rng(7), 4) == np.random.default_rng(7).integers(4)
    counts = np.bincount([drng.below(g, 3) for _ in range(6000)], minlength=3)
    assert stats.chisquare(counts).pvalue > 1e-3 and counts.size == 3


@pytest.mark.parametrize("n", [0, -1, 2**32 + 1, True, 2.0])
def test_below_refuses_bad_bounds(n):
    with pytest.raises(ValueError, match="below"):
        drng.below(np.random.default_rng(0), n)


def test_the_kernels_exp_gives_the_numpy_bits_over_the_whole_domain():
    """portable_math._exp_f64 runs in C when the kernel is built (tone-curve tables, the wedge test): the same
    bits as its numpy operations, on the whole domain, the exposure atoms' range and the reduction's ties."""
    from demmi_rf import portable_math as pm

    kernel = pm._compiled_exp()
    if kernel is None:
        assert ziggurat.backend() == "numpy" or not hasattr(ziggurat._kernel(), "exp_array")
        pytest.skip("the compiled kernel is not built here")
    rng = np.random.default_rng(77)
    ln2 = float(np.log(2.0))
    for z in (rng.uniform(-708.0, 709.0, 200_000), rng.uniform(-12.0, 0.0, 200_000),
              np.arange(-1021, 1023) * ln2 + 0.5 * ln2, np.array([0.0, -0.0, -708.0, 709.0])):
        out = np.empty_like(z)
        kernel(z, pm.math_constants(), out)
        assert out.tobytes() == pm._exp_f64_numpy(z).tobytes()
        assert pm._exp_f64(z).tobytes() == out.tobytes()


def test_a_kernel_exp_that_differs_is_not_used(monkeypatch):
    from demmi_rf import portable_math as pm

    real = compiled_or_skip(pm._compiled_exp)

    class Off:
        @staticmethod
        def exp_array(z, consts, out):
            real(z, consts, out)
            out[-1] = np.nextafter(out[-1], np.inf)

    kernel_swapped_is_refused(monkeypatch, Off, pm._compiled_exp)


@pytest.mark.parametrize("z", [np.array(-1.5), np.linspace(-3.0, 0.0, 12).reshape(3, 4),
                               np.linspace(-3.0, 0.0, 12)[::2], np.zeros(0)])
def test_exp_keeps_shapes_on_both_paths(z):
    from demmi_rf import portable_math as pm

    got, numpy_path = pm._exp_f64(z), pm._exp_f64_numpy(z)
    assert got.shape == numpy_path.shape == z.shape and got.tobytes() == numpy_path.tobytes()
