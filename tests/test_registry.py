"""The atom registry: specs of the v1 atoms, the orders derived from them, schema validation, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from demmi_rf.degradations import (
    ATOMS,
    CHOICE,
    FIXED,
    INTEGER,
    STAGE_SCENE,
    STAGE_SENSOR,
    UNIFORM,
    AtomSpec,
    Param,
    Registry,
    atoms,
    canonical_key,
    codec_libraries,
    default_ranges,
    get,
    label_order,
    names,
    range_problems,
    register_atom,
    unregister_atom,
)
from demmi_rf.degradations import noise as noise_mod
from demmi_rf.degradations._ranges import draw_param
from demmi_rf.errors import AtomRegistryError, RecipeError
from demmi_rf.recipe import load_recipe
from demmi_rf.rng import Stream, generator

V1 = ("noise15", "noise25", "noise50", "defocus", "haze", "stripe")


def _spec(name="probe", **kw) -> AtomSpec:
    base = dict(name=name, family=name, modality="vis", stage=STAGE_SCENE + 3,
                params=(Param("k", UNIFORM, lo=0.0, hi=1.0, default=[0.2, 0.4]),),
                draw=lambda stream, image, ranges, atom=name: {}, apply=lambda image, stream=None, **p: image)
    base.update(kw)
    return AtomSpec(**base)


def test_v1_specs_and_the_orders_derived_from_them():
    assert tuple(n for n in names() if n in V1) == V1 and len(names()) == len(atoms())
    assert tuple(sorted(V1, key=lambda n: canonical_key(get(n)))) == V1  # the canonical setting-name order
    assert label_order()[:6] == ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")  # TG-ECNet's
    assert [get(n).label_index for n in V1] == [0, 1, 2, 4, 3, 5]
    assert {n: get(n).modality for n in V1} == {**dict.fromkeys(V1[:5], "vis"), "stripe": "ir"}
    assert get("haze").stage < get("defocus").stage < get("noise50").stage  # scene -> optics -> sensor
    assert {n: get(n).family for n in V1} == {"noise15": "noise", "noise25": "noise", "noise50": "noise",
                                              "defocus": "defocus", "haze": "haze", "stripe": "stripe"}
    assert [get(n).random_apply for n in V1] == [True, True, True, False, False, True]
    assert get("noise25").module is noise_mod
    assert get("defocus").param("radius") == Param("radius", CHOICE, lo=0, hi=64, default=[3, 4, 5, 6],
                                                   doc=get("defocus").param("radius").doc)
    assert get("haze").param("t_min").kind == FIXED and get("haze").param("beta").type is float


def test_default_ranges_are_the_v1_recipe_tables():
    recipe = load_recipe("demmi-rf-v1").degradations
    assert {n: t for n, t in default_ranges().items() if n in V1} == recipe
    assert default_ranges(["haze"]) == {"haze": recipe["haze"]}
    copy = default_ranges()
    copy["haze"]["beta"][0] = 99.0
    assert default_ranges()["haze"]["beta"] == [1.0, 2.0]  # a fresh copy each time


def test_labels_come_from_the_spec():
    assert get("haze").describe({"beta": 1.234, "A": 31.6}) == "haze b=1.23 A=32"
    assert get("noise50").describe({"sigma": 50.0}) == "sigma=50"
    assert get("haze").describe({"beta": 1.0}) == "haze"  # a missing value: the name, never an exception
    assert _spec(label="").describe({"k": 1}) == "probe"


def test_range_problems_come_from_the_schema_without_drawing():
    good = load_recipe().degradations
    assert range_problems(good, used=V1) == []
    bad = {**good, "haze": {**good["haze"], "beta": [2.0, 1.0], "focal_x": 1.5, "fog": 1},
           "defocus": {"radius": [3, 4.5], "alias_sigma": "x"}, "smog": {}}
    del bad["stripe"]
    problems = range_problems(bad, used=("stripe", "haze"))
    text = "\n".join(problems)
    for expected in ("degradations.haze.beta: range [2.0, 1.0] has its bounds reversed",
                     "degradations.haze.focal_x: 1.5 is outside the valid interval [0.0, 1.0]",
                     "degradations.haze: unknown parameter 'fog'",
                     "degradations.defocus.radius must be an integer or a non-empty list of integers",
                     "degradations.defocus.alias_sigma must be a number",
                     "unknown atom 'smog'", "no parameters for atom 'stripe'"):
        assert expected in text
    assert range_problems({"haze": [1, 2]}) == ["degradations.haze must be a table of parameters, got list"]
    assert "missing parameter 'sigma'" in range_problems({"noise15": {}})[0]


def test_duplicate_names_label_indices_and_occupied_stages_are_refused():
    with pytest.raises(AtomRegistryError, match="'haze' is already registered"):
        register_atom(dataclasses.replace(get("haze")))
    with pytest.raises(AtomRegistryError, match="label index 3 is already 'haze'"):
        register_atom(_spec(label_index=3))
    with pytest.raises(AtomRegistryError, match="stage 10 of the vis chain is already 'haze'"):
        register_atom(_spec(stage=STAGE_SCENE))
    with pytest.raises(AtomRegistryError, match="takes an AtomSpec"):
        register_atom({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(AtomRegistryError, match="no atom named 'nothing'"):
        unregister_atom("nothing")
    assert "probe" not in names() and set(V1) <= set(names())  # nothing was half-registered


@pytest.mark.parametrize("change, message", [
    (dict(name="Bad Name"), "name must be"),
    (dict(name="clean"), "name must be"),
    (dict(modality="uv"), "modality must be one of vis, ir"),
    (dict(stage=1.5), "stage must be an integer"),
    (dict(label_index=-1), "label_index must be"),
    (dict(draw=None), "draw and apply must be callables"),
    (dict(params=(Param("k", UNIFORM, default=[2.0, 1.0]),)), "default degradations.probe.k"),
    (dict(params=(Param("k", FIXED, default=1.0), Param("k", FIXED, default=1.0))), "parameter names repeat"),
    (dict(severity=({"k": 5.0},)), "severity level 1: degradations.probe.k: 5.0 is outside"),
])
def test_malformed_specs_are_refused_when_declared(change, message):
    with pytest.raises(AtomRegistryError, match=message):
        _spec(**change)


def test_param_schema_itself_is_checked():
    with pytest.raises(AtomRegistryError, match="kind must be one of fixed, uniform, choice"):
        Param("k", "gaussian")
    with pytest.raises(AtomRegistryError, match="empty valid interval"):
        Param("k", FIXED, lo=2.0, hi=1.0)
    assert Param("r", CHOICE).type is int
    with pytest.raises(RecipeError, match="degradations.a.r: 70 is outside"):
        Param("r", CHOICE, lo=0, hi=64).check([3, 70], "a")


def test_a_registered_atom_is_canonically_placed_and_removable():
    spec = register_atom(_spec(severity=({"k": 0.1}, {"k": [0.2, 0.3]})))
    try:
        assert "probe" in ATOMS and get("probe") is spec
        assert names().index("defocus") < names().index("probe") < names().index("haze")  # stage 13: 20 > 13 > 10
        assert label_order()[:6] == ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")
        assert "probe" in label_order()[6:]  # no label index: after the indexed atoms
        assert len(spec.severity) == 2
    finally:
        unregister_atom("probe")
    assert "probe" not in names()


def test_atoms_receive_a_stream_and_a_generator_is_wrapped_once():
    seen = []

    def draw(stream, image, ranges, atom="spy"):
        seen.append(stream)
        return {"u": stream.uniform()}

    def apply(image, stream=None, *, u, inplace=False):
        seen.append(stream)
        return image + np.float32(u)

    spec = _spec("spy", draw=draw, apply=apply, stage=STAGE_SENSOR + 9, params=())
    out, params = spec.run(np.zeros((2, 2), np.float32), generator(1, "p", "spy", "vis"), {})
    assert isinstance(seen[0], Stream) and seen[0] is seen[1]
    assert params["u"] == Stream(generator(1, "p", "spy", "vis")).uniform()
    with pytest.raises(TypeError, match="Stream"):
        spec.run(np.zeros((2, 2), np.float32), 42, {})


def test_a_private_registry_is_independent():
    reg = Registry("mine")
    reg.register(_spec())
    assert [s.name for s in reg.specs()] == ["probe"] and "probe" not in ATOMS
    with pytest.raises(AtomRegistryError, match="already registered"):
        reg.register(_spec())


# --- the integer-range kind and the codec-dependence mark (issue 14 section 2) -----------------------------------

def test_integer_kind_takes_an_integer_or_an_integer_range_within_integer_bounds():
    p = Param("n", INTEGER, lo=1, hi=10, default=[2, 7])
    assert p.type is int and Param("n", CHOICE).type is int and Param("n", UNIFORM).type is float
    assert p.problem(5, "a") is None and p.problem([2, 7], "a") is None and p.problem((3, 3), "a") is None
    for bad, message in [
        ([7, 2], "degradations.a.n: integer range [7, 2] has its bounds reversed"),
        ([2, 11], "degradations.a.n: 11 is outside the valid interval [1, 10]"),
        (0, "degradations.a.n: 0 is outside"),
        ([2.0, 5], "must be an integer or [low, high] of integers"),
        (3.5, "must be an integer or [low, high] of integers"),
        ([1, 2, 3], "must be an integer or [low, high] of integers"),  # a list of three is a CHOICE's, not a range
        (True, "must be an integer or [low, high] of integers"),
        ("3", "must be an integer or [low, high] of integers"),
    ]:
        assert message in (p.problem(bad, "a") or ""), (bad, p.problem(bad, "a"))
    assert "spans more than 2**32" in Param("n", INTEGER).problem([0, 2**32], "a")
    assert Param("n", INTEGER).problem([0, 2**32 - 1], "a") is None
    for kind in (INTEGER, CHOICE):
        with pytest.raises(AtomRegistryError, match="bounds must be integers, got 0.5"):
            Param("n", kind, lo=0.5)
        assert Param("n", kind, lo=0.0, hi=float("inf")).lo == 0.0  # integral floats and infinities are bounds
    with pytest.raises(AtomRegistryError, match="bounds must be numbers"):
        Param("n", UNIFORM, lo="0")
    with pytest.raises(AtomRegistryError, match="default degradations.probe.n: integer range"):
        _spec(params=(Param("n", INTEGER, lo=0, hi=9, default=[5, 1]),))


@pytest.mark.parametrize("a, b", [(0, 0), (3, 7), (-4, 4), (5, 15), (1, 100)])
def test_an_integer_range_draws_the_choice_among_its_integers_from_the_same_word(a, b):
    """``[a, b]`` of an INTEGER parameter = a CHOICE among a..b: same values, same words consumed (so an atom may
    switch a contiguous choice to a range without changing a byte)."""
    as_range = Param("n", INTEGER, lo=-10, hi=100)
    as_choice = Param("n", CHOICE, lo=-10, hi=100)
    seen = set()
    for seed in range(300):
        s1, s2 = Stream(generator(seed, "p", "n", "vis")), Stream(generator(seed, "p", "n", "vis"))
        v = draw_param(s1, {"n": [a, b]}, as_range, "a")
        assert type(v) is int and v == draw_param(s2, {"n": list(range(a, b + 1))}, as_choice, "a")
        assert s1.uniform() == s2.uniform()  # the streams stay in step
        seen.add(v)
    assert seen == set(range(a, b + 1)) if b - a < 12 else seen <= set(range(a, b + 1))
    fixed_stream = Stream(generator(1, "p", "n", "vis"))
    assert draw_param(fixed_stream, {"n": 4}, as_range, "a") == 4  # a fixed integer draws nothing
    assert fixed_stream.uniform() == Stream(generator(1, "p", "n", "vis")).uniform()
    with pytest.raises(RecipeError, match="degradations.a.n: expected an integer or \\[low, high\\] of integers"):
        draw_param(Stream(generator(1, "p", "n", "vis")), {"n": [1.0, 2.0]}, as_range, "a")
    with pytest.raises(RecipeError, match="has low > high"):
        draw_param(Stream(generator(1, "p", "n", "vis")), {"n": [3, 1]}, as_range, "a")
    with pytest.raises(RecipeError, match="outside the valid interval"):
        draw_param(Stream(generator(1, "p", "n", "vis")), {"n": [3, 101]}, as_range, "a")


def test_an_atom_with_an_integer_parameter_is_validated_and_drawn_through_the_registry():
    taps = Param("taps", INTEGER, lo=1, hi=31, default=[3, 9], doc="an integer range")

    def draw(stream, image, ranges, atom="taps"):
        return {"taps": draw_param(stream, ranges, taps, atom)}

    spec = register_atom(_spec("taps", params=(taps,), draw=draw, stage=STAGE_SENSOR + 7,
                               severity=({"taps": 1}, {"taps": [2, 4]})))
    try:
        assert range_problems({"taps": {"taps": [3, 9]}}) == []
        assert range_problems({"taps": {"taps": [9, 3]}}) == [
            "degradations.taps.taps: integer range [9, 3] has its bounds reversed (low > high)"]
        assert range_problems({"taps": {"taps": [3, 40]}}) == [
            "degradations.taps.taps: 40 is outside the valid interval [1, 31]"]
        assert "of integers" in range_problems({"taps": {"taps": [3.0, 9.0]}})[0]
        image = np.zeros((2, 2), np.float32)
        values = {spec.run(image, generator(i, "p", "taps", "vis"), spec.default_ranges)[1]["taps"]
                  for i in range(200)}
        assert values == set(range(3, 10))
    finally:
        unregister_atom("taps")
    with pytest.raises(AtomRegistryError, match="severity level 1: degradations.probe.taps: 0 is outside"):
        _spec(params=(taps,), severity=({"taps": 0},))


def test_portable_atoms_have_no_codec_and_a_codec_must_be_callable():
    assert all(not get(n).codec_dependent and get(n).codec is None for n in V1)
    assert codec_libraries(V1) == {}
    with pytest.raises(AtomRegistryError, match="codec must be None \\(portable\\) or a callable"):
        _spec(codec="libjpeg-turbo")
    with pytest.raises(AtomRegistryError, match="apply_uint8 must be None or a callable"):
        _spec(apply_uint8=3)
    spec = register_atom(_spec("coded", codec=lambda: "libfoo 1.2", stage=STAGE_SENSOR + 8))
    try:
        assert spec.codec_dependent and codec_libraries(["coded", "haze"]) == {"coded": "libfoo 1.2"}
        assert codec_libraries()["coded"] == "libfoo 1.2"
    finally:
        unregister_atom("coded")
