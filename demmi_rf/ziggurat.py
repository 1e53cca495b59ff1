r"""Standard-normal draws for the degradations: a vectorised 256-layer ziggurat on the generator's raw stream.

Every normal of the toolkit's synthesis (``noise*`` pixels, ``stripe`` column offsets) comes from
:func:`normal`. It reads only 64-bit words of the sample's PCG64 stream (``bit_generator.random_raw``,
whose output numpy keeps stable across versions, NEP 19) and turns them into normals with IEEE basic
operations, a table gather and the libm-free ``exp`` / ``log`` of :mod:`demmi_rf.portable_math`. So the
same stream gives the same bits on every machine and numpy version. The common case (step 2 below) and the
slow path (step 3: every round, with the same ``random_raw`` calls and the same float64 operations in the same
order, exp/log included) run in a small compiled kernel (``demmi_rf/_zigfast.c``, built at install when a C
compiler is available) or, without it, as whole-array numpy operations; the two give the same bits and leave
the generator at the same position (checked once per process, and by the tests). Draws with no slow position
(common for small n) skip step 3 altogether. With the kernel the sampler runs about twice as fast as
``Generator.standard_normal(dtype=float32)``, with numpy about 1.5 times (``benchmarks/bench_degradations.py``).

The method is the ziggurat of Marsaglia & Tsang (*The Ziggurat Method for Generating Random Variables*,
J. Stat. Softw. 5(8), 2000), with 256 layers of equal area v under f(x) = exp(−x²/2):

.. math::

    x_1 = r = 3.6541528853610088,\quad v = r f(r) + \int_r^\infty f,\quad
    x_{i+1} = f^{-1}\!\big(f(x_i) + v / x_i\big)\ (i = 1..254),\quad x_{256} = 0,\quad x_0 = v / f(r).

Layer i ≥ 1 is the rectangle [0, x_i] × [f(x_i), f(x_{i+1})]; layer 0 is the base strip [0, x_0] × [0, f(r)]
whose part beyond r stands for the tail. The tables are computed once per process in 60-digit decimal
arithmetic (``decimal``: correctly rounded exp, ln, sqrt; the tail integral by Laplace's continued fraction),
then rounded to float64, so they are identical everywhere.

One draw of n normals (``scale`` = σ folded into the table, so the result is σ·n directly):

1. ``random_raw(⌈n/2⌉)`` read as n int32 words a (word m gives its low, then its high 32 bits), each made
   odd (``a | 1``: symmetric about 0), then ``random_raw(⌈n/8⌉)`` read as n layer bytes i (least significant
   byte first), whatever the machine's byte order;
2. the common case (about 98.5 % of draws): when |float32(a)| < 2³¹·x_{i+1}/x_i the point lies inside the
   layer's rectangle and the result is ``float32(a) * float32(x_i · 2⁻³¹ · scale)``;
3. the others, in ascending position order, in rounds until none is left. In each round:

   a. one uniform U per position, ``(word >> 11) · 2⁻⁵³``;
   b. wedge (i ≥ 1): x = a·2⁻³¹·x_i; accept when f(x_i) + U (f(x_{i+1}) − f(x_i)) < f(x), giving x·scale.
      Bounds decide most cases without f: with w = 1 − |a|·2⁻³¹, U < w·lo_i accepts and U > w·hi_i rejects
      (the chord and the tangent of f over the wedge, :func:`_wedge_bounds`); f(x) uses
      :func:`~demmi_rf.portable_math.exp_f64`;
   c. tail (i = 0, |x| ≥ r; U of step a unused): U₁, U₂ = ``((word >> 11) + 1) · 2⁻⁵³`` for every open tail
      position (all U₁, then all U₂), α = −ln U₁ / r; accept when −2 ln U₂ > α², giving sign(a)·(r + α)·scale,
      and repeat for the rejected ones (Marsaglia's tail method, 1964; ln from
      :func:`~demmi_rf.portable_math.log_f64`);
   d. a rejected wedge draws a new (a, i) as in step 1 and goes through step 2; the ones that land in the
      slow case again make the next round.

This is the exact algorithm — each output is an independent N(0, scale²) draw up to the float32 resolution
of its value — not an approximation such as a sum of uniforms or a truncated inverse-CDF table.
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext
from types import ModuleType

import cv2
import numpy as np

from . import portable_math
from .kernel import compiled_module
from .portable_math import _exp_f64, _log_f64
from .rng import raw_words

LAYERS = 256
R_STRING = "3.6541528853610087963519472518"  # the rightmost layer edge r of the 256-layer normal ziggurat
_TWO_M31 = 2.0**-31
_TWO_M53 = 2.0**-53
BLOCK = 1 << 15  # elements per block of the common case (cache-sized temporaries; no effect on the draws)


@functools.lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(x, f, r, v)``: the 257 layer edges x_0..x_256 and f(x_i) as float64, r and the layer area v."""
    with localcontext() as ctx:
        ctx.prec = 60
        r = Decimal(R_STRING)

        def f(x: Decimal) -> Decimal:
            return (-(x * x) / 2).exp()

        cf = r  # int_r^inf f = f(r) / (r + 1/(r + 2/(r + 3/(r + ...))))
        for k in range(400, 0, -1):
            cf = r + k / cf
        v = r * f(r) + f(r) / cf
        x = [v / f(r), r]
        for _ in range(LAYERS - 2):
            x.append((-2 * (f(x[-1]) + v / x[-1]).ln()).sqrt())
        x.append(Decimal(0))
        fx = [f(xi) for xi in x]
    xs, fs = np.array([float(d) for d in x]), np.array([float(d) for d in fx])
    xs.setflags(write=False)
    fs.setflags(write=False)
    return xs, fs, float(r), float(v)


