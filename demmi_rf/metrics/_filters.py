"""Filtering helpers shared by the metrics: MATLAB-equivalent kernels, paddings and exact box sums.

The filters compute in float64 (8-bit input is converted) and state which MATLAB call they stand in for.
Correlation (not convolution) is used throughout; the kernels here are symmetric or the callers flip them.

**Same bits on every CPU code path.** A general-purpose filter (``cv2.filter2D``, ``cv2.sepFilter2D``) sums its
products in an order, with fused multiply-adds or not, that depends on the instruction set OpenCV dispatches to
(and on ``cv2.setUseOptimized``); the last bits of the metrics then differ between machines. Here:

- the Gaussian filters (:func:`correlate_valid_sep`) are a fixed sequence of numpy element-wise additions and
  multiplications (correctly rounded, never contracted into an FMA), so every output is the same function of the
  input bits everywhere;
- the Sobel filters (:func:`correlate2d_valid`, :func:`correlate2d`) and box sums (:func:`box_sum_valid`) keep
  OpenCV's fast filters because their results are *exact*: integer (or dyadic) kernels on integer (or dyadic)
  data, every product and partial sum representable in float64, so the summation order cannot matter;
- ``exp``, ``log`` and the other elementary functions come from :mod:`._elementary` (IEEE basic operations and
  exact tables) rather than from numpy or OpenCV, whose implementations are chosen by CPU.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import _elementary as _el

_BORDERS = {
    "zero": cv2.BORDER_CONSTANT,  # MATLAB conv2(...,'same') / imfilter default
    "replicate": cv2.BORDER_REPLICATE,  # imfilter(...,'replicate')
    "mirror": cv2.BORDER_REFLECT_101,  # d c b | a b c d | c b a  (per_extn_im_fn, scipy 'mirror')
}


def fspecial_gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (bit-for-bit symmetric, read-only).

    fspecial builds ``h = exp(-(x^2+y^2)/(2 sigma^2))`` on the ``size x size`` grid centred at 0, zeroes entries
    below ``eps*max(h)`` and normalises to unit sum. The 2-D kernel is the outer product of this 1-D kernel
    (identical up to rounding; the eps cut-off never triggers for the sizes used by the metrics). ``exp`` is
    :func:`._elementary.exp`, so the taps are the same doubles on every machine.
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = _el.exp(-(x * x) / (2.0 * sigma * sigma))
    g = g / g.sum()
    g.setflags(write=False)
    return g


def correlate_valid_sep(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(k*k', img, 'valid')`` for a symmetric kernel ``k`` of odd length n (output
    (H-n+1) x (W-n+1), float64), computed in a fixed order of element-wise operations.

    With ``r = n // 2`` and ``P_j(x)[i] = x[i - j] + x[i + j]``: rows first, ``t = k_r x + sum_{j=r..1}
    k_{r-j} P_j(x)`` (``k_r x`` first, then the pairs from the outermost inwards, each pair added, multiplied by
    its tap, then accumulated), then the same along the columns of ``t``. The horizontal pass runs over the
    flattened image (the last n-1 columns of each row mix in the next row and are cut off), so each step is one
    contiguous numpy call; no step is a reduction whose order an implementation may choose.
    """
    n = len(k)
    h, w = img.shape
    if h < n or w < n:
        return np.zeros((max(h - n + 1, 0), max(w - n + 1, 0)))
    k = np.asarray(k, dtype=np.float64)
    if n % 2 != 1 or not np.array_equal(k, k[::-1]):
        raise ValueError("correlate_valid_sep needs a symmetric kernel of odd length")
    r = n // 2
    v = np.ascontiguousarray(img, dtype=np.float64).ravel()
    m = h * w - (n - 1)
    t = np.empty(h * w)
    t[m:] = 0.0  # the tail of the last row is never a 'valid' output; keep it finite
    acc = t[:m]
    np.multiply(v[r : r + m], k[r], out=acc)
    tmp = np.empty(m)
    for j in range(r):
        np.add(v[j : j + m], v[n - 1 - j : n - 1 - j + m], out=tmp)
        tmp *= k[j]
        acc += tmp
    ho = h - n + 1
    mm = ho * w
    out = np.multiply(t[r * w : r * w + mm], k[r])
    tmp = tmp[:mm]
    for j in range(r):
        np.add(t[j * w : j * w + mm], t[(n - 1 - j) * w : (n - 1 - j) * w + mm], out=tmp)
        tmp *= k[j]
        out += tmp
    return out.reshape(ho, w)[:, : w - n + 1]


def pad(img: np.ndarray, r: int, border: str) -> np.ndarray:
    """``img`` extended by ``r`` pixels on every side with the named border rule (see ``_BORDERS``)."""
    return cv2.copyMakeBorder(np.ascontiguousarray(img), r, r, r, r, _BORDERS[border], value=0)


def correlate2d_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' 2-D correlation of a float64 image with a small odd square kernel.

    Used for the Sobel responses of Q_abf and N_abf: integer (or 1/8-multiple) kernels on integer data give exact
    results, the same on every CPU code path whatever OpenCV's summation order."""
    r = kernel.shape[0] // 2
    out = cv2.filter2D(
        np.ascontiguousarray(img, dtype=np.float64), cv2.CV_64F, np.asarray(kernel, dtype=np.float64),
        borderType=cv2.BORDER_CONSTANT,
    )
    return out[r:-r, r:-r]


def correlate2d(img: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """'same'-size 2-D correlation of a float64 image with a small odd kernel (centre anchor).

    Used for EI's Sobel responses: exact on integer data (see :func:`correlate2d_valid`)."""
    return cv2.filter2D(
        np.ascontiguousarray(img, dtype=np.float64), cv2.CV_64F, np.asarray(kernel, dtype=np.float64),
        borderType=_BORDERS[border],
    )


def box_sum_valid(img: np.ndarray, n: int) -> np.ndarray:
    """Sums over every n x n window fully inside ``img`` (MATLAB ``filter2(ones(n), img, 'valid')``).

    Exact for integer-valued float64 input whose window sums stay below 2^53 (OpenCV's running box sum then only
    adds and subtracts integers).
    """
    h, w = img.shape
    r = n // 2
    out = cv2.boxFilter(
        np.ascontiguousarray(img, dtype=np.float64), cv2.CV_64F, (n, n), normalize=False,
        borderType=cv2.BORDER_CONSTANT,
    )
    return out[r : h - (n - 1 - r), r : w - (n - 1 - r)]


def sum_log1p(u: np.ndarray) -> float:
    """``sum(log(1 + u))`` for ``u >= 0``, computed as logs of block products (few logarithms, ~1e-15 relative).

    The terms are multiplied in blocks short enough that no product can overflow, then one logarithm is taken
    per block.
    """
    v = np.asarray(u, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    top = float(v.max())
    if not np.isfinite(top):
        return float(np.sum(_el.log(1.0 + v)))  # inf (or NaN) whatever the other terms
    k = max(1, min(64, 1000 // math.frexp(1.0 + top)[1]))  # 1 + u < 2^e: a product of k terms stays < 2^1000
    m = -(-v.size // k)
    buf = np.ones(m * k, dtype=np.float64)
    np.add(v, 1.0, out=buf[: v.size])
    prod = np.multiply.reduce(buf.reshape(k, m), axis=0)  # k rows multiplied element-wise, in row order
    return float(np.sum(_el.log(prod)))
