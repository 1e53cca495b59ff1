"""The conventions every ``demmi`` command shares (docs/cli.md): one progress reporter (log lines with counts,
rate and ETA off a terminal; none with --no-progress), one mapping from errors to messages and exit codes,
and ``--json`` summaries on stdout for scripts."""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf.builder import build_dataset
from demmi_rf.store import read_card

CLI_DIR = Path(__file__).resolve().parents[1] / "cli"
SETTINGS = ("clean", "stripe")
LINE = re.compile(r"^\[demmi\] (?P<label>[\w ]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \([\d.]+%\), "
                  r"[\d.e+]+ (?P=unit)/s, elapsed \d+:\d\d:\d\d")


def invoke(args: list[str], env: dict[str, str] | None = None):
    """Run ``demmi ARGS`` in-process off a terminal, stdout and stderr kept apart."""
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, args, env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The 9 embedded pairs x (clean, stripe): 10 test and 8 train samples in 3 shards."""
    out = tmp_path_factory.mktemp("conv") / "ds"
    build_dataset(out, settings=SETTINGS, workers=1)
    return out


@pytest.fixture(scope="module")
def fused(dataset, tmp_path_factory) -> dict[str, Path]:
    """Fused stripe images of the test split by two baselines."""
    out = {}
    for name in ("average", "max"):
        out[name] = tmp_path_factory.mktemp("fused") / name
        r = invoke(["baseline", name, "--dataset", str(dataset), "--out", str(out[name]), "--degradations",
                    "stripe", "--workers", "1", "--no-progress"])
        assert r.exit_code == 0, r.output
    return out


def progress_lines(text: str) -> list[re.Match]:
    lines = [line for line in text.splitlines() if line.startswith("[demmi]")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches


# --- progress ------------------------------------------------------------------------------------------------
def test_build_off_a_terminal_prints_log_lines_with_counts_rate_and_eta(tmp_path):
    r = invoke(["build", "--out", str(tmp_path / "ds"), "--degradations", ",".join(SETTINGS), "--workers", "1"],
               env={"DEMMI_PROGRESS_INTERVAL": "0"})
    assert r.exit_code == 0, r.output
    lines = progress_lines(r.stderr)
    assert len(lines) >= 3 and {m["label"] for m in lines} == {"build"}
    assert all(m["total"] == "18" and m["unit"] == "samples" for m in lines)
    done = [int(m["done"]) for m in lines]
    assert done == sorted(done) and done[-1] == 18 and done[0] < 18  # one line per shard, then the end
    assert any("ETA " in m.string for m in lines[:-1]) and lines[-1].string.endswith("(done)")
    assert "shard 3/3" in lines[-1].string
    assert "[demmi]" not in r.stdout  # results on stdout, progress on stderr


def test_default_interval_still_prints_the_final_line_and_no_progress_prints_none(tmp_path):
    r = invoke(["build", "--out", str(tmp_path / "a"), "--degradations", "clean", "--workers", "1"])
    assert r.exit_code == 0, r.output
    lines = progress_lines(r.stderr)
    assert lines and lines[-1]["done"] == lines[-1]["total"] == "9" and lines[-1].string.endswith("(done)")
    quiet = invoke(["build", "--out", str(tmp_path / "b"), "--degradations", "clean", "--workers", "1",
                    "--no-progress"], env={"DEMMI_PROGRESS_INTERVAL": "0"})
    assert quiet.exit_code == 0, quiet.output
    assert "[demmi]" not in quiet.output and quiet.stderr == ""


@pytest.mark.parametrize("command", ["scan", "verify", "baseline", "eval"])
def test_every_long_command_reports_progress_the_same_way(command, dataset, fused, samples_dir, tmp_path):
    args = {
        "scan": ["scan", str(samples_dir)],
        "verify": ["verify", str(dataset)],
        "baseline": ["baseline", "max", "--dataset", str(dataset), "--out", str(tmp_path / "f"), "--workers", "1",
                     "--degradations", "stripe"],
        "eval": ["eval", "--dataset", str(dataset), "--fused", str(fused["average"]), "--method", "average",
                 "--degradations", "stripe", "--profile", "std", "--out", str(tmp_path / "r.json"),
                 "--workers", "1"],
    }[command]
    expected = {"scan": ("scan", 9, "pairs"), "verify": ("verify", 3, "shards"),
                "baseline": ("baseline max", 5, "images"), "eval": ("eval", 5, "images")}[command]
    r = invoke(args, env={"DEMMI_PROGRESS_INTERVAL": "0"})
    assert r.exit_code == 0, r.output
    lines = progress_lines(r.stderr)
    assert lines, r.stderr
    assert (lines[-1]["label"], int(lines[-1]["done"]), lines[-1]["unit"]) == expected
    assert int(lines[-1]["total"]) == expected[1] and lines[-1].string.endswith("(done)")
    quiet = invoke([*args, "--no-progress"], env={"DEMMI_PROGRESS_INTERVAL": "0"})
    assert quiet.exit_code == 0, quiet.output
    assert "[demmi]" not in quiet.output


def test_a_bad_progress_interval_is_a_usage_error(tmp_path):
    r = invoke(["build", "--out", str(tmp_path / "a"), "--degradations", "clean"],
               env={"DEMMI_PROGRESS_INTERVAL": "soon"})
    assert r.exit_code == 2 and "DEMMI_PROGRESS_INTERVAL" in r.stderr
    assert not (tmp_path / "a").exists()  # refused before any work


def test_the_cli_has_one_progress_mechanism():
    assert not (CLI_DIR / "progress.py").exists()
    for path in CLI_DIR.glob("*.py"):
        assert "click.progressbar" not in path.read_text(encoding="utf-8"), path.name


# --- errors and exit codes -------------------------------------------------------------------------------------
def _patch_read_card(monkeypatch, exc: BaseException) -> None:
    import demmi_rf.store

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(demmi_rf.store, "read_card", boom)


def test_a_demmi_error_is_one_message_on_stderr_and_exit_1(tmp_path):
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: ") and "dataset card is missing" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output and r.stdout == ""


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_70(tmp_path, monkeypatch):
    _patch_read_card(monkeypatch, KeyError("boom\nsecond line"))
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 70
    assert r.stderr.strip().splitlines() == [
        "internal error: KeyError: 'boom\\nsecond line' (set DEMMI_DEBUG=1 for the traceback; please report)"]
    debug = invoke(["info", str(tmp_path)], env={"DEMMI_DEBUG": "1"})
    assert debug.exit_code == 70 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("internal error: KeyError")


def test_a_missing_optional_package_gives_the_install_hint(tmp_path, monkeypatch):
    _patch_read_card(monkeypatch, ModuleNotFoundError("No module named 'safetensors'", name="safetensors"))
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.strip() == ("Error: this feature needs the optional package 'safetensors', which is not "
                                "installed: pip install 'demmi-rf[torch]'")
    from demmi_rf.optional import require

    monkeypatch.setattr("demmi_rf.optional.EXTRA_OF", {"no_such_module_xyz": ("no-such-dist", "dask")})

    def needs_it(*args, **kwargs):
        require("no_such_module_xyz", feature="demmi info")

    import demmi_rf.store

    monkeypatch.setattr(demmi_rf.store, "read_card", needs_it)
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 1
    assert r.stderr.strip() == ("Error: demmi info: this feature needs the optional package 'no-such-dist', which "
                                "is not installed: pip install 'demmi-rf[dask]'")


def test_an_unknown_module_that_is_not_optional_is_an_internal_error(tmp_path, monkeypatch):
    _patch_read_card(monkeypatch, ModuleNotFoundError("No module named 'nope'", name="nope"))
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 70 and r.stderr.startswith("internal error: ModuleNotFoundError")


def test_operating_system_errors_and_interrupts_have_their_own_codes(tmp_path, monkeypatch):
    _patch_read_card(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "/data/x.h5"))
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 74 and r.stderr.strip() == "Error: /data/x.h5: No space left on device"
    _patch_read_card(monkeypatch, KeyboardInterrupt())
    r = invoke(["info", str(tmp_path)])
    assert r.exit_code == 130 and r.stderr.strip() == "interrupted"


def test_usage_errors_keep_clicks_exit_2(tmp_path):
    r = invoke(["build", "--out", str(tmp_path / "a"), "--no-such-option"])
    assert r.exit_code == 2 and "No such option" in r.stderr


def test_bad_results_file_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"method\": 3}")
    r = invoke(["leaderboard", str(bad)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "Traceback" not in r.output


@pytest.mark.parametrize("field, value", [("sources", "not a mapping"), ("counts", {}), ("shards", 3),
                                          ("storage", [1, 2]), ("recipe", {"name": "x"})])
def test_info_refuses_a_malformed_card_with_a_message(dataset, tmp_path, field, value):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    card = json.loads((copy / "dataset.json").read_text())
    card[field] = value
    (copy / "dataset.json").write_text(json.dumps(card))
    r = invoke(["info", str(copy)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "dataset.json" in r.stderr, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


# --- --json ------------------------------------------------------------------------------------------------------
def test_build_json_is_one_document_on_stdout(tmp_path):
    out = tmp_path / "ds"
    r = invoke(["build", "--out", str(out), "--degradations", "clean", "--workers", "1", "--json"],
               env={"DEMMI_PROGRESS_INTERVAL": "0"})
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    card = read_card(out)[0]
    assert doc["command"] == "build" and doc["content_hash"] == card["content_hash"]
    assert doc["settings"] == ["clean"] and len(doc["shards"]["built"]) == 3 and doc["shards"]["reused"] == []
    assert doc["counts"] == card["counts"] and doc["skipped"] == []
    assert "[demmi] build" in r.stderr  # progress still reported, on stderr
    again = json.loads(invoke(["build", "--out", str(out), "--degradations", "clean", "--json",
                               "--no-progress"]).stdout)
    assert again["shards"]["built"] == [] and len(again["shards"]["reused"]) == 3


def test_verify_json_reports_ok_and_problems_with_the_same_exit_status(dataset, tmp_path):
    r = invoke(["verify", str(dataset), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["shards_checked"] == 3 and doc["samples"] == 18 and doc["problems"] == []
    assert doc["content_hash"] == read_card(dataset)[0]["content_hash"]
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    (copy / "shards" / "train-00000.h5").write_bytes(b"not hdf5")
    bad = invoke(["verify", str(copy), "--json", "--quick"])
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False and any(p["shard"] == "shards/train-00000.h5" for p in doc["problems"])


def test_eval_and_leaderboard_json(dataset, fused, tmp_path):
    results = {}
    for name in ("average", "max"):
        results[name] = tmp_path / f"{name}.json"
        r = invoke(["eval", "--dataset", str(dataset), "--fused", str(fused[name]), "--method", name,
                    "--degradations", "stripe", "--profile", "std", "--out", str(results[name]), "--workers", "1",
                    "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["command"] == "eval" and doc["results_file"] == str(results[name])
        assert doc["results"]["method"] == name and doc["results"]["samples"]["scored"] == 5
        assert doc["results"] == json.loads(json.dumps(json.loads(results[name].read_text())))
    r = invoke(["leaderboard", str(results["average"]), str(results["max"]), "--json", "--sort", "PSNR"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["dataset"]["content_hash"] == read_card(dataset)[0]["content_hash"]
    assert sorted(m["method"] for m in doc["methods"]) == ["average", "max"]
    psnr = [m["values"]["PSNR"] for m in doc["methods"]]
    assert psnr == sorted(psnr, reverse=True) and set(doc["methods"][0]["values"]) == set(doc["metrics"])
    md = invoke(["leaderboard", str(results["average"]), str(results["max"]), "--sort", "PSNR"]).stdout
    assert md.index(f"| {doc['methods'][0]['method']} ") < md.index(f"| {doc['methods'][1]['method']} ")
