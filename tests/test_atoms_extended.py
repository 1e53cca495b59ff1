"""The atoms beyond v1 (issue 14 section 2): each formula against an independent computation or a statistic,
their registry specs and severity ladders, determinism, and literal sha256 pins (also with SIMD off).

Whether ``import demmi_rf`` registers these atoms is the package's choice; this module leaves the registry as
it found it: atoms that importing their modules registered here are unregistered right after (so collecting
this module changes nothing other test modules see), and registered again only while its own tests run.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from demmi_rf import degrade, ziggurat
from demmi_rf.degradations import ATOMS, codec_libraries, get, register_atom, unregister_atom
from demmi_rf.errors import RecipeError
from demmi_rf.rng import Stream

from .conftest import compiled_or_skip, kernel_swapped_is_refused

_BEFORE = frozenset(s.name for s in ATOMS.specs())  # what the package registered by itself
(exposure, ir_contrast, ir_noise, ir_stripe_gain, jpeg, lowlight, motion, rain, extended) = (
    importlib.import_module(f"demmi_rf.degradations.{m}") for m in (
        "exposure", "ir_contrast", "ir_noise", "ir_stripe_gain", "jpeg", "lowlight", "motion", "rain", "extended"))
NAMES, SPECS = extended.NAMES, extended.SPECS
for _spec in SPECS:  # keep collection side-effect free (see the module docstring)
    if _spec.name not in _BEFORE and _spec.name in ATOMS and ATOMS.get(_spec.name) is _spec:
        unregister_atom(_spec.name)

SEED = 20250713  # the demmi-rf-v1 recipe seed


@pytest.fixture(scope="module", autouse=True)
def registered():
    added = []
    for spec in SPECS:
        if spec.name not in ATOMS:
            register_atom(spec)
            added.append(spec.name)
    yield
    for name in added:
        unregister_atom(name)


def stream(seed: int = 0) -> Stream:
    return Stream(np.random.default_rng(seed))


def real_vis(msrs_pair) -> np.ndarray:
    return msrs_pair[0].astype(np.float32)


def real_ir(msrs_pair) -> np.ndarray:
    return msrs_pair[1].astype(np.float32)


# --- registry and severity ladders -----------------------------------------------------------------------------
def test_specs_are_registered_with_their_chain_positions():
    vis = {s.name: s.stage for s in ATOMS.specs() if s.modality == "vis"}
    ir = {s.name: s.stage for s in ATOMS.specs() if s.modality == "ir"}
    assert vis["haze"] < vis["rain"] < vis["defocus"] < vis["motion"] < vis["lowlight"] < vis["noise25"] < vis["jpeg"]
    assert vis["lowlight"] == vis["overexposure"]
    assert ir["lowcontrast"] < ir["stripe"] == ir["stripe_gain"] < ir["ir_noise"]
    assert get("lowlight").family == get("overexposure").family == "illumination"
    assert get("stripe_gain").family == "stripe"
    assert set(NAMES) == {"lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "ir_noise",
                          "stripe_gain"}
    for spec in SPECS:
        assert spec.module.SPEC is spec and spec.label_index == 6 + SPECS.index(spec)  # after v1's six
        assert spec.random_apply == (spec.name in {"lowlight", "rain", "ir_noise", "stripe_gain"})


@pytest.mark.parametrize("name", sorted({"lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast",
                                         "ir_noise", "stripe_gain"}))
def test_every_atom_has_five_valid_severity_levels(name):
    spec = get(name)
    assert len(spec.severity) == 5
    for table in spec.severity:
        assert spec.range_problems({**spec.default_ranges, **table}) == []
    assert spec.range_problems(spec.default_ranges) == []


def _mid(spec, table):
    """The midpoint parameters of a severity level (ranges -> centre, choices -> median), drawn without a
    stream, to compare levels deterministically."""
    ranges = {**spec.default_ranges, **table}
    out = {}
    for p in spec.params:
        v = ranges[p.name]
        if isinstance(v, list):
            v = sorted(v)[len(v) // 2] if p.kind == "choice" else (v[0] + v[1]) / 2
        out[p.name] = v
    return out


def _params(name, mid, image):
    if name in ("motion", "rain"):
        mid["angle"] = motion.round_angle(mid["angle"])
    return mid


@pytest.mark.parametrize("name", ["lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "ir_noise",
                                  "stripe_gain"])
def test_severity_is_monotone_in_the_mean_absolute_change(name, msrs_pair):
    spec = get(name)
    image = real_vis(msrs_pair) if spec.modality == "vis" else real_ir(msrs_pair)
    image = image[:240, :320].copy()
    change = []
    for table in spec.severity:
        params = _params(name, _mid(spec, table), image)
        out = spec.apply(image, stream(5), **params)
        change.append(float(np.mean(np.abs(np.clip(out, 0, 255) - image))))
    assert all(a < b for a, b in zip(change, change[1:])), change


# --- shapes, dtypes, determinism, inputs untouched --------------------------------------------------------------
@pytest.mark.parametrize("name", ["lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "ir_noise",
                                  "stripe_gain"])
def test_shape_dtype_determinism_and_input_untouched(name, msrs_pair):
    spec = get(name)
    image = (real_vis(msrs_pair) if spec.modality == "vis" else real_ir(msrs_pair))[:96, :128].copy()
    before = image.copy()
    out1, p1 = spec.run(image, stream(3), spec.default_ranges)
    out2, p2 = spec.run(image, stream(3), spec.default_ranges)
    np.testing.assert_array_equal(image, before)
    assert out1.dtype == np.float32 and out1.shape == image.shape
    assert p1 == p2 and json.loads(json.dumps(p1)) == p1  # plain JSON record
    assert out1.tobytes() == out2.tobytes()
    out3, _ = spec.run(image, stream(4), spec.default_ranges)
    assert not np.array_equal(out1, out3)  # another stream, other parameters (and pixels)
    if spec.modality == "vis":  # gray VIS (TNO) and a channel axis of one work too
        gray = image[..., 0].copy()
        assert spec.run(gray, stream(3), spec.default_ranges)[0].shape == gray.shape
    work = image.copy()
    inplace, _ = spec.run(work, stream(3), spec.default_ranges, inplace=True)
    assert inplace.tobytes() == out1.tobytes()


def test_bad_ranges_name_the_parameter():
    with pytest.raises(RecipeError, match="degradations.lowlight.gain"):
        lowlight.draw(stream(), None, {"gain": 1.5, "gamma": 2.0, "shot": 0.0, "read": 0.0})
    with pytest.raises(RecipeError, match="degradations.jpeg.quality"):
        jpeg.draw(stream(), None, {"quality": [0, 50]})
    assert get("motion").range_problems({"length": [0, 3], "angle": 0.0})
    with pytest.raises(ValueError, match="positive integer"):
        motion.apply(np.zeros((8, 8), np.float32), length=0, angle=0)
    with pytest.raises(ValueError, match="integer number of degrees"):
        motion.apply(np.zeros((8, 8), np.float32), length=3, angle=1.5)
    with pytest.raises(ValueError, match="quality"):
        jpeg.compress(np.zeros((8, 8), np.uint8), 0)


# --- illumination: overexposure / lowlight ----------------------------------------------------------------------
@pytest.mark.parametrize(("gain", "gamma"), [(0.5, 2.2), (1.7, 0.7), (1.0, 1.0), (0.3, 3.1)])
def test_tone_table_is_the_power_curve(gain, gamma):
    v = np.arange(256, dtype=np.float64)
    want = 255.0 * gain * (v / 255.0) ** gamma
    got = exposure.tone_table(gain, gamma).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-30)
    assert got[0] == 0.0 and np.all(np.diff(got) > 0)


def test_tone_curve_interpolates_between_levels_and_equals_the_table_on_levels():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (50, 60, 3)).astype(np.float32)
    fast = exposure.tone_curve(levels, 0.6, 2.0)  # integer input: the look-up path
    nudged = levels.copy()
    nudged[0, 0, 0] = 0.5  # one non-integer value forces the interpolation path for the whole image
    slow = exposure.tone_curve(nudged, 0.6, 2.0)
    mask = np.ones(levels.shape, bool)
    mask[0, 0, 0] = False
    assert fast[mask].tobytes() == slow[mask].tobytes()
    table = exposure.tone_table(0.6, 2.0)
    assert slow[0, 0, 0] == np.float32(table[0] + (table[1] - table[0]) * np.float32(0.5))
    x = np.array([[-10.0, 12.25, 254.5, 300.0]], np.float32)  # beyond [0, 255]: the end segments extend
    y = exposure.tone_curve(x, 1.2, 0.8)
    t = exposure.tone_table(1.2, 0.8).astype(np.float64)
    np.testing.assert_allclose(y[0], [t[0] + (t[1] - t[0]) * -10, t[12] + (t[13] - t[12]) * 0.25,
                                      t[254] + (t[255] - t[254]) * 0.5, t[254] + (t[255] - t[254]) * 46], rtol=1e-6)


def test_tone_curve_propagates_nan_and_infinity_without_an_index_error():
    x = np.array([[np.nan, np.inf, -np.inf, 10.5]], np.float32)
    with np.errstate(invalid="ignore"):
        y = exposure.tone_curve(x, 0.5, 2.0)
    assert np.isnan(y[0, 0]) and not np.isfinite(y[0, 1]) and not np.isfinite(y[0, 2]) and np.isfinite(y[0, 3])


def test_overexposure_brightens_and_saturates_only_in_the_final_clip(msrs_pair):
    x = real_vis(msrs_pair)
    y = exposure.apply(x, gain=2.0, gamma=0.7)
    assert np.all(y >= x - 1e-3) and y.max() > 255  # not clipped here
    assert np.all(np.diff(exposure.tone_table(2.0, 0.7)) > 0)


def test_lowlight_without_noise_draws_nothing_and_is_the_tone_curve(msrs_pair):
    x = real_vis(msrs_pair)[:64, :64].copy()
    s = stream(9)
    y = lowlight.apply(x, s, gain=0.5, gamma=2.0, shot=0.0, read=0.0)
    assert y.tobytes() == exposure.tone_curve(x, 0.5, 2.0).tobytes()
    assert s.uniform() == stream(9).uniform()  # the stream was not advanced
    assert np.all(y <= x + 1e-4)


@pytest.mark.parametrize(("shot", "read"), [(0.8, 2.0), (0.0, 3.0), (1.5, 0.0)])
def test_lowlight_noise_has_the_poisson_gaussian_variance(shot, read):
    x = np.full((300, 400), 128.0, np.float32)
    y = lowlight.apply(x, stream(11), gain=0.5, gamma=2.0, shot=shot, read=read)
    u = float(exposure.tone_table(0.5, 2.0)[128])
    res = (y - np.float32(u)).astype(np.float64)
    var = shot * u + read * read
    assert abs(res.mean()) < 5 * math.sqrt(var / res.size)
    assert abs(res.var() / var - 1) < 0.02
    # the noise is exactly the stream's normals scaled by sqrt(a u + b^2)
    n = ziggurat.normal(np.random.default_rng(11), x.shape, 1.0)
    s = np.sqrt(np.float32(u) * np.float32(shot) + np.float32(read * read))
    assert y.tobytes() == (np.float32(u) + n * s).astype(np.float32).tobytes()


# --- motion ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "angle"), [(1, 0), (5, 0), (7, 20), (9, 45), (11, 90), (13, 135), (15, 163),
                                               (8, 30), (25, -70)])
def test_motion_kernel_is_a_normalised_line_and_apply_is_its_reflect101_correlation(length, angle):
    cells = motion.line_cells(length, angle)
    assert len(cells) == len(set(cells)) == length  # L distinct cells, one per step along the major axis
    k = motion.kernel(length, angle)
    assert abs(float(k.astype(np.float64).sum()) - 1.0) < 1e-6
    assert np.count_nonzero(k) == length
    if length % 2:
        np.testing.assert_array_equal(k, k[::-1, ::-1])  # centrally symmetric
    major = max(max(abs(dx) for dx, _ in cells), max(abs(dy) for _, dy in cells))
    assert major == length // 2
    # the line's direction: the far cells lie on the ray at the angle (y up), within half a pixel across
    dx, dy = cells[-1]
    th = math.radians(angle)
    assert abs(dx * math.sin(th) - (-dy) * math.cos(th)) <= 0.5 + 1e-9
    rng = np.random.default_rng(length)
    x = rng.uniform(0, 255, (40, 50, 3)).astype(np.float32)
    y = motion.apply(x, length=length, angle=angle)
    ref = np.stack([ndimage.correlate(x[..., c].astype(np.float64), k.astype(np.float64), mode="mirror")
                    for c in range(3)], -1)
    np.testing.assert_allclose(y, ref, atol=2e-4)


def test_motion_follows_the_documented_sum_order_bit_for_bit(msrs_pair):
    x = real_vis(msrs_pair)
    for length, angle in [(9, 20), (14, 100)]:
        cells = motion.line_cells(length, angle)
        px, py = max(abs(c[0]) for c in cells), max(abs(c[1]) for c in cells)
        p = np.pad(x, ((py, py), (px, px), (0, 0)), mode="reflect")  # numpy's reflect is reflect-101
        h, w = x.shape[:2]
        acc = None
        for dx, dy in cells:
            v = p[py + dy : py + dy + h, px + dx : px + dx + w]
            acc = v.copy() if acc is None else np.add(acc, v, dtype=np.float32)
        ref = acc * np.float32(1.0 / length)
        assert motion.apply(x, length=length, angle=angle).tobytes() == ref.astype(np.float32).tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 2, 3)])
def test_motion_and_rain_on_images_smaller_than_the_kernel(shape):
    """Borders reflect repeatedly (reflect-101 of reflect-101) when the line is longer than the image."""
    x = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    for length, angle in [(9, 0), (15, 33), (7, 90)]:
        cells = motion.line_cells(length, angle)
        px, py = max(abs(c[0]) for c in cells), max(abs(c[1]) for c in cells)
        pad = ((py, py), (px, px)) + (((0, 0),) if x.ndim == 3 else ())
        p = np.pad(x, pad, mode="reflect") if min(shape[:2]) > 1 else np.pad(x, pad, mode="edge")
        h, w = shape[:2]
        ref = sum(p[py + dy : py + dy + h, px + dx : px + dx + w].astype(np.float64) for dx, dy in cells) / length
        np.testing.assert_allclose(motion.apply(x, length=length, angle=angle), ref, atol=1e-3)
    y = rain.apply(x, stream(1), density=0.5, length=9, angle=80, intensity=10.0)
    assert y.shape == x.shape and np.all(y >= x)


def test_motion_cells_are_far_from_rounding_ties_for_every_integer_angle():
    """Any libm within a few ulp of tan gives the same cells: a·tan never lies within 1e-6 of a tie."""
    worst = 1.0
    for angle in range(180):
        t = angle % 180
        red = (t if t <= 45 else t - 180) if (t <= 45 or t >= 135) else 90 - t
        slope = math.tan(math.radians(red))
        for a in range(-100, 101):
            frac = abs(a * slope) % 1.0
            worst = min(worst, abs(frac - 0.5))
    assert worst > 1e-6, worst


def test_motion_draws_a_length_then_an_integer_angle():
    p = motion.draw(stream(2), None, {"length": [5, 7, 9], "angle": [0.0, 180.0]})
    s = stream(2)
    assert p == {"length": [5, 7, 9][s.below(3)], "angle": motion.round_angle(180.0 * s.uniform())}
    assert motion.round_angle(2.5) == 3 and motion.round_angle(-2.5) == -3 and motion.round_angle(-0.4) == 0


def test_motion_preserves_the_mean_of_a_periodic_image():
    x = np.tile(np.arange(16, dtype=np.float32) * 10, (32, 4))  # the mean of each row is that of a period
    y = motion.apply(x, length=9, angle=0)
    assert abs(float(y[:, 16:-16].mean()) - float(x[:, 16:-16].mean())) < 1e-3


# --- rain --------------------------------------------------------------------------------------------------------
def test_rain_adds_intensity_times_the_streak_count(msrs_pair):
    x = real_vis(msrs_pair)
    p = {"density": 0.004, "length": 21, "angle": 80, "intensity": 60.0}
    y = rain.apply(x, stream(4), **p)
    s = rain.streaks(x.shape[:2], stream(4), 0.004, 21, 80)
    assert np.all(s == np.rint(s)) and s.min() >= 0
    t = s * np.float32(60.0)
    assert y.tobytes() == (x + t[..., None]).astype(np.float32).tobytes()
    # the drops: H*W raw uniforms below the density; the mean count of a streak pixel is density * L
    u = stream(4).uniforms(x.shape[0] * x.shape[1])
    assert abs((u < 0.004).mean() - 0.004) < 0.0005
    assert abs(float(s.mean()) / (0.004 * 21) - 1) < 0.05


def test_a_single_drop_becomes_a_streak_of_length_l_along_the_angle():
    mask = np.zeros((41, 41), np.float32)
    mask[20, 20] = 1
    s = motion.line_sum(mask, motion.line_cells(15, 90))
    assert s.sum() == 15 and set(np.unique(s)) == {0.0, 1.0}
    ys, xs = np.nonzero(s)
    assert set(xs) == {20} and ys.min() == 13 and ys.max() == 27  # vertical


# --- jpeg --------------------------------------------------------------------------------------------------------
def test_jpeg_equals_pillows_codec_in_rgb_order_and_loses_more_at_lower_quality(msrs_pair):
    from PIL import Image

    vis = msrs_pair[0]
    errs = []
    for q in (90, 50, 20, 8):
        y = jpeg.apply(vis.astype(np.float32), quality=q)
        assert np.all(y == np.rint(y)) and y.min() >= 0 and y.max() <= 255
        buf = io.BytesIO()
        Image.fromarray(vis).save(buf, "JPEG", quality=q)  # Pillow: RGB in, 4:2:0, islow, no optimisation
        buf.seek(0)
        with Image.open(buf) as im:
            ref = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(y, ref.astype(np.float32))
        errs.append(float(np.mean((y - vis) ** 2)))
    assert errs == sorted(errs)
    swapped = jpeg.compress(np.ascontiguousarray(vis[..., ::-1]), 50)[..., ::-1]  # the BGR/RGB slip differs
    assert not np.array_equal(swapped, jpeg.compress(vis, 50))


def test_jpeg_quantises_its_input_once_like_the_composition():
    x = np.array([[-3.0, 0.5, 1.5, 254.6, 300.0, 7.49]], np.float32).repeat(8, 0)
    y8 = jpeg.compress(np.array([[0, 0, 2, 255, 255, 7]], np.uint8).repeat(8, 0), 95)
    np.testing.assert_array_equal(jpeg.apply(x, quality=95), y8.astype(np.float32))
    assert "jpeg" in jpeg.codec().lower()


_PILLOW_NO_SIMD = """
import io, sys, numpy as np
from PIL import Image
q = int(sys.argv[1]); a = np.load(sys.argv[2])
buf = io.BytesIO(); Image.fromarray(a).save(buf, "JPEG", quality=q); buf.seek(0)
with Image.open(buf) as im:
    sys.stdout.write(np.asarray(im).tobytes().hex())
