"""degrade(): seeding, isolation of settings and modalities, application order, rounding, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from demmi_rf import DegradedPair, degrade
from demmi_rf.degradations import get
from demmi_rf.degradations._arrays import quantize
from demmi_rf.errors import RecipeError, SettingError
from demmi_rf.recipe import load_recipe
from demmi_rf.rng import generator, seed_material
from demmi_rf.sources import discover, read_pair

RECIPE = load_recipe("demmi-rf-v1")
V1 = RECIPE.settings
SEED = RECIPE.seed
PID = "msrs/00004N"


@pytest.fixture(scope="module")
def sample_pairs(samples_dir):
    """Every embedded sample pair (MSRS RGB, TNO gray, RoadScene), read through the ingestion path."""
    return [read_pair(rec) for rec in discover(samples_dir).pairs]


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_every_v1_setting_on_every_sample_pair(sample_pairs):
    assert len(sample_pairs) == 9
    assert any(p.vis.ndim == 2 for p in sample_pairs) and any(p.vis.ndim == 3 for p in sample_pairs)
    for pair in sample_pairs:
        for s in V1:
            out = degrade(pair.vis, pair.ir, s, SEED, pair_id=pair.record.pair_id)
            assert isinstance(out, DegradedPair) and out.setting == s
            assert out.vis.dtype == np.uint8 and out.vis.shape == pair.vis.shape
            assert out.ir.dtype == np.uint8 and out.ir.shape == pair.ir.shape
            assert set(out.params) == set(s.split("+")) - {"clean"}
            assert json.loads(json.dumps(out.params)) == out.params
            changes_vis = any(a in s for a in ("noise", "haze", "defocus"))
            assert (out.vis is pair.vis) == (not changes_vis)
            assert (out.ir is pair.ir) == ("stripe" not in s)
            if changes_vis:
                assert not np.array_equal(out.vis, pair.vis)
            if "stripe" in s:
                assert not np.array_equal(out.ir, pair.ir)


def test_same_seed_is_byte_identical_and_other_seeds_differ(msrs_pair):
    vis, ir = msrs_pair
    for s in ("noise50+defocus+haze+stripe", "haze", "defocus", "stripe"):
        a = degrade(vis, ir, s, 1, pair_id=PID)
        b = degrade(vis.copy(), ir.copy(), s, 1, pair_id=PID)
        c = degrade(vis, ir, s, 2, pair_id=PID)
        d = degrade(vis, ir, s, 1, pair_id="msrs/other")
        assert sha(a.vis) == sha(b.vis) and sha(a.ir) == sha(b.ir) and a.params == b.params
        changed = "vis" if s != "stripe" else "ir"
        assert sha(getattr(a, changed)) != sha(getattr(c, changed))
        assert sha(getattr(a, changed)) != sha(getattr(d, changed))


def test_setting_name_order_does_not_matter(msrs_pair):
    vis, ir = msrs_pair
    a = degrade(vis, ir, "stripe+haze+noise50", SEED, pair_id=PID)
    b = degrade(vis, ir, "noise50+haze+stripe", SEED, pair_id=PID)
    assert a.setting == "noise50+haze+stripe"
    np.testing.assert_array_equal(a.vis, b.vis)
    np.testing.assert_array_equal(a.ir, b.ir)


def test_pixels_do_not_depend_on_which_other_settings_are_built(msrs_pair):
    vis, ir = msrs_pair
    alone = {s: degrade(vis, ir, s, SEED, pair_id=PID) for s in ("noise25+haze", "stripe")}
    for s in reversed(V1):  # build everything else first, in another order
        degrade(vis, ir, s, SEED, pair_id=PID)
    for s, first in alone.items():
        again = degrade(vis, ir, s, SEED, pair_id=PID)
        assert sha(first.vis) == sha(again.vis) and sha(first.ir) == sha(again.ir)


def test_a_fresh_process_gives_the_same_bytes(msrs_pair):
    vis, ir = msrs_pair
    code = (
        "import hashlib, numpy as np\n"
        "from demmi_rf import degrade\n"
        "from demmi_rf.sources import discover, read_pair\n"
        "from demmi_rf.samples import sample_root\n"
        f"rec = [r for r in discover(sample_root()).pairs if r.pair_id == {PID!r}][0]\n"
        "p = read_pair(rec)\n"
        f"o = degrade(p.vis, p.ir, 'noise50+defocus+haze+stripe', {SEED}, pair_id={PID!r})\n"
        "print(hashlib.sha256(o.vis.tobytes()).hexdigest(), hashlib.sha256(o.ir.tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    here = degrade(vis, ir, "noise50+defocus+haze+stripe", SEED, pair_id=PID)
    assert out == [sha(here.vis), sha(here.ir)]


def test_real_pairs_of_every_size_and_channel_layout(realpairs_dir):
    """The project's real pairs (or the embedded samples): odd sizes, gray and RGB VIS."""
    pairs = [read_pair(rec) for rec in discover(realpairs_dir).pairs]
    assert pairs
    for pair in pairs:
        for s in ("noise50+defocus+haze+stripe", "noise15+haze"):
            a = degrade(pair.vis, pair.ir, s, SEED, pair_id=pair.record.pair_id)
            b = degrade(pair.vis, pair.ir, s, SEED, pair_id=pair.record.pair_id)
            assert a.vis.shape == pair.vis.shape and a.ir.shape == pair.ir.shape
            assert sha(a.vis) == sha(b.vis) and sha(a.ir) == sha(b.ir)
            assert a.params["haze"]["A"] == pytest.approx(pair.vis.mean())


