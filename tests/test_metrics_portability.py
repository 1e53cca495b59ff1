"""The metrics give the same bits on every CPU code path (docs/metrics.md, "Portability").

What is promised and tested here: every metric of every profile is **bit-identical** (tolerance 0) whatever
numpy's SIMD dispatch (``NPY_DISABLE_CPU_FEATURES``) and OpenCV's code paths (``cv2.setUseOptimized(False)``,
``OPENCV_CPU_DISABLE``, one thread), on the golden triples and on degraded 640x480 samples. This holds because
the metric code uses only correctly rounded element-wise operations in a fixed order, exact filters and exact
tables (``demmi_rf.metrics._elementary``, ``_filters``); the last test checks that no CPU-dispatched
transcendental routine of numpy or OpenCV is reached at all, which covers instruction sets this machine lacks
(e.g. the AVX-512 paths of numpy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demmi_rf.metrics import _elementary as el
from demmi_rf.metrics import evaluate, profiles
from demmi_rf.metrics._filters import box_sum_valid, correlate2d, correlate2d_valid, correlate_valid_sep, pad

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("noise50+haze+stripe", "defocus+haze")


def metric_values() -> dict[str, str]:
    """Every metric of every profile on the two golden triples, and the ``tang`` suite on degraded embedded
    samples (fused = mean of VIS luminance and IR), as ``{case: float.hex(value)}``."""
    from demmi_rf import degrade
    from demmi_rf.baselines.simple import fuse_average
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    from .test_metrics_golden import TRIPLES, triple

    out: dict[str, str] = {}
    for name in TRIPLES:
        f, a, b = triple(name)
        for prof in profiles():
            for key, v in evaluate(f, a, b, prof).items():
                out[f"{name}:{prof}:{key}"] = float(v).hex()
    for rec in discover(sample_root()).pairs[:3]:
        pair = read_pair(rec)
        for setting in SETTINGS:
            d = degrade(pair.vis, pair.ir, setting, 3, pair_id=rec.pair_id)
            ir = d.ir if d.ir.ndim == 2 else d.ir[..., 0]
            fused = fuse_average(d.vis, ir)
            for key, v in evaluate(fused, ir, d.vis, "tang").items():
                out[f"{rec.pair_id}@{setting}:tang:{key}"] = float(v).hex()
    return out


def _values_in_subprocess(env: dict[str, str], prelude: str = "") -> dict[str, str]:
    code = prelude + (
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.test_metrics_portability import metric_values\n"
        "print(json.dumps(metric_values()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                         cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def here() -> dict[str, str]:
    import cv2

    assert cv2.useOptimized()
    values = metric_values()
    assert len(values) > 150
    return values


def _differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    assert a.keys() == b.keys()
    return [f"{k}: {float.fromhex(a[k])!r} vs {float.fromhex(b[k])!r}" for k in a if a[k] != b[k]]


def test_bit_identical_with_opencv_optimisations_and_dispatch_off(here):
    """With ``cv2.filter2D`` / ``sepFilter2D`` / ``cv2.exp`` / ``cv2.log`` (the previous implementation) 43 of
    these 170 values changed in their last bits (up to 1.1e-10 relative: tang SSIM on a hazy sample)."""
    import cv2

    dispatched = [t.strip("*") for t in cv2.getCPUFeaturesLine().split() if t.startswith("*") and "?" not in t]
    prelude = "import cv2\ncv2.setUseOptimized(False)\ncv2.setNumThreads(1)\nassert not cv2.useOptimized()\n"
    there = _values_in_subprocess({"OPENCV_CPU_DISABLE": ",".join(dispatched)}, prelude)
    assert _differences(here, there) == []


def test_bit_identical_with_numpy_simd_dispatch_off(here):
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    there = _values_in_subprocess({"NPY_DISABLE_CPU_FEATURES": " ".join(dispatched)})
    assert _differences(here, there) == []


def test_no_cpu_dispatched_elementary_function_or_filter_is_called(monkeypatch):
    """numpy's transcendental ufuncs (SIMD/SVML implementations chosen by CPU) and OpenCV's float filters and
    ``exp``/``log`` raise here; every profile still evaluates, on images with flat areas, edges and noise."""
    import cv2

    def refuse(name):
        def fn(*args, **kwargs):
            raise AssertionError(f"{name} reached from the metric code")
        return fn

    from .test_metrics_golden import triple

    f, a, b = triple("triple3")  # RGB VIS and fused
    expected = {p: evaluate(f, a, b, p) for p in profiles()}
    for name in ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "power", "float_power", "sin", "cos",
                 "tan", "arctan", "arctan2", "arcsin", "arccos", "tanh", "sinh", "cosh", "cbrt", "hypot"):
        monkeypatch.setattr(np, name, refuse(f"np.{name}"))
    for name in ("exp", "log", "pow", "sepFilter2D", "GaussianBlur", "pyrDown", "resize", "magnitude", "phase",
                 "cartToPolar", "scaleAdd", "addWeighted"):
        monkeypatch.setattr(cv2, name, refuse(f"cv2.{name}"))
    for p in profiles():
        got = evaluate(f, a, b, p)
        assert {k: float(v).hex() for k, v in got.items()} == {k: float(v).hex() for k, v in expected[p].items()}


# ---- the building blocks ------------------------------------------------------------------------------------

def _ulps(got: np.ndarray, exact: np.ndarray) -> float:
    ok = np.isfinite(exact) & (exact != 0)
    return float((np.abs(got[ok] - exact[ok]) / np.spacing(np.abs(exact[ok]))).max())


def test_exp_and_log_are_within_one_ulp_of_libm_with_exact_special_values():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.uniform(-708, 709, 200_000), rng.uniform(-20, 60, 200_000), [0.0, -1e-300, 1e-17]])
    assert _ulps(el.exp(z), np.exp(z)) <= 1.0
    assert el.exp(np.array([0.0, -np.inf, np.inf, -800.0, 800.0])).tolist() == [1.0, 0.0, np.inf, 0.0, np.inf]
    assert np.isnan(el.exp(np.array([np.nan])))[0]
    # the fast path (all results normal) and the general one (here forced by one huge argument) agree bit for bit
    assert np.array_equal(el.exp(z), el.exp(np.append(z, -1e4))[:-1])
    v = np.concatenate([rng.uniform(0, 2, 200_000), 2.0 ** rng.uniform(-1074, 1023, 200_000),
                        1 + rng.uniform(-1e-6, 1e-6, 10_000), [np.nextafter(1, 0), np.nextafter(1, 2), 5e-324]])
    assert _ulps(el.log(v), np.log(v)) <= 1.0  # near 1 too: relative accuracy where log v is tiny
    special = el.log(np.array([1.0, 0.0, np.inf, -1.0, np.nan]))
    assert special[:3].tolist() == [0.0, -np.inf, np.inf] and np.isnan(special[3:]).all()
    assert _ulps(el.log2(v), np.log2(v)) <= 3.0 and _ulps(el.log10(v), np.log10(v)) <= 3.0
    assert el.log2(np.array([1.0, 0.5, 1024.0])).tolist() == [0.0, -1.0, 10.0]
    q, y = rng.uniform(0.01, 1, 100_000), rng.uniform(0, 1, 100_000)  # the metrics' range: scores^weights
    assert _ulps(el.power(q, y), q**y) <= 16.0
    assert el.power(np.array([0.0, 1.0]), np.array([0.3, 0.2])).tolist() == [0.0, 1.0]


def test_atan_and_tan_are_within_a_few_ulp_of_libm():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-5, 5, 200_000), rng.standard_cauchy(200_000),
                        [0.4375, 0.6875, 1.1875, 2.4375, 1e300, -1e-300, 3.0, -7.0]])
    assert _ulps(el.atan(x), np.arctan(x)) <= 1.0
    assert el.atan(np.array([np.inf, -np.inf, 0.0])).tolist() == [np.pi / 2, -np.pi / 2, 0.0]
    assert np.signbit(el.atan(np.array([-0.0])))[0] and np.isnan(el.atan(np.array([np.nan])))[0]
    t = rng.uniform(-1.5707, 1.5707, 200_000)
    assert _ulps(el.tan(t), np.tan(t)) <= 3.0
    assert el.tan(np.array([0.0]))[0] == 0.0 and np.isnan(el.tan(np.array([2.0])))[0]


def _sep_reference(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The documented order of correlate_valid_sep, written on 2-D views (no flattening)."""
    n = len(k)
    r = n // 2
    h, w = x.shape
    wo, ho = w - n + 1, h - n + 1
    t = x[:, r : r + wo] * k[r]
    for j in range(r):
        t = t + (x[:, j : j + wo] + x[:, n - 1 - j : n - 1 - j + wo]) * k[j]
    o = t[r : r + ho] * k[r]
    for j in range(r):
        o = o + (t[j : j + ho] + t[n - 1 - j : n - 1 - j + ho]) * k[j]
    return o


