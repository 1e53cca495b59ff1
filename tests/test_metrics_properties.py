"""Metric properties that hold whatever the reference: symmetry, identity values, bounds, small images, inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import demmi_rf.metrics as M
from demmi_rf.metrics import evaluate, get_profile, profiles, rgb2gray

GRAY_PROFILES = ("tang", "vifb", "cddfuse", "paper", "std")


@pytest.fixture(scope="module")
def tno(tno_pair) -> tuple[np.ndarray, np.ndarray]:
    vis, ir = tno_pair
    return (vis if vis.ndim == 2 else rgb2gray(vis)), ir


@pytest.fixture(scope="module")
def crop(msrs_pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vis RGB, vis gray, ir) of a 200x224 crop of the real MSRS pair (large enough for every metric)."""
    vis, ir = msrs_pair
    v = np.ascontiguousarray(vis[100:300, 150:374])
    return v, rgb2gray(v), np.ascontiguousarray(ir[100:300, 150:374])


def _blend(a: np.ndarray, b: np.ndarray, wa: float = 0.5) -> np.ndarray:
    return np.clip(np.rint(wa * a.astype(np.float64) + (1 - wa) * b.astype(np.float64)), 0, 255).astype(np.uint8)


def _max_fusion(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, b)


# --- symmetry -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", GRAY_PROFILES)
def test_every_metric_is_symmetric_in_the_two_sources(profile: str, crop) -> None:
    _, vis, ir = crop
    fused = _max_fusion(ir, vis)
    ab = evaluate(fused, ir, vis, profile)
    ba = evaluate(fused, vis, ir, profile)
    for key in ab:
        assert ba[key] == pytest.approx(ab[key], rel=1e-10, abs=1e-12), key


# --- identity -----------------------------------------------------------------------------------------------
def test_identity_values_tang(tno) -> None:
    vis, _ = tno
    x = np.minimum(vis, 253)  # keep tang's 254/255 joint-histogram merge out of the MI identity
    reasons: dict[str, str] = {}
    s = evaluate(x, x, x, "tang", reasons=reasons)
    assert s["MSE"] == 0.0
    assert s["PSNR"] == math.inf
    assert s["CC"] == pytest.approx(1.0, rel=1e-12)
    assert s["SSIM"] == pytest.approx(1.0, rel=1e-12)
    assert s["VIF"] == pytest.approx(2.0, rel=1e-6)  # VIFP(x, x) = 1 for each source, summed
    assert s["Nabf"] == 0.0  # no pixel where F's edge exceeds both sources'
    assert s["MI"] == pytest.approx(2 * s["EN"], rel=1e-12)  # MI(x, x) = H(x), twice
    assert s["MS_SSIM"] == pytest.approx(1.0, abs=1e-3)  # ed = ||x - mu|| + 0.001 keeps it a hair below 1
    # Qabf(x, x, x): orientation term Ta/(1+exp(-22*0.2)); strength term hits the g_S == g_F quirk (G = g_F),
    # i.e. Tg / (1 + exp(-15 (g_F - 0.5))) with g_F >= 1 on integer images.
    qa = 0.9879 / (1 + math.exp(-22 * 0.2))
    assert 0.9994 * qa / (1 + math.exp(-7.5)) <= s["Qabf"] <= 0.9994 * qa
    # SCD: F - VIS = 0 is constant, its correlation with IR is 0/0
    assert math.isnan(s["SCD"]) and "constant" in reasons["SCD"]
    assert set(reasons) == {"SCD"}


def test_identity_values_other_profiles(tno) -> None:
    vis, _ = tno
    x = vis
    v = evaluate(x, x, x, "vifb")
    assert v["SSIM"] == pytest.approx(2.0, rel=1e-12)  # a sum of two SSIMs
    assert v["MSE"] == 0.0 and v["PSNR"] == math.inf
    assert v["CE"] == 0.0
    c = evaluate(x, x, x, "cddfuse")
    assert c["SSIM"] == pytest.approx(2.0, rel=1e-6)  # float32, as scikit-image
    assert c["MI"] == pytest.approx(2 * c["EN"] * math.log(2), rel=1e-12)  # nats, no 254/255 quirk
    assert c["VIF"] == pytest.approx(2.0, rel=1e-6)
    s = evaluate(x, x, x, "std")
    assert s["SSIM"] == pytest.approx(1.0, rel=1e-12) and s["MS_SSIM"] == pytest.approx(1.0, rel=1e-12)


