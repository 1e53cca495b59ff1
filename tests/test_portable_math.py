"""demmi_rf.portable_math: exp and log from IEEE basic operations, checked against numpy's libm-based ones."""

from __future__ import annotations

import numpy as np
import pytest

from demmi_rf.portable_math import exp_f32, exp_f64, log_f64


def _ulps(got: np.ndarray, exact: np.ndarray) -> float:
    return float((np.abs(got - exact) / np.spacing(np.abs(exact))).max())


def test_exp_f32_is_within_one_ulp_of_the_true_exponential():
    z = np.linspace(-87.0, 0.0, 1_000_001, dtype=np.float32)
    exact = np.exp(z.astype(np.float64))
    got = exp_f32(z.copy()).astype(np.float64)
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert (np.abs(got - exact) / ulp).max() <= 1.0
    assert exp_f32(np.zeros(3, np.float32)).tolist() == [1.0, 1.0, 1.0]
    assert 0 < exp_f32(np.array([-1e6], np.float32))[0] < 1e-37


def test_exp_f64_is_within_two_ulp_over_its_whole_range():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.uniform(-708, 709, 200_000), rng.uniform(-8, 0, 200_000), [0.0, -1e-300, 1e-17]])
    got = exp_f64(z)
    assert _ulps(got, np.exp(z)) <= 2.0  # numpy's exp is itself within about 1 ulp
    assert exp_f64(np.array([0.0]))[0] == 1.0
    assert exp_f64(np.array([1.0]))[0] == pytest.approx(np.e, rel=2e-16)


def test_log_f64_is_within_two_ulp_including_subnormals_and_the_reduction_boundary():
    rng = np.random.default_rng(1)
    v = np.concatenate([
        rng.uniform(0, 1, 200_000), 2.0 ** rng.uniform(-1074, 1023, 200_000),
        [1.0, 2.0**-53, 5e-324, 1e300, np.sqrt(0.5), np.nextafter(np.sqrt(0.5), 0), np.nextafter(1.0, 0)],
    ])
    v = v[v > 0]
    got, exact = log_f64(v), np.log(v)
    nonzero = exact != 0
    assert _ulps(got[nonzero], exact[nonzero]) <= 2.0
    assert log_f64(np.array([1.0]))[0] == 0.0


def test_arguments_outside_the_domain_are_refused():
    with pytest.raises(ValueError, match="v > 0"):
        log_f64(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="-708, 709"):
        exp_f64(np.array([800.0]))


def test_the_same_bits_without_numpy_simd_dispatch():
    """Only correctly rounded operations: disabling every dispatched SIMD extension changes no bit (with
    numpy's own exp/log such a change flips last bits on some inputs)."""
    import hashlib
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    code = (
        "import hashlib, numpy as np\n"
        "from demmi_rf.portable_math import exp_f32, exp_f64, log_f64\n"
        "z = np.random.default_rng(2).uniform(-700, 0, 100_000)\n"
        "v = np.random.default_rng(3).uniform(1e-300, 1, 100_000)\n"
        "h = hashlib.sha256(exp_f64(z).tobytes() + log_f64(v).tobytes()"
        " + exp_f32(z.astype(np.float32) / 10).tobytes())\n"
        "print(h.hexdigest())\n"
    )
    here = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(dispatched)}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert here == plain and len(here.strip()) == len(hashlib.sha256().hexdigest())