def test_stripe_through_degrade_is_constant_down_each_column():
    vis = np.full((100, 640, 3), 128, np.uint8)
    ir = np.full((100, 640), 128, np.uint8)
    out = degrade(vis, ir, "stripe", SEED, pair_id="synthetic/flat")
    res = out.ir.astype(np.int16) - 128
    assert (res == res[0]).all()
    s = out.params["stripe"]["s"]
    assert 3.0 <= s <= 8.0 and 0.8 < res[0].std() / s < 1.2


def test_vis_only_settings_leave_ir_bit_identical_and_vice_versa(msrs_pair):
    vis, ir = msrs_pair
    for s in V1:
        out = degrade(vis, ir, s, SEED, pair_id=PID)
        if "stripe" not in s:
            assert out.ir is ir
        if s in ("stripe", "clean"):
            assert out.vis is vis


def test_chain_equals_the_atoms_applied_by_hand_in_order_haze_defocus_noise(msrs_pair):
    vis, ir = msrs_pair
    s = "noise50+defocus+haze+stripe"
    out = degrade(vis, ir, s, SEED, pair_id=PID)
    ranges = RECIPE.degradations
    rng = generator(SEED, PID, s, "vis")
    x = vis.astype(np.float32)
    for name in ("haze", "defocus", "noise50"):  # the documented application (and draw) order
        p = get(name).draw(rng, x, ranges[name])
        assert p == out.params[name]
        x = get(name).apply(x, rng, **p)
    np.testing.assert_array_equal(out.vis, quantize(x))
    rng = generator(SEED, PID, s, "ir")
    y = ir.astype(np.float32)
    p = get("stripe").draw(rng, y, ranges["stripe"])
    np.testing.assert_array_equal(out.ir, quantize(get("stripe").apply(y, rng, **p)))
    assert out.seed_material == {m: seed_material(SEED, PID, s, m) for m in ("vis", "ir")}


def test_noise_comes_after_haze_and_defocus():
    """On a constant image haze and defocus are identities; if noise were applied before them it would be
    attenuated by the transmission (haze) or smoothed (defocus)."""
    flat = np.full((240, 320, 3), 128, np.uint8)
    ir = np.full((240, 320), 128, np.uint8)
    for s in ("noise25+haze", "noise25+defocus", "noise25+defocus+haze"):
        out = degrade(flat, ir, s, SEED, pair_id="synthetic/flat")
        res = out.vis.astype(np.float64) - 128
        assert abs(res.std() - 25.0) < 0.5, s  # no clipping at 128 +- 5 sigma
        assert abs(res.mean()) < 0.2, s


def test_noise_residual_through_degrade_is_unbiased_no_truncation():
    flat = np.full((480, 640, 3), 100, np.uint8)
    ir = np.zeros((480, 640), np.uint8)
    out = degrade(flat, ir, "noise15", SEED, pair_id="synthetic/flat")
    res = out.vis.astype(np.float64) - 100
    assert abs(res.mean()) < 0.05  # truncation instead of rounding would give -0.5
    assert abs(res.std() - np.sqrt(15.0**2 + 1 / 12)) < 0.1


