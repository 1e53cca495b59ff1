r"""VIS defocus blur: a disk (pillbox) point-spread function softened by a small Gaussian (atom ``defocus``).

.. math::

    y = K_r * x \ \text{per channel}, \qquad
    K_r = \frac{G_{\sigma} \star D_r}{\sum G_{\sigma} \star D_r} = \frac{1}{N_r}\, G_{\sigma} \star D_r, \qquad
    D_r(u, v) = [u^2 + v^2 \le r^2], \quad N_r = \sum D_r

with :math:`G_\sigma` the 3x3 Gaussian of σ = 0.5 (``alias_sigma``) and ``star`` the full 2-D convolution,
so K_r is (2r+3) x (2r+3), symmetric and sums to 1 (the image mean is preserved away from borders). Borders
are reflect-101 (``cv2.BORDER_REFLECT_101``: ``dcb|abcd|cba``). Per sample r ~ U{3, 4, 5, 6} (recipe
``[degradations.defocus]``). This is the defocus kernel of Hendrycks & Dietterich, *Benchmarking Neural
Network Robustness to Common Corruptions* (ICLR 2019; imagecorruptions ``defocus_blur``, albumentations
``Defocus``), here applied to float32 data with no intermediate clip, round or ``uint8`` cast.

**Factorisation.** G_σ = g gᵀ with g = b·[ρ, 1, ρ], ρ = exp(−1/(2σ²)), b = 1/(1 + 2ρ), and the disk is a
row of vertical runs: column dx of D_r spans rows −h(dx)..h(dx), h(dx) = ⌊√(r² − dx²)⌋. So, on the input
padded by r + 1 pixels (reflect-101, an exact copy),

.. math::

    S = D_r \star x = \sum_{dx=-r}^{r} V_{h(dx)}[\cdot,\ \cdot + dx], \qquad
    V_0 = x, \quad V_k = V_{k-1} + x[\cdot - k,\ \cdot] + x[\cdot + k,\ \cdot],

.. math::

    y = \frac{b^2}{N_r}\, g_v \star g_h \star S, \qquad
    g_h \star S = \rho\,(S[\cdot,\ \cdot-1] + S[\cdot,\ \cdot+1]) + S \ \text{(and likewise down the columns)}.

The vertical runs V_k are built incrementally, k = 1..r, in one buffer; S starts as the two outermost
columns dx = −r, +r (h = 0, from x itself) and adds the columns of each V_k as soon as it is built, dx from
the outermost inwards, −dx before +dx. The image is processed in strips of rows (each with its own
reflect-101 padded copy, so the work arrays stay in cache); rows near a strip's edge are computed by both
neighbouring strips, identically: every output element goes through the same operations on the same operands
whatever the strip height.

**Why the order of operations is fixed.** The same recipe and seed must give byte-identical pixels on any
machine. A general convolution (``cv2.filter2D``, ``scipy.ndimage``) sums its products in an order, with
fused multiply-adds or not, that depends on the CPU instruction set and the library build; the last bit then
differs and, after the final rounding to uint8, about 1 pixel in 10⁵ moves by ±1. Here every step is one
elementwise IEEE-754 addition or multiplication of float32 arrays (``cv2.add``, ``np.add``,
``np.multiply``: correctly rounded by the standard, never contracted into an FMA, with no reduction whose
order an implementation may choose), applied in the fixed sequence above, and the padding is a pure copy.
Each output value is therefore the same function of the input bits whatever the CPU (SSE, AVX2, AVX-512,
NEON, scalar), the numpy or the OpenCV build. The scalars ρ and b²/N_r are computed in float64 from the four
basic operations only (:func:`gauss_ratio`; C ``exp`` differs between libm builds) and rounded to float32.
Caveat: platforms that flush subnormal numbers to zero (ARMv7 NEON) differ on inputs with values below
~1e-38, which 0-255 images never reach.

Cost: 4r + 8 elementwise passes over the image, padding copy included (20-32 for r = 3..6), on strips of
about 0.5 MB per work array (kept per thread between calls); the result goes into the caller's buffer when
allowed (``inplace``).

Registered atom (:mod:`.registry`): ``defocus`` (family ``defocus``, VIS, stage :data:`~.registry.STAGE_OPTICS`,
label index 4), parameters ``radius`` (integer choice in [0, 64]) and ``alias_sigma`` (fixed, in [0, 10]).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import filter_float32, out_array
from .registry import CHOICE, FIXED, STAGE_OPTICS, AtomSpec, Param, register_atom

PARAMS = (
    Param("radius", CHOICE, lo=0, hi=64, default=[3, 4, 5, 6], doc="disk radius r in pixels"),
    Param("alias_sigma", FIXED, lo=0.0, hi=10.0, default=0.5, doc="σ of the 3x3 Gaussian that softens the disk"),
)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "defocus") -> dict:
    """One draw: r uniform among the recipe's radii; ``alias_sigma`` is fixed."""
    radius = _ranges.draw_param(rng, ranges, PARAMS[0], atom)
    alias = _ranges.draw_param(rng, ranges, PARAMS[1], atom)
    return {"radius": radius, "alias_sigma": alias}