@pytest.mark.parametrize("n", [3, 5, 9, 11, 17])
def test_gaussian_filter_follows_its_documented_order_and_matches_a_plain_convolution(n):
    from scipy.signal import correlate2d as sp_correlate

    from demmi_rf.metrics._filters import fspecial_gaussian_1d

    k = fspecial_gaussian_1d(n, n / 5.0)
    assert np.array_equal(k, k[::-1]) and abs(k.sum() - 1) < 1e-15
    x = np.random.default_rng(n).integers(0, 256, (37, 53)).astype(np.float64) ** 2
    got = correlate_valid_sep(x, k)
    assert got.shape == (37 - n + 1, 53 - n + 1)
    assert np.array_equal(got, _sep_reference(x, k))
    exact = sp_correlate(x, np.outer(k, k), mode="valid")
    assert np.allclose(got, exact, rtol=1e-14, atol=0)
    assert correlate_valid_sep(x[:5], k).shape == (max(5 - n + 1, 0), 53 - n + 1)


def test_sobel_and_box_filters_are_exact():
    """The filters kept in OpenCV compute exact values (integer or dyadic data, integer or 1/8 kernels), so their
    summation order, which depends on the CPU, cannot change a bit."""
    from scipy.signal import correlate2d as sp_correlate

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (41, 67)).astype(np.int64)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    want = sp_correlate(np.pad(img, 1), sobel, mode="valid")  # exact integers
    assert np.array_equal(correlate2d_valid(pad(img.astype(np.uint8), 1, "zero").astype(np.float64), sobel),
                          want.astype(np.float64))
    assert np.array_equal(correlate2d_valid(pad(img.astype(np.uint8), 1, "zero").astype(np.float64), sobel / 8.0),
                          want / 8.0)
    rep = np.pad(img, 1, mode="edge")
    assert np.array_equal(correlate2d(img.astype(np.float64), sobel.T, "replicate"),
                          sp_correlate(rep, sobel.T, mode="valid").astype(np.float64))
    dyadic = rng.integers(0, 256 * 16, (41, 67)) / 16.0  # MEF scale 3: multiples of 1/16
    box = box_sum_valid(dyadic * dyadic, 11)
    cs = np.pad((dyadic * dyadic * 256).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    want_box = (cs[11:, 11:] - cs[:-11, 11:] - cs[11:, :-11] + cs[:-11, :-11]) / 256.0
    assert np.array_equal(box, want_box)
