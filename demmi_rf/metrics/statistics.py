"""Pixel statistics: SD, CC, SCD, MSE and the PSNR variants."""

from __future__ import annotations

import numpy as np

from ._common import gray_u8, hist256, row_blocks, triple
from ._elementary import log10


def standard_deviation(fused: np.ndarray) -> float:
    """SD: population standard deviation ``sqrt(mean((F - mean(F))^2))`` of the fused image.

    Input: uint8 gray, 0-255 scale; a global statistic (no border handling). Same in tang (``SD_evaluation.m``),
    VIFB (``metricsVariance.m``, which calls it "Variance") and CDDFuse (``numpy.std``). Reference: Rao,
    Meas. Sci. Technol. 1997.
    """
    counts = hist256(gray_u8(fused, "fused"))  # from the histogram: no full-size float copy
    levels = np.arange(256, dtype=np.float64)
    n = counts.sum()
    mean = float(np.sum(counts * levels)) / n
    return float(np.sqrt(np.sum(counts * (levels - mean) ** 2) / n))


class _Moments:
    """Exact first and second moments of three 8-bit images ``(F, A, B)`` (indices 0, 1, 2).

    ``s[i] = sum(X_i)``, ``dot(i, j) = sum(X_i X_j)`` as Python integers: per row block, float64 sums of
    integer data and of their products are exact (every partial sum stays far below 2^53). Products are summed
    with numpy, not BLAS ``dot``: a threaded BLAS would spin extra cores for these short vectors.
    """

    def __init__(self, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        self.n = f.size
        s = [0, 0, 0]
        d = [[0] * 3 for _ in range(3)]
        for r0, r1 in row_blocks(*f.shape):
            v = [x[r0:r1].astype(np.float64).ravel() for x in (f, a, b)]
            prod = np.empty_like(v[0])
            for i in range(3):
                s[i] += int(np.sum(v[i]))
                for j in range(i, 3):
                    d[i][j] += int(np.sum(np.multiply(v[i], v[j], out=prod)))
        self.s = s
        self._d = d

    def dot(self, i: int, j: int) -> int:
        return self._d[min(i, j)][max(i, j)]

    def sse(self, i: int, j: int) -> int:
        """``sum((X_i - X_j)^2)``."""
        return self.dot(i, i) - 2 * self.dot(i, j) + self.dot(j, j)


def _corr_exact(n: int, sx: int, sy: int, sxx: int, syy: int, sxy: int) -> float:
    """Pearson correlation from exact integer sums (MATLAB ``corr2``; NaN when a variance is 0)."""
    cxy = n * sxy - sx * sy
    cxx = n * sxx - sx * sx
    cyy = n * syy - sy * sy
    if cxx == 0 or cyy == 0:
        return float("nan")
    return float(cxy / np.sqrt(float(cxx) * float(cyy)))


def correlation_coefficient(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """CC: ``(r(IR, F) + r(VIS, F)) / 2`` with ``r`` the Pearson correlation over all pixels.

    Input: uint8 gray (scale-free); global over all pixels, no border handling. NaN when F or a source is
    constant (0/0, as in MATLAB). Computed from exact integer moments. Same in tang (``CC_evaluation.m``) and
    CDDFuse (``Evaluator.CC``).
    """
    m = _Moments(*triple(fused, ir, vis))  # 0 = F, 1 = IR, 2 = VIS
    r_af = _corr_exact(m.n, m.s[1], m.s[0], m.dot(1, 1), m.dot(0, 0), m.dot(1, 0))
    r_bf = _corr_exact(m.n, m.s[2], m.s[0], m.dot(2, 2), m.dot(0, 0), m.dot(2, 0))
    return (r_af + r_bf) / 2.0


def scd(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SCD (sum of the correlations of differences): ``corr2(F - VIS, IR) + corr2(F - IR, VIS)``.

    Input: uint8 gray (scale-free); global, no border handling. NaN when a correlation is 0/0. Computed from
    exact integer moments. Reference: Aslantas & Bendes, AEU 2015; tang ``analysis_SCD.m``, CDDFuse
    ``Evaluator.SCD``.
    """
    m = _Moments(*triple(fused, ir, vis))  # 0 = F, 1 = IR, 2 = VIS
    ff, aa, bb = m.dot(0, 0), m.dot(1, 1), m.dot(2, 2)
    fa, fb, ab = m.dot(0, 1), m.dot(0, 2), m.dot(1, 2)
    sf, sa, sb = m.s
    # corr2(F - VIS, IR) and corr2(F - IR, VIS) expanded into the exact sums above.
    r1 = _corr_exact(m.n, sf - sb, sa, ff - 2 * fb + bb, aa, fa - ab)
    r2 = _corr_exact(m.n, sf - sa, sb, ff - 2 * fa + aa, bb, fb - ab)
    return r1 + r2


MSE_CONVENTIONS = ("tang", "vifb", "cddfuse")


def mean_squared_error(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """MSE between the fused image and the two sources.

    - ``tang`` (``MSE_evaluation.m``): ``(mean((F-IR)^2) + mean((F-VIS)^2)) / 2`` on the **[0, 1]** scale
      (images divided by 255, MATLAB ``im2double``).
    - ``cddfuse`` (``Evaluator.MSE``): the same average on the 0-255 scale (= tang x 255^2).
    - ``vifb`` (``metricsRmse.m``, "RMSE"): ``(sqrt(SSE(F,VIS)) + sqrt(SSE(F,IR))) / (2 H W)`` on 0-255, where
      ``SSE`` is the sum of squared differences. Quirk: this is not an RMSE and shrinks with image size
      (``~ RMSE / sqrt(H W)``), so values are only comparable between images of the same size.

    Input: uint8 gray. No border handling.
    """
    if convention not in MSE_CONVENTIONS:
        raise ValueError(f"unknown MSE convention {convention!r}; expected one of {MSE_CONVENTIONS}")
    m = _Moments(*triple(fused, ir, vis))  # 0 = F, 1 = IR, 2 = VIS
    n = m.n
    sse_a, sse_b = m.sse(0, 1), m.sse(0, 2)
    if convention == "tang":
        return (sse_a + sse_b) / (2.0 * n * 255.0 * 255.0)
    if convention == "cddfuse":
        return (sse_a + sse_b) / (2.0 * n)
    if convention == "vifb":
        return float((np.sqrt(sse_b) + np.sqrt(sse_a)) / (2.0 * n))
    raise ValueError(f"unknown MSE convention {convention!r}; expected one of {MSE_CONVENTIONS}")


PSNR_CONVENTIONS = ("tang", "vifb", "cddfuse", "std")


def psnr(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """PSNR of the fused image against the two sources, in dB (infinite when F equals both sources).

    - ``tang`` (``PSNR_evaluation.m``): ``20 log10(255 / sqrt(MSE01))`` with ``MSE01`` the tang MSE on the
      [0, 1] scale. Quirk: a 255 peak with a [0, 1] MSE, i.e. 48.13 dB above the textbook value.
    - ``vifb`` (``metricsPsnr.m``): ``20 log10(255 / sqrt(m))`` with ``m`` the size-dependent VIFB "RMSE".
    - ``cddfuse`` (``Evaluator.PSNR``): ``10 log10(max(F)^2 / MSE255)`` (peak = the fused image's maximum).
    - ``std`` (textbook): ``10 log10(255^2 / MSE255)`` with ``MSE255`` the two-source average MSE on 0-255.

    The TG-ECNet paper scale is :func:`psnr_paper`. Input: uint8 gray; global, no border handling.
    """
    f, _, _ = triple(fused, ir, vis)
    with np.errstate(divide="ignore", invalid="ignore"):
        if convention == "tang":
            return float(20.0 * _log10(255.0 / np.sqrt(mean_squared_error(fused, ir, vis, "tang"))))
        if convention == "vifb":
            return float(20.0 * _log10(255.0 / np.sqrt(mean_squared_error(fused, ir, vis, "vifb"))))
        if convention == "cddfuse":
            peak = np.float64(f.max())
            return float(10.0 * _log10(peak * peak / np.float64(mean_squared_error(fused, ir, vis, "cddfuse"))))
        if convention == "std":
            return float(10.0 * _log10(255.0 * 255.0 / np.float64(mean_squared_error(fused, ir, vis, "cddfuse"))))
    raise ValueError(f"unknown PSNR convention {convention!r}; expected one of {PSNR_CONVENTIONS}")


def psnr_paper(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """PSNR_paper: ``10 log10(255 / sqrt(MSE01))`` -- the scale of the TG-ECNet paper's tables (ICML 2025).

    Exactly half of tang's PSNR. No public code computes it; it is the one formula that reproduces the paper's
    pairing of MSE 0.04-0.15 with PSNR 28-31 dB (``PSNR_paper + 5 log10(MSE01) = 24.07``). It is not a
    textbook PSNR and is offered only to compare with that paper, under this explicit name. Input: uint8 gray
    (MSE01 = tang's MSE on the [0, 1] scale); global, no border handling.
    """
    with np.errstate(divide="ignore"):
        return float(10.0 * _log10(255.0 / np.sqrt(mean_squared_error(fused, ir, vis, "tang"))))


def _log10(x: float) -> np.float64:
    """``log10`` of one non-negative number through :func:`._elementary.log10` (the same bits on every CPU)."""
    return log10(np.array([x], dtype=np.float64))[0]