def _check(radius: Any, alias_sigma: Any) -> tuple[int, float]:
    if int(radius) != radius or radius < 0:
        raise ValueError(f"defocus radius must be a non-negative integer, got {radius!r}")
    if not alias_sigma >= 0:
        raise ValueError(f"alias_sigma must be >= 0, got {alias_sigma!r}")
    return int(radius), float(alias_sigma)


def gauss_ratio(alias_sigma: float) -> float:
    r"""ρ = exp(−1/(2σ²)), the ratio of the outer to the centre tap of the 3-tap Gaussian g (0 for σ = 0).

    Computed from IEEE basic operations only, so it is the same double on every platform: with
    t = 1/(2σ²) = 2^m u, u ≤ 1/2, exp(u) is its Taylor series to the 24th term (relative error below 1e-16),
    squared m times, and ρ = 1/exp(t).
    """
    if alias_sigma <= 0:
        return 0.0
    t = 1.0 / (2.0 * alias_sigma * alias_sigma)
    if t > 745.0:  # exp(-t) is below the smallest double
        return 0.0
    m = 0
    while t > 0.5:
        t *= 0.5
        m += 1
    e, term = 1.0, 1.0
    for i in range(1, 25):
        term = term * t / i
        e += term
    for _ in range(m):
        e *= e
    return 1.0 / e


def half_widths(radius: int) -> tuple[int, ...]:
    """⌊√(r² − d²)⌋ for d = 0..r: row d of the disk D_r spans columns −w..w and, by symmetry, column d
    spans rows −w..w (the h(dx) of the module docstring)."""
    r = int(radius)
    return tuple(math.isqrt(r * r - dy * dy) for dy in range(r + 1))


@lru_cache(maxsize=64)
def _constants(radius: int, alias_sigma: float) -> tuple[np.float32, np.float32]:
    """(ρ, b²/N_r) as float32; the scale uses the float32 ρ so that the effective kernel sums to 1."""
    rho = np.float32(gauss_ratio(alias_sigma))
    hw = half_widths(radius)
    n = 2 * sum(2 * w + 1 for w in hw) - (2 * hw[0] + 1)  # N_r: rows -r..r of the disk
    q = 1.0 + 2.0 * float(rho)
    return rho, np.float32(1.0 / (q * q * n))


@lru_cache(maxsize=64)
def _kernel(radius: int, alias_sigma: float) -> np.ndarray:
    r = radius
    half = r + 1
    u = np.arange(-half, half + 1)
    disk = ((u[:, None] ** 2 + u[None, :] ** 2) <= r * r).astype(np.float64)
    disk /= disk.sum()
    rho = gauss_ratio(alias_sigma)
    g = np.array([rho, 1.0, rho]) / (1.0 + 2.0 * rho)
    # full 3x3 convolution: the disk sits inside a one-pixel ring of zeros, so nothing is cut off
    padded = np.pad(disk, 1)
    k = np.zeros_like(disk)
    for i in range(3):
        for j in range(3):
            k += g[i] * g[j] * padded[i : i + disk.shape[0], j : j + disk.shape[1]]
    k /= k.sum()
    k32 = k.astype(np.float32)
    k32.setflags(write=False)
    return k32


