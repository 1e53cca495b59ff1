"""Classical baselines: fusion rules, the Laplacian pyramid, and the restoration steps of ``cascade``.

Restoration steps are checked on the embedded real images degraded by the toolkit's own atoms (the benchmark's
synthesis), against the clean image: each must reduce the error its degradation introduced.
"""

from __future__ import annotations

import numpy as np
import pytest

from demmi_rf import baselines
from demmi_rf.baselines import BaselineInput
from demmi_rf.baselines._color import luminance, recolour
from demmi_rf.baselines.cascade import assumed_radius, cascade, restore_ir, restore_vis
from demmi_rf.baselines.deblur import defocus_psf, richardson_lucy, wiener_deconvolve
from demmi_rf.baselines.dehaze import dark_channel, dehaze_dcp, guided_filter
from demmi_rf.baselines.denoise import nlm_denoise
from demmi_rf.baselines.destripe import column_offsets, destripe_columns
from demmi_rf.baselines.pyramid import fuse_laplacian, fuse_laplacian_gray, laplacian_pyramid, n_levels, reconstruct
from demmi_rf.baselines.simple import fuse_average, fuse_max
from demmi_rf.degradations.compose import degrade
from demmi_rf.errors import DemmiError
from demmi_rf.metrics import rgb2gray

SEED = 20250713


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def _crop(vis: np.ndarray, ir: np.ndarray, h: int = 240, w: int = 320) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(vis[:h, :w]), np.ascontiguousarray(ir[:h, :w])


def _sobel_energy(img: np.ndarray) -> float:
    g = luminance(img)
    return float(np.mean(np.diff(g, axis=0) ** 2) + np.mean(np.diff(g, axis=1) ** 2))


