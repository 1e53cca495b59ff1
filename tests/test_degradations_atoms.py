"""The atoms on their own: each formula checked against an independent computation or a statistic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from demmi_rf import ziggurat
from demmi_rf.degradations import atoms, defocus, get, haze, names, noise, stripe
from demmi_rf.degradations._arrays import quantize
from demmi_rf.errors import RecipeError, SettingError

V1_ATOMS = ("noise15", "noise25", "noise50", "defocus", "haze", "stripe")
V1_HAZE = {"beta": [1.0, 2.0], "focal_x": [0.3, 0.7], "focal_y": [0.2, 0.5], "t_min": 0.05}


def gray(h=96, w=128, c=3, value=128.0):
    shape = (h, w, c) if c else (h, w)
    return np.full(shape, value, dtype=np.float32)


# --- registry ---------------------------------------------------------------------------------------------
def test_registry_metadata():
    assert names() == tuple(a.name for a in atoms())
    assert {a.name: a.modality for a in atoms() if a.name in V1_ATOMS} == {
        "noise15": "vis", "noise25": "vis", "noise50": "vis", "defocus": "vis", "haze": "vis", "stripe": "ir",
    }
    vis_stages = {a.name: a.stage for a in atoms() if a.modality == "vis"}
    assert vis_stages["haze"] < vis_stages["defocus"] < vis_stages["noise50"]
    assert get("haze").module is haze and get("noise25").module is noise
    with pytest.raises(SettingError, match="unknown degradation atom 'fog'.*valid atoms: ") as info:
        get("fog")
    assert all(name in str(info.value) for name in V1_ATOMS)


def test_atoms_do_not_modify_their_input_unless_asked():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (40, 50, 3)).astype(np.float32)
    before = x.copy()
    for atom, ranges in [
        (get("noise25"), {"sigma": 25.0}),
        (get("haze"), V1_HAZE),
        (get("defocus"), {"radius": [3, 6], "alias_sigma": 0.5}),
    ]:
        out, _ = atom.run(x, np.random.default_rng(1), ranges)
        assert out is not x
        np.testing.assert_array_equal(x, before)
    ir = before[:, :, 0].copy()
    out, _ = get("stripe").run(ir, np.random.default_rng(1), {"offset_std": [3.0, 8.0], "gain_std": 0.0})
    np.testing.assert_array_equal(ir, before[:, :, 0])


# --- noise ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [15.0, 25.0, 50.0])
def test_noise_residual_has_zero_mean_and_std_sigma_before_clipping(sigma):
    x = gray(240, 320)
    out = noise.apply(x, np.random.default_rng(7), sigma=sigma)
    res = (out - x).astype(np.float64)
    n = res.size
    assert abs(res.mean()) < 4 * sigma / np.sqrt(n)
    assert abs(res.std() / sigma - 1) < 0.01
    # independent pixels and channels: neighbouring residuals are uncorrelated
    assert abs(np.corrcoef(res[:, :-1].ravel(), res[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(res[..., 0].ravel(), res[..., 1].ravel())[0, 1]) < 0.02


def test_noise_adds_exactly_the_samplers_normals_and_nothing_else():
    x = gray(20, 30)
    out = noise.apply(x, np.random.default_rng(3), sigma=25.0)
    expected = x + ziggurat.normal(np.random.default_rng(3), x.shape, 25.0)
    np.testing.assert_array_equal(out, expected)


def test_noise_draw_records_sigma_and_accepts_a_range():
    assert noise.draw(np.random.default_rng(0), gray(), {"sigma": 50}) == {"sigma": 50.0}
    s = noise.draw(np.random.default_rng(0), gray(), {"sigma": [10.0, 20.0]})["sigma"]
    assert 10.0 <= s <= 20.0
    with pytest.raises(RecipeError, match="degradations.noise50.sigma"):
        noise.draw(np.random.default_rng(0), gray(), {"sigma": -1.0}, atom="noise50")
    with pytest.raises(RecipeError, match="missing parameter 'sigma'"):
        noise.draw(np.random.default_rng(0), gray(), {}, atom="noise50")


# --- haze -------------------------------------------------------------------------------------------------
def _reference_t(h, w, cx, cy, beta, t_min):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    corners = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]
    far = max(np.hypot(qx - cx, qy - cy) for qx, qy in corners)
    d = 1 - np.hypot(xx - cx, yy - cy) / far
    return np.clip(np.exp(-beta * d), t_min, 1.0)


def test_haze_matches_the_scattering_model_with_a_equal_to_the_image_mean():
    rng = np.random.default_rng(5)
    j = rng.uniform(0, 255, (60, 80, 3)).astype(np.float32)
    params = haze.draw(np.random.default_rng(11), j, V1_HAZE)
    assert params["A"] == pytest.approx(float(j.astype(np.float64).mean()), rel=1e-12)
    assert 1.0 <= params["beta"] <= 2.0
    assert 0.3 * 80 <= params["focal_x_px"] <= 0.7 * 80 and 0.2 * 60 <= params["focal_y_px"] <= 0.5 * 60
    out = haze.apply(j, None, **params)
    t = _reference_t(60, 80, params["focal_x_px"], params["focal_y_px"], params["beta"], 0.05)
    expected = j * t[:, :, None] + params["A"] * (1 - t[:, :, None])
    np.testing.assert_allclose(out, expected, atol=2e-3)


def test_haze_transmission_stays_in_range_and_never_brightens_beyond_the_model():
    rng = np.random.default_rng(2)
    j = rng.uniform(0, 255, (50, 70)).astype(np.float32)
    for beta in (0.0, 1.0, 2.0, 5.0, 50.0):
        out = haze.apply(j, None, beta=beta, A=200.0, t_min=0.05, focal_x_px=10.0, focal_y_px=45.0)
        lo, hi = np.minimum(j, 200.0), np.maximum(j, 200.0)
        assert (out >= lo - 1e-3).all() and (out <= hi + 1e-3).all()
        t = (out - 200.0) / (j - 200.0)
        valid = np.abs(j - 200.0) > 5
        assert t[valid].min() >= 0.05 - 1e-4 and t[valid].max() <= 1 + 1e-4
    d = haze.radial_depth(50, 70, 10.0, 45.0)
    assert d.min() >= -1e-6 and d.max() <= 1 + 1e-6
    t = haze.transmission(d.copy(), 50.0, 0.05)
    assert t.min() == np.float32(0.05) and t.max() <= 1.0


def test_haze_is_densest_at_the_focal_point_and_absent_at_the_farthest_corner():
    j = np.zeros((101, 201), np.float32)
    out = haze.apply(j, None, beta=1.5, A=100.0, t_min=0.05, focal_x_px=60.0, focal_y_px=50.0)
    # farthest corner from (60, 50) is (200, 100) or (200, 0): t = 1 there, the pixel keeps its value
    assert out[100, 200] == pytest.approx(0.0, abs=1e-3)
    assert out[50, 60] == pytest.approx(100.0 * (1 - np.exp(-1.5)), rel=1e-5)
    assert out[50, 60] == out.max()


def test_haze_user_depth_replaces_the_radial_depth_near_is_clear():
    j = np.full((40, 60, 3), 30.0, np.float32)
    depth = np.tile(np.arange(60, dtype=np.uint16), (40, 1))  # depth grows to the right
    params = haze.draw(np.random.default_rng(0), j, V1_HAZE, depth=depth)
    assert params["pseudo_depth"] == "user" and "focal_x_px" not in params
    out = haze.apply(j, None, depth=depth, **{**params, "A": 200.0})
    np.testing.assert_allclose(out[:, 0], 30.0, atol=1e-4)  # nearest column: d = 0, t = 1
    t_far = np.exp(-params["beta"])
    np.testing.assert_allclose(out[:, -1], 30.0 * t_far + 200.0 * (1 - t_far), rtol=1e-5)
    assert (np.diff(out[0, :, 0]) > 0).all()  # haze grows with depth
    with pytest.raises(ValueError, match="constant"):
        haze.apply(j, None, depth=np.ones((40, 60)), **{**params, "A": 200.0})
    with pytest.raises(ValueError, match="shape"):
        haze.apply(j, None, depth=depth[:, :10], **{**params, "A": 200.0})
    with pytest.raises(ValueError, match="NaN"):
        haze.apply(j, None, depth=np.where(depth > 3, depth, np.nan), **{**params, "A": 200.0})


def test_haze_draw_order_is_beta_then_focal_x_then_focal_y():
    j = gray(30, 40)
    p = haze.draw(np.random.default_rng(9), j, V1_HAZE)
    r = np.random.default_rng(9)
    assert p["beta"] == r.uniform(1.0, 2.0)
    assert p["focal_x_px"] == r.uniform(0.3, 0.7) * 40
    assert p["focal_y_px"] == r.uniform(0.2, 0.5) * 30


# --- defocus ----------------------------------------------------------------------------------------------
def _reference_kernel(r, sigma):
    u = np.arange(-r, r + 1)
    disk = ((u[:, None] ** 2 + u[None, :] ** 2) <= r * r).astype(np.float64)
    disk /= disk.sum()
    g1 = np.exp(-(np.arange(-1, 2) ** 2) / (2 * sigma**2)) if sigma > 0 else np.array([0.0, 1.0, 0.0])
    g = np.outer(g1, g1) / np.outer(g1, g1).sum()
    k = signal.convolve2d(disk, g, mode="full")
    return k / k.sum()


def _reference_blur(x, r, sigma=0.5):
    """float64 K_r * x, reflect-101 borders: scipy's 'mirror' mode is d c b | a b c d | c b a (no OpenCV)."""
    k = _reference_kernel(r, sigma)
    return ndimage.correlate(x.astype(np.float64), k.reshape(k.shape + (1,) * (x.ndim - 2)), mode="mirror")