@pytest.mark.parametrize("value", [0, 255])
def test_no_wrap_around_at_the_range_limits(value):
    vis = np.full((200, 300, 3), value, np.uint8)
    ir = np.full((200, 300), value, np.uint8)
    out = degrade(vis, ir, "noise50+stripe", SEED, pair_id="synthetic/limits")
    # E[max(0, 50 n)] = 50 / sqrt(2 pi): with wrap-around the mean would sit near the middle of the range
    expected = 50 / np.sqrt(2 * np.pi)
    mean = out.vis.astype(np.float64).mean()
    assert abs((mean if value == 0 else 255 - mean) - expected) < 0.5
    # wrapped negatives would land at 200-255 (about half of all pixels); a 4-sigma Gaussian tail is rare
    far = (out.vis > 200) if value == 0 else (out.vis < 55)
    assert far.sum() < 20
    ir_far = (out.ir > 200) if value == 0 else (out.ir < 55)
    assert not ir_far.any()  # stripe offsets have std <= 8


def test_haze_in_degrade_records_a_as_the_clean_mean_and_stays_between_j_and_a(msrs_pair):
    vis, ir = msrs_pair
    out = degrade(vis, ir, "haze", SEED, pair_id=PID)
    a = out.params["haze"]["A"]
    assert a == pytest.approx(vis.astype(np.float64).mean(), rel=1e-12)
    j = vis.astype(np.float64)
    assert (out.vis >= np.floor(np.minimum(j, a))).all() and (out.vis <= np.ceil(np.maximum(j, a))).all()


def test_user_depth_map(msrs_pair):
    vis, ir = msrs_pair
    depth = np.tile(np.linspace(5.0, 80.0, vis.shape[1]), (vis.shape[0], 1))
    out = degrade(vis, ir, "haze", SEED, pair_id=PID, depth=depth)
    assert out.params["haze"]["pseudo_depth"] == "user"
    np.testing.assert_array_equal(out.vis[:, 0], vis[:, 0])  # nearest column: t = 1
    radial = degrade(vis, ir, "haze", SEED, pair_id=PID)
    assert not np.array_equal(out.vis, radial.vis)
    assert out.params["haze"]["beta"] == radial.params["haze"]["beta"]
    with pytest.raises(ValueError, match="depth"):
        degrade(vis, ir, "haze", SEED, pair_id=PID, depth=depth[:10])


def test_gray_vis_works(tno_pair):
    vis, ir = tno_pair
    assert vis.ndim == 2
    for s in ("noise50+defocus+haze+stripe", "haze", "defocus+haze"):
        out = degrade(vis, ir, s, SEED, pair_id="tno/07")
        assert out.vis.shape == vis.shape and out.vis.dtype == np.uint8
        assert out.params["haze"]["A"] == pytest.approx(vis.mean())


def test_custom_ranges_are_used_and_missing_tables_are_named(msrs_pair):
    vis, ir = msrs_pair
    ranges = RECIPE.degradations
    ranges["haze"]["beta"] = 1.25
    ranges["defocus"]["radius"] = [2]
    out = degrade(vis, ir, "defocus+haze", SEED, pair_id=PID, ranges=ranges)
    assert out.params["haze"]["beta"] == 1.25 and out.params["defocus"]["radius"] == 2
    with pytest.raises(RecipeError, match=r"\[degradations.stripe\]"):
        degrade(vis, ir, "stripe", SEED, pair_id=PID, ranges={"haze": ranges["haze"]})
    with pytest.raises(RecipeError, match="degradations.haze.beta"):
        degrade(vis, ir, "haze", SEED, pair_id=PID, ranges={"haze": {**ranges["haze"], "beta": [2.0, 1.0]}})


def test_default_ranges_are_the_v1_recipe(msrs_pair):
    vis, ir = msrs_pair
    a = degrade(vis, ir, "noise15+haze", SEED, pair_id=PID)
    b = degrade(vis, ir, "noise15+haze", SEED, pair_id=PID, ranges=RECIPE.degradations)
    np.testing.assert_array_equal(a.vis, b.vis)


