"""The per-call shortcuts of degrade() (issue 14 section 2): cached setting parses and chains that a register /
unregister invalidates, and the generator's cheaper construction giving the very same stream."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from demmi_rf import degrade, settings
from demmi_rf.degradations import STAGE_SCENE, UNIFORM, AtomSpec, Param, register_atom, unregister_atom
from demmi_rf.degradations.registry import ATOMS
from demmi_rf.errors import SettingError
from demmi_rf.rng import generator, stable_words
from demmi_rf.settings import parse_setting

from .conftest import compiled_or_skip, kernel_swapped_is_refused


def _spec(name: str, stage: int = STAGE_SCENE + 7) -> AtomSpec:
    return AtomSpec(name=name, family=name, modality="vis", stage=stage,
                    params=(Param("k", UNIFORM, lo=0.0, hi=1.0, default=[0.2, 0.4]),),
                    draw=lambda stream, image, ranges, atom=name: {},
                    apply=lambda image, stream=None, **p: image)


def test_a_repeated_setting_is_parsed_once_and_equals_a_fresh_parse():
    first = parse_setting("stripe + noise50+haze")
    assert parse_setting("stripe + noise50+haze") is first  # served from the cache
    fresh = settings._parse_text("stripe + noise50+haze")
    assert fresh == first and fresh.name == "noise50+haze+stripe"


def test_register_and_unregister_invalidate_the_parse_and_chain_caches():
    with pytest.raises(SettingError, match="unknown atom 'floorprobe'"):
        parse_setting("floorprobe+noise50")
    before = ATOMS.generation
    spec = register_atom(_spec("floorprobe"))
    try:
        assert ATOMS.generation > before
        s = parse_setting("floorprobe+noise50")  # an earlier failure is never cached
        assert "floorprobe" in s.atoms and spec in s.chain("vis")
        assert parse_setting("floorprobe+noise50") is s
    finally:
        unregister_atom("floorprobe")
    with pytest.raises(SettingError, match="unknown atom 'floorprobe'"):
        parse_setting("floorprobe+noise50")  # the cached parse is not served once the atom is gone
    # a chain cached for a Setting is recomputed after the registry changes
    with pytest.raises(SettingError):
        s.chain("vis")
    replacement = register_atom(_spec("floorprobe", stage=STAGE_SCENE + 8))
    try:
        assert replacement in parse_setting("floorprobe+noise50").chain("vis")
        assert replacement in s.chain("vis") and spec not in s.chain("vis")
    finally:
        unregister_atom("floorprobe")


def test_the_caches_are_bounded(monkeypatch):
    monkeypatch.setattr(settings, "_CACHE_MAX", 3)
    monkeypatch.setattr(settings, "_PARSED", {})
    for text in ("haze", "noise50", "stripe", "defocus", "haze+stripe"):
        parse_setting(text)
        assert len(settings._PARSED) <= 3


def test_a_str_subclass_is_parsed_but_not_cached():
    class Odd(str):
        pass

    assert parse_setting(Odd("haze+noise50")).name == "noise50+haze"
    assert not any(type(k) is not str for k in settings._PARSED)


@pytest.mark.parametrize("parts", [(0, "msrs/00004N", "noise50+haze", "vis"), (7, "a/b", "clean", "ir"),
                                   (2**63, "x/y", "stripe", "ir", "resample", 3, 4)])
def test_the_generator_is_the_seedsequence_of_the_documented_words(parts):
    """The uint32-array entropy gives the state of the documented list of eight words."""
    reference = np.random.Generator(np.random.PCG64(np.random.SeedSequence(stable_words(*parts))))
    got = generator(*parts)
    assert got.bit_generator.state == reference.bit_generator.state
    assert np.array_equal(got.bit_generator.random_raw(9), reference.bit_generator.random_raw(9))


def test_degrade_twice_gives_the_same_bytes_through_the_caches():
    vis = np.random.default_rng(1).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    ir = np.random.default_rng(2).integers(0, 256, (16, 20), dtype=np.uint8)
    from demmi_rf.degradations import compose

    for setting in ("stripe+noise25+haze", "lowcontrast", "noise50+jpeg"):
        a = degrade(vis, ir, setting, 3, pair_id="t/1")
        settings._PARSED.clear()
        settings._CHAINS.clear()
        compose._PLANS.clear()
        b = degrade(vis, ir, setting, 3, pair_id="t/1")
        assert a.vis.tobytes() == b.vis.tobytes() and a.ir.tobytes() == b.ir.tobytes() and a.params == b.params


def _reference(*parts):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(stable_words(*parts))))


def test_the_compiled_seed_state_is_numpys_seedsequence(monkeypatch):
    """With the kernel's SeedSequence mixing (when built) and without it: the same state, spawn, pickle, entropy."""
    from demmi_rf import rng

    parts = (20250713, "msrs/00055D", "motion+rain", "vis")
    states = []
    for use_kernel in (True, False):
        if not use_kernel:
            monkeypatch.setattr(rng, "_seed_kernel", lambda: None)
        g = generator(*parts)
        ref = _reference(*parts)
        assert g.bit_generator.state == ref.bit_generator.state
        assert [c.bit_generator.state for c in g.spawn(3)] == [c.bit_generator.state for c in ref.spawn(3)]
        assert np.array_equal(g.bit_generator.seed_seq.entropy, stable_words(*parts))
        assert np.array_equal(g.bit_generator.seed_seq.generate_state(6), ref.bit_generator.seed_seq.generate_state(6))
        g.bit_generator.random_raw(5)
        again = pickle.loads(pickle.dumps(g))
        assert again.bit_generator.state == g.bit_generator.state
        assert copy.deepcopy(g).bit_generator.random_raw(3).tolist() == g.bit_generator.random_raw(3).tolist()
        states.append(generator(*parts).bit_generator.random_raw(4).tolist())
    assert states[0] == states[1]


