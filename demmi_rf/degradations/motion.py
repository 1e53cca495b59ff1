r"""VIS motion blur: a straight line kernel of length L and angle θ (atom ``motion``).

.. math::

    y(p) = \frac{1}{L} \sum_{j=0}^{L-1} x\big(p + (u_j, v_j)\big) \ \text{per channel}
    \qquad \text{(the correlation with } K_{L,\theta} = \tfrac{1}{L} \textstyle\sum_j \delta_{(u_j, v_j)}\text{)}

with the L cells of a digital line through the kernel's centre (a DDA / Bresenham line, as ``cv2.line``
draws it): for a = j − ⌊(L−1)/2⌋, j = 0..L−1, and θ (degrees, counter-clockwise from the +x axis, image rows
pointing down),

.. math::

    (u_j, v_j) = \begin{cases} (a,\ -\operatorname{rnd}(a \tan\theta)) & |\theta \bmod 180 - 90| \ge 45
    \ \text{(x is the major axis)}\\ (\operatorname{rnd}(a \cot\theta),\ -a) & \text{otherwise (y is the major
    axis)} \end{cases}

where rnd rounds half to even; the kernel spans L pixels along its major axis, every cell weighs 1/L, so it
sums to 1 and the image mean is preserved away from the borders. Borders are reflect-101 (``dcb|abcd|cba``).
This is the uniform motion-blur kernel of albumentations ``MotionBlur`` (a ``cv2.line`` of ones, normalised)
and of the ControlFusion generator ``genDateset/vis_blur.py`` (a horizontal line rotated by ``warpAffine``,
whose bilinear resampling makes the weights non-uniform; here the line is rasterised directly); Kupyn et
al., *DeblurGAN* (CVPR 2018) motivate the linear-trajectory model. Per sample L uniform among the recipe's
lengths and θ ~ U(a, b) rounded to the nearest integer degree (recipe ``[degradations.motion]``; the record
holds the integer θ).

**Exactness.** The cells are computed in float64 from θ reduced to [−45°, 45°] around the major axis; for
every integer angle and |a| ≤ 100 the product a·tan lies at least 10⁻⁶ from a rounding tie
(``tests/test_atoms_extended.py``), so any libm within a few ulp gives the same cells. The convolution is a
fixed sequence of elementwise float32 operations on a reflect-101 padded copy (``cv2.copyMakeBorder``, a pure
copy), processed in strips of rows that stay in cache:

.. math:: S = (\dots((x_{c_0} + x_{c_1}) + x_{c_2}) + \dots) + x_{c_{L-1}}, \qquad y = S \cdot \mathrm{fl}_{32}(1/L)

(cells in the order j = 0..L−1; every step one correctly rounded IEEE addition, ``cv2.add`` on strided views,
never an FMA or a reduction of the library's choosing; the last step one multiplication). Unlike
``cv2.filter2D`` (whose summation order and FMA use depend on the CPU path and kernel size), the result is
the same bits on any machine. Cost: L + 2 passes over the image.

**On uint8 (the atom alone in its chain, :func:`apply_uint8`).** Every x is an integer in [0, 255], so every
partial sum above is an integer below 2²⁴ and exact in float32: S equals the integer sum, in any order. It is
computed in uint16 (L ≤ 257), converted and scaled: y = rint(clip(fl32(S)·fl32(1/L))), the same bytes as the
float path followed by the composition's rounding, in about half the time. The line repeats its steps, so pairs of
cells with the same step share one partial sum D(q) = x(q) + x(q + d) (one pass), pairs of such pairs likewise,
level by level (:func:`_sum_shifted`): about log₂ L + 1 passes along an axis, fewer than L − 1 at any angle.
All of it runs in strips of rows (the padded uint16 rows, the sums, the conversion into the output rows) so the
uint16 buffers stay in cache: every element gets the same integer sum and the same conversion.

**The conversion on integers.** For an odd L the quotient S/L is never a tie, so rint(S/L) = ⌊(S + b)/L⌋ with
b = (L − 1)/2, and with M = ⌈2¹⁶/L⌉

.. math:: y = \big((S + b)\cdot M\big) \gg 16

equals it as long as (S + b)·(M·L − 2¹⁶) < 2¹⁶ for every S ≤ 255·L (the multiplier's excess stays below one
step). The form is not assumed: :func:`_integer_scale` accepts it for a length only when it equals
rint(clip(fl32(S)·fl32(1/L))), the float path's own rounding, on *every* S = 0..255·L (it does for L = 3-15, 21,
29, 33, 99; not for even L, nor 17-19 or 23-27), and the compiled kernel computes it with a 16-bit high-part
multiplication (``scale_u16``: about 40 µs on 640×480×3 against 160-280 µs for ``cv2.convertScaleAbs``). Other
lengths, or no kernel, use ``cv2.convertScaleAbs`` where it is checked to round so (:func:`_opencv_scales_exactly`),
else numpy. The three give the same bytes (``tests/test_atoms_extended.py``).

Registered atom (:mod:`.registry`): ``motion`` (family ``motion``, VIS, stage ``STAGE_OPTICS + 2`` = 22, after
defocus), parameters ``length`` (integer choice in [1, 201]) and ``angle`` (uniform, degrees, in [−360, 360]).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..rng import Stream
from . import _ranges
from ._arrays import filter_float32, out_array, quantize, scratch
from .registry import CHOICE, STAGE_OPTICS, UNIFORM, AtomSpec, Param, register_atom

PARAMS = (
    Param("length", CHOICE, lo=1, hi=201, default=[5, 7, 9, 11, 13, 15],
          doc="L: kernel length in pixels along its major axis"),
    Param("angle", UNIFORM, lo=-360.0, hi=360.0, default=[0.0, 180.0],
          doc="θ in degrees (counter-clockwise from +x), rounded to an integer degree"),
)

#: five severity levels, mildest first (section 7 of docs/degradations.md)
SEVERITY = (
    {"length": [3, 5], "angle": [0.0, 180.0]},
    {"length": [7, 9], "angle": [0.0, 180.0]},
    {"length": [11, 13], "angle": [0.0, 180.0]},
    {"length": [15, 17, 19], "angle": [0.0, 180.0]},
    {"length": [21, 23, 25], "angle": [0.0, 180.0]},
)


def round_angle(angle: float) -> int:
    """θ rounded to the nearest integer degree, halves away from zero (exact: a float64 comparison)."""
    r = math.floor(abs(angle) + 0.5)
    return int(r if angle >= 0 else -r)


def draw(rng: Stream, image: np.ndarray, ranges: Mapping[str, Any], atom: str = "motion") -> dict:
    """L (one ``below`` draw among the lengths), then θ (one ``uniform`` draw), θ rounded to an integer."""
    length = _ranges.draw_param(rng, ranges, PARAMS[0], atom)
    angle = _ranges.draw_param(rng, ranges, PARAMS[1], atom)
    return {"length": int(length), "angle": round_angle(angle)}


def _check(length: Any, angle: Any) -> tuple[int, int]:
    if isinstance(length, bool) or int(length) != length or length < 1:
        raise ValueError(f"motion length must be a positive integer, got {length!r}")
    if isinstance(angle, bool) or int(angle) != angle:
        raise ValueError(f"motion angle must be an integer number of degrees, got {angle!r}")
    return int(length), int(angle)


@lru_cache(maxsize=512)
def _cells(length: int, angle: int) -> tuple[tuple[int, int], ...]:
    """(dx, dy) of the L cells, j = 0..L−1 (dy down the rows)."""
    t = angle % 180  # the line is symmetric under a half turn
    major_x = t <= 45 or t >= 135
    # the slope as tan of an angle in [-45, 45] (exactly 0 and +-1 at 0 and +-45 up to libm's last bit)
    red = (t if t <= 45 else t - 180) if major_x else 90 - t
    slope = math.tan(math.radians(red))
    half = (length - 1) // 2
    cells = []
    for j in range(length):
        a = j - half
        m = round(a * slope)  # Python's round: half to even on the exact double
        cells.append((a, -m) if major_x else (m, -a))
    return tuple(cells)


def line_cells(length: int, angle: int) -> tuple[tuple[int, int], ...]:
    """The (dx, dy) offsets of the kernel's L cells in summation order (dy counts rows downwards)."""
    return _cells(*_check(length, angle))


