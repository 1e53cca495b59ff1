"""CLI consistency (docs/cli.md): one option name per concept, the same exit code for the same mistake,
"did you mean" for misspelt names, option choices taken from the API's constants, ``preview --out`` honouring
its suffix and never creating folders unasked, ``info`` in words, help texts naming the content hash."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from demmi_cli.main import cli
from demmi_rf.baselines import get as get_baseline
from demmi_rf.baselines import names as baseline_names
from demmi_rf.builder import EXECUTORS, build_dataset
from demmi_rf.errors import DemmiError, close_matches, did_you_mean, unknown_name
from demmi_rf.evaluation.score import REFERENCES
from demmi_rf.metrics.profiles import get_profile, profiles
from demmi_rf.recipe import load_recipe, narrow_settings
from demmi_rf.settings import parse_setting
from demmi_rf.sources import IR16_CHOICES
from demmi_rf.store import open_dataset


def invoke(args: list[str]):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, args, catch_exceptions=False)


def command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name)


def param(cmd: str, name: str) -> click.Parameter:
    return next(p for p in command(cmd).params if p.name == name)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cons") / "ds"
    build_dataset(out, settings=("clean", "stripe"), workers=1)
    return out


# --- the library's one suggestion function --------------------------------------------------------------------
def test_did_you_mean_suggests_close_names_only():
    assert close_matches("tnag", profiles()) == ["tang"]
    assert did_you_mean("TEST", ["train", "test"]) == " (did you mean 'test'?)"
    assert did_you_mean("zzzzzz", ["train", "test"]) == ""
    assert unknown_name("split", "tset", ["test", "train"]) == \
        "unknown split 'tset' (did you mean 'test'?); choose from: test, train"


def test_library_errors_suggest_the_close_name(dataset):
    with pytest.raises(ValueError, match=r"did you mean 'tang'"):
        get_profile("tnag")
    with pytest.raises(DemmiError, match=r"did you mean 'average'"):
        get_baseline("avrage")
    with pytest.raises(ValueError, match=r"unknown atom 'hazee' \(did you mean 'haze'\?\)"):
        parse_setting("noise50+hazee")
    with pytest.raises(DemmiError, match=r"noise15\+lowlight\+defocus \(did you mean 'noise15\+defocus'"):
        narrow_settings(load_recipe(), ["noise15+defocus+lowlight"])  # valid, but v1 has no lowlight ranges
    with open_dataset(dataset) as ds, pytest.raises(DemmiError, match=r"no split 'tset' \(did you mean 'test'\?\)"):
        ds.samples(split="tset")
    with pytest.raises(DemmiError, match=r"unknown recipe 'demmi-rf-v2' \(did you mean 'demmi-rf-v1'"):
        load_recipe("demmi-rf-v2")


# --- the same mistake, the same exit code and message, whatever the command --------------------------------------
@pytest.mark.parametrize("cmd", ["build", "preview", "eval", "baseline"])
def test_a_misspelt_setting_is_exit_2_with_a_suggestion_in_every_command(cmd, dataset, tmp_path):
    args = {
        "build": ["build", "--out", str(tmp_path / "o")],
        "preview": ["preview", "--out", str(tmp_path / "x.png")],
        "eval": ["eval", "--dataset", str(dataset), "--fused", str(tmp_path), "--method", "m",
                 "--out", str(tmp_path / "r.json")],
        "baseline": ["baseline", "average", "--dataset", str(dataset), "--out", str(tmp_path / "f")],
    }[cmd]
    r = invoke([*args, "--degradations", "strpe"])
    assert r.exit_code == 2, r.output
    assert "unknown atom 'strpe' (did you mean 'stripe' or 'stripe_gain'?)" in r.stderr and "--degradations" in r.stderr
    assert "Traceback" not in r.output and not (tmp_path / "o").exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("cmd", ["eval", "baseline"])
def test_a_setting_or_split_the_dataset_lacks_is_exit_2_with_a_suggestion(cmd, dataset, tmp_path):
    args = {
        "eval": ["eval", "--dataset", str(dataset), "--fused", str(tmp_path), "--method", "m",
                 "--out", str(tmp_path / "r.json")],
        "baseline": ["baseline", "average", "--dataset", str(dataset), "--out", str(tmp_path / "f")],
    }[cmd]
    r = invoke([*args, "--split", "tset"])
    assert r.exit_code == 2 and "unknown split 'tset' (did you mean 'test'?)" in r.stderr
    r = invoke([*args, "--degradations", "stripe,noise50"])  # a valid setting this dataset does not hold
    assert r.exit_code == 2 and "'noise50'" in r.stderr and "choose from: clean, stripe" in r.stderr
    assert not (tmp_path / "f").exists() and not (tmp_path / "r.json").exists()


def test_misspelt_profile_baseline_recipe_and_executor_are_exit_2_with_a_suggestion(dataset, tmp_path):
    cases = [
        (["eval", "--dataset", str(dataset), "--fused", str(tmp_path), "--method", "m", "--profile", "tnag"],
         "unknown metric profile 'tnag' (did you mean 'tang'?)"),
        (["baseline", "avrage", "--dataset", str(dataset), "--out", str(tmp_path / "f")],
         "unknown baseline 'avrage' (did you mean 'average'?)"),
        (["build", "--out", str(tmp_path / "o"), "--recipe", "demmi-rf-v2"],
         "unknown recipe 'demmi-rf-v2' (did you mean 'demmi-rf-v1'"),
        (["preview", "--out", str(tmp_path / "x.png"), "--recipe", "demmi-rf-v2"],
         "unknown recipe 'demmi-rf-v2' (did you mean 'demmi-rf-v1'"),
        (["build", "--out", str(tmp_path / "o"), "--executor", "dsak"],
         "unknown executor 'dsak' (did you mean 'dask'?)"),
        (["preview", "--out", str(tmp_path / "x.png"), "--pair", "tno/7"], "(did you mean 'tno/07'"),
    ]
    for args, fragment in cases:
        r = invoke(args)
        assert r.exit_code == 2 and fragment in r.stderr, (args, r.output)


def test_preview_takes_degradations_and_keeps_setting_as_a_hidden_deprecated_alias(tmp_path):
    help_text = invoke(["preview", "--help"]).stdout
    assert "--degradations" in help_text and "--setting" not in help_text
    new = invoke(["preview", "--degradations", "stripe,haze", "--pair", "tno/07", "--thumb-width", "64",
                  "--out", str(tmp_path / "a.png")])
    old = invoke(["preview", "--setting", "stripe", "--setting", "haze", "--pair", "tno/07", "--thumb-width", "64",
                  "--out", str(tmp_path / "b.png")])
    assert new.exit_code == old.exit_code == 0, (new.output, old.output)
    assert "deprecated" in old.stderr and "deprecated" not in new.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# --- choices from the API's own constants ------------------------------------------------------------------------
def test_option_choices_are_the_apis_own_names():
    assert tuple(param("build", "executor").type.choices) == tuple(EXECUTORS)
    assert tuple(param("build", "ir16").type.choices) == tuple(IR16_CHOICES)
    assert tuple(param("scan", "ir16").type.choices) == tuple(IR16_CHOICES)
    assert tuple(param("eval", "profile").type.choices) == tuple(profiles())
    assert tuple(param("eval", "reference").type.choices) == tuple(REFERENCES)
    assert tuple(param("baseline", "name").type.choices) == tuple(baseline_names())


# --- preview --out -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".JPEG", "JPEG"), (".png", "PNG"), (".tif", "TIFF")])
def test_preview_writes_the_format_its_suffix_names(tmp_path, suffix, fmt):
    out = tmp_path / f"sheet{suffix}"
    r = invoke(["preview", "--degradations", "stripe", "--pair", "tno/07", "--thumb-width", "64", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.format == fmt
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_preview_refuses_an_unknown_suffix_and_a_missing_folder(tmp_path):
    r = invoke(["preview", "--degradations", "stripe", "--out", str(tmp_path / "sheet.xyz")])
    assert r.exit_code == 2 and "'.xyz'" in r.stderr and ".png" in r.stderr and ".jpg" in r.stderr
    missing = tmp_path / "no" / "such"
    r = invoke(["preview", "--degradations", "stripe", "--out", str(missing / "sheet.png")])
    assert r.exit_code == 2 and str(missing) in r.stderr and "--mkdir" in r.stderr
    assert list(tmp_path.iterdir()) == []
    r = invoke(["preview", "--degradations", "stripe", "--pair", "tno/07", "--thumb-width", "64", "--mkdir",
                "--out", str(missing / "sheet.png")])
    assert r.exit_code == 0 and (missing / "sheet.png").is_file()


# --- info and help texts -----------------------------------------------------------------------------------------
def test_info_prints_storage_in_words(dataset):
    r = invoke(["info", str(dataset)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("storage"))
    assert "{" not in line and '"' not in line
    assert "deflate (gzip) level 1 in 64x64-pixel tiles" in line and "stored raw" in line


def test_eval_and_leaderboard_help_name_the_content_hash():
    for cmd in ("eval", "leaderboard"):
        text = " ".join(invoke([cmd, "--help"]).stdout.split())
        assert "content hash" in text, cmd
        assert "dataset card hash" not in text and "different dataset cards" not in text
