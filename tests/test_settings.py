"""Parsing settings: canonical names and order, modality flags, and every rejected form."""

from __future__ import annotations

import itertools

import pytest

from demmi_rf.degradations import names
from demmi_rf.errors import SettingError
from demmi_rf.recipe import load_recipe
from demmi_rf.settings import Setting, parse_setting

V1 = load_recipe("demmi-rf-v1").settings


def test_v1_recipe_settings_are_canonical_and_sixteen():
    assert len(V1) == 16
    for s in V1:
        assert parse_setting(s).name == s


@pytest.mark.parametrize("setting", [s for s in V1 if "+" in s])
def test_any_atom_order_and_spacing_gives_the_canonical_name(setting):
    atoms = setting.split("+")
    for perm in itertools.permutations(atoms):
        assert parse_setting("+".join(perm)).name == setting
        assert parse_setting(" + ".join(perm)).name == setting
        assert parse_setting(list(perm)).name == setting


V1_ATOMS = ("noise15", "noise25", "noise50", "defocus", "haze", "stripe")


def test_canonical_order_is_noise_defocus_haze_stripe():
    # the v1 atoms keep their order whatever else is registered (the order is derived from the specs)
    assert tuple(n for n in names() if n in V1_ATOMS) == V1_ATOMS
    assert parse_setting("stripe+haze+defocus+noise25").atoms == ("noise25", "defocus", "haze", "stripe")


def test_setting_atoms_is_the_one_parser_for_atom_lists():
    from demmi_rf.settings import setting_atoms  # noqa: PLC0415
    from demmi_rf.torch.atoms import setting_atoms as torch_setting_atoms  # noqa: PLC0415

    assert torch_setting_atoms is setting_atoms
    assert setting_atoms("clean") == ()
    assert setting_atoms(" haze + noise50 ") == ("noise50", "haze")
    with pytest.raises(SettingError, match="at most one noise level"):
        setting_atoms("noise15+noise25")


def test_clean_is_the_empty_set():
    s = parse_setting("clean")
    assert s.atoms == () and s.name == "clean" and s.is_clean
    assert not s.changes_vis and not s.changes_ir
    assert s.vis_chain == () and s.ir_chain == ()


def test_modality_flags_and_application_order():
    s = parse_setting("noise50+defocus+haze+stripe")
    assert s.changes_vis and s.changes_ir
    assert [a.name for a in s.vis_chain] == ["haze", "defocus", "noise50"]
    assert [a.name for a in s.ir_chain] == ["stripe"]
    assert parse_setting("stripe").changes_ir and not parse_setting("stripe").changes_vis
    assert parse_setting("noise15+haze").changes_vis and not parse_setting("noise15+haze").changes_ir


def test_setting_is_frozen_hashable_and_parse_is_idempotent():
    a = parse_setting("haze+noise15")
    assert parse_setting(a) is a
    assert a == Setting(("noise15", "haze")) == Setting(("haze", "noise15"))
    assert len({a, parse_setting("noise15+haze")}) == 1
    assert str(a) == "noise15+haze"
    with pytest.raises(AttributeError):
        a.atoms = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("", "empty setting"),
        ("   ", "empty setting"),
        ("fog", "unknown atom 'fog'"),
        ("noise30", "unknown atom 'noise30'"),
        ("Haze", "unknown atom 'Haze'"),
        ("noise15+noise50", "at most one noise level"),
        ("noise15+haze+noise25", "at most one noise level"),
        ("clean+haze", "cannot be combined"),
        ("haze+haze", "given twice"),
        ("haze++stripe", "empty atom name"),
        ([], "empty setting"),
    ],
)
def test_rejected_settings_raise_setting_error(bad, fragment):
    with pytest.raises(SettingError, match=fragment) as info:
        parse_setting(bad)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", ["noise50+snow", "noise15+noise50", "", "clean+haze", "haze+haze"])
def test_error_lists_every_valid_name(bad):
    with pytest.raises(SettingError) as info:
        parse_setting(bad)
    message = str(info.value)
    for name in (*names(), "clean"):
        assert name in message
    assert repr(bad) in message


def test_non_string_setting_is_rejected():
    with pytest.raises(SettingError):
        parse_setting(42)  # type: ignore[arg-type]