def test_tang_mi_merges_levels_254_and_255() -> None:
    """The saturating joint-histogram index: an image using both 254 and 255 loses joint entropy."""
    rng = np.random.default_rng(0)
    x = rng.integers(250, 256, size=(64, 64)).astype(np.uint8)
    h_x = M.entropy(x)
    mi = M.mutual_information(x, x, x, "tang")
    # MI(x, x) = 2 H(x) - H_merged(x); the merge lowers the joint entropy, so MI > H(x) per source
    p254, p255 = np.mean(x == 254), np.mean(x == 255)
    merged = -(p254 + p255) * math.log2(p254 + p255) + p254 * math.log2(p254) + p255 * math.log2(p255)
    assert merged < 0
    assert mi == pytest.approx(2 * (h_x - merged), rel=1e-12)
    assert M.mutual_information(x, x, x, "cddfuse") == pytest.approx(2 * h_x * math.log(2), rel=1e-12)


# --- bounds -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["blend", "max", "ir_heavy", "noisy"])
def test_bounds_on_real_images(fusion: str, crop) -> None:
    _, vis, ir = crop
    rng = np.random.default_rng(1)
    fused = {
        "blend": _blend(ir, vis, 0.3),
        "max": _max_fusion(ir, vis),
        "ir_heavy": _blend(ir, vis, 0.9),
        "noisy": np.clip(_blend(ir, vis) + rng.normal(0, 20, ir.shape), 0, 255).astype(np.uint8),
    }[fusion]
    t = evaluate(fused, ir, vis, "tang")
    assert all(np.isfinite(v) for v in t.values()), t
    assert 0 <= t["EN"] <= 8
    assert 0 <= t["MI"] <= 2 * 8
    assert 0 <= t["SD"] <= 127.5
    assert 0 <= t["MSE"] <= 1
    assert -1 <= t["CC"] <= 1
    assert -2 <= t["SCD"] <= 2
    assert t["VIF"] >= 0 and t["SF"] >= 0 and t["AG"] >= 0
    assert 0 <= t["Qabf"] <= 1
    assert 0 <= t["Nabf"] <= 1
    assert -1 <= t["SSIM"] <= 1
    assert 0 <= t["MS_SSIM"] <= 1
    v = evaluate(fused, ir, vis, "vifb")
    assert 0 <= v["SSIM"] <= 2 and v["EI"] >= 0
    c = evaluate(fused, ir, vis, "cddfuse")
    assert 0 <= c["MI"] <= 2 * math.log(256)
    assert c["MSE"] == pytest.approx(t["MSE"] * 255**2, rel=1e-12)
    assert c["AG"] == pytest.approx(t["AG"] * (ir.shape[0] - 1) * (ir.shape[1] - 1) / ir.size, rel=1e-12)


def test_fusion_quality_orders_as_expected(crop) -> None:
    """A sensible fusion scores better than a corrupted one on the tang suite's main indicators."""
    _, vis, ir = crop
    good = _max_fusion(ir, vis)
    rng = np.random.default_rng(2)
    bad = np.clip(good + rng.normal(0, 40, good.shape), 0, 255).astype(np.uint8)
    g, b = evaluate(good, ir, vis), evaluate(bad, ir, vis)
    for key in ("CC", "VIF", "Qabf", "SSIM", "MS_SSIM", "PSNR", "MI"):
        assert g[key] > b[key], key
    assert g["Nabf"] < b["Nabf"] and g["MSE"] < b["MSE"]


# --- small images -------------------------------------------------------------------------------------------
SIZES = [(1, 1), (1, 7), (2, 2), (6, 9), (7, 7), (10, 12), (40, 60), (43, 80), (44, 44), (160, 170)]