def _reference_blur_fft(x, r, sigma=0.5):
    """The same on large images: numpy 'reflect' padding (reflect-101) and an FFT convolution."""
    k = _reference_kernel(r, sigma)
    half = k.shape[0] // 2
    padded = np.pad(x.astype(np.float64), ((half, half), (half, half)) + ((0, 0),) * (x.ndim - 2), mode="reflect")
    return signal.fftconvolve(padded, k.reshape(k.shape + (1,) * (x.ndim - 2)), mode="valid", axes=(0, 1))


def _documented_sequence(x, r, sigma=0.5):
    """The operation sequence stated in the defocus docstring, written independently in plain numpy on the
    whole image (numpy padding, pixel-indexed arrays, no strips, no OpenCV)."""
    h, w = x.shape[:2]
    pad = r + 1
    p = np.pad(x, ((pad, pad), (pad, pad)) + ((0, 0),) * (x.ndim - 2), mode="reflect")
    rows, cols = slice(r, r + h + 2), w + 2  # S covers image rows and columns -1 .. h and -1 .. w
    runs = [p[rows]]
    for k in range(1, r + 1):  # V_k = (V_{k-1} + x[. - k]) + x[. + k]
        runs.append((runs[-1] + p[r - k : r - k + h + 2]) + p[r + k : r + k + h + 2])
    hw = [int(np.floor(np.sqrt(r * r - d * d) + 1e-9)) for d in range(r + 1)]
    s = runs[0][:, 0:cols] + runs[0][:, 2 * r : 2 * r + cols] if r else runs[0][:, 0:cols].copy()
    for k in range(1, r + 1):
        for dx in range(r, -1, -1):
            if hw[dx] == k:
                s = s + runs[k][:, r - dx : r - dx + cols]
                if dx:
                    s = s + runs[k][:, r + dx : r + dx + cols]
    rho = np.float32(np.exp(-1.0 / (2.0 * sigma**2)))
    q = 1.0 + 2.0 * float(rho)
    scale = np.float32(1.0 / (q * q * float(_reference_kernel(r, 0.0).astype(bool).sum())))
    t = (s[:, :-2] + s[:, 2:]) * rho + s[:, 1:-1]
    u = (t[:-2] + t[2:]) * rho + t[1:-1]
    return u * scale