def test_clear_input_errors(msrs_pair):
    vis, ir = msrs_pair
    with pytest.raises(SettingError, match="unknown atom 'smog'") as info:
        degrade(vis, ir, "noise50+smog", SEED, pair_id=PID)
    assert all(name in str(info.value) for name in ("noise15", "noise25", "noise50", "defocus", "haze", "stripe"))
    with pytest.raises(SettingError, match="one noise level"):
        degrade(vis, ir, "noise15+noise25", SEED, pair_id=PID)
    with pytest.raises(SettingError, match="empty"):
        degrade(vis, ir, "", SEED, pair_id=PID)
    with pytest.raises(TypeError, match="vis must be a uint8"):
        degrade(vis.astype(np.float32), ir, "haze", SEED, pair_id=PID)
    with pytest.raises(TypeError, match="ir must be a uint8"):
        degrade(vis, ir.astype(np.uint16), "haze", SEED, pair_id=PID)
    with pytest.raises(ValueError, match="H x W x 3"):
        degrade(vis[..., :2], ir, "haze", SEED, pair_id=PID)
    with pytest.raises(ValueError, match="squeeze"):
        degrade(vis, ir[..., None], "stripe", SEED, pair_id=PID)
    with pytest.raises(ValueError, match="differ in size"):
        degrade(vis, ir[:-1], "haze", SEED, pair_id=PID)
    with pytest.raises(ValueError, match="pair_id"):
        degrade(vis, ir, "haze", SEED, pair_id="")
    with pytest.raises(ValueError, match="seed"):
        degrade(vis, ir, "clean", -1, pair_id=PID)


def _hashes_here(sample_pairs, settings: list[str]) -> list[str]:
    """sha256 of degrade()'s output for every sample pair and setting, in this process."""
    out = []
    for pair in sample_pairs:
        for s in settings:
            o = degrade(pair.vis, pair.ir, s, SEED, pair_id=pair.record.pair_id)
            out.append(hashlib.sha256(o.vis.tobytes() + o.ir.tobytes()).hexdigest())
    return out


def _hashes_in_subprocess(settings: list[str], disabled_simd: list[str], prelude: str = "") -> list[str]:
    """The same hashes from a fresh process with the numpy SIMD extensions ``disabled_simd`` turned off and
    ``prelude`` run first."""
    code = prelude + (
        "import hashlib\n"
        "from demmi_rf import degrade\n"
        "from demmi_rf.sources import discover, read_pair\n"
        "from demmi_rf.samples import sample_root\n"
        "for rec in discover(sample_root()).pairs:\n"
        "    p = read_pair(rec)\n"
        f"    for s in {settings!r}:\n"
        f"        o = degrade(p.vis, p.ir, s, {SEED}, pair_id=rec.pair_id)\n"
        "        print(hashlib.sha256(o.vis.tobytes() + o.ir.tobytes()).hexdigest())\n"
    )
    # the normal sampler's numpy path there (the compiled kernel here, when built): same bits
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled_simd), "DEMMI_RF_NUMPY_ZIGGURAT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()


def test_noise_haze_and_stripe_do_not_depend_on_simd_dispatch_or_opencv_code_paths(sample_pairs):
    """numpy's transcendental functions differ by CPU instruction set (with np.exp, 4 of these 27 samples
    changed); noise, haze and stripe use only correctly rounded operations, table lookups and the raw PCG64
    stream, so disabling every dispatched numpy SIMD extension and OpenCV's optimised code paths (the
    sampler's ``cv2.LUT``) changes no bit (defocus: the next test)."""
    import cv2
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    assert cv2.useOptimized()
    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    prelude = "import cv2\ncv2.setUseOptimized(False)\ncv2.setNumThreads(1)\nassert not cv2.useOptimized()\n"
    settings = ["noise50+haze+stripe", "noise15+haze", "haze", "noise25"]
    assert _hashes_in_subprocess(settings, dispatched, prelude) == _hashes_here(sample_pairs, settings)


DEFOCUS_SETTINGS = [s for s in V1 if "defocus" in s]


def test_defocus_settings_do_not_depend_on_simd_dispatch_or_opencv_code_paths(sample_pairs):
    """The six defocus settings on every sample pair (MSRS 640x480 RGB, TNO gray, RoadScene), built here
    (numpy SIMD dispatch on, OpenCV optimised and threaded) and in a process with every dispatched numpy
    SIMD extension disabled, OpenCV's optimised code paths off (``cv2.setUseOptimized(False)``) and one
    OpenCV thread: byte-identical. (With ``cv2.filter2D`` 46 of these 54 samples differed.)"""
    import cv2
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    assert len(DEFOCUS_SETTINGS) == 6 and cv2.useOptimized()
    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    prelude = "import cv2\ncv2.setUseOptimized(False)\ncv2.setNumThreads(1)\nassert not cv2.useOptimized()\n"
    assert any(p.vis.shape == (480, 640, 3) for p in sample_pairs)
    assert _hashes_in_subprocess(DEFOCUS_SETTINGS, dispatched, prelude) == _hashes_here(sample_pairs, DEFOCUS_SETTINGS)