# --- colour handling and the simple rules ------------------------------------------------------------------
def test_average_and_max_on_gray_follow_the_formula(tno_pair):
    vis, ir = tno_pair
    v, i = vis.astype(np.int64), ir.astype(np.int64)
    # (v + i) / 2 rounded half away from zero, done in integers: floor((v + i + 1) / 2)
    assert np.array_equal(fuse_average(vis, ir), ((v + i + 1) // 2).astype(np.uint8))
    assert np.array_equal(fuse_max(vis, ir), np.maximum(vis, ir))
    assert fuse_average(vis, ir).ndim == 2


def test_rgb_fusion_keeps_vis_chroma_and_puts_the_fused_luma_in_gray(msrs_pair):
    vis, ir = _crop(*msrs_pair)
    out = fuse_average(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8
    target = (luminance(vis) + ir) / 2
    unclipped = np.all((vis.astype(np.float64) + (target - luminance(vis))[..., None] >= 0.5)
                       & (vis.astype(np.float64) + (target - luminance(vis))[..., None] <= 254.5), axis=2)
    # the evaluation's gray conversion gives back the fused luminance (rounding only) where nothing clipped
    assert np.abs(rgb2gray(out).astype(np.float64) - target)[unclipped].max() <= 1.0
    # chroma kept: channel differences of the output equal those of VIS (up to rounding) where nothing clipped
    d_out = out[..., 0].astype(np.int64) - out[..., 2]
    d_vis = vis[..., 0].astype(np.int64) - vis[..., 2]
    assert np.abs(d_out - d_vis)[unclipped].max() <= 1
    # a gray "fused luma" equal to Y returns the VIS image itself
    assert np.abs(recolour(luminance(vis), vis).astype(int) - vis).max() <= 1


def test_max_picks_the_brighter_source(msrs_pair):
    vis, ir = _crop(*msrs_pair)
    out = rgb2gray(fuse_max(vis, ir)).astype(np.float64)
    lo = np.minimum(luminance(vis), ir.astype(np.float64))
    hi = np.maximum(luminance(vis), ir.astype(np.float64))
    assert np.mean(np.abs(out - hi) <= 1.0) > 0.95
    assert np.mean(out >= lo - 1.0) > 0.99


def test_fusion_rejects_bad_inputs(tno_pair):
    vis, ir = tno_pair
    with pytest.raises(ValueError, match="differ in size"):
        fuse_average(vis[:-1], ir)
    with pytest.raises(ValueError, match="uint8"):
        fuse_max(vis.astype(np.float32), ir)


# --- Laplacian pyramid -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(480, 640), (211, 541), (33, 47)])
def test_laplacian_pyramid_reconstructs_exactly(shape):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, shape)
    n = n_levels(*shape)
    pyr = laplacian_pyramid(img, n)
    assert len(pyr) == n + 1
    assert min(pyr[-1].shape) >= 8
    assert np.allclose(reconstruct(pyr), img, atol=1e-9)


def test_number_of_levels_follows_the_size():
    assert n_levels(480, 640) == 5  # 480 / 2^5 = 15 >= 8
    assert n_levels(256, 256) == 5
    assert n_levels(211, 541) == 4
    assert n_levels(15, 400) == 0


def test_laplacian_fusion_of_an_image_with_itself_is_the_image(tno_pair):
    vis, _ = tno_pair
    assert np.array_equal(fuse_laplacian(vis, vis), vis)


def test_laplacian_fusion_keeps_the_strongest_details_of_each_source():
    # VIS: a vertical edge on the left; IR: a bright square on the right. Both must survive, unlike averaging.
    vis = np.full((128, 128), 60, np.uint8)
    vis[:, 20:40] = 200
    ir = np.full((128, 128), 60, np.uint8)
    ir[50:80, 80:110] = 220
    fused = fuse_laplacian_gray(vis, ir).astype(np.float64)
    avg = (vis.astype(np.float64) + ir) / 2
    contrast_vis = fused[64, 30] - fused[64, 10]
    contrast_ir = fused[65, 95] - fused[65, 120]
    assert contrast_vis > 1.3 * (avg[64, 30] - avg[64, 10])
    assert contrast_ir > 1.3 * (avg[65, 95] - avg[65, 120])


# --- restoration steps on real images with the benchmark's own atoms ---------------------------------------
def test_nlm_reduces_error_on_noise50(msrs_pair, tno_pair):
    for vis, ir in (_crop(*msrs_pair), tno_pair):
        noisy = degrade(vis, ir, "noise50", SEED, pair_id="t/x").vis
        restored = nlm_denoise(noisy, 50.0)
        assert restored.shape == vis.shape and restored.dtype == np.uint8
        assert mse(restored, vis) < 0.4 * mse(noisy, vis)


def test_nlm_strength_grows_with_sigma(tno_pair):
    vis, ir = tno_pair
    noisy = degrade(vis, ir, "noise25", SEED, pair_id="t/x").vis
    # too weak a filter leaves noise: the matched sigma beats a 5x too small one
    assert mse(nlm_denoise(noisy, 25.0), vis) < mse(nlm_denoise(noisy, 5.0), vis)


def test_defocus_psf_matches_the_synthesis_kernel():
    from demmi_rf.degradations.defocus import kernel

    for r in (3, 4, 5, 6):
        ours = defocus_psf(r)
        assert ours.shape == kernel(r).shape == (2 * r + 3, 2 * r + 3)
        assert np.allclose(ours, kernel(r), atol=1e-7)
    assert defocus_psf(4.5).sum() == pytest.approx(1.0)


def test_deconvolution_sharpens_and_reduces_error_on_defocus(samples_dir, msrs_pair):
    vis, ir = _crop(*msrs_pair)
    for pid in ("t/a", "t/b", "t/c"):
        d = degrade(vis, ir, "defocus", SEED, pair_id=pid)
        true_psf = defocus_psf(d.params["defocus"]["radius"])
        for method in (richardson_lucy, lambda x, k: wiener_deconvolve(x, k, 0.01)):
            out = method(d.vis, true_psf)
            assert out.shape == vis.shape and out.dtype == np.uint8
            assert mse(out, vis) < mse(d.vis, vis)
            assert _sobel_energy(out) > _sobel_energy(d.vis)


def test_cascade_deblur_with_the_assumed_radius_helps_on_average(msrs_pair):
    vis, ir = _crop(*msrs_pair)
    ranges = {"defocus": {"radius": [3, 4, 5, 6]}}
    assert assumed_radius(ranges) == 4.5
    assert assumed_radius(None) == 4.5
    assert assumed_radius({"defocus": {"radius": [2.0, 3.0]}}) == 2.5
    before, after = [], []
    for pid in ("t/a", "t/b", "t/c", "t/d", "t/e", "t/f"):
        d = degrade(vis, ir, "defocus", SEED, pair_id=pid)
        before.append(mse(d.vis, vis))
        after.append(mse(restore_vis(d.vis, ("defocus",), ranges), vis))
    assert np.mean(after) < np.mean(before)


def test_dark_channel_prior_dehazes_bright_airlight_haze(msrs_pair):
    # He et al.'s own setting: a bright airlight. Their rule estimates it and the error drops a lot.
    vis, _ = _crop(*msrs_pair)
    h, w = vis.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    t = np.clip(np.exp(-1.5 * (1.0 - np.hypot(x - w / 2, y - h / 3) / np.hypot(w / 2, 2 * h / 3))), 0.05, 1)
    hazy = np.floor(vis * t[..., None] + 230.0 * (1 - t[..., None]) + 0.5).astype(np.uint8)
    out = dehaze_dcp(hazy)
    assert out.shape == vis.shape and out.dtype == np.uint8
    assert mse(out, vis) < 0.3 * mse(hazy, vis)


def test_cascade_dehazing_reduces_error_on_the_benchmark_haze(samples_dir):
    from PIL import Image

    d = samples_dir / "MSRS" / "test"
    vis = np.asarray(Image.open(d / "vi" / "00055D.png").convert("RGB"))[::2, ::2].copy()
    ir = np.asarray(Image.open(d / "ir" / "00055D.png"))[::2, ::2].copy()
    for pid in ("t/a", "t/b", "t/c"):
        hazy = degrade(vis, ir, "haze", SEED, pair_id=pid).vis
        assert mse(restore_vis(hazy, ("haze",)), vis) < 0.6 * mse(hazy, vis)


def test_dark_channel_and_guided_filter_basics():
    img = np.zeros((40, 40, 3))
    img[10:12, 10:12] = 1.0
    assert dark_channel(img).max() == 0.0  # an isolated bright spot disappears under the 15x15 minimum
    flat = np.full((40, 40), 0.3)
    assert np.allclose(guided_filter(flat, flat, radius=5), 0.3)
    with pytest.raises(ValueError, match="airlight"):
        dehaze_dcp(np.zeros((20, 20, 3), np.uint8), airlight="sky")


def test_destriping_removes_column_offsets(msrs_pair, tno_pair):
    for vis, ir in (msrs_pair, tno_pair):
        striped = degrade(vis, ir, "stripe", SEED, pair_id="t/x").ir
        out = destripe_columns(striped)
        assert out.shape == ir.shape and out.dtype == np.uint8

        def column_error(img: np.ndarray, ref: np.ndarray = ir) -> float:
            return float(np.std((img.astype(np.float64) - ref).mean(axis=0)))

        # what remains is the local mean of the offsets over the 7-column window (about s / sqrt(7))
        assert column_error(out) < 0.5 * column_error(striped)
        assert mse(out, ir) < 0.35 * mse(striped, ir)


def test_column_offsets_recovers_a_known_pattern():
    rng = np.random.default_rng(3)
    base = np.tile(np.linspace(50, 150, 200), (120, 1))  # smooth horizontal ramp
    offsets = rng.normal(0, 6, 200)
    est = column_offsets(base + offsets, statistic="mean")
    inner = slice(10, -10)
    assert np.corrcoef(est[inner], offsets[inner])[0, 1] > 0.9
    with pytest.raises(ValueError, match="statistic"):
        column_offsets(base, statistic="mode")


def test_restore_ir_only_acts_on_stripe(tno_pair):
    _, ir = tno_pair
    assert restore_ir(ir, ("noise50", "haze")) is ir
    assert restore_ir(ir, ("stripe",)).shape == ir.shape


# --- the registry and the full baselines -------------------------------------------------------------------
def test_registry_names_and_unknown_name():
    assert baselines.names() == ("average", "max", "laplacian", "cascade", "oracle-clean")
    with pytest.raises(DemmiError, match="unknown baseline .median.; choose from: average, max, laplacian"):
        baselines.get("median")
    assert baselines.get("oracle-clean").arrays == ("vis_clean", "ir_clean")
    assert baselines.get("cascade").arrays == ("vis", "ir")


@pytest.mark.parametrize("pair", ["msrs", "tno", "roadscene"])
def test_every_baseline_gives_a_uint8_image_of_the_input_size(pair, samples_dir, msrs_pair, tno_pair):
    from PIL import Image

    if pair == "msrs":
        vis, ir = _crop(*msrs_pair, 200, 260)
    elif pair == "tno":
        vis, ir = tno_pair
    else:
        d = samples_dir / "RoadScene"
        vis = np.asarray(Image.open(d / "crop_LR_visible" / "FLIR_06621.png").convert("RGB"))
        ir = np.asarray(Image.open(d / "cropinfrared" / "FLIR_06621.png"))
    setting = "noise50+defocus+haze+stripe"
    deg = degrade(vis, ir, setting, SEED, pair_id=f"t/{pair}")
    inp = BaselineInput(vis=deg.vis, ir=deg.ir, atoms=("noise50", "defocus", "haze", "stripe"),
                        vis_clean=vis, ir_clean=ir)
    for name in baselines.names():
        out = baselines.get(name).run(inp)
        assert out.dtype == np.uint8, name
        assert out.shape == vis.shape, name  # RGB VIS -> RGB fused, gray -> gray
        again = baselines.get(name).run(inp)
        assert np.array_equal(out, again), f"{name} is not deterministic"


def test_cascade_restores_and_beats_plain_laplacian_fusion_on_degraded_input(msrs_pair):
    vis, ir = _crop(*msrs_pair)
    deg = degrade(vis, ir, "noise50+haze+stripe", SEED, pair_id="t/x")
    atoms = ("noise50", "haze", "stripe")
    ceiling = fuse_laplacian(vis, ir)
    plain = fuse_laplacian(deg.vis, deg.ir)
    restored = cascade(deg.vis, deg.ir, atoms)
    assert mse(rgb2gray(restored), rgb2gray(ceiling)) < 0.5 * mse(rgb2gray(plain), rgb2gray(ceiling))


def test_cascade_on_clean_is_laplacian_and_oracle_reads_only_clean(msrs_pair):
    vis, ir = _crop(*msrs_pair)
    assert np.array_equal(cascade(vis, ir, ()), fuse_laplacian(vis, ir))
    junk = np.zeros_like(vis)
    out = baselines.get("oracle-clean").run(BaselineInput(vis=junk, ir=junk[..., 0], vis_clean=vis, ir_clean=ir))
    assert np.array_equal(out, fuse_laplacian(vis, ir))
    with pytest.raises(ValueError, match="needs the array"):
        baselines.get("oracle-clean").run(BaselineInput(vis=vis, ir=ir))
    with pytest.raises(ValueError, match="no restoration for atom"):
        cascade(vis, ir, ("glare",))  # no such atom (rain has a restorer since issue 14)