def test_seed_state_matches_numpy_on_many_keys():
    from demmi_rf import rng

    seed_state = compiled_or_skip(rng._seed_kernel)
    words_rng = np.random.default_rng(3)
    for n in [8] * 500 + [1, 2, 3, 4, 5, 9, 16]:
        words = words_rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        out = np.empty(4, np.uint64)
        seed_state(words, out)
        assert np.array_equal(out, np.random.SeedSequence(words).generate_state(4, np.uint64)), words


def test_a_seed_kernel_that_differs_is_not_used(monkeypatch):
    from demmi_rf import rng

    real = compiled_or_skip(rng._seed_kernel)

    class Off:
        @staticmethod
        def seed_state(words, out):
            real(words, out)
            out[3] ^= np.uint64(1)

    kernel_swapped_is_refused(monkeypatch, Off, rng._seed_kernel)
    parts = (1, "a/b", "haze", "vis")
    monkeypatch.setattr(rng, "_seed_kernel", lambda: None)  # what a refused kernel leaves: numpy's SeedSequence
    assert generator(*parts).bit_generator.state == _reference(*parts).bit_generator.state


def _uint8_spec(name: str, offset: int) -> AtomSpec:
    """A VIS atom with a uint8 path adding ``offset`` (and recording it), to tell two registrations apart."""
    return AtomSpec(name=name, family=name, modality="vis", stage=STAGE_SCENE + 7,
                    params=(Param("k", UNIFORM, lo=0.0, hi=1.0, default=[0.2, 0.4]),),
                    draw=lambda stream, image, ranges, atom=name: {"k": ranges["k"][0] + stream.uniform() * 0},
                    apply=lambda image, stream=None, *, k, inplace=False: image.astype(np.float32) + offset,
                    apply_uint8=lambda image, stream=None, *, k: (image + offset).astype(np.uint8))


def test_the_plan_of_a_setting_follows_the_registry():
    """degrade() plans a setting once (chain, uint8 path, default table): re-registering an atom re-plans."""
    from demmi_rf.degradations import compose

    vis = np.zeros((4, 5, 3), np.uint8)
    ir = np.zeros((4, 5), np.uint8)
    register_atom(_uint8_spec("planprobe", 1))
    try:
        assert degrade(vis, ir, "planprobe", 1, pair_id="p/1").vis.max() == 1
        assert parse_setting("planprobe") in compose._PLANS
    finally:
        unregister_atom("planprobe")
    register_atom(_uint8_spec("planprobe", 2))
    try:
        assert degrade(vis, ir, "planprobe", 1, pair_id="p/1").vis.max() == 2  # not the cached plan
    finally:
        unregister_atom("planprobe")


def test_each_call_hands_the_atom_its_own_copy_of_the_default_table():
    """An atom that changes its ranges table in a draw cannot change the next call's defaults."""
    seen = []

    def draw(stream, image, ranges, atom="tableprobe"):
        seen.append(dict(ranges))
        ranges["k"] = [0.9, 0.9]  # a careless atom
        return {"k": 0.0}

    spec = AtomSpec(name="tableprobe", family="tableprobe", modality="ir", stage=STAGE_SCENE + 7,
                    params=(Param("k", UNIFORM, lo=0.0, hi=1.0, default=[0.2, 0.4]),), draw=draw,
                    apply=lambda image, stream=None, *, k, inplace=False: image.astype(np.float32),
                    apply_uint8=lambda image, stream=None, *, k: image.copy())
    register_atom(spec)
    try:
        for i in range(2):
            degrade(np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3), np.uint8), "tableprobe", 1, pair_id=f"t/{i}")
    finally:
        unregister_atom("tableprobe")
    assert seen == [{"k": [0.2, 0.4]}, {"k": [0.2, 0.4]}]


def test_the_fast_paths_of_the_draws_give_the_checked_paths_values():
    """Well-formed ranges take exact-type shortcuts; numpy scalars, tuples and ints take the checks: same values."""
    from demmi_rf.degradations import _ranges
    from demmi_rf.degradations.registry import CHOICE, INTEGER
    from demmi_rf.rng import Stream

    cases = [
        (Param("u", UNIFORM, lo=0.0, hi=10.0), [1.5, 2.5], [np.float64(1.5), np.float64(2.5)], (1.5, 2.5)),
        (Param("c", CHOICE, lo=1, hi=100), [20, 30, 40], [np.int64(20), 30, 40], (20, 30, 40)),
        (Param("i", INTEGER, lo=0, hi=50), [3, 9], (3, 9), [np.int32(3), 9]),
    ]
    for param, fast, *slow in cases:
        values = []
        for value in (fast, *slow):
            stream = Stream(np.random.default_rng(5))
            values.append([_ranges.draw_param(stream, {param.name: value}, param, "probe") for _ in range(5)])
        assert values[0] == values[1] == values[2], param.name
    with pytest.raises(Exception, match="outside the valid interval"):
        _ranges.draw_param(Stream(np.random.default_rng(5)), {"u": [1.0, 11.0]}, cases[0][0], "probe")
    with pytest.raises(Exception, match="low > high"):
        _ranges.draw_param(Stream(np.random.default_rng(5)), {"u": [2.0, 1.0]}, cases[0][0], "probe")
    with pytest.raises(Exception, match="outside the valid interval"):
        _ranges.draw_param(Stream(np.random.default_rng(5)), {"c": [0, 30]}, cases[1][0], "probe")
    with pytest.raises(Exception, match="outside the valid interval"):
        _ranges.draw_param(Stream(np.random.default_rng(5)), {"u": [float("nan"), 1.0]}, cases[0][0], "probe")
