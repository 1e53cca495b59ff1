"""The compiled PCG64 words (``pcg64_fill`` / ``pcg64_below`` in ``demmi_rf/_zigfast.c``, used through
``demmi_rf.rng.raw_words`` / ``raw_below``): numpy's ``random_raw`` words, the generator left where numpy leaves it,
on both of the kernel's 128-bit arithmetic paths, and a kernel that differs is never used."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from demmi_rf import rng
from demmi_rf.kernel import compiled_module

from .conftest import compiled_or_skip, kernel_swapped_is_refused

KERNEL_SOURCE = Path(rng.__file__).with_name("_zigfast.c")

# every remainder of the 4 interleaved chains, both sides of the 256-word switch, and long runs
LENGTHS = [0, 1, 2, 3, 15, 16, 17, 18, 19, 20, 255, 256, 257, 258, 259, 1000, 4099, 65536 + 3, 307200]


@pytest.mark.parametrize("seed", [0, 1, 20261130, 2**63 + 12345, 2**128 - 1])
def test_raw_words_are_numpys_random_raw_and_leave_the_same_state(seed):
    compiled_or_skip(rng._pcg_kernel)
    ours, ref = np.random.PCG64(seed), np.random.PCG64(seed)
    for n in LENGTHS:
        got = rng.raw_words(ours, n)
        want = ref.random_raw(n)
        assert got.dtype == np.uint64 and np.array_equal(got, want), n
        assert ours.state == ref.state, n
    assert ours.random_raw(5).tolist() == ref.random_raw(5).tolist()


def test_raw_below_is_the_comparison_of_the_same_words():
    compiled_or_skip(rng._pcg_kernel)
    draws = np.random.default_rng(4)
    for threshold in [0, 1, 2**11, 2**63, 2**64 - 1] + [int(t) for t in draws.integers(0, 2**64, 20, np.uint64)]:
        for n in (0, 7, 256, 1001, 40000):
            ours, ref = np.random.PCG64(threshold % 97), np.random.PCG64(threshold % 97)
            out = np.empty(n, bool)
            assert rng.raw_below(ours, n, threshold, out) is out
            assert np.array_equal(out, ref.random_raw(n) < np.uint64(threshold)), (threshold, n)
            assert ours.state == ref.state


def test_a_buffered_32_bit_word_survives_the_kernel():
    """numpy keeps one half of a 64-bit word for the next 32-bit draw (``has_uint32``): random_raw leaves it."""
    compiled_or_skip(rng._pcg_kernel)
    ours, ref = np.random.PCG64(9), np.random.PCG64(9)
    for g in (ours, ref):
        np.random.Generator(g).integers(0, 2**32, dtype=np.uint32)
    assert ours.state["has_uint32"] == 1
    rng.raw_words(ours, 5000)
    ref.random_raw(5000)
    assert ours.state == ref.state
    a = np.random.Generator(ours).integers(0, 2**32, 3, dtype=np.uint32)
    b = np.random.Generator(ref).integers(0, 2**32, 3, dtype=np.uint32)
    assert np.array_equal(a, b)


def test_other_bit_generators_and_the_numpy_path_give_the_same_words(monkeypatch):
    for make in (lambda: np.random.PCG64(3), lambda: np.random.Philox(3), lambda: np.random.SFC64(3)):
        a, b = make(), make()
        assert np.array_equal(rng.raw_words(a, 3000), b.random_raw(3000))
        out = np.empty(3000, bool)
        assert np.array_equal(rng.raw_below(a, 3000, 2**62, out), b.random_raw(3000) < np.uint64(2**62))
    monkeypatch.setattr(rng, "_pcg_kernel", lambda: None)
    a, b = np.random.PCG64(8), np.random.PCG64(8)
    n = 2 * rng._BELOW_BLOCK + 5  # the numpy path's blocks
    out = np.empty(n, bool)
    assert np.array_equal(rng.raw_below(a, n, 2**63, out), b.random_raw(n) < np.uint64(2**63))
    assert a.state == b.state


def test_raw_below_refuses_a_wrong_output_array():
    with pytest.raises(ValueError, match="C-contiguous bool array of 10"):
        rng.raw_below(np.random.PCG64(1), 10, 5, np.empty(10, np.uint8))
    with pytest.raises(ValueError, match="C-contiguous bool array of 10"):
        rng.raw_below(np.random.PCG64(1), 10, 5, np.empty(11, bool))


def test_a_pcg_kernel_that_differs_is_not_used(monkeypatch):
    real = compiled_or_skip(rng._pcg_kernel)

    class Off:
        @staticmethod
        def pcg64_fill(state, out):
            real.pcg64_fill(state, out)
            out[-1] ^= np.uint64(1)

        pcg64_below = staticmethod(real.pcg64_below)

    kernel_swapped_is_refused(monkeypatch, Off, rng._pcg_kernel)

    class Stuck:  # the right words, but the generator is not advanced
        pcg64_fill = staticmethod(lambda state, out: real.pcg64_fill(state.copy(), out))
        pcg64_below = staticmethod(real.pcg64_below)

    kernel_swapped_is_refused(monkeypatch, Stuck, rng._pcg_kernel)


def test_the_kernels_arithmetic_without_128_bit_integers_gives_the_same_words(tmp_path):
    """The kernel's portable path (64-bit halves, for compilers without ``unsigned __int128``, e.g. MSVC) built
    here with ``-DDEMMI_RF_NO_INT128``: the same words as numpy."""
    compiled_or_skip(compiled_module)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the portable variant")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    target = tmp_path / f"_zigfast{suffix}"
    cmd = [cc, "-shared", "-fPIC", "-O2", "-ffp-contract=off", "-DDEMMI_RF_NO_INT128",
           f"-I{sysconfig.get_paths()['include']}", str(KERNEL_SOURCE), "-o", str(target)]
    subprocess.run(cmd, check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("_zigfast", target)
    portable = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(portable)
    for seed in (0, 5, 2**127 + 3):
        ref = np.random.PCG64(seed)
        inner = ref.state["state"]
        s, inc = inner["state"], inner["inc"]
        words = np.array([s >> 64, s & (2**64 - 1), inc >> 64, inc & (2**64 - 1)], np.uint64)
        for n in (1, 3, 17, 1000, 100003):
            out = np.empty(n, np.uint64)
            portable.pcg64_fill(words, out)
            assert np.array_equal(out, ref.random_raw(n)), (seed, n)
        assert (int(words[0]) << 64 | int(words[1])) == ref.state["state"]["state"]


def _draw_sequence(stream, k):
    """Every kind of draw, in an order that depends on k, the normals (which need numpy's Generator) included."""
    out = []
    for step in range(7):
        op = (k + step) % 5
        if op == 0:
            out.append(stream.uniform())
        elif op == 1:
            out.append(stream.below(7 + k))
        elif op == 2:
            out.append(stream.uniforms(3 + 100 * (k % 4)).tobytes())
        elif op == 3:
            out.append(stream.raw_below(300 + k, 2**63 - k).tobytes())
        else:
            out.append(stream.normal((5, 7), 3.0).tobytes())
    return out


@pytest.mark.parametrize("k", range(10))
def test_a_keyed_stream_gives_the_generators_draws(k):
    """keyed_stream holds the PCG64 state in the kernel until a draw needs numpy: the same draws, in any order,
    and the Generator it builds sits where keyed_generator's would, with the same SeedSequence."""
    material = rng.seed_material(20250713, f"msrs/{k:05d}N", "noise25+motion", "vis")
    light, plain = rng.keyed_stream(material), rng.Stream(rng.keyed_generator(material))
    assert _draw_sequence(light, k) == _draw_sequence(plain, k)
    assert light._rng.bit_generator.state == plain._rng.bit_generator.state
    seq, ref = light._rng.bit_generator.seed_seq, plain._rng.bit_generator.seed_seq
    assert np.array_equal(seq.entropy, ref.entropy)
    assert [c.generate_state(2).tolist() for c in seq.spawn(2)] == [c.generate_state(2).tolist() for c in ref.spawn(2)]


def test_a_keyed_stream_before_any_numpy_draw_holds_no_generator():
    compiled_or_skip(rng._light_kernel)
    stream = rng.keyed_stream(rng.seed_material(1, "a/b", "lowcontrast", "ir"))
    stream.uniform(), stream.below(5), stream.uniforms(1000), stream.raw_below(1000, 2**62)
    assert stream._gen is None  # nothing needed numpy's Generator so far
    stream.normal(3)
    assert stream._gen is not None and stream._pcg is None


def test_without_the_light_kernel_a_keyed_stream_wraps_the_generator(monkeypatch):
    material = rng.seed_material(3, "x/y", "rain", "vis")
    expected = _draw_sequence(rng.Stream(rng.keyed_generator(material)), 2)
    monkeypatch.setattr(rng, "_light_kernel", lambda: None)
    stream = rng.keyed_stream(material)
    assert stream._gen is not None
    assert _draw_sequence(stream, 2) == expected


def test_the_kernels_sha256_is_hashlibs():
    """pcg64_keyed's SHA-256 (FIPS 180-4, in the kernel) on every padding case and multi-byte UTF-8."""
    real = compiled_or_skip(rng._light_kernel)
    import hashlib

    draws = np.random.default_rng(12)
    for n in list(range(0, 200)) + [511, 512, 513, 4096, 10_000]:
        material = draws.integers(0, 256, n, dtype=np.uint8).tobytes()
        out = np.empty(12, np.uint64)
        real.pcg64_keyed(material, out)
        assert out[8:12].tobytes() == hashlib.sha256(material).digest(), n
    text = rng.seed_material(20250713, "tno/Kaptein_1654", "noise50+haze+stripe", "vis", "résumé ✓").encode()
    out = np.empty(12, np.uint64)
    real.pcg64_keyed(text, out)
    assert out[8:12].tobytes() == hashlib.sha256(text).digest()


def test_a_light_kernel_that_differs_is_not_used(monkeypatch):
    real = compiled_or_skip(rng._light_kernel)

    def module_with(**changed):
        names = ("pcg64_fill", "pcg64_below", "pcg64_keyed", "pcg64_next", "seed_state", "fast_path", "slow_path",
                 "exp_array")
        attrs = {n: staticmethod(getattr(real, n)) for n in names}
        attrs.update({n: staticmethod(f) for n, f in changed.items()})
        return type("Swapped", (), attrs)

    def keyed_off(material, out):
        real.pcg64_keyed(material, out)
        out[1] ^= np.uint64(1)

    def digest_off(material, out):
        real.pcg64_keyed(material, out)
        out[11] ^= np.uint64(1)

    def probe():
        return rng._light_kernel()

    def clear():  # the light kernel also asks _pcg_kernel, which must probe the swapped module too
        rng._light_kernel.cache_clear()
        rng._pcg_kernel.cache_clear()

    probe.cache_clear = clear
    import sys

    import demmi_rf

    with monkeypatch.context() as m:  # the control: the same routines, swapped in, are accepted
        same = module_with()
        m.setitem(sys.modules, "demmi_rf._zigfast", same)
        m.setattr(demmi_rf, "_zigfast", same)
        clear()
        assert probe() is same
    clear()
    kernel_swapped_is_refused(monkeypatch, module_with(pcg64_keyed=keyed_off), probe)
    kernel_swapped_is_refused(monkeypatch, module_with(pcg64_keyed=digest_off), probe)
    kernel_swapped_is_refused(monkeypatch, module_with(pcg64_next=lambda state: real.pcg64_next(state) ^ 1), probe)


def test_raw_below_on_a_stream_checks_its_arguments():
    stream = rng.keyed_stream("probe")
    with pytest.raises(ValueError, match="non-negative integer count"):
        stream.raw_below(-1, 5)
    with pytest.raises(ValueError, match="threshold in"):
        stream.raw_below(4, 2**64)
    with pytest.raises(ValueError, match="C-contiguous bool array of 4"):
        stream.raw_below(4, 5, np.empty(5, bool))