@pytest.mark.parametrize("profile", profiles())
@pytest.mark.parametrize("shape", SIZES)
def test_small_images_give_nan_with_reason_not_a_crash(profile: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    ir = rng.integers(0, 256, size=shape).astype(np.uint8)
    vis = rng.integers(0, 256, size=(*shape, 3)).astype(np.uint8)
    fused = rng.integers(0, 256, size=(*shape, 3)).astype(np.uint8)
    reasons: dict[str, str] = {}
    out = evaluate(fused, ir, vis, profile, reasons=reasons)
    assert list(out) == list(get_profile(profile).keys)
    for key, value in out.items():
        if math.isnan(value):
            assert reasons.get(key), f"{key} is NaN without a reason"
        else:
            assert key not in reasons
    assert set(reasons) <= {k for k, v in out.items() if math.isnan(v)}


def test_small_image_reasons_name_the_window() -> None:
    x = np.random.default_rng(6).integers(0, 256, size=(30, 40)).astype(np.uint8)
    reasons: dict[str, str] = {}
    out = evaluate(x, np.roll(x, 1, axis=1), np.flipud(x).copy(), "tang", reasons=reasons)
    assert math.isnan(out["VIF"]) and "VIF" in reasons["VIF"] and "30x40" in reasons["VIF"]
    assert math.isnan(out["MS_SSIM"]) and "44x44" in reasons["MS_SSIM"]
    assert all(np.isfinite(out[k]) for k in ("EN", "MI", "SF", "SD", "AG", "MSE", "CC", "Qabf", "Nabf", "SSIM"))
    big = np.ascontiguousarray(np.tile(x, (2, 2))[:42])  # 42x80: large enough for VIF, not for MEF-MS-SSIM
    out = evaluate(big, np.roll(big, 1, axis=1), np.flipud(big).copy(), "tang", reasons=reasons)
    assert np.isfinite(out["VIF"]) and math.isnan(out["MS_SSIM"]) and set(reasons) == {"MS_SSIM"}


def test_vif_size_rule_matches_the_computation() -> None:
    assert not M.fidelity.vif_min_size_ok(40, 100) and M.fidelity.vif_min_size_ok(41, 41)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(41, 41)).astype(np.uint8)
    assert np.isfinite(M.vif(x, np.flipud(x).copy(), x))
    with pytest.raises(ValueError, match="VIF"):
        M.vif(x[:40], x[:40], x[:40])


def test_direct_calls_on_too_small_images_raise_clear_errors() -> None:
    x = np.zeros((20, 20), dtype=np.uint8)
    with pytest.raises(ValueError, match="44"):
        M.mef_ms_ssim(x, x, x)
    with pytest.raises(ValueError, match="11x11"):
        M.ssim(x[:10], x[:10], x[:10], "vifb")
    with pytest.raises(ValueError, match="161"):
        M.ms_ssim_std(x, x, x)


def test_constant_images_give_nan_with_reason() -> None:
    flat = np.full((64, 64), 90, dtype=np.uint8)
    rng = np.random.default_rng(5)
    tex = rng.integers(0, 256, size=(64, 64)).astype(np.uint8)
    reasons: dict[str, str] = {}
    out = evaluate(flat, tex, tex, "tang", reasons=reasons)
    assert math.isnan(out["CC"]) and "constant" in reasons["CC"]
    black = np.zeros_like(flat)  # no edge even at the zero-padded border
    out = evaluate(tex, black, black, "tang", reasons=reasons)
    assert math.isnan(out["VIF"]) and "variance" in reasons["VIF"]
    assert math.isnan(out["Qabf"]) and "edge" in reasons["Qabf"]
    out = evaluate(tex, black, black, "cddfuse", reasons=reasons)
    assert out["VIF"] == 2.0  # CDDFuse replaces each 0/0 source term by 1.0
    assert "VIF" not in reasons


