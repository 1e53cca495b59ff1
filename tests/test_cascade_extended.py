"""The cascade's restorers for the atoms beyond v1 (issue 14): each reduces the error its atom introduced on an
embedded real image at a mid severity, from the recipe's ranges only; the pieces (inverse tone maps, the blur
direction, the streak opening, the deblocking filter, range means) on inputs with a known answer; clear refusals
of bad input; v1's restorers unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

import demmi_rf.degradations.extended  # noqa: F401 - registers the atoms beyond v1
from demmi_rf.baselines.cascade import (
    _angle_in_range,
    cascade,
    known_atoms,
    range_mean,
    restore_ir,
    restore_vis,
    restorer,
)
from demmi_rf.baselines.deblock import deblock, ijg_scale
from demmi_rf.baselines.deblur import blur_direction, motion_psf
from demmi_rf.baselines.derain import opening_width, remove_streaks
from demmi_rf.baselines.destripe import destripe_columns
from demmi_rf.baselines.pyramid import fuse_laplacian
from demmi_rf.baselines.run import _setting_ranges
from demmi_rf.baselines.tone import inverse_linear_table, inverse_tone_table, invert_linear, invert_tone
from demmi_rf.degradations import get as get_atom
from demmi_rf.degradations.compose import degrade
from demmi_rf.degradations.exposure import tone_table
from demmi_rf.degradations.motion import blur
from demmi_rf.metrics import rgb2gray
from demmi_rf.recipe import load_recipe

SEED = 20250713
NEW = {"lowlight": "vis", "overexposure": "vis", "motion": "vis", "rain": "vis", "jpeg": "vis",
       "lowcontrast": "ir", "ir_noise": "ir", "stripe_gain": "ir"}


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.fixture(scope="module")
def table():
    return load_recipe("demmi-rf-c").degradations


@pytest.fixture(scope="module")
def crop(msrs_pair):
    vis, ir = msrs_pair
    return np.ascontiguousarray(vis[:240, :320]), np.ascontiguousarray(ir[:240, :320])


def test_every_atom_beyond_v1_has_a_restorer():
    assert set(NEW) <= set(known_atoms())
    for atom in NEW:
        assert restorer(atom) is not None, atom


@pytest.mark.parametrize("atom", list(NEW))
def test_the_restorer_reduces_the_error_at_level_3(atom, crop, table):
    """Mid severity, three draws: the restoration from the level's *ranges* (never the drawn parameters) is
    closer to the clean image than the degraded one, on each draw for all but motion (mean over the draws)."""
    vis, ir = crop
    setting = f"{atom}.s3"
    ranges = _setting_ranges(setting, table)
    modality = NEW[atom]
    clean = vis if modality == "vis" else ir
    before, after = [], []
    for pid in ("t/a", "t/b", "t/c"):
        d = degrade(vis, ir, setting, SEED, pair_id=pid, ranges=table)
        degraded = d.vis if modality == "vis" else d.ir
        assert not np.array_equal(degraded, clean)
        fn = restore_vis if modality == "vis" else restore_ir
        out = fn(degraded, (atom,), ranges)
        assert out.dtype == np.uint8 and out.shape == clean.shape
        before.append(mse(degraded, clean))
        after.append(mse(out, clean))
    assert np.mean(after) < 0.95 * np.mean(before), (before, after)
    if atom != "motion":  # the blur direction is estimated: allowed to miss on one draw
        assert all(a < b for a, b in zip(after, before)), (before, after)


def test_the_other_modality_is_left_alone(crop, table):
    vis, ir = crop
    assert restore_ir(ir, ("lowlight", "motion", "rain", "jpeg"), table) is ir
    assert restore_vis(vis, ("lowcontrast", "ir_noise", "stripe_gain"), table) is vis


def test_cascade_fuses_restored_new_atoms_closer_to_the_ceiling(crop, table):
    vis, ir = crop
    setting = "lowlight.s3+lowcontrast.s3"
    deg = degrade(vis, ir, setting, SEED, pair_id="t/x", ranges=table)
    ceiling = fuse_laplacian(vis, ir)
    plain = fuse_laplacian(deg.vis, deg.ir)
    restored = cascade(deg.vis, deg.ir, ("lowlight", "lowcontrast"), _setting_ranges(setting, table))
    assert mse(rgb2gray(restored), rgb2gray(ceiling)) < 0.7 * mse(rgb2gray(plain), rgb2gray(ceiling))


# --- the pieces ---------------------------------------------------------------------------------------------
def test_inverse_tone_table_undoes_the_atoms_curve():
    for gain, gamma in ((0.55, 2.2), (0.85, 1.3), (1.6, 0.75)):
        forward = np.floor(np.clip(tone_table(gain, gamma), 0, 255) + 0.5).astype(np.uint8)
        back = inverse_tone_table(gain, gamma)[forward]
        levels = np.arange(256)
        kept = forward < 255  # burnt-out levels cannot come back
        slope = np.gradient(tone_table(gain, gamma).astype(np.float64))
        # where the curve is flat (dark end of a gamma > 1 curve) several levels share one value
        tight = kept & (slope > 1.0)
        assert np.abs(back[tight].astype(int) - levels[tight]).max() <= 1
    img = np.array([[0, 64, 128, 255]], np.uint8)
    assert np.array_equal(invert_tone(img, 1.0, 1.0), img)
    assert invert_tone(np.stack([img] * 3, -1), 0.5, 1.0)[0, 1].tolist() == [128, 128, 128]


def test_inverse_linear_table_is_the_contrast_stretch():
    t = inverse_linear_table(0.5, 64.0)
    assert t[64] == 0 and t[128] == 128 and t[191] == 254 and t[192] == 255 and t[10] == 0
    x = np.arange(0, 256, 5, dtype=np.uint8)[None, :]
    y = np.floor(x * 0.5 + 64.0 + 0.5).astype(np.uint8)
    assert np.abs(invert_linear(y, 0.5, 64.0).astype(int) - x).max() <= 1


@pytest.mark.parametrize("angle", [0, 30, 90, 135])
def test_blur_direction_finds_the_angle_of_a_line_blur(angle):
    rng = np.random.default_rng(5)
    texture = cv2_blur(rng.uniform(0, 255, (160, 160)).astype(np.float32))  # isotropic texture
    blurred = blur(texture, 15, angle)
    img = np.floor(np.clip(blurred, 0, 255) + 0.5).astype(np.uint8)
    est = blur_direction(img)
    assert 0 <= est < 180
    assert min(abs(est - angle), 180 - abs(est - angle)) <= 5, est
    assert blur_direction(np.full((20, 20), 7, np.uint8)) == 0


def cv2_blur(x: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(x, (5, 5), 1.0)


def test_motion_psf_is_the_atoms_kernel():
    k = motion_psf(5, 0)
    assert k.shape == (5, 5) and k.sum() == pytest.approx(1.0) and np.count_nonzero(k[2]) == 5
    assert np.count_nonzero(motion_psf(7, 90)[:, 3]) == 7


def test_angle_is_clamped_into_a_narrow_range():
    spec = get_atom("motion")
    assert _angle_in_range(37, {"angle": [0.0, 180.0]}, spec) == 37
    assert _angle_in_range(100, {"angle": [80.0, 110.0]}, spec) == 100
    assert _angle_in_range(170, {"angle": [-20.0, 20.0]}, spec) == -10  # the same line as 170
    assert _angle_in_range(30, {"angle": [80.0, 110.0]}, spec) == 80
    assert _angle_in_range(150, {"angle": [80.0, 110.0]}, spec) == 110
    assert _angle_in_range(45, {"angle": 12.0}, spec) == 45  # a fixed angle: nothing to clamp into


def test_streak_opening_removes_thin_bright_lines_and_keeps_wide_structure():
    img = np.full((40, 60), 100, np.uint8)
    img[:, 10] = 180  # a one-pixel streak
    img[:, 30:36] = 200  # a six-pixel bar (scene)
    img[:, 50] = 110  # a faint one-pixel line below the threshold (scene detail)
    out = remove_streaks(img, 3, 30.0)
    assert (out[:, 10] == 100).all() and (out[:, 30:36] == 200).all() and (out[:, 50] == 110).all()
    horizontal = remove_streaks(np.ascontiguousarray(img.T), 3, 30.0, vertical=False)
    assert np.array_equal(horizontal, out.T)
    rgb = np.stack([img, img, img], -1)
    rgb[5, 10, 0] = 100  # one channel did not rise: not white rain, kept
    out3 = remove_streaks(rgb, 3, 30.0)
    assert out3[5, 10].tolist() == [100, 180, 180] and out3[6, 10].tolist() == [100, 100, 100]
    assert [opening_width(0.00075, 12.5), opening_width(0.0055, 27.5), opening_width(0.0095, 35)] == [3, 5, 7]


def test_deblock_scale_and_filter():
    assert ijg_scale(50) == 100.0 and ijg_scale(25) == 200.0 and ijg_scale(90) == 20.0
    flat = np.full((16, 16), 90, np.uint8)
    flat[:, 8:] = 94  # a 4-level block edge: smoothed at q = 30 (σ_r ≈ 16.7)
    out = deblock(flat, 30)
    assert int(out[0, 8]) - int(out[0, 7]) < 4
    edge = np.full((16, 16), 20, np.uint8)
    edge[:, 8:] = 220  # a real edge: kept
    assert int(deblock(edge, 30)[0, 8]) - int(deblock(edge, 30)[0, 7]) > 190


def test_range_mean_reads_choices_uniform_ranges_numbers_and_defaults():
    spec = get_atom("jpeg")
    assert range_mean({"quality": [25, 30, 35]}, spec, "quality") == 30.0
    assert range_mean({"quality": 40}, spec, "quality") == 40.0
    assert range_mean(None, spec, "quality") == 40.0  # the spec's default [20, 30, 40, 50, 60]
    assert range_mean({"sigma": [6.0, 10.0]}, get_atom("ir_noise"), "sigma") == 8.0


@pytest.mark.parametrize("bad", ["high", [1, "x"], [], [math.nan, 3], True, [True, 2]])
def test_range_mean_refuses_bad_ranges(bad):
    with pytest.raises(ValueError, match="atom 'jpeg': the range of 'quality'"):
        range_mean({"quality": bad}, get_atom("jpeg"), "quality")
    with pytest.raises(ValueError, match="atom 'jpeg' has no range for 'beta'"):
        range_mean({"quality": 30}, get_atom("jpeg"), "beta")


def test_restorers_refuse_bad_input_clearly(crop):
    vis, ir = crop
    with pytest.raises(ValueError, match="gain > 0 and gamma > 0"):
        invert_tone(vis, 0.0, 2.0)
    with pytest.raises(ValueError, match="uint8 HxW or HxWx3"):
        invert_tone(vis.astype(np.float32), 0.5, 2.0)
    with pytest.raises(ValueError, match="alpha > 0"):
        invert_linear(ir, -0.5, 10.0)
    with pytest.raises(ValueError, match="width"):
        remove_streaks(vis, 0, 10.0)
    with pytest.raises(ValueError, match="threshold"):
        remove_streaks(vis, 3, math.inf)
    with pytest.raises(ValueError, match="density and length"):
        opening_width(-0.1, 10)
    with pytest.raises(ValueError, match="quality"):
        deblock(vis, 0)
    with pytest.raises(ValueError, match="uint8"):
        deblock(vis[..., :2], 30)
    with pytest.raises(ValueError, match="length"):
        motion_psf(0, 10)
    with pytest.raises(ValueError, match="uint8"):
        blur_direction(vis.astype(np.int32))
    with pytest.raises(ValueError, match="gain > 0 and gamma > 0"):  # through the cascade: the level's ranges
        restore_vis(vis, ("overexposure",), {"overexposure": {"gain": [0.0, 0.0], "gamma": [0.5, 0.6]}})
    with pytest.raises(ValueError, match="atom 'lowcontrast': the range of 'alpha'"):
        restore_ir(ir, ("lowcontrast",), {"lowcontrast": {"alpha": "low", "beta": 10.0}})


def test_v1_stripe_is_destriped_only_and_stripe_gain_also_denoised(crop, table):
    _, ir = crop
    d = degrade(ir[..., None].repeat(3, -1), ir, "stripe_gain.s4", SEED, pair_id="t/s", ranges=table)
    assert np.array_equal(restore_ir(d.ir, ("stripe",), table), destripe_columns(d.ir))
    both = restore_ir(d.ir, ("stripe_gain",), _setting_ranges("stripe_gain.s4", table))
    assert not np.array_equal(both, destripe_columns(d.ir))
    assert mse(both, ir) < mse(destripe_columns(d.ir), ir)