"""


def test_jpeg_bytes_equal_a_libjpeg_turbo_without_simd(msrs_pair, tmp_path):
    """OpenCV's bundled libjpeg-turbo ignores JSIMD_FORCENONE; Pillow's separately built one honours it: the atom's
    output equals Pillow's with every SIMD path off (and OpenCV's optimisations off in this check too)."""
    import cv2

    path = tmp_path / "vis.npy"
    np.save(path, msrs_pair[0])
    was = cv2.useOptimized()
    cv2.setUseOptimized(False)
    try:
        ours = {q: jpeg.compress(msrs_pair[0], q) for q in (10, 60)}
    finally:
        cv2.setUseOptimized(was)
    env = {**os.environ, "JSIMD_FORCENONE": "1"}
    for q, y in ours.items():
        out = subprocess.run([sys.executable, "-c", _PILLOW_NO_SIMD, str(q), str(path)], capture_output=True,
                             text=True, check=True, env=env)
        assert bytes.fromhex(out.stdout) == y.tobytes()


# --- IR ------------------------------------------------------------------------------------------------------------
def test_jpeg_alone_is_codec_dependent_and_the_docs_table_says_which():
    assert [s.name for s in SPECS if s.codec_dependent] == ["jpeg"]
    assert get("jpeg").codec is jpeg.codec and "jpeg" in get("jpeg").codec().lower()
    assert codec_libraries(NAMES) == {"jpeg": jpeg.codec()} and codec_libraries(["motion", "rain"]) == {}
    assert {s.name: s.param(p).type for s in SPECS for p in s.param_names if s.param(p).type is int} == {
        "motion": int, "rain": int, "jpeg": int}  # length, length, quality
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "degradations.md").read_text(encoding="utf-8")
    section = docs[docs.index("## 7. Atoms beyond v1"):]
    table = section[section.index("| atom | module |"):]
    table = table[:table.index("\n\n")]  # the atom table of section 7, whose last column is "bytes"
    assert table.splitlines()[0].split("|")[-2].strip() == "bytes"
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[-2].strip()
            for line in table.splitlines() if line.startswith("| `")}
    marked = {name for name in NAMES if rows[name] == "**codec-dependent**"}
    assert {name for name in NAMES if rows[name] == "portable"} | marked == set(NAMES)
    assert marked == {s.name for s in SPECS if s.codec_dependent}


UINT8_FAST = tuple(s.name for s in SPECS if s.apply_uint8 is not None)

#: edge tables per atom for the uint8 fast paths (beyond the defaults and the five severity levels)
_EDGE_TABLES = {
    "lowlight": [{"gain": 0.5, "gamma": 2.0, "shot": 0.0, "read": 0.0}, {"gain": 1.0, "gamma": 1.0, "shot": 100.0,
                                                                         "read": 100.0}],
    "overexposure": [{"gain": 16.0, "gamma": 0.05}, {"gain": 1.0, "gamma": 1.0}],
    "motion": [{"length": [1, 2, 3, 4], "angle": [-360.0, 360.0]}, {"length": [201], "angle": [0.0, 180.0]},
               {"length": 1, "angle": 45.0}],
    "rain": [{"density": 1.0, "length": 201, "angle": 33.0, "intensity": 255.0},
             {"density": 0.0, "length": 5, "angle": 0.0, "intensity": 80.0},
             {"density": 0.3, "length": [1, 2], "angle": [-360.0, 360.0], "intensity": [0.0, 255.0]},
             {"density": 0.3, "length": 3, "angle": 10.0, "intensity": 47.5},  # x + 47.5: ties, the block path
             {"density": 0.2, "length": 4, "angle": 80.0, "intensity": 0.25}],  # 2 x 0.25 = 0.5: a tie at k = 2
    "jpeg": [{"quality": [1, 2, 99, 100]}],
    "stripe_gain": [{"offset_std": 0.0, "gain_std": 0.0, "pixel_std": 0.0},
                    {"offset_std": 255.0, "gain_std": 1.0, "pixel_std": 255.0},  # far outside [0, 255]: the clip
                    {"offset_std": 0.5, "gain_std": 0.0, "pixel_std": 0.0}],
    "lowcontrast": [{"alpha": 0.0, "beta": -255.0}, {"alpha": 1.0, "beta": 255.0}, {"alpha": [0.0, 1.0],
                                                                                    "beta": [-255.0, 255.0]}],
}


def _uint8_images(modality: str, msrs_pair) -> list[np.ndarray]:
    vis, ir = msrs_pair
    rng = np.random.default_rng(5)
    gray = [ir[100:164, 200:297], rng.integers(0, 256, (37, 53), dtype=np.uint8), np.full((1, 1), 255, np.uint8),
            np.array([[0, 255, 128], [1, 254, 127]], np.uint8), ir]
    if modality == "ir":
        return gray
    return [vis, vis[7:70, 13:140], rng.integers(0, 256, (29, 41, 3), dtype=np.uint8), *gray[:4]]


def test_the_uint8_fast_paths_cover_the_atoms_that_gain_from_one():
    # ir_noise is an add of normals on the float32 image either way (docs, section 7 "Speed"); stripe_gain's uint8
    # path is its float path on a reused buffer with a two-pass rounding
    assert set(UINT8_FAST) == {"lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "stripe_gain"}


@pytest.mark.parametrize("name", UINT8_FAST)
def test_apply_uint8_gives_the_float_paths_bytes_with_the_same_draws(name, msrs_pair):
    """``apply_uint8(x)`` == ``quantize(apply(float32(x)))`` bit for bit, consuming the same words, on real, random,
    tiny and extreme images, for the default ranges, every severity level and edge tables."""
    from demmi_rf.degradations._arrays import quantize

    spec = get(name)
    tables = [spec.default_ranges, *({**spec.default_ranges, **lvl} for lvl in spec.severity),
              *_EDGE_TABLES[name]]
    case = 0
    for image in _uint8_images(spec.modality, msrs_pair):
        for table in tables:
            case += 1
            s1, s2 = stream(case), stream(case)
            p1 = spec.draw(s1, image.astype(np.float32), table, atom=name)
            p2 = spec.draw(s2, image, table, atom=name)
            assert p1 == p2
            want = quantize(spec.apply(image.astype(np.float32), s1, **p1))
            got = spec.apply_uint8(image, s2, **p2)
            assert got.dtype == np.uint8 and got.shape == image.shape, (name, image.shape, p1)
            assert np.array_equal(got, want), (name, image.shape, p1, int(np.count_nonzero(got != want)))
            assert s1.uniform() == s2.uniform()  # the same words were consumed
    assert case >= 4 * len(tables)


def test_degrade_of_an_atom_alone_equals_its_float_chain(msrs_record_pair):
    """degrade() takes the uint8 path for an atom alone in its chain and the float chain in a mixture; both give
    the float chain's bytes (the chain run here by hand with the composition's own generator)."""
    from demmi_rf.degradations._arrays import quantize
    from demmi_rf.degradations.compose import run_chain
    from demmi_rf.rng import generator
    from demmi_rf.settings import parse_setting

    vis, ir, pair_id = msrs_record_pair.vis, msrs_record_pair.ir, "msrs/00004N"
    for setting in (*UINT8_FAST, "motion+jpeg", "lowcontrast+ir_noise"):
        s = parse_setting(setting)
        got = degrade(vis, ir, s, SEED, pair_id=pair_id)
        for modality, image in (("vis", vis), ("ir", ir)):
            if not s.chain(modality):
                continue
            work, drawn = run_chain(image, s, modality, generator(SEED, pair_id, s.name, modality),
                                    {a: get(a).default_ranges for a in s.atoms})
            assert np.array_equal(getattr(got, modality), quantize(work)), (setting, modality)
            assert all(got.params[a] == drawn[a] for a in drawn)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (37, 53), (120, 160)])
def test_rains_whole_image_count_equals_the_line_sum(shape):
    rng = np.random.default_rng(sum(shape))
    mask = (rng.random(shape) < 0.3).astype(np.uint8)
    for length, angle in [(1, 0), (2, 45), (5, 90), (30, 100), (201, 77), (255, 13)]:
        cells = motion.line_cells(length, angle)
        want = motion.line_sum(mask, cells, out=mask.copy())
        assert np.array_equal(rain._count_sum(mask, cells), want), (shape, length, angle)


def test_rains_uint8_path_beyond_uint8_counts_and_on_empty_images():
    from demmi_rf.degradations._arrays import quantize

    image = np.random.default_rng(3).integers(0, 256, (40, 300, 3), dtype=np.uint8)
    p = dict(density=0.2, length=300, angle=0, intensity=3.0)  # counts up to 300 (> 255): float counts
    want = quantize(rain.apply(image.astype(np.float32), stream(9), **p))
    assert np.array_equal(rain.apply_uint8(image, stream(9), **p), want)
    assert rain._integer_steps(np.array([0.0, 47.3, 94.6], np.float32)).tolist() == [0, 47, 95]
    assert rain._integer_steps(np.array([0.0, 47.5], np.float32)) is None  # rint(x + 47.5) depends on x's parity
    empty = np.zeros((0, 5, 3), np.uint8)
    assert rain.apply_uint8(empty, stream(1), **p).shape == (0, 5, 3)


def test_motions_three_scalings_give_the_same_bytes_and_each_is_checked_per_length(monkeypatch, msrs_pair):
    from demmi_rf.degradations._arrays import quantize

    vis = msrs_pair[0][:90, :120]
    cases = [(n, a) for n in (1, 2, 3, 7, 15, 17) for a in (0, 30, 90)]
    calls = []
    kernel = motion._scale_kernel()
    if kernel is not None:  # count the compiled scaling's calls: used for the odd lengths with an integer form
        monkeypatch.setattr(motion, "_scale_kernel", lambda: lambda *a: (calls.append(a[3]), kernel(*a))[1])
    fast = {c: motion.blur_uint8(vis, *c) for c in cases}
    if kernel is not None:
        assert set(calls) == {21846, 9363, 4370}  # L = 3, 7, 15 (M = ceil(2**16 / L)); 1, 2, 17 have none
    monkeypatch.setattr(motion, "_scale_kernel", lambda: None)  # no kernel: OpenCV's conversion
    assert all(motion._opencv_scales_exactly(n) for n in (1, 2, 3, 7, 15, 17, 201))  # so the next used OpenCV
    assert all(np.array_equal(motion.blur_uint8(vis, *c), y) for c, y in fast.items())
    monkeypatch.setattr(motion, "_opencv_scales_exactly", lambda n: False)  # neither: numpy on the whole image
    assert motion._finisher(7) is None
    assert all(np.array_equal(motion.blur_uint8(vis, *c), y) for c, y in fast.items())
    long = motion.blur_uint8(vis[:20, :30], 300, 10)  # more than 257 cells: the float path, rounded
    assert np.array_equal(long, quantize(motion.apply(vis[:20, :30].astype(np.float32), length=300, angle=10)))
    s = np.arange(256 * 2, dtype=np.uint16).reshape(1, -1)  # sums of two cells
    assert motion.line_sum_uint16(np.array([[255, 255]], np.uint8), ((0, 0), (1, 0))).tolist() == [[510, 510]]
    with pytest.raises(ValueError, match="1..257 cells"):
        motion.line_sum_uint16(s.astype(np.uint8), ((0, 0),) * 258)


def test_motions_integer_scaling_equals_the_float_rounding_on_every_sum():
    """((S + b)·M) >> 16 (the compiled kernel's scaling) against rint(fl32(S)·fl32(1/L)) computed in float32 by
    numpy, for every S = 0..255·L of each length that has an integer form; which lengths have one."""
    kernel = compiled_or_skip(motion._scale_kernel)
    forms = {n: motion._integer_scale(n) for n in range(1, 40)}
    assert [n for n, f in forms.items() if f] == [3, 5, 7, 9, 11, 13, 15, 21, 29, 33]  # odd, not 17-19, 23-27
    assert forms[5] == (2, 13108) and motion._integer_scale(201) is None
    for n, form in [*forms.items(), (99, motion._integer_scale(99))]:
        if form is None:
            continue
        s = np.arange(255 * n + 1, dtype=np.uint16)
        want = np.rint(s.astype(np.float32) * np.float32(1.0 / n)).astype(np.uint8)
        got = np.empty(s.size, np.uint8)
        kernel(s, got, *form)
        assert np.array_equal(got, want), n
    for bad in [(np.zeros(4, np.uint16), np.zeros(3, np.uint8), 0, 1), (np.zeros(4, np.uint16), np.zeros(4, np.uint8),
                                                                         1 << 16, 1)]:
        with pytest.raises(ValueError, match="scale_u16"):
            kernel(*bad)


def test_motions_scaling_kernel_is_refused_when_it_differs_from_its_integer_twin(monkeypatch):
    real = compiled_or_skip(motion._scale_kernel)

    def rounds_up(src, dst, b, m):
        real(src, dst, b, m)
        dst[-1] ^= 1  # the last output off by one

    kernel_swapped_is_refused(monkeypatch, type("Off", (), {"scale_u16": staticmethod(rounds_up)}),
                              motion._scale_kernel)


def _direct_line_sum(x: np.ndarray, cells) -> np.ndarray:
    """The reference for the uint16 sums: int64, numpy's reflect pad (reflect-101), one cell at a time."""
    h, w = x.shape[:2]
    px, py = max(abs(dx) for dx, _ in cells), max(abs(dy) for _, dy in cells)
    pad = ((py, py), (px, px)) + ((0, 0),) * (x.ndim - 2)
    xp = np.pad(x.astype(np.int64), pad, mode="reflect")
    return sum(xp[py + dy : py + dy + h, px + dx : px + dx + w] for dx, dy in cells).reshape(h, -1)


@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (7, 5), (3, 4, 3), (31, 17, 2), (60, 80, 3)])
def test_motions_uint16_line_sum_with_shared_pair_sums_equals_the_direct_sum(shape):
    x = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    x[0, 0] = 255  # the largest sums too
    for length in (1, 2, 3, 4, 5, 6, 7, 9, 11, 15, 16, 25, 64, 201, 257):
        for angle in range(-180, 360, 23):
            cells = motion.line_cells(length, angle)
            got = motion.line_sum_uint16(x, cells)
            assert got.dtype == np.uint16 and np.array_equal(got, _direct_line_sum(x, cells)), (shape, length, angle)
    full = np.full((9, 8, 3), 255, np.uint8)  # 257 cells of 255: 65535, no wrap-around in any grouping
    assert (motion.line_sum_uint16(full, motion.line_cells(257, 0)) == 65535).all()