@pytest.mark.parametrize("r", [0, 1, 3, 4, 5, 6, 8])
def test_defocus_kernel_is_the_softened_normalised_disk(r):
    k = defocus.kernel(r, 0.5)
    assert k.shape == (2 * r + 3, 2 * r + 3) and k.dtype == np.float32
    assert abs(float(k.astype(np.float64).sum()) - 1.0) < 1e-6
    np.testing.assert_allclose(k, _reference_kernel(r, 0.5), atol=1e-7)
    np.testing.assert_array_equal(k, k.T)
    np.testing.assert_array_equal(k, k[::-1, ::-1])
    np.testing.assert_allclose(defocus.kernel(r, 0.0), _reference_kernel(r, 0.0), atol=1e-7)  # σ = 0: no ring


@pytest.mark.parametrize("r", [3, 4, 5, 6])
def test_defocus_matches_a_float64_convolution_on_a_real_image(msrs_pair, r):
    """Before rounding, within 1e-3 of the float64 convolution with K_r: on the clean 640x480 image
    (integer-valued, as in `defocus` and `noise*+defocus`) and on a hazed one (as in `defocus+haze`)."""
    vis = msrs_pair[0].astype(np.float32)
    hazed = haze.apply(vis, None, beta=1.5, A=float(vis.mean()), t_min=0.05, focal_x_px=300.0, focal_y_px=150.0)
    assert not np.array_equal(hazed, np.rint(hazed))
    for x in (vis, hazed):
        out = defocus.apply(x, None, radius=r, alias_sigma=0.5)
        assert out.shape == x.shape and out.dtype == np.float32
        assert np.abs(out - _reference_blur_fft(x, r)).max() < 1e-3


