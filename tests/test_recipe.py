"""Recipes: shipped v1 recipe, plain-data loading (TOML and JSON), validation errors, hashing, overrides."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest

from demmi_rf.errors import RecipeError
from demmi_rf.recipe import (
    load_recipe,
    parse_settings_option,
    recipe_hash,
    shipped_recipes,
    validate_recipe,
)

SPEC_SETTINGS = [  # benchmark spec section 3, in the v1 recipe's order
    "clean", "noise15", "noise25", "noise50", "haze", "defocus", "stripe",
    "defocus+haze", "noise50+haze+stripe", "noise15+defocus", "noise15+haze", "noise25+defocus",
    "noise25+haze", "noise50+defocus", "noise50+haze", "noise50+defocus+haze+stripe",
]


@pytest.fixture()
def v1_data() -> dict:
    return load_recipe("demmi-rf-v1").to_json()


def test_v1_recipe_is_shipped_and_complete():
    assert "demmi-rf-v1" in shipped_recipes()
    files = {p.name for p in resources.files("demmi_manifests").iterdir()}
    assert "demmi-rf-v1.toml" in files
    r = load_recipe("demmi-rf-v1")
    assert list(r.settings) == SPEC_SETTINGS
    assert r.spec_version == "1" and 0 < r.test_fraction < 1 and r.pairs_per_shard >= 1
    assert r.degradations["haze"]["beta"] == [1.0, 2.0]  # spec section 2: beta ~ U(1, 2)
    assert r.degradations["defocus"]["radius"] == [3, 4, 5, 6]
    assert r.degradations["stripe"]["offset_std"] == [3.0, 8.0]
    assert {r.degradations[f"noise{s}"]["sigma"] for s in (15, 25, 50)} == {15.0, 25.0, 50.0}


def test_hash_is_sha256_of_canonical_json(v1_data):
    r = load_recipe("demmi-rf-v1")
    canon = json.dumps(v1_data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert r.hash == hashlib.sha256(canon).hexdigest() == recipe_hash(v1_data)


def test_json_copy_of_toml_recipe_has_same_hash(tmp_path, v1_data):
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(v1_data, indent=3))
    assert load_recipe(path).hash == load_recipe("demmi-rf-v1").hash
    v1_data["seed"] += 1
    path.write_text(json.dumps(v1_data))
    assert load_recipe(path).hash != load_recipe("demmi-rf-v1").hash


def test_degradations_property_is_a_copy():
    r = load_recipe()
    d = r.degradations
    d["haze"]["beta"] = [9.0, 9.0]
    assert r.degradations["haze"]["beta"] == [1.0, 2.0]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d.pop("seed"), "missing key 'seed'"),
        (lambda d: d.update(seed="7"), "'seed' must be int"),
        (lambda d: d.update(test_fracton=0.3), "unknown key 'test_fracton'"),
        (lambda d: d.update(test_fraction=1.5), "'test_fraction' must be in [0, 1]"),
        (lambda d: d.update(pairs_per_shard=0), "'pairs_per_shard' must be >= 1"),
        (lambda d: d.update(settings=[]), "'settings' is empty"),
        (lambda d: d.update(settings=["clean", "fog"]), "unknown atom 'fog'"),
        (lambda d: d.update(settings=["haze+noise50"]), "write 'noise50+haze'"),
        (lambda d: d.update(settings=["haze", "haze"]), "listed twice"),
        (lambda d: d.update(settings=["noise15+noise50"]), "at most one noise level"),
        (lambda d: d["degradations"].update(blur={"r": 1}), "unknown atom 'blur'"),
        (lambda d: d["degradations"]["haze"].update(beta=[2.0, 1.0]), "bounds reversed"),
        (lambda d: d["degradations"]["haze"].update(beta="high"), "degradations.haze.beta must be a number"),
        (lambda d: d["degradations"]["defocus"].update(radius=[-1]), "degradations.defocus.radius"),
        (lambda d: d["degradations"].pop("stripe"), "no parameters for atom 'stripe'"),
        # non-finite numbers (Python's JSON and TOML both accept them) are refused at load time, by field
        (lambda d: d["degradations"]["noise50"].update(sigma=float("inf")),
         "degradations.noise50.sigma must be a finite number, got inf"),
        (lambda d: d["degradations"]["stripe"].update(offset_std=[3.0, float("inf")]),
         "degradations.stripe.offset_std[1] must be a finite number, got inf"),
        (lambda d: d["degradations"]["haze"].update(beta=[float("nan"), 2.0]),
         "degradations.haze.beta[0] must be a finite number, got nan"),
        (lambda d: d.update(test_fraction=float("nan")), "test_fraction must be a finite number"),
        (lambda d: d["degradations"]["haze"].update(t_min=10**400), "degradations.haze.t_min: 1000"),
        # seeds are stored as signed 64-bit integers: larger ones are refused up front
        (lambda d: d.update(seed=2**63), "'seed' must be in [0, 2**63 - 1]"),
        (lambda d: d.update(seed=2**64 + 5), "'seed' must be in [0, 2**63 - 1]"),
        (lambda d: d.update(description={"a": [[[[[[[[[["deep"]]]]]]]]]]}), "nested deeper than 8 levels"),
        (lambda d: d.update(base={"name": "x", "hash": {"deep": []}}), "'base' must be a table of two strings"),
    ],
)
def test_invalid_recipes_are_refused_with_clear_errors(tmp_path, v1_data, edit, expected):
    edit(v1_data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(v1_data))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_absurdly_nested_recipe_files_give_a_recipe_error_not_a_recursion_error(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    depth = 200_000
    path.write_text("[" * depth + "]" * depth if suffix == ".json" else "x = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(path) in str(err.value) and "nested too deeply" in str(err.value)


def test_recipe_paths_that_are_not_small_regular_files_are_refused(tmp_path):
    import os

    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(tmp_path)  # a folder
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "r.toml"
        os.mkfifo(fifo)
        with pytest.raises(RecipeError, match="not a regular file"):  # reading it would block for ever
            load_recipe(fifo)
    big = tmp_path / "big.json"
    big.write_text('{"description": "' + "x" * (1 << 20) + '"}')
    with pytest.raises(RecipeError, match="too large to be a recipe"):
        load_recipe(big)


def test_largest_seed_builds_a_valid_recipe_and_a_larger_override_is_refused():
    top = load_recipe().with_overrides(seed=2**63 - 1)
    assert top.seed == 2**63 - 1
    with pytest.raises(RecipeError, match=r"seed must be a non-negative integer <= 2\*\*63 - 1"):
        load_recipe().with_overrides(seed=2**63)


def test_every_problem_is_reported_at_once(v1_data):
    v1_data["bogus"] = 1
    v1_data["degradations"]["haze"]["beta"] = [2.0, 1.0]
    with pytest.raises(RecipeError) as err:
        validate_recipe(v1_data)
    assert "bogus" in str(err.value) and "bounds reversed" in str(err.value)


def test_unknown_name_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'nope'.*demmi-rf-v1"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    code = tmp_path / "code.toml"
    code.write_text('name = "__import__(\'os\').system(\'false\')"\n')
    with pytest.raises(RecipeError, match="missing key"):  # read as data, never evaluated
        load_recipe(code)


def test_seed_override_derives_a_new_recipe():
    base = load_recipe()
    r = base.with_overrides(seed=7)
    assert r.seed == 7 and r.settings == base.settings
    assert r.hash != base.hash
    assert r.data["base"] == {"name": base.name, "hash": base.hash}
    assert base.with_overrides() is base
    assert base.with_overrides(seed=base.seed) is base
    with pytest.raises(RecipeError, match="non-negative"):
        base.with_overrides(seed=-1)


def test_settings_narrowing_is_canonical_and_keeps_recipe_order():
    base = load_recipe()
    a = base.with_overrides(settings=["stripe", "haze+noise50", "clean"])
    b = base.with_overrides(settings=["clean", "noise50+haze", "stripe", "stripe"])
    assert a.settings == ("clean", "stripe", "noise50+haze")
    assert a.hash == b.hash != base.hash
    assert a.degradations == base.degradations


def test_narrowing_to_a_setting_outside_the_recipe_lists_the_recipe(tmp_path, v1_data):
    v1_data["settings"] = ["clean", "haze"]
    del v1_data["degradations"]["stripe"]  # an ad-hoc setting of the recipe's atoms is accepted (issue 14)
    path = tmp_path / "small.json"
    path.write_text(json.dumps(v1_data))
    with pytest.raises(RecipeError) as err:
        load_recipe(path).with_overrides(settings=["stripe"])
    assert "stripe" in str(err.value) and "clean, haze" in str(err.value)


def test_degradations_option_parsing():
    assert parse_settings_option("haze, stripe,haze+noise50") == ["haze", "stripe", "noise50+haze"]
    with pytest.raises(RecipeError, match="at least one"):
        parse_settings_option(" , ")
    with pytest.raises(RecipeError, match="unknown atom 'smoke'"):
        parse_settings_option("haze,smoke")