def test_motions_uint8_strips_equal_the_float_path_across_strip_borders(monkeypatch):
    from demmi_rf.degradations._arrays import quantize

    rng = np.random.default_rng(8)
    for strip_bytes in (1, 600, 1 << 12, 1 << 18):  # one row per strip (and fewer than the halo), a few, the default
        monkeypatch.setattr(motion, "_STRIP_BYTES", strip_bytes)
        for shape in [(1, 1), (5, 3), (37, 29, 3), (64, 20), (23, 50, 2)]:
            x = rng.integers(0, 256, shape, dtype=np.uint8)
            for length, angle in [(1, 0), (2, 90), (5, 0), (5, 45), (9, 30), (15, 100), (25, 80), (64, 7)]:
                want = quantize(motion.blur(x.astype(np.float32), length, angle))
                got = motion.blur_uint8(x, length, angle)
                assert got.shape == x.shape and np.array_equal(got, want), (strip_bytes, shape, length, angle)


def test_motions_pair_sharing_on_arbitrary_offsets_and_fewer_passes():
    import cv2

    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (40, 50), dtype=np.uint16)
    h, wc = 20, 25
    for trial in range(300):
        n = int(rng.integers(1, 40))
        step = [(int(rng.integers(0, 3)), int(rng.integers(-2, 3)))] * 2 + [(0, 1), (1, -1)]
        offsets, r, c = [], int(rng.integers(0, 8)), int(rng.integers(0, 10))
        for _ in range(n):  # walks with repeated (and sometimes reversed) steps, inside the base
            offsets.append((r, c))
            dr, dc = step[int(rng.integers(0, len(step)))] if rng.random() < 0.7 else (0, 0)
            if rng.random() < 0.2:
                dr, dc = -dr, -dc
            r, c = min(max(r + dr, 0), 20), min(max(c + dc, 0), 25)
        out = np.empty((h, wc), np.uint16)
        motion._sum_shifted(base, offsets, h, wc, out)
        want = sum(base[r : r + h, c : c + wc].astype(np.int64) for r, c in offsets)
        assert np.array_equal(out, want), (trial, offsets)
    calls = []
    real_add = cv2.add

    def counting_add(*args, **kwargs):
        calls.append(1)
        return real_add(*args, **kwargs)

    x = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    try:
        cv2.add = counting_add
        got = motion.line_sum_uint16(x, motion.line_cells(9, 0))
    finally:
        cv2.add = real_add
    assert np.array_equal(got, _direct_line_sum(x, motion.line_cells(9, 0)))
    assert len(calls) == 4  # D1, D2 = D1 + D1(+2), then D2 + D2(+4) + x(+8): not 8 adds