@functools.lru_cache(maxsize=1)
def _wedge_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Per layer i ≥ 1, ``(lo_i, hi_i)`` such that, with w = 1 − |u| and U the wedge uniform, U < w·lo_i
    implies acceptance and U > w·hi_i rejection, without evaluating f (layer 0 and the layer that straddles
    the inflection point x = 1: 0 and ∞, always exact).

    In U units the chord of f over [x_{i+1}, x_i] is w·c_i, c_i = x_i / (x_i − x_{i+1}), and the tangent at
    x_i is w·d_i, d_i = f_i x_i² / (f_{i+1} − f_i). f is convex for x > 1 (tangent ≤ f ≤ chord: lo = d,
    hi = c) and concave for x < 1 (chord ≤ f ≤ tangent: lo = c, hi = d).
    """
    x, f, _, _ = tables()
    lo, hi = np.zeros(LAYERS), np.full(LAYERS, np.inf)
    for i in range(1, LAYERS):
        c = x[i] / (x[i] - x[i + 1])
        d = f[i] * x[i] * x[i] / (f[i + 1] - f[i])
        if x[i + 1] >= 1.0:
            lo[i], hi[i] = d, c
        elif x[i] <= 1.0:
            lo[i], hi[i] = c, d
    return lo, hi


@functools.lru_cache(maxsize=1)
def _thresholds() -> np.ndarray:
    """float32 fast-accept bound on |u| per layer: 2³¹ · x_{i+1} / x_i."""
    x = tables()[0]
    return (x[1:] / x[:-1] / _TWO_M31).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _widths(scale: float) -> np.ndarray:
    """float32 value of one unit of u per layer: x_i · 2⁻³¹ · scale."""
    return (tables()[0][:-1] * _TWO_M31 * scale).astype(np.float32)


def _draw_words(bitgen: np.random.BitGenerator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The odd int32 words a (``a | 1``: symmetric about 0) of n normals from ⌈n/2⌉ raw 64-bit words, then
    their layers i (bytes) from ⌈n/8⌉ more. Raw word m gives a[2m] (its low 32 bits) and a[2m+1] (its high
    32 bits), and layer bytes 8m..8m+7 from its least to its most significant byte, on any byte order."""
    raw = raw_words(bitgen, (n + 1) // 2).astype("<u8", copy=False)  # a no-op on little-endian machines
    a = raw.view("<i4")[:n].astype(np.int32, copy=False)
    a |= 1
    i = raw_words(bitgen, (n + 7) // 8).astype("<u8", copy=False).view(np.uint8)[:n]
    return a, i


def _fast(a: np.ndarray, i: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(values of the common case, positions that need the slow path) for words ``a`` and layers ``i``."""
    u = a.astype(np.float32)  # float32(a), correctly rounded
    i2 = i.reshape(-1, 1)
    slow = np.abs(u) >= cv2.LUT(i2, _thresholds()).reshape(-1)
    u *= cv2.LUT(i2, _widths(scale)).reshape(-1)
    return u, np.flatnonzero(slow)


def normal(rng: np.random.Generator, shape: int | tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """A float32 array of i.i.d. N(0, scale²) draws from ``rng``'s raw stream (see the module docstring).

    Args:
        rng: the sample's generator (:func:`demmi_rf.rng.generator`); only its bit generator is used.
        shape: output shape.
        scale: the standard deviation σ ≥ 0 (folded into the table: the result is σ·n with one rounding).
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    out = np.empty(shape, dtype=np.float32)
    _draw(rng, out.reshape(-1), scale, add=False)
    return out


def add_normal(rng: np.random.Generator, target: np.ndarray, scale: float) -> np.ndarray:
    """``target += N(0, scale²)`` element-wise, in place (float32, C-contiguous), with the same draws as
    ``normal(rng, target.shape, scale)``: ``add_normal(g, x, s)`` equals ``x + normal(g', x.shape, s)`` for
    ``g'`` a copy of ``g``. Returns ``target``."""
    if target.dtype != np.float32 or not target.flags.c_contiguous or not target.flags.writeable:
        raise TypeError("add_normal needs a writeable C-contiguous float32 array")
    _draw(rng, target.reshape(-1), scale, add=True)
    return target


def _draw(rng: np.random.Generator, flat: np.ndarray, scale: float, add: bool) -> None:
    """Write (or add) ``flat.size`` normals into ``flat``: the words and layers of every element, the common
    case, then the slow path for the positions it left, in ascending order."""
    scale = float(scale)
    if not (scale >= 0.0 and np.isfinite(scale)):
        raise ValueError(f"scale must be a finite number >= 0, got {scale}")
    n = flat.size
    if n == 0:
        return
    bitgen = rng.bit_generator
    a, i = _draw_words(bitgen, n)
    pending = _fast_blocks(a, i, flat, scale, add)
    if not pending.size:  # about 1.5 % of the draws are slow: none at all is common for small n
        return
    resolved = _slow_path(bitgen, a[pending], i[pending], scale)
    if add:
        flat[pending] += resolved
    else:
        flat[pending] = resolved


def _slow_path(bitgen: np.random.BitGenerator, a: np.ndarray, i: np.ndarray, scale: float) -> np.ndarray:
    """The values of the slow positions (words ``a``, layers ``i``): every round of step 3 until none is left,
    by the compiled kernel when it is usable (the same generator calls and float64 operations), else numpy."""
    resolved = np.empty(a.size, dtype=np.float32)
    kernel = _kernel()
    if kernel is not None:
        kernel.slow_path(bitgen, a, i, *_slow_tables(), _widths(scale), _math_consts(), tables()[2], scale,
                         resolved)
        return resolved
    return _slow_path_numpy(bitgen, a, i, scale, resolved)


def _slow_path_numpy(
    bitgen: np.random.BitGenerator, a: np.ndarray, i: np.ndarray, scale: float, resolved: np.ndarray,
    numpy_only: bool = False,
) -> np.ndarray:
    """:func:`_slow_path` with numpy, round by round (:func:`_slow_round`), into ``resolved``
    (``numpy_only``: step 2 of the rejected ones with numpy too, as the kernel's probe needs)."""
    where = np.arange(a.size)
    while where.size:
        a, i, where = _slow_round(bitgen, resolved, where, a, i, scale, numpy_only)
    return resolved


@functools.lru_cache(maxsize=1)
def _slow_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's tables of step 3, C-contiguous: x_i, f(x_i), the wedge bounds lo_i, hi_i, the float32
    fast-accept bounds (with :func:`_widths`, step 2 again for the rejected wedges)."""
    x, f, _, _ = tables()
    lo, hi = _wedge_bounds()
    return tuple(np.ascontiguousarray(t) for t in (x, f, lo, hi, _thresholds()))


def _math_consts() -> np.ndarray:
    """The constants of :func:`~demmi_rf.portable_math._exp_f64` / ``_log_f64`` in the kernel's layout
    (:func:`~demmi_rf.portable_math.math_constants`): one source of values."""
    return portable_math.math_constants()


def _fast_blocks(words: np.ndarray, layers: np.ndarray, flat: np.ndarray, scale: float, add: bool) -> np.ndarray:
    """The common case for every element (the compiled kernel when it is usable, else numpy, block by block);
    slow positions are left unchanged (adding) or set to 0. Returns the slow positions, ascending."""
    kernel = _kernel()
    if kernel is not None:
        slow = np.empty(flat.size, dtype=np.int64)
        k = kernel.fast_path(words, layers, _thresholds(), _widths(scale), flat, slow, add)
        return slow[:k]
    return _fast_blocks_numpy(words, layers, flat, scale, add)


def _fast_blocks_numpy(
    words: np.ndarray, layers: np.ndarray, flat: np.ndarray, scale: float, add: bool,
) -> np.ndarray:
    """The common case with numpy, block by block (``BLOCK`` elements, so that the temporaries stay in cache;
    the block size does not change the result): the same operations as the kernel, and the same bits."""
    n = flat.size
    slow_parts = []
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        values, slow = _fast(words[start:stop], layers[start:stop], scale)
        values[slow] = 0.0
        if add:
            flat[start:stop] += values
        else:
            flat[start:stop] = values
        slow_parts.append(slow + start)
    return np.concatenate(slow_parts)


def _slow_round(
    bitgen: np.random.BitGenerator, out: np.ndarray, pos: np.ndarray, a: np.ndarray, i: np.ndarray, scale: float,
    numpy_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resolve the wedge and tail cases at positions ``pos`` (words ``a``, layers ``i``) into ``out``;
    returns the words, layers and positions still pending (rejected wedges, with fresh draws)."""
    x_edge, f_edge, r, _ = tables()
    lo, hi = _wedge_bounds()  # layer 0: 0 and inf, so its positions are neither accepted nor rejected here
    # Layer indices as np.intp before any arithmetic: the stored bytes are uint8, where 255 + 1 wraps to 0
    # (numpy keeps the array's dtype for ``array + 1``), which made the top layer's wedge test compare with
    # f(x_0) instead of f(x_256) = 1 (toolkit 0.1.0 had this defect: 0.16 % too much mass in |z| < x_255).
    li = i.astype(np.intp)
    u = a * _TWO_M31  # signed position in [-1, 1], float64, exact
    x = u * x_edge[li]
    uni = (bitgen.random_raw(a.size) >> np.uint64(11)).astype(np.float64) * _TWO_M53  # one per position
    w = 1.0 - np.abs(u)
    accept = uni < w * lo[li]
    is_tail = li == 0
    exact = np.flatnonzero((uni <= w * hi[li]) & ~accept & ~is_tail)  # between the bounds: compare with f
    ie, xe = li[exact], x[exact]
    f_low = f_edge[ie]
    accept[exact] = f_low + uni[exact] * (f_edge[ie + 1] - f_low) < _exp_f64(-0.5 * xe * xe)
    out[pos] = x * scale  # the tail and the rejected ones are overwritten below

    todo = np.flatnonzero(is_tail)
    while todo.size:
        m = todo.size
        logs = _log_f64(((bitgen.random_raw(2 * m) >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * _TWO_M53)
        alpha = logs[:m] / -r
        ok = -2.0 * logs[m:] > alpha * alpha
        out[pos[todo]] = np.copysign(r + alpha, u[todo]) * scale  # likewise for the rejected ones
        todo = todo[~ok]

    again = pos[~(accept | is_tail)]
    if not again.size:
        return a[:0], i[:0], again
    a2, i2 = _draw_words(bitgen, again.size)
    values = np.empty(again.size, dtype=np.float32)
    fast = _fast_blocks_numpy if numpy_only else _fast_blocks
    slow = fast(a2, i2, values, scale, add=False)  # step 2 again, by the same code as the first pass
    out[again] = values  # the slow ones are overwritten by a later round
    return a2[slow], i2[slow], again[slow]


@functools.lru_cache(maxsize=1)
def _kernel() -> ModuleType | None:
    """The compiled kernel (``demmi_rf/_zigfast.c``, built at install when a C compiler is available: the
    common case and the slow path), or None: when it is missing, when ``DEMMI_RF_NUMPY_ZIGGURAT=1``, or when
    either entry point does not give the numpy path's bits (and, for the slow path, the same generator
    position) on a probe (checked once per process), the numpy path runs. Both give the same bits."""
    _zigfast = compiled_module()
    if _zigfast is None:
        return None
    probe = np.random.default_rng(20261126).bit_generator
    words, layers = _draw_words(probe, 4099)
    base = (np.arange(4099, dtype=np.float32) - 2049.5) * np.float32(0.37)
    for add, scale in ((True, 25.0), (False, 1.0)):
        expected, got = base.copy(), base.copy()
        slow_expected = _fast_blocks_numpy(words, layers, expected, scale, add)
        slow_got = np.empty(got.size, dtype=np.int64)
        k = _zigfast.fast_path(words, layers, _thresholds(), _widths(scale), got, slow_got, add)
        if expected.tobytes() != got.tobytes() or not np.array_equal(slow_expected, slow_got[:k]):
            return None
    # the slow path on words of every kind: random layers, then the tail layer 0, the edge layers 1, 254, 255
    layers = layers[:512].copy()
    layers[128:256] = 0
    layers[256:384] = np.resize(np.array([1, 254, 255], dtype=np.uint8), 128)
    for scale in (25.0, 1.0):
        paths = []
        for slow in (_slow_path_numpy, None):
            gen = np.random.PCG64(20261130)
            out = np.empty(layers.size, dtype=np.float32)
            if slow is None:
                _zigfast.slow_path(gen, words[:512], layers, *_slow_tables(), _widths(scale), _math_consts(),
                                   tables()[2], scale, out)
            else:
                slow(gen, words[:512], layers, scale, out, numpy_only=True)
            paths.append((out.tobytes(), int(gen.random_raw())))  # the values and the stream position
        if paths[0] != paths[1]:
            return None
    return _zigfast


def backend() -> str:
    """``"compiled"`` or ``"numpy"``: which implementation of the common case runs (same bits either way)."""
    return "numpy" if _kernel() is None else "compiled"