@pytest.mark.parametrize("r", [0, 1, 3, 4, 5, 6, 9])
@pytest.mark.parametrize("shape", [(45, 67), (45, 67, 3), (31, 20, 2)])
@pytest.mark.parametrize("sigma", [0.5, 0.0, 1.0])
def test_defocus_equals_a_reflect101_convolution_and_preserves_the_mean(r, shape, sigma):
    rng = np.random.default_rng(r)
    x = rng.uniform(0, 255, shape).astype(np.float32)
    out = defocus.apply(x, None, radius=r, alias_sigma=sigma)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(out - _reference_blur(x, r, sigma)).max() < 1e-3
    # mean preserved on a constant image, closely on a random one (away from borders)
    c = np.full(shape, 77.0, np.float32)
    np.testing.assert_allclose(defocus.apply(c, None, radius=r, alias_sigma=sigma), 77.0, atol=1e-4)
    if min(shape[:2]) > 40:
        assert abs(out.mean() - x.mean()) < 0.5


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (3, 5, 3), (2, 9), (9, 2, 3), (17, 9)])
def test_defocus_on_images_smaller_than_the_kernel(shape):
    """Borders reflect repeatedly (reflect-101 of reflect-101) when the kernel is wider than the image."""
    x = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    for r in (3, 6):
        assert np.abs(defocus.apply(x, None, radius=r, alias_sigma=0.5) - _reference_blur(x, r)).max() < 1e-3


@pytest.mark.parametrize("r", [0, 3, 6])
def test_defocus_impulse_response_is_the_kernel(r):
    x = np.zeros((41, 43), np.float32)
    x[20, 21] = 1.0
    out = defocus.apply(x, None, radius=r, alias_sigma=0.5)
    half = r + 1
    window = out[20 - half : 21 + half, 21 - half : 22 + half]
    np.testing.assert_allclose(window, defocus.kernel(r, 0.5), rtol=1e-6, atol=1e-9)
    outside = np.ones(out.shape, bool)
    outside[20 - half : 21 + half, 21 - half : 22 + half] = False
    assert (out[outside] == 0).all()  # nothing outside the kernel's support


@pytest.mark.parametrize("r", [3, 4, 5, 6])
def test_defocus_follows_the_documented_operation_sequence_bit_for_bit(msrs_pair, tno_pair, r):
    """Any implementation of the documented sequence of IEEE additions and multiplications gives the same
    bits: here plain numpy on the whole image against the OpenCV-assisted strips of the module."""
    rgb = msrs_pair[0].astype(np.float32)
    for x in (rgb, haze.apply(rgb, None, beta=1.2, A=90.0, t_min=0.05, focal_x_px=200.0, focal_y_px=100.0),
              tno_pair[0].astype(np.float32)):
        np.testing.assert_array_equal(defocus.apply(x, None, radius=r, alias_sigma=0.5), _documented_sequence(x, r))


def test_defocus_bits_do_not_depend_on_the_strip_height_or_in_place_use(msrs_pair, monkeypatch):
    x = msrs_pair[0][:200, :300].astype(np.float32)
    x[::7] += np.float32(0.3)  # some non-integer values
    results = []
    for floats in (1, 10_000, 1 << 40):  # strips of max(r + 1, 8) rows, a few dozen rows, the whole image
        monkeypatch.setattr(defocus, "_STRIP_FLOATS", floats)
        for r in (3, 6, 12):
            own = x.copy()
            y = defocus.apply(own, None, radius=r, alias_sigma=0.5, inplace=True)
            assert y is own  # written into the caller's buffer, strip after strip
            np.testing.assert_array_equal(y, defocus.apply(x, None, radius=r, alias_sigma=0.5))
            results.append(y)
    for i in range(3):
        np.testing.assert_array_equal(results[i], results[i + 3])
        np.testing.assert_array_equal(results[i], results[i + 6])


def test_defocus_gauss_ratio_is_the_exponential_from_basic_operations():
    import math

    for sigma in (0.05, 0.1, 0.3, 0.5, 1.0, 3.0, 10.0):
        assert defocus.gauss_ratio(sigma) == pytest.approx(math.exp(-1.0 / (2.0 * sigma**2)), rel=1e-14)
    assert defocus.gauss_ratio(0.0) == 0.0 and defocus.gauss_ratio(0.01) == 0.0  # exp(-5000) underflows
    assert np.float32(defocus.gauss_ratio(0.5)) == np.float32(math.exp(-2.0))