def test_rains_integer_drop_threshold_gives_the_uniforms_mask_at_every_boundary(monkeypatch):
    rng = np.random.default_rng(11)
    special = [0.0, -0.5, float("nan"), 1.0, 1.5, float("inf"), 2.0**-53, 2.0**-54, 5e-324, 1 - 2.0**-53,
               1 - 2.0**-54, 0.5, 0.002, 0.006, 0.0005, 0.012, 1 / 3]
    edges = [0, 1, 2**11 - 1, 2**11, 2**63, 2**64 - 1, (2**53 - 1) << 11]
    for rho in special + list(rng.random(400)) + list(rng.random(400) * 0.02):
        t = rain.drop_threshold(rho)
        assert 0 <= t <= 2**64
        near = [t + d for d in range(-2050, 2051)] if rho in special else [t + d for d in (-2049, -2048, -1, 0, 1)]
        words = [v for v in edges + near if 0 <= v < 2**64] + list(rng.integers(0, 2**64, 500, dtype=np.uint64))
        w = np.array(words, np.uint64)
        as_uniform = ((w >> np.uint64(11)).astype(np.float64) * 2.0**-53) < rho  # Stream.uniforms' u < rho
        assert np.array_equal(as_uniform, w < t if t < 2**64 else np.ones(len(w), bool)), rho
    from demmi_rf import rng as rng_module

    for use_kernel in (True, False):  # the compiled PCG64 words and numpy's blocks of random_raw
        if not use_kernel:
            monkeypatch.setattr(rng_module, "_pcg_kernel", lambda: None)
        for rho in (0.0, 0.004, 1.0, float("nan")):  # the same mask and words consumed as uniforms() < rho
            a, b = stream(3), stream(3)
            n = 2 * rng_module._BELOW_BLOCK + 123  # across the numpy path's block boundaries
            assert np.array_equal(rain._drops(a, n, rho), b.uniforms(n) < rho), rho
            assert a.uniform() == b.uniform()


