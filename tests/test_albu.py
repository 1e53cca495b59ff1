"""The albumentations transforms: same atoms, albumentations' seeding, complete applied parameters."""

from __future__ import annotations

import warnings

import albumentations as A  # the [albu] extra, part of [all] that CI installs
import numpy as np
import pytest

from demmi_rf.albu import DemmiDefocus, DemmiHaze, DemmiNoise, DemmiSetting, DemmiStripe, from_recipe
from demmi_rf.degradations._arrays import quantize
from demmi_rf.errors import RecipeError, SettingError


def _transforms():
    return [
        DemmiNoise(sigma=25),
        DemmiNoise(sigma=(10, 30)),
        DemmiHaze(),
        DemmiDefocus(),
        DemmiStripe(),
        DemmiSetting("noise50+defocus+haze"),
    ]


@pytest.fixture(scope="module")
def vis(msrs_pair):
    return msrs_pair[0][:240, :320].copy()


def run(transform, image, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return A.Compose([transform], seed=seed, save_applied_params=True)(image=image)


@pytest.mark.parametrize("index", range(6))
def test_same_compose_seed_reproduces_and_other_seeds_differ(vis, index):
    a = run(_transforms()[index], vis, 42)["image"]
    b = run(_transforms()[index], vis, 42)["image"]
    c = run(_transforms()[index], vis, 43)["image"]
    assert a.dtype == np.uint8 and a.shape == vis.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, vis)


def test_successive_calls_of_one_compose_differ_but_the_sequence_repeats(vis):
    def sequence():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aug = A.Compose([DemmiHaze(), DemmiNoise(sigma=15)], seed=7)
        return [aug(image=vis)["image"] for _ in range(3)]

    first, second = sequence(), sequence()
    assert not np.array_equal(first[0], first[1])
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("index", range(6))
def test_output_equals_the_atom_functions_with_the_applied_params(vis, index):
    transform = _transforms()[index]
    image = vis if index != 4 else vis[..., 0].copy()
    out = run(transform, image, 5)
    (name, applied), = out["applied_transforms"]
    assert name == type(transform).__name__
    rng = np.random.default_rng(applied["rng_seed"]) if applied["rng_seed"] is not None else None
    work = image.astype(np.float32)
    for (atom, _), params in zip(transform._chain, applied["atom_params"]):
        work = atom.apply(work, rng, **params)
    np.testing.assert_array_equal(out["image"], quantize(work))


def test_haze_params_follow_the_recipe_and_a_is_the_image_mean(vis):
    applied = run(DemmiHaze(), vis, 1)["applied_transforms"][0][1]["atom_params"][0]
    assert 1.0 <= applied["beta"] <= 2.0 and applied["t_min"] == 0.05
    assert applied["A"] == pytest.approx(vis.mean())
    fixed = run(DemmiHaze(beta=1.5), vis, 1)["applied_transforms"][0][1]["atom_params"][0]
    assert fixed["beta"] == 1.5


def test_setting_chain_is_haze_defocus_noise(vis):
    t = DemmiSetting("haze+noise50+defocus")
    assert [a.name for a, _ in t._chain] == ["haze", "defocus", "noise50"]
    assert [a.name for a, _ in DemmiSetting("noise15+stripe", modality="ir")._chain] == ["stripe"]
    with pytest.raises(ValueError, match="changes nothing"):
        DemmiSetting("stripe", modality="vis")
    with pytest.raises(SettingError):
        DemmiSetting("noise15+noise25")


def test_float_images_use_the_zero_one_convention(vis):
    f = vis.astype(np.float32) / 255
    out = run(DemmiNoise(sigma=25), f, 3)
    assert out["image"].dtype == np.float32
    assert 0.0 <= out["image"].min() and out["image"].max() <= 1.0
    res = (out["image"] - f)[(f > 0.3) & (f < 0.7)]
    assert abs(res.std() * 255 - 25) < 1.0


def test_gray_images_and_batches(vis):
    g = vis[..., 1].copy()
    assert run(DemmiDefocus(), g, 0)["image"].shape == g.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = A.Compose([DemmiNoise(sigma=15)], seed=0)(images=np.stack([vis, vis]))["images"]
    assert batch.shape == (2, *vis.shape)


def test_stripe_columns_and_from_recipe():
    ir = np.full((64, 256), 120, np.uint8)
    out = run(DemmiStripe(), ir, 9)["image"].astype(np.int16) - 120
    assert (out == out[0]).all() and out[0].std() > 1
    assert from_recipe("noise50").sigma == 50.0
    assert isinstance(from_recipe("haze"), DemmiHaze) and isinstance(from_recipe("stripe"), DemmiStripe)


def test_bad_ranges_fail_at_construction():
    with pytest.raises(RecipeError, match="degradations.defocus.radius"):
        DemmiDefocus(radius=[2.5])
    with pytest.raises(RecipeError, match="low > high"):
        DemmiHaze(beta=(2.0, 1.0))


def test_serialisation_round_trip(vis):
    aug = A.Compose([DemmiHaze(beta=(1.0, 1.5)), DemmiNoise(sigma=15)], seed=3)
    back = A.from_dict(A.to_dict(aug))
    back.set_random_seed(3)
    aug.set_random_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(aug(image=vis)["image"], back(image=vis)["image"])


@pytest.mark.parametrize("atom, named", [
    ("haze", lambda: DemmiHaze()), ("defocus", lambda: DemmiDefocus()), ("stripe", lambda: DemmiStripe()),
    ("noise25", lambda: DemmiNoise(sigma=25.0)),
])
def test_the_generic_registry_transform_equals_the_named_v1_class(vis, atom, named):
    from demmi_rf.albu import DemmiAtom  # noqa: PLC0415

    image = vis if atom != "stripe" else np.ascontiguousarray(vis[:, :, 0])
    a = run(DemmiAtom(atom), image, 5)
    b = run(named(), image, 5)
    np.testing.assert_array_equal(a["image"], b["image"])
    with pytest.raises(RecipeError, match="no parameter"):
        DemmiAtom(atom, bogus=1.0)


def test_generic_transform_round_trips_through_albumentations_serialization(vis):
    from demmi_rf.albu import DemmiAtom  # noqa: PLC0415

    t = DemmiAtom("haze", beta=(1.2, 1.4))
    again = A.from_dict(A.to_dict(A.Compose([t], seed=1)))
    assert isinstance(again.transforms[0], DemmiAtom)
    assert again.transforms[0].ranges == {"beta": [1.2, 1.4]} or again.transforms[0].ranges == {"beta": (1.2, 1.4)}
