"""Severity levels (issue 14 section 3): the ``<atom>.s<k>`` syntax of the one setting parser, the ladders of every
shipped atom, level ranges laid over the recipe's, ad-hoc settings in ``demmi build --degradations``, and the
three shipped recipes beyond v1 building from the embedded samples."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from demmi_rf import degrade
from demmi_rf.degradations import get
from demmi_rf.degradations.registry import SHIPPED_LAZY, AtomSpec, Param, register_atom, unregister_atom
from demmi_rf.errors import RecipeError, SettingError
from demmi_rf.recipe import load_recipe, narrow_settings, shipped_recipes
from demmi_rf.settings import Setting, parse_setting, setting_atoms

from .conftest import run_cli

V1_ATOMS = ("noise15", "noise25", "noise50", "defocus", "haze", "stripe")
SHIPPED = (*V1_ATOMS, *SHIPPED_LAZY)


# --- the syntax ----------------------------------------------------------------------------------------------------
def test_a_level_is_part_of_the_canonical_name_not_of_the_atom():
    s = parse_setting("stripe.s2 + noise50.s5+haze")
    assert s.name == "noise50.s5+haze+stripe.s2"
    assert s.atoms == ("noise50", "haze", "stripe") and s.levels == (5, 0, 2)
    assert setting_atoms("haze.s3+noise50") == ("noise50", "haze")  # labels, cascade: plain atoms
    assert s.level("stripe") == 2 and s.level("haze") == 0 and s.has_levels
    assert parse_setting("haze.s3") == Setting(("haze",), (3,)) == Setting(("haze.s3",))
    assert parse_setting(["stripe.s1", "haze.s4"]).name == "haze.s4+stripe.s1"
    # no level anywhere: the v1 names and objects are unchanged
    v1 = parse_setting("noise50+haze+stripe")
    assert v1.name == "noise50+haze+stripe" and v1.levels == (0, 0, 0) and not v1.has_levels
    assert Setting(("haze",)) == parse_setting("haze")


@pytest.mark.parametrize("bad, message", [
    ("haze.s6", "severity levels 1-5, not 6"),
    ("haze.s0", "malformed severity level"),
    ("haze.s03", "malformed severity level"),
    ("haze.s", "malformed severity level"),
    ("haze.sx", "malformed severity level"),
    ("haze.s\u0663", "malformed severity level"),  # a non-ASCII digit
    ("haze.s3+haze", "given twice"),
    ("haze.s3+haze.s4", "given twice"),
    ("noise15.s1+noise50.s2", "at most one noise level"),
    ("hazy.s3", "unknown atom 'hazy'"),
    ("clean.s1", "'clean' has no severity level"),
])
def test_malformed_levels_are_refused_with_the_reason(bad, message):
    with pytest.raises(SettingError, match=message):
        parse_setting(bad)


def test_an_atom_without_a_ladder_refuses_a_level():
    spec = register_atom(AtomSpec(
        name="dim_noladder", family="dim_noladder", modality="vis", stage=27,
        params=(Param("k", "fixed", lo=0.0, hi=1.0, default=0.5),),
        draw=lambda rng, image, ranges, atom="dim_noladder": {"k": float(ranges["k"])},
        apply=lambda image, rng, inplace=False, k=0.5: np.asarray(image, np.float32) * np.float32(k),
        random_apply=False))
    try:
        assert parse_setting("dim_noladder").name == "dim_noladder"
        with pytest.raises(SettingError, match="has no severity ladder"):
            parse_setting("dim_noladder.s1")
    finally:
        unregister_atom(spec.name)


# --- the ladders ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("atom", SHIPPED)
def test_every_shipped_atom_has_five_valid_levels(atom):
    spec = get(atom)
    assert len(spec.severity) == 5
    for level in spec.severity:
        table = {**spec.default_ranges, **level}
        assert spec.range_problems(table) == []


def _low(v):
    return min(v) if isinstance(v, (list, tuple)) else v


def _high(v):
    return max(v) if isinstance(v, (list, tuple)) else v


@pytest.mark.parametrize("atom, param", [("noise50", "sigma"), ("haze", "beta"), ("defocus", "radius"),
                                         ("stripe", "offset_std")])
def test_v1_ladders_grow_with_the_level_without_overlap(atom, param):
    ladder = [level[param] for level in get(atom).severity]
    for mild, strong in zip(ladder, ladder[1:]):
        assert _high(mild) <= _low(strong) and _low(mild) < _low(strong)


def test_v1_noise_ladder_holds_the_papers_three_sigmas_and_is_shared():
    assert [lv["sigma"] for lv in get("noise50").severity] == [10.0, 15.0, 25.0, 35.0, 50.0]
    assert get("noise15").severity == get("noise25").severity == get("noise50").severity


# --- the draws ----------------------------------------------------------------------------------------------------
def test_a_level_draws_from_its_ranges_over_the_recipes_table(msrs_pair):
    vis, ir = msrs_pair
    table = load_recipe("demmi-rf-v1").degradations
    for k in range(1, 6):
        lo, hi = get("haze").severity[k - 1]["beta"]
        out = degrade(vis, ir, f"haze.s{k}", 7, pair_id="msrs/00004N", ranges=table)
        assert lo <= out.params["haze"]["beta"] <= hi
        assert out.params["haze"]["t_min"] == 0.05  # not set by the level: the recipe's
        assert out.setting == f"haze.s{k}"
    out = degrade(vis, ir, "noise50.s2+stripe.s5", 7, pair_id="msrs/00004N", ranges=table)
    assert out.params["noise50"]["sigma"] == 15.0
    assert 14.0 <= out.params["stripe"]["s"] <= 25.0
    # a level is another setting (its own generator key) and is deterministic
    again = degrade(vis, ir, "stripe.s5+noise50.s2", 7, pair_id="msrs/00004N", ranges=table)
    assert np.array_equal(again.vis, out.vis) and np.array_equal(again.ir, out.ir)
    plain = degrade(vis, ir, "noise50", 7, pair_id="msrs/00004N", ranges=table)
    assert not np.array_equal(plain.vis, degrade(vis, ir, "noise50.s5", 7, pair_id="msrs/00004N",
                                                 ranges=table).vis)


def test_atom_ranges_needs_the_recipes_table():
    with pytest.raises(RecipeError, match=r"no parameter ranges for atom 'lowlight'"):
        parse_setting("lowlight.s2").atom_ranges("lowlight", load_recipe("demmi-rf-v1").degradations)


def test_the_albumentations_setting_and_the_cascade_use_the_level(msrs_pair):
    pytest.importorskip("albumentations")
    from demmi_rf.albu import DemmiSetting
    from demmi_rf.baselines.run import _setting_ranges

    t = DemmiSetting("haze.s5", recipe="demmi-rf-v1")
    assert t._chain[0][1]["beta"] == [2.0, 3.0] and t._chain[0][1]["t_min"] == 0.05
    table = load_recipe("demmi-rf-v1").degradations
    assert _setting_ranges("noise50.s2+haze", table)["noise50"] == {"sigma": 15.0}
    assert _setting_ranges("noise50+haze", table) is table


# --- recipes and --degradations -----------------------------------------------------------------------------------
def test_ad_hoc_settings_of_the_recipes_atoms_are_accepted_in_a_fixed_order():
    r = load_recipe("demmi-rf-v1")
    assert narrow_settings(r, ["stripe+haze", "noise50.s4+haze.s2", "clean", "haze"]) == \
        ["clean", "haze", "haze+stripe", "noise50.s4+haze.s2"]
    derived = r.with_overrides(settings=["haze+stripe", "clean"])
    assert derived.settings == ("clean", "haze+stripe") and derived.data["base"]["hash"] == r.hash
    with pytest.raises(RecipeError, match=r"uses atom\(s\) lowlight without a \[degradations.<atom>\] table"):
        narrow_settings(r, ["lowlight+haze"])


@pytest.fixture(scope="module")
def one_pair(tmp_path_factory, samples_dir):
    src = tmp_path_factory.mktemp("sev") / "src"
    for rel in ("TNO/ir/07.png", "TNO/vi/07.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples_dir / rel, src / rel)
    return src / "TNO"


def test_demmi_build_degradations_builds_ad_hoc_mixtures_and_levels(one_pair, tmp_path):
    from demmi_rf.store import open_dataset

    out = tmp_path / "ds"
    run_cli(["build", "--source", str(one_pair), "--out", str(out),
             "--degradations", "stripe+haze,haze.s3,noise50.s1+stripe.s5", "--workers", "1", "--no-progress"])
    with open_dataset(out) as ds:
        assert ds.settings == ("haze+stripe", "haze.s3", "noise50.s1+stripe.s5")  # ad hoc: by name
        rows = ds.samples()
        assert sorted(rows["setting"]) == sorted(ds.settings)


@pytest.mark.parametrize("recipe", ["ems-like", "controlfusion-like", "demmi-rf-c"])
def test_the_new_recipes_build_from_the_embedded_samples(recipe, one_pair, tmp_path):
    from demmi_rf.builder import build_dataset
    from demmi_rf.store import open_dataset

    assert recipe in shipped_recipes()
    r = load_recipe(recipe)
    build_dataset(tmp_path / "ds", [one_pair], recipe=recipe, workers=1)
    with open_dataset(tmp_path / "ds") as ds:
        assert ds.settings == r.settings
        rows = ds.samples()
        assert len(rows) == len(r.settings)  # one pair, every setting
        sample = rows["sample_id"][1]
        arrays = ds.read(sample)
        clean = ds.read(rows["sample_id"][0])
        changed = [m for m in ("vis", "ir") if not np.array_equal(arrays[m], clean[m])]
        assert changed, f"{sample} equals the clean pair"


def test_demmi_rf_c_holds_every_shipped_atom_at_five_levels_and_the_papers_mixtures():
    c = load_recipe("demmi-rf-c")
    v1 = load_recipe("demmi-rf-v1")
    levels = {}
    for s in c.settings:
        p = parse_setting(s)
        if p.has_levels:
            assert len(p.atoms) == 1
            levels.setdefault(p.atoms[0], []).append(p.levels[0])
    assert set(levels) == {"noise50", *(a for a in SHIPPED if not a.startswith("noise"))}
    assert all(ks == [1, 2, 3, 4, 5] for ks in levels.values())
    mixtures = [s for s in v1.settings if "+" in s]
    assert [s for s in c.settings if "+" in s] == mixtures and "clean" in c.settings
    for atom in V1_ATOMS:  # the mixtures use the v1 ranges, with the v1 seed: the same bytes as v1's samples
        assert c.degradations[atom] == v1.degradations[atom]
    assert c.seed == v1.seed


def test_the_web_report_draws_a_curve_per_severity_family():
    from demmi_rf.publish.report_data import severity_curves

    curves = {c.family: c for c in severity_curves(["clean", "haze.s1", "haze.s2", "noise50.s1", "noise50.s3",
                                                     "noise15", "noise25", "noise50+haze.s2", "stripe.s2"])}
    assert curves["haze"].levels == (0.0, 1.0, 2.0) and curves["haze"].settings == ("clean", "haze.s1", "haze.s2")
    assert curves["noise50"].settings == ("clean", "noise50.s1", "noise50.s3")
    assert curves["noise"].settings == ("clean", "noise15", "noise25")  # the v1 naming still works
    assert "stripe" not in curves  # one level is no curve


def test_a_third_party_atom_with_a_ladder_takes_levels(msrs_pair):
    vis, ir = msrs_pair
    ladder = tuple({"k": [0.9 - 0.15 * i, 0.95 - 0.15 * i]} for i in range(5))
    spec = register_atom(AtomSpec(
        name="dim_ladder", family="dim_ladder", modality="vis", stage=26,
        params=(Param("k", "uniform", lo=0.0, hi=1.0, default=[0.5, 0.6]),),
        draw=lambda rng, image, ranges, atom="dim_ladder": {"k": 0.5 * (ranges["k"][0] + ranges["k"][1])},
        apply=lambda image, rng, inplace=False, k=0.5: np.asarray(image, np.float32) * np.float32(k),
        severity=ladder, random_apply=False))
    try:
        for k in (1, 5):
            out = degrade(vis, ir, f"dim_ladder.s{k}", 1, pair_id="msrs/00004N")  # the atom's default table
            assert out.params["dim_ladder"]["k"] == pytest.approx(0.925 - 0.15 * (k - 1))
        with pytest.raises(SettingError, match="severity levels 1-5, not 6"):
            parse_setting("dim_ladder.s6")
    finally:
        unregister_atom(spec.name)


def test_the_models_label_vector_ignores_the_level():
    pytest.importorskip("torch")
    from demmi_rf.torch.atoms import atoms_vector

    assert atoms_vector("haze.s3+stripe.s1").tolist() == atoms_vector("haze+stripe").tolist()