def test_defocus_rejects_bad_arguments():
    x = gray(20, 30)
    with pytest.raises(ValueError, match="radius"):
        defocus.apply(x, None, radius=-1, alias_sigma=0.5)
    with pytest.raises(ValueError, match="radius"):
        defocus.kernel(2.5)
    with pytest.raises(ValueError, match="alias_sigma"):
        defocus.apply(x, None, radius=3, alias_sigma=float("nan"))
    with pytest.raises(TypeError, match="float32"):
        defocus.blur(x.astype(np.float64), 3)
    with pytest.raises(ValueError, match="out must be"):
        defocus.blur(x, 3, out=np.empty((20, 31, 3), np.float32))
    with pytest.raises(TypeError, match="numeric"):
        defocus.apply(x.astype(bool), None, radius=3, alias_sigma=0.5)
    u8 = np.full((20, 30, 3), 9, np.uint8)
    np.testing.assert_allclose(defocus.apply(u8, None, radius=3, alias_sigma=0.5), 9.0, atol=1e-5)


def test_defocus_draws_a_radius_from_the_recipe_choices():
    seen = {defocus.draw(np.random.default_rng(i), gray(), {"radius": [3, 4, 5, 6], "alias_sigma": 0.5})["radius"]
            for i in range(60)}
    assert seen == {3, 4, 5, 6}
    with pytest.raises(RecipeError, match="degradations.defocus.radius"):
        defocus.draw(np.random.default_rng(0), gray(), {"radius": [3.5], "alias_sigma": 0.5})


def test_defocus_accepts_a_channel_axis_of_one():
    x = np.random.default_rng(0).uniform(0, 255, (30, 40, 1)).astype(np.float32)
    out = defocus.apply(x, None, radius=4, alias_sigma=0.5)
    assert out.shape == (30, 40, 1)
    np.testing.assert_array_equal(out[..., 0], defocus.apply(x[..., 0], None, radius=4, alias_sigma=0.5))


# --- stripe -----------------------------------------------------------------------------------------------
def test_stripe_offsets_are_constant_down_each_column_with_std_s():
    x = np.random.default_rng(0).uniform(0, 255, (120, 640)).astype(np.float32)
    out = stripe.apply(x, np.random.default_rng(4), s=6.0)
    res = out - x
    np.testing.assert_allclose(res, np.broadcast_to(res[0], res.shape), atol=1e-4)
    assert 0.85 < res[0].std() / 6.0 < 1.15
    assert abs(res[0].mean()) < 4 * 6.0 / np.sqrt(640)
    expected = ziggurat.normal(np.random.default_rng(4), 640, 6.0)
    np.testing.assert_array_equal(out, x + expected[None, :])


def test_stripe_gain_is_drawn_only_when_gain_std_is_positive():
    x = np.full((50, 400), 100.0, np.float32)
    r1, r2 = np.random.default_rng(8), np.random.default_rng(8)
    stripe.apply(x, r1, s=5.0, gain_std=0.0)
    stripe.apply(x, r2, s=5.0, gain_std=0.1)
    # the gain-free call consumed the draws of W normals, the other of 2W: the streams now differ
    assert r1.bit_generator.random_raw() != r2.bit_generator.random_raw()
    ramp = np.tile(np.linspace(0, 200, 50, dtype=np.float32)[:, None], (1, 400))
    out = stripe.apply(ramp, np.random.default_rng(1), s=0.0, gain_std=0.1)
    g = (out - ramp)[-1] / ramp[-1]
    np.testing.assert_allclose(out - ramp, ramp * g[None, :], atol=1e-3)
    assert 0.07 < g.std() < 0.13
    assert stripe.draw(np.random.default_rng(0), x, {"offset_std": [3.0, 8.0], "gain_std": 0.0})["gain_std"] == 0.0


# --- quantisation -----------------------------------------------------------------------------------------
def test_quantize_clips_then_rounds_half_to_even_without_wrap_around():
    x = np.array([-300.0, -1.0, -0.5, 0.4, 0.5, 1.5, 2.5, 254.5, 255.4, 256.0, 1000.0], np.float32)
    np.testing.assert_array_equal(quantize(x.copy()), [0, 0, 0, 0, 0, 2, 2, 254, 255, 255, 255])
    assert quantize(x.copy()).dtype == np.uint8
