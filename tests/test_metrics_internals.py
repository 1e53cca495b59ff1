"""The vectorised metric internals against direct, block-by-block transcriptions of the reference algorithms."""

from __future__ import annotations

import math

import numpy as np
import pytest

import demmi_rf.metrics as M
from demmi_rf.metrics import _strips, evaluate, rgb2gray
from demmi_rf.metrics._filters import sum_log1p

EPS = np.finfo(np.float64).eps


def _gauss2d(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return h / h.sum()


def _mef_ssim_loop(seq: np.ndarray, f: np.ndarray) -> float:
    """mef_ssim.m as written: one 11x11 block at a time (source stack seq: H x W x K)."""
    win, bd, c = _gauss2d(11, 1.5), 5, (0.03 * 255) ** 2
    h, w, k = seq.shape
    q = []
    for i in range(bd, h - bd):
        for j in range(bd, w - bd):
            vecs = seq[i - bd : i + bd + 1, j - bd : j + bd + 1, :].reshape(-1, k)
            mu = vecs.mean(axis=0)
            cen = vecs - mu
            norms = np.linalg.norm(cen, axis=0)
            ed = norms + 0.001
            s = vecs.sum(axis=1)
            r = (np.linalg.norm(s - s.mean()) + EPS) / (norms.sum() + EPS)
            r = 1 - EPS if r > 1 else (EPS if r < 0 else r)
            p = min(math.tan(math.pi / 2 * r), 10.0)
            wts = (ed / 11) ** p + EPS
            wts = wts / wts.sum()
            rb = (cen * (wts / ed)).sum(axis=1)
            if np.linalg.norm(rb) > 0:
                rb = rb / np.linalg.norm(rb) * ed.max()
            fv = f[i - bd : i + bd + 1, j - bd : j + bd + 1].ravel()
            g = win.ravel()
            m1, m2 = np.sum(g * rb), np.sum(g * fv)
            s1, s2 = np.sum(g * (rb - m1) ** 2), np.sum(g * (fv - m2) ** 2)
            s12 = np.sum(g * (rb - m1) * (fv - m2))
            q.append((2 * s12 + c) / (s1 + s2 + c))
    return float(np.mean(q))


def _half_symmetric(x: np.ndarray) -> np.ndarray:
    """imfilter(x, ones(2)/4, 'symmetric', 'same') then (1:2:end, 1:2:end)."""
    p = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    m = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4
    return m[::2, ::2]


def _mef_ms_ssim_loop(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    seq = np.dstack([a, b]).astype(np.float64)
    fd = f.astype(np.float64)
    weights = np.array([0.0448, 0.2856, 0.3001])
    weights = weights / weights.sum()
    qs = []
    for level in range(3):
        if level:
            seq = np.dstack([_half_symmetric(seq[..., i]) for i in range(seq.shape[2])])
            fd = _half_symmetric(fd)
        qs.append(_mef_ssim_loop(seq, fd))
    return float(np.prod(np.array(qs) ** weights))


@pytest.mark.parametrize("shape", [(47, 53), (48, 50)])
def test_mef_ms_ssim_closed_form_equals_block_loop(shape: tuple[int, int], msrs_pair) -> None:
    vis, ir = msrs_pair
    h, w = shape
    a = np.ascontiguousarray(ir[200 : 200 + h, 300 : 300 + w])
    b = rgb2gray(np.ascontiguousarray(vis[200 : 200 + h, 300 : 300 + w]))
    f = np.maximum(a, b)
    f[:12, :12] = 128  # a flat patch (flat blocks in the fused image)
    a[-12:, -12:] = 40  # and flat source blocks
    b[-12:, -12:] = 90
    assert M.mef_ms_ssim(f, a, b) == pytest.approx(_mef_ms_ssim_loop(a, b, f), rel=1e-10)


def test_strips_do_not_change_results(msrs_pair, monkeypatch) -> None:
    vis, ir = msrs_pair
    fused = np.maximum(rgb2gray(vis), ir)
    monkeypatch.setattr(_strips, "_STRIP_PIXELS", 1)  # smallest strips: many boundaries
    small = {p: evaluate(fused, ir, vis, p) for p in ("tang", "std")}
    monkeypatch.setattr(_strips, "_STRIP_PIXELS", 10**9)  # one strip: the whole-image computation
    whole = {p: evaluate(fused, ir, vis, p) for p in ("tang", "std")}
    for p, values in whole.items():
        for key, v in values.items():
            assert small[p][key] == pytest.approx(v, rel=1e-12), (p, key)


def test_sum_log1p_matches_the_plain_sum() -> None:
    rng = np.random.default_rng(7)
    for scale in (1e-3, 1.0, 8e3, 1e12):
        u = rng.random(100_003) * scale
        assert sum_log1p(u) == pytest.approx(float(np.sum(np.log(1 + u))), rel=1e-13)
    assert sum_log1p(np.array([])) == 0.0
    assert sum_log1p(np.array([np.inf])) == np.inf


def test_matlab_gradient_and_sobel_conventions() -> None:
    """AG uses MATLAB gradient (one-sided at the border); EI uses replicated borders."""
    x = np.array([[0, 10, 30], [0, 10, 30]], dtype=np.uint8)
    # gx rows: [10, 15, 20]; gy = 0; s = |gx| / sqrt(2); sum over 6 pixels / ((2-1)(3-1))
    expected = 2 * (10 + 15 + 20) / math.sqrt(2) / 2
    assert M.average_gradient(x) == pytest.approx(expected, rel=1e-12)
    assert M.average_gradient(x, "cddfuse") == pytest.approx(expected * 2 / 6, rel=1e-12)
    flat = np.full((5, 5), 77, dtype=np.uint8)
    assert M.edge_intensity(flat) == 0.0  # replicate padding: no edge at the border
    assert M.spatial_frequency(flat) == 0.0


def test_blockwise_reductions_equal_whole_image_formulas(monkeypatch) -> None:
    """SF, AG, SD, MSE, CC and the histograms run in row blocks; force many tiny blocks and compare with the
    plain whole-image formulas."""
    from demmi_rf.metrics import _common

    rng = np.random.default_rng(8)
    f, a, b = (rng.integers(0, 256, size=(37, 23)).astype(np.uint8) for _ in range(3))
    monkeypatch.setattr(_common, "_BLOCK_PIXELS", 50)  # 2 rows per block
    x = f.astype(np.float64)
    gy, gx = np.gradient(x)
    assert M.average_gradient(f) == pytest.approx(np.sum(np.sqrt((gx**2 + gy**2) / 2)) / (36 * 22), rel=1e-13)
    sf = math.sqrt(np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=0) ** 2))
    assert M.spatial_frequency(f) == pytest.approx(sf, rel=1e-13)
    assert M.standard_deviation(f) == pytest.approx(float(np.std(x)), rel=1e-13)
    mse = (np.mean((x - a) ** 2) + np.mean((x - b.astype(float)) ** 2)) / 2 / 255**2
    assert M.mean_squared_error(f, a, b) == pytest.approx(mse, rel=1e-13)
    r = (np.corrcoef(x.ravel(), a.ravel())[0, 1] + np.corrcoef(x.ravel(), b.ravel())[0, 1]) / 2
    assert M.correlation_coefficient(f, a, b) == pytest.approx(r, rel=1e-12)
    p = np.bincount(f.ravel(), minlength=256) / f.size
    p = p[p > 0]
    assert M.entropy(f) == pytest.approx(float(-np.sum(p * np.log2(p))), rel=1e-13)