# --- inputs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ("tang", "vifb", "cddfuse", "paper", "std"))
def test_rgb_inputs_equal_gray_inputs(profile: str, crop) -> None:
    vis_rgb, vis_gray, ir = crop
    fused_rgb = np.clip(vis_rgb.astype(np.int16) // 2 + ir[..., None] // 2, 0, 255).astype(np.uint8)
    a = evaluate(fused_rgb, ir, vis_rgb, profile)
    b = evaluate(rgb2gray(fused_rgb), ir, vis_gray, profile)
    assert a == b


def test_vifb_rgb_is_a_per_channel_mean_and_vifb_on_gray(crop) -> None:
    vis_rgb, vis_gray, ir = crop
    fused = np.clip(vis_rgb.astype(np.int16) // 2 + ir[..., None] // 2, 0, 255).astype(np.uint8)
    native = evaluate(fused, ir, vis_rgb, "vifb_rgb")
    chans = [evaluate(np.ascontiguousarray(fused[..., k]), ir, np.ascontiguousarray(vis_rgb[..., k]), "vifb")
             for k in range(3)]
    for key in native:
        if key == "SF":  # channels read side by side (VIFB quirk), not averaged
            cat = np.hstack([fused[..., k] for k in range(3)])
            assert native[key] == pytest.approx(M.spatial_frequency(cat, "vifb"), rel=1e-12)
        else:
            assert native[key] == pytest.approx(np.mean([c[key] for c in chans]), rel=1e-12), key
    gray = rgb2gray(fused)
    assert evaluate(gray, ir, vis_rgb, "vifb_rgb") == evaluate(gray, ir, vis_gray, "vifb")
    # RGB fused with a gray VIS (e.g. TNO): the gray VIS is the reference of every channel
    mixed = evaluate(fused, ir, vis_gray, "vifb_rgb", metrics=["MI", "Qabf"])
    for key, value in mixed.items():
        per = [evaluate(np.ascontiguousarray(fused[..., k]), ir, vis_gray, "vifb", metrics=[key])[key]
               for k in range(3)]
        assert value == pytest.approx(np.mean(per), rel=1e-12)


def test_rgb2gray_uses_matlab_weights_and_rounding(crop) -> None:
    px = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    # 0.298936021293775*R + 0.587043074451121*G + 0.114020904255103*B, rounded: 76.23->76, 149.70->150, 29.07->29,
    # 10: 2.989+11.741+3.421 = 18.15 -> 18
    assert rgb2gray(px).tolist() == [[255, 0, 76, 150, 29, 18]]
    vis_rgb, vis_gray, _ = crop
    pil = np.asarray(Image.fromarray(vis_rgb).convert("L"))
    diff = np.abs(pil.astype(int) - vis_gray.astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99


def test_input_errors_are_clear(crop) -> None:
    vis_rgb, vis_gray, ir = crop
    with pytest.raises(ValueError, match=r"shape mismatch.*\(200, 224\).*\(199, 224\)"):
        evaluate(vis_gray, ir[:-1], vis_gray)
    with pytest.raises(ValueError, match="uint8"):
        evaluate(vis_gray.astype(np.float32), ir, vis_gray)
    with pytest.raises(ValueError, match="ir: expected an HxW gray"):
        evaluate(vis_gray, vis_rgb, vis_gray)
    with pytest.raises(ValueError, match="HxWx3"):
        evaluate(np.dstack([vis_rgb, ir]), ir, vis_gray)
    with pytest.raises(ValueError, match="unknown metric profile 'matlab'.*tang"):
        evaluate(vis_gray, ir, vis_gray, "matlab")
    with pytest.raises(ValueError, match="no metric 'Nabf'.*CE"):
        evaluate(vis_gray, ir, vis_gray, "vifb", metrics=["Nabf"])
    with pytest.raises(ValueError, match="convention"):
        M.mutual_information(vis_gray, ir, vis_gray, convention="matlab")


def test_metric_subset_and_reasons_dict_is_reset(crop) -> None:
    _, vis, ir = crop
    reasons = {"stale": "x"}
    out = evaluate(vis, ir, vis, "tang", metrics=["SSIM", "EN"], reasons=reasons)
    assert list(out) == ["SSIM", "EN"] and reasons == {}
    assert out["EN"] == M.entropy(vis)
    hw1 = evaluate(vis[..., None], ir[..., None], vis, "tang", metrics="EN")
    assert hw1 == {"EN": out["EN"]}


def test_profiles_registry() -> None:
    assert profiles()[0] == "tang" == M.DEFAULT_PROFILE
    assert set(profiles()) == {"tang", "vifb", "vifb_rgb", "cddfuse", "paper", "std"}
    assert get_profile("tang").keys == ("EN", "MI", "SF", "SD", "AG", "MSE", "PSNR", "CC", "SCD", "VIF", "Qabf",
                                        "Nabf", "SSIM", "MS_SSIM")
    assert get_profile("vifb").keys == ("EN", "MI", "SF", "SD", "AG", "MSE", "PSNR", "Qabf", "SSIM", "CE", "EI")
    assert get_profile("cddfuse").keys == ("EN", "MI", "SF", "SD", "AG", "MSE", "PSNR", "CC", "SCD", "VIF", "Qabf",
                                           "SSIM")
    assert get_profile("paper").keys == ("CC", "MSE", "PSNR_paper", "Nabf", "MS_SSIM")
    lower = {k for p in profiles() for m in get_profile(p).metrics for k in [m.key] if not m.higher_is_better}
    assert lower == {"MSE", "Nabf", "CE"}
    for p in profiles():
        assert get_profile(p).reference and get_profile(p).summary