def kernel(radius: int, alias_sigma: float = 0.5) -> np.ndarray:
    """K_r as float32, (2r+3) x (2r+3), normalised to sum 1 (read-only, cached).

    For documentation, tests and deconvolution: :func:`apply` never forms it (see the module docstring).
    """
    return _kernel(*_check(radius, alias_sigma))


def _add(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a + b, elementwise float32 (OpenCV: fast on row-strided views, one correctly rounded add)."""
    import cv2

    if cv2.add(a, b, dst=out) is not out:  # pragma: no cover - a shape/type mismatch is a bug here
        raise RuntimeError("cv2.add did not write into the given buffer")


_STRIP_FLOATS = 1 << 17  # about this many float32 per work-array strip (512 KiB)
_local = threading.local()


def _workspace(n: int) -> np.ndarray:
    """A flat float32 scratch array of ``n`` elements, kept per thread (fresh multi-megabyte arrays on every
    call would page-fault on first touch, which costs as much as the arithmetic)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _local.buf = np.empty(n, np.float32)
    return buf[:n]


def blur(image: np.ndarray, radius: int, alias_sigma: float = 0.5, out: np.ndarray | None = None) -> np.ndarray:
    """``K_r * image`` for a float32 H x W or H x W x C image, border reflect-101, computed in the fixed
    sequence of elementwise operations of the module docstring (bit-identical on every platform).

    ``out`` (float32, C-contiguous, the image's shape; may be ``image`` itself) receives the result;
    otherwise a new array is returned.
    """
    import cv2

    r, sigma = _check(radius, alias_sigma)
    x = np.asarray(image)
    if x.dtype != np.float32 or x.ndim not in (2, 3):
        raise TypeError(f"blur expects a float32 H x W or H x W x C image, got {x.dtype} {x.shape}")
    h, w = x.shape[:2]
    c = 1 if x.ndim == 2 else x.shape[2]
    out = out_array(out, x.shape, np.float32)
    if x.size == 0:
        return out
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    src = x.reshape(h, w) if c == 1 else x  # OpenCV: one channel as a 2-D matrix
    pad = r + 1
    wpc, width, wc = (w + 2 * pad) * c, (w + 2) * c, w * c  # padded row, S row (a one-pixel ring), image row
    # strip height: rows of output per strip; >= pad so that an in-place result never overwrites rows
    # that a later strip still reads (see the deferred final multiply below)
    hs = min(h, max(pad, 8, _STRIP_FLOATS // wpc))
    n_max = hs + 2
    scratch = _workspace((n_max + 2 * r) * wpc + n_max * wpc + n_max * width + hs * wc)
    o = 0
    p_buf = scratch[o : o + (n_max + 2 * r) * wpc]
    o += p_buf.size
    work_buf = scratch[o : o + n_max * wpc]
    o += work_buf.size
    s_buf = scratch[o : o + n_max * width]
    tmp_buf = scratch[o + s_buf.size :]
    rho, scale = _constants(r, sigma)
    hw = half_widths(r)
    levels: dict[int, list[int]] = {}
    for dx in range(r, -1, -1):  # outermost columns first
        levels.setdefault(hw[dx], []).append(dx)
    centre = r * c  # in a padded row, the column of S's first column (image column -1)

    res = out.reshape(h, wc)
    pending: tuple[np.ndarray, int, int] | None = None
    for y0 in range(0, h, hs):
        y1 = min(h, y0 + hs)
        m = y1 - y0
        n = m + 2  # S rows: image rows y0 - 1 .. y1
        lo, hi = y0 - pad, y1 + pad  # image rows of the padded strip (reflected beyond 0 and h - 1)
        s0, s1 = max(lo, 0), min(hi, h)  # a top (bottom) border is reflected from a slice that starts
        # at row 0 (ends at row h) and reaches at least pad rows in (or is the whole image): as on the full image
        p = p_buf[: (hi - lo) * wpc].reshape(hi - lo, wpc)
        dst = p.reshape((hi - lo, w + 2 * pad) if c == 1 else (hi - lo, w + 2 * pad, c))
        got = cv2.copyMakeBorder(src[s0:s1], s0 - lo, hi - s1, pad, pad, cv2.BORDER_REFLECT_101, dst=dst)
        if got is not dst:  # pragma: no cover - OpenCV allocated its own array
            dst[...] = got.reshape(dst.shape)
        if pending is not None:  # the previous strip's last step, now that its input rows were copied
            np.multiply(pending[0], scale, out=res[pending[1] : pending[2]])
        s = s_buf[: n * width].reshape(n, width)
        run = p[r : r + n]  # V_0
        if r == 0:
            s[...] = run[:, centre : centre + width]
        else:  # level 0 is exactly the two outermost columns dx = -r, +r
            _add(run[:, 0:width], run[:, 2 * centre : 2 * centre + width], s)
            work = work_buf[: n * wpc].reshape(n, wpc)
            for k in range(1, r + 1):
                np.add(run, p[r - k : r - k + n], out=work)  # V_k = V_{k-1} + x[. - k] + x[. + k]
                np.add(work, p[r + k : r + k + n], out=work)
                run = work
                for dx in levels.get(k, ()):
                    _add(s, run[:, centre - dx * c : centre - dx * c + width], s)
                    if dx:
                        _add(s, run[:, centre + dx * c : centre + dx * c + width], s)
        if rho == 0:  # no Gaussian: y = S / N_r on the image itself
            pending = (s[1 : m + 1, c : c + wc], y0, y1)
            continue
        t = work_buf[: n * wc].reshape(n, wc)  # the runs are no longer needed
        _add(s[:, 0:wc], s[:, 2 * c : 2 * c + wc], t)  # horizontal g: rho (S[x-1] + S[x+1]) + S[x]
        np.multiply(t, rho, out=t)
        _add(t, s[:, c : c + wc], t)
        u = tmp_buf[: m * wc].reshape(m, wc)
        np.add(t[0:m], t[2 : m + 2], out=u)  # vertical g
        np.multiply(u, rho, out=u)
        np.add(u, t[1 : m + 1], out=u)
        pending = (u, y0, y1)
    assert pending is not None
    np.multiply(pending[0], scale, out=res[pending[1] : pending[2]])  # b^2 / N_r
    return out


def apply(
    image: np.ndarray, rng: Stream | None = None, *, radius: int, alias_sigma: float,
    inplace: bool = False,
) -> np.ndarray:
    """``K_r * image`` in float32 (:func:`blur`). Draws nothing (``rng`` is accepted for a uniform atom
    signature). With ``inplace`` a C-contiguous writable float32 ``image`` receives the result."""
    return filter_float32(image, inplace, lambda src, out=None: blur(src, radius, alias_sigma, out=out))


#: five severity levels, mildest first (issue 14): disk radii after ImageNet-C's defocus ladder (3, 4, 6, 8, 10),
#: as disjoint choices; v1's [3, 6] spans levels 1-3. ``alias_sigma`` comes from the recipe (0.5 in v1).
SEVERITY = ({"radius": [2, 3]}, {"radius": [4]}, {"radius": [5, 6]}, {"radius": [7, 8]}, {"radius": [9, 10]})

SPEC = register_atom(AtomSpec(
    name="defocus", family="defocus", modality="vis", stage=STAGE_OPTICS, params=PARAMS, draw=draw, apply=apply,
    summary="disk defocus blur softened by a 3x3 Gaussian", label="defocus r={radius}", label_index=4,
    random_apply=False, severity=SEVERITY,
))