def kernel(length: int, angle: int) -> np.ndarray:
    """K_{L,θ} as a float32 (2R+1) x (2R+1) array, R the largest |offset|; each cell 1/L (for documentation,
    tests and deconvolution: :func:`apply` never forms it)."""
    cells = line_cells(length, angle)
    r = max(max(abs(dx), abs(dy)) for dx, dy in cells)
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float64)
    for dx, dy in cells:
        k[r + dy, r + dx] += 1.0
    k /= len(cells)
    return k.astype(np.float32)


_STRIP_FLOATS = 1 << 17  # about this many elements per strip of the sum (512 KiB of float32)
_local = threading.local()


def _workspace(n: int) -> np.ndarray:
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _local.buf = np.empty(n, np.float32)
    return buf[:n]


def line_sum(image: np.ndarray, cells: Sequence[tuple[int, int]], scale: float | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
    """``Σ_j x[· + dy_j, · + dx_j]`` over ``cells`` in order (reflect-101 borders), optionally times the
    float32 ``scale`` at the end: the fixed sequence of the module docstring. ``image`` is float32 H x W or
    H x W x C; ``out`` (C-contiguous, of its shape and dtype, may be ``image`` itself) receives the result.

    A uint8 ``image`` (no ``scale``) is summed in uint8 with OpenCV's saturating add: exact as long as every
    sum stays below 256 (the rain atom's 0/1 drop masks with L ≤ 201 cells)."""
    import cv2

    x = np.asarray(image)
    kinds = (np.float32,) if scale is not None else (np.float32, np.uint8)
    if x.dtype not in kinds or x.ndim not in (2, 3):
        raise TypeError(f"line_sum expects a float32 (or, without scale, uint8) H x W or H x W x C image, got "
                        f"{x.dtype} {x.shape}")
    out = out_array(out, x.shape, x.dtype)
    if x.size == 0:
        return out
    h, w = x.shape[:2]
    c = 1 if x.ndim == 2 else x.shape[2]
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    px = max(abs(dx) for dx, _ in cells)
    py = max(abs(dy) for _, dy in cells)
    # a kernel wider than the image reflects repeatedly (reflect-101 of reflect-101, as numpy's "reflect" pad)
    src = x.reshape(h, w) if c == 1 else x
    padded = cv2.copyMakeBorder(src, py, py, px, px, cv2.BORDER_REFLECT_101)  # a pure copy
    p = padded.reshape(h + 2 * py, (w + 2 * px) * c)
    wc = w * c
    res = out.reshape(h, wc)
    hs = max(1, min(h, _STRIP_FLOATS // max(wc, 1)))
    acc_buf = _workspace(hs * wc)
    s32 = None if scale is None else np.float32(scale)
    views = [((py + dy), (px + dx) * c) for dx, dy in cells]
    for y0 in range(0, h, hs):
        y1 = min(h, y0 + hs)
        m = y1 - y0
        target = res[y0:y1] if s32 is None else acc_buf[: m * wc].reshape(m, wc)
        r0, c0 = views[0]
        if len(views) == 1:
            target[...] = p[y0 + r0 : y1 + r0, c0 : c0 + wc]
        else:
            r1, c1 = views[1]
            cv2.add(p[y0 + r0 : y1 + r0, c0 : c0 + wc], p[y0 + r1 : y1 + r1, c1 : c1 + wc], dst=target)
            for rr, cc in views[2:]:
                cv2.add(target, p[y0 + rr : y1 + rr, cc : cc + wc], dst=target)
        if s32 is not None:
            np.multiply(target, s32, out=res[y0:y1])
    return out


#: the most cells whose sum of uint8 values stays exact in uint16 (257 · 255 = 65535)
_UINT16_CELLS = 257


def line_sum_uint16(image: np.ndarray, cells: Sequence[tuple[int, int]], out: np.ndarray | None = None
                    ) -> np.ndarray:
    """``Σ_j x[· + dy_j, · + dx_j]`` of a uint8 H x W (x C) ``image`` over at most 257 ``cells`` (reflect-101
    borders, the padding of :func:`line_sum`), as uint16 H x (W·C): integer sums, exact in any order (every sum
    is at most 257 · 255 = 65535), so they equal the float32 sums of :func:`line_sum` on the same image (whose
    partial sums are integers below 2²⁴, hence exact too). Whole-image ``cv2.add`` passes on a per-thread padded
    copy, pair sums shared between cells with the same step (:func:`_sum_shifted`: e.g. 4 passes instead of 8 for
    L = 9 along a row); ``out`` (C-contiguous uint16 H x (W·C)) receives the sums."""
    import cv2

    x = np.ascontiguousarray(image)
    if x.dtype != np.uint8 or x.ndim not in (2, 3) or not 1 <= len(cells) <= _UINT16_CELLS:
        raise ValueError(f"line_sum_uint16 needs a uint8 H x W (x C) image and 1..{_UINT16_CELLS} cells, got "
                         f"{x.dtype} {x.shape} and {len(cells)} cells")
    h, w = x.shape[:2]
    c = 1 if x.ndim == 2 else x.shape[2]
    wc = w * c
    out = out_array(out, (h, wc), np.uint16)
    px = max(abs(dx) for dx, _ in cells)
    py = max(abs(dy) for _, dy in cells)
    src = x.reshape(h, w) if c == 1 else x
    padded = cv2.copyMakeBorder(src, py, py, px, px, cv2.BORDER_REFLECT_101)  # as line_sum pads
    shape = (h + 2 * py, (w + 2 * px) * c)
    p = scratch("motion.pad16", shape, np.uint16)
    np.copyto(p, padded.reshape(shape))
    _sum_shifted(p, [(py + dy, (px + dx) * c) for dx, dy in cells], h, wc, out)
    return out


def _sum_shifted(base: np.ndarray, offsets: list[tuple[int, int]], h: int, wc: int, out: np.ndarray) -> None:
    r"""out = Σ_k base[r_k : r_k + h, c_k : c_k + wc] (integers, exact in any order while every sum fits ``base``'s
    dtype: uint16 here, uint8 counts of 0/1 masks with fewer than 256 cells in :mod:`.rain`), in fewer
    whole-image passes than one add per term by sharing pair sums (a digital line repeats its steps).

    Level by level, the terms are paired in order, (0, 1), (2, 3), ...; the pairs of one base whose two offsets
    differ by the same d (normalised so the earlier offset comes first) share one partial sum
    D(q) = B(q) + B(q + d), computed once over the bounding box of their first offsets (one pass), after which
    each such pair is one view of D. A d shared by a single pair is not worth a pass: its terms stay. The level
    repeats on the new terms until no d is shared; then the remaining views are added. Example: L = 9 along a
    row, 1 + 1 + 2 passes (D₁, D₂ = D₁ + D₁(·+2), then D₂ + D₂(·+4) + x(·+8)) instead of 8."""
    import cv2

    builds, final = _pair_plan(tuple(offsets), h, wc)
    arrays = [base]
    for key, src, shape, (ra, ca), (rb, cb) in builds:
        arr = arrays[src]
        d = scratch(key + base.dtype.str, shape, base.dtype)  # per dtype: motion (uint16) and rain (uint8)
        cv2.add(arr[ra : ra + shape[0], ca : ca + shape[1]], arr[rb : rb + shape[0], cb : cb + shape[1]], dst=d)
        arrays.append(d)
    views = [arrays[i][r : r + h, col : col + wc] for i, r, col in final]
    if len(views) == 1:
        np.copyto(out, views[0])
        return
    cv2.add(views[0], views[1], dst=out)
    for v in views[2:]:
        cv2.add(out, v, dst=out)


@lru_cache(maxsize=1024)
def _pair_plan(offsets: tuple[tuple[int, int], ...], h: int, wc: int) -> tuple[tuple, tuple]:
    """The schedule of :func:`_sum_shifted` for these offsets and this output size (pure Python, cached): the pair
    sums to build, each ``(scratch key, source array index, shape, (row, col) of the first view, (row, col) of the
    second)`` in the source's own coordinates, and the final views ``(array index, row, col)``; array 0 is the base,
    array k + 1 the k-th pair sum."""
    # a term: (array index, its origin row, its origin column, row, column), rows and columns in base's frame
    terms = [(0, 0, 0, r, col) for r, col in offsets]
    origins = [(0, 0)]
    builds = []
    level = 0
    while len(terms) > 3:
        groups: dict[tuple[int, int, int], list[int]] = {}
        for k in range(0, len(terms) - 1, 2):
            a, b = terms[k], terms[k + 1]
            if a[0] == b[0]:
                first, second = (a, b) if (a[3], a[4]) <= (b[3], b[4]) else (b, a)
                groups.setdefault((a[0], second[3] - first[3], second[4] - first[4]), []).append(k)
        shared = {key: ks for key, ks in groups.items() if len(ks) >= 2}
        if not shared:
            break
        replaced: dict[int, tuple] = {}
        for i, ((src, dr, dc), ks) in enumerate(shared.items()):
            ar0, ac0 = origins[src]
            firsts = [min((terms[k][3], terms[k][4]), (terms[k + 1][3], terms[k + 1][4])) for k in ks]
            r0, r1 = min(f[0] for f in firsts), max(f[0] for f in firsts) + h
            c0, c1 = min(f[1] for f in firsts), max(f[1] for f in firsts) + wc
            builds.append((f"motion.pairs{level}.{i}", src, (r1 - r0, c1 - c0), (r0 - ar0, c0 - ac0),
                           (r0 + dr - ar0, c0 + dc - ac0)))
            origins.append((r0, c0))
            for k, (fr, fc) in zip(ks, firsts):
                replaced[k] = (len(origins) - 1, r0, c0, fr, fc)
        new = []
        k = 0
        while k < len(terms):
            if k in replaced:
                new.append(replaced[k])
                k += 2
            else:
                new.append(terms[k])
                k += 1
        terms = new
        level += 1
    final = tuple((i, r - ar0, col - ac0) for i, ar0, ac0, r, col in terms)
    return tuple(builds), final


@lru_cache(maxsize=512)
def _opencv_scales_exactly(length: int) -> bool:
    """Whether ``cv2.convertScaleAbs(S, alpha=fl32(1/L))`` gives rint(clip(fl32(S)·fl32(1/L))) (round half to even)
    for *every* sum S = 0..255·L, both on its vectorised path (one contiguous row) and its scalar path (a column
    of a wider array): checked once per process and length, so the fast path can never change a byte."""
    import cv2

    want = _exact_levels(length)
    n = want.size
    levels = np.arange(n, dtype=np.uint16)
    alpha = float(np.float32(1.0 / length))
    row = cv2.convertScaleAbs(levels.reshape(1, n), alpha=alpha).reshape(n)
    wide = np.zeros((n, 2), np.uint16)
    wide[:, 0] = levels
    column = cv2.convertScaleAbs(wide[:, :1], alpha=alpha).reshape(n)
    return bool(np.array_equal(row, want) and np.array_equal(column, want))


def blur_uint8(image: np.ndarray, length: int, angle: int) -> np.ndarray:
    """``quantize(blur(float32(image), L, θ))`` for a uint8 image, computed on integers: the cell sums S exactly
    in uint16 (:func:`line_sum_uint16`), then y = rint(clip(fl32(S)·fl32(1/L))), the float path's last step on
    the same S, in strips of rows (:func:`_blur_uint8_strips`) by the first of these that provably gives it for
    every S = 0..255·L of this L: the compiled kernel's integer form ((S + b)·M) >> 16 (:func:`_integer_scale`),
    ``cv2.convertScaleAbs`` (:func:`_opencv_scales_exactly`); else with numpy on the whole image."""
    cells = line_cells(length, angle)
    x = np.asarray(image)
    if x.size == 0 or len(cells) > _UINT16_CELLS:
        return quantize(blur(x.astype(np.float32), length, angle))
    h = x.shape[0]
    wc = x.size // max(h, 1)
    n = len(cells)
    finish = _finisher(n)
    if finish is not None:
        return _blur_uint8_strips(x, cells, finish).reshape(x.shape)
    # no exact fast conversion for this L (tests force this branch): numpy on the whole image
    total = line_sum_uint16(x, cells, out=scratch("motion.sum16", (h, wc), np.uint16))
    work = total.astype(np.float32)
    work *= np.float32(1.0 / n)
    return quantize(work).reshape(x.shape)


def _exact_levels(length: int) -> np.ndarray:
    """rint(clip(fl32(S)·fl32(1/L))) for S = 0..255·L (uint8, numpy): what every fast conversion must give."""
    want = np.arange(255 * length + 1, dtype=np.float32)
    want *= np.float32(1.0 / length)
    return quantize(want)


@lru_cache(maxsize=512)
def _integer_scale(length: int) -> tuple[int, int] | None:
    r"""(b, M) with ((S + b)·M) >> 16 = rint(clip(fl32(S)·fl32(1/L))) for *every* S = 0..255·L (checked here,
    exhaustively, in int64), or None. The candidate is b = (L − 1)/2, M = ⌈2¹⁶/L⌉: for odd L, S/L is never a
    tie, rint(S/L) = ⌊(S + b)/L⌋, and M/2¹⁶ exceeds 1/L by less than 1/(L·(255L + b)) for the lengths where the
    check passes (L = 3-15 and more); an even L has ties (round half to even) and fails the check, L = 1 needs
    M = 2¹⁶, which does not fit the kernel's 16 bits."""
    want = _exact_levels(length).astype(np.int64)
    s = np.arange(want.size, dtype=np.int64)
    b, m = (length - 1) // 2, -(-(1 << 16) // length)
    if s[-1] + b <= 0xFFFF and m <= 0xFFFF and np.array_equal(((s + b) * m) >> 16, want):
        return b, m
    return None


@lru_cache(maxsize=1)
def _scale_kernel() -> Callable[..., None] | None:
    """The compiled kernel's ``scale_u16`` (((S + b)·M) >> 16, uint16 to uint8), or None: no kernel,
    ``DEMMI_RF_NUMPY_ZIGGURAT=1``, or a probe (once per process) where it differs from the same integer
    arithmetic in numpy."""
    from ..kernel import compiled_routine  # noqa: PLC0415 - imported only when a motion blur runs

    routine = compiled_routine("scale_u16")
    if routine is None:
        return None
    probe = np.random.default_rng(0).integers(0, 3826, 4099).astype(np.uint16)  # L = 15's sums, an odd count
    got = np.empty(probe.size, np.uint8)
    routine(probe, got, 7, 4370)
    want = ((probe.astype(np.int64) + 7) * 4370) >> 16
    return routine if np.array_equal(got, want) else None


def _finisher(length: int) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``finish(sums, out)``: out (uint8, C-contiguous) = rint(clip(fl32(S)·fl32(1/L))) of the uint16 sums (of the
    same size), by the compiled integer form when the kernel is there and it holds for this L, else by
    ``cv2.convertScaleAbs`` when that rounds exactly so for this L; None when neither does."""
    kernel = _scale_kernel()
    form = _integer_scale(length) if kernel is not None else None
    if form is not None:
        b, m = form
        return lambda sums, out: kernel(sums, out, b, m)
    if _opencv_scales_exactly(length):
        import cv2

        alpha = float(np.float32(1.0 / length))
        return lambda sums, out: cv2.convertScaleAbs(sums, dst=out, alpha=alpha)
    return None


#: bytes of one uint16 strip buffer of :func:`_blur_uint8_strips` (the padded strip, a pair sum, the sums)
_STRIP_BYTES = 1 << 20


def _blur_uint8_strips(x: np.ndarray, cells: tuple[tuple[int, int], ...],
                       finish: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """:func:`blur_uint8`'s fast path in strips of rows: per strip the padded rows in uint16, the cell sums
    (:func:`_sum_shifted`) and their conversion by ``finish`` (:func:`_finisher`) into the output rows, so the
    uint16 buffers stay in cache; the same integer sums and the same conversion per element as on the whole
    image."""
    import cv2

    x = np.ascontiguousarray(x)
    h, w = x.shape[:2]
    c = 1 if x.ndim == 2 else x.shape[2]
    wc = w * c
    px = max(abs(dx) for dx, _ in cells)
    py = max(abs(dy) for _, dy in cells)
    src = x.reshape(h, w) if c == 1 else x
    pw = (w + 2 * px) * c
    padded = cv2.copyMakeBorder(src, py, py, px, px, cv2.BORDER_REFLECT_101).reshape(h + 2 * py, pw)
    offsets = [(py + dy, (px + dx) * c) for dx, dy in cells]
    rows = max(1, min(h, _STRIP_BYTES // (2 * pw) - 2 * py))
    out = np.empty((h, wc), np.uint8)
    for y0 in range(0, h, rows):
        m = min(rows, h - y0)
        p16 = scratch("motion.strip16", (m + 2 * py, pw), np.uint16)
        np.copyto(p16, padded[y0 : y0 + m + 2 * py])
        sums = scratch("motion.stripsum16", (m, wc), np.uint16)
        _sum_shifted(p16, offsets, m, wc, sums)
        finish(sums, out[y0 : y0 + m])
    return out


def blur(image: np.ndarray, length: int, angle: int, out: np.ndarray | None = None) -> np.ndarray:
    """``K_{L,θ} * image`` (float32, reflect-101), in the fixed order of the module docstring."""
    cells = line_cells(length, angle)
    return line_sum(image, cells, scale=1.0 / len(cells), out=out)


def apply(image: np.ndarray, rng: Stream | None = None, *, length: int, angle: int,
          inplace: bool = False) -> np.ndarray:
    """``K_{L,θ} * image`` in float32. Draws nothing (``rng`` is accepted for a uniform atom signature)."""
    return filter_float32(image, inplace, lambda src, out=None: blur(src, length, angle, out=out))


def apply_uint8(image: np.ndarray, rng: Stream | None = None, *, length: int, angle: int) -> np.ndarray:
    """``quantize(apply(image))`` for a uint8 image (:func:`blur_uint8`: integer sums, the same bytes). Draws
    nothing."""
    return blur_uint8(image, length, angle)


SPEC = register_atom(AtomSpec(
    name="motion", label_index=8,
    family="motion", modality="vis", stage=STAGE_OPTICS + 2, params=PARAMS, draw=draw,
    apply=apply, summary="linear motion blur (line kernel of length L at angle θ)",
    label="motion L={length} a={angle}", severity=SEVERITY, random_apply=False, apply_uint8=apply_uint8,
))