def test_quantize_into_uint8_is_quantize_on_ties_neighbours_and_out_of_range_values(monkeypatch):
    from demmi_rf.degradations import _arrays

    k = np.arange(-300, 600, dtype=np.float32)
    half = np.concatenate([k, k + np.float32(0.5)])
    values = np.concatenate([half, np.nextafter(half, np.float32(-1e9)), np.nextafter(half, np.float32(1e9)),
                             np.array([-0.0, 1e-45, -1e-45, 3e38, -3e38, 254.5, 255.5, -0.5], np.float32),
                             np.random.default_rng(2).normal(128, 200, 5000).astype(np.float32)])
    assert _arrays._opencv_rounds_like_rint()  # so the OpenCV conversion is the one checked here
    for shape in [(values.size,), (values.size // 4, 4), (values.size // 12, 4, 3)]:
        v = values[: math.prod(shape)].reshape(shape)
        got = _arrays.quantize_into_uint8(v.copy())
        assert got.shape == shape and np.array_equal(got, _arrays.quantize(v.copy())), shape
    monkeypatch.setattr(_arrays, "_opencv_rounds_like_rint", lambda: False)  # numpy's rint + cast
    assert np.array_equal(_arrays.quantize_into_uint8(values.copy()), _arrays.quantize(values.copy()))
    assert _arrays.quantize_into_uint8(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_lowcontrast_is_the_linear_map_and_scales_the_std(msrs_pair):
    x = real_ir(msrs_pair)
    y = ir_contrast.apply(x, alpha=0.5, beta=90.0)
    assert y.tobytes() == ((x * np.float32(0.5)) + np.float32(90.0)).tobytes()
    assert abs(float(y.std()) / float(x.std()) - 0.5) < 1e-5


def test_ir_noise_has_std_sigma_and_is_the_streams_normals():
    x = np.full((300, 400), 100.0, np.float32)
    y = ir_noise.apply(x, stream(6), sigma=12.0)
    res = (y - x).astype(np.float64)
    assert abs(res.mean()) < 4 * 12 / math.sqrt(res.size) and abs(res.std() / 12 - 1) < 0.01
    assert y.tobytes() == (x + ziggurat.normal(np.random.default_rng(6), x.shape, 12.0)).tobytes()


def test_stripe_gain_columns_offsets_gains_and_pixel_term():
    h, w = 2000, 300
    lo, hi = np.full((h, w), 50.0, np.float32), np.full((h, w), 200.0, np.float32)
    p = {"offset_std": 6.0, "gain_std": 0.05, "pixel_std": 4.0}
    y_lo = ir_stripe_gain.apply(lo, stream(8), **p)
    y_hi = ir_stripe_gain.apply(hi, stream(8), **p)
    # same stream: the difference of the column means is the gain term, (200 - 50) g_c
    g = (y_hi - y_lo).mean(axis=0) / 150.0
    assert abs(g.std() / 0.05 - 1) < 0.15
    o = y_lo.mean(axis=0) - 50.0 - 50.0 * g
    assert abs(o.std() / 6.0 - 1) < 0.15
    # within a column: the per-pixel Gaussian term of std pixel_std
    assert abs(float((y_lo - y_lo.mean(axis=0)).std()) / 4.0 - 1) < 0.02
    # the exact sequence: offsets, gains, then pixel normals from one stream
    rng = np.random.default_rng(8)
    off, gain = ziggurat.normal(rng, w, 6.0), ziggurat.normal(rng, w, 0.05)
    ref = lo + off[None, :]
    ref += lo * gain[None, :]
    ref += ziggurat.normal(rng, (h, w), 4.0)
    assert y_lo.tobytes() == ref.tobytes()


# --- pinned bytes (also with SIMD off) ----------------------------------------------------------------------------
# (setting) -> sha256 of vis.tobytes() + ir.tobytes() of degrade() on msrs/00004N with the v1 seed and the atoms'
# default ranges. A change of these bits is a deliberate, versioned event (see tests/test_pinned_bytes.py).
PINS: dict[str, str] = {
    "lowlight": "24132084281a3cb8a006bbf10ca6b36bdb4babbbb9279c8e52c89fb0059e57b0",
    "overexposure": "7734acb6a61e1bd0ed9dc7e15095003ccdb3b3c077084fd00f39c89e1fa25f4e",
    "motion": "2a11704091e3b937df03aa1591b60d0d3cab7a781a96b74f30fdba6286617cab",
    "rain": "1a6b544b510c544ae6a92456e977ae3882c4bd9bc968d8c725754cd5853063b9",
    "jpeg": "56db5cef35d8d1a5df7bcddcee99fdf75756d9bf36ac990500d9d1b56e27d340",
    "lowcontrast": "1dbdbea80c78f74753fb551105f5776be26acfd45ec9f5d44621d6055a2ebe0e",
    "ir_noise": "d4866a348d1961230d9c9b387dfb43703f72b3011244651bc4e1a771e0553e4a",
    "stripe_gain": "2719b409277c4d7bc479e5bc637cde0b117d17c50a3990d70caa7ee60fb6e342",
    "jpeg+lowlight+motion+rain": "ddb9b2e019ac7714687ebbb674170094fbb5332606bc73026df260df03b91046",
    "noise25+motion+rain": "43802fcc51206e4eec50f01c1af2b10c51b15782b5c39182ff18aa224a29b2c9",
    "ir_noise+stripe_gain+lowcontrast": "eb932102879c385cab796f3e754e23c27d6a471a08f76186c8c4f2b698fc6428",
}

_COMPUTE = """
import hashlib, json, sys
from demmi_rf import degrade
from demmi_rf.degradations import extended  # registers the atoms
from demmi_rf.samples import sample_root
from demmi_rf.sources import discover, read_pair
settings = json.loads(sys.argv[1])
rec = {r.pair_id: r for r in discover(sample_root()).pairs}["msrs/00004N"]
p = read_pair(rec)
out = [hashlib.sha256(b"".join(a.tobytes() for a in (o.vis, o.ir))).hexdigest()
       for o in (degrade(p.vis, p.ir, s, SEED, pair_id="msrs/00004N") for s in settings)]
print(json.dumps(out))
""".replace("SEED", str(SEED))


@pytest.fixture(scope="module")
def msrs_record_pair():
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    rec = {r.pair_id: r for r in discover(sample_root()).pairs}["msrs/00004N"]
    return read_pair(rec)


@pytest.mark.parametrize(("setting", "digest"), list(PINS.items()), ids=list(PINS))
def test_degrade_bits_are_pinned(setting, digest, msrs_record_pair):
    p = msrs_record_pair
    o = degrade(p.vis, p.ir, setting, SEED, pair_id="msrs/00004N")
    assert hashlib.sha256(o.vis.tobytes() + o.ir.tobytes()).hexdigest() == digest


def test_the_pins_hold_with_numpy_simd_and_opencv_optimisations_off():
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    prelude = "import cv2\ncv2.setUseOptimized(False)\ncv2.setNumThreads(1)\nassert not cv2.useOptimized()\n"
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(dispatched), "DEMMI_RF_NUMPY_ZIGGURAT": "1"}
    out = subprocess.run([sys.executable, "-c", prelude + _COMPUTE, json.dumps(list(PINS))], capture_output=True,
                         text=True, check=True, env=env)
    assert json.loads(out.stdout) == list(PINS.values())


# --- through the registry alone: recipes, severity tables as ranges, albumentations ---------------------------------
def test_recipe_validation_and_severity_tables_drive_degrade(msrs_record_pair):
    from demmi_rf.degradations import check_ranges, range_problems

    p = msrs_record_pair
    table = {name: {**get(name).default_ranges, **get(name).severity[4]} for name in NAMES}
    check_ranges(table, used=list(NAMES))
    bad = {**table, "rain": {**table["rain"], "density": [0.5, 2.0]}}
    assert any("degradations.rain.density" in m for m in range_problems(bad, used=["rain"]))
    mild = {n: {**get(n).default_ranges, **get(n).severity[0]} for n in NAMES}
    harsh = table
    for setting in ("motion", "rain", "jpeg", "lowlight"):
        a = degrade(p.vis, p.ir, setting, SEED, pair_id="msrs/00004N", ranges=mild)
        b = degrade(p.vis, p.ir, setting, SEED, pair_id="msrs/00004N", ranges=harsh)
        da = np.abs(a.vis.astype(np.float64) - p.vis).mean()
        db = np.abs(b.vis.astype(np.float64) - p.vis).mean()
        assert da < db, (setting, da, db)


@pytest.mark.parametrize("name", ["lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "ir_noise",
                                  "stripe_gain"])
def test_albumentations_transform_is_derived_from_the_registry(name, msrs_pair):
    pytest.importorskip("albumentations")
    import albumentations as A

    from demmi_rf.albu import DemmiAtom

    image = msrs_pair[0] if get(name).modality == "vis" else msrs_pair[1]
    outs = [A.Compose([DemmiAtom(name)], seed=3)(image=image)["image"] for _ in range(2)]
    assert outs[0].dtype == np.uint8 and outs[0].shape == image.shape
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], image)
